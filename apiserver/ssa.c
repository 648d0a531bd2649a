/*
 * ssa.c: server-side apply over plain JSON and managedFields bookkeeping.
 *
 * Field sets are FieldsV1 tries held as json-c objects: keys are path
 * elements ("f:spec", "k:{\"name\":\"c\"}", "v:\"a\"", "i:0"), values are
 * child tries. A node is a member of the set when it has no children or
 * when it carries the "." child; a node whose only role is to lead to its
 * children has neither. All set operations below keep that invariant.
 *
 * managedFields entries are parsed into an array of mf_entry_t, edited, and
 * written back sorted. Inputs are borrowed; kuala__ssa_apply builds a new
 * object, kuala__ssa_update edits the object it is given.
 */
#include "ssa.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonx.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/json.h"
#include "patch.h"

#define MAX_MANAGER_LEN 128

/* ------------------------------------------------------------- tries */

static int trie_children(json_object *n)
{
  int c = 0;
  json_object_object_foreach(n, k, v)
  {
    (void)v;
    if (strcmp(k, ".") != 0) {
      c++;
    }
  }
  return c;
}

static int trie_member(json_object *n)
{
  return json_object_object_length(n) == 0 || json_object_object_get_ex(n, ".", NULL);
}

/* Set whether `n` itself is a member, given that it has children or not. */
static void trie_set_member(json_object *n, int member)
{
  if (trie_children(n) == 0) {
    json_object_object_del(n, ".");
    return; /* a childless node is always a member; callers delete it otherwise */
  }
  if (member) {
    json_object_object_add(n, ".", json_object_new_object());
  } else {
    json_object_object_del(n, ".");
  }
}

/* dst ∪= src. */
static void trie_union(json_object *dst, json_object *src)
{
  json_object_object_foreach(src, k, sk)
  {
    if (strcmp(k, ".") == 0) {
      continue;
    }
    json_object *dk = kuala__json_get(dst, k);
    if (!dk) {
      json_object_object_add(dst, k, kuala_json_copy(sk));
      continue;
    }
    int member = trie_member(dk) || trie_member(sk);
    trie_union(dk, sk);
    trie_set_member(dk, member);
  }
}

/* dst −= src; children left without members are dropped. */
static void trie_subtract(json_object *dst, json_object *src)
{
  json_object *drop = json_object_new_array();
  json_object_object_foreach(src, k, sk)
  {
    if (strcmp(k, ".") == 0) {
      continue;
    }
    json_object *dk = kuala__json_get(dst, k);
    if (!dk) {
      continue;
    }
    int member = trie_member(dk) && !trie_member(sk);
    trie_subtract(dk, sk);
    if (trie_children(dk) == 0) {
      json_object_object_del(dk, ".");
      if (!member) {
        json_object_array_add(drop, json_object_new_string(k));
      }
    } else {
      trie_set_member(dk, member);
    }
  }
  for (size_t i = 0; i < json_object_array_length(drop); i++) {
    json_object_object_del(dst, json_object_get_string(json_object_array_get_idx(drop, i)));
  }
  json_object_put(drop);
}

/* Add the path `els[0..n)` as a member. */
static void trie_add_path(json_object *root, json_object *els)
{
  json_object *cur = root;
  size_t n = json_object_array_length(els);
  for (size_t i = 0; i < n; i++) {
    const char *el = json_object_get_string(json_object_array_get_idx(els, i));
    if (i > 0 && json_object_object_length(cur) == 0) {
      /* cur is a childless member: it must stay one once it gains a child. */
      json_object_object_add(cur, ".", json_object_new_object());
    }
    json_object *next = kuala__json_get(cur, el);
    if (!next) {
      next = json_object_new_object();
      json_object_object_add(cur, el, next);
    }
    cur = next;
  }
  if (trie_children(cur) > 0) {
    json_object_object_add(cur, ".", json_object_new_object());
  }
}

/* Whether path `els` is a member of the trie. */
static int trie_has_path(json_object *root, json_object *els)
{
  json_object *cur = root;
  size_t n = json_object_array_length(els);
  for (size_t i = 0; i < n; i++) {
    cur = kuala__json_get(cur, json_object_get_string(json_object_array_get_idx(els, i)));
    if (!cur) {
      return 0;
    }
  }
  return trie_member(cur);
}

/* Append every member path of the trie to `out` (an array of arrays). */
static void trie_members(json_object *n, json_object *prefix, json_object *out)
{
  json_object_object_foreach(n, k, child)
  {
    if (strcmp(k, ".") == 0) {
      continue;
    }
    json_object_array_add(prefix, json_object_new_string(k));
    if (trie_member(child)) {
      json_object_array_add(out, kuala_json_copy(prefix));
    }
    trie_members(child, prefix, out);
    json_object_array_del_idx(prefix, json_object_array_length(prefix) - 1, 1);
  }
}

/* ------------------------------------------------------ object ↔ paths */

/* Find the list element matching a "k:{...}" key object. */
static long list_find_key(json_object *arr, json_object *key)
{
  size_t n = json_object_array_length(arr);
  for (size_t i = 0; i < n; i++) {
    json_object *el = json_object_array_get_idx(arr, i);
    int all = json_object_is_type(el, json_type_object);
    json_object_object_foreach(key, kk, kv)
    {
      if (!all) {
        break;
      }
      all = kuala__json_equal(kuala__json_get(el, kk), kv);
    }
    if (all) {
      return (long)i;
    }
  }
  return -1;
}

static long list_find_value(json_object *arr, json_object *v)
{
  size_t n = json_object_array_length(arr);
  for (size_t i = 0; i < n; i++) {
    if (kuala__json_equal(json_object_array_get_idx(arr, i), v)) {
      return (long)i;
    }
  }
  return -1;
}

static json_object *parse_el_json(const char *s)
{
  json_object *o = NULL;
  char msg[64];
  if (kuala__json_parse(&o, s, strlen(s), 64, msg, sizeof msg) != 0) {
    return NULL;
  }
  return o;
}

/*
 * Resolve one path element against `cur`: the child value (borrowed),
 * *parent and *index describe where it lives for deletion. NULL when absent.
 */
static json_object *step(json_object *cur, const char *el, long *index, int *found)
{
  *index = -1;
  *found = 0;
  if (strncmp(el, "f:", 2) == 0) {
    json_object *v = NULL;
    if (json_object_is_type(cur, json_type_object) && json_object_object_get_ex(cur, el + 2, &v)) {
      *found = 1;
    }
    return v;
  }
  if (!json_object_is_type(cur, json_type_array)) {
    return NULL;
  }
  if (strncmp(el, "k:", 2) == 0 || strncmp(el, "v:", 2) == 0) {
    json_object *k = parse_el_json(el + 2);
    long i = el[0] == 'k' ? (json_object_is_type(k, json_type_object) ? list_find_key(cur, k) : -1)
                          : list_find_value(cur, k);
    json_object_put(k);
    if (i < 0) {
      return NULL;
    }
    *index = i;
    *found = 1;
    return json_object_array_get_idx(cur, (size_t)i);
  }
  if (strncmp(el, "i:", 2) == 0) {
    char *end = NULL;
    long i = strtol(el + 2, &end, 10);
    if (end && *end == '\0' && i >= 0 && (size_t)i < json_object_array_length(cur)) {
      *index = i;
      *found = 1;
      return json_object_array_get_idx(cur, (size_t)i);
    }
  }
  return NULL;
}

static json_object *value_at(json_object *obj, json_object *els, int *found)
{
  json_object *cur = obj;
  *found = 1;
  size_t n = json_object_array_length(els);
  for (size_t i = 0; i < n; i++) {
    long idx;
    cur = step(cur, json_object_get_string(json_object_array_get_idx(els, i)), &idx, found);
    if (!*found) {
      return NULL;
    }
  }
  return cur;
}

/* Remove the value at `els` from obj. */
static void remove_at(json_object *obj, json_object *els)
{
  size_t n = json_object_array_length(els);
  if (n == 0) {
    return;
  }
  json_object *cur = obj;
  for (size_t i = 0; i + 1 < n; i++) {
    long idx;
    int found;
    cur = step(cur, json_object_get_string(json_object_array_get_idx(els, i)), &idx, &found);
    if (!found) {
      return;
    }
  }
  const char *last = json_object_get_string(json_object_array_get_idx(els, n - 1));
  long idx;
  int found;
  step(cur, last, &idx, &found);
  if (!found) {
    return;
  }
  if (strncmp(last, "f:", 2) == 0) {
    json_object_object_del(cur, last + 2);
  } else if (idx >= 0 && (last[0] == 'k' || last[0] == 'v')) {
    json_object_array_del_idx(cur, (size_t)idx, 1);
  }
}

/* Drop from the trie every member path that no longer exists in obj. */
static void trie_prune_missing(json_object *trie, json_object *obj)
{
  json_object *drop = json_object_new_array();
  json_object_object_foreach(trie, k, child)
  {
    if (strcmp(k, ".") == 0) {
      continue;
    }
    long idx;
    int found;
    json_object *v = step(obj, k, &idx, &found);
    if (!found) {
      json_object_array_add(drop, json_object_new_string(k));
      continue;
    }
    int member = trie_member(child);
    if (trie_children(child) > 0) {
      trie_prune_missing(child, v);
      if (trie_children(child) == 0) {
        json_object_object_del(child, ".");
        if (!member) {
          json_object_array_add(drop, json_object_new_string(k));
        }
      }
    }
  }
  for (size_t i = 0; i < json_object_array_length(drop); i++) {
    json_object_object_del(trie, json_object_get_string(json_object_array_get_idx(drop, i)));
  }
  json_object_put(drop);
}

/* ---------------------------------------------------------- list types */

typedef enum { LIST_ATOMIC, LIST_SET, LIST_MAP } list_type_t;

/* How a list is owned and merged: atomic, set, or map keyed by `keys` (schema) or `key`. */
typedef struct {
  list_type_t type;
  json_object *keys; /* borrowed x-kubernetes-list-map-keys, or NULL */
  const char *key;   /* single built-in merge key when keys is NULL */
} ltinfo_t;

/* Who is being written: built-in list strategies depend on the kind. */
typedef struct {
  const char *group; /* "" for core */
  const char *kind;
  int dots; /* Update entries: maps created by the write are members themselves */
} fsopt_t;

static json_object *schema_child(json_object *s, const char *key)
{
  json_object *props = kuala__json_get(s, "properties");
  json_object *c = kuala__json_get(props, key);
  if (c) {
    return c;
  }
  json_object *addl = kuala__json_get(s, "additionalProperties");
  return json_object_is_type(addl, json_type_object) ? addl : NULL;
}

/*
 * The list type at dotted path `dp` (array levels elided): the CRD schema's
 * x-kubernetes-list-type when it says so, else the built-in strategies shared
 * with strategic merge patch (ownerReferences by uid, finalizers as a set,
 * pod-template lists by name, …), else atomic.
 */
static ltinfo_t list_type(const char *dp, json_object *s, const fsopt_t *fo)
{
  ltinfo_t li = {LIST_ATOMIC, NULL, NULL};
  const char *lt = kuala__json_get_str(s, "x-kubernetes-list-type");
  if (lt && strcmp(lt, "set") == 0) {
    li.type = LIST_SET;
    return li;
  }
  if (lt && strcmp(lt, "map") == 0) {
    json_object *k = kuala__json_get(s, "x-kubernetes-list-map-keys");
    if (json_object_is_type(k, json_type_array) && json_object_array_length(k) > 0) {
      li.type = LIST_MAP;
      li.keys = k;
    }
    return li;
  }
  if (lt) {
    return li; /* atomic */
  }
  const char *key = NULL;
  if (kuala__patch_list_key(fo->group ? fo->group : "", fo->kind ? fo->kind : "", dp, &key)) {
    li.type = key ? LIST_MAP : LIST_SET;
    li.key = key;
  }
  return li;
}

/* "k:{...}" for a list-map element (keys in schema order); NULL if a key is missing. */
static char *map_key_el(json_object *el, const ltinfo_t *li)
{
  json_object *k = json_object_new_object();
  size_t n = li->keys ? json_object_array_length(li->keys) : 1;
  for (size_t i = 0; i < n; i++) {
    json_object *kn = li->keys ? json_object_array_get_idx(li->keys, i) : NULL;
    const char *name =
        li->keys ? (json_object_is_type(kn, json_type_string) ? json_object_get_string(kn) : NULL)
                 : li->key;
    json_object *v = name ? kuala__json_get(el, name) : NULL;
    if (!v) {
      json_object_put(k);
      return NULL;
    }
    json_object_object_add(k, name, kuala_json_copy(v));
  }
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_printf(&b, "k:%s", kuala_json_compact(k, NULL));
  json_object_put(k);
  return kuala_buf_take(&b, NULL);
}

/* ------------------------------------------------------------ field sets */

static const char *const root_stripped[] = {"apiVersion", "kind", NULL};
static const char *const meta_stripped[] = {"name",
                                            "namespace",
                                            "uid",
                                            "resourceVersion",
                                            "generation",
                                            "creationTimestamp",
                                            "managedFields",
                                            "selfLink",
                                            "deletionTimestamp",
                                            "deletionGracePeriodSeconds",
                                            "generateName",
                                            NULL};

static int in_list(const char *k, const char *const *l)
{
  for (; *l; l++) {
    if (strcmp(*l, k) == 0) {
      return 1;
    }
  }
  return 0;
}

static json_object *fs_value(json_object *v, json_object *s, const char *dp, const fsopt_t *fo);

static json_object *fs_object(json_object *obj, json_object *s, const char *dp, int depth,
                              const fsopt_t *fo)
{
  json_object *t = json_object_new_object();
  json_object_object_foreach(obj, k, v)
  {
    if (depth == 0 && in_list(k, root_stripped)) {
      continue;
    }
    if (depth == 1 && strcmp(dp, "metadata") == 0 && in_list(k, meta_stripped)) {
      continue;
    }
    kuala_buf_t p = KUALA_BUF_INIT(0);
    kuala_buf_printf(&p, "%s%s%s", dp, *dp ? "." : "", k);
    json_object *child = fs_value(v, schema_child(s, k), p.data, fo);
    if (depth == 0 && strcmp(k, "metadata") == 0) {
      json_object_object_del(child, ".");
      if (trie_children(child) == 0) {
        json_object_put(child);
        kuala_buf_free(&p);
        continue; /* metadata with only system fields owns nothing */
      }
    }
    kuala_buf_t el = KUALA_BUF_INIT(0);
    kuala_buf_printf(&el, "f:%s", k);
    json_object_object_add(t, el.data, child);
    kuala_buf_free(&el);
    kuala_buf_free(&p);
  }
  return t;
}

/* x-kubernetes-map-type: atomic — the map is owned and replaced as one value. */
static int map_atomic(json_object *s)
{
  const char *mt = kuala__json_get_str(s, "x-kubernetes-map-type");
  return mt && strcmp(mt, "atomic") == 0;
}

static json_object *fs_value(json_object *v, json_object *s, const char *dp, const fsopt_t *fo)
{
  if (json_object_is_type(v, json_type_object) && map_atomic(s)) {
    return json_object_new_object();
  }
  if (json_object_is_type(v, json_type_object) && json_object_object_length(v) > 0) {
    int depth = 1 + (int)(strchr(dp, '.') != NULL); /* only depth 1 matters (metadata) */
    json_object *t = fs_object(v, s, dp, depth, fo);
    if (fo->dots && trie_children(t) > 0) {
      json_object_object_add(t, ".", json_object_new_object());
    }
    return t;
  }
  if (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0) {
    ltinfo_t li = list_type(dp, s, fo);
    json_object *items = kuala__json_get(s, "items");
    if (li.type == LIST_ATOMIC) {
      return json_object_new_object();
    }
    json_object *t = json_object_new_object();
    for (size_t i = 0; i < json_object_array_length(v); i++) {
      json_object *el = json_object_array_get_idx(v, i);
      if (li.type == LIST_SET) {
        kuala_buf_t b = KUALA_BUF_INIT(0);
        kuala_buf_printf(&b, "v:%s", kuala_json_compact(el, NULL));
        json_object_object_add(t, b.data, json_object_new_object());
        kuala_buf_free(&b);
        continue;
      }
      char *kel = json_object_is_type(el, json_type_object) ? map_key_el(el, &li) : NULL;
      if (!kel) {
        continue; /* an element without its keys cannot be owned */
      }
      json_object *sub = fs_object(el, items, dp, 2, fo);
      if (trie_children(sub) > 0) {
        json_object_object_add(sub, ".", json_object_new_object());
      }
      json_object_object_add(t, kel, sub);
      kuala_free(kel);
    }
    if (trie_children(t) > 0 && fo->dots) {
      json_object_object_add(t, ".", json_object_new_object());
    }
    return t;
  }
  return json_object_new_object();
}

/* Keep only the part of a root field set that a (sub)resource write may own. */
static void scope_fieldset(json_object *t, const kuala_ssa_opts_t *o)
{
  int status_write = o->subresource && strcmp(o->subresource, "status") == 0;
  if (status_write) {
    json_object *st = kuala__json_get(t, "f:status");
    if (st) {
      json_object_get(st);
    }
    json_object *drop = json_object_new_array();
    json_object_object_foreach(t, k, v)
    {
      (void)v;
      json_object_array_add(drop, json_object_new_string(k));
    }
    for (size_t i = 0; i < json_object_array_length(drop); i++) {
      json_object_object_del(t, json_object_get_string(json_object_array_get_idx(drop, i)));
    }
    json_object_put(drop);
    if (st) {
      json_object_object_add(t, "f:status", st);
    }
  } else if (o->status_subresource) {
    json_object_object_del(t, "f:status");
  }
}

/* The group of an apiVersion ("apps/v1" → "apps", "v1" → ""), into buf. */
static const char *group_of(const char *api_version, char *buf, size_t n)
{
  const char *slash = api_version ? strchr(api_version, '/') : NULL;
  if (!slash) {
    return "";
  }
  snprintf(buf, n, "%.*s", (int)(slash - api_version), api_version);
  return buf;
}

static fsopt_t fsopt_for(json_object *obj, const kuala_ssa_opts_t *o, char *gbuf, size_t gn,
                         int dots)
{
  fsopt_t fo;
  const char *av = o && o->api_version ? o->api_version : kuala__json_get_str(obj, "apiVersion");
  fo.group = group_of(av, gbuf, gn);
  fo.kind = kuala__json_get_str(obj, "kind");
  fo.dots = dots;
  return fo;
}

json_object *kuala__ssa_fieldset(json_object *obj, const kuala_ssa_opts_t *o)
{
  char gbuf[256];
  fsopt_t fo = fsopt_for(obj, o, gbuf, sizeof gbuf, 0);
  json_object *t = json_object_is_type(obj, json_type_object)
                       ? fs_object(obj, o ? o->schema : NULL, "", 0, &fo)
                       : json_object_new_object();
  if (o) {
    scope_fieldset(t, o);
  }
  return t;
}

/* ------------------------------------------------------- managedFields */

typedef struct {
  char *manager;
  char *operation; /* "Apply" | "Update" */
  char *api_version;
  char *time;        /* may be NULL */
  char *subresource; /* NULL = main resource */
  json_object *set;  /* owned trie */
} mf_entry_t;

typedef struct {
  mf_entry_t *v;
  size_t n, cap;
} mf_list_t;

static char *dup_or_null(const char *s)
{
  return s && *s ? kuala_strdup(s) : NULL;
}

static void mf_push(mf_list_t *l, const char *manager, const char *op, const char *av,
                    const char *time, const char *sub, json_object *set)
{
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = kuala_realloc(l->v, l->cap * sizeof *l->v);
  }
  mf_entry_t *e = &l->v[l->n++];
  e->manager = kuala_strdup(manager ? manager : "");
  e->operation = kuala_strdup(op);
  e->api_version = dup_or_null(av);
  e->time = dup_or_null(time);
  e->subresource = dup_or_null(sub);
  e->set = set;
}

static void mf_entry_free(mf_entry_t *e)
{
  kuala_free(e->manager);
  kuala_free(e->operation);
  kuala_free(e->api_version);
  kuala_free(e->time);
  kuala_free(e->subresource);
  json_object_put(e->set);
}

static void mf_free(mf_list_t *l)
{
  for (size_t i = 0; i < l->n; i++) {
    mf_entry_free(&l->v[i]);
  }
  kuala_free(l->v);
  memset(l, 0, sizeof *l);
}

static void mf_remove(mf_list_t *l, size_t i)
{
  mf_entry_free(&l->v[i]);
  memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
  l->n--;
}

/* A FieldsV1 trie is objects all the way down; anything else is not a field set. */
static int trie_valid(json_object *t, int depth)
{
  if (!json_object_is_type(t, json_type_object) || depth > 128) {
    return 0;
  }
  json_object_object_foreach(t, k, v)
  {
    (void)k;
    if (!trie_valid(v, depth + 1)) {
      return 0;
    }
  }
  return 1;
}

static void mf_parse(mf_list_t *l, json_object *arr)
{
  for (size_t i = 0; json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr);
       i++) {
    json_object *e = json_object_array_get_idx(arr, i);
    const char *mgr = kuala__json_get_str(e, "manager");
    const char *op = kuala__json_get_str(e, "operation");
    if (!op || (strcmp(op, "Apply") != 0 && strcmp(op, "Update") != 0)) {
      continue;
    }
    json_object *fs = kuala__json_get(e, "fieldsV1");
    mf_push(l, mgr, op, kuala__json_get_str(e, "apiVersion"), kuala__json_get_str(e, "time"),
            kuala__json_get_str(e, "subresource"),
            trie_valid(fs, 0) ? kuala_json_copy(fs) : json_object_new_object());
  }
}

static int str_eq(const char *a, const char *b)
{
  return strcmp(a ? a : "", b ? b : "") == 0;
}

static long mf_find(mf_list_t *l, const char *manager, const char *op, const char *av,
                    const char *sub)
{
  for (size_t i = 0; i < l->n; i++) {
    mf_entry_t *e = &l->v[i];
    if (str_eq(e->manager, manager) && strcmp(e->operation, op) == 0 &&
        str_eq(e->subresource, sub) && (strcmp(op, "Apply") == 0 || str_eq(e->api_version, av))) {
      return (long)i;
    }
  }
  return -1;
}

static int mf_cmp(const void *a, const void *b)
{
  const mf_entry_t *x = a, *y = b;
  int c = strcmp(x->operation, y->operation); /* "Apply" < "Update" */
  if (c) {
    return c;
  }
  if ((c = strcmp(x->time ? x->time : "", y->time ? y->time : ""))) {
    return c;
  }
  if ((c = strcmp(x->manager, y->manager))) {
    return c;
  }
  if ((c = strcmp(x->api_version ? x->api_version : "", y->api_version ? y->api_version : ""))) {
    return c;
  }
  return strcmp(x->subresource ? x->subresource : "", y->subresource ? y->subresource : "");
}

/* Serialization order of trie keys: ".", then fields, keys, values, indices (like upstream). */
static int el_rank(const char *k)
{
  if (strcmp(k, ".") == 0) {
    return 0;
  }
  switch (k[0]) {
    case 'f':
      return 1;
    case 'k':
      return 2;
    case 'v':
      return 3;
    case 'i':
      return 4;
    default:
      return 5;
  }
}

static int el_cmp(const void *a, const void *b)
{
  const char *x = *(const char *const *)a, *y = *(const char *const *)b;
  int rx = el_rank(x), ry = el_rank(y);
  if (rx != ry) {
    return rx - ry;
  }
  if (rx == 4) {
    long ix = strtol(x + 2, NULL, 10), iy = strtol(y + 2, NULL, 10);
    return ix < iy ? -1 : ix > iy;
  }
  return strcmp(x, y);
}

/* A copy of the trie with its keys in serialization order at every level. */
static json_object *trie_sorted(json_object *t)
{
  size_t n = (size_t)json_object_object_length(t);
  const char **keys = kuala_calloc(n ? n : 1, sizeof *keys);
  size_t i = 0;
  json_object_object_foreach(t, k, v)
  {
    (void)v;
    keys[i++] = k;
  }
  qsort(keys, n, sizeof *keys, el_cmp);
  json_object *out = json_object_new_object();
  for (i = 0; i < n; i++) {
    json_object_object_add(out, keys[i], trie_sorted(kuala__json_get(t, keys[i])));
  }
  kuala_free(keys);
  return out;
}

static json_object *mf_render(mf_list_t *l)
{
  qsort(l->v, l->n, sizeof *l->v, mf_cmp);
  json_object *arr = json_object_new_array();
  for (size_t i = 0; i < l->n; i++) {
    mf_entry_t *e = &l->v[i];
    if (json_object_object_length(e->set) == 0) {
      continue;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "manager", json_object_new_string(e->manager));
    json_object_object_add(o, "operation", json_object_new_string(e->operation));
    if (e->api_version) {
      json_object_object_add(o, "apiVersion", json_object_new_string(e->api_version));
    }
    if (e->time) {
      json_object_object_add(o, "time", json_object_new_string(e->time));
    }
    json_object_object_add(o, "fieldsType", json_object_new_string("FieldsV1"));
    json_object_object_add(o, "fieldsV1", trie_sorted(e->set));
    if (e->subresource) {
      json_object_object_add(o, "subresource", json_object_new_string(e->subresource));
    }
    json_object_array_add(arr, o);
  }
  return arr;
}

static void now_str(char *out, size_t n, const kuala_ssa_opts_t *o)
{
  if (o->now) {
    snprintf(out, n, "%s", o->now);
    return;
  }
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Write the entries into obj.metadata.managedFields (removed when empty). */
static void mf_store(json_object *obj, mf_list_t *l)
{
  json_object *meta = kuala_json_ensure_obj(obj, "metadata");
  json_object *arr = mf_render(l);
  if (json_object_array_length(arr) == 0) {
    json_object_put(arr);
    json_object_object_del(meta, "managedFields");
  } else {
    json_object_object_add(meta, "managedFields", arr);
  }
}

/* Fold Update entries beyond the cap into "ancient-changes" (oldest first). */
static void mf_cap(mf_list_t *l)
{
  size_t updates = 0;
  for (size_t i = 0; i < l->n; i++) {
    updates += strcmp(l->v[i].operation, "Update") == 0;
  }
  if (updates <= KUALA_SSA_MAX_UPDATE_MANAGERS) {
    return;
  }
  qsort(l->v, l->n, sizeof *l->v, mf_cmp);
  json_object *merged = json_object_new_object();
  char *newest = NULL;
  size_t excess = updates - KUALA_SSA_MAX_UPDATE_MANAGERS + 1; /* room for ancient-changes */
  for (size_t i = 0; i < l->n && excess > 0;) {
    mf_entry_t *e = &l->v[i];
    if (strcmp(e->operation, "Update") != 0 || strcmp(e->manager, "ancient-changes") == 0) {
      i++;
      continue;
    }
    trie_union(merged, e->set);
    kuala_free(newest);
    newest = e->time ? kuala_strdup(e->time) : NULL;
    mf_remove(l, i);
    excess--;
  }
  long a = mf_find(l, "ancient-changes", "Update", NULL, NULL);
  if (a < 0) {
    for (size_t i = 0; i < l->n; i++) {
      if (strcmp(l->v[i].manager, "ancient-changes") == 0) {
        a = (long)i;
      }
    }
  }
  if (a >= 0) {
    trie_union(l->v[a].set, merged);
    json_object_put(merged);
  } else {
    mf_push(l, "ancient-changes", "Update", NULL, newest, NULL, merged);
  }
  kuala_free(newest);
}

/* ------------------------------------------------------------ merging */

/* Merge applied `src` into `dst` (owned, may be NULL) the SSA way; returns the new value. */
static json_object *ssa_merge(json_object *dst, json_object *src, json_object *s, const char *dp,
                              int depth, const fsopt_t *fo)
{
  if (json_object_is_type(src, json_type_object) && !map_atomic(s)) {
    if (!json_object_is_type(dst, json_type_object)) {
      json_object_put(dst);
      dst = json_object_new_object();
    }
    json_object_object_foreach(src, k, v)
    {
      if (depth == 1 && strcmp(dp, "metadata") == 0 && in_list(k, meta_stripped)) {
        continue;
      }
      kuala_buf_t p = KUALA_BUF_INIT(0);
      kuala_buf_printf(&p, "%s%s%s", dp, *dp ? "." : "", k);
      json_object *old = kuala__json_get(dst, k);
      if (old) {
        json_object_get(old);
      }
      json_object_object_add(dst, k, ssa_merge(old, v, schema_child(s, k), p.data, depth + 1, fo));
      kuala_buf_free(&p);
    }
    return dst;
  }
  if (json_object_is_type(src, json_type_array) && json_object_is_type(dst, json_type_array)) {
    ltinfo_t li = list_type(dp, s, fo);
    json_object *items = kuala__json_get(s, "items");
    if (li.type == LIST_SET) {
      for (size_t i = 0; i < json_object_array_length(src); i++) {
        json_object *v = json_object_array_get_idx(src, i);
        if (list_find_value(dst, v) < 0) {
          json_object_array_add(dst, kuala_json_copy(v));
        }
      }
      return dst;
    }
    if (li.type == LIST_MAP) {
      for (size_t i = 0; i < json_object_array_length(src); i++) {
        json_object *el = json_object_array_get_idx(src, i);
        char *kel = json_object_is_type(el, json_type_object) ? map_key_el(el, &li) : NULL;
        json_object *kobj = kel ? parse_el_json(kel + 2) : NULL;
        long at = kobj ? list_find_key(dst, kobj) : -1;
        json_object_put(kobj);
        kuala_free(kel);
        if (at >= 0) {
          json_object *old = json_object_get(json_object_array_get_idx(dst, (size_t)at));
          json_object_array_put_idx(dst, (size_t)at, ssa_merge(old, el, items, dp, 2, fo));
        } else {
          json_object_array_add(dst, kuala_json_copy(el));
        }
      }
      return dst;
    }
  }
  json_object_put(dst);
  return kuala_json_copy(src);
}

/* ------------------------------------------------------------ conflicts */

/* Render a path the way conflict messages print it: .spec.x[name="c"][=v][3]. */
static void path_render(kuala_buf_t *b, json_object *els)
{
  for (size_t i = 0; i < json_object_array_length(els); i++) {
    const char *el = json_object_get_string(json_object_array_get_idx(els, i));
    if (strncmp(el, "f:", 2) == 0) {
      kuala_buf_printf(b, ".%s", el + 2);
    } else if (strncmp(el, "v:", 2) == 0) {
      kuala_buf_printf(b, "[=%s]", el + 2);
    } else if (strncmp(el, "i:", 2) == 0) {
      kuala_buf_printf(b, "[%s]", el + 2);
    } else if (strncmp(el, "k:", 2) == 0) {
      json_object *k = parse_el_json(el + 2);
      if (!json_object_is_type(k, json_type_object)) {
        kuala_buf_printf(b, "[%s]", el + 2);
        json_object_put(k);
        continue;
      }
      kuala_buf_putc(b, '[');
      int first = 1;
      json_object_object_foreach(k, kk, kv)
      {
        kuala_buf_printf(b, "%s%s=%s", first ? "" : ",", kk, kuala_json_compact(kv, NULL));
        first = 0;
      }
      kuala_buf_putc(b, ']');
      json_object_put(k);
    }
  }
}

static char *manager_label(const mf_entry_t *e)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_putc(&b, '"');
  kuala_buf_puts(&b, e->manager);
  kuala_buf_putc(&b, '"');
  if (e->subresource) {
    kuala_buf_printf(&b, " with subresource \"%s\"", e->subresource);
  }
  if (strcmp(e->operation, "Update") == 0) {
    kuala_buf_printf(&b, " using %s", e->api_version ? e->api_version : "");
  }
  return kuala_buf_take(&b, NULL);
}

typedef struct {
  char *manager; /* label */
  char *path;
} conflict_t;

static int conflict_cmp(const void *a, const void *b)
{
  const conflict_t *x = a, *y = b;
  int c = strcmp(x->manager, y->manager);
  return c ? c : strcmp(x->path, y->path);
}

static int report_conflicts(conflict_t *cs, size_t n, kuala_apierr_t *err)
{
  qsort(cs, n, sizeof *cs, conflict_cmp);
  kuala_buf_t m = KUALA_BUF_INIT(0);
  kuala_buf_printf(&m, "Apply failed with %zu conflict%s: ", n, n == 1 ? "" : "s");
  if (n == 1) {
    kuala_buf_printf(&m, "conflict with %s: %s", cs[0].manager, cs[0].path);
  } else {
    for (size_t i = 0; i < n; i++) {
      if (i == 0 || strcmp(cs[i].manager, cs[i - 1].manager) != 0) {
        kuala_buf_printf(&m, "%sconflicts with %s:", i ? "\n" : "", cs[i].manager);
      }
      kuala_buf_printf(&m, "\n- %s", cs[i].path);
    }
  }
  kuala__apierr_set(err, 409, "Conflict", "%s", m.data);
  kuala_buf_free(&m);
  for (size_t i = 0; i < n; i++) {
    kuala_buf_t cm = KUALA_BUF_INIT(0);
    kuala_buf_printf(&cm, "conflict with %s", cs[i].manager);
    kuala__apierr_add_cause(err, KUALA_CAUSE_MANAGER_CONFLICT, cm.data, cs[i].path);
    kuala_buf_free(&cm);
  }
  return 409;
}

/* ---------------------------------------------------------------- apply */

static int check_manager(const char *m, kuala_apierr_t *err)
{
  if (!m || !*m) {
    kuala__apierr_field(err, KUALA_CAUSE_REQUIRED, "fieldManager", NULL,
                        "is required for apply patch");
    return kuala__apierr_invalid(err, "PatchOptions", "meta.k8s.io", "");
  }
  size_t n = strlen(m);
  int printable = 1;
  for (size_t i = 0; i < n; i++) {
    printable &= isprint((unsigned char)m[i]) != 0;
  }
  if (n > MAX_MANAGER_LEN) {
    json_object *v = json_object_new_string(m);
    kuala__apierr_field(err, KUALA_CAUSE_TOO_LONG, "fieldManager", v,
                        "may not be more than 128 bytes");
    json_object_put(v);
    return kuala__apierr_invalid(err, "PatchOptions", "meta.k8s.io", "");
  }
  if (!printable) {
    json_object *v = json_object_new_string(m);
    kuala__apierr_field(err, KUALA_CAUSE_INVALID, "fieldManager", v,
                        "must only contain printable characters");
    json_object_put(v);
    return kuala__apierr_invalid(err, "PatchOptions", "meta.k8s.io", "");
  }
  return 0;
}

/* Whether a and b are equal apart from metadata.managedFields. */
static int same_except_managed(json_object *a, json_object *b)
{
  if (!a || !b) {
    return 0;
  }
  json_object *x = kuala_json_copy(a), *y = kuala_json_copy(b);
  json_object_object_del(kuala_json_ensure_obj(x, "metadata"), "managedFields");
  json_object_object_del(kuala_json_ensure_obj(y, "metadata"), "managedFields");
  int same = kuala__json_equal(x, y);
  json_object_put(x);
  json_object_put(y);
  return same;
}

int kuala__ssa_apply(json_object **out, json_object *live, json_object *applied,
                     const kuala_ssa_opts_t *o, kuala_apierr_t *err)
{
  *out = NULL;
  int rc = check_manager(o->manager, err);
  if (rc) {
    return rc;
  }
  if (!json_object_is_type(applied, json_type_object)) {
    return kuala__apierr_set(err, 400, NULL, "the apply patch must be an object");
  }
  const char *av = kuala__json_get_str(applied, "apiVersion");
  const char *kind = kuala__json_get_str(applied, "kind");
  if (!av || !*av || !kind || !*kind) {
    return kuala__apierr_set(err, 400, NULL,
                             "invalid object type: apiVersion and kind must be set in an apply "
                             "patch");
  }
  if (o->api_version && strcmp(av, o->api_version) != 0) {
    return kuala__apierr_set(err, 400, NULL,
                             "Incorrect version specified in apply patch. Specified patch "
                             "version: %s, expected: %s",
                             av, o->api_version);
  }
  json_object *ameta = kuala__json_get(applied, "metadata");
  if (kuala__json_get(ameta, "managedFields")) {
    return kuala__apierr_set(err, 400, NULL, "metadata.managedFields must be nil");
  }
  const char *aname = kuala__json_get_str(ameta, "name");
  if (o->name && (!aname || strcmp(aname, o->name) != 0)) {
    return kuala__apierr_set(err, 400, NULL,
                             "the name of the object (%s) does not match the name on the URL (%s)",
                             aname ? aname : "", o->name);
  }
  char now[40];
  now_str(now, sizeof now, o);
  const char *sub = o->subresource && *o->subresource ? o->subresource : NULL;

  mf_list_t mf = {0};
  mf_parse(&mf, live ? kuala_json_path(live, "metadata.managedFields") : NULL);
  json_object *S = kuala__ssa_fieldset(applied, o);
  long self = mf_find(&mf, o->manager, "Apply", NULL, sub);

  /* Conflicts: fields the body sets to a different value that someone else owns. */
  json_object *members = json_object_new_array();
  json_object *prefix = json_object_new_array();
  trie_members(S, prefix, members);
  json_object_put(prefix);
  conflict_t *cs = NULL;
  size_t ncs = 0;
  json_object *forced = json_object_new_object(); /* per-entry index: trie of paths to drop */
  for (size_t i = 0; live && i < json_object_array_length(members); i++) {
    json_object *p = json_object_array_get_idx(members, i);
    int fa = 0, fl = 0;
    json_object *va = value_at(applied, p, &fa);
    json_object *vl = value_at(live, p, &fl);
    if (fl && fa && kuala__json_equal(va, vl)) {
      continue;
    }
    /* A map or a list element present on both sides is shared, not changed: only values conflict.
     */
    const char *last =
        json_object_get_string(json_object_array_get_idx(p, json_object_array_length(p) - 1));
    if (fl && fa &&
        ((json_object_is_type(va, json_type_object) && json_object_is_type(vl, json_type_object)) ||
         last[0] == 'k' || last[0] == 'v')) {
      continue;
    }
    for (size_t j = 0; j < mf.n; j++) {
      if ((long)j == self || !trie_has_path(mf.v[j].set, p)) {
        continue;
      }
      if (o->force) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", j);
        json_object *t = kuala__json_get(forced, idx);
        if (!t) {
          t = json_object_new_object();
          json_object_object_add(forced, idx, t);
        }
        trie_add_path(t, p);
        continue;
      }
      cs = kuala_realloc(cs, (ncs + 1) * sizeof *cs);
      cs[ncs].manager = manager_label(&mf.v[j]);
      kuala_buf_t b = KUALA_BUF_INIT(0);
      path_render(&b, p);
      cs[ncs].path = kuala_buf_take(&b, NULL);
      ncs++;
    }
  }
  json_object_put(members);
  if (ncs > 0) {
    rc = report_conflicts(cs, ncs, err);
    for (size_t i = 0; i < ncs; i++) {
      kuala_free(cs[i].manager);
      kuala_free(cs[i].path);
    }
    kuala_free(cs);
    json_object_put(forced);
    json_object_put(S);
    mf_free(&mf);
    return rc;
  }
  json_object_object_foreach(forced, fidx, ftrie)
  {
    size_t j = (size_t)strtoul(fidx, NULL, 10);
    trie_subtract(mf.v[j].set, ftrie);
  }
  json_object_put(forced);

  /* Merge the body into the live object (only the part this endpoint may write). */
  json_object *body = kuala_json_copy(applied);
  int status_write = sub && strcmp(sub, "status") == 0;
  if (status_write) {
    json_object *st = kuala__json_get(body, "status");
    json_object *keep = json_object_new_object();
    if (st) {
      json_object_object_add(keep, "status", json_object_get(st));
    }
    json_object_put(body);
    body = keep;
  } else if (o->status_subresource) {
    json_object_object_del(body, "status");
  }
  char gbuf[256];
  fsopt_t mfo = fsopt_for(applied, o, gbuf, sizeof gbuf, 0);
  json_object *result = live ? kuala_json_copy(live) : json_object_new_object();
  if (!live) {
    json_object_object_add(result, "apiVersion", json_object_new_string(av));
    json_object_object_add(result, "kind", json_object_new_string(kind));
    json_object *m = kuala_json_ensure_obj(result, "metadata");
    if (aname) {
      kuala_json_set_str(m, "name", aname);
    }
    const char *ns = kuala__json_get_str(ameta, "namespace");
    if (ns) {
      kuala_json_set_str(m, "namespace", ns);
    }
  }
  json_object_object_foreach(body, bk, bv)
  {
    if (strcmp(bk, "apiVersion") == 0 || strcmp(bk, "kind") == 0) {
      continue;
    }
    json_object *old = kuala__json_get(result, bk);
    if (old) {
      json_object_get(old);
    }
    json_object_object_add(result, bk,
                           ssa_merge(old, bv, schema_child(o->schema, bk), bk, 1, &mfo));
  }
  json_object_put(body);

  /* Removal: fields this manager applied before, no longer applies, and nobody else owns. */
  if (self >= 0) {
    json_object *gone = kuala_json_copy(mf.v[self].set);
    trie_subtract(gone, S);
    for (size_t j = 0; j < mf.n; j++) {
      if ((long)j != self) {
        trie_subtract(gone, mf.v[j].set);
      }
    }
    json_object *paths = json_object_new_array();
    json_object *pre = json_object_new_array();
    trie_members(gone, pre, paths);
    json_object_put(pre);
    /* Parents first: list elements are found by key, so their fields must still be there. */
    for (size_t i = 0; i < json_object_array_length(paths); i++) {
      remove_at(result, json_object_array_get_idx(paths, i));
    }
    json_object_put(paths);
    json_object_put(gone);
  }

  /* Record ownership. A no-op apply (same fields, same object) keeps the old time, so
   * the stored object stays byte-for-byte equal and no new revision is written. */
  if (self >= 0) {
    int same = kuala__json_equal(mf.v[self].set, S) && str_eq(mf.v[self].api_version, av) &&
               same_except_managed(live, result);
    json_object_put(mf.v[self].set);
    mf.v[self].set = S;
    if (!same) {
      kuala_free(mf.v[self].time);
      mf.v[self].time = kuala_strdup(now);
    }
    kuala_free(mf.v[self].api_version);
    mf.v[self].api_version = kuala_strdup(av);
  } else {
    mf_push(&mf, o->manager, "Apply", av, now, sub, S);
  }
  mf_store(result, &mf);
  mf_free(&mf);
  *out = result;
  return 0;
}

/* --------------------------------------------------------------- update */

/* The field set of what changed from old to new (added or different values). */
static json_object *diff_set(json_object *old, json_object *nw, json_object *s, const char *dp,
                             int depth, const fsopt_t *fo)
{
  json_object *t = json_object_new_object();
  json_object_object_foreach(nw, k, v)
  {
    if (depth == 0 && in_list(k, root_stripped)) {
      continue;
    }
    if (depth == 1 && strcmp(dp, "metadata") == 0 && in_list(k, meta_stripped)) {
      continue;
    }
    kuala_buf_t p = KUALA_BUF_INIT(0);
    kuala_buf_printf(&p, "%s%s%s", dp, *dp ? "." : "", k);
    json_object *ov = NULL;
    int had = json_object_is_type(old, json_type_object) && json_object_object_get_ex(old, k, &ov);
    json_object *cs = schema_child(s, k);
    json_object *child = NULL;
    if (!had) {
      child = fs_value(v, cs, p.data, fo);
      if (depth == 0 && strcmp(k, "metadata") == 0) {
        json_object_object_del(child, ".");
      }
    } else if (json_object_is_type(v, json_type_object) &&
               json_object_is_type(ov, json_type_object)) {
      child = diff_set(ov, v, cs, p.data, depth + 1, fo);
      if (json_object_object_length(child) == 0) {
        json_object_put(child);
        child = NULL;
      }
    } else if (json_object_is_type(v, json_type_array) &&
               json_object_is_type(ov, json_type_array)) {
      ltinfo_t li = list_type(p.data, cs, fo);
      if (kuala__json_equal(v, ov)) {
        child = NULL;
      } else if (li.type == LIST_ATOMIC) {
        child = json_object_new_object();
      } else {
        /* Granular lists: the new or changed elements. */
        json_object *full = fs_value(v, cs, p.data, fo);
        json_object *prev = fs_value(ov, cs, p.data, fo);
        child = json_object_new_object();
        json_object_object_foreach(full, fk, fv)
        {
          if (strcmp(fk, ".") == 0) {
            continue;
          }
          long idx;
          int found;
          json_object *oldel = step(ov, fk, &idx, &found);
          json_object *newel = step(v, fk, &idx, &found);
          if (!json_object_object_get_ex(prev, fk, NULL)) {
            json_object_object_add(child, fk, kuala_json_copy(fv));
          } else if (li.type == LIST_MAP && !kuala__json_equal(oldel, newel)) {
            json_object *sub = diff_set(oldel, newel, kuala__json_get(cs, "items"), p.data, 2, fo);
            if (json_object_object_length(sub) > 0) {
              json_object_object_add(child, fk, sub);
            } else {
              json_object_put(sub);
            }
          }
        }
        json_object_put(full);
        json_object_put(prev);
        if (json_object_object_length(child) == 0) {
          json_object_put(child);
          child = NULL;
        }
      }
    } else if (!kuala__json_equal(v, ov)) {
      child = fs_value(v, cs, p.data, fo);
    }
    if (child) {
      kuala_buf_t el = KUALA_BUF_INIT(0);
      kuala_buf_printf(&el, "f:%s", k);
      json_object_object_add(t, el.data, child);
      kuala_buf_free(&el);
    }
    kuala_buf_free(&p);
  }
  return t;
}

/* Whether the caller asked to reset managedFields: [{}]. */
static int wants_reset(json_object *mf)
{
  if (!json_object_is_type(mf, json_type_array) || json_object_array_length(mf) != 1) {
    return 0;
  }
  json_object *e = json_object_array_get_idx(mf, 0);
  return json_object_is_type(e, json_type_object) && json_object_object_length(e) == 0;
}

int kuala__ssa_update(json_object *obj, json_object *old, const kuala_ssa_opts_t *o,
                      kuala_apierr_t *err)
{
  (void)err;
  if (!json_object_is_type(obj, json_type_object)) {
    return 0;
  }
  json_object *meta = kuala_json_ensure_obj(obj, "metadata");
  json_object *given = kuala__json_get(meta, "managedFields");
  if (wants_reset(given)) {
    json_object_object_del(meta, "managedFields");
    return 0;
  }
  json_object *oldmf = old ? kuala_json_path(old, "metadata.managedFields") : NULL;
  mf_list_t mf = {0};
  /* A non-empty list that differs from the stored one replaces it; [] or absent keeps it. */
  if (json_object_is_type(given, json_type_array) && json_object_array_length(given) > 0 &&
      !kuala__json_equal(given, oldmf)) {
    mf_parse(&mf, given);
  } else {
    mf_parse(&mf, oldmf);
  }
  const char *sub = o->subresource && *o->subresource ? o->subresource : NULL;
  char gbuf[256];
  fsopt_t fo = fsopt_for(obj, o, gbuf, sizeof gbuf, 1);
  json_object *changed = diff_set(old, obj, o->schema, "", 0, &fo);
  {
    kuala_ssa_opts_t scoped = *o;
    scope_fieldset(changed, &scoped);
  }
  /* Fields removed from the object leave every set. */
  for (size_t j = 0; j < mf.n; j++) {
    trie_prune_missing(mf.v[j].set, obj);
  }
  if (json_object_object_length(changed) > 0) {
    for (size_t j = 0; j < mf.n; j++) {
      trie_subtract(mf.v[j].set, changed);
    }
    char now[40];
    now_str(now, sizeof now, o);
    const char *mgr = o->manager && *o->manager ? o->manager : "unknown";
    long self = mf_find(&mf, mgr, "Update", o->api_version, sub);
    if (self >= 0) {
      trie_union(mf.v[self].set, changed);
      kuala_free(mf.v[self].time);
      mf.v[self].time = kuala_strdup(now);
      json_object_put(changed);
    } else {
      mf_push(&mf, mgr, "Update", o->api_version, now, sub, changed);
    }
    changed = NULL;
  } else {
    json_object_put(changed);
  }
  for (size_t j = mf.n; j > 0; j--) {
    if (json_object_object_length(mf.v[j - 1].set) == 0) {
      mf_remove(&mf, j - 1);
    }
  }
  mf_cap(&mf);
  mf_store(obj, &mf);
  mf_free(&mf);
  return 0;
}
