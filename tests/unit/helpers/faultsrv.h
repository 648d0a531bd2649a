/*
 * faultsrv: a tiny scripted HTTP/1.1 server on libuv raw TCP for client
 * tests. It listens on 127.0.0.1 (ephemeral port) and answers each request
 * it parses with the next queued action: a normal response, a stall, a
 * connection drop in the middle of the body, an immediate close, or a
 * chunked stream sent piece by piece with delays (watch streams, oversized
 * lines). It records what it received so tests can assert on it.
 *
 * No global state: everything lives in the faultsrv_t. Close it with
 * faultsrv_close(); the loop must run afterwards to free it.
 */
#ifndef KUALA_TEST_FAULTSRV_H
#define KUALA_TEST_FAULTSRV_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum {
  FS_RESPOND = 0, /* status + headers + body, Content-Length framing */
  FS_STALL,       /* read the request, never answer */
  FS_DROP,        /* announce body_len bytes, send half of them, close */
  FS_CLOSE,       /* close the connection without answering */
  FS_STREAM,      /* chunked: send chunks[] with delay_ms between, then end */
} faultsrv_kind_t;

typedef struct {
  faultsrv_kind_t kind;
  int status;                /* default 200 */
  const char *headers;       /* extra header lines, each ending in "\r\n" */
  const char *body;          /* FS_RESPOND / FS_DROP */
  size_t body_len;           /* 0 = strlen(body) */
  const char *const *chunks; /* FS_STREAM: NULL-terminated */
  uint64_t delay_ms;         /* FS_STREAM: between chunks */
  int keep_open;             /* FS_STREAM: do not end the stream */
  int repeat;                /* stays queued: answers every later request */
} faultsrv_action_t;

typedef struct faultsrv_s faultsrv_t;

/* Listen on 127.0.0.1:0. Returns 0 or a negative uv error. */
int faultsrv_start(faultsrv_t **out, uv_loop_t *loop);
int faultsrv_port(const faultsrv_t *s);
/* "http://127.0.0.1:PORT" (borrowed). */
const char *faultsrv_url(const faultsrv_t *s);
/* Queue an action (copied). */
void faultsrv_push(faultsrv_t *s, const faultsrv_action_t *a);
/* Shorthand: queue a complete response. */
void faultsrv_respond(faultsrv_t *s, int status, const char *headers, const char *body);
/* What was received. */
int faultsrv_requests(const faultsrv_t *s);
int faultsrv_connections(const faultsrv_t *s);
/* The last request's start line + headers, each line ending in CRLF
 * (borrowed, "" when none). */
const char *faultsrv_last_head(const faultsrv_t *s);
/* The last request's body (borrowed, "" when none). */
const char *faultsrv_last_body(const faultsrv_t *s);
/* Close every connection and the listener; freed from the loop. */
void faultsrv_close(faultsrv_t *s);

#endif
