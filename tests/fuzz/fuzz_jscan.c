/*
 * fuzz_jscan.c: libFuzzer target for the tree-free ingest path: the
 * validating scanner (core/base/jscan.c) against the json-c path it
 * replaces, and the store's put from scanned text (kuala__store_put_text)
 * against its put from a json-c tree.
 *
 * Properties, for the input read as a single object, a list page and a
 * watch event:
 *  - the scanner's verdict is kuala_json_validate's, with the same
 *    message; the only extra refusal is "duplicate key" (list and event
 *    envelopes), and then the text is valid;
 *  - for a valid object without a duplicate among the keys read: "not an
 *    object", "has a metadata object", and name / namespace /
 *    resourceVersion / uid (decoded) are what json-c's tree holds; the
 *    labels and ownerReferences spans parse to the tree's values;
 *  - a list's items are json-c's items, one record each, in order; an
 *    event's type is json-c's;
 *  - a store fed from the text holds what a store fed from the tree holds
 *    (same result code, same compact text and RV), except for a label key
 *    given twice, which only the text path refuses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jscan.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/store.h"
#include "store.h"

static void str_matches(const char *t, const kuala__jstr_t *v, json_object *want)
{
  int is_str = want && json_object_is_type(want, json_type_string);
  if (v->set != is_str) {
    abort();
  }
  if (!is_str) {
    return;
  }
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala__jscan_unescape(t + v->off, v->len, &b);
  if ((int)b.len != json_object_get_string_len(want) ||
      (b.len && memcmp(b.data, json_object_get_string(want), b.len) != 0)) {
    abort();
  }
  kuala_buf_free(&b);
}

static void span_matches(const char *t, const kuala__jspan_t *sp, json_object *want, json_type type)
{
  int is = want && json_object_is_type(want, type);
  if ((sp->len > 0) != is) {
    abort();
  }
  if (!is) {
    return;
  }
  json_object *got = NULL;
  if (kuala_json_parse(&got, t + sp->off, sp->len, NULL, 0) != 0 || !json_object_equal(got, want)) {
    abort();
  }
  json_object_put(got);
}

static json_object *member(json_object *o, const char *k)
{
  json_object *v = NULL;
  if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, k, &v)) {
    return NULL;
  }
  return v;
}

/* One scanned object against its json-c tree. */
static void obj_matches(const char *t, const kuala__jobj_t *o, json_object *tree)
{
  int is_obj = json_object_is_type(tree, json_type_object);
  if (!!(o->flags & KUALA_JOBJ_NOTOBJ) == is_obj) {
    abort();
  }
  if (!is_obj || (o->flags & KUALA_JOBJ_DUP)) {
    return; /* (json-c kept the last of a duplicate; the store refuses it) */
  }
  json_object *meta = member(tree, "metadata");
  int has_meta = meta && json_object_is_type(meta, json_type_object);
  if (!!(o->flags & KUALA_JOBJ_META) != has_meta) {
    abort();
  }
  if (!has_meta) {
    return;
  }
  str_matches(t, &o->name, member(meta, "name"));
  str_matches(t, &o->ns, member(meta, "namespace"));
  str_matches(t, &o->rv, member(meta, "resourceVersion"));
  str_matches(t, &o->uid, member(meta, "uid"));
  span_matches(t, &o->labels, member(meta, "labels"), json_type_object);
  span_matches(t, &o->owners, member(meta, "ownerReferences"), json_type_array);
}

typedef struct {
  int n;
  char rv[64];
  kuala_buf_t json;
} last_t;

static void on_change(void *data, kuala_store_change_t ch, const kuala_obj_t *old,
                      const kuala_obj_t *obj, int unknown)
{
  (void)ch;
  (void)old;
  (void)unknown;
  last_t *l = data;
  l->n++;
  snprintf(l->rv, sizeof l->rv, "%s", obj->rv);
  kuala_buf_reset(&l->json);
  kuala_buf_append(&l->json, obj->json, obj->json_len);
}

/* The store from text against the store from the tree. */
static void store_matches(const char *t, const kuala__jobj_t *o, json_object *tree)
{
  kuala_store_t *a, *b;
  kuala_store_new(&a, NULL);
  kuala_store_new(&b, NULL);
  last_t la = {0, "", KUALA_BUF_INIT(0)}, lb = {0, "", KUALA_BUF_INIT(0)};
  int ra = kuala__store_put_text(a, t, o, 0, on_change, &la);
  int rb = KUALA_EINVAL;
  if (!(o->flags & (KUALA_JOBJ_NOTOBJ | KUALA_JOBJ_DUP))) {
    rb = kuala_store_put(b, tree, t + o->off, o->len, 0, on_change, &lb);
  }
  if (o->flags & KUALA_JOBJ_DUP) {
    if (ra != KUALA_EBADMSG) {
      abort();
    }
  } else if (ra == KUALA_EBADMSG && rb == 0) {
    /* Only a repeated label key may do that. */
    json_object *labels = member(member(tree, "metadata"), "labels");
    size_t off = o->labels.off, len = o->labels.len;
    if (!labels ||
        kuala_json_member_count(t + off, len) == (size_t)json_object_object_length(labels)) {
      abort();
    }
  } else if (ra != rb || la.n != lb.n ||
             (ra == 0 && (strcmp(la.rv, lb.rv) != 0 || la.json.len != lb.json.len ||
                          memcmp(la.json.data, lb.json.data, la.json.len) != 0))) {
    abort();
  }
  kuala_buf_free(&la.json);
  kuala_buf_free(&lb.json);
  kuala_store_free(a);
  kuala_store_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  char verr[128], err[128];
  int vrc = kuala_json_validate(s, size, KUALA_JSON_WIRE_DEPTH, verr, sizeof verr);
  json_object *tree = NULL;
  if (vrc == 0 && kuala_json_parse(&tree, s, size, NULL, 0) != 0) {
    abort();
  }
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  static const kuala__jscan_mode_t modes[] = {KUALA_JSCAN_OBJECT, KUALA_JSCAN_LIST,
                                              KUALA_JSCAN_EVENT};
  for (size_t m = 0; m < 3; m++) {
    int rc = kuala__jscan(&sc, modes[m], s, size, KUALA_JSON_WIRE_DEPTH, err, sizeof err);
    if (rc != 0 && vrc == 0) {
      if (modes[m] == KUALA_JSCAN_OBJECT || strncmp(err, "duplicate key", 13) != 0) {
        abort();
      }
      continue;
    }
    if (rc != vrc || (rc != 0 && strcmp(err, verr) != 0)) {
      abort();
    }
    if (rc != 0) {
      continue;
    }
    if (sc.top_is_object != json_object_is_type(tree, json_type_object)) {
      abort();
    }
    if (modes[m] == KUALA_JSCAN_OBJECT) {
      obj_matches(s, &sc.obj, tree);
      if (!(sc.obj.flags & KUALA_JOBJ_NOTOBJ)) {
        store_matches(s, &sc.obj, tree);
      }
    } else if (modes[m] == KUALA_JSCAN_LIST && sc.top_is_object) {
      json_object *items = NULL;
      /* (json-c holds null as a NULL member) */
      int present = json_object_object_get_ex(tree, "items", &items);
      int kind = !present                                      ? KUALA_JITEMS_ABSENT
                 : !items                                      ? KUALA_JITEMS_NULL
                 : json_object_is_type(items, json_type_array) ? KUALA_JITEMS_ARRAY
                                                               : KUALA_JITEMS_OTHER;
      /* json-c keeps the last "items"; the scanner refused duplicates. */
      if (kind != sc.items_kind) {
        abort();
      }
      size_t n = kind == KUALA_JITEMS_ARRAY ? json_object_array_length(items) : 0;
      if (n != sc.nitems) {
        abort();
      }
      for (size_t i = 0; i < n; i++) {
        obj_matches(s, &sc.items[i], json_object_array_get_idx(items, i));
      }
      json_object *lm = member(tree, "metadata");
      if (lm && json_object_is_type(lm, json_type_object)) {
        str_matches(s, &sc.cont, member(lm, "continue"));
        str_matches(s, &sc.rv, member(lm, "resourceVersion"));
      } else if (sc.cont.set || sc.rv.set) {
        abort();
      }
    } else if (modes[m] == KUALA_JSCAN_EVENT && sc.top_is_object) {
      str_matches(s, &sc.type, member(tree, "type"));
      json_object *obj = member(tree, "object");
      if (!obj) {
        if (sc.obj.len != 0) {
          abort();
        }
      } else if (json_object_is_type(obj, json_type_object)) {
        obj_matches(s, &sc.obj, obj);
      } else if (!(sc.obj.flags & KUALA_JOBJ_NOTOBJ)) {
        abort();
      }
    }
  }
  kuala__jscan_free(&sc);
  json_object_put(tree);
  return 0;
}
