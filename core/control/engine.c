/*
 * engine.c: bundle sources → versions → CRDs → controllers, with hot
 * reload, on one loop (see kuala/engine.h and docs/engine.md).
 *
 * Ownership: the engine owns the client, the informer registry, the
 * manager, the runtime and one slot_t per bundle name. A slot owns its
 * source (a directory with its fs watches, or a ConfigMap), at most one
 * `cur` version (running, or draining after a newer one was chosen) and at
 * most one `next` version (loading). A version owns its kuala_bundle_t (one
 * Lua VM), its CRD waits while it installs them, and one bctl_t per
 * controller (the reconcile/map/predicate context the controller layer
 * calls back with).
 *
 * Invariants:
 *  - a version is freed only when nothing refers to it any more (`refs`:
 *    its timers, CRD waits, controller starts, running reconciles);
 *  - reconciles of a version run only while it is ACTIVE: a standby
 *    version's controllers already watch (sharing the informers, so nothing
 *    relists) and queue keys, but the jobs they hand out are held until the
 *    previous version has drained, so one key never runs in two versions;
 *  - slots are never freed before the engine (a removed bundle stays listed
 *    with state "removed").
 *
 * Transient failures (API server unreachable, discovery miss, CRD apply or
 * Established wait failing) retry with jittered backoff, 800 ms doubling to
 * 30 s; a load error (syntax, bad declarations) waits for the next change.
 *
 * Shutdown order: held jobs are cancelled, controllers stop handing out
 * keys (manager close), the runtime closes the bundles (pending API calls
 * are cancelled and their reconciles end), then informers and client close.
 */
#include "kuala/engine.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/reload.h"
#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/informer.h"
#include "kuala/json.h"
#include "kuala/log.h"
#include "kuala/manager.h"

#define CRD_API_VERSION "apiextensions.k8s.io/v1"
#define CRD_KIND "CustomResourceDefinition"
#define CRD_POLL_MS 200
#define DEBOUNCE_MS 150
#define PROGRESS_MS 200
#define MAX_DIR_WATCHES 32

typedef struct slot_s slot_t;
typedef struct version_s version_t;
typedef struct bctl_s bctl_t;

/* The context of one watch of a controller (map functions need the index:
 * 0 is the primary, then the owned kinds, then the extra watches). */
typedef struct {
  bctl_t *ctl;
  size_t index;
} wctx_t;

struct bctl_s {
  version_t *v;
  char *name;
  wctx_t *watches;
  size_t nwatches;
  kuala_controller_t *c; /* NULL until started, and after removal */
  int synced_logged;
};

/* A job handed out while its version was not yet active. */
typedef struct held_s {
  bctl_t *ctl;
  kuala_controller_job_t *job;
  const char *ns, *name; /* borrowed from the controller until job_done */
  struct held_s *next;
} held_t;

typedef enum {
  V_CRDS = 1, /* applying CRDs, waiting for Established */
  V_STARTING, /* controllers declared, waiting for them to start */
  V_STANDBY,  /* started; jobs held until the previous version drained */
  V_ACTIVE,   /* reconciling */
  V_DRAINING, /* controllers removed; running reconciles finishing */
  V_DEAD,     /* torn down; freed when refs reaches 0 */
} vphase_t;

struct version_s {
  slot_t *slot;
  kuala_bundle_t *b;
  char hash[KUALA_BUNDLE_HASH_LEN];
  vphase_t phase;
  size_t refs;
  size_t crds_pending;
  char *crds; /* the CRDs it declared (JSON array), read once at load */
  size_t crds_len;
  int crd_err;   /* first error of this CRD attempt */
  char *crd_msg; /* its message */
  int ctl_err;   /* first error of this controller attempt */
  bctl_t **ctls;
  size_t nctls;
  size_t ctls_pending;
  size_t inflight;
  held_t *held;
  uv_timer_t retry; /* backoff between attempts */
  uv_timer_t grace; /* draining deadline */
  kuala_backoff_t bo;
  unsigned attempts;
  uint64_t started_ms;
};

typedef enum { SRC_DIR = 1, SRC_CONFIGMAP } src_kind_t;

struct slot_s {
  kuala_engine_t *e;
  char *name;
  char *source; /* "dir:PATH" or "configmap:NS/NAME" */
  src_kind_t kind;
  char *dir;
  char *cm_ns, *cm_name, *cm_uid;
  version_t *cur, *next;
  char failed_hash[KUALA_BUNDLE_HASH_LEN]; /* last version that failed to load */
  char *last_error;
  time_t loaded_at;
  uint64_t loads, load_errors;
  int removed;
  int failed;  /* no version runs and the last one failed */
  int initial; /* known before the engine reported ready */
  int settled; /* initial slot: running (caches synced) or failed */
  uv_fs_event_t *fsev;
  size_t nfsev;
  uv_timer_t debounce;
  int has_debounce;
};

typedef struct crd_wait_s {
  version_t *v;
  char *name;
  uint64_t deadline;
  uv_timer_t timer;
  int in_call; /* an apply or GET is in flight: its callback closes us */
  int closing;
  struct crd_wait_s *next, *prev;
} crd_wait_t;

struct kuala_engine_s {
  uv_loop_t *loop;
  kuala_engine_opts_t opts;
  char **bundle_dirs;
  char *bundle_ns;
  kuala_client_t *client;
  kuala_informers_t *informers;
  kuala_manager_t *manager;
  kuala_runtime_t *runtime;
  slot_t **slots;
  size_t nslots;
  crd_wait_t *waits; /* CRD waits not yet closed */
  size_t handles;    /* open uv handles of slots and versions */
  kuala_informer_reg_t *cm_reg;
  int cm_synced;
  uv_timer_t progress;
  int manager_closed;
  uv_timer_t *shutdown_grace; /* the graceful part of a stop is running */
  kuala_engine_ready_cb ready;
  void *ready_data;
  int ready_sent;
  int stopping;
  kuala_engine_stopped_cb stopped;
  void *stopped_data;
  kuala_engine_stats_t st;
};

static void v_unref(version_t *v);
static void v_kill(version_t *v);
static void v_attempt(version_t *v);
static void slot_switch(slot_t *s);

static void handle_closed(uv_handle_t *h)
{
  kuala_engine_t *e = h->data;
  e->handles--;
}

static void v_handle_closed(uv_handle_t *h)
{
  version_t *v = h->data;
  v_unref(v);
}

/* --- reporting --------------------------------------------------------------- */

static void fmt_time(time_t t, char *out, size_t cap)
{
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void event_done(void *data, int err, const char *json, size_t len)
{
  (void)json;
  (void)len;
  char *what = data;
  if (err && err != KUALA_ECANCELED) {
    KUALA_LOG(KUALA_LOG_DEBUG, "cannot record an event", "event", what, "error",
              kuala_strerror(err));
  }
  kuala_free(what);
}

/* A core/v1 Event on the slot's ConfigMap (directory bundles have no object
 * to attach one to: the log line and /bundles say it). */
static void slot_event(slot_t *s, int warning, const char *reason, const char *message)
{
  kuala_engine_t *e = s->e;
  if (s->kind != SRC_CONFIGMAP || e->stopping) {
    return;
  }
  char now[32];
  fmt_time(time(NULL), now, sizeof(now));
  json_object *ev = json_object_new_object();
  json_object *md = json_object_new_object();
  char gen[300];
  snprintf(gen, sizeof(gen), "%s.", s->cm_name);
  json_object_object_add(md, "generateName", json_object_new_string(gen));
  json_object_object_add(md, "namespace", json_object_new_string(s->cm_ns));
  json_object_object_add(ev, "apiVersion", json_object_new_string("v1"));
  json_object_object_add(ev, "kind", json_object_new_string("Event"));
  json_object_object_add(ev, "metadata", md);
  json_object *io = json_object_new_object();
  json_object_object_add(io, "apiVersion", json_object_new_string("v1"));
  json_object_object_add(io, "kind", json_object_new_string("ConfigMap"));
  json_object_object_add(io, "namespace", json_object_new_string(s->cm_ns));
  json_object_object_add(io, "name", json_object_new_string(s->cm_name));
  if (s->cm_uid) {
    json_object_object_add(io, "uid", json_object_new_string(s->cm_uid));
  }
  json_object_object_add(ev, "involvedObject", io);
  json_object_object_add(ev, "reason", json_object_new_string(reason));
  json_object_object_add(ev, "message", json_object_new_string(message));
  json_object_object_add(ev, "type", json_object_new_string(warning ? "Warning" : "Normal"));
  json_object *src = json_object_new_object();
  json_object_object_add(src, "component", json_object_new_string("kuala"));
  json_object_object_add(ev, "source", src);
  json_object_object_add(ev, "reportingComponent", json_object_new_string("kuala"));
  json_object_object_add(ev, "firstTimestamp", json_object_new_string(now));
  json_object_object_add(ev, "lastTimestamp", json_object_new_string(now));
  json_object_object_add(ev, "count", json_object_new_int(1));
  size_t len;
  const char *body = kuala_json_compact(ev, &len);
  const kuala_backend_t *be = kuala_manager_backend(e->manager);
  kuala_call_t call = {KUALA_CALL_CREATE, "v1", "Event", s->cm_ns, NULL, NULL, NULL,
                       "kuala",           0,    body,    len,      NULL};
  void *handle;
  char *what = kuala_strdup(reason);
  if (be->call_start(be->self, &call, event_done, what, &handle) != 0) {
    kuala_free(what);
  }
  json_object_put(ev);
}

static void slot_error(slot_t *s, const char *what, const char *detail, const char *hash)
{
  kuala_log_kv_t ctx[] = {{"bundle", s->name}};
  kuala_log(KUALA_LOG_ERROR, ctx, 1, what, "source", s->source, "hash", hash ? hash : "", "error",
            detail, NULL);
  kuala_free(s->last_error);
  s->last_error = kuala_strdup(detail);
  s->load_errors++;
}

/* --- readiness and progress --------------------------------------------------- */

static int slot_caches_synced(slot_t *s)
{
  version_t *v = s->cur;
  if (v == NULL || v->phase != V_ACTIVE) {
    return 0;
  }
  for (size_t i = 0; i < v->nctls; i++) {
    bctl_t *ctl = v->ctls[i];
    if (ctl->c == NULL) {
      return 0;
    }
    kuala_controller_stats_t cs;
    kuala_controller_stats(ctl->c, &cs);
    if (!cs.synced) {
      return 0;
    }
    if (!ctl->synced_logged) {
      ctl->synced_logged = 1;
      kuala_store_t *st = kuala_controller_primary_store(ctl->c);
      char n[32];
      snprintf(n, sizeof(n), "%zu", st ? kuala_store_len(st) : (size_t)0);
      kuala_log_kv_t ctx[] = {{"bundle", s->name}, {"controller", ctl->name}};
      kuala_log(KUALA_LOG_INFO, ctx, 2, "cache synced", "objects", n, NULL);
    }
  }
  return 1;
}

static void check_ready(kuala_engine_t *e)
{
  if (e->ready_sent || e->stopping) {
    return;
  }
  if (e->opts.configmaps && !e->cm_synced) {
    return;
  }
  int all = 1;
  for (size_t i = 0; i < e->nslots; i++) {
    slot_t *s = e->slots[i];
    if (!s->initial || s->settled) {
      continue;
    }
    if (s->removed || s->failed || slot_caches_synced(s)) {
      s->settled = 1;
    } else {
      all = 0;
    }
  }
  if (!all) {
    return;
  }
  e->ready_sent = 1;
  uv_timer_stop(&e->progress);
  e->st.bundles_loaded = 0;
  e->st.bundles_failed = 0;
  for (size_t i = 0; i < e->nslots; i++) {
    e->st.bundles_loaded += e->slots[i]->cur != NULL;
    e->st.bundles_failed += e->slots[i]->failed;
  }
  char b[32], f[32], c[32];
  snprintf(b, sizeof(b), "%zu", e->st.bundles_loaded);
  snprintf(f, sizeof(f), "%zu", e->st.bundles_failed);
  snprintf(c, sizeof(c), "%zu", e->st.controllers_running);
  KUALA_LOG(KUALA_LOG_INFO, "engine ready", "bundles", b, "failed", f, "controllers", c);
  if (e->nslots == 0) {
    KUALA_LOG(KUALA_LOG_WARN,
              "no bundle found: name bundle directories, or apply a ConfigMap "
              "labelled " KUALA_BUNDLE_LABEL " (see `kuala bundle`)");
  }
  if (e->ready) {
    e->ready(e->ready_data, &e->st);
  }
}

static void on_progress(uv_timer_t *t)
{
  check_ready(t->data);
}

/* --- versions: lifetime ------------------------------------------------------- */

static void v_free(version_t *v)
{
  for (size_t k = 0; k < v->nctls; k++) {
    kuala_free(v->ctls[k]->watches);
    kuala_free(v->ctls[k]->name);
    kuala_free(v->ctls[k]);
  }
  kuala_free(v->ctls);
  kuala_free(v->crd_msg);
  kuala_free(v->crds);
  kuala_free(v);
}

static void v_unref(version_t *v)
{
  if (--v->refs == 0) {
    v_free(v);
  }
}

static version_t *v_new(slot_t *s, const char *hash)
{
  kuala_engine_t *e = s->e;
  version_t *v = kuala_calloc(1, sizeof(*v));
  v->slot = s;
  memcpy(v->hash, hash, KUALA_BUNDLE_HASH_LEN);
  v->refs = 3; /* the slot, two timers */
  uv_timer_init(e->loop, &v->retry);
  uv_timer_init(e->loop, &v->grace);
  v->retry.data = v->grace.data = v;
  v->bo.base_ms = 800;
  v->bo.max_ms = 30000;
  v->bo.reset_ms = 120000;
  v->started_ms = uv_now(e->loop);
  return v;
}

static void finish_job(kuala_controller_job_t *job, int err, const char *msg)
{
  kuala_controller_result_t r = {err, 0, 0, msg};
  kuala_controller_job_done(job, &r);
}

static void flush_held(version_t *v)
{
  while (v->held) {
    held_t *h = v->held;
    v->held = h->next;
    kuala_controller_job_t *job = h->job;
    kuala_free(h);
    finish_job(job, KUALA_ECANCELED, "bundle version replaced");
  }
}

static void remove_controllers(version_t *v)
{
  kuala_engine_t *e = v->slot->e;
  for (size_t i = 0; i < v->nctls; i++) {
    if (v->ctls[i]->c) {
      kuala_manager_remove_controller(e->manager, v->ctls[i]->c);
      v->ctls[i]->c = NULL;
      e->st.controllers_running--;
    }
  }
}

static void crd_wait_close(crd_wait_t *w);

/* Tear a version down: it will never run again. The slot's pointer to it
 * is dropped by the caller. */
static void v_kill(version_t *v)
{
  if (v->phase == V_DEAD) {
    return;
  }
  kuala_engine_t *e = v->slot->e;
  v->phase = V_DEAD;
  uv_close((uv_handle_t *)&v->retry, v_handle_closed);
  uv_close((uv_handle_t *)&v->grace, v_handle_closed);
  for (crd_wait_t *w = e->waits; w; w = w->next) {
    if (w->v == v && !w->in_call) {
      crd_wait_close(w);
    }
  }
  if (!e->stopping) {
    remove_controllers(v);
    flush_held(v);
    if (v->b) {
      kuala_bundle_t *b = v->b;
      v->b = NULL;
      kuala_bundle_close(b); /* running reconciles end with KUALA_ECANCELED */
    }
  }
  v_unref(v); /* the slot's reference */
}

static void on_retry(uv_timer_t *t)
{
  v_attempt(t->data);
}

/* A transient failure: log this attempt and try again after a backoff. */
static void v_retry(version_t *v, const char *what, const char *detail)
{
  slot_t *s = v->slot;
  kuala_engine_t *e = s->e;
  v->attempts++;
  uint64_t delay = kuala_backoff_next(&v->bo, uv_now(e->loop), (double)rand() / RAND_MAX);
  char att[16], in[32];
  snprintf(att, sizeof(att), "%u", v->attempts);
  snprintf(in, sizeof(in), "%llums", (unsigned long long)delay);
  kuala_log_kv_t ctx[] = {{"bundle", s->name}};
  kuala_log(KUALA_LOG_WARN, ctx, 1, what, "attempt", att, "retry_in", in, "error", detail, NULL);
  kuala_free(s->last_error);
  s->last_error = kuala_strdup(detail);
  s->load_errors++;
  if (v->attempts == 1) {
    slot_event(s, 1, "BundleLoadFailed", detail);
  }
  uv_timer_start(&v->retry, on_retry, delay, 0);
}

/* A permanent failure of the loading version: the running one (if any)
 * stays. */
static void v_fail(version_t *v, const char *what, const char *detail)
{
  slot_t *s = v->slot;
  slot_error(s, what, detail, v->hash);
  slot_event(s, 1, "BundleLoadFailed", detail);
  memcpy(s->failed_hash, v->hash, KUALA_BUNDLE_HASH_LEN);
  if (s->next == v) {
    s->next = NULL;
  }
  if (s->cur == NULL) {
    s->failed = 1;
    s->e->st.bundles_failed++;
  } else {
    kuala_log_kv_t ctx[] = {{"bundle", s->name}};
    kuala_log(KUALA_LOG_WARN, ctx, 1, "the previous version keeps running", "hash", s->cur->hash,
              NULL);
  }
  v_kill(v);
  check_ready(s->e);
}

/* --- reconcile, map and predicate bridges ---------------------------------- */

typedef struct {
  bctl_t *ctl;
  kuala_controller_job_t *job;
} run_t;

static void v_drained_check(version_t *v);

static void reconcile_done(void *data, const kuala_reconcile_result_t *res)
{
  run_t *run = data;
  version_t *v = run->ctl->v;
  kuala_engine_t *e = v->slot->e;
  e->st.reconciles++;
  if (res->err) {
    e->st.reconcile_errors++;
  }
  kuala_controller_result_t r = {res->err, 0, res->requeue_after, res->message};
  kuala_controller_job_t *job = run->job;
  kuala_free(run);
  kuala_controller_job_done(job, &r);
  v->inflight--;
  if (v->phase == V_DRAINING) {
    v_drained_check(v);
  }
  v_unref(v);
}

static int run_job(bctl_t *ctl, kuala_controller_job_t *job, const char *ns, const char *name)
{
  version_t *v = ctl->v;
  if (v->b == NULL) {
    return KUALA_ESHUTDOWN;
  }
  run_t *run = kuala_malloc(sizeof(*run));
  run->ctl = ctl;
  run->job = job;
  v->inflight++;
  v->refs++;
  int rc = kuala_bundle_reconcile(v->b, ctl->name, ns, name, reconcile_done, run);
  if (rc) {
    v->inflight--;
    v->refs--;
    kuala_free(run);
  }
  return rc;
}

static int reconcile(void *data, kuala_controller_job_t *job, const char *ns, const char *name)
{
  bctl_t *ctl = data;
  version_t *v = ctl->v;
  if (v->phase == V_STARTING || v->phase == V_STANDBY) {
    held_t *h = kuala_malloc(sizeof(*h));
    h->ctl = ctl;
    h->job = job;
    h->ns = ns;
    h->name = name;
    h->next = v->held;
    v->held = h;
    return 0;
  }
  if (v->phase != V_ACTIVE) {
    return KUALA_ESHUTDOWN;
  }
  return run_job(ctl, job, ns, name);
}

static void bctl_map(void *data, const kuala_obj_t *obj, kuala_emit_fn emit, void *emit_data)
{
  wctx_t *w = data;
  bctl_t *ctl = w->ctl;
  if (ctl->v->b == NULL) {
    return;
  }
  int rc =
      kuala_bundle_map(ctl->v->b, ctl->name, w->index, obj->json, obj->json_len, emit, emit_data);
  if (rc) {
    kuala_log_kv_t ctx[] = {{"bundle", ctl->v->slot->name}, {"controller", ctl->name}};
    kuala_log(KUALA_LOG_ERROR, ctx, 2, "map function failed", "error", kuala_strerror(rc), NULL);
  }
}

static int bctl_predicate(void *data, kuala_event_type_t type, const kuala_obj_t *old,
                          const kuala_obj_t *obj)
{
  bctl_t *ctl = data;
  static const char *names[] = {"", "add", "update", "delete"};
  if (ctl->v->b == NULL) {
    return 0;
  }
  return kuala_bundle_predicate(ctl->v->b, ctl->name, names[type], old ? old->json : NULL,
                                old ? old->json_len : 0, obj->json, obj->json_len);
}

/* --- switching versions ------------------------------------------------------- */

static void v_activate(version_t *v)
{
  slot_t *s = v->slot;
  kuala_engine_t *e = s->e;
  v->phase = V_ACTIVE;
  s->cur = v;
  s->failed = 0;
  s->loads++;
  s->loaded_at = time(NULL);
  kuala_free(s->last_error);
  s->last_error = NULL;
  /* Held jobs first (their keys are marked running in the queue), then
   * every primary again: the informers replayed their caches to the new
   * controllers when they registered, enqueue_all is the explicit promise. */
  held_t *list = NULL;
  while (v->held) {
    held_t *h = v->held;
    v->held = h->next;
    h->next = list;
    list = h;
  }
  while (list) {
    held_t *h = list;
    list = h->next;
    kuala_controller_job_t *job = h->job;
    bctl_t *ctl = h->ctl;
    const char *ns = h->ns, *name = h->name;
    kuala_free(h);
    int rc = run_job(ctl, job, ns, name);
    if (rc) {
      finish_job(job, rc, "reconcile could not start");
    }
  }
  for (size_t i = 0; i < v->nctls; i++) {
    if (v->ctls[i]->c) {
      kuala_controller_enqueue_all(v->ctls[i]->c);
    }
  }
  char ms[32], lists[32];
  snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(uv_now(e->loop) - v->started_ms));
  snprintf(lists, sizeof(lists), "%llu",
           (unsigned long long)kuala_informers_list_requests(e->informers));
  if (s->loads > 1) {
    e->st.reloads++;
  }
  kuala_log_kv_t ctx[] = {{"bundle", s->name}};
  kuala_log(KUALA_LOG_INFO, ctx, 1, s->loads > 1 ? "bundle reloaded" : "bundle running", "hash",
            v->hash, "took_ms", ms, "list_requests", lists, NULL);
  char msg[256];
  snprintf(msg, sizeof(msg), "bundle %s version %.19s is running", s->name, v->hash);
  slot_event(s, 0, "BundleLoaded", msg);
  check_ready(e);
}

static void v_drained_check(version_t *v)
{
  if (v->inflight > 0) {
    return;
  }
  slot_t *s = v->slot;
  uv_timer_stop(&v->grace);
  if (s->cur == v) {
    s->cur = NULL;
  }
  v_kill(v);
  slot_switch(s);
}

static void on_grace(uv_timer_t *t)
{
  version_t *v = t->data;
  slot_t *s = v->slot;
  char n[32];
  snprintf(n, sizeof(n), "%zu", v->inflight);
  kuala_log_kv_t ctx[] = {{"bundle", s->name}};
  kuala_log(KUALA_LOG_WARN, ctx, 1, "grace period over: cancelling the old version's reconciles",
            "running", n, NULL);
  if (v->b) {
    kuala_bundle_t *b = v->b;
    v->b = NULL;
    v->refs++;
    kuala_bundle_close(b); /* each running reconcile ends: v_drained_check */
    v_unref(v);
  }
}

/* Move the slot forward: drain the running version when a newer one is on
 * standby (or the bundle is removed), activate the standby one once nothing
 * of the old one runs. */
static void slot_switch(slot_t *s)
{
  kuala_engine_t *e = s->e;
  if (e->stopping) {
    return;
  }
  version_t *cur = s->cur;
  int want_drain = s->removed || (s->next && s->next->phase == V_STANDBY);
  if (cur && cur->phase == V_ACTIVE && want_drain) {
    cur->phase = V_DRAINING;
    remove_controllers(cur);
    char n[32];
    snprintf(n, sizeof(n), "%zu", cur->inflight);
    kuala_log_kv_t ctx[] = {{"bundle", s->name}};
    kuala_log(
        KUALA_LOG_INFO, ctx, 1,
        s->removed ? "bundle removed: stopping its controllers" : "draining the previous version",
        "hash", cur->hash, "running", n, NULL);
    uint64_t grace = e->opts.grace_ms ? e->opts.grace_ms : 30000;
    uv_timer_start(&cur->grace, on_grace, grace, 0);
    v_drained_check(cur); /* may recurse into slot_switch with cur gone */
    return;
  }
  if (s->cur == NULL && s->next && s->next->phase == V_STANDBY) {
    version_t *v = s->next;
    s->next = NULL;
    v_activate(v);
  }
}

/* --- controllers ---------------------------------------------------------- */

/* The last controller of an attempt answered: go to standby, or retry. */
static void ctls_settled(version_t *v)
{
  if (v->ctls_pending > 0 || v->phase != V_STARTING) {
    return;
  }
  if (v->ctl_err) {
    char msg[512];
    snprintf(msg, sizeof(msg), "controllers did not start: %s (will retry)",
             kuala_strerror(v->ctl_err));
    remove_controllers(v);
    flush_held(v);
    v->phase = V_CRDS; /* retry from the CRDs: one may have been deleted */
    v_retry(v, "bundle not live yet", msg);
  } else {
    v->phase = V_STANDBY;
    slot_switch(v->slot);
  }
}

/* A controller's caches synced: log it and report readiness now rather
 * than at the next progress tick. */
static void controller_synced(void *data, kuala_controller_t *c)
{
  (void)c;
  bctl_t *ctl = data;
  check_ready(ctl->v->slot->e);
}

static void controller_started(void *data, int err, kuala_controller_t *c)
{
  bctl_t *ctl = data;
  version_t *v = ctl->v;
  kuala_engine_t *e = v->slot->e;
  v->ctls_pending--;
  if (err == 0) {
    if (v->phase == V_DEAD || e->stopping) {
      if (!e->stopping) {
        kuala_manager_remove_controller(e->manager, c);
      }
    } else {
      ctl->c = c;
      e->st.controllers_running++;
      kuala_controller_on_synced(c, controller_synced, ctl);
    }
  } else if (v->ctl_err == 0) {
    v->ctl_err = err;
  }
  ctls_settled(v);
  v_unref(v);
}

static void fill_watch(kuala_watch_decl_t *w, json_object *spec)
{
  w->api_version = kuala_json_path_str(spec, "apiVersion");
  w->kind = kuala_json_path_str(spec, "kind");
  w->ns = kuala_json_path_str(spec, "namespace");
  w->label_selector = kuala_json_path_str(spec, "labels");
}

/* The bctl_t of controller i (created on the first attempt, kept across
 * retries). The declaration comes from the runtime as JSON:
 *   {"name":..., "watch":{apiVersion, kind, namespace?, labels?},
 *    "owns":[{apiVersion, kind}], "watches":[{apiVersion, kind}],
 *    "concurrency":N, "generation_changed":bool, "predicate":bool}
 * Watch indexes (for map functions) count the primary as 0, then owns,
 * then watches. */
static int add_controller(version_t *v, size_t i)
{
  kuala_engine_t *e = v->slot->e;
  char *json = NULL;
  size_t len = 0;
  int rc = kuala_bundle_controller_json(v->b, i, &json, &len);
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
  bctl_t *ctl = i < v->nctls ? v->ctls[i] : NULL;
  if (ctl == NULL) {
    ctl = kuala_calloc(1, sizeof(*ctl));
    ctl->v = v;
    ctl->watches = kuala_calloc(n, sizeof(*ctl->watches));
    ctl->nwatches = n;
    const char *name = kuala_json_path_str(decl, "name");
    ctl->name = kuala_strdup(name ? name : kuala_bundle_controller_name(v->b, i));
    v->ctls = kuala_realloc(v->ctls, (v->nctls + 1) * sizeof(*v->ctls));
    v->ctls[v->nctls++] = ctl;
  }
  kuala_watch_decl_t *w = kuala_calloc(n, sizeof(*w));
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
  v->ctls_pending++;
  v->refs++;
  rc = kuala_manager_add_controller(e->manager, &d, controller_started, ctl);
  if (rc) {
    v->ctls_pending--;
    v->refs--;
  }
  kuala_free(w);
  json_object_put(decl);
  return rc;
}

static void start_controllers(version_t *v)
{
  v->phase = V_STARTING;
  v->ctl_err = 0;
  size_t n = kuala_bundle_controller_count(v->b);
  v->ctls_pending++; /* until every declaration went out */
  v->refs++;
  for (size_t i = 0; i < n; i++) {
    int rc = add_controller(v, i);
    if (rc && v->ctl_err == 0) {
      v->ctl_err = rc;
    }
  }
  v->ctls_pending--;
  ctls_settled(v);
  v_unref(v);
}

/* --- CRDs ------------------------------------------------------------------ */

static void crd_attempt_done(version_t *v)
{
  if (--v->crds_pending > 0 || v->phase != V_CRDS) {
    return;
  }
  if (v->crd_err) {
    int permanent = v->crd_err == KUALA_EINVALID || v->crd_err == KUALA_EBADREQUEST;
    char *msg = v->crd_msg;
    v->crd_msg = NULL;
    if (permanent) {
      v_fail(v, "bundle failed to load", msg);
    } else {
      v_retry(v, "CRD installation failed", msg);
    }
    kuala_free(msg);
    return;
  }
  start_controllers(v);
}

static void crd_failed(crd_wait_t *w, int err, const char *msg)
{
  version_t *v = w->v;
  if (v->crd_err == 0) {
    v->crd_err = err;
    v->crd_msg = kuala_strdup(msg);
  }
}

static void crd_wait_closed(uv_handle_t *h)
{
  crd_wait_t *w = h->data;
  version_t *v = w->v;
  kuala_engine_t *e = v->slot->e;
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
  crd_attempt_done(v);
  v_unref(v);
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
  version_t *v = w->v;
  kuala_engine_t *e = v->slot->e;
  if (e->stopping || v->phase == V_DEAD || err == KUALA_ECANCELED) {
    crd_wait_close(w);
    return;
  }
  if (err == 0 && json && is_established(json, len)) {
    kuala_log_kv_t ctx[] = {{"bundle", v->slot->name}, {"crd", w->name}};
    kuala_log(KUALA_LOG_INFO, ctx, 2, "CRD established", NULL);
    e->st.crds_installed++;
    crd_wait_close(w);
    return;
  }
  if (uv_now(e->loop) >= w->deadline) {
    char msg[512];
    snprintf(msg, sizeof(msg), "CRD %s not Established in time (%s)", w->name,
             err ? kuala_strerror(err) : "no Established condition");
    crd_failed(w, KUALA_ETIMEDOUT, msg);
    crd_wait_close(w);
    return;
  }
  uv_timer_start(&w->timer, crd_poll, CRD_POLL_MS, 0);
}

static void crd_poll(uv_timer_t *t)
{
  crd_wait_t *w = t->data;
  kuala_engine_t *e = w->v->slot->e;
  const kuala_backend_t *be = kuala_manager_backend(e->manager);
  kuala_call_t call = {
      KUALA_CALL_GET, CRD_API_VERSION, CRD_KIND, NULL, w->name, NULL, NULL, NULL, 0, NULL, 0, NULL};
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
  version_t *v = w->v;
  (void)json;
  (void)len;
  if (v->slot->e->stopping || v->phase == V_DEAD || err == KUALA_ECANCELED) {
    crd_wait_close(w);
    return;
  }
  if (err) {
    char msg[512];
    snprintf(msg, sizeof(msg), "apply of CRD %s failed: %s", w->name, kuala_strerror(err));
    crd_failed(w, err, msg);
    crd_wait_close(w);
    return;
  }
  crd_poll(&w->timer);
}

/* One attempt at installing every CRD of the version; crd_attempt_done
 * starts the controllers or schedules the next attempt. */
static void install_crds(version_t *v)
{
  kuala_engine_t *e = v->slot->e;
  char *json = NULL;
  size_t len = 0;
  json_object *crds = NULL;
  v->phase = V_CRDS;
  v->crd_err = 0;
  kuala_free(v->crd_msg);
  v->crd_msg = NULL;
  int rc = 0;
  if (v->crds == NULL) { /* once per version: retries reuse it */
    rc = kuala_bundle_crds_json(v->b, &json, &len);
    if (rc == 0) {
      v->crds = json;
      v->crds_len = len;
    } else {
      kuala_free(json);
    }
  }
  if (rc == 0) {
    rc = kuala_json_parse(&crds, v->crds, v->crds_len, NULL, 0);
  }
  if (rc || !json_object_is_type(crds, json_type_array)) {
    json_object_put(crds);
    v_fail(v, "cannot read the bundle's CRDs", kuala_strerror(rc ? rc : KUALA_EINVAL));
    return;
  }
  size_t n = json_object_array_length(crds);
  v->crds_pending = 1; /* until every apply has started */
  const kuala_backend_t *be = kuala_manager_backend(e->manager);
  uint64_t wait = e->opts.crd_wait_ms ? e->opts.crd_wait_ms : 60000;
  for (size_t i = 0; i < n; i++) {
    json_object *crd = json_object_array_get_idx(crds, i);
    const char *name = kuala_json_path_str(crd, "metadata.name");
    if (name == NULL) {
      json_object_put(crds);
      v->crds_pending--;
      v_fail(v, "bundle failed to load", "the bundle declared a CRD without metadata.name");
      return;
    }
    crd_wait_t *w = kuala_calloc(1, sizeof(*w));
    w->v = v;
    v->refs++;
    v->crds_pending++;
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
                         blen,
                         NULL};
    void *handle;
    w->in_call = 1;
    rc = be->call_start(be->self, &call, crd_applied, w, &handle);
    if (rc) {
      crd_applied(w, rc, NULL, 0);
    }
  }
  json_object_put(crds);
  crd_attempt_done(v); /* drop the +1 */
}

static void v_attempt(version_t *v)
{
  if (v->phase == V_DEAD || v->slot->e->stopping) {
    return;
  }
  char att[16];
  snprintf(att, sizeof(att), "%u", v->attempts + 1);
  kuala_log_kv_t ctx[] = {{"bundle", v->slot->name}};
  kuala_log(KUALA_LOG_DEBUG, ctx, 1, "installing CRDs", "attempt", att, NULL);
  install_crds(v);
}

/* --- slots and sources ---------------------------------------------------------- */

static slot_t *slot_find(kuala_engine_t *e, const char *name)
{
  for (size_t i = 0; i < e->nslots; i++) {
    if (strcmp(e->slots[i]->name, name) == 0) {
      return e->slots[i];
    }
  }
  return NULL;
}

static slot_t *slot_new(kuala_engine_t *e, const char *name, const char *source)
{
  slot_t *s = kuala_calloc(1, sizeof(*s));
  s->e = e;
  s->name = kuala_strdup(name);
  s->source = kuala_strdup(source);
  s->initial = !e->ready_sent;
  e->slots = kuala_realloc(e->slots, (e->nslots + 1) * sizeof(*e->slots));
  e->slots[e->nslots++] = s;
  return s;
}

/* New content for a slot: load it beside the running version unless it is
 * the running (or loading) content already. */
static void slot_offer(slot_t *s, const kuala__bfiles_t *fs)
{
  kuala_engine_t *e = s->e;
  char hash[KUALA_BUNDLE_HASH_LEN];
  kuala__bfiles_hash(fs, hash);
  kuala_log_kv_t ctx[] = {{"bundle", s->name}};
  if (s->removed) {
    s->removed = 0;
    s->failed_hash[0] = '\0';
  }
  if (s->next && strcmp(s->next->hash, hash) == 0) {
    return; /* already loading this */
  }
  if (s->cur && s->cur->phase == V_ACTIVE && strcmp(s->cur->hash, hash) == 0) {
    if (s->next) { /* back to the running content: drop the newer attempt */
      version_t *n = s->next;
      s->next = NULL;
      v_kill(n);
    }
    kuala_log(KUALA_LOG_DEBUG, ctx, 1, "bundle unchanged", "hash", hash, NULL);
    return;
  }
  if (strcmp(s->failed_hash, hash) == 0) {
    kuala_log(KUALA_LOG_DEBUG, ctx, 1, "bundle unchanged since it failed", "hash", hash, NULL);
    return;
  }
  if (s->next) {
    version_t *n = s->next;
    s->next = NULL;
    v_kill(n);
  }
  version_t *v = v_new(s, hash);
  s->next = v;
  char *err = NULL;
  int rc = kuala_bundle_load(&v->b, e->runtime, s->name, fs->files, fs->n, NULL, &err);
  if (rc) {
    v->b = NULL;
    v_fail(v, "bundle failed to load", err ? err : kuala_strerror(rc));
    kuala_free(err);
    return;
  }
  char nctl[16];
  snprintf(nctl, sizeof(nctl), "%zu", kuala_bundle_controller_count(v->b));
  kuala_log(KUALA_LOG_INFO, ctx, 1, s->cur ? "new bundle version loaded" : "bundle loaded",
            "source", s->source, "hash", hash, "controllers", nctl, NULL);
  install_crds(v);
}

/* The bundle is gone: stop its controllers (the running version drains),
 * keep its CRDs and custom resources. */
static void slot_remove(slot_t *s)
{
  if (s->removed) {
    return;
  }
  kuala_log_kv_t ctx[] = {{"bundle", s->name}};
  kuala_log(KUALA_LOG_INFO, ctx, 1, "bundle source removed", "source", s->source, NULL);
  s->removed = 1;
  s->failed = 0;
  if (s->next) {
    version_t *n = s->next;
    s->next = NULL;
    v_kill(n);
  }
  slot_switch(s);
  check_ready(s->e);
}

static void dir_reread(slot_t *s)
{
  kuala__bfiles_t fs = {0};
  char *err = NULL;
  int rc = kuala__bfiles_read_dir(&fs, s->dir, &err);
  if (rc) {
    slot_error(s, "cannot read the bundle directory", err ? err : kuala_strerror(rc), NULL);
    kuala_free(err);
    if (s->cur == NULL && s->next == NULL) {
      s->failed = 1;
      check_ready(s->e);
    }
    return;
  }
  slot_offer(s, &fs);
  kuala__bfiles_free(&fs);
}

static void on_debounce(uv_timer_t *t)
{
  slot_t *s = t->data;
  if (!s->e->stopping) {
    dir_reread(s);
  }
}

static void on_fs_event(uv_fs_event_t *h, const char *file, int events, int status)
{
  slot_t *s = h->data;
  (void)events;
  if (status < 0 || s->e->stopping) {
    return;
  }
  if (file && file[0] == '.') {
    return; /* editor swap files */
  }
  uv_timer_start(&s->debounce, on_debounce, DEBOUNCE_MS, 0);
}

static void watch_dir(slot_t *s, const char *dir, int depth)
{
  kuala_engine_t *e = s->e;
  if (s->nfsev >= MAX_DIR_WATCHES || depth > 4) {
    return;
  }
  uv_fs_event_t *h = &s->fsev[s->nfsev];
  uv_fs_event_init(e->loop, h);
  h->data = s;
  if (uv_fs_event_start(h, on_fs_event, dir, 0) != 0) {
    h->data = e;
    e->handles++;
    uv_close((uv_handle_t *)h, handle_closed);
    return;
  }
  s->nfsev++;
  /* Subdirectories (lib/...) too: inotify is not recursive. */
  uv_fs_t req;
  if (uv_fs_scandir(NULL, &req, dir, 0, NULL) < 0) {
    uv_fs_req_cleanup(&req);
    return;
  }
  uv_dirent_t ent;
  while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
    if (ent.type == UV_DIRENT_DIR && ent.name[0] != '.') {
      char sub[1024];
      snprintf(sub, sizeof(sub), "%s/%s", dir, ent.name);
      watch_dir(s, sub, depth + 1);
    }
  }
  uv_fs_req_cleanup(&req);
}

static void add_dir_source(kuala_engine_t *e, const char *dir)
{
  char name[256];
  const char *end = dir + strlen(dir);
  while (end > dir && end[-1] == '/') {
    end--;
  }
  const char *st = end;
  while (st > dir && st[-1] != '/') {
    st--;
  }
  snprintf(name, sizeof(name), "%.*s", (int)(end - st), st);
  char source[1100];
  snprintf(source, sizeof(source), "dir:%s", dir);
  if (slot_find(e, name)) {
    KUALA_LOG(KUALA_LOG_ERROR, "two bundles with one name: ignoring the second", "bundle", name,
              "source", source);
    return;
  }
  slot_t *s = slot_new(e, *name ? name : "bundle", source);
  s->kind = SRC_DIR;
  s->dir = kuala_strdup(dir);
  uv_timer_init(e->loop, &s->debounce);
  s->debounce.data = s;
  s->has_debounce = 1;
  e->handles++;
  if (e->opts.watch) {
    s->fsev = kuala_calloc(MAX_DIR_WATCHES, sizeof(*s->fsev));
    watch_dir(s, dir, 0);
    e->handles += s->nfsev;
  }
  dir_reread(s);
}

/* --- ConfigMap sources ------------------------------------------------------- */

static void cm_ignored(void *data, const char *key)
{
  slot_t *s = data;
  kuala_log_kv_t ctx[] = {{"bundle", s->name}};
  kuala_log(KUALA_LOG_WARN, ctx, 1, "ConfigMap key ignored: not a module name plus .lua", "key",
            key, "source", s->source, NULL);
}

static const char *cm_bundle_name(json_object *cm)
{
  json_object *labels = kuala_json_path(cm, "metadata.labels");
  json_object *v = NULL;
  if (labels && json_object_object_get_ex(labels, KUALA_BUNDLE_LABEL, &v) &&
      json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0) {
    return json_object_get_string(v);
  }
  return NULL;
}

static slot_t *cm_slot(kuala_engine_t *e, json_object *cm, int create)
{
  const char *bname = cm_bundle_name(cm);
  const char *ns = kuala_json_path_str(cm, "metadata.namespace");
  const char *name = kuala_json_path_str(cm, "metadata.name");
  if (bname == NULL || name == NULL) {
    return NULL;
  }
  char source[600];
  snprintf(source, sizeof(source), "configmap:%s/%s", ns ? ns : "", name);
  slot_t *s = slot_find(e, bname);
  if (s && strcmp(s->source, source) != 0) {
    if (create && !s->removed) {
      KUALA_LOG(KUALA_LOG_ERROR, "two bundles with one name: ignoring the second", "bundle", bname,
                "source", source, "kept", s->source);
      return NULL;
    }
    if (!s->removed) {
      return NULL;
    }
    kuala_free(s->source);
    s->source = kuala_strdup(source); /* the name moved to another ConfigMap */
  }
  if (s == NULL && create) {
    s = slot_new(e, bname, source);
  }
  if (s) {
    s->kind = SRC_CONFIGMAP;
    kuala_free(s->cm_ns);
    kuala_free(s->cm_name);
    s->cm_ns = kuala_strdup(ns ? ns : "");
    s->cm_name = kuala_strdup(name);
    const char *uid = kuala_json_path_str(cm, "metadata.uid");
    kuala_free(s->cm_uid);
    s->cm_uid = uid ? kuala_strdup(uid) : NULL;
  }
  return s;
}

static void cm_apply(kuala_engine_t *e, const kuala_obj_t *obj)
{
  json_object *cm = NULL;
  if (kuala_json_parse(&cm, obj->json, obj->json_len, NULL, 0) != 0) {
    return;
  }
  slot_t *s = cm_slot(e, cm, 1);
  if (s) {
    kuala__bfiles_t fs = {0};
    kuala__bfiles_from_configmap(&fs, cm, cm_ignored, s);
    if (fs.n == 0) {
      slot_error(s, "bundle failed to load", "the ConfigMap holds no .lua key", NULL);
      slot_event(s, 1, "BundleLoadFailed", "the ConfigMap holds no .lua key");
      if (s->cur == NULL && s->next == NULL) {
        s->failed = 1;
      }
    } else {
      slot_offer(s, &fs);
    }
    kuala__bfiles_free(&fs);
  }
  json_object_put(cm);
}

static void cm_gone(kuala_engine_t *e, const kuala_obj_t *obj)
{
  json_object *cm = NULL;
  if (kuala_json_parse(&cm, obj->json, obj->json_len, NULL, 0) != 0) {
    return;
  }
  slot_t *s = cm_slot(e, cm, 0);
  if (s && !s->removed) {
    slot_remove(s);
  }
  json_object_put(cm);
}

static void cm_on_add(void *data, const kuala_obj_t *obj, int initial)
{
  (void)initial;
  cm_apply(data, obj);
}

static void cm_on_update(void *data, const kuala_obj_t *old, const kuala_obj_t *obj)
{
  kuala_engine_t *e = data;
  /* A relabelled ConfigMap leaves its old bundle. */
  json_object *a = NULL, *b = NULL;
  if (kuala_json_parse(&a, old->json, old->json_len, NULL, 0) == 0 &&
      kuala_json_parse(&b, obj->json, obj->json_len, NULL, 0) == 0) {
    const char *na = cm_bundle_name(a), *nb = cm_bundle_name(b);
    if (na && (nb == NULL || strcmp(na, nb) != 0)) {
      cm_gone(e, old);
    }
  }
  json_object_put(a);
  json_object_put(b);
  cm_apply(e, obj);
}

static void cm_on_delete(void *data, const kuala_obj_t *obj, int final_state_unknown)
{
  (void)final_state_unknown;
  cm_gone(data, obj);
}

static void cm_synced(void *data, int err)
{
  kuala_engine_t *e = data;
  if (err == KUALA_ECANCELED || e->stopping) {
    return;
  }
  if (err) { /* still unreachable: keep waiting */
    kuala_informer_wait_synced(kuala_informer_reg_informer(e->cm_reg), 30000, cm_synced, e);
    return;
  }
  e->cm_synced = 1;
  KUALA_LOG(KUALA_LOG_INFO, "bundle ConfigMaps listed", "namespace", e->bundle_ns);
  check_ready(e);
}

static int start_configmaps(kuala_engine_t *e)
{
  kuala_informer_key_t key = {"", "v1", "configmaps", e->bundle_ns, KUALA_BUNDLE_LABEL, NULL, 0};
  static const kuala_informer_handlers_t h = {cm_on_add, cm_on_update, cm_on_delete};
  int rc = kuala_informers_add_handler(&e->cm_reg, e->informers, &key, NULL, &h, e);
  if (rc) {
    KUALA_LOG(KUALA_LOG_ERROR, "cannot watch bundle ConfigMaps", "error", kuala_strerror(rc));
    return rc;
  }
  KUALA_LOG(KUALA_LOG_INFO, "watching bundle ConfigMaps", "namespace", e->bundle_ns, "label",
            KUALA_BUNDLE_LABEL);
  return kuala_informer_wait_synced(kuala_informer_reg_informer(e->cm_reg), 30000, cm_synced, e);
}

/* --- lifecycle ---------------------------------------------------------- */

static char *default_namespace(void)
{
  FILE *f = fopen("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "r");
  char buf[256] = {0};
  if (f) {
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
      n--;
    }
    buf[n] = '\0';
  }
  return kuala_strdup(buf[0] ? buf : "default");
}

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
  e->bundle_ns = opts->bundle_namespace && *opts->bundle_namespace
                     ? kuala_strdup(opts->bundle_namespace)
                     : default_namespace();
  e->opts.bundle_namespace = e->bundle_ns;
  int rc = kuala_client_new(&e->client, loop, opts->client);
  if (rc == 0) {
    rc = kuala_informers_new_client(&e->informers, loop, e->client);
  }
  if (rc == 0) {
    kuala_informer_opts_t io;
    kuala_informer_opts_init(&io);
    io.streaming_list = !opts->no_streaming_list;
    kuala_informers_set_defaults(e->informers, &io);
  }
  if (rc == 0) {
    rc = kuala_manager_new(&e->manager, loop, e->client, e->informers);
  }
  if (rc == 0 && opts->impersonate_ns) {
    kuala_manager_set_impersonation(e->manager, opts->impersonate_ns);
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
    kuala_free(e->bundle_ns);
    kuala_free(e);
    return rc;
  }
  uv_timer_init(loop, &e->progress);
  e->progress.data = e;
  *out = e;
  return 0;
}

int kuala_engine_start(kuala_engine_t *e, kuala_engine_ready_cb ready, void *data)
{
  e->ready = ready;
  e->ready_data = data;
  uv_timer_start(&e->progress, on_progress, PROGRESS_MS, PROGRESS_MS);
  for (size_t i = 0; i < e->opts.nbundles; i++) {
    add_dir_source(e, e->opts.bundles[i]);
  }
  if (e->opts.configmaps) {
    start_configmaps(e);
  }
  check_ready(e);
  return 0;
}

void kuala_engine_stats(const kuala_engine_t *e, kuala_engine_stats_t *out)
{
  *out = e->st;
  out->list_requests = e->stopping ? 0 : kuala_informers_list_requests(e->informers);
}

static void free_slots(kuala_engine_t *e)
{
  for (size_t i = 0; i < e->nslots; i++) {
    slot_t *s = e->slots[i];
    kuala_free(s->name);
    kuala_free(s->source);
    kuala_free(s->dir);
    kuala_free(s->cm_ns);
    kuala_free(s->cm_name);
    kuala_free(s->cm_uid);
    kuala_free(s->last_error);
    kuala_free(s->fsev);
    kuala_free(s);
  }
  kuala_free(e->slots);
  for (size_t i = 0; i < e->opts.nbundles; i++) {
    kuala_free(e->bundle_dirs[i]);
  }
  kuala_free(e->bundle_dirs);
  kuala_free(e->bundle_ns);
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
  free_slots(e);
  kuala_free(e);
  kuala_free(r);
  if (cb) {
    cb(data);
  }
}

/* Wait (one loop iteration at a time) until the manager is gone (every
 * reconcile and call finished), the CRD waits and the slots' handles are
 * closed, then free the engine. The client and informers free themselves. */
static void reaper(uv_idle_t *h)
{
  reaper_t *r = h->data;
  if (r->e->manager_closed && r->e->waits == NULL && r->e->handles == 0) {
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
  if (e->shutdown_grace) {
    uv_timer_start(e->shutdown_grace, grace_fired, 0, 0);
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
  e->handles++;
  uv_close((uv_handle_t *)&e->progress, handle_closed);
  e->progress.data = e;
  for (size_t i = 0; i < e->nslots; i++) {
    slot_t *s = e->slots[i];
    for (size_t k = 0; k < s->nfsev; k++) {
      s->fsev[k].data = e;
      uv_close((uv_handle_t *)&s->fsev[k], handle_closed);
    }
    s->nfsev = 0;
    if (s->has_debounce) {
      s->debounce.data = e;
      uv_close((uv_handle_t *)&s->debounce, handle_closed);
      s->has_debounce = 0;
    }
    /* Jobs held by a standby version would keep the manager waiting. */
    version_t *vs[2] = {s->cur, s->next};
    s->cur = s->next = NULL;
    for (int k = 0; k < 2; k++) {
      if (vs[k]) {
        flush_held(vs[k]);
        vs[k]->b = NULL; /* the runtime closes every bundle below */
        v_kill(vs[k]);
      }
    }
  }
  for (crd_wait_t *w = e->waits; w; w = w->next) {
    if (!w->in_call) {
      crd_wait_close(w);
    }
  }
  if (e->cm_reg) {
    kuala_informer_reg_remove(e->cm_reg);
    e->cm_reg = NULL;
  }
  e->shutdown_grace = kuala_calloc(1, sizeof(*e->shutdown_grace));
  uv_timer_init(e->loop, e->shutdown_grace);
  e->shutdown_grace->data = e;
  uv_timer_start(e->shutdown_grace, grace_fired, grace > 0 ? (uint64_t)grace : 0, 0);
  kuala_manager_close(e->manager, manager_closed, e);
}

static void stop_now(kuala_engine_t *e)
{
  uv_close((uv_handle_t *)e->shutdown_grace, grace_closed);
  e->shutdown_grace = NULL;
  if (!e->manager_closed) {
    kuala_manager_cancel(e->manager); /* its caches go before the informers */
  }
  kuala_runtime_free(e->runtime);
  kuala_informers_close(e->informers);
  kuala_client_close(e->client);
  reaper_t *r = kuala_calloc(1, sizeof(*r));
  r->e = e;
  uv_idle_init(e->loop, &r->idle);
  r->idle.data = r;
  uv_idle_start(&r->idle, reaper);
}

/* --- introspection ---------------------------------------------------------- */

typedef struct {
  kuala_call_done_cb done;
  void *data;
} apply_t;

static void apply_done(void *data, int err, const char *json, size_t len)
{
  apply_t *a = data;
  if (a->done) {
    a->done(a->data, err, json, len);
  }
  kuala_free(a);
}

int kuala_engine_apply(kuala_engine_t *e, const char *json, size_t len, const char *field_manager,
                       kuala_call_done_cb done, void *data)
{
  if (e->stopping) {
    return KUALA_ESHUTDOWN;
  }
  json_object *obj = NULL;
  int rc = kuala_json_parse(&obj, json, len, NULL, 0);
  if (rc) {
    return rc;
  }
  const char *av = kuala_json_path_str(obj, "apiVersion");
  const char *kind = kuala_json_path_str(obj, "kind");
  const char *name = kuala_json_path_str(obj, "metadata.name");
  const char *ns = kuala_json_path_str(obj, "metadata.namespace");
  if (av == NULL || kind == NULL || name == NULL) {
    json_object_put(obj);
    return KUALA_EINVAL;
  }
  /* A cluster-scoped kind ignores the namespace (the manager drops it). */
  kuala_call_t call = {KUALA_CALL_APPLY,
                       av,
                       kind,
                       ns ? ns : "default",
                       name,
                       NULL,
                       NULL,
                       field_manager,
                       1,
                       json,
                       len,
                       NULL};
  apply_t *a = kuala_malloc(sizeof(*a));
  a->done = done;
  a->data = data;
  const kuala_backend_t *be = kuala_manager_backend(e->manager);
  void *handle;
  rc = be->call_start(be->self, &call, apply_done, a, &handle);
  if (rc) {
    kuala_free(a);
  }
  json_object_put(obj);
  return rc;
}

size_t kuala_engine_bundle_dirs(const kuala_engine_t *e, const char *const **dirs)
{
  *dirs = e->opts.bundles;
  return e->opts.nbundles;
}

static const char *slot_state(const slot_t *s)
{
  if (s->removed) {
    return "removed";
  }
  if (s->cur && (s->cur->phase == V_ACTIVE || s->cur->phase == V_DRAINING)) {
    return "running";
  }
  if (s->failed) {
    return "failed";
  }
  return "loading";
}

int kuala_engine_bundles_json(kuala_engine_t *e, char **out, size_t *len)
{
  json_object *arr = json_object_new_array();
  for (size_t i = 0; i < e->nslots; i++) {
    slot_t *s = e->slots[i];
    json_object *o = json_object_new_object();
    char when[32];
    const version_t *live = s->cur ? s->cur : NULL;
    json_object_object_add(o, "name", json_object_new_string(s->name));
    json_object_object_add(o, "source", json_object_new_string(s->source));
    json_object_object_add(o, "hash", live ? json_object_new_string(live->hash) : NULL);
    json_object_object_add(o, "state", json_object_new_string(slot_state(s)));
    if (s->loaded_at) {
      fmt_time(s->loaded_at, when, sizeof(when));
    }
    json_object_object_add(o, "loaded_at", s->loaded_at ? json_object_new_string(when) : NULL);
    json_object_object_add(o, "last_error",
                           s->last_error ? json_object_new_string(s->last_error) : NULL);
    json_object_object_add(o, "loads", json_object_new_int64((int64_t)s->loads));
    json_object_object_add(o, "load_errors", json_object_new_int64((int64_t)s->load_errors));
    size_t mem = live && live->b ? kuala_bundle_memory(live->b) : 0;
    json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)mem));
    json_object_array_add(arr, o);
  }
  size_t n;
  const char *str = kuala_json_compact(arr, &n);
  *out = kuala_malloc(n + 1);
  memcpy(*out, str, n);
  (*out)[n] = '\0';
  *len = n;
  json_object_put(arr);
  return 0;
}

/* --- accessors ------------------------------------------------------------ */

kuala_client_t *kuala_engine_client(kuala_engine_t *e)
{
  return e->client;
}

kuala_manager_t *kuala_engine_manager(kuala_engine_t *e)
{
  return e->manager;
}

kuala_informers_t *kuala_engine_informers(kuala_engine_t *e)
{
  return e->informers;
}

kuala_runtime_t *kuala_engine_runtime(kuala_engine_t *e)
{
  return e->runtime;
}

/* --- bundles from memory (embedding) -------------------------------------- */

int kuala_engine_bundle_set(kuala_engine_t *e, const char *name, const kuala_bundle_file_t *files,
                            size_t nfiles)
{
  if (!e || !name || !*name || (nfiles && !files)) {
    return KUALA_EINVAL;
  }
  if (e->stopping) {
    return KUALA_ESHUTDOWN;
  }
  slot_t *s = slot_find(e, name);
  if (s && strncmp(s->source, "memory:", 7) != 0) {
    return KUALA_EEXISTS; /* a directory or ConfigMap bundle of that name */
  }
  kuala__bfiles_t fs = {0};
  for (size_t i = 0; i < nfiles; i++) {
    if (!files[i].name || (files[i].len && !files[i].src)) {
      kuala__bfiles_free(&fs);
      return KUALA_EINVAL;
    }
    kuala__bfiles_add(&fs, files[i].name, files[i].src, files[i].len);
  }
  if (s == NULL) {
    char source[300];
    snprintf(source, sizeof(source), "memory:%s", name);
    s = slot_new(e, name, source);
  }
  slot_offer(s, &fs);
  kuala__bfiles_free(&fs);
  return 0;
}

int kuala_engine_bundle_remove(kuala_engine_t *e, const char *name)
{
  slot_t *s = e && name ? slot_find(e, name) : NULL;
  if (s == NULL || s->removed) {
    return KUALA_ENOENT;
  }
  if (strncmp(s->source, "memory:", 7) != 0) {
    return KUALA_EINVAL; /* its directory or ConfigMap owns it */
  }
  slot_remove(s);
  return 0;
}
