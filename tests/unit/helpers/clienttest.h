/*
 * clienttest: shared plumbing for the API client tests -- a captured
 * response, and a loop runner bounded in time.
 */
#ifndef KUALA_TEST_CLIENTTEST_H
#define KUALA_TEST_CLIENTTEST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kuala/client.h"

typedef struct {
  int calls; /* how many times the callback ran (must end at 1) */
  int err;
  int status;
  int attempts;
  long retry_after;
  char *body; /* malloc'd copies (free with ct_result_free) */
  size_t body_len;
  char *reason;
  char *message;
  char *cause0_field;
  size_t ncauses;
  int json_err; /* kuala_client_resp_json() on the response */
  uint64_t done_ms;
} ct_result_t;

/* A kuala_client_req_cb that fills the ct_result_t passed as data. */
void ct_on_resp(void *data, int err, kuala_client_resp_t *resp);
void ct_result_free(ct_result_t *r);
/* Run `loop` until *flag != 0 or `ms` elapsed; returns *flag. */
int ct_run_until(uv_loop_t *loop, const int *flag, uint64_t ms);
/* Run `loop` for `ms` milliseconds. */
void ct_run_for(uv_loop_t *loop, uint64_t ms);
uint64_t ct_now_ms(void);
/* Run `loop` until `cond` holds or `ms` passed; fails the (check) test if
 * it does not hold by then. */
#define CT_UNTIL(loop, cond, ms)                               \
  do {                                                         \
    uint64_t t0_ = ct_now_ms();                                \
    while (!(cond) && ct_now_ms() - t0_ < (ms)) {              \
      uv_run((loop), UV_RUN_NOWAIT);                           \
      if (!(cond)) {                                           \
        uv_sleep(1);                                           \
      }                                                        \
    }                                                          \
    ck_assert_msg((cond), "timed out waiting for: %s", #cond); \
  } while (0)

#endif
