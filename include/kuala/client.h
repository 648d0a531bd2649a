/*
 * client.h: the engine's Kubernetes API client.
 *
 * One kuala_client_t talks to one API server over libcurl's multi interface,
 * driven by the caller's libuv loop: no thread, no blocking network call.
 * Connections are reused, HTTP/2 is used when the server offers it (TLS
 * ALPN), responses may be gzip-compressed.
 *
 * Requests follow libuv's convention:
 *   - a start call (kuala_client_get, _list, _create, ...) returns 0 and then
 *     the completion callback runs EXACTLY once, later, from the loop, with
 *     the response, an error, or KUALA_ECANCELED after a cancel;
 *   - if the start call returns an error, the callback never runs;
 *   - the callback never runs from inside the start call.
 * The optional `out` handle is borrowed and valid until the callback starts;
 * use it only to cancel.
 *
 * Errors passed to the callback:
 *   0                      2xx response
 *   KUALA_ENOTFOUND, ...   non-2xx: the Kubernetes Status is decoded into
 *                          resp->reason / message / causes; the code comes
 *                          from the HTTP status, refined by the reason
 *                          (409 + AlreadyExists -> KUALA_EEXISTS, 410 ->
 *                          KUALA_EGONE, ...). resp->status holds the HTTP code.
 *   KUALA_ETIMEDOUT        the request's timeout expired (no answer in time)
 *   KUALA_ECONNREFUSED     nobody listens (after retries, if idempotent)
 *   KUALA_ECONNRESET       the connection dropped before the response ended
 *   KUALA_E2BIG            the body (or a watch line) passed its cap
 *   KUALA_EPROTO           not HTTP, or TLS verification failed (message in
 *                          resp->message)
 *   KUALA_ECANCELED        cancelled by kuala_client_req_cancel() or by
 *                          kuala_client_close()
 *
 * Retries: GET (get, list, watch start), PUT and DELETE are retried on
 * connection failures and 5xx with jittered exponential backoff, up to
 * `max_retries`; 429 is retried for every verb after waiting Retry-After
 * (the server refused the request, so nothing was written). POST and PATCH
 * are never retried after a connection failure or 5xx.
 *
 * Ownership: the client copies what it needs from its config at
 * kuala_client_new(); strings passed to request calls are copied before the
 * start call returns; responses are borrowed for the duration of the
 * callback (kuala_client_resp_take_body() takes the body).
 */
#ifndef KUALA_CLIENT_H
#define KUALA_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kuala/buf.h"

struct json_object;

typedef struct kuala_client_s kuala_client_t;
typedef struct kuala_client_req_s kuala_client_req_t;
typedef struct kuala_watch_s kuala_watch_t;

/* ------------------------------------------------------------------------
 * Configuration. Every string is owned by the config (kuala_strdup'd) and
 * freed by kuala_client_config_free(); kubeconfig.h fills one from files.
 * ---------------------------------------------------------------------- */
typedef struct kuala_client_config_s {
  char *server;              /* "https://host:port" or "http://127.0.0.1:port" (required) */
  char *ns;                  /* default namespace ("default" when unset) */
  char *token;               /* bearer token */
  char *token_file;          /* bearer token file, re-read when it changes */
  char *ca_file;             /* PEM CA bundle file */
  char *ca_data;             /* PEM CA bundle bytes (already base64-decoded) */
  size_t ca_data_len;        /* length of ca_data */
  char *cert_file;           /* client certificate (PEM) */
  char *cert_data;           /* client certificate bytes */
  size_t cert_data_len;      /* length of cert_data */
  char *key_file;            /* client key (PEM) */
  char *key_data;            /* client key bytes */
  size_t key_data_len;       /* length of key_data */
  char *tls_server_name;     /* SNI + certificate name (the host is still `server`'s) */
  int insecure_skip_verify;  /* 1 only when the kubeconfig says so */
  char *username, *password; /* basic auth (legacy kubeconfigs) */
  /* exec credential plugin (client.authentication.k8s.io/v1[beta1]) */
  char *exec_command;
  char **exec_args; /* NULL-terminated, may be NULL */
  char **exec_env;  /* NULL-terminated "NAME=VALUE" entries, may be NULL */
  char *exec_api_version;
  /* tuning (0 = default) */
  double qps;                  /* client-side rate limit in requests/s; default (0) and
                                  KUALA_CLIENT_QPS_OFF: none (docs/client.md says why) */
  int burst;                   /* with qps > 0: default 2 x qps (at least 1) */
  size_t max_body;             /* response body cap, default 64 MiB */
  size_t max_line;             /* watch line cap, default 16 MiB */
  uint64_t timeout_ms;         /* per-request timeout (not watches), default 30000 */
  uint64_t connect_timeout_ms; /* default 10000 */
  int max_retries;             /* for idempotent requests, default 3; -1 = none */
  uint64_t backoff_base_ms;    /* first retry delay, default 200 (doubles, jittered) */
  uint64_t backoff_max_ms;     /* default 5000 */
  uint64_t token_refresh_ms;   /* token_file stat interval in ms, default 1000 */
  char *user_agent;            /* default "kuala/<version>" */
  int http2;                   /* 0: HTTP/2 when offered (TLS ALPN); -1: HTTP/1.1 only; 2: h2c prior
                                  knowledge (KUALA_ENOTSUP from kuala_client_new on libcurl < 8.0) */
} kuala_client_config_t;

/* qps value meaning "no client-side rate limit". */
#define KUALA_CLIENT_QPS_OFF (-1.0)

void kuala_client_config_init(kuala_client_config_t *cfg);
void kuala_client_config_free(kuala_client_config_t *cfg);
/* Deep copy; `dst` must be uninitialised or freed. */
void kuala_client_config_copy(kuala_client_config_t *dst, const kuala_client_config_t *src);

/* ------------------------------------------------------------------------
 * Client lifecycle.
 * ---------------------------------------------------------------------- */

/* Create a client on `loop`. KUALA_EINVAL on a bad config (no server, bad
 * URL scheme, unreadable CA file, ...). */
int kuala_client_new(kuala_client_t **out, uv_loop_t *loop, const kuala_client_config_t *cfg);

/* Cancel every in-flight request and watch (their callbacks run with
 * KUALA_ECANCELED), close the uv handles, free the client once they are
 * closed: the loop must run again afterwards. */
void kuala_client_close(kuala_client_t *c);

/* The default namespace from the config (never NULL). Borrowed. */
const char *kuala_client_namespace(const kuala_client_t *c);
/* Whether the client limits its own request rate (1, with *qps and *burst
 * set; either may be NULL) or not (0, both set to 0). */
int kuala_client_rate_limit(const kuala_client_t *c, double *qps, int *burst);

/* ------------------------------------------------------------------------
 * Requests.
 * ---------------------------------------------------------------------- */

/* What a request addresses. group NULL or "" = core ("/api/v1"); ns NULL =
 * cluster-scoped (or all namespaces for list/watch); name NULL = the
 * collection; subresource e.g. "status". */
typedef struct {
  const char *group;
  const char *version;
  const char *resource; /* plural, e.g. "configmaps" */
  const char *ns;
  const char *name;
  const char *subresource;
} kuala_client_target_t;

/* Per-request options; pass NULL for defaults. Unset fields (NULL / 0) are
 * not sent. */
typedef struct {
  const char *label_selector;
  const char *field_selector;
  long limit;                   /* list: page size */
  const char *continue_token;   /* list: metadata.continue of the previous page */
  const char *resource_version; /* get/list/watch */
  const char *resource_version_match;
  int allow_watch_bookmarks;      /* watch */
  long timeout_seconds;           /* watch: server-side timeoutSeconds */
  int send_initial_events;        /* watch: streaming list (sendInitialEvents=true; pair it
                                     with resource_version_match "NotOlderThan") */
  const char *field_manager;      /* create/update/patch (required for apply) */
  int force;                      /* apply: force=true */
  int dry_run;                    /* dryRun=All */
  const char *propagation_policy; /* delete: Foreground|Background|Orphan */
  const char *precondition_uid;   /* delete */
  const char *precondition_rv;    /* delete */
  long grace_period_seconds;      /* delete: -1 = unset (0 means 0) */
  /* Accept header; NULL = application/json. Metadata-only reads ask for e.g.
   * "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json". */
  const char *accept;
  uint64_t timeout_ms; /* overrides the client timeout; 0 = default. Watches: idle timeout
                          (KUALA_ETIMEDOUT after this long without a byte; 1 s steps) */
  int max_retries;     /* overrides the client's; 0 = default, -1 = none */
  /* Impersonate-User header (the server checks the `impersonate` verb); NULL = none. */
  const char *impersonate_user;
  /* watch (internal, for the informer): ADDED/MODIFIED/DELETED events come
   * with object NULL and obj_scan set, read from the line by the validating
   * scanner without a json-c tree; other events as usual. */
  int scan_events;
} kuala_client_opts_t;

/* Zeroed options with grace_period_seconds = -1. */
void kuala_client_opts_init(kuala_client_opts_t *opts);

typedef struct {
  char *reason; /* e.g. "FieldValueInvalid" (may be NULL) */
  char *message;
  char *field;
} kuala_status_cause_t;

/* A response, borrowed by the callback. */
typedef struct {
  int status;               /* HTTP status; 0 when no response arrived */
  const char *content_type; /* may be NULL */
  long retry_after;         /* Retry-After seconds, -1 when absent */
  char *body;               /* NUL-terminated, may be NULL when empty */
  size_t body_len;
  /* Decoded Status for non-2xx answers (and transport error details). */
  const char *reason;  /* "NotFound", "AlreadyExists", ... or NULL */
  const char *message; /* Status message or transport error text, or NULL */
  const kuala_status_cause_t *causes;
  size_t ncauses;
  int attempts;     /* how many times the request was sent */
  int http_version; /* 1 or 2 (0 when unknown) */
  void *internal_;  /* private */
} kuala_client_resp_t;

/* Parse the body as a JSON object (once; the result is cached and borrowed
 * for the duration of the callback: json_object_get() it to keep it).
 * KUALA_EBADMSG with a clear message when the body is not a JSON object,
 * KUALA_ENOENT when there is no body. */
int kuala_client_resp_json(kuala_client_resp_t *resp, struct json_object **out);

/* Take ownership of the body (free with kuala_free). resp->body becomes NULL. */
char *kuala_client_resp_take_body(kuala_client_resp_t *resp, size_t *len);

typedef void (*kuala_client_req_cb)(void *data, int err, kuala_client_resp_t *resp);

/* PATCH flavours (Content-Type). */
typedef enum {
  KUALA_PATCH_JSON = 0,      /* application/json-patch+json */
  KUALA_PATCH_MERGE = 1,     /* application/merge-patch+json */
  KUALA_PATCH_STRATEGIC = 2, /* application/strategic-merge-patch+json */
  KUALA_PATCH_APPLY = 3,     /* application/apply-patch+yaml (server-side apply) */
} kuala_patch_type_t;

int kuala_client_get(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                     const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data);
/* One page; follow resp's metadata.continue with opts->continue_token. */
int kuala_client_list(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                      const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data);
/* POST `body` (JSON) to the collection (t->name must be NULL). */
int kuala_client_create(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                        const char *body, size_t len, const kuala_client_opts_t *opts,
                        kuala_client_req_cb cb, void *data);
/* PUT `body` to the item (t->name required). */
int kuala_client_update(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                        const char *body, size_t len, const kuala_client_opts_t *opts,
                        kuala_client_req_cb cb, void *data);
/* PATCH the item. KUALA_PATCH_APPLY requires opts->field_manager. */
int kuala_client_patch(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                       kuala_patch_type_t type, const char *body, size_t len,
                       const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data);
/* DELETE the item, with DeleteOptions built from opts. */
int kuala_client_delete(kuala_client_req_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                        const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data);
/* Any request: `path` starts with '/' and may carry a query string.
 * `method` is GET, POST, PUT, PATCH or DELETE; content_type may be NULL. */
int kuala_client_request(kuala_client_req_t **out, kuala_client_t *c, const char *method,
                         const char *path, const char *content_type, const char *body, size_t len,
                         const kuala_client_opts_t *opts, kuala_client_req_cb cb, void *data);

/* Cancel an in-flight request: its callback runs (later, from the loop) with
 * KUALA_ECANCELED. Safe to call once per request, before its callback ran. */
void kuala_client_req_cancel(kuala_client_req_t *req);

/* Build the URL path (+ query) for `t` and `opts` into a new string (free
 * with kuala_free). `verb` is "get", "list", "watch", "create", "update",
 * "patch" or "delete". KUALA_EINVAL on a missing field or a name with '/'. */
int kuala_client_path(char **out, const kuala_client_target_t *t, const char *verb,
                      const kuala_client_opts_t *opts);

/* The KUALA_E* code for an HTTP status refined by a Status reason (NULL
 * allowed): 409 + "AlreadyExists" -> KUALA_EEXISTS, ... ; 0 for 2xx. */
int kuala_client_status_code(int http_status, const char *reason);

/* ------------------------------------------------------------------------
 * Watch: GET ...?watch=1 streamed as JSON lines.
 * ---------------------------------------------------------------------- */
typedef enum {
  KUALA_WATCH_ADDED = 1,
  KUALA_WATCH_MODIFIED = 2,
  KUALA_WATCH_DELETED = 3,
  KUALA_WATCH_BOOKMARK = 4,
  KUALA_WATCH_ERROR = 5, /* object is a Status; `err` holds its KUALA_E* code */
  /* A line that is not a decodable event (not strict JSON, not
   * {"type":...,"object":{...}}, a duplicate key, or longer than the line
   * cap): object is NULL, `err` is KUALA_EBADMSG or KUALA_E2BIG, `reason`
   * says why, `line` is the line (NULL when it was too long). The watch
   * goes on: one bad object must not stop every later event. */
  KUALA_WATCH_INVALID = 6,
} kuala_watch_type_t;

typedef struct {
  kuala_watch_type_t type;
  struct json_object *object; /* borrowed: json_object_get() it to keep it */
  const char *line;           /* the raw line (no newline), borrowed */
  size_t len;
  int err;            /* ERROR events: code from the Status (e.g. KUALA_EGONE) */
  const char *reason; /* INVALID events: why the line was skipped */
  /* With opts.scan_events, for ADDED/MODIFIED/DELETED: where the object is
   * in `line` and its metadata (base/jscan.h); object is NULL then. */
  const struct kuala__jobj_s *obj_scan;
} kuala_watch_event_t;

/* One event, as it arrives. */
typedef void (*kuala_watch_event_cb)(void *data, const kuala_watch_event_t *ev);
/* The stream ended; runs exactly once (the event callback never runs after
 * it). err: 0 = the server ended the stream cleanly (re-watch from the last
 * RV), KUALA_ECANCELED = kuala_watch_stop(), KUALA_EBADMSG = the stream
 * ended inside a line (lines that are not valid events are skipped and
 * reported as KUALA_WATCH_INVALID events instead), an HTTP error code when
 * the watch was refused (resp decoded as for requests), or a transport
 * error. `resp` is borrowed and may be NULL. */
typedef void (*kuala_watch_done_cb)(void *data, int err, kuala_client_resp_t *resp);

/* Start a watch on t (a collection, or an item: then metadata.name is the
 * field selector). opts: resource_version, allow_watch_bookmarks,
 * timeout_seconds, send_initial_events, selectors. The watch has no client-side overall timeout.
 * Same start/callback rules as requests. */
int kuala_client_watch(kuala_watch_t **out, kuala_client_t *c, const kuala_client_target_t *t,
                       const kuala_client_opts_t *opts, kuala_watch_event_cb on_event,
                       kuala_watch_done_cb on_done, void *data);
/* Stop a watch: no more events; on_done runs later with KUALA_ECANCELED
 * (unless it already ran; then this must not be called). May be called from
 * inside on_event. */
void kuala_watch_stop(kuala_watch_t *w);

/* The incremental JSON-lines parser used by watches, exposed for tests and
 * reuse: feed bytes as they come; each complete line is passed to `on_line`
 * (without '\n', NUL-terminated, empty lines skipped). */
typedef int (*kuala_lines_cb)(void *data, const char *line, size_t len);
typedef struct {
  kuala_buf_t buf; /* pending partial line; buf.max is the line cap */
  int skip_long;   /* 1: drop over-long lines instead of failing (see feed) */
  size_t dropping; /* bytes of the over-long line being dropped (0 = none) */
} kuala_lines_t;
void kuala_lines_init(kuala_lines_t *p, size_t max_line);
/* Returns 0, KUALA_E2BIG when a line passes max_line, or the first non-zero
 * value returned by on_line (which stops parsing). With `skip_long` set, a
 * line past the cap is not an error: its bytes are dropped as they come
 * (memory stays under the cap) and, once its newline arrives, on_line runs
 * with line NULL and len = the number of bytes dropped. */
int kuala_lines_feed(kuala_lines_t *p, const char *chunk, size_t n, kuala_lines_cb on_line,
                     void *data);
/* Bytes of an unterminated last line (0 when the stream ended on '\n'). */
size_t kuala_lines_pending(const kuala_lines_t *p);
void kuala_lines_free(kuala_lines_t *p);

/* ------------------------------------------------------------------------
 * Discovery: apiVersion + kind -> resource plural and scope.
 * ---------------------------------------------------------------------- */
typedef struct {
  const char *group; /* "" for core */
  const char *version;
  const char *resource; /* plural */
  const char *kind;
  int namespaced;
} kuala_client_resource_t;

/* res is borrowed for the callback only. err: 0, KUALA_ENOTFOUND when the
 * kind is not served (after a refresh), or a request error. */
typedef void (*kuala_client_resolve_cb)(void *data, int err, const kuala_client_resource_t *res);

/* Resolve from the cache without I/O: 0 and *out filled (borrowed, valid
 * until the cache for that group/version is refreshed), or KUALA_ENOENT. */
int kuala_client_resolve_cached(kuala_client_t *c, const char *api_version, const char *kind,
                                kuala_client_resource_t *out);
/* Resolve; fetches /api/v1 or /apis/G/V when the group/version is not
 * cached or the kind is missing from it (a CRD installed a moment ago).
 * Same start/callback rules as requests. */
int kuala_client_resolve(kuala_client_t *c, const char *api_version, const char *kind,
                         kuala_client_resolve_cb cb, void *data);

/* ------------------------------------------------------------------------
 * Request counters (for rest_client_requests_total).
 * ---------------------------------------------------------------------- */
/* Called once per (method, code, host); code is the HTTP status as text or
 * "<error>" for transport failures. Strings borrowed for the call. */
typedef void (*kuala_client_count_cb)(void *data, const char *method, const char *code,
                                      const char *host, uint64_t count);
void kuala_client_foreach_count(kuala_client_t *c, kuala_client_count_cb cb, void *data);

#endif /* KUALA_CLIENT_H */
