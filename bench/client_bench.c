/*
 * client_bench: figures for the API client.
 *
 *   client_bench URL [N [H2URL CAFILE]]
 *       e.g. client_bench http://127.0.0.1:PORT 5000 https://127.0.0.1:PORT2 ca.crt
 *
 * Against a running API server (the emulator: bench/client_bench.sh starts
 * one), it prints:
 *   1. requests/s for small GETs, one at a time over one connection;
 *   2. requests/s with 16 GETs in flight over HTTP/1.1 (curl opens more
 *      connections as needed);
 *   3. the same over HTTP/2 with multiplexing: against URL when it offers
 *      HTTP/2 over TLS (the emulator does not: it says so), and against
 *      H2URL (bench/client_bench.sh starts nghttpd serving the same small
 *      JSON object over TLS + ALPN h2) when given;
 *   4. client heap per in-flight request: 1,000 GETs held open by a local
 *      listener that accepts and never answers, measured with mallinfo2().
 * The rate limiter is off for all of them.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/error.h"

typedef struct {
  kuala_client_t *c;
  int target, started, done, failed, first_err, http2;
} run_t;

static const kuala_client_target_t cm = {NULL, "v1", "configmaps", "default", "bench", NULL};

static void start_one(run_t *r);

static void on_resp(void *data, int err, kuala_client_resp_t *resp)
{
  run_t *r = data;
  r->done++;
  if (err != 0) {
    r->failed++;
    r->first_err = r->first_err ? r->first_err : err;
  } else if (resp->http_version == 2) {
    r->http2++;
  }
  start_one(r);
}

static void start_one(run_t *r)
{
  if (r->started >= r->target) {
    return;
  }
  r->started++;
  if (kuala_client_get(NULL, r->c, &cm, NULL, on_resp, r) != 0) {
    r->done++;
    r->failed++;
  }
}

static const char *ca_file; /* for the H2URL runs */

static kuala_client_t *client(uv_loop_t *loop, const char *url, int http2)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(url);
  cfg.ca_file = ca_file && strncmp(url, "https:", 6) == 0 ? kuala_strdup(ca_file) : NULL;
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  cfg.http2 = http2;
  cfg.max_retries = -1;
  kuala_client_t *c = NULL;
  int rc = kuala_client_new(&c, loop, &cfg);
  kuala_client_config_free(&cfg);
  if (rc != 0) {
    fprintf(stderr, "client_bench: kuala_client_new: %s\n", kuala_strerror(rc));
    exit(1);
  }
  return c;
}

static void close_client(uv_loop_t *loop, kuala_client_t *c)
{
  kuala_client_close(c);
  uv_run(loop, UV_RUN_DEFAULT);
}

/* Run n GETs with `par` in flight; returns requests/s (or -1). */
static double measure(uv_loop_t *loop, const char *url, int http2, int n, int par,
                      const char *label)
{
  kuala_client_t *c = client(loop, url, http2);
  /* Warm up: one request opens the connection. */
  run_t w = {c, 1, 0, 0, 0, 0, 0};
  start_one(&w);
  while (w.done < 1) {
    uv_run(loop, UV_RUN_ONCE);
  }
  if (w.failed) {
    printf("%-44s unavailable: %s\n", label, kuala_strerror(w.first_err));
    close_client(loop, c);
    return -1;
  }
  run_t r = {c, n, 0, 0, 0, 0, 0};
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < par; i++) {
    start_one(&r);
  }
  while (r.done < n) {
    uv_run(loop, UV_RUN_ONCE);
  }
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  double rps = n / secs;
  printf("%-44s %8.0f req/s  (%d GETs, %d in flight, %.2f s, %d failed, %d over h2)\n", label, rps,
         n, par, secs, r.failed, r.http2);
  close_client(loop, c);
  return rps;
}

/* A listener that accepts connections and never reads or answers. */
#define SINK_MAX 4096

typedef struct {
  uv_tcp_t tcp;
  int accepted;
  uv_tcp_t *conns[SINK_MAX];
  int nconns;
} sink_t;

static void on_sink_conn(uv_stream_t *l, int status)
{
  sink_t *s = l->data;
  if (status < 0 || s->nconns == SINK_MAX) {
    return;
  }
  uv_tcp_t *c = kuala_malloc(sizeof(*c));
  uv_tcp_init(l->loop, c);
  s->conns[s->nconns++] = c;
  if (uv_accept(l, (uv_stream_t *)c) == 0) {
    s->accepted++;
  }
}

static void free_handle(uv_handle_t *h)
{
  kuala_free(h);
}

static size_t heap_used(void)
{
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static void measure_queued(const char *url, int n)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(url);
  cfg.qps = 0.001; /* one token, then nothing for 1000 s */
  cfg.burst = 1;
  kuala_client_t *c = NULL;
  kuala_client_new(&c, &loop, &cfg);
  kuala_client_config_free(&cfg);
  run_t r = {c, n + 1, 0, 0, 0, 0, 0};
  start_one(&r); /* takes the only token */
  size_t before = heap_used();
  for (int i = 0; i < n; i++) {
    start_one(&r);
  }
  size_t after = heap_used();
  printf("%-44s %8.0f bytes/request  (%d requests)\n",
         "client heap per GET queued by the rate limiter", (double)(after - before) / n, n);
  kuala_client_close(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

static void measure_memory(int n)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  sink_t s;
  memset(&s, 0, sizeof(s));
  uv_tcp_init(&loop, &s.tcp);
  s.tcp.data = &s;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&s.tcp, (const struct sockaddr *)&addr, 0);
  uv_listen((uv_stream_t *)&s.tcp, 4096, on_sink_conn);
  struct sockaddr_in bound;
  int len = sizeof(bound);
  uv_tcp_getsockname(&s.tcp, (struct sockaddr *)&bound, &len);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(bound.sin_port));

  kuala_client_t *c = client(&loop, url, -1);
  run_t r = {c, n, 0, 0, 0, 0, 0};
  size_t before = heap_used();
  for (int i = 0; i < n; i++) {
    start_one(&r);
  }
  /* Let every request connect and send. */
  for (int i = 0; i < 200 && s.accepted < n; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_sleep(5);
  }
  for (int i = 0; i < 50; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  size_t after = heap_used();
  printf("%-44s %8.0f bytes/request  (%d requests, %d connections accepted)\n",
         "client heap per in-flight GET (HTTP/1.1)", (double)(after - before) / n, n, s.accepted);
  measure_queued(url, n);
  kuala_client_close(c);
  for (int i = 0; i < s.nconns; i++) {
    uv_close((uv_handle_t *)s.conns[i], free_handle);
  }
  uv_close((uv_handle_t *)&s.tcp, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) {
    fprintf(stderr, "client_bench: handles left open\n");
  }
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: client_bench URL [N]\n");
    return 2;
  }
  const char *url = argv[1];
  int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5000;
  if (n <= 0) {
    fprintf(stderr, "client_bench: N must be positive\n");
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  /* The object the GETs read. */
  kuala_client_t *c = client(&loop, url, -1);
  const char *body =
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"bench\"},"
      "\"data\":{\"k\":\"v\"}}";
  kuala_client_target_t cms = {NULL, "v1", "configmaps", "default", NULL, NULL};
  run_t cr = {c, 1, 1, 0, 0, 0, 0};
  kuala_client_create(NULL, c, &cms, body, strlen(body), NULL, on_resp, &cr);
  while (cr.done < 1) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  close_client(&loop, c);

  printf("against %s (libcurl %s)\n", url, curl_version_info(CURLVERSION_NOW)->version);
  measure(&loop, url, -1, n, 1, "GET, 1 in flight, HTTP/1.1, one connection");
  measure(&loop, url, -1, n, 16, "GET, 16 in flight, HTTP/1.1");
  double h2 = measure(&loop, url, 0, n, 16, "GET, 16 in flight, HTTP/2 if offered");
  (void)h2;
  if (argc > 4) {
    const char *h2url = argv[3];
    ca_file = argv[4];
    printf("against %s (nghttpd, TLS + ALPN h2, same JSON object)\n", h2url);
    measure(&loop, h2url, 0, n, 1, "GET, 1 in flight, HTTP/2");
    measure(&loop, h2url, 0, n, 16, "GET, 16 in flight, HTTP/2 multiplexed");
    measure(&loop, h2url, 0, n, 64, "GET, 64 in flight, HTTP/2 multiplexed");
  }
  uv_loop_close(&loop);
  measure_memory(1000);
  return 0;
}
