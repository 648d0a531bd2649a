/*
 * informer.c: the shared informer registry, handler registration and
 * dispatch, sync waiters and periodic resync (see kuala/informer.h).
 *
 * Registry: one informer per canonical key string built from (group,
 * version, resource, namespace, label selector, field selector,
 * metadata-only). The informer is reference-counted by its live handler
 * registrations.
 *
 * Dispatch: the store reports each change through kuala__informer_change();
 * it calls every live registration that existed when the change started
 * (a registration added during dispatch already got the object through its
 * replay). Registrations removed during dispatch are marked dead and
 * compacted away once no dispatch is running.
 *
 * Ownership: the registry owns informers; an informer owns its store, key
 * strings, registrations, waiters and timers. Everything is freed from loop
 * callbacks (see core/informer.h).
 */
#include "informer.h"

#include <string.h>

#include "base/mem.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"
#include "kuala/log.h"

void kuala_informer_opts_init(kuala_informer_opts_t *o)
{
  memset(o, 0, sizeof(*o));
  o->page_size = 250;
  o->backoff_base_ms = 800;
  o->backoff_max_ms = 30000;
  o->backoff_reset_ms = 120000;
  o->watch_timeout_min_s = 300;
  o->watch_timeout_max_s = 600;
  o->watch_grace_ms = 30000;
}

int kuala_informers_new(kuala_informers_t **out, uv_loop_t *loop, const kuala_lw_source_t *src,
                        void *src_data)
{
  if (!out || !loop || !src || !src->list || !src->watch || !src->cancel_list || !src->stop_watch) {
    return KUALA_EINVAL;
  }
  kuala_informers_t *f = kuala_calloc(1, sizeof(*f));
  f->loop = loop;
  f->src = src;
  f->src_data = src_data;
  kuala__map_init(&f->informers);
  *out = f;
  return 0;
}

void kuala_informers_set_defaults(kuala_informers_t *f, const kuala_informer_opts_t *o)
{
  f->have_defaults = o != NULL;
  if (o) {
    f->defaults = *o;
  }
}

int kuala_informers_new_client(kuala_informers_t **out, uv_loop_t *loop,
                               struct kuala_client_s *client)
{
  const kuala_lw_source_t *src;
  void *sd;
  if (!client) {
    return KUALA_EINVAL;
  }
  int rc = kuala__informer_client_source(&src, &sd, client);
  if (rc < 0) {
    return rc;
  }
  rc = kuala_informers_new(out, loop, src, sd);
  if (rc < 0) {
    kuala__informer_client_source_free(sd);
    return rc;
  }
  (*out)->owned_src = sd;
  return 0;
}

size_t kuala_informers_count(const kuala_informers_t *f)
{
  return f->informers.len;
}

uint64_t kuala_informers_list_requests(const kuala_informers_t *f)
{
  return f->list_requests;
}

void kuala_informers_foreach(kuala_informers_t *f, kuala_informers_each_cb cb, void *data)
{
  size_t it = 0;
  void *v;
  while (!f->closing && kuala__map_next(&f->informers, &it, NULL, NULL, &v)) {
    cb(data, v);
  }
}

const kuala_informer_key_t *kuala_informer_key(const kuala_informer_t *inf)
{
  return &inf->key;
}

static void registry_maybe_free(kuala_informers_t *f)
{
  if (f->closing && f->alive == 0) {
    kuala__map_free(&f->informers);
    if (f->owned_src) {
      kuala__informer_client_source_free(f->owned_src);
    }
    kuala_free(f);
  }
}

static void informer_stop(kuala_informer_t *inf);

void kuala_informers_close(kuala_informers_t *f)
{
  if (!f || f->closing) {
    return;
  }
  f->closing = 1;
  /* Collect first: stopping does not remove from the map synchronously,
   * but keep the iteration independent of it anyway. */
  size_t n = f->informers.len, i = 0, it = 0;
  kuala_informer_t **all = kuala_malloc((n ? n : 1) * sizeof(*all));
  void *v;
  while (kuala__map_next(&f->informers, &it, NULL, NULL, &v)) {
    all[i++] = v;
  }
  for (i = 0; i < n; i++) {
    for (size_t r = 0; r < all[i]->nregs; r++) {
      if (!all[i]->regs[r]->dead) {
        all[i]->regs[r]->dead = 1;
        all[i]->live--;
      }
    }
    informer_stop(all[i]);
  }
  kuala_free(all);
  registry_maybe_free(f);
}

/* ---- keys ---- */

static void key_append(kuala_buf_t *b, const char *s)
{
  /* Length-prefixed so that no separator can be forged by a selector. */
  size_t l = s ? strlen(s) : 0;
  kuala_buf_printf(b, "%zu:%s|", l, s ? s : "");
}

static char *key_string(const kuala_informer_key_t *k)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  key_append(&b, k->group);
  key_append(&b, k->version);
  key_append(&b, k->resource);
  key_append(&b, k->ns ? k->ns : "");
  key_append(&b, k->label_selector);
  key_append(&b, k->field_selector);
  kuala_buf_printf(&b, "%c%d", k->ns ? 'n' : 'a', k->metadata_only ? 1 : 0);
  return kuala_buf_take(&b, NULL);
}

static const char *dup_opt(kuala_informer_t *inf, int i, const char *s)
{
  if (!s) {
    return NULL;
  }
  inf->key_mem[i] = kuala_strdup(s);
  return inf->key_mem[i];
}

/* ---- timers and lifetime ---- */

static void handle_closed(uv_handle_t *h)
{
  kuala_informer_t *inf = h->data;
  inf->handles_open--;
  kuala__informer_maybe_free(inf);
}

static void waiter_closed(uv_handle_t *h)
{
  waiter_t *w = h->data;
  kuala_informer_t *inf = w->inf;
  kuala_free(w);
  inf->handles_open--;
  kuala__informer_maybe_free(inf);
}

/* Run a waiter's callback once and close its timer. */
static void waiter_finish(waiter_t *w, int err)
{
  if (w->done) {
    return;
  }
  w->done = 1;
  uv_timer_stop(&w->timer);
  w->cb(w->data, err);
  uv_close((uv_handle_t *)&w->timer, waiter_closed);
}

static void waiters_unlink_done(kuala_informer_t *inf)
{
  waiter_t **pp = &inf->waiters;
  while (*pp) {
    if ((*pp)->done) {
      *pp = (*pp)->next;
    } else {
      pp = &(*pp)->next;
    }
  }
}

void kuala__informer_maybe_free(kuala_informer_t *inf)
{
  if (!inf->stopping || inf->list_pending || inf->watch_pending || inf->handles_open > 0 ||
      inf->dispatching) {
    return;
  }
  kuala_informers_t *f = inf->f;
  kuala__map_del(&f->informers, inf->keystr, strlen(inf->keystr));
  f->alive--;
  for (size_t i = 0; i < inf->nregs; i++) {
    kuala_free(inf->regs[i]);
  }
  kuala_free(inf->regs);
  kuala_store_free(inf->store);
  for (int i = 0; i < 6; i++) {
    kuala_free(inf->key_mem[i]);
  }
  kuala_free(inf->keystr);
  kuala_free(inf->last_rv);
  kuala_free(inf->continue_tok);
  kuala__jscan_free(&inf->scan);
  kuala_buf_free(&inf->strbuf);
  kuala_free(inf);
  registry_maybe_free(f);
}

static void informer_stop(kuala_informer_t *inf)
{
  if (inf->stopping) {
    return;
  }
  inf->stopping = 1;
  kuala__reflector_stop(inf);
  for (waiter_t *w = inf->waiters; w; w = w->next) {
    waiter_finish(w, KUALA_ECANCELED);
  }
  waiters_unlink_done(inf);
  uv_close((uv_handle_t *)&inf->backoff_timer, handle_closed);
  uv_close((uv_handle_t *)&inf->resync_timer, handle_closed);
  uv_close((uv_handle_t *)&inf->watchdog_timer, handle_closed);
}

/* ---- dispatch ---- */

static void regs_compact(kuala_informer_t *inf)
{
  size_t j = 0;
  for (size_t i = 0; i < inf->nregs; i++) {
    if (inf->regs[i]->dead) {
      kuala_free(inf->regs[i]);
    } else {
      inf->regs[j++] = inf->regs[i];
    }
  }
  inf->nregs = j;
}

void kuala__informer_change(void *data, kuala_store_change_t change, const kuala_obj_t *old,
                            const kuala_obj_t *obj, int final_state_unknown)
{
  kuala_informer_t *inf = data;
  size_t n = inf->nregs;
  inf->dispatching++;
  for (size_t i = 0; i < n; i++) {
    kuala_informer_reg_t *r = inf->regs[i];
    if (r->dead) {
      continue;
    }
    switch (change) {
      case KUALA_STORE_ADDED:
        if (r->h.on_add) {
          inf->st.dispatched++;
          r->h.on_add(r->data, obj, 0);
        }
        break;
      case KUALA_STORE_UPDATED:
        if (r->h.on_update) {
          inf->st.dispatched++;
          r->h.on_update(r->data, old, obj);
        }
        break;
      case KUALA_STORE_DELETED:
        if (r->h.on_delete) {
          inf->st.dispatched++;
          r->h.on_delete(r->data, obj, final_state_unknown);
        }
        break;
    }
  }
  inf->dispatching--;
  if (final_state_unknown) {
    inf->st.relist_deletes++;
  }
  if (!inf->dispatching) {
    regs_compact(inf);
  }
}

/* Lists of at least this many objects leave enough garbage (page bodies,
 * parse trees) to be worth a heap trim when they end (base/mem.h). */
#define TRIM_AFTER_OBJECTS 1000

void kuala__informer_set_synced(kuala_informer_t *inf)
{
  /* Called at the end of every list, relists included. */
  if (kuala_store_len(inf->store) >= TRIM_AFTER_OBJECTS) {
    kuala__mem_release("list");
  }
  if (inf->synced) {
    return;
  }
  inf->synced = 1;
  for (waiter_t *w = inf->waiters; w; w = w->next) {
    waiter_finish(w, 0);
  }
  waiters_unlink_done(inf);
}

static void resync_tick(uv_timer_t *t);

/* ---- handlers ---- */

typedef struct {
  kuala_informer_reg_t *reg;
  kuala_informer_t *inf;
} replay_t;

static int replay_one(void *data, const kuala_obj_t *obj)
{
  replay_t *rp = data;
  if (rp->reg->dead || rp->inf->stopping) {
    return 1;
  }
  rp->inf->st.dispatched++;
  rp->reg->h.on_add(rp->reg->data, obj, 1);
  return 0;
}

static kuala_informer_t *informer_create(kuala_informers_t *f, const kuala_informer_key_t *key,
                                         const kuala_informer_opts_t *opts, char *keystr)
{
  kuala_informer_t *inf = kuala_calloc(1, sizeof(*inf));
  inf->f = f;
  inf->keystr = keystr;
  inf->key.group = dup_opt(inf, 0, key->group ? key->group : "");
  inf->key.version = dup_opt(inf, 1, key->version);
  inf->key.resource = dup_opt(inf, 2, key->resource);
  inf->key.ns = dup_opt(inf, 3, key->ns);
  inf->key.label_selector = dup_opt(inf, 4, key->label_selector);
  inf->key.field_selector = dup_opt(inf, 5, key->field_selector);
  inf->key.metadata_only = key->metadata_only;
  if (opts) {
    inf->opts = *opts;
  } else if (f->have_defaults) {
    inf->opts = f->defaults;
  } else {
    kuala_informer_opts_init(&inf->opts);
  }
  kuala_informer_opts_t d;
  kuala_informer_opts_init(&d);
  if (!inf->opts.page_size) {
    inf->opts.page_size = d.page_size;
  }
  if (!inf->opts.backoff_base_ms) {
    inf->opts.backoff_base_ms = d.backoff_base_ms;
  }
  if (!inf->opts.backoff_max_ms) {
    inf->opts.backoff_max_ms = d.backoff_max_ms;
  }
  if (!inf->opts.backoff_reset_ms) {
    inf->opts.backoff_reset_ms = d.backoff_reset_ms;
  }
  if (inf->opts.watch_timeout_min_s <= 0) {
    inf->opts.watch_timeout_min_s = d.watch_timeout_min_s;
  }
  if (!inf->opts.watch_grace_ms) {
    inf->opts.watch_grace_ms = d.watch_grace_ms;
  }
  if (inf->opts.watch_timeout_max_s < inf->opts.watch_timeout_min_s) {
    inf->opts.watch_timeout_max_s = inf->opts.watch_timeout_min_s;
  }
  inf->opts.store.metadata_only = inf->opts.store.metadata_only || key->metadata_only;
  kuala_store_new(&inf->store, &inf->opts.store);
  inf->bo.base_ms = inf->opts.backoff_base_ms;
  inf->bo.max_ms = inf->opts.backoff_max_ms;
  inf->bo.reset_ms = inf->opts.backoff_reset_ms;
  inf->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)inf ^ uv_hrtime();
  inf->last_rv = kuala_strdup("");
  uv_timer_init(f->loop, &inf->backoff_timer);
  uv_timer_init(f->loop, &inf->resync_timer);
  uv_timer_init(f->loop, &inf->watchdog_timer);
  inf->watchdog_timer.data = inf;
  inf->backoff_timer.data = inf;
  inf->resync_timer.data = inf;
  inf->handles_open = 3;
  kuala__map_put(&f->informers, inf->keystr, strlen(inf->keystr), inf);
  f->alive++;
  return inf;
}

int kuala_informers_add_handler(kuala_informer_reg_t **reg, kuala_informers_t *f,
                                const kuala_informer_key_t *key, const kuala_informer_opts_t *opts,
                                const kuala_informer_handlers_t *h, void *data)
{
  if (!reg || !f || !key || !h || !key->version || !key->resource || !*key->version ||
      !*key->resource) {
    return KUALA_EINVAL;
  }
  if (f->closing) {
    return KUALA_ESHUTDOWN;
  }
  /* Selectors are checked here so that a typo is an error now, not a
   * stream of 400s later. */
  kuala_selector_t *sel = NULL;
  char err[256];
  if (key->label_selector &&
      kuala_selector_parse_labels(&sel, key->label_selector, err, sizeof err) < 0) {
    KUALA_LOG(KUALA_LOG_ERROR, "informer: bad label selector", "selector", key->label_selector,
              "error", err);
    return KUALA_EINVAL;
  }
  kuala_selector_free(sel);
  sel = NULL;
  if (key->field_selector &&
      kuala_selector_parse_fields(&sel, key->field_selector, err, sizeof err) < 0) {
    KUALA_LOG(KUALA_LOG_ERROR, "informer: bad field selector", "selector", key->field_selector,
              "error", err);
    return KUALA_EINVAL;
  }
  kuala_selector_free(sel);

  char *ks = key_string(key);
  kuala_informer_t *inf = kuala__map_get(&f->informers, ks, strlen(ks));
  int created = 0;
  if (inf && inf->stopping) {
    /* Still closing from its last user leaving: start a fresh one beside
     * it under the same key (the map entry is replaced). */
    kuala__map_del(&f->informers, ks, strlen(ks));
    inf->keystr[0] = '\0'; /* no longer registered under its key */
    inf = NULL;
  }
  if (!inf) {
    inf = informer_create(f, key, opts, ks);
    created = 1;
  } else {
    kuala_free(ks);
  }
  kuala_informer_reg_t *r = kuala_calloc(1, sizeof(*r));
  r->inf = inf;
  r->h = *h;
  r->data = data;
  if (inf->nregs == inf->regs_cap) {
    inf->regs_cap = inf->regs_cap ? inf->regs_cap * 2 : 4;
    inf->regs = kuala_realloc(inf->regs, inf->regs_cap * sizeof(*inf->regs));
  }
  inf->regs[inf->nregs++] = r;
  inf->live++;
  *reg = r;
  if (created) {
    if (inf->opts.resync_ms > 0) {
      uv_timer_start(&inf->resync_timer, resync_tick, inf->opts.resync_ms, inf->opts.resync_ms);
    }
    kuala__reflector_start(inf);
  } else if (h->on_add && kuala_store_len(inf->store) > 0) {
    replay_t rp = {r, inf};
    inf->dispatching++;
    kuala_store_foreach(inf->store, NULL, NULL, replay_one, &rp);
    inf->dispatching--;
    if (!inf->dispatching) {
      regs_compact(inf);
    }
  }
  return 0;
}

void kuala_informer_reg_remove(kuala_informer_reg_t *reg)
{
  if (!reg || reg->dead) {
    return;
  }
  kuala_informer_t *inf = reg->inf;
  reg->dead = 1;
  inf->live--;
  if (!inf->dispatching) {
    regs_compact(inf);
  }
  if (inf->live == 0) {
    informer_stop(inf);
  }
}

kuala_informer_t *kuala_informer_reg_informer(kuala_informer_reg_t *reg)
{
  return reg ? reg->inf : NULL;
}

kuala_store_t *kuala_informer_store(kuala_informer_t *inf)
{
  return inf->store;
}

int kuala_informer_has_synced(const kuala_informer_t *inf)
{
  return inf->synced;
}

const char *kuala_informer_last_rv(const kuala_informer_t *inf)
{
  return inf->last_rv;
}

size_t kuala_informer_handlers(const kuala_informer_t *inf)
{
  return inf->live;
}

void kuala_informer_stats(const kuala_informer_t *inf, kuala_informer_stats_t *out)
{
  *out = inf->st;
  out->objects = kuala_store_len(inf->store);
  out->bytes_stored = kuala_store_mem_bytes(inf->store);
  out->json_bytes = kuala_store_json_bytes(inf->store);
}

/* ---- sync waiters ---- */

static void waiter_fire(uv_timer_t *t)
{
  waiter_t *w = t->data;
  kuala_informer_t *inf = w->inf;
  waiter_finish(w, inf->synced ? 0 : KUALA_ETIMEDOUT);
  waiters_unlink_done(inf);
}

int kuala_informer_wait_synced(kuala_informer_t *inf, uint64_t timeout_ms,
                               kuala_informer_synced_cb cb, void *data)
{
  if (!inf || !cb) {
    return KUALA_EINVAL;
  }
  if (inf->stopping) {
    return KUALA_ESHUTDOWN;
  }
  waiter_t *w = kuala_calloc(1, sizeof(*w));
  w->inf = inf;
  w->cb = cb;
  w->data = data;
  uv_timer_init(inf->f->loop, &w->timer);
  w->timer.data = w;
  inf->handles_open++;
  /* Already synced: answer on the next loop turn, never from here. */
  uv_timer_start(&w->timer, waiter_fire, inf->synced ? 0 : timeout_ms, 0);
  w->next = inf->waiters;
  inf->waiters = w;
  return 0;
}

/* ---- resync ---- */

static int resync_one(void *data, const kuala_obj_t *obj)
{
  kuala_informer_t *inf = data;
  if (inf->stopping) {
    return 1;
  }
  kuala__informer_change(inf, KUALA_STORE_UPDATED, obj, obj, 0);
  return 0;
}

static void resync_tick(uv_timer_t *t)
{
  kuala_informer_t *inf = t->data;
  if (!inf->synced || inf->stopping) {
    return;
  }
  inf->st.resyncs++;
  inf->dispatching++;
  kuala_store_foreach(inf->store, NULL, NULL, resync_one, inf);
  inf->dispatching--;
  if (!inf->dispatching) {
    regs_compact(inf);
  }
}
