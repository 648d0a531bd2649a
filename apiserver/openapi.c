/*
 * openapi.c: /openapi/v3 documents (enough for kubectl's fieldValidation
 * detection, spec §1.5) and meta.k8s.io/v1 Tables (spec §1.6).
 *
 * The documents are computed from the resource array on each request: they
 * are small, and computing them keeps them in step with CRDs that come and
 * go. Per group version: for each resource an item path with get/put/
 * patch/delete and a collection path with get/post, every operation tagged
 * with x-kubernetes-group-version-kind, and the CRD schema (if any) under
 * components.schemas. SMP is never listed in a requestBody, so client-side
 * apply falls back to its compiled-in patch metadata (§1.5).
 *
 * Ownership: inputs borrowed, results new.
 */
#include "openapi.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonx.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/json.h"

/* ------------------------------------------------------------ paths */

/* "api/v1" or "apis/<group>/<version>" for a resource. */
static char *gv_path(const char *group, const char *version)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  if (!group || !*group) {
    kuala_buf_printf(&b, "api/%s", version);
  } else {
    kuala_buf_printf(&b, "apis/%s/%s", group, version);
  }
  return kuala_buf_take(&b, NULL);
}

static int res_in_gv(const kuala_openapi_res_t *r, const char *gvpath)
{
  char *p = gv_path(r->group, r->version);
  int same = strcmp(p, gvpath) == 0;
  kuala_free(p);
  return same;
}

/* "io.k8s.api.core.v1.ConfigMap" style component name; for CRDs the group is reversed. */
static char *component_name(const kuala_openapi_res_t *r)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  const char *g = r->group && *r->group ? r->group : "core";
  /* Reverse the DNS labels of the group: stable.example.com → com.example.stable. */
  const char *end = g + strlen(g);
  while (end > g) {
    const char *dot = end;
    while (dot > g && dot[-1] != '.') {
      dot--;
    }
    if (b.len) {
      kuala_buf_putc(&b, '.');
    }
    kuala_buf_append(&b, dot, (size_t)(end - dot));
    end = dot > g ? dot - 1 : g;
  }
  kuala_buf_printf(&b, ".%s.%s", r->version, r->kind);
  return kuala_buf_take(&b, NULL);
}

static json_object *gvk_obj(const kuala_openapi_res_t *r)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "group", json_object_new_string(r->group ? r->group : ""));
  json_object_object_add(o, "version", json_object_new_string(r->version));
  json_object_object_add(o, "kind", json_object_new_string(r->kind));
  return o;
}

static json_object *param(const char *name, const char *in, const char *type, int required)
{
  json_object *p = json_object_new_object();
  json_object_object_add(p, "name", json_object_new_string(name));
  json_object_object_add(p, "in", json_object_new_string(in));
  if (required) {
    json_object_object_add(p, "required", json_object_new_boolean(1));
  }
  json_object *s = json_object_new_object();
  json_object_object_add(s, "type", json_object_new_string(type));
  json_object_object_add(p, "schema", s);
  return p;
}

static json_object *schema_ref(const char *comp)
{
  json_object *s = json_object_new_object();
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_printf(&b, "#/components/schemas/%s", comp);
  json_object_object_add(s, "$ref", json_object_new_string(b.data));
  kuala_buf_free(&b);
  return s;
}

static json_object *responses(const char *comp)
{
  json_object *ok = json_object_new_object();
  json_object_object_add(ok, "description", json_object_new_string("OK"));
  if (comp) {
    json_object *content = json_object_new_object();
    json_object *media = json_object_new_object();
    json_object_object_add(media, "schema", schema_ref(comp));
    json_object_object_add(content, "application/json", media);
    json_object_object_add(ok, "content", content);
  }
  json_object *r = json_object_new_object();
  json_object_object_add(r, "200", ok);
  return r;
}

static json_object *request_body(const char *const *types, const char *comp)
{
  json_object *content = json_object_new_object();
  for (; *types; types++) {
    json_object *media = json_object_new_object();
    if (comp) {
      json_object_object_add(media, "schema", schema_ref(comp));
    }
    json_object_object_add(content, *types, media);
  }
  json_object *rb = json_object_new_object();
  json_object_object_add(rb, "content", content);
  return rb;
}

/* One operation object. `write` adds dryRun/fieldManager/fieldValidation, `patch` adds force. */
static json_object *operation(const kuala_openapi_res_t *r, const char *verb, const char *id,
                              int write, int patch, json_object *body, const char *comp)
{
  json_object *op = json_object_new_object();
  json_object_object_add(op, "operationId", json_object_new_string(id));
  json_object *params = json_object_new_array();
  json_object_array_add(params, param("pretty", "query", "string", 0));
  if (write) {
    json_object_array_add(params, param("dryRun", "query", "string", 0));
    json_object_array_add(params, param("fieldManager", "query", "string", 0));
    json_object_array_add(params, param("fieldValidation", "query", "string", 0));
  }
  if (patch) {
    json_object_array_add(params, param("force", "query", "boolean", 0));
  }
  json_object_object_add(op, "parameters", params);
  if (body) {
    json_object_object_add(op, "requestBody", body);
  }
  json_object_object_add(op, "responses", responses(comp));
  json_object_object_add(op, "x-kubernetes-action", json_object_new_string(verb));
  json_object_object_add(op, "x-kubernetes-group-version-kind", gvk_obj(r));
  return op;
}

static void add_resource_paths(json_object *paths, json_object *schemas,
                               const kuala_openapi_res_t *r)
{
  static const char *const patch_types[] = {"application/json-patch+json",
                                            "application/merge-patch+json",
                                            "application/apply-patch+yaml", NULL};
  static const char *const json_types[] = {"application/json", NULL};
  char *gv = gv_path(r->group, r->version);
  char *comp = component_name(r);
  kuala_buf_t coll = KUALA_BUF_INIT(0);
  kuala_buf_printf(&coll, "/%s/%s%s", gv, r->namespaced ? "namespaces/{namespace}/" : "",
                   r->plural);
  kuala_buf_t item = KUALA_BUF_INIT(0);
  kuala_buf_printf(&item, "%s/{name}", coll.data);
  kuala_buf_t id = KUALA_BUF_INIT(0);

  json_object *ci = json_object_new_object();
  kuala_buf_printf(&id, "list%s", r->kind);
  json_object_object_add(ci, "get", operation(r, "list", id.data, 0, 0, NULL, NULL));
  kuala_buf_reset(&id);
  kuala_buf_printf(&id, "create%s", r->kind);
  json_object_object_add(ci, "post",
                         operation(r, "post", id.data, 1, 0, request_body(json_types, comp), comp));
  json_object *cparams = json_object_new_array();
  if (r->namespaced) {
    json_object_array_add(cparams, param("namespace", "path", "string", 1));
  }
  json_object_object_add(ci, "parameters", cparams);
  json_object_object_add(paths, coll.data, ci);

  json_object *it = json_object_new_object();
  kuala_buf_reset(&id);
  kuala_buf_printf(&id, "read%s", r->kind);
  json_object_object_add(it, "get", operation(r, "get", id.data, 0, 0, NULL, comp));
  kuala_buf_reset(&id);
  kuala_buf_printf(&id, "replace%s", r->kind);
  json_object_object_add(it, "put",
                         operation(r, "put", id.data, 1, 0, request_body(json_types, comp), comp));
  kuala_buf_reset(&id);
  kuala_buf_printf(&id, "patch%s", r->kind);
  json_object_object_add(
      it, "patch", operation(r, "patch", id.data, 1, 1, request_body(patch_types, NULL), comp));
  kuala_buf_reset(&id);
  kuala_buf_printf(&id, "delete%s", r->kind);
  json_object_object_add(it, "delete", operation(r, "delete", id.data, 0, 0, NULL, NULL));
  json_object *iparams = json_object_new_array();
  json_object_array_add(iparams, param("name", "path", "string", 1));
  if (r->namespaced) {
    json_object_array_add(iparams, param("namespace", "path", "string", 1));
  }
  json_object_object_add(it, "parameters", iparams);
  json_object_object_add(paths, item.data, it);

  /* The component: the CRD schema when there is one, else an open object. */
  json_object *sch = r->schema ? kuala_json_copy(r->schema) : json_object_new_object();
  if (!r->schema) {
    json_object_object_add(sch, "type", json_object_new_string("object"));
    json_object_object_add(sch, "x-kubernetes-preserve-unknown-fields", json_object_new_boolean(1));
  }
  json_object *gvks = json_object_new_array();
  json_object_array_add(gvks, gvk_obj(r));
  json_object_object_add(sch, "x-kubernetes-group-version-kind", gvks);
  json_object_object_add(schemas, comp, sch);

  kuala_buf_free(&id);
  kuala_buf_free(&item);
  kuala_buf_free(&coll);
  kuala_free(comp);
  kuala_free(gv);
}

static json_object *build_gv_doc(const kuala_openapi_res_t *res, size_t n, const char *gvpath)
{
  json_object *paths = json_object_new_object();
  json_object *schemas = json_object_new_object();
  int found = 0;
  for (size_t i = 0; i < n; i++) {
    if (res_in_gv(&res[i], gvpath)) {
      add_resource_paths(paths, schemas, &res[i]);
      found = 1;
    }
  }
  if (!found) {
    json_object_put(paths);
    json_object_put(schemas);
    return NULL;
  }
  json_object *doc = json_object_new_object();
  json_object_object_add(doc, "openapi", json_object_new_string("3.0.0"));
  json_object *info = json_object_new_object();
  json_object_object_add(info, "title", json_object_new_string("Kubernetes"));
  json_object_object_add(info, "version", json_object_new_string("v1.32.0"));
  json_object_object_add(doc, "info", info);
  json_object_object_add(doc, "paths", paths);
  json_object *components = json_object_new_object();
  json_object_object_add(components, "schemas", schemas);
  json_object_object_add(doc, "components", components);
  return doc;
}

/* FNV-1a 64 of the compact document, as 16 upper-case hex digits. */
static char *doc_hash(json_object *doc)
{
  size_t len = 0;
  const char *s = kuala_json_compact(doc, &len);
  unsigned long long h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  char buf[17];
  snprintf(buf, sizeof buf, "%016llX", h);
  return kuala_strdup(buf);
}

char *kuala__openapi_gv_hash(const kuala_openapi_res_t *res, size_t n, const char *gvpath)
{
  json_object *doc = build_gv_doc(res, n, gvpath);
  if (!doc) {
    return NULL;
  }
  char *h = doc_hash(doc);
  json_object_put(doc);
  return h;
}

json_object *kuala__openapi_index(const kuala_openapi_res_t *res, size_t n)
{
  json_object *paths = json_object_new_object();
  for (size_t i = 0; i < n; i++) {
    char *gv = gv_path(res[i].group, res[i].version);
    if (!json_object_object_get_ex(paths, gv, NULL)) {
      char *h = kuala__openapi_gv_hash(res, n, gv);
      kuala_buf_t url = KUALA_BUF_INIT(0);
      kuala_buf_printf(&url, "/openapi/v3/%s?hash=%s", gv, h ? h : "0");
      json_object *e = json_object_new_object();
      json_object_object_add(e, "serverRelativeURL", json_object_new_string(url.data));
      json_object_object_add(paths, gv, e);
      kuala_buf_free(&url);
      kuala_free(h);
    }
    kuala_free(gv);
  }
  json_object *idx = json_object_new_object();
  json_object_object_add(idx, "paths", paths);
  return idx;
}

int kuala__openapi_gv_doc(json_object **out, const kuala_openapi_res_t *res, size_t n,
                          const char *gvpath, kuala_apierr_t *err)
{
  *out = NULL;
  /* Ignore a query string and surrounding slashes if the caller left them. */
  const char *p = gvpath ? gvpath : "";
  while (*p == '/') {
    p++;
  }
  size_t len = strcspn(p, "?");
  while (len > 0 && p[len - 1] == '/') {
    len--;
  }
  char *clean = kuala_strndup(p, len);
  json_object *doc = build_gv_doc(res, n, clean);
  if (!doc) {
    int rc = kuala__apierr_set(err, 404, NULL, "the server could not find the requested resource");
    kuala_free(clean);
    return rc;
  }
  kuala_free(clean);
  *out = doc;
  return 0;
}

/* ------------------------------------------------------------ tables */

int kuala__openapi_accepts_as(const char *accept, const char *as)
{
  if (!accept || !as) {
    return 0;
  }
  size_t aslen = strlen(as);
  /* Walk the media ranges; a range matches when it has as=<as> and
   * g=meta.k8s.io. */
  const char *p = accept;
  while (*p) {
    size_t n = strcspn(p, ",");
    int as_match = 0, meta_group = 0;
    const char *q = p;
    const char *end = p + n;
    while (q < end) {
      size_t m = strcspn(q, ";");
      if (q + m > end) {
        m = (size_t)(end - q);
      }
      const char *a = q;
      size_t al = m;
      while (al && isspace((unsigned char)*a)) {
        a++;
        al--;
      }
      while (al && isspace((unsigned char)a[al - 1])) {
        al--;
      }
      if (al == aslen + 3 && strncmp(a, "as=", 3) == 0 && strncmp(a + 3, as, aslen) == 0) {
        as_match = 1;
      } else if (al == 13 && strncmp(a, "g=meta.k8s.io", 13) == 0) {
        meta_group = 1;
      }
      q += m;
      if (q < end && *q == ';') {
        q++;
      }
    }
    if (as_match && meta_group) {
      return 1;
    }
    p = *end ? end + 1 : end;
  }
  return 0;
}

int kuala__openapi_accepts_table(const char *accept)
{
  return kuala__openapi_accepts_as(accept, "Table");
}

int kuala__openapi_accepts_partial(const char *accept)
{
  return kuala__openapi_accepts_as(accept, "PartialObjectMetadata") ||
         kuala__openapi_accepts_as(accept, "PartialObjectMetadataList");
}

static json_object *partial_of(json_object *obj)
{
  json_object *pom = json_object_new_object();
  json_object_object_add(pom, "kind", json_object_new_string("PartialObjectMetadata"));
  json_object_object_add(pom, "apiVersion", json_object_new_string("meta.k8s.io/v1"));
  json_object *md = NULL;
  if (json_object_object_get_ex(obj, "metadata", &md)) {
    json_object_object_add(pom, "metadata", json_object_get(md));
  } else {
    json_object_object_add(pom, "metadata", json_object_new_object());
  }
  return pom;
}

json_object *kuala__openapi_partial(json_object *doc)
{
  json_object *items = NULL;
  if (!json_object_object_get_ex(doc, "items", &items) ||
      !json_object_is_type(items, json_type_array)) {
    return partial_of(doc);
  }
  json_object *list = json_object_new_object();
  json_object_object_add(list, "kind", json_object_new_string("PartialObjectMetadataList"));
  json_object_object_add(list, "apiVersion", json_object_new_string("meta.k8s.io/v1"));
  json_object *md = NULL;
  json_object_object_get_ex(doc, "metadata", &md);
  json_object_object_add(list, "metadata", md ? json_object_get(md) : json_object_new_object());
  json_object *out = json_object_new_array_ext((int)json_object_array_length(items));
  for (size_t i = 0; i < json_object_array_length(items); i++) {
    json_object_array_add(out, partial_of(json_object_array_get_idx(items, i)));
  }
  json_object_object_add(list, "items", out);
  return list;
}

int kuala__openapi_table_include(kuala_table_include_t *out, const char *s, kuala_apierr_t *err)
{
  *out = KUALA_TABLE_OBJ_METADATA;
  if (!s || !*s || strcmp(s, "Metadata") == 0) {
    return 0;
  }
  if (strcmp(s, "Object") == 0) {
    *out = KUALA_TABLE_OBJ_OBJECT;
    return 0;
  }
  if (strcmp(s, "None") == 0) {
    *out = KUALA_TABLE_OBJ_NONE;
    return 0;
  }
  return kuala__apierr_set(err, 400, NULL,
                           "includeObject: Unsupported value: \"%s\": supported values: "
                           "\"None\", \"Metadata\", \"Object\"",
                           s);
}

/* Evaluate a filter "[?(@.a.b=="x")]" on an array: the first matching element. */
static json_object *jp_filter(json_object *arr, const char *expr, size_t n)
{
  /* expr points after "[?(" and n is the length up to ")]". */
  const char *eq = NULL;
  for (size_t i = 0; i + 1 < n; i++) {
    if (expr[i] == '=' && expr[i + 1] == '=') {
      eq = expr + i;
      break;
    }
  }
  if (!eq || expr[0] != '@') {
    return NULL;
  }
  char *lhs = kuala_strndup(expr + 1, (size_t)(eq - expr - 1));
  const char *r = eq + 2;
  size_t rl = n - (size_t)(r - expr);
  while (rl && isspace((unsigned char)*r)) {
    r++;
    rl--;
  }
  while (rl && isspace((unsigned char)r[rl - 1])) {
    rl--;
  }
  size_t ll = strlen(lhs);
  while (ll && isspace((unsigned char)lhs[ll - 1])) {
    lhs[--ll] = '\0';
  }
  char *want = NULL;
  if (rl >= 2 && (r[0] == '"' || r[0] == '\'') && r[rl - 1] == r[0]) {
    want = kuala_strndup(r + 1, rl - 2);
  } else {
    want = kuala_strndup(r, rl);
  }
  json_object *found = NULL;
  for (size_t i = 0; json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr);
       i++) {
    json_object *el = json_object_array_get_idx(arr, i);
    json_object *v = kuala__openapi_jsonpath(el, lhs);
    if (!v) {
      continue;
    }
    const char *vs = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                              : kuala_json_compact(v, NULL);
    if (strcmp(vs, want) == 0) {
      found = el;
      break;
    }
  }
  kuala_free(lhs);
  kuala_free(want);
  return found;
}

json_object *kuala__openapi_jsonpath(json_object *obj, const char *path)
{
  if (!path) {
    return NULL;
  }
  const char *p = path;
  /* Accept "{.a.b}" as kubectl custom-columns write it. */
  size_t plen = strlen(p);
  char *inner = NULL;
  if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
    inner = kuala_strndup(p + 1, plen - 2);
    p = inner;
  }
  json_object *cur = obj;
  while (cur && *p) {
    if (*p == '.') {
      p++;
      size_t n = strcspn(p, ".[");
      if (n == 0) {
        if (*p == '\0') {
          break;
        }
        continue;
      }
      char *key = kuala_strndup(p, n);
      cur = kuala__json_get(cur, key);
      kuala_free(key);
      p += n;
    } else if (*p == '[') {
      const char *close = NULL;
      if (p[1] == '?' && p[2] == '(') {
        close = strstr(p, ")]");
        if (!close) {
          cur = NULL;
          break;
        }
        cur = jp_filter(cur, p + 3, (size_t)(close - (p + 3)));
        p = close + 2;
        continue;
      }
      close = strchr(p, ']');
      if (!close) {
        cur = NULL;
        break;
      }
      const char *a = p + 1;
      size_t n = (size_t)(close - a);
      if (n >= 2 && (a[0] == '\'' || a[0] == '"') && a[n - 1] == a[0]) {
        char *key = kuala_strndup(a + 1, n - 2);
        cur = kuala__json_get(cur, key);
        kuala_free(key);
      } else {
        char *num = kuala_strndup(a, n);
        char *endp = NULL;
        long idx = strtol(num, &endp, 10);
        int ok = n > 0 && endp && *endp == '\0';
        kuala_free(num);
        if (!ok || !json_object_is_type(cur, json_type_array)) {
          cur = NULL;
          break;
        }
        long len = (long)json_object_array_length(cur);
        if (idx < 0) {
          idx += len;
        }
        cur = idx >= 0 && idx < len ? json_object_array_get_idx(cur, (size_t)idx) : NULL;
      }
      p = close + 1;
    } else {
      cur = NULL; /* unsupported syntax */
      break;
    }
  }
  kuala_free(inner);
  return cur;
}

/* Seconds since the epoch for an RFC 3339 UTC time; -1 when unparsable. */
static long long parse_time(const char *s)
{
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) {
    return -1;
  }
  return (long long)timegm(&tm);
}

/* A short age in the style kubectl prints ("6s", "5m10s", "3h", "2d"). */
static void human_age(char *out, size_t n, long long secs)
{
  if (secs < -1) {
    snprintf(out, n, "<invalid>");
    return;
  }
  if (secs < 0) {
    secs = 0;
  }
  long long m = secs / 60, h = secs / 3600, d = h / 24, y = d / 365;
  if (secs < 120) {
    snprintf(out, n, "%llds", secs);
  } else if (m < 10) {
    if (secs % 60) {
      snprintf(out, n, "%lldm%llds", m, secs % 60);
    } else {
      snprintf(out, n, "%lldm", m);
    }
  } else if (m < 180) {
    snprintf(out, n, "%lldm", m);
  } else if (h < 8) {
    if (m % 60) {
      snprintf(out, n, "%lldh%lldm", h, m % 60);
    } else {
      snprintf(out, n, "%lldh", h);
    }
  } else if (h < 48) {
    snprintf(out, n, "%lldh", h);
  } else if (h < 192) {
    if (h % 24) {
      snprintf(out, n, "%lldd%lldh", d, h % 24);
    } else {
      snprintf(out, n, "%lldd", d);
    }
  } else if (d < 730) {
    snprintf(out, n, "%lldd", d);
  } else if (d < 2920) {
    if (d % 365) {
      snprintf(out, n, "%lldy%lldd", y, d % 365);
    } else {
      snprintf(out, n, "%lldy", y);
    }
  } else {
    snprintf(out, n, "%lldy", y);
  }
}

static json_object *coldef(const char *name, const char *type, const char *format, const char *desc,
                           int priority)
{
  json_object *c = json_object_new_object();
  json_object_object_add(c, "name", json_object_new_string(name));
  json_object_object_add(c, "type", json_object_new_string(type));
  json_object_object_add(c, "format", json_object_new_string(format ? format : ""));
  json_object_object_add(c, "description", json_object_new_string(desc ? desc : ""));
  json_object_object_add(c, "priority", json_object_new_int(priority));
  return c;
}

static json_object *cell_for(json_object *obj, json_object *col, time_t now)
{
  const char *type = kuala__json_get_str(col, "type");
  json_object *v = kuala__openapi_jsonpath(obj, kuala__json_get_str(col, "jsonPath"));
  if (!v) {
    return NULL;
  }
  if (type && strcmp(type, "date") == 0) {
    if (!json_object_is_type(v, json_type_string)) {
      return NULL;
    }
    long long t = parse_time(json_object_get_string(v));
    if (t < 0) {
      return NULL;
    }
    char age[32];
    human_age(age, sizeof age, (long long)now - t);
    return json_object_new_string(age);
  }
  if (type && strcmp(type, "string") == 0 && !json_object_is_type(v, json_type_string)) {
    return json_object_new_string(kuala_json_compact(v, NULL));
  }
  if (type && strcmp(type, "integer") == 0 && !json_object_is_type(v, json_type_int)) {
    return NULL;
  }
  if (type && strcmp(type, "number") == 0 && !kuala__json_is_number(v)) {
    return NULL;
  }
  if (type && strcmp(type, "boolean") == 0 && !json_object_is_type(v, json_type_boolean)) {
    return NULL;
  }
  return kuala_json_copy(v);
}

/* ------------------------------------------------ built-in printers */

/*
 * The columns the real server prints for the built-in kinds the emulator
 * serves (kubectl shows them as NAME DATA AGE, NAME READY UP-TO-DATE …).
 * Kinds without an entry get the generic Name / Created At pair.
 */
typedef json_object *(*cell_fn_t)(json_object *obj, time_t now);

typedef struct {
  const char *name;
  const char *type;
  int priority;
  cell_fn_t cell;
} bcol_t;

typedef struct {
  const char *kind;
  int name_first; /* 0: Name is a priority-1 column at the end (Events) */
  const bcol_t *cols;
} bprinter_t;

static json_object *str_or(const char *s, const char *dflt)
{
  return json_object_new_string(s && *s ? s : dflt);
}

static int64_t int_at(json_object *obj, const char *path, int64_t dflt)
{
  json_object *v = kuala_json_path(obj, path);
  return json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}

static json_object *age_of(const char *ts, time_t now)
{
  long long t = parse_time(ts);
  if (t < 0) {
    return json_object_new_string("<unknown>");
  }
  char age[32];
  human_age(age, sizeof age, (long long)now - t);
  return json_object_new_string(age);
}

static json_object *c_age(json_object *o, time_t now)
{
  return age_of(kuala_json_path_str(o, "metadata.creationTimestamp"), now);
}

static int64_t count_keys(json_object *o, const char *path)
{
  json_object *m = kuala_json_path(o, path);
  return json_object_is_type(m, json_type_object) ? json_object_object_length(m) : 0;
}

static json_object *c_cm_data(json_object *o, time_t now)
{
  (void)now;
  return json_object_new_int64(count_keys(o, "data") + count_keys(o, "binaryData"));
}

static json_object *c_secret_type(json_object *o, time_t now)
{
  (void)now;
  return str_or(kuala_json_path_str(o, "type"), "Opaque");
}

static json_object *c_secret_data(json_object *o, time_t now)
{
  (void)now;
  return json_object_new_int64(count_keys(o, "data"));
}

static json_object *c_ns_status(json_object *o, time_t now)
{
  (void)now;
  return str_or(kuala_json_path_str(o, "status.phase"), "Active");
}

static json_object *c_dep_ready(json_object *o, time_t now)
{
  (void)now;
  char buf[48];
  snprintf(buf, sizeof buf, "%lld/%lld", (long long)int_at(o, "status.readyReplicas", 0),
           (long long)int_at(o, "spec.replicas", 1));
  return json_object_new_string(buf);
}

static json_object *c_dep_updated(json_object *o, time_t now)
{
  (void)now;
  return json_object_new_int64(int_at(o, "status.updatedReplicas", 0));
}

static json_object *c_dep_available(json_object *o, time_t now)
{
  (void)now;
  return json_object_new_int64(int_at(o, "status.availableReplicas", 0));
}

/* Join a string field of each element of a list ("a,b"); dflt when empty. */
static json_object *join_list(json_object *list, const char *key, const char *dflt)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  for (size_t i = 0;
       json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++) {
    const char *v = kuala__json_get_str(json_object_array_get_idx(list, i), key);
    if (v) {
      kuala_buf_printf(&b, "%s%s", b.len ? "," : "", v);
    }
  }
  json_object *r = str_or(b.data, dflt);
  kuala_buf_free(&b);
  return r;
}

static json_object *labels_str(json_object *m, const char *dflt)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  if (json_object_is_type(m, json_type_object)) {
    json_object_object_foreach(m, k, v)
    {
      kuala_buf_printf(&b, "%s%s=%s", b.len ? "," : "", k,
                       json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "");
    }
  }
  json_object *r = str_or(b.data, dflt);
  kuala_buf_free(&b);
  return r;
}

static json_object *c_dep_containers(json_object *o, time_t now)
{
  (void)now;
  return join_list(kuala_json_path(o, "spec.template.spec.containers"), "name", "");
}

static json_object *c_dep_images(json_object *o, time_t now)
{
  (void)now;
  return join_list(kuala_json_path(o, "spec.template.spec.containers"), "image", "");
}

static json_object *c_dep_selector(json_object *o, time_t now)
{
  (void)now;
  return labels_str(kuala_json_path(o, "spec.selector.matchLabels"), "<none>");
}

static json_object *c_svc_type(json_object *o, time_t now)
{
  (void)now;
  return str_or(kuala_json_path_str(o, "spec.type"), "ClusterIP");
}

static json_object *c_svc_cluster_ip(json_object *o, time_t now)
{
  (void)now;
  return str_or(kuala_json_path_str(o, "spec.clusterIP"), "<none>");
}

static json_object *c_svc_external_ip(json_object *o, time_t now)
{
  (void)now;
  json_object *ext = kuala_json_path(o, "spec.externalIPs");
  kuala_buf_t b = KUALA_BUF_INIT(0);
  for (size_t i = 0; json_object_is_type(ext, json_type_array) && i < json_object_array_length(ext);
       i++) {
    json_object *v = json_object_array_get_idx(ext, i);
    if (json_object_is_type(v, json_type_string)) {
      kuala_buf_printf(&b, "%s%s", b.len ? "," : "", json_object_get_string(v));
    }
  }
  const char *type = kuala_json_path_str(o, "spec.type");
  const char *dflt = type && strcmp(type, "LoadBalancer") == 0 ? "<pending>" : "<none>";
  json_object *r = str_or(b.data, dflt);
  kuala_buf_free(&b);
  return r;
}

static json_object *c_svc_ports(json_object *o, time_t now)
{
  (void)now;
  json_object *ports = kuala_json_path(o, "spec.ports");
  kuala_buf_t b = KUALA_BUF_INIT(0);
  for (size_t i = 0;
       json_object_is_type(ports, json_type_array) && i < json_object_array_length(ports); i++) {
    json_object *p = json_object_array_get_idx(ports, i);
    const char *proto = kuala__json_get_str(p, "protocol");
    kuala_buf_printf(&b, "%s%lld", b.len ? "," : "", (long long)int_at(p, "port", 0));
    if (int_at(p, "nodePort", 0) > 0) {
      kuala_buf_printf(&b, ":%lld", (long long)int_at(p, "nodePort", 0));
    }
    kuala_buf_printf(&b, "/%s", proto ? proto : "TCP");
  }
  json_object *r = str_or(b.data, "<none>");
  kuala_buf_free(&b);
  return r;
}

static json_object *c_svc_selector(json_object *o, time_t now)
{
  (void)now;
  return labels_str(kuala_json_path(o, "spec.selector"), "<none>");
}

static json_object *c_sa_secrets(json_object *o, time_t now)
{
  (void)now;
  json_object *l = kuala_json_path(o, "secrets");
  return json_object_new_int64(
      json_object_is_type(l, json_type_array) ? (int64_t)json_object_array_length(l) : 0);
}

static json_object *c_lease_holder(json_object *o, time_t now)
{
  (void)now;
  return str_or(kuala_json_path_str(o, "spec.holderIdentity"), "");
}

static json_object *c_binding_role(json_object *o, time_t now)
{
  (void)now;
  char buf[512];
  const char *k = kuala_json_path_str(o, "roleRef.kind");
  const char *n = kuala_json_path_str(o, "roleRef.name");
  snprintf(buf, sizeof buf, "%s/%s", k ? k : "", n ? n : "");
  return json_object_new_string(buf);
}

static json_object *c_ev_last_seen(json_object *o, time_t now)
{
  const char *ts = kuala_json_path_str(o, "lastTimestamp");
  if (!ts) {
    ts = kuala_json_path_str(o, "eventTime");
  }
  if (!ts) {
    ts = kuala_json_path_str(o, "metadata.creationTimestamp");
  }
  return age_of(ts, now);
}

static json_object *c_ev_type(json_object *o, time_t now)
{
  (void)now;
  return str_or(kuala_json_path_str(o, "type"), "");
}

static json_object *c_ev_reason(json_object *o, time_t now)
{
  (void)now;
  return str_or(kuala_json_path_str(o, "reason"), "");
}

static json_object *c_ev_object(json_object *o, time_t now)
{
  (void)now;
  json_object *ref = kuala__json_get(o, "involvedObject");
  if (!ref) {
    ref = kuala__json_get(o, "regarding");
  }
  const char *kind = kuala__json_get_str(ref, "kind");
  const char *name = kuala__json_get_str(ref, "name");
  kuala_buf_t b = KUALA_BUF_INIT(0);
  for (const char *p = kind ? kind : ""; *p; p++) {
    kuala_buf_putc(&b, (char)tolower((unsigned char)*p));
  }
  kuala_buf_printf(&b, "/%s", name ? name : "");
  json_object *r = json_object_new_string(b.data);
  kuala_buf_free(&b);
  return r;
}

static json_object *c_ev_message(json_object *o, time_t now)
{
  (void)now;
  const char *m = kuala_json_path_str(o, "message");
  return str_or(m ? m : kuala_json_path_str(o, "note"), "");
}

static json_object *c_name(json_object *o, time_t now)
{
  (void)now;
  return str_or(kuala_json_path_str(o, "metadata.name"), "");
}

#define AGE                   \
  {                           \
    "Age", "string", 0, c_age \
  }
#define BEND            \
  {                     \
    NULL, NULL, 0, NULL \
  }
static const bcol_t cm_cols[] = {{"Data", "integer", 0, c_cm_data}, AGE, BEND};
static const bcol_t secret_cols[] = {
    {"Type", "string", 0, c_secret_type}, {"Data", "integer", 0, c_secret_data}, AGE, BEND};
static const bcol_t ns_cols[] = {{"Status", "string", 0, c_ns_status}, AGE, BEND};
static const bcol_t dep_cols[] = {
    {"Ready", "string", 0, c_dep_ready},           {"Up-to-date", "integer", 0, c_dep_updated},
    {"Available", "integer", 0, c_dep_available},  AGE,
    {"Containers", "string", 1, c_dep_containers}, {"Images", "string", 1, c_dep_images},
    {"Selector", "string", 1, c_dep_selector},     BEND};
static const bcol_t svc_cols[] = {{"Type", "string", 0, c_svc_type},
                                  {"Cluster-IP", "string", 0, c_svc_cluster_ip},
                                  {"External-IP", "string", 0, c_svc_external_ip},
                                  {"Port(s)", "string", 0, c_svc_ports},
                                  AGE,
                                  {"Selector", "string", 1, c_svc_selector},
                                  BEND};
static const bcol_t sa_cols[] = {{"Secrets", "integer", 0, c_sa_secrets}, AGE, BEND};
static const bcol_t lease_cols[] = {{"Holder", "string", 0, c_lease_holder}, AGE, BEND};
static const bcol_t binding_cols[] = {{"Role", "string", 0, c_binding_role}, AGE, BEND};
static const bcol_t event_cols[] = {{"Last Seen", "string", 0, c_ev_last_seen},
                                    {"Type", "string", 0, c_ev_type},
                                    {"Reason", "string", 0, c_ev_reason},
                                    {"Object", "string", 0, c_ev_object},
                                    {"Message", "string", 0, c_ev_message},
                                    {"Name", "string", 1, c_name},
                                    BEND};

static const bprinter_t printers[] = {
    {"ConfigMap", 1, cm_cols},
    {"Secret", 1, secret_cols},
    {"Namespace", 1, ns_cols},
    {"Deployment", 1, dep_cols},
    {"Service", 1, svc_cols},
    {"ServiceAccount", 1, sa_cols},
    {"Lease", 1, lease_cols},
    {"RoleBinding", 1, binding_cols},
    {"ClusterRoleBinding", 1, binding_cols},
    {"Event", 0, event_cols},
};

/* The built-in printer for a list or object, by kind ("ConfigMapList" → ConfigMap). */
static const bprinter_t *printer_for(json_object *src)
{
  const char *kind = kuala__json_get_str(src, "kind");
  json_object *items = kuala__json_get(src, "items");
  char buf[128];
  if (kind && json_object_is_type(items, json_type_array)) {
    size_t n = strlen(kind);
    if (n > 4 && strcmp(kind + n - 4, "List") == 0 && n - 4 < sizeof buf) {
      memcpy(buf, kind, n - 4);
      buf[n - 4] = '\0';
      kind = buf;
    } else if (json_object_array_length(items) > 0) {
      kind = kuala__json_get_str(json_object_array_get_idx(items, 0), "kind");
    }
  }
  for (size_t i = 0; kind && i < sizeof printers / sizeof printers[0]; i++) {
    if (strcmp(printers[i].kind, kind) == 0) {
      return &printers[i];
    }
  }
  return NULL;
}

static void add_row_object(json_object *row, json_object *obj, kuala_table_include_t include)
{
  if (include == KUALA_TABLE_OBJ_OBJECT) {
    json_object_object_add(row, "object", kuala_json_copy(obj));
  } else if (include == KUALA_TABLE_OBJ_METADATA) {
    json_object *pom = json_object_new_object();
    json_object_object_add(pom, "kind", json_object_new_string("PartialObjectMetadata"));
    json_object_object_add(pom, "apiVersion", json_object_new_string("meta.k8s.io/v1"));
    json_object *meta = kuala__json_get(obj, "metadata");
    json_object_object_add(pom, "metadata",
                           meta ? kuala_json_copy(meta) : json_object_new_object());
    json_object_object_add(row, "object", pom);
  }
}

static json_object *row_builtin(json_object *obj, const bprinter_t *pr,
                                kuala_table_include_t include, time_t now)
{
  json_object *cells = json_object_new_array();
  if (pr->name_first) {
    json_object_array_add(cells, c_name(obj, now));
  }
  for (const bcol_t *c = pr->cols; c->name; c++) {
    json_object_array_add(cells, c->cell(obj, now));
  }
  json_object *row = json_object_new_object();
  json_object_object_add(row, "cells", cells);
  add_row_object(row, obj, include);
  return row;
}

static json_object *row_for(json_object *obj, json_object *columns, int custom,
                            kuala_table_include_t include, time_t now)
{
  json_object *cells = json_object_new_array();
  const char *name = kuala_json_path_str(obj, "metadata.name");
  json_object_array_add(cells, json_object_new_string(name ? name : ""));
  size_t ncols =
      json_object_is_type(columns, json_type_array) ? json_object_array_length(columns) : 0;
  const char *created = kuala_json_path_str(obj, "metadata.creationTimestamp");
  if (ncols > 0) {
    for (size_t i = 0; i < ncols; i++) {
      json_object_array_add(cells, cell_for(obj, json_object_array_get_idx(columns, i), now));
    }
  } else if (custom) {
    long long t = parse_time(created);
    char age[32];
    human_age(age, sizeof age, t < 0 ? 0 : (long long)now - t);
    json_object_array_add(cells, t < 0 ? NULL : json_object_new_string(age));
  } else {
    json_object_array_add(cells, created ? json_object_new_string(created) : NULL);
  }
  json_object *row = json_object_new_object();
  json_object_object_add(row, "cells", cells);
  add_row_object(row, obj, include);
  return row;
}

json_object *kuala__openapi_table(json_object *src, json_object *columns, int custom,
                                  kuala_table_include_t include, int with_columns, time_t now)
{
  json_object *t = json_object_new_object();
  json_object_object_add(t, "kind", json_object_new_string("Table"));
  json_object_object_add(t, "apiVersion", json_object_new_string("meta.k8s.io/v1"));
  json_object *meta = json_object_new_object();
  json_object *items = kuala__json_get(src, "items");
  int is_list = json_object_is_type(items, json_type_array);
  json_object *smeta = kuala__json_get(src, "metadata");
  const char *rv = kuala__json_get_str(smeta, "resourceVersion");
  if (rv) {
    json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
  }
  if (is_list) {
    const char *cont = kuala__json_get_str(smeta, "continue");
    if (cont && *cont) {
      json_object_object_add(meta, "continue", json_object_new_string(cont));
    }
    json_object *rem = kuala__json_get(smeta, "remainingItemCount");
    if (rem) {
      json_object_object_add(meta, "remainingItemCount", kuala_json_copy(rem));
    }
  }
  json_object_object_add(t, "metadata", meta);
  size_t ucols =
      json_object_is_type(columns, json_type_array) ? json_object_array_length(columns) : 0;
  const bprinter_t *pr = !custom && ucols == 0 ? printer_for(src) : NULL;
  if (pr) {
    if (with_columns) {
      json_object *defs = json_object_new_array();
      if (pr->name_first) {
        json_object_array_add(defs, coldef("Name", "string", "name",
                                           "Name of the object, unique within its namespace.", 0));
      }
      for (const bcol_t *c = pr->cols; c->name; c++) {
        json_object_array_add(
            defs,
            coldef(c->name, c->type, strcmp(c->name, "Name") == 0 ? "name" : "", "", c->priority));
      }
      json_object_object_add(t, "columnDefinitions", defs);
    }
    json_object *rows = json_object_new_array();
    if (is_list) {
      for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object_array_add(rows,
                              row_builtin(json_object_array_get_idx(items, i), pr, include, now));
      }
    } else {
      json_object_array_add(rows, row_builtin(src, pr, include, now));
    }
    json_object_object_add(t, "rows", rows);
    return t;
  }
  if (with_columns) {
    json_object *defs = json_object_new_array();
    json_object_array_add(defs, coldef("Name", "string", "name",
                                       "Name of the object, unique within its namespace.", 0));
    size_t ncols =
        json_object_is_type(columns, json_type_array) ? json_object_array_length(columns) : 0;
    if (ncols > 0) {
      for (size_t i = 0; i < ncols; i++) {
        json_object *c = json_object_array_get_idx(columns, i);
        json_object *prio = kuala__json_get(c, "priority");
        const char *cname = kuala__json_get_str(c, "name");
        const char *ctype = kuala__json_get_str(c, "type");
        json_object_array_add(
            defs,
            coldef(cname ? cname : "", ctype ? ctype : "string", kuala__json_get_str(c, "format"),
                   kuala__json_get_str(c, "description"), prio ? json_object_get_int(prio) : 0));
      }
    } else if (custom) {
      json_object_array_add(defs, coldef("Age", "date", "",
                                         "Time since the object was created "
                                         "(metadata.creationTimestamp).",
                                         0));
    } else {
      json_object_array_add(defs, coldef("Created At", "date", "",
                                         "When the object was created "
                                         "(metadata.creationTimestamp).",
                                         0));
    }
    json_object_object_add(t, "columnDefinitions", defs);
  }
  json_object *rows = json_object_new_array();
  if (is_list) {
    for (size_t i = 0; i < json_object_array_length(items); i++) {
      json_object_array_add(
          rows, row_for(json_object_array_get_idx(items, i), columns, custom, include, now));
    }
  } else if (json_object_is_type(src, json_type_object)) {
    json_object_array_add(rows, row_for(src, columns, custom, include, now));
  }
  json_object_object_add(t, "rows", rows);
  return t;
}
