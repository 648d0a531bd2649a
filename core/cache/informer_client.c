/*
 * informer_client.c: the list/watch source of kuala/informer.h bound to
 * the API client (kuala/client.h).
 *
 * Each list or watch gets a small context that adapts the client's
 * callbacks to the source's; it is freed when the final callback ran. The
 * handle given to the reflector is that context.
 *
 * Streaming lists pass sendInitialEvents through; a server that refuses it
 * answers with an HTTP error and the reflector falls back to list + watch.
 * Metadata-only informers ask for PartialObjectMetadata(List), as client-go's
 * metadata informers do, with plain JSON as the fallback: a server that
 * ignores the request sends full objects, which the store trims.
 */
#include <string.h>

#include "informer.h"
#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/error.h"

#define ACCEPT_PARTIAL_LIST \
  "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
#define ACCEPT_PARTIAL \
  "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

typedef struct {
  kuala_client_t *c;
} csrc_t;

typedef struct {
  kuala_lw_list_cb cb;
  void *data;
  kuala_client_req_t *req;
} lctx_t;

typedef struct {
  kuala_lw_event_cb on_event;
  kuala_lw_done_cb on_done;
  void *data;
  kuala_watch_t *w;
} wctx_t;

static void target_of(kuala_client_target_t *t, const kuala_informer_key_t *key)
{
  memset(t, 0, sizeof(*t));
  t->group = key->group;
  t->version = key->version;
  t->resource = key->resource;
  t->ns = key->ns;
}

static void list_done(void *data, int err, kuala_client_resp_t *resp)
{
  lctx_t *x = data;
  /* The reflector scans the body's text itself: no tree here. */
  if (err == 0 && (!resp || !resp->body || resp->body_len == 0)) {
    err = KUALA_EBADMSG;
  }
  if (err == 0) {
    x->cb(x->data, 0, NULL, resp->body, resp->body_len);
  } else {
    const char *why = resp && resp->message ? resp->message : NULL;
    if (!why && err == KUALA_EBADMSG) {
      why = "empty list body";
    }
    x->cb(x->data, err, NULL, why, why ? strlen(why) : 0);
  }
  kuala_free(x);
}

static int c_list(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                  kuala_lw_list_cb cb, void *data, void **handle)
{
  csrc_t *cs = src;
  kuala_client_target_t t;
  kuala_client_opts_t co;
  target_of(&t, key);
  kuala_client_opts_init(&co);
  co.label_selector = key->label_selector;
  co.field_selector = key->field_selector;
  co.limit = o->limit;
  co.continue_token = o->continue_token;
  co.resource_version = o->resource_version;
  co.resource_version_match = o->resource_version_match;
  if (key->metadata_only) {
    co.accept = ACCEPT_PARTIAL_LIST;
  }
  lctx_t *x = kuala_calloc(1, sizeof(*x));
  x->cb = cb;
  x->data = data;
  int rc = kuala_client_list(&x->req, cs->c, &t, &co, list_done, x);
  if (rc < 0) {
    kuala_free(x);
    return rc;
  }
  *handle = x;
  return 0;
}

static void c_cancel_list(void *src, void *handle)
{
  lctx_t *x = handle;
  kuala_client_req_cancel(x->req);
}

static void watch_event(void *data, const kuala_watch_event_t *ev)
{
  wctx_t *x = data;
  kuala_lw_event_t e;
  e.type = (kuala_lw_type_t)ev->type;
  e.object = ev->object;
  e.line = ev->line;
  e.len = ev->len;
  e.err = ev->err;
  e.reason = ev->reason;
  e.obj_scan = ev->obj_scan;
  x->on_event(x->data, &e);
}

static void watch_done(void *data, int err, kuala_client_resp_t *resp)
{
  wctx_t *x = data;
  x->on_done(x->data, err);
  kuala_free(x);
}

static int c_watch(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                   kuala_lw_event_cb on_event, kuala_lw_done_cb on_done, void *data, void **handle)
{
  csrc_t *cs = src;
  kuala_client_target_t t;
  kuala_client_opts_t co;
  target_of(&t, key);
  kuala_client_opts_init(&co);
  co.label_selector = key->label_selector;
  co.field_selector = key->field_selector;
  co.resource_version = o->resource_version;
  co.resource_version_match = o->resource_version_match;
  if (key->metadata_only) {
    co.accept = ACCEPT_PARTIAL;
  }
  co.allow_watch_bookmarks = o->allow_watch_bookmarks;
  co.timeout_seconds = o->timeout_seconds;
  co.send_initial_events = o->send_initial_events;
  co.scan_events = 1;
  wctx_t *x = kuala_calloc(1, sizeof(*x));
  x->on_event = on_event;
  x->on_done = on_done;
  x->data = data;
  int rc = kuala_client_watch(&x->w, cs->c, &t, &co, watch_event, watch_done, x);
  if (rc < 0) {
    kuala_free(x);
    return rc;
  }
  *handle = x;
  return 0;
}

static void c_stop_watch(void *src, void *handle)
{
  wctx_t *x = handle;
  kuala_watch_stop(x->w);
}

static const kuala_lw_source_t client_source = {c_list, c_cancel_list, c_watch, c_stop_watch};

int kuala__informer_client_source(const kuala_lw_source_t **src, void **src_data,
                                  struct kuala_client_s *client)
{
  csrc_t *cs = kuala_calloc(1, sizeof(*cs));
  cs->c = client;
  *src = &client_source;
  *src_data = cs;
  return 0;
}

void kuala__informer_client_source_free(void *src_data)
{
  kuala_free(src_data);
}
