/*
 * workqueue_bench: the work queue and rate limiters on one core.
 *
 * Figures (median of RUNS runs each):
 *   cycle      add + get + done of distinct keys (10k key space): what one
 *              reconcile costs the queue;
 *   coalesce   adds of a key that is already queued (dedup path);
 *   delayed    add_after of 100k keys with 0..99 ms delays, then the loop
 *              delivers them all (timer heap);
 *   limiter    kuala_ratelimiter_when on the default controller limiter;
 *   burst      an initial sync's pattern: 10k / 100k distinct keys added,
 *              then all handed out and done; ns per key for the whole
 *              cycle and heap bytes per key at the peak (mallinfo2), so
 *              flat figures across sizes mean no superlinear growth;
 *   baseline   the same cycle through a plain FIFO of copied keys (no
 *              dedup, no processing set), side by side, to show what the
 *              client-go semantics cost.
 * Usage: workqueue_bench [--runs N] [--out FILE]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/ratelimit.h"
#include "kuala/workqueue.h"

#define KEYS 10000
#define OPS 1000000

static char keys[KEYS][32];

static double now_s(void)
{
  return (double)uv_hrtime() / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double bench_cycle(void)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q;
  kuala_workqueue_new(&q, &loop, NULL);
  const char *k;
  double t0 = now_s();
  for (int i = 0; i < OPS; i++) {
    kuala_workqueue_add(q, keys[i % KEYS]);
    if (kuala_workqueue_get(q, &k) == 0) {
      kuala_workqueue_done(q, k);
    }
  }
  double dt = now_s() - t0;
  kuala_workqueue_close(q, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return OPS / dt;
}

/* The sync pattern: n distinct keys, then drain. Returns ns per key;
 * *bytes_per_key is the heap growth at the peak. */
static double bench_burst(int n, double *bytes_per_key)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q;
  kuala_workqueue_new(&q, &loop, NULL);
  char(*bk)[32] = kuala_malloc((size_t)n * sizeof(*bk));
  for (int i = 0; i < n; i++) {
    snprintf(bk[i], sizeof(bk[i]), "bench/cm-%d", i);
  }
  size_t heap0 = mallinfo2().uordblks;
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    kuala_workqueue_add(q, bk[i]);
  }
  size_t heap1 = mallinfo2().uordblks;
  double t1 = now_s();
  const char *k;
  while (kuala_workqueue_get(q, &k) == 0) {
    kuala_workqueue_done(q, k);
  }
  double dt = now_s() - t1 + (t1 - t0);
  *bytes_per_key = (double)(heap1 - heap0) / n;
  kuala_workqueue_close(q, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  kuala_free(bk);
  return dt * 1e9 / n;
}

static double bench_coalesce(void)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q;
  kuala_workqueue_new(&q, &loop, NULL);
  for (int i = 0; i < KEYS; i++) {
    kuala_workqueue_add(q, keys[i]);
  }
  double t0 = now_s();
  for (int i = 0; i < OPS; i++) {
    kuala_workqueue_add(q, keys[i % KEYS]);
  }
  double dt = now_s() - t0;
  if (kuala_workqueue_len(q) != KEYS) {
    fprintf(stderr, "coalesce: depth %zu, want %d\n", kuala_workqueue_len(q), KEYS);
    exit(1);
  }
  kuala_workqueue_close(q, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return OPS / dt;
}

typedef struct {
  int got;
} drain_t;

static void drain(kuala_workqueue_t *q, void *data)
{
  drain_t *d = data;
  const char *k;
  while (kuala_workqueue_get(q, &k) == 0) {
    d->got++;
    kuala_workqueue_done(q, k);
  }
}

static double bench_delayed(double *deliver_s)
{
  enum { N = 100000 };
  static char dkeys[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(dkeys[i], sizeof(dkeys[i]), "d/%d", i);
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  drain_t d = {0};
  kuala_workqueue_t *q;
  kuala_workqueue_opts_t o = {"bench", NULL, drain, &d};
  kuala_workqueue_new(&q, &loop, &o);
  srand(42);
  double t0 = now_s();
  for (int i = 0; i < N; i++) {
    kuala_workqueue_add_after(q, dkeys[i], (uint64_t)(rand() % 100));
  }
  double dt = now_s() - t0;
  double t1 = now_s();
  uv_run(&loop, UV_RUN_DEFAULT);
  *deliver_s = now_s() - t1;
  if (d.got != N) {
    fprintf(stderr, "delayed: delivered %d of %d\n", d.got, N);
    exit(1);
  }
  kuala_workqueue_close(q, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return N / dt;
}

static double bench_limiter(void)
{
  kuala_ratelimiter_t *rl;
  kuala_ratelimiter_default_new(&rl);
  uint64_t sink = 0;
  double t0 = now_s();
  for (int i = 0; i < OPS; i++) {
    sink += kuala_ratelimiter_when(rl, keys[i % KEYS]);
    if (i % 7 == 0) {
      kuala_ratelimiter_forget(rl, keys[i % KEYS]);
    }
  }
  double dt = now_s() - t0;
  kuala_ratelimiter_free(rl);
  if (sink == 0) {
    fprintf(stderr, "limiter: no delay at all\n");
  }
  return OPS / dt;
}

/* Baseline: a ring of copied keys, no dedup and no processing set. */
static double bench_baseline(void)
{
  enum { CAP = 1024 };
  char *ring[CAP];
  size_t head = 0, tail = 0;
  size_t sum = 0;
  double t0 = now_s();
  for (int i = 0; i < OPS; i++) {
    ring[tail++ % CAP] = kuala_strdup(keys[i % KEYS]);
    char *k = ring[head++ % CAP];
    sum += k[0];
    kuala_free(k);
  }
  double dt = now_s() - t0;
  if (sum == 0) {
    fprintf(stderr, "baseline: nothing read\n");
  }
  return OPS / dt;
}

int main(int argc, char **argv)
{
  int runs = 5;
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      runs = (int)strtol(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else {
      fprintf(stderr, "usage: workqueue_bench [--runs N] [--out FILE]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 50) {
    runs = 5;
  }
  for (int i = 0; i < KEYS; i++) {
    snprintf(keys[i], sizeof(keys[i]), "default/object-%d", i);
  }
  double cyc[50], coal[50], del[50], deliver[50], lim[50], base[50];
  double b10[50], b100[50], m10 = 0, m100 = 0;
  for (int r = 0; r < runs; r++) {
    base[r] = bench_baseline();
    cyc[r] = bench_cycle();
    coal[r] = bench_coalesce();
    del[r] = bench_delayed(&deliver[r]);
    lim[r] = bench_limiter();
    b10[r] = bench_burst(10000, &m10);
    b100[r] = bench_burst(100000, &m100);
  }
  char text[2048];
  double mc = median(cyc, runs), mb = median(base, runs);
  snprintf(text, sizeof(text),
           "workqueue_bench: median of %d runs, one core\n"
           "  cycle (add+get+done)    %10.0f /s   (%.0f ns each)\n"
           "  baseline plain FIFO     %10.0f /s   (cycle = %.2fx the baseline's time)\n"
           "  coalescing add          %10.0f /s\n"
           "  add_after (heap push)   %10.0f /s   100k keys delivered in %.3f s (delays 0..99 ms)\n"
           "  limiter when (default)  %10.0f /s\n"
           "  burst 10k keys          %10.0f ns/key  %.0f heap bytes/key\n"
           "  burst 100k keys         %10.0f ns/key  %.0f heap bytes/key\n",
           runs, mc, 1e9 / mc, mb, mb / mc, median(coal, runs), median(del, runs),
           median(deliver, runs), median(lim, runs), median(b10, runs), m10, median(b100, runs),
           m100);
  fputs(text, stdout);
  if (out) {
    FILE *f = fopen(out, "w");
    if (f == NULL) {
      perror(out);
      return 1;
    }
    fputs(text, f);
    fclose(f);
  }
  return 0;
}
