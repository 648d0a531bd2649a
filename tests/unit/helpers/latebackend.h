/*
 * latebackend: an in-process kuala_backend_t for runtime tests and
 * benchmarks. Cache reads answer one fixed object (or "not found" / an
 * empty list); every API call is answered with a fixed reply `delay_ms`
 * later, from a timer on the loop, so the reconcile really waits for it.
 * Cancelling a call answers KUALA_ECANCELED at once.
 *
 *   latebackend_t lb = {&loop, OBJ, "{\"metadata\":{\"name\":\"x\"}}", 1};
 *   kuala_backend_t be = latebackend(&lb);
 *   kuala_runtime_new(&rt, &loop, &be, &opts);
 *
 * `lb` must outlive the runtime (the backend's self points at it).
 */
#ifndef KUALA_TEST_LATEBACKEND_H
#define KUALA_TEST_LATEBACKEND_H

#include <stdint.h>
#include <uv.h>

#include "kuala/runtime.h"

typedef struct {
  uv_loop_t *loop;
  const char *object; /* what ctx:get / ctx:list find; NULL: nothing */
  const char *reply;  /* the answer to every API call */
  uint64_t delay_ms;  /* how long after the call it comes */
} latebackend_t;

kuala_backend_t latebackend(latebackend_t *lb);

#endif /* KUALA_TEST_LATEBACKEND_H */
