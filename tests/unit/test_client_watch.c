/*
 * Unit tests for the watch stream: the JSON-lines splitter, and watches
 * against the fault server (split lines, oversized lines, malformed
 * events, ERROR events, stop from inside a callback).
 */
#include "kuala_test.h"
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "base/jscan.h"
#include "helpers/clienttest.h"
#include "helpers/faultsrv.h"
#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/error.h"

typedef struct {
  int n;
  char all[1024];
} lines_seen_t;

static int on_line(void *data, const char *line, size_t len)
{
  lines_seen_t *s = data;
  ck_assert_uint_eq(strlen(line), len);
  size_t used = strlen(s->all);
  snprintf(s->all + used, sizeof(s->all) - used, "[%s]", line);
  s->n++;
  return 0;
}

START_TEST(test_client_lines_split_across_chunks)
{
  const char *stream = "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":\"x\\ny\"}\n{\"tail\"";
  /* Feed one byte at a time, then in uneven pieces: same lines. */
  for (size_t step = 1; step <= 7; step += 3) {
    kuala_lines_t p;
    kuala_lines_init(&p, 64);
    lines_seen_t s = {0, ""};
    size_t n = strlen(stream);
    for (size_t i = 0; i < n; i += step) {
      size_t k = n - i < step ? n - i : step;
      ck_assert_int_eq(kuala_lines_feed(&p, stream + i, k, on_line, &s), 0);
    }
    ck_assert_int_eq(s.n, 3);
    ck_assert_str_eq(s.all, "[{\"a\":1}][{\"b\":2}][{\"c\":\"x\\ny\"}]");
    ck_assert_uint_eq(kuala_lines_pending(&p), 7);
    kuala_lines_free(&p);
  }
}
END_TEST

START_TEST(test_client_lines_cap)
{
  kuala_lines_t p;
  kuala_lines_init(&p, 8);
  lines_seen_t s = {0, ""};
  ck_assert_int_eq(kuala_lines_feed(&p, "12345678\n", 9, on_line, &s), 0);
  ck_assert_int_eq(s.n, 1);
  /* A line past the cap fails before its end arrives. */
  ck_assert_int_eq(kuala_lines_feed(&p, "12345", 5, on_line, &s), 0);
  ck_assert_int_eq(kuala_lines_feed(&p, "6789", 4, on_line, &s), KUALA_E2BIG);
  ck_assert_int_eq(s.n, 1);
  kuala_lines_free(&p);
  kuala_lines_init(&p, 8);
  ck_assert_int_eq(kuala_lines_feed(&p, "123456789\n", 10, on_line, &s), KUALA_E2BIG);
  kuala_lines_free(&p);
}
END_TEST

static int stop_parsing(void *data, const char *line, size_t len)
{
  (*(int *)data)++;
  return 42;
}

START_TEST(test_client_lines_callback_stops)
{
  kuala_lines_t p;
  kuala_lines_init(&p, 0);
  int calls = 0;
  ck_assert_int_eq(kuala_lines_feed(&p, "a\nb\nc\n", 6, stop_parsing, &calls), 42);
  ck_assert_int_eq(calls, 1);
  kuala_lines_free(&p);
}
END_TEST

typedef struct {
  int events;
  int done;
  int done_err;
  int stop_after; /* stop the watch from inside the Nth event (0 = never) */
  kuala_watch_t *w;
  char types[256];
  char names[256];
  int last_err;
  int done_status;
  int attempts;
} watch_seen_t;

static void on_event(void *data, const kuala_watch_event_t *ev)
{
  watch_seen_t *s = data;
  ck_assert_int_eq(s->done, 0);
  s->events++;
  static const char *names[] = {"", "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", "INVALID"};
  ck_assert(ev->type >= 1 && ev->type <= 6);
  ck_assert((ev->type == KUALA_WATCH_INVALID) == (ev->object == NULL));
  size_t used = strlen(s->types);
  snprintf(s->types + used, sizeof(s->types) - used, "%s ", names[ev->type]);
  json_object *md, *name;
  if (json_object_object_get_ex(ev->object, "metadata", &md) &&
      json_object_object_get_ex(md, "name", &name)) {
    used = strlen(s->names);
    snprintf(s->names + used, sizeof(s->names) - used, "%s ", json_object_get_string(name));
  }
  s->last_err = ev->err;
  if (s->stop_after && s->events == s->stop_after) {
    kuala_watch_stop(s->w);
  }
}

static void on_done(void *data, int err, kuala_client_resp_t *resp)
{
  watch_seen_t *s = data;
  s->done++;
  s->done_err = err;
  s->done_status = resp ? resp->status : -1;
  s->attempts = resp ? resp->attempts : -1;
}

typedef struct {
  uv_loop_t loop;
  faultsrv_t *srv;
  kuala_client_t *c;
} env_t;

static void env_init(env_t *e, size_t max_line)
{
  ck_assert_int_eq(uv_loop_init(&e->loop), 0);
  ck_assert_int_eq(faultsrv_start(&e->srv, &e->loop), 0);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(faultsrv_url(e->srv));
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  cfg.max_line = max_line;
  cfg.backoff_base_ms = 5;
  ck_assert_int_eq(kuala_client_new(&e->c, &e->loop, &cfg), 0);
  kuala_client_config_free(&cfg);
}

static void env_done(env_t *e)
{
  kuala_client_close(e->c);
  faultsrv_close(e->srv);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&e->loop), 0);
}

static const kuala_client_target_t cms = {NULL, "v1", "configmaps", "default", NULL, NULL};

#define CM_HEAD "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\""
#define EV(type, name) "{\"type\":\"" type "\",\"object\":" CM_HEAD name "\"}}}"

START_TEST(test_client_watch_events_in_order)
{
  env_t e;
  env_init(&e, 0);
  /* Lines split across chunks at awkward places, sent 10 ms apart. */
  const char *chunks[] = {EV("ADDED", "a") "\n" "{\"type\":\"MODI",
                          "FIED\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"b\"}}}",
                          "\n", EV("DELETED", "c") "\n" EV("BOOKMARK", "") "\n", NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks, .delay_ms = 10};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.resource_version = "100";
  o.allow_watch_bookmarks = 1;
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, &o, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_int_eq(s.done_err, 0); /* the server ended the stream cleanly */
  ck_assert_int_eq(s.events, 4);
  ck_assert_str_eq(s.types, "ADDED MODIFIED DELETED BOOKMARK ");
  ck_assert_str_eq(s.names, "a b c  ");
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv),
                               "GET /api/v1/namespaces/default/configmaps?watch=1&"
                               "resourceVersion=100&allowWatchBookmarks=true "));
  env_done(&e);
}
END_TEST

START_TEST(test_client_watch_oversized_line)
{
  env_t e;
  env_init(&e, 128);
  char big[600];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  const char *chunks[] = {EV("ADDED", "a") "\n",
                          "{\"type\":\"ADDED\",\"object\":{\"pad\":\"",
                          big,
                          "\"}}\n",
                          EV("ADDED", "b") "\n",
                          NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks, .delay_ms = 5};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, NULL, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  /* The over-long line is skipped and reported; the watch goes on. */
  ck_assert_str_eq(s.types, "ADDED INVALID ADDED ");
  ck_assert_str_eq(s.names, "a b ");
  ck_assert_int_eq(s.done_err, 0);
  env_done(&e);
}
END_TEST

START_TEST(test_client_watch_malformed_event)
{
  env_t e;
  env_init(&e, 0);
  /* Each bad line is skipped and reported (issue 14 items 3, 6, 7): torn
   * JSON, lenient JSON, not an event, "object" twice. */
  const char *chunks[] = {EV("ADDED", "a") "\n",
                          "{\"type\":\"ADDED\",\"object\":{\"x\":\n",
                          "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"t\",},},}\n",
                          "{\"type\":\"ADDED\",\"object\":{\"n\":0088}}\n",
                          "{\"type\":\"ADDED\",\"object\":{\"n\":NaN}}\n",
                          "garbage\n",
                          "[1,2]\n",
                          "{\"type\":\"ADDED\",\"object\":" CM_HEAD
                          "dup\"}},"
                          "\"object\":" CM_HEAD "other\"}}}\n",
                          EV("ADDED", "b") "\n",
                          NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks, .delay_ms = 5};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, NULL, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_str_eq(s.types, "ADDED INVALID INVALID INVALID INVALID INVALID INVALID INVALID ADDED ");
  ck_assert_str_eq(s.names, "a b ");
  ck_assert_int_eq(s.last_err, 0);
  ck_assert_int_eq(s.done_err, 0);
  env_done(&e);
}
END_TEST

/* scan_events (the informer's watches): object events come without a
 * tree, as a scan of the line; bookmarks and errors keep their tree; bad
 * lines are refused exactly as on the tree path. */
static void on_scanned(void *data, const kuala_watch_event_t *ev)
{
  watch_seen_t *s = data;
  s->events++;
  static const char *names[] = {"", "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", "INVALID"};
  ck_assert(ev->type >= 1 && ev->type <= 6);
  size_t used = strlen(s->types);
  snprintf(s->types + used, sizeof(s->types) - used, "%s ", names[ev->type]);
  if (ev->type <= KUALA_WATCH_DELETED) {
    ck_assert_ptr_null(ev->object);
    ck_assert_ptr_nonnull(ev->obj_scan);
    const kuala__jobj_t *o = ev->obj_scan;
    ck_assert(o->name.set && !o->name.esc);
    ck_assert_int_eq(ev->line[o->off], '{');
    ck_assert_int_eq(ev->line[o->off + o->len - 1], '}');
    used = strlen(s->names);
    snprintf(s->names + used, sizeof(s->names) - used, "%.*s ", (int)o->name.len,
             ev->line + o->name.off);
  } else if (ev->type == KUALA_WATCH_INVALID) {
    ck_assert_ptr_null(ev->object);
    used = strlen(s->names);
    if (strcmp(ev->reason, "duplicate key in watch event") == 0) {
      snprintf(s->names + used, sizeof(s->names) - used, "(dup) ");
    }
  } else {
    ck_assert_ptr_nonnull(ev->object);
  }
  s->last_err = ev->err;
}

START_TEST(test_client_watch_scanned_events)
{
  env_t e;
  env_init(&e, 0);
  const char *chunks[] = {EV("ADDED", "a") "\n",
                          "{\"type\":\"ADDED\",\"object\":{\"x\":\n",
                          "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"t\",},},}\n",
                          "{\"type\":\"ADDED\",\"object\":{\"n\":0088}}\n",
                          "garbage\n",
                          "[1,2]\n",
                          "{\"type\":\"ADDED\",\"object\":[1]}\n",
                          "{\"type\":\"ADDED\",\"object\":" CM_HEAD
                          "dup\"}},"
                          "\"object\":" CM_HEAD "other\"}}}\n",
                          EV("MODIFIED", "b") "\n",
                          "{\"object\":" CM_HEAD "c\"}},\"type\":\"DELETED\"}\n",
                          EV("BOOKMARK", "") "\n",
                          "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}\n",
                          NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks, .delay_ms = 5};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.scan_events = 1;
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, &o, on_scanned, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_str_eq(s.types,
                   "ADDED INVALID INVALID INVALID INVALID INVALID INVALID INVALID "
                   "MODIFIED DELETED BOOKMARK ERROR ");
  ck_assert_str_eq(s.names, "a (dup) b c ");
  ck_assert_int_eq(s.last_err, KUALA_EGONE);
  ck_assert_int_eq(s.done_err, 0);
  env_done(&e);
}
END_TEST

START_TEST(test_client_watch_error_event_410)
{
  env_t e;
  env_init(&e, 0);
  const char *chunks[] = {
      "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
      "\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource "
      "version: 1 (5)\",\"reason\":\"Expired\",\"code\":410}}\n",
      NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, NULL, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_int_eq(s.events, 1);
  ck_assert_str_eq(s.types, "ERROR ");
  ck_assert_int_eq(s.last_err, KUALA_EGONE);
  ck_assert_int_eq(s.done_err, 0);
  env_done(&e);
}
END_TEST

START_TEST(test_client_watch_stop_from_event)
{
  env_t e;
  env_init(&e, 0);
  /* Two events in one chunk, then the stream stays open forever. */
  const char *chunks[] = {EV("ADDED", "a") "\n" EV("ADDED", "b") "\n", EV("ADDED", "c") "\n", NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks, .delay_ms = 20, .keep_open = 1};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  s.stop_after = 1;
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, NULL, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_int_eq(s.done_err, KUALA_ECANCELED);
  ct_run_for(&e.loop, 60);
  ck_assert_int_eq(s.events, 1); /* nothing after the stop */
  ck_assert_int_eq(s.done, 1);
  env_done(&e);
}
END_TEST

START_TEST(test_client_watch_refused_and_close)
{
  env_t e;
  env_init(&e, 0);
  faultsrv_respond(e.srv, 403, NULL,
                   "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Forbidden\","
                   "\"message\":\"nope\",\"code\":403}");
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, NULL, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_int_eq(s.done_err, KUALA_EFORBIDDEN);
  ck_assert_int_eq(s.done_status, 403);
  ck_assert_int_eq(s.events, 0);

  /* A watch open when the client closes ends with KUALA_ECANCELED. */
  const char *chunks[] = {EV("ADDED", "a") "\n", NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks, .keep_open = 1};
  faultsrv_push(e.srv, &a);
  watch_seen_t s2;
  memset(&s2, 0, sizeof(s2));
  ck_assert_int_eq(kuala_client_watch(&s2.w, e.c, &cms, NULL, on_event, on_done, &s2), 0);
  ck_assert(ct_run_until(&e.loop, &s2.events, 5000));
  kuala_client_close(e.c);
  faultsrv_close(e.srv);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(s2.done, 1);
  ck_assert_int_eq(s2.done_err, KUALA_ECANCELED);
  ck_assert_int_eq(uv_loop_close(&e.loop), 0);
}
END_TEST

START_TEST(test_client_watch_torn_last_line)
{
  env_t e;
  env_init(&e, 0);
  const char *chunks[] = {EV("ADDED", "a") "\n{\"type\":\"ADD", NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, NULL, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_int_eq(s.events, 1);
  ck_assert_int_eq(s.done_err, KUALA_EBADMSG);
  env_done(&e);
}
END_TEST

START_TEST(test_client_watch_start_retried)
{
  env_t e;
  env_init(&e, 0);
  /* A refused start (503, then 429 with Retry-After: 0) is retried like a
   * GET; the third attempt streams. */
  faultsrv_respond(e.srv, 503, NULL, "busy");
  faultsrv_respond(e.srv, 429, "Retry-After: 0\r\n", "slow down");
  const char *chunks[] = {EV("ADDED", "a") "\n", NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, NULL, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_int_eq(s.done_err, 0);
  ck_assert_int_eq(s.events, 1);
  ck_assert_int_eq(s.attempts, 3);
  ck_assert_int_eq(faultsrv_requests(e.srv), 3);
  env_done(&e);
}
END_TEST

START_TEST(test_client_watch_idle_timeout)
{
  env_t e;
  env_init(&e, 0);
  /* One event, then silence on an open stream. */
  const char *chunks[] = {EV("ADDED", "a") "\n", NULL};
  faultsrv_action_t a = {.kind = FS_STREAM, .chunks = chunks, .keep_open = 1};
  faultsrv_push(e.srv, &a);
  watch_seen_t s;
  memset(&s, 0, sizeof(s));
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.timeout_ms = 1000;
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, &o, on_event, on_done, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 10000));
  ck_assert_int_eq(s.events, 1);
  ck_assert_int_eq(s.done_err, KUALA_ETIMEDOUT);
  env_done(&e);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("client_watch");
  TCase *tc = tcase_create("client_watch");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_client_lines_split_across_chunks);
  tcase_add_test(tc, test_client_lines_cap);
  tcase_add_test(tc, test_client_lines_callback_stops);
  tcase_add_test(tc, test_client_watch_events_in_order);
  tcase_add_test(tc, test_client_watch_oversized_line);
  tcase_add_test(tc, test_client_watch_malformed_event);
  tcase_add_test(tc, test_client_watch_scanned_events);
  tcase_add_test(tc, test_client_watch_error_event_410);
  tcase_add_test(tc, test_client_watch_stop_from_event);
  tcase_add_test(tc, test_client_watch_refused_and_close);
  tcase_add_test(tc, test_client_watch_torn_last_line);
  tcase_add_test(tc, test_client_watch_start_retried);
  tcase_add_test(tc, test_client_watch_idle_timeout);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
