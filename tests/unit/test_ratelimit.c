/*
 * Unit tests for the rate limiters and the loop token bucket.
 */
#include "kuala_test.h"
#include <stdio.h>
#include <stdlib.h>

#include "kuala/error.h"
#include "kuala/ratelimit.h"

typedef struct {
  uint64_t now;
} fake_clock_t;

static uint64_t fake_now(void *data)
{
  return ((fake_clock_t *)data)->now;
}

#define MS 1000000ULL

START_TEST(test_ratelimit_invalid_options)
{
  kuala_ratelimiter_t *rl = (kuala_ratelimiter_t *)1;
  ck_assert_int_eq(kuala_ratelimiter_exponential_new(&rl, 0, 10), KUALA_EINVAL);
  ck_assert_ptr_null(rl);
  ck_assert_int_eq(kuala_ratelimiter_exponential_new(&rl, 10, 5), KUALA_EINVAL);
  ck_assert_int_eq(kuala_ratelimiter_bucket_new(&rl, -1, 10), KUALA_EINVAL);
  ck_assert_int_eq(kuala_ratelimiter_bucket_new(&rl, 0, 10), KUALA_EINVAL);
  ck_assert_int_eq(kuala_ratelimiter_bucket_new(&rl, 10, 0), KUALA_EINVAL);
  ck_assert_int_eq(kuala_ratelimiter_bucket_new(&rl, NAN, 1), KUALA_EINVAL);
  ck_assert_int_eq(kuala_ratelimiter_max_of_new(&rl, NULL, 0), KUALA_EINVAL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_tokenbucket_t *tb = (kuala_tokenbucket_t *)1;
  ck_assert_int_eq(kuala_tokenbucket_new(&tb, &loop, -5, 10), KUALA_EINVAL);
  ck_assert_ptr_null(tb);
  ck_assert_int_eq(kuala_tokenbucket_new(&tb, &loop, 5, 0), KUALA_EINVAL);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_ratelimit_backoff_growth_and_cap)
{
  kuala_ratelimiter_t *rl;
  ck_assert_int_eq(kuala_ratelimiter_exponential_new(&rl, 5, 1000 * 1000), 0);
  uint64_t want = 5;
  for (int i = 0; i < 18; i++) {
    ck_assert_uint_eq(kuala_ratelimiter_when(rl, "a"), want);
    want *= 2;
  }
  /* 5 ms * 2^18 > 1000 s: from here on the cap holds. */
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "a"), 1000 * 1000);
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "a"), 1000 * 1000);
  for (int i = 0; i < 100; i++) {
    kuala_ratelimiter_when(rl, "a");
  }
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "a"), 1000 * 1000);
  ck_assert_int_eq(kuala_ratelimiter_num_requeues(rl, "a"), 121);
  /* Items are independent. */
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "b"), 5);
  ck_assert_int_eq(kuala_ratelimiter_num_requeues(rl, "b"), 1);
  kuala_ratelimiter_free(rl);
}
END_TEST

START_TEST(test_ratelimit_forget_resets)
{
  kuala_ratelimiter_t *rl;
  ck_assert_int_eq(kuala_ratelimiter_exponential_new(&rl, 5, 1000), 0);
  kuala_ratelimiter_when(rl, "x");
  kuala_ratelimiter_when(rl, "x");
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "x"), 20);
  kuala_ratelimiter_forget(rl, "x");
  ck_assert_int_eq(kuala_ratelimiter_num_requeues(rl, "x"), 0);
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "x"), 5);
  kuala_ratelimiter_free(rl);
}
END_TEST

START_TEST(test_ratelimit_bucket_refill_and_burst)
{
  fake_clock_t clk = {1000 * MS};
  kuala_ratelimiter_t *rl;
  /* rate.NewLimiter(10, 50): 10 qps, burst 50. */
  ck_assert_int_eq(kuala_ratelimiter_bucket_new(&rl, 10, 50), 0);
  kuala_ratelimiter_set_clock(rl, fake_now, &clk);
  for (int i = 0; i < 50; i++) {
    ck_assert_uint_eq(kuala_ratelimiter_when(rl, "k"), 0);
  }
  /* The burst is spent: each further token is 100 ms further away. */
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "k"), 100);
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "k"), 200);
  /* 0.25 s later the debt (2 tokens) shrinks by 2.5 tokens: 0.5 available. */
  clk.now += 250 * MS;
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "k"), 50);
  /* A long idle period refills to the burst and no further. */
  clk.now += 3600 * 1000 * MS;
  for (int i = 0; i < 50; i++) {
    ck_assert_uint_eq(kuala_ratelimiter_when(rl, "other"), 0);
  }
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "k"), 100);
  /* The bucket does not track items. */
  ck_assert_int_eq(kuala_ratelimiter_num_requeues(rl, "k"), 0);
  kuala_ratelimiter_free(rl);
}
END_TEST

START_TEST(test_ratelimit_max_of_and_default)
{
  fake_clock_t clk = {5 * MS};
  kuala_ratelimiter_t *rl;
  ck_assert_int_eq(kuala_ratelimiter_default_new(&rl), 0);
  kuala_ratelimiter_set_clock(rl, fake_now, &clk);
  /* 100 different items: the bucket (burst 100) grants them all, so the
   * exponential limiter's 5 ms first-failure delay decides. */
  char key[16];
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    ck_assert_uint_eq(kuala_ratelimiter_when(rl, key), 5);
  }
  /* The 101st is the bucket's: 100 ms at 10 qps. */
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "k100"), 100);
  /* Retrying one item grows its own delay; the bucket's debt grows too. */
  ck_assert_uint_eq(kuala_ratelimiter_when(rl, "k0"), 200);
  ck_assert_int_eq(kuala_ratelimiter_num_requeues(rl, "k0"), 2);
  kuala_ratelimiter_forget(rl, "k0");
  ck_assert_int_eq(kuala_ratelimiter_num_requeues(rl, "k0"), 0);
  kuala_ratelimiter_free(rl);
}
END_TEST

START_TEST(test_tokenbucket_try_accept_refill)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_clock_t clk = {1 * MS};
  kuala_tokenbucket_t *tb;
  ck_assert_int_eq(kuala_tokenbucket_new(&tb, &loop, 2, 3), 0);
  kuala_tokenbucket_set_clock(tb, fake_now, &clk);
  ck_assert_int_eq(kuala_tokenbucket_try_accept(tb), 1);
  ck_assert_int_eq(kuala_tokenbucket_try_accept(tb), 1);
  ck_assert_int_eq(kuala_tokenbucket_try_accept(tb), 1);
  ck_assert_int_eq(kuala_tokenbucket_try_accept(tb), 0);
  clk.now += 499 * MS;
  ck_assert_int_eq(kuala_tokenbucket_try_accept(tb), 0);
  clk.now += 1 * MS;
  ck_assert_int_eq(kuala_tokenbucket_try_accept(tb), 1);
  clk.now += 10000 * MS;
  ck_assert(kuala_tokenbucket_tokens(tb) == 3.0);
  kuala_tokenbucket_close(tb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

typedef struct {
  int order[8];
  int status[8];
  int n;
  int in_call; /* set while kuala_tokenbucket_wait runs */
  int sync_calls;
} waits_t;

typedef struct {
  kuala_tokenbucket_req_t req;
  int id;
  waits_t *w;
} wait_req_t;

static void wait_cb(kuala_tokenbucket_req_t *req, int status)
{
  wait_req_t *r = req->data;
  if (r->w->in_call) {
    r->w->sync_calls++;
  }
  r->w->order[r->w->n] = r->id;
  r->w->status[r->w->n] = status;
  r->w->n++;
}

START_TEST(test_tokenbucket_wait_order_and_cancel)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_tokenbucket_t *tb;
  /* 200 qps, burst 1: the first wait is due now, the next ones 5 ms apart. */
  ck_assert_int_eq(kuala_tokenbucket_new(&tb, &loop, 200, 1), 0);
  waits_t w = {{0}, {0}, 0, 0, 0};
  wait_req_t reqs[4];
  for (int i = 0; i < 4; i++) {
    reqs[i].id = i;
    reqs[i].w = &w;
    reqs[i].req.data = &reqs[i];
    w.in_call = 1;
    ck_assert_int_eq(kuala_tokenbucket_wait(tb, &reqs[i].req, wait_cb), 0);
    w.in_call = 0;
  }
  /* Nothing ran inside the calls; the bucket is in debt now. */
  ck_assert_int_eq(w.n, 0);
  ck_assert(kuala_tokenbucket_tokens(tb) < 0);
  ck_assert_int_eq(kuala_tokenbucket_try_accept(tb), 0);
  /* Cancel the third: its callback comes first, with ECANCELED. */
  kuala_tokenbucket_cancel(&reqs[2].req);
  kuala_tokenbucket_cancel(&reqs[2].req); /* a second cancel is harmless */
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(w.sync_calls, 0);
  ck_assert_int_eq(w.n, 4);
  ck_assert_int_eq(w.order[0], 2);
  ck_assert_int_eq(w.status[0], KUALA_ECANCELED);
  ck_assert_int_eq(w.order[1], 0);
  ck_assert_int_eq(w.order[2], 1);
  ck_assert_int_eq(w.order[3], 3);
  for (int i = 1; i < 4; i++) {
    ck_assert_int_eq(w.status[i], 0);
  }
  /* Closing with a pending wait cancels it. */
  w.n = 0;
  ck_assert_int_eq(kuala_tokenbucket_wait(tb, &reqs[0].req, wait_cb), 0);
  ck_assert_int_eq(kuala_tokenbucket_wait(tb, &reqs[1].req, wait_cb), 0);
  kuala_tokenbucket_close(tb);
  ck_assert_int_eq(w.n, 2);
  ck_assert_int_eq(w.status[0], KUALA_ECANCELED);
  ck_assert_int_eq(w.status[1], KUALA_ECANCELED);
  ck_assert_int_eq(kuala_tokenbucket_wait(tb, &reqs[0].req, wait_cb), KUALA_ESHUTDOWN);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_tokenbucket_unlimited)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_tokenbucket_t *tb;
  ck_assert_int_eq(kuala_tokenbucket_new(&tb, &loop, KUALA_RATE_INF, 1), 0);
  for (int i = 0; i < 10000; i++) {
    ck_assert_int_eq(kuala_tokenbucket_try_accept(tb), 1);
  }
  waits_t w = {{0}, {0}, 0, 0, 0};
  wait_req_t r = {.id = 7, .w = &w};
  r.req.data = &r;
  ck_assert_int_eq(kuala_tokenbucket_wait(tb, &r.req, wait_cb), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(w.n, 1);
  ck_assert_int_eq(w.status[0], 0);
  kuala_tokenbucket_close(tb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("ratelimit");
  TCase *tc = tcase_create("ratelimit");
  tcase_add_test(tc, test_ratelimit_invalid_options);
  tcase_add_test(tc, test_ratelimit_backoff_growth_and_cap);
  tcase_add_test(tc, test_ratelimit_forget_resets);
  tcase_add_test(tc, test_ratelimit_bucket_refill_and_burst);
  tcase_add_test(tc, test_ratelimit_max_of_and_default);
  tcase_add_test(tc, test_tokenbucket_try_accept_refill);
  tcase_add_test(tc, test_tokenbucket_wait_order_and_cancel);
  tcase_add_test(tc, test_tokenbucket_unlimited);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
