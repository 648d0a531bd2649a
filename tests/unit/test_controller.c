/*
 * Unit tests for the controller layer: informer events → keys → work queue
 * → reconcile, on a real informer registry fed by a fake list/watch source.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "kuala/alloc.h"
#include "kuala/controller.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/workqueue.h"
#include "kuala_test.h"

/* --- fake list/watch source ---------------------------------------------- */

#define MAX_OBJS 16
#define MAX_WATCHES 8

typedef struct fake_s fake_t;

typedef struct {
  fake_t *f;
  uv_timer_t timer;
  int is_watch;
  char resource[32];
  kuala_lw_list_cb list_cb;
  kuala_lw_event_cb on_event;
  kuala_lw_done_cb on_done;
  void *data;
  int status; /* 0, or KUALA_ECANCELED */
  int open;   /* watch still streaming */
} fake_call_t;

struct fake_s {
  uv_loop_t *loop;
  /* objects served by list, per resource */
  char *objs[MAX_OBJS];
  char resources[MAX_OBJS][32];
  int nobjs;
  fake_call_t *watches[MAX_WATCHES];
  int nwatches;
  int rv;
};

static void call_closed(uv_handle_t *h)
{
  kuala_free(h->data);
}

static void call_fire(uv_timer_t *t)
{
  fake_call_t *call = t->data;
  fake_t *f = call->f;
  if (!call->is_watch) {
    if (call->status) {
      call->list_cb(call->data, call->status, NULL, NULL, 0);
    } else {
      json_object *page = json_object_new_object();
      json_object *md = json_object_new_object();
      char rv[16];
      snprintf(rv, sizeof(rv), "%d", f->rv);
      json_object_object_add(md, "resourceVersion", json_object_new_string(rv));
      json_object_object_add(page, "metadata", md);
      json_object *items = json_object_new_array();
      for (int i = 0; i < f->nobjs; i++) {
        if (strcmp(f->resources[i], call->resource) == 0) {
          json_object *o = NULL;
          ck_assert_int_eq(kuala_json_parse(&o, f->objs[i], strlen(f->objs[i]), NULL, 0), 0);
          json_object_array_add(items, o);
        }
      }
      json_object_object_add(page, "items", items);
      size_t len;
      const char *body = kuala_json_compact(page, &len);
      call->list_cb(call->data, 0, page, body, len);
      json_object_put(page);
    }
    uv_close((uv_handle_t *)&call->timer, call_closed);
  } else if (call->status) {
    /* stopped */
    for (int i = 0; i < f->nwatches; i++) {
      if (f->watches[i] == call) {
        f->watches[i] = f->watches[--f->nwatches];
        break;
      }
    }
    call->on_done(call->data, call->status);
    uv_close((uv_handle_t *)&call->timer, call_closed);
  }
}

static fake_call_t *new_call(fake_t *f, const kuala_informer_key_t *key, int is_watch)
{
  fake_call_t *call = kuala_calloc(1, sizeof(*call));
  call->f = f;
  call->is_watch = is_watch;
  snprintf(call->resource, sizeof(call->resource), "%s", key->resource);
  uv_timer_init(f->loop, &call->timer);
  call->timer.data = call;
  return call;
}

static int fake_list(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *opts,
                     kuala_lw_list_cb cb, void *data, void **handle)
{
  (void)opts;
  fake_call_t *call = new_call(src, key, 0);
  call->list_cb = cb;
  call->data = data;
  uv_timer_start(&call->timer, call_fire, 0, 0);
  *handle = call;
  return 0;
}

static void fake_cancel_list(void *src, void *handle)
{
  (void)src;
  ((fake_call_t *)handle)->status = KUALA_ECANCELED;
}

static int fake_watch(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *opts,
                      kuala_lw_event_cb on_event, kuala_lw_done_cb on_done, void *data,
                      void **handle)
{
  (void)opts;
  fake_t *f = src;
  ck_assert_int_lt(f->nwatches, MAX_WATCHES);
  fake_call_t *call = new_call(f, key, 1);
  call->on_event = on_event;
  call->on_done = on_done;
  call->data = data;
  call->open = 1;
  f->watches[f->nwatches++] = call;
  *handle = call;
  return 0;
}

static void fake_stop_watch(void *src, void *handle)
{
  (void)src;
  fake_call_t *call = handle;
  call->status = KUALA_ECANCELED;
  uv_timer_start(&call->timer, call_fire, 0, 0);
}

static const kuala_lw_source_t fake_source = {fake_list, fake_cancel_list, fake_watch,
                                              fake_stop_watch};

static void fake_seed(fake_t *f, const char *resource, const char *json)
{
  ck_assert_int_lt(f->nobjs, MAX_OBJS);
  f->objs[f->nobjs] = kuala_strdup(json);
  snprintf(f->resources[f->nobjs], sizeof(f->resources[0]), "%s", resource);
  f->nobjs++;
}

/* Deliver one watch event to every open watch on `resource`. */
static void fake_event(fake_t *f, const char *resource, kuala_lw_type_t type, const char *json)
{
  json_object *o = NULL;
  ck_assert_int_eq(kuala_json_parse(&o, json, strlen(json), NULL, 0), 0);
  int delivered = 0;
  for (int i = 0; i < f->nwatches; i++) {
    fake_call_t *call = f->watches[i];
    if (strcmp(call->resource, resource) == 0 && !call->status) {
      kuala_lw_event_t ev = {type, o, json, strlen(json), 0, NULL, NULL};
      call->on_event(call->data, &ev);
      delivered++;
    }
  }
  ck_assert_int_gt(delivered, 0);
  json_object_put(o);
}

static void fake_free(fake_t *f)
{
  for (int i = 0; i < f->nobjs; i++) {
    kuala_free(f->objs[i]);
  }
}

/* --- a recording reconciler ------------------------------------------------ */

typedef struct {
  uv_loop_t *loop;
  char keys[64][64];
  int n;
  int fail_first; /* fail this many times per key before succeeding */
  int fails;
  double requeue_after_once;
  int async; /* keep jobs pending instead of finishing them */
  kuala_controller_job_t *pending[16];
  int npending;
  int max_active;
  kuala_controller_t *c;
  int stop_after; /* uv_stop once n reaches it */
} rec_t;

static int reconcile(void *data, kuala_controller_job_t *job, const char *ns, const char *name)
{
  rec_t *r = data;
  ck_assert_int_lt(r->n, 64);
  snprintf(r->keys[r->n++], sizeof(r->keys[0]), "%s%s%s", ns, *ns ? "/" : "", name);
  kuala_controller_stats_t st;
  kuala_controller_stats(kuala_controller_job_controller(job), &st);
  if ((int)st.active > r->max_active) {
    r->max_active = (int)st.active;
  }
  if (r->stop_after && r->n >= r->stop_after) {
    uv_stop(r->loop);
  }
  if (r->async) {
    r->pending[r->npending++] = job;
    return 0;
  }
  if (r->fails < r->fail_first) {
    r->fails++;
    kuala_controller_result_t res = {KUALA_EIO, 0, 0, "injected failure"};
    kuala_controller_job_done(job, &res);
    return 0;
  }
  if (r->requeue_after_once > 0) {
    kuala_controller_result_t res = {0, 0, r->requeue_after_once, NULL};
    r->requeue_after_once = 0;
    kuala_controller_job_done(job, &res);
    return 0;
  }
  kuala_controller_job_done(job, NULL);
  return 0;
}

static int count_key(const rec_t *r, const char *key)
{
  int n = 0;
  for (int i = 0; i < r->n; i++) {
    n += strcmp(r->keys[i], key) == 0;
  }
  return n;
}

typedef struct {
  uv_loop_t loop;
  fake_t fake;
  kuala_informers_t *informers;
  kuala_controller_t *c;
  rec_t rec;
  int closed;
  int cluster_scoped; /* the primary is cluster-scoped */
} fixture_t;

static void on_closed(void *data)
{
  (*(int *)data)++;
}

static void guard_cb(uv_timer_t *t)
{
  uv_stop(t->loop);
}

/* Run the loop until the recorder saw `n` reconciles (or 5 s passed). */
static void run_until(fixture_t *fx, int n)
{
  uv_timer_t guard;
  uv_timer_init(&fx->loop, &guard);
  uv_timer_start(&guard, guard_cb, 5000, 0);
  fx->rec.stop_after = n;
  while (fx->rec.n < n) {
    if (uv_run(&fx->loop, UV_RUN_DEFAULT) == 0 || !uv_is_active((uv_handle_t *)&guard)) {
      break;
    }
  }
  fx->rec.stop_after = 0;
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static void setup(fixture_t *fx)
{
  memset(fx, 0, sizeof(*fx));
  uv_loop_init(&fx->loop);
  fx->fake.loop = &fx->loop;
  fx->fake.rv = 10;
  fx->rec.loop = &fx->loop;
  ck_assert_int_eq(kuala_informers_new(&fx->informers, &fx->loop, &fake_source, &fx->fake), 0);
}

static void start(fixture_t *fx, const kuala_watch_spec_t *watches, size_t n, int concurrency,
                  kuala_ratelimiter_t *limiter)
{
  kuala_controller_opts_t o = {"webapp",  "demo.kuala.dev", "WebApp",          watches,
                               n,         concurrency,      limiter,           NULL,
                               reconcile, &fx->rec,         fx->cluster_scoped};
  ck_assert_int_eq(kuala_controller_new(&fx->c, &fx->loop, fx->informers, &o), 0);
  fx->rec.c = fx->c;
  ck_assert_int_eq(kuala_controller_start(fx->c), 0);
}

static void teardown(fixture_t *fx)
{
  kuala_controller_stop(fx->c, on_closed, &fx->closed);
  kuala_informers_close(fx->informers);
  ck_assert_int_eq(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(fx->closed, 1);
  ck_assert_int_eq(uv_loop_close(&fx->loop), 0);
  fake_free(&fx->fake);
}

#define APP(name, gen)                                                                       \
  "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"WebApp\",\"metadata\":{\"name\":\"" name \
  "\",\"namespace\":\"default\",\"resourceVersion\":\"" #gen "\",\"generation\":" #gen "}}"

static const kuala_watch_spec_t primary = {{"demo.kuala.dev", "v1", "webapps", NULL, NULL, NULL, 0},
                                           KUALA_MAP_SELF,
                                           NULL,
                                           NULL,
                                           0,
                                           NULL,
                                           NULL,
                                           NULL,
                                           NULL};

START_TEST(test_controller_reconciles_each_listed_object_once)
{
  fixture_t fx;
  setup(&fx);
  fake_seed(&fx.fake, "webapps", APP("a", 1));
  fake_seed(&fx.fake, "webapps", APP("b", 1));
  fake_seed(&fx.fake, "webapps", APP("c", 1));
  start(&fx, &primary, 1, 1, NULL);
  run_until(&fx, 3);
  ck_assert_int_eq(fx.rec.n, 3);
  ck_assert_int_eq(count_key(&fx.rec, "default/a"), 1);
  ck_assert_int_eq(count_key(&fx.rec, "default/b"), 1);
  ck_assert_int_eq(count_key(&fx.rec, "default/c"), 1);
  kuala_controller_stats_t st;
  kuala_controller_stats(fx.c, &st);
  ck_assert_int_eq(st.synced, 1);
  ck_assert_uint_eq(st.success, 3);
  ck_assert_uint_eq(st.time_count, 3);
  /* A watch event for a new object reconciles it. */
  fake_event(&fx.fake, "webapps", KUALA_LW_ADDED, APP("d", 2));
  run_until(&fx, 4);
  ck_assert_int_eq(count_key(&fx.rec, "default/d"), 1);
  /* enqueue_all re-enqueues every primary (what a bundle reload does). */
  ck_assert_uint_eq(kuala_controller_enqueue_all(fx.c), 4);
  run_until(&fx, 8);
  ck_assert_int_eq(fx.rec.n, 8);
  teardown(&fx);
}
END_TEST

START_TEST(test_controller_owned_objects_map_to_their_owner)
{
  fixture_t fx;
  setup(&fx);
  fake_seed(&fx.fake, "webapps", APP("web", 1));
  kuala_watch_spec_t watches[2] = {primary, primary};
  watches[1].key.group = "apps";
  watches[1].key.resource = "deployments";
  watches[1].mode = KUALA_MAP_OWNER;
  start(&fx, watches, 2, 1, NULL);
  run_until(&fx, 1);
  ck_assert_int_eq(count_key(&fx.rec, "default/web"), 1);
  /* A Deployment controlled by the WebApp enqueues the WebApp. */
  fake_event(&fx.fake, "deployments", KUALA_LW_ADDED,
             "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":"
             "\"web-deploy\",\"namespace\":\"default\",\"resourceVersion\":\"20\","
             "\"ownerReferences\":[{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"WebApp\","
             "\"name\":\"web\",\"uid\":\"u1\",\"controller\":true}]}}");
  run_until(&fx, 2);
  ck_assert_int_eq(count_key(&fx.rec, "default/web"), 2);
  ck_assert_int_eq(count_key(&fx.rec, "default/web-deploy"), 0);
  /* Owned by something else, or not as controller: ignored. */
  fake_event(&fx.fake, "deployments", KUALA_LW_ADDED,
             "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":"
             "\"other\",\"namespace\":\"default\",\"resourceVersion\":\"21\","
             "\"ownerReferences\":[{\"apiVersion\":\"other.io/v1\",\"kind\":\"WebApp\","
             "\"name\":\"x\",\"uid\":\"u2\",\"controller\":true},{\"apiVersion\":"
             "\"demo.kuala.dev/v1\",\"kind\":\"WebApp\",\"name\":\"y\",\"uid\":\"u3\"}]}}");
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  kuala_controller_stats_t st;
  kuala_controller_stats(fx.c, &st);
  ck_assert_int_eq(fx.rec.n, 2);
  ck_assert_uint_eq(st.events, 3);
  teardown(&fx);
}
END_TEST

/* A cluster-scoped primary (a Tenant) owning namespaced objects: the
 * owner's key has no namespace. */
START_TEST(test_controller_cluster_scoped_owner_key_has_no_namespace)
{
  fixture_t fx;
  setup(&fx);
  fx.cluster_scoped = 1;
  fake_seed(&fx.fake, "webapps",
            "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"WebApp\",\"metadata\":{\"name\":"
            "\"team-a\",\"resourceVersion\":\"1\",\"generation\":1}}");
  kuala_watch_spec_t watches[2] = {primary, primary};
  watches[1].key.group = "";
  watches[1].key.resource = "resourcequotas";
  watches[1].mode = KUALA_MAP_OWNER;
  start(&fx, watches, 2, 1, NULL);
  run_until(&fx, 1);
  ck_assert_int_eq(count_key(&fx.rec, "team-a"), 1);
  fake_event(&fx.fake, "resourcequotas", KUALA_LW_ADDED,
             "{\"apiVersion\":\"v1\",\"kind\":\"ResourceQuota\",\"metadata\":{\"name\":"
             "\"quota\",\"namespace\":\"team-a\",\"resourceVersion\":\"20\","
             "\"ownerReferences\":[{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"WebApp\","
             "\"name\":\"team-a\",\"uid\":\"u1\",\"controller\":true}]}}");
  run_until(&fx, 2);
  ck_assert_int_eq(count_key(&fx.rec, "team-a"), 2);
  ck_assert_int_eq(count_key(&fx.rec, "team-a/team-a"), 0);
  teardown(&fx);
}
END_TEST

START_TEST(test_controller_error_backs_off_then_forgets)
{
  fixture_t fx;
  setup(&fx);
  fake_seed(&fx.fake, "webapps", APP("flaky", 1));
  fx.rec.fail_first = 3;
  kuala_ratelimiter_t *rl;
  ck_assert_int_eq(kuala_ratelimiter_exponential_new(&rl, 1, 50), 0);
  start(&fx, &primary, 1, 1, rl);
  run_until(&fx, 4);
  ck_assert_int_eq(count_key(&fx.rec, "default/flaky"), 4);
  kuala_controller_stats_t st;
  kuala_controller_stats(fx.c, &st);
  ck_assert_uint_eq(st.error, 3);
  ck_assert_uint_eq(st.success, 1);
  /* Success forgot the failures. */
  ck_assert_int_eq(kuala_workqueue_num_requeues(kuala_controller_queue(fx.c), "default/flaky"), 0);
  teardown(&fx);
}
END_TEST

START_TEST(test_controller_requeue_after_comes_back)
{
  fixture_t fx;
  setup(&fx);
  fake_seed(&fx.fake, "webapps", APP("periodic", 1));
  fx.rec.requeue_after_once = 0.02;
  start(&fx, &primary, 1, 1, NULL);
  run_until(&fx, 2);
  ck_assert_int_eq(count_key(&fx.rec, "default/periodic"), 2);
  kuala_controller_stats_t st;
  kuala_controller_stats(fx.c, &st);
  ck_assert_uint_eq(st.requeue_after, 1);
  ck_assert_uint_eq(st.success, 1);
  teardown(&fx);
}
END_TEST

static void finish_pending(uv_timer_t *t)
{
  rec_t *r = t->data;
  while (r->npending > 0) {
    kuala_controller_job_done(r->pending[--r->npending], NULL);
  }
}

START_TEST(test_controller_concurrency_limit_and_generation_predicate)
{
  fixture_t fx;
  setup(&fx);
  const char *names[] = {"a", "b", "c", "d", "e"};
  char json[256];
  for (int i = 0; i < 5; i++) {
    snprintf(json, sizeof(json),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns1\",\"resourceVersion\":\"1\","
             "\"generation\":1}}",
             names[i]);
    fake_seed(&fx.fake, "webapps", json);
  }
  kuala_watch_spec_t w = primary;
  w.generation_changed = 1;
  fx.rec.async = 1;
  start(&fx, &w, 1, 2, NULL);
  uv_timer_t t;
  uv_timer_init(&fx.loop, &t);
  t.data = &fx.rec;
  uv_timer_start(&t, finish_pending, 5, 5);
  run_until(&fx, 5);
  ck_assert_int_eq(fx.rec.n, 5);
  ck_assert_int_eq(fx.rec.max_active, 2);
  /* A status-only update (same generation) is filtered; a spec change is not. */
  fake_event(&fx.fake, "webapps", KUALA_LW_MODIFIED,
             "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns1\",\"resourceVersion\":\"2\","
             "\"generation\":1},\"status\":{\"ready\":true}}");
  fake_event(&fx.fake, "webapps", KUALA_LW_MODIFIED,
             "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns1\",\"resourceVersion\":\"3\","
             "\"generation\":2}}");
  run_until(&fx, 6);
  ck_assert_int_eq(fx.rec.n, 6);
  ck_assert_str_eq(fx.rec.keys[5], "ns1/b");
  kuala_controller_stats_t st;
  kuala_controller_stats(fx.c, &st);
  ck_assert_uint_eq(st.filtered, 1);
  uv_timer_stop(&t);
  uv_close((uv_handle_t *)&t, NULL);
  /* Stop with a reconcile still running: the controller waits for it. */
  ck_assert_int_eq(fx.rec.npending, 1);
  kuala_controller_stop(fx.c, on_closed, &fx.closed);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(fx.closed, 0);
  kuala_controller_job_done(fx.rec.pending[0], NULL);
  kuala_informers_close(fx.informers);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(fx.closed, 1);
  ck_assert_int_eq(uv_loop_close(&fx.loop), 0);
  fake_free(&fx.fake);
}
END_TEST

/* The leader-election gate: a held controller syncs its cache and queues
 * keys but starts no reconcile; releasing it reconciles what waited. */
START_TEST(test_controller_hold_queues_keys_without_reconciling)
{
  fixture_t fx;
  setup(&fx);
  fake_seed(&fx.fake, "webapps", APP("a", 1));
  fake_seed(&fx.fake, "webapps", APP("b", 1));
  kuala_controller_opts_t o = {"webapp", "demo.kuala.dev", "WebApp", &primary, 1, 1, NULL,
                               NULL,     reconcile,        &fx.rec,  0};
  ck_assert_int_eq(kuala_controller_new(&fx.c, &fx.loop, fx.informers, &o), 0);
  fx.rec.c = fx.c;
  kuala_controller_hold(fx.c, 1);
  ck_assert_int_eq(kuala_controller_start(fx.c), 0);
  kuala_controller_stats_t st;
  uv_timer_t guard;
  uv_timer_init(&fx.loop, &guard);
  for (int i = 0; i < 100; i++) { /* until synced and both keys queued, 5 s at most */
    kuala_controller_stats(fx.c, &st);
    kuala_workqueue_stats_t qs;
    kuala_workqueue_stats(kuala_controller_queue(fx.c), &qs);
    if (st.synced && qs.depth == 2) {
      break;
    }
    uv_timer_start(&guard, guard_cb, 50, 0);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
  }
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  kuala_controller_stats(fx.c, &st);
  ck_assert_int_eq(st.synced, 1);
  ck_assert_int_eq(st.held, 1);
  ck_assert_int_eq(fx.rec.n, 0);
  kuala_workqueue_stats_t qs;
  kuala_workqueue_stats(kuala_controller_queue(fx.c), &qs);
  ck_assert_uint_eq(qs.depth, 2);
  /* Released: what waited is reconciled, once each. */
  kuala_controller_hold(fx.c, 0);
  run_until(&fx, 2);
  ck_assert_int_eq(count_key(&fx.rec, "default/a"), 1);
  ck_assert_int_eq(count_key(&fx.rec, "default/b"), 1);
  teardown(&fx);
}
END_TEST

START_TEST(test_controller_invalid_options)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_t fake;
  memset(&fake, 0, sizeof(fake));
  fake.loop = &loop;
  kuala_informers_t *inf;
  ck_assert_int_eq(kuala_informers_new(&inf, &loop, &fake_source, &fake), 0);
  kuala_controller_t *c;
  kuala_controller_opts_t o = {"x", "", "Thing", &primary, 0, 1, NULL, NULL, reconcile, NULL, 0};
  ck_assert_int_eq(kuala_controller_new(&c, &loop, inf, &o), KUALA_EINVAL);
  o.nwatches = 1;
  o.reconcile = NULL;
  ck_assert_int_eq(kuala_controller_new(&c, &loop, inf, &o), KUALA_EINVAL);
  kuala_watch_spec_t bad = primary;
  bad.mode = KUALA_MAP_FUNC; /* no map function */
  o.reconcile = reconcile;
  o.watches = &bad;
  ck_assert_int_eq(kuala_controller_new(&c, &loop, inf, &o), KUALA_EINVAL);
  kuala_informers_close(inf);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

typedef struct {
  fixture_t *fx;
  int calls;
  int reconciles_before; /* reconciles seen when the callback ran */
  size_t stored;         /* objects in the primary store then */
} synced_rec_t;

static void on_synced(void *data, kuala_controller_t *c)
{
  synced_rec_t *s = data;
  s->calls++;
  s->reconciles_before = s->fx->rec.n;
  s->stored = kuala_store_len(kuala_controller_primary_store(c));
  kuala_controller_stats_t st;
  kuala_controller_stats(c, &st);
  ck_assert_int_eq(st.synced, 1);
}

/* The synced callback runs once, as soon as every watch synced and before
 * the first reconcile (the engine logs "cache synced" from it instead of
 * polling); once the first wave of reconciles has drained the heap is
 * trimmed once (base/mem.h), not after every later reconcile. */
START_TEST(test_controller_synced_callback_then_one_trim)
{
  kuala__mem_tune();
  fixture_t fx;
  setup(&fx);
  fake_seed(&fx.fake, "webapps", APP("a", 1));
  fake_seed(&fx.fake, "webapps", APP("b", 1));
  fake_seed(&fx.fake, "webapps", APP("c", 1));
  kuala_controller_opts_t o = {"webapp", "demo.kuala.dev", "WebApp", &primary, 1, 1, NULL,
                               NULL,     reconcile,        &fx.rec,  0};
  ck_assert_int_eq(kuala_controller_new(&fx.c, &fx.loop, fx.informers, &o), 0);
  fx.rec.c = fx.c;
  synced_rec_t s = {&fx, 0, -1, 0};
  kuala_controller_on_synced(fx.c, on_synced, &s);
  size_t trims0 = kuala__mem_releases();
  ck_assert_int_eq(kuala_controller_start(fx.c), 0);
  run_until(&fx, 3);
  ck_assert_int_eq(s.calls, 1);
  ck_assert_int_eq(s.reconciles_before, 0);
  ck_assert_uint_eq(s.stored, 3);
  ck_assert_uint_eq(kuala__mem_releases(), trims0 + 1);
  fake_event(&fx.fake, "webapps", KUALA_LW_ADDED, APP("d", 2));
  run_until(&fx, 4);
  ck_assert_int_eq(count_key(&fx.rec, "default/d"), 1);
  ck_assert_int_eq(s.calls, 1);
  ck_assert_uint_eq(kuala__mem_releases(), trims0 + 1);
  teardown(&fx);
}
END_TEST

/* A controller stopped before its caches synced never calls back. */
START_TEST(test_controller_synced_callback_not_after_stop)
{
  fixture_t fx;
  setup(&fx);
  fake_seed(&fx.fake, "webapps", APP("a", 1));
  kuala_controller_opts_t o = {"webapp", "demo.kuala.dev", "WebApp", &primary, 1, 1, NULL,
                               NULL,     reconcile,        &fx.rec,  0};
  ck_assert_int_eq(kuala_controller_new(&fx.c, &fx.loop, fx.informers, &o), 0);
  synced_rec_t s = {&fx, 0, -1, 0};
  kuala_controller_on_synced(fx.c, on_synced, &s);
  ck_assert_int_eq(kuala_controller_start(fx.c), 0);
  teardown(&fx); /* stops before the loop ran the list */
  ck_assert_int_eq(s.calls, 0);
  ck_assert_int_eq(fx.rec.n, 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("controller");
  TCase *tc = tcase_create("controller");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_controller_reconciles_each_listed_object_once);
  tcase_add_test(tc, test_controller_synced_callback_then_one_trim);
  tcase_add_test(tc, test_controller_synced_callback_not_after_stop);
  tcase_add_test(tc, test_controller_owned_objects_map_to_their_owner);
  tcase_add_test(tc, test_controller_cluster_scoped_owner_key_has_no_namespace);
  tcase_add_test(tc, test_controller_error_backs_off_then_forgets);
  tcase_add_test(tc, test_controller_requeue_after_comes_back);
  tcase_add_test(tc, test_controller_concurrency_limit_and_generation_predicate);
  tcase_add_test(tc, test_controller_hold_queues_keys_without_reconciling);
  tcase_add_test(tc, test_controller_invalid_options);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
