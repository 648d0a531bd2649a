/*
 * Unit tests for the Lua runtime (core/lua/): the scheduler (yield/resume,
 * fast path, deadline, cancellation on close, registry references), the
 * limits (CPU budget with the JIT on, memory cap) and the sandbox, all
 * against a fake backend.
 *
 * The fake backend keeps a few cached objects as JSON and answers API calls
 * in one of three ways: at once (inside call_start), later from a uv timer,
 * or never (only a cancel ends the call).
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/log.h"
#include "kuala/runtime.h"
#include "kuala_test.h"
#include "lua/lrt.h"

/* TSan delays signals until the thread calls into the C library; a
 * compiled Lua loop never does, so neither SIGPROF nor the watchdog signal
 * can interrupt it there. The tests that stop such loops are left out of
 * TSan builds (and say so). */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* ---- fake backend ------------------------------------------------------- */

enum { ANSWER_NOW, ANSWER_LATER, ANSWER_NEVER };

typedef struct fake_call_s {
  kuala_call_done_cb done;
  void *data;
  uv_timer_t timer;
  struct fake_s *fake;
  int answered;
} fake_call_t;

typedef struct fake_s {
  uv_loop_t *loop;
  int mode;
  int started, canceled, answered;
  char last_body[4096];
  char last_manager[64];
  int last_verb;
  char last_sub[16];
  fake_call_t *pending;
  kuala_bundle_t *reenter; /* call_start tries to start a reconcile of it */
  int reenter_rc;
  int secret_synced; /* kind Secret: EAGAIN until a cache wait finished */
  int waits, wait_canceled;
  int wait_never; /* cache waits never answer (deadline test) */
  int enqueued;
  char enqueue_last[128];
} fake_t;

static const char *CACHED_APP =
    "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"App\",\"metadata\":{\"name\":\"web\","
    "\"namespace\":\"ns1\",\"uid\":\"u-1\",\"resourceVersion\":\"7\",\"generation\":2},"
    "\"spec\":{\"image\":\"nginx\",\"replicas\":3}}";

static const char *CACHED_SECRET =
    "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"pw\","
    "\"namespace\":\"ns1\",\"uid\":\"s-1\",\"resourceVersion\":\"9\"},\"data\":{}}";

static int fake_cache_get(void *self, const kuala_cache_query_t *q, const char **json, size_t *len)
{
  fake_t *f = self;
  if (strcmp(q->kind, "Secret") == 0 || strcmp(q->kind, "Deploymnet") == 0) {
    if (!f->secret_synced || strcmp(q->kind, "Deploymnet") == 0)
      return KUALA_EAGAIN;
    if (q->name && strcmp(q->name, "pw") == 0) {
      *json = CACHED_SECRET;
      *len = strlen(CACHED_SECRET);
      return 0;
    }
    return KUALA_ENOTFOUND;
  }
  if (strcmp(q->kind, "App") == 0 && q->name && strcmp(q->name, "web") == 0) {
    *json = CACHED_APP;
    *len = strlen(CACHED_APP);
    return 0;
  }
  return KUALA_ENOTFOUND;
}

static int fake_cache_list(void *self, const kuala_cache_query_t *q, kuala_cache_each_cb each,
                           void *data)
{
  fake_t *f = self;
  if (strcmp(q->kind, "Secret") == 0) {
    if (!f->secret_synced)
      return KUALA_EAGAIN;
    each(data, CACHED_SECRET, strlen(CACHED_SECRET));
    return 0;
  }
  if (strcmp(q->kind, "App") == 0)
    each(data, CACHED_APP, strlen(CACHED_APP));
  return 0;
}

static void fake_timer_closed(uv_handle_t *h)
{
  kuala_free(h->data);
}

static void fake_answer(fake_call_t *fc, int err)
{
  fake_t *f = fc->fake;
  fc->answered = 1;
  f->answered++;
  if (f->pending == fc)
    f->pending = NULL;
  static const char *reply = "{\"kind\":\"App\",\"metadata\":{\"name\":\"reply\"}}";
  fc->done(fc->data, err, err ? NULL : reply, err ? 0 : strlen(reply));
}

static void fake_timer_fired(uv_timer_t *t)
{
  fake_call_t *fc = t->data;
  fake_answer(fc, 0);
  uv_close((uv_handle_t *)t, fake_timer_closed);
}

static void never_done(void *data, const kuala_reconcile_result_t *res)
{
  (void)data, (void)res;
  ck_abort_msg("a refused reconcile must not call back");
}

static int fake_call_start(void *self, const kuala_call_t *call, kuala_call_done_cb done,
                           void *data, void **handle)
{
  fake_t *f = self;
  f->started++;
  f->last_verb = call->verb;
  snprintf(f->last_body, sizeof f->last_body, "%.*s", (int)call->body_len,
           call->body ? call->body : "");
  snprintf(f->last_manager, sizeof f->last_manager, "%s",
           call->field_manager ? call->field_manager : "");
  snprintf(f->last_sub, sizeof f->last_sub, "%s", call->subresource ? call->subresource : "");
  if (f->reenter) {
    f->reenter_rc = kuala_bundle_reconcile(f->reenter, "c", "ns1", "web", never_done, NULL);
  }
  fake_call_t *fc = kuala_calloc(1, sizeof *fc);
  fc->done = done;
  fc->data = data;
  fc->fake = f;
  *handle = fc;
  if (f->mode == ANSWER_NOW) {
    fake_answer(fc, 0);
    kuala_free(fc);
    return 0;
  }
  uv_timer_init(f->loop, &fc->timer);
  fc->timer.data = fc;
  f->pending = fc;
  if (f->mode == ANSWER_LATER)
    uv_timer_start(&fc->timer, fake_timer_fired, 5, 0);
  return 0;
}

static void fake_call_cancel(void *self, void *handle)
{
  fake_t *f = self;
  fake_call_t *fc = handle;
  f->canceled++;
  uv_timer_stop(&fc->timer);
  fake_answer(fc, KUALA_ECANCELED);
  uv_close((uv_handle_t *)&fc->timer, fake_timer_closed);
}

/* Cache waits: Secret syncs 5 ms later, Deploymnet is not served. */
typedef struct {
  fake_t *f;
  uv_timer_t timer;
  kuala_call_done_cb done;
  void *data;
  int err;
} fake_wait_t;

static void fake_wait_closed(uv_handle_t *h)
{
  kuala_free(h->data);
}

static void fake_wait_fired(uv_timer_t *t)
{
  fake_wait_t *w = t->data;
  if (w->err == 0)
    w->f->secret_synced = 1;
  w->done(w->data, w->err, NULL, 0);
  uv_close((uv_handle_t *)t, fake_wait_closed);
}

static int fake_cache_wait(void *self, const kuala_cache_query_t *q, uint64_t timeout_ms,
                           kuala_call_done_cb done, void *data, void **handle)
{
  fake_t *f = self;
  (void)timeout_ms;
  f->waits++;
  fake_wait_t *w = kuala_calloc(1, sizeof *w);
  w->f = f;
  w->done = done;
  w->data = data;
  w->err = strcmp(q->kind, "Deploymnet") == 0 ? KUALA_ENOTFOUND : 0;
  uv_timer_init(f->loop, &w->timer);
  w->timer.data = w;
  if (!f->wait_never)
    uv_timer_start(&w->timer, fake_wait_fired, 5, 0);
  *handle = w;
  return 0;
}

static void fake_cache_wait_cancel(void *self, void *handle)
{
  fake_t *f = self;
  fake_wait_t *w = handle;
  f->wait_canceled++;
  uv_timer_stop(&w->timer);
  w->err = KUALA_ECANCELED;
  w->done(w->data, KUALA_ECANCELED, NULL, 0);
  uv_close((uv_handle_t *)&w->timer, fake_wait_closed);
}

static int fake_enqueue(void *self, const char *controller, const char *ns, const char *name,
                        uint64_t after_ms)
{
  fake_t *f = self;
  f->enqueued++;
  snprintf(f->enqueue_last, sizeof f->enqueue_last, "%s %s %s %llu", controller, ns ? ns : "-",
           name ? name : "*", (unsigned long long)after_ms);
  return 0;
}

static kuala_backend_t fake_backend(fake_t *f)
{
  kuala_backend_t be = {
      fake_cache_get,  fake_cache_list,        fake_call_start, fake_call_cancel, f,
      fake_cache_wait, fake_cache_wait_cancel, fake_enqueue};
  return be;
}

/* ---- helpers ------------------------------------------------------------ */

typedef struct {
  int calls;
  int err;
  double requeue;
  char message[1024];
} result_t;

static void on_done(void *data, const kuala_reconcile_result_t *res)
{
  result_t *r = data;
  r->calls++;
  r->err = res->err;
  r->requeue = res->requeue_after;
  snprintf(r->message, sizeof r->message, "%s", res->message ? res->message : "");
}

/* A reconcile that runs longer than one time slice is preempted and
 * finishes on a later loop iteration: run the loop until it has. */
static void wait_done(uv_loop_t *loop, result_t *r)
{
  while (r->calls == 0)
    uv_run(loop, UV_RUN_ONCE);
}

static int load_one(kuala_bundle_t **b, kuala_runtime_t *rt, const char *name, const char *src,
                    char **err)
{
  kuala_bundle_file_t f = {"main.lua", src, strlen(src)};
  return kuala_bundle_load(b, rt, name, &f, 1, NULL, err);
}

#define CONTROLLER(body)                                              \
  "local kuala = require('kuala')\n"                                  \
  "kuala.controller { name = 'c', watch = 'demo.kuala.dev/v1/App',\n" \
  "  reconcile = function(ctx, req)\n" body "\n  end }\n"

static void quiet_sink(void *data, kuala_log_level_t level, const char *line, size_t len)
{
  (void)data, (void)level, (void)line, (void)len;
}

/* Each test's loop, fake backend and runtime live here, not on the test's
 * stack, so that the deferred teardown can still release them after a
 * failed assertion has left the test (kuala_test.h). */
static struct {
  uv_loop_t loop;
  fake_t fake;
  kuala_runtime_t *rt;
  int live;
} fx;

#define FIXTURE                     \
  uv_loop_t *const loop = &fx.loop; \
  fake_t *const f = &fx.fake;       \
  kuala_runtime_t *rt = NULL

static void fixture_release(void *arg)
{
  (void)arg;
  if (!fx.live)
    return;
  fx.live = 0;
  kuala_runtime_free(fx.rt);
  fx.rt = NULL;
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&fx.loop);
  kuala_log_set_sink(NULL, NULL);
  ck_assert_int_eq(rc, 0);
}

static void setup(uv_loop_t *loop, fake_t *f, kuala_runtime_t **rt, kuala_runtime_opts_t *opts)
{
  kuala_log_set_sink(quiet_sink, NULL);
  ck_assert_int_eq(uv_loop_init(loop), 0);
  memset(f, 0, sizeof *f);
  f->loop = loop;
  kuala_backend_t be = fake_backend(f);
  ck_assert_int_eq(kuala_runtime_new(rt, loop, &be, opts), 0);
  fx.rt = *rt;
  fx.live = 1;
  kuala_test_defer(fixture_release, NULL);
}

/* The end of a passing test: release now (and check the loop closes). */
static void teardown(uv_loop_t *loop, kuala_runtime_t *rt)
{
  ck_assert_ptr_eq(loop, &fx.loop);
  ck_assert_ptr_eq(rt, fx.rt);
  kuala_test_cleanup();
}

/* ---- scheduler ---------------------------------------------------------- */

START_TEST(test_lua_runtime_noop_reconcile_completes_without_yield)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "noop", CONTROLLER("return { requeue_after = 5 }"), &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  ck_assert_uint_eq(kuala_bundle_controller_count(b), 1);
  ck_assert_str_eq(kuala_bundle_controller_name(b, 0), "c");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  /* No API call: done ran before reconcile returned. */
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.err, 0);
  ck_assert(r.requeue == 5.0);
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 0);
  ck_assert_int_eq(kuala_bundle_reconcile(b, "nope", "ns1", "web", on_done, &r), KUALA_ENOENT);
  ck_assert_int_eq(r.calls, 1);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_runtime_api_call_yields_and_resumes)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  f->mode = ANSWER_LATER;
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "apply",
                    CONTROLLER("local app = ctx:get(req)\n"
                               "assert(app and app.spec.replicas == 3, 'cache read')\n"
                               "local out, e = ctx:apply({ apiVersion = 'apps/v1', kind = "
                               "'Deployment', metadata = { name = 'web' }, spec = { replicas = "
                               "app.spec.replicas } })\n"
                               "assert(out and out.metadata.name == 'reply', tostring(e))\n"
                               "local st = ctx:patch_status(app, { ready = true })\n"
                               "assert(st, 'status')\n"
                               "return { requeue_after = 1 }"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_int_eq(r.calls, 0); /* waiting on the apply */
  ck_assert_uint_eq(kuala_bundle_active(b), 1);
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 1);
  uv_run(loop, UV_RUN_DEFAULT);
  ck_assert_msg(r.calls == 1 && r.err == 0, "reconcile: %d %s", r.err, r.message);
  ck_assert(r.requeue == 1.0);
  ck_assert_int_eq(f->started, 2);
  ck_assert_int_eq(f->last_verb, KUALA_CALL_PATCH);
  ck_assert_str_eq(f->last_sub, "status");
  ck_assert_str_eq(f->last_manager, "c");
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 0);
  ck_assert_uint_eq(kuala_bundle_active(b), 0);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_runtime_apply_sets_owner_and_field_manager)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  f->mode = ANSWER_NOW;
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "owner",
                    CONTROLLER("assert(ctx:apply({ apiVersion = 'v1', kind = 'ConfigMap', "
                               "metadata = { name = 'cm' }, data = { a = '1' } }))"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_msg(r.calls == 1 && r.err == 0, "%s", r.message); /* fast path: no loop run */
  ck_assert_int_eq(f->last_verb, KUALA_CALL_APPLY);
  ck_assert_str_eq(f->last_manager, "c");
  json_object *body = NULL;
  ck_assert_int_eq(kuala_json_parse(&body, f->last_body, strlen(f->last_body), NULL, 0), 0);
  ck_assert_str_eq(kuala_json_path_str(body, "metadata.namespace"), "ns1");
  json_object *refs = kuala_json_path(body, "metadata.ownerReferences");
  ck_assert_ptr_nonnull(refs);
  json_object *ref = json_object_array_get_idx(refs, 0);
  ck_assert_str_eq(kuala_json_path_str(ref, "uid"), "u-1");
  ck_assert_str_eq(kuala_json_path_str(ref, "kind"), "App");
  ck_assert(json_object_get_boolean(kuala_json_path(ref, "controller")));
  json_object_put(body);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_runtime_deadline_cancels_pending_call)
{
  FIXTURE;
  kuala_runtime_opts_t opts = {0};
  opts.deadline_ms = 40;
  setup(loop, f, &rt, &opts);
  f->mode = ANSWER_NEVER;
  kuala_bundle_t *b;
  char *err = NULL;
  /* The script even catches the timeout and tries again: still a timeout. */
  int rc = load_one(&b, rt, "slow",
                    CONTROLLER("local ok, e = ctx:create({ apiVersion = 'v1', kind = "
                               "'ConfigMap', metadata = { name = 'x' } })\n"
                               "assert(not ok and e == 'ETIMEDOUT', tostring(e))\n"
                               "local again, e2 = ctx:delete({ apiVersion = 'v1', kind = "
                               "'ConfigMap', metadata = { name = 'x' } })\n"
                               "assert(not again and e2 == 'ETIMEDOUT')\n"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_int_eq(r.calls, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.err, KUALA_ETIMEDOUT);
  ck_assert_msg(strstr(r.message, "deadline of 40 ms") != NULL, "%s", r.message);
  ck_assert_int_eq(f->started, 1); /* the second call never reached the backend */
  ck_assert_int_eq(f->canceled, 1);
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 0);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_runtime_close_cancels_running_reconciles)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  f->mode = ANSWER_NEVER;
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "pending",
                    CONTROLLER("ctx:create({ apiVersion = 'v1', kind = 'ConfigMap', metadata "
                               "= { name = 'x' } })\nerror('must not resume')"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r[3];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r[i]), 0);
  }
  ck_assert_uint_eq(kuala_bundle_active(b), 3);
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 3);
  kuala_bundle_close(b);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].err, KUALA_ECANCELED);
  }
  ck_assert_int_eq(f->canceled, 3);
  teardown(loop, rt); /* uv_loop_close == 0: no handle left behind */
}
END_TEST

START_TEST(test_lua_runtime_many_reconciles_leak_no_references)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  f->mode = ANSWER_LATER;
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "many",
                    CONTROLLER("if req.name == 'boom' then error('boom') end\n"
                               "ctx:patch(ctx:get(req), { spec = { x = kuala.null } })"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r[200];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 200; i++) {
    ck_assert_int_eq(
        kuala_bundle_reconcile(b, "c", "ns1", i % 10 == 0 ? "boom" : "web", on_done, &r[i]), 0);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  int ok = 0, failed = 0;
  for (int i = 0; i < 200; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    if (r[i].err == 0)
      ok++;
    if (r[i].err == KUALA_EINVAL)
      failed++;
  }
  ck_assert_int_eq(ok, 180);
  ck_assert_int_eq(failed, 20);
  /* The merge patch kept the null. */
  ck_assert_str_eq(f->last_body, "{\"spec\":{\"x\":null}}");
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 0);
  ck_assert_uint_eq(kuala_bundle_active(b), 0);
  teardown(loop, rt);
}
END_TEST

typedef struct {
  result_t r;
  kuala_bundle_t *b;
} close_ctx_t;

START_TEST(test_lua_runtime_api_calls_inside_user_coroutines)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  f->mode = ANSWER_LATER;
  kuala_bundle_t *b;
  char *err = NULL;
  /* A generator that waits on the API inside coroutine.wrap, a
   * coroutine.resume loop with ordinary yields mixed in, and a bare
   * coroutine.yield in the reconcile itself (refused). */
  int rc = load_one(
      &b, rt, "coros",
      CONTROLLER("if req.name == 'bare' then coroutine.yield() end\n"
                 "local gen = coroutine.wrap(function()\n"
                 "  for i = 1, 3 do\n"
                 "    local out = assert(ctx:create({ apiVersion = 'v1', kind = 'ConfigMap',\n"
                 "      metadata = { name = 'cm' .. i } }))\n"
                 "    coroutine.yield(out.metadata.name .. i)\n"
                 "  end\n"
                 "end)\n"
                 "assert(gen() == 'reply1' and gen() == 'reply2' and gen() == 'reply3')\n"
                 "local co = coroutine.create(function(a)\n"
                 "  local b2 = coroutine.yield(a + 1)\n"
                 "  assert(ctx:delete({ apiVersion = 'v1', kind = 'ConfigMap', metadata = { name "
                 "= 'x' } }))\n"
                 "  return b2 * 2\n"
                 "end)\n"
                 "local ok, v = coroutine.resume(co, 1)\n"
                 "assert(ok and v == 2)\n"
                 "ok, v = coroutine.resume(co, 21)\n"
                 "assert(ok and v == 42 and coroutine.status(co) == 'dead')\n"
                 "return { requeue_after = 3 }"),
      &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0}, bare = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "bare", on_done, &bare), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  ck_assert_msg(r.calls == 1 && r.err == 0, "%d %s", r.err, r.message);
  ck_assert(r.requeue == 3.0);
  ck_assert_int_eq(f->started, 4);
  ck_assert_int_eq(bare.calls, 1);
  ck_assert_int_eq(bare.err, KUALA_EINVAL);
  ck_assert_msg(strstr(bare.message, "yielded outside an API call") != NULL, "%s", bare.message);
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 0);
  teardown(loop, rt);
}
END_TEST

static void close_in_done(void *data, const kuala_reconcile_result_t *res)
{
  close_ctx_t *c = data;
  on_done(&c->r, res);
  kuala_bundle_close(c->b); /* the bundle is closing already: a no-op */
}

START_TEST(test_lua_runtime_reentry_and_close_from_callback)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  f->mode = ANSWER_NEVER;
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "reenter",
                    CONTROLLER("ctx:create({ apiVersion = 'v1', kind = 'ConfigMap', metadata "
                               "= { name = 'x' } })"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  /* A backend that starts a reconcile of the same bundle from inside
   * call_start (while its Lua runs) is refused. */
  f->reenter = b;
  close_ctx_t first = {{0}, b}, second = {{0}, b};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", close_in_done, &first), 0);
  ck_assert_int_eq(f->reenter_rc, KUALA_EBUSY);
  f->reenter = NULL;
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", close_in_done, &second), 0);
  ck_assert_uint_eq(kuala_bundle_active(b), 2);
  /* The first cancellation callback closes the bundle again: no double free,
   * and the second reconcile still gets its one callback. */
  kuala_bundle_close(b);
  ck_assert_int_eq(first.r.calls, 1);
  ck_assert_int_eq(second.r.calls, 1);
  ck_assert_int_eq(first.r.err, KUALA_ECANCELED);
  ck_assert_int_eq(second.r.err, KUALA_ECANCELED);
  teardown(loop, rt);
}
END_TEST

/* ---- limits --------------------------------------------------------------- */

START_TEST(test_lua_runtime_cpu_budget_stops_jit_loop)
{
  FIXTURE;
  kuala_runtime_opts_t opts = {0};
  opts.cpu_budget_ms = 100;
  setup(loop, f, &rt, &opts);
  kuala_bundle_t *bad, *good;
  char *err = NULL;
  /* A compiled loop (JIT on) and a loop that swallows the error with pcall. */
  int rc = load_one(&bad, rt, "runaway",
                    CONTROLLER("if req.name == 'pcall' then\n"
                               "  while true do pcall(function() local x = 0 while true do x = "
                               "x + 1 end end) end\n"
                               "end\n"
                               "local x = 0\n"
                               "while true do x = x + 1 end"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  rc = load_one(&good, rt, "healthy", CONTROLLER("return { requeue_after = 2 }"), &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  ck_assert_int_eq(kuala__lua_bundle_jit_on(bad), 1);

  const char *names[] = {"web", "pcall", "web"};
  for (int i = 0; i < 3; i++) {
    result_t r = {0}, h = {0};
    ck_assert_int_eq(kuala_bundle_reconcile(bad, "c", "ns1", names[i], on_done, &r), 0);
    wait_done(loop, &r);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.err, KUALA_ETIMEDOUT);
    ck_assert_msg(strstr(r.message, "bundle runaway") && strstr(r.message, "CPU budget of 100") &&
                      strstr(r.message, i == 1 ? "at runaway/main.lua:" : "at runaway/main.lua:8"),
                  "%s", r.message);
    /* The healthy bundle beside it still reconciles. */
    ck_assert_int_eq(kuala_bundle_reconcile(good, "c", "ns1", "web", on_done, &h), 0);
    ck_assert_int_eq(h.calls, 1);
    ck_assert_int_eq(h.err, 0);
    ck_assert(h.requeue == 2.0);
  }
  ck_assert_int_eq(kuala__lua_bundle_refs(bad), 0);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_runtime_cpu_budget_stops_load)
{
  FIXTURE;
  kuala_runtime_opts_t opts = {0};
  opts.cpu_budget_ms = 50;
  setup(loop, f, &rt, &opts);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load_one(&b, rt, "spin", "local n = 0\nrepeat n = n + 1 until false\n", &err);
  ck_assert_int_eq(rc, KUALA_ETIMEDOUT);
  ck_assert_ptr_null(b);
  ck_assert_msg(strstr(err, "bundle spin") && strstr(err, "spin/main.lua:2"), "%s", err);
  kuala_free(err);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_runtime_memory_cap_fails_alone)
{
  FIXTURE;
  kuala_runtime_opts_t opts = {0};
  opts.memory_limit = 16u << 20;
  /* Only the cap may stop the bomb: its 64 KiB strings reach 16 MiB in about
   * 256 allocations, far inside this budget on any build. */
  opts.cpu_budget_ms = 10000;
  setup(loop, f, &rt, &opts);
  kuala_bundle_t *b, *good;
  char *err = NULL;
  int rc = load_one(&b, rt, "bomb",
                    CONTROLLER("if req.name == 'small' then return end\n"
                               "local t = {}\n"
                               "for i = 1, 1e9 do t[i] = string.rep('x', 65536) .. i end"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  rc = load_one(&good, rt, "healthy", CONTROLLER("return"), &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  wait_done(loop, &r);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.err, KUALA_ENOMEM);
  ck_assert_msg(strstr(r.message, "bundle bomb") && strstr(r.message, "memory limit") &&
                    strstr(r.message, "at bomb/main.lua:6"),
                "%s", r.message);
  /* Never more than the cap plus the grace (1/8) in which the hook raises. */
  ck_assert_uint_le(kuala_bundle_memory(b), opts.memory_limit + opts.memory_limit / 8);
  /* The same VM recovers once the garbage is gone; the neighbour never noticed. */
  result_t r2 = {0}, h = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "small", on_done, &r2), 0);
  wait_done(loop, &r2);
  ck_assert_int_eq(r2.err, 0);
  ck_assert_int_eq(kuala_bundle_reconcile(good, "c", "ns1", "web", on_done, &h), 0);
  ck_assert_int_eq(h.err, 0);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_runtime_limits_per_bundle)
{
  FIXTURE;
  setup(loop, f, &rt, NULL); /* defaults: 64 MiB, 1000 ms */
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "tight",
                    CONTROLLER("if req.name == 'spin' then while true do end end\n"
                               "local big = string.rep('x', 64 * 1024 * 1024)\n"
                               "return { requeue_after = #big }"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  /* Each limit is hit by work whose size does not depend on the build's
   * speed: the spin allocates nothing (only the 50 ms budget can stop it),
   * the bomb asks for 8 times the cap in one allocation (refused at once,
   * whatever the budget). */
  kuala_bundle_limits_t lim = {8u << 20, 50, 0};
  ck_assert_int_eq(kuala_bundle_set_limits(b, &lim), 0);
  result_t r = {0}, m = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "spin", on_done, &r), 0);
  wait_done(loop, &r);
  ck_assert_int_eq(r.err, KUALA_ETIMEDOUT);
  ck_assert_msg(strstr(r.message, "CPU budget of 50 ms") != NULL, "%s", r.message);
  /* Filling 8 MiB takes tens of ms of CPU on a loaded machine: give the
   * bomb room so the memory cap, not the budget, is what stops it. */
  kuala_bundle_limits_t roomy = {0, 1000, 0};
  ck_assert_int_eq(kuala_bundle_set_limits(b, &roomy), 0);
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "bomb", on_done, &m), 0);
  wait_done(loop, &m);
  ck_assert_msg(m.err == KUALA_ENOMEM, "%d %s", m.err, m.message);
  ck_assert_msg(strstr(m.message, "memory limit of 8388608 bytes") != NULL, "%s", m.message);
  ck_assert_int_eq(kuala_bundle_set_limits(b, NULL), KUALA_EINVAL);
  teardown(loop, rt);
}
END_TEST

/* ---- sandbox ------------------------------------------------------------ */

static void expect_load_error(kuala_runtime_t *rt, const char *name, const char *src,
                              const char *want1, const char *want2)
{
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load_one(&b, rt, name, src, &err);
  ck_assert_msg(rc != 0, "bundle %s loaded but should not", name);
  ck_assert_ptr_null(b);
  ck_assert_ptr_nonnull(err);
  ck_assert_msg(strstr(err, want1) != NULL, "%s: missing '%s' in: %s", name, want1, err);
  if (want2)
    ck_assert_msg(strstr(err, want2) != NULL, "%s: missing '%s' in: %s", name, want2, err);
  kuala_free(err);
}

START_TEST(test_lua_runtime_sandbox_refuses_escapes)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  expect_load_error(rt, "syntax", "local x = = 1\n", "syntax/main.lua:1:", "'='");
  expect_load_error(rt, "runtime", "local t = nil\n\nreturn t.x\n",
                    "runtime/main.lua:3:", "attempt to index");
  expect_load_error(rt, "exec", "-- shell out\nos.execute('true')\n",
                    "exec/main.lua:2:", "execute");
  expect_load_error(rt, "ioopen", "local f = io.open('/etc/passwd')\n",
                    "ioopen/main.lua:1:", "'io'");
  expect_load_error(rt, "ffi", "\nlocal ffi = require('ffi')\n",
                    "ffi/main.lua:2:", "module 'ffi' not found in bundle 'ffi'");
  expect_load_error(rt, "debuglib", "debug.sethook()\n", "debuglib/main.lua:1:", "'debug'");
  expect_load_error(rt, "loadfile", "loadfile('/etc/passwd')\n",
                    "loadfile/main.lua:1:", "loadfile");
  expect_load_error(rt, "global", "x = 1\n",
                    "global/main.lua:1:", "assignment to undeclared global 'x'");
  expect_load_error(rt, "bytecode", "local f, e = load('\\27LJ\\2 fake')\nassert(f, e)\n",
                    "bytecode/main.lua:2:", "binary chunks");
  expect_load_error(rt, "dump", "string.dump(print)\n", "dump/main.lua:1:", "dump");
  /* (An API call at module top level raised "cannot be called here";
   * bundle code can no longer reach kuala.engine to try.) */
  expect_load_error(rt, "yield",
                    "local kuala = require('kuala')\nrequire('kuala.engine'):call({ verb = "
                    "'CREATE', api_version = 'v1', kind = 'ConfigMap' })\n",
                    "yield/main.lua:2:", "internal to the kuala SDK");
  expect_load_error(rt, "exit", "os.exit(1)\n", "exit/main.lua:1:", "exit");
  /* What is allowed does work. */
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "ok",
                    "assert(os.time() > 0 and os.clock() >= 0 and os.date('!%Y') ~= nil)\n"
                    "assert(string.format('%d', 3) == '3' and math.floor(2.5) == 2)\n"
                    "assert(table.concat({'a','b'}) == 'ab' and bit.band(3, 1) == 1)\n"
                    "local f = assert(load('return 1 + 1'))\nassert(f() == 2)\n"
                    "rawset(_G, 'declared', true)\ndeclared = false\n"
                    "assert(require('lib.util').twice(2) == 4)\n",
                    &err);
  /* Everything before the require passed: the only error is the missing module. */
  ck_assert_msg(rc == KUALA_EINVAL && strstr(err, "ok/main.lua:8: module 'lib.util' not found"),
                "%d %s", rc, err ? err : "?");
  kuala_free(err);
  kuala_bundle_file_t files[] = {
      {"main.lua", "local u = require('lib.util')\nassert(u.twice(2) == 4)\n", 0},
      {"lib/util.lua", "return { twice = function(x) return 2 * x end }\n", 0},
  };
  files[0].len = strlen(files[0].src);
  files[1].len = strlen(files[1].src);
  rc = kuala_bundle_load(&b, rt, "modules", files, 2, NULL, &err);
  ck_assert_msg(rc == 0, "%s", err ? err : "?");
  teardown(loop, rt);
}
END_TEST

/* ---- JSON ----------------------------------------------------------------- */

START_TEST(test_lua_runtime_json_round_trip)
{
  FIXTURE;
  /* Bounded work checked for its result only: a budget no build can reach
   * (TSan made the default 1 s too short). */
  kuala_runtime_opts_t opts = {0};
  opts.cpu_budget_ms = 60000;
  setup(loop, f, &rt, &opts);
  kuala_bundle_t *b;
  char *err = NULL;
  const char *src =
      "local j = require('kuala.json')\n"
      "local core = { json_decode = j.decode, json_encode = j.encode, null = j.null }\n"
      "local json = require('kuala.json')\n"
      "local doc = '{\"a\":null,\"e\":{},\"l\":[],\"n\":[1,2.5,-3],\"big\":9007199254740993,"
      "\"neg\":-9223372036854775807,\"s\":\"\\\\u00e9\\\\n\",\"t\":true,\"o\":{\"x\":{}}}'\n"
      "local v = assert(core.json_decode(doc))\n"
      "assert(v.a == json.null and v.a == core.null)\n"
      "assert(next(v.e) == nil and getmetatable(v.e) == json.object_mt)\n"
      "assert(next(v.l) == nil and getmetatable(v.l) == json.array_mt)\n"
      "assert(v.n[2] == 2.5 and v.t == true)\n"
      "assert(tostring(v.big) == '9007199254740993')\n"
      "local back = assert(core.json_encode(v))\n"
      "local again = assert(core.json_decode(back))\n"
      "assert(tostring(again.big) == '9007199254740993')\n"
      "assert(tostring(again.neg) == '-9223372036854775807')\n"
      "assert(again.big == v.big)\n"
      "assert(back:find('\"e\":{}', 1, true) and back:find('\"l\":[]', 1, true))\n"
      "assert(back:find('\"a\":null', 1, true))\n"
      "assert(core.json_encode({}) == '{}' and core.json_encode(json.array()) == '[]')\n"
      "assert(core.json_encode({1, 2, 3}) == '[1,2,3]')\n"
      "assert(core.json_encode(2^53) == '9007199254740992')\n"
      "local nok, why = core.json_encode({1, 2, x = 3})\n"
      "assert(nok == nil and why:find('mixes'))\n"
      "local deep = string.rep('[', 10100) .. string.rep(']', 10100)\n"
      "local d, derr = core.json_decode(deep)\n"
      "assert(d == nil and derr, 'depth limit')\n"
      /* What the API server accepts (10000 levels) round-trips. */
      "local ok = string.rep('{\"a\":', 9999) .. '[1]' .. string.rep('}', 9999)\n"
      "local od = assert(core.json_decode(ok))\n"
      "assert(assert(core.json_encode(od)) == ok)\n"
      "local cyc = {}\ncyc.self = cyc\n"
      "local c, cerr = core.json_encode(cyc)\n"
      "assert(c == nil and cerr:find('deeper than 10000'), cerr)\n"
      "assert(core.json_encode(0/0) == nil)\n"
      "assert(core.json_encode(function() end) == nil)\n"
      "local bad, berr = core.json_decode('{\"a\":')\n"
      "assert(bad == nil and berr:find('invalid JSON'))\n";
  int rc = load_one(&b, rt, "json", src, &err);
  ck_assert_msg(rc == 0, "%s", err ? err : "?");
  teardown(loop, rt);
}
END_TEST

/* Issue 14 item 1: the boxed integer's metatable could be reached and its
 * __tostring called with nil (a NULL dereference in C). Item 8: integers
 * past 2^63-1 (and past 2^64) were clamped when written back. */
START_TEST(test_lua_runtime_json_boxed_integers_are_exact_and_protected)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  const char *src =
      "local json = require('kuala.json')\n"
      "local v = assert(json.decode('{\"n\":9223372036854775807,\"u\":12345678901234567890,'\n"
      "  .. '\"h\":-99999999999999999999999,\"s\":9007199254740993,\"f\":0.1,\"d\":[1.5e300]}'))\n"
      "local b = v.n\n"
      "assert(getmetatable(b) == 'kuala.integer')\n"
      "assert(not pcall(function() return getmetatable(b).__tostring(nil) end))\n"
      "assert(not pcall(setmetatable, b, nil))\n"
      "assert(tostring(v.u) == '12345678901234567890')\n"
      "assert(tostring(v.h) == '-99999999999999999999999')\n"
      "assert(tostring(v.s) == '9007199254740993')\n"
      "local back = assert(json.encode(v))\n"
      "assert(back:find('\"u\":12345678901234567890', 1, true), back)\n"
      "assert(back:find('\"h\":-99999999999999999999999', 1, true), back)\n"
      "assert(back:find('\"n\":9223372036854775807', 1, true), back)\n"
      "assert(back:find('\"f\":0.1', 1, true), back)\n"
      "assert(back:find('1.5e+300', 1, true), back)\n"
      "assert(json.decode(back).u == v.u and v.u ~= v.n)\n"
      /* The markers still compare equal, and their metatables are locked. */
      "local e = json.decode('{\"a\":[],\"o\":{}}')\n"
      "assert(getmetatable(e.a) == json.array_mt and getmetatable(e.o) == json.object_mt)\n"
      "assert(json.array(json.array(e.a)) == e.a)\n" /* re-marking works */
      "assert(json.encode(json.copy(e)) == json.encode(e))\n"
      "assert(getmetatable(_G) == 'locked')\n";
  int rc = load_one(&b, rt, "boxes", src, &err);
  ck_assert_msg(rc == 0, "%s", err ? err : "?");
  teardown(loop, rt);
}
END_TEST

/* Issue 14 item 9: kuala.core (and kuala.engine on top of it) handed the
 * raw primitives to bundle code; only the SDK's own modules may have them. */
START_TEST(test_lua_runtime_internal_modules_are_not_reachable)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  const char *src =
      "local kuala = require('kuala')\n" /* loads kuala.engine and kuala.core inside */
      "for _, name in ipairs({'kuala.core', 'kuala.engine'}) do\n"
      "  local ok, why = pcall(require, name)\n"
      "  assert(not ok and why:find('internal'), name .. ': ' .. tostring(why))\n"
      "end\n"
      "assert(require('kuala.json').decode('[1]')[1] == 1)\n"
      "assert(not pcall(getfenv, 1) and not pcall(function() return debug.getinfo(1) end))\n";
  int rc = load_one(&b, rt, "internal", src, &err);
  ck_assert_msg(rc == 0, "%s", err ? err : "?");
  teardown(loop, rt);
}
END_TEST

/* The JSON markers are protected metatables: marking a table twice (the
 * engine asks a bundle for its CRDs again when an install is retried) is a
 * no-op, not "cannot change a protected metatable". */
START_TEST(test_lua_runtime_json_markers_can_be_set_twice)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "marks",
                    "local json = require('kuala.json')\n"
                    "local a = json.array({})\n"
                    "assert(json.array(a) == a and json.is_array(a))\n"
                    "local o = json.object({})\n"
                    "assert(json.object(o) == o and not json.is_array(o))\n"
                    "assert(not pcall(json.array, o), 'an object cannot become an array')\n",
                    &err);
  ck_assert_msg(rc == 0, "%s", err ? err : "?");
  char *crds = NULL;
  size_t len = 0;
  ck_assert_int_eq(kuala_bundle_crds_json(b, &crds, &len), 0);
  kuala_free(crds);
  ck_assert_int_eq(kuala_bundle_crds_json(b, &crds, &len), 0); /* again, as a retry does */
  ck_assert_str_eq(crds, "[]");
  kuala_free(crds);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_runtime_json_bad_input_is_an_error_not_a_crash)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  /* Every truncation of a real object, random bytes, and odd values to
   * encode: each gives nil + a message. */
  const char *src =
      "local j = require('kuala.json')\n"
      "local core = { json_decode = j.decode, json_encode = j.encode, null = j.null }\n"
      "local kuala = require('kuala')\n"
      "local s = assert(core.json_encode({ apiVersion = 'v1', kind = 'ConfigMap',\n"
      "  metadata = { name = 'x', labels = { a = 'b' } }, data = { k = 'v\\n\\0' },\n"
      "  list = { 1, 2.5, true, kuala.null, {}, kuala.array() } }))\n"
      "for i = 0, #s - 1 do\n"
      "  local v, e = core.json_decode(s:sub(1, i))\n"
      "  assert(v == nil and type(e) == 'string', 'prefix ' .. i)\n"
      "end\n"
      "assert(core.json_decode(s .. 'x') == nil)\n"
      "assert(core.json_decode(s .. '  \\n') ~= nil)\n"
      "math.randomseed(7)\n"
      "local decoded = 0\n"
      "for _ = 1, 3000 do\n"
      "  local t = {}\n"
      "  for j = 1, math.random(1, 24) do t[j] = string.char(math.random(0, 255)) end\n"
      "  local v, e = core.json_decode(table.concat(t))\n"
      "  assert(v ~= nil or type(e) == 'string')\n"
      "  if v ~= nil then decoded = decoded + 1 end\n"
      "end\n"
      "for _, bad in ipairs({ { [1.5] = 1 }, { [true] = 1 }, { 1, nil, 3 }, { f = print },\n"
      "                      { [0] = 1 }, { coroutine.create(print) } }) do\n"
      "  local out, e = core.json_encode(bad)\n"
      "  assert(out == nil and type(e) == 'string')\n"
      "end\n"
      "assert(not pcall(core.json_decode))\n";
  int rc = load_one(&b, rt, "badjson", src, &err);
  ck_assert_msg(rc == 0, "%s", err ? err : "?");
  teardown(loop, rt);
}
END_TEST

/* ---- engine bridges ------------------------------------------------------- */

typedef struct {
  int n;
  char keys[8][64];
} emitted_t;

static void on_emit(void *data, const char *ns, const char *name)
{
  emitted_t *e = data;
  if (e->n < 8)
    snprintf(e->keys[e->n++], 64, "%s/%s", ns ? ns : "", name);
}

START_TEST(test_lua_runtime_controller_decl_map_and_predicates)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  const char *src =
      "local kuala = require('kuala')\n"
      "kuala.controller { name = 'web', watch = 'demo.kuala.dev/v1/App',\n"
      "  predicates = { kuala.predicates.generation_changed },\n"
      "  owns = { 'apps/v1/Deployment' }, concurrency = 3, labels = { team = 'a' },\n"
      "  watches = { { type = 'v1/ConfigMap',\n"
      "    predicates = { function(ev) return ev.object.metadata.name ~= 'skip' end },\n"
      "    map = function(cm) return { { namespace = cm.metadata.namespace, name = 'a' },\n"
      "                                { namespace = cm.metadata.namespace, name = 'b' } } end } "
      "},\n"
      "  reconcile = function() end }\n"
      "kuala.controller { name = 'bad', watch = 'v1/Secret', watches = { { type = "
      "'v1/ConfigMap',\n"
      "  map = function(cm) return require('kuala.engine'):call({ verb = 'GET', api_version = "
      "'v1', kind = 'X' }) end } },\n"
      "  reconcile = function() end }\n";
  int rc = load_one(&b, rt, "bridges", src, &err);
  ck_assert_msg(rc == 0, "%s", err ? err : "?");
  char *json = NULL;
  size_t len = 0;
  ck_assert_int_eq(kuala_bundle_controller_json(b, 0, &json, &len), 0);
  json_object *decl = NULL;
  ck_assert_int_eq(kuala_json_parse(&decl, json, len, NULL, 0), 0);
  kuala_free(json);
  ck_assert_str_eq(kuala_json_path_str(decl, "name"), "web");
  ck_assert_str_eq(kuala_json_path_str(decl, "watch.kind"), "App");
  ck_assert_str_eq(kuala_json_path_str(decl, "watch.apiVersion"), "demo.kuala.dev/v1");
  ck_assert_str_eq(kuala_json_path_str(decl, "watch.labels"), "team=a");
  ck_assert_int_eq(json_object_get_int(kuala_json_path(decl, "concurrency")), 3);
  ck_assert(json_object_get_boolean(kuala_json_path(decl, "generation_changed")));
  ck_assert(json_object_get_boolean(kuala_json_path(decl, "predicate")));
  ck_assert_str_eq(json_object_get_string(kuala_json_path(
                       json_object_array_get_idx(kuala_json_path(decl, "owns"), 0), "kind")),
                   "Deployment");
  json_object_put(decl);
  ck_assert_int_eq(kuala_bundle_controller_json(b, 5, &json, &len), KUALA_ENOENT);

  const char *cm =
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cfg\","
      "\"namespace\":\"ns1\"}}";
  const char *skip =
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
      "\"skip\",\"namespace\":\"ns1\"}}";
  emitted_t e = {0};
  ck_assert_int_eq(kuala_bundle_map(b, "web", 2, cm, strlen(cm), on_emit, &e), 0);
  ck_assert_int_eq(e.n, 2);
  ck_assert_str_eq(e.keys[0], "ns1/a");
  ck_assert_str_eq(e.keys[1], "ns1/b");
  ck_assert_int_eq(kuala_bundle_predicate(b, "web", "add", NULL, 0, cm, strlen(cm)), 1);
  ck_assert_int_eq(kuala_bundle_predicate(b, "web", "add", NULL, 0, skip, strlen(skip)), 0);
  /* A map function that makes an API call is refused, clearly. */
  emitted_t e2 = {0};
  ck_assert_int_eq(kuala_bundle_map(b, "bad", 1, cm, strlen(cm), on_emit, &e2), KUALA_EINVAL);
  ck_assert_int_eq(e2.n, 0);
  ck_assert_int_eq(kuala_bundle_map(b, "nope", 1, cm, strlen(cm), on_emit, &e2), KUALA_ENOENT);
  teardown(loop, rt);
}
END_TEST

/* ---- directories and the SDK from source ---------------------------------- */

START_TEST(test_lua_runtime_loads_dir_and_sdk_from_source)
{
  const char *src = getenv("KUALA_SOURCE_DIR");
  ck_assert_msg(src != NULL, "KUALA_SOURCE_DIR is set by ctest");
  char sdk[1024], dir[1024];
  snprintf(sdk, sizeof sdk, "%s/lua", src);
  snprintf(dir, sizeof dir, "%s/controllers/webapp", src);
  FIXTURE;
  kuala_runtime_opts_t opts = {0};
  opts.sdk_dir = sdk; /* the development switch: SDK read from lua/kuala/ */
  setup(loop, f, &rt, &opts);
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = kuala_bundle_load_dir(&b, rt, dir, NULL, NULL, &err);
  ck_assert_msg(rc == 0, "%s", err ? err : "?");
  ck_assert_str_eq(kuala_bundle_name(b), "webapp");
  ck_assert_uint_eq(kuala_bundle_controller_count(b), 1);
  char *out = NULL;
  size_t len = 0;
  ck_assert_int_eq(kuala_bundle_crds(b, 1, &out, &len), 0);
  ck_assert_ptr_nonnull(strstr(out, "name: webapps.demo.kuala.dev"));
  kuala_free(out);
  ck_assert_int_eq(kuala_bundle_crds_json(b, &out, &len), 0);
  json_object *crds = NULL;
  ck_assert_int_eq(kuala_json_parse(&crds, out, len, NULL, 0), 0);
  ck_assert_int_eq((int)json_object_array_length(crds), 1);
  ck_assert_str_eq(kuala_json_path_str(json_object_array_get_idx(crds, 0), "spec.names.kind"),
                   "WebApp");
  json_object_put(crds);
  kuala_free(out);
  ck_assert_int_eq(kuala_bundle_load_dir(&b, rt, "/nonexistent/bundle", NULL, NULL, &err),
                   KUALA_ENOENT);
  ck_assert_ptr_nonnull(strstr(err, "/nonexistent/bundle"));
  kuala_free(err);
  teardown(loop, rt);

  /* A wrong SDK directory is reported, not papered over with the embedded copy. */
  opts.sdk_dir = "/nonexistent/sdk";
  setup(loop, f, &rt, &opts);
  rc = load_one(&b, rt, "nosdk", "local kuala = require('kuala')\n", &err);
  ck_assert_int_eq(rc, KUALA_EINVAL);
  ck_assert_msg(strstr(err, "module 'kuala' not found") != NULL, "%s", err);
  kuala_free(err);
  teardown(loop, rt);
}
END_TEST

/* ---- SDK traps (issue 10) ------------------------------------------------ */

static void run_loop_until(uv_loop_t *loop, const result_t *r)
{
  for (int i = 0; i < 400 && r->calls == 0; i++)
    uv_run(loop, UV_RUN_ONCE);
}

START_TEST(test_lua_sdk_first_read_waits_for_cache)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  /* The Secret kind is not cached yet (EAGAIN): the read must wait, then a
   * nil means "absent" and the list is a table. */
  int rc = load_one(&b, rt, "reads",
                    CONTROLLER("local s = ctx:get('v1/Secret', 'pw')\n"
                               "if not s then error('the existing Secret read as nil') end\n"
                               "if ctx:get('v1/Secret', 'missing') ~= nil then error('x') end\n"
                               "local l = ctx:list('v1/Secret')\n"
                               "return { requeue_after = #l + 10 }"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_int_eq(r.calls, 0); /* waiting for the cache */
  run_loop_until(loop, &r);
  ck_assert_msg(r.err == 0, "%s", r.message);
  ck_assert(r.requeue == 11.0);
  ck_assert_int_eq(f->waits, 1);
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 0);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_sdk_unknown_type_and_deadline)
{
  FIXTURE;
  kuala_runtime_opts_t opts = {0};
  opts.deadline_ms = 50;
  setup(loop, f, &rt, &opts);
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "typo",
                    CONTROLLER("if req.name == 'typo' then\n"
                               "  local d = ctx:get('apps/v1/Deploymnet', 'x') return d\n"
                               "end\n"
                               "ctx:get('v1/Secret', 'pw')"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "typo", on_done, &r), 0);
  run_loop_until(loop, &r);
  ck_assert_int_eq(r.err, KUALA_EINVAL);
  ck_assert_msg(strstr(r.message, "unknown type 'apps/v1/Deploymnet'") != NULL, "%s", r.message);
  ck_assert_msg(strstr(r.message, "typo/main.lua:5") != NULL, "%s", r.message);
  /* A cache that never syncs: the reconcile deadline ends the wait. */
  f->wait_never = 1;
  result_t d = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &d), 0);
  run_loop_until(loop, &d);
  ck_assert_int_eq(d.err, KUALA_ETIMEDOUT);
  ck_assert_int_eq(f->wait_canceled, 1);
  ck_assert_int_eq(kuala__lua_bundle_refs(b), 0);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_sdk_errors_name_the_bundle_line)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "tb",
                    "local kuala = require('kuala')\n"
                    "local json = require('kuala.json')\n"
                    "local function helper(x)\n"
                    "  error('bad input ' .. x)\n"
                    "end\n"
                    "kuala.controller { name = 'c', watch = 'demo.kuala.dev/v1/App',\n"
                    "  reconcile = function(ctx, req)\n"
                    "    if req.name == 'bomb' then\n"
                    "      local t = {}\n"
                    "      for i = 1, 1e9 do t[i] = json.copy({ a = { i }, b = 'x' .. i }) end\n"
                    "    end\n"
                    "    helper(req.name)\n"
                    "  end }\n",
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_int_eq(r.err, KUALA_EINVAL);
  ck_assert_msg(strstr(r.message, "tb/main.lua:4: bad input web") != NULL, "%s", r.message);
  ck_assert_msg(strstr(r.message, "stack traceback:") != NULL, "%s", r.message);
  ck_assert_msg(strstr(r.message, "tb/main.lua:12:") != NULL, "%s", r.message);
  ck_assert_msg(strstr(r.message, "kuala SDK frame") != NULL, "%s", r.message);
  ck_assert_msg(strstr(r.message, "\tkuala/") == NULL, "%s", r.message);
  /* The failure left a Warning Event on the primary (the cached App). */
  for (int i = 0; i < 100 && strstr(f->last_body, "ReconcileError") == NULL; i++)
    uv_run(loop, UV_RUN_NOWAIT);
  ck_assert_msg(strstr(f->last_body, "\"reason\":\"ReconcileError\"") != NULL, "%s", f->last_body);
  ck_assert_msg(strstr(f->last_body, "bad input web") != NULL, "%s", f->last_body);
  /* A memory hit while the SDK allocates names the bundle's line. */
  kuala_bundle_limits_t lim = {8u << 20, 2000, 0};
  ck_assert_int_eq(kuala_bundle_set_limits(b, &lim), 0);
  result_t m = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "bomb", on_done, &m), 0);
  wait_done(loop, &m); /* a long reconcile is sliced: it ends on the loop */
  ck_assert_msg(m.err == KUALA_ENOMEM, "%d %s", m.err, m.message);
  ck_assert_msg(strstr(m.message, "exceeded at tb/main.lua:10") != NULL, "%s", m.message);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_sdk_sandbox_entropy_and_removed_functions)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  static const char *src = CONTROLLER(
      "local t = kuala.random.token(20)\n"
      "assert(#t == 20 and t:match('^[%w_-]+$'), t)\n"
      "assert(kuala.uuid():match('^%x+%-%x+%-4%x%x%x%-[89ab]%x%x%x%-%x+$'))\n"
      "assert(#kuala.random.bytes(33) == 33)\n"
      "assert(kuala.random.bytes(16) ~= kuala.random.bytes(16))\n"
      "if req.name == 'os' then return os.execute('true') end\n"
      "if req.name == 'env' then return os.getenv('HOME') end\n"
      "return { requeue_after = math.random(1, 1000000000) }");
  kuala_bundle_t *b1, *b2;
  char *err = NULL;
  ck_assert_int_eq(load_one(&b1, rt, "one", src, &err), 0);
  ck_assert_int_eq(load_one(&b2, rt, "two", src, &err), 0);
  result_t r1 = {0}, r2 = {0}, e1 = {0}, e2 = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b1, "c", "ns1", "web", on_done, &r1), 0);
  ck_assert_int_eq(kuala_bundle_reconcile(b2, "c", "ns1", "web", on_done, &r2), 0);
  ck_assert_msg(r1.err == 0 && r2.err == 0, "%s %s", r1.message, r2.message);
  /* Seeded from the OS: two VMs draw different numbers (1 in 10^9 to collide). */
  ck_assert(r1.requeue != r2.requeue);
  ck_assert_int_eq(kuala_bundle_reconcile(b1, "c", "ns1", "os", on_done, &e1), 0);
  ck_assert_msg(strstr(e1.message, "os.execute was removed by the kuala sandbox") != NULL, "%s",
                e1.message);
  ck_assert_int_eq(kuala_bundle_reconcile(b1, "c", "ns1", "env", on_done, &e2), 0);
  ck_assert_msg(strstr(e2.message, "os.getenv was removed by the kuala sandbox") != NULL, "%s",
                e2.message);
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_sdk_enqueue)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "enq",
                    CONTROLLER("assert(ctx:enqueue({ namespace = 'ns1', name = 'other' }, 2))\n"
                               "assert(ctx:requeue_all())"),
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_msg(r.err == 0, "%s", r.message);
  ck_assert_int_eq(f->enqueued, 2);
  ck_assert_str_eq(f->enqueue_last, "c - * 0");
  teardown(loop, rt);
}
END_TEST

START_TEST(test_lua_sdk_type_warnings_offline)
{
  FIXTURE;
  setup(loop, f, &rt, NULL);
  kuala_bundle_t *b;
  char *err = NULL;
  int rc = load_one(&b, rt, "typos",
                    "local kuala = require('kuala')\n"
                    "kuala.crd { group = 'demo.kuala.dev', version = 'v1', kind = 'App' }\n"
                    "kuala.controller { name = 'c', watch = 'demo.kuala.dev/v1/App',\n"
                    "  owns = { 'apps/v1/Deploymnet' },\n"
                    "  reconcile = function(ctx, req)\n"
                    "    return ctx:get('v1/Secrte', 'x') or ctx:get('v1/Secret', 'y')\n"
                    "  end }\n",
                    &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  char *out = NULL;
  size_t len = 0;
  ck_assert_int_eq(kuala_bundle_type_warnings(b, &out, &len), 0);
  ck_assert_msg(strstr(out, "did you mean 'apps/v1/Deployment'") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "\"line\":6") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "'v1/Secrte'") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "\"type\":\"v1/Secret\"") == NULL, "%s", out);
  ck_assert_msg(strstr(out, "'demo.kuala.dev/v1/App'") == NULL, "%s", out);
  kuala_free(out);
  teardown(loop, rt);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("lua_runtime");
  TCase *tc = kuala_test_tcase("lua_runtime");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_lua_runtime_noop_reconcile_completes_without_yield);
  tcase_add_test(tc, test_lua_runtime_api_call_yields_and_resumes);
  tcase_add_test(tc, test_lua_runtime_apply_sets_owner_and_field_manager);
  tcase_add_test(tc, test_lua_runtime_deadline_cancels_pending_call);
  tcase_add_test(tc, test_lua_runtime_close_cancels_running_reconciles);
  tcase_add_test(tc, test_lua_runtime_many_reconciles_leak_no_references);
  tcase_add_test(tc, test_lua_runtime_reentry_and_close_from_callback);
  tcase_add_test(tc, test_lua_runtime_api_calls_inside_user_coroutines);
  if (!UNDER_TSAN) {
    tcase_add_test(tc, test_lua_runtime_cpu_budget_stops_jit_loop);
    tcase_add_test(tc, test_lua_runtime_cpu_budget_stops_load);
    tcase_add_test(tc, test_lua_runtime_limits_per_bundle);
  } else {
    fprintf(stderr,
            "lua_runtime: CPU-budget tests not run under TSan (it defers the "
            "signals that interrupt compiled Lua loops)\n");
  }
  tcase_add_test(tc, test_lua_runtime_memory_cap_fails_alone);
  tcase_add_test(tc, test_lua_runtime_sandbox_refuses_escapes);
  tcase_add_test(tc, test_lua_runtime_json_round_trip);
  tcase_add_test(tc, test_lua_runtime_json_bad_input_is_an_error_not_a_crash);
  tcase_add_test(tc, test_lua_runtime_json_boxed_integers_are_exact_and_protected);
  tcase_add_test(tc, test_lua_runtime_internal_modules_are_not_reachable);
  tcase_add_test(tc, test_lua_runtime_json_markers_can_be_set_twice);
  tcase_add_test(tc, test_lua_runtime_controller_decl_map_and_predicates);
  tcase_add_test(tc, test_lua_runtime_loads_dir_and_sdk_from_source);
  tcase_add_test(tc, test_lua_sdk_first_read_waits_for_cache);
  tcase_add_test(tc, test_lua_sdk_unknown_type_and_deadline);
  tcase_add_test(tc, test_lua_sdk_errors_name_the_bundle_line);
  tcase_add_test(tc, test_lua_sdk_sandbox_entropy_and_removed_functions);
  tcase_add_test(tc, test_lua_sdk_enqueue);
  tcase_add_test(tc, test_lua_sdk_type_warnings_offline);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
