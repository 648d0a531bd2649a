/*
 * ratelimit.c: item rate limiters and the loop token bucket.
 *
 * One token-bucket arithmetic (bucket_t) serves both the overall item
 * limiter and the API-client bucket, so the two can never disagree. A bucket
 * starts full; reserving a token may drive the count negative, and the
 * reservation's delay is the time the refill needs to bring it back to zero
 * (golang.org/x/time/rate's reservation model).
 *
 * Ownership: limiters own their per-item state (keys are copied). The
 * max-of limiter owns its children. The token bucket owns one uv_timer_t and
 * frees itself in that timer's close callback; pending requests are owned by
 * the caller and linked into the bucket's FIFO until their callback runs.
 */
#include "kuala/ratelimit.h"

#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "base/map.h"

/* --- bucket arithmetic -------------------------------------------------- */

typedef struct {
  double qps; /* tokens per second; INFINITY = unlimited */
  double burst;
  double tokens;
  uint64_t last_ns;
} bucket_t;

static int bucket_valid(double qps, int burst)
{
  if (isnan(qps) || qps <= 0 || burst < 1) {
    return 0;
  }
  return 1;
}

static void bucket_init(bucket_t *b, double qps, int burst, uint64_t now)
{
  b->qps = qps;
  b->burst = burst;
  b->tokens = burst;
  b->last_ns = now;
}

static void bucket_advance(bucket_t *b, uint64_t now)
{
  if (now > b->last_ns) {
    b->tokens += (double)(now - b->last_ns) / 1e9 * b->qps;
    if (b->tokens > b->burst) {
      b->tokens = b->burst;
    }
    b->last_ns = now;
  }
}

/* Take one token, possibly on credit; returns how long until it is due. */
static uint64_t bucket_reserve_ns(bucket_t *b, uint64_t now)
{
  if (isinf(b->qps)) {
    return 0;
  }
  bucket_advance(b, now);
  b->tokens -= 1;
  if (b->tokens >= 0) {
    return 0;
  }
  return (uint64_t)ceil(-b->tokens / b->qps * 1e9);
}

static int bucket_try(bucket_t *b, uint64_t now)
{
  if (isinf(b->qps)) {
    return 1;
  }
  bucket_advance(b, now);
  if (b->tokens >= 1) {
    b->tokens -= 1;
    return 1;
  }
  return 0;
}

static uint64_t default_clock(void *data)
{
  (void)data;
  return uv_hrtime();
}

static uint64_t ns_to_ms_ceil(uint64_t ns)
{
  return (ns + 999999) / 1000000;
}

/* --- item rate limiters ------------------------------------------------- */

enum { RL_EXPONENTIAL, RL_BUCKET, RL_MAX_OF };

typedef struct {
  int failures;
  char key[];
} failure_t;

struct kuala_ratelimiter_s {
  int type;
  kuala_clock_fn clock;
  void *clock_data;
  /* RL_EXPONENTIAL */
  uint64_t base_ms;
  uint64_t max_ms;
  kuala__map_t failures; /* key -> failure_t */
  /* RL_BUCKET */
  bucket_t bucket;
  /* RL_MAX_OF */
  kuala_ratelimiter_t **children;
  size_t nchildren;
};

static kuala_ratelimiter_t *rl_alloc(int type)
{
  kuala_ratelimiter_t *rl = kuala_calloc(1, sizeof(*rl));
  rl->type = type;
  rl->clock = default_clock;
  kuala__map_init(&rl->failures);
  return rl;
}

int kuala_ratelimiter_exponential_new(kuala_ratelimiter_t **out, uint64_t base_ms, uint64_t max_ms)
{
  *out = NULL;
  if (base_ms == 0 || max_ms < base_ms) {
    return KUALA_EINVAL;
  }
  kuala_ratelimiter_t *rl = rl_alloc(RL_EXPONENTIAL);
  rl->base_ms = base_ms;
  rl->max_ms = max_ms;
  *out = rl;
  return 0;
}

int kuala_ratelimiter_bucket_new(kuala_ratelimiter_t **out, double qps, int burst)
{
  *out = NULL;
  if (!bucket_valid(qps, burst)) {
    return KUALA_EINVAL;
  }
  kuala_ratelimiter_t *rl = rl_alloc(RL_BUCKET);
  bucket_init(&rl->bucket, qps, burst, rl->clock(NULL));
  *out = rl;
  return 0;
}

int kuala_ratelimiter_max_of_new(kuala_ratelimiter_t **out, kuala_ratelimiter_t **limiters,
                                 size_t n)
{
  *out = NULL;
  int bad = n == 0 || limiters == NULL;
  for (size_t i = 0; !bad && i < n; i++) {
    bad = limiters[i] == NULL;
  }
  if (bad) {
    for (size_t i = 0; limiters && i < n; i++) {
      kuala_ratelimiter_free(limiters[i]);
    }
    return KUALA_EINVAL;
  }
  kuala_ratelimiter_t *rl = rl_alloc(RL_MAX_OF);
  rl->children = kuala_malloc(n * sizeof(*rl->children));
  memcpy(rl->children, limiters, n * sizeof(*rl->children));
  rl->nchildren = n;
  *out = rl;
  return 0;
}

int kuala_ratelimiter_default_new(kuala_ratelimiter_t **out)
{
  kuala_ratelimiter_t *kids[2];
  int rc = kuala_ratelimiter_exponential_new(&kids[0], 5, 1000 * 1000);
  if (rc == 0) {
    rc = kuala_ratelimiter_bucket_new(&kids[1], 10, 100);
    if (rc) {
      kuala_ratelimiter_free(kids[0]);
    }
  }
  if (rc) {
    *out = NULL;
    return rc;
  }
  return kuala_ratelimiter_max_of_new(out, kids, 2);
}

static uint64_t exponential_when(kuala_ratelimiter_t *rl, const char *item)
{
  size_t klen = strlen(item);
  failure_t *f = kuala__map_get(&rl->failures, item, klen);
  if (f == NULL) {
    f = kuala_malloc(sizeof(*f) + klen + 1);
    f->failures = 0;
    memcpy(f->key, item, klen + 1);
    kuala__map_put(&rl->failures, f->key, klen, f);
  }
  int exp = f->failures++;
  /* base * 2^exp, saturating at max without overflowing. */
  uint64_t delay = rl->base_ms;
  for (int i = 0; i < exp && delay < rl->max_ms; i++) {
    delay *= 2;
  }
  return delay < rl->max_ms ? delay : rl->max_ms;
}

uint64_t kuala_ratelimiter_when(kuala_ratelimiter_t *rl, const char *item)
{
  switch (rl->type) {
    case RL_EXPONENTIAL:
      return exponential_when(rl, item);
    case RL_BUCKET:
      return ns_to_ms_ceil(bucket_reserve_ns(&rl->bucket, rl->clock(rl->clock_data)));
    default: {
      uint64_t max = 0;
      for (size_t i = 0; i < rl->nchildren; i++) {
        uint64_t d = kuala_ratelimiter_when(rl->children[i], item);
        if (d > max) {
          max = d;
        }
      }
      return max;
    }
  }
}

void kuala_ratelimiter_forget(kuala_ratelimiter_t *rl, const char *item)
{
  if (rl->type == RL_EXPONENTIAL) {
    kuala_free(kuala__map_del(&rl->failures, item, strlen(item)));
  } else if (rl->type == RL_MAX_OF) {
    for (size_t i = 0; i < rl->nchildren; i++) {
      kuala_ratelimiter_forget(rl->children[i], item);
    }
  }
}

int kuala_ratelimiter_num_requeues(kuala_ratelimiter_t *rl, const char *item)
{
  if (rl->type == RL_EXPONENTIAL) {
    failure_t *f = kuala__map_get(&rl->failures, item, strlen(item));
    return f ? f->failures : 0;
  }
  int max = 0;
  for (size_t i = 0; rl->type == RL_MAX_OF && i < rl->nchildren; i++) {
    int n = kuala_ratelimiter_num_requeues(rl->children[i], item);
    if (n > max) {
      max = n;
    }
  }
  return max;
}

void kuala_ratelimiter_set_clock(kuala_ratelimiter_t *rl, kuala_clock_fn fn, void *data)
{
  rl->clock = fn ? fn : default_clock;
  rl->clock_data = data;
  if (rl->type == RL_BUCKET) {
    /* Restart the refill from the new clock's "now" with a full bucket. */
    rl->bucket.last_ns = rl->clock(rl->clock_data);
    rl->bucket.tokens = rl->bucket.burst;
  }
  for (size_t i = 0; i < rl->nchildren; i++) {
    kuala_ratelimiter_set_clock(rl->children[i], fn, data);
  }
}

void kuala_ratelimiter_free(kuala_ratelimiter_t *rl)
{
  if (rl == NULL) {
    return;
  }
  size_t iter = 0;
  void *v;
  while (kuala__map_next(&rl->failures, &iter, NULL, NULL, &v)) {
    kuala_free(v);
  }
  kuala__map_free(&rl->failures);
  for (size_t i = 0; i < rl->nchildren; i++) {
    kuala_ratelimiter_free(rl->children[i]);
  }
  kuala_free(rl->children);
  kuala_free(rl);
}

/* --- token bucket on the loop ------------------------------------------ */

struct kuala_tokenbucket_s {
  uv_loop_t *loop;
  uv_timer_t timer;
  bucket_t bucket;
  kuala_clock_fn clock;
  void *clock_data;
  /* FIFO of pending requests; due times never decrease along it, except
   * for cancelled ones, which are moved to the front with due_ms = 0. */
  kuala_tokenbucket_req_t *head;
  kuala_tokenbucket_req_t *tail;
  int closing;
};

int kuala_tokenbucket_new(kuala_tokenbucket_t **out, uv_loop_t *loop, double qps, int burst)
{
  *out = NULL;
  if (loop == NULL || !bucket_valid(qps, burst)) {
    return KUALA_EINVAL;
  }
  kuala_tokenbucket_t *tb = kuala_calloc(1, sizeof(*tb));
  tb->loop = loop;
  tb->clock = default_clock;
  int rc = uv_timer_init(loop, &tb->timer);
  if (rc) {
    kuala_free(tb);
    return rc;
  }
  tb->timer.data = tb;
  bucket_init(&tb->bucket, qps, burst, tb->clock(NULL));
  *out = tb;
  return 0;
}

void kuala_tokenbucket_set_clock(kuala_tokenbucket_t *tb, kuala_clock_fn fn, void *data)
{
  tb->clock = fn ? fn : default_clock;
  tb->clock_data = data;
  tb->bucket.last_ns = tb->clock(tb->clock_data);
}

double kuala_tokenbucket_tokens(kuala_tokenbucket_t *tb)
{
  if (!isinf(tb->bucket.qps)) {
    bucket_advance(&tb->bucket, tb->clock(tb->clock_data));
  }
  return tb->bucket.tokens;
}

int kuala_tokenbucket_try_accept(kuala_tokenbucket_t *tb)
{
  if (tb->closing) {
    return 0;
  }
  return bucket_try(&tb->bucket, tb->clock(tb->clock_data));
}

static void unlink_req(kuala_tokenbucket_t *tb, kuala_tokenbucket_req_t *req)
{
  if (req->prev) {
    req->prev->next = req->next;
  } else {
    tb->head = req->next;
  }
  if (req->next) {
    req->next->prev = req->prev;
  } else {
    tb->tail = req->prev;
  }
  req->next = req->prev = NULL;
  req->tb = NULL;
}

static void timer_cb(uv_timer_t *t);

static void arm(kuala_tokenbucket_t *tb)
{
  if (tb->head == NULL) {
    uv_timer_stop(&tb->timer);
    return;
  }
  uint64_t now = uv_now(tb->loop);
  uint64_t due = tb->head->due_ms;
  uv_timer_start(&tb->timer, timer_cb, due > now ? due - now : 0, 0);
}

static void timer_cb(uv_timer_t *t)
{
  kuala_tokenbucket_t *tb = t->data;
  uint64_t now = uv_now(tb->loop);
  /* Detach every due request first: a callback may start new waits. */
  kuala_tokenbucket_req_t *ready = NULL, **tailp = &ready;
  while (tb->head && tb->head->due_ms <= now) {
    kuala_tokenbucket_req_t *req = tb->head;
    unlink_req(tb, req);
    *tailp = req;
    tailp = &req->next;
  }
  arm(tb);
  while (ready) {
    kuala_tokenbucket_req_t *req = ready;
    ready = req->next;
    req->next = NULL;
    req->cb(req, req->status);
  }
}

int kuala_tokenbucket_wait(kuala_tokenbucket_t *tb, kuala_tokenbucket_req_t *req,
                           kuala_tokenbucket_cb cb)
{
  if (req == NULL || cb == NULL) {
    return KUALA_EINVAL;
  }
  if (tb->closing) {
    return KUALA_ESHUTDOWN;
  }
  uint64_t delay_ns = bucket_reserve_ns(&tb->bucket, tb->clock(tb->clock_data));
  req->tb = tb;
  req->cb = cb;
  req->status = 0;
  req->due_ms = uv_now(tb->loop) + ns_to_ms_ceil(delay_ns);
  req->next = NULL;
  req->prev = tb->tail;
  if (tb->tail) {
    tb->tail->next = req;
  } else {
    tb->head = req;
  }
  tb->tail = req;
  if (tb->head == req) {
    arm(tb);
  }
  return 0;
}

void kuala_tokenbucket_cancel(kuala_tokenbucket_req_t *req)
{
  kuala_tokenbucket_t *tb = req->tb;
  if (tb == NULL || req->status != 0) {
    return; /* already completed or already cancelled */
  }
  unlink_req(tb, req);
  if (!isinf(tb->bucket.qps)) {
    tb->bucket.tokens += 1;
  }
  /* Re-queue at the front, due now, so the callback runs from the loop. */
  req->tb = tb;
  req->status = KUALA_ECANCELED;
  req->due_ms = 0;
  req->prev = NULL;
  req->next = tb->head;
  if (tb->head) {
    tb->head->prev = req;
  } else {
    tb->tail = req;
  }
  tb->head = req;
  arm(tb);
}

static void close_cb(uv_handle_t *h)
{
  kuala_free(h->data);
}

void kuala_tokenbucket_close(kuala_tokenbucket_t *tb)
{
  if (tb == NULL || tb->closing) {
    return;
  }
  tb->closing = 1;
  uv_timer_stop(&tb->timer);
  while (tb->head) {
    kuala_tokenbucket_req_t *req = tb->head;
    unlink_req(tb, req);
    req->cb(req, KUALA_ECANCELED);
  }
  uv_close((uv_handle_t *)&tb->timer, close_cb);
}
