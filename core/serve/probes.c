/*
 * probes.c: the health probe server on its own thread (see probes.h).
 *
 * Threads: the engine loop's thread owns the heartbeat timer and calls the
 * host's collect function; the probe thread owns a private uv loop, the
 * httpd server on it and the stop async handle. They share only `snap`
 * (guarded by `mu`): the last beat's time and the readiness checks.
 *
 * The httpd server is created on the engine thread before the probe thread
 * starts (httpd's parser settings are process-wide and written at start),
 * and closed on the probe thread from the stop async callback; the thread
 * then leaves uv_run and stop joins it.
 */
#include "probes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"
#include "kuala/log.h"

typedef struct {
  char *name;
  int ok;
  char *reason;
} check_t;

struct kuala__probes_s {
  /* engine thread */
  uv_loop_t *loop;
  uv_timer_t beat;
  kuala__probes_collect_fn collect;
  void *data;
  uint64_t heartbeat_ms;
  check_t *pending; /* being collected */
  size_t npending;

  /* probe thread */
  uv_loop_t ploop;
  uv_async_t stop_async;
  kuala__httpd_t *srv;
  uv_thread_t thread;
  int port;
  uint64_t stall_ms;

  /* shared, under mu */
  uv_mutex_t mu;
  uint64_t last_beat_ns;
  int collected; /* a first collection happened */
  check_t *checks;
  size_t nchecks;
};

static void free_checks(check_t *c, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    kuala_free(c[i].name);
    kuala_free(c[i].reason);
  }
  kuala_free(c);
}

/* --- engine thread: heartbeat and readiness ---------------------------------- */

static void report(void *rdata, const char *check, int ok, const char *reason)
{
  kuala__probes_t *p = rdata;
  p->pending = kuala_realloc(p->pending, (p->npending + 1) * sizeof(*p->pending));
  check_t *c = &p->pending[p->npending++];
  c->name = kuala_strdup(check ? check : "unnamed");
  c->ok = ok != 0;
  c->reason = !ok && reason ? kuala_strdup(reason) : NULL;
}

static void publish(kuala__probes_t *p)
{
  p->pending = NULL;
  p->npending = 0;
  if (p->collect) {
    p->collect(p->data, report, p);
  }
  uv_mutex_lock(&p->mu);
  check_t *old = p->checks;
  size_t nold = p->nchecks;
  p->checks = p->pending;
  p->nchecks = p->npending;
  p->collected = 1;
  p->last_beat_ns = uv_hrtime();
  uv_mutex_unlock(&p->mu);
  p->pending = NULL;
  p->npending = 0;
  free_checks(old, nold);
}

static void on_beat(uv_timer_t *t)
{
  publish(t->data);
}

void kuala__probes_refresh(kuala__probes_t *p)
{
  publish(p);
}

/* --- probe thread: HTTP ---------------------------------------------------------- */

typedef struct {
  const char *name;
  int ok;
  char reason[256];
} result_t;

static int excluded(kuala__httpd_req_t *req, const char *name)
{
  const char *ex = kuala__httpd_query(req, "exclude");
  return ex && strcmp(ex, name) == 0;
}

/* Evaluate the checks of `kind` ("healthz" or "readyz") into res (at most
 * max); returns how many. Runs under mu. */
static size_t evaluate(kuala__probes_t *p, int ready, result_t *res, size_t max)
{
  size_t n = 0;
  res[n].name = "ping";
  res[n].ok = 1;
  res[n].reason[0] = '\0';
  n++;
  if (!ready) {
    uint64_t age_ms = (uv_hrtime() - p->last_beat_ns) / 1000000;
    res[n].name = "loop";
    res[n].ok = age_ms <= p->stall_ms;
    snprintf(res[n].reason, sizeof(res[n].reason),
             "the event loop has not run for %llu ms (limit %llu ms)", (unsigned long long)age_ms,
             (unsigned long long)p->stall_ms);
    n++;
    return n;
  }
  if (!p->collected) {
    res[n].name = "started";
    res[n].ok = 0;
    snprintf(res[n].reason, sizeof(res[n].reason), "no readiness report yet");
    n++;
  }
  for (size_t i = 0; i < p->nchecks && n < max; i++) {
    res[n].name = p->checks[i].name;
    res[n].ok = p->checks[i].ok;
    snprintf(res[n].reason, sizeof(res[n].reason), "%s",
             p->checks[i].reason ? p->checks[i].reason : "");
    n++;
  }
  return n;
}

static void answer(kuala__httpd_req_t *req, int status, const char *body, size_t len)
{
  kuala__httpd_add_header(req, "X-Content-Type-Options", "nosniff");
  kuala__httpd_respond(req, status, "text/plain; charset=utf-8", body, len);
}

static void handle(void *data, kuala__httpd_req_t *req)
{
  kuala__probes_t *p = data;
  const char *path = kuala__httpd_path(req);
  const char *method = kuala__httpd_method(req);
  int ready;
  const char *sub = NULL;
  if (strncmp(path, "/healthz", 8) == 0 && (path[8] == '\0' || path[8] == '/')) {
    ready = 0;
    sub = path[8] ? path + 9 : NULL;
  } else if (strncmp(path, "/readyz", 7) == 0 && (path[7] == '\0' || path[7] == '/')) {
    ready = 1;
    sub = path[7] ? path + 8 : NULL;
  } else {
    static const char nf[] = "404 page not found\n";
    answer(req, 404, nf, sizeof(nf) - 1);
    return;
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static const char na[] = "method not allowed\n";
    answer(req, 405, na, sizeof(na) - 1);
    return;
  }
  result_t res[64];
  kuala_buf_t b = KUALA_BUF_INIT(0);
  uv_mutex_lock(&p->mu);
  size_t n = evaluate(p, ready, res, 64);
  int status = 200;
  if (sub && *sub) {
    /* One check by name. */
    size_t i = 0;
    while (i < n && strcmp(res[i].name, sub) != 0) {
      i++;
    }
    if (i == n) {
      status = 404;
      kuala_buf_printf(&b, "404 page not found\n");
    } else if (res[i].ok) {
      kuala_buf_puts(&b, "ok");
    } else {
      status = 500;
      kuala_buf_printf(&b, "internal server error: %s\n", res[i].reason);
    }
  } else {
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
      failed |= !res[i].ok && !excluded(req, res[i].name);
    }
    int verbose = kuala__httpd_query(req, "verbose") != NULL;
    if (failed || verbose) {
      for (size_t i = 0; i < n; i++) {
        if (excluded(req, res[i].name)) {
          kuala_buf_printf(&b, "[+]%s excluded: ok\n", res[i].name);
        } else if (res[i].ok) {
          kuala_buf_printf(&b, "[+]%s ok\n", res[i].name);
        } else {
          kuala_buf_printf(&b, "[-]%s failed: %s\n", res[i].name, res[i].reason);
        }
      }
      kuala_buf_printf(&b, "%s check %s\n", ready ? "readyz" : "healthz",
                       failed ? "failed" : "passed");
      status = failed ? 500 : 200;
    } else {
      kuala_buf_puts(&b, "ok");
    }
  }
  uv_mutex_unlock(&p->mu);
  answer(req, status, b.data ? b.data : "", b.len);
  kuala_buf_free(&b);
}

static void srv_closed(kuala__httpd_t *srv, void *data)
{
  (void)srv;
  kuala__probes_t *p = data;
  p->srv = NULL;
}

static void on_stop(uv_async_t *a)
{
  kuala__probes_t *p = a->data;
  if (p->srv) {
    kuala__httpd_close(p->srv, srv_closed, p);
  }
  uv_close((uv_handle_t *)a, NULL);
}

static void thread_main(void *arg)
{
  kuala__probes_t *p = arg;
  uv_run(&p->ploop, UV_RUN_DEFAULT);
}

/* --- lifecycle ---------------------------------------------------------------------- */

int kuala__probes_start(kuala__probes_t **out, uv_loop_t *loop, const kuala__probes_opts_t *opts)
{
  *out = NULL;
  kuala__probes_t *p = kuala_calloc(1, sizeof(*p));
  p->loop = loop;
  p->collect = opts->collect;
  p->data = opts->data;
  p->heartbeat_ms = opts->heartbeat_ms ? opts->heartbeat_ms : 500;
  p->stall_ms = opts->stall_ms ? opts->stall_ms : 30000;
  uv_mutex_init(&p->mu);
  int rc = uv_loop_init(&p->ploop);
  if (rc) {
    uv_mutex_destroy(&p->mu);
    kuala_free(p);
    return KUALA_EIO;
  }
  kuala__httpd_opts_t ho;
  memset(&ho, 0, sizeof(ho));
  ho.host = opts->host ? opts->host : "0.0.0.0";
  ho.port = opts->port;
  ho.max_body = 4096;
  ho.handler = handle;
  ho.data = p;
  rc = kuala__httpd_start(&p->srv, &p->ploop, &ho);
  if (rc) {
    uv_run(&p->ploop, UV_RUN_DEFAULT);
    uv_loop_close(&p->ploop);
    uv_mutex_destroy(&p->mu);
    kuala_free(p);
    return rc;
  }
  p->port = kuala__httpd_port(p->srv);
  uv_async_init(&p->ploop, &p->stop_async, on_stop);
  p->stop_async.data = p;
  /* First beat before the server can answer, then the timer. */
  publish(p);
  uv_timer_init(loop, &p->beat);
  p->beat.data = p;
  uv_timer_start(&p->beat, on_beat, p->heartbeat_ms, p->heartbeat_ms);
  rc = uv_thread_create(&p->thread, thread_main, p);
  if (rc) {
    /* Unreachable in practice; fail loudly rather than half-run. */
    KUALA_LOG(KUALA_LOG_ERROR, "cannot start the probe thread", "error", uv_strerror(rc));
    abort();
  }
  *out = p;
  return 0;
}

int kuala__probes_port(const kuala__probes_t *p)
{
  return p->port;
}

static void beat_closed(uv_handle_t *h)
{
  kuala__probes_t *p = h->data;
  free_checks(p->checks, p->nchecks);
  uv_mutex_destroy(&p->mu);
  kuala_free(p);
}

void kuala__probes_stop(kuala__probes_t *p)
{
  uv_async_send(&p->stop_async);
  uv_thread_join(&p->thread);
  uv_loop_close(&p->ploop);
  uv_timer_stop(&p->beat);
  uv_close((uv_handle_t *)&p->beat, beat_closed);
}
