/*
 * permissions.c: a bundle's permission set (see kuala/permissions.h).
 *
 * Invariants: rules are merged by (group, kind, sub, names): adding verbs to
 * an existing key ORs the bits, so a set never holds two rules with the same
 * key; the array is kept sorted by that key so `kuala rbac` prints a stable
 * order. A rule with names only counts when the request names one of them;
 * reads of the cache (list + watch of the whole type) therefore never match
 * a rule limited to names.
 *
 * Ownership: the set owns every string of its rules.
 */
#include "kuala/permissions.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"

struct kuala_permissions_s {
  char *bundle;
  kuala_permission_t *v;
  size_t n, cap;
};

static const char *const verb_names[] = {"get",    "list",    "watch",  "create",
                                         "update", "patch",   "delete", "deletecollection",
                                         "bind",   "escalate"};
#define NVERBS (sizeof verb_names / sizeof verb_names[0])

unsigned kuala_verb_bit(const char *name)
{
  if (strcmp(name, "*") == 0) {
    return KUALA_VERB_ALL;
  }
  for (size_t i = 0; i < NVERBS; i++) {
    if (strcmp(name, verb_names[i]) == 0) {
      return 1u << i;
    }
  }
  return 0;
}

void kuala_verbs_format(unsigned verbs, char *out, size_t len)
{
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < NVERBS; i++) {
    if (verbs & (1u << i)) {
      int w = snprintf(out + used, len - used, "%s%s", used ? "," : "", verb_names[i]);
      if (w < 0 || (size_t)w >= len - used) {
        return;
      }
      used += (size_t)w;
    }
  }
}

int kuala_permissions_new(kuala_permissions_t **out, const char *bundle)
{
  kuala_permissions_t *p = kuala_calloc(1, sizeof *p);
  p->bundle = kuala_strdup(bundle ? bundle : "?");
  *out = p;
  /* Events are always allowed: reporting must never be the thing that fails. */
  static const char events[] =
      "[{\"type\":\"v1/Event\",\"verbs\":\"create,update,patch\"},"
      "{\"type\":\"events.k8s.io/v1/Event\",\"verbs\":\"create,update,patch\"}]";
  char err[64];
  int rc = kuala_permissions_add_declared(p, events, sizeof events - 1, err, sizeof err);
  for (size_t i = 0; i < p->n; i++) {
    p->v[i].implied = 1;
  }
  return rc;
}

static void rule_free(kuala_permission_t *r)
{
  kuala_free(r->group);
  kuala_free(r->version);
  kuala_free(r->kind);
  kuala_free(r->sub);
  for (size_t i = 0; r->names && r->names[i]; i++) {
    kuala_free(r->names[i]);
  }
  kuala_free(r->names);
}

void kuala_permissions_free(kuala_permissions_t *p)
{
  if (!p) {
    return;
  }
  for (size_t i = 0; i < p->n; i++) {
    rule_free(&p->v[i]);
  }
  kuala_free(p->v);
  kuala_free(p->bundle);
  kuala_free(p);
}

const char *kuala_permissions_bundle(const kuala_permissions_t *p)
{
  return p->bundle;
}

size_t kuala_permissions_count(const kuala_permissions_t *p)
{
  return p->n;
}

const kuala_permission_t *kuala_permissions_at(const kuala_permissions_t *p, size_t i)
{
  return i < p->n ? &p->v[i] : NULL;
}

/* ---- adding ---- */

static int names_cmp(char **a, char **b)
{
  if (!a || !b) {
    return (a != NULL) - (b != NULL);
  }
  size_t i = 0;
  for (; a[i] && b[i]; i++) {
    int c = strcmp(a[i], b[i]);
    if (c) {
      return c;
    }
  }
  return (a[i] != NULL) - (b[i] != NULL);
}

static int rule_cmp(const kuala_permission_t *a, const kuala_permission_t *b)
{
  int c = strcmp(a->group, b->group);
  if (!c) {
    c = strcmp(a->kind, b->kind);
  }
  if (!c) {
    c = strcmp(a->sub, b->sub);
  }
  if (!c) {
    c = names_cmp(a->names, b->names);
  }
  return c;
}

static int str_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add (group, version, kind, sub, verbs, names); names is taken. */
static void add_rule(kuala_permissions_t *p, const char *group, const char *version,
                     const char *kind, const char *sub, unsigned verbs, char **names, int implied)
{
  size_t nn = 0;
  while (names && names[nn]) {
    nn++;
  }
  if (names) {
    qsort(names, nn, sizeof *names, str_cmp);
  }
  kuala_permission_t r = {(char *)group, (char *)version, (char *)kind, (char *)(sub ? sub : ""),
                          verbs,         names,           implied};
  size_t i = 0;
  for (; i < p->n; i++) {
    int c = rule_cmp(&p->v[i], &r);
    if (c == 0) {
      p->v[i].verbs |= verbs;
      p->v[i].implied = p->v[i].implied && implied;
      for (size_t k = 0; k < nn; k++) {
        kuala_free(names[k]);
      }
      kuala_free(names);
      return;
    }
    if (c > 0) {
      break;
    }
  }
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 16;
    p->v = kuala_realloc(p->v, p->cap * sizeof *p->v);
  }
  memmove(p->v + i + 1, p->v + i, (p->n - i) * sizeof *p->v);
  r.group = kuala_strdup(group);
  r.version = kuala_strdup(version);
  r.kind = kuala_strdup(kind);
  r.sub = kuala_strdup(sub ? sub : "");
  p->v[i] = r;
  p->n++;
}

/* "v1" -> ("", "v1"); "apps/v1" -> ("apps", "v1"). */
static void split_api_version(const char *av, char *group, size_t glen, char *version, size_t vlen)
{
  const char *slash = strchr(av, '/');
  if (slash) {
    snprintf(group, glen, "%.*s", (int)(slash - av), av);
    snprintf(version, vlen, "%s", slash + 1);
  } else {
    group[0] = '\0';
    snprintf(version, vlen, "%s", av);
  }
}

/* "v1/Secret", "v1/Pod/status", "apps/v1/Deployment", "apps/v1/Deployment/scale". */
static int parse_type(const char *type, char *group, char *version, char *kind, char *sub,
                      size_t cap)
{
  char buf[512];
  snprintf(buf, sizeof buf, "%s", type);
  char *part[5];
  size_t n = 0;
  char *s = buf;
  for (;;) {
    if (n == 5) {
      return -1;
    }
    part[n++] = s;
    char *slash = strchr(s, '/');
    if (!slash) {
      break;
    }
    *slash = '\0';
    s = slash + 1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!*part[i]) {
      return -1;
    }
  }
  size_t k; /* index of the kind */
  if (n >= 2 && isupper((unsigned char)part[1][0])) {
    group[0] = '\0';
    snprintf(version, cap, "%s", part[0]);
    k = 1;
  } else if (n >= 3 && isupper((unsigned char)part[2][0])) {
    snprintf(group, cap, "%s", part[0]);
    snprintf(version, cap, "%s", part[1]);
    k = 2;
  } else {
    return -1;
  }
  if (n > k + 2) {
    return -1;
  }
  snprintf(kind, cap, "%s", part[k]);
  snprintf(sub, cap, "%s", n == k + 2 ? part[k + 1] : "");
  return 0;
}

static const char *jstr(json_object *o, const char *key)
{
  json_object *v;
  if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) {
    return NULL;
  }
  return json_object_get_string(v);
}

static void add_watch(kuala_permissions_t *p, json_object *w, unsigned verbs, const char *sub)
{
  const char *av = jstr(w, "apiVersion"), *kind = jstr(w, "kind");
  if (!av || !kind) {
    return;
  }
  char group[256], version[256];
  split_api_version(av, group, sizeof group, version, sizeof version);
  add_rule(p, group, version, kind, sub, verbs, NULL, 1);
}

static void add_watch_list(kuala_permissions_t *p, json_object *decl, const char *key,
                           unsigned verbs)
{
  json_object *arr;
  if (!json_object_object_get_ex(decl, key, &arr) || !json_object_is_type(arr, json_type_array)) {
    return;
  }
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    add_watch(p, json_object_array_get_idx(arr, i), verbs, "");
  }
}

int kuala_permissions_add_controller(kuala_permissions_t *p, const char *json, size_t len,
                                     char *err, size_t errlen)
{
  json_object *decl = NULL;
  if (kuala_json_parse(&decl, json, len, err, errlen) != 0) {
    return KUALA_EINVAL;
  }
  const unsigned read = KUALA_VERB_GET | KUALA_VERB_LIST | KUALA_VERB_WATCH;
  const unsigned write =
      KUALA_VERB_CREATE | KUALA_VERB_UPDATE | KUALA_VERB_PATCH | KUALA_VERB_DELETE;
  json_object *primary = NULL;
  if (!json_object_object_get_ex(decl, "watch", &primary)) {
    snprintf(err, errlen, "controller declaration without a watch");
    json_object_put(decl);
    return KUALA_EINVAL;
  }
  /* The primary: read it, update it (finalizers), write its status. */
  add_watch(p, primary, read | KUALA_VERB_UPDATE | KUALA_VERB_PATCH, "");
  add_watch(p, primary, KUALA_VERB_GET | KUALA_VERB_UPDATE | KUALA_VERB_PATCH, "status");
  add_watch_list(p, decl, "owns", read | write);
  add_watch_list(p, decl, "watches", read);
  add_watch_list(p, decl, "reads", read);
  json_object_put(decl);
  return 0;
}

static unsigned parse_verbs(json_object *v, char *bad, size_t badlen)
{
  unsigned bits = 0;
  char buf[512];
  if (json_object_is_type(v, json_type_string)) {
    snprintf(buf, sizeof buf, "%s", json_object_get_string(v));
  } else if (json_object_is_type(v, json_type_array)) {
    buf[0] = '\0';
    for (size_t i = 0; i < json_object_array_length(v); i++) {
      size_t l = strlen(buf);
      snprintf(buf + l, sizeof buf - l, "%s%s", l ? "," : "",
               json_object_get_string(json_object_array_get_idx(v, i)));
    }
  } else {
    snprintf(bad, badlen, "(not a string)");
    return 0;
  }
  char *s = buf;
  while (s) {
    char *comma = strchr(s, ',');
    if (comma) {
      *comma = '\0';
    }
    while (*s == ' ') {
      s++;
    }
    size_t l = strlen(s);
    while (l > 0 && s[l - 1] == ' ') {
      s[--l] = '\0';
    }
    unsigned b = kuala_verb_bit(s);
    if (!b) {
      snprintf(bad, badlen, "%s", s);
      return 0;
    }
    bits |= b;
    s = comma ? comma + 1 : NULL;
  }
  return bits;
}

int kuala_permissions_add_declared(kuala_permissions_t *p, const char *json, size_t len, char *err,
                                   size_t errlen)
{
  json_object *arr = NULL;
  if (kuala_json_parse(&arr, json, len, err, errlen) != 0) {
    return KUALA_EINVAL;
  }
  int rc = 0;
  if (!json_object_is_type(arr, json_type_array)) {
    snprintf(err, errlen, "permissions must be a list");
    rc = KUALA_EINVAL;
  }
  for (size_t i = 0; rc == 0 && i < json_object_array_length(arr); i++) {
    json_object *d = json_object_array_get_idx(arr, i), *verbs = NULL, *names = NULL;
    const char *type = jstr(d, "type");
    char group[256], version[256], kind[256], sub[256];
    if (!type || parse_type(type, group, version, kind, sub, sizeof group) != 0) {
      snprintf(err, errlen,
               "permission %zu: type must look like \"v1/Secret\" or "
               "\"apps/v1/Deployment/scale\", got %s",
               i + 1, type ? type : "nothing");
      rc = KUALA_EINVAL;
      break;
    }
    char bad[128] = "";
    unsigned bits = 0;
    if (json_object_object_get_ex(d, "verbs", &verbs)) {
      bits = parse_verbs(verbs, bad, sizeof bad);
    }
    if (!bits) {
      snprintf(err, errlen,
               "permission %zu (%s): unknown verb '%s' (get, list, watch, create, update, "
               "patch, delete, deletecollection, bind, escalate or *)",
               i + 1, type, bad);
      rc = KUALA_EINVAL;
      break;
    }
    char **nv = NULL;
    if (json_object_object_get_ex(d, "names", &names) &&
        json_object_is_type(names, json_type_array) && json_object_array_length(names) > 0) {
      size_t nn = json_object_array_length(names);
      nv = kuala_calloc(nn + 1, sizeof *nv);
      for (size_t k = 0; k < nn; k++) {
        const char *s = json_object_get_string(json_object_array_get_idx(names, k));
        nv[k] = kuala_strdup(s ? s : "");
      }
    }
    add_rule(p, group, version, kind, sub, bits, nv, 0);
  }
  json_object_put(arr);
  return rc;
}

/* ---- checking ---- */

static int names_has(char **names, const char *name)
{
  for (size_t i = 0; names[i]; i++) {
    if (strcmp(names[i], name) == 0) {
      return 1;
    }
  }
  return 0;
}

int kuala_permissions_check(const kuala_permissions_t *p, unsigned verbs, const char *api_version,
                            const char *kind, const char *sub, const char *name, int cache,
                            char *msg, size_t len)
{
  char group[256], version[256];
  split_api_version(api_version ? api_version : "", group, sizeof group, version, sizeof version);
  if (!sub) {
    sub = "";
  }
  if (!kind) {
    kind = "";
  }
  unsigned have = 0;
  for (size_t i = 0; i < p->n; i++) {
    const kuala_permission_t *r = &p->v[i];
    if (strcmp(r->group, group) != 0 || strcmp(r->kind, kind) != 0 || strcmp(r->sub, sub) != 0) {
      continue;
    }
    if (r->names && (!name || !*name || !names_has(r->names, name))) {
      continue;
    }
    have |= r->verbs;
  }
  unsigned missing = verbs & ~have;
  if (!missing) {
    return 0;
  }
  char vs[128], type[600];
  kuala_verbs_format(missing, vs, sizeof vs);
  snprintf(type, sizeof type, "%s/%s%s%s", api_version ? api_version : "?", kind, *sub ? "/" : "",
           sub);
  if (cache) {
    snprintf(msg, len,
             "bundle \"%s\" may not %s %s (a cache read lists and watches the type): declare it "
             "with kuala.permissions{{\"%s\", \"get,list,watch\"}}",
             p->bundle, vs, type, type);
  } else {
    snprintf(msg, len,
             "bundle \"%s\" may not %s %s%s%s%s: declare it with kuala.permissions{{\"%s\", "
             "\"%s\"}}",
             p->bundle, vs, type, name && *name ? " \"" : "", name && *name ? name : "",
             name && *name ? "\"" : "", type, vs);
  }
  return KUALA_EFORBIDDEN;
}
