/*
 * faultsrv.c: see faultsrv.h. One listener, any number of connections; a
 * connection parses requests (head up to CRLFCRLF, body by Content-Length)
 * and serves each with the next action of the server's queue.
 *
 * Ownership: the server owns its connections (a list); each connection
 * owns its socket, its stream timer and its copy of the action being
 * streamed. Memory is freed in close callbacks; the server struct goes
 * once the listener and every connection are closed.
 */
#include "faultsrv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct action_s {
  faultsrv_action_t a;
  char *headers, *body;
  char **chunks;
  struct action_s *next;
} action_t;

typedef struct conn_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  faultsrv_t *srv;
  struct conn_s *prev, *next;
  char *in;
  size_t in_len, in_cap;
  action_t *streaming; /* copy owned by the connection */
  size_t chunk_idx;
  int stalled, closing, handles;
} conn_t;

struct faultsrv_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port;
  char url[64];
  action_t *head, *tail;
  conn_t *conns;
  int requests, connections, closing, handles;
  char *last_head, *last_body;
};

static char *dupn(const char *s, size_t n)
{
  char *p = malloc(n + 1);
  if (!p) {
    abort();
  }
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

static char *dups(const char *s)
{
  return s ? dupn(s, strlen(s)) : NULL;
}

static action_t *action_copy(const faultsrv_action_t *a)
{
  action_t *c = calloc(1, sizeof(*c));
  if (!c) {
    abort();
  }
  c->a = *a;
  c->headers = dups(a->headers);
  if (a->body) {
    size_t n = a->body_len ? a->body_len : strlen(a->body);
    c->body = dupn(a->body, n);
    c->a.body_len = n;
  }
  if (a->chunks) {
    size_t n = 0;
    while (a->chunks[n]) {
      n++;
    }
    c->chunks = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
      c->chunks[i] = dups(a->chunks[i]);
    }
  }
  return c;
}

static void action_free(action_t *c)
{
  if (!c) {
    return;
  }
  free(c->headers);
  free(c->body);
  for (size_t i = 0; c->chunks && c->chunks[i]; i++) {
    free(c->chunks[i]);
  }
  free(c->chunks);
  free(c);
}

static void maybe_free_server(faultsrv_t *s)
{
  if (s->closing && s->handles == 0 && !s->conns) {
    action_t *a = s->head;
    while (a) {
      action_t *n = a->next;
      action_free(a);
      a = n;
    }
    free(s->last_head);
    free(s->last_body);
    free(s);
  }
}

static void on_conn_handle_closed(uv_handle_t *h)
{
  conn_t *c = h->data;
  if (--c->handles > 0) {
    return;
  }
  faultsrv_t *s = c->srv;
  if (c->prev) {
    c->prev->next = c->next;
  } else {
    s->conns = c->next;
  }
  if (c->next) {
    c->next->prev = c->prev;
  }
  free(c->in);
  action_free(c->streaming);
  free(c);
  maybe_free_server(s);
}

static void conn_close(conn_t *c)
{
  if (c->closing) {
    return;
  }
  c->closing = 1;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

typedef struct {
  uv_write_t req;
  char *data;
  conn_t *conn;
  int close_after;
} wreq_t;

static void on_written(uv_write_t *req, int status)
{
  wreq_t *w = (wreq_t *)req;
  conn_t *c = w->conn;
  int close_after = w->close_after;
  free(w->data);
  free(w);
  if ((status < 0 || close_after) && !c->closing) {
    conn_close(c);
  }
}

static void send_bytes(conn_t *c, const char *p, size_t n, int close_after)
{
  if (c->closing) {
    return;
  }
  wreq_t *w = calloc(1, sizeof(*w));
  w->data = dupn(p, n);
  w->conn = c;
  w->close_after = close_after;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(w->data);
    free(w);
    conn_close(c);
  }
}

static const char *reason_of(int status)
{
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

static void send_head(conn_t *c, const action_t *a, const char *framing)
{
  char head[1024];
  int status = a->a.status ? a->a.status : 200;
  int n =
      snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%s%s\r\n",
               status, reason_of(status), a->headers ? a->headers : "", framing);
  send_bytes(c, head, (size_t)n, 0);
}

static void send_chunk(conn_t *c, const char *p, size_t n)
{
  char size[32];
  int k = snprintf(size, sizeof(size), "%zx\r\n", n);
  size_t total = (size_t)k + n + 2;
  char *buf = malloc(total);
  memcpy(buf, size, (size_t)k);
  memcpy(buf + k, p, n);
  memcpy(buf + k + n, "\r\n", 2);
  send_bytes(c, buf, total, 0);
  free(buf);
}

static void on_stream_timer(uv_timer_t *t)
{
  conn_t *c = t->data;
  action_t *a = c->streaming;
  if (!a || c->closing) {
    return;
  }
  const char *chunk = a->chunks ? a->chunks[c->chunk_idx] : NULL;
  if (chunk) {
    send_chunk(c, chunk, strlen(chunk));
    c->chunk_idx++;
    uv_timer_start(&c->timer, on_stream_timer, a->a.delay_ms, 0);
    return;
  }
  if (!a->a.keep_open) {
    send_bytes(c, "0\r\n\r\n", 5, 0);
  }
  action_free(c->streaming);
  c->streaming = NULL;
}

static void serve(conn_t *c)
{
  faultsrv_t *s = c->srv;
  action_t *a = s->head;
  int popped = 0;
  action_t fallback;
  if (!a) {
    memset(&fallback, 0, sizeof(fallback));
    fallback.a.kind = FS_RESPOND;
    fallback.a.status = 500;
    fallback.body = "{\"kind\":\"Status\",\"message\":\"faultsrv: no action queued\"}";
    fallback.a.body_len = strlen(fallback.body);
    a = &fallback;
  } else if (!a->a.repeat) {
    s->head = a->next;
    if (!s->head) {
      s->tail = NULL;
    }
    popped = 1;
  }
  char framing[64];
  switch (a->a.kind) {
    case FS_RESPOND: {
      size_t n = a->body ? a->a.body_len : 0;
      snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", n);
      send_head(c, a, framing);
      if (n) {
        send_bytes(c, a->body, n, 0);
      }
      break;
    }
    case FS_STALL:
      c->stalled = 1;
      break;
    case FS_DROP: {
      size_t n = a->body ? a->a.body_len : 0;
      snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", n);
      send_head(c, a, framing);
      send_bytes(c, a->body ? a->body : "", n / 2, 1);
      break;
    }
    case FS_CLOSE:
      conn_close(c);
      break;
    case FS_STREAM:
      send_head(c, a, "Transfer-Encoding: chunked\r\n");
      action_free(c->streaming);
      c->streaming = action_copy(&a->a);
      c->chunk_idx = 0;
      uv_timer_start(&c->timer, on_stream_timer, 0, 0);
      break;
  }
  if (popped) {
    action_free(a);
  }
}

/* Parse as many complete requests as the input holds. */
static void parse_requests(conn_t *c)
{
  faultsrv_t *s = c->srv;
  while (!c->closing && !c->stalled && !c->streaming) {
    char *end = NULL;
    for (size_t i = 0; i + 3 < c->in_len; i++) {
      if (memcmp(c->in + i, "\r\n\r\n", 4) == 0) {
        end = c->in + i;
        break;
      }
    }
    if (!end) {
      return;
    }
    size_t head_len = (size_t)(end - c->in);
    size_t body_len = 0;
    for (char *p = c->in; p < end; p++) {
      if ((p == c->in || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
        body_len = strtoul(p + 15, NULL, 10);
      }
    }
    size_t total = head_len + 4 + body_len;
    if (c->in_len < total) {
      return;
    }
    free(s->last_head);
    free(s->last_body);
    s->last_head = dupn(c->in, head_len + 2); /* keep the last CRLF */
    s->last_body = dupn(c->in + head_len + 4, body_len);
    s->requests++;
    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    serve(c);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  conn_t *c = h->data;
  if (c->in_cap - c->in_len < suggested) {
    c->in_cap = c->in_len + suggested;
    c->in = realloc(c->in, c->in_cap);
    if (!c->in) {
      abort();
    }
  }
  buf->base = c->in + c->in_len;
  buf->len = c->in_cap - c->in_len;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  conn_t *c = st->data;
  if (n < 0) {
    conn_close(c);
    return;
  }
  c->in_len += (size_t)n;
  parse_requests(c);
}

static void on_connection(uv_stream_t *l, int status)
{
  faultsrv_t *s = l->data;
  if (status < 0 || s->closing) {
    return;
  }
  conn_t *c = calloc(1, sizeof(*c));
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->handles = 2;
  c->next = s->conns;
  if (s->conns) {
    s->conns->prev = c;
  }
  s->conns = c;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  s->connections++;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int faultsrv_start(faultsrv_t **out, uv_loop_t *loop)
{
  faultsrv_t *s = calloc(1, sizeof(*s));
  s->loop = loop;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->handles = 1;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0) {
    rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
  }
  if (rc != 0) {
    s->closing = 1;
    faultsrv_close(s);
    *out = NULL;
    return rc;
  }
  struct sockaddr_in bound;
  int len = sizeof(bound);
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
  s->port = ntohs(bound.sin_port);
  snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
  *out = s;
  return 0;
}

int faultsrv_port(const faultsrv_t *s)
{
  return s->port;
}

const char *faultsrv_url(const faultsrv_t *s)
{
  return s->url;
}

void faultsrv_push(faultsrv_t *s, const faultsrv_action_t *a)
{
  action_t *c = action_copy(a);
  if (s->tail) {
    s->tail->next = c;
  } else {
    s->head = c;
  }
  s->tail = c;
}

void faultsrv_respond(faultsrv_t *s, int status, const char *headers, const char *body)
{
  faultsrv_action_t a = {FS_RESPOND, status, headers, body, 0, NULL, 0, 0, 0};
  faultsrv_push(s, &a);
}

int faultsrv_requests(const faultsrv_t *s)
{
  return s->requests;
}

int faultsrv_connections(const faultsrv_t *s)
{
  return s->connections;
}

const char *faultsrv_last_head(const faultsrv_t *s)
{
  return s->last_head ? s->last_head : "";
}

const char *faultsrv_last_body(const faultsrv_t *s)
{
  return s->last_body ? s->last_body : "";
}

static void on_listener_closed(uv_handle_t *h)
{
  faultsrv_t *s = h->data;
  s->handles--;
  maybe_free_server(s);
}

void faultsrv_close(faultsrv_t *s)
{
  s->closing = 1;
  conn_t *c = s->conns;
  while (c) {
    conn_t *next = c->next;
    conn_close(c);
    c = next;
  }
  if (!uv_is_closing((uv_handle_t *)&s->listener)) {
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  }
}
