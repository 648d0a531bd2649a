/*
 * emuproc: run the kuala-apiserver emulator as a child process for client
 * tests: spawn it on 127.0.0.1 with --port 0, read the port from its
 * "listening on http://127.0.0.1:PORT" line, stop it with SIGTERM.
 */
#ifndef KUALA_TEST_EMUPROC_H
#define KUALA_TEST_EMUPROC_H

#include <stddef.h>
#include <uv.h>

typedef struct {
  uv_process_t proc;
  uv_pipe_t out;
  char buf[4096];
  size_t len;
  int port;
  int admin_port; /* with --admin-port 0 in the extra arguments */
  int exited;
  int closed;
  char url[64];
  char admin_url[64];
} emuproc_t;

/* The emulator binary: $KUALA_EMU_BIN, else
 * $KUALA_BINARY_DIR/apiserver/kuala-apiserver. 0 when it exists, else
 * KUALA_ENOENT (and `out` holds the path that was tried). */
int emuproc_find(char *out, size_t n);
/* Start it with extra arguments (NULL-terminated, may be NULL); runs the
 * loop until the port is known (10 s at most). 0 or a negative error. */
int emuproc_start(emuproc_t *p, uv_loop_t *loop, const char *const *extra);
/* SIGTERM, wait for the exit, close the handles (the loop must run). */
void emuproc_stop(emuproc_t *p, uv_loop_t *loop);

#endif
