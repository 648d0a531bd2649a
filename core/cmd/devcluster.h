/*
 * devcluster.h: a local kuala-apiserver child process for `kuala dev`.
 *
 * The emulator runs as a child on loopback (port picked by the kernel) and
 * writes a kubeconfig into a private temporary directory. The engine then
 * talks to it like to any cluster; kubectl can too (KUBECONFIG=<path>).
 */
#ifndef KUALA_DEVCLUSTER_H
#define KUALA_DEVCLUSTER_H

#include <uv.h>

typedef struct kuala__devcluster_s kuala__devcluster_t;

/* err 0: the emulator listens; `kubeconfig` is the path of its kubeconfig
 * and `server` its URL (both borrowed, valid while the devcluster lives).
 * err < 0: it could not start (message logged). */
typedef void (*kuala__devcluster_ready_cb)(void *data, int err, const char *kubeconfig,
                                           const char *server);
/* The emulator exited (status, signal) while it was expected to run. */
typedef void (*kuala__devcluster_exit_cb)(void *data, int64_t status, int signal);

/* Find the kuala-apiserver binary: $KUALA_APISERVER, then beside this
 * executable or in ../apiserver/ (build tree), then $PATH. Returns a new
 * string or NULL. */
char *kuala__devcluster_find_binary(void);

/* Start the emulator (`binary` NULL = find it). Extra arguments for it may
 * be given in args (NULL-terminated, may be NULL). */
int kuala__devcluster_start(kuala__devcluster_t **out, uv_loop_t *loop, const char *binary,
                            char **args, kuala__devcluster_ready_cb ready,
                            kuala__devcluster_exit_cb on_exit, void *data);
/* Stop the emulator (SIGTERM), remove the temporary directory, free once
 * the loop has closed the handles. */
void kuala__devcluster_stop(kuala__devcluster_t *d);

/* The hidden `kuala` command that runs the guard between `kuala dev` and
 * the emulator (see devcluster.c), and its main: argv[0] is the command,
 * then the parent's pid, the temporary directory, the emulator binary and
 * its arguments. Returns the emulator's exit status. */
#define KUALA__DEVCLUSTER_GUARD_CMD "__devcluster-guard"
int kuala__devcluster_guard_main(int argc, char **argv);

#endif /* KUALA_DEVCLUSTER_H */
