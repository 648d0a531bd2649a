/*
 * Shared informers: a reflector (list + watch, client-go behaviour) feeding
 * a compact object store (kuala/store.h) and fanning changes out to event
 * handlers.
 *
 * One informer exists per (group, version, resource, namespace scope, label
 * selector, field selector, metadata-only) in a kuala_informers_t registry.
 * Users register handlers; the first handler starts the informer, removing
 * the last one stops it and frees it (reads through a stale pointer after
 * that are a bug). Everything runs on one libuv loop thread.
 *
 * Reflector behaviour:
 *  - initial list paginated (limit 250 by default), RV unset (consistent
 *    read), then a watch from the list's resourceVersion with
 *    allowWatchBookmarks=true and timeoutSeconds random in [300, 600];
 *  - a clean end of the watch re-watches at once from the last RV (event or
 *    bookmark); 410 Expired (HTTP or ERROR event) relists; other failures
 *    re-watch from the last RV after a backoff: 800 ms doubling to 30 s,
 *    full jitter (uniform in [0, step]), reset after 2 min without failure;
 *  - a watch still open 30 s after its timeoutSeconds (a half-open
 *    connection the server already gave up) is stopped and retried;
 *  - a relist turns the fresh list into ADDs, UPDATEs for objects whose RV
 *    changed and DELETEs (final_state_unknown = 1, last known state) for
 *    objects that vanished;
 *  - optional streaming list (watch with sendInitialEvents=true, ended by
 *    the bookmark annotated k8s.io/initial-events-end); any error starting it
 *    falls back to list + watch for the informer's lifetime.
 *
 * Sources: the reflector talks to a list/watch source (kuala_lw_source_t).
 * kuala_informers_new_client() binds the registry to a kuala_client_t; tests
 * plug a fake source in instead.
 */
#ifndef KUALA_INFORMER_H
#define KUALA_INFORMER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kuala/store.h"

struct json_object;
struct kuala_client_s;

/* ---- list/watch source ---- */

typedef struct {
  const char *group; /* "" or NULL = core */
  const char *version;
  const char *resource; /* plural */
  const char *ns;       /* NULL = all namespaces / cluster-scoped */
  const char *label_selector;
  const char *field_selector;
  int metadata_only;
} kuala_informer_key_t;

typedef struct {
  const char *resource_version; /* NULL = unset */
  const char *resource_version_match;
  const char *continue_token; /* list */
  long limit;                 /* list */
  int allow_watch_bookmarks;  /* watch */
  long timeout_seconds;       /* watch */
  int send_initial_events;    /* watch: streaming list */
} kuala_lw_opts_t;

typedef enum {
  KUALA_LW_ADDED = 1,
  KUALA_LW_MODIFIED = 2,
  KUALA_LW_DELETED = 3,
  KUALA_LW_BOOKMARK = 4,
  KUALA_LW_ERROR = 5,
  KUALA_LW_INVALID = 6, /* an undecodable line, skipped (see KUALA_WATCH_INVALID) */
} kuala_lw_type_t;

typedef struct {
  kuala_lw_type_t type;
  struct json_object *object; /* borrowed parsed object (Status for ERROR) */
  const char *line;           /* the raw event line, borrowed (may be NULL) */
  size_t len;
  int err;            /* ERROR: KUALA_E* from the Status code (KUALA_EGONE for 410) */
  const char *reason; /* INVALID: why the line was skipped */
  /* Internal: when `object` is NULL and `line` is set, the reflector reads
   * the object from the line's text (no tree): at this scan of it when not
   * NULL (the client's), else it scans the line itself. */
  const struct kuala__jobj_s *obj_scan;
} kuala_lw_event_t;

/* A list page: err 0 and `body` its text (borrowed) or, when body is NULL,
 * `page` the parsed List (borrowed; with a body, page may be NULL: the
 * reflector reads the body's text, never a tree); or err < 0 (KUALA_EGONE for 410), and then
 * `body` is NULL or a NUL-terminated reason to log. */
typedef void (*kuala_lw_list_cb)(void *data, int err, struct json_object *page, const char *body,
                                 size_t len);
typedef void (*kuala_lw_event_cb)(void *data, const kuala_lw_event_t *ev);
/* The watch ended: 0 clean end, KUALA_ECANCELED after stop, else an error. */
typedef void (*kuala_lw_done_cb)(void *data, int err);

/* Start calls return 0 and later run their callback exactly once (never
 * from inside the start call), or return an error and never run it. The
 * handle is valid until the (done) callback starts. */
typedef struct {
  int (*list)(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *opts,
              kuala_lw_list_cb cb, void *data, void **handle);
  void (*cancel_list)(void *src, void *handle); /* cb runs with KUALA_ECANCELED */
  int (*watch)(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *opts,
               kuala_lw_event_cb on_event, kuala_lw_done_cb on_done, void *data, void **handle);
  void (*stop_watch)(void *src, void *handle); /* on_done runs with KUALA_ECANCELED */
} kuala_lw_source_t;

/* ---- registry and informers ---- */

typedef struct kuala_informers_s kuala_informers_t;
typedef struct kuala_informer_s kuala_informer_t;
typedef struct kuala_informer_reg_s kuala_informer_reg_t;

typedef struct {
  size_t page_size;          /* list limit; default 250 (docs/informers.md) */
  uint64_t resync_ms;        /* periodic resync (UPDATE old == new); 0 = off (default) */
  int streaming_list;        /* try sendInitialEvents first; default 0 */
  uint64_t backoff_base_ms;  /* default 800 */
  uint64_t backoff_max_ms;   /* default 30000 */
  uint64_t backoff_reset_ms; /* default 120000 */
  long watch_timeout_min_s;  /* default 300 */
  long watch_timeout_max_s;  /* default 600 */
  uint64_t watch_grace_ms;   /* a watch still open this long after its
                                timeoutSeconds is stopped and counted as a
                                failure (half-open connection); default 30000 */
  kuala_store_opts_t store;  /* managedFields, transform, caps */
} kuala_informer_opts_t;

void kuala_informer_opts_init(kuala_informer_opts_t *o);

/* Event handlers; any may be NULL. Views are valid during the call only.
 * `initial` is 1 for adds that replay the cache to a handler registered
 * after objects were already stored. Handlers may add and remove handlers
 * (including themselves) but must not modify the store. */
typedef struct {
  void (*on_add)(void *data, const kuala_obj_t *obj, int initial);
  void (*on_update)(void *data, const kuala_obj_t *old, const kuala_obj_t *obj);
  void (*on_delete)(void *data, const kuala_obj_t *obj, int final_state_unknown);
} kuala_informer_handlers_t;

typedef struct {
  uint64_t relists;        /* full lists (the first one included) */
  uint64_t list_pages;     /* list requests answered */
  uint64_t watches;        /* watch requests started */
  uint64_t watch_restarts; /* watches started after the first one */
  uint64_t backoffs;       /* re-watches or relists delayed by backoff */
  uint64_t events_added, events_modified, events_deleted, events_bookmark, events_error;
  uint64_t relist_deletes; /* tombstones produced by relists */
  /* Failures, each also logged at warn (rate-limited per informer):
   * decode_errors = objects or watch lines skipped because they could not
   * be decoded or stored (not strict JSON, too long, a duplicate key, no
   * metadata.name, ...) -- kuala_informer_decode_errors_total;
   * list_errors = lists that failed (transport, HTTP error, a body that is
   * not a List, items not an array) -- kuala_informer_list_errors_total;
   * watch_errors = watches that ended in an error or an ERROR event other
   * than 410 Gone -- kuala_informer_watch_errors_total. */
  uint64_t decode_errors;
  uint64_t list_errors;
  uint64_t watch_errors;
  uint64_t resyncs;
  uint64_t watchdog_stops; /* watches stopped for outliving their timeout */
  /* watches stopped to relist because another informer of the registry
   * was told the server's revision went back (it restarted empty) */
  uint64_t server_restarts_seen;
  uint64_t dispatched;    /* handler calls */
  size_t objects;         /* objects in the store */
  size_t bytes_stored;    /* kuala_store_mem_bytes */
  size_t json_bytes;      /* kuala_store_json_bytes */
  int streaming_fallback; /* 1 after the server refused a streaming list */
  uint64_t streaming_cut; /* streaming lists cut after some events (paged that time) */
} kuala_informer_stats_t;

/* A registry on `loop` whose informers use `src` (borrowed: it must outlive
 * the registry; `src_data` is passed to every source call). */
int kuala_informers_new(kuala_informers_t **out, uv_loop_t *loop, const kuala_lw_source_t *src,
                        void *src_data);
/* A registry whose informers talk to `client` (borrowed). */
int kuala_informers_new_client(kuala_informers_t **out, uv_loop_t *loop,
                               struct kuala_client_s *client);
/* Stop every informer (handlers are dropped without further calls) and free
 * the registry once their handles closed: run the loop afterwards. */
void kuala_informers_close(kuala_informers_t *f);
/* Options for informers created later by registrations that pass no opts
 * (copied; NULL restores kuala_informer_opts_init's). The engine sets
 * streaming_list here (docs/engine.md). */
void kuala_informers_set_defaults(kuala_informers_t *f, const kuala_informer_opts_t *o);
size_t kuala_informers_count(const kuala_informers_t *f);
/* List requests (pages, and streaming lists: one each) the registry's
 * informers have started, in total: a relist anywhere shows here, also for
 * informers freed since. */
uint64_t kuala_informers_list_requests(const kuala_informers_t *f);
/* Call cb for every informer of the registry (for metrics). cb must not add
 * or remove registrations. */
typedef void (*kuala_informers_each_cb)(void *data, kuala_informer_t *inf);
void kuala_informers_foreach(kuala_informers_t *f, kuala_informers_each_cb cb, void *data);
/* What the informer watches (borrowed, valid while the informer lives). */
const kuala_informer_key_t *kuala_informer_key(const kuala_informer_t *inf);

/* Register handlers on the informer for `key`, creating and starting it if
 * needed (`opts` is used only when it is created; NULL = defaults). Objects
 * already stored are replayed to the new handler as adds (initial = 1)
 * before this returns. *reg identifies the registration. */
int kuala_informers_add_handler(kuala_informer_reg_t **reg, kuala_informers_t *f,
                                const kuala_informer_key_t *key, const kuala_informer_opts_t *opts,
                                const kuala_informer_handlers_t *h, void *data);
/* Unregister. The last registration stops the informer; it is freed after
 * its requests and timers closed (run the loop). */
void kuala_informer_reg_remove(kuala_informer_reg_t *reg);
/* The informer behind a registration (borrowed, valid while registered). */
kuala_informer_t *kuala_informer_reg_informer(kuala_informer_reg_t *reg);

/* Reads and state. */
kuala_store_t *kuala_informer_store(kuala_informer_t *inf);
int kuala_informer_has_synced(const kuala_informer_t *inf);
/* The last resourceVersion seen (list, event or bookmark); "" before. */
const char *kuala_informer_last_rv(const kuala_informer_t *inf);
void kuala_informer_stats(const kuala_informer_t *inf, kuala_informer_stats_t *out);
size_t kuala_informer_handlers(const kuala_informer_t *inf);

/* Call cb(data, 0) once the informer has synced, or cb(data, KUALA_ETIMEDOUT)
 * after timeout_ms; KUALA_ECANCELED if the informer stops first. Runs
 * later from the loop, never from inside this call. */
typedef void (*kuala_informer_synced_cb)(void *data, int err);
int kuala_informer_wait_synced(kuala_informer_t *inf, uint64_t timeout_ms,
                               kuala_informer_synced_cb cb, void *data);

/* Backoff schedule (exposed for tests): the next delay in ms given the
 * current step (updated in place) and a uniform random number in [0, 1). */
typedef struct {
  uint64_t base_ms, max_ms, reset_ms;
  uint64_t step_ms;      /* 0 = next failure starts at base */
  uint64_t last_fail_ms; /* loop time of the last failure */
} kuala_backoff_t;
uint64_t kuala_backoff_next(kuala_backoff_t *b, uint64_t now_ms, double rnd);

#endif /* KUALA_INFORMER_H */
