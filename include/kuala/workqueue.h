/*
 * Work queue with client-go semantics, driven by a uv loop.
 *
 * - A key is never handed out twice at once: `get` moves it from the queue to
 *   the processing set; adding it again while it is processing marks it
 *   dirty, and `done` puts it back in the queue.
 * - Duplicate adds coalesce: a key waiting in the queue is there once.
 * - `add_after` parks a key in a timer heap; if it is already parked, the
 *   earliest ready time wins.
 * - `add_rate_limited` asks the queue's rate limiter how long to wait;
 *   `forget` clears the key's failure history.
 *
 * Everything runs on the loop thread. The consumer is told that keys are
 * available through `ready_cb`, called from the loop (never from inside an
 * add), at most once per loop iteration; it then calls `get` until it
 * returns KUALA_EAGAIN or its concurrency is used up, and calls `get` again
 * after each `done`.
 */
#ifndef KUALA_WORKQUEUE_H
#define KUALA_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kuala/ratelimit.h"

typedef struct kuala_workqueue_s kuala_workqueue_t;

typedef void (*kuala_workqueue_ready_cb)(kuala_workqueue_t *q, void *data);
typedef void (*kuala_workqueue_close_cb)(kuala_workqueue_t *q, void *data);

typedef struct {
  const char *name;             /* copied; for metrics and logs */
  kuala_ratelimiter_t *limiter; /* taken (owned by the queue); NULL = default */
  kuala_workqueue_ready_cb ready_cb;
  void *data;
} kuala_workqueue_opts_t;

typedef enum {
  /* Refuse new adds and drop parked (delayed) keys; keys already queued are
   * still handed out, then `get` reports KUALA_ESHUTDOWN. */
  KUALA_WORKQUEUE_DRAIN = 0,
  /* Refuse new adds and drop queued and parked keys now. */
  KUALA_WORKQUEUE_CANCEL = 1,
} kuala_workqueue_shutdown_t;

/* Histogram buckets (seconds) for queue latency and work duration: the same
 * upper bounds as controller-runtime (1e-8 .. 1e1, decades). */
#define KUALA_WORKQUEUE_BUCKETS 10

typedef struct {
  uint64_t adds;            /* accepted adds (coalesced ones not counted) */
  uint64_t retries;         /* add_rate_limited calls */
  size_t depth;             /* keys waiting in the queue */
  size_t processing;        /* keys handed out and not done */
  size_t parked;            /* keys waiting in the delay heap */
  double queue_latency_sum; /* seconds from add to get */
  uint64_t queue_latency_count;
  uint64_t queue_latency_buckets[KUALA_WORKQUEUE_BUCKETS]; /* non-cumulative */
  double work_duration_sum;                                /* seconds from get to done */
  uint64_t work_duration_count;
  uint64_t work_duration_buckets[KUALA_WORKQUEUE_BUCKETS];
  double longest_running; /* seconds the oldest processing key has run */
  double unfinished_work; /* seconds, summed over processing keys */
  size_t bytes;           /* memory held for keys (slabs, hash buckets, delay
                             heap); back to ~0 once every key is done */
} kuala_workqueue_stats_t;

int kuala_workqueue_new(kuala_workqueue_t **out, uv_loop_t *loop,
                        const kuala_workqueue_opts_t *opts);

/* 0, or KUALA_ESHUTDOWN once shut down (the key is not added). */
int kuala_workqueue_add(kuala_workqueue_t *q, const char *key);
int kuala_workqueue_add_after(kuala_workqueue_t *q, const char *key, uint64_t delay_ms);
int kuala_workqueue_add_rate_limited(kuala_workqueue_t *q, const char *key);
void kuala_workqueue_forget(kuala_workqueue_t *q, const char *key);
int kuala_workqueue_num_requeues(kuala_workqueue_t *q, const char *key);

/* Hand out the next key: 0 and *key (borrowed, valid until `done`);
 * KUALA_EAGAIN when nothing is ready; KUALA_ESHUTDOWN when shut down and
 * nothing is left to hand out. */
int kuala_workqueue_get(kuala_workqueue_t *q, const char **key);
void kuala_workqueue_done(kuala_workqueue_t *q, const char *key);

size_t kuala_workqueue_len(kuala_workqueue_t *q);
void kuala_workqueue_shutdown(kuala_workqueue_t *q, kuala_workqueue_shutdown_t mode);
int kuala_workqueue_is_shutdown(kuala_workqueue_t *q);
/* Shut down and processing set empty. */
int kuala_workqueue_is_drained(kuala_workqueue_t *q);
void kuala_workqueue_stats(kuala_workqueue_t *q, kuala_workqueue_stats_t *out);
const char *kuala_workqueue_name(kuala_workqueue_t *q);
/* Upper bound (seconds) of histogram bucket i. */
double kuala_workqueue_bucket_bound(int i);

/* Shut down (cancel) if needed, close the timers, free everything once the
 * loop has run the close callbacks; cb (may be NULL) runs then, with q set
 * to NULL because the queue is already freed. Keys
 * borrowed from `get` become invalid. */
void kuala_workqueue_close(kuala_workqueue_t *q, kuala_workqueue_close_cb cb, void *data);

#endif /* KUALA_WORKQUEUE_H */
