/*
 * manager.c: client + shared informers + controllers + the runtime backend.
 *
 * Ownership: the manager borrows the client and the informer registry. It
 * owns (1) one "cache" registration per group/version/resource that a
 * controller watches or a reconcile reads, with no handlers, so cache reads
 * share the controllers' informers: one unfiltered informer per resource,
 * also for watches restricted to a namespace or a label selector, whose
 * events are filtered client-side (wfilter_t), so a reconcile always reads
 * the state its event came from;
 * (2) the controllers it started; (3) one call_t per API call in flight.
 *
 * The manager is freed only when nothing points at it any more: close stops
 * the controllers and cancels the calls, and the last of their callbacks
 * frees it.
 */
#include "kuala/manager.h"

#include <json-c/json.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/log.h"
#include "kuala/permissions.h"
#include "kuala/selector.h"
#include "kuala/workqueue.h"
#include "base/map.h"

typedef struct cache_s {
  char *key; /* "group/version/resource" */
  kuala_informer_reg_t *reg;
  size_t ctl_refs; /* watches of running controllers on this resource */
  int ctl_made;    /* created for a controller (released with the last one) */
} cache_t;

/* A watch restricted to a namespace or a label selector does not get an
 * informer of its own: it shares the resource's unfiltered one (the one
 * cache reads use) and its events are filtered here (controller-runtime,
 * too, has one informer per kind and filters with predicates). With two
 * informers the filtered stream could start a reconcile before the read
 * cache had the object (ctx:get answered nil for an object that exists);
 * one informer keeps events and reads in step, and keeps one copy of each
 * object in memory. The watch
 * still sees only its objects, with the events a server-side filtered
 * watch would send: an update that makes an object match is an add, one
 * that makes it stop matching is a delete (of the last matching state),
 * updates outside the selection are dropped. The watch's own predicate
 * and generation_changed run here too, after the translation. */
typedef struct wfilter_s {
  const char *ns;        /* borrowed from the ctl's watch decl; NULL = all */
  kuala_selector_t *sel; /* labels; NULL = all */
  int generation_changed;
  kuala_predicate_fn predicate;
  void *predicate_data;
} wfilter_t;

typedef struct ctl_s ctl_t;

typedef struct call_s {
  kuala_manager_t *m;
  struct call_s *next, *prev;
  kuala_call_verb_t verb;
  char *api_version, *kind, *ns, *name, *subresource, *patch_type, *field_manager, *body;
  size_t body_len;
  int force;
  kuala_call_done_cb done;
  void *data;
  kuala_client_req_t *req;
  char *impersonate; /* Impersonate-User or NULL */
  int resolving;
  int canceled;
} call_t;

struct ctl_s {
  kuala_manager_t *m;
  char *name;
  kuala_watch_decl_t *watches;  /* strings owned */
  kuala_client_resource_t *res; /* resolved, strings owned */
  size_t nwatches;
  size_t resolved;
  int failed;
  int concurrency;
  kuala_reconcile_fn reconcile;
  void *data;
  kuala_manager_started_cb cb;
  void *cb_data;
  kuala_controller_t *c;
  int stopping;
  int caches_held;           /* counted in cache_t.ctl_refs */
  struct wfilter_s *filters; /* [nwatches]: client-side filters, or NULL */
};

/* A reconcile waiting for a kind's cache: resolving the kind, then waiting
 * for its informer to sync. Detached (m == NULL) when the manager closes or
 * the wait is canceled; the pending resolve or informer callback frees it. */
typedef struct wait_s {
  kuala_manager_t *m;
  struct wait_s *next, *prev;
  char *api_version, *kind;
  uint64_t timeout_ms;
  kuala_call_done_cb done; /* NULL once answered */
  void *data;
} wait_t;

struct kuala_manager_s {
  uv_loop_t *loop;
  kuala_client_t *client;
  kuala_informers_t *informers;
  kuala_backend_t backend;
  kuala__map_t caches; /* key -> cache_t */
  ctl_t **ctls;
  size_t nctls, capctls;
  size_t live_ctls; /* controllers not yet freed (incl. stopping ones) */
  call_t *calls;
  wait_t *waits;
  int held;             /* kuala_manager_hold: leader-election gate */
  char *impersonate_ns; /* --impersonate-bundles: the bundles' namespace */
  int closing;
  int released; /* closing, and the caches and calls are gone (release()) */
  kuala_manager_closed_cb closed_cb;
  void *closed_data;
};

static char *dup_opt(const char *s)
{
  return s ? kuala_strdup(s) : NULL;
}

static void maybe_free(kuala_manager_t *m);

/* --- caches ------------------------------------------------------------- */

static cache_t *cache_for(kuala_manager_t *m, const kuala_client_resource_t *r, int create)
{
  char key[512];
  snprintf(key, sizeof(key), "%s/%s/%s", r->group, r->version, r->resource);
  cache_t *c = kuala__map_get(&m->caches, key, strlen(key));
  if (c || !create || m->closing) {
    return c;
  }
  c = kuala_calloc(1, sizeof(*c));
  c->key = kuala_strdup(key);
  kuala_informer_key_t ik = {r->group, r->version, r->resource, NULL, NULL, NULL, 0};
  static const kuala_informer_handlers_t none = {NULL, NULL, NULL};
  int rc = kuala_informers_add_handler(&c->reg, m->informers, &ik, NULL, &none, NULL);
  if (rc) {
    KUALA_LOG(KUALA_LOG_ERROR, "cannot start a cache", "resource", r->resource, "error",
              kuala_strerror(rc));
    kuala_free(c->key);
    kuala_free(c);
    return NULL;
  }
  kuala__map_put(&m->caches, c->key, strlen(c->key), c);
  return c;
}

static void resolved_for_cache(void *data, int err, const kuala_client_resource_t *res)
{
  kuala_manager_t *m = data;
  if (err == 0 && !m->closing) {
    cache_for(m, res, 1);
  }
}

/* The store serving (api_version, kind), or an error: KUALA_EAGAIN while
 * the kind is being resolved or its cache syncs. */
static int store_for(kuala_manager_t *m, const char *api_version, const char *kind,
                     kuala_store_t **out, int *namespaced)
{
  kuala_client_resource_t r;
  if (api_version == NULL || kind == NULL) {
    return KUALA_EINVAL;
  }
  if (kuala_client_resolve_cached(m->client, api_version, kind, &r) != 0) {
    int rc = kuala_client_resolve(m->client, api_version, kind, resolved_for_cache, m);
    return rc ? rc : KUALA_EAGAIN;
  }
  cache_t *c = cache_for(m, &r, 1);
  if (c == NULL) {
    return KUALA_EIO;
  }
  kuala_informer_t *inf = kuala_informer_reg_informer(c->reg);
  if (!kuala_informer_has_synced(inf)) {
    return KUALA_EAGAIN;
  }
  *out = kuala_informer_store(inf);
  *namespaced = r.namespaced;
  return 0;
}

/* Cache reads list and watch the whole type: the bundle must be allowed both. */
static int cache_allowed(const kuala_cache_query_t *q)
{
  if (q->permissions == NULL) {
    return 0;
  }
  char msg[1024];
  int rc = kuala_permissions_check(q->permissions, KUALA_VERB_LIST | KUALA_VERB_WATCH,
                                   q->api_version, q->kind, NULL, NULL, 1, msg, sizeof msg);
  if (rc) {
    KUALA_LOG(KUALA_LOG_WARN, "permission denied", "bundle",
              kuala_permissions_bundle(q->permissions), "error", msg);
  }
  return rc;
}

static int be_cache_get(void *self, const kuala_cache_query_t *q, const char **json, size_t *len)
{
  kuala_manager_t *m = self;
  kuala_store_t *s;
  int namespaced;
  int rc = cache_allowed(q);
  if (rc) {
    return rc;
  }
  rc = store_for(m, q->api_version, q->kind, &s, &namespaced);
  if (rc) {
    return rc;
  }
  kuala_obj_t obj;
  rc = kuala_store_get(s, namespaced && q->ns ? q->ns : "", q->name ? q->name : "", &obj);
  if (rc) {
    return KUALA_ENOTFOUND;
  }
  *json = obj.json;
  *len = obj.json_len;
  return 0;
}

typedef struct {
  kuala_cache_each_cb each;
  void *data;
} each_t;

static int list_each(void *data, const kuala_obj_t *obj)
{
  each_t *e = data;
  return e->each(e->data, obj->json, obj->json_len);
}

static int be_cache_list(void *self, const kuala_cache_query_t *q, kuala_cache_each_cb each,
                         void *data)
{
  kuala_manager_t *m = self;
  kuala_store_t *s;
  int namespaced;
  int rc = cache_allowed(q);
  if (rc) {
    return rc;
  }
  rc = store_for(m, q->api_version, q->kind, &s, &namespaced);
  if (rc) {
    return rc;
  }
  each_t e = {each, data};
  const char *ns = namespaced && q->ns && *q->ns ? q->ns : NULL;
  if (q->index) {
    rc = kuala_store_by_index(s, q->index, q->index_value ? q->index_value : "", list_each, &e);
    return rc < 0 ? rc : 0;
  }
  kuala_selector_t *sel = NULL;
  if (q->label_selector && *q->label_selector) {
    char err[256];
    if (kuala_selector_parse_labels(&sel, q->label_selector, err, sizeof(err)) < 0) {
      KUALA_LOG(KUALA_LOG_WARN, "invalid label selector", "selector", q->label_selector, "error",
                err);
      return KUALA_EINVAL;
    }
  }
  rc = kuala_store_foreach(s, ns, sel, list_each, &e);
  kuala_selector_free(sel);
  return rc < 0 ? rc : 0;
}

/* --- waiting for a cache --------------------------------------------------- */

static void wait_unlink(wait_t *w)
{
  kuala_manager_t *m = w->m;
  if (m == NULL) {
    return;
  }
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    m->waits = w->next;
  }
  if (w->next) {
    w->next->prev = w->prev;
  }
  w->m = NULL;
  w->next = w->prev = NULL;
}

/* Answer once; the struct stays until its pending callback frees it. */
static void wait_answer(wait_t *w, int err)
{
  kuala_call_done_cb done = w->done;
  w->done = NULL;
  wait_unlink(w);
  if (done) {
    done(w->data, err, NULL, 0);
  }
}

static void wait_free(wait_t *w)
{
  kuala_manager_t *m = w->m;
  wait_unlink(w);
  kuala_free(w->api_version);
  kuala_free(w->kind);
  kuala_free(w);
  if (m) {
    maybe_free(m);
  }
}

static void wait_synced(void *data, int err)
{
  wait_t *w = data;
  if (w->done) {
    wait_answer(w, err);
  }
  wait_free(w);
}

/* Start the informer wait for a resolved kind; 0 or an error to answer. */
static int wait_on_cache(wait_t *w, const kuala_client_resource_t *r)
{
  cache_t *c = cache_for(w->m, r, 1);
  if (c == NULL) {
    return w->m->closing ? KUALA_ESHUTDOWN : KUALA_EIO;
  }
  return kuala_informer_wait_synced(kuala_informer_reg_informer(c->reg), w->timeout_ms, wait_synced,
                                    w);
}

static void wait_resolved(void *data, int err, const kuala_client_resource_t *res)
{
  wait_t *w = data;
  if (w->done == NULL || w->m == NULL) { /* canceled or the manager closed */
    if (w->done) {
      wait_answer(w, KUALA_ECANCELED);
    }
    wait_free(w);
    return;
  }
  if (err == 0) {
    err = wait_on_cache(w, res);
    if (err == 0) {
      return; /* wait_synced answers and frees */
    }
  } else if (err == KUALA_ENOTFOUND) {
    KUALA_LOG(KUALA_LOG_WARN, "a reconcile reads a kind the API server does not serve",
              "apiVersion", w->api_version, "kind", w->kind);
  }
  wait_answer(w, err);
  wait_free(w);
}

static int be_cache_wait(void *self, const kuala_cache_query_t *q, uint64_t timeout_ms,
                         kuala_call_done_cb done, void *data, void **handle)
{
  kuala_manager_t *m = self;
  if (m->released) {
    return KUALA_ESHUTDOWN;
  }
  if (q == NULL || q->api_version == NULL || q->kind == NULL || done == NULL) {
    return KUALA_EINVAL;
  }
  int rc = cache_allowed(q);
  if (rc) {
    return rc;
  }
  wait_t *w = kuala_calloc(1, sizeof(*w));
  w->m = m;
  w->api_version = kuala_strdup(q->api_version);
  w->kind = kuala_strdup(q->kind);
  w->timeout_ms = timeout_ms ? timeout_ms : 30000;
  w->done = done;
  w->data = data;
  w->next = m->waits;
  if (m->waits) {
    m->waits->prev = w;
  }
  m->waits = w;
  kuala_client_resource_t r;
  if (kuala_client_resolve_cached(m->client, q->api_version, q->kind, &r) == 0) {
    rc = wait_on_cache(w, &r);
  } else {
    rc = kuala_client_resolve(m->client, q->api_version, q->kind, wait_resolved, w);
  }
  if (rc) {
    w->done = NULL;
    wait_free(w);
    return rc;
  }
  *handle = w;
  return 0;
}

static void be_cache_wait_cancel(void *self, void *handle)
{
  (void)self;
  wait_t *w = handle;
  if (w->done) {
    wait_answer(w, KUALA_ECANCELED);
  }
}

/* --- enqueue from a reconcile ------------------------------------------------ */

static int be_enqueue(void *self, const char *controller, const char *ns, const char *name,
                      uint64_t after_ms)
{
  kuala_manager_t *m = self;
  if (controller == NULL) {
    return KUALA_EINVAL;
  }
  for (size_t i = 0; i < m->nctls; i++) {
    ctl_t *ctl = m->ctls[i];
    if (ctl->c == NULL || ctl->stopping || strcmp(ctl->name, controller) != 0) {
      continue;
    }
    if (name == NULL) {
      kuala_controller_enqueue_all(ctl->c);
      return 0;
    }
    if (after_ms == 0) {
      return kuala_controller_enqueue(ctl->c, ns, name);
    }
    char key[512];
    int n = ns && *ns ? snprintf(key, sizeof(key), "%s/%s", ns, name)
                      : snprintf(key, sizeof(key), "%s", name);
    if (n < 0 || (size_t)n >= sizeof(key)) {
      return KUALA_EINVAL;
    }
    return kuala_workqueue_add_after(kuala_controller_queue(ctl->c), key, after_ms);
  }
  return KUALA_ENOENT;
}

/* --- API calls ------------------------------------------------------------- */

static void call_free(call_t *call)
{
  kuala_manager_t *m = call->m;
  if (call->prev) {
    call->prev->next = call->next;
  } else {
    m->calls = call->next;
  }
  if (call->next) {
    call->next->prev = call->prev;
  }
  kuala_free(call->api_version);
  kuala_free(call->kind);
  kuala_free(call->ns);
  kuala_free(call->name);
  kuala_free(call->subresource);
  kuala_free(call->patch_type);
  kuala_free(call->field_manager);
  kuala_free(call->body);
  kuala_free(call->impersonate);
  kuala_free(call);
  maybe_free(m);
}

static void call_finish(call_t *call, int err, const char *json, size_t len)
{
  call->done(call->data, err, json, len);
  call_free(call);
}

static void client_done(void *data, int err, kuala_client_resp_t *resp)
{
  call_t *call = data;
  call->req = NULL;
  const char *body = resp ? resp->body : NULL;
  size_t len = resp && resp->body ? resp->body_len : 0;
  call_finish(call, err, body, len);
}

static int patch_type_of(const char *s, kuala_patch_type_t *out)
{
  if (s == NULL || strcmp(s, "merge") == 0) {
    *out = KUALA_PATCH_MERGE;
  } else if (strcmp(s, "json") == 0) {
    *out = KUALA_PATCH_JSON;
  } else if (strcmp(s, "strategic") == 0) {
    *out = KUALA_PATCH_STRATEGIC;
  } else {
    return KUALA_EINVAL;
  }
  return 0;
}

/* Start the HTTP request for a resolved call; on failure the call's done
 * callback has NOT run and the caller decides what to do. */
static int call_issue(call_t *call, const kuala_client_resource_t *r)
{
  kuala_manager_t *m = call->m;
  kuala_client_target_t t = {r->group,
                             r->version,
                             r->resource,
                             r->namespaced ? (call->ns && *call->ns ? call->ns : NULL) : NULL,
                             call->verb == KUALA_CALL_CREATE ? NULL : call->name,
                             call->subresource};
  if (r->namespaced && t.ns == NULL) {
    return KUALA_EINVAL; /* a namespaced object needs its namespace */
  }
  if (call->verb != KUALA_CALL_CREATE && (t.name == NULL || *t.name == '\0')) {
    return KUALA_EINVAL;
  }
  kuala_client_opts_t opts;
  kuala_client_opts_init(&opts);
  opts.field_manager = call->field_manager;
  opts.impersonate_user = call->impersonate;
  const char *body = call->body ? call->body : "";
  size_t len = call->body ? call->body_len : 0;
  kuala_patch_type_t pt;
  json_object *delopts = NULL;
  int rc;
  switch (call->verb) {
    case KUALA_CALL_GET:
      rc = kuala_client_get(&call->req, m->client, &t, &opts, client_done, call);
      break;
    case KUALA_CALL_CREATE:
      rc = kuala_client_create(&call->req, m->client, &t, body, len, &opts, client_done, call);
      break;
    case KUALA_CALL_UPDATE:
      rc = kuala_client_update(&call->req, m->client, &t, body, len, &opts, client_done, call);
      break;
    case KUALA_CALL_PATCH:
      rc = patch_type_of(call->patch_type, &pt);
      if (rc == 0) {
        rc = kuala_client_patch(&call->req, m->client, &t, pt, body, len, &opts, client_done, call);
      }
      break;
    case KUALA_CALL_APPLY:
      if (opts.field_manager == NULL) {
        return KUALA_EINVAL;
      }
      opts.force = call->force;
      rc = kuala_client_patch(&call->req, m->client, &t, KUALA_PATCH_APPLY, body, len, &opts,
                              client_done, call);
      break;
    case KUALA_CALL_DELETE:
      /* DeleteOptions in the body: honour propagationPolicy. */
      if (call->body && kuala_json_parse(&delopts, call->body, call->body_len, NULL, 0) == 0) {
        opts.propagation_policy = kuala_json_path_str(delopts, "propagationPolicy");
      }
      rc = kuala_client_delete(&call->req, m->client, &t, &opts, client_done, call);
      json_object_put(delopts);
      break;
    default:
      rc = KUALA_EINVAL;
  }
  return rc;
}

static void call_resolved(void *data, int err, const kuala_client_resource_t *res)
{
  call_t *call = data;
  call->resolving = 0;
  if (call->canceled) {
    call_finish(call, KUALA_ECANCELED, NULL, 0);
    return;
  }
  if (err) {
    call_finish(call, err, NULL, 0);
    return;
  }
  int rc = call_issue(call, res);
  if (rc) {
    call_finish(call, rc, NULL, 0);
  }
}

/* Check a bundle's call against its permissions; when refused, answer it
 * now (done runs with KUALA_EFORBIDDEN and a Forbidden Status, nothing is
 * sent) and return 1. */
static int call_refused(const kuala_call_t *c, kuala_call_done_cb done, void *data)
{
  static const unsigned bit[] = {0,
                                 KUALA_VERB_GET,
                                 KUALA_VERB_CREATE,
                                 KUALA_VERB_UPDATE,
                                 KUALA_VERB_PATCH,
                                 KUALA_VERB_PATCH, /* server-side apply is a patch */
                                 KUALA_VERB_DELETE};
  unsigned verb = (unsigned)c->verb < sizeof bit / sizeof bit[0] ? bit[c->verb] : 0;
  char msg[1024];
  if (kuala_permissions_check(c->permissions, verb, c->api_version, c->kind, c->subresource,
                              c->verb == KUALA_CALL_CREATE ? NULL : c->name, 0, msg,
                              sizeof msg) == 0) {
    return 0;
  }
  KUALA_LOG(KUALA_LOG_WARN, "permission denied", "bundle", kuala_permissions_bundle(c->permissions),
            "error", msg);
  json_object *st = json_object_new_object();
  kuala_json_set_str(st, "kind", "Status");
  kuala_json_set_str(st, "apiVersion", "v1");
  kuala_json_set_str(st, "status", "Failure");
  kuala_json_set_str(st, "message", msg);
  kuala_json_set_str(st, "reason", "Forbidden");
  json_object_object_add(st, "code", json_object_new_int(403));
  size_t len;
  const char *json = kuala_json_compact(st, &len);
  done(data, KUALA_EFORBIDDEN, json, len);
  json_object_put(st);
  return 1;
}

static int be_call_start(void *self, const kuala_call_t *c, kuala_call_done_cb done, void *data,
                         void **handle)
{
  kuala_manager_t *m = self;
  if (m->released) {
    return KUALA_ESHUTDOWN;
  }
  if (c->api_version == NULL || c->kind == NULL || done == NULL) {
    return KUALA_EINVAL;
  }
  if (c->permissions && call_refused(c, done, data)) {
    *handle = NULL;
    return 0; /* done already ran with KUALA_EFORBIDDEN */
  }
  call_t *call = kuala_calloc(1, sizeof(*call));
  call->m = m;
  call->verb = c->verb;
  call->api_version = kuala_strdup(c->api_version);
  call->kind = kuala_strdup(c->kind);
  call->ns = dup_opt(c->ns);
  call->name = dup_opt(c->name);
  call->subresource = dup_opt(c->subresource);
  call->patch_type = dup_opt(c->patch_type);
  call->field_manager = dup_opt(c->field_manager);
  call->body = c->body ? kuala_memdup(c->body, c->body_len) : NULL;
  call->body_len = c->body_len;
  call->force = c->force;
  call->done = done;
  call->data = data;
  if (m->impersonate_ns && c->permissions) {
    char who[512];
    snprintf(who, sizeof who, "system:serviceaccount:%s:kuala-%s", m->impersonate_ns,
             kuala_permissions_bundle(c->permissions));
    call->impersonate = kuala_strdup(who);
  }
  call->next = m->calls;
  if (m->calls) {
    m->calls->prev = call;
  }
  m->calls = call;

  kuala_client_resource_t r;
  int rc;
  if (kuala_client_resolve_cached(m->client, c->api_version, c->kind, &r) == 0) {
    rc = call_issue(call, &r);
  } else {
    rc = kuala_client_resolve(m->client, c->api_version, c->kind, call_resolved, call);
    call->resolving = rc == 0;
  }
  if (rc) {
    call->done = NULL;
    call_free(call);
    return rc;
  }
  *handle = call;
  return 0;
}

static void be_call_cancel(void *self, void *handle)
{
  (void)self;
  call_t *call = handle;
  if (call->canceled) {
    return;
  }
  call->canceled = 1;
  if (call->req) {
    kuala_client_req_cancel(call->req);
  }
  /* While resolving, call_resolved sees `canceled` and finishes. */
}

/* --- controllers --------------------------------------------------------- */

static void ctl_free(ctl_t *ctl)
{
  for (size_t i = 0; i < ctl->nwatches; i++) {
    kuala_free((char *)ctl->watches[i].api_version);
    kuala_free((char *)ctl->watches[i].kind);
    kuala_free((char *)ctl->watches[i].ns);
    kuala_free((char *)ctl->watches[i].label_selector);
    kuala_free((char *)ctl->res[i].group);
    kuala_free((char *)ctl->res[i].version);
    kuala_free((char *)ctl->res[i].resource);
    kuala_free((char *)ctl->res[i].kind);
  }
  for (size_t i = 0; ctl->filters && i < ctl->nwatches; i++) {
    kuala_selector_free(ctl->filters[i].sel);
  }
  kuala_free(ctl->filters);
  kuala_free(ctl->watches);
  kuala_free(ctl->res);
  kuala_free(ctl->name);
  kuala_free(ctl);
}

static void ctl_closed(void *data)
{
  ctl_t *ctl = data;
  kuala_manager_t *m = ctl->m;
  ctl_free(ctl);
  m->live_ctls--;
  maybe_free(m);
}

static void ctl_forget(kuala_manager_t *m, ctl_t *ctl)
{
  for (size_t i = 0; i < m->nctls; i++) {
    if (m->ctls[i] == ctl) {
      m->ctls[i] = m->ctls[--m->nctls];
      return;
    }
  }
}

static void ctl_release_caches(kuala_manager_t *m, ctl_t *ctl);

typedef struct {
  int matches;
  long long generation; /* -1 when absent or not parsed */
} wview_t;

static wview_t filter_view(const wfilter_t *f, const kuala_obj_t *o, int want_gen)
{
  wview_t v = {0, -1};
  if (o == NULL || (f->ns && strcmp(o->ns ? o->ns : "", f->ns) != 0)) {
    return v;
  }
  if (f->sel == NULL && !want_gen) {
    v.matches = 1;
    return v;
  }
  json_object *obj = NULL;
  if (kuala_json_parse(&obj, o->json, o->json_len, NULL, 0) != 0) {
    return v; /* the store holds valid JSON; nothing to match on otherwise */
  }
  v.matches = f->sel == NULL ||
              kuala_selector_matches_json(f->sel, kuala_json_path(obj, "metadata.labels"));
  json_object *gen = kuala_json_path(obj, "metadata.generation");
  if (gen) {
    v.generation = json_object_get_int64(gen);
  }
  json_object_put(obj);
  return v;
}

static int filter_event(void *data, kuala_event_type_t type, const kuala_obj_t *old,
                        const kuala_obj_t *obj)
{
  const wfilter_t *f = data;
  int gen = f->generation_changed && type == KUALA_EVENT_UPDATE;
  wview_t now = filter_view(f, obj, gen);
  if (type == KUALA_EVENT_UPDATE) {
    wview_t before = filter_view(f, old, gen);
    if (!before.matches && !now.matches) {
      return 0;
    }
    if (!before.matches) {
      type = KUALA_EVENT_ADD; /* it entered the selection */
      old = NULL;
    } else if (!now.matches) {
      type = KUALA_EVENT_DELETE; /* it left: its last matching state */
      obj = old;
      old = NULL;
    } else if (gen && now.generation >= 0 && now.generation == before.generation) {
      return 0; /* generation_changed, as the controller applies it */
    }
  } else if (!now.matches) {
    return 0;
  }
  return f->predicate == NULL || f->predicate(f->predicate_data, type, old, obj);
}

static void ctl_start(ctl_t *ctl)
{
  kuala_manager_t *m = ctl->m;
  kuala_watch_spec_t *specs = kuala_calloc(ctl->nwatches, sizeof(*specs));
  int rc = 0;
  for (size_t i = 0; i < ctl->nwatches; i++) {
    const kuala_watch_decl_t *d = &ctl->watches[i];
    kuala_client_resource_t *r = &ctl->res[i];
    /* Every watch uses the resource's unfiltered informer (see wfilter_t). */
    kuala_informer_key_t k = {r->group, r->version, r->resource, NULL, NULL, NULL, 0};
    specs[i].key = k;
    specs[i].mode = i == 0 ? KUALA_MAP_SELF : d->mode;
    specs[i].map = d->map;
    specs[i].map_data = d->map_data;
    specs[i].generation_changed = d->generation_changed;
    specs[i].predicate = d->predicate;
    specs[i].predicate_data = d->predicate_data;
    const char *ns = r->namespaced && d->ns && *d->ns ? d->ns : NULL;
    kuala_selector_t *sel = NULL;
    if (d->label_selector && *d->label_selector) {
      char err[256];
      if (kuala_selector_parse_labels(&sel, d->label_selector, err, sizeof err) < 0) {
        KUALA_LOG(KUALA_LOG_ERROR, "invalid label selector", "controller", ctl->name, "selector",
                  d->label_selector, "error", err);
        rc = KUALA_EINVAL;
      }
    }
    if (ns || sel) {
      if (ctl->filters == NULL) {
        ctl->filters = kuala_calloc(ctl->nwatches, sizeof(*ctl->filters));
      }
      wfilter_t *f = &ctl->filters[i];
      f->ns = ns;
      f->sel = sel;
      f->generation_changed = d->generation_changed;
      f->predicate = d->predicate;
      f->predicate_data = d->predicate_data;
      specs[i].generation_changed = 0;
      specs[i].predicate = filter_event;
      specs[i].predicate_data = f;
      specs[i].scope_ns = ns;
      specs[i].scope_labels = sel;
    }
    /* Reads of watched kinds share the informer. */
    cache_t *cache = cache_for(m, r, 0);
    int fresh = cache == NULL;
    cache = cache ? cache : cache_for(m, r, 1);
    if (cache) {
      cache->ctl_made |= fresh;
      cache->ctl_refs++;
      ctl->caches_held = 1;
    }
  }
  kuala_controller_opts_t o = {ctl->name,
                               ctl->res[0].group,
                               ctl->res[0].kind,
                               specs,
                               ctl->nwatches,
                               ctl->concurrency,
                               NULL,
                               NULL,
                               ctl->reconcile,
                               ctl->data,
                               !ctl->res[0].namespaced};
  if (rc == 0) {
    rc = kuala_controller_new(&ctl->c, m->loop, m->informers, &o);
  }
  if (rc == 0) {
    kuala_controller_hold(ctl->c, m->held);
    rc = kuala_controller_start(ctl->c);
    if (rc) {
      ctl->stopping = 1;
      kuala_controller_stop(ctl->c, ctl_closed, ctl);
      ctl->c = NULL;
    }
  }
  kuala_free(specs);
  if (rc) {
    ctl_release_caches(m, ctl);
    KUALA_LOG(KUALA_LOG_ERROR, "controller failed to start", "controller", ctl->name, "error",
              kuala_strerror(rc));
    ctl_forget(m, ctl);
    if (ctl->cb) {
      ctl->cb(ctl->cb_data, rc, NULL);
    }
    if (!ctl->stopping) {
      m->live_ctls--;
      ctl_free(ctl);
    }
    return;
  }
  KUALA_LOG(KUALA_LOG_INFO, "controller started", "controller", ctl->name, "watch",
            ctl->res[0].resource);
  if (ctl->cb) {
    ctl->cb(ctl->cb_data, 0, ctl->c);
  }
}

typedef struct {
  ctl_t *ctl;
  size_t i;
} resolve_t;

static void ctl_resolved(void *data, int err, const kuala_client_resource_t *res)
{
  resolve_t *rs = data;
  ctl_t *ctl = rs->ctl;
  size_t i = rs->i;
  kuala_free(rs);
  if (err) {
    if (!ctl->failed) {
      KUALA_LOG(KUALA_LOG_ERROR, "cannot resolve a watched kind", "controller", ctl->name,
                "apiVersion", ctl->watches[i].api_version, "kind", ctl->watches[i].kind, "error",
                kuala_strerror(err));
    }
    ctl->failed = err;
  } else {
    ctl->res[i].group = kuala_strdup(res->group);
    ctl->res[i].version = kuala_strdup(res->version);
    ctl->res[i].resource = kuala_strdup(res->resource);
    ctl->res[i].kind = kuala_strdup(res->kind);
    ctl->res[i].namespaced = res->namespaced;
  }
  if (++ctl->resolved < ctl->nwatches) {
    return;
  }
  kuala_manager_t *m = ctl->m;
  if (ctl->failed || m->closing) {
    int rc = ctl->failed ? ctl->failed : KUALA_ECANCELED;
    ctl_forget(m, ctl);
    if (ctl->cb) {
      ctl->cb(ctl->cb_data, rc, NULL);
    }
    m->live_ctls--;
    ctl_free(ctl);
    maybe_free(m);
    return;
  }
  ctl_start(ctl);
}

int kuala_manager_add_controller(kuala_manager_t *m, const kuala_controller_decl_t *decl,
                                 kuala_manager_started_cb cb, void *data)
{
  if (m->closing) {
    return KUALA_ESHUTDOWN;
  }
  if (decl == NULL || decl->name == NULL || decl->nwatches == 0 || decl->reconcile == NULL) {
    return KUALA_EINVAL;
  }
  for (size_t i = 0; i < decl->nwatches; i++) {
    const kuala_watch_decl_t *w = &decl->watches[i];
    if (w->api_version == NULL || w->kind == NULL || (w->mode == KUALA_MAP_FUNC && !w->map)) {
      return KUALA_EINVAL;
    }
  }
  ctl_t *ctl = kuala_calloc(1, sizeof(*ctl));
  ctl->m = m;
  ctl->name = kuala_strdup(decl->name);
  ctl->nwatches = decl->nwatches;
  ctl->watches = kuala_calloc(decl->nwatches, sizeof(*ctl->watches));
  ctl->res = kuala_calloc(decl->nwatches, sizeof(*ctl->res));
  for (size_t i = 0; i < decl->nwatches; i++) {
    ctl->watches[i] = decl->watches[i];
    ctl->watches[i].api_version = kuala_strdup(decl->watches[i].api_version);
    ctl->watches[i].kind = kuala_strdup(decl->watches[i].kind);
    ctl->watches[i].ns = dup_opt(decl->watches[i].ns);
    ctl->watches[i].label_selector = dup_opt(decl->watches[i].label_selector);
  }
  ctl->concurrency = decl->concurrency;
  ctl->reconcile = decl->reconcile;
  ctl->data = decl->data;
  ctl->cb = cb;
  ctl->cb_data = data;
  if (m->nctls == m->capctls) {
    m->capctls = m->capctls ? m->capctls * 2 : 8;
    m->ctls = kuala_realloc(m->ctls, m->capctls * sizeof(*m->ctls));
  }
  m->ctls[m->nctls++] = ctl;
  m->live_ctls++;
  /* Resolve every watched kind; the last answer starts the controller. A
   * failed start call is reported through the same path. */
  for (size_t i = 0; i < decl->nwatches; i++) {
    resolve_t *rs = kuala_malloc(sizeof(*rs));
    rs->ctl = ctl;
    rs->i = i;
    int rc = kuala_client_resolve(m->client, ctl->watches[i].api_version, ctl->watches[i].kind,
                                  ctl_resolved, rs);
    if (rc) {
      ctl_resolved(rs, rc, NULL);
    }
  }
  return 0;
}

/* A removed controller's watched resources: a cache registration made for
 * controllers goes with the last of them, so a removed bundle releases its
 * informers (a controller started on the same resource before this one
 * stops keeps it: a reload relists nothing). */
static void ctl_release_caches(kuala_manager_t *m, ctl_t *ctl)
{
  if (!ctl->caches_held || m->closing) {
    return;
  }
  ctl->caches_held = 0;
  for (size_t i = 0; i < ctl->nwatches; i++) {
    cache_t *c = cache_for(m, &ctl->res[i], 0);
    if (c == NULL || c->ctl_refs == 0 || --c->ctl_refs > 0 || !c->ctl_made) {
      continue;
    }
    kuala__map_del(&m->caches, c->key, strlen(c->key));
    kuala_informer_reg_remove(c->reg);
    kuala_free(c->key);
    kuala_free(c);
  }
}

void kuala_manager_remove_controller(kuala_manager_t *m, kuala_controller_t *c)
{
  for (size_t i = 0; i < m->nctls; i++) {
    ctl_t *ctl = m->ctls[i];
    if (ctl->c == c && !ctl->stopping) {
      ctl->stopping = 1;
      ctl_forget(m, ctl);
      ctl_release_caches(m, ctl);
      kuala_controller_stop(c, ctl_closed, ctl);
      return;
    }
  }
}

void kuala_manager_hold(kuala_manager_t *m, int hold)
{
  m->held = hold != 0;
  for (size_t i = 0; i < m->nctls; i++) {
    kuala_controller_t *c = m->ctls[i]->c;
    if (c && !m->ctls[i]->stopping) {
      if (!m->held) {
        kuala_controller_enqueue_all(c);
      }
      kuala_controller_hold(c, m->held);
    }
  }
}

int kuala_manager_held(const kuala_manager_t *m)
{
  return m->held;
}

size_t kuala_manager_controller_count(const kuala_manager_t *m)
{
  size_t n = 0;
  for (size_t i = 0; i < m->nctls; i++) {
    n += m->ctls[i]->c != NULL;
  }
  return n;
}

kuala_controller_t *kuala_manager_controller(kuala_manager_t *m, size_t i)
{
  size_t n = 0;
  for (size_t k = 0; k < m->nctls; k++) {
    if (m->ctls[k]->c && n++ == i) {
      return m->ctls[k]->c;
    }
  }
  return NULL;
}

/* --- lifecycle ------------------------------------------------------------- */

int kuala_manager_new(kuala_manager_t **out, uv_loop_t *loop, kuala_client_t *client,
                      kuala_informers_t *informers)
{
  *out = NULL;
  if (loop == NULL || client == NULL || informers == NULL) {
    return KUALA_EINVAL;
  }
  kuala_manager_t *m = kuala_calloc(1, sizeof(*m));
  m->loop = loop;
  m->client = client;
  m->informers = informers;
  kuala__map_init(&m->caches);
  m->backend.cache_get = be_cache_get;
  m->backend.cache_list = be_cache_list;
  m->backend.call_start = be_call_start;
  m->backend.call_cancel = be_call_cancel;
  m->backend.self = m;
  m->backend.cache_wait = be_cache_wait;
  m->backend.cache_wait_cancel = be_cache_wait_cancel;
  m->backend.enqueue = be_enqueue;
  *out = m;
  return 0;
}

const kuala_backend_t *kuala_manager_backend(kuala_manager_t *m)
{
  return &m->backend;
}

/* The caches, the cache waits and the API calls stay usable while stopping
 * controllers finish their running reconciles (a graceful stop); they go
 * once the last controller is gone. */
static void release(kuala_manager_t *m)
{
  m->released = 1;
  size_t iter = 0;
  void *v;
  while (kuala__map_next(&m->caches, &iter, NULL, NULL, &v)) {
    cache_t *c = v;
    kuala_informer_reg_remove(c->reg);
    kuala_free(c->key);
    kuala_free(c);
  }
  kuala__map_free(&m->caches);
  for (call_t *call = m->calls; call; call = call->next) {
    be_call_cancel(m, call);
  }
  /* Waits answer ECANCELED now and detach; their pending resolve or
   * informer callbacks free them without touching the manager. */
  while (m->waits) {
    wait_answer(m->waits, KUALA_ECANCELED);
  }
}

void kuala_manager_cancel(kuala_manager_t *m)
{
  if (m->closing && !m->released) {
    release(m);
    maybe_free(m);
  }
}

void kuala_manager_set_impersonation(kuala_manager_t *m, const char *ns)
{
  kuala_free(m->impersonate_ns);
  m->impersonate_ns = ns && *ns ? kuala_strdup(ns) : NULL;
}

static void maybe_free(kuala_manager_t *m)
{
  if (!m->closing || m->live_ctls > 0) {
    return;
  }
  if (!m->released) {
    release(m);
  }
  if (m->calls || m->waits) {
    return;
  }
  kuala__map_free(&m->caches);
  kuala_free(m->ctls);
  kuala_free(m->impersonate_ns);
  kuala_manager_closed_cb cb = m->closed_cb;
  void *data = m->closed_data;
  kuala_free(m);
  if (cb) {
    cb(data);
  }
}

void kuala_manager_close(kuala_manager_t *m, kuala_manager_closed_cb cb, void *data)
{
  if (m->closing) {
    return;
  }
  m->closing = 1;
  m->closed_cb = cb;
  m->closed_data = data;
  /* Controllers still resolving are freed when their resolution returns. */
  while (m->nctls > 0) {
    ctl_t *ctl = m->ctls[--m->nctls];
    if (ctl->c && !ctl->stopping) {
      ctl->stopping = 1;
      kuala_controller_stop(ctl->c, ctl_closed, ctl);
    }
  }
  maybe_free(m);
}
