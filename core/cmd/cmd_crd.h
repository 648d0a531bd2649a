/*
 * cmd_crd.h: `kuala crd`, and the offline runtime (no API server) that it
 * shares with `kuala check`.
 */
#ifndef KUALA_CMD_CRD_H
#define KUALA_CMD_CRD_H

#include <uv.h>

#include "kuala/runtime.h"

/* A Lua runtime on a private loop whose backend has an empty cache and
 * refuses API calls: loads bundles and reads their declarations. */
typedef struct {
  uv_loop_t loop;
  kuala_runtime_t *rt;
} kuala__offline_t;

/* 0 or a KUALA_E* error (nothing to close then). */
int kuala__offline_open(kuala__offline_t *o);
/* Free the runtime (close the bundles first) and the loop. */
void kuala__offline_close(kuala__offline_t *o);

/* `kuala crd DIR...`: load each bundle (no cluster needed) and print the
 * CRDs it declares as a YAML stream. Returns the process exit status. */
int kuala__cli_crd(int argc, char **argv);

/* `kuala check DIR...`: load and validate each bundle offline; exit 1 with
 * the file and line of every problem. Returns the process exit status. */
int kuala__cli_check(int argc, char **argv);

#endif /* KUALA_CMD_CRD_H */
