/*
 * workqueue.c: client-go work queue semantics on a uv loop.
 *
 * Every key the queue knows has one entry_t in `entries`, which owns the key
 * string. An entry carries three independent facts:
 *   dirty      - the key needs processing (it was added and not yet handed out
 *                since);
 *   processing - the key has been handed out by `get` and `done` has not been
 *                called yet;
 *   heap_idx   - the key is parked in the delay heap (NO_HEAP otherwise).
 * Invariant: an entry is in the FIFO exactly when dirty && !processing, so
 * it is there at most once. An entry with none of the three is freed.
 *
 * Timers: `delay` fires at the earliest parked ready time; `kick` is a
 * zero-timeout timer that calls ready_cb once per loop iteration after keys
 * become available (or on shutdown), so ready_cb never runs inside an add.
 */
#include "kuala/workqueue.h"

#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "base/map.h"

#define NO_HEAP ((size_t)-1)

typedef struct entry_s {
  struct entry_s *next; /* FIFO link */
  size_t heap_idx;
  uint64_t ready_ms;   /* when parked */
  uint64_t queued_ns;  /* when it entered the FIFO */
  uint64_t started_ns; /* when handed out */
  unsigned dirty : 1;
  unsigned processing : 1;
  size_t klen;
  char key[];
} entry_t;

struct kuala_workqueue_s {
  uv_loop_t *loop;
  char *name;
  kuala_ratelimiter_t *limiter;
  kuala_workqueue_ready_cb ready_cb;
  void *data;

  kuala__map_t entries; /* key -> entry_t */
  entry_t *head, *tail; /* FIFO */
  size_t depth;
  size_t nprocessing;

  entry_t **heap; /* min-heap on ready_ms */
  size_t heap_len, heap_cap;

  uv_timer_t delay;
  uv_timer_t kick;
  int kick_pending;
  int shutdown;
  int closing;
  int open_handles;
  kuala_workqueue_close_cb close_cb;
  void *close_data;

  kuala_workqueue_stats_t st;
};

/* --- entries ------------------------------------------------------------ */

static entry_t *entry_get(kuala_workqueue_t *q, const char *key, int create)
{
  size_t klen = strlen(key);
  entry_t *e = kuala__map_get(&q->entries, key, klen);
  if (e == NULL && create) {
    e = kuala_calloc(1, sizeof(*e) + klen + 1);
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->heap_idx = NO_HEAP;
    kuala__map_put(&q->entries, e->key, klen, e);
  }
  return e;
}

static void entry_maybe_free(kuala_workqueue_t *q, entry_t *e)
{
  if (!e->dirty && !e->processing && e->heap_idx == NO_HEAP) {
    kuala__map_del(&q->entries, e->key, e->klen);
    kuala_free(e);
  }
}

/* --- FIFO and the ready callback -------------------------------------- */

static void kick_cb(uv_timer_t *t)
{
  kuala_workqueue_t *q = t->data;
  q->kick_pending = 0;
  if (q->ready_cb && !q->closing) {
    q->ready_cb(q, q->data);
  }
}

static void kick(kuala_workqueue_t *q)
{
  if (!q->kick_pending && !q->closing && q->ready_cb) {
    q->kick_pending = 1;
    uv_timer_start(&q->kick, kick_cb, 0, 0);
  }
}

static void fifo_push(kuala_workqueue_t *q, entry_t *e)
{
  e->next = NULL;
  e->queued_ns = uv_hrtime();
  if (q->tail) {
    q->tail->next = e;
  } else {
    q->head = e;
  }
  q->tail = e;
  q->depth++;
  kick(q);
}

static entry_t *fifo_pop(kuala_workqueue_t *q)
{
  entry_t *e = q->head;
  if (e) {
    q->head = e->next;
    if (q->head == NULL) {
      q->tail = NULL;
    }
    e->next = NULL;
    q->depth--;
  }
  return e;
}

/* --- delay heap -------------------------------------------------------- */

static void heap_swap(kuala_workqueue_t *q, size_t a, size_t b)
{
  entry_t *t = q->heap[a];
  q->heap[a] = q->heap[b];
  q->heap[b] = t;
  q->heap[a]->heap_idx = a;
  q->heap[b]->heap_idx = b;
}

static void heap_up(kuala_workqueue_t *q, size_t i)
{
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (q->heap[p]->ready_ms <= q->heap[i]->ready_ms) {
      break;
    }
    heap_swap(q, i, p);
    i = p;
  }
}

static void heap_down(kuala_workqueue_t *q, size_t i)
{
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < q->heap_len && q->heap[l]->ready_ms < q->heap[m]->ready_ms) {
      m = l;
    }
    if (r < q->heap_len && q->heap[r]->ready_ms < q->heap[m]->ready_ms) {
      m = r;
    }
    if (m == i) {
      return;
    }
    heap_swap(q, i, m);
    i = m;
  }
}

static entry_t *heap_pop(kuala_workqueue_t *q)
{
  entry_t *top = q->heap[0];
  q->heap_len--;
  if (q->heap_len > 0) {
    q->heap[0] = q->heap[q->heap_len];
    q->heap[0]->heap_idx = 0;
    heap_down(q, 0);
  }
  top->heap_idx = NO_HEAP;
  return top;
}

static void delay_cb(uv_timer_t *t);

static void arm_delay(kuala_workqueue_t *q)
{
  if (q->heap_len == 0 || q->closing) {
    uv_timer_stop(&q->delay);
    return;
  }
  uint64_t now = uv_now(q->loop);
  uint64_t due = q->heap[0]->ready_ms;
  uv_timer_start(&q->delay, delay_cb, due > now ? due - now : 0, 0);
}

static void add_now(kuala_workqueue_t *q, entry_t *e)
{
  if (e->dirty) {
    return; /* coalesce: already waiting for processing */
  }
  e->dirty = 1;
  q->st.adds++;
  if (!e->processing) {
    fifo_push(q, e);
  }
}

static void delay_cb(uv_timer_t *t)
{
  kuala_workqueue_t *q = t->data;
  uint64_t now = uv_now(q->loop);
  while (q->heap_len > 0 && q->heap[0]->ready_ms <= now) {
    entry_t *e = heap_pop(q);
    add_now(q, e);
    entry_maybe_free(q, e);
  }
  arm_delay(q);
}

/* --- public API ---------------------------------------------------------- */

int kuala_workqueue_new(kuala_workqueue_t **out, uv_loop_t *loop,
                        const kuala_workqueue_opts_t *opts)
{
  *out = NULL;
  if (loop == NULL) {
    if (opts && opts->limiter) {
      kuala_ratelimiter_free(opts->limiter);
    }
    return KUALA_EINVAL;
  }
  kuala_workqueue_t *q = kuala_calloc(1, sizeof(*q));
  q->loop = loop;
  q->name = kuala_strdup(opts && opts->name ? opts->name : "");
  if (opts && opts->limiter) {
    q->limiter = opts->limiter;
  } else {
    kuala_ratelimiter_default_new(&q->limiter);
  }
  if (opts) {
    q->ready_cb = opts->ready_cb;
    q->data = opts->data;
  }
  kuala__map_init(&q->entries);
  uv_timer_init(loop, &q->delay);
  uv_timer_init(loop, &q->kick);
  q->delay.data = q;
  q->kick.data = q;
  *out = q;
  return 0;
}

int kuala_workqueue_add(kuala_workqueue_t *q, const char *key)
{
  if (q->shutdown) {
    return KUALA_ESHUTDOWN;
  }
  add_now(q, entry_get(q, key, 1));
  return 0;
}

int kuala_workqueue_add_after(kuala_workqueue_t *q, const char *key, uint64_t delay_ms)
{
  if (q->shutdown) {
    return KUALA_ESHUTDOWN;
  }
  if (delay_ms == 0) {
    return kuala_workqueue_add(q, key);
  }
  entry_t *e = entry_get(q, key, 1);
  uint64_t ready = uv_now(q->loop) + delay_ms;
  if (e->heap_idx != NO_HEAP) {
    /* Already parked: the earliest ready time wins. */
    if (ready < e->ready_ms) {
      e->ready_ms = ready;
      heap_up(q, e->heap_idx);
    }
  } else {
    if (q->heap_len == q->heap_cap) {
      q->heap_cap = q->heap_cap ? q->heap_cap * 2 : 16;
      q->heap = kuala_realloc(q->heap, q->heap_cap * sizeof(*q->heap));
    }
    e->ready_ms = ready;
    e->heap_idx = q->heap_len;
    q->heap[q->heap_len++] = e;
    heap_up(q, e->heap_idx);
  }
  arm_delay(q);
  return 0;
}

int kuala_workqueue_add_rate_limited(kuala_workqueue_t *q, const char *key)
{
  if (q->shutdown) {
    return KUALA_ESHUTDOWN;
  }
  q->st.retries++;
  return kuala_workqueue_add_after(q, key, kuala_ratelimiter_when(q->limiter, key));
}

void kuala_workqueue_forget(kuala_workqueue_t *q, const char *key)
{
  kuala_ratelimiter_forget(q->limiter, key);
}

int kuala_workqueue_num_requeues(kuala_workqueue_t *q, const char *key)
{
  return kuala_ratelimiter_num_requeues(q->limiter, key);
}

static int bucket_for(double seconds)
{
  double bound = 1e-8;
  for (int i = 0; i < KUALA_WORKQUEUE_BUCKETS; i++, bound *= 10) {
    if (seconds <= bound) {
      return i;
    }
  }
  return -1; /* above the last bound: counted only in sum and count (+Inf) */
}

double kuala_workqueue_bucket_bound(int i)
{
  double bound = 1e-8;
  for (int k = 0; k < i; k++) {
    bound *= 10;
  }
  return bound;
}

int kuala_workqueue_get(kuala_workqueue_t *q, const char **key)
{
  *key = NULL;
  entry_t *e = fifo_pop(q);
  if (e == NULL) {
    return q->shutdown ? KUALA_ESHUTDOWN : KUALA_EAGAIN;
  }
  e->dirty = 0;
  e->processing = 1;
  q->nprocessing++;
  e->started_ns = uv_hrtime();
  double lat = (double)(e->started_ns - e->queued_ns) / 1e9;
  q->st.queue_latency_sum += lat;
  q->st.queue_latency_count++;
  int b = bucket_for(lat);
  if (b >= 0) {
    q->st.queue_latency_buckets[b]++;
  }
  *key = e->key;
  return 0;
}

void kuala_workqueue_done(kuala_workqueue_t *q, const char *key)
{
  entry_t *e = entry_get(q, key, 0);
  if (e == NULL || !e->processing) {
    return;
  }
  e->processing = 0;
  q->nprocessing--;
  double dur = (double)(uv_hrtime() - e->started_ns) / 1e9;
  q->st.work_duration_sum += dur;
  q->st.work_duration_count++;
  int b = bucket_for(dur);
  if (b >= 0) {
    q->st.work_duration_buckets[b]++;
  }
  if (e->dirty) {
    if (q->shutdown) {
      e->dirty = 0; /* re-adds made before shutdown are dropped with it */
    } else {
      fifo_push(q, e);
    }
  }
  if (q->shutdown) {
    kick(q); /* the consumer may be waiting to see the queue drained */
  }
  entry_maybe_free(q, e);
}

size_t kuala_workqueue_len(kuala_workqueue_t *q)
{
  return q->depth;
}

static void drop_parked(kuala_workqueue_t *q)
{
  while (q->heap_len > 0) {
    entry_t *e = heap_pop(q);
    entry_maybe_free(q, e);
  }
  uv_timer_stop(&q->delay);
}

void kuala_workqueue_shutdown(kuala_workqueue_t *q, kuala_workqueue_shutdown_t mode)
{
  q->shutdown = 1;
  drop_parked(q);
  if (mode == KUALA_WORKQUEUE_CANCEL) {
    entry_t *e;
    while ((e = fifo_pop(q)) != NULL) {
      e->dirty = 0;
      entry_maybe_free(q, e);
    }
  }
  kick(q);
}

int kuala_workqueue_is_shutdown(kuala_workqueue_t *q)
{
  return q->shutdown;
}

int kuala_workqueue_is_drained(kuala_workqueue_t *q)
{
  return q->shutdown && q->depth == 0 && q->nprocessing == 0;
}

const char *kuala_workqueue_name(kuala_workqueue_t *q)
{
  return q->name;
}

void kuala_workqueue_stats(kuala_workqueue_t *q, kuala_workqueue_stats_t *out)
{
  *out = q->st;
  out->depth = q->depth;
  out->processing = q->nprocessing;
  out->parked = q->heap_len;
  out->longest_running = 0;
  out->unfinished_work = 0;
  uint64_t now = uv_hrtime();
  size_t iter = 0;
  void *v;
  while (q->nprocessing && kuala__map_next(&q->entries, &iter, NULL, NULL, &v)) {
    entry_t *e = v;
    if (e->processing) {
      double s = (double)(now - e->started_ns) / 1e9;
      out->unfinished_work += s;
      if (s > out->longest_running) {
        out->longest_running = s;
      }
    }
  }
}

static void handle_closed(uv_handle_t *h)
{
  kuala_workqueue_t *q = h->data;
  if (--q->open_handles > 0) {
    return;
  }
  size_t iter = 0;
  void *v;
  while (kuala__map_next(&q->entries, &iter, NULL, NULL, &v)) {
    kuala_free(v);
  }
  kuala__map_free(&q->entries);
  kuala_free(q->heap);
  kuala_ratelimiter_free(q->limiter);
  kuala_workqueue_close_cb cb = q->close_cb;
  void *data = q->close_data;
  kuala_free(q->name);
  kuala_free(q);
  if (cb) {
    cb(NULL, data);
  }
}

void kuala_workqueue_close(kuala_workqueue_t *q, kuala_workqueue_close_cb cb, void *data)
{
  if (q->closing) {
    return;
  }
  kuala_workqueue_shutdown(q, KUALA_WORKQUEUE_CANCEL);
  q->closing = 1;
  q->close_cb = cb;
  q->close_data = data;
  q->open_handles = 2;
  uv_close((uv_handle_t *)&q->delay, handle_closed);
  uv_close((uv_handle_t *)&q->kick, handle_closed);
}
