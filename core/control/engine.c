/*
 * engine.c: bundles → CRDs → controllers on one loop (see kuala/engine.h).
 *
 * Ownership: the engine owns the client, the informer registry, the
 * manager, the runtime and one bundle_t per bundle directory. A bundle_t
 * owns its kuala_bundle_t (through the runtime), the parsed CRD list while
 * it installs them, and one bctl_t per controller (the bctl_t is the
 * reconcile/map/predicate context the controller layer calls back with).
 *
 * Shutdown order matters: controllers stop handing out keys first (manager
 * close), then the runtime closes the bundles (pending API calls are
 * cancelled and their reconciles end), then informers and client close.
 */
#include "kuala/engine.h"

#include <json-c/json.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/informer.h"
#include "kuala/json.h"
#include "kuala/log.h"
#include "kuala/manager.h"

#define CRD_API_VERSION "apiextensions.k8s.io/v1"
#define CRD_KIND "CustomResourceDefinition"
#define CRD_POLL_MS 200

typedef struct bundle_s bundle_t;

typedef struct bctl_s bctl_t;

/* The context of one watch of a controller (map functions need the index:
 * 0 is the primary, then the owned kinds, then the extra watches). */
typedef struct {
  bctl_t *ctl;
  size_t index;
} wctx_t;

struct bctl_s {
  bundle_t *bundle;
  char *name;
  wctx_t *watches;
  size_t nwatches;
};

typedef struct crd_wait_s {
  bundle_t *bundle;
  char *name;
  uint64_t deadline;
  uv_timer_t timer;
  int in_call; /* an apply or GET is in flight: its callback closes us */
  int closing;
  struct crd_wait_s *next, *prev;
} crd_wait_t;

struct bundle_s {
  kuala_engine_t *e;
  char *dir;
  kuala_bundle_t *b;
  size_t crds_pending;
  int failed;
  int done; /* counted in the ready report */
  bctl_t **ctls;
  size_t nctls;
  size_t ctls_pending;
};

struct kuala_engine_s {
  uv_loop_t *loop;
  kuala_engine_opts_t opts;
  char **bundle_dirs;
  kuala_client_t *client;
  kuala_informers_t *informers;
  kuala_manager_t *manager;
  kuala_runtime_t *runtime;
  bundle_t **bundles;
  size_t nbundles;
  crd_wait_t *waits; /* CRD waits not yet closed */
  int manager_closed;
  uv_timer_t *grace; /* the graceful part of a stop is running */
  kuala_engine_ready_cb ready;
  void *ready_data;
  int ready_sent;
  int stopping;
  kuala_engine_stopped_cb stopped;
  void *stopped_data;
  kuala_engine_stats_t st;
};

/* --- readiness ---------------------------------------------------------- */

static void check_ready(kuala_engine_t *e)
{
  if (e->ready_sent) {
    return;
  }
  for (size_t i = 0; i < e->nbundles; i++) {
    if (!e->bundles[i]->done) {
      return;
    }
  }
  e->ready_sent = 1;
  KUALA_LOG(KUALA_LOG_INFO, "engine ready");
  if (e->ready) {
    e->ready(e->ready_data, &e->st);
  }
}

/* The `bundle` log key is always the bundle's name (the base name of its
 * directory until it has loaded, as the runtime names it); `dir` is the
 * path. */
static const char *bundle_log_name(const bundle_t *bd)
{
  if (bd->b) {
    return kuala_bundle_name(bd->b);
  }
  const char *end = bd->dir + strlen(bd->dir);
  while (end > bd->dir + 1 && end[-1] == '/') {
    end--;
  }
  const char *base = end;
  while (base > bd->dir && base[-1] != '/') {
    base--;
  }
  static char name[256];
  snprintf(name, sizeof(name), "%.*s", (int)(end - base), base);
  return name;
}

static void bundle_fail(bundle_t *bd, const char *what, const char *detail)
{
  kuala_log_kv_t ctx[] = {{"bundle", bundle_log_name(bd)}};
  kuala_log(KUALA_LOG_ERROR, ctx, 1, what, "dir", bd->dir, "error", detail, NULL);
  if (!bd->failed) {
    bd->failed = 1;
    bd->e->st.bundles_failed++;
  }
  bd->done = 1;
  check_ready(bd->e);
}

/* --- reconcile, map and predicate bridges ---------------------------------- */

typedef struct {
  bctl_t *ctl;
  kuala_controller_job_t *job;
} run_t;

static void reconcile_done(void *data, const kuala_reconcile_result_t *res)
{
  run_t *run = data;
  kuala_engine_t *e = run->ctl->bundle->e;
  e->st.reconciles++;
  if (res->err) {
    e->st.reconcile_errors++;
  }
  kuala_controller_result_t r = {res->err, 0, res->requeue_after, res->message};
  kuala_controller_job_t *job = run->job;
  kuala_free(run);
  kuala_controller_job_done(job, &r);
}

static int reconcile(void *data, kuala_controller_job_t *job, const char *ns, const char *name)
{
  bctl_t *ctl = data;
  run_t *run = kuala_malloc(sizeof(*run));
  run->ctl = ctl;
  run->job = job;
  int rc = kuala_bundle_reconcile(ctl->bundle->b, ctl->name, ns, name, reconcile_done, run);
  if (rc) {
    kuala_free(run);
  }
  return rc;
}

static void bctl_map(void *data, const kuala_obj_t *obj, kuala_emit_fn emit, void *emit_data)
{
  wctx_t *w = data;
  bctl_t *ctl = w->ctl;
  int rc = kuala_bundle_map(ctl->bundle->b, ctl->name, w->index, obj->json, obj->json_len, emit,
                            emit_data);
  if (rc) {
    kuala_log_kv_t ctx[] = {{"bundle", bundle_log_name(ctl->bundle)}, {"controller", ctl->name}};
    kuala_log(KUALA_LOG_ERROR, ctx, 2, "map function failed", "error", kuala_strerror(rc), NULL);
  }
}

static int bctl_predicate(void *data, kuala_event_type_t type, const kuala_obj_t *old,
                          const kuala_obj_t *obj)
{
  bctl_t *ctl = data;
  static const char *names[] = {"", "add", "update", "delete"};
  return kuala_bundle_predicate(ctl->bundle->b, ctl->name, names[type], old ? old->json : NULL,
                                old ? old->json_len : 0, obj->json, obj->json_len);
}

/* --- controllers ---------------------------------------------------------- */

static void controller_started(void *data, int err, kuala_controller_t *c)
{
  bctl_t *ctl = data;
  bundle_t *bd = ctl->bundle;
  (void)c;
  if (err) {
    bundle_fail(bd, "controller did not start", kuala_strerror(err));
  } else {
    bd->e->st.controllers_running++;
  }
  if (--bd->ctls_pending == 0 && !bd->done) {
    bd->done = 1;
    check_ready(bd->e);
  }
}

static void fill_watch(kuala_watch_decl_t *w, json_object *spec)
{
  w->api_version = kuala_json_path_str(spec, "apiVersion");
  w->kind = kuala_json_path_str(spec, "kind");
  w->ns = kuala_json_path_str(spec, "namespace");
  w->label_selector = kuala_json_path_str(spec, "labels");
}

/* Declare controller i of a bundle to the manager. The declaration comes
 * from the runtime as JSON:
 *   {"name":..., "watch":{apiVersion, kind, namespace?, labels?},
 *    "owns":[{apiVersion, kind}], "watches":[{apiVersion, kind}],
 *    "concurrency":N, "generation_changed":bool, "predicate":bool}
 * Watch indexes (for map functions) count the primary as 0, then owns,
 * then watches. */
static int add_controller(bundle_t *bd, size_t i)
{
  kuala_engine_t *e = bd->e;
  char *json = NULL;
  size_t len = 0;
  int rc = kuala_bundle_controller_json(bd->b, i, &json, &len);
  json_object *decl = NULL;
  if (rc == 0) {
    rc = kuala_json_parse(&decl, json, len, NULL, 0);
  }
  kuala_free(json);
  if (rc) {
    return rc;
  }
  json_object *owns = kuala_json_path(decl, "owns");
  json_object *extra = kuala_json_path(decl, "watches");
  size_t nowns =
      owns && json_object_is_type(owns, json_type_array) ? json_object_array_length(owns) : 0;
  size_t nextra =
      extra && json_object_is_type(extra, json_type_array) ? json_object_array_length(extra) : 0;
  size_t n = 1 + nowns + nextra;
  kuala_watch_decl_t *w = kuala_calloc(n, sizeof(*w));
  bctl_t *ctl = kuala_calloc(1, sizeof(*ctl));
  ctl->bundle = bd;
  ctl->watches = kuala_calloc(n, sizeof(*ctl->watches));
  ctl->nwatches = n;
  const char *name = kuala_json_path_str(decl, "name");
  ctl->name = kuala_strdup(name ? name : kuala_bundle_controller_name(bd->b, i));
  json_object *gen = kuala_json_path(decl, "generation_changed");
  json_object *pred = kuala_json_path(decl, "predicate");
  json_object *conc = kuala_json_path(decl, "concurrency");
  for (size_t k = 0; k < n; k++) {
    json_object *spec = k == 0       ? kuala_json_path(decl, "watch")
                        : k <= nowns ? json_object_array_get_idx(owns, k - 1)
                                     : json_object_array_get_idx(extra, k - 1 - nowns);
    fill_watch(&w[k], spec);
    w[k].mode = k == 0 ? KUALA_MAP_SELF : k <= nowns ? KUALA_MAP_OWNER : KUALA_MAP_FUNC;
    ctl->watches[k].ctl = ctl;
    ctl->watches[k].index = k;
    if (w[k].mode == KUALA_MAP_FUNC) {
      w[k].map = bctl_map;
      w[k].map_data = &ctl->watches[k];
    }
    w[k].generation_changed = k == 0 && gen && json_object_get_boolean(gen);
    if (pred && json_object_get_boolean(pred)) {
      w[k].predicate = bctl_predicate;
      w[k].predicate_data = ctl;
    }
  }
  kuala_controller_decl_t d = {ctl->name, w,  n, conc ? json_object_get_int(conc) : 1,
                               reconcile, ctl};
  bd->ctls = kuala_realloc(bd->ctls, (bd->nctls + 1) * sizeof(*bd->ctls));
  bd->ctls[bd->nctls++] = ctl;
  bd->ctls_pending++;
  rc = kuala_manager_add_controller(e->manager, &d, controller_started, ctl);
  if (rc) {
    bd->ctls_pending--;
  }
  kuala_free(w);
  json_object_put(decl);
  return rc;
}

static void start_controllers(bundle_t *bd)
{
  size_t n = kuala_bundle_controller_count(bd->b);
  for (size_t i = 0; i < n; i++) {
    int rc = add_controller(bd, i);
    if (rc) {
      bundle_fail(bd, "cannot declare controller", kuala_strerror(rc));
    }
  }
  if (bd->ctls_pending == 0 && !bd->done) {
    bd->done = 1;
    check_ready(bd->e);
  }
}

/* --- CRDs ------------------------------------------------------------------ */

static void crd_established(bundle_t *bd)
{
  if (--bd->crds_pending == 0 && !bd->failed) {
    start_controllers(bd);
  }
}

static void crd_wait_closed(uv_handle_t *h)
{
  crd_wait_t *w = h->data;
  kuala_engine_t *e = w->bundle->e;
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    e->waits = w->next;
  }
  if (w->next) {
    w->next->prev = w->prev;
  }
  kuala_free(w->name);
  kuala_free(w);
}

static void crd_wait_close(crd_wait_t *w)
{
  if (!w->closing) {
    w->closing = 1;
    uv_close((uv_handle_t *)&w->timer, crd_wait_closed);
  }
}

static void crd_poll(uv_timer_t *t);

static int is_established(const char *json, size_t len)
{
  json_object *crd = NULL;
  int ok = 0;
  if (kuala_json_parse(&crd, json, len, NULL, 0) == 0) {
    json_object *conds = kuala_json_path(crd, "status.conditions");
    size_t n =
        conds && json_object_is_type(conds, json_type_array) ? json_object_array_length(conds) : 0;
    for (size_t i = 0; i < n; i++) {
      json_object *c = json_object_array_get_idx(conds, i);
      const char *type = kuala_json_path_str(c, "type");
      const char *status = kuala_json_path_str(c, "status");
      if (type && status && strcmp(type, "Established") == 0 && strcmp(status, "True") == 0) {
        ok = 1;
      }
    }
    json_object_put(crd);
  }
  return ok;
}

static void crd_got(void *data, int err, const char *json, size_t len)
{
  crd_wait_t *w = data;
  w->in_call = 0;
  bundle_t *bd = w->bundle;
  kuala_engine_t *e = bd->e;
  if (e->stopping || err == KUALA_ECANCELED) {
    crd_wait_close(w);
    return;
  }
  if (err == 0 && json && is_established(json, len)) {
    kuala_log_kv_t ctx[] = {{"bundle", bundle_log_name(bd)}, {"crd", w->name}};
    kuala_log(KUALA_LOG_INFO, ctx, 2, "CRD established", NULL);
    e->st.crds_installed++;
    crd_wait_close(w);
    crd_established(bd);
    return;
  }
  if (uv_now(e->loop) >= w->deadline) {
    char msg[512];
    snprintf(msg, sizeof(msg), "CRD %s not Established in time (%s)", w->name,
             err ? kuala_strerror(err) : "no Established condition");
    crd_wait_close(w);
    bundle_fail(bd, "CRD installation failed", msg);
    return;
  }
  uv_timer_start(&w->timer, crd_poll, CRD_POLL_MS, 0);
}

static void crd_poll(uv_timer_t *t)
{
  crd_wait_t *w = t->data;
  kuala_engine_t *e = w->bundle->e;
  const kuala_backend_t *be = kuala_manager_backend(e->manager);
  kuala_call_t call = {
      KUALA_CALL_GET, CRD_API_VERSION, CRD_KIND, NULL, w->name, NULL, NULL, NULL, 0, NULL, 0};
  void *handle;
  w->in_call = 1;
  int rc = be->call_start(be->self, &call, crd_got, w, &handle);
  if (rc) {
    crd_got(w, rc, NULL, 0);
  }
}

static void crd_applied(void *data, int err, const char *json, size_t len)
{
  crd_wait_t *w = data;
  w->in_call = 0;
  bundle_t *bd = w->bundle;
  (void)json;
  (void)len;
  if (err) {
    char msg[512];
    snprintf(msg, sizeof(msg), "apply of CRD %s failed: %s", w->name, kuala_strerror(err));
    crd_wait_close(w);
    if (err != KUALA_ECANCELED && !bd->e->stopping) {
      bundle_fail(bd, "CRD installation failed", msg);
    }
    return;
  }
  if (bd->e->stopping) {
    crd_wait_close(w);
    return;
  }
  crd_poll(&w->timer);
}

static void install_crds(bundle_t *bd)
{
  kuala_engine_t *e = bd->e;
  char *json = NULL;
  size_t len = 0;
  json_object *crds = NULL;
  int rc = kuala_bundle_crds_json(bd->b, &json, &len);
  if (rc == 0) {
    rc = kuala_json_parse(&crds, json, len, NULL, 0);
  }
  kuala_free(json);
  if (rc || !json_object_is_type(crds, json_type_array)) {
    json_object_put(crds);
    bundle_fail(bd, "cannot read the bundle's CRDs", kuala_strerror(rc ? rc : KUALA_EINVAL));
    return;
  }
  size_t n = json_object_array_length(crds);
  bd->crds_pending = n + 1; /* +1 until every apply has started */
  const kuala_backend_t *be = kuala_manager_backend(e->manager);
  uint64_t wait = e->opts.crd_wait_ms ? e->opts.crd_wait_ms : 60000;
  for (size_t i = 0; i < n && !bd->failed; i++) {
    json_object *crd = json_object_array_get_idx(crds, i);
    const char *name = kuala_json_path_str(crd, "metadata.name");
    if (name == NULL) {
      bundle_fail(bd, "CRD without metadata.name", "the bundle declared an unnamed CRD");
      break;
    }
    crd_wait_t *w = kuala_calloc(1, sizeof(*w));
    w->bundle = bd;
    w->name = kuala_strdup(name);
    w->deadline = uv_now(e->loop) + wait;
    uv_timer_init(e->loop, &w->timer);
    w->timer.data = w;
    w->next = e->waits;
    if (e->waits) {
      e->waits->prev = w;
    }
    e->waits = w;
    size_t blen;
    const char *body = kuala_json_compact(crd, &blen);
    kuala_call_t call = {KUALA_CALL_APPLY,
                         CRD_API_VERSION,
                         CRD_KIND,
                         NULL,
                         name,
                         NULL,
                         NULL,
                         "kuala",
                         1,
                         body,
                         blen};
    void *handle;
    w->in_call = 1;
    rc = be->call_start(be->self, &call, crd_applied, w, &handle);
    if (rc) {
      crd_applied(w, rc, NULL, 0);
    }
  }
  json_object_put(crds);
  if (!bd->failed) {
    crd_established(bd); /* drop the +1 */
  }
}

/* --- lifecycle ---------------------------------------------------------- */

int kuala_engine_new(kuala_engine_t **out, uv_loop_t *loop, const kuala_engine_opts_t *opts)
{
  *out = NULL;
  if (loop == NULL || opts == NULL || opts->client == NULL) {
    return KUALA_EINVAL;
  }
  kuala_engine_t *e = kuala_calloc(1, sizeof(*e));
  e->loop = loop;
  e->opts = *opts;
  e->bundle_dirs = kuala_calloc(opts->nbundles + 1, sizeof(char *));
  for (size_t i = 0; i < opts->nbundles; i++) {
    e->bundle_dirs[i] = kuala_strdup(opts->bundles[i]);
  }
  e->opts.bundles = (const char *const *)e->bundle_dirs;
  e->opts.client = NULL; /* used only here */
  int rc = kuala_client_new(&e->client, loop, opts->client);
  if (rc == 0) {
    rc = kuala_informers_new_client(&e->informers, loop, e->client);
  }
  if (rc == 0) {
    rc = kuala_manager_new(&e->manager, loop, e->client, e->informers);
  }
  if (rc == 0) {
    rc = kuala_runtime_new(&e->runtime, loop, kuala_manager_backend(e->manager), &opts->runtime);
  }
  if (rc) {
    KUALA_LOG(KUALA_LOG_ERROR, "engine failed to start", "error", kuala_strerror(rc));
    if (e->manager) {
      kuala_manager_close(e->manager, NULL, NULL);
    }
    if (e->informers) {
      kuala_informers_close(e->informers);
    }
    if (e->client) {
      kuala_client_close(e->client);
    }
    for (size_t i = 0; i < opts->nbundles; i++) {
      kuala_free(e->bundle_dirs[i]);
    }
    kuala_free(e->bundle_dirs);
    kuala_free(e);
    return rc;
  }
  *out = e;
  return 0;
}

int kuala_engine_start(kuala_engine_t *e, kuala_engine_ready_cb ready, void *data)
{
  e->ready = ready;
  e->ready_data = data;
  e->bundles = kuala_calloc(e->opts.nbundles + 1, sizeof(*e->bundles));
  for (size_t i = 0; i < e->opts.nbundles; i++) {
    bundle_t *bd = kuala_calloc(1, sizeof(*bd));
    bd->e = e;
    bd->dir = kuala_strdup(e->opts.bundles[i]);
    e->bundles[e->nbundles++] = bd;
  }
  for (size_t i = 0; i < e->nbundles; i++) {
    bundle_t *bd = e->bundles[i];
    char *err = NULL;
    int rc = kuala_bundle_load_dir(&bd->b, e->runtime, bd->dir, NULL, NULL, &err);
    if (rc) {
      bd->b = NULL;
      bundle_fail(bd, "bundle failed to load", err ? err : kuala_strerror(rc));
      kuala_free(err);
      continue;
    }
    e->st.bundles_loaded++;
    kuala_log_kv_t ctx[] = {{"bundle", kuala_bundle_name(bd->b)}};
    kuala_log(KUALA_LOG_INFO, ctx, 1, "bundle loaded", "dir", bd->dir, NULL);
    install_crds(bd);
  }
  check_ready(e);
  return 0;
}

void kuala_engine_stats(const kuala_engine_t *e, kuala_engine_stats_t *out)
{
  *out = e->st;
}

static void free_bundles(kuala_engine_t *e)
{
  for (size_t i = 0; i < e->nbundles; i++) {
    bundle_t *bd = e->bundles[i];
    for (size_t k = 0; k < bd->nctls; k++) {
      kuala_free(bd->ctls[k]->watches);
      kuala_free(bd->ctls[k]->name);
      kuala_free(bd->ctls[k]);
    }
    kuala_free(bd->ctls);
    kuala_free(bd->dir);
    kuala_free(bd);
  }
  kuala_free(e->bundles);
  for (size_t i = 0; i < e->opts.nbundles; i++) {
    kuala_free(e->bundle_dirs[i]);
  }
  kuala_free(e->bundle_dirs);
}

typedef struct {
  kuala_engine_t *e;
  uv_idle_t idle;
} reaper_t;

static void reaper_closed(uv_handle_t *h)
{
  reaper_t *r = h->data;
  kuala_engine_t *e = r->e;
  kuala_engine_stopped_cb cb = e->stopped;
  void *data = e->stopped_data;
  free_bundles(e);
  kuala_free(e);
  kuala_free(r);
  if (cb) {
    cb(data);
  }
}

/* Wait (one loop iteration at a time) until the manager is gone (every
 * reconcile and call finished) and the CRD waits are closed, then free the
 * engine. The client and informers free themselves. */
static void reaper(uv_idle_t *h)
{
  reaper_t *r = h->data;
  if (r->e->manager_closed && r->e->waits == NULL) {
    uv_idle_stop(h);
    uv_close((uv_handle_t *)h, reaper_closed);
  }
}

/* The graceful part of a stop: the manager hands out no more keys while the
 * running reconciles finish, up to opts.graceful_shutdown_ms; then (or as
 * soon as they are all done) stop_now() cancels what still runs. The timer
 * lives apart from the engine, which may be freed before it is closed. */
static void grace_closed(uv_handle_t *h)
{
  kuala_free(h);
}

static void stop_now(kuala_engine_t *e);

static void grace_fired(uv_timer_t *t)
{
  kuala_engine_t *e = t->data;
  if (!e->manager_closed) {
    KUALA_LOG(KUALA_LOG_WARN, "graceful shutdown timeout reached, cancelling running reconciles");
  }
  stop_now(e);
}

static void manager_closed(void *data)
{
  kuala_engine_t *e = data;
  e->manager_closed = 1;
  /* Not from inside the callback chain of the last reconcile: next turn. */
  if (e->grace) {
    uv_timer_start(e->grace, grace_fired, 0, 0);
  }
}

void kuala_engine_stop(kuala_engine_t *e, kuala_engine_stopped_cb cb, void *data)
{
  if (e->stopping) {
    return;
  }
  e->stopping = 1;
  e->stopped = cb;
  e->stopped_data = data;
  int64_t grace = e->opts.graceful_shutdown_ms ? e->opts.graceful_shutdown_ms : 30000;
  char gs[32];
  snprintf(gs, sizeof(gs), "%lldms", (long long)(grace > 0 ? grace : 0));
  KUALA_LOG(KUALA_LOG_INFO, "engine stopping: no new reconciles, running ones may finish", "grace",
            gs);
  for (crd_wait_t *w = e->waits; w; w = w->next) {
    if (!w->in_call) {
      crd_wait_close(w);
    }
  }
  e->grace = kuala_calloc(1, sizeof(*e->grace));
  uv_timer_init(e->loop, e->grace);
  e->grace->data = e;
  uv_timer_start(e->grace, grace_fired, grace > 0 ? (uint64_t)grace : 0, 0);
  kuala_manager_close(e->manager, manager_closed, e);
}

static void stop_now(kuala_engine_t *e)
{
  uv_close((uv_handle_t *)e->grace, grace_closed);
  e->grace = NULL;
  kuala_runtime_free(e->runtime);
  kuala_informers_close(e->informers);
  kuala_client_close(e->client);
  reaper_t *r = kuala_calloc(1, sizeof(*r));
  r->e = e;
  uv_idle_init(e->loop, &r->idle);
  r->idle.data = r;
  uv_idle_start(&r->idle, reaper);
}
