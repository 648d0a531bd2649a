/* latebackend.c: see latebackend.h. */
#include "latebackend.h"

#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"

typedef struct {
  uv_timer_t timer;
  const char *reply;
  kuala_call_done_cb done;
  void *data;
} call_t;

static void call_closed(uv_handle_t *h)
{
  kuala_free(h->data);
}

static void call_fire(uv_timer_t *t)
{
  call_t *c = t->data;
  c->done(c->data, 0, c->reply, strlen(c->reply));
  uv_close((uv_handle_t *)t, call_closed);
}

static int lb_get(void *self, const kuala_cache_query_t *q, const char **json, size_t *len)
{
  latebackend_t *lb = self;
  (void)q;
  if (!lb->object) {
    return KUALA_ENOTFOUND;
  }
  *json = lb->object;
  *len = strlen(lb->object);
  return 0;
}

static int lb_list(void *self, const kuala_cache_query_t *q, kuala_cache_each_cb each, void *data)
{
  latebackend_t *lb = self;
  (void)q;
  if (lb->object) {
    each(data, lb->object, strlen(lb->object));
  }
  return 0;
}

static int lb_start(void *self, const kuala_call_t *call, kuala_call_done_cb done, void *data,
                    void **handle)
{
  latebackend_t *lb = self;
  (void)call;
  call_t *c = kuala_calloc(1, sizeof *c);
  c->reply = lb->reply;
  c->done = done;
  c->data = data;
  uv_timer_init(lb->loop, &c->timer);
  c->timer.data = c;
  uv_timer_start(&c->timer, call_fire, lb->delay_ms, 0);
  *handle = c;
  return 0;
}

static void lb_cancel(void *self, void *handle)
{
  (void)self;
  call_t *c = handle;
  uv_timer_stop(&c->timer);
  c->done(c->data, KUALA_ECANCELED, NULL, 0);
  uv_close((uv_handle_t *)&c->timer, call_closed);
}

kuala_backend_t latebackend(latebackend_t *lb)
{
  kuala_backend_t be;
  memset(&be, 0, sizeof be);
  be.cache_get = lb_get;
  be.cache_list = lb_list;
  be.call_start = lb_start;
  be.call_cancel = lb_cancel;
  be.self = lb;
  return be;
}
