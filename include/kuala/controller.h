/*
 * Controllers: watches → keys → work queue → reconcile, as controller-runtime
 * does it, with no Lua in sight (core/lua binds bundles onto this).
 *
 * A controller has one primary watch and any number of secondary ones.
 * Each watch is a registration on a shared informer (kuala/informer.h); its
 * events become request keys ("ns/name", or "name" when cluster-scoped):
 *   KUALA_MAP_SELF   the object's own key (the primary watch);
 *   KUALA_MAP_OWNER  the key of its controller ownerReference when that
 *                    points at the primary's group and kind ("owns");
 *   KUALA_MAP_FUNC   whatever keys a map function emits.
 * Predicates filter events before mapping: built-in "generation changed"
 * (updates pass only when metadata.generation changed, or when the object
 * has no generation), and a custom function.
 *
 * Keys wait in a kuala_workqueue_t (dedup, one key never twice at once,
 * per-key backoff). Workers start once every watch has synced; at most
 * `concurrency` reconciles run at once. A reconcile is asynchronous: the
 * reconcile function gets a job and must call kuala_controller_job_done()
 * exactly once, before or after it returns. Outcome, like controller-runtime:
 *   err != 0         → add_rate_limited (per-key exponential backoff)
 *   requeue_after > 0 → forget, add_after(requeue_after)
 *   requeue          → add_rate_limited
 *   otherwise        → forget
 */
#ifndef KUALA_CONTROLLER_H
#define KUALA_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kuala/informer.h"
#include "kuala/ratelimit.h"
#include "kuala/store.h"

typedef struct kuala_controller_s kuala_controller_t;
typedef struct kuala_controller_job_s kuala_controller_job_t;

typedef enum {
  KUALA_EVENT_ADD = 1,
  KUALA_EVENT_UPDATE = 2,
  KUALA_EVENT_DELETE = 3,
} kuala_event_type_t;

typedef enum {
  KUALA_MAP_SELF = 0,
  KUALA_MAP_OWNER = 1,
  KUALA_MAP_FUNC = 2,
} kuala_map_mode_t;

/* Return 1 to let the event through. `old` is NULL except for updates. */
typedef int (*kuala_predicate_fn)(void *data, kuala_event_type_t type, const kuala_obj_t *old,
                                  const kuala_obj_t *obj);
/* A map function calls emit(emit_data, ns, name) once per key to enqueue
 * (ns NULL or "" for cluster-scoped primaries). */
typedef void (*kuala_emit_fn)(void *emit_data, const char *ns, const char *name);
typedef void (*kuala_map_fn)(void *data, const kuala_obj_t *obj, kuala_emit_fn emit,
                             void *emit_data);

typedef struct {
  kuala_informer_key_t key; /* what to watch (strings borrowed until start) */
  kuala_map_mode_t mode;
  kuala_map_fn map; /* KUALA_MAP_FUNC */
  void *map_data;
  int generation_changed; /* built-in predicate */
  kuala_predicate_fn predicate;
  void *predicate_data;
  /* Scope of a watch whose key is unfiltered but whose predicate filters
   * by namespace and labels (the manager's scoped watches share the
   * resource's informer): kuala_controller_enqueue_all walks only these
   * objects of the primary. Borrowed for the controller's life; NULL = all. */
  const char *scope_ns;
  const struct kuala_selector_s *scope_labels;
} kuala_watch_spec_t;

typedef struct {
  int err;              /* 0 or a negative KUALA_E* */
  int requeue;          /* ask for a rate-limited retry without an error */
  double requeue_after; /* seconds; > 0 = come back after that long */
  const char *message;  /* error text for the log (borrowed for the call) */
} kuala_controller_result_t;

/* Start reconciling ns/name (ns is "" for cluster-scoped objects; both
 * borrowed until job_done). Call kuala_controller_job_done(job, ...) exactly
 * once. Returning non-zero means the reconcile could not start: it counts as
 * an error and job_done must not be called. */
typedef int (*kuala_reconcile_fn)(void *data, kuala_controller_job_t *job, const char *ns,
                                  const char *name);

typedef struct {
  const char *name;                  /* required; copied */
  const char *primary_group;         /* "" for core; for KUALA_MAP_OWNER */
  const char *primary_kind;          /* for KUALA_MAP_OWNER */
  const kuala_watch_spec_t *watches; /* watches[0] is the primary; copied */
  size_t nwatches;
  int concurrency;                            /* default 1 */
  kuala_ratelimiter_t *limiter;               /* taken; NULL = controller-runtime default */
  const kuala_informer_opts_t *informer_opts; /* NULL = defaults */
  kuala_reconcile_fn reconcile;
  void *data;
  /* The primary kind is cluster-scoped: KUALA_MAP_OWNER keys carry no
   * namespace (a namespaced child's owner is not in the child's namespace). */
  int primary_cluster_scoped;
} kuala_controller_opts_t;

/* Reconcile histogram bounds (seconds), controller-runtime's buckets. */
#define KUALA_RECONCILE_BUCKETS 20

typedef struct {
  uint64_t success, error, requeue, requeue_after; /* reconcile_total{result} */
  uint64_t events;                                 /* watch events seen */
  uint64_t filtered;                               /* dropped by predicates */
  uint64_t enqueued;                               /* keys added */
  size_t active;                                   /* reconciles running */
  int synced;                                      /* workers started */
  double time_sum;                                 /* reconcile_time_seconds */
  uint64_t time_count;
  uint64_t time_buckets[KUALA_RECONCILE_BUCKETS]; /* non-cumulative */
  /* Errors by kind, for kuala_lua_limit_hits_total: KUALA_ENOMEM (memory
   * cap), KUALA_ETIMEDOUT whose message names the CPU budget, other
   * KUALA_ETIMEDOUT (wall-clock deadline). */
  uint64_t limit_memory, limit_cpu, limit_deadline;
  int concurrency; /* max_concurrent_reconciles */
  int held;        /* kuala_controller_hold */
} kuala_controller_stats_t;

int kuala_controller_new(kuala_controller_t **out, uv_loop_t *loop, kuala_informers_t *informers,
                         const kuala_controller_opts_t *opts);
/* Register the watches (starting informers as needed); workers start once
 * every watch has synced. */
int kuala_controller_start(kuala_controller_t *c);
/* Call `cb` once, when every watch has synced and workers start (not if
 * the controller is already synced or stopping: check
 * kuala_controller_stats' `synced` after registering). NULL clears it. The
 * engine uses it to log "cache synced" and report readiness without
 * polling. */
typedef void (*kuala_controller_synced_cb)(void *data, kuala_controller_t *c);
void kuala_controller_on_synced(kuala_controller_t *c, kuala_controller_synced_cb cb, void *data);
/* Enqueue one key, or every primary object (used after a bundle reload). */
int kuala_controller_enqueue(kuala_controller_t *c, const char *ns, const char *name);
size_t kuala_controller_enqueue_all(kuala_controller_t *c);
/* Hold the workers (hold = 1) or let them run (0). While held, watches and
 * the queue work as usual (keys wait, the cache stays warm) but no
 * reconcile starts; reconciles already running finish. Leader election
 * holds every controller of a standby. */
void kuala_controller_hold(kuala_controller_t *c, int hold);
/* Finish a reconcile. `res` may be NULL (success). */
void kuala_controller_job_done(kuala_controller_job_t *job, const kuala_controller_result_t *res);
/* The controller a job belongs to. */
kuala_controller_t *kuala_controller_job_controller(kuala_controller_job_t *job);

const char *kuala_controller_name(const kuala_controller_t *c);
void kuala_controller_stats(const kuala_controller_t *c, kuala_controller_stats_t *out);
struct kuala_workqueue_s *kuala_controller_queue(kuala_controller_t *c);
/* The primary informer's store (NULL before start). Borrowed. */
kuala_store_t *kuala_controller_primary_store(kuala_controller_t *c);
double kuala_controller_bucket_bound(int i);

/* Stop: unregister watches, stop handing out keys; running reconciles finish
 * (their job_done is still expected), then the controller is freed and
 * `cb` (may be NULL) runs. Run the loop afterwards. */
typedef void (*kuala_controller_closed_cb)(void *data);
void kuala_controller_stop(kuala_controller_t *c, kuala_controller_closed_cb cb, void *data);

#endif /* KUALA_CONTROLLER_H */
