/*
 * Unit tests for the reflector state machine, driven by a scripted source:
 * paging, watch options, bookmarks, resume without relist, 410 handling
 * (HTTP and ERROR event) with tombstones, backoff, streaming list and its
 * fallback (a refusal for good, a cut for one relist), streaming relists,
 * and "Too large resource version" relisting every informer.
 */
#include <check.h>

#include "kuala_test.h"
#include <stdlib.h>

#include "kuala/alloc.h"
#include "kuala/informer.h"
#include "test_informer_fake.h"

typedef struct {
  char log[8192];
  int adds, updates, deletes, unknown;
} rec_t;

static void logf_(rec_t *r, const char *fmt, const char *a, const char *b, const char *c)
{
  size_t l = strlen(r->log);
  snprintf(r->log + l, sizeof r->log - l, fmt, a, b, c);
}

static void on_add(void *d, const kuala_obj_t *o, int initial)
{
  rec_t *r = d;
  r->adds++;
  logf_(r, "ADD %s/%s %s\n", o->ns, o->name, o->rv);
}

static void on_update(void *d, const kuala_obj_t *old, const kuala_obj_t *o)
{
  rec_t *r = d;
  r->updates++;
  logf_(r, "UPD %s %s->%s\n", o->name, old->rv, o->rv);
}

static void on_delete(void *d, const kuala_obj_t *o, int unknown)
{
  rec_t *r = d;
  r->deletes++;
  r->unknown += unknown;
  logf_(r, "DEL %s %s%s\n", o->name, o->rv, unknown ? " unknown" : "");
}

static const kuala_informer_handlers_t rec_handlers = {on_add, on_update, on_delete};

#define CM(name, rv)                                       \
  "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"" name \
  "\",\"namespace\":\"ns\","                               \
  "\"resourceVersion\":\"" rv "\"}}"

typedef struct {
  uv_loop_t loop;
  fake_t fake;
  kuala_informers_t *f;
  kuala_informer_reg_t *reg;
  kuala_informer_t *inf;
  rec_t rec;
} fx_t;

static void fx_start(fx_t *x, kuala_informer_opts_t *o)
{
  memset(x, 0, sizeof(*x));
  ck_assert_int_eq(uv_loop_init(&x->loop), 0);
  fake_init(&x->fake, &x->loop);
  ck_assert_int_eq(kuala_informers_new(&x->f, &x->loop, &fake_source, &x->fake), 0);
  kuala_informer_key_t key = {"", "v1", "configmaps", NULL, NULL, NULL, 0};
  ck_assert_int_eq(kuala_informers_add_handler(&x->reg, x->f, &key, o, &rec_handlers, &x->rec), 0);
  x->inf = kuala_informer_reg_informer(x->reg);
}

static void fx_finish(fx_t *x)
{
  kuala_informers_close(x->f);
  uv_run(&x->loop, UV_RUN_DEFAULT);
  fake_close(&x->fake);
  uv_run(&x->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&x->loop), 0);
}

static kuala_informer_opts_t fast_opts(void)
{
  kuala_informer_opts_t o;
  kuala_informer_opts_init(&o);
  o.backoff_base_ms = 4;
  o.backoff_max_ms = 16;
  return o;
}

/* List a, b, c at RV 10 in one page and reach the watch. */
static void fx_sync_abc(fx_t *x)
{
  fake_list_reply(&x->fake,
                  "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"10\"},"
                  "\"items\":[" CM("a", "1") "," CM("b", "2") "," CM("c", "3") "]}");
  ck_assert(kuala_informer_has_synced(x->inf));
  ck_assert_int_eq(x->fake.watch_active, 1);
}

START_TEST(test_reflector_backoff_schedule)
{
  kuala_backoff_t b = {800, 30000, 120000, 0, 0};
  uint64_t want[] = {800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
  uint64_t now = 1000;
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    /* rnd just under 1 gives the top of the range: the step itself. */
    uint64_t d = kuala_backoff_next(&b, now, 0.9999999);
    ck_assert_uint_eq(b.step_ms, want[i]);
    ck_assert_uint_le(d, want[i]);
    ck_assert_uint_ge(d, want[i] - 1);
    now += 1000;
  }
  /* Full jitter: rnd 0 waits nothing, rnd 0.5 half the step. */
  ck_assert_uint_eq(kuala_backoff_next(&b, now, 0.0), 0);
  ck_assert_uint_eq(b.step_ms, 30000);
  /* Two minutes without failure: back to the base step. */
  now += 120000;
  ck_assert_uint_eq(kuala_backoff_next(&b, now, 0.5), 400);
  ck_assert_uint_eq(b.step_ms, 800);
  /* Less than two minutes: it keeps doubling. */
  now += 119999;
  kuala_backoff_next(&b, now, 0.5);
  ck_assert_uint_eq(b.step_ms, 1600);
}
END_TEST

START_TEST(test_reflector_lists_in_pages_then_watches)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  o.page_size = 2;
  fx_start(&x, &o);
  ck_assert_int_eq(x.fake.list_calls, 1);
  ck_assert_int_eq(x.fake.list_limit, 2);
  ck_assert_str_eq(x.fake.list_continue, "");
  ck_assert_int_eq(x.fake.list_has_rv, 0); /* consistent read */
  fake_list_reply(&x.fake,
                  "{\"metadata\":{\"resourceVersion\":\"10\",\"continue\":\"tok1\"},"
                  "\"items\":[" CM("a", "1") "," CM("b", "2") "]}");
  ck_assert(!kuala_informer_has_synced(x.inf));
  ck_assert_int_eq(x.fake.list_calls, 2);
  ck_assert_str_eq(x.fake.list_continue, "tok1");
  fake_list_reply(&x.fake,
                  "{\"metadata\":{\"resourceVersion\":\"10\"},\"items\":[" CM("c", "3") "]}");
  ck_assert(kuala_informer_has_synced(x.inf));
  ck_assert_int_eq(x.rec.adds, 3);
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(x.inf)), 3);
  ck_assert_int_eq(x.fake.watch_calls, 1);
  ck_assert_str_eq(x.fake.watch_rv, "10");
  ck_assert_int_eq(x.fake.watch_bookmarks, 1);
  ck_assert_int_eq(x.fake.watch_sie, 0);
  ck_assert_int_ge(x.fake.watch_timeout, 300);
  ck_assert_int_le(x.fake.watch_timeout, 600);
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.relists, 1);
  ck_assert_uint_eq(st.list_pages, 2);
  ck_assert_uint_eq(st.objects, 3);
  fx_finish(&x);
}
END_TEST

START_TEST(test_reflector_events_in_order_and_bookmarks_advance_rv)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  fx_start(&x, &o);
  fx_sync_abc(&x);
  x.rec.log[0] = '\0';
  fake_event(&x.fake, "{\"type\":\"MODIFIED\",\"object\":" CM("a", "11") "}");
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("d", "12") "}");
  fake_event(&x.fake, "{\"type\":\"DELETED\",\"object\":" CM("b", "13") "}");
  ck_assert_str_eq(x.rec.log, "UPD a 1->11\nADD ns/d 12\nDEL b 13\n");
  ck_assert_str_eq(kuala_informer_last_rv(x.inf), "13");
  fake_event(&x.fake,
             "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{"
             "\"resourceVersion\":\"40\"}}}");
  ck_assert_str_eq(kuala_informer_last_rv(x.inf), "40");
  /* Deleting an object the store does not have is not an event. */
  fake_event(&x.fake, "{\"type\":\"DELETED\",\"object\":" CM("zz", "41") "}");
  ck_assert_int_eq(x.rec.deletes, 1);
  /* The server ends the watch cleanly: resume from the bookmark, no list. */
  fake_watch_end(&x.fake, 0);
  ck_assert_int_eq(x.fake.watch_calls, 2);
  ck_assert_str_eq(x.fake.watch_rv, "41");
  ck_assert_int_eq(x.fake.list_calls, 1);
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.watch_restarts, 1);
  ck_assert_uint_eq(st.relists, 1);
  ck_assert_uint_eq(st.events_bookmark, 1);
  ck_assert_uint_eq(st.events_added, 1);
  ck_assert_uint_eq(st.events_modified, 1);
  ck_assert_uint_eq(st.events_deleted, 2);
  fx_finish(&x);
}
END_TEST

START_TEST(test_reflector_error_event_410_relists_with_tombstones)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  fx_start(&x, &o);
  fx_sync_abc(&x);
  x.rec.log[0] = '\0';
  fake_event(&x.fake,
             "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\","
             "\"reason\":\"Expired\",\"code\":410,\"message\":\"too old resource version\"}}");
  /* The reflector stops the stream itself and relists once it ended. */
  ck_assert_int_eq(x.fake.stops, 1);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  ck_assert_int_eq(x.fake.list_calls, 2);
  ck_assert_int_eq(x.fake.list_has_rv, 0);
  /* While we were away: b changed, c was deleted, d was created. */
  fake_list_reply(&x.fake, "{\"metadata\":{\"resourceVersion\":\"50\"},\"items\":[" CM(
                               "a", "1") "," CM("b", "20") "," CM("d", "30") "]}");
  ck_assert_int_eq(x.rec.updates, 1);
  ck_assert_int_eq(x.rec.adds, 3 + 1);
  ck_assert_int_eq(x.rec.deletes, 1);
  ck_assert_int_eq(x.rec.unknown, 1);
  ck_assert_ptr_nonnull(strstr(x.rec.log, "UPD b 2->20\n"));
  ck_assert_ptr_nonnull(strstr(x.rec.log, "ADD ns/d 30\n"));
  ck_assert_ptr_nonnull(strstr(x.rec.log, "DEL c 3 unknown\n")); /* last known state */
  ck_assert_ptr_null(strstr(x.rec.log, " a "));
  ck_assert_str_eq(x.fake.watch_rv, "50");
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.relists, 2);
  ck_assert_uint_eq(st.relist_deletes, 1);
  ck_assert_uint_eq(st.events_error, 1);
  fx_finish(&x);
}
END_TEST

START_TEST(test_reflector_http_410_relists)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  fx_start(&x, &o);
  fx_sync_abc(&x);
  fake_watch_end(&x.fake, KUALA_EGONE);
  /* The sync was less than a second ago: the relist waits a backoff. */
  ck_assert_int_eq(x.fake.list_calls, 1);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  ck_assert_int_eq(x.fake.list_calls, 2);
  fake_list_reply(&x.fake, "{\"metadata\":{\"resourceVersion\":\"60\"},\"items\":[]}");
  ck_assert_int_eq(x.rec.deletes, 3);
  ck_assert_int_eq(x.rec.unknown, 3);
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(x.inf)), 0);
  /* A continue token that expired restarts the list from the start. */
  fake_watch_end(&x.fake, KUALA_EGONE);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  fake_list_reply(&x.fake,
                  "{\"metadata\":{\"resourceVersion\":\"61\",\"continue\":\"t\"},"
                  "\"items\":[" CM("a", "1") "]}");
  ck_assert_str_eq(x.fake.list_continue, "t");
  fake_list_fail(&x.fake, KUALA_EGONE);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  ck_assert_int_eq(x.fake.list_calls, 5);
  ck_assert_str_eq(x.fake.list_continue, "");
  fx_finish(&x);
}
END_TEST

START_TEST(test_reflector_failures_back_off_and_resume_without_relist)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  fx_start(&x, &o);
  fx_sync_abc(&x);
  fake_event(&x.fake, "{\"type\":\"MODIFIED\",\"object\":" CM("a", "15") "}");
  fake_watch_end(&x.fake, KUALA_ECONNRESET);
  /* Not at once: after a backoff. */
  ck_assert_int_eq(x.fake.watch_calls, 1);
  RUN_UNTIL(&x.loop, x.fake.watch_active);
  ck_assert_int_eq(x.fake.watch_calls, 2);
  ck_assert_str_eq(x.fake.watch_rv, "15");
  ck_assert_int_eq(x.fake.list_calls, 1);
  /* A watch that cannot even start backs off too. */
  fake_watch_end(&x.fake, KUALA_ECONNREFUSED);
  x.fake.fail_watch_start = KUALA_ECONNREFUSED;
  RUN_UNTIL(&x.loop, x.fake.watch_active);
  ck_assert_int_eq(x.fake.watch_calls, 4);
  /* A non-410 ERROR event: re-watch from the last RV, no relist. */
  int wc = x.fake.watch_calls;
  fake_event(&x.fake, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500}}");
  RUN_UNTIL(&x.loop, x.fake.watch_calls > wc && x.fake.watch_active);
  ck_assert_str_eq(x.fake.watch_rv, "15");
  /* A watch the server closes at once with nothing: backoff, not a spin. */
  fake_watch_end(&x.fake, 0);
  ck_assert_int_eq(x.fake.watch_active, 0);
  RUN_UNTIL(&x.loop, x.fake.watch_active);
  ck_assert_int_eq(x.fake.list_calls, 1);
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.relists, 1);
  ck_assert_uint_ge(st.backoffs, 4);
  /* A failed list backs off and lists again. */
  fake_watch_end(&x.fake, KUALA_EGONE);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  fake_list_fail(&x.fake, KUALA_EUNAVAILABLE);
  ck_assert_int_eq(x.fake.list_active, 0);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  ck_assert_int_eq(x.fake.list_calls, 3);
  fx_finish(&x);
}
END_TEST

START_TEST(test_reflector_streaming_list)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  o.streaming_list = 1;
  fx_start(&x, &o);
  ck_assert_int_eq(x.fake.list_calls, 0);
  ck_assert_int_eq(x.fake.watch_sie, 1);
  ck_assert_str_eq(x.fake.watch_rvm, "NotOlderThan");
  ck_assert_int_eq(x.fake.watch_bookmarks, 1);
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("a", "7") "}");
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("b", "3") "}");
  ck_assert(!kuala_informer_has_synced(x.inf));
  ck_assert_str_eq(kuala_informer_last_rv(x.inf), ""); /* unordered RVs ignored */
  fake_event(&x.fake,
             "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\","
             "\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}}}}");
  ck_assert(kuala_informer_has_synced(x.inf));
  ck_assert_str_eq(kuala_informer_last_rv(x.inf), "9");
  ck_assert_int_eq(x.rec.adds, 2);
  fake_watch_end(&x.fake, 0);
  ck_assert_int_eq(x.fake.watch_sie, 0); /* a plain resume now */
  ck_assert_str_eq(x.fake.watch_rv, "9");
  fx_finish(&x);
}
END_TEST

#define END_BOOKMARK(rv)                                                       \
  "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"" rv \
  "\",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}}}}"

/* Every full list streams, not only the first: a 410 relists with a
 * streaming list from the server's current state. A stream cut after some
 * events pages that once; the next relist streams again. */
START_TEST(test_reflector_relists_stream_and_a_cut_pages_once)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  o.streaming_list = 1;
  fx_start(&x, &o);
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("a", "1") "}");
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("c", "3") "}");
  fake_event(&x.fake, END_BOOKMARK("10"));
  ck_assert(kuala_informer_has_synced(x.inf));
  fake_event(&x.fake,
             "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\","
             "\"reason\":\"Expired\",\"code\":410,\"message\":\"too old resource version\"}}");
  RUN_UNTIL(&x.loop, x.fake.watch_calls == 2 && x.fake.watch_active);
  ck_assert_int_eq(x.fake.list_calls, 0);
  ck_assert_int_eq(x.fake.stops, 1);
  ck_assert_int_eq(x.fake.watch_sie, 1);
  ck_assert_str_eq(x.fake.watch_rvm, "NotOlderThan");
  ck_assert_str_eq(x.fake.watch_rv, ""); /* not the expired 10 */
  /* While we were away: c was deleted, b created. */
  x.rec.log[0] = '\0';
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("a", "1") "}");
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("b", "40") "}");
  fake_event(&x.fake, END_BOOKMARK("50"));
  ck_assert_ptr_nonnull(strstr(x.rec.log, "ADD ns/b 40\n"));
  ck_assert_ptr_nonnull(strstr(x.rec.log, "DEL c 3 unknown\n"));
  ck_assert_ptr_null(strstr(x.rec.log, " a "));
  ck_assert_str_eq(kuala_informer_last_rv(x.inf), "50");

  /* The next relist's stream is cut after one event: pages, this time. */
  fake_watch_end(&x.fake, KUALA_EGONE);
  RUN_UNTIL(&x.loop, x.fake.watch_calls == 3 && x.fake.watch_active);
  ck_assert_int_eq(x.fake.watch_sie, 1);
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("a", "1") "}");
  fake_watch_end(&x.fake, KUALA_ECONNRESET);
  ck_assert_int_eq(x.fake.list_calls, 1);
  fake_list_reply(&x.fake, "{\"metadata\":{\"resourceVersion\":\"60\"},\"items\":[" CM(
                               "a", "1") "," CM("b", "40") "]}");
  ck_assert_int_eq(x.fake.watch_sie, 0);
  ck_assert_str_eq(x.fake.watch_rv, "60");
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.streaming_cut, 1);
  ck_assert_int_eq(st.streaming_fallback, 0);
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(x.inf)), 2);
  /* ... and the relist after that streams again. */
  fake_watch_end(&x.fake, KUALA_EGONE);
  RUN_UNTIL(&x.loop, x.fake.watch_active || x.fake.list_active);
  ck_assert_int_eq(x.fake.watch_active, 1);
  ck_assert_int_eq(x.fake.watch_sie, 1);
  ck_assert_int_eq(x.fake.list_calls, 1);
  fx_finish(&x);
}
END_TEST

START_TEST(test_reflector_streaming_refused_falls_back)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  o.streaming_list = 1;
  fx_start(&x, &o);
  ck_assert_int_eq(x.fake.watch_sie, 1);
  fake_watch_end(&x.fake, KUALA_EINVALID); /* 422 sendInitialEvents forbidden */
  ck_assert_int_eq(x.fake.list_calls, 1);
  fx_sync_abc(&x);
  ck_assert_int_eq(x.fake.watch_sie, 0);
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_int_eq(st.streaming_fallback, 1);
  /* Refused for good: a relist pages, it does not ask again. */
  fake_watch_end(&x.fake, KUALA_EGONE);
  RUN_UNTIL(&x.loop, x.fake.list_active || x.fake.watch_active);
  ck_assert_int_eq(x.fake.list_active, 1);
  ck_assert_int_eq(x.fake.list_calls, 2);
  ck_assert_int_eq(x.fake.watch_calls, 2);
  fx_finish(&x);

  /* A source that cannot start a streaming list at all. */
  fx_t y;
  memset(&y, 0, sizeof y);
  ck_assert_int_eq(uv_loop_init(&y.loop), 0);
  fake_init(&y.fake, &y.loop);
  y.fake.fail_watch_start = KUALA_ENOTSUP;
  kuala_informers_new(&y.f, &y.loop, &fake_source, &y.fake);
  kuala_informer_key_t key = {"", "v1", "configmaps", NULL, NULL, NULL, 0};
  ck_assert_int_eq(kuala_informers_add_handler(&y.reg, y.f, &key, &o, &rec_handlers, &y.rec), 0);
  ck_assert_int_eq(y.fake.list_calls, 1);
  fx_finish(&y);
}
END_TEST

START_TEST(test_reflector_bad_objects_are_counted_not_fatal)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  fx_start(&x, &o);
  fake_list_reply(
      &x.fake,
      "{\"metadata\":{\"resourceVersion\":\"5\"},\"items\":[{\"nometa\":1}," CM("ok", "1") ",7]}");
  ck_assert(kuala_informer_has_synced(x.inf));
  ck_assert_int_eq(x.rec.adds, 1);
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}");
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.decode_errors, 3);
  /* A page that is not an object: backoff and relist. */
  fake_watch_end(&x.fake, KUALA_EGONE);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  fake_list_reply(&x.fake, "[1,2]");
  RUN_UNTIL(&x.loop, x.fake.list_active);
  fx_finish(&x);
}
END_TEST

/* Issue 14 items 3, 6, 7: a list whose items is not an array is an error
 * (it used to count as an empty synced list), so is a list with "items"
 * twice; an undecodable watch line is skipped and counted, and the watch
 * goes on delivering the next events. */
START_TEST(test_reflector_bad_lists_fail_and_bad_lines_are_skipped)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  fx_start(&x, &o);
  fake_list_reply(&x.fake, "{\"metadata\":{\"resourceVersion\":\"5\"},\"items\":{\"a\":1}}");
  ck_assert(!kuala_informer_has_synced(x.inf));
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.list_errors, 1);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  fake_list_reply(&x.fake, "{\"metadata\":{\"resourceVersion\":\"5\"},\"items\":[" CM(
                               "a", "1") "],\"items\":[]}");
  ck_assert(!kuala_informer_has_synced(x.inf));
  ck_assert_int_eq(x.rec.adds, 0);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  fake_list_fail(&x.fake, KUALA_EBADMSG);
  RUN_UNTIL(&x.loop, x.fake.list_active);
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.list_errors, 3);
  /* "items": null is an empty list (Go's nil slice). */
  fake_list_reply(&x.fake, "{\"metadata\":{\"resourceVersion\":\"5\"},\"items\":null}");
  ck_assert(kuala_informer_has_synced(x.inf));
  ck_assert_int_eq(x.fake.watch_active, 1);
  kuala_lw_event_t bad = {0};
  bad.type = KUALA_LW_INVALID;
  bad.err = KUALA_EBADMSG;
  bad.reason = "not JSON: leading zero in number at offset 40";
  x.fake.ev(x.fake.wdata, &bad);
  bad.err = KUALA_E2BIG;
  bad.reason = "line longer than the cap";
  x.fake.ev(x.fake.wdata, &bad);
  fake_event(&x.fake, "{\"type\":\"ADDED\",\"object\":" CM("b", "6") "}");
  ck_assert_int_eq(x.rec.adds, 1);
  ck_assert_int_eq(x.fake.watch_active, 1);
  fake_event(&x.fake,
             "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,"
             "\"message\":\"boom\"}}");
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.decode_errors, 2);
  ck_assert_uint_eq(st.watch_errors, 1);
  ck_assert_uint_eq(st.list_errors, 3);
  fx_finish(&x);
}
END_TEST

START_TEST(test_reflector_watchdog_stops_a_watch_past_its_timeout)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  o.watch_timeout_min_s = 1;
  o.watch_timeout_max_s = 1;
  o.watch_grace_ms = 20;
  fx_start(&x, &o);
  fx_sync_abc(&x);
  ck_assert_int_eq(x.fake.watch_timeout, 1);
  fake_event(&x.fake, "{\"type\":\"MODIFIED\",\"object\":" CM("a", "17") "}");
  /* The server never ends it: after 1 s + grace the informer does, and
   * resumes from the last RV without a list. */
  RUN_UNTIL(&x.loop, x.fake.stops == 1);
  kuala_informer_stats_t st;
  kuala_informer_stats(x.inf, &st);
  ck_assert_uint_eq(st.watchdog_stops, 1);
  RUN_UNTIL(&x.loop, x.fake.watch_calls == 2 && x.fake.watch_active);
  ck_assert_str_eq(x.fake.watch_rv, "17");
  ck_assert_int_eq(x.fake.list_calls, 1);
  fx_finish(&x);
}
END_TEST

/* The emulator (or a cluster) restarted empty and the CRD came back: the
 * watch first gets 404 (the resource is gone). Resuming from the old RV
 * could later be accepted once the new server's revision caught up, and
 * the store would keep objects that no longer exist: a 404 relists. */
START_TEST(test_reflector_watch_404_relists)
{
  fx_t x;
  kuala_informer_opts_t o = fast_opts();
  fx_start(&x, &o);
  fx_sync_abc(&x);
  fake_event(&x.fake, "{\"type\":\"MODIFIED\",\"object\":" CM("a", "15") "}");
  fake_watch_end(&x.fake, KUALA_ENOTFOUND);
  ck_assert_int_eq(x.fake.list_calls, 1); /* after a backoff, not at once */
  RUN_UNTIL(&x.loop, x.fake.list_active || x.fake.watch_active);
  ck_assert_int_eq(x.fake.watch_calls, 1);
  ck_assert_int_eq(x.fake.list_calls, 2);
  /* Still no resource: the list fails and is retried after a backoff. */
  fake_list_fail(&x.fake, KUALA_ENOTFOUND);
  RUN_UNTIL(&x.loop, x.fake.list_active || x.fake.watch_active);
  ck_assert_int_eq(x.fake.list_calls, 3);
  ck_assert_int_eq(x.fake.watch_calls, 1);
  /* The CRD is back with one new object at a lower revision. */
  x.rec.log[0] = '\0';
  fake_list_reply(&x.fake,
                  "{\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[" CM("n", "6") "]}");
  ck_assert_int_eq(x.rec.deletes, 3);
  ck_assert_ptr_nonnull(strstr(x.rec.log, "ADD ns/n 6\n"));
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(x.inf)), 1);
  ck_assert_int_eq(x.fake.watch_active, 1);
  ck_assert_str_eq(x.fake.watch_rv, "7");
  /* A 404 as an ERROR event on the stream relists too. */
  int wc = x.fake.watch_calls;
  fake_event(&x.fake,
             "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":"
             "\"Failure\",\"reason\":\"NotFound\",\"code\":404}}");
  RUN_UNTIL(&x.loop, x.fake.list_active || x.fake.watch_calls > wc);
  ck_assert_int_eq(x.fake.list_calls, 4);
  fx_finish(&x);
}
END_TEST

/* Two informers of one registry, each with its own scripted source: a
 * router hands the configmaps' calls to one fake and the secrets' to the
 * other (the handle a fake returns is itself, so stops find their way). */
typedef struct {
  fake_t f[2];
} router_t;

static fake_t *route(void *src, const kuala_informer_key_t *key)
{
  router_t *r = src;
  return &r->f[strcmp(key->resource, "secrets") == 0];
}

static int router_list(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                       kuala_lw_list_cb cb, void *data, void **handle)
{
  return fake_list(route(src, key), key, o, cb, data, handle);
}

static void router_cancel_list(void *src, void *handle)
{
  (void)src;
  fake_cancel_list(handle, handle);
}

static int router_watch(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                        kuala_lw_event_cb on_event, kuala_lw_done_cb on_done, void *data,
                        void **handle)
{
  return fake_watch(route(src, key), key, o, on_event, on_done, data, handle);
}

static void router_stop_watch(void *src, void *handle)
{
  (void)src;
  fake_stop_watch(handle, handle);
}

static const kuala_lw_source_t router_source = {router_list, router_cancel_list, router_watch,
                                                router_stop_watch};

/* The server restarted with an older store: one informer's watch is told
 * "Too large resource version". Every resourceVersion the registry holds
 * is from the old server, so the other informer, whose watch still runs,
 * relists too, and drops what the new server does not have. */
START_TEST(test_reflector_server_went_back_relists_every_informer)
{
  uv_loop_t loop;
  router_t r;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  fake_init(&r.f[0], &loop);
  fake_init(&r.f[1], &loop);
  kuala_informers_t *f;
  ck_assert_int_eq(kuala_informers_new(&f, &loop, &router_source, &r), 0);
  kuala_informer_opts_t o = fast_opts();
  rec_t cm_rec = {0}, sec_rec = {0};
  kuala_informer_reg_t *cm_reg, *sec_reg;
  kuala_informer_key_t cm_key = {"", "v1", "configmaps", NULL, NULL, NULL, 0};
  kuala_informer_key_t sec_key = {"", "v1", "secrets", NULL, NULL, NULL, 0};
  ck_assert_int_eq(kuala_informers_add_handler(&cm_reg, f, &cm_key, &o, &rec_handlers, &cm_rec), 0);
  ck_assert_int_eq(kuala_informers_add_handler(&sec_reg, f, &sec_key, &o, &rec_handlers, &sec_rec),
                   0);
  kuala_informer_t *cm = kuala_informer_reg_informer(cm_reg);
  kuala_informer_t *sec = kuala_informer_reg_informer(sec_reg);
  ck_assert_ptr_ne(cm, sec);
  fake_list_reply(&r.f[0], "{\"metadata\":{\"resourceVersion\":\"90\"},\"items\":[" CM(
                               "a", "80") "," CM("b", "85") "]}");
  fake_list_reply(&r.f[1],
                  "{\"metadata\":{\"resourceVersion\":\"90\"},\"items\":[" CM("s", "70") "]}");
  ck_assert(kuala_informer_has_synced(cm) && kuala_informer_has_synced(sec));
  ck_assert_int_eq(r.f[0].watch_active + r.f[1].watch_active, 2);

  fake_event(&r.f[0],
             "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":"
             "\"Failure\",\"message\":\"Timeout: Too large resource version: 90, "
             "current: 12\",\"reason\":\"Timeout\",\"details\":{\"causes\":[{"
             "\"reason\":\"ResourceVersionTooLarge\",\"message\":\"Too large "
             "resource version\"}]},\"code\":504}}");
  /* Both watches end and both informers list again. */
  RUN_UNTIL(&loop, r.f[0].list_active && r.f[1].list_active);
  ck_assert_int_eq(r.f[0].stops, 1);
  ck_assert_int_eq(r.f[1].stops, 1);
  ck_assert_int_eq(r.f[0].list_calls, 2);
  ck_assert_int_eq(r.f[1].list_calls, 2);
  kuala_informer_stats_t st;
  kuala_informer_stats(sec, &st);
  ck_assert_uint_eq(st.server_restarts_seen, 1);
  /* The new server has b and a new secret t, not a nor s. */
  fake_list_reply(&r.f[0],
                  "{\"metadata\":{\"resourceVersion\":\"12\"},\"items\":[" CM("b", "9") "]}");
  fake_list_reply(&r.f[1],
                  "{\"metadata\":{\"resourceVersion\":\"12\"},\"items\":[" CM("t", "11") "]}");
  ck_assert_ptr_nonnull(strstr(cm_rec.log, "DEL a 80 unknown\n"));
  ck_assert_ptr_nonnull(strstr(sec_rec.log, "DEL s 70 unknown\n"));
  ck_assert_ptr_nonnull(strstr(sec_rec.log, "ADD ns/t 11\n"));
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(cm)), 1);
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(sec)), 1);
  /* Both watch again, from the new server's revision. */
  ck_assert_str_eq(r.f[0].watch_rv, "12");
  ck_assert_str_eq(r.f[1].watch_rv, "12");

  kuala_informers_close(f);
  uv_run(&loop, UV_RUN_DEFAULT);
  fake_close(&r.f[0]);
  fake_close(&r.f[1]);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *reflector_suite(void)
{
  Suite *s = suite_create("reflector");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_reflector_backoff_schedule);
  tcase_add_test(tc, test_reflector_lists_in_pages_then_watches);
  tcase_add_test(tc, test_reflector_events_in_order_and_bookmarks_advance_rv);
  tcase_add_test(tc, test_reflector_error_event_410_relists_with_tombstones);
  tcase_add_test(tc, test_reflector_http_410_relists);
  tcase_add_test(tc, test_reflector_failures_back_off_and_resume_without_relist);
  tcase_add_test(tc, test_reflector_streaming_list);
  tcase_add_test(tc, test_reflector_streaming_refused_falls_back);
  tcase_add_test(tc, test_reflector_relists_stream_and_a_cut_pages_once);
  tcase_add_test(tc, test_reflector_bad_objects_are_counted_not_fatal);
  tcase_add_test(tc, test_reflector_watchdog_stops_a_watch_past_its_timeout);
  tcase_add_test(tc, test_reflector_bad_lists_fail_and_bad_lines_are_skipped);
  tcase_add_test(tc, test_reflector_watch_404_relists);
  tcase_add_test(tc, test_reflector_server_went_back_relists_every_informer);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(reflector_suite());
}
