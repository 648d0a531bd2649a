/*
 * Unit tests for shared informers: one informer per key, reference-counted
 * handlers, replay to late handlers, removal during dispatch, stop on last
 * handler, sync waits, resync, metadata-only, bad input.
 */
#include <check.h>

#include "kuala_test.h"
#include <stdlib.h>

#include "kuala/alloc.h"
#include "kuala/informer.h"
#include "test_informer_fake.h"

typedef struct {
  char log[8192];
  int adds, initial_adds, updates, deletes;
  kuala_informer_reg_t *self; /* for handlers that remove themselves */
  int remove_after;           /* remove self after this many adds (0 = never) */
} rec_t;

static void on_add(void *d, const kuala_obj_t *o, int initial)
{
  rec_t *r = d;
  r->adds++;
  r->initial_adds += initial;
  size_t l = strlen(r->log);
  snprintf(r->log + l, sizeof r->log - l, "ADD %s%s\n", o->name, initial ? " initial" : "");
  if (r->remove_after && r->adds == r->remove_after) {
    kuala_informer_reg_remove(r->self);
  }
}

static void on_update(void *d, const kuala_obj_t *old, const kuala_obj_t *o)
{
  rec_t *r = d;
  r->updates++;
  size_t l = strlen(r->log);
  snprintf(r->log + l, sizeof r->log - l, "UPD %s %s->%s\n", o->name, old->rv, o->rv);
}

static void on_delete(void *d, const kuala_obj_t *o, int unknown)
{
  rec_t *r = d;
  r->deletes++;
  size_t l = strlen(r->log);
  snprintf(r->log + l, sizeof r->log - l, "DEL %s\n", o->name);
}

static const kuala_informer_handlers_t H = {on_add, on_update, on_delete};

#define CM(name, rv)                                       \
  "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"" name \
  "\",\"namespace\":\"ns\","                               \
  "\"resourceVersion\":\"" rv "\",\"managedFields\":[{\"m\":1}]},\"data\":{\"x\":\"y\"}}"

static const char *PAGE =
    "{\"metadata\":{\"resourceVersion\":\"10\"},\"items\":[" CM("a", "1") "," CM("b", "2") "]}";

static kuala_informer_key_t cm_key(const char *sel)
{
  kuala_informer_key_t k = {"", "v1", "configmaps", "ns", sel, NULL, 0};
  return k;
}

static void finish(uv_loop_t *loop, kuala_informers_t *f, fake_t *fake)
{
  kuala_informers_close(f);
  uv_run(loop, UV_RUN_DEFAULT);
  fake_close(fake);
  uv_run(loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(loop), 0);
}

START_TEST(test_informer_two_handlers_share_one_informer)
{
  uv_loop_t loop;
  fake_t fake;
  kuala_informers_t *f;
  uv_loop_init(&loop);
  fake_init(&fake, &loop);
  fake.multi = 1;
  ck_assert_int_eq(kuala_informers_new(&f, &loop, &fake_source, &fake), 0);
  rec_t r1 = {0}, r2 = {0};
  kuala_informer_reg_t *g1, *g2;
  kuala_informer_key_t k = cm_key("app=web");
  ck_assert_int_eq(kuala_informers_add_handler(&g1, f, &k, NULL, &H, &r1), 0);
  fake_list_reply(&fake, PAGE);
  ck_assert_str_eq(fake.last_key, "/v1/configmaps ns=ns l=app=web f=");
  /* The second user gets the cached objects as adds, and no new request. */
  ck_assert_int_eq(kuala_informers_add_handler(&g2, f, &k, NULL, &H, &r2), 0);
  ck_assert_ptr_eq(kuala_informer_reg_informer(g1), kuala_informer_reg_informer(g2));
  ck_assert_uint_eq(kuala_informers_count(f), 1);
  ck_assert_int_eq(fake.list_calls, 1);
  ck_assert_int_eq(fake.watch_calls, 1);
  ck_assert_int_eq(r2.initial_adds, 2);
  ck_assert_int_eq(r1.initial_adds, 0);
  /* Both see the same events in the same order. */
  fake_event(&fake, "{\"type\":\"MODIFIED\",\"object\":" CM("a", "11") "}");
  fake_event(&fake, "{\"type\":\"DELETED\",\"object\":" CM("b", "12") "}");
  fake_event(&fake, "{\"type\":\"ADDED\",\"object\":" CM("c", "13") "}");
  const char *tail = "UPD a 1->11\nDEL b\nADD c\n";
  ck_assert_str_eq(r1.log + strlen(r1.log) - strlen(tail), tail);
  ck_assert_str_eq(r2.log + strlen(r2.log) - strlen(tail), tail);
  kuala_informer_t *inf = kuala_informer_reg_informer(g1);
  ck_assert_uint_eq(kuala_informer_handlers(inf), 2);
  /* managedFields never reach the cache. */
  kuala_obj_t v;
  ck_assert_int_eq(kuala_store_get(kuala_informer_store(inf), "ns", "a", &v), 0);
  ck_assert_ptr_null(strstr(v.json, "managedFields"));
  /* A different selector is a different informer with its own request. */
  rec_t r3 = {0};
  kuala_informer_reg_t *g3;
  kuala_informer_key_t k2 = cm_key("app=db");
  ck_assert_int_eq(kuala_informers_add_handler(&g3, f, &k2, NULL, &H, &r3), 0);
  ck_assert_uint_eq(kuala_informers_count(f), 2);
  ck_assert_int_eq(fake.list_calls, 2);
  kuala_informer_stats_t st;
  kuala_informer_stats(inf, &st);
  ck_assert_uint_eq(st.objects, 2);
  ck_assert_uint_gt(st.bytes_stored, st.json_bytes);
  ck_assert_uint_ge(st.dispatched, 2 + 2 + 6);
  finish(&loop, f, &fake);
}
END_TEST

START_TEST(test_informer_last_handler_stops_the_watch)
{
  uv_loop_t loop;
  fake_t fake;
  kuala_informers_t *f;
  uv_loop_init(&loop);
  fake_init(&fake, &loop);
  kuala_informers_new(&f, &loop, &fake_source, &fake);
  rec_t r1 = {0}, r2 = {0};
  kuala_informer_reg_t *g1, *g2;
  kuala_informer_key_t k = cm_key(NULL);
  kuala_informers_add_handler(&g1, f, &k, NULL, &H, &r1);
  kuala_informers_add_handler(&g2, f, &k, NULL, &H, &r2);
  fake_list_reply(&fake, PAGE);
  kuala_informer_reg_remove(g1);
  ck_assert_int_eq(fake.stops, 0);
  fake_event(&fake, "{\"type\":\"ADDED\",\"object\":" CM("c", "13") "}");
  ck_assert_int_eq(r1.adds, 2);
  ck_assert_int_eq(r2.adds, 3);
  kuala_informer_reg_remove(g2);
  ck_assert_int_eq(fake.stops, 1);
  RUN_UNTIL(&loop, kuala_informers_count(f) == 0);
  /* The same key later starts a fresh informer with a fresh list. */
  kuala_informers_add_handler(&g1, f, &k, NULL, &H, &r1);
  ck_assert_int_eq(fake.list_calls, 2);
  /* Removing while the list is outstanding cancels it. */
  kuala_informer_reg_remove(g1);
  ck_assert_int_eq(fake.cancels, 1);
  RUN_UNTIL(&loop, kuala_informers_count(f) == 0);
  /* Re-registering while the old informer still closes gets a fresh one;
   * closing the registry then waits for both (ASan checks the frees). */
  fake.multi = 1;
  kuala_informers_add_handler(&g1, f, &k, NULL, &H, &r1);
  fake_list_reply(&fake, PAGE);
  kuala_informer_t *old = kuala_informer_reg_informer(g1);
  kuala_informer_reg_remove(g1);
  ck_assert_int_eq(fake.stops, 2);
  ck_assert_int_eq(kuala_informers_add_handler(&g2, f, &k, NULL, &H, &r2), 0);
  ck_assert_ptr_ne(kuala_informer_reg_informer(g2), old);
  ck_assert_int_eq(fake.list_calls, 4);
  ck_assert_uint_eq(kuala_informers_count(f), 1);
  finish(&loop, f, &fake);
}
END_TEST

START_TEST(test_informer_handler_removes_itself_during_dispatch)
{
  uv_loop_t loop;
  fake_t fake;
  kuala_informers_t *f;
  uv_loop_init(&loop);
  fake_init(&fake, &loop);
  kuala_informers_new(&f, &loop, &fake_source, &fake);
  rec_t r1 = {0}, r2 = {0};
  kuala_informer_key_t k = cm_key(NULL);
  r1.remove_after = 1;
  kuala_informers_add_handler(&r1.self, f, &k, NULL, &H, &r1);
  kuala_informers_add_handler(&r2.self, f, &k, NULL, &H, &r2);
  fake_list_reply(&fake, PAGE);
  ck_assert_int_eq(r1.adds, 1);
  ck_assert_int_eq(r2.adds, 2);
  /* The only handler leaves in the middle of a page: the informer stops
   * and is freed once the loop ran, without touching freed memory. */
  r2.remove_after = 3;
  fake_event(&fake, "{\"type\":\"ADDED\",\"object\":" CM("c", "13") "}");
  ck_assert_int_eq(fake.stops, 1);
  RUN_UNTIL(&loop, kuala_informers_count(f) == 0);
  finish(&loop, f, &fake);
}
END_TEST

typedef struct {
  int calls;
  int err;
} waitrec_t;

static void synced_cb(void *d, int err)
{
  waitrec_t *w = d;
  w->calls++;
  w->err = err;
}

START_TEST(test_informer_wait_synced)
{
  uv_loop_t loop;
  fake_t fake;
  kuala_informers_t *f;
  uv_loop_init(&loop);
  fake_init(&fake, &loop);
  fake.multi = 1;
  kuala_informers_new(&f, &loop, &fake_source, &fake);
  rec_t r = {0};
  kuala_informer_reg_t *g;
  kuala_informer_key_t k = cm_key(NULL);
  kuala_informers_add_handler(&g, f, &k, NULL, &H, &r);
  kuala_informer_t *inf = kuala_informer_reg_informer(g);
  waitrec_t timeout = {0}, ok = {0}, late = {0};
  ck_assert_int_eq(kuala_informer_wait_synced(inf, 10, synced_cb, &timeout), 0);
  ck_assert_int_eq(kuala_informer_wait_synced(inf, 5000, synced_cb, &ok), 0);
  RUN_UNTIL(&loop, timeout.calls == 1);
  ck_assert_int_eq(timeout.err, KUALA_ETIMEDOUT);
  ck_assert_int_eq(ok.calls, 0);
  ck_assert(!kuala_informer_has_synced(inf));
  fake_list_reply(&fake, PAGE);
  ck_assert_int_eq(ok.calls, 1);
  ck_assert_int_eq(ok.err, 0);
  /* Already synced: answered later, never from inside the call. */
  ck_assert_int_eq(kuala_informer_wait_synced(inf, 5000, synced_cb, &late), 0);
  ck_assert_int_eq(late.calls, 0);
  RUN_UNTIL(&loop, late.calls == 1);
  ck_assert_int_eq(late.err, 0);
  ck_assert_int_eq(timeout.calls, 1);
  /* A waiter on an informer that stops gets ECANCELED. */
  waitrec_t gone = {0};
  kuala_informer_reg_t *g2;
  kuala_informer_key_t k2 = cm_key("x=y");
  kuala_informers_add_handler(&g2, f, &k2, NULL, &H, &r);
  kuala_informer_wait_synced(kuala_informer_reg_informer(g2), 5000, synced_cb, &gone);
  kuala_informer_reg_remove(g2);
  ck_assert_int_eq(gone.calls, 1);
  ck_assert_int_eq(gone.err, KUALA_ECANCELED);
  finish(&loop, f, &fake);
}
END_TEST

START_TEST(test_informer_resync_delivers_updates)
{
  uv_loop_t loop;
  fake_t fake;
  kuala_informers_t *f;
  uv_loop_init(&loop);
  fake_init(&fake, &loop);
  kuala_informers_new(&f, &loop, &fake_source, &fake);
  rec_t r = {0};
  kuala_informer_reg_t *g;
  kuala_informer_key_t k = cm_key(NULL);
  kuala_informer_opts_t o;
  kuala_informer_opts_init(&o);
  o.resync_ms = 5;
  kuala_informers_add_handler(&g, f, &k, &o, &H, &r);
  fake_list_reply(&fake, PAGE);
  RUN_UNTIL(&loop, r.updates >= 4);
  ck_assert_ptr_nonnull(strstr(r.log, "UPD a 1->1\n"));
  kuala_informer_stats_t st;
  kuala_informer_stats(kuala_informer_reg_informer(g), &st);
  ck_assert_uint_ge(st.resyncs, 2);
  finish(&loop, f, &fake);
}
END_TEST

START_TEST(test_informer_metadata_only_and_bad_input)
{
  uv_loop_t loop;
  fake_t fake;
  kuala_informers_t *f;
  uv_loop_init(&loop);
  fake_init(&fake, &loop);
  fake.multi = 1;
  ck_assert_int_eq(kuala_informers_new(&f, &loop, NULL, &fake), KUALA_EINVAL);
  kuala_informers_new(&f, &loop, &fake_source, &fake);
  rec_t r = {0};
  kuala_informer_reg_t *g;
  kuala_informer_key_t k = cm_key(NULL);
  k.metadata_only = 1;
  ck_assert_int_eq(kuala_informers_add_handler(&g, f, &k, NULL, &H, &r), 0);
  fake_list_reply(&fake, PAGE);
  kuala_obj_t v;
  ck_assert_int_eq(
      kuala_store_get(kuala_informer_store(kuala_informer_reg_informer(g)), "ns", "a", &v), 0);
  ck_assert_str_eq(v.json,
                   "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\","
                   "\"resourceVersion\":\"1\"}}");
  /* A metadata-only informer is not the full one. */
  kuala_informer_reg_t *g2;
  kuala_informer_key_t full = cm_key(NULL);
  kuala_informers_add_handler(&g2, f, &full, NULL, &H, &r);
  ck_assert_uint_eq(kuala_informers_count(f), 2);
  /* Bad keys and selectors are refused up front. */
  kuala_informer_reg_t *bad;
  kuala_informer_key_t b1 = cm_key("app in (a");
  ck_assert_int_eq(kuala_informers_add_handler(&bad, f, &b1, NULL, &H, &r), KUALA_EINVAL);
  kuala_informer_key_t b2 = cm_key(NULL);
  b2.field_selector = "metadata.name";
  ck_assert_int_eq(kuala_informers_add_handler(&bad, f, &b2, NULL, &H, &r), KUALA_EINVAL);
  kuala_informer_key_t b3 = cm_key(NULL);
  b3.resource = "";
  ck_assert_int_eq(kuala_informers_add_handler(&bad, f, &b3, NULL, &H, &r), KUALA_EINVAL);
  ck_assert_int_eq(kuala_informers_add_handler(&bad, f, &k, NULL, NULL, &r), KUALA_EINVAL);
  ck_assert_uint_eq(kuala_informers_count(f), 2);
  finish(&loop, f, &fake);
}
END_TEST

static Suite *informer_suite(void)
{
  Suite *s = suite_create("informer");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_informer_two_handlers_share_one_informer);
  tcase_add_test(tc, test_informer_last_handler_stops_the_watch);
  tcase_add_test(tc, test_informer_handler_removes_itself_during_dispatch);
  tcase_add_test(tc, test_informer_wait_synced);
  tcase_add_test(tc, test_informer_resync_delivers_updates);
  tcase_add_test(tc, test_informer_metadata_only_and_bad_input);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(informer_suite());
}
