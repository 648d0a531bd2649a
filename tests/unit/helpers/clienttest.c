/* clienttest.c: see clienttest.h. */
#include "clienttest.h"

#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"

uint64_t ct_now_ms(void)
{
  return uv_hrtime() / 1000000u;
}

static char *copy(const char *s, size_t n)
{
  return s ? kuala_strndup(s, n) : NULL;
}

void ct_on_resp(void *data, int err, kuala_client_resp_t *resp)
{
  ct_result_t *r = data;
  r->calls++;
  r->err = err;
  r->done_ms = ct_now_ms();
  if (!resp) {
    return;
  }
  r->status = resp->status;
  r->attempts = resp->attempts;
  r->retry_after = resp->retry_after;
  kuala_free(r->body);
  kuala_free(r->reason);
  kuala_free(r->message);
  kuala_free(r->cause0_field);
  r->body = copy(resp->body, resp->body_len);
  r->body_len = resp->body_len;
  r->reason = resp->reason ? kuala_strdup(resp->reason) : NULL;
  r->message = resp->message ? kuala_strdup(resp->message) : NULL;
  r->ncauses = resp->ncauses;
  r->cause0_field =
      resp->ncauses && resp->causes[0].field ? kuala_strdup(resp->causes[0].field) : NULL;
  struct json_object *obj;
  r->json_err = kuala_client_resp_json(resp, &obj);
}

void ct_result_free(ct_result_t *r)
{
  kuala_free(r->body);
  kuala_free(r->reason);
  kuala_free(r->message);
  kuala_free(r->cause0_field);
  memset(r, 0, sizeof(*r));
}

static void on_deadline(uv_timer_t *t)
{
  *(int *)t->data = 1;
}

int ct_run_until(uv_loop_t *loop, const int *flag, uint64_t ms)
{
  uv_timer_t t;
  int expired = 0;
  uv_timer_init(loop, &t);
  t.data = &expired;
  /* From now, not from the loop's cached time (which is stale after
   * blocking work), and repeating: a deadline that fires in the timer phase
   * before the poll would otherwise leave UV_RUN_ONCE blocked in the poll
   * with no timer, forever when nothing else happens (seen on slow builds). */
  uv_update_time(loop);
  uv_timer_start(&t, on_deadline, ms, ms ? ms : 1);
  while (!*flag && !expired) {
    uv_run(loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return *flag;
}

void ct_run_for(uv_loop_t *loop, uint64_t ms)
{
  int never = 0;
  ct_run_until(loop, &never, ms);
}
