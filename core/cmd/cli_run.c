/*
 * cli_run.c: `kuala run` (engine against a cluster) and `kuala dev` (engine
 * against a local kuala-apiserver child).
 *
 * Both build one uv loop, an engine (kuala/engine.h) and signal handlers:
 * SIGINT/SIGTERM stop the engine gracefully, a second signal exits at once.
 * Configuration follows kubectl: --kubeconfig, then $KUBECONFIG, then
 * ~/.kube/config, then the in-cluster service account.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "dev_samples.h"
#include "devcluster.h"
#include "flags.h"
#include "base/mem.h"
#include "kuala/alloc.h"
#include "kuala/engine.h"
#include "kuala/error.h"
#include "kuala/kubeconfig.h"
#include "kuala/log.h"
#include "ops.h"

typedef struct {
  const char *kubeconfig;
  const char *context;
  double exit_after;     /* seconds; 0 = run until a signal */
  double kube_api_qps;   /* -1 = not given (no client-side limit); 0 = none */
  double kube_api_burst; /* 0 = not given */
  double graceful_s;     /* -1 = not given (30 s) */
  int impersonate;       /* --impersonate-bundles */
  int streaming;         /* --streaming-list; -1 = default (on) */
  kuala_runtime_opts_t rt;
  kuala__ops_opts_t ops; /* metrics, probes, leader election (ops.h) */
  char **bundles;
  size_t nbundles;
  int watch;      /* -1 = default (on for dev, off for run) */
  int configmaps; /* -1 = default (on when no directory is named) */
  const char *bundle_ns;
  double grace_s; /* reload grace period; 0 = 30 */
} run_opts_t;

typedef struct {
  uv_loop_t loop;
  run_opts_t o;
  kuala_engine_t *engine;
  kuala__ops_t *ops;
  kuala__devcluster_t *dev;
  uv_signal_t sigint, sigterm;
  uv_timer_t exit_timer;
  int stopping;
  int status;
} app_t;

void kuala__cli_run_usage(FILE *f)
{
  fprintf(
      f,
      "usage: kuala run [flags] BUNDLE_DIR...\n"
      "       kuala dev [flags] [BUNDLE_DIR...]   (default: every controllers/*/ bundle)\n"
      "\n"
      "flags (--flag=value or --flag value):\n"
      "  --kubeconfig=FILE      kubeconfig (default $KUBECONFIG, ~/.kube/config, in-cluster)\n"
      "  --context=NAME         kubeconfig context (default current-context)\n"
      "  --memory-limit-mb=N    memory cap per bundle VM (default 64)\n"
      "  --cpu-budget-ms=N      CPU time per call into Lua (default 1000)\n"
      "  --reconcile-timeout-ms=N  wall clock per reconcile (default 30000)\n"
      "  --exit-after=SECONDS   stop gracefully after this long (for demos and tests)\n"
      "  --watch[=false]        reload a bundle directory when a file changes\n"
      "                         (default: on for dev, off for run)\n"
      "  --bundle-configmaps[=false]  load bundles from ConfigMaps labelled\n"
      "                         kuala.dev/bundle=NAME (default: on when no directory is named)\n"
      "  --bundle-namespace=NS  where those ConfigMaps live (default: the pod's namespace,\n"
      "                         else default)\n"
      "  --streaming-list[=false]  start informers with a streaming list (watch with\n"
      "                         sendInitialEvents), falling back to paged list + watch\n"
      "                         when the server refuses it (default: on)\n"
      "  --reload-grace-period=SECONDS  how long a replaced version's reconciles may\n"
      "                         finish before they are cancelled (default 30)\n"
      "  --metrics-bind-address=ADDR  /metrics and /bundles (default :8080; 0 = off)\n"
      "  --health-probe-bind-address=ADDR  /healthz and /readyz (default :8081; 0 = off)\n"
      "  --health-loop-timeout=DUR  /healthz fails when the loop stalls this long (30s)\n"
      "  --leader-elect          run reconciles only while holding the Lease\n"
      "  --leader-election-id=NAME  Lease name (default kuala)\n"
      "  --leader-election-namespace=NS  Lease namespace (default: the pod's, else default)\n"
      "  --leader-election-lease-duration=DUR, --leader-election-renew-deadline=DUR,\n"
      "  --leader-election-retry-period=DUR  (default 15s, 10s, 2s; DUR: 15, 15s, 500ms)\n"
      "  --impersonate-bundles  each bundle's calls impersonate its ServiceAccount\n"
      "                         system:serviceaccount:NS:kuala-BUNDLE (NS: $POD_NAMESPACE\n"
      "                         or the kubeconfig's namespace); see docs/permissions.md\n"

      "  --graceful-shutdown-timeout=SECONDS  on SIGTERM/SIGINT, how long running\n"
      "                         reconciles may take to finish before they are cancelled\n"
      "                         (default 30; a second signal exits at once)\n"
      "  --kube-api-qps=N       client-side limit on API requests per second\n"
      "                         (default 0: none; the server's priority and fairness and\n"
      "                         429 Retry-After answers pace the client)\n"
      "  --kube-api-burst=N     requests allowed at once above --kube-api-qps\n"
      "                         (default 2 x qps)\n"
      "  --log-level=LEVEL      error|warn|info|debug|trace (default info)\n"
      "  --log-format=FMT       text|json (default text)\n");
}

/* One flag with a value: 1 when argv[*i] is `name` (a missing or bad
 * value sets *bad), 0 otherwise. */
static int str_flag(int argc, char **argv, int *i, const char *name, const char **v, int *bad)
{
  int m = kuala__flag_value(argc, argv, i, name, v);
  if (m < 0) {
    *bad = 1;
  }
  return m != 0;
}

static int num_flag(int argc, char **argv, int *i, const char *name, double *d, int *bad)
{
  const char *v = NULL;
  if (!str_flag(argc, argv, i, name, &v, bad)) {
    return 0;
  }
  if (!*bad && kuala__flag_num(name, v, d)) {
    *bad = 1;
  }
  return 1;
}

/* A duration: seconds as a number, or with an "s" or "ms" suffix. */
static int dur_flag(int argc, char **argv, int *i, const char *name, double *d, int *bad)
{
  const char *v = NULL;
  if (!str_flag(argc, argv, i, name, &v, bad)) {
    return 0;
  }
  if (*bad) {
    return 1;
  }
  char num[64];
  size_t n = strlen(v);
  double scale = 1;
  if (n > 2 && strcmp(v + n - 2, "ms") == 0) {
    n -= 2;
    scale = 0.001;
  } else if (n > 1 && v[n - 1] == 's') {
    n -= 1;
  }
  snprintf(num, sizeof(num), "%.*s", (int)n, v);
  if (n >= sizeof(num) || kuala__flag_num(name, num, d)) {
    *bad = 1;
  }
  *d *= scale;
  return 1;
}

/* Parse the flags of `run` and `dev`. Returns 0, 1 when help was asked
 * for (printed; exit 0), or -1 on a bad flag (printed; exit 2). */
static int parse_args(int argc, char **argv, run_opts_t *o)
{
  memset(o, 0, sizeof(o[0]));
  o->kube_api_qps = -1;
  o->graceful_s = -1;
  o->bundles = kuala_calloc((size_t)argc + 1, sizeof(char *));
  o->watch = -1;
  o->configmaps = -1;
  o->streaming = -1;
  /* Tests point these at 127.0.0.1:0 so parallel runs never collide. */
  o->ops.metrics_addr = getenv("KUALA_METRICS_BIND_ADDRESS");
  o->ops.probe_addr = getenv("KUALA_HEALTH_PROBE_BIND_ADDRESS");
  int bad = 0;
  for (int i = 1; i < argc && !bad; i++) {
    const char *a = argv[i];
    double d = 0;
    int fb = kuala__flag_bool(argv, i, "--watch", &o->watch);
    if (fb == 0) {
      fb = kuala__flag_bool(argv, i, "--bundle-configmaps", &o->configmaps);
    }
    if (fb == 0) {
      fb = kuala__flag_bool(argv, i, "--streaming-list", &o->streaming);
    }
    if (fb) {
      bad = fb < 0;
      continue;
    }
    if (str_flag(argc, argv, &i, "--bundle-namespace", &o->bundle_ns, &bad) ||
        num_flag(argc, argv, &i, "--reload-grace-period", &o->grace_s, &bad)) {
      continue;
    }
    if (kuala__flag_is_help(a)) {
      kuala__cli_run_usage(stdout);
      return 1;
    }
    int g = kuala__flag_global(argc, argv, &i);
    if (g != 0) {
      bad = g < 0;
      continue;
    }
    if (str_flag(argc, argv, &i, "--kubeconfig", &o->kubeconfig, &bad) ||
        str_flag(argc, argv, &i, "--context", &o->context, &bad)) {
      continue;
    }
    int on = 0, m = kuala__flag_bool(argv, i, "--leader-elect", &on);
    if (m != 0) {
      bad |= m < 0;
      o->ops.leader_elect = on;
      continue;
    }
    if (str_flag(argc, argv, &i, "--metrics-bind-address", &o->ops.metrics_addr, &bad) ||
        str_flag(argc, argv, &i, "--health-probe-bind-address", &o->ops.probe_addr, &bad) ||
        str_flag(argc, argv, &i, "--leader-election-id", &o->ops.leader_id, &bad) ||
        str_flag(argc, argv, &i, "--leader-election-namespace", &o->ops.leader_ns, &bad) ||
        dur_flag(argc, argv, &i, "--health-loop-timeout", &o->ops.health_stall_s, &bad) ||
        dur_flag(argc, argv, &i, "--leader-election-lease-duration", &o->ops.lease_s, &bad) ||
        dur_flag(argc, argv, &i, "--leader-election-renew-deadline", &o->ops.renew_s, &bad) ||
        dur_flag(argc, argv, &i, "--leader-election-retry-period", &o->ops.retry_s, &bad)) {
      continue;
    }
    if (num_flag(argc, argv, &i, "--memory-limit-mb", &d, &bad)) {
      o->rt.memory_limit = (size_t)(d * 1024 * 1024);
    } else if (num_flag(argc, argv, &i, "--cpu-budget-ms", &d, &bad)) {
      o->rt.cpu_budget_ms = (uint32_t)d;
    } else if (num_flag(argc, argv, &i, "--reconcile-timeout-ms", &d, &bad)) {
      o->rt.deadline_ms = (uint32_t)d;
    } else if (num_flag(argc, argv, &i, "--exit-after", &o->exit_after, &bad) ||
               num_flag(argc, argv, &i, "--graceful-shutdown-timeout", &o->graceful_s, &bad) ||
               num_flag(argc, argv, &i, "--kube-api-qps", &o->kube_api_qps, &bad) ||
               num_flag(argc, argv, &i, "--kube-api-burst", &o->kube_api_burst, &bad)) {
      continue;
    } else if ((d = kuala__flag_bool(argv, i, "--impersonate-bundles", &o->impersonate)) != 0) {
      bad = d < 0;
    } else if (a[0] == '-') {
      fprintf(stderr, "kuala %s: unknown flag %s\n", argv[0], a);
      kuala__cli_run_usage(stderr);
      return -1;
    } else {
      struct stat st;
      if (stat(a, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kuala %s: %s is not a bundle directory\n", argv[0], a);
        return -1;
      }
      o->bundles[o->nbundles++] = (char *)a;
    }
  }
  char host[128];
  int port;
  if (!bad && (kuala__ops_parse_addr(o->ops.metrics_addr, host, sizeof(host), &port) ||
               kuala__ops_parse_addr(o->ops.probe_addr, host, sizeof(host), &port))) {
    fprintf(stderr, "kuala %s: a bind address is host:port, :port or 0\n", argv[0]);
    bad = 1;
  }
  double lease = o->ops.lease_s > 0 ? o->ops.lease_s : 15;
  double renew = o->ops.renew_s > 0 ? o->ops.renew_s : 10;
  double retry = o->ops.retry_s > 0 ? o->ops.retry_s : 2;
  if (!bad && !(retry < renew && renew < lease)) {
    fprintf(stderr,
            "kuala %s: leader election needs retry period (%gs) < renew deadline (%gs) < "
            "lease duration (%gs)\n",
            argv[0], retry, renew, lease);
    bad = 1;
  }
  return bad ? -1 : 0;
}

/* --- stop ------------------------------------------------------------------ */

static void handle_close_noop(uv_handle_t *h)
{
  (void)h;
}

static void ops_stopped(void *data)
{
  app_t *app = data;
  if (app->dev) {
    kuala__devcluster_stop(app->dev);
    app->dev = NULL;
  }
  uv_close((uv_handle_t *)&app->sigint, handle_close_noop);
  uv_close((uv_handle_t *)&app->sigterm, handle_close_noop);
  uv_close((uv_handle_t *)&app->exit_timer, handle_close_noop);
}

/* The engine is gone: release the Lease (ops), then the rest. */
static void engine_stopped(void *data)
{
  app_t *app = data;
  app->engine = NULL;
  if (app->ops) {
    kuala__ops_t *ops = app->ops;
    app->ops = NULL;
    kuala__ops_stop(ops, ops_stopped, app);
  } else {
    ops_stopped(app);
  }
}

static void app_stop(app_t *app)
{
  if (app->stopping) {
    return;
  }
  app->stopping = 1;
  uv_timer_stop(&app->exit_timer);
  if (app->ops) {
    kuala__ops_detach(app->ops);
  }
  if (app->engine) {
    kuala_engine_stop(app->engine, engine_stopped, app);
  } else {
    engine_stopped(app);
  }
}

static void on_signal(uv_signal_t *s, int signum)
{
  app_t *app = s->data;
  if (app->stopping) {
    fprintf(stderr, "kuala: second signal, exiting now\n");
    exit(130);
  }
  KUALA_LOG(KUALA_LOG_INFO, signum == SIGINT ? "interrupted, stopping" : "terminated, stopping");
  app_stop(app);
}

static void on_exit_timer(uv_timer_t *t)
{
  app_t *app = t->data;
  KUALA_LOG(KUALA_LOG_INFO, "--exit-after reached, stopping");
  app_stop(app);
}

/* --- start ------------------------------------------------------------------ */

static void engine_ready(void *data, const kuala_engine_stats_t *st)
{
  app_t *app = data;
  char b[32], f[32], c[32], r[32];
  snprintf(b, sizeof(b), "%zu", st->bundles_loaded);
  snprintf(f, sizeof(f), "%zu", st->bundles_failed);
  snprintf(c, sizeof(c), "%zu", st->crds_installed);
  snprintf(r, sizeof(r), "%zu", st->controllers_running);
  KUALA_LOG(KUALA_LOG_INFO, "controllers running", "bundles", b, "failed", f, "crds", c,
            "controllers", r);
  if (st->bundles_loaded == 0 && app->o.nbundles > 0) {
    app->status = 1;
  }
  if (app->dev && app->engine) {
    /* kuala dev: every bundle's samples/, once the CRDs are Established. */
    const char *const *dirs;
    size_t n = kuala_engine_bundle_dirs(app->engine, &dirs);
    size_t files = 0;
    for (size_t i = 0; i < n; i++) {
      files += kuala__dev_apply_samples(app->engine, dirs[i]);
    }
    if (files > 0) {
      fprintf(stderr, "kuala dev: applied the samples/ of the bundles (%zu files)\n", files);
    }
  }
  if (app->ops) {
    kuala__ops_engine_ready(app->ops);
  }
}

static int start_engine(app_t *app, const kuala_client_config_t *cfg)
{
  kuala_engine_opts_t eo;
  memset(&eo, 0, sizeof(eo));
  eo.client = cfg;
  eo.bundles = (const char *const *)app->o.bundles;
  eo.nbundles = app->o.nbundles;
  eo.runtime = app->o.rt;
  if (app->o.graceful_s >= 0) {
    eo.graceful_shutdown_ms = app->o.graceful_s > 0 ? (int64_t)(app->o.graceful_s * 1000) : -1;
  }
  char q[32] = "none", b[32] = "none";
  if (cfg->qps > 0) {
    snprintf(q, sizeof(q), "%g", cfg->qps);
    snprintf(b, sizeof(b), "%d",
             cfg->burst        ? cfg->burst
             : cfg->qps >= 0.5 ? (int)(2 * cfg->qps)
                               : 1);
  }
  KUALA_LOG(KUALA_LOG_INFO, "API client", "server", cfg->server, "client_qps", q, "client_burst",
            b);
  eo.watch = app->o.watch > 0;
  eo.no_streaming_list = app->o.streaming == 0;
  eo.configmaps = app->o.configmaps > 0 || (app->o.configmaps < 0 && app->o.nbundles == 0);
  eo.bundle_namespace = app->o.bundle_ns;
  eo.grace_ms = (uint64_t)(app->o.grace_s * 1000);
  const char *pod_ns = getenv("POD_NAMESPACE");
  if (app->o.impersonate) {
    eo.impersonate_ns = pod_ns && *pod_ns ? pod_ns : cfg->ns && *cfg->ns ? cfg->ns : "default";
  }
  int rc = kuala_engine_new(&app->engine, &app->loop, &eo);
  if (rc) {
    return rc;
  }
  rc = kuala__ops_start(&app->ops, &app->loop, app->engine, cfg, &app->o.ops);
  if (rc) {
    return rc;
  }
  return kuala_engine_start(app->engine, engine_ready, app);
}

/* --kube-api-qps / --kube-api-burst over the client's default, which is no
 * client-side limit (docs/client.md says why). */
static void apply_rate_flags(const run_opts_t *o, kuala_client_config_t *cfg)
{
  if (o->kube_api_qps > 0) {
    cfg->qps = o->kube_api_qps;
    cfg->burst = o->kube_api_burst >= 1e6 ? 1000000 : (int)o->kube_api_burst; /* 0: 2 x qps */
  } else if (o->kube_api_qps == 0) {
    cfg->qps = KUALA_CLIENT_QPS_OFF;
  }
}

/* kubectl's order: --kubeconfig, else $KUBECONFIG, else ~/.kube/config;
 * then the in-cluster service account. When none works, every source
 * tried is named with what was wrong with it. */
static int load_config(const run_opts_t *o, const char *path, kuala_client_config_t *cfg)
{
  char *err = NULL;
  kuala_kubeconfig_opts_t ko = {path ? path : o->kubeconfig, o->context, NULL};
  int rc = kuala_kubeconfig_load(cfg, &ko, &err);
  if (rc && (path || o->kubeconfig)) {
    fprintf(stderr, "kuala: no usable cluster configuration: --kubeconfig %s: %s\n",
            path ? path : o->kubeconfig, err ? err : kuala_strerror(rc));
  } else if (rc == KUALA_ENOENT) {
    char *cluster_err = NULL;
    kuala_client_config_free(cfg);
    int crc = kuala_kubeconfig_in_cluster(cfg, NULL, &cluster_err);
    if (crc) {
      const char *env = getenv("KUBECONFIG");
      const char *home = getenv("HOME");
      fprintf(stderr, "kuala: no usable cluster configuration; tried:\n");
      fprintf(stderr, "  --kubeconfig: not given\n");
      if (env && *env) {
        fprintf(stderr, "  $KUBECONFIG (%s): %s\n", env, err ? err : kuala_strerror(rc));
        fprintf(stderr, "  ~/.kube/config: not read ($KUBECONFIG is set)\n");
      } else {
        fprintf(stderr, "  $KUBECONFIG: not set\n");
        fprintf(stderr, "  ~/.kube/config (%s/.kube/config): %s\n", home ? home : "$HOME unset",
                err ? err : kuala_strerror(rc));
      }
      fprintf(stderr, "  in-cluster service account: %s\n",
              cluster_err ? cluster_err : kuala_strerror(crc));
    }
    kuala_free(cluster_err);
    rc = crc;
  } else if (rc) {
    fprintf(stderr, "kuala: no usable cluster configuration: %s\n", err ? err : kuala_strerror(rc));
  }
  kuala_free(err);
  if (rc == 0) {
    apply_rate_flags(o, cfg);
  }
  return rc;
}

static void app_init(app_t *app)
{
  uv_loop_init(&app->loop);
  uv_signal_init(&app->loop, &app->sigint);
  uv_signal_init(&app->loop, &app->sigterm);
  uv_timer_init(&app->loop, &app->exit_timer);
  app->sigint.data = app->sigterm.data = app->exit_timer.data = app;
  uv_signal_start(&app->sigint, on_signal, SIGINT);
  uv_signal_start(&app->sigterm, on_signal, SIGTERM);
  if (app->o.exit_after > 0) {
    uv_timer_start(&app->exit_timer, on_exit_timer, (uint64_t)(app->o.exit_after * 1000), 0);
  }
}

static int app_finish(app_t *app)
{
  uv_run(&app->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&app->loop);
  if (rc) {
    KUALA_LOG(KUALA_LOG_WARN, "handles left open at exit", "error", uv_strerror(rc));
  }
  kuala_free(app->o.bundles);
  return app->status;
}

int kuala__cli_run(int argc, char **argv)
{
  app_t app;
  memset(&app, 0, sizeof(app));
  int pa = parse_args(argc, argv, &app.o);
  if (pa) {
    kuala_free(app.o.bundles);
    return pa > 0 ? 0 : 2;
  }
  if (app.o.nbundles == 0 && app.o.configmaps == 0) {
    fprintf(stderr, "kuala run: name a bundle directory, or allow --bundle-configmaps\n");
    kuala__cli_run_usage(stderr);
    kuala_free(app.o.bundles);
    return 2;
  }
  kuala__mem_tune(); /* heap policy of the kuala process (base/mem.h) */
  kuala_client_config_t cfg;
  if (load_config(&app.o, NULL, &cfg)) {
    kuala_client_config_free(&cfg);
    kuala_free(app.o.bundles);
    return 1;
  }
  app_init(&app);
  int rc = start_engine(&app, &cfg);
  kuala_client_config_free(&cfg);
  if (rc) {
    fprintf(stderr, "kuala run: %s\n", kuala_strerror(rc));
    app.status = 1;
    app_stop(&app);
  }
  return app_finish(&app);
}

/* --- dev ----------------------------------------------------------------------- */

static void dev_ready(void *data, int err, const char *kubeconfig, const char *server)
{
  app_t *app = data;
  if (err) {
    fprintf(stderr, "kuala dev: the local API emulator did not start: %s\n", kuala_strerror(err));
    app->status = 1;
    app_stop(app);
    return;
  }
  fprintf(stderr,
          "kuala dev: API emulator at %s\n"
          "kuala dev: try   KUBECONFIG=%s kubectl get crds\n",
          server, kubeconfig);
  kuala_client_config_t cfg;
  int rc = load_config(&app->o, kubeconfig, &cfg);
  if (rc == 0) {
    rc = start_engine(app, &cfg);
  }
  kuala_client_config_free(&cfg);
  if (rc) {
    app->status = 1;
    app_stop(app);
  }
}

static void dev_exit(void *data, int64_t status, int signal)
{
  app_t *app = data;
  (void)status;
  (void)signal;
  fprintf(stderr, "kuala dev: the API emulator exited; stopping\n");
  app->status = 1;
  app_stop(app);
}

/* Default bundles: every directory under ./controllers that has a main.lua. */
static void default_bundles(run_opts_t *o)
{
  DIR *d = opendir("controllers");
  if (d == NULL) {
    return;
  }
  struct dirent *ent;
  static char paths[64][512];
  while ((ent = readdir(d)) != NULL && o->nbundles < 64) {
    if (ent->d_name[0] == '.') {
      continue;
    }
    char main_lua[600];
    snprintf(paths[o->nbundles], sizeof(paths[0]), "controllers/%s", ent->d_name);
    snprintf(main_lua, sizeof(main_lua), "%s/main.lua", paths[o->nbundles]);
    struct stat st;
    if (stat(main_lua, &st) == 0) {
      o->bundles = kuala_realloc(o->bundles, (o->nbundles + 2) * sizeof(char *));
      o->bundles[o->nbundles] = paths[o->nbundles];
      o->nbundles++;
    }
  }
  closedir(d);
}

int kuala__cli_dev(int argc, char **argv)
{
  app_t app;
  memset(&app, 0, sizeof(app));
  int pa = parse_args(argc, argv, &app.o);
  if (pa) {
    kuala_free(app.o.bundles);
    return pa > 0 ? 0 : 2;
  }
  kuala__mem_tune(); /* heap policy of the kuala process (base/mem.h) */
  if (app.o.nbundles == 0) {
    default_bundles(&app.o);
    if (app.o.nbundles == 0) {
      fprintf(stderr,
              "kuala dev: no bundle found (no controllers/*/main.lua here, none named); "
              "watching ConfigMaps labelled kuala.dev/bundle instead\n");
    }
  }
  if (app.o.watch < 0) {
    app.o.watch = 1; /* dev reloads on save */
  }
  app_init(&app);
  int rc = kuala__devcluster_start(&app.dev, &app.loop, NULL, NULL, dev_ready, dev_exit, &app);
  if (rc) {
    app.dev = NULL;
    app.status = 1;
    app_stop(&app);
  }
  return app_finish(&app);
}
