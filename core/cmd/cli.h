/*
 * cli.h: the `kuala run` and `kuala dev` subcommands (main.c dispatches).
 */
#ifndef KUALA_CLI_H
#define KUALA_CLI_H

#include <stdio.h>

/* argv[0] is the subcommand name. Returns the process exit status. */
int kuala__cli_run(int argc, char **argv);
int kuala__cli_dev(int argc, char **argv);
void kuala__cli_run_usage(FILE *f);

#endif /* KUALA_CLI_H */
