/*
 * store.c: the emulator's object store and watch history.
 *
 * Invariants:
 *   - e->rev is the last revision handed out; each committed write (create,
 *     change, removal) takes exactly one new revision, a no-op takes none.
 *   - Each emu_obj_t is in exactly one store map (by key) and, with a uid,
 *     in e->uids; its `json` blob is the stored object with its
 *     metadata.resourceVersion equal to `rv`.
 *   - store->sorted holds exactly the map's objects in key order when
 *     store->dirty is 0; any other state is rebuilt on the next read.
 *   - The history ring holds the most recent events in revision order;
 *     e->oldest_rv is the highest revision that has been dropped from it
 *     (0 when nothing was dropped), so a watch from N can be served from
 *     the ring iff N >= e->oldest_rv.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "kuala/alloc.h"
#include "jsonx.h"
#include "kuala/json.h"

emu_blob_t *emu_blob_new(const char *s, size_t len)
{
  emu_blob_t *b = kuala_malloc(sizeof *b + len + 1);
  b->refs = 1;
  b->len = len;
  memcpy(b->data, s, len);
  b->data[len] = '\0';
  return b;
}

emu_blob_t *emu_blob_ref(emu_blob_t *b)
{
  if (b) {
    b->refs++;
  }
  return b;
}

void emu_blob_unref(emu_blob_t *b)
{
  if (b && --b->refs == 0) {
    kuala_free(b);
  }
}

char *emu_key(const char *ns, const char *name)
{
  size_t a = ns ? strlen(ns) : 0, b = strlen(name);
  char *k = kuala_malloc(a + b + 2);
  if (a) {
    memcpy(k, ns, a);
    k[a] = '/';
    memcpy(k + a + 1, name, b + 1);
  } else {
    memcpy(k, name, b + 1);
  }
  return k;
}

void emu_store_init(emu_t *e, size_t history)
{
  e->ring_cap = history ? history : 10000;
  e->ring = kuala_calloc(e->ring_cap, sizeof *e->ring);
  kuala__map_init(&e->uids);
}

emu_store_t *emu_store_new(void)
{
  emu_store_t *s = kuala_calloc(1, sizeof *s);
  kuala__map_init(&s->objs);
  return s;
}

static void obj_free(emu_obj_t *o)
{
  kuala_free(o->key);
  kuala_free(o->ns);
  kuala_free(o->name);
  kuala_free(o->uid);
  emu_blob_unref(o->json);
  if (o->labels) {
    json_object_put(o->labels);
  }
  kuala_free(o);
}

void emu_store_release(emu_t *e, emu_store_t *s)
{
  if (--s->refs > 0) {
    return;
  }
  size_t it = 0;
  const char *k;
  size_t kl;
  void *v;
  while (kuala__map_next(&s->objs, &it, &k, &kl, &v)) {
    emu_obj_t *o = v;
    if (o->uid) {
      kuala__map_del(&e->uids, o->uid, strlen(o->uid));
    }
    obj_free(o);
  }
  kuala__map_free(&s->objs);
  kuala_free(s->sorted);
  kuala_free(s->scratch);
  kuala_free(s);
}

emu_obj_t *emu_store_get(emu_store_t *s, const char *ns, const char *name)
{
  char *k = emu_key(ns, name);
  emu_obj_t *o = kuala__map_get(&s->objs, k, strlen(k));
  kuala_free(k);
  return o;
}

static int cmp_obj(const void *a, const void *b)
{
  const emu_obj_t *x = *(emu_obj_t *const *)a, *y = *(emu_obj_t *const *)b;
  return strcmp(x->key, y->key);
}

emu_obj_t **emu_store_sorted(emu_store_t *s, size_t *n)
{
  if (s->dirty) {
    if (s->capsorted < s->objs.len) {
      s->capsorted = s->objs.len + 16;
      s->sorted = kuala_realloc(s->sorted, s->capsorted * sizeof *s->sorted);
    }
    size_t it = 0, i = 0;
    const char *k;
    size_t kl;
    void *v;
    while (kuala__map_next(&s->objs, &it, &k, &kl, &v)) {
      s->sorted[i++] = v;
    }
    s->nsorted = i;
    qsort(s->sorted, i, sizeof *s->sorted, cmp_obj);
    s->dirty = 0;
  }
  *n = s->nsorted;
  return s->sorted;
}

json_object *emu_obj_parse(const emu_obj_t *o)
{
  json_object *obj = NULL;
  kuala__json_parse_stored(&obj, o->json->data, o->json->len);
  return obj;
}

size_t emu_history_count(const emu_t *e)
{
  return e->ring_len;
}

emu_event_t *emu_history_at(emu_t *e, size_t i)
{
  return &e->ring[(e->ring_head + i) % e->ring_cap];
}

static void event_clear(emu_event_t *ev)
{
  emu_blob_unref(ev->obj);
  emu_blob_unref(ev->old);
  kuala_free(ev->ns);
  kuala_free(ev->name);
  if (ev->labels) {
    json_object_put(ev->labels);
  }
  if (ev->old_labels) {
    json_object_put(ev->old_labels);
  }
  memset(ev, 0, sizeof *ev);
}

static emu_event_t *push_event(emu_t *e)
{
  if (e->ring_len == e->ring_cap) {
    emu_event_t *old = &e->ring[e->ring_head];
    e->oldest_rv = old->rv;
    event_clear(old);
    e->ring_head = (e->ring_head + 1) % e->ring_cap;
    e->ring_len--;
  }
  emu_event_t *ev = &e->ring[(e->ring_head + e->ring_len) % e->ring_cap];
  e->ring_len++;
  return ev;
}

static json_object *copy_labels(json_object *obj)
{
  json_object *l = kuala_json_get(obj, "metadata", "labels", NULL);
  if (!l || !json_object_is_type(l, json_type_object)) {
    return NULL;
  }
  return kuala_json_copy(l);
}

static void set_rv(json_object *obj, uint64_t rv)
{
  char b[24];
  snprintf(b, sizeof b, "%llu", (unsigned long long)rv);
  kuala_json_set_str(kuala_json_ensure_obj(obj, "metadata"), "resourceVersion", b);
}

/* Equal when the only differences are managedFields timestamps. */
static int same_but_mf_times(json_object *a, json_object *b)
{
  json_object *ca = kuala_json_copy(a), *cb = kuala_json_copy(b);
  json_object *mfs[2] = {kuala_json_get(ca, "metadata", "managedFields", NULL),
                         kuala_json_get(cb, "metadata", "managedFields", NULL)};
  for (int k = 0; k < 2; k++) {
    if (mfs[k] && json_object_is_type(mfs[k], json_type_array)) {
      for (size_t i = 0; i < json_object_array_length(mfs[k]); i++) {
        json_object *ent = json_object_array_get_idx(mfs[k], i);
        if (json_object_is_type(ent, json_type_object)) {
          json_object_object_del(ent, "time");
        }
      }
    }
  }
  int eq = kuala_json_equal(ca, cb);
  json_object_put(ca);
  json_object_put(cb);
  return eq;
}

static void index_fields(emu_obj_t *o, json_object *obj)
{
  json_object *md = kuala_json_get(obj, "metadata", NULL);
  const char *uid = kuala_json_path_str(md, "uid");
  kuala_free(o->uid);
  o->uid = uid ? kuala_strdup(uid) : NULL;
  if (o->labels) {
    json_object_put(o->labels);
  }
  o->labels = copy_labels(obj);
  o->deleting = kuala_json_get(md, "deletionTimestamp", NULL) != NULL &&
                !json_object_is_type(kuala_json_get(md, "deletionTimestamp", NULL), json_type_null);
  json_object *owners = kuala_json_get(md, "ownerReferences", NULL);
  o->has_owners = owners && json_object_is_type(owners, json_type_array) &&
                  json_object_array_length(owners) > 0;
  json_object *fins = kuala_json_get(md, "finalizers", NULL);
  o->has_finalizers =
      fins && json_object_is_type(fins, json_type_array) && json_object_array_length(fins) > 0;
}

int emu_commit(emu_t *e, emu_rtype_t *rt, json_object *obj, uint64_t *out_rv)
{
  emu_store_t *s = rt->store;
  const char *ns = kuala_json_path_str(obj, "metadata.namespace");
  const char *name = kuala_json_path_str(obj, "metadata.name");
  if (!rt->namespaced) {
    ns = NULL;
  }
  char *key = emu_key(ns, name);
  emu_obj_t *o = kuala__map_get(&s->objs, key, strlen(key));
  json_object *old_obj = NULL;
  if (o) {
    set_rv(obj, o->rv);
    size_t len;
    const char *text = kuala_json_compact(obj, &len);
    if (len == o->json->len && memcmp(text, o->json->data, len) == 0) {
      *out_rv = o->rv;
      kuala_free(key);
      return 0;
    }
    old_obj = emu_obj_parse(o);
    if (old_obj && same_but_mf_times(old_obj, obj)) {
      json_object_put(old_obj);
      *out_rv = o->rv;
      kuala_free(key);
      return 0;
    }
  }
  uint64_t rv = ++e->rev;
  set_rv(obj, rv);
  size_t len;
  const char *text = kuala_json_compact(obj, &len);
  emu_event_t *ev = push_event(e);
  ev->rv = rv;
  ev->store = s;
  ev->ns = kuala_strdup(ns ? ns : "");
  ev->name = kuala_strdup(name);
  if (o) {
    ev->type = EMU_EV_MODIFIED;
    ev->old = emu_blob_ref(o->json);
    /* Label objects are immutable once indexed (replaced, never edited), so
     * events share them with the store. */
    ev->old_labels = o->labels ? json_object_get(o->labels) : NULL;
    emu_blob_unref(o->json);
    if (o->uid) {
      kuala__map_del(&e->uids, o->uid, strlen(o->uid));
    }
    kuala_free(key);
  } else {
    ev->type = EMU_EV_ADDED;
    o = kuala_calloc(1, sizeof *o);
    o->key = key;
    o->ns = kuala_strdup(ns ? ns : "");
    o->name = kuala_strdup(name);
    kuala__map_put(&s->objs, o->key, strlen(o->key), o);
    if (!s->dirty) {
      if (s->nsorted && strcmp(s->sorted[s->nsorted - 1]->key, o->key) > 0) {
        s->dirty = 1;
      } else {
        if (s->nsorted == s->capsorted) {
          s->capsorted = s->capsorted ? s->capsorted * 2 : 64;
          s->sorted = kuala_realloc(s->sorted, s->capsorted * sizeof *s->sorted);
        }
        s->sorted[s->nsorted++] = o;
      }
    }
  }
  o->json = emu_blob_new(text, len);
  o->rv = rv;
  index_fields(o, obj);
  if (o->uid) {
    kuala__map_put(&e->uids, o->uid, strlen(o->uid), o);
  }
  ev->obj = emu_blob_ref(o->json);
  ev->labels = o->labels ? json_object_get(o->labels) : NULL;
  s->last_change = rv;
  emu_persist_put(e, rt, o->key, o->json->data, o->json->len);
  if (old_obj) {
    json_object_put(old_obj);
  }
  *out_rv = rv;
  emu_watch_notify(e, ev);
  emu_controllers_kick(e);
  return 1;
}

void emu_remove(emu_t *e, emu_rtype_t *rt, emu_obj_t *o)
{
  emu_store_t *s = rt->store;
  uint64_t rv = ++e->rev;
  json_object *last = emu_obj_parse(o);
  set_rv(last, rv);
  size_t len;
  const char *text = kuala_json_compact(last, &len);
  emu_event_t *ev = push_event(e);
  ev->rv = rv;
  ev->type = EMU_EV_DELETED;
  ev->store = s;
  ev->ns = kuala_strdup(o->ns);
  ev->name = kuala_strdup(o->name);
  ev->obj = emu_blob_new(text, len);
  ev->old = emu_blob_ref(o->json);
  ev->labels = o->labels ? json_object_get(o->labels) : NULL;
  ev->old_labels = o->labels ? json_object_get(o->labels) : NULL;
  json_object_put(last);
  kuala__map_del(&s->objs, o->key, strlen(o->key));
  if (o->uid) {
    kuala__map_del(&e->uids, o->uid, strlen(o->uid));
  }
  emu_persist_del(e, rt, o->key);
  s->dirty = 1;
  s->last_change = rv;
  obj_free(o);
  emu_watch_notify(e, ev);
  emu_controllers_kick(e);
}

void emu_store_load(emu_t *e, emu_rtype_t *rt, json_object *obj)
{
  emu_store_t *s = rt->store;
  const char *ns = rt->namespaced ? kuala_json_path_str(obj, "metadata.namespace") : NULL;
  const char *name = kuala_json_path_str(obj, "metadata.name");
  const char *rvs = kuala_json_path_str(obj, "metadata.resourceVersion");
  if (!name) {
    return;
  }
  char *key = emu_key(ns, name);
  emu_obj_t *o = kuala__map_get(&s->objs, key, strlen(key));
  if (o) {
    kuala_free(key);
    emu_blob_unref(o->json);
    if (o->uid) {
      kuala__map_del(&e->uids, o->uid, strlen(o->uid));
    }
  } else {
    o = kuala_calloc(1, sizeof *o);
    o->key = key;
    o->ns = kuala_strdup(ns ? ns : "");
    o->name = kuala_strdup(name);
    kuala__map_put(&s->objs, o->key, strlen(o->key), o);
  }
  size_t len;
  const char *text = kuala_json_compact(obj, &len);
  o->json = emu_blob_new(text, len);
  o->rv = rvs ? strtoull(rvs, NULL, 10) : 0;
  index_fields(o, obj);
  if (o->uid) {
    kuala__map_put(&e->uids, o->uid, strlen(o->uid), o);
  }
  s->dirty = 1;
  if (o->rv > s->last_change) {
    s->last_change = o->rv;
  }
}

emu_obj_t **emu_store_all(emu_store_t *s, size_t *n)
{
  if (!s->dirty) {
    *n = s->nsorted;
    return s->sorted;
  }
  if (s->capscratch < s->objs.len) {
    s->capscratch = s->objs.len + 16;
    s->scratch = kuala_realloc(s->scratch, s->capscratch * sizeof *s->scratch);
  }
  size_t it = 0, i = 0;
  const char *k;
  size_t kl;
  void *v;
  while (kuala__map_next(&s->objs, &it, &k, &kl, &v)) {
    s->scratch[i++] = v;
  }
  *n = i;
  return s->scratch;
}
