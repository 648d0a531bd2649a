/*
 * reflector.c: the list/watch state machine that keeps an informer's store
 * in step with the API (client-go's Reflector, see kuala/informer.h).
 *
 *        start or relist
 *              |  (streaming_list, not refused) watch(sendInitialEvents)
 *              +-----------------------------> STREAM INIT --error--+
 *              v                                   | end bookmark    |
 *   +------> LISTING (pages, limit N) ------------>+                 |
 *   |          | error: backoff, relist            v                 |
 *   |          +--------------------------------> WATCHING <---------+ (fallback
 *   |                                              |                   to LISTING)
 *   +---- 410 (HTTP or ERROR event) ---------------+
 *              clean end: re-watch from last RV at once
 *              404 (resource gone): BACKOFF, then relist
 *              other failure: BACKOFF, then re-watch from last RV
 *
 * Invariants: at most one source operation is outstanding (list_pending or
 * watch_pending); the backoff timer runs only when none is; every source
 * callback first clears its pending flag, then, if the informer is
 * stopping, only tries to free it. Handlers run from inside store calls, so
 * after every store call the code checks `stopping` before going on. A
 * list page asks for the next one before storing its own items (its own
 * pending flag is clear by then; the next callback runs from the loop).
 *
 * Streaming: every full list (the first and each relist) is a streaming
 * one while streaming_list is set and the server has not refused it. A
 * stream that ends before its first event counts as refused (a server
 * without WatchList answers 4xx): the informer pages from then on. A stream
 * cut after some events falls back to pages for that relist only.
 *
 * Relist: kuala_store_replace_begin, every listed item put with
 * SKIP_SAME_RV (unchanged objects produce no event), replace_end reports
 * the vanished objects as deletes with their last known state.
 */
#include <json-c/json.h>
#include <string.h>

#include "informer.h"
#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/log.h"
#include "base/jscan.h"
#include "store.h"

uint64_t kuala_backoff_next(kuala_backoff_t *b, uint64_t now_ms, double rnd)
{
  if (b->step_ms && now_ms >= b->last_fail_ms && now_ms - b->last_fail_ms >= b->reset_ms) {
    b->step_ms = 0; /* healthy long enough: start over */
  }
  if (b->step_ms == 0) {
    b->step_ms = b->base_ms;
  } else {
    b->step_ms = b->step_ms > b->max_ms / 2 ? b->max_ms : b->step_ms * 2;
  }
  if (b->step_ms > b->max_ms) {
    b->step_ms = b->max_ms;
  }
  b->last_fail_ms = now_ms;
  if (rnd < 0) {
    rnd = 0;
  }
  if (rnd >= 1) {
    rnd = 0.999999;
  }
  return (uint64_t)(rnd * (double)b->step_ms); /* full jitter: [0, step) */
}

uint64_t kuala__informer_rand(kuala_informer_t *inf)
{
  /* xorshift64*: good enough for jitter, no global state. */
  uint64_t x = inf->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  inf->rng = x;
  return x * 0x2545f4914f6cdd1dULL;
}

static double rand01(kuala_informer_t *inf)
{
  return (double)(kuala__informer_rand(inf) >> 11) / 9007199254740992.0;
}

static uv_loop_t *loop_of(kuala_informer_t *inf)
{
  return inf->f->loop;
}

static void set_rv(kuala_informer_t *inf, const char *rv)
{
  if (!rv || !*rv) {
    return;
  }
  /* Called for every event: reuse the buffer instead of a strdup each. */
  size_t len = strlen(rv);
  if (len + 1 > inf->last_rv_cap) {
    inf->last_rv_cap = len + 1 < 32 ? 32 : len + 1;
    inf->last_rv = kuala_realloc(inf->last_rv, inf->last_rv_cap);
  }
  memcpy(inf->last_rv, rv, len + 1);
}

static const char *meta_str(json_object *obj, const char *key)
{
  json_object *m, *v;
  if (obj && json_object_object_get_ex(obj, "metadata", &m) &&
      json_object_object_get_ex(m, key, &v) && json_object_is_type(v, json_type_string)) {
    return json_object_get_string(v);
  }
  return NULL;
}

/* A scanned string of text t, decoded and NUL-terminated in the
 * informer's buffer (valid until the next call); NULL when absent. */
static const char *jstr_z(kuala_informer_t *inf, const char *t, const kuala__jstr_t *v)
{
  if (!v->set) {
    return NULL;
  }
  kuala_buf_reset(&inf->strbuf);
  if (v->esc) {
    kuala__jscan_unescape(t + v->off, v->len, &inf->strbuf);
  } else {
    kuala_buf_append(&inf->strbuf, t + v->off, v->len);
  }
  kuala_buf_putc(&inf->strbuf, '\0');
  return inf->strbuf.data;
}

static const char *nz(const char *s)
{
  return s ? s : "";
}

static int is_initial_events_end(json_object *obj)
{
  json_object *m, *a, *v;
  return obj && json_object_object_get_ex(obj, "metadata", &m) &&
         json_object_object_get_ex(m, "annotations", &a) &&
         json_object_object_get_ex(a, "k8s.io/initial-events-end", &v) &&
         json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), "true") == 0;
}

/* A Status saying "Too large resource version" (cause
 * ResourceVersionTooLarge; older servers only say it in the message). */
static int is_rv_too_large(json_object *st)
{
  json_object *d, *causes, *m;
  if (!st) {
    return 0;
  }
  if (json_object_object_get_ex(st, "details", &d) &&
      json_object_object_get_ex(d, "causes", &causes) &&
      json_object_is_type(causes, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(causes); i++) {
      json_object *r;
      if (json_object_object_get_ex(json_object_array_get_idx(causes, i), "reason", &r) &&
          json_object_is_type(r, json_type_string) &&
          strcmp(json_object_get_string(r), "ResourceVersionTooLarge") == 0) {
        return 1;
      }
    }
  }
  return json_object_object_get_ex(st, "message", &m) && json_object_is_type(m, json_type_string) &&
         strstr(json_object_get_string(m), "Too large resource version") != NULL;
}

/* A list, watch or decode failure: always counted by the caller, logged at
 * warn at most once per WARN_EVERY_MS per informer (with how many were
 * suppressed before it), so a server streaming garbage cannot flood the
 * log. */
#define WARN_EVERY_MS 10000

static void report(kuala_informer_t *inf, const char *what, int err, const char *reason)
{
  uint64_t now = uv_now(loop_of(inf));
  if (inf->warn_next_ms && now < inf->warn_next_ms) {
    inf->warn_dropped++;
    return;
  }
  inf->warn_next_ms = now + WARN_EVERY_MS;
  char dropped[32];
  snprintf(dropped, sizeof dropped, "%llu", (unsigned long long)inf->warn_dropped);
  inf->warn_dropped = 0;
  char why[256];
  /* The reason may quote bytes from the network: keep it short. */
  snprintf(why, sizeof why, "%s", reason ? reason : "");
  for (char *p = why; *p; p++) {
    if ((unsigned char)*p < 0x20) {
      *p = ' ';
    }
  }
  kuala_log(KUALA_LOG_WARN, NULL, 0, what, "resource", inf->key.resource, "error",
            kuala_err_name(err), "reason", why, "suppressed", dropped, NULL);
}

static void start_list(kuala_informer_t *inf);
static void start_relist(kuala_informer_t *inf);
static void list_page(kuala_informer_t *inf);
static void start_watch(kuala_informer_t *inf);

/* ---- backoff ---- */

static void backoff_fire(uv_timer_t *t)
{
  kuala_informer_t *inf = t->data;
  if (inf->stopping) {
    return;
  }
  if (inf->backoff_relist) {
    start_relist(inf);
  } else {
    start_watch(inf);
  }
}

static void backoff(kuala_informer_t *inf, int relist, int err)
{
  uint64_t d = kuala_backoff_next(&inf->bo, uv_now(loop_of(inf)), rand01(inf));
  inf->st.backoffs++;
  inf->backoff_relist = relist;
  inf->state = RF_BACKOFF;
  if (kuala_log_enabled(KUALA_LOG_DEBUG)) {
    char ms[32];
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)d);
    kuala_log(KUALA_LOG_DEBUG, NULL, 0, "informer: backing off", "resource", inf->key.resource,
              "error", kuala_err_name(err), "delay_ms", ms, "then", relist ? "relist" : "watch",
              NULL);
  }
  uv_timer_start(&inf->backoff_timer, backoff_fire, d, 0);
}

/* ---- list ---- */

/* Relist at once, unless the last one started less than a second ago: a
 * server that answers every watch with 410 must not get a list storm. */
static void relist_soon(kuala_informer_t *inf)
{
  uint64_t now = uv_now(loop_of(inf));
  if (inf->st.relists > 0 && now - inf->last_relist_ms < 1000) {
    backoff(inf, 1, KUALA_EGONE);
  } else {
    start_relist(inf);
  }
}

static void on_list(void *data, int err, json_object *page, const char *body, size_t len)
{
  kuala_informer_t *inf = data;
  inf->list_pending = 0;
  inf->list_h = NULL;
  if (inf->stopping) {
    kuala__informer_maybe_free(inf);
    return;
  }
  if (err < 0) {
    if (err == KUALA_EGONE && inf->continue_tok) {
      /* The continue token expired: a fresh full list. */
      relist_soon(inf);
    } else {
      inf->st.list_errors++;
      report(inf, "informer: list failed", err, body);
      backoff(inf, 1, err);
    }
    return;
  }
  inf->st.list_pages++;
  /* One validating scan of the page's text finds the items and the list
   * metadata; each item is stored straight from that text (no json-c tree
   * unless the store itself needs one). A source that only has a tree
   * hands it over as text. */
  if (!body && page) {
    size_t l = 0;
    body = json_object_to_json_string_length(page, JSON_C_TO_STRING_PLAIN, &l);
    len = l;
  }
  kuala__jscan_t *sc = &inf->scan;
  char why[160];
  const char *bad = NULL;
  if (!body) {
    bad = "the list has no body";
  } else if (kuala__jscan(sc, KUALA_JSCAN_LIST, body, len, KUALA_JSON_WIRE_DEPTH, why, sizeof why) <
             0) {
    bad = why;
  } else if (!sc->top_is_object) {
    bad = "the list is not a JSON object";
  } else if (sc->items_kind == KUALA_JITEMS_OTHER) {
    /* Missing or null items is an empty list (Go encodes a nil slice as
     * null); anything else is not a List, not an empty synced one. */
    bad = "the list's items is not an array";
  }
  if (bad) {
    inf->st.list_errors++;
    report(inf, "informer: list failed", KUALA_EBADMSG, bad);
    backoff(inf, 1, KUALA_EBADMSG);
    return;
  }
  /* Ask for the next page first: the server prepares it while this one
   * is stored (its callback cannot run before this one returns). */
  const char *cont = jstr_z(inf, body, &sc->cont);
  int more = cont && *cont;
  if (more) {
    kuala_free(inf->continue_tok);
    inf->continue_tok = kuala_strdup(cont);
    list_page(inf);
  }
  for (size_t i = 0; i < sc->nitems; i++) {
    int rc = kuala__store_put_text(inf->store, body, &sc->items[i], KUALA_STORE_SKIP_SAME_RV,
                                   kuala__informer_change, inf);
    if (rc < 0) {
      inf->st.decode_errors++;
      report(inf, "informer: listed object skipped", rc, "the store refused it");
    }
    if (inf->stopping) {
      return;
    }
  }
  if (more) {
    return;
  }
  kuala_free(inf->continue_tok);
  inf->continue_tok = NULL;
  set_rv(inf, jstr_z(inf, body, &sc->rv));
  kuala_store_replace_end(inf->store, kuala__informer_change, inf);
  if (inf->stopping) {
    return;
  }
  kuala__informer_set_synced(inf);
  if (inf->stopping) {
    return; /* a sync waiter removed the last handler */
  }
  start_watch(inf);
}

static void list_page(kuala_informer_t *inf)
{
  if (inf->stopping) {
    return;
  }
  kuala_lw_opts_t o;
  memset(&o, 0, sizeof o);
  o.limit = (long)inf->opts.page_size;
  o.continue_token = inf->continue_tok;
  void *h = NULL;
  inf->state = RF_LISTING;
  int rc = inf->f->src->list(inf->f->src_data, &inf->key, &o, on_list, inf, &h);
  if (rc < 0) {
    backoff(inf, 1, rc);
    return;
  }
  inf->f->list_requests++;
  inf->list_pending = 1;
  inf->list_h = h;
}

static void start_list(kuala_informer_t *inf)
{
  inf->st.relists++;
  inf->last_relist_ms = uv_now(loop_of(inf));
  kuala_free(inf->continue_tok);
  inf->continue_tok = NULL;
  kuala_store_replace_begin(inf->store);
  list_page(inf);
}

/* A full list: streamed (sendInitialEvents) when the informer may, else
 * in pages. */
static void start_relist(kuala_informer_t *inf)
{
  if (!inf->opts.streaming_list || inf->stream_off) {
    start_list(inf);
    return;
  }
  inf->st.relists++;
  inf->last_relist_ms = uv_now(loop_of(inf));
  inf->f->list_requests++; /* a streaming list counts as one list */
  kuala_free(inf->continue_tok);
  inf->continue_tok = NULL;
  inf->stream_init = 1;
  kuala_store_replace_begin(inf->store);
  start_watch(inf);
}

/* ---- watch ---- */

/* The server should have ended the watch at its timeoutSeconds; still
 * open well after that means a dead peer that TCP did not notice. */
static void watchdog_fire(uv_timer_t *t)
{
  kuala_informer_t *inf = t->data;
  if (inf->stopping || !inf->watch_pending || !inf->watch_h) {
    return;
  }
  inf->st.watchdog_stops++;
  inf->st.watch_errors++;
  inf->watch_err = KUALA_ETIMEDOUT;
  report(inf, "informer: watch outlived its timeout, stopping it", KUALA_ETIMEDOUT,
         "no end from the server (a half-open connection?)");
  void *h = inf->watch_h;
  inf->watch_h = NULL;
  inf->f->src->stop_watch(inf->f->src_data, h);
}

/* Another informer learnt that the server's revision went back: stop this
 * watch (from the loop, not inside that informer's callback); on_done then
 * relists, since relist_after_watch is set. */
static void server_went_back_fire(uv_timer_t *t)
{
  kuala_informer_t *inf = t->data;
  if (inf->stopping || !inf->watch_pending || !inf->watch_h) {
    return;
  }
  void *h = inf->watch_h;
  inf->watch_h = NULL;
  inf->f->src->stop_watch(inf->f->src_data, h);
}

/* The server restarted with an empty or older store: every resourceVersion
 * this registry holds comes from the old one, not only the informer that
 * was told. The others relist too: a watch of theirs from an old RV would
 * otherwise be accepted once the new server's revision has caught up
 * (writes made by reconciles of stale objects do that within seconds) and
 * their stores would keep the vanished objects for good. */
static void server_went_back(kuala_informer_t *inf)
{
  size_t it = 0, kl;
  const char *k;
  void *v;
  while (kuala__map_next(&inf->f->informers, &it, &k, &kl, &v)) {
    kuala_informer_t *o = v;
    if (o == inf || !o->started || o->stopping || o->stream_init) {
      continue;
    }
    if (o->state == RF_BACKOFF) {
      o->backoff_relist = 1;
    } else if (o->state == RF_WATCHING && o->watch_pending && !o->relist_after_watch) {
      o->relist_after_watch = 1;
      o->st.server_restarts_seen++;
      uv_timer_start(&o->watchdog_timer, server_went_back_fire, 0, 0);
    }
  }
}

static void on_event(void *data, const kuala_lw_event_t *ev)
{
  kuala_informer_t *inf = data;
  if (inf->stopping || !inf->watch_pending || inf->watch_err || inf->relist_after_watch) {
    return;
  }
  inf->watch_events++;
  /* Without a tree the object is read from the line's text: the source's
   * scan of it, or one made here. BOOKMARK and ERROR events are rare and
   * small: they get a tree of their object. */
  const char *raw = NULL;
  size_t off = 0, l = 0;
  json_object *tree = ev->object, *owned = NULL;
  const kuala__jobj_t *jo = NULL;
  int is_obj_event =
      ev->type == KUALA_LW_ADDED || ev->type == KUALA_LW_MODIFIED || ev->type == KUALA_LW_DELETED;
  if (!tree && ev->line && (is_obj_event || ev->type == KUALA_LW_BOOKMARK)) {
    jo = ev->obj_scan;
    if (!jo) {
      char why[160];
      int rc = kuala__jscan(&inf->scan, KUALA_JSCAN_EVENT, ev->line, ev->len, KUALA_JSON_WIRE_DEPTH,
                            why, sizeof why);
      if (rc == 0 && (!inf->scan.top_is_object || !inf->scan.type.set ||
                      (inf->scan.obj.flags & KUALA_JOBJ_NOTOBJ) || inf->scan.obj.len == 0)) {
        snprintf(why, sizeof why, "not a watch event ({\"type\":...,\"object\":{...}})");
        rc = KUALA_EBADMSG;
      }
      if (rc < 0) {
        inf->st.decode_errors++;
        report(inf, "informer: watch line skipped", rc, why);
        return;
      }
      jo = &inf->scan.obj;
    }
    if (!is_obj_event) {
      if (kuala_json_parse(&owned, ev->line + jo->off, jo->len, NULL, 0) < 0) {
        inf->st.decode_errors++;
        report(inf, "informer: watch line skipped", KUALA_EBADMSG, "bookmark object");
        return;
      }
      tree = owned;
      jo = NULL;
    }
  } else if (ev->line && is_obj_event) {
    if (kuala__json_member(ev->line, ev->len, "object", &off, NULL) == 0) {
      raw = ev->line + off; /* the store stops at the object's end */
      l = ev->len - off;
    }
  }
  if (kuala_log_enabled(KUALA_LOG_TRACE) && (tree || jo)) {
    static const char *names[] = {"?", "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
    int t = (int)ev->type;
    char name[256];
    snprintf(name, sizeof name, "%s",
             jo ? nz(jstr_z(inf, ev->line, &jo->name)) : nz(meta_str(tree, "name")));
    kuala_log(KUALA_LOG_TRACE, NULL, 0, "informer: watch event", "resource", inf->key.resource,
              "type", t >= 0 && t < 6 ? names[t] : "?", "name", name, "resource_version",
              jo ? nz(jstr_z(inf, ev->line, &jo->rv)) : nz(meta_str(tree, "resourceVersion")),
              NULL);
  }
  const char *ev_rv = jo ? jstr_z(inf, ev->line, &jo->rv) : meta_str(tree, "resourceVersion");
  int rc = 0;
  switch (ev->type) {
    case KUALA_LW_ADDED:
    case KUALA_LW_MODIFIED:
      if (ev->type == KUALA_LW_ADDED) {
        inf->st.events_added++;
      } else {
        inf->st.events_modified++;
      }
      /* Inside a streaming list the initial ADDs are a relist. */
      if (jo) {
        rc = kuala__store_put_text(inf->store, ev->line, jo,
                                   inf->stream_init ? KUALA_STORE_SKIP_SAME_RV : 0,
                                   kuala__informer_change, inf);
      } else {
        rc = kuala_store_put(inf->store, tree, raw, l,
                             inf->stream_init ? KUALA_STORE_SKIP_SAME_RV : 0,
                             kuala__informer_change, inf);
      }
      if (!inf->stream_init) {
        /* Initial events carry unordered RVs: the end bookmark sets it. */
        set_rv(inf, ev_rv);
      }
      break;
    case KUALA_LW_DELETED:
      inf->st.events_deleted++;
      rc = jo ? kuala__store_delete_text(inf->store, ev->line, jo, kuala__informer_change, inf)
              : kuala_store_delete_obj(inf->store, tree, raw, l, kuala__informer_change, inf);
      if (rc == KUALA_ENOTFOUND) {
        rc = 0; /* already gone (e.g. a relist saw it first) */
      }
      set_rv(inf, ev_rv);
      break;
    case KUALA_LW_BOOKMARK:
      inf->st.events_bookmark++;
      set_rv(inf, ev_rv);
      if (inf->stream_init && is_initial_events_end(tree)) {
        inf->stream_init = 0;
        kuala_store_replace_end(inf->store, kuala__informer_change, inf);
        if (!inf->stopping) {
          kuala__informer_set_synced(inf);
        }
      }
      break;
    case KUALA_LW_INVALID:
      inf->st.decode_errors++;
      report(inf, "informer: watch line skipped", ev->err ? ev->err : KUALA_EBADMSG, ev->reason);
      break;
    case KUALA_LW_ERROR:
      inf->st.events_error++;
      if (ev->err == KUALA_EGONE) {
        inf->relist_after_watch = 1;
      } else if (is_rv_too_large(tree)) {
        /* Our RV is ahead of the server's: it restarted with an empty or
         * older store. Resuming can never work; relist (client-go does). */
        KUALA_LOG(KUALA_LOG_WARN,
                  "informer: resource version newer than the server's (restarted?), relisting",
                  "resource", inf->key.resource, "resourceVersion",
                  inf->last_rv ? inf->last_rv : "");
        inf->relist_after_watch = 1;
        server_went_back(inf);
      } else {
        inf->watch_err = ev->err ? ev->err : KUALA_EAPI;
        inf->st.watch_errors++;
        json_object *msg = NULL;
        if (tree) {
          json_object_object_get_ex(tree, "message", &msg);
        }
        report(
            inf, "informer: watch ERROR event", inf->watch_err,
            msg && json_object_is_type(msg, json_type_string) ? json_object_get_string(msg) : NULL);
      }
      /* The server closes after an ERROR; do not wait for it. */
      if (inf->watch_h) {
        void *h = inf->watch_h;
        inf->watch_h = NULL; /* stop once */
        inf->f->src->stop_watch(inf->f->src_data, h);
      }
      break;
    default:
      break;
  }
  if (rc < 0) {
    inf->st.decode_errors++;
    report(inf, "informer: watch event skipped", rc, "the store refused it");
  }
  json_object_put(owned);
}

static void on_done(void *data, int err)
{
  kuala_informer_t *inf = data;
  inf->watch_pending = 0;
  inf->watch_h = NULL;
  uv_timer_stop(&inf->watchdog_timer);
  if (inf->stopping) {
    kuala__informer_maybe_free(inf);
    return;
  }
  if (inf->stream_init) {
    /* The streaming list did not finish: this time, list in pages. A
     * stream that ended before its first event was refused (a server
     * without WatchList answers 4xx): page for good. One cut after some
     * events (a dropped connection, a server that shed a big stream) keeps
     * streaming for the next relist, as client-go retries it each time. */
    inf->stream_init = 0;
    if (inf->watch_events == 0) {
      inf->stream_off = 1;
      inf->st.streaming_fallback = 1;
      KUALA_LOG(KUALA_LOG_INFO, "informer: streaming list refused, falling back to list+watch",
                "resource", inf->key.resource, "error", kuala_err_name(err));
    } else {
      inf->st.streaming_cut++;
      KUALA_LOG(KUALA_LOG_INFO, "informer: streaming list cut, listing in pages this time",
                "resource", inf->key.resource, "error", kuala_err_name(err));
    }
    start_list(inf);
    return;
  }
  if (inf->relist_after_watch || err == KUALA_EGONE) {
    relist_soon(inf);
    return;
  }
  if (err == 0 && !inf->watch_err) {
    /* A clean end (timeoutSeconds, server restart of watches): resume from
     * the last RV at once, unless the server closes immediately each time. */
    uint64_t lived = uv_now(loop_of(inf)) - inf->watch_start_ms;
    if (inf->watch_events == 0 && lived < 1000) {
      backoff(inf, 0, KUALA_EAGAIN);
    } else {
      start_watch(inf);
    }
    return;
  }
  if (!inf->watch_err) {
    /* (An ERROR event was counted and reported when it came.) */
    inf->st.watch_errors++;
    report(inf, "informer: watch failed", err, NULL);
  }
  int why = inf->watch_err ? inf->watch_err : err;
  /* 404: the resource itself is gone (its CRD deleted, or the server
   * restarted without it). Whatever the store holds may not exist any
   * more, and a later watch from our RV could be accepted by a server whose
   * revision went back and caught up: relist (after the backoff) so the
   * store is replaced. Other failures (connection refused or reset, 5xx,
   * 429) resume from the last RV, as client-go does. */
  backoff(inf, why == KUALA_ENOTFOUND, why);
}

static void start_watch(kuala_informer_t *inf)
{
  if (inf->stopping) {
    return;
  }
  kuala_lw_opts_t o;
  memset(&o, 0, sizeof o);
  o.allow_watch_bookmarks = 1;
  long lo = inf->opts.watch_timeout_min_s, hi = inf->opts.watch_timeout_max_s;
  o.timeout_seconds = lo + (long)(kuala__informer_rand(inf) % (uint64_t)(hi - lo + 1));
  if (inf->stream_init) {
    /* The server's current state: after a 410 or a server that went back,
     * the last RV is no lower bound to ask for. */
    o.send_initial_events = 1;
    o.resource_version_match = "NotOlderThan";
    o.resource_version = "";
  } else {
    o.resource_version = *inf->last_rv ? inf->last_rv : NULL;
  }
  inf->st.watches++;
  if (inf->st.watches > 1) {
    inf->st.watch_restarts++;
  }
  inf->watch_start_ms = uv_now(loop_of(inf));
  inf->watch_events = 0;
  inf->relist_after_watch = 0;
  inf->watch_err = 0;
  inf->state = RF_WATCHING;
  void *h = NULL;
  int rc = inf->f->src->watch(inf->f->src_data, &inf->key, &o, on_event, on_done, inf, &h);
  if (rc < 0) {
    if (inf->stream_init) {
      inf->stream_init = 0;
      inf->stream_off = 1;
      inf->st.streaming_fallback = 1;
      start_list(inf);
    } else {
      backoff(inf, 0, rc);
    }
    return;
  }
  inf->watch_pending = 1;
  inf->watch_h = h;
  if (kuala_log_enabled(KUALA_LOG_DEBUG)) {
    char to[32];
    snprintf(to, sizeof to, "%ld", o.timeout_seconds);
    kuala_log(KUALA_LOG_DEBUG, NULL, 0,
              inf->st.watches > 1 ? "informer: watch reconnect" : "informer: watch start",
              "resource", inf->key.resource, "namespace", inf->key.ns ? inf->key.ns : "",
              "resource_version", o.resource_version ? o.resource_version : "", "streaming_list",
              o.send_initial_events ? "true" : "false", "timeout_s", to, NULL);
  }
  uv_timer_start(&inf->watchdog_timer, watchdog_fire,
                 (uint64_t)o.timeout_seconds * 1000 + inf->opts.watch_grace_ms, 0);
}

void kuala__reflector_start(kuala_informer_t *inf)
{
  if (inf->started) {
    return;
  }
  inf->started = 1;
  start_relist(inf);
}

void kuala__reflector_stop(kuala_informer_t *inf)
{
  uv_timer_stop(&inf->backoff_timer);
  uv_timer_stop(&inf->watchdog_timer);
  if (inf->list_pending && inf->list_h) {
    void *h = inf->list_h;
    inf->list_h = NULL; /* cancel once */
    inf->f->src->cancel_list(inf->f->src_data, h);
  }
  if (inf->watch_pending && inf->watch_h) {
    void *h = inf->watch_h;
    inf->watch_h = NULL;
    inf->f->src->stop_watch(inf->f->src_data, h);
  }
  inf->state = RF_IDLE;
}
