/*
 * Unit tests for the client's credentials, TLS and discovery: exec plugin
 * runs and caching, token-file rotation, 401 handling, certificate
 * verification against an `openssl s_server` with certificates generated
 * here, and apiVersion+kind resolution with refresh on a miss.
 */
#include "kuala_test.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include "helpers/clienttest.h"
#include "helpers/faultsrv.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/client.h"
#include "kuala/error.h"

static char tmpdir[256];

static void setup(void)
{
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/kuala-client-auth-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

static char *path_in(const char *name)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_printf(&b, "%s/%s", tmpdir, name);
  return kuala_buf_take(&b, NULL);
}

/* Write atomically (temp + rename), like a kubelet rotating a token. */
static void write_file(const char *name, const char *text)
{
  char *p = path_in(name);
  char *tmp = path_in(".tmp-write");
  FILE *f = fopen(tmp, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  ck_assert_int_eq(rename(tmp, p), 0);
  kuala_free(p);
  kuala_free(tmp);
}

static int count_lines(const char *name)
{
  char *p = path_in(name);
  FILE *f = fopen(p, "r");
  kuala_free(p);
  if (!f) {
    return 0;
  }
  int n = 0, ch;
  while ((ch = fgetc(f)) != EOF) {
    n += ch == '\n';
  }
  fclose(f);
  return n;
}

typedef struct {
  uv_loop_t loop;
  faultsrv_t *srv;
  kuala_client_t *c;
} env_t;

static void env_init(env_t *e, kuala_client_config_t *cfg)
{
  ck_assert_int_eq(uv_loop_init(&e->loop), 0);
  ck_assert_int_eq(faultsrv_start(&e->srv, &e->loop), 0);
  if (!cfg->server) {
    cfg->server = kuala_strdup(faultsrv_url(e->srv));
  }
  cfg->qps = KUALA_CLIENT_QPS_OFF;
  cfg->backoff_base_ms = 5;
  ck_assert_int_eq(kuala_client_new(&e->c, &e->loop, cfg), 0);
  kuala_client_config_free(cfg);
}

static void env_done(env_t *e)
{
  kuala_client_close(e->c);
  faultsrv_close(e->srv);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&e->loop), 0);
}

static const kuala_client_target_t cm_a = {NULL, "v1", "configmaps", "default", "a", NULL};

static void get_ok(env_t *e, ct_result_t *r)
{
  memset(r, 0, sizeof(*r));
  ck_assert_int_eq(kuala_client_get(NULL, e->c, &cm_a, NULL, ct_on_resp, r), 0);
  ck_assert(ct_run_until(&e->loop, &r->calls, 10000));
}

/* A plugin that logs each run and prints a token with the given expiry. */
static char *make_plugin(const char *expiry)
{
  char *log = path_in("runs.log");
  char script[1024];
  snprintf(script, sizeof(script),
           "#!/bin/sh\n"
           "echo run >> '%s'\n"
           "n=$(wc -l < '%s' | tr -d ' ')\n"
           "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
           "\"status\":{\"token\":\"exec-'$n'\"%s%s%s}}'\n",
           log, log, expiry ? ",\"expirationTimestamp\":\"" : "", expiry ? expiry : "",
           expiry ? "\"" : "");
  kuala_free(log);
  write_file("plugin.sh", script);
  char *p = path_in("plugin.sh");
  ck_assert_int_eq(chmod(p, 0700), 0);
  return p;
}

START_TEST(test_client_exec_plugin_token_cached)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.exec_command = make_plugin("2099-01-01T00:00:00Z");
  env_t e;
  env_init(&e, &cfg);
  faultsrv_action_t ok = {.kind = FS_RESPOND, .status = 200, .body = "{}", .repeat = 1};
  faultsrv_push(e.srv, &ok);
  ct_result_t r;
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "Authorization: Bearer exec-1"));
  ct_result_free(&r);
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "Authorization: Bearer exec-1"));
  ct_result_free(&r);
  ck_assert_int_eq(count_lines("runs.log"), 1); /* cached until expiry */
  env_done(&e);
}
END_TEST

START_TEST(test_client_exec_plugin_expired_reruns)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.exec_command = make_plugin("2001-01-01T00:00:00Z");
  env_t e;
  env_init(&e, &cfg);
  faultsrv_action_t ok = {.kind = FS_RESPOND, .status = 200, .body = "{}", .repeat = 1};
  faultsrv_push(e.srv, &ok);
  ct_result_t r;
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ct_result_free(&r);
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "Authorization: Bearer exec-2"));
  ct_result_free(&r);
  ck_assert_int_eq(count_lines("runs.log"), 2);
  env_done(&e);
}
END_TEST

START_TEST(test_client_exec_plugin_failure_is_unauthorized)
{
  write_file("bad.sh", "#!/bin/sh\necho oops\nexit 0\n");
  char *p = path_in("bad.sh");
  ck_assert_int_eq(chmod(p, 0700), 0);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.exec_command = p;
  env_t e;
  env_init(&e, &cfg);
  ct_result_t r[2];
  memset(r, 0, sizeof(r));
  /* Two requests wait on the same plugin run; both fail, once each. */
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r[0]), 0);
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r[1]), 0);
  ck_assert(ct_run_until(&e.loop, &r[1].calls, 10000));
  ck_assert(ct_run_until(&e.loop, &r[0].calls, 10000));
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].err, KUALA_EUNAUTHORIZED);
    ck_assert_ptr_nonnull(strstr(r[i].message, "not a JSON object"));
    ct_result_free(&r[i]);
  }
  ck_assert_int_eq(faultsrv_requests(e.srv), 0);
  env_done(&e);
}
END_TEST

START_TEST(test_client_token_file_rotation)
{
  write_file("token", "first\n");
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.token_file = path_in("token");
  cfg.token_refresh_ms = 1;
  env_t e;
  env_init(&e, &cfg);
  faultsrv_action_t ok = {.kind = FS_RESPOND, .status = 200, .body = "{}", .repeat = 1};
  faultsrv_push(e.srv, &ok);
  ct_result_t r;
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "Authorization: Bearer first\r\n"));
  ct_result_free(&r);
  write_file("token", "second\n");
  ct_run_for(&e.loop, 5);
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "Authorization: Bearer second\r\n"));
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_401_rereads_token_file)
{
  write_file("token", "old");
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.token_file = path_in("token");
  cfg.token_refresh_ms = 3600 * 1000; /* only a 401 makes it look again */
  env_t e;
  env_init(&e, &cfg);
  faultsrv_respond(e.srv, 200, NULL, "{}");
  faultsrv_respond(e.srv, 401, NULL,
                   "{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"message\":\"Unauthorized\","
                   "\"code\":401}");
  faultsrv_respond(e.srv, 200, NULL, "{}");
  ct_result_t r;
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ct_result_free(&r);
  write_file("token", "new");
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_int_eq(r.attempts, 2);
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "Authorization: Bearer new\r\n"));
  ct_result_free(&r);

  /* 401 with an unchanged token: reported, not retried. */
  faultsrv_respond(e.srv, 401, NULL,
                   "{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"message\":\"Unauthorized\","
                   "\"code\":401}");
  get_ok(&e, &r);
  ck_assert_int_eq(r.err, KUALA_EUNAUTHORIZED);
  ck_assert_int_eq(r.attempts, 1);
  ck_assert_str_eq(r.reason, "Unauthorized");
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_close_while_exec_plugin_runs)
{
  write_file("slow.sh", "#!/bin/sh\nexec sleep 30\n");
  char *p = path_in("slow.sh");
  ck_assert_int_eq(chmod(p, 0700), 0);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.exec_command = p;
  env_t e;
  env_init(&e, &cfg);
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm_a, NULL, ct_on_resp, &r), 0);
  ct_run_for(&e.loop, 100);
  ck_assert_int_eq(r.calls, 0);
  uint64_t t0 = ct_now_ms();
  env_done(&e); /* closes the client: the plugin is stopped, the loop ends */
  ck_assert_uint_lt(ct_now_ms() - t0, 10000);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.err, KUALA_ECANCELED);
  ct_result_free(&r);
}
END_TEST

/* ---- discovery ---------------------------------------------------- */

typedef struct {
  int calls, err, namespaced;
  char resource[64];
} resolved_t;

static void on_resolved(void *data, int err, const kuala_client_resource_t *res)
{
  resolved_t *r = data;
  r->calls++;
  r->err = err;
  if (res) {
    snprintf(r->resource, sizeof(r->resource), "%s/%s/%s", res->group, res->version, res->resource);
    r->namespaced = res->namespaced;
  }
}

START_TEST(test_client_discovery_resolve_and_refresh)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  env_t e;
  env_init(&e, &cfg);
  faultsrv_respond(
      e.srv, 200, NULL,
      "{\"kind\":\"APIResourceList\",\"groupVersion\":\"stable.example.com/v1\","
      "\"resources\":[{\"name\":\"crontabs/status\",\"namespaced\":true,\"kind\":"
      "\"CronTab\"},{\"name\":\"crontabs\",\"namespaced\":true,\"kind\":\"CronTab\"}]}");
  resolved_t r;
  memset(&r, 0, sizeof(r));
  ck_assert_int_eq(kuala_client_resolve(e.c, "stable.example.com/v1", "CronTab", on_resolved, &r),
                   0);
  ck_assert_int_eq(r.calls, 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(r.resource, "stable.example.com/v1/crontabs");
  ck_assert_int_eq(r.namespaced, 1);
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "GET /apis/stable.example.com/v1 "));

  /* Cached: no request, still asynchronous. */
  memset(&r, 0, sizeof(r));
  ck_assert_int_eq(kuala_client_resolve(e.c, "stable.example.com/v1", "CronTab", on_resolved, &r),
                   0);
  ck_assert_int_eq(r.calls, 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_str_eq(r.resource, "stable.example.com/v1/crontabs");
  ck_assert_int_eq(faultsrv_requests(e.srv), 1);
  kuala_client_resource_t hit;
  ck_assert_int_eq(kuala_client_resolve_cached(e.c, "stable.example.com/v1", "CronTab", &hit), 0);
  ck_assert_str_eq(hit.resource, "crontabs");
  ck_assert_int_eq(kuala_client_resolve_cached(e.c, "stable.example.com/v1", "Other", &hit),
                   KUALA_ENOENT);

  /* A kind installed after the cache was filled: a miss refetches. */
  faultsrv_respond(e.srv, 200, NULL,
                   "{\"kind\":\"APIResourceList\",\"resources\":[{\"name\":\"crontabs\","
                   "\"namespaced\":true,\"kind\":\"CronTab\"},{\"name\":\"clusterthings\","
                   "\"namespaced\":false,\"kind\":\"ClusterThing\"}]}");
  memset(&r, 0, sizeof(r));
  ck_assert_int_eq(
      kuala_client_resolve(e.c, "stable.example.com/v1", "ClusterThing", on_resolved, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(r.resource, "stable.example.com/v1/clusterthings");
  ck_assert_int_eq(r.namespaced, 0);
  ck_assert_int_eq(faultsrv_requests(e.srv), 2);

  /* Still missing after the refresh: NOTFOUND. Unknown group: 404. */
  faultsrv_respond(e.srv, 200, NULL, "{\"kind\":\"APIResourceList\",\"resources\":[]}");
  memset(&r, 0, sizeof(r));
  ck_assert_int_eq(kuala_client_resolve(e.c, "v1", "Nope", on_resolved, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, KUALA_ENOTFOUND);
  ck_assert_ptr_nonnull(strstr(faultsrv_last_head(e.srv), "GET /api/v1 "));
  faultsrv_respond(e.srv, 404, NULL, "404 page not found");
  memset(&r, 0, sizeof(r));
  ck_assert_int_eq(kuala_client_resolve(e.c, "nope.io/v1", "X", on_resolved, &r), 0);
  ck_assert(ct_run_until(&e.loop, &r.calls, 5000));
  ck_assert_int_eq(r.err, KUALA_ENOTFOUND);
  ck_assert_int_eq(kuala_client_resolve(e.c, "a/b/c", "X", on_resolved, &r), KUALA_EINVAL);
  ck_assert_int_eq(kuala_client_resolve(e.c, "v1", "", on_resolved, &r), KUALA_EINVAL);
  env_done(&e);
}
END_TEST

/* ---- TLS -------------------------------------------------------------- */

static void sh(const char *fmt, const char *arg)
{
  char cmd[2048];
  snprintf(cmd, sizeof(cmd), fmt, arg, arg, arg, arg, arg, arg, arg, arg);
  ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

/* Two CAs, a server certificate for 127.0.0.1 signed by the first, and a
 * client certificate signed by the first. */
static void make_certs(void)
{
  const char *mk =
      "cd '%s' && "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout ca.key -out ca.crt -subj /CN=kuala-test-ca -days 1 2>/dev/null && "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout other.key -out other.crt -subj /CN=kuala-other-ca -days 1 2>/dev/null && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null && "
      "printf 'subjectAltName=IP:127.0.0.1\\n' > srv.ext && "
      "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out srv.crt -days 1 -extfile srv.ext 2>/dev/null && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout cli.key -out cli.csr -subj /CN=kuala-client 2>/dev/null && "
      "openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out cli.crt -days 1 2>/dev/null && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout sni.key -out sni.csr -subj /CN=kuala.test 2>/dev/null && "
      "printf 'subjectAltName=DNS:kuala.test\\n' > sni.ext && "
      "openssl x509 -req -in sni.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out sni.crt -days 1 -extfile sni.ext 2>/dev/null";
  sh(mk, tmpdir);
}

typedef struct {
  uv_process_t proc;
  uv_pipe_t out;
  char buf[4096];
  size_t len;
  int port;
  int exited;
  int closed;
} sserver_t;

static void ss_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  sserver_t *s = h->data;
  b->base = s->buf + s->len;
  b->len = sizeof(s->buf) - 1 - s->len;
}

static void ss_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
  sserver_t *s = st->data;
  if (n < 0) {
    uv_read_stop(st);
    return;
  }
  s->len += (size_t)n;
  s->buf[s->len] = '\0';
  const char *acc = strstr(s->buf, "ACCEPT 127.0.0.1:");
  if (acc && strchr(acc, '\n') && !s->port) {
    s->port = (int)strtol(acc + 17, NULL, 10);
  }
  if (s->len >= sizeof(s->buf) - 1) {
    s->len = 0; /* keep reading; the port line came first */
  }
}

static void ss_exit(uv_process_t *p, int64_t status, int sig)
{
  sserver_t *s = p->data;
  s->exited = 1;
}

static void ss_closed(uv_handle_t *h)
{
  ((sserver_t *)h->data)->closed++;
}

/* openssl s_server -www on 127.0.0.1:<ephemeral>: answers GET / with 200. */
static void ss_start(sserver_t *s, uv_loop_t *loop, int require_client_cert, const char *name)
{
  memset(s, 0, sizeof(*s));
  char crt[32], pem[32];
  snprintf(crt, sizeof(crt), "%s.crt", name);
  snprintf(pem, sizeof(pem), "%s.key", name);
  char *cert = path_in(crt), *key = path_in(pem), *ca = path_in("ca.crt");
  char *args[16];
  int n = 0;
  args[n++] = "openssl";
  args[n++] = "s_server";
  args[n++] = "-accept";
  args[n++] = "127.0.0.1:0";
  args[n++] = "-cert";
  args[n++] = cert;
  args[n++] = "-key";
  args[n++] = key;
  args[n++] = "-www";
  if (require_client_cert) {
    args[n++] = "-Verify";
    args[n++] = "1";
    args[n++] = "-CAfile";
    args[n++] = ca;
  }
  args[n] = NULL;
  uv_pipe_init(loop, &s->out, 0);
  s->out.data = s;
  s->proc.data = s;
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&s->out;
  stdio[2].flags = UV_IGNORE;
  uv_process_options_t po;
  memset(&po, 0, sizeof(po));
  po.file = "openssl";
  po.args = args;
  po.stdio = stdio;
  po.stdio_count = 3;
  po.exit_cb = ss_exit;
  ck_assert_int_eq(uv_spawn(loop, &s->proc, &po), 0);
  kuala_free(cert);
  kuala_free(key);
  kuala_free(ca);
  uv_read_start((uv_stream_t *)&s->out, ss_alloc, ss_read);
  ck_assert_msg(ct_run_until(loop, &s->port, 10000), "s_server did not start");
}

static void ss_stop(sserver_t *s, uv_loop_t *loop)
{
  uv_process_kill(&s->proc, SIGTERM);
  ct_run_until(loop, &s->exited, 10000);
  uv_close((uv_handle_t *)&s->proc, ss_closed);
  uv_close((uv_handle_t *)&s->out, ss_closed);
}

static const char *tls_server_name; /* for the next tls_get */

static int tls_get(uv_loop_t *loop, int port, const char *ca_file, int insecure, int client_cert,
                   ct_result_t *r)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_printf(&b, "https://127.0.0.1:%d", port);
  cfg.server = kuala_buf_take(&b, NULL);
  cfg.ca_file = ca_file ? path_in(ca_file) : NULL;
  cfg.insecure_skip_verify = insecure;
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  cfg.max_retries = -1;
  cfg.tls_server_name = tls_server_name ? kuala_strdup(tls_server_name) : NULL;
  if (client_cert) {
    /* The *-data form: bytes in memory, as kubeconfig's client-*-data. */
    char *cp = path_in("cli.crt"), *kp = path_in("cli.key");
    FILE *f = fopen(cp, "r");
    ck_assert_ptr_nonnull(f);
    cfg.cert_data = kuala_calloc(1, 8192);
    cfg.cert_data_len = fread(cfg.cert_data, 1, 8191, f);
    fclose(f);
    f = fopen(kp, "r");
    ck_assert_ptr_nonnull(f);
    cfg.key_data = kuala_calloc(1, 8192);
    cfg.key_data_len = fread(cfg.key_data, 1, 8191, f);
    fclose(f);
    kuala_free(cp);
    kuala_free(kp);
  }
  kuala_client_t *c;
  ck_assert_int_eq(kuala_client_new(&c, loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  memset(r, 0, sizeof(*r));
  ck_assert_int_eq(kuala_client_request(NULL, c, "GET", "/", NULL, NULL, 0, NULL, ct_on_resp, r),
                   0);
  ck_assert(ct_run_until(loop, &r->calls, 15000));
  kuala_client_close(c);
  ct_run_for(loop, 10);
  return r->err;
}

START_TEST(test_client_tls_verification)
{
  make_certs();
  uv_loop_t loop;
  uv_loop_init(&loop);
  sserver_t ss;
  ss_start(&ss, &loop, 0, "srv");
  ct_result_t r;
  /* The right CA: verified. */
  ck_assert_int_eq(tls_get(&loop, ss.port, "ca.crt", 0, 0, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ct_result_free(&r);
  /* The wrong CA: refused with a clear error. */
  ck_assert_int_eq(tls_get(&loop, ss.port, "other.crt", 0, 0, &r), KUALA_EPROTO);
  ck_assert_ptr_nonnull(r.message);
  ck_assert_int_eq(r.status, 0);
  ct_result_free(&r);
  /* No CA given: the system store does not know our CA either. */
  ck_assert_int_eq(tls_get(&loop, ss.port, NULL, 0, 0, &r), KUALA_EPROTO);
  ct_result_free(&r);
  /* insecure-skip-tls-verify: accepted without verification. */
  ck_assert_int_eq(tls_get(&loop, ss.port, "other.crt", 1, 0, &r), 0);
  ct_result_free(&r);
  ss_stop(&ss, &loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(ss.closed, 2);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_client_tls_client_certificate)
{
  make_certs();
  uv_loop_t loop;
  uv_loop_init(&loop);
  sserver_t ss;
  ss_start(&ss, &loop, 1, "srv");
  ct_result_t r;
  ck_assert_int_eq(tls_get(&loop, ss.port, "ca.crt", 0, 1, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ct_result_free(&r);
  /* Without a client certificate the handshake (or the first read) fails. */
  ck_assert_int_ne(tls_get(&loop, ss.port, "ca.crt", 0, 0, &r), 0);
  ck_assert_int_eq(r.status, 0);
  ct_result_free(&r);
  ss_stop(&ss, &loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_client_tls_server_name)
{
  make_certs();
  uv_loop_t loop;
  uv_loop_init(&loop);
  sserver_t ss;
  /* The certificate names kuala.test only, not 127.0.0.1. */
  ss_start(&ss, &loop, 0, "sni");
  ct_result_t r;
  tls_server_name = NULL;
  ck_assert_int_eq(tls_get(&loop, ss.port, "ca.crt", 0, 0, &r), KUALA_EPROTO);
  ct_result_free(&r);
  tls_server_name = "kuala.test";
  ck_assert_int_eq(tls_get(&loop, ss.port, "ca.crt", 0, 0, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ct_result_free(&r);
  tls_server_name = "other.test";
  ck_assert_int_eq(tls_get(&loop, ss.port, "ca.crt", 0, 0, &r), KUALA_EPROTO);
  ct_result_free(&r);
  tls_server_name = NULL;
  ss_stop(&ss, &loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- HTTP/2 (nghttpd from nghttp2-server, see scripts/deps.sh) ---------- */

static int free_port(uv_loop_t *loop)
{
  uv_tcp_t t;
  uv_tcp_init(loop, &t);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ck_assert_int_eq(uv_tcp_bind(&t, (const struct sockaddr *)&addr, 0), 0);
  struct sockaddr_in bound;
  int len = sizeof(bound);
  uv_tcp_getsockname(&t, (struct sockaddr *)&bound, &len);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return ntohs(bound.sin_port);
}

typedef struct {
  uv_process_t proc;
  int exited, closed;
} h2srv_t;

static void h2_exit(uv_process_t *p, int64_t status, int sig)
{
  ((h2srv_t *)p->data)->exited = 1;
}

static void h2_closed(uv_handle_t *h)
{
  ((h2srv_t *)h->data)->closed = 1;
}

/* nghttpd serving tmpdir/docs on 127.0.0.1:port, TLS (ALPN h2) or h2c. */
static void h2_start(h2srv_t *s, uv_loop_t *loop, int port, int tls)
{
  memset(s, 0, sizeof(*s));
  char portstr[16];
  snprintf(portstr, sizeof(portstr), "%d", port);
  char *docs = path_in("docs"), *key = path_in("srv.key"), *cert = path_in("srv.crt");
  char *args[10];
  int n = 0;
  args[n++] = "nghttpd";
  args[n++] = "-a";
  args[n++] = "127.0.0.1";
  args[n++] = "-d";
  args[n++] = docs;
  if (!tls) {
    args[n++] = "--no-tls";
  }
  args[n++] = portstr;
  if (tls) {
    args[n++] = key;
    args[n++] = cert;
  }
  args[n] = NULL;
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_IGNORE;
  stdio[2].flags = UV_IGNORE;
  uv_process_options_t po;
  memset(&po, 0, sizeof(po));
  po.file = "nghttpd";
  po.args = args;
  po.stdio = stdio;
  po.stdio_count = 3;
  po.exit_cb = h2_exit;
  s->proc.data = s;
  int rc = uv_spawn(loop, &s->proc, &po);
  kuala_free(docs);
  kuala_free(key);
  kuala_free(cert);
  ck_assert_msg(rc == 0, "cannot run nghttpd (package nghttp2-server, scripts/deps.sh): %s",
                uv_strerror(rc));
}

static void h2_stop(h2srv_t *s, uv_loop_t *loop)
{
  uv_process_kill(&s->proc, SIGTERM);
  ct_run_until(loop, &s->exited, 10000);
  uv_close((uv_handle_t *)&s->proc, h2_closed);
  uv_run(loop, UV_RUN_DEFAULT);
}

typedef struct {
  int calls, ok, h2;
} h2count_t;

static void on_h2(void *data, int err, kuala_client_resp_t *resp)
{
  h2count_t *c = data;
  c->calls++;
  c->ok += err == 0 && resp->status == 200 && resp->body_len > 0;
  c->h2 += resp->http_version == 2;
}

static void h2_round(uv_loop_t *loop, const char *url, int http2, int with_ca)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(url);
  cfg.ca_file = with_ca ? path_in("ca.crt") : NULL;
  cfg.http2 = http2;
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  cfg.max_retries = 30; /* the server may still be starting: refused -> retry */
  cfg.backoff_base_ms = 20;
  cfg.backoff_max_ms = 100;
  kuala_client_t *c;
  ck_assert_int_eq(kuala_client_new(&c, loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  /* One request first (waits for the server), then 16 at once. */
  h2count_t first = {0, 0, 0};
  ck_assert_int_eq(
      kuala_client_request(NULL, c, "GET", "/api/v1/x", NULL, NULL, 0, NULL, on_h2, &first), 0);
  ck_assert(ct_run_until(loop, &first.calls, 15000));
  ck_assert_int_eq(first.ok, 1);
  h2count_t cnt = {0, 0, 0};
  for (int i = 0; i < 16; i++) {
    ck_assert_int_eq(
        kuala_client_request(NULL, c, "GET", "/api/v1/x", NULL, NULL, 0, NULL, on_h2, &cnt), 0);
  }
  uint64_t deadline = ct_now_ms() + 15000;
  while (cnt.calls < 16 && ct_now_ms() < deadline) {
    uv_run(loop, UV_RUN_ONCE);
  }
  ck_assert_int_eq(cnt.calls, 16);
  ck_assert_int_eq(cnt.ok, 16);
  ck_assert_int_eq(cnt.h2, 16);
  kuala_client_close(c);
  ct_run_for(loop, 10);
}

START_TEST(test_client_http2_tls_and_h2c)
{
  make_certs();
  sh("mkdir -p '%s/docs/api/v1' && printf '{\"kind\":\"ConfigMap\"}' > '%s/docs/api/v1/x'", tmpdir);
  uv_loop_t loop;
  uv_loop_init(&loop);
  /* TLS: ALPN offers h2, the client takes it. */
  int port = free_port(&loop);
  h2srv_t s;
  h2_start(&s, &loop, port, 1);
  char url[64];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
  h2_round(&loop, url, 0, 1);
  h2_stop(&s, &loop);
  /* Plain text: HTTP/2 with prior knowledge (cfg.http2 = 2), refused on
   * libcurl 7.x whose h2c connection reuse is broken. */
  port = free_port(&loop);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
  if (curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
    kuala_client_config_t cfg;
    kuala_client_config_init(&cfg);
    cfg.server = kuala_strdup(url);
    cfg.http2 = 2;
    kuala_client_t *c = NULL;
    ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), KUALA_ENOTSUP);
    ck_assert_ptr_null(c);
    kuala_client_config_free(&cfg);
  } else {
    h2_start(&s, &loop, port, 0);
    h2_round(&loop, url, 2, 0);
    h2_stop(&s, &loop);
  }
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("client_auth");
  TCase *tc = tcase_create("client_auth");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_client_exec_plugin_token_cached);
  tcase_add_test(tc, test_client_exec_plugin_expired_reruns);
  tcase_add_test(tc, test_client_exec_plugin_failure_is_unauthorized);
  tcase_add_test(tc, test_client_close_while_exec_plugin_runs);
  tcase_add_test(tc, test_client_token_file_rotation);
  tcase_add_test(tc, test_client_401_rereads_token_file);
  tcase_add_test(tc, test_client_discovery_resolve_and_refresh);
  tcase_add_test(tc, test_client_tls_verification);
  tcase_add_test(tc, test_client_tls_client_certificate);
  tcase_add_test(tc, test_client_tls_server_name);
  tcase_add_test(tc, test_client_http2_tls_and_h2c);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
