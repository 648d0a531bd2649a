/*
 * Unit tests for the work queue: client-go semantics on a uv loop. Every
 * test that runs the loop ends with uv_loop_close() == 0.
 */
#include "kuala_test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/error.h"
#include "kuala/workqueue.h"

static kuala_workqueue_t *new_queue(uv_loop_t *loop, kuala_workqueue_ready_cb cb, void *data)
{
  kuala_workqueue_t *q;
  kuala_workqueue_opts_t opts = {"test", NULL, cb, data};
  ck_assert_int_eq(kuala_workqueue_new(&q, loop, &opts), 0);
  return q;
}

static int closed;

static void on_closed(kuala_workqueue_t *q, void *data)
{
  ck_assert_ptr_null(q);
  (*(int *)data)++;
}

static void finish(uv_loop_t *loop, kuala_workqueue_t *q)
{
  closed = 0;
  kuala_workqueue_close(q, on_closed, &closed);
  ck_assert_int_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(closed, 1);
  ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* The default limiter's overall bucket (10 qps, burst 100) paces only
 * rate-limited re-adds: plain adds, however many, are ready at once. */
START_TEST(test_workqueue_plain_adds_bypass_the_overall_bucket)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q = new_queue(&loop, NULL, NULL);
  char key[32];
  for (int i = 0; i < 500; i++) {
    snprintf(key, sizeof(key), "ns/k%d", i);
    ck_assert_int_eq(kuala_workqueue_add(q, key), 0);
  }
  kuala_workqueue_stats_t st;
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.depth, 500);
  ck_assert_uint_eq(st.parked, 0);
  const char *k;
  for (int i = 0; i < 500; i++) {
    ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
    kuala_workqueue_done(q, k);
  }
  /* A rate-limited re-add goes through the limiter: parked, not queued. */
  for (int i = 0; i < 150; i++) {
    snprintf(key, sizeof(key), "ns/k%d", i);
    ck_assert_int_eq(kuala_workqueue_add_rate_limited(q, key), 0);
  }
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.depth, 0);
  ck_assert_uint_eq(st.parked, 150);
  kuala_workqueue_shutdown(q, KUALA_WORKQUEUE_CANCEL);
  finish(&loop, q);
}
END_TEST

START_TEST(test_workqueue_dedup)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q = new_queue(&loop, NULL, NULL);
  ck_assert_int_eq(kuala_workqueue_add(q, "ns/a"), 0);
  ck_assert_int_eq(kuala_workqueue_add(q, "ns/b"), 0);
  ck_assert_int_eq(kuala_workqueue_add(q, "ns/a"), 0);
  ck_assert_uint_eq(kuala_workqueue_len(q), 2);
  const char *k;
  ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
  ck_assert_str_eq(k, "ns/a");
  ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
  ck_assert_str_eq(k, "ns/b");
  ck_assert_int_eq(kuala_workqueue_get(q, &k), KUALA_EAGAIN);
  ck_assert_ptr_null(k);
  kuala_workqueue_stats_t st;
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.adds, 2);
  ck_assert_uint_eq(st.processing, 2);
  ck_assert_uint_eq(st.queue_latency_count, 2);
  kuala_workqueue_done(q, "ns/a");
  kuala_workqueue_done(q, "ns/b");
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.processing, 0);
  ck_assert_uint_eq(st.work_duration_count, 2);
  finish(&loop, q);
}
END_TEST

START_TEST(test_workqueue_no_concurrent_same_key)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q = new_queue(&loop, NULL, NULL);
  const char *k, *k2;
  kuala_workqueue_add(q, "x");
  ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
  /* Re-added while processing: not handed out again until done. */
  kuala_workqueue_add(q, "x");
  kuala_workqueue_add(q, "x");
  ck_assert_uint_eq(kuala_workqueue_len(q), 0);
  ck_assert_int_eq(kuala_workqueue_get(q, &k2), KUALA_EAGAIN);
  kuala_workqueue_done(q, k);
  /* ... and then exactly once. */
  ck_assert_uint_eq(kuala_workqueue_len(q), 1);
  ck_assert_int_eq(kuala_workqueue_get(q, &k2), 0);
  ck_assert_str_eq(k2, "x");
  ck_assert_int_eq(kuala_workqueue_get(q, &k), KUALA_EAGAIN);
  kuala_workqueue_done(q, "x");
  /* Done without a re-add: the key is gone. */
  ck_assert_uint_eq(kuala_workqueue_len(q), 0);
  ck_assert_int_eq(kuala_workqueue_get(q, &k), KUALA_EAGAIN);
  /* done() for an unknown key is ignored. */
  kuala_workqueue_done(q, "never-added");
  finish(&loop, q);
}
END_TEST

/* A consumer that drains the queue from ready_cb and records the order. */
typedef struct {
  char seen[16][16];
  int n;
  int ready_calls;
  int in_add;
  int sync_ready;
  uv_timer_t stop;
} consumer_t;

static void consume(kuala_workqueue_t *q, void *data)
{
  consumer_t *c = data;
  c->ready_calls++;
  if (c->in_add) {
    c->sync_ready++;
  }
  const char *k;
  while (kuala_workqueue_get(q, &k) == 0) {
    snprintf(c->seen[c->n++], sizeof(c->seen[0]), "%s", k);
    kuala_workqueue_done(q, k);
  }
}

START_TEST(test_workqueue_delay_ordering)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  consumer_t c;
  memset(&c, 0, sizeof(c));
  kuala_workqueue_t *q = new_queue(&loop, consume, &c);
  c.in_add = 1;
  kuala_workqueue_add_after(q, "c", 60);
  kuala_workqueue_add_after(q, "a", 20);
  kuala_workqueue_add_after(q, "b", 40);
  kuala_workqueue_add(q, "now");
  c.in_add = 0;
  kuala_workqueue_stats_t st;
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.parked, 3);
  ck_assert_uint_eq(st.depth, 1);
  /* The loop ends by itself once every timer has fired. */
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(c.sync_ready, 0);
  ck_assert_int_eq(c.n, 4);
  ck_assert_str_eq(c.seen[0], "now");
  ck_assert_str_eq(c.seen[1], "a");
  ck_assert_str_eq(c.seen[2], "b");
  ck_assert_str_eq(c.seen[3], "c");
  finish(&loop, q);
}
END_TEST

static void stop_loop(uv_timer_t *t)
{
  uv_stop(t->loop);
}

START_TEST(test_workqueue_earliest_ready_time_wins)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  consumer_t c;
  memset(&c, 0, sizeof(c));
  kuala_workqueue_t *q = new_queue(&loop, consume, &c);
  kuala_workqueue_add_after(q, "k", 60 * 1000);
  kuala_workqueue_add_after(q, "k", 10);
  /* A later, longer delay does not push it back. */
  kuala_workqueue_add_after(q, "k", 30 * 1000);
  kuala_workqueue_stats_t st;
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.parked, 1);
  uv_timer_init(&loop, &c.stop);
  uv_timer_start(&c.stop, stop_loop, 5000, 0);
  /* If the 10 ms time won, the key arrives and the queue's delay timer
   * goes idle long before the 5 s guard; otherwise the guard stops us. */
  while (c.n == 0 && uv_run(&loop, UV_RUN_ONCE)) {
  }
  ck_assert_int_eq(c.n, 1);
  ck_assert_str_eq(c.seen[0], "k");
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.parked, 0);
  uv_close((uv_handle_t *)&c.stop, NULL);
  finish(&loop, q);
}
END_TEST

START_TEST(test_workqueue_rate_limited_requeues_and_forget)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  consumer_t c;
  memset(&c, 0, sizeof(c));
  kuala_ratelimiter_t *rl;
  ck_assert_int_eq(kuala_ratelimiter_exponential_new(&rl, 1, 8), 0);
  kuala_workqueue_t *q;
  kuala_workqueue_opts_t opts = {"rl", rl, consume, &c};
  ck_assert_int_eq(kuala_workqueue_new(&q, &loop, &opts), 0);
  for (int i = 0; i < 5; i++) {
    kuala_workqueue_add_rate_limited(q, "fail");
  }
  ck_assert_int_eq(kuala_workqueue_num_requeues(q, "fail"), 5);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  /* Parked five times but coalesced into one delivery. */
  ck_assert_int_eq(c.n, 1);
  kuala_workqueue_stats_t st;
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.retries, 5);
  kuala_workqueue_forget(q, "fail");
  ck_assert_int_eq(kuala_workqueue_num_requeues(q, "fail"), 0);
  finish(&loop, q);
}
END_TEST

START_TEST(test_workqueue_shutdown_with_pending_delayed_items)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q = new_queue(&loop, NULL, NULL);
  const char *k;
  kuala_workqueue_add(q, "queued");
  kuala_workqueue_add(q, "busy");
  ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
  ck_assert_str_eq(k, "queued");
  kuala_workqueue_add_after(q, "later", 60 * 60 * 1000);
  kuala_workqueue_add(q, "queued"); /* re-add while processing */
  kuala_workqueue_shutdown(q, KUALA_WORKQUEUE_DRAIN);
  ck_assert(kuala_workqueue_is_shutdown(q));
  ck_assert_int_eq(kuala_workqueue_add(q, "new"), KUALA_ESHUTDOWN);
  ck_assert_int_eq(kuala_workqueue_add_after(q, "new", 5), KUALA_ESHUTDOWN);
  ck_assert_int_eq(kuala_workqueue_add_rate_limited(q, "new"), KUALA_ESHUTDOWN);
  kuala_workqueue_stats_t st;
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.parked, 0); /* the hour-long delay is dropped */
  /* Drain: what was queued is still handed out. */
  ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
  ck_assert_str_eq(k, "busy");
  ck_assert(!kuala_workqueue_is_drained(q));
  kuala_workqueue_done(q, "busy");
  kuala_workqueue_done(q, "queued"); /* its re-add is dropped */
  ck_assert_int_eq(kuala_workqueue_get(q, &k), KUALA_ESHUTDOWN);
  ck_assert(kuala_workqueue_is_drained(q));
  /* The loop has nothing left to wait for: it returns at once. */
  ck_assert_int_eq(uv_run(&loop, UV_RUN_NOWAIT), 0);
  finish(&loop, q);
}
END_TEST

START_TEST(test_workqueue_shutdown_cancel_drops_queued)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q = new_queue(&loop, NULL, NULL);
  kuala_workqueue_add(q, "a");
  kuala_workqueue_add(q, "b");
  kuala_workqueue_add_after(q, "c", 100000);
  kuala_workqueue_shutdown(q, KUALA_WORKQUEUE_CANCEL);
  const char *k;
  ck_assert_uint_eq(kuala_workqueue_len(q), 0);
  ck_assert_int_eq(kuala_workqueue_get(q, &k), KUALA_ESHUTDOWN);
  ck_assert(kuala_workqueue_is_drained(q));
  finish(&loop, q);
}
END_TEST

START_TEST(test_workqueue_close_with_pending_work_leaks_nothing)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  consumer_t c;
  memset(&c, 0, sizeof(c));
  kuala_workqueue_t *q = new_queue(&loop, consume, &c);
  char key[16];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    kuala_workqueue_add_after(q, key, (uint64_t)(1000 + i));
    kuala_workqueue_add(q, key);
  }
  const char *k;
  ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
  /* Close with keys queued, parked and processing: ASan checks the frees,
   * uv_loop_close checks the handles, and no ready_cb runs after close. */
  finish(&loop, q);
  ck_assert_int_eq(c.ready_calls, 0);
}
END_TEST

/* A sync's burst of distinct keys, of every length (slab classes and the
 * malloc'd long keys), some re-added while processing and some parked:
 * every key comes out once in FIFO order, re-adds come back, and once all
 * are done the queue holds no memory for keys any more. */
START_TEST(test_workqueue_burst_of_keys_gives_memory_back)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q = new_queue(&loop, NULL, NULL);
  enum { N = 20000 };
  static char keys[N][320];
  for (int i = 0; i < N; i++) {
    /* Lengths 5 .. 300: small, every size class, and above SLAB_MAX. */
    int len = 5 + (i * 7) % 296;
    snprintf(keys[i], sizeof(keys[i]), "ns/%d-", i);
    size_t l = strlen(keys[i]);
    while ((int)l < len) {
      keys[i][l++] = (char)('a' + i % 26);
    }
    keys[i][l] = '\0';
    ck_assert_int_eq(kuala_workqueue_add(q, keys[i]), 0);
  }
  for (int i = 0; i < N; i += 3) {
    ck_assert_int_eq(kuala_workqueue_add(q, keys[i]), 0); /* coalesced */
  }
  kuala_workqueue_stats_t st;
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.depth, N);
  ck_assert_uint_eq(st.adds, N);
  ck_assert_uint_gt(st.bytes, 0);
  const char *k;
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
    ck_assert_str_eq(k, keys[i]);
    if (i % 5 == 0) {
      ck_assert_int_eq(kuala_workqueue_add(q, keys[i]), 0); /* dirty while processing */
    }
    kuala_workqueue_done(q, k);
  }
  /* The re-added ones are queued again, in the order they were done. */
  for (int i = 0; i < N; i += 5) {
    ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
    ck_assert_str_eq(k, keys[i]);
    kuala_workqueue_done(q, k);
  }
  ck_assert_int_eq(kuala_workqueue_get(q, &k), KUALA_EAGAIN);
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.depth, 0);
  ck_assert_uint_eq(st.processing, 0);
  ck_assert_uint_eq(st.bytes, 0);
  /* The queue works as before after giving its memory back. */
  ck_assert_int_eq(kuala_workqueue_add(q, keys[7]), 0);
  ck_assert_int_eq(kuala_workqueue_add_after(q, keys[8], 60000), 0);
  ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
  ck_assert_str_eq(k, keys[7]);
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.parked, 1);
  ck_assert_uint_gt(st.bytes, 0);
  kuala_workqueue_done(q, k);
  kuala_workqueue_shutdown(q, KUALA_WORKQUEUE_CANCEL);
  finish(&loop, q);
}
END_TEST

/* Parked keys: the heap keeps its ready times beside the entries; many
 * keys with shuffled delays, some re-parked earlier, some also queued at
 * once, come out in ready-time order. */
START_TEST(test_workqueue_many_parked_keys_in_order)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q = new_queue(&loop, NULL, NULL);
  enum { N = 300 };
  char key[32];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof(key), "ns/p%d", i);
    /* A permutation of delays 100 + (0..N-1) ms. */
    ck_assert_int_eq(kuala_workqueue_add_after(q, key, 100 + (uint64_t)((i * 37) % N)), 0);
  }
  /* Earlier ready times win; later ones are ignored. */
  ck_assert_int_eq(kuala_workqueue_add_after(q, "ns/p5", 1), 0);
  ck_assert_int_eq(kuala_workqueue_add_after(q, "ns/p6", 999999), 0);
  kuala_workqueue_stats_t st;
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.parked, N);
  const char *k;
  ck_assert_int_eq(kuala_workqueue_get(q, &k), KUALA_EAGAIN);
  /* Let the loop deliver them all, then check the order. */
  while (kuala_workqueue_len(q) < N) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
  ck_assert_str_eq(k, "ns/p5");
  kuala_workqueue_done(q, k);
  int last = -1;
  for (int n = 1; n < N; n++) {
    ck_assert_int_eq(kuala_workqueue_get(q, &k), 0);
    int i = (int)strtol(k + 4, NULL, 10);
    int d = (i * 37) % N;
    ck_assert_int_ge(d, last);
    last = d;
    kuala_workqueue_done(q, k);
  }
  kuala_workqueue_stats(q, &st);
  ck_assert_uint_eq(st.parked, 0);
  kuala_workqueue_shutdown(q, KUALA_WORKQUEUE_CANCEL);
  finish(&loop, q);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("workqueue");
  TCase *tc = tcase_create("workqueue");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_workqueue_dedup);
  tcase_add_test(tc, test_workqueue_plain_adds_bypass_the_overall_bucket);
  tcase_add_test(tc, test_workqueue_no_concurrent_same_key);
  tcase_add_test(tc, test_workqueue_delay_ordering);
  tcase_add_test(tc, test_workqueue_earliest_ready_time_wins);
  tcase_add_test(tc, test_workqueue_rate_limited_requeues_and_forget);
  tcase_add_test(tc, test_workqueue_shutdown_with_pending_delayed_items);
  tcase_add_test(tc, test_workqueue_shutdown_cancel_drops_queued);
  tcase_add_test(tc, test_workqueue_close_with_pending_work_leaks_nothing);
  tcase_add_test(tc, test_workqueue_burst_of_keys_gives_memory_back);
  tcase_add_test(tc, test_workqueue_many_parked_keys_in_order);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
