/*
 * workqueue.c: client-go work queue semantics on a uv loop.
 *
 * Every key the queue knows has one entry_t, which holds the key string. An
 * entry carries three independent facts:
 *   dirty      - the key needs processing (it was added and not yet handed out
 *                since);
 *   processing - the key has been handed out by `get` and `done` has not been
 *                called yet;
 *   heap_idx   - the key is parked in the delay heap (NO_HEAP otherwise).
 * Invariant: an entry is in the FIFO exactly when dirty && !processing, so
 * it is there at most once. An entry with none of the three is freed.
 *
 * Memory (an initial sync queues one key per object, so this is per-object
 * cost): entries are found through an intrusive chained hash table (one
 * pointer per bucket, the chain link and a 32-bit hash in the entry, no
 * separate slot array) and carved from slabs of 64 KiB in 16-byte size
 * classes with a free list per class, so adding a key costs no malloc in
 * the steady state (keys longer than SLAB_MAX go to malloc). When the last
 * entry is freed (the sync's wave of keys has drained) the slabs and the
 * bucket array are released, so the memory goes back with the keys.
 * One timestamp serves both latencies: the time the key entered the FIFO
 * until `get`, then the time it was handed out until `done` (a key is
 * never in the FIFO while processing). Parked entries keep their ready time
 * in the heap array, next to the entry pointer.
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

#define NO_HEAP UINT32_MAX
#define SLAB_BYTES (64 * 1024)
#define SLAB_CLASS 16                        /* size class granularity */
#define SLAB_MAX 256                         /* larger entries use malloc */
#define SLAB_CLASSES (SLAB_MAX / SLAB_CLASS) /* class i holds (i + 1) * 16 bytes */

typedef struct entry_s {
  struct entry_s *next;  /* FIFO link, or the free list of its class */
  struct entry_s *chain; /* hash bucket chain */
  uint64_t t_ns;         /* FIFO: when it entered; processing: when handed out */
  uint32_t hash;
  uint32_t heap_idx;
  uint32_t klen;
  unsigned dirty : 1;
  unsigned processing : 1;
  char key[];
} entry_t;

typedef struct {
  uint64_t ready_ms;
  entry_t *e;
} parked_t;

typedef struct slab_s {
  struct slab_s *next;
  size_t used;
  _Alignas(16) char mem[];
} slab_t;

struct kuala_workqueue_s {
  uv_loop_t *loop;
  char *name;
  kuala_ratelimiter_t *limiter;
  kuala_workqueue_ready_cb ready_cb;
  void *data;

  entry_t **buckets; /* nbuckets: 0 or a power of two */
  size_t nbuckets;
  size_t nentries;
  slab_t *slabs;                /* newest first; bump-allocated */
  entry_t *free_[SLAB_CLASSES]; /* freed slab entries by class */
  size_t nslabs;
  size_t big_bytes; /* entries allocated with malloc */

  entry_t *head, *tail; /* FIFO */
  size_t depth;
  size_t nprocessing;

  parked_t *heap; /* min-heap on ready_ms */
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

static size_t entry_size(size_t klen)
{
  return sizeof(entry_t) + klen + 1;
}

static entry_t *entry_alloc(kuala_workqueue_t *q, size_t klen)
{
  size_t sz = entry_size(klen);
  if (sz > SLAB_MAX) {
    q->big_bytes += sz;
    return kuala_malloc(sz);
  }
  size_t cls = (sz - 1) / SLAB_CLASS;
  entry_t *e = q->free_[cls];
  if (e) {
    q->free_[cls] = e->next;
    return e;
  }
  size_t need = (cls + 1) * SLAB_CLASS;
  if (q->slabs == NULL || q->slabs->used + need > SLAB_BYTES - sizeof(slab_t)) {
    slab_t *sl = kuala_malloc(SLAB_BYTES);
    sl->next = q->slabs;
    sl->used = 0;
    q->slabs = sl;
    q->nslabs++;
  }
  e = (entry_t *)(void *)(q->slabs->mem + q->slabs->used);
  q->slabs->used += need;
  return e;
}

/* Every entry is gone: give the slabs, buckets and heap back. */
static void entries_release(kuala_workqueue_t *q)
{
  slab_t *sl = q->slabs;
  while (sl) {
    slab_t *next = sl->next;
    kuala_free(sl);
    sl = next;
  }
  q->slabs = NULL;
  q->nslabs = 0;
  memset(q->free_, 0, sizeof(q->free_));
  kuala_free(q->buckets);
  q->buckets = NULL;
  q->nbuckets = 0;
  kuala_free(q->heap); /* empty: no entry is parked */
  q->heap = NULL;
  q->heap_cap = 0;
}

static void entry_release(kuala_workqueue_t *q, entry_t *e)
{
  size_t sz = entry_size(e->klen);
  if (sz > SLAB_MAX) {
    q->big_bytes -= sz;
    kuala_free(e);
    return;
  }
  size_t cls = (sz - 1) / SLAB_CLASS;
  e->next = q->free_[cls];
  q->free_[cls] = e;
}

static void buckets_grow(kuala_workqueue_t *q)
{
  size_t n = q->nbuckets ? q->nbuckets * 2 : 64;
  entry_t **b = kuala_calloc(n, sizeof(*b));
  for (size_t i = 0; i < q->nbuckets; i++) {
    entry_t *e = q->buckets[i];
    while (e) {
      entry_t *next = e->chain;
      size_t j = e->hash & (n - 1);
      e->chain = b[j];
      b[j] = e;
      e = next;
    }
  }
  kuala_free(q->buckets);
  q->buckets = b;
  q->nbuckets = n;
}

static entry_t *entry_get(kuala_workqueue_t *q, const char *key, int create)
{
  size_t klen = strlen(key);
  uint32_t h = (uint32_t)kuala__hash(key, klen);
  if (q->nbuckets) {
    for (entry_t *e = q->buckets[h & (q->nbuckets - 1)]; e; e = e->chain) {
      if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
        return e;
      }
    }
  }
  if (!create) {
    return NULL;
  }
  if (q->nentries >= q->nbuckets) { /* load factor <= 1 */
    buckets_grow(q);
  }
  entry_t *e = entry_alloc(q, klen);
  memset(e, 0, sizeof(*e));
  memcpy(e->key, key, klen + 1);
  e->klen = (uint32_t)klen;
  e->hash = h;
  e->heap_idx = NO_HEAP;
  size_t j = h & (q->nbuckets - 1);
  e->chain = q->buckets[j];
  q->buckets[j] = e;
  q->nentries++;
  return e;
}

static void entry_maybe_free(kuala_workqueue_t *q, entry_t *e)
{
  if (e->dirty || e->processing || e->heap_idx != NO_HEAP) {
    return;
  }
  entry_t **pp = &q->buckets[e->hash & (q->nbuckets - 1)];
  while (*pp != e) {
    pp = &(*pp)->chain;
  }
  *pp = e->chain;
  entry_release(q, e);
  if (--q->nentries == 0 && (q->nslabs > 1 || q->nbuckets > 1024)) {
    entries_release(q); /* a burst drained; small queues keep theirs */
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
  e->t_ns = uv_hrtime();
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

static void heap_set(kuala_workqueue_t *q, size_t i, parked_t p)
{
  q->heap[i] = p;
  p.e->heap_idx = (uint32_t)i;
}

static void heap_up(kuala_workqueue_t *q, size_t i)
{
  parked_t p = q->heap[i];
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (q->heap[up].ready_ms <= p.ready_ms) {
      break;
    }
    heap_set(q, i, q->heap[up]);
    i = up;
  }
  heap_set(q, i, p);
}

static void heap_down(kuala_workqueue_t *q, size_t i)
{
  parked_t p = q->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = l;
    if (l >= q->heap_len) {
      break;
    }
    if (r < q->heap_len && q->heap[r].ready_ms < q->heap[l].ready_ms) {
      m = r;
    }
    if (q->heap[m].ready_ms >= p.ready_ms) {
      break;
    }
    heap_set(q, i, q->heap[m]);
    i = m;
  }
  heap_set(q, i, p);
}

static entry_t *heap_pop(kuala_workqueue_t *q)
{
  entry_t *top = q->heap[0].e;
  q->heap_len--;
  if (q->heap_len > 0) {
    heap_set(q, 0, q->heap[q->heap_len]);
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
  uint64_t due = q->heap[0].ready_ms;
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
  while (q->heap_len > 0 && q->heap[0].ready_ms <= now) {
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
    if (ready < q->heap[e->heap_idx].ready_ms) {
      q->heap[e->heap_idx].ready_ms = ready;
      heap_up(q, e->heap_idx);
    }
  } else {
    if (q->heap_len == q->heap_cap) {
      q->heap_cap = q->heap_cap ? q->heap_cap * 2 : 16;
      q->heap = kuala_realloc(q->heap, q->heap_cap * sizeof(*q->heap));
    }
    parked_t p = {ready, e};
    heap_set(q, q->heap_len++, p);
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
  uint64_t now = uv_hrtime();
  double lat = (double)(now - e->t_ns) / 1e9;
  e->t_ns = now;
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
  double dur = (double)(uv_hrtime() - e->t_ns) / 1e9;
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
  out->bytes = q->nslabs * SLAB_BYTES + q->nbuckets * sizeof(*q->buckets) + q->big_bytes +
               q->heap_cap * sizeof(*q->heap);
  uint64_t now = uv_hrtime();
  for (size_t i = 0; q->nprocessing && i < q->nbuckets; i++) {
    for (entry_t *e = q->buckets[i]; e; e = e->chain) {
      if (e->processing) {
        double sec = (double)(now - e->t_ns) / 1e9;
        out->unfinished_work += sec;
        if (sec > out->longest_running) {
          out->longest_running = sec;
        }
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
  for (size_t i = 0; i < q->nbuckets; i++) {
    for (entry_t *e = q->buckets[i], *next; e; e = next) {
      next = e->chain;
      if (entry_size(e->klen) > SLAB_MAX) {
        kuala_free(e);
      }
    }
  }
  entries_release(q);
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
