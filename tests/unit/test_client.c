/*
 * Unit tests for the API client transport, against the fault server
 * (tests/unit/helpers/faultsrv.c) on 127.0.0.1.
 */
#include "kuala_test.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/internal.h"
#include "helpers/clienttest.h"
#include "helpers/faultsrv.h"
#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/error.h"

typedef struct {
  uv_loop_t loop;
  faultsrv_t *srv;
  kuala_client_t *c;
} env_t;

static void env_init_cfg(env_t *e, kuala_client_config_t *cfg)
{
  ck_assert_int_eq(uv_loop_init(&e->loop), 0);
  ck_assert_int_eq(faultsrv_start(&e->srv, &e->loop), 0);
  if (!cfg->server) {
    cfg->server = kuala_strdup(faultsrv_url(e->srv));
  }
  if (!cfg->qps) {
    cfg->qps = KUALA_CLIENT_QPS_OFF;
  }
  if (!cfg->backoff_base_ms) {
    cfg->backoff_base_ms = 10;
  }
  ck_assert_int_eq(kuala_client_new(&e->c, &e->loop, cfg), 0);
  kuala_client_config_free(cfg);
}

static void env_init(env_t *e)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  env_init_cfg(e, &cfg);
}

static void env_done(env_t *e)
{
  kuala_client_close(e->c);
  faultsrv_close(e->srv);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&e->loop), 0);
}

static const kuala_client_target_t cm_a = {NULL, "v1", "configmaps", "default", "a", NULL};
static const kuala_client_target_t cms = {NULL, "v1", "configmaps", "default", NULL, NULL};

START_TEST(test_client_path_building)
{
  char *p = NULL;
  ck_assert_int_eq(kuala_client_path(&p, &cm_a, "get", NULL), 0);
  ck_assert_str_eq(p, "/api/v1/namespaces/default/configmaps/a");
  kuala_free(p);

  kuala_client_target_t t = {"stable.example.com", "v1", "crontabs", NULL, "x y", "status"};
  ck_assert_int_eq(kuala_client_path(&p, &t, "update", NULL), 0);
  ck_assert_str_eq(p, "/apis/stable.example.com/v1/crontabs/x%20y/status");
  kuala_free(p);

  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.limit = 500;
  o.continue_token = "ab=&c";
  o.label_selector = "app=web,tier in (a,b)";
  ck_assert_int_eq(kuala_client_path(&p, &cms, "list", &o), 0);
  ck_assert_str_eq(p,
                   "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dweb%2Ctier%20in%20%"
                   "28a%2Cb%29&limit=500&continue=ab%3D%26c");
  kuala_free(p);

  kuala_client_opts_init(&o);
  o.resource_version = "42";
  o.allow_watch_bookmarks = 1;
  o.timeout_seconds = 300;
  ck_assert_int_eq(kuala_client_path(&p, &cm_a, "watch", &o), 0);
  ck_assert_str_eq(p,
                   "/api/v1/namespaces/default/configmaps?watch=1&fieldSelector=metadata.name%3Da&"
                   "resourceVersion=42&allowWatchBookmarks=true&timeoutSeconds=300");
  kuala_free(p);

  /* A streaming list: sendInitialEvents with resourceVersionMatch. */
  kuala_client_opts_init(&o);
  o.resource_version = "";
  o.resource_version_match = "NotOlderThan";
  o.allow_watch_bookmarks = 1;
  o.send_initial_events = 1;
  ck_assert_int_eq(kuala_client_path(&p, &cms, "watch", &o), 0);
  ck_assert_str_eq(p,
                   "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=&"
                   "resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&"
                   "sendInitialEvents=true");
  kuala_free(p);

  kuala_client_opts_init(&o);
  o.field_manager = "kuala";
  o.force = 1;
  ck_assert_int_eq(kuala_client_path(&p, &cm_a, "patch", &o), 0);
  ck_assert_str_eq(p, "/api/v1/namespaces/default/configmaps/a?fieldManager=kuala&force=true");
  kuala_free(p);

  /* Bad input is refused, never mangled into another URL. */
  kuala_client_target_t bad = {NULL, "v1", "configmaps", "default", "../x", NULL};
  ck_assert_int_eq(kuala_client_path(&p, &bad, "get", NULL), KUALA_EINVAL);
  ck_assert_ptr_null(p);
  bad.name = "..";
  ck_assert_int_eq(kuala_client_path(&p, &bad, "get", NULL), KUALA_EINVAL);
  bad.name = NULL;
  ck_assert_int_eq(kuala_client_path(&p, &bad, "get", NULL), KUALA_EINVAL);
  ck_assert_int_eq(kuala_client_path(&p, &cm_a, "create", NULL), KUALA_EINVAL);
  ck_assert_int_eq(kuala_client_path(&p, &cm_a, "frobnicate", NULL), KUALA_EINVAL);
  kuala_client_target_t nover = {NULL, NULL, "configmaps", NULL, NULL, NULL};
  ck_assert_int_eq(kuala_client_path(&p, &nover, "list", NULL), KUALA_EINVAL);
}
END_TEST

START_TEST(test_client_status_code_mapping)
{
  ck_assert_int_eq(kuala_client_status_code(200, NULL), 0);
  ck_assert_int_eq(kuala_client_status_code(404, "NotFound"), KUALA_ENOTFOUND);
  ck_assert_int_eq(kuala_client_status_code(409, "AlreadyExists"), KUALA_EEXISTS);
  ck_assert_int_eq(kuala_client_status_code(409, "Conflict"), KUALA_ECONFLICT);
  ck_assert_int_eq(kuala_client_status_code(410, "Expired"), KUALA_EGONE);
  ck_assert_int_eq(kuala_client_status_code(422, "Invalid"), KUALA_EINVALID);
  ck_assert_int_eq(kuala_client_status_code(429, NULL), KUALA_ETOOMANY);
  ck_assert_int_eq(kuala_client_status_code(418, NULL), KUALA_EAPI);
}
END_TEST

START_TEST(test_client_get_ok_and_headers)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.token = kuala_strdup("s3cret");
  env_t e;
  env_init_cfg(&e, &cfg);
  faultsrv_respond(e.srv, 200, NULL, "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}");
  ct_result_t r = {0};
  kuala_client_req_t *req = NULL;
  ck_assert_int_eq(kuala_client_get(&req, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert_ptr_nonnull(req);
  ck_assert_int_eq(r.calls, 0); /* never from inside the start call */
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(r.attempts, 1);
  ck_assert_int_eq(r.json_err, 0);
  ck_assert_str_eq(r.body, "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}");
  const char *head = faultsrv_last_head(e.srv);
  ck_assert_ptr_nonnull(strstr(head, "GET /api/v1/namespaces/default/configmaps/a HTTP/1.1"));
  ck_assert_ptr_nonnull(strstr(head, "Authorization: Bearer s3cret"));
  ck_assert_ptr_nonnull(strstr(head, "Accept: application/json"));
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

/* Issue 14 item 9: KUALA_CLIENT_DEBUG=1 printed the bearer token. */
START_TEST(test_client_debug_trace_redacts_credentials)
{
  setenv("KUALA_CLIENT_DEBUG", "1", 1);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.token = kuala_strdup("s3cret-token-value");
  env_t e;
  env_init_cfg(&e, &cfg);
  faultsrv_respond(e.srv, 200, NULL, "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}");
  char path[] = "/tmp/kuala-trace-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  ck_assert_int_eq(r.status, 200);
  ct_result_free(&r);
  env_done(&e);
  unsetenv("KUALA_CLIENT_DEBUG");
  char trace[16384];
  ssize_t n = pread(fd, trace, sizeof trace - 1, 0);
  close(fd);
  unlink(path);
  ck_assert_int_gt(n, 0);
  trace[n] = '\0';
  ck_assert_msg(strstr(trace, "GET /api/v1/namespaces/default/configmaps/a") != NULL, "%s", trace);
  ck_assert_msg(strstr(trace, "> Authorization: Bearer <redacted>") != NULL, "%s", trace);
  ck_assert_msg(strstr(trace, "s3cret") == NULL, "token in the trace: %s", trace);

  kuala_buf_t b = KUALA_BUF_INIT(0);
  const char *head =
      "GET / HTTP/1.1\r\nauthorization: Basic dXNlcjpwYXNz\r\nCookie: k=v\r\n"
      "Proxy-Authorization: secret\r\nAccept: */*\r\n";
  kuala__client_debug_redact(&b, '>', head, strlen(head));
  ck_assert_str_eq(b.data,
                   "> GET / HTTP/1.1\r\n> authorization: Basic <redacted>\n> Cookie: <redacted>\n"
                   "> Proxy-Authorization: <redacted>\n> Accept: */*\r\n");
  kuala_buf_free(&b);
}
END_TEST

START_TEST(test_client_create_sends_body)
{
  env_t e;
  env_init(&e);
  faultsrv_respond(e.srv, 201, NULL, "{\"kind\":\"ConfigMap\"}");
  ct_result_t r = {0};
  const char *body = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"b\"}}";
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.field_manager = "kuala-test";
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &cms, body, strlen(body), &o, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_int_eq(r.status, 201);
  ck_assert_str_eq(faultsrv_last_body(e.srv), body);
  const char *head = faultsrv_last_head(e.srv);
  ck_assert_ptr_nonnull(
      strstr(head, "POST /api/v1/namespaces/default/configmaps?fieldManager=kuala-test "));
  ck_assert_ptr_nonnull(strstr(head, "Content-Type: application/json"));
  /* Misuse is refused up front and the callback never runs. */
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &cm_a, body, strlen(body), NULL, ct_on_resp, &r),
                   KUALA_EINVAL);
  ck_assert_int_eq(kuala_client_patch(NULL, e.c, &cm_a, KUALA_PATCH_APPLY, body, strlen(body), NULL,
                                      ct_on_resp, &r),
                   KUALA_EINVAL);
  ct_run_for(&e.loop, 20);
  ck_assert_int_eq(r.calls, 1);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_patch_and_delete_wire_format)
{
  env_t e;
  env_init(&e);
  faultsrv_respond(e.srv, 200, NULL, "{}");
  faultsrv_respond(e.srv, 200, NULL, "{\"kind\":\"Status\",\"status\":\"Success\"}");
  ct_result_t r = {0};
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.field_manager = "mgr";
  o.force = 1;
  const char *patch = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}";
  ck_assert_int_eq(kuala_client_patch(NULL, e.c, &cm_a, KUALA_PATCH_APPLY, patch, strlen(patch), &o,
                                      ct_on_resp, &r),
                   0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  const char *head = faultsrv_last_head(e.srv);
  ck_assert_ptr_nonnull(
      strstr(head, "PATCH /api/v1/namespaces/default/configmaps/a?fieldManager=mgr&force=true"));
  ck_assert_ptr_nonnull(strstr(head, "Content-Type: application/apply-patch+yaml"));

  ct_result_free(&r);
  kuala_client_opts_init(&o);
  o.propagation_policy = "Foreground";
  o.precondition_uid = "u-1";
  o.precondition_rv = "7";
  ck_assert_int_eq(kuala_client_delete(NULL, e.c, &cm_a, &o, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_ptr_nonnull(
      strstr(faultsrv_last_head(e.srv), "DELETE /api/v1/namespaces/default/configmaps/a "));
  ck_assert_str_eq(faultsrv_last_body(e.srv),
                   "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"propagationPolicy\":"
                   "\"Foreground\",\"preconditions\":{\"uid\":\"u-1\",\"resourceVersion\":\"7\"}}");
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_status_errors_decoded)
{
  env_t e;
  env_init(&e);
  faultsrv_respond(e.srv, 409, NULL,
                   "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                   "\"Failure\",\"message\":\"configmaps \\\"a\\\" already exists\",\"reason\":"
                   "\"AlreadyExists\",\"code\":409}");
  faultsrv_respond(e.srv, 422, NULL,
                   "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"bad\",\"reason\":"
                   "\"Invalid\",\"details\":{\"causes\":[{\"reason\":\"FieldValueRequired\","
                   "\"message\":\"Required value\",\"field\":\"spec.image\"},{\"reason\":\"X\"}]},"
                   "\"code\":422}");
  faultsrv_respond(e.srv, 404, NULL, "404 page not found\n");
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, KUALA_EEXISTS);
  ck_assert_int_eq(r.status, 409);
  ck_assert_str_eq(r.reason, "AlreadyExists");
  ck_assert_str_eq(r.message, "configmaps \"a\" already exists");
  ct_result_free(&r);

  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, KUALA_EINVALID);
  ck_assert_uint_eq(r.ncauses, 2);
  ck_assert_str_eq(r.cause0_field, "spec.image");
  ct_result_free(&r);

  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, KUALA_ENOTFOUND);
  ck_assert_ptr_null(r.reason);
  ck_assert_str_eq(r.message, "404 page not found");
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_stall_times_out)
{
  env_t e;
  env_init(&e);
  faultsrv_action_t a = {.kind = FS_STALL};
  faultsrv_push(e.srv, &a);
  ct_result_t r = {0};
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.timeout_ms = 200;
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, &o, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, KUALA_ETIMEDOUT);
  ck_assert_int_eq(r.attempts, 1); /* a timeout is not retried */
  ck_assert_ptr_nonnull(r.message);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_drop_mid_body)
{
  env_t e;
  env_init(&e);
  faultsrv_action_t a = {
      .kind = FS_DROP, .body = "{\"kind\":\"ConfigMapList\",\"items\":[]}", .repeat = 1};
  faultsrv_push(e.srv, &a);
  ct_result_t r = {0};
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.max_retries = 2;
  ck_assert_int_eq(kuala_client_list(NULL, e.c, &cms, &o, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, KUALA_ECONNRESET);
  ck_assert_int_eq(r.attempts, 3); /* a GET is retried */
  ck_assert_int_eq(faultsrv_requests(e.srv), 3);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_malformed_json_body)
{
  env_t e;
  env_init(&e);
  faultsrv_respond(e.srv, 200, NULL, "{\"kind\":\"ConfigMap\",\"metadata\":{");
  faultsrv_respond(e.srv, 200, NULL, "{\"a\":1} trailing");
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_int_eq(r.json_err, KUALA_EBADMSG);
  ct_result_free(&r);
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.json_err, KUALA_EBADMSG);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_body_cap)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.max_body = 100;
  env_t e;
  env_init_cfg(&e, &cfg);
  char big[1001];
  memset(big, 'x', 1000);
  big[1000] = '\0';
  faultsrv_respond(e.srv, 200, NULL, big);
  faultsrv_respond(e.srv, 200, NULL, "{\"small\":true}");
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, KUALA_E2BIG);
  ck_assert_int_eq(r.attempts, 1);
  ct_result_free(&r);
  /* The client keeps working after the aborted transfer. */
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(r.body, "{\"small\":true}");
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_429_retry_after_honoured)
{
  env_t e;
  env_init(&e);
  faultsrv_respond(e.srv, 429, "Retry-After: 1\r\n", "Too many requests, please try again later.");
  faultsrv_respond(e.srv, 201, NULL, "{\"kind\":\"ConfigMap\"}");
  ct_result_t r = {0};
  uint64_t t0 = ct_now_ms();
  /* Even a POST is resent after a 429: the server refused it unseen. */
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &cms, "{}", 2, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_int_eq(r.status, 201);
  ck_assert_int_eq(r.attempts, 2);
  ck_assert_int_eq(faultsrv_requests(e.srv), 2);
  /* Retry-After: 1 means the second attempt waited about a second. */
  ck_assert_uint_ge(r.done_ms - t0, 900);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_5xx_retry_counts)
{
  env_t e;
  env_init(&e);
  faultsrv_action_t a = {.kind = FS_RESPOND, .status = 503, .body = "unavailable", .repeat = 1};
  faultsrv_push(e.srv, &a);
  ct_result_t r = {0};
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.max_retries = 2;
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, &o, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, KUALA_EUNAVAILABLE);
  ck_assert_int_eq(r.attempts, 3);
  ck_assert_int_eq(faultsrv_requests(e.srv), 3);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_post_and_patch_not_retried)
{
  env_t e;
  env_init(&e);
  faultsrv_action_t a = {.kind = FS_RESPOND, .status = 500, .body = "boom", .repeat = 1};
  faultsrv_push(e.srv, &a);
  ct_result_t r = {0};
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.max_retries = 3;
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &cms, "{}", 2, &o, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, KUALA_EINTERNAL);
  ck_assert_int_eq(r.attempts, 1);
  ck_assert_int_eq(faultsrv_requests(e.srv), 1);
  ct_result_free(&r);
  ck_assert_int_eq(
      kuala_client_patch(NULL, e.c, &cm_a, KUALA_PATCH_MERGE, "{}", 2, &o, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, KUALA_EINTERNAL);
  ck_assert_int_eq(r.attempts, 1);
  ck_assert_int_eq(faultsrv_requests(e.srv), 2);
  ct_result_free(&r);
  /* PUT is idempotent: retried. */
  ck_assert_int_eq(kuala_client_update(NULL, e.c, &cm_a, "{}", 2, &o, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 10000));
  ck_assert_int_eq(r.attempts, 4);
  ck_assert_int_eq(faultsrv_requests(e.srv), 6);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

static void cancel_timer_cb(uv_timer_t *t)
{
  kuala_client_req_cancel(t->data);
  uv_close((uv_handle_t *)t, NULL);
}

START_TEST(test_client_cancel_in_flight)
{
  env_t e;
  env_init(&e);
  faultsrv_action_t a = {.kind = FS_STALL};
  faultsrv_push(e.srv, &a);
  ct_result_t r = {0};
  kuala_client_req_t *req = NULL;
  ck_assert_int_eq(kuala_client_get(&req, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  uv_timer_t t;
  uv_timer_init(&e.loop, &t);
  t.data = req;
  uv_timer_start(&t, cancel_timer_cb, 50, 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, KUALA_ECANCELED);
  ct_run_for(&e.loop, 20);
  ck_assert_int_eq(r.calls, 1);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_close_cancels_everything)
{
  env_t e;
  env_init(&e);
  faultsrv_action_t a = {.kind = FS_STALL, .repeat = 1};
  faultsrv_push(e.srv, &a);
  ct_result_t r[3];
  memset(r, 0, sizeof(r));
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r[i]), 0);
  }
  ct_run_for(&e.loop, 50);
  kuala_client_close(e.c);
  /* No new request after close; callbacks of the old ones run once. */
  ct_result_t late = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &late), KUALA_ESHUTDOWN);
  faultsrv_close(e.srv);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].err, KUALA_ECANCELED);
    ct_result_free(&r[i]);
  }
  ck_assert_int_eq(late.calls, 0);
  ck_assert_int_eq(uv_loop_close(&e.loop), 0);
}
END_TEST

START_TEST(test_client_connection_refused)
{
  /* Find a closed port: bind, read the port, close. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  faultsrv_t *tmp;
  ck_assert_int_eq(faultsrv_start(&tmp, &loop), 0);
  char url[64];
  snprintf(url, sizeof(url), "%s", faultsrv_url(tmp));
  faultsrv_close(tmp);
  uv_run(&loop, UV_RUN_DEFAULT);

  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(url);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  cfg.backoff_base_ms = 5;
  cfg.max_retries = 2;
  kuala_client_t *c;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_get(NULL, c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, KUALA_ECONNREFUSED);
  ck_assert_int_eq(r.attempts, 3);
  ck_assert_int_eq(r.status, 0);
  ct_result_free(&r);
  kuala_client_close(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

typedef struct {
  int n;
  char text[512];
} counts_t;

static void on_count(void *data, const char *method, const char *code, const char *host,
                     uint64_t count)
{
  counts_t *cs = data;
  size_t used = strlen(cs->text);
  snprintf(cs->text + used, sizeof(cs->text) - used, "%s %s %s %llu;", method, code,
           strchr(host, ':') ? "host" : host, (unsigned long long)count);
  cs->n++;
}

START_TEST(test_client_connection_reuse_and_counters)
{
  env_t e;
  env_init(&e);
  faultsrv_action_t a = {.kind = FS_RESPOND, .status = 200, .body = "{}", .repeat = 1};
  faultsrv_push(e.srv, &a);
  for (int i = 0; i < 3; i++) {
    ct_result_t r = {0};
    ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
    ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
    ck_assert_int_eq(r.err, 0);
    ct_result_free(&r);
  }
  ck_assert_int_eq(faultsrv_requests(e.srv), 3);
  ck_assert_int_eq(faultsrv_connections(e.srv), 1);
  counts_t cs = {0, ""};
  kuala_client_foreach_count(e.c, on_count, &cs);
  ck_assert_int_eq(cs.n, 1);
  ck_assert_str_eq(cs.text, "GET 200 host 3;");
  env_done(&e);
}
END_TEST

START_TEST(test_client_rate_limited)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.qps = 20;
  cfg.burst = 1;
  env_t e;
  env_init_cfg(&e, &cfg);
  faultsrv_action_t a = {.kind = FS_RESPOND, .status = 200, .body = "{}", .repeat = 1};
  faultsrv_push(e.srv, &a);
  ct_result_t r[5];
  memset(r, 0, sizeof(r));
  uint64_t t0 = ct_now_ms();
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r[i]), 0);
  }
  ck_assert(ct_run_until(&e.loop, &r[4].calls, 5000));
  /* burst 1 at 20 qps: five requests need at least four refills (200 ms). */
  ck_assert_uint_ge(r[4].done_ms - t0, 180);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].err, 0);
    ct_result_free(&r[i]);
  }
  env_done(&e);
}
END_TEST

/* As shipped the client does not throttle itself (docs/client.md: the
 * server's priority and fairness and its 429s pace it); a configured qps
 * turns the token bucket on, with a burst of two seconds' worth unless
 * given. */
START_TEST(test_client_no_client_side_limit_by_default)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup("http://127.0.0.1:1");
  kuala_client_t *c;
  double qps = -1;
  int burst = -1;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), 0);
  ck_assert_int_eq(kuala_client_rate_limit(c, &qps, &burst), 0);
  ck_assert(qps == 0 && burst == 0);
  kuala_client_close(c);
  cfg.qps = 5;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), 0);
  ck_assert_int_eq(kuala_client_rate_limit(c, &qps, &burst), 1);
  ck_assert(qps == 5.0);
  ck_assert_int_eq(burst, 10);
  kuala_client_close(c);
  cfg.qps = 200;
  cfg.burst = 300;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), 0);
  ck_assert_int_eq(kuala_client_rate_limit(c, &qps, &burst), 1);
  ck_assert(qps == 200.0);
  ck_assert_int_eq(burst, 300);
  kuala_client_close(c);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), 0);
  ck_assert_int_eq(kuala_client_rate_limit(c, NULL, NULL), 0);
  kuala_client_close(c);
  kuala_client_config_free(&cfg);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_client_bad_config)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  kuala_client_t *c = (kuala_client_t *)1;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), KUALA_EINVAL);
  ck_assert_ptr_null(c);
  cfg.server = kuala_strdup("ftp://127.0.0.1:1");
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), KUALA_EINVAL);
  kuala_free(cfg.server);
  cfg.server = kuala_strdup("https://127.0.0.1:1");
  cfg.ca_file = kuala_strdup("/nonexistent/ca.crt");
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), KUALA_EINVAL);
  kuala_free(cfg.ca_file);
  cfg.ca_file = NULL;
  cfg.qps = -5;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), KUALA_EINVAL);
  kuala_client_config_free(&cfg);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_client_cancel_during_backoff_and_rate_wait)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  /* The retry and the next token are ten minutes away, so however slow the
   * build or the machine, only the cancel can end these requests; a retry
   * would show as a second request at the server. */
  cfg.backoff_base_ms = 600000;
  cfg.backoff_max_ms = 600000;
  cfg.qps = 1.0 / 600; /* one token, the next in 10 min */
  cfg.burst = 1;
  env_t e;
  env_init_cfg(&e, &cfg);
  faultsrv_action_t a = {.kind = FS_RESPOND, .status = 503, .body = "busy", .repeat = 1};
  faultsrv_push(e.srv, &a);
  ct_result_t r1 = {0}, r2 = {0};
  kuala_client_req_t *q1, *q2;
  ck_assert_int_eq(kuala_client_get(&q1, e.c, &cm_a, NULL, ct_on_resp, &r1), 0);
  ck_assert_int_eq(kuala_client_get(&q2, e.c, &cm_a, NULL, ct_on_resp, &r2), 0);
  /* q1 got the token and its 503, and now sits in backoff; q2 waits for a
   * token. Both cancel promptly, once. */
  uint64_t t0 = ct_now_ms();
  while (faultsrv_requests(e.srv) < 1 && ct_now_ms() - t0 < 5000) {
    uv_run(&e.loop, UV_RUN_ONCE);
  }
  ct_run_for(&e.loop, 50);
  ck_assert_int_eq(r1.calls + r2.calls, 0);
  kuala_client_req_cancel(q1);
  kuala_client_req_cancel(q2);
  ck_assert_int_eq(r1.calls + r2.calls, 0); /* never from inside cancel */
  ck_assert(ct_run_until(&e.loop, &r1.calls, 30000));
  ck_assert(ct_run_until(&e.loop, &r2.calls, 30000));
  ck_assert_int_eq(r1.err, KUALA_ECANCELED);
  ck_assert_int_eq(r2.err, KUALA_ECANCELED);
  ck_assert_int_eq(faultsrv_requests(e.srv), 1);
  ct_run_for(&e.loop, 20);
  ck_assert_int_eq(r1.calls, 1);
  ck_assert_int_eq(r2.calls, 1);
  ct_result_free(&r1);
  ct_result_free(&r2);
  env_done(&e);
}
END_TEST

START_TEST(test_client_close_with_rate_limited_requests)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.qps = 0.1;
  cfg.burst = 1;
  env_t e;
  env_init_cfg(&e, &cfg);
  faultsrv_action_t a = {.kind = FS_STALL, .repeat = 1};
  faultsrv_push(e.srv, &a);
  ct_result_t r[3];
  memset(r, 0, sizeof(r));
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r[i]), 0);
  }
  ct_run_for(&e.loop, 50);
  ck_assert_int_eq(faultsrv_requests(e.srv), 1); /* two wait for tokens */
  kuala_client_close(e.c);
  faultsrv_close(e.srv);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].err, KUALA_ECANCELED);
    ct_result_free(&r[i]);
  }
  ck_assert_int_eq(uv_loop_close(&e.loop), 0);
}
END_TEST

START_TEST(test_client_gzip_response)
{
  env_t e;
  env_init(&e);
  /* gzip of {"kind":"ConfigMap","data":{"k":"compressed"}} */
  static const char gz[] =
      "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\xca\xce\xcc\x4b\x51\xb2\x52\x72\xce\xcf"
      "\x4b\xcb\x4c\xf7\x4d\x2c\x50\xd2\x51\x4a\x49\x2c\x49\x54\xb2\xaa\x56\xca\x06\x8a\x27\xe7"
      "\xe7\x16\x14\xa5\x16\x17\xa7\xa6\x28\xd5\xd6\x02\x00\x03\x54\xeb\xe9\x2e\x00\x00\x00";
  faultsrv_action_t a = {.kind = FS_RESPOND,
                         .status = 200,
                         .headers = "Content-Encoding: gzip\r\n",
                         .body = gz,
                         .body_len = sizeof(gz) - 1};
  faultsrv_push(e.srv, &a);
  /* A body that claims gzip but is not: a clear error. */
  faultsrv_action_t bad = {.kind = FS_RESPOND,
                           .status = 200,
                           .headers = "Content-Encoding: gzip\r\n",
                           .body = "definitely not gzip"};
  faultsrv_push(e.srv, &bad);
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(r.body, "{\"kind\":\"ConfigMap\",\"data\":{\"k\":\"compressed\"}}");
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "gzip"));
  ct_result_free(&r);
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, KUALA_EBADMSG);
  ck_assert_ptr_nonnull(r.message);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

typedef struct {
  kuala_client_t *c;
  ct_result_t r;
} closer_t;

static void close_from_callback(void *data, int err, kuala_client_resp_t *resp)
{
  closer_t *cl = data;
  ct_on_resp(&cl->r, err, resp);
  kuala_client_close(cl->c); /* allowed from any callback */
}

START_TEST(test_client_close_from_callback)
{
  env_t e;
  env_init(&e);
  faultsrv_action_t stall = {.kind = FS_STALL};
  faultsrv_push(e.srv, &stall);
  faultsrv_respond(e.srv, 200, NULL, "{}");
  /* A stalls; B is answered and closes the client from its callback. */
  ct_result_t a = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &a), 0);
  uint64_t t0 = ct_now_ms();
  while (faultsrv_requests(e.srv) < 1 && ct_now_ms() - t0 < 5000) {
    uv_run(&e.loop, UV_RUN_ONCE);
  }
  closer_t cl;
  memset(&cl, 0, sizeof(cl));
  cl.c = e.c;
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, close_from_callback, &cl), 0);
  ck_assert(ct_run_until(&e.loop, &cl.r.calls, 5000));
  ct_result_t late = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &late), KUALA_ESHUTDOWN);
  faultsrv_close(e.srv);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(cl.r.err, 0);
  ck_assert_int_eq(cl.r.calls, 1);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(a.err, KUALA_ECANCELED);
  ck_assert_int_eq(late.calls, 0);
  ct_result_free(&cl.r);
  ct_result_free(&a);
  ck_assert_int_eq(uv_loop_close(&e.loop), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("client");
  TCase *tc = tcase_create("client");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_client_path_building);
  tcase_add_test(tc, test_client_status_code_mapping);
  tcase_add_test(tc, test_client_get_ok_and_headers);
  tcase_add_test(tc, test_client_debug_trace_redacts_credentials);
  tcase_add_test(tc, test_client_create_sends_body);
  tcase_add_test(tc, test_client_patch_and_delete_wire_format);
  tcase_add_test(tc, test_client_status_errors_decoded);
  tcase_add_test(tc, test_client_stall_times_out);
  tcase_add_test(tc, test_client_drop_mid_body);
  tcase_add_test(tc, test_client_malformed_json_body);
  tcase_add_test(tc, test_client_body_cap);
  tcase_add_test(tc, test_client_gzip_response);
  tcase_add_test(tc, test_client_429_retry_after_honoured);
  tcase_add_test(tc, test_client_5xx_retry_counts);
  tcase_add_test(tc, test_client_post_and_patch_not_retried);
  tcase_add_test(tc, test_client_cancel_in_flight);
  tcase_add_test(tc, test_client_cancel_during_backoff_and_rate_wait);
  tcase_add_test(tc, test_client_close_cancels_everything);
  tcase_add_test(tc, test_client_close_with_rate_limited_requests);
  tcase_add_test(tc, test_client_close_from_callback);
  tcase_add_test(tc, test_client_connection_refused);
  tcase_add_test(tc, test_client_connection_reuse_and_counters);
  tcase_add_test(tc, test_client_rate_limited);
  tcase_add_test(tc, test_client_bad_config);
  tcase_add_test(tc, test_client_no_client_side_limit_by_default);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
