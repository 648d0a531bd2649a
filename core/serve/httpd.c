/*
 * httpd.c: HTTP/1.1 server on libuv + http-parser (see httpd.h).
 *
 * Structure: one kuala__httpd_t owns a listening TCP handle and a list of
 * connections. Each connection owns an http_parser, an optional TLS session
 * (SSL with two memory BIOs: bytes from the socket go into rbio, bytes for
 * the socket come out of wbio), and a FIFO of parsed requests. Only the head
 * of the FIFO is "active" (handed to the handler); the next one is
 * dispatched when the head's response completes, which keeps pipelined
 * responses in order.
 *
 * Invariants:
 *   - conn->closing is set exactly once, right before uv_close(); from then
 *     on nothing is written and no request is dispatched. The close callback
 *     runs the pending requests' close callbacks and frees everything, so a
 *     caller that drops a connection (abort, slow client) never sees its own
 *     close callback re-entrantly.
 *   - conn->pending counts bytes handed to uv_write and not yet completed;
 *     a write that finds more than opts.max_pending already waiting means
 *     the client is too slow (a watch it does not read) and it is dropped.
 *     One large write still goes out whole; large responses are produced
 *     in pieces with kuala__httpd_on_drain (backpressure).
 *   - Timeouts and the connection cap: a sweep timer (unref'd) closes
 *     connections whose request headers or body stall, and idle keep-alive
 *     ones; past opts.max_conns a new connection is refused at once. Reads
 *     go through one buffer per server (data is parsed before the next
 *     read), so an idle connection costs a few hundred bytes, not 64 KiB.
 */
#include "httpd.h"

#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"

#define MAX_QUEUED 32
#define MAX_HEADERS 128

typedef struct conn_s conn_t;

struct kuala__httpd_req_s {
  conn_t *conn;
  kuala__httpd_req_t *next;
  char *method;
  kuala_buf_t url;
  char *path;
  char **qkeys, **qvals;
  size_t nq;
  char **hnames, **hvals;
  size_t nh;
  kuala_buf_t body;
  int too_large;
  int has_nul; /* a %00 in the path or the query */
  int keepalive;
  int streaming;
  kuala_buf_t resp_headers;
  kuala__httpd_req_close_cb close_cb;
  void *close_data;
  kuala__httpd_drain_cb drain_cb;
  void *drain_data;
  size_t drain_low;
};

struct conn_s {
  uv_tcp_t tcp;
  kuala__httpd_t *srv;
  conn_t *prev, *next;
  http_parser parser;
  SSL *ssl;
  BIO *rbio, *wbio;
  kuala__httpd_req_t *cur; /* being parsed */
  kuala__httpd_req_t *head, *tail;
  size_t nqueued;
  int active;
  int dispatching;
  int closing;
  int close_after_write;
  int reading;
  size_t pending;
  size_t nwrites;
  kuala_buf_t hfield, hvalue;
  int hstate;           /* 0 none, 1 in field, 2 in value */
  int headers_done;     /* of the request being parsed (cur) */
  int served;           /* a request was completed on this connection */
  uint64_t since_ms;    /* accept, start of cur, end of its headers or last response */
  kuala_buf_t *mem_out; /* kuala__httpd_feed_mem: no socket, writes go here */
};

struct kuala__httpd_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  kuala__httpd_opts_t opts;
  conn_t *conns;
  int handles;
  int closing;
  int port;
  kuala__httpd_close_cb close_cb;
  void *close_data;
  size_t nconns;
  uv_timer_t sweep;
  char rbuf[65536]; /* shared read buffer (see the invariants) */
};

typedef struct {
  uv_write_t w;
  conn_t *conn;
  size_t len;
  char data[];
} wreq_t;

static http_parser_settings settings;

/* ---- small helpers ---- */

const char *kuala__httpd_reason(int status)
{
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "Request Entity Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

size_t kuala__httpd_unescape(const char *s, char *out, size_t outlen)
{
  size_t j = 0;
  for (; *s && j + 1 < outlen; s++) {
    if (s[0] == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
      out[j++] = (char)(hexval(s[1]) * 16 + hexval(s[2]));
      s += 2;
    } else {
      out[j++] = *s;
    }
  }
  if (outlen) {
    out[j] = '\0';
  }
  return j;
}

/* Decode %XX (and '+' in queries); a decoded NUL sets *nul, since the
 * result is a C string and would silently end there. */
static char *pct_decode(const char *s, size_t n, int plus_is_space, int *nul)
{
  char *out = kuala_malloc(n + 1);
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      out[j] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      if (out[j++] == '\0') {
        *nul = 1;
      }
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out[j++] = ' ';
    } else {
      out[j++] = s[i];
    }
  }
  out[j] = '\0';
  return out;
}

static void req_free(kuala__httpd_req_t *req)
{
  kuala_free(req->method);
  kuala_buf_free(&req->url);
  kuala_free(req->path);
  for (size_t i = 0; i < req->nq; i++) {
    kuala_free(req->qkeys[i]);
    kuala_free(req->qvals[i]);
  }
  kuala_free(req->qkeys);
  kuala_free(req->qvals);
  for (size_t i = 0; i < req->nh; i++) {
    kuala_free(req->hnames[i]);
    kuala_free(req->hvals[i]);
  }
  kuala_free(req->hnames);
  kuala_free(req->hvals);
  kuala_buf_free(&req->body);
  kuala_buf_free(&req->resp_headers);
  kuala_free(req);
}

static void parse_target(kuala__httpd_req_t *req)
{
  const char *url = req->url.data ? req->url.data : "";
  size_t ulen = req->url.len;
  const char *q = memchr(url, '?', ulen);
  size_t plen = q ? (size_t)(q - url) : ulen;
  const char *frag = memchr(url, '#', ulen);
  if (frag && (!q || frag < q)) {
    plen = (size_t)(frag - url);
  }
  req->path = pct_decode(url, plen, 0, &req->has_nul);
  if (!q) {
    return;
  }
  const char *p = q + 1;
  const char *end = url + ulen;
  const char *hash = memchr(p, '#', (size_t)(end - p));
  if (hash) {
    end = hash;
  }
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    if (stop > p) {
      const char *eq = memchr(p, '=', (size_t)(stop - p));
      const char *kend = eq ? eq : stop;
      req->qkeys = kuala_realloc(req->qkeys, (req->nq + 1) * sizeof(char *));
      req->qvals = kuala_realloc(req->qvals, (req->nq + 1) * sizeof(char *));
      req->qkeys[req->nq] = pct_decode(p, (size_t)(kend - p), 1, &req->has_nul);
      req->qvals[req->nq] =
          eq ? pct_decode(eq + 1, (size_t)(stop - eq - 1), 1, &req->has_nul) : kuala_strdup("");
      req->nq++;
    }
    p = stop + 1;
  }
}

/* ---- connection teardown ---- */

static void srv_handle_closed(kuala__httpd_t *srv)
{
  if (--srv->handles == 0 && srv->closing) {
    kuala__httpd_close_cb cb = srv->close_cb;
    void *data = srv->close_data;
    kuala_free(srv);
    if (cb) {
      cb(NULL, data);
    }
  }
}

static void on_conn_closed(uv_handle_t *h)
{
  conn_t *c = h->data;
  kuala__httpd_t *srv = c->srv;
  /* Pending requests learn that their connection is gone. */
  while (c->head) {
    kuala__httpd_req_t *req = c->head;
    c->head = req->next;
    if (req->close_cb) {
      req->close_cb(req->close_data, req);
    }
    req_free(req);
  }
  if (c->cur) {
    req_free(c->cur);
  }
  if (c->prev) {
    c->prev->next = c->next;
  } else {
    srv->conns = c->next;
  }
  if (c->next) {
    c->next->prev = c->prev;
  }
  srv->nconns--;
  if (c->ssl) {
    SSL_free(c->ssl); /* frees both BIOs */
  }
  kuala_buf_free(&c->hfield);
  kuala_buf_free(&c->hvalue);
  kuala_free(c);
  srv_handle_closed(srv);
}

static void conn_close(conn_t *c)
{
  if (c->closing) {
    return;
  }
  c->closing = 1;
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- output ---- */

static void on_write(uv_write_t *w, int status)
{
  wreq_t *wr = (wreq_t *)w;
  conn_t *c = wr->conn;
  c->pending -= wr->len;
  c->nwrites--;
  kuala_free(wr);
  if (status < 0) {
    conn_close(c);
  } else if (c->close_after_write && c->nwrites == 0) {
    conn_close(c);
  }
  kuala__httpd_req_t *r = c->head;
  if (!c->closing && r && c->active && r->drain_cb && c->pending <= r->drain_low) {
    kuala__httpd_drain_cb cb = r->drain_cb;
    r->drain_cb = NULL; /* once per arming */
    cb(r->drain_data, r);
  }
}

static int raw_write(conn_t *c, const char *data, size_t len)
{
  if (c->closing) {
    return KUALA_EPIPE;
  }
  if (len == 0) {
    return 0;
  }
  if (c->mem_out) {
    kuala_buf_append(c->mem_out, data, len);
    return 0;
  }
  if (c->nwrites == 0) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned int)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len) {
      return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
      conn_close(c);
      return KUALA_EPIPE;
    }
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    }
  }
  wreq_t *wr = kuala_malloc(sizeof *wr + len);
  wr->conn = c;
  wr->len = len;
  memcpy(wr->data, data, len);
  uv_buf_t b = uv_buf_init(wr->data, (unsigned int)len);
  int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc < 0) {
    kuala_free(wr);
    conn_close(c);
    return KUALA_EPIPE;
  }
  c->pending += len;
  c->nwrites++;
  if (c->pending - len > c->srv->opts.max_pending) {
    conn_close(c);
    return KUALA_E2BIG;
  }
  return 0;
}

static int flush_tls(conn_t *c)
{
  char tmp[16384];
  int rc = 0;
  while (BIO_ctrl_pending(c->wbio) > 0) {
    int n = BIO_read(c->wbio, tmp, sizeof tmp);
    if (n <= 0) {
      break;
    }
    rc = raw_write(c, tmp, (size_t)n);
    if (rc < 0) {
      return rc;
    }
  }
  return rc;
}

static int conn_send(conn_t *c, const char *data, size_t len)
{
  if (c->closing) {
    return KUALA_EPIPE;
  }
  if (!c->ssl) {
    return raw_write(c, data, len);
  }
  while (len > 0) {
    int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
    int n = SSL_write(c->ssl, data, chunk);
    if (n <= 0) {
      conn_close(c);
      return KUALA_EPIPE;
    }
    data += n;
    len -= (size_t)n;
    int rc = flush_tls(c);
    if (rc < 0) {
      return rc;
    }
  }
  return 0;
}

/* ---- dispatch ---- */

static void dispatch(conn_t *c)
{
  if (c->dispatching) {
    return;
  }
  c->dispatching = 1;
  while (!c->closing && !c->active && c->head) {
    c->active = 1;
    c->srv->opts.handler(c->srv->opts.data, c->head);
  }
  c->dispatching = 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void finish_request(kuala__httpd_req_t *req)
{
  conn_t *c = req->conn;
  int keepalive = req->keepalive;
  c->head = req->next;
  if (!c->head) {
    c->tail = NULL;
  }
  c->nqueued--;
  c->active = 0;
  c->served = 1;
  c->since_ms = uv_now(c->srv->loop);
  req_free(req);
  if (!keepalive) {
    c->close_after_write = 1;
    if (c->nwrites == 0) {
      conn_close(c);
    }
    return;
  }
  if (!c->closing && !c->reading && c->nqueued < MAX_QUEUED && !c->mem_out) {
    c->reading = 1;
    /* (libuv refuses a NULL alloc callback: the connection would hang.) */
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  }
  dispatch(c);
}

/* ---- parser callbacks ---- */

static int on_message_begin(http_parser *p)
{
  conn_t *c = p->data;
  c->cur = kuala_calloc(1, sizeof *c->cur);
  c->cur->conn = c;
  kuala_buf_init(&c->cur->url, 16384);
  kuala_buf_init(&c->cur->body, c->srv->opts.max_body);
  kuala_buf_init(&c->cur->resp_headers, 0);
  c->hstate = 0;
  c->headers_done = 0;
  c->since_ms = uv_now(c->srv->loop);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
  conn_t *c = p->data;
  return kuala_buf_append(&c->cur->url, at, len) < 0 ? -1 : 0;
}

static int push_header(conn_t *c)
{
  kuala__httpd_req_t *req = c->cur;
  if (c->hstate == 0) {
    return 0;
  }
  if (req->nh >= MAX_HEADERS) {
    return -1;
  }
  req->hnames = kuala_realloc(req->hnames, (req->nh + 1) * sizeof(char *));
  req->hvals = kuala_realloc(req->hvals, (req->nh + 1) * sizeof(char *));
  req->hnames[req->nh] = kuala_strndup(c->hfield.data ? c->hfield.data : "", c->hfield.len);
  req->hvals[req->nh] = kuala_strndup(c->hvalue.data ? c->hvalue.data : "", c->hvalue.len);
  req->nh++;
  kuala_buf_reset(&c->hfield);
  kuala_buf_reset(&c->hvalue);
  c->hstate = 0;
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
  conn_t *c = p->data;
  if (c->hstate == 2 && push_header(c) < 0) {
    return -1;
  }
  c->hstate = 1;
  return kuala_buf_append(&c->hfield, at, len) < 0 ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
  conn_t *c = p->data;
  c->hstate = 2;
  return kuala_buf_append(&c->hvalue, at, len) < 0 ? -1 : 0;
}

static int on_headers_complete(http_parser *p)
{
  conn_t *c = p->data;
  if (push_header(c) < 0) {
    return -1;
  }
  c->headers_done = 1;
  c->since_ms = uv_now(c->srv->loop);
  c->cur->method = kuala_strdup(http_method_str((enum http_method)p->method));
  c->cur->keepalive = http_should_keep_alive(p);
  if (p->content_length != ULLONG_MAX && p->content_length > c->srv->opts.max_body) {
    c->cur->too_large = 1;
  }
  /* Clients such as curl wait for an interim 100 before sending a large
   * body. Answer it when nothing else is in flight (responses stay in
   * order); otherwise they send the body after a short timeout anyway. */
  const char *expect = kuala__httpd_header(c->cur, "Expect");
  if (expect && strcasecmp(expect, "100-continue") == 0 && !c->cur->too_large && !c->head) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_send(c, cont, sizeof cont - 1);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
  conn_t *c = p->data;
  kuala__httpd_req_t *req = c->cur;
  if (req->too_large) {
    return 0; /* discard */
  }
  if (kuala_buf_append(&req->body, at, len) < 0) {
    req->too_large = 1;
    kuala_buf_free(&req->body);
  }
  return 0;
}

static int on_message_complete(http_parser *p)
{
  conn_t *c = p->data;
  kuala__httpd_req_t *req = c->cur;
  c->cur = NULL;
  req->keepalive = http_should_keep_alive(p);
  parse_target(req);
  if (c->tail) {
    c->tail->next = req;
  } else {
    c->head = req;
  }
  c->tail = req;
  c->nqueued++;
  if (c->nqueued >= MAX_QUEUED && c->reading) {
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
  dispatch(c);
  return 0;
}

static void feed(conn_t *c, const char *data, size_t len)
{
  size_t n = http_parser_execute(&c->parser, &settings, data, len);
  if (c->closing) {
    return;
  }
  if (c->parser.http_errno != HPE_OK || (n != len && !c->parser.upgrade)) {
    static const char bad[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        "Content-Length: 12\r\n\r\nBad Request\n";
    /* Only answer when no response is in flight, to keep order. */
    if (!c->active) {
      conn_send(c, bad, sizeof bad - 1);
    }
    c->close_after_write = 1;
    if (c->nwrites == 0) {
      conn_close(c);
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  conn_t *c = h->data;
  (void)suggested;
  buf->base = c->srv->rbuf;
  buf->len = sizeof c->srv->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  conn_t *c = s->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0) {
    return;
  }
  if (!c->ssl) {
    feed(c, buf->base, (size_t)nread);
    return;
  }
  BIO_write(c->rbio, buf->base, (int)nread);
  char tmp[16384];
  while (!c->closing) {
    int n = SSL_read(c->ssl, tmp, sizeof tmp);
    if (n > 0) {
      feed(c, tmp, (size_t)n);
      continue;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      flush_tls(c); /* send the alert, if any */
      conn_close(c);
      return;
    }
    break;
  }
  if (!c->closing) {
    flush_tls(c);
  }
}

/* A connection of srv, linked and counted, its TCP handle initialised
 * (not yet accepted), its header buffers ready. */
static conn_t *conn_new(kuala__httpd_t *srv)
{
  conn_t *c = kuala_calloc(1, sizeof *c);
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  srv->handles++;
  c->next = srv->conns;
  if (srv->conns) {
    srv->conns->prev = c;
  }
  srv->conns = c;
  srv->nconns++;
  c->since_ms = uv_now(srv->loop);
  kuala_buf_init(&c->hfield, 8192);
  kuala_buf_init(&c->hvalue, 65536);
  return c;
}

static void on_connection(uv_stream_t *server, int status)
{
  kuala__httpd_t *srv = server->data;
  if (status < 0 || srv->closing) {
    return;
  }
  conn_t *c = conn_new(srv);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    conn_close(c);
    return;
  }
  if (srv->nconns > srv->opts.max_conns) {
    /* Over the cap: a short 503 on plain HTTP (clients retry after it),
     * a plain close on TLS; then close. */
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n"
        "Connection: close\r\nContent-Length: 21\r\n\r\ntoo many connections\n";
    if (!srv->opts.tls) {
      uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
      uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (srv->opts.tls) {
    c->ssl = SSL_new(srv->opts.tls);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
  }
  c->reading = 1;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int kuala__httpd_feed_mem(kuala__httpd_t *srv, const char *data, size_t len, kuala_buf_t *out)
{
  if (srv->closing || srv->opts.tls || !out) {
    return KUALA_EINVAL;
  }
  conn_t *c = conn_new(srv); /* its socket is never connected: only closed */
  c->mem_out = out;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  feed(c, data, len);
  conn_close(c); /* the client hangs up */
  return 0;
}

/* ---- timeouts ---- */

static void on_sweep(uv_timer_t *t)
{
  kuala__httpd_t *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  for (conn_t *c = srv->conns; c; c = c->next) {
    if (c->closing) {
      continue;
    }
    uint64_t age = now - c->since_ms;
    int stale = 0;
    if (c->cur) {
      /* A request is arriving: headers, then body, each within its time. */
      stale = age > (c->headers_done ? srv->opts.body_timeout_ms : srv->opts.header_timeout_ms);
    } else if (!c->head && c->nwrites == 0) {
      /* Nothing in flight: a new connection must start a request within
       * the header time, a used one may stay idle for the idle time. */
      stale = age > (c->served ? srv->opts.idle_timeout_ms : srv->opts.header_timeout_ms);
    }
    if (stale) {
      conn_close(c);
    }
  }
}

/* ---- public API ---- */

int kuala__httpd_start(kuala__httpd_t **out, uv_loop_t *loop, const kuala__httpd_opts_t *opts)
{
  *out = NULL;
  if (!opts || !opts->handler) {
    return KUALA_EINVAL;
  }
  settings.on_message_begin = on_message_begin;
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;

  kuala__httpd_t *srv = kuala_calloc(1, sizeof *srv);
  srv->loop = loop;
  srv->opts = *opts;
  if (!srv->opts.max_body) {
    srv->opts.max_body = 3u << 20;
  }
  if (!srv->opts.max_pending) {
    srv->opts.max_pending = 64u << 20;
  }
  if (!srv->opts.header_timeout_ms) {
    srv->opts.header_timeout_ms = 32000;
  }
  if (!srv->opts.body_timeout_ms) {
    srv->opts.body_timeout_ms = 60000;
  }
  if (!srv->opts.idle_timeout_ms) {
    srv->opts.idle_timeout_ms = 90000;
  }
  if (!srv->opts.max_conns) {
    srv->opts.max_conns = 4096;
  }
  struct sockaddr_storage addr;
  const char *host = opts->host ? opts->host : "127.0.0.1";
  int rc = uv_ip4_addr(host, opts->port, (struct sockaddr_in *)&addr);
  if (rc < 0) {
    rc = uv_ip6_addr(host, opts->port, (struct sockaddr_in6 *)&addr);
  }
  if (rc < 0) {
    kuala_free(srv);
    return KUALA_EINVAL;
  }
  uv_tcp_init(loop, &srv->listener);
  srv->listener.data = srv;
  srv->handles = 1;
  rc = opts->no_listen ? 0 : uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0);
  if (rc == 0 && !opts->no_listen) {
    rc = uv_listen((uv_stream_t *)&srv->listener, 512, on_connection);
  }
  if (rc < 0) {
    srv->closing = 1;
    uv_close((uv_handle_t *)&srv->listener, NULL);
    /* The handle memory must outlive the close; run the loop once for it. */
    uv_run(loop, UV_RUN_NOWAIT);
    kuala_free(srv);
    return rc;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  memset(&bound, 0, sizeof bound);
  if (!opts->no_listen) {
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &blen);
    srv->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                            : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  }
  unsigned shortest = srv->opts.header_timeout_ms;
  if (srv->opts.body_timeout_ms < shortest) {
    shortest = srv->opts.body_timeout_ms;
  }
  if (srv->opts.idle_timeout_ms < shortest) {
    shortest = srv->opts.idle_timeout_ms;
  }
  uint64_t every = shortest / 4 > 1000 ? 1000 : (shortest / 4 ? shortest / 4 : 1);
  uv_timer_init(loop, &srv->sweep);
  srv->sweep.data = srv;
  srv->handles++;
  uv_timer_start(&srv->sweep, on_sweep, every, every);
  uv_unref((uv_handle_t *)&srv->sweep); /* never keeps the loop alive */
  *out = srv;
  return 0;
}

int kuala__httpd_port(const kuala__httpd_t *srv)
{
  return srv->port;
}

static void on_listener_closed(uv_handle_t *h)
{
  srv_handle_closed(h->data);
}

void kuala__httpd_close(kuala__httpd_t *srv, kuala__httpd_close_cb cb, void *data)
{
  if (srv->closing) {
    return;
  }
  srv->closing = 1;
  srv->close_cb = cb;
  srv->close_data = data;
  for (conn_t *c = srv->conns; c; c = c->next) {
    conn_close(c);
  }
  uv_timer_stop(&srv->sweep);
  uv_close((uv_handle_t *)&srv->sweep, on_listener_closed);
  uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}

const char *kuala__httpd_method(const kuala__httpd_req_t *req)
{
  return req->method;
}

const char *kuala__httpd_url(const kuala__httpd_req_t *req)
{
  return req->url.data ? req->url.data : "";
}

const char *kuala__httpd_path(const kuala__httpd_req_t *req)
{
  return req->path;
}

const char *kuala__httpd_query(const kuala__httpd_req_t *req, const char *name)
{
  for (size_t i = 0; i < req->nq; i++) {
    if (strcmp(req->qkeys[i], name) == 0) {
      return req->qvals[i];
    }
  }
  return NULL;
}

const char *kuala__httpd_header(const kuala__httpd_req_t *req, const char *name)
{
  for (size_t i = 0; i < req->nh; i++) {
    if (strcasecmp(req->hnames[i], name) == 0) {
      return req->hvals[i];
    }
  }
  return NULL;
}

const char *kuala__httpd_header_at(const kuala__httpd_req_t *req, const char *name, size_t n)
{
  for (size_t i = 0; i < req->nh; i++) {
    if (strcasecmp(req->hnames[i], name) == 0 && n-- == 0) {
      return req->hvals[i];
    }
  }
  return NULL;
}

int kuala__httpd_header_nth(const kuala__httpd_req_t *req, size_t i, const char **name,
                            const char **value)
{
  if (i >= req->nh) {
    return 0;
  }
  *name = req->hnames[i];
  *value = req->hvals[i];
  return 1;
}

const char *kuala__httpd_body(const kuala__httpd_req_t *req, size_t *len)
{
  if (len) {
    *len = req->body.len;
  }
  return req->body.data ? req->body.data : "";
}

int kuala__httpd_req_too_large(const kuala__httpd_req_t *req)
{
  return req->too_large;
}

int kuala__httpd_req_has_nul(const kuala__httpd_req_t *req)
{
  return req->has_nul;
}

void kuala__httpd_req_on_close(kuala__httpd_req_t *req, kuala__httpd_req_close_cb cb, void *data)
{
  req->close_cb = cb;
  req->close_data = data;
}

void kuala__httpd_add_header(kuala__httpd_req_t *req, const char *name, const char *value)
{
  kuala_buf_printf(&req->resp_headers, "%s: %s\r\n", name, value);
}

static void head_start(kuala_buf_t *b, kuala__httpd_req_t *req, int status, const char *ctype)
{
  kuala_buf_printf(b, "HTTP/1.1 %d %s\r\n", status, kuala__httpd_reason(status));
  if (ctype) {
    kuala_buf_printf(b, "Content-Type: %s\r\n", ctype);
  }
  if (req->resp_headers.len) {
    kuala_buf_append(b, req->resp_headers.data, req->resp_headers.len);
  }
  if (!req->keepalive) {
    kuala_buf_puts(b, "Connection: close\r\n");
  }
}

void kuala__httpd_respond(kuala__httpd_req_t *req, int status, const char *content_type,
                          const char *body, size_t len)
{
  conn_t *c = req->conn;
  kuala_buf_t b = KUALA_BUF_INIT(0);
  head_start(&b, req, status, content_type);
  kuala_buf_printf(&b, "Content-Length: %zu\r\n\r\n", len);
  if (len) {
    kuala_buf_append(&b, body, len);
  }
  conn_send(c, b.data, b.len);
  kuala_buf_free(&b);
  finish_request(req);
}

void kuala__httpd_stream_start(kuala__httpd_req_t *req, int status, const char *content_type)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  head_start(&b, req, status, content_type);
  kuala_buf_puts(&b, "Transfer-Encoding: chunked\r\n\r\n");
  req->streaming = 1;
  conn_send(req->conn, b.data, b.len);
  kuala_buf_free(&b);
}

int kuala__httpd_stream_write(kuala__httpd_req_t *req, const char *data, size_t len)
{
  conn_t *c = req->conn;
  if (c->closing) {
    return KUALA_EPIPE;
  }
  if (len == 0) {
    return 0; /* a zero-length chunk would end the stream */
  }
  char small[4096];
  char hdr[24];
  int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
  size_t total = (size_t)hl + len + 2;
  char *p = total <= sizeof small ? small : kuala_malloc(total);
  memcpy(p, hdr, (size_t)hl);
  memcpy(p + hl, data, len);
  memcpy(p + hl + len, "\r\n", 2);
  int rc = conn_send(c, p, total);
  if (p != small) {
    kuala_free(p);
  }
  return rc;
}

size_t kuala__httpd_pending(const kuala__httpd_req_t *req)
{
  return req->conn->pending;
}

int kuala__httpd_on_drain(kuala__httpd_req_t *req, size_t low, kuala__httpd_drain_cb cb, void *data)
{
  if (req->conn->pending <= low) {
    return 1; /* already drained: nothing in flight would call cb */
  }
  req->drain_cb = cb;
  req->drain_data = data;
  req->drain_low = low;
  return 0;
}

void kuala__httpd_stream_end(kuala__httpd_req_t *req)
{
  conn_send(req->conn, "0\r\n\r\n", 5);
  finish_request(req);
}

void kuala__httpd_abort(kuala__httpd_req_t *req)
{
  conn_close(req->conn);
}
