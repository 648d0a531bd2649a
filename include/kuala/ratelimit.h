/*
 * Rate limiters.
 *
 * Two families, sharing one token-bucket arithmetic:
 *
 * - kuala_ratelimiter_t answers "how long should this item wait before it is
 *   retried?" (client-go's workqueue.RateLimiter): per-item exponential
 *   failure backoff, an overall token bucket, and a max-of combinator. Pure
 *   computation, no loop; the work queue turns the answer into a timer.
 * - kuala_tokenbucket_t paces callers on a uv loop (client-go's flowcontrol
 *   limiter for API clients): try_accept() never waits; wait() reserves a
 *   token and calls back when it is due, without busy waiting.
 *
 * A bucket holds at most `burst` tokens and refills at `qps` per second;
 * `rate.NewLimiter(10, 50)` is kuala_ratelimiter_bucket_new(&rl, 10, 50).
 * All delays are in milliseconds.
 */
#ifndef KUALA_RATELIMIT_H
#define KUALA_RATELIMIT_H

#include <math.h>
#include <stdint.h>
#include <uv.h>

/* A qps of KUALA_RATE_INF turns a bucket off (every request passes). */
#define KUALA_RATE_INF INFINITY

/* A monotonic clock in nanoseconds; tests inject a fake one. */
typedef uint64_t (*kuala_clock_fn)(void *data);

/* --- item rate limiters (pure) ----------------------------------------- */

typedef struct kuala_ratelimiter_s kuala_ratelimiter_t;

/* Per-item exponential backoff: base_ms * 2^failures, capped at max_ms.
 * client-go's default is 5 ms .. 1000 s. base_ms must be > 0 and
 * max_ms >= base_ms, else KUALA_EINVAL. */
int kuala_ratelimiter_exponential_new(kuala_ratelimiter_t **out, uint64_t base_ms, uint64_t max_ms);
/* Overall token bucket: qps > 0 (or KUALA_RATE_INF), burst >= 1. */
int kuala_ratelimiter_bucket_new(kuala_ratelimiter_t **out, double qps, int burst);
/* The largest delay of several limiters. Takes ownership of limiters[0..n)
 * (also on failure); n must be >= 1. */
int kuala_ratelimiter_max_of_new(kuala_ratelimiter_t **out, kuala_ratelimiter_t **limiters,
                                 size_t n);
/* controller-runtime's default: max_of(exponential(5 ms, 1000 s),
 * bucket(10 qps, burst 100)). */
int kuala_ratelimiter_default_new(kuala_ratelimiter_t **out);

/* How long `item` should wait now; counts one more failure for it. */
uint64_t kuala_ratelimiter_when(kuala_ratelimiter_t *rl, const char *item);
/* Stop tracking `item` (it succeeded). */
void kuala_ratelimiter_forget(kuala_ratelimiter_t *rl, const char *item);
/* How many times `item` has been rate limited since it was last forgotten. */
int kuala_ratelimiter_num_requeues(kuala_ratelimiter_t *rl, const char *item);
/* Replace the clock (default: uv_hrtime) on this limiter and its children. */
void kuala_ratelimiter_set_clock(kuala_ratelimiter_t *rl, kuala_clock_fn fn, void *data);
void kuala_ratelimiter_free(kuala_ratelimiter_t *rl);

/* --- token bucket on the loop ------------------------------------------ */

typedef struct kuala_tokenbucket_s kuala_tokenbucket_t;
typedef struct kuala_tokenbucket_req_s kuala_tokenbucket_req_t;
/* status: 0 when the token is granted, KUALA_ECANCELED after cancel/close. */
typedef void (*kuala_tokenbucket_cb)(kuala_tokenbucket_req_t *req, int status);

struct kuala_tokenbucket_req_s {
  void *data; /* for the caller */
  /* private */
  kuala_tokenbucket_t *tb;
  kuala_tokenbucket_cb cb;
  kuala_tokenbucket_req_t *next;
  kuala_tokenbucket_req_t *prev;
  uint64_t due_ms;
  int status;
};

/* qps > 0 or KUALA_RATE_INF; burst >= 1; otherwise KUALA_EINVAL. */
int kuala_tokenbucket_new(kuala_tokenbucket_t **out, uv_loop_t *loop, double qps, int burst);
/* 1 if a token was taken now, 0 if none is available (nothing reserved). */
int kuala_tokenbucket_try_accept(kuala_tokenbucket_t *tb);
/* Reserve a token; `cb` runs once from the loop when it is due (never from
 * inside this call). Requests are served in order. KUALA_ESHUTDOWN after
 * close (and then cb never runs). */
int kuala_tokenbucket_wait(kuala_tokenbucket_t *tb, kuala_tokenbucket_req_t *req,
                           kuala_tokenbucket_cb cb);
/* Give up a pending wait: its token is returned and cb runs from the loop
 * with KUALA_ECANCELED. No effect on a request that already completed. */
void kuala_tokenbucket_cancel(kuala_tokenbucket_req_t *req);
/* Tokens available now (may be negative while waits are pending). */
double kuala_tokenbucket_tokens(kuala_tokenbucket_t *tb);
void kuala_tokenbucket_set_clock(kuala_tokenbucket_t *tb, kuala_clock_fn fn, void *data);
/* Cancel every pending wait (their callbacks run now with KUALA_ECANCELED),
 * close the timer; memory is freed once the loop runs the close callback. */
void kuala_tokenbucket_close(kuala_tokenbucket_t *tb);

#endif /* KUALA_RATELIMIT_H */
