/*
 * flags.h: command-line flags for every `kuala` subcommand.
 *
 * Each flag is accepted as `--name=value` and as `--name value`, like
 * kubectl and controller-runtime binaries; booleans as `--name`,
 * `--name=true` or `--name=false`.
 */
#ifndef KUALA_CMD_FLAGS_H
#define KUALA_CMD_FLAGS_H

/* Whether argv[*i] is the flag `name` ("--kubeconfig"). Returns 1 with
 * *value set (advancing *i past a separate value), 0 when argv[*i] is not
 * this flag, -1 when the value is missing (the message is printed). */
int kuala__flag_value(int argc, char **argv, int *i, const char *name, const char **value);

/* Boolean flag: 1 with *on set, 0 when not this flag, -1 on a bad value. */
int kuala__flag_bool(char **argv, int i, const char *name, int *on);

/* Non-negative number: 0, or -1 after printing what is wrong. */
int kuala__flag_num(const char *name, const char *v, double *out);

/* The global flags --log-level and --log-format, accepted before the
 * subcommand and among its own flags: 1 when argv[*i] was one (applied,
 * *i advanced past a separate value), 0 when not, -1 on a bad value. */
int kuala__flag_global(int argc, char **argv, int *i);

/* Whether `a` asks for help (-h, --help). */
int kuala__flag_is_help(const char *a);

#endif /* KUALA_CMD_FLAGS_H */
