/*
 * client.c: the Kubernetes API client transport.
 *
 * libcurl's multi interface runs on the caller's libuv loop: curl tells us
 * which sockets to watch (CURLMOPT_SOCKETFUNCTION -> one uv_poll_t per
 * socket) and when to wake it (CURLMOPT_TIMERFUNCTION -> c->timer). No
 * thread, no blocking network call.
 *
 * A request goes through: rate limiter (token bucket) -> credentials (exec
 * plugin, token file) -> attempt (easy handle in the multi) -> completion,
 * possibly looping back to the rate limiter for a retry after a backoff on
 * the request's own uv timer.
 *
 * Invariants:
 *   - user callbacks never run inside a curl callback nor inside a start
 *     call: completions are delivered from check_multi_info() (after
 *     curl_multi_socket_action returned) or from the request's timer;
 *     watch events are queued by the write callback and delivered by
 *     drain_watches() after curl returned, so user code may start, cancel
 *     or stop anything from any callback;
 *   - the completion callback runs exactly once per started request;
 *   - a request's easy handle is in the multi iff state == REQ_RUNNING;
 *   - the request's memory is freed in its timer's close callback, and the
 *     client's memory once the last request and the client's handles are
 *     closed after kuala_client_close().
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "client/internal.h"
#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/log.h"
#include "kuala/version.h"

/* No client-side limit unless asked for: the server's API Priority and
 * Fairness and its 429 + Retry-After answers pace us (docs/client.md). */
#define DEFAULT_QPS KUALA_CLIENT_QPS_OFF
#define DEFAULT_MAX_BODY (64u << 20)
#define DEFAULT_MAX_LINE (16u << 20)
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_RETRIES 3
#define DEFAULT_BACKOFF_BASE_MS 200
#define DEFAULT_BACKOFF_MAX_MS 5000
#define DEFAULT_TOKEN_REFRESH_MS 1000
#define MAX_RETRY_AFTER_S 60
#define MAX_TOKEN_FILE 65536

typedef struct {
  char *key;
  uint64_t count;
} counter_t;

static void check_multi_info(kuala_client_t *c);
static void drain_watches(kuala_client_t *c);
static void acquire(kuala_client_req_t *req);
static void maybe_teardown(kuala_client_t *c);

/* ------------------------------------------------------------------------
 * Config.
 * ---------------------------------------------------------------------- */

void kuala_client_config_init(kuala_client_config_t *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
}

static void free_strv(char **v)
{
  if (!v) {
    return;
  }
  for (char **p = v; *p; p++) {
    kuala_free(*p);
  }
  kuala_free(v);
}

static char **dup_strv(char *const *v)
{
  if (!v) {
    return NULL;
  }
  size_t n = 0;
  while (v[n]) {
    n++;
  }
  char **out = kuala_calloc(n + 1, sizeof(char *));
  for (size_t i = 0; i < n; i++) {
    out[i] = kuala_strdup(v[i]);
  }
  return out;
}

void kuala_client_config_free(kuala_client_config_t *cfg)
{
  kuala_free(cfg->server);
  kuala_free(cfg->ns);
  kuala_free(cfg->token);
  kuala_free(cfg->token_file);
  kuala_free(cfg->ca_file);
  kuala_free(cfg->ca_data);
  kuala_free(cfg->cert_file);
  kuala_free(cfg->cert_data);
  kuala_free(cfg->key_file);
  kuala_free(cfg->key_data);
  kuala_free(cfg->tls_server_name);
  kuala_free(cfg->username);
  kuala_free(cfg->password);
  kuala_free(cfg->exec_command);
  free_strv(cfg->exec_args);
  free_strv(cfg->exec_env);
  kuala_free(cfg->exec_api_version);
  kuala_free(cfg->user_agent);
  memset(cfg, 0, sizeof(*cfg));
}

static char *dup_or_null(const char *s)
{
  return s ? kuala_strdup(s) : NULL;
}

static char *memdup_or_null(const char *s, size_t n)
{
  return s ? kuala_memdup(s, n) : NULL;
}

void kuala_client_config_copy(kuala_client_config_t *dst, const kuala_client_config_t *src)
{
  *dst = *src; /* scalars */
  dst->server = dup_or_null(src->server);
  dst->ns = dup_or_null(src->ns);
  dst->token = dup_or_null(src->token);
  dst->token_file = dup_or_null(src->token_file);
  dst->ca_file = dup_or_null(src->ca_file);
  dst->ca_data = memdup_or_null(src->ca_data, src->ca_data_len);
  dst->cert_file = dup_or_null(src->cert_file);
  dst->cert_data = memdup_or_null(src->cert_data, src->cert_data_len);
  dst->key_file = dup_or_null(src->key_file);
  dst->key_data = memdup_or_null(src->key_data, src->key_data_len);
  dst->tls_server_name = dup_or_null(src->tls_server_name);
  dst->username = dup_or_null(src->username);
  dst->password = dup_or_null(src->password);
  dst->exec_command = dup_or_null(src->exec_command);
  dst->exec_args = dup_strv(src->exec_args);
  dst->exec_env = dup_strv(src->exec_env);
  dst->exec_api_version = dup_or_null(src->exec_api_version);
  dst->user_agent = dup_or_null(src->user_agent);
}

void kuala_client_opts_init(kuala_client_opts_t *opts)
{
  memset(opts, 0, sizeof(*opts));
  opts->grace_period_seconds = -1;
}

/* ------------------------------------------------------------------------
 * curl <-> libuv glue.
 * ---------------------------------------------------------------------- */

static void on_sock_closed(uv_handle_t *h)
{
  sockctx_t *s = h->data;
  kuala_client_t *c = s->c;
  kuala_free(s);
  c->handles--;
  maybe_teardown(c);
}

static void sock_close(sockctx_t *s)
{
  kuala_client_t *c = s->c;
  if (s->prev) {
    s->prev->next = s->next;
  } else {
    c->socks = s->next;
  }
  if (s->next) {
    s->next->prev = s->prev;
  }
  s->prev = s->next = NULL;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
  sockctx_t *s = h->data;
  kuala_client_t *c = s->c;
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) {
      flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
      flags |= CURL_CSELECT_OUT;
    }
  }
  int running = 0;
  curl_multi_socket_action(c->multi, s->fd, flags, &running);
  drain_watches(c);
  check_multi_info(c);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
  kuala_client_t *c = userp;
  sockctx_t *s = socketp;
  if (action == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(c->multi, fd, NULL);
      sock_close(s);
    }
    return 0;
  }
  if (!s) {
    s = kuala_calloc(1, sizeof(*s));
    s->fd = fd;
    s->c = c;
    if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
      kuala_free(s);
      return -1;
    }
    s->poll.data = s;
    c->handles++;
    s->next = c->socks;
    if (c->socks) {
      c->socks->prev = s;
    }
    c->socks = s;
    curl_multi_assign(c->multi, fd, s);
  }
  int events = 0;
  if (action == CURL_POLL_IN || action == CURL_POLL_INOUT) {
    events |= UV_READABLE;
  }
  if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT) {
    events |= UV_WRITABLE;
  }
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

static void on_curl_timer_fired(uv_timer_t *t)
{
  kuala_client_t *c = t->data;
  int running = 0;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  drain_watches(c);
  check_multi_info(c);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
  kuala_client_t *c = userp;
  if (c->closing) {
    return 0; /* c->timer is reserved for the teardown now */
  }
  if (timeout_ms < 0) {
    uv_timer_stop(&c->timer);
  } else {
    uv_timer_start(&c->timer, on_curl_timer_fired, (uint64_t)timeout_ms, 0);
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Client lifecycle.
 * ---------------------------------------------------------------------- */

static void host_of(const char *url, char **out)
{
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  size_t n = strcspn(p, "/?#");
  *out = kuala_strndup(p, n);
}

/* tls-server-name: libcurl 7.88 has no SNI override, so the URL names the
 * server by tls_server_name (which drives SNI and certificate checks) and
 * CURLOPT_CONNECT_TO sends the connection to the real host. The Host
 * header keeps the configured authority, as kubectl does. */
static void setup_server_name(kuala_client_t *c)
{
  const char *authority = c->host; /* "host[:port]" or "[v6]:port" */
  const char *rest = c->cfg.server + 8 + strlen(authority);
  const char *colon = strrchr(authority, ':');
  const char *bracket = strrchr(authority, ']');
  int has_port = colon && (!bracket || colon > bracket);
  char port[16];
  snprintf(port, sizeof(port), "%s", has_port ? colon + 1 : "443");
  size_t hostlen = has_port ? (size_t)(colon - authority) : strlen(authority);
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_printf(&b, "%s:%s:%.*s:%s", c->cfg.tls_server_name, port, (int)hostlen, authority,
                   port);
  c->connect_to = curl_slist_append(NULL, b.data);
  kuala_buf_reset(&b);
  kuala_buf_printf(&b, "Host: %s", authority);
  c->host_header = kuala_buf_take(&b, NULL);
  kuala_buf_printf(&b, "https://%s:%s%s", c->cfg.tls_server_name, port, rest);
  c->base_url = kuala_buf_take(&b, NULL);
}

int kuala_client_new(kuala_client_t **out, uv_loop_t *loop, const kuala_client_config_t *cfg)
{
  *out = NULL;
  if (!loop || !cfg || !cfg->server) {
    return KUALA_EINVAL;
  }
  if (strncmp(cfg->server, "http://", 7) != 0 && strncmp(cfg->server, "https://", 8) != 0) {
    return KUALA_EINVAL;
  }
  if (cfg->ca_file && access(cfg->ca_file, R_OK) != 0) {
    return KUALA_EINVAL;
  }
  static int curl_ready = 0;
  if (!curl_ready) {
    /* Not thread safe by design: the engine has one loop thread. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      return KUALA_EIO;
    }
    curl_ready = 1;
  }
  if (cfg->http2 == 2 && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
    /* libcurl 7.x (Debian 12 ships 7.88.1) breaks a reused h2c
     * prior-knowledge connection ("Error in the HTTP2 framing layer",
     * fixed upstream in 8.0); HTTP/2 over TLS (ALPN) is not affected. */
    KUALA_LOG(KUALA_LOG_ERROR, "HTTP/2 prior knowledge needs libcurl >= 8.0", "libcurl",
              curl_version_info(CURLVERSION_NOW)->version);
    return KUALA_ENOTSUP;
  }
  kuala_client_t *c = kuala_calloc(1, sizeof(*c));
  c->loop = loop;
  kuala_client_config_copy(&c->cfg, cfg);
  /* Strip a trailing '/' so paths can be appended. */
  size_t sl = strlen(c->cfg.server);
  while (sl > 0 && c->cfg.server[sl - 1] == '/') {
    c->cfg.server[--sl] = '\0';
  }
  if (!c->cfg.max_body) {
    c->cfg.max_body = DEFAULT_MAX_BODY;
  }
  if (!c->cfg.max_line) {
    c->cfg.max_line = DEFAULT_MAX_LINE;
  }
  if (!c->cfg.timeout_ms) {
    c->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
  }
  if (!c->cfg.connect_timeout_ms) {
    c->cfg.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  }
  if (c->cfg.max_retries == 0) {
    c->cfg.max_retries = DEFAULT_RETRIES;
  } else if (c->cfg.max_retries < 0) {
    c->cfg.max_retries = 0;
  }
  if (!c->cfg.backoff_base_ms) {
    c->cfg.backoff_base_ms = DEFAULT_BACKOFF_BASE_MS;
  }
  if (!c->cfg.backoff_max_ms) {
    c->cfg.backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
  }
  if (!c->cfg.token_refresh_ms) {
    c->cfg.token_refresh_ms = DEFAULT_TOKEN_REFRESH_MS;
  }
  if (!c->cfg.ns) {
    c->cfg.ns = kuala_strdup("default");
  }
  if (!c->cfg.user_agent) {
    c->cfg.user_agent = kuala_strdup("kuala/" KUALA_VERSION_STRING);
  }
  double qps = c->cfg.qps == 0 ? DEFAULT_QPS : c->cfg.qps;
  int burst = c->cfg.burst;
  if (burst == 0) { /* default: two seconds' worth */
    burst = qps >= 0.5 ? (qps < 1e6 ? (int)(2 * qps) : 2000000) : 1;
  }
  if (qps > 0) {
    c->qps = qps;
    c->burst = burst;
    int rc = kuala_tokenbucket_new(&c->tb, loop, qps, burst);
    if (rc != 0) {
      kuala_client_config_free(&c->cfg);
      kuala_free(c);
      return rc;
    }
  } else if (qps != KUALA_CLIENT_QPS_OFF) {
    kuala_client_config_free(&c->cfg);
    kuala_free(c);
    return KUALA_EINVAL;
  }
  host_of(c->cfg.server, &c->host);
  if (c->cfg.tls_server_name && *c->cfg.tls_server_name &&
      strncmp(c->cfg.server, "https://", 8) == 0) {
    setup_server_name(c);
  }
  if (c->cfg.token) {
    c->token = kuala_strdup(c->cfg.token);
  }
  c->rng = uv_hrtime() | 1;
  const char *dbg = getenv("KUALA_CLIENT_DEBUG");
  c->curl_verbose = dbg && strcmp(dbg, "1") == 0;
  kuala__map_init(&c->counters);
  kuala__map_init(&c->disc);
  c->multi = curl_multi_init();
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  *out = c;
  return 0;
}

const char *kuala_client_namespace(const kuala_client_t *c)
{
  return c->cfg.ns;
}

int kuala_client_rate_limit(const kuala_client_t *c, double *qps, int *burst)
{
  if (qps) {
    *qps = c->tb ? c->qps : 0;
  }
  if (burst) {
    *burst = c->tb ? c->burst : 0;
  }
  return c->tb != NULL;
}

static void on_client_timer_closed(uv_handle_t *h)
{
  kuala_client_t *c = h->data;
  c->handles--;
  maybe_teardown(c);
}

static void free_client(kuala_client_t *c)
{
  size_t iter = 0;
  const char *key;
  size_t klen;
  void *value;
  while (kuala__map_next(&c->counters, &iter, &key, &klen, &value)) {
    counter_t *ct = value;
    kuala_free(ct->key);
    kuala_free(ct);
  }
  kuala__map_free(&c->counters);
  kuala__client_disc_free(c);
  kuala_client_config_free(&c->cfg);
  kuala_free(c->host);
  kuala_free(c->host_header);
  kuala_free(c->base_url);
  kuala_buf_free(&c->spare_body);
  curl_slist_free_all(c->connect_to);
  kuala_free(c->token);
  kuala_free(c->exec_token);
  kuala_free(c);
}

static void on_teardown(uv_timer_t *t)
{
  kuala_client_t *c = t->data;
  /* No request is left: the multi only holds idle connections. Cleaning
   * it up may call the socket callback with CURL_POLL_REMOVE. */
  curl_multi_cleanup(c->multi);
  c->multi = NULL;
  while (c->socks) {
    sock_close(c->socks);
  }
  uv_close((uv_handle_t *)&c->timer, on_client_timer_closed);
}

/* Called whenever a request or handle goes away. */
static void maybe_teardown(kuala_client_t *c)
{
  if (!c->closing) {
    return;
  }
  if (c->nreqs == 0 && !c->torn_down && !c->exec_running) {
    c->torn_down = 1;
    /* Defer: we may be inside a loop callback that still uses the multi. */
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_teardown, 0, 0);
    return;
  }
  if (c->torn_down && c->handles == 0) {
    free_client(c);
  }
}

void kuala_client_close(kuala_client_t *c)
{
  if (!c || c->closing) {
    return;
  }
  c->closing = 1;
  for (kuala_client_req_t *r = c->reqs; r; r = r->next) {
    kuala_client_req_cancel(r);
  }
  if (c->tb) {
    kuala_tokenbucket_close(c->tb);
    c->tb = NULL;
  }
  if (c->exec_run) {
    kuala__exec_kill(c->exec_run);
  }
  maybe_teardown(c);
}

/* ------------------------------------------------------------------------
 * Counters.
 * ---------------------------------------------------------------------- */

static void count(kuala_client_t *c, const char *method, int status)
{
  char key[256];
  if (status > 0) {
    snprintf(key, sizeof(key), "%s %d %s", method, status, c->host);
  } else {
    snprintf(key, sizeof(key), "%s <error> %s", method, c->host);
  }
  size_t klen = strlen(key);
  counter_t *ct = kuala__map_get(&c->counters, key, klen);
  if (!ct) {
    ct = kuala_calloc(1, sizeof(*ct));
    ct->key = kuala_strdup(key);
    kuala__map_put(&c->counters, ct->key, klen, ct);
  }
  ct->count++;
}

void kuala_client_foreach_count(kuala_client_t *c, kuala_client_count_cb cb, void *data)
{
  size_t iter = 0;
  const char *key;
  size_t klen;
  void *value;
  while (kuala__map_next(&c->counters, &iter, &key, &klen, &value)) {
    counter_t *ct = value;
    char method[16], code[16];
    const char *sp1 = strchr(ct->key, ' ');
    const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2) {
      continue;
    }
    snprintf(method, sizeof(method), "%.*s", (int)(sp1 - ct->key), ct->key);
    snprintf(code, sizeof(code), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
    cb(data, method, code, sp2 + 1, ct->count);
  }
}

/* ------------------------------------------------------------------------
 * Credentials.
 * ---------------------------------------------------------------------- */

static uint64_t now_ms(kuala_client_t *c)
{
  return uv_hrtime() / 1000000u;
}

static char *trim_dup(const char *s, size_t n)
{
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) {
    n--;
  }
  while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
    s++;
    n--;
  }
  return kuala_strndup(s, n);
}

/* Re-read the token file when it changed (projected service-account tokens
 * rotate by an atomic symlink swap, which changes the inode; plain rewrites
 * change mtime/size). A tiny synchronous stat+read, at most once per
 * token_refresh_ms. Returns 1 when the token changed. */
static int refresh_token(kuala_client_t *c, int force)
{
  if (!c->cfg.token_file) {
    return 0;
  }
  uint64_t now = now_ms(c);
  if (!force && c->token && now - c->token_checked_ms < c->cfg.token_refresh_ms) {
    return 0;
  }
  c->token_checked_ms = now;
  struct stat st;
  if (stat(c->cfg.token_file, &st) != 0) {
    return 0; /* keep the old token; the server will say 401 if it is stale */
  }
  if (c->token && st.st_mtim.tv_sec == c->token_mtime.tv_sec &&
      st.st_mtim.tv_nsec == c->token_mtime.tv_nsec && st.st_size == c->token_size &&
      st.st_ino == c->token_ino) {
    return 0;
  }
  int fd = open(c->cfg.token_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  char *buf = kuala_malloc(MAX_TOKEN_FILE);
  ssize_t n = read(fd, buf, MAX_TOKEN_FILE - 1);
  close(fd);
  int changed = 0;
  if (n >= 0) {
    char *tok = trim_dup(buf, (size_t)n);
    if (!c->token || strcmp(tok, c->token) != 0) {
      changed = 1;
    }
    kuala_free(c->token);
    c->token = tok;
    c->token_mtime = st.st_mtim;
    c->token_size = st.st_size;
    c->token_ino = st.st_ino;
  }
  kuala_free(buf);
  return changed;
}

static int exec_token_valid(kuala_client_t *c)
{
  if (!c->exec_token) {
    return 0;
  }
  if (c->exec_expiry == 0) {
    return 1;
  }
  /* Refresh a little before the expiry, like client-go. */
  return (int64_t)time(NULL) + 10 < c->exec_expiry;
}

void kuala__client_exec_done(kuala_client_t *c, int err, char *token, int64_t expiry,
                             const char *msg)
{
  c->exec_running = 0;
  if (err == 0) {
    kuala_free(c->exec_token);
    c->exec_token = token;
    c->exec_expiry = expiry;
  } else {
    KUALA_LOG(KUALA_LOG_ERROR, "exec credential plugin failed", "command", c->cfg.exec_command,
              "error", msg ? msg : kuala_strerror(err));
  }
  kuala_client_req_t *w = c->auth_waiters;
  c->auth_waiters = NULL;
  while (w) {
    kuala_client_req_t *next = w->auth_next;
    w->auth_next = NULL;
    if (err == 0) {
      /* Even a credential that is already expired is used once: asking
       * the plugin again would loop; the server decides. */
      w->exec_fresh = 1;
      acquire(w);
    } else {
      kuala_free(w->message);
      w->message = kuala_strdup(msg ? msg : "exec credential plugin failed");
      kuala__client_req_defer(w, KUALA_EUNAUTHORIZED);
    }
    w = next;
  }
  maybe_teardown(c);
}

/* ------------------------------------------------------------------------
 * Requests.
 * ---------------------------------------------------------------------- */

static void list_remove(kuala_client_req_t *req)
{
  kuala_client_t *c = req->c;
  if (req->prev) {
    req->prev->next = req->next;
  } else {
    c->reqs = req->next;
  }
  if (req->next) {
    req->next->prev = req->prev;
  }
  req->prev = req->next = NULL;
}

static void clear_attempt(kuala_client_req_t *req)
{
  req->status = 0;
  kuala_free(req->resp_ctype);
  req->resp_ctype = NULL;
  req->retry_after = -1;
  req->http_version = 0;
  req->local_err = 0;
  req->streaming = 0;
  req->errbuf[0] = '\0';
  kuala_buf_reset(&req->resp_body);
}

static void clear_status(kuala_client_req_t *req)
{
  kuala_free(req->reason);
  kuala_free(req->message);
  for (size_t i = 0; i < req->ncauses; i++) {
    kuala_free(req->causes[i].reason);
    kuala_free(req->causes[i].message);
    kuala_free(req->causes[i].field);
  }
  kuala_free(req->causes);
  req->reason = req->message = NULL;
  req->causes = NULL;
  req->ncauses = 0;
}

static void on_req_closed(uv_handle_t *h)
{
  kuala_client_req_t *req = h->data;
  kuala_client_t *c = req->c;
  list_remove(req);
  c->nreqs--;
  kuala_free(req);
  maybe_teardown(c);
}

/* Largest response body buffer kept for the next request: a list page of
 * 500 ~2 KB objects fits; bigger ones are given back. */
#define SPARE_BODY_MAX ((size_t)4 << 20)

kuala_client_req_t *kuala__client_req_alloc(kuala_client_t *c, size_t size, req_kind_t kind)
{
  kuala_client_req_t *req = kuala_calloc(1, size);
  req->c = c;
  req->kind = kind;
  req->retry_after = -1;
  kuala_buf_init(&req->resp_body, c->cfg.max_body);
  if (kind != REQ_KIND_WATCH && c->spare_body.data) {
    req->resp_body = c->spare_body; /* empty, with its capacity */
    req->resp_body.max = c->cfg.max_body;
    kuala_buf_init(&c->spare_body, 0);
  }
  kuala_buf_init(&req->ready, 0);
  kuala_lines_init(&req->lines, c->cfg.max_line);
  req->lines.skip_long = 1;
  req->max_retries = c->cfg.max_retries;
  req->timeout_ms = c->cfg.timeout_ms;
  return req;
}

/* Free a request that never started (start call failed). */
static void req_discard(kuala_client_req_t *req)
{
  kuala_free(req->url);
  kuala_free(req->body);
  kuala_free(req->content_type);
  kuala_free(req->accept);
  kuala_free(req->impersonate);
  kuala_buf_free(&req->resp_body);
  kuala_buf_free(&req->ready);
  kuala__jscan_free(&req->scan);
  kuala_lines_free(&req->lines);
  kuala_free(req);
}

static void decode_status(kuala_client_req_t *req)
{
  clear_status(req);
  if (!req->resp_body.data || req->resp_body.len == 0) {
    return;
  }
  json_object *obj = NULL;
  kuala_json_parse(&obj, req->resp_body.data, req->resp_body.len, NULL, 0);
  json_object *kind = NULL, *v = NULL;
  if (!obj || !json_object_is_type(obj, json_type_object) ||
      !json_object_object_get_ex(obj, "kind", &kind) ||
      strcmp(json_object_get_string(kind), "Status") != 0) {
    /* Not a Status (e.g. "404 page not found"): keep a bounded excerpt. */
    size_t n = req->resp_body.len < 200 ? req->resp_body.len : 200;
    req->message = trim_dup(req->resp_body.data, n);
    json_object_put(obj);
    return;
  }
  if (json_object_object_get_ex(obj, "reason", &v) && json_object_is_type(v, json_type_string)) {
    req->reason = kuala_strdup(json_object_get_string(v));
  }
  if (json_object_object_get_ex(obj, "message", &v) && json_object_is_type(v, json_type_string)) {
    req->message = kuala_strdup(json_object_get_string(v));
  }
  json_object *details = NULL, *causes = NULL;
  if (json_object_object_get_ex(obj, "details", &details) &&
      json_object_object_get_ex(details, "causes", &causes) &&
      json_object_is_type(causes, json_type_array)) {
    size_t n = json_object_array_length(causes);
    req->causes = kuala_calloc(n ? n : 1, sizeof(kuala_status_cause_t));
    for (size_t i = 0; i < n; i++) {
      json_object *cause = json_object_array_get_idx(causes, i);
      kuala_status_cause_t *dst = &req->causes[req->ncauses];
      if (!json_object_is_type(cause, json_type_object)) {
        continue;
      }
      if (json_object_object_get_ex(cause, "reason", &v)) {
        dst->reason = kuala_strdup(json_object_get_string(v));
      }
      if (json_object_object_get_ex(cause, "message", &v)) {
        dst->message = kuala_strdup(json_object_get_string(v));
      }
      if (json_object_object_get_ex(cause, "field", &v)) {
        dst->field = kuala_strdup(json_object_get_string(v));
      }
      req->ncauses++;
    }
  }
  json_object_put(obj);
}

int kuala_client_resp_json(kuala_client_resp_t *resp, struct json_object **out)
{
  kuala_client_req_t *req = resp->internal_;
  *out = NULL;
  if (req && req->json) {
    *out = req->json;
    return 0;
  }
  if (!resp->body || resp->body_len == 0) {
    return KUALA_ENOENT;
  }
  /* Strict RFC 8259, as everything read from the network. */
  json_object *obj = NULL;
  char why[128];
  int rc = kuala_json_parse(&obj, resp->body, resp->body_len, why, sizeof why);
  if (rc == 0 && !json_object_is_type(obj, json_type_object)) {
    snprintf(why, sizeof why, "response body is not a JSON object");
    rc = KUALA_EBADMSG;
  }
  if (rc < 0) {
    json_object_put(obj);
    if (req) {
      kuala_free(req->message);
      req->message = kuala_strdup(why);
      resp->message = req->message;
    }
    return KUALA_EBADMSG;
  }
  if (req) {
    req->json = obj;
  }
  *out = obj;
  return 0;
}

char *kuala_client_resp_take_body(kuala_client_resp_t *resp, size_t *len)
{
  kuala_client_req_t *req = resp->internal_;
  char *body = NULL;
  size_t n = 0;
  if (req && resp->body == req->resp_body.data) {
    body = kuala_buf_take(&req->resp_body, &n);
  } else if (resp->body) {
    body = kuala_memdup(resp->body, resp->body_len);
    n = resp->body_len;
  }
  resp->body = NULL;
  resp->body_len = 0;
  if (len) {
    *len = n;
  }
  return body;
}

static int map_curl_error(CURLcode rc)
{
  switch (rc) {
    case CURLE_OK:
      return 0;
    case CURLE_OPERATION_TIMEDOUT:
      return KUALA_ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
      return KUALA_ECONNREFUSED;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return KUALA_ECONNRESET;
    case CURLE_BAD_CONTENT_ENCODING:
      return KUALA_EBADMSG;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return KUALA_EIO;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_USE_SSL_FAILED:
      return KUALA_EPROTO;
    case CURLE_FILESIZE_EXCEEDED:
      return KUALA_E2BIG;
    default:
      return KUALA_EIO;
  }
}

/* Connection-level failures that a retry may cure. */
static int transient(int err)
{
  return err == KUALA_ECONNREFUSED || err == KUALA_ECONNRESET || err == KUALA_EIO;
}

static void deliver(kuala_client_req_t *req)
{
  kuala_client_t *c = req->c;
  int err = req->final_err;
  if (err != 0 && err != KUALA_ECANCELED && req->status >= 300 && !req->reason && !req->message) {
    decode_status(req);
  }
  if (err != 0 && !req->message && req->errbuf[0]) {
    req->message = kuala_strdup(req->errbuf);
  }
  kuala_client_resp_t resp;
  memset(&resp, 0, sizeof(resp));
  resp.status = req->status;
  resp.content_type = req->resp_ctype;
  resp.retry_after = req->retry_after;
  resp.body = req->resp_body.len ? req->resp_body.data : NULL; /* (a reused buffer is never NULL) */
  resp.body_len = req->resp_body.len;
  resp.reason = req->reason;
  resp.message = req->message ? req->message : (err ? kuala_strerror(err) : NULL);
  resp.causes = req->causes;
  resp.ncauses = req->ncauses;
  resp.attempts = req->attempts;
  resp.http_version = req->http_version;
  resp.internal_ = req;
  (void)c;
  if (req->kind == REQ_KIND_WATCH) {
    if (req->on_done) {
      req->on_done(req->data, err, &resp);
    }
  } else if (req->kind == REQ_KIND_SYNTH) {
    req->synth_done(req, err);
  } else if (req->cb) {
    req->cb(req->data, err, &resp);
  }
}

/* Deliver the completion and release everything but the timer. */
static void finish(kuala_client_req_t *req)
{
  req->state = REQ_DONE;
  deliver(req);
  if (req->easy) {
    curl_easy_cleanup(req->easy);
    req->easy = NULL;
  }
  curl_slist_free_all(req->headers);
  req->headers = NULL;
  clear_status(req);
  json_object_put(req->json);
  req->json = NULL;
  kuala_free(req->url);
  kuala_free(req->body);
  kuala_free(req->content_type);
  kuala_free(req->accept);
  kuala_free(req->impersonate);
  kuala_free(req->resp_ctype);
  req->url = req->body = req->content_type = req->accept = req->resp_ctype = NULL;
  req->impersonate = NULL;
  if (req->kind != REQ_KIND_WATCH && req->resp_body.data && req->resp_body.cap <= SPARE_BODY_MAX &&
      req->resp_body.cap > req->c->spare_body.cap) {
    kuala_buf_free(&req->c->spare_body);
    req->c->spare_body = req->resp_body;
    kuala_buf_reset(&req->c->spare_body);
    kuala_buf_init(&req->resp_body, 0);
  }
  kuala_buf_free(&req->resp_body);
  kuala_buf_free(&req->ready);
  kuala__jscan_free(&req->scan);
  kuala_lines_free(&req->lines);
  uv_close((uv_handle_t *)&req->timer, on_req_closed);
}

static void on_deferred(uv_timer_t *t)
{
  finish(t->data);
}

void kuala__client_req_defer(kuala_client_req_t *req, int err)
{
  req->state = REQ_DONE;
  req->final_err = err;
  uv_timer_stop(&req->timer);
  uv_timer_start(&req->timer, on_deferred, 0, 0);
}

static size_t on_header(char *p, size_t size, size_t n, void *userp)
{
  kuala_client_req_t *req = userp;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    /* A new response (also after 100 Continue): reset what we know. */
    const char *sp = memchr(p, ' ', len);
    req->status = 0;
    req->retry_after = -1;
    kuala_free(req->resp_ctype);
    req->resp_ctype = NULL;
    if (sp) {
      int st = 0;
      for (const char *q = sp + 1; q < p + len && *q >= '0' && *q <= '9'; q++) {
        st = st * 10 + (*q - '0');
      }
      req->status = st;
    }
    req->http_version = (len > 6 && p[5] == '2') ? 2 : 1;
    return len;
  }
  const char *colon = memchr(p, ':', len);
  if (!colon) {
    return len;
  }
  size_t klen = (size_t)(colon - p);
  const char *v = colon + 1;
  size_t vlen = len - klen - 1;
  while (vlen > 0 && (*v == ' ' || *v == '\t')) {
    v++;
    vlen--;
  }
  while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ')) {
    vlen--;
  }
  if (klen == 12 && strncasecmp(p, "content-type", 12) == 0) {
    kuala_free(req->resp_ctype);
    req->resp_ctype = kuala_strndup(v, vlen);
  } else if (klen == 11 && strncasecmp(p, "retry-after", 11) == 0) {
    long secs = 0;
    size_t i = 0;
    for (; i < vlen && v[i] >= '0' && v[i] <= '9' && secs < 1000000; i++) {
      secs = secs * 10 + (v[i] - '0');
    }
    /* An HTTP-date form is not worth a date parser here: wait 1 s. */
    req->retry_after = (i == vlen && i > 0) ? secs : 1;
  }
  return len;
}

static int queue_line(void *data, const char *line, size_t len)
{
  kuala_client_req_t *req = data;
  if (!req->ready_queued) {
    req->ready_queued = 1;
    req->ready_next = req->c->ready_head;
    req->c->ready_head = req;
  }
  /* A dropped over-long line (line NULL) is queued as an empty line, which
   * no real line can be: the splitter never passes empty lines on. */
  if (line) {
    kuala_buf_append(&req->ready, line, len);
  }
  kuala_buf_putc(&req->ready, '\n');
  return 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *userp)
{
  kuala_client_req_t *req = userp;
  size_t len = size * n;
  if (req->canceled) {
    return 0;
  }
  if (req->kind == REQ_KIND_WATCH && req->status == 200) {
    req->streaming = 1;
    int rc = kuala_lines_feed(&req->lines, p, len, queue_line, req);
    if (rc != 0) {
      req->local_err = rc;
      return 0;
    }
    return len;
  }
  if (kuala_buf_append(&req->resp_body, p, len) != 0) {
    req->local_err = KUALA_E2BIG;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  return len;
}

/* 1 when the header line p[0..n) carries credentials. */
static int secret_header(const char *p, size_t n)
{
  static const char *const names[] = {
      "authorization:", "proxy-authorization:", "cookie:", "set-cookie:", NULL};
  for (const char *const *h = names; *h; h++) {
    size_t l = strlen(*h);
    if (n >= l && strncasecmp(p, *h, l) == 0) {
      return 1;
    }
  }
  return 0;
}

void kuala__client_debug_redact(kuala_buf_t *out, char prefix, const char *p, size_t n)
{
  /* Header blocks come whole: one line at a time, the values of
   * credential headers replaced (the scheme word is kept, so "Bearer" vs
   * "Basic" still shows). */
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) + 1 : n;
    kuala_buf_putc(out, prefix);
    kuala_buf_putc(out, ' ');
    if (secret_header(p, len)) {
      const char *colon = memchr(p, ':', len);
      size_t keep = (size_t)(colon - p) + 1;
      size_t v = keep;
      while (v < len && p[v] == ' ') {
        v++;
      }
      size_t w = v;
      while (w < len && p[w] != ' ' && p[w] != '\r' && p[w] != '\n') {
        w++;
      }
      /* "Authorization: Bearer <redacted>"; a bare value is all secret. */
      size_t scheme_end = w < len && p[w] == ' ' ? w : keep;
      kuala_buf_append(out, p, scheme_end);
      kuala_buf_puts(out, " <redacted>\n");
    } else {
      kuala_buf_append(out, p, len);
      if (!nl) {
        kuala_buf_putc(out, '\n');
      }
    }
    p += len;
    n -= len;
  }
}

static int debug_trace(CURL *e, curl_infotype type, char *p, size_t n, void *data)
{
  (void)e, (void)data;
  char prefix;
  switch (type) {
    case CURLINFO_TEXT:
      prefix = '*';
      break;
    case CURLINFO_HEADER_IN:
      prefix = '<';
      break;
    case CURLINFO_HEADER_OUT:
      prefix = '>';
      break;
    default:
      return 0; /* bodies and TLS records stay out of the trace */
  }
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala__client_debug_redact(&b, prefix, p, n);
  if (b.len) {
    fwrite(b.data, 1, b.len, stderr);
  }
  kuala_buf_free(&b);
  return 0;
}

static void setup_easy(kuala_client_req_t *req)
{
  kuala_client_t *c = req->c;
  kuala_client_config_t *cfg = &c->cfg;
  CURL *e = req->easy;
  if (!e) {
    e = req->easy = curl_easy_init();
  } else {
    curl_easy_reset(e);
  }
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  if (c->connect_to) {
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to);
  }
  curl_easy_setopt(e, CURLOPT_PRIVATE, req);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_USERAGENT, cfg->user_agent);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  /* PIPEWAIT holds a new transfer until curl knows whether the existing
   * connection multiplexes. Over TLS that is known at the handshake (ALPN);
   * over plain http only once the first response arrives, so a slow first
   * request would hold every other one: wait only where HTTP/2 can happen. */
  int h2_possible = cfg->http2 == 2 || (cfg->http2 >= 0 && strncmp(req->url, "https:", 6) == 0);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, h2_possible ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (c->curl_verbose) {
    /* KUALA_CLIENT_DEBUG=1: wire trace, credentials redacted. */
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, debug_trace);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, NULL);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  }
  if (req->kind != REQ_KIND_WATCH) {
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
  } else if (req->watch_idle_s > 0) {
    /* A watch has no overall deadline; with opts->timeout_ms it fails once
     * no byte arrived for that long (a half-open connection, a hung
     * server). Servers that send bookmarks keep a healthy watch busy. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, req->watch_idle_s);
  }
  long httpver = CURL_HTTP_VERSION_2TLS;
  if (cfg->http2 < 0) {
    httpver = CURL_HTTP_VERSION_1_1;
  } else if (cfg->http2 == 2) {
    httpver = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
  }
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, httpver);
  /* TLS */
  if (cfg->ca_file) {
    curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
  }
  if (cfg->ca_data) {
    struct curl_blob blob = {cfg->ca_data, cfg->ca_data_len, CURL_BLOB_NOCOPY};
    curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (cfg->cert_file) {
    curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->cert_file);
  }
  if (cfg->cert_data) {
    struct curl_blob blob = {cfg->cert_data, cfg->cert_data_len, CURL_BLOB_NOCOPY};
    curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &blob);
  }
  if (cfg->key_file) {
    curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->key_file);
  }
  if (cfg->key_data) {
    struct curl_blob blob = {cfg->key_data, cfg->key_data_len, CURL_BLOB_NOCOPY};
    curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &blob);
  }
  if (cfg->insecure_skip_verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  /* Method and body */
  if (strcmp(req->method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    if (strcmp(req->method, "POST") != 0) {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (req->body) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "DELETE") != 0) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
  }
  /* Headers */
  curl_slist_free_all(req->headers);
  struct curl_slist *h = NULL;
  if (req->accept) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_printf(&b, "Accept: %s", req->accept);
    h = curl_slist_append(h, b.data);
    kuala_buf_free(&b);
  } else {
    h = curl_slist_append(h, "Accept: application/json");
  }
  h = curl_slist_append(h, "Expect:");
  if (req->impersonate) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_printf(&b, "Impersonate-User: %s", req->impersonate);
    h = curl_slist_append(h, b.data);
    kuala_buf_free(&b);
  }
  if (c->host_header) {
    h = curl_slist_append(h, c->host_header);
  }
  if (req->content_type) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_printf(&b, "Content-Type: %s", req->content_type);
    h = curl_slist_append(h, b.data);
    kuala_buf_free(&b);
  }
  const char *token = c->exec_token ? c->exec_token : c->token;
  if (token && *token) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_printf(&b, "Authorization: Bearer %s", token);
    h = curl_slist_append(h, b.data);
    kuala_buf_free(&b);
  } else if (cfg->username && cfg->password) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, cfg->username);
    curl_easy_setopt(e, CURLOPT_PASSWORD, cfg->password);
  }
  req->headers = h;
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
}

static void begin_attempt(kuala_client_req_t *req)
{
  kuala_client_t *c = req->c;
  int fresh = req->exec_fresh;
  req->exec_fresh = 0;
  if (c->cfg.exec_command && !(fresh && c->exec_token) && !exec_token_valid(c)) {
    req->state = REQ_WAIT_AUTH;
    req->auth_next = c->auth_waiters;
    c->auth_waiters = req;
    if (!c->exec_running) {
      int rc = kuala__client_exec_spawn(c);
      if (rc != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot start exec plugin %s: %s", c->cfg.exec_command,
                 kuala_strerror(rc));
        kuala__client_exec_done(c, rc, NULL, 0, msg);
      }
    }
    return;
  }
  refresh_token(c, 0);
  clear_attempt(req);
  kuala_buf_reset(&req->ready);
  kuala_lines_free(&req->lines);
  kuala_lines_init(&req->lines, c->cfg.max_line);
  req->lines.skip_long = 1;
  setup_easy(req);
  req->attempts++;
  if (kuala_log_enabled(KUALA_LOG_TRACE)) {
    char at[16];
    snprintf(at, sizeof(at), "%d", req->attempts);
    kuala_log(KUALA_LOG_TRACE, NULL, 0, "API request sent", "method", req->method, "url", req->url,
              "attempt", at, NULL);
  }
  if (curl_multi_add_handle(c->multi, req->easy) != CURLM_OK) {
    kuala__client_req_defer(req, KUALA_EIO);
    return;
  }
  req->state = REQ_RUNNING;
}

static void on_token(kuala_tokenbucket_req_t *tbreq, int status)
{
  kuala_client_req_t *req = tbreq->data;
  if (status != 0 || req->canceled) {
    kuala__client_req_defer(req, KUALA_ECANCELED);
    return;
  }
  begin_attempt(req);
}

static void acquire(kuala_client_req_t *req)
{
  kuala_client_t *c = req->c;
  if (req->canceled) {
    kuala__client_req_defer(req, KUALA_ECANCELED);
    return;
  }
  if (!c->tb || kuala_tokenbucket_try_accept(c->tb)) {
    begin_attempt(req);
    return;
  }
  req->state = REQ_WAIT_TOKEN;
  if (kuala_log_enabled(KUALA_LOG_TRACE)) {
    kuala_log(KUALA_LOG_TRACE, NULL, 0, "API request waits for a client-side token", "method",
              req->method, "url", req->url, NULL);
  }
  req->tbreq.data = req;
  if (kuala_tokenbucket_wait(c->tb, &req->tbreq, on_token) != 0) {
    kuala__client_req_defer(req, KUALA_ESHUTDOWN);
  }
}

static void on_retry_timer(uv_timer_t *t)
{
  acquire(t->data);
}

static uint64_t backoff_ms(kuala_client_req_t *req)
{
  kuala_client_t *c = req->c;
  uint64_t d = c->cfg.backoff_base_ms;
  for (int i = 1; i < req->attempts && d < c->cfg.backoff_max_ms; i++) {
    d *= 2;
  }
  if (d > c->cfg.backoff_max_ms) {
    d = c->cfg.backoff_max_ms;
  }
  /* Jitter: uniformly in [d/2, d] so that many clients do not retry in
   * lockstep (xorshift64, seeded from the clock). */
  c->rng ^= c->rng << 13;
  c->rng ^= c->rng >> 7;
  c->rng ^= c->rng << 17;
  return d / 2 + (d / 2 ? c->rng % (d / 2 + 1) : 0);
}

static void schedule_retry(kuala_client_req_t *req, uint64_t delay)
{
  req->state = REQ_WAIT_RETRY;
  uv_timer_start(&req->timer, on_retry_timer, delay, 0);
}

/* One attempt ended (curl said DONE). Decide: finish or retry. */
static void attempt_done(kuala_client_req_t *req, CURLcode rc)
{
  kuala_client_t *c = req->c;
  curl_multi_remove_handle(c->multi, req->easy);
  req->state = REQ_DONE;
  long ver = 0;
  if (curl_easy_getinfo(req->easy, CURLINFO_HTTP_VERSION, &ver) == CURLE_OK && ver) {
    req->http_version = ver == CURL_HTTP_VERSION_2_0 ? 2 : 1;
  }
  count(c, req->method, rc == CURLE_OK || req->status > 0 ? req->status : 0);
  if (kuala_log_enabled(KUALA_LOG_DEBUG)) {
    curl_off_t us = 0;
    curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &us);
    char st[16], ms[32], at[16];
    snprintf(st, sizeof(st), "%d", req->status);
    snprintf(ms, sizeof(ms), "%.3f", (double)us / 1000.0);
    snprintf(at, sizeof(at), "%d", req->attempts);
    kuala_log(KUALA_LOG_DEBUG, NULL, 0, "API call", "method", req->method, "url", req->url,
              "status", rc == CURLE_OK ? st : curl_easy_strerror(rc), "attempt", at, "duration_ms",
              ms, NULL);
  }
  if (req->canceled) {
    kuala__client_req_defer(req, KUALA_ECANCELED);
    return;
  }
  int err = 0;
  if (req->local_err) {
    err = req->local_err;
  } else if (rc != CURLE_OK) {
    err = map_curl_error(rc);
    if (!req->errbuf[0]) {
      snprintf(req->errbuf, sizeof(req->errbuf), "%s", curl_easy_strerror(rc));
    }
  } else if (req->status < 200 || req->status >= 300) {
    decode_status(req);
    err = kuala_client_status_code(req->status, req->reason);
  }
  if (req->kind == REQ_KIND_WATCH && req->streaming) {
    /* Events already flowed: never retry, the caller resumes from its RV.
     * A clean end with an unterminated last line is a torn event. */
    if (err == 0 && kuala_lines_pending(&req->lines) > 0) {
      err = KUALA_EBADMSG;
      kuala_free(req->message);
      req->message = kuala_strdup("watch stream ended inside an event");
    }
    kuala__client_req_defer(req, err);
    return;
  }
  int retries_left = req->attempts <= req->max_retries;
  if (err == KUALA_ETOOMANY && retries_left) {
    /* The server refused the request, so even a POST is safe to resend. */
    long s = req->retry_after >= 0 ? req->retry_after : 1;
    if (s > MAX_RETRY_AFTER_S) {
      s = MAX_RETRY_AFTER_S;
    }
    schedule_retry(req, (uint64_t)s * 1000);
    return;
  }
  if (err == KUALA_EUNAUTHORIZED && !req->auth_retried) {
    /* A rotated token file or an expired exec credential: refresh once. */
    int changed = refresh_token(c, 1);
    if (c->cfg.exec_command) {
      kuala_free(c->exec_token);
      c->exec_token = NULL;
      changed = 1;
    }
    if (changed) {
      req->auth_retried = 1;
      acquire(req);
      return;
    }
  }
  if (req->idempotent && retries_left &&
      (transient(err) || (req->status >= 500 && req->status != 501))) {
    uint64_t delay = backoff_ms(req);
    if (req->status >= 500 && req->retry_after >= 0) {
      long s = req->retry_after > MAX_RETRY_AFTER_S ? MAX_RETRY_AFTER_S : req->retry_after;
      delay = (uint64_t)s * 1000;
    }
    schedule_retry(req, delay);
    return;
  }
  kuala__client_req_defer(req, err);
}

static void check_multi_info(kuala_client_t *c)
{
  CURLMsg *msg;
  int left;
  while (c->multi && (msg = curl_multi_info_read(c->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) {
      continue;
    }
    kuala_client_req_t *req = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
    attempt_done(req, msg->data.result);
  }
}

static kuala_watch_type_t watch_type(const char *s)
{
  if (strcmp(s, "ADDED") == 0) {
    return KUALA_WATCH_ADDED;
  }
  if (strcmp(s, "MODIFIED") == 0) {
    return KUALA_WATCH_MODIFIED;
  }
  if (strcmp(s, "DELETED") == 0) {
    return KUALA_WATCH_DELETED;
  }
  if (strcmp(s, "BOOKMARK") == 0) {
    return KUALA_WATCH_BOOKMARK;
  }
  if (strcmp(s, "ERROR") == 0) {
    return KUALA_WATCH_ERROR;
  }
  return 0;
}

/* Report a line that is not a decodable event and go on with the watch:
 * failing it would make the reflector re-watch from the same RV and meet
 * the same line again, for ever. */
static int deliver_invalid(kuala_client_req_t *req, const char *line, size_t len, int err,
                           const char *reason)
{
  kuala_watch_event_t ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = KUALA_WATCH_INVALID;
  ev.line = line;
  ev.len = len;
  ev.err = err;
  ev.reason = reason;
  req->on_event(req->data, &ev);
  return req->canceled ? -1 : 0;
}

/* scan_events: one validating scan of the line, no tree, for the events
 * that carry an object. 1 = not such an event (decode it the usual way). */
static int deliver_scanned(kuala_client_req_t *req, const char *line, size_t len)
{
  char why[160];
  kuala__jscan_t *sc = &req->scan;
  if (kuala__jscan(sc, KUALA_JSCAN_EVENT, line, len, KUALA_JSON_WIRE_DEPTH, why, sizeof why) < 0) {
    if (strncmp(why, "duplicate key", 13) == 0) {
      return deliver_invalid(req, line, len, KUALA_EBADMSG, "duplicate key in watch event");
    }
    char msg[200];
    snprintf(msg, sizeof msg, "not JSON: %s", why);
    return deliver_invalid(req, line, len, KUALA_EBADMSG, msg);
  }
  if (!sc->top_is_object || !sc->type.set || sc->obj.len == 0 ||
      (sc->obj.flags & KUALA_JOBJ_NOTOBJ)) {
    return deliver_invalid(req, line, len, KUALA_EBADMSG,
                           "not a watch event ({\"type\":...,\"object\":{...}})");
  }
  kuala_watch_event_t ev;
  memset(&ev, 0, sizeof(ev));
  const char *t = line + sc->type.off;
  size_t tl = sc->type.len;
  if (sc->type.esc) {
    return 1;
  } else if (tl == 5 && memcmp(t, "ADDED", 5) == 0) {
    ev.type = KUALA_WATCH_ADDED;
  } else if (tl == 8 && memcmp(t, "MODIFIED", 8) == 0) {
    ev.type = KUALA_WATCH_MODIFIED;
  } else if (tl == 7 && memcmp(t, "DELETED", 7) == 0) {
    ev.type = KUALA_WATCH_DELETED;
  } else {
    return 1;
  }
  ev.line = line;
  ev.len = len;
  ev.obj_scan = &sc->obj;
  req->on_event(req->data, &ev);
  return req->canceled ? -1 : 0;
}

static int deliver_line(kuala_client_req_t *req, const char *line, size_t len)
{
  if (req->scan_events) {
    int rc = deliver_scanned(req, line, len);
    if (rc <= 0) {
      return rc;
    }
  }
  /* Strict RFC 8259; a duplicate key at the top ("object" twice) is
   * refused too: the store reads the object's text from the first one
   * while json-c keeps the last, which would file one object under
   * another's name. */
  json_object *obj = NULL;
  char why[160];
  int ok = kuala_json_parse(&obj, line, len, why, sizeof why) == 0;
  if (ok && json_object_is_type(obj, json_type_object) &&
      kuala_json_member_count(line, len) != (size_t)json_object_object_length(obj)) {
    json_object_put(obj);
    return deliver_invalid(req, line, len, KUALA_EBADMSG, "duplicate key in watch event");
  }
  if (!ok) {
    char msg[200];
    snprintf(msg, sizeof msg, "not JSON: %s", why);
    return deliver_invalid(req, line, len, KUALA_EBADMSG, msg);
  }
  json_object *type = NULL, *object = NULL;
  if (!json_object_is_type(obj, json_type_object) ||
      !json_object_object_get_ex(obj, "type", &type) ||
      !json_object_is_type(type, json_type_string) ||
      !json_object_object_get_ex(obj, "object", &object) ||
      !json_object_is_type(object, json_type_object)) {
    json_object_put(obj);
    return deliver_invalid(req, line, len, KUALA_EBADMSG,
                           "not a watch event ({\"type\":...,\"object\":{...}})");
  }
  kuala_watch_event_t ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = watch_type(json_object_get_string(type));
  ev.object = object;
  ev.line = line;
  ev.len = len;
  if (ev.type == 0) {
    KUALA_LOG(KUALA_LOG_WARN, "ignoring unknown watch event type", "type",
              json_object_get_string(type));
    json_object_put(obj);
    return 0;
  }
  if (ev.type == KUALA_WATCH_ERROR) {
    json_object *code = NULL, *reason = NULL;
    int st = 500;
    if (json_object_object_get_ex(object, "code", &code)) {
      st = json_object_get_int(code);
    }
    json_object_object_get_ex(object, "reason", &reason);
    ev.err = kuala_client_status_code(st, reason ? json_object_get_string(reason) : NULL);
    if (ev.err == 0) {
      ev.err = KUALA_EAPI;
    }
  }
  req->on_event(req->data, &ev);
  json_object_put(obj);
  return req->canceled ? -1 : 0;
}

static void drain_watches(kuala_client_t *c)
{
  /* Only watches that received lines since the last drain are visited
   * (c->ready_head), so the cost does not grow with the number of plain
   * requests in flight. The list is detached first: on_event may start or
   * stop anything; a request stays allocated until its deferred finish. */
  kuala_client_req_t *req = c->ready_head;
  c->ready_head = NULL;
  while (req) {
    kuala_client_req_t *next = req->ready_next;
    req->ready_next = NULL;
    req->ready_queued = 0;
    if (req->ready.len > 0 && !req->canceled) {
      size_t n = req->ready.len;
      char *lines = kuala_buf_take(&req->ready, NULL);
      char *p = lines;
      while (p < lines + n) {
        char *nl = memchr(p, '\n', (size_t)(lines + n - p));
        *nl = '\0';
        int rc = nl == p ? deliver_invalid(req, NULL, 0, KUALA_E2BIG, "line longer than the cap")
                         : deliver_line(req, p, (size_t)(nl - p));
        if (rc != 0) {
          break;
        }
        p = nl + 1;
      }
      kuala_free(lines);
    }
    req = next;
  }
}

int kuala__client_req_start(kuala_client_req_t *req)
{
  kuala_client_t *c = req->c;
  if (c->closing) {
    req_discard(req);
    return KUALA_ESHUTDOWN;
  }
  req->next = c->reqs;
  if (c->reqs) {
    c->reqs->prev = req;
  }
  c->reqs = req;
  c->nreqs++;
  uv_timer_init(c->loop, &req->timer);
  req->timer.data = req;
  if (req->kind == REQ_KIND_SYNTH) {
    kuala__client_req_defer(req, req->final_err);
    return 0;
  }
  acquire(req);
  return 0;
}

void kuala_client_req_cancel(kuala_client_req_t *req)
{
  if (!req || req->canceled || req->state == REQ_DONE) {
    return;
  }
  kuala_client_t *c = req->c;
  req->canceled = 1;
  switch (req->state) {
    case REQ_WAIT_TOKEN:
      /* The bucket calls on_token with KUALA_ECANCELED from the loop. */
      kuala_tokenbucket_cancel(&req->tbreq);
      break;
    case REQ_WAIT_AUTH: {
      kuala_client_req_t **pp = &c->auth_waiters;
      while (*pp && *pp != req) {
        pp = &(*pp)->auth_next;
      }
      if (*pp) {
        *pp = req->auth_next;
      }
      req->auth_next = NULL;
      kuala__client_req_defer(req, KUALA_ECANCELED);
      break;
    }
    case REQ_RUNNING:
      curl_multi_remove_handle(c->multi, req->easy);
      kuala__client_req_defer(req, KUALA_ECANCELED);
      break;
    case REQ_WAIT_RETRY:
    default:
      kuala__client_req_defer(req, KUALA_ECANCELED);
      break;
  }
}

/* A request path: starts with '/', printable ASCII without spaces (query
 * values must already be percent-encoded). */
static int valid_path(const char *p)
{
  if (!p || p[0] != '/') {
    return 0;
  }
  for (; *p; p++) {
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
      return 0;
    }
  }
  return 1;
}

static int is_method(const char *m)
{
  return strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
         strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0;
}

static int start_http(kuala_client_req_t **out, kuala_client_t *c, req_kind_t kind, size_t size,
                      const char *method, char *path, const char *content_type, const char *body,
                      size_t len, const kuala_client_opts_t *opts, kuala_client_req_cb cb,
                      void *data, kuala_client_req_t **reqp)
{
  /* `path` is owned (allocated by the caller) and consumed here. */
  if (out) {
    *out = NULL;
  }
  if (!c || !valid_path(path) || !is_method(method)) {
    kuala_free(path);
    return KUALA_EINVAL;
  }
  if (c->closing) {
    kuala_free(path);
    return KUALA_ESHUTDOWN;
  }
  kuala_client_req_t *req = kuala__client_req_alloc(c, size, kind);
  snprintf(req->method, sizeof(req->method), "%s", method);
  kuala_buf_t url = KUALA_BUF_INIT(0);
  kuala_buf_printf(&url, "%s%s", c->base_url ? c->base_url : c->cfg.server, path);
  kuala_free(path);
  req->url = kuala_buf_take(&url, NULL);
  if (body) {
    req->body = kuala_memdup(body, len);
    req->body_len = len;
  }
  req->content_type = content_type ? kuala_strdup(content_type) : NULL;
  req->accept = opts && opts->accept && *opts->accept ? kuala_strdup(opts->accept) : NULL;
  req->impersonate = opts && opts->impersonate_user && *opts->impersonate_user
                         ? kuala_strdup(opts->impersonate_user)
                         : NULL;
  req->idempotent = strcmp(method, "POST") != 0 && strcmp(method, "PATCH") != 0;
  if (opts && opts->timeout_ms) {
    req->timeout_ms = opts->timeout_ms;
    if (kind == REQ_KIND_WATCH) {
      /* Set before the start: the first attempt may begin inside it. */
      req->watch_idle_s = (long)((opts->timeout_ms + 999) / 1000);
    }
  }
  if (opts && opts->max_retries) {
    req->max_retries = opts->max_retries < 0 ? 0 : opts->max_retries;
  }
  req->cb = cb;
  req->data = data;
  if (reqp) {
    *reqp = req;
  }
  int rc = kuala__client_req_start(req);
  if (rc == 0 && out) {
    *out = req;
  }
  return rc;
}

int kuala_client_request(kuala_client_req_t **out, kuala_client_t *c, const char *method,
                         const char *path, const char *content_type, const char *body, size_t len,
                         const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data)
{
  if (!path || !method || !cb) {
    return KUALA_EINVAL;
  }
  return start_http(out, c, REQ_KIND_HTTP, sizeof(kuala_client_req_t), method, kuala_strdup(path),
                    content_type, body, len, opts, cb, data, NULL);
}

static int verb_request(kuala_client_req_t **out, kuala_client_t *c, const char *verb,
                        const char *method, const kuala_client_target_t *t,
                        const char *content_type, const char *body, size_t len,
                        const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data)
{
  if (out) {
    *out = NULL;
  }
  if (!c || !cb) {
    return KUALA_EINVAL;
  }
  char *path = NULL;
  int rc = kuala_client_path(&path, t, verb, opts);
  if (rc != 0) {
    return rc;
  }
  return start_http(out, c, REQ_KIND_HTTP, sizeof(kuala_client_req_t), method, path, content_type,
                    body, len, opts, cb, data, NULL);
}

int kuala_client_get(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                     const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data)
{
  return verb_request(out, c, "get", "GET", t, NULL, NULL, 0, opts, cb, data);
}

int kuala_client_list(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                      const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data)
{
  return verb_request(out, c, "list", "GET", t, NULL, NULL, 0, opts, cb, data);
}

int kuala_client_create(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                        const char *body, size_t len, const kuala_client_opts_t *opts,
                        kuala_client_req_cb cb, void *data)
{
  if (!body) {
    return KUALA_EINVAL;
  }
  return verb_request(out, c, "create", "POST", t, "application/json", body, len, opts, cb, data);
}

int kuala_client_update(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                        const char *body, size_t len, const kuala_client_opts_t *opts,
                        kuala_client_req_cb cb, void *data)
{
  if (!body) {
    return KUALA_EINVAL;
  }
  return verb_request(out, c, "update", "PUT", t, "application/json", body, len, opts, cb, data);
}

int kuala_client_patch(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                       kuala_patch_type_t type, const char *body, size_t len,
                       const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data)
{
  static const char *const ctypes[] = {
      "application/json-patch+json",
      "application/merge-patch+json",
      "application/strategic-merge-patch+json",
      "application/apply-patch+yaml",
  };
  if (!body || (int)type < 0 || type > KUALA_PATCH_APPLY) {
    return KUALA_EINVAL;
  }
  if (type == KUALA_PATCH_APPLY && (!opts || !opts->field_manager || !*opts->field_manager)) {
    return KUALA_EINVAL;
  }
  if (type != KUALA_PATCH_APPLY && opts && opts->force) {
    return KUALA_EINVAL;
  }
  return verb_request(out, c, "patch", "PATCH", t, ctypes[type], body, len, opts, cb, data);
}

int kuala_client_delete(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                        const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_puts(&b, "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\"");
  if (opts && opts->propagation_policy) {
    kuala_buf_puts(&b, ",\"propagationPolicy\":");
    kuala_buf_json_str(&b, opts->propagation_policy, strlen(opts->propagation_policy));
  }
  if (opts && opts->grace_period_seconds >= 0) {
    kuala_buf_printf(&b, ",\"gracePeriodSeconds\":%ld", opts->grace_period_seconds);
  }
  if (opts && (opts->precondition_uid || opts->precondition_rv)) {
    kuala_buf_puts(&b, ",\"preconditions\":{");
    if (opts->precondition_uid) {
      kuala_buf_puts(&b, "\"uid\":");
      kuala_buf_json_str(&b, opts->precondition_uid, strlen(opts->precondition_uid));
    }
    if (opts->precondition_rv) {
      if (opts->precondition_uid) {
        kuala_buf_putc(&b, ',');
      }
      kuala_buf_puts(&b, "\"resourceVersion\":");
      kuala_buf_json_str(&b, opts->precondition_rv, strlen(opts->precondition_rv));
    }
    kuala_buf_putc(&b, '}');
  }
  if (opts && opts->dry_run) {
    kuala_buf_puts(&b, ",\"dryRun\":[\"All\"]");
  }
  kuala_buf_putc(&b, '}');
  int rc = verb_request(out, c, "delete", "DELETE", t, "application/json", b.data, b.len, opts, cb,
                        data);
  kuala_buf_free(&b);
  return rc;
}

/* ------------------------------------------------------------------------
 * Watch.
 * ---------------------------------------------------------------------- */

int kuala_client_watch(kuala_watch_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                       const kuala_client_opts_t *opts, kuala_watch_event_cb on_event,
                       kuala_watch_done_cb on_done, void *data)
{
  if (out) {
    *out = NULL;
  }
  if (!c || !on_event || !on_done) {
    return KUALA_EINVAL;
  }
  char *path = NULL;
  int rc = kuala_client_path(&path, t, "watch", opts);
  if (rc != 0) {
    return rc;
  }
  kuala_client_req_t *req = NULL;
  /* Watches are GETs: a refused start (connection failure, 5xx, 429) is
   * retried like any GET; once events flow, the stream is never retried. */
  kuala_client_req_t *started = NULL;
  rc = start_http(&started, c, REQ_KIND_WATCH, sizeof(kuala_watch_t), "GET", path, NULL, NULL, 0,
                  opts, NULL, data, &req);
  if (rc != 0) {
    return rc;
  }
  req->on_event = on_event;
  req->on_done = on_done;
  req->scan_events = opts && opts->scan_events;
  if (out) {
    *out = (kuala_watch_t *)started;
  }
  return 0;
}

void kuala_watch_stop(kuala_watch_t *w)
{
  if (w) {
    kuala_client_req_cancel(&w->req);
  }
}
