/*
 * internal.h: the client's private structures, shared by the files of
 * core/client/ (transport, discovery, exec credentials, kubeconfig).
 *
 * Ownership: the client owns every request until the request's uv timer is
 * closed; a request is on c->reqs from its start until that close callback.
 * The client frees itself once kuala_client_close() was called, no request
 * remains and its own handles are closed.
 */
#ifndef KUALA_CLIENT_INTERNAL_H
#define KUALA_CLIENT_INTERNAL_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "kuala/buf.h"
#include "kuala/client.h"
#include "kuala/ratelimit.h"
#include "base/jscan.h"
#include "base/map.h"

typedef enum {
  REQ_WAIT_TOKEN = 1, /* waiting for the rate limiter */
  REQ_WAIT_AUTH,      /* waiting for the exec credential plugin */
  REQ_WAIT_RETRY,     /* backoff timer running */
  REQ_RUNNING,        /* easy handle in the multi */
  REQ_DONE,           /* completion scheduled (timer 0) or delivered */
} req_state_t;

typedef enum {
  REQ_KIND_HTTP = 0,
  REQ_KIND_WATCH,
  REQ_KIND_SYNTH, /* no HTTP: a result computed locally, delivered from the loop */
} req_kind_t;

struct kuala_client_req_s {
  kuala_client_t *c;
  kuala_client_req_t *prev, *next; /* c->reqs */
  kuala_client_req_t *auth_next;   /* c->auth_waiters */
  req_state_t state;
  req_kind_t kind;
  int canceled;
  char method[8];
  char *url;
  char *content_type; /* request Content-Type, owned */
  char *accept;       /* request Accept, owned; NULL = application/json */
  char *impersonate;  /* Impersonate-User, owned; NULL = none */
  char *body;         /* request body, owned */
  size_t body_len;
  int idempotent;
  int max_retries;
  uint64_t timeout_ms;
  int attempts;
  int auth_retried;
  int exec_fresh; /* the plugin just ran for this request: use its token as is */
  CURL *easy;
  struct curl_slist *headers;
  kuala_tokenbucket_req_t tbreq;
  uv_timer_t timer; /* backoff and deferred completion */
  /* response of the current attempt */
  int status;
  char *resp_ctype;
  long retry_after;
  int http_version;
  int local_err; /* set by callbacks: KUALA_E2BIG, KUALA_EBADMSG */
  int final_err;
  kuala_buf_t resp_body;
  char errbuf[CURL_ERROR_SIZE];
  /* decoded Status */
  char *reason;
  char *message;
  kuala_status_cause_t *causes;
  size_t ncauses;
  json_object *json; /* kuala_client_resp_json cache */
  /* completion */
  kuala_client_req_cb cb;
  void *data;
  /* watch */
  kuala_watch_event_cb on_event;
  kuala_watch_done_cb on_done;
  kuala_lines_t lines;
  kuala_buf_t ready;              /* complete lines not yet delivered, '\n'-separated */
  int streaming;                  /* 200 received: body goes to the line parser */
  long watch_idle_s;              /* watch: KUALA_ETIMEDOUT after this long (s) without a byte */
  kuala_client_req_t *ready_next; /* c->ready_head: lines waiting for delivery */
  int scan_events;                /* opts.scan_events */
  kuala__jscan_t scan;            /* the current line's scan (scan_events) */
  int ready_queued;
  /* synthetic (discovery) */
  void (*synth_done)(kuala_client_req_t *req, int err);
  void *synth_data;
};

struct kuala_watch_s {
  kuala_client_req_t req; /* must stay first */
};

typedef struct sockctx_s {
  uv_poll_t poll;
  curl_socket_t fd;
  kuala_client_t *c;
  struct sockctx_s *prev, *next;
} sockctx_t;

typedef struct disc_gv_s disc_gv_t;

struct kuala_client_s {
  uv_loop_t *loop;
  /* The body buffer of the last finished request (up to SPARE_BODY_MAX),
   * handed to the next one: a paged list reuses one buffer for every page
   * instead of growing and freeing ~1 MB each time. */
  kuala_buf_t spare_body;
  CURLM *multi;
  uv_timer_t timer; /* curl's timer; teardown timer once closing */
  kuala_client_config_t cfg;
  kuala_tokenbucket_t *tb;
  double qps; /* the token bucket's rate and burst (when tb) */
  int burst;
  char *host; /* "host:port" for counters */
  /* tls_server_name: URL base naming that server, CONNECT_TO the real one */
  char *base_url;
  char *host_header;
  struct curl_slist *connect_to;
  kuala_client_req_t *reqs;
  kuala_client_req_t *ready_head; /* watches with queued lines (drain_watches) */
  sockctx_t *socks;
  size_t nreqs;
  int handles; /* open uv handles owned by the client itself */
  int closing;
  int torn_down;
  int curl_verbose; /* KUALA_CLIENT_DEBUG=1 */
  uint64_t rng;
  /* bearer token (static, from token_file, or from exec) */
  char *token;
  uint64_t token_checked_ms;
  struct timespec token_mtime;
  off_t token_size;
  ino_t token_ino;
  /* exec credentials */
  char *exec_token;
  int64_t exec_expiry; /* unix seconds; 0 = no expiry */
  int exec_running;
  struct kuala__exec_run_s *exec_run; /* the running plugin, or NULL */
  kuala_client_req_t *auth_waiters;
  /* counters: key "METHOD code host" -> counter_t */
  kuala__map_t counters;
  /* discovery cache: "group/version" -> disc_gv_t */
  kuala__map_t disc;
};

/* path.c */
int kuala__client_escape(kuala_buf_t *b, const char *s);

/* client.c: start a prepared request (url, method, body set). */
kuala_client_req_t *kuala__client_req_alloc(kuala_client_t *c, size_t size, req_kind_t kind);
int kuala__client_req_start(kuala_client_req_t *req);
/* KUALA_CLIENT_DEBUG's trace of a block of header (or info) lines: each
 * line prefixed with `prefix` and a space, the values of Authorization,
 * Proxy-Authorization, Cookie and Set-Cookie replaced by "<redacted>"
 * (the scheme word, e.g. "Bearer", kept). */
void kuala__client_debug_redact(kuala_buf_t *out, char prefix, const char *p, size_t n);
void kuala__client_req_defer(kuala_client_req_t *req, int err);

/* exec.c: run an exec credential plugin on `loop`; `done` runs once from
 * the loop with 0 + token/expiry (token owned by the callee), or an error
 * and a message. kuala__exec_kill() asks a running plugin to stop. */
typedef struct kuala__exec_run_s kuala__exec_run_t;
typedef void (*kuala__exec_done_cb)(void *data, int err, char *token, int64_t expiry,
                                    const char *msg);
int kuala__exec_start(kuala__exec_run_t **out, uv_loop_t *loop, const kuala_client_config_t *cfg,
                      kuala__exec_done_cb done, void *data);
void kuala__exec_kill(kuala__exec_run_t *run);
/* The client's use of it: spawn for c, then kuala__client_exec_done(). */
int kuala__client_exec_spawn(kuala_client_t *c);
void kuala__client_exec_done(kuala_client_t *c, int err, char *token, int64_t expiry,
                             const char *msg);
/* Parse an ExecCredential document. */
int kuala__exec_parse(const char *json, size_t len, char **token, int64_t *expiry, char **errmsg);

/* discovery.c */
void kuala__client_disc_free(kuala_client_t *c);

#endif /* KUALA_CLIENT_INTERNAL_H */
