/*
 * A scripted list/watch source for the informer and reflector tests.
 *
 * The reflector's calls are recorded (options copied); the test answers
 * them with fake_list_reply(), fake_event(), fake_watch_end()... from its
 * own stack, never from inside the reflector's start call, as the source
 * contract requires. Cancellations (cancel_list, stop_watch) are answered
 * with KUALA_ECANCELED from a zero-delay timer on the loop.
 */
#ifndef KUALA_TEST_INFORMER_FAKE_H
#define KUALA_TEST_INFORMER_FAKE_H

#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "kuala/error.h"
#include "kuala/informer.h"

typedef struct {
  uv_timer_t timer; /* delivers cancellations */
  int list_calls, watch_calls;
  int list_active, watch_active;
  int cancel_pending, stop_pending;
  int cancels, stops;
  int fail_list_start, fail_watch_start; /* error returned by the next start */
  kuala_lw_list_cb lcb;
  void *ldata;
  kuala_lw_event_cb ev;
  kuala_lw_done_cb done;
  void *wdata;
  /* Copies of the last options. */
  long list_limit;
  char list_continue[128];
  int list_has_rv;
  char watch_rv[64];
  int watch_has_rv;
  long watch_timeout;
  int watch_bookmarks, watch_sie;
  char watch_rvm[32];
  char last_key[256];
  int multi; /* several informers share the fake: skip the one-op check */
} fake_t;

static inline void fake_fire(uv_timer_t *t)
{
  fake_t *f = t->data;
  if (f->cancel_pending) {
    f->cancel_pending = 0;
    f->list_active = 0;
    f->lcb(f->ldata, KUALA_ECANCELED, NULL, NULL, 0);
  }
  if (f->stop_pending) {
    f->stop_pending = 0;
    f->watch_active = 0;
    f->done(f->wdata, KUALA_ECANCELED);
  }
}

static inline int fake_list(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                            kuala_lw_list_cb cb, void *data, void **handle)
{
  fake_t *f = src;
  ck_assert_int_eq(f->list_active, 0);
  if (!f->multi) {
    ck_assert_int_eq(f->watch_active, 0); /* one operation at a time */
  }
  f->list_calls++;
  if (f->fail_list_start) {
    int rc = f->fail_list_start;
    f->fail_list_start = 0;
    return rc;
  }
  snprintf(f->last_key, sizeof f->last_key, "%s/%s/%s ns=%s l=%s f=%s", key->group, key->version,
           key->resource, key->ns ? key->ns : "*", key->label_selector ? key->label_selector : "",
           key->field_selector ? key->field_selector : "");
  f->list_limit = o->limit;
  snprintf(f->list_continue, sizeof f->list_continue, "%s",
           o->continue_token ? o->continue_token : "");
  f->list_has_rv = o->resource_version != NULL;
  f->list_active = 1;
  f->lcb = cb;
  f->ldata = data;
  *handle = f;
  return 0;
}

static inline void fake_cancel_list(void *src, void *handle)
{
  fake_t *f = src;
  ck_assert_int_eq(f->list_active, 1);
  ck_assert_int_eq(f->cancel_pending, 0);
  f->cancels++;
  f->cancel_pending = 1;
  uv_timer_start(&f->timer, fake_fire, 0, 0);
}

static inline int fake_watch(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                             kuala_lw_event_cb on_event, kuala_lw_done_cb on_done, void *data,
                             void **handle)
{
  fake_t *f = src;
  if (!f->multi) {
    ck_assert_int_eq(f->list_active, 0);
  }
  ck_assert_int_eq(f->watch_active, 0);
  f->watch_calls++;
  if (f->fail_watch_start) {
    int rc = f->fail_watch_start;
    f->fail_watch_start = 0;
    return rc;
  }
  f->watch_has_rv = o->resource_version != NULL;
  snprintf(f->watch_rv, sizeof f->watch_rv, "%s", o->resource_version ? o->resource_version : "");
  snprintf(f->watch_rvm, sizeof f->watch_rvm, "%s",
           o->resource_version_match ? o->resource_version_match : "");
  f->watch_timeout = o->timeout_seconds;
  f->watch_bookmarks = o->allow_watch_bookmarks;
  f->watch_sie = o->send_initial_events;
  f->watch_active = 1;
  f->ev = on_event;
  f->done = on_done;
  f->wdata = data;
  *handle = f;
  return 0;
}

static inline void fake_stop_watch(void *src, void *handle)
{
  fake_t *f = src;
  ck_assert_int_eq(f->watch_active, 1);
  ck_assert_int_eq(f->stop_pending, 0);
  f->stops++;
  f->stop_pending = 1;
  uv_timer_start(&f->timer, fake_fire, 0, 0);
}

static const kuala_lw_source_t fake_source = {fake_list, fake_cancel_list, fake_watch,
                                              fake_stop_watch};

static inline void fake_init(fake_t *f, uv_loop_t *loop)
{
  memset(f, 0, sizeof(*f));
  uv_timer_init(loop, &f->timer);
  f->timer.data = f;
}

static inline void fake_close(fake_t *f)
{
  uv_close((uv_handle_t *)&f->timer, NULL);
}

/* Answer the outstanding list with `text` (a List document). */
static inline void fake_list_reply(fake_t *f, const char *text)
{
  ck_assert_int_eq(f->list_active, 1);
  json_object *page = json_tokener_parse(text);
  ck_assert_ptr_nonnull(page);
  f->list_active = 0;
  f->lcb(f->ldata, 0, page, text, strlen(text));
  json_object_put(page);
}

static inline void fake_list_fail(fake_t *f, int err)
{
  ck_assert_int_eq(f->list_active, 1);
  f->list_active = 0;
  f->lcb(f->ldata, err, NULL, NULL, 0);
}

/* Deliver one watch event line ({"type":..,"object":..}). */
static inline void fake_event(fake_t *f, const char *line)
{
  ck_assert_int_eq(f->watch_active, 1);
  json_object *ev = json_tokener_parse(line), *t, *o;
  ck_assert_ptr_nonnull(ev);
  ck_assert(json_object_object_get_ex(ev, "type", &t));
  ck_assert(json_object_object_get_ex(ev, "object", &o));
  const char *ts = json_object_get_string(t);
  kuala_lw_event_t e = {0};
  e.type = strcmp(ts, "ADDED") == 0      ? KUALA_LW_ADDED
           : strcmp(ts, "MODIFIED") == 0 ? KUALA_LW_MODIFIED
           : strcmp(ts, "DELETED") == 0  ? KUALA_LW_DELETED
           : strcmp(ts, "BOOKMARK") == 0 ? KUALA_LW_BOOKMARK
                                         : KUALA_LW_ERROR;
  if (e.type == KUALA_LW_ERROR) {
    json_object *c;
    int code = json_object_object_get_ex(o, "code", &c) ? json_object_get_int(c) : 500;
    e.err = code == 410 ? KUALA_EGONE : kuala_err_from_http(code);
  }
  e.object = o;
  e.line = line;
  e.len = strlen(line);
  f->ev(f->wdata, &e);
  json_object_put(ev);
}

static inline void fake_watch_end(fake_t *f, int err)
{
  ck_assert_int_eq(f->watch_active, 1);
  f->watch_active = 0;
  f->done(f->wdata, err);
}

/* Run the loop until cond holds or 30 s passed: a bound that keeps tests
 * finite, not a timing (the conditions hold within milliseconds, even on
 * sanitizer builds of a loaded machine). */
#define RUN_UNTIL(loop, cond)                                  \
  do {                                                         \
    uint64_t t0_ = uv_hrtime();                                \
    while (!(cond) && uv_hrtime() - t0_ < 30000000000ULL) {    \
      uv_run((loop), UV_RUN_NOWAIT);                           \
      if (!(cond)) {                                           \
        uv_sleep(1);                                           \
      }                                                        \
    }                                                          \
    ck_assert_msg((cond), "timed out waiting for: %s", #cond); \
  } while (0)

#endif /* KUALA_TEST_INFORMER_FAKE_H */
