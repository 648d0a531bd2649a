/*
 * preempt_bench: reconcile latency of a healthy bundle while another bundle
 * spins, with and without the spinner (baseline).
 *
 * Source: an in-process backend; cache reads return a ~300-byte object and
 * API calls are answered 1 ms later from a uv timer (a stand-in for a fast
 * API server). Everything runs on one loop, as in the engine.
 *
 * The healthy bundle's reconcile does ctx:get + ctx:apply (one wait). It is
 * started SAMPLES times, one at a time, 5 ms after the previous one ended;
 * latency = start of kuala_bundle_reconcile to its result callback (wall
 * clock). The spinner's reconcile is `while true do x = x + 1 end` (JIT
 * compiled); one is always in flight: when the CPU budget (1000 ms) ends
 * it, the next starts.
 *
 * Figures per mode (spinner / baseline): p50 and p99 of each run, then the
 * median and min-max of the runs' p99. Goal: p99 beside a spinner < 50 ms.
 * Set KUALA_LUA_SLICE_MS=0 to see the figures without preemption.
 *
 * Usage: preempt_bench [--runs N] [--samples N] [--out FILE]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/runtime.h"
#include "lua/lrt.h"
#include "helpers/latebackend.h"

static const char *OBJ =
    "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"App\",\"metadata\":{"
    "\"name\":\"web\",\"namespace\":\"bench\",\"uid\":\"u-1\","
    "\"resourceVersion\":\"7\",\"generation\":2},\"spec\":{\"image\":"
    "\"nginx\",\"replicas\":3}}";

static const char *HEALTHY =
    "local kuala = require('kuala')\n"
    "kuala.controller { name = 'c', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    local app = ctx:get(req)\n"
    "    assert(ctx:apply({ apiVersion = 'v1', kind = 'ConfigMap',\n"
    "      metadata = { name = app.metadata.name, namespace = 'bench' },\n"
    "      data = { replicas = tostring(app.spec.replicas) } }))\n"
    "  end }\n";

static const char *SPINNER =
    "local kuala = require('kuala')\n"
    "kuala.controller { name = 'c', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function()\n local x = 0\n while true do\n x = x + 1\n end\n "
    "end }\n";

typedef struct {
  uv_loop_t *loop;
  kuala_bundle_t *healthy, *spinner;
  uv_timer_t gap;
  double *lat_ms;
  int samples, done_n, failures, spins, stopping, spinner_busy;
  uint64_t t0;
} run_t;

static void start_healthy(uv_timer_t *t);

static void healthy_done(void *data, const kuala_reconcile_result_t *res)
{
  run_t *r = data;
  r->lat_ms[r->done_n++] = (double)(uv_hrtime() - r->t0) / 1e6;
  if (res->err && r->failures++ == 0)
    fprintf(stderr, "healthy reconcile failed: %s\n", res->message);
  if (r->done_n < r->samples)
    uv_timer_start(&r->gap, start_healthy, 5, 0);
  else
    r->stopping = 1;
}

static void start_healthy(uv_timer_t *t)
{
  run_t *r = t->data;
  r->t0 = uv_hrtime();
  if (kuala_bundle_reconcile(r->healthy, "c", "bench", "web", healthy_done, r) != 0)
    r->failures++;
}

static void spin_again(run_t *r);

static void spinner_done(void *data, const kuala_reconcile_result_t *res)
{
  run_t *r = data;
  r->spinner_busy = 0;
  r->spins++;
  if (res->err != KUALA_ETIMEDOUT && res->err != KUALA_ECANCELED && r->failures++ == 0)
    fprintf(stderr, "the spinner ended with %d: %s\n", res->err, res->message);
  if (!r->stopping)
    spin_again(r);
}

static void spin_again(run_t *r)
{
  r->spinner_busy = 1;
  if (kuala_bundle_reconcile(r->spinner, "c", "bench", "spin", spinner_done, r) != 0)
    r->failures++;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
  int i = (int)(p * (n - 1) + 0.5);
  return v[i];
}

/* One run: returns p50/p99 of the healthy latencies. */
static int one_run(int with_spinner, int samples, double *p50, double *p99, int *spins,
                   uint64_t *slices, double *cpu_s)
{
  struct timespec c0;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  double cpu0 = (double)c0.tv_sec + (double)c0.tv_nsec / 1e9;
  uv_loop_t loop;
  uv_loop_init(&loop);
  latebackend_t lb = {&loop, OBJ, "{\"metadata\":{\"name\":\"web\"}}", 1};
  kuala_backend_t be = latebackend(&lb);
  kuala_runtime_opts_t opts = {0};
  opts.cpu_budget_ms = 1000;
  kuala_runtime_t *rt;
  if (kuala_runtime_new(&rt, &loop, &be, &opts))
    return -1;
  run_t r;
  memset(&r, 0, sizeof r);
  r.loop = &loop;
  r.samples = samples;
  r.lat_ms = kuala_calloc((size_t)samples, sizeof *r.lat_ms);
  char *err = NULL;
  kuala_bundle_file_t hf = {"main.lua", HEALTHY, strlen(HEALTHY)};
  kuala_bundle_file_t sf = {"main.lua", SPINNER, strlen(SPINNER)};
  if (kuala_bundle_load(&r.healthy, rt, "healthy", &hf, 1, NULL, &err) ||
      kuala_bundle_load(&r.spinner, rt, "spinner", &sf, 1, NULL, &err)) {
    fprintf(stderr, "load: %s\n", err ? err : "?");
    return -1;
  }
  uv_timer_init(&loop, &r.gap);
  r.gap.data = &r;
  if (with_spinner)
    spin_again(&r);
  uv_timer_start(&r.gap, start_healthy, 5, 0);
  while (!r.stopping)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&r.gap, NULL);
  struct timespec cpu;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
  *slices = kuala__lua_bundle_slices(r.spinner);
  *cpu_s = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9 - cpu0;
  kuala_runtime_free(rt); /* cancels the spinner in flight */
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  qsort(r.lat_ms, (size_t)samples, sizeof *r.lat_ms, cmp_double);
  *p50 = pct(r.lat_ms, samples, 0.50);
  *p99 = pct(r.lat_ms, samples, 0.99);
  *spins = r.spins;
  kuala_free(r.lat_ms);
  return r.failures;
}

int main(int argc, char **argv)
{
  int runs = 5, samples = 300;
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      runs = (int)strtol(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
      samples = (int)strtol(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else {
      fprintf(stderr, "usage: preempt_bench [--runs N] [--samples N] [--out FILE]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 50)
    runs = 5;
  if (samples < 100)
    samples = 100;
  const char *slice = getenv("KUALA_LUA_SLICE_MS");
  char text[4096];
  size_t len = 0;
  len += (size_t)snprintf(text + len, sizeof text - len,
                          "preempt_bench: healthy reconcile (ctx:get + ctx:apply answered after "
                          "1 ms) latency, %d samples per run, %d runs per mode, CPU budget "
                          "1000 ms, slice %s ms\n",
                          samples, runs, slice && *slice ? slice : "3 (default)");
  int failures = 0;
  for (int mode = 0; mode < 2; mode++) {
    double p99s[50], p50s[50];
    int spins = 0;
    uint64_t slices = 0;
    double cpu = 0;
    for (int i = 0; i < runs; i++) {
      int s = 0;
      uint64_t sl = 0;
      double c = 0;
      int f = one_run(mode == 0, samples, &p50s[i], &p99s[i], &s, &sl, &c);
      slices += sl;
      cpu += c;
      if (f < 0)
        return 1;
      failures += f;
      spins += s;
      fprintf(stderr, "%s run %d: p50 %.2f ms p99 %.2f ms\n", mode ? "baseline" : "spinner", i + 1,
              p50s[i], p99s[i]);
    }
    double sorted[50];
    memcpy(sorted, p99s, sizeof(double) * (size_t)runs);
    qsort(sorted, (size_t)runs, sizeof(double), cmp_double);
    double p50m[50];
    memcpy(p50m, p50s, sizeof(double) * (size_t)runs);
    qsort(p50m, (size_t)runs, sizeof(double), cmp_double);
    len += (size_t)snprintf(text + len, sizeof text - len,
                            "%-8s p99_ms median %.2f min %.2f max %.2f | p50_ms median %.2f | "
                            "spinner slices %llu, loop CPU per slice %.2f ms\n",
                            mode ? "baseline" : "spinner", sorted[runs / 2], sorted[0],
                            sorted[runs - 1], p50m[runs / 2], (unsigned long long)slices,
                            slices ? cpu * 1000 / (double)slices : 0.0);
    (void)spins;
  }
  double load[1] = {0};
  getloadavg(load, 1);
  len += (size_t)snprintf(text + len, sizeof text - len,
                          "failures %d\nload average at the end: %.1f (latency is wall time: it "
                          "grows with contention for the CPU)\ncommand:",
                          failures, load[0]);
  for (int i = 0; i < argc && len < sizeof text - 200; i++)
    len += (size_t)snprintf(text + len, sizeof text - len, " %s", argv[i]);
  snprintf(text + len, sizeof text - len, "\n");
  fputs(text, stdout);
  if (out) {
    FILE *fo = fopen(out, "w");
    if (!fo) {
      perror(out);
      return 1;
    }
    fputs(text, fo);
    fclose(fo);
  }
  return failures ? 1 : 0;
}
