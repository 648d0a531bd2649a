/*
 * controller.c: watches → keys → work queue → reconcile.
 *
 * Ownership: the controller owns its queue, copies of its watch specs (the
 * strings are duplicated), one informer registration per watch and one job
 * per running reconcile. A job lives from the moment a key is handed out
 * until kuala_controller_job_done(); the key it carries is the queue's
 * borrowed string, valid until kuala_workqueue_done().
 *
 * Lifecycle: new → start (register watches) → synced (every watch's
 * informer synced; workers may run) → stop (registrations removed, queue
 * shut down; the controller is freed when the last running job is done and
 * the queue's handles are closed).
 *
 * Re-entrancy: a reconcile may finish synchronously inside the reconcile
 * function, i.e. inside dispatch(). job_done then only records the result;
 * the dispatch loop that is already running picks up the next key, so a long
 * queue of fast reconciles does not grow the C stack.
 */
#include "kuala/controller.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/log.h"
#include "kuala/workqueue.h"

static const double reconcile_bounds[KUALA_RECONCILE_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3,  0.4,
    0.5,   0.75, 1.0,   1.5,  2.0, 3.0,  5.0, 10.0, 30.0, 60.0};

typedef struct watch_s {
  kuala_controller_t *c;
  kuala_watch_spec_t spec; /* strings owned (copies) */
  kuala_informer_reg_t *reg;
  int synced;
} watch_t;

struct kuala_controller_job_s {
  kuala_controller_t *c;
  const char *key; /* the queue's string */
  char *ns, *name; /* point into text[] */
  uint64_t started_ns;
  int done;
  char text[]; /* "ns\0name\0": one allocation per reconcile */
};

struct kuala_controller_s {
  uv_loop_t *loop;
  kuala_informers_t *informers;
  char *name;
  char *primary_group;
  char *primary_kind;
  int primary_cluster_scoped;
  watch_t *watches;
  size_t nwatches;
  int concurrency;
  kuala_reconcile_fn reconcile;
  void *data;
  kuala_informer_opts_t informer_opts;
  int have_informer_opts;

  kuala_workqueue_t *queue;
  int started;
  int synced;
  int stopping;
  int queue_closed;
  int dispatching;
  int held; /* kuala_controller_hold: keys wait, no reconcile starts */
  size_t nsynced;
  kuala_controller_closed_cb closed_cb;
  void *closed_data;
  kuala_controller_synced_cb synced_cb;
  void *synced_data;
  int trim_on_drain; /* synced; release heap once the first wave drains */
  kuala_controller_stats_t st;
};

static char *dup_or_null(const char *s)
{
  return s ? kuala_strdup(s) : NULL;
}

static void free_key(kuala_informer_key_t *k)
{
  kuala_free((char *)k->group);
  kuala_free((char *)k->version);
  kuala_free((char *)k->resource);
  kuala_free((char *)k->ns);
  kuala_free((char *)k->label_selector);
  kuala_free((char *)k->field_selector);
}

static void dispatch(kuala_controller_t *c);

static void queue_ready(kuala_workqueue_t *q, void *data)
{
  (void)q;
  dispatch(data);
}

int kuala_controller_new(kuala_controller_t **out, uv_loop_t *loop, kuala_informers_t *informers,
                         const kuala_controller_opts_t *opts)
{
  *out = NULL;
  if (loop == NULL || informers == NULL || opts == NULL || opts->name == NULL ||
      opts->nwatches == 0 || opts->watches == NULL || opts->reconcile == NULL ||
      opts->concurrency < 0) {
    if (opts && opts->limiter) {
      kuala_ratelimiter_free(opts->limiter);
    }
    return KUALA_EINVAL;
  }
  for (size_t i = 0; i < opts->nwatches; i++) {
    const kuala_watch_spec_t *w = &opts->watches[i];
    if (w->key.version == NULL || w->key.resource == NULL ||
        (w->mode == KUALA_MAP_FUNC && w->map == NULL) ||
        (w->mode == KUALA_MAP_OWNER && opts->primary_kind == NULL)) {
      if (opts->limiter) {
        kuala_ratelimiter_free(opts->limiter);
      }
      return KUALA_EINVAL;
    }
  }
  kuala_controller_t *c = kuala_calloc(1, sizeof(*c));
  c->loop = loop;
  c->informers = informers;
  c->name = kuala_strdup(opts->name);
  c->primary_group = kuala_strdup(opts->primary_group ? opts->primary_group : "");
  c->primary_kind = dup_or_null(opts->primary_kind);
  c->primary_cluster_scoped = opts->primary_cluster_scoped;
  c->concurrency = opts->concurrency > 0 ? opts->concurrency : 1;
  c->reconcile = opts->reconcile;
  c->data = opts->data;
  if (opts->informer_opts) {
    c->informer_opts = *opts->informer_opts;
    c->have_informer_opts = 1;
  }
  c->nwatches = opts->nwatches;
  c->watches = kuala_calloc(opts->nwatches, sizeof(*c->watches));
  for (size_t i = 0; i < opts->nwatches; i++) {
    watch_t *w = &c->watches[i];
    w->c = c;
    w->spec = opts->watches[i];
    kuala_informer_key_t *k = &w->spec.key;
    k->group = kuala_strdup(k->group ? k->group : "");
    k->version = kuala_strdup(k->version);
    k->resource = kuala_strdup(k->resource);
    k->ns = dup_or_null(k->ns && *k->ns ? k->ns : NULL);
    k->label_selector = dup_or_null(k->label_selector);
    k->field_selector = dup_or_null(k->field_selector);
  }
  kuala_workqueue_opts_t qopts = {c->name, opts->limiter, queue_ready, c};
  int rc = kuala_workqueue_new(&c->queue, loop, &qopts);
  if (rc) {
    for (size_t i = 0; i < c->nwatches; i++) {
      free_key(&c->watches[i].spec.key);
    }
    kuala_free(c->watches);
    kuala_free(c->primary_kind);
    kuala_free(c->primary_group);
    kuala_free(c->name);
    kuala_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* --- events → keys ------------------------------------------------------- */

static void enqueue_key(kuala_controller_t *c, const char *ns, const char *name)
{
  char buf[512];
  const char *key = name;
  if (ns && *ns) {
    int n = snprintf(buf, sizeof(buf), "%s/%s", ns, name);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
      KUALA_LOG(KUALA_LOG_ERROR, "key too long, dropped", "controller", c->name, "name", name);
      return;
    }
    key = buf;
  }
  if (kuala_workqueue_add(c->queue, key) == 0) {
    c->st.enqueued++;
  }
}

static void emit_cb(void *data, const char *ns, const char *name)
{
  if (name && *name) {
    enqueue_key(data, ns, name);
  }
}

/* The group of an apiVersion ("apps/v1" → "apps", "v1" → ""). */
static int group_matches(const char *api_version, const char *group)
{
  const char *slash = strchr(api_version, '/');
  if (slash == NULL) {
    return *group == '\0';
  }
  size_t n = (size_t)(slash - api_version);
  return strlen(group) == n && strncmp(api_version, group, n) == 0;
}

static void map_owner(kuala_controller_t *c, const kuala_obj_t *obj)
{
  json_object *o = NULL;
  if (kuala_json_parse(&o, obj->json, obj->json_len, NULL, 0) != 0) {
    return;
  }
  json_object *refs = kuala_json_path(o, "metadata.ownerReferences");
  size_t n =
      refs && json_object_is_type(refs, json_type_array) ? json_object_array_length(refs) : 0;
  for (size_t i = 0; i < n; i++) {
    json_object *ref = json_object_array_get_idx(refs, i);
    json_object *ctl = kuala_json_path(ref, "controller");
    const char *kind = kuala_json_path_str(ref, "kind");
    const char *av = kuala_json_path_str(ref, "apiVersion");
    const char *name = kuala_json_path_str(ref, "name");
    if (ctl && json_object_get_boolean(ctl) && kind && av && name &&
        strcmp(kind, c->primary_kind) == 0 && group_matches(av, c->primary_group)) {
      /* A namespaced owner is in the child's namespace; a cluster-scoped
       * one (a Tenant owning a Namespace's quota) has none. */
      enqueue_key(c, c->primary_cluster_scoped ? NULL : obj->ns, name);
      break;
    }
  }
  json_object_put(o);
}

static long long generation_of(const kuala_obj_t *obj)
{
  /* A full parse, not a text scan: spec or data may have a "generation"
   * key of their own. Only updates of watches with the predicate pay it. */
  json_object *o = NULL;
  long long g = -1;
  if (kuala_json_parse(&o, obj->json, obj->json_len, NULL, 0) == 0) {
    json_object *gen = kuala_json_path(o, "metadata.generation");
    if (gen) {
      g = json_object_get_int64(gen);
    }
    json_object_put(o);
  }
  return g;
}

static void on_event(watch_t *w, kuala_event_type_t type, const kuala_obj_t *old,
                     const kuala_obj_t *obj)
{
  kuala_controller_t *c = w->c;
  if (c->stopping) {
    return;
  }
  c->st.events++;
  if (type == KUALA_EVENT_UPDATE && w->spec.generation_changed) {
    long long g0 = generation_of(old), g1 = generation_of(obj);
    if (g1 >= 0 && g0 == g1) {
      c->st.filtered++;
      return;
    }
  }
  if (w->spec.predicate && !w->spec.predicate(w->spec.predicate_data, type, old, obj)) {
    c->st.filtered++;
    return;
  }
  switch (w->spec.mode) {
    case KUALA_MAP_SELF:
      enqueue_key(c, obj->ns, obj->name);
      break;
    case KUALA_MAP_OWNER:
      map_owner(c, obj);
      break;
    case KUALA_MAP_FUNC:
      w->spec.map(w->spec.map_data, obj, emit_cb, c);
      break;
  }
}

static void h_add(void *data, const kuala_obj_t *obj, int initial)
{
  (void)initial;
  on_event(data, KUALA_EVENT_ADD, NULL, obj);
}

static void h_update(void *data, const kuala_obj_t *old, const kuala_obj_t *obj)
{
  on_event(data, KUALA_EVENT_UPDATE, old, obj);
}

static void h_delete(void *data, const kuala_obj_t *obj, int final_state_unknown)
{
  (void)final_state_unknown;
  on_event(data, KUALA_EVENT_DELETE, NULL, obj);
}

/* --- sync and dispatch ---------------------------------------------------- */

static void watch_synced(void *data, int err)
{
  watch_t *w = data;
  kuala_controller_t *c = w->c;
  if (err == KUALA_ECANCELED || c->stopping) {
    return;
  }
  if (err) {
    /* Not synced in time: keep waiting; the informer retries by itself. */
    KUALA_LOG(KUALA_LOG_WARN, "cache not synced yet, still waiting", "controller", c->name,
              "resource", w->spec.key.resource, "error", kuala_strerror(err));
    kuala_informer_wait_synced(kuala_informer_reg_informer(w->reg), 30000, watch_synced, w);
    return;
  }
  if (!w->synced) {
    w->synced = 1;
    if (++c->nsynced == c->nwatches) {
      c->synced = 1;
      c->trim_on_drain = 1;
      KUALA_LOG(KUALA_LOG_INFO, "caches synced, starting workers", "controller", c->name);
      if (c->synced_cb) {
        kuala_controller_synced_cb cb = c->synced_cb;
        c->synced_cb = NULL;
        cb(c->synced_data, c);
      }
      if (!c->stopping) {
        dispatch(c);
      }
    }
  }
}

int kuala_controller_start(kuala_controller_t *c)
{
  if (c->started) {
    return KUALA_EBUSY;
  }
  c->started = 1;
  static const kuala_informer_handlers_t handlers = {h_add, h_update, h_delete};
  for (size_t i = 0; i < c->nwatches; i++) {
    watch_t *w = &c->watches[i];
    int rc =
        kuala_informers_add_handler(&w->reg, c->informers, &w->spec.key,
                                    c->have_informer_opts ? &c->informer_opts : NULL, &handlers, w);
    if (rc) {
      KUALA_LOG(KUALA_LOG_ERROR, "cannot watch", "controller", c->name, "resource",
                w->spec.key.resource, "error", kuala_strerror(rc));
      for (size_t j = 0; j < i; j++) {
        kuala_informer_reg_remove(c->watches[j].reg);
        c->watches[j].reg = NULL;
      }
      return rc;
    }
  }
  for (size_t i = 0; i < c->nwatches; i++) {
    watch_t *w = &c->watches[i];
    kuala_informer_t *inf = kuala_informer_reg_informer(w->reg);
    if (kuala_informer_has_synced(inf)) {
      watch_synced(w, 0);
    } else {
      kuala_informer_wait_synced(inf, 30000, watch_synced, w);
    }
  }
  return 0;
}

static void bucket_time(kuala_controller_t *c, double s)
{
  c->st.time_sum += s;
  c->st.time_count++;
  for (int i = 0; i < KUALA_RECONCILE_BUCKETS; i++) {
    if (s <= reconcile_bounds[i]) {
      c->st.time_buckets[i]++;
      return;
    }
  }
}

static void maybe_free(kuala_controller_t *c);

static void finish_job(kuala_controller_job_t *job, const kuala_controller_result_t *res)
{
  kuala_controller_t *c = job->c;
  kuala_controller_result_t ok = {0, 0, 0, NULL};
  if (res == NULL) {
    res = &ok;
  }
  double took = (double)(uv_hrtime() - job->started_ns) / 1e9;
  bucket_time(c, took);
  if (kuala_log_enabled(KUALA_LOG_DEBUG)) {
    char ms[32];
    snprintf(ms, sizeof(ms), "%.3f", took * 1000.0);
    const char *result = res->err                 ? "error"
                         : res->requeue_after > 0 ? "requeue_after"
                         : res->requeue           ? "requeue"
                                                  : "success";
    kuala_log_kv_t ctx[] = {{"controller", c->name}, {"key", job->key}};
    kuala_log(KUALA_LOG_DEBUG, ctx, 2, "reconcile end", "result", result, "duration_ms", ms, NULL);
  }
  if (res->err) {
    c->st.error++;
    if (res->err == KUALA_ENOMEM) {
      c->st.limit_memory++;
    } else if (res->err == KUALA_ETIMEDOUT) {
      int cpu = res->message && strstr(res->message, "CPU budget") != NULL;
      c->st.limit_cpu += cpu;
      c->st.limit_deadline += !cpu;
    }
    kuala_log_kv_t ctx[] = {{"controller", c->name}, {"key", job->key}};
    kuala_log(KUALA_LOG_ERROR, ctx, 2, "reconcile failed", "error",
              res->message ? res->message : kuala_strerror(res->err), NULL);
    kuala_workqueue_add_rate_limited(c->queue, job->key);
  } else if (res->requeue_after > 0) {
    c->st.requeue_after++;
    kuala_workqueue_forget(c->queue, job->key);
    kuala_workqueue_add_after(c->queue, job->key, (uint64_t)(res->requeue_after * 1000.0));
  } else if (res->requeue) {
    c->st.requeue++;
    kuala_workqueue_add_rate_limited(c->queue, job->key);
  } else {
    c->st.success++;
    kuala_workqueue_forget(c->queue, job->key);
  }
  kuala_workqueue_done(c->queue, job->key);
  c->st.active--;
  kuala_free(job);
}

void kuala_controller_job_done(kuala_controller_job_t *job, const kuala_controller_result_t *res)
{
  kuala_controller_t *c = job->c;
  if (job->done) {
    KUALA_LOG(KUALA_LOG_ERROR, "reconcile finished twice (ignored)", "controller", c->name);
    return;
  }
  job->done = 1;
  finish_job(job, res);
  if (c->stopping) {
    maybe_free(c);
  } else if (!c->dispatching) {
    dispatch(c);
  }
}

kuala_controller_t *kuala_controller_job_controller(kuala_controller_job_t *job)
{
  return job->c;
}

static void dispatch(kuala_controller_t *c)
{
  if (!c->synced || c->stopping || c->dispatching || c->held) {
    return;
  }
  c->dispatching = 1;
  const char *key;
  while (!c->stopping && c->st.active < (size_t)c->concurrency &&
         kuala_workqueue_get(c->queue, &key) == 0) {
    size_t klen = strlen(key);
    kuala_controller_job_t *job = kuala_malloc(sizeof(*job) + klen + 2);
    memset(job, 0, sizeof(*job));
    job->c = c;
    job->key = key;
    const char *slash = strchr(key, '/');
    size_t nslen = slash ? (size_t)(slash - key) : 0;
    memcpy(job->text, key, nslen);
    job->text[nslen] = '\0';
    job->ns = job->text;
    job->name = job->text + nslen + 1;
    memcpy(job->name, slash ? slash + 1 : key, klen - (slash ? nslen + 1 : 0) + 1);
    job->started_ns = uv_hrtime();
    c->st.active++;
    if (kuala_log_enabled(KUALA_LOG_DEBUG)) {
      kuala_log_kv_t ctx[] = {{"controller", c->name}, {"key", key}};
      kuala_log(KUALA_LOG_DEBUG, ctx, 2, "reconcile start", NULL);
    }
    int rc = c->reconcile(c->data, job, job->ns, job->name);
    if (rc) {
      kuala_controller_result_t r = {rc, 0, 0, "reconcile could not start"};
      job->done = 1;
      finish_job(job, &r);
    }
  }
  c->dispatching = 0;
  if (c->trim_on_drain && c->st.active == 0 && kuala_workqueue_len(c->queue) == 0) {
    /* The keys of the initial sync and the garbage of its reconciles are
     * gone: give the pages back (a restart costs no more memory than the
     * same objects arriving one by one). */
    c->trim_on_drain = 0;
    kuala__mem_release("first reconciles");
  }
}

/* --- public helpers --------------------------------------------------------- */

void kuala_controller_on_synced(kuala_controller_t *c, kuala_controller_synced_cb cb, void *data)
{
  c->synced_cb = cb;
  c->synced_data = data;
}

void kuala_controller_hold(kuala_controller_t *c, int hold)
{
  c->held = hold != 0;
  if (!c->held) {
    dispatch(c);
  }
}

int kuala_controller_enqueue(kuala_controller_t *c, const char *ns, const char *name)
{
  if (c->stopping || name == NULL || *name == '\0') {
    return KUALA_EINVAL;
  }
  enqueue_key(c, ns, name);
  return 0;
}

static int enqueue_each(void *data, const kuala_obj_t *obj)
{
  enqueue_key(data, obj->ns, obj->name);
  return 0;
}

size_t kuala_controller_enqueue_all(kuala_controller_t *c)
{
  kuala_store_t *s = kuala_controller_primary_store(c);
  if (s == NULL || c->stopping) {
    return 0;
  }
  uint64_t before = c->st.enqueued;
  kuala_store_foreach(s, c->watches[0].spec.scope_ns, c->watches[0].spec.scope_labels, enqueue_each,
                      c);
  return (size_t)(c->st.enqueued - before);
}

const char *kuala_controller_name(const kuala_controller_t *c)
{
  return c->name;
}

void kuala_controller_stats(const kuala_controller_t *c, kuala_controller_stats_t *out)
{
  *out = c->st;
  out->synced = c->synced;
  out->concurrency = c->concurrency;
  out->held = c->held;
}

struct kuala_workqueue_s *kuala_controller_queue(kuala_controller_t *c)
{
  return c->queue;
}

kuala_store_t *kuala_controller_primary_store(kuala_controller_t *c)
{
  if (c->watches[0].reg == NULL) {
    return NULL;
  }
  return kuala_informer_store(kuala_informer_reg_informer(c->watches[0].reg));
}

double kuala_controller_bucket_bound(int i)
{
  return i >= 0 && i < KUALA_RECONCILE_BUCKETS ? reconcile_bounds[i] : 0;
}

/* --- stop ---------------------------------------------------------------- */

static void queue_closed(kuala_workqueue_t *q, void *data)
{
  (void)q;
  kuala_controller_t *c = data;
  c->queue = NULL;
  c->queue_closed = 1;
  maybe_free(c);
}

static void maybe_free(kuala_controller_t *c)
{
  if (c->st.active > 0) {
    return;
  }
  if (c->queue && !c->queue_closed) {
    kuala_workqueue_t *q = c->queue;
    kuala_workqueue_close(q, queue_closed, c);
    return;
  }
  if (!c->queue_closed) {
    return;
  }
  kuala_controller_closed_cb cb = c->closed_cb;
  void *data = c->closed_data;
  for (size_t i = 0; i < c->nwatches; i++) {
    free_key(&c->watches[i].spec.key);
  }
  kuala_free(c->watches);
  kuala_free(c->primary_kind);
  kuala_free(c->primary_group);
  kuala_free(c->name);
  kuala_free(c);
  if (cb) {
    cb(data);
  }
}

void kuala_controller_stop(kuala_controller_t *c, kuala_controller_closed_cb cb, void *data)
{
  if (c->stopping) {
    return;
  }
  c->stopping = 1;
  c->synced_cb = NULL;
  c->closed_cb = cb;
  c->closed_data = data;
  for (size_t i = 0; i < c->nwatches; i++) {
    if (c->watches[i].reg) {
      kuala_informer_reg_remove(c->watches[i].reg);
      c->watches[i].reg = NULL;
    }
  }
  kuala_workqueue_shutdown(c->queue, KUALA_WORKQUEUE_CANCEL);
  maybe_free(c);
}
