/*
 * Unit tests for host modules (kuala/host.h): C functions an embedding
 * program offers to bundles through require(). Synchronous and
 * asynchronous answers, errors and invalid answers, the allow-list, and
 * the calls nobody waits for any more (deadline, bundle closed, a
 * synchronous function that did not answer) finished later by the host
 * without harm. The offline backend is enough: host modules do not need
 * the cluster.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/host.h"
#include "kuala/log.h"
#include "kuala/runtime.h"
#include "kuala_test.h"

/* ---- the host's module: a key/value store --------------------------------- */

typedef struct {
  uv_loop_t *loop;
  char last_args[256];
  char last_bundle[64];
  int calls;
  kuala_host_call_t *held; /* an async call the test finishes itself */
  uv_timer_t timer;
  kuala_host_call_t *timed; /* answered by `timer` */
} host_t;

static void kv_put(void *data, kuala_host_call_t *call, const char *bundle, const char *args,
                   size_t len)
{
  host_t *h = data;
  h->calls++;
  snprintf(h->last_args, sizeof h->last_args, "%.*s", (int)len, args);
  snprintf(h->last_bundle, sizeof h->last_bundle, "%s", bundle);
  kuala_host_call_done(call, "true", 4);
}

static void kv_get(void *data, kuala_host_call_t *call, const char *bundle, const char *args,
                   size_t len)
{
  (void)bundle;
  host_t *h = data;
  h->calls++;
  if (len >= 7 && strncmp(args, "[\"web\"]", len) == 0) {
    static const char v[] = "{\"replicas\":3,\"image\":\"nginx\"}";
    kuala_host_call_done(call, v, sizeof v - 1);
  } else {
    kuala_host_call_fail(call, KUALA_ENOTFOUND, "no such key");
  }
}

static void kv_garbage(void *data, kuala_host_call_t *call, const char *bundle, const char *args,
                       size_t len)
{
  (void)data, (void)bundle, (void)args, (void)len;
  kuala_host_call_done(call, "{not json", 9);
}

/* Declared synchronous but keeps the call: a host bug the runtime reports. */
static void kv_forgets(void *data, kuala_host_call_t *call, const char *bundle, const char *args,
                       size_t len)
{
  (void)bundle, (void)args, (void)len;
  host_t *h = data;
  h->held = call;
}

static void timer_fired(uv_timer_t *t)
{
  host_t *h = t->data;
  kuala_host_call_t *call = h->timed;
  h->timed = NULL;
  kuala_host_call_done(call, "42", 2);
}

/* Async: answers 42 from a timer a few ms later. */
static void kv_slow(void *data, kuala_host_call_t *call, const char *bundle, const char *args,
                    size_t len)
{
  (void)bundle, (void)args, (void)len;
  host_t *h = data;
  h->calls++;
  h->timed = call;
  uv_timer_start(&h->timer, timer_fired, 5, 0);
}

/* Async: never answers on its own; the test finishes it. */
static void kv_hold(void *data, kuala_host_call_t *call, const char *bundle, const char *args,
                    size_t len)
{
  (void)bundle, (void)args, (void)len;
  host_t *h = data;
  h->held = call;
}

static const kuala_host_fn_t kv_fns[] = {
    {"put", kv_put, 0},         {"get", kv_get, 0},   {"garbage", kv_garbage, 0},
    {"forgets", kv_forgets, 0}, {"slow", kv_slow, 1}, {"hold", kv_hold, 1},
};

/* ---- fixture -------------------------------------------------------------- */

typedef struct {
  uv_loop_t loop;
  kuala_runtime_t *rt;
  host_t host;
} fx_t;

static void quiet_sink(void *data, kuala_log_level_t level, const char *line, size_t len)
{
  (void)data, (void)level, (void)line, (void)len;
}

static void fx_init(fx_t *fx, uint32_t deadline_ms)
{
  memset(fx, 0, sizeof *fx);
  kuala_log_set_sink(quiet_sink, NULL);
  ck_assert_int_eq(uv_loop_init(&fx->loop), 0);
  kuala_runtime_opts_t o = {0, 0, deadline_ms, NULL};
  ck_assert_int_eq(kuala_runtime_new(&fx->rt, &fx->loop, kuala_backend_offline(), &o), 0);
  fx->host.loop = &fx->loop;
  uv_timer_init(&fx->loop, &fx->host.timer);
  fx->host.timer.data = &fx->host;
  static const char *const allowed[] = {"app", NULL};
  kuala_host_module_t m = {"host.kv", kv_fns, sizeof kv_fns / sizeof kv_fns[0], &fx->host, allowed};
  ck_assert_int_eq(kuala_runtime_add_host_module(fx->rt, &m), 0);
}

static void fx_free(fx_t *fx)
{
  kuala_runtime_free(fx->rt);
  uv_close((uv_handle_t *)&fx->host.timer, NULL);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&fx->loop), 0);
  kuala_log_set_sink(NULL, NULL);
}

static int load(fx_t *fx, kuala_bundle_t **b, const char *name, const char *src, char **err)
{
  kuala_bundle_file_t f = {"main.lua", src, strlen(src)};
  return kuala_bundle_load(b, fx->rt, name, &f, 1, NULL, err);
}

typedef struct {
  int calls, err;
  double requeue;
  char message[512];
} result_t;

static void on_done(void *data, const kuala_reconcile_result_t *res)
{
  result_t *r = data;
  r->calls++;
  r->err = res->err;
  r->requeue = res->requeue_after;
  snprintf(r->message, sizeof r->message, "%s", res->message ? res->message : "");
}

#define CONTROLLER(body)                                              \
  "local kuala = require('kuala')\n"                                  \
  "local kv = require('host.kv')\n"                                   \
  "kuala.controller { name = 'c', watch = 'demo.kuala.dev/v1/App',\n" \
  "  reconcile = function(ctx, req)\n" body "\n  end }\n"

/* ---- tests ---------------------------------------------------------------- */

START_TEST(test_lua_host_sync_calls_pass_json_both_ways)
{
  fx_t fx;
  fx_init(&fx, 0);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load(&fx, &b, "app",
                "local kv = require('host.kv')\n"
                "assert(kv.put('web', { replicas = 3 }, nil, true) == true, 'put')\n"
                "local v = kv.get('web')\n"
                "assert(v.replicas == 3 and v.image == 'nginx', 'get decodes the answer')\n"
                "local none, e, msg = kv.get('nope')\n"
                "assert(none == nil and e == 'ENOTFOUND' and msg == 'no such key', "
                "  'error: ' .. tostring(e) .. ' ' .. tostring(msg))\n"
                "local g, ge = kv.garbage()\n"
                "assert(g == nil and ge == 'EBADMSG', 'invalid JSON is EBADMSG')\n"
                "assert(require('host.kv') == kv, 'require caches the module')\n",
                &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  ck_assert_str_eq(fx.host.last_args, "[\"web\",{\"replicas\":3},null,true]");
  ck_assert_str_eq(fx.host.last_bundle, "app");
  ck_assert_int_eq(fx.host.calls, 3);
  fx_free(&fx);
}
END_TEST

START_TEST(test_lua_host_async_call_yields_the_reconcile)
{
  fx_t fx;
  fx_init(&fx, 0);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load(&fx, &b, "app",
                CONTROLLER("local v, e = kv.slow(req.name)\n"
                           "assert(v == 42, 'async answer: ' .. tostring(e))\n"
                           "return { requeue_after = v }"),
                &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_int_eq(r.calls, 0); /* waiting for the host */
  ck_assert_uint_eq(kuala_bundle_active(b), 1);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_msg(r.err == 0, "reconcile failed: %s", r.message);
  ck_assert(r.requeue == 42.0);
  fx_free(&fx);
}
END_TEST

START_TEST(test_lua_host_async_outside_a_reconcile_is_refused)
{
  fx_t fx;
  fx_init(&fx, 0);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load(&fx, &b, "app", "require('host.kv').slow()\n", &err);
  ck_assert_int_ne(rc, 0);
  ck_assert_ptr_nonnull(err);
  ck_assert_msg(strstr(err, "host.kv.slow") && strstr(err, "inside a reconcile"), "%s", err);
  ck_assert_int_eq(fx.host.calls, 0);
  kuala_free(err);
  fx_free(&fx);
}
END_TEST

START_TEST(test_lua_host_allow_list_hides_the_module)
{
  fx_t fx;
  fx_init(&fx, 0);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load(&fx, &b, "other", "require('host.kv')\n", &err);
  ck_assert_int_ne(rc, 0);
  ck_assert_msg(err && strstr(err, "module 'host.kv' not found"), "%s", err ? err : "?");
  kuala_free(err);
  fx_free(&fx);
}
END_TEST

START_TEST(test_lua_host_deadline_abandons_the_call)
{
  fx_t fx;
  fx_init(&fx, 20);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load(&fx, &b, "app",
                CONTROLLER("local v, e = kv.hold()\n"
                           "error('after the deadline: ' .. tostring(v) .. ' ' .. tostring(e))"),
                &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_ptr_nonnull(fx.host.held);
  uv_run(&fx.loop, UV_RUN_DEFAULT); /* the deadline fires; the host never answered */
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.err, KUALA_ETIMEDOUT);
  /* The host finishes its call late: dropped, no harm (ASan checks). */
  kuala_host_call_done(fx.host.held, "1", 1);
  fx_free(&fx);
}
END_TEST

START_TEST(test_lua_host_close_abandons_the_call)
{
  fx_t fx;
  fx_init(&fx, 0);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load(&fx, &b, "app", CONTROLLER("kv.hold()"), &err);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  ck_assert_ptr_nonnull(fx.host.held);
  kuala_bundle_close(b);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.err, KUALA_ECANCELED);
  kuala_host_call_fail(fx.host.held, KUALA_EIO, "late");
  fx_free(&fx);
}
END_TEST

START_TEST(test_lua_host_sync_function_that_does_not_answer_is_an_error)
{
  fx_t fx;
  fx_init(&fx, 0);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = load(&fx, &b, "app", "require('host.kv').forgets()\n", &err);
  ck_assert_int_ne(rc, 0);
  ck_assert_msg(err && strstr(err, "did not answer"), "%s", err ? err : "?");
  kuala_free(err);
  ck_assert_ptr_nonnull(fx.host.held);
  kuala_host_call_done(fx.host.held, NULL, 0);
  fx_free(&fx);
}
END_TEST

START_TEST(test_lua_host_module_registration_is_checked)
{
  fx_t fx;
  fx_init(&fx, 0);
  kuala_host_module_t dup = {"host.kv", kv_fns, 1, NULL, NULL};
  ck_assert_int_eq(kuala_runtime_add_host_module(fx.rt, &dup), KUALA_EEXISTS);
  kuala_host_module_t sdk = {"kuala.evil", kv_fns, 1, NULL, NULL};
  ck_assert_int_eq(kuala_runtime_add_host_module(fx.rt, &sdk), KUALA_EINVAL);
  kuala_host_fn_t bad[] = {{"not a name", kv_put, 0}};
  kuala_host_module_t badfn = {"host.bad", bad, 1, NULL, NULL};
  ck_assert_int_eq(kuala_runtime_add_host_module(fx.rt, &badfn), KUALA_EINVAL);
  kuala_host_module_t badname = {"host/../x", kv_fns, 1, NULL, NULL};
  ck_assert_int_eq(kuala_runtime_add_host_module(fx.rt, &badname), KUALA_EINVAL);
  fx_free(&fx);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("lua_host");
  TCase *tc = tcase_create("host");
  tcase_add_test(tc, test_lua_host_sync_calls_pass_json_both_ways);
  tcase_add_test(tc, test_lua_host_async_call_yields_the_reconcile);
  tcase_add_test(tc, test_lua_host_async_outside_a_reconcile_is_refused);
  tcase_add_test(tc, test_lua_host_allow_list_hides_the_module);
  tcase_add_test(tc, test_lua_host_deadline_abandons_the_call);
  tcase_add_test(tc, test_lua_host_close_abandons_the_call);
  tcase_add_test(tc, test_lua_host_sync_function_that_does_not_answer_is_an_error);
  tcase_add_test(tc, test_lua_host_module_registration_is_checked);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
