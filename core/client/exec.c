/*
 * exec.c: exec credential plugins (client.authentication.k8s.io/v1 and
 * v1beta1), run with uv_spawn so the loop never blocks.
 *
 * The plugin gets KUBERNETES_EXEC_INFO (an ExecCredential with
 * spec.interactive=false) plus the kubeconfig's env entries on top of our
 * environment, stdin closed, stderr inherited; its stdout (capped at
 * 1 MiB) must be an ExecCredential whose status carries a token and
 * optionally an expirationTimestamp. The client caches the token until
 * shortly before that expiry (client.c: exec_token_valid).
 *
 * Ownership: a run owns its process and pipe handles; it frees itself once
 * both are closed, after calling `done` exactly once.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"
#include "kuala/alloc.h"
#include "kuala/error.h"

#define MAX_EXEC_OUTPUT (1u << 20)

extern char **environ;

struct kuala__exec_run_s {
  uv_process_t proc;
  uv_pipe_t out;
  kuala_buf_t buf;
  int open_handles;
  int exited;
  int64_t exit_status;
  int term_signal;
  int read_err;
  int failed; /* uv_spawn failed: free silently */
  char *command;
  kuala__exec_done_cb done;
  void *data;
};

/* RFC 3339 "2025-03-01T10:00:00Z" (fraction and offset allowed) -> unix
 * seconds; -1 when malformed. */
static int64_t parse_time(const char *s)
{
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  int y, mo, d, h, mi, sec, n = 0;
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19) {
    return -1;
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  int64_t t = (int64_t)timegm(&tm);
  const char *p = s + n;
  if (*p == '.') {
    p++;
    while (*p >= '0' && *p <= '9') {
      p++;
    }
  }
  if (*p == 'Z' || *p == 'z') {
    return p[1] == '\0' ? t : -1;
  }
  int oh, om;
  if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2) {
    int64_t off = (int64_t)oh * 3600 + om * 60;
    return *p == '+' ? t - off : t + off;
  }
  return -1;
}

int kuala__exec_parse(const char *json, size_t len, char **token, int64_t *expiry, char **errmsg)
{
  *token = NULL;
  *expiry = 0;
  *errmsg = NULL;
  json_tokener *tok = json_tokener_new_ex(32);
  json_object *obj = json_tokener_parse_ex(tok, json, (int)len);
  json_tokener_free(tok);
  json_object *kind = NULL, *status = NULL, *v = NULL;
  int rc = KUALA_EINVAL;
  if (!obj || !json_object_is_type(obj, json_type_object)) {
    *errmsg = kuala_strdup("exec plugin output is not a JSON object");
    goto cleanup;
  }
  if (!json_object_object_get_ex(obj, "kind", &kind) ||
      strcmp(json_object_get_string(kind), "ExecCredential") != 0) {
    *errmsg = kuala_strdup("exec plugin output: kind is not ExecCredential");
    goto cleanup;
  }
  if (!json_object_object_get_ex(obj, "status", &status) ||
      !json_object_is_type(status, json_type_object)) {
    *errmsg = kuala_strdup("exec plugin output: missing status");
    goto cleanup;
  }
  if (!json_object_object_get_ex(status, "token", &v) ||
      !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
    /* Client certificates from plugins are not supported (yet). */
    *errmsg = kuala_strdup(
        "exec plugin output: status.token missing (client certificate "
        "credentials from exec plugins are not supported)");
    goto cleanup;
  }
  *token = kuala_strdup(json_object_get_string(v));
  if (json_object_object_get_ex(status, "expirationTimestamp", &v) &&
      json_object_is_type(v, json_type_string)) {
    int64_t t = parse_time(json_object_get_string(v));
    if (t < 0) {
      kuala_free(*token);
      *token = NULL;
      *errmsg = kuala_strdup("exec plugin output: status.expirationTimestamp is not RFC 3339");
      goto cleanup;
    }
    *expiry = t;
  }
  rc = 0;
cleanup:
  json_object_put(obj);
  return rc;
}

static void finish_run(kuala__exec_run_t *run)
{
  int err = 0;
  char *token = NULL;
  int64_t expiry = 0;
  char *msg = NULL;
  char buf[256];
  if (run->read_err) {
    snprintf(buf, sizeof(buf), "exec plugin %s: reading its output: %s", run->command,
             kuala_strerror(run->read_err));
    err = run->read_err;
  } else if (run->term_signal) {
    snprintf(buf, sizeof(buf), "exec plugin %s: killed by signal %d", run->command,
             run->term_signal);
    err = KUALA_EIO;
  } else if (run->exit_status != 0) {
    snprintf(buf, sizeof(buf), "exec plugin %s: exited with status %lld", run->command,
             (long long)run->exit_status);
    err = KUALA_EIO;
  } else {
    err =
        kuala__exec_parse(run->buf.data ? run->buf.data : "", run->buf.len, &token, &expiry, &msg);
    if (err != 0) {
      snprintf(buf, sizeof(buf), "%s: %s", run->command, msg);
    }
  }
  run->done(run->data, err, token, expiry, err ? buf : NULL);
  kuala_free(msg);
}

static void on_handle_closed(uv_handle_t *h)
{
  kuala__exec_run_t *run = h->data;
  if (--run->open_handles > 0) {
    return;
  }
  if (!run->failed) {
    finish_run(run);
  }
  kuala_buf_free(&run->buf);
  kuala_free(run->command);
  kuala_free(run);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  kuala__exec_run_t *run = h->data;
  if (kuala_buf_reserve(&run->buf, suggested) != 0) {
    /* Past the cap: give libuv a tiny scratch area; on_read reports it. */
    static char scratch[64];
    buf->base = scratch;
    buf->len = sizeof(scratch);
    run->read_err = KUALA_E2BIG;
    return;
  }
  buf->base = run->buf.data + run->buf.len;
  buf->len = run->buf.cap - run->buf.len - 1;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  kuala__exec_run_t *run = s->data;
  if (n > 0 && !run->read_err) {
    run->buf.len += (size_t)n;
    run->buf.data[run->buf.len] = '\0';
  }
  if (n < 0 || run->read_err) {
    if (n != UV_EOF && !run->read_err) {
      run->read_err = (int)n;
    }
    uv_read_stop(s);
    if (!uv_is_closing((uv_handle_t *)s)) {
      uv_close((uv_handle_t *)s, on_handle_closed);
    }
  }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
  kuala__exec_run_t *run = p->data;
  run->exited = 1;
  run->exit_status = status;
  run->term_signal = sig;
  uv_close((uv_handle_t *)p, on_handle_closed);
}

int kuala__exec_start(kuala__exec_run_t **out, uv_loop_t *loop, const kuala_client_config_t *cfg,
                      kuala__exec_done_cb done, void *data)
{
  *out = NULL;
  if (!cfg->exec_command || !*cfg->exec_command) {
    return KUALA_EINVAL;
  }
  const char *api =
      cfg->exec_api_version ? cfg->exec_api_version : "client.authentication.k8s.io/v1";
  if (strcmp(api, "client.authentication.k8s.io/v1") != 0 &&
      strcmp(api, "client.authentication.k8s.io/v1beta1") != 0) {
    return KUALA_ENOTSUP;
  }
  /* argv: command + args */
  size_t nargs = 0;
  while (cfg->exec_args && cfg->exec_args[nargs]) {
    nargs++;
  }
  char **argv = kuala_calloc(nargs + 2, sizeof(char *));
  argv[0] = cfg->exec_command;
  for (size_t i = 0; i < nargs; i++) {
    argv[i + 1] = cfg->exec_args[i];
  }
  /* env: ours, then the kubeconfig's, then KUBERNETES_EXEC_INFO */
  size_t nenv = 0, nextra = 0;
  while (environ && environ[nenv]) {
    nenv++;
  }
  while (cfg->exec_env && cfg->exec_env[nextra]) {
    nextra++;
  }
  char **env = kuala_calloc(nenv + nextra + 2, sizeof(char *));
  size_t k = 0;
  for (size_t i = 0; i < nenv; i++) {
    env[k++] = environ[i];
  }
  for (size_t i = 0; i < nextra; i++) {
    env[k++] = cfg->exec_env[i];
  }
  kuala_buf_t info = KUALA_BUF_INIT(0);
  kuala_buf_printf(&info,
                   "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
                   "\"spec\":{\"interactive\":false}}",
                   api);
  env[k++] = info.data;

  kuala__exec_run_t *run = kuala_calloc(1, sizeof(*run));
  kuala_buf_init(&run->buf, MAX_EXEC_OUTPUT);
  run->command = kuala_strdup(cfg->exec_command);
  run->done = done;
  run->data = data;
  uv_pipe_init(loop, &run->out, 0);
  run->out.data = run;
  run->proc.data = run;
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&run->out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t po;
  memset(&po, 0, sizeof(po));
  po.file = cfg->exec_command;
  po.args = argv;
  po.env = env;
  po.stdio = stdio;
  po.stdio_count = 3;
  po.exit_cb = on_exit_cb;
  int rc = uv_spawn(loop, &run->proc, &po);
  kuala_free(argv);
  kuala_free(env);
  kuala_buf_free(&info);
  run->open_handles = 2;
  if (rc != 0) {
    /* Both handles must still be closed after a failed spawn; the run frees
     * itself in the close callbacks without calling `done` (the start call
     * failed, so the callback never runs). */
    run->failed = 1;
    uv_close((uv_handle_t *)&run->proc, on_handle_closed);
    uv_close((uv_handle_t *)&run->out, on_handle_closed);
    return rc;
  }
  uv_read_start((uv_stream_t *)&run->out, on_alloc, on_read);
  *out = run;
  return 0;
}

void kuala__exec_kill(kuala__exec_run_t *run)
{
  if (run && !run->exited) {
    uv_process_kill(&run->proc, SIGTERM);
  }
}

/* ------------------------------------------------------------------------
 * The client's plugin runs.
 * ---------------------------------------------------------------------- */

static void on_client_exec_done(void *data, int err, char *token, int64_t expiry, const char *msg)
{
  kuala_client_t *c = data;
  c->exec_run = NULL;
  kuala__client_exec_done(c, err, token, expiry, msg);
}

int kuala__client_exec_spawn(kuala_client_t *c)
{
  int rc = kuala__exec_start(&c->exec_run, c->loop, &c->cfg, on_client_exec_done, c);
  if (rc == 0) {
    c->exec_running = 1;
  }
  return rc;
}
