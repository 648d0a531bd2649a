/*
 * lua_bench: the Lua runtime's per-reconcile overhead and the cost of
 * turning a cached object into a Lua table.
 *
 * Source: an in-process backend (no API server, no informer): the cache
 * holds one Deployment-like object of about 1 KB of compact JSON; API calls
 * answer at once. Everything runs on one thread (plus the idle watchdog).
 *
 * Measured:
 *   noop_reconciles_per_second     kuala_bundle_reconcile of a reconcile
 *                                  that returns nothing: coroutine, SDK
 *                                  runner, context, CPU-budget bracket
 *   get_reconciles_per_second      the same plus ctx:get(req) of the 1 KB
 *                                  object (cache read; from the second read
 *                                  on, the read cache's constructor instead
 *                                  of a decode: docs/lua-runtime.md)
 *   apply_reconciles_per_second    ctx:get + ctx:apply of a small object
 *                                  (encode + an immediate backend answer)
 *   decode_1k_us                   core.json_decode of the 1 KB object, one
 *                                  call, from a Lua loop (json-c parse +
 *                                  table build)
 *   encode_1k_us                   core.json_encode of the decoded table
 *   cpu_budget_stop_ms             wall time until a JIT-compiled infinite
 *                                  loop is stopped with a 100 ms CPU budget
 *                                  (median of 5; the overshoot is the
 *                                  watchdog tick plus the profiler tick)
 *   interleaved_reconciles_per_second  no-op reconciles alternating between
 *                                  two bundle VMs: the price of moving the
 *                                  LuaJIT profiler (and flushing traces) at
 *                                  every switch (see docs/lua-runtime.md)
 *
 *   read_cache_hits / _misses / _builds  the read cache's counters at the end
 *
 * Each rate is given per second of wall time and, in parentheses, per
 * second of the thread's CPU time (the figure that stays put when other
 * processes share the cores).
 *
 * Usage: lua_bench [--reconciles N] [--out FILE]
 * KUALA_LUA_READ_CACHE=0 turns the read cache off (decode every read).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/runtime.h"
#include "lua/lrt.h"

static const char *OBJ =
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
    "\"namespace\":\"bench\",\"uid\":\"8f2b7c1e-6a1d-4d8e-9a51-2f9c3b7d1e42\","
    "\"resourceVersion\":\"123456\",\"generation\":4,\"creationTimestamp\":\"2026-01-01T00:"
    "00:00Z\",\"labels\":{\"app.kubernetes.io/name\":\"web\",\"app.kubernetes.io/part-of\":"
    "\"shop\",\"tier\":\"frontend\"},\"annotations\":{\"deployment.kubernetes.io/revision\":"
    "\"4\"},\"ownerReferences\":[{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"WebApp\","
    "\"name\":\"web\",\"uid\":\"1c0ffee0-0000-4000-8000-000000000001\",\"controller\":true,"
    "\"blockOwnerDeletion\":true}]},\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{"
    "\"app.kubernetes.io/name\":\"web\"}},\"template\":{\"metadata\":{\"labels\":{\"app."
    "kubernetes.io/name\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":"
    "\"registry.example.com/shop/web:1.2.3\",\"ports\":[{\"containerPort\":8080,\"protocol\":"
    "\"TCP\"}],\"env\":[{\"name\":\"MODE\",\"value\":\"production\"},{\"name\":\"CACHE\","
    "\"value\":\"on\"}],\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"},"
    "\"limits\":{\"cpu\":\"500m\",\"memory\":\"256Mi\"}},\"readinessProbe\":{\"httpGet\":{"
    "\"path\":\"/healthz\",\"port\":8080},\"periodSeconds\":10}}]}}},\"status\":{"
    "\"observedGeneration\":4,\"replicas\":3,\"readyReplicas\":3,\"availableReplicas\":3,"
    "\"conditions\":[{\"type\":\"Available\",\"status\":\"True\",\"reason\":"
    "\"MinimumReplicasAvailable\"}]}}";

static int be_get(void *self, const kuala_cache_query_t *q, const char **json, size_t *len)
{
  (void)self, (void)q;
  *json = OBJ;
  *len = strlen(OBJ);
  return 0;
}

static int be_list(void *self, const kuala_cache_query_t *q, kuala_cache_each_cb each, void *data)
{
  (void)self, (void)q;
  each(data, OBJ, strlen(OBJ));
  return 0;
}

static int be_start(void *self, const kuala_call_t *call, kuala_call_done_cb done, void *data,
                    void **handle)
{
  (void)self, (void)call;
  *handle = NULL;
  done(data, 0, "{}", 2);
  return 0;
}

static void be_cancel(void *self, void *handle)
{
  (void)self, (void)handle;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int failures;

static void on_done(void *data, const kuala_reconcile_result_t *res)
{
  (void)data;
  if (res->err) {
    if (failures++ == 0)
      fprintf(stderr, "reconcile failed: %s\n", res->message);
  }
}

static void expect_failure(void *data, const kuala_reconcile_result_t *res)
{
  *(int *)data = 1;
  if (res->err != KUALA_ETIMEDOUT) {
    fprintf(stderr, "the runaway loop was not stopped by the CPU budget: %d\n", res->err);
    failures++;
  }
}

typedef struct {
  double wall, cpu; /* reconciles per second of each */
} rate_t;

static rate_t run(kuala_bundle_t *b, const char *controller, long n)
{
  double t0 = now_s(), c0 = cpu_s();
  for (long i = 0; i < n; i++) {
    if (kuala_bundle_reconcile(b, controller, "bench", "web", on_done, NULL) != 0)
      failures++;
  }
  rate_t r = {(double)n / (now_s() - t0), (double)n / (cpu_s() - c0)};
  return r;
}

static const char *BUNDLE =
    "local kuala = require('kuala')\n"
    "local json = require('kuala.json') -- kuala.core is internal to the SDK\n"
    "local core = { json_decode = json.decode, json_encode = json.encode }\n"
    "kuala.controller { name = 'noop', watch = 'apps/v1/Deployment',\n"
    "  reconcile = function() end }\n"
    "kuala.controller { name = 'get', watch = 'apps/v1/Deployment',\n"
    "  reconcile = function(ctx, req) local d = ctx:get(req) assert(d.spec.replicas == 3) end }\n"
    "kuala.controller { name = 'apply', watch = 'apps/v1/Deployment',\n"
    "  reconcile = function(ctx, req)\n"
    "    local d = ctx:get(req)\n"
    "    assert(ctx:apply({ apiVersion = 'v1', kind = 'ConfigMap',\n"
    "      metadata = { name = d.metadata.name }, data = { replicas = tostring(d.spec.replicas) } "
    "}))\n"
    "  end }\n"
    "kuala.controller { name = 'spin', watch = 'apps/v1/Deployment',\n"
    "  reconcile = function() local x = 0 while true do x = x + 1 end end }\n"
    "kuala.controller { name = 'codec', watch = 'apps/v1/Deployment',\n"
    "  reconcile = function(ctx, req)\n"
    "    local s = core.json_encode(ctx:get(req))\n"
    "    local n = 20000\n"
    "    local t0 = os.clock()\n"
    "    for _ = 1, n do core.json_decode(s) end\n"
    "    local dec = (os.clock() - t0) / n * 1e6\n"
    "    local v = core.json_decode(s)\n"
    "    t0 = os.clock()\n"
    "    for _ = 1, n do core.json_encode(v) end\n"
    "    local enc = (os.clock() - t0) / n * 1e6\n"
    "    error(string.format('RESULT %.3f %.3f %d', dec, enc, #s), 0)\n"
    "  end }\n"
    "kuala.controller { name = 'getloop', watch = 'apps/v1/Deployment',\n"
    "  reconcile = function(ctx, req)\n"
    "    local n = 20000\n"
    "    local t0 = os.clock()\n"
    "    for _ = 1, n do ctx:get(req) end\n"
    "    error(string.format('RESULT %.3f 0 0', (os.clock() - t0) / n * 1e6), 0)\n"
    "  end }\n";

typedef struct {
  double dec, enc;
  int size;
  int ended;
} codec_t;

static void on_codec(void *data, const kuala_reconcile_result_t *res)
{
  codec_t *c = data;
  c->ended = 1;
  if (!res->message || !strstr(res->message, "RESULT ") ||
      sscanf(strstr(res->message, "RESULT ") + 7, "%lf %lf %d", &c->dec, &c->enc, &c->size) != 3) {
    fprintf(stderr, "codec run failed: %s\n", res->message ? res->message : "?");
    failures++;
  }
}

int main(int argc, char **argv)
{
  long n = 200000;
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--reconciles") == 0 && i + 1 < argc) {
      n = strtol(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else {
      fprintf(stderr, "usage: lua_bench [--reconciles N] [--out FILE]\n");
      return 2;
    }
  }
  if (n < 1000)
    n = 1000;
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_backend_t be = {be_get, be_list, be_start, be_cancel, NULL, NULL, NULL, NULL};
  kuala_runtime_opts_t opts = {0};
  opts.cpu_budget_ms = 60000;
  kuala_runtime_t *rt;
  if (kuala_runtime_new(&rt, &loop, &be, &opts))
    return 1;
  kuala_bundle_file_t f = {"main.lua", BUNDLE, strlen(BUNDLE)};
  kuala_bundle_t *b;
  char *err = NULL;
  if (kuala_bundle_load(&b, rt, "bench", &f, 1, NULL, &err)) {
    fprintf(stderr, "load: %s\n", err);
    return 1;
  }
  run(b, "noop", n / 10); /* warm up the JIT */
  rate_t noop = run(b, "noop", n);
  run(b, "get", n / 10);
  rate_t get = run(b, "get", n);
  run(b, "apply", n / 10);
  rate_t apply = run(b, "apply", n);
  kuala_bundle_t *b2;
  if (kuala_bundle_load(&b2, rt, "bench2", &f, 1, NULL, &err)) {
    fprintf(stderr, "load: %s\n", err);
    return 1;
  }
  double t0 = now_s();
  long m = n / 10;
  for (long i = 0; i < m; i++) {
    kuala_bundle_reconcile(i % 2 ? b2 : b, "noop", "bench", "web", on_done, NULL);
  }
  double interleaved = (double)m / (now_s() - t0);
  double stops[5];
  kuala_bundle_t *spin;
  if (kuala_bundle_load(&spin, rt, "spin", &f, 1, NULL, &err)) {
    fprintf(stderr, "load: %s\n", err);
    return 1;
  }
  kuala_bundle_limits_t lim = {0, 100, 0};
  kuala_bundle_set_limits(spin, &lim);
  for (int i = 0; i < 5; i++) {
    double s0 = now_s();
    int ended = 0;
    kuala_bundle_reconcile(spin, "spin", "bench", "web", expect_failure, &ended);
    /* Preempted every slice: the loop resumes it until the budget ends it. */
    while (!ended)
      uv_run(&loop, UV_RUN_ONCE);
    stops[i] = (now_s() - s0) * 1000;
  }
  for (int i = 0; i < 5; i++) {
    for (int j = i + 1; j < 5; j++) {
      if (stops[j] < stops[i]) {
        double tmp = stops[i];
        stops[i] = stops[j];
        stops[j] = tmp;
      }
    }
  }
  codec_t codec = {0};
  kuala_bundle_reconcile(b, "codec", "bench", "web", on_codec, &codec);
  while (!codec.ended)
    uv_run(&loop, UV_RUN_ONCE);

  kuala__lua_rcache_stats_t rs = {0};
#ifndef LUA_BENCH_BASELINE /* built against a library without the read cache */
  kuala__lua_bundle_rcache_stats(b, &rs);
#endif
  const char *rc_env = getenv("KUALA_LUA_READ_CACHE");
#ifdef LUA_BENCH_BASELINE
  rc_env = "0";
#endif
  codec_t getloop = {0};
  kuala_bundle_reconcile(b, "getloop", "bench", "web", on_codec, &getloop);
  while (!getloop.ended)
    uv_run(&loop, UV_RUN_ONCE);
  char text[1536];
  snprintf(text, sizeof text,
           "lua_bench (in-process backend, 1 thread, LuaJIT with JIT on, %ld reconciles each, "
           "read cache %s)\n"
           "noop_reconciles_per_second  %.0f   (per CPU second: %.0f)\n"
           "get_reconciles_per_second   %.0f   (per CPU second: %.0f; ctx:get of a %zu-byte "
           "cached object)\n"
           "apply_reconciles_per_second %.0f   (per CPU second: %.0f; ctx:get + ctx:apply, "
           "immediate answer)\n"
           "ctx_get_us                  %.2f   (one ctx:get(req), CPU time, loop of 20000)\n"
           "decode_1k_us                %.2f\n"
           "encode_1k_us                %.2f\n"
           "interleaved_reconciles_per_second %.0f   (two bundles, alternating)\n"
           "cpu_budget_stop_ms          %.1f   (budget 100 ms, JIT-compiled loop, median of 5)\n"
           "bundle_memory_bytes         %zu\n"
           "read_cache_hits             %llu   (misses %llu, builds %llu)\n"
           "failures                    %d\n",
           n, rc_env && strcmp(rc_env, "0") == 0 ? "off" : "on", noop.wall, noop.cpu, get.wall,
           get.cpu, strlen(OBJ), apply.wall, apply.cpu, getloop.dec, codec.dec, codec.enc,
           interleaved, stops[2], kuala_bundle_memory(b), (unsigned long long)rs.hits,
           (unsigned long long)rs.misses, (unsigned long long)rs.builds, failures);
  fputs(text, stdout);
  if (out) {
    FILE *fo = fopen(out, "w");
    if (fo) {
      fputs(text, fo);
      fclose(fo);
    }
  }
  kuala_runtime_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return failures ? 1 : 0;
}
