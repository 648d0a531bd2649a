/*
 * httpd.h: a small HTTP/1.1 server on the libuv loop (http-parser for
 * requests, optional TLS through OpenSSL memory BIOs).
 *
 * Shared by the API emulator and the engine's /metrics and /healthz server,
 * so it knows nothing about Kubernetes. One handler callback receives every
 * complete request; it answers at once or later:
 *
 *   - kuala__httpd_respond(): a whole response with Content-Length;
 *   - kuala__httpd_stream_start() / _stream_write() / _stream_end(): a
 *     chunked response, one chunk per write, each written out at once (watch
 *     streams flush per event).
 *
 * Connections are keep-alive. Pipelined requests are answered strictly in
 * order: a request is handed to the handler only once the previous response
 * on the same connection has completed. Request bodies are capped
 * (opts.max_body); a request over the cap is still delivered, with an empty
 * body and kuala__httpd_req_too_large() true, so the caller can answer 413
 * in its own format.
 *
 * Ownership: a request belongs to the server. It stays valid from the handler
 * call until its response completes, or until its connection closes, in
 * which case the request's close callback (if set) runs first; after either
 * event the pointer is dead. All strings returned by accessors are borrowed
 * from the request.
 */
#ifndef KUALA_HTTPD_H
#define KUALA_HTTPD_H

#include <stddef.h>
#include <uv.h>

struct ssl_ctx_st;

typedef struct kuala__httpd_s kuala__httpd_t;
typedef struct kuala__httpd_req_s kuala__httpd_req_t;

typedef void (*kuala__httpd_handler_cb)(void *data, kuala__httpd_req_t *req);
/* The request's connection closed before the response completed. */
typedef void (*kuala__httpd_req_close_cb)(void *data, kuala__httpd_req_t *req);
typedef void (*kuala__httpd_close_cb)(kuala__httpd_t *srv, void *data);

typedef struct {
  const char *host;   /* bind address; NULL = "127.0.0.1" */
  int port;           /* 0 = pick a free port (see kuala__httpd_port) */
  size_t max_body;    /* request body cap; 0 = 3 MiB */
  size_t max_pending; /* unsent bytes per connection before it is dropped; 0 = 64 MiB */
  /* Limits against idle and half-sent connections (kube-apiserver's Go
   * server has ReadHeaderTimeout 32 s and IdleTimeout 90 s). 0 = default;
   * checked by a sweep about 4 times per the shortest timeout. */
  unsigned header_timeout_ms; /* request line + headers (and a silent new connection); 32 s */
  unsigned body_timeout_ms;   /* body after the headers; 60 s */
  unsigned idle_timeout_ms;   /* keep-alive connection with nothing in flight; 90 s */
  size_t max_conns;           /* open connections; more are refused (503 / close); 0 = 4096 */
  struct ssl_ctx_st *tls;     /* borrowed; NULL = plain HTTP */
  int no_listen;              /* testing: no socket at all, kuala__httpd_feed_mem only */
  kuala__httpd_handler_cb handler;
  void *data; /* passed to handler */
} kuala__httpd_opts_t;

/* Bind, listen and start serving on `loop`. */
int kuala__httpd_start(kuala__httpd_t **out, uv_loop_t *loop, const kuala__httpd_opts_t *opts);
/* The bound port. */
int kuala__httpd_port(const kuala__httpd_t *srv);
/* Stop listening, drop every connection (running request close callbacks),
 * and call cb once all handles are closed; then srv is freed. */
void kuala__httpd_close(kuala__httpd_t *srv, kuala__httpd_close_cb cb, void *data);

/* ---- request accessors ---- */
const char *kuala__httpd_method(const kuala__httpd_req_t *req); /* "GET", ... */
const char *kuala__httpd_url(const kuala__httpd_req_t *req);    /* raw target */
const char *kuala__httpd_path(const kuala__httpd_req_t *req);   /* percent-decoded path */
/* First value of query parameter `name`, decoded ('+' is a space); NULL if absent. */
const char *kuala__httpd_query(const kuala__httpd_req_t *req, const char *name);
/* Header value (name compared case-insensitively); NULL if absent. */
const char *kuala__httpd_header(const kuala__httpd_req_t *req, const char *name);
/* The n-th (from 0) value of a header sent several times (Impersonate-Group);
 * NULL past the last. */
const char *kuala__httpd_header_at(const kuala__httpd_req_t *req, const char *name, size_t n);
/* Percent-decode `s` (%XX only) into out (at most outlen - 1 bytes, NUL
 * terminated); returns the length written. */
size_t kuala__httpd_unescape(const char *s, char *out, size_t outlen);
/* The i-th (from 0) header as received, name and value; 0 past the last. */
int kuala__httpd_header_nth(const kuala__httpd_req_t *req, size_t i, const char **name,
                            const char **value);
const char *kuala__httpd_body(const kuala__httpd_req_t *req, size_t *len);
int kuala__httpd_req_too_large(const kuala__httpd_req_t *req);
/* 1 when the path or a query key/value decoded a NUL byte (%00): the C
 * strings above end there, so the caller should refuse the request. */
int kuala__httpd_req_has_nul(const kuala__httpd_req_t *req);
/* Close callback for a deferred response or a stream. */
void kuala__httpd_req_on_close(kuala__httpd_req_t *req, kuala__httpd_req_close_cb cb, void *data);

/* ---- responses ---- */
/* Add a response header (before respond/stream_start). */
void kuala__httpd_add_header(kuala__httpd_req_t *req, const char *name, const char *value);
/* Send a complete response; the request is finished afterwards. */
void kuala__httpd_respond(kuala__httpd_req_t *req, int status, const char *content_type,
                          const char *body, size_t len);
/* Start a chunked response; headers are written at once. */
void kuala__httpd_stream_start(kuala__httpd_req_t *req, int status, const char *content_type);
/* One chunk, written at once. Returns KUALA_EPIPE if the connection is going
 * away or KUALA_E2BIG if the client is too slow (the connection is then
 * dropped and the close callback runs later, from the loop). */
int kuala__httpd_stream_write(kuala__httpd_req_t *req, const char *data, size_t len);
/* Bytes of this request's connection handed to the socket and not yet
 * written: a producer of a large response writes while this is small. */
size_t kuala__httpd_pending(const kuala__httpd_req_t *req);
/* Arm cb to run once, when the pending output drops to `low` bytes or
 * fewer; returns 0. Returns 1 without arming when it already has (write
 * on). A producer of a large response writes chunks while the pending
 * output is small and arms this otherwise: backpressure instead of
 * buffering the whole response. If the connection closes first, the
 * request's close callback runs instead. */
typedef void (*kuala__httpd_drain_cb)(void *data, kuala__httpd_req_t *req);
int kuala__httpd_on_drain(kuala__httpd_req_t *req, size_t low, kuala__httpd_drain_cb cb,
                          void *data);
/* The terminating chunk; the request is finished afterwards. */
void kuala__httpd_stream_end(kuala__httpd_req_t *req);
/* Drop the connection without finishing the response (fault injection). The
 * close callback runs later, from the loop. */
void kuala__httpd_abort(kuala__httpd_req_t *req);

/* Testing seam (tests/fuzz): a connection without a socket. `data` goes
 * through the parser as if read from the network (any number of pipelined
 * requests, or garbage), every byte the server writes on that connection is
 * appended to `out` (plain HTTP only), and the connection is then closed
 * like a client hanging up: responses still pending get their requests'
 * close callbacks. Run the loop afterwards until the close completed. */
struct kuala_buf_s;
int kuala__httpd_feed_mem(kuala__httpd_t *srv, const char *data, size_t len,
                          struct kuala_buf_s *out);

/* Standard reason phrase for a status code ("OK", "Not Found", ...). */
const char *kuala__httpd_reason(int status);

#endif /* KUALA_HTTPD_H */
