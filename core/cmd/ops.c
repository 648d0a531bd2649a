/*
 * ops.c: metrics server, health probes and leader election around the
 * engine of `kuala run` / `kuala dev` (see ops.h and docs/operations.md).
 *
 * Ownership: ops borrows the engine (and through it the manager, client and
 * informers) from start until detach; after detach nothing here reads the
 * engine. It owns the metrics httpd (engine loop), the probe server (own
 * thread, probes.c), the elector and the elector's own API client, so
 * that renewals never queue behind reconcile traffic and the Lease can be
 * released after the engine's client has closed.
 *
 * Leadership only moves the manager's hold: a standby loads bundles,
 * installs CRDs and keeps its informers synced, but its controllers start
 * no reconcile. Losing the Lease holds every controller at once (running
 * reconciles finish) and the process campaigns again with its caches warm.
 * controller-runtime exits the process instead; see docs/operations.md.
 */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/controller.h"
#include "kuala/error.h"
#include "kuala/leader.h"
#include "kuala/log.h"
#include "kuala/manager.h"
#include "kuala/metrics.h"
#include "serve/httpd.h"
#include "serve/probes.h"

#define NS_FILE "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

struct kuala__ops_s {
  uv_loop_t *loop;
  kuala_engine_t *engine; /* NULL after detach */
  kuala__httpd_t *metrics;
  kuala__probes_t *probes;
  kuala_client_t *lclient;
  kuala_leader_t *leader;
  char *leader_ns;
  int engine_ready;
  kuala__ops_stopped_cb stopped;
  void *stopped_data;
};

/* --- addresses ---------------------------------------------------------------- */

int kuala__ops_parse_addr(const char *addr, char *hostbuf, size_t hostlen, int *port)
{
  *port = -1;
  if (addr == NULL || strcmp(addr, "0") == 0 || *addr == '\0') {
    snprintf(hostbuf, hostlen, "%s", "");
    return 0;
  }
  const char *colon = strrchr(addr, ':');
  if (colon == NULL) {
    return -1;
  }
  const char *h = addr;
  size_t hl = (size_t)(colon - addr);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  if (hl == 0) {
    h = "0.0.0.0";
    hl = strlen(h);
  } else if (hl == 9 && strncmp(h, "localhost", 9) == 0) {
    h = "127.0.0.1";
    hl = strlen(h);
  }
  if (hl + 1 > hostlen) {
    return -1;
  }
  memcpy(hostbuf, h, hl);
  hostbuf[hl] = '\0';
  char *end = NULL;
  long p = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || *end != '\0' || p < 0 || p > 65535) {
    return -1;
  }
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (uv_ip4_addr(hostbuf, 0, &a4) != 0 && uv_ip6_addr(hostbuf, 0, &a6) != 0) {
    return -1;
  }
  *port = (int)p;
  return 0;
}

/* --- metrics server ------------------------------------------------------------- */

static int bundles_json(kuala_engine_t *e, char **out, size_t *len)
{
  *out = NULL;
  *len = 0;
  return kuala_engine_bundles_json(e, out, len);
}

static void metrics_handle(void *data, kuala__httpd_req_t *req)
{
  kuala__ops_t *ops = data;
  const char *path = kuala__httpd_path(req);
  const char *method = kuala__httpd_method(req);
  int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (ops->engine == NULL) {
    static const char gone[] = "shutting down\n";
    kuala__httpd_respond(req, 503, "text/plain; charset=utf-8", gone, sizeof(gone) - 1);
    return;
  }
  if (get && strcmp(path, "/metrics") == 0) {
    kuala_metrics_sources_t src;
    memset(&src, 0, sizeof(src));
    src.manager = kuala_engine_manager(ops->engine);
    src.client = kuala_engine_client(ops->engine);
    src.informers = kuala_engine_informers(ops->engine);
    src.leader = ops->leader;
    src.process = 1;
    char *bj = NULL;
    size_t bjlen = 0;
    if (bundles_json(ops->engine, &bj, &bjlen) == 0) {
      src.bundles_json = bj;
      src.bundles_json_len = bjlen;
    }
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_metrics_render(&src, &b);
    kuala_free(bj);
    kuala__httpd_respond(req, 200, KUALA_METRICS_CONTENT_TYPE, b.data ? b.data : "", b.len);
    kuala_buf_free(&b);
    return;
  }
  if (get && strcmp(path, "/bundles") == 0) {
    char *bj = NULL;
    size_t bjlen = 0;
    int rc = bundles_json(ops->engine, &bj, &bjlen);
    if (rc) {
      char msg[128];
      int n = snprintf(msg, sizeof(msg), "{\"error\":\"%s\"}\n", kuala_strerror(rc));
      kuala__httpd_respond(req, 503, "application/json", msg, (size_t)n);
    } else {
      kuala__httpd_respond(req, 200, "application/json", bj, bjlen);
    }
    kuala_free(bj);
    return;
  }
  static const char nf[] = "404 page not found\n";
  kuala__httpd_respond(req, get ? 404 : 405, "text/plain; charset=utf-8", nf, sizeof(nf) - 1);
}

/* --- readiness --------------------------------------------------------------------- */

static void collect(void *data, kuala__probes_report_fn report, void *rdata)
{
  kuala__ops_t *ops = data;
  if (ops->engine == NULL) {
    report(rdata, "engine", 0, "shutting down");
    return;
  }
  report(rdata, "engine", ops->engine_ready,
         "bundles are still loading (CRDs not Established or controllers not started)");
  kuala_manager_t *m = kuala_engine_manager(ops->engine);
  size_t n = kuala_manager_controller_count(m);
  kuala_buf_t why = KUALA_BUF_INIT(1024);
  size_t waiting = 0;
  for (size_t i = 0; i < n; i++) {
    kuala_controller_t *c = kuala_manager_controller(m, i);
    kuala_controller_stats_t st;
    kuala_controller_stats(c, &st);
    if (!st.synced) {
      kuala_buf_printf(&why, "%s%s", waiting++ ? ", " : "", kuala_controller_name(c));
    }
  }
  if (waiting) {
    char msg[1200];
    snprintf(msg, sizeof(msg), "caches not synced for controller(s) %s",
             why.data ? why.data : "(names too long)");
    report(rdata, "caches", 0, msg);
  } else {
    report(rdata, "caches", 1, NULL);
  }
  kuala_buf_free(&why);
}

/* --- leader election ------------------------------------------------------------------ */

static void started_leading(void *data)
{
  kuala__ops_t *ops = data;
  if (ops->engine) {
    kuala_manager_hold(kuala_engine_manager(ops->engine), 0);
  }
}

static void stopped_leading(void *data)
{
  kuala__ops_t *ops = data;
  if (ops->engine) {
    KUALA_LOG(KUALA_LOG_WARN, "leadership lost: every controller holds; campaigning again");
    kuala_manager_hold(kuala_engine_manager(ops->engine), 1);
  }
}

static char *pod_namespace(void)
{
  FILE *f = fopen(NS_FILE, "r");
  char ns[256] = "";
  if (f) {
    if (fgets(ns, sizeof(ns), f) == NULL) {
      ns[0] = '\0';
    }
    fclose(f);
    ns[strcspn(ns, " \t\r\n")] = '\0';
  }
  return kuala_strdup(ns[0] ? ns : "default");
}

static uint64_t ms_or(double s, uint64_t def)
{
  return s > 0 ? (uint64_t)(s * 1000.0 + 0.5) : def;
}

static int start_leader(kuala__ops_t *ops, const kuala_client_config_t *cfg,
                        const kuala__ops_opts_t *o)
{
  int rc = kuala_client_new(&ops->lclient, ops->loop, cfg);
  if (rc) {
    ops->lclient = NULL;
    return rc;
  }
  ops->leader_ns = o->leader_ns && *o->leader_ns ? kuala_strdup(o->leader_ns) : pod_namespace();
  char *id = kuala_leader_default_identity();
  kuala_leader_opts_t lo;
  memset(&lo, 0, sizeof(lo));
  lo.ns = ops->leader_ns;
  lo.name = o->leader_id && *o->leader_id ? o->leader_id : "kuala";
  lo.identity = id;
  lo.lease_duration_ms = ms_or(o->lease_s, 15000);
  lo.renew_deadline_ms = ms_or(o->renew_s, 10000);
  lo.retry_period_ms = ms_or(o->retry_s, 2000);
  lo.started_leading = started_leading;
  lo.stopped_leading = stopped_leading;
  lo.data = ops;
  rc = kuala_leader_new(&ops->leader, ops->loop, ops->lclient, &lo);
  kuala_free(id);
  if (rc) {
    fprintf(stderr,
            "kuala: leader election needs retry period < renew deadline < lease duration\n");
    ops->leader = NULL;
    return rc;
  }
  kuala_manager_hold(kuala_engine_manager(ops->engine), 1);
  return kuala_leader_start(ops->leader);
}

/* --- lifecycle -------------------------------------------------------------------------- */

static int start_metrics(kuala__ops_t *ops, const char *addr)
{
  char host[128];
  int port;
  if (kuala__ops_parse_addr(addr ? addr : ":8080", host, sizeof(host), &port)) {
    return KUALA_EINVAL;
  }
  if (port < 0) {
    return 0;
  }
  kuala__httpd_opts_t ho;
  memset(&ho, 0, sizeof(ho));
  ho.host = host;
  ho.port = port;
  ho.max_body = 4096;
  ho.handler = metrics_handle;
  ho.data = ops;
  int rc = kuala__httpd_start(&ops->metrics, ops->loop, &ho);
  if (rc) {
    ops->metrics = NULL;
    KUALA_LOG(KUALA_LOG_ERROR, "metrics server not started", "address", addr ? addr : ":8080",
              "error", kuala_strerror(rc));
    return 0;
  }
  char where[160];
  snprintf(where, sizeof(where), "%s:%d", host, kuala__httpd_port(ops->metrics));
  KUALA_LOG(KUALA_LOG_INFO, "serving metrics", "address", where, "paths", "/metrics /bundles");
  return 0;
}

static int start_probes(kuala__ops_t *ops, const kuala__ops_opts_t *o)
{
  char host[128];
  int port;
  const char *addr = o->probe_addr ? o->probe_addr : ":8081";
  if (kuala__ops_parse_addr(addr, host, sizeof(host), &port)) {
    return KUALA_EINVAL;
  }
  if (port < 0) {
    return 0;
  }
  kuala__probes_opts_t po;
  memset(&po, 0, sizeof(po));
  po.host = host;
  po.port = port;
  po.stall_ms = ms_or(o->health_stall_s, 30000);
  po.collect = collect;
  po.data = ops;
  int rc = kuala__probes_start(&ops->probes, ops->loop, &po);
  if (rc) {
    ops->probes = NULL;
    KUALA_LOG(KUALA_LOG_ERROR, "health probe server not started", "address", addr, "error",
              kuala_strerror(rc));
    return 0;
  }
  char where[160];
  snprintf(where, sizeof(where), "%s:%d", host, kuala__probes_port(ops->probes));
  KUALA_LOG(KUALA_LOG_INFO, "serving health probes", "address", where, "paths", "/healthz /readyz");
  return 0;
}

int kuala__ops_start(kuala__ops_t **out, uv_loop_t *loop, kuala_engine_t *e,
                     const kuala_client_config_t *cfg, const kuala__ops_opts_t *opts)
{
  *out = NULL;
  kuala__ops_t *ops = kuala_calloc(1, sizeof(*ops));
  ops->loop = loop;
  ops->engine = e;
  /* The metrics server starts first: httpd's shared parser settings are
   * written at each start, and the probe thread reads them once it runs. */
  int rc = start_metrics(ops, opts->metrics_addr);
  if (rc == 0) {
    rc = start_probes(ops, opts);
  }
  if (rc == 0 && opts->leader_elect) {
    rc = start_leader(ops, cfg, opts);
  }
  *out = ops;
  return rc;
}

void kuala__ops_engine_ready(kuala__ops_t *ops)
{
  ops->engine_ready = 1;
  if (ops->probes) {
    kuala__probes_refresh(ops->probes);
  }
}

static void metrics_closed(kuala__httpd_t *srv, void *data)
{
  (void)srv;
  (void)data;
}

void kuala__ops_detach(kuala__ops_t *ops)
{
  if (ops->engine == NULL) {
    return;
  }
  if (ops->probes) {
    kuala__probes_stop(ops->probes);
    ops->probes = NULL;
  }
  if (ops->metrics) {
    kuala__httpd_close(ops->metrics, metrics_closed, NULL);
    ops->metrics = NULL;
  }
  ops->engine = NULL;
}

static void finish(kuala__ops_t *ops)
{
  kuala__ops_stopped_cb cb = ops->stopped;
  void *data = ops->stopped_data;
  kuala_free(ops->leader_ns);
  kuala_free(ops);
  if (cb) {
    cb(data);
  }
}

static void leader_stopped(void *data)
{
  kuala__ops_t *ops = data;
  ops->leader = NULL;
  if (ops->lclient) {
    kuala_client_close(ops->lclient);
    ops->lclient = NULL;
  }
  finish(ops);
}

void kuala__ops_stop(kuala__ops_t *ops, kuala__ops_stopped_cb cb, void *data)
{
  kuala__ops_detach(ops);
  ops->stopped = cb;
  ops->stopped_data = data;
  if (ops->leader) {
    kuala_leader_stop(ops->leader, leader_stopped, ops);
    return;
  }
  if (ops->lclient) {
    kuala_client_close(ops->lclient);
    ops->lclient = NULL;
  }
  finish(ops);
}
