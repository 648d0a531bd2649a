/*
 * write.c: create, update, patch, delete and deletecollection (spec §4, §5,
 * §8, §9), with the per-type strategies of the built-in kinds.
 *
 * Every write path ends in write_obj(): identity checks, system fields,
 * type hooks, schema processing (custom resources), managedFields, then
 * emu_commit() (which detects no-ops) unless the request is a dry run.
 * Deletion goes through delete_obj(), shared with the in-process
 * controllers (garbage collector, namespace and CRD finalizers).
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"
#include "emu_internal.h"
#include "kuala/alloc.h"
#include "jsonx.h"
#include "kuala/json.h"
#ifdef KUALA_EMU_HAVE_PATCH
#include "patch.h"
#include "protobuf.h"
#endif
#ifdef KUALA_EMU_HAVE_SSA
#include "ssa.h"
#endif
#ifdef KUALA_EMU_HAVE_SCHEMA
#include "schema.h"
#endif

#define FIN_FOREGROUND "foregroundDeletion"
#define FIN_ORPHAN "orphan"
#define FIN_CRD "customresourcecleanup.apiextensions.k8s.io"

/* ---- small JSON helpers ---- */

static json_object *md(json_object *obj)
{
  return kuala_json_ensure_obj(obj, "metadata");
}

static const char *mds(json_object *obj, const char *key)
{
  json_object *m = kuala_json_get(obj, "metadata", key, NULL);
  return m && json_object_is_type(m, json_type_string) ? json_object_get_string(m) : NULL;
}

static int is_null_or_absent(json_object *parent, const char *key)
{
  json_object *v;
  return !json_object_object_get_ex(parent, key, &v) || v == NULL;
}

static void copy_field(json_object *dst, json_object *src, const char *key)
{
  json_object *v;
  if (src && json_object_object_get_ex(src, key, &v) && v) {
    json_object_object_add(dst, key, kuala_json_copy(v));
  } else {
    json_object_object_del(dst, key);
  }
}

static int strs_has(json_object *arr, const char *s)
{
  for (size_t i = 0;
       arr && json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr); i++) {
    const char *x = json_object_get_string(json_object_array_get_idx(arr, i));
    if (x && strcmp(x, s) == 0) {
      return 1;
    }
  }
  return 0;
}

static json_object *finalizers(json_object *obj)
{
  json_object *f = kuala_json_get(obj, "metadata", "finalizers", NULL);
  return f && json_object_is_type(f, json_type_array) ? f : NULL;
}

static void fin_add(json_object *obj, const char *name)
{
  json_object *f = finalizers(obj);
  if (!f) {
    f = json_object_new_array();
    json_object_object_add(md(obj), "finalizers", f);
  }
  if (!strs_has(f, name)) {
    json_object_array_add(f, json_object_new_string(name));
  }
}

static void fin_del(json_object *obj, const char *name)
{
  json_object *f = finalizers(obj);
  if (!f) {
    return;
  }
  json_object *n = json_object_new_array();
  for (size_t i = 0; i < json_object_array_length(f); i++) {
    json_object *x = json_object_array_get_idx(f, i);
    const char *s = json_object_get_string(x);
    if (!s || strcmp(s, name) != 0) {
      json_object_array_add(n, json_object_get(x));
    }
  }
  if (json_object_array_length(n) == 0) {
    json_object_put(n);
    json_object_object_del(md(obj), "finalizers");
  } else {
    json_object_object_add(md(obj), "finalizers", n);
  }
}

static size_t fin_count(json_object *obj)
{
  json_object *f = finalizers(obj);
  return f ? json_object_array_length(f) : 0;
}

/* Namespaces also wait for spec.finalizers ("kubernetes") to empty. */
static size_t all_fin_count(json_object *obj)
{
  json_object *sf = kuala_json_get(obj, "spec", "finalizers", NULL);
  size_t n = sf && json_object_is_type(sf, json_type_array) ? json_object_array_length(sf) : 0;
  const char *kind = kuala_json_path_str(obj, "kind");
  return fin_count(obj) + (kind && strcmp(kind, "Namespace") == 0 ? n : 0);
}

static int is_deleting(json_object *obj)
{
  json_object *d = kuala_json_get(obj, "metadata", "deletionTimestamp", NULL);
  return d != NULL;
}

/* ---- name validation ---- */

static int dns_label(const char *s, size_t n)
{
  if (n == 0 || n > 63) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return 0;
    }
  }
  return s[0] != '-' && s[n - 1] != '-';
}

static int dns_subdomain(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 253) {
    return 0;
  }
  const char *p = s;
  while (1) {
    const char *dot = strchr(p, '.');
    size_t l = dot ? (size_t)(dot - p) : strlen(p);
    if (!dns_label(p, l)) {
      return 0;
    }
    if (!dot) {
      return 1;
    }
    p = dot + 1;
  }
}

static int check_name(const emu_rtype_t *rt, json_object *obj, const char *name,
                      kuala_apierr_t *err)
{
  const char *why = NULL;
  int is_ns = !rt->group[0] && strcmp(rt->plural, "namespaces") == 0;
  if (strcmp(rt->group, "rbac.authorization.k8s.io") == 0) {
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
      why = "may not be '.' or '..'";
    } else if (strchr(name, '/') || strchr(name, '%')) {
      why = "may not contain '/' or '%'";
    }
  } else if (is_ns) {
    if (!dns_label(name, strlen(name))) {
      why =
          "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
          "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
          "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    }
  } else if (!dns_subdomain(name)) {
    why =
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
        "'-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  }
  if (!why) {
    return 0;
  }
  json_object *v = json_object_new_string(name);
  kuala__apierr_field(err, KUALA_CAUSE_INVALID, "metadata.name", v, why);
  json_object_put(v);
  (void)obj;
  return kuala__apierr_invalid(err, rt->kind, rt->group, name);
}

/* Go's decoder refuses wrongly typed ObjectMeta fields with a 400; so do we
 * (spec §4.1, "body does not decode"). */
static int check_meta_types(const emu_rtype_t *rt, json_object *obj, kuala_apierr_t *err)
{
  static const char *const strs[] = {"name", "generateName", "namespace", "uid", "resourceVersion"};
  static const char *const maps[] = {"labels", "annotations"};
  json_object *m = kuala_json_get(obj, "metadata", NULL);
  const char *bad = NULL, *want = NULL;
  json_object *v;
  for (size_t i = 0; m && !bad && i < sizeof strs / sizeof strs[0]; i++) {
    if (json_object_object_get_ex(m, strs[i], &v) && v &&
        !json_object_is_type(v, json_type_string)) {
      bad = strs[i];
      want = "string";
    }
  }
  for (size_t i = 0; m && !bad && i < 2; i++) {
    if (!json_object_object_get_ex(m, maps[i], &v) || !v) {
      continue;
    }
    if (!json_object_is_type(v, json_type_object)) {
      bad = maps[i];
      want = "map[string]string";
      break;
    }
    json_object_object_foreach(v, k, x)
    {
      (void)k;
      if (!x || !json_object_is_type(x, json_type_string)) {
        bad = maps[i];
        want = "map[string]string";
      }
    }
  }
  if (m && !bad && json_object_object_get_ex(m, "finalizers", &v) && v) {
    int ok = json_object_is_type(v, json_type_array);
    for (size_t i = 0; ok && i < json_object_array_length(v); i++) {
      ok = json_object_is_type(json_object_array_get_idx(v, i), json_type_string);
    }
    if (!ok) {
      bad = "finalizers";
      want = "[]string";
    }
  }
  if (m && !bad && json_object_object_get_ex(m, "ownerReferences", &v) && v) {
    int ok = json_object_is_type(v, json_type_array);
    for (size_t i = 0; ok && i < json_object_array_length(v); i++) {
      json_object *r = json_object_array_get_idx(v, i);
      ok = json_object_is_type(r, json_type_object);
      static const char *const need[] = {"apiVersion", "kind", "name", "uid"};
      for (size_t k = 0; ok && k < 4; k++) {
        json_object *f = kuala_json_get(r, need[k], NULL);
        ok = f && json_object_is_type(f, json_type_string);
      }
    }
    if (!ok) {
      bad = "ownerReferences";
      want = "[]OwnerReference with string apiVersion, kind, name and uid";
    }
  }
  for (size_t i = 0; !bad && i < 2; i++) {
    const char *k = i ? "kind" : "apiVersion";
    if (json_object_object_get_ex(obj, k, &v) && v && !json_object_is_type(v, json_type_string)) {
      return kuala__apierr_set(err, 400, NULL,
                               "%s in version \"%s\" cannot be handled as a %s: %s must be a "
                               "string",
                               rt->kind, rt->version, rt->kind, k);
    }
  }
  if (bad) {
    return kuala__apierr_set(err, 400, NULL,
                             "%s in version \"%s\" cannot be handled as a %s: json: cannot "
                             "unmarshal metadata.%s: expected %s",
                             rt->kind, rt->version, rt->kind, bad, want);
  }
  return 0;
}

/* apiVersion and kind first, as the real server serializes them. */
static void put_type_first(json_object *obj, const char *av, const char *kind)
{
  json_object *keys = json_object_new_array();
  json_object_object_foreach(obj, k, v)
  {
    (void)v;
    if (strcmp(k, "apiVersion") != 0 && strcmp(k, "kind") != 0) {
      json_object_array_add(keys, json_object_new_string(k));
    }
  }
  json_object *vals = json_object_new_array();
  for (size_t i = 0; i < json_object_array_length(keys); i++) {
    const char *key = json_object_get_string(json_object_array_get_idx(keys, i));
    json_object *val = NULL;
    json_object_object_get_ex(obj, key, &val);
    json_object_array_add(vals, json_object_get(val));
    json_object_object_del(obj, key);
  }
  json_object_object_del(obj, "apiVersion");
  json_object_object_del(obj, "kind");
  kuala_json_set_str(obj, "apiVersion", av);
  kuala_json_set_str(obj, "kind", kind);
  for (size_t i = 0; i < json_object_array_length(keys); i++) {
    const char *key = json_object_get_string(json_object_array_get_idx(keys, i));
    json_object_object_add(obj, key, json_object_get(json_object_array_get_idx(vals, i)));
  }
  json_object_put(keys);
  json_object_put(vals);
}

/* fieldValidation for built-in kinds (spec §4.7), for the fields this
 * emulator knows: top-level fields per kind and metadata fields. Deeper
 * fields (Deployment spec, Service spec, ...) are not checked. */
typedef struct {
  const char *group, *plural;
  const char *fields; /* space-separated top-level fields besides apiVersion/kind/metadata */
} known_fields_t;

static const known_fields_t known_fields[] = {
    {"", "namespaces", "spec status"},
    {"", "configmaps", "data binaryData immutable"},
    {"", "secrets", "data stringData type immutable"},
    {"", "events",
     "involvedObject reason message source firstTimestamp lastTimestamp count type eventTime "
     "series action related reportingComponent reportingInstance"},
    {"events.k8s.io", "events",
     "eventTime series reportingController reportingInstance action reason regarding related "
     "note type deprecatedSource deprecatedFirstTimestamp deprecatedLastTimestamp "
     "deprecatedCount"},
    {"", "services", "spec status"},
    {"", "pods", "spec status"},
    {"", "nodes", "spec status"},
    {"", "serviceaccounts", "secrets imagePullSecrets automountServiceAccountToken"},
    {"apps", "deployments", "spec status"},
    {"coordination.k8s.io", "leases", "spec"},
    {"rbac.authorization.k8s.io", "roles", "rules"},
    {"rbac.authorization.k8s.io", "clusterroles", "rules aggregationRule"},
    {"rbac.authorization.k8s.io", "rolebindings", "subjects roleRef"},
    {"rbac.authorization.k8s.io", "clusterrolebindings", "subjects roleRef"},
    {"apiextensions.k8s.io", "customresourcedefinitions", "spec status"},
};

static int word_in(const char *list, const char *w)
{
  size_t n = strlen(w);
  for (const char *p = list; (p = strstr(p, w)) != NULL; p += n) {
    if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
      return 1;
    }
  }
  return 0;
}

static int unknown_fields(emu_ctx_t *c, json_object *obj, kuala_apierr_t *err)
{
  emu_rtype_t *rt = c->rt;
  const char *list = NULL;
  for (size_t i = 0; i < sizeof known_fields / sizeof known_fields[0]; i++) {
    if (strcmp(known_fields[i].group, rt->group) == 0 &&
        strcmp(known_fields[i].plural, rt->plural) == 0) {
      list = known_fields[i].fields;
    }
  }
  if (!list || !c->req) {
    return 0;
  }
  const char *fv = kuala__httpd_query(c->req, "fieldValidation");
  int strict = fv && strcmp(fv, "Strict") == 0;
  int ignore = fv && strcmp(fv, "Ignore") == 0;
  if (fv && *fv && !strict && !ignore && strcmp(fv, "Warn") != 0) {
    return kuala__apierr_set(err, 400, NULL,
                             "fieldValidation: Unsupported value: \"%s\": supported values: "
                             "\"Ignore\", \"Strict\", \"Warn\"",
                             fv);
  }
  static const char meta_known[] =
      "name generateName namespace selfLink uid resourceVersion generation creationTimestamp "
      "deletionTimestamp deletionGracePeriodSeconds labels annotations ownerReferences "
      "finalizers managedFields";
  json_object *bad = json_object_new_array();
  json_object_object_foreach(obj, k, v)
  {
    (void)v;
    if (strcmp(k, "apiVersion") != 0 && strcmp(k, "kind") != 0 && strcmp(k, "metadata") != 0 &&
        !word_in(list, k)) {
      json_object_array_add(bad, json_object_new_string(k));
    }
  }
  json_object *m = kuala_json_get(obj, "metadata", NULL);
  if (m && json_object_is_type(m, json_type_object)) {
    json_object_object_foreach(m, mk, mv)
    {
      (void)mv;
      if (!word_in(meta_known, mk)) {
        char path[300];
        snprintf(path, sizeof path, "metadata.%s", mk);
        json_object_array_add(bad, json_object_new_string(path));
      }
    }
  }
  int rc = 0;
  size_t n = json_object_array_length(bad);
  for (size_t i = 0; i < n && !rc; i++) {
    const char *f = json_object_get_string(json_object_array_get_idx(bad, i));
    if (strict) {
      rc = kuala__apierr_set(err, 400, NULL,
                             "%s in version \"%s\" cannot be handled as a %s: strict decoding "
                             "error: unknown field \"%s\"",
                             rt->kind, rt->version, rt->kind, f);
      break;
    }
    if (!ignore) {
      char text[400], hdr[512];
      snprintf(text, sizeof text, "unknown field \"%s\"", f);
      kuala__apierr_warning(hdr, sizeof hdr, text);
      kuala__httpd_add_header(c->req, "Warning", hdr);
    }
    /* Dropped, as the real decoder drops what it does not know. */
    if (strncmp(f, "metadata.", 9) == 0) {
      json_object_object_del(m, f + 9);
    } else {
      json_object_object_del(obj, f);
    }
  }
  json_object_put(bad);
  return rc;
}

/* ---- identity checks shared by create and update ---- */

static int check_identity(emu_ctx_t *c, json_object *obj, kuala_apierr_t *err)
{
  emu_rtype_t *rt = c->rt;
  char av[300];
  emu_api_version(rt, av, sizeof av);
  if (!json_object_is_type(obj, json_type_object)) {
    return kuala__apierr_set(err, 400, NULL,
                             "%s in version \"%s\" cannot be handled as a %s: the body must be "
                             "a JSON object",
                             rt->kind, rt->version, rt->kind);
  }
  int rc = check_meta_types(rt, obj, err);
  if (rc) {
    return rc;
  }
  const char *oav = kuala_json_path_str(obj, "apiVersion");
  const char *okind = kuala_json_path_str(obj, "kind");
  if (oav && *oav && strcmp(oav, av) != 0) {
    /* A built-in type written through its other group (events) or a CRD
     * version: only the exact endpoint version is accepted. */
    return kuala__apierr_set(err, 400, NULL,
                             "the API version in the data (%s) does not match the expected API "
                             "version (%s)",
                             oav, av);
  }
  if (okind && *okind && strcmp(okind, rt->kind) != 0) {
    if (rt->custom) {
      json_object *v = json_object_new_string(okind);
      char must[300];
      snprintf(must, sizeof must, "must be %s", rt->kind);
      kuala__apierr_field(err, KUALA_CAUSE_INVALID, "kind", v, must);
      json_object_put(v);
      return kuala__apierr_invalid(err, rt->kind, rt->group, mds(obj, "name"));
    }
    return kuala__apierr_set(err, 400, NULL,
                             "%s in version \"%s\" cannot be handled as a %s: the kind in the "
                             "data (%s) does not match the expected kind (%s)",
                             rt->kind, rt->version, rt->kind, okind, rt->kind);
  }
  put_type_first(obj, av, rt->kind);
  json_object *m = kuala_json_get(obj, "metadata", NULL);
  if (m && !json_object_is_type(m, json_type_object)) {
    return kuala__apierr_set(err, 400, NULL,
                             "%s in version \"%s\" cannot be handled as a %s: metadata must be "
                             "an object",
                             rt->kind, rt->version, rt->kind);
  }
  m = md(obj);
  const char *ons = mds(obj, "namespace");
  if (rt->namespaced) {
    if (ons && *ons && c->ns && strcmp(ons, c->ns) != 0) {
      return kuala__apierr_set(err, 400, NULL,
                               "the namespace of the provided object does not match the "
                               "namespace sent on the request");
    }
    if (c->ns) {
      kuala_json_set_str(m, "namespace", c->ns);
    }
  } else {
    json_object_object_del(m, "namespace");
  }
  return 0;
}

/* ---- type strategies ---- */

static int b64_valid(const char *s)
{
  size_t n = strlen(s);
  if (n % 4) {
    return 0;
  }
  unsigned char *out = kuala_malloc(n / 4 * 3 + 4);
  int rc = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
  kuala_free(out);
  return rc >= 0;
}

static char *b64_std(const char *s)
{
  size_t n = strlen(s);
  char *out = kuala_malloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
  return out;
}

static int prepare_secret(emu_rtype_t *rt, json_object *obj, json_object *old, kuala_apierr_t *err)
{
  json_object *sd = kuala_json_get(obj, "stringData", NULL);
  if (sd && json_object_is_type(sd, json_type_object)) {
    json_object *data = kuala_json_ensure_obj(obj, "data");
    json_object_object_foreach(sd, k, v)
    {
      char *enc = b64_std(json_object_get_string(v));
      kuala_json_set_str(data, k, enc);
      kuala_free(enc);
    }
  }
  json_object_object_del(obj, "stringData");
  json_object *data = kuala_json_get(obj, "data", NULL);
  if (data && json_object_is_type(data, json_type_object)) {
    json_object_object_foreach(data, k, v)
    {
      if (!json_object_is_type(v, json_type_string) || !b64_valid(json_object_get_string(v))) {
        return kuala__apierr_set(err, 400, NULL,
                                 "Secret in version \"v1\" cannot be handled as a Secret: "
                                 "illegal base64 data in data[\"%s\"]",
                                 k);
      }
    }
  }
  const char *type = kuala_json_path_str(obj, "type");
  if (!type || !*type) {
    kuala_json_set_str(obj, "type", "Opaque");
  }
  if (old) {
    const char *ot = kuala_json_path_str(old, "type");
    if (ot && strcmp(ot, kuala_json_path_str(obj, "type")) != 0) {
      json_object *v = json_object_new_string(kuala_json_path_str(obj, "type"));
      kuala__apierr_field(err, KUALA_CAUSE_INVALID, "type", v, "field is immutable");
      json_object_put(v);
      return kuala__apierr_invalid(err, rt->kind, rt->group, mds(obj, "name"));
    }
  }
  return 0;
}

static int check_immutable_data(emu_rtype_t *rt, json_object *obj, json_object *old,
                                kuala_apierr_t *err)
{
  json_object *imm = kuala_json_get(old, "immutable", NULL);
  if (!old || !imm || !json_object_get_boolean(imm)) {
    return 0;
  }
  json_object *nimm = kuala_json_get(obj, "immutable", NULL);
  int changed =
      !nimm || !json_object_get_boolean(nimm) ||
      !json_object_equal(kuala_json_get(obj, "data", NULL), kuala_json_get(old, "data", NULL)) ||
      !json_object_equal(kuala_json_get(obj, "binaryData", NULL),
                         kuala_json_get(old, "binaryData", NULL));
  if (!changed) {
    return 0;
  }
  kuala__apierr_field(err, KUALA_CAUSE_FORBIDDEN, "data", NULL,
                      "field is immutable when `immutable` is set");
  return kuala__apierr_invalid(err, rt->kind, rt->group, mds(obj, "name"));
}

/* ConfigMap and Secret keys and total size (spec §9.2). */
static int check_data_keys(emu_rtype_t *rt, json_object *obj, kuala_apierr_t *err)
{
  static const char *const maps[] = {"data", "binaryData"};
  size_t total = 0;
  for (size_t m = 0; m < 2; m++) {
    json_object *d = kuala_json_get(obj, maps[m], NULL);
    if (!d) {
      continue;
    }
    if (!json_object_is_type(d, json_type_object)) {
      return kuala__apierr_set(err, 400, NULL,
                               "%s in version \"v1\" cannot be handled as a %s: %s must be a "
                               "map of strings",
                               rt->kind, rt->kind, maps[m]);
    }
    json_object_object_foreach(d, k, v)
    {
      int ok = *k != '\0' && strlen(k) <= 253;
      for (const char *p = k; ok && *p; p++) {
        ok = isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.';
      }
      if (!ok) {
        char field[300];
        snprintf(field, sizeof field, "%s[%s]", maps[m], k);
        json_object *kv = json_object_new_string(k);
        kuala__apierr_field(err, KUALA_CAUSE_INVALID, field, kv,
                            "a valid config key must consist of alphanumeric characters, '-', "
                            "'_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
                            "used for validation is '[-._a-zA-Z0-9]+')");
        json_object_put(kv);
      }
      if (m == 1 && kuala_json_get(obj, "data", k, NULL)) {
        char field[300];
        snprintf(field, sizeof field, "data[%s]", k);
        json_object *kv = json_object_new_string(k);
        kuala__apierr_field(err, KUALA_CAUSE_DUPLICATE, field, kv, NULL);
        json_object_put(kv);
      }
      if (!json_object_is_type(v, json_type_string)) {
        kuala__apierr_clear(err);
        return kuala__apierr_set(err, 400, NULL,
                                 "%s in version \"v1\" cannot be handled as a %s: %s[%s] must "
                                 "be a string",
                                 rt->kind, rt->kind, maps[m], k);
      }
      total += strlen(k) + (size_t)json_object_get_string_len(v);
    }
  }
  if (total > (1u << 20)) {
    kuala__apierr_field(err, KUALA_CAUSE_TOO_LONG, "[]", NULL, "must have at most 1048576 bytes");
  }
  if (kuala__apierr_cause_count(err) > 0) {
    return kuala__apierr_invalid(err, rt->kind, rt->group, mds(obj, "name"));
  }
  return 0;
}

/* events.k8s.io/v1 creation rules (spec §9.3), checked on the request's
 * view before it is converted to the core form. */
static int check_event_v1(emu_rtype_t *rt, json_object *obj, json_object *old, kuala_apierr_t *err)
{
  static const char *const required[] = {"eventTime", "reportingController", "reportingInstance",
                                         "action", "reason"};
  static const char *const deprecated[] = {"deprecatedSource", "deprecatedFirstTimestamp",
                                           "deprecatedLastTimestamp", "deprecatedCount"};
  if (old) {
    /* Updates may change only series (and metadata). */
    static const char *const fixed[] = {"eventTime",
                                        "reportingController",
                                        "reportingInstance",
                                        "action",
                                        "reason",
                                        "note",
                                        "type",
                                        "regarding",
                                        "related"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
      json_object *a = kuala_json_get(obj, fixed[i], NULL),
                  *b = kuala_json_get(old, fixed[i], NULL);
      if (!json_object_equal(a, b)) {
        kuala__apierr_field(err, KUALA_CAUSE_INVALID, fixed[i], a, "field is immutable");
      }
    }
  } else {
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
      json_object *v = kuala_json_get(obj, required[i], NULL);
      if (!v || (json_object_is_type(v, json_type_string) && !json_object_get_string_len(v))) {
        kuala__apierr_field(err, KUALA_CAUSE_REQUIRED, required[i], NULL, NULL);
      }
    }
    for (size_t i = 0; i < sizeof deprecated / sizeof deprecated[0]; i++) {
      json_object *v = kuala_json_get(obj, deprecated[i], NULL);
      if (v && !(json_object_is_type(v, json_type_int) && json_object_get_int64(v) == 0)) {
        kuala__apierr_field(err, KUALA_CAUSE_INVALID, deprecated[i], v, "needs to be unset");
      }
    }
    const char *type = kuala_json_path_str(obj, "type");
    if (!type || (strcmp(type, "Normal") != 0 && strcmp(type, "Warning") != 0)) {
      json_object *v = kuala_json_get(obj, "type", NULL);
      kuala__apierr_field(err, KUALA_CAUSE_INVALID, "type", v,
                          "has invalid value, must be 'Normal' or 'Warning'");
    }
    const char *note = kuala_json_path_str(obj, "note");
    if (note && strlen(note) > 1024) {
      kuala__apierr_field(err, KUALA_CAUSE_TOO_LONG, "note", NULL,
                          "may not be more than 1024 bytes");
    }
    json_object *count = kuala_json_path(obj, "series.count");
    if (kuala_json_get(obj, "series", NULL) && (!count || json_object_get_int64(count) < 2)) {
      kuala__apierr_field(err, KUALA_CAUSE_INVALID, "series.count", count, "should be at least 2");
    }
  }
  if (kuala__apierr_cause_count(err) > 0) {
    return kuala__apierr_invalid(err, rt->kind, rt->group, mds(obj, "name"));
  }
  return 0;
}

static void prepare_namespace(json_object *obj, json_object *old, int status_write)
{
  const char *name = mds(obj, "name");
  json_object *labels = kuala_json_ensure_obj(md(obj), "labels");
  kuala_json_set_str(labels, "kubernetes.io/metadata.name", name);
  if (!old) {
    json_object *spec = kuala_json_ensure_obj(obj, "spec");
    json_object *f = json_object_new_array();
    json_object_array_add(f, json_object_new_string("kubernetes"));
    json_object_object_add(spec, "finalizers", f);
    json_object *st = json_object_new_object();
    kuala_json_set_str(st, "phase", "Active");
    json_object_object_add(obj, "status", st);
    return;
  }
  if (!status_write) {
    copy_field(obj, old, "status");
  }
  json_object *ospec = kuala_json_get(old, "spec", NULL);
  json_object *spec = kuala_json_ensure_obj(obj, "spec");
  copy_field(spec, ospec, "finalizers");
}

static void crd_condition(json_object *conds, const char *type, const char *status,
                          const char *reason, const char *msg, const char *now)
{
  for (size_t i = 0; i < json_object_array_length(conds); i++) {
    json_object *c = json_object_array_get_idx(conds, i);
    const char *t = kuala_json_path_str(c, "type");
    if (t && strcmp(t, type) == 0) {
      const char *os = kuala_json_path_str(c, "status");
      if (!os || strcmp(os, status) != 0) {
        kuala_json_set_str(c, "lastTransitionTime", now);
      }
      kuala_json_set_str(c, "status", status);
      kuala_json_set_str(c, "reason", reason);
      kuala_json_set_str(c, "message", msg);
      return;
    }
  }
  json_object *c = json_object_new_object();
  kuala_json_set_str(c, "type", type);
  kuala_json_set_str(c, "status", status);
  kuala_json_set_str(c, "lastTransitionTime", now);
  kuala_json_set_str(c, "reason", reason);
  kuala_json_set_str(c, "message", msg);
  json_object_array_add(conds, c);
}

static int prepare_crd(emu_t *e, json_object *obj, json_object *old, kuala_apierr_t *err)
{
#ifdef KUALA_EMU_HAVE_SCHEMA
  kuala__schema_crd_default(obj);
  int rc = kuala__schema_crd_validate(obj, err);
  if (rc) {
    return rc;
  }
#else
  json_object *names = kuala_json_path(obj, "spec.names");
  const char *kind = kuala_json_path_str(names, "kind");
  if (kind && !kuala_json_path_str(names, "singular")) {
    char low[256];
    size_t i = 0;
    for (; kind[i] && i < sizeof low - 1; i++) {
      low[i] = (char)tolower((unsigned char)kind[i]);
    }
    low[i] = '\0';
    kuala_json_set_str(names, "singular", low);
  }
  if (kind && !kuala_json_path_str(names, "listKind")) {
    char lk[300];
    snprintf(lk, sizeof lk, "%sList", kind);
    kuala_json_set_str(names, "listKind", lk);
  }
#endif
  const char *group = kuala_json_path_str(obj, "spec.group");
  const char *plural = kuala_json_path_str(obj, "spec.names.plural");
  const char *name = mds(obj, "name");
  if (!group || !plural || !kuala_json_path_str(obj, "spec.names.kind") ||
      !kuala_json_path(obj, "spec.versions")) {
    kuala__apierr_field(err, KUALA_CAUSE_REQUIRED, "spec", NULL,
                        "group, names.plural, names.kind and versions are required");
    return kuala__apierr_invalid(err, "CustomResourceDefinition", "apiextensions.k8s.io", name);
  }
  char want[600];
  snprintf(want, sizeof want, "%s.%s", plural, group);
  if (!name || strcmp(name, want) != 0) {
    json_object *v = json_object_new_string(name ? name : "");
    char why[700];
    snprintf(why, sizeof why, "must be spec.names.plural+\".\"+spec.group");
    kuala__apierr_field(err, KUALA_CAUSE_INVALID, "metadata.name", v, why);
    json_object_put(v);
    return kuala__apierr_invalid(err, "CustomResourceDefinition", "apiextensions.k8s.io", name);
  }
  /* A resource already served by something else is a naming conflict. */
  json_object *versions = kuala_json_path(obj, "spec.versions");
  for (size_t i = 0; versions && i < json_object_array_length(versions); i++) {
    const char *vn = kuala_json_path_str(json_object_array_get_idx(versions, i), "name");
    emu_rtype_t *rt = vn ? emu_rtype_find(e, group, vn, plural) : NULL;
    if (rt && (!rt->crd_name || strcmp(rt->crd_name, name) != 0)) {
      return kuala__apierr_set(err, 409, NULL, "resource %s/%s %s is already served", group, vn,
                               plural);
    }
  }
  /* Status: names accepted, established, stored versions. */
  char now[32];
  emu_now(now, sizeof now);
  json_object *status = json_object_new_object();
  json_object *oldst = old ? kuala_json_get(old, "status", NULL) : NULL;
  json_object *conds = oldst ? kuala_json_copy(kuala_json_get(oldst, "conditions", NULL)) : NULL;
  if (!conds || !json_object_is_type(conds, json_type_array)) {
    if (conds) {
      json_object_put(conds);
    }
    conds = json_object_new_array();
  }
  json_object_object_add(status, "acceptedNames",
                         kuala_json_copy(kuala_json_path(obj, "spec.names")));
  crd_condition(conds, "NamesAccepted", "True", "NoConflicts", "no conflicts found", now);
  crd_condition(conds, "Established", "True", "InitialNamesAccepted",
                "the initial names have been accepted", now);
  json_object_object_add(status, "conditions", conds);
  json_object *stored =
      oldst ? kuala_json_copy(kuala_json_get(oldst, "storedVersions", NULL)) : NULL;
  if (!stored) {
    stored = json_object_new_array();
  }
  for (size_t i = 0; versions && i < json_object_array_length(versions); i++) {
    json_object *v = json_object_array_get_idx(versions, i);
    json_object *st = kuala_json_get(v, "storage", NULL);
    const char *vn = kuala_json_path_str(v, "name");
    if (vn && st && json_object_get_boolean(st) && !strs_has(stored, vn)) {
      json_object_array_add(stored, json_object_new_string(vn));
    }
  }
  json_object_object_add(status, "storedVersions", stored);
  if (old && is_deleting(old)) {
    /* Keep the terminating state as is. */
    json_object_put(status);
    copy_field(obj, old, "status");
  } else {
    json_object_object_add(obj, "status", status);
  }
  return 0;
}

/* ---- generation ---- */

static int non_metadata_differs(json_object *a, json_object *b, int skip_status)
{
  json_object *ca = kuala_json_copy(a), *cb = kuala_json_copy(b);
  json_object_object_del(ca, "metadata");
  json_object_object_del(cb, "metadata");
  if (skip_status) {
    json_object_object_del(ca, "status");
    json_object_object_del(cb, "status");
  }
  int diff = !json_object_equal(ca, cb);
  json_object_put(ca);
  json_object_put(cb);
  return diff;
}

static int64_t generation_of(json_object *obj)
{
  json_object *g = kuala_json_get(obj, "metadata", "generation", NULL);
  return g ? json_object_get_int64(g) : 0;
}

/* ---- managers ---- */

static void manager_name(emu_ctx_t *c, char *buf, size_t len)
{
  const char *fm = c->req ? kuala__httpd_query(c->req, "fieldManager") : NULL;
  if (fm && *fm) {
    snprintf(buf, len, "%s", fm);
    return;
  }
  const char *ua = c->req ? kuala__httpd_header(c->req, "User-Agent") : NULL;
  if (!ua || !*ua) {
    snprintf(buf, len, "unknown");
    return;
  }
  size_t n = strcspn(ua, "/");
  if (n >= len) {
    n = len - 1;
  }
  memcpy(buf, ua, n);
  buf[n] = '\0';
}

/* ---- the common write path ---- */

typedef struct {
  int is_create;
  int is_apply; /* managedFields already computed by server-side apply */
  int internal; /* controller write: no admission, no managedFields */
} wopts_t;

static emu_obj_t *ns_obj(emu_t *e, const char *ns)
{
  emu_rtype_t *nrt = emu_rtype_find(e, "", "v1", "namespaces");
  return nrt ? emu_store_get(nrt->store, NULL, ns) : NULL;
}

static void gen_name(const char *prefix, char *out, size_t len)
{
  static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  char p[64];
  snprintf(p, sizeof p, "%.58s", prefix);
  unsigned char r[5];
  if (uv_random(NULL, NULL, r, sizeof r, 0, NULL) < 0) {
    for (int i = 0; i < 5; i++) {
      r[i] = (unsigned char)rand();
    }
  }
  char suffix[6];
  for (int i = 0; i < 5; i++) {
    suffix[i] = alphabet[r[i] % (sizeof alphabet - 1)];
  }
  suffix[5] = '\0';
  snprintf(out, len, "%s%s", p, suffix);
}

/* After a committed write: controllers that react to it. */
static void after_write(emu_t *e, emu_rtype_t *rt, json_object *obj, json_object *old)
{
  if (!rt->group[0] || strcmp(rt->group, "apps") != 0 || strcmp(rt->plural, "deployments") != 0) {
    if (strcmp(rt->plural, "customresourcedefinitions") == 0 && !is_deleting(obj)) {
      emu_crd_register(e, obj);
    }
    return;
  }
  if (!old || generation_of(old) != generation_of(obj)) {
    emu_deployment_touched(e, mds(obj, "namespace"), mds(obj, "name"));
  }
}

static int write_obj(emu_t *e, emu_ctx_t *c, emu_obj_t *rec, json_object *old, json_object *obj,
                     const wopts_t *wo, json_object **result, int *code, kuala_apierr_t *err)
{
  emu_rtype_t *rt = c->rt;
  /* A patch can build an object deeper than any body may be; the slack
   * is for managedFields, which mirror the fields a few levels down. */
  if (kuala__json_depth(obj, KUALA_EMU_MAX_DEPTH + 17) > KUALA_EMU_MAX_DEPTH + 16) {
    return kuala__apierr_set(err, 400, NULL,
                             "%s in version \"%s\" cannot be handled as a %s: exceeded max depth "
                             "(%d levels of nesting)",
                             rt->kind, rt->version, rt->kind, KUALA_EMU_MAX_DEPTH);
  }
  int rc = check_identity(c, obj, err);
  if (rc) {
    return rc;
  }
  json_object *m = md(obj);
  const char *status_sub = c->sub && strcmp(c->sub, "status") == 0 ? "status" : NULL;
  int is_ns = !rt->group[0] && strcmp(rt->plural, "namespaces") == 0;
  int is_crd = strcmp(rt->plural, "customresourcedefinitions") == 0 &&
               strcmp(rt->group, "apiextensions.k8s.io") == 0;
  char now[32];
  emu_now(now, sizeof now);
  if (wo->is_create) {
    const char *name = mds(obj, "name");
    const char *gen = mds(obj, "generateName");
    if ((!name || !*name) && (!gen || !*gen)) {
      kuala__apierr_field(err, KUALA_CAUSE_REQUIRED, "metadata.name", NULL,
                          "name or generateName is required");
      return kuala__apierr_invalid(err, rt->kind, rt->group, "");
    }
    if (!is_null_or_absent(m, "resourceVersion") && mds(obj, "resourceVersion") &&
        *mds(obj, "resourceVersion")) {
      return kuala__apierr_set(err, 500, "",
                               "resourceVersion should not be set on objects to be created");
    }
    if (!name || !*name) {
      char gname[128];
      for (int tries = 0; tries < 8; tries++) {
        gen_name(gen, gname, sizeof gname);
        if (!emu_store_get(rt->store, rt->namespaced ? c->ns : NULL, gname)) {
          break;
        }
      }
      kuala_json_set_str(m, "name", gname);
      name = mds(obj, "name");
    }
    if ((rc = check_name(rt, obj, name, err)) != 0) {
      return rc;
    }
    if (rt->namespaced && !wo->internal) {
      emu_obj_t *nso = ns_obj(e, c->ns);
      if (!nso) {
        kuala__apierr_set(err, 404, NULL, "namespaces \"%s\" not found", c->ns);
        kuala__apierr_details(err, c->ns, "", "namespaces");
        return 404;
      }
      if (nso->deleting) {
        kuala__apierr_set(err, 403, NULL,
                          "%s \"%s\" is forbidden: unable to create new content in namespace %s "
                          "because it is being terminated",
                          rt->plural, name, c->ns);
        kuala__apierr_details(err, name, rt->group, rt->plural);
        kuala__apierr_add_cause(err, "NamespaceTerminating", "namespace is being terminated",
                                "metadata.namespace");
        return 403;
      }
    }
    if (rt->terminating) {
      return kuala__apierr_set(err, 403, NULL,
                               "create not allowed while custom resource definition is "
                               "terminating");
    }
    char uid[40];
    emu_uuid(uid, sizeof uid);
    kuala_json_set_str(m, "uid", uid);
    kuala_json_set_str(m, "creationTimestamp", now);
    json_object_object_del(m, "deletionTimestamp");
    json_object_object_del(m, "deletionGracePeriodSeconds");
    json_object_object_del(m, "resourceVersion");
    if (rt->generation) {
      json_object_object_add(m, "generation", json_object_new_int64(1));
    } else {
      json_object_object_del(m, "generation");
    }
    if (rt->status_sub && !is_ns && !wo->internal) {
      json_object_object_del(obj, "status");
    }
  } else {
    const char *name = mds(obj, "name");
    if (!name || strcmp(name, c->name) != 0) {
      return kuala__apierr_set(err, 400, NULL,
                               "the name of the object (%s) does not match the name on the URL "
                               "(%s)",
                               name ? name : "", c->name);
    }
    const char *rv = mds(obj, "resourceVersion");
    if (!rv || !*rv) {
      if (!rt->unconditional && !wo->internal && !wo->is_apply) {
        /* The real message renders the (empty) value as 0x0. */
        kuala__apierr_add_cause(err, KUALA_CAUSE_INVALID,
                                "Invalid value: 0x0: must be specified for an update",
                                "metadata.resourceVersion");
        return kuala__apierr_invalid(err, rt->kind, rt->group, name);
      }
    } else {
      char cur[24];
      snprintf(cur, sizeof cur, "%llu", (unsigned long long)rec->rv);
      if (strcmp(rv, cur) != 0) {
        char q[300];
        kuala__apierr_set(err, 409, NULL,
                          "Operation cannot be fulfilled on %s \"%s\": the object has been "
                          "modified; please apply your changes to the latest version and try "
                          "again",
                          emu_qualified(rt, q, sizeof q), name);
        kuala__apierr_details(err, name, rt->group, rt->plural);
        return 409;
      }
    }
    /* Subresource semantics (spec §4.4). */
    if (status_sub) {
      json_object *merged = kuala_json_copy(old);
      copy_field(merged, obj, "status");
      json_object *mf = kuala_json_get(obj, "metadata", "managedFields", NULL);
      if (mf) {
        json_object_object_add(md(merged), "managedFields", kuala_json_copy(mf));
      }
      /* Swap contents: obj becomes merged. */
      json_object *keys = json_object_new_array();
      json_object_object_foreach(obj, k1, v1)
      {
        (void)v1;
        json_object_array_add(keys, json_object_new_string(k1));
      }
      for (size_t i = 0; i < json_object_array_length(keys); i++) {
        json_object_object_del(obj, json_object_get_string(json_object_array_get_idx(keys, i)));
      }
      json_object_put(keys);
      json_object_object_foreach(merged, k2, v2)
      {
        json_object_object_add(obj, k2, json_object_get(v2));
      }
      json_object_put(merged);
      m = md(obj);
    } else if (c->sub && strcmp(c->sub, "finalize") == 0) {
      json_object *fin = kuala_json_get(obj, "spec", "finalizers", NULL);
      json_object *merged = kuala_json_copy(old);
      json_object *spec = kuala_json_ensure_obj(merged, "spec");
      if (fin) {
        json_object_object_add(spec, "finalizers", kuala_json_copy(fin));
      } else {
        json_object_object_del(spec, "finalizers");
      }
      json_object_object_add(obj, "spec", kuala_json_copy(spec));
      copy_field(obj, old, "status");
      copy_field(obj, merged, "metadata");
      json_object_put(merged);
      m = md(obj);
    } else if (rt->status_sub && !is_ns && !wo->internal) {
      copy_field(obj, old, "status");
    }
    /* Preserved and immutable fields (spec §4.2). */
    const char *ouid = mds(old, "uid");
    const char *nuid = mds(obj, "uid");
    if (nuid && *nuid && ouid && strcmp(nuid, ouid) != 0) {
      json_object *v = json_object_new_string(nuid);
      kuala__apierr_field(err, KUALA_CAUSE_INVALID, "metadata.uid", v, "field is immutable");
      json_object_put(v);
      return kuala__apierr_invalid(err, rt->kind, rt->group, name);
    }
    json_object *om = kuala_json_get(old, "metadata", NULL);
    copy_field(m, om, "uid");
    copy_field(m, om, "creationTimestamp");
    copy_field(m, om, "deletionTimestamp");
    if (is_null_or_absent(m, "deletionGracePeriodSeconds")) {
      copy_field(m, om, "deletionGracePeriodSeconds");
    }
    copy_field(m, om, "generation");
    if (is_deleting(old)) {
      json_object *nf = finalizers(obj), *of = finalizers(old);
      for (size_t i = 0; nf && i < json_object_array_length(nf); i++) {
        const char *f = json_object_get_string(json_object_array_get_idx(nf, i));
        if (f && !strs_has(of, f)) {
          char why[300];
          snprintf(why, sizeof why,
                   "no new finalizers can be added if the object is being deleted, found new "
                   "finalizers []string{\"%s\"}",
                   f);
          kuala__apierr_field(err, KUALA_CAUSE_FORBIDDEN, "metadata.finalizers", NULL, why);
          return kuala__apierr_invalid(err, rt->kind, rt->group, name);
        }
      }
    }
  }
  if (!rt->custom && !wo->internal && !status_sub && !wo->is_apply &&
      (rc = unknown_fields(c, obj, err)) != 0) {
    return rc;
  }
  /* Type strategies. */
  if (is_ns && !wo->internal && !(c->sub && strcmp(c->sub, "finalize") == 0)) {
    prepare_namespace(obj, wo->is_create ? NULL : old, status_sub != NULL);
  }
  if (!rt->group[0] && strcmp(rt->plural, "secrets") == 0 &&
      (rc = prepare_secret(rt, obj, old, err)) != 0) {
    return rc;
  }
  if (!rt->group[0] &&
      (strcmp(rt->plural, "configmaps") == 0 || strcmp(rt->plural, "secrets") == 0) &&
      ((rc = check_data_keys(rt, obj, err)) != 0 ||
       (rc = check_immutable_data(rt, obj, old, err)) != 0)) {
    return rc;
  }
  if (strcmp(rt->group, "events.k8s.io") == 0 && !wo->internal &&
      (rc = check_event_v1(rt, obj, wo->is_create ? NULL : old, err)) != 0) {
    return rc;
  }
  if (is_crd && !wo->internal && !status_sub && (rc = prepare_crd(e, obj, old, err)) != 0) {
    return rc;
  }
#ifdef KUALA_EMU_HAVE_SCHEMA
  if (rt->custom) {
    json_object *schema = emu_rtype_schema(rt);
    kuala_schema_ctx_t sc = {
        .group = rt->group, .version = rt->version, .kind = rt->kind, .name = mds(obj, "name")};
    if (c->req) {
      kuala__schema_field_validation(&sc.fv, kuala__httpd_query(c->req, "fieldValidation"), err);
      kuala__apierr_clear(err);
    }
    sc.warnings = json_object_new_array();
    rc = kuala__schema_process(obj, schema, &sc, err);
    if (c->req) {
      for (size_t i = 0; i < json_object_array_length(sc.warnings); i++) {
        char w[512];
        kuala__apierr_warning(w, sizeof w,
                              json_object_get_string(json_object_array_get_idx(sc.warnings, i)));
        kuala__httpd_add_header(c->req, "Warning", w);
      }
    }
    json_object_put(sc.warnings);
    if (rc) {
      return rc;
    }
  }
#endif
  /* Generation (spec §4.3). */
  if (!wo->is_create && rt->generation && !status_sub) {
    int64_t g = generation_of(old);
    if (g <= 0) {
      g = 1;
    }
    if (non_metadata_differs(old, obj, rt->status_sub)) {
      g++;
    }
    json_object_object_add(m, "generation", json_object_new_int64(g));
  }
#ifdef KUALA_EMU_HAVE_SSA
  if (!wo->is_apply && !wo->internal) {
    char mgr[256];
    manager_name(c, mgr, sizeof mgr);
    char av[300];
    kuala_ssa_opts_t so = {.manager = mgr,
                           .api_version = emu_api_version(rt, av, sizeof av),
                           .subresource = status_sub,
                           .name = mds(obj, "name"),
                           .status_subresource = rt->status_sub,
                           .schema = emu_rtype_schema(rt)};
    if ((rc = kuala__ssa_update(obj, wo->is_create ? NULL : old, &so, err)) != 0) {
      return rc;
    }
  }
#else
  (void)manager_name;
#endif
  if (wo->is_create) {
    emu_obj_t *exist = emu_store_get(rt->store, rt->namespaced ? c->ns : NULL, mds(obj, "name"));
    if (exist) {
      char q[300];
      kuala__apierr_set(err, 409, "AlreadyExists", "%s%s \"%s\" already exists",
                        exist->deleting ? "object is being deleted: " : "",
                        emu_qualified(rt, q, sizeof q), mds(obj, "name"));
      kuala__apierr_details(err, mds(obj, "name"), rt->group, rt->plural);
      return 409;
    }
  }
  *code = wo->is_create ? 201 : 200;
  int view = rt->store->storage && rt->store->storage != rt;
  if (view) {
    emu_convert_in(rt, obj);
  }
  if (c->dry) {
    if (!wo->is_create && rec) {
      char cur[24];
      snprintf(cur, sizeof cur, "%llu", (unsigned long long)rec->rv);
      kuala_json_set_str(m, "resourceVersion", cur);
    }
    if (view) {
      emu_convert_out(rt, obj);
    }
    *result = json_object_get(obj);
    return 0;
  }
  /* Deletion through update: the last finalizer is gone. */
  if (!wo->is_create && is_deleting(obj) && all_fin_count(obj) == 0 && rec) {
    emu_remove(e, rt, rec);
    if (is_crd) {
      emu_crd_unregister(e, mds(obj, "name"));
    }
    if (view) {
      emu_convert_out(rt, obj);
    }
    *result = json_object_get(obj);
    return 0;
  }
  uint64_t rv;
  emu_commit(e, rt, obj, &rv);
  after_write(e, rt, obj, wo->is_create ? NULL : old);
  if (view) {
    emu_convert_out(rt, obj);
  }
  *result = json_object_get(obj);
  return 0;
}

/* ---- body decoding ---- */

static int decode_body(emu_ctx_t *c, json_object **out, kuala_apierr_t *err)
{
  size_t len;
  const char *body = kuala__httpd_body(c->req, &len);
  const char *ct = kuala__httpd_header(c->req, "Content-Type");
  char why[256];
  *out = NULL;
  if (kuala__pb_is_protobuf(ct)) { /* kubectl's typed clients (kubectl create configmap, …) */
    return kuala__pb_decode(out, (const unsigned char *)body, len, err);
  }
  if (ct && *ct && strncasecmp(ct, "application/json", 16) != 0 &&
      strncasecmp(ct, "application/yaml", 16) != 0 && strncasecmp(ct, "*/*", 3) != 0) {
    return kuala__apierr_set(err, 415, NULL,
                             "the body of the request was in an unknown format - accepted media "
                             "types include: application/json, application/yaml");
  }
  if (ct && strncasecmp(ct, "application/yaml", 16) == 0) {
#ifdef KUALA_EMU_HAVE_PATCH
    int rc = kuala__patch_yaml_decode(out, body, len, err);
    if (rc) {
      return rc;
    }
    return 0;
#else
    return kuala__apierr_set(err, 415, NULL, "application/yaml bodies are not supported yet");
#endif
  }
  if (kuala__json_check_body(body, len, KUALA_EMU_MAX_DEPTH, why, sizeof why) < 0 ||
      kuala__json_parse(out, body, len, KUALA_EMU_MAX_DEPTH + 1, why, sizeof why) < 0) {
    return kuala__apierr_set(err, 400, NULL, "%s in version \"%s\" cannot be handled as a %s: %s",
                             c->rt->kind, c->rt->version, c->rt->kind, why);
  }
  if (!json_object_is_type(*out, json_type_object)) {
    json_object_put(*out);
    *out = NULL;
    return kuala__apierr_set(err, 400, NULL,
                             "%s in version \"%s\" cannot be handled as a %s: expected a JSON "
                             "object",
                             c->rt->kind, c->rt->version, c->rt->kind);
  }
  return 0;
}

void emu_do_create(emu_t *e, emu_ctx_t *c)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  json_object *obj = NULL, *result = NULL;
  int code = 0;
  if (c->sub) {
    emu_reply_code(c->req, 405, "create is not supported on subresources");
    return;
  }
  if (c->rt->namespaced && !c->ns) {
    emu_reply_code(c->req, 404, "the server could not find the requested resource");
    return;
  }
  wopts_t wo = {.is_create = 1};
  if (decode_body(c, &obj, &err) || write_obj(e, c, NULL, NULL, obj, &wo, &result, &code, &err)) {
    if (obj) {
      json_object_put(obj);
    }
    emu_reply_err(c->req, &err);
    return;
  }
  json_object_put(obj);
  emu_reply_object(c->req, c->rt, code, result);
}

void emu_do_update(emu_t *e, emu_ctx_t *c)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  json_object *obj = NULL, *result = NULL, *old = NULL;
  int code = 0;
  emu_obj_t *rec = emu_store_get(c->rt->store, c->ns, c->name);
  wopts_t wo = {0};
  if (decode_body(c, &obj, &err)) {
    emu_reply_err(c->req, &err);
    return;
  }
  if (!rec) {
    json_object_put(obj);
    emu_err_notfound(&err, c->rt, c->name);
    emu_reply_err(c->req, &err);
    return;
  }
  emu_blob_t *view = emu_view(c->rt, rec->json);
  kuala__json_parse_stored(&old, view->data, view->len);
  emu_blob_unref(view);
  if (write_obj(e, c, rec, old, obj, &wo, &result, &code, &err)) {
    emu_reply_err(c->req, &err);
  } else {
    emu_reply_object(c->req, c->rt, code, result);
  }
  json_object_put(obj);
  json_object_put(old);
}

void emu_do_patch(emu_t *e, emu_ctx_t *c)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
#ifdef KUALA_EMU_HAVE_PATCH
  json_object *patch = NULL, *obj = NULL, *result = NULL, *old = NULL;
  int code = 0, rc;
  kuala_patch_type_t type;
  size_t len;
  const char *body = kuala__httpd_body(c->req, &len);
  const char *pct = kuala__httpd_header(c->req, "Content-Type");
  char why[256];
  if (pct && strstr(pct, "json") &&
      kuala__json_check_body(body, len, KUALA_EMU_MAX_DEPTH, why, sizeof why) < 0) {
    kuala__apierr_set(&err, 400, NULL, "error decoding patch: %s", why);
    emu_reply_err(c->req, &err);
    return;
  }
  if ((rc = kuala__patch_type(&type, kuala__httpd_header(c->req, "Content-Type"), c->rt->custom,
                              &err)) ||
      (rc = kuala__patch_decode(&patch, type, body, len, &err))) {
    emu_reply_err(c->req, &err);
    return;
  }
  const char *force = kuala__httpd_query(c->req, "force");
  if (force && type != KUALA_PATCH_APPLY) {
    json_object_put(patch);
    kuala__apierr_add_cause(&err, KUALA_CAUSE_FORBIDDEN,
                            "Forbidden: may not be specified for non-apply patch", "force");
    kuala__apierr_set(&err, 422, NULL,
                      "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be "
                      "specified for non-apply patch");
    emu_reply_err(c->req, &err);
    return;
  }
  emu_obj_t *rec = emu_store_get(c->rt->store, c->ns, c->name);
  if (rec) {
    emu_blob_t *view = emu_view(c->rt, rec->json);
    kuala__json_parse_stored(&old, view->data, view->len);
    emu_blob_unref(view);
  }
  wopts_t wo = {0};
  if (type == KUALA_PATCH_APPLY) {
#ifdef KUALA_EMU_HAVE_SSA
    char mgr[256] = "";
    const char *fm = kuala__httpd_query(c->req, "fieldManager");
    snprintf(mgr, sizeof mgr, "%s", fm ? fm : "");
    char av[300];
    kuala_ssa_opts_t so = {.manager = fm ? mgr : NULL,
                           .api_version = emu_api_version(c->rt, av, sizeof av),
                           .subresource = c->sub,
                           .name = c->name,
                           .force = force && strcmp(force, "true") == 0,
                           .status_subresource = c->rt->status_sub,
                           .schema = emu_rtype_schema(c->rt)};
    rc = kuala__ssa_apply(&obj, old, patch, &so, &err);
    wo.is_apply = 1;
    if (!rc && !old) {
      if (c->sub) {
        rc = emu_err_notfound(&err, c->rt, c->name);
      } else {
        wo.is_create = 1;
        if (c->ns) {
          kuala_json_set_str(md(obj), "namespace", c->ns);
        }
      }
    }
#else
    rc = kuala__apierr_set(&err, 415, NULL,
                           "server-side apply is not available in this build of the emulator");
#endif
  } else if (!old) {
    rc = emu_err_notfound(&err, c->rt, c->name);
  } else {
    rc = kuala__patch_run(&obj, type, old, patch, c->rt->group, c->rt->kind, &err);
  }
  if (!rc) {
    if (!json_object_is_type(obj, json_type_object)) {
      rc = kuala__apierr_set(&err, 422, NULL, "the patched document is not an object");
    } else {
      rc = write_obj(e, c, rec, old, obj, &wo, &result, &code, &err);
    }
  }
  if (rc) {
    emu_reply_err(c->req, &err);
  } else {
    emu_reply_object(c->req, c->rt, code, result);
  }
  json_object_put(patch);
  if (obj) {
    json_object_put(obj);
  }
  if (old) {
    json_object_put(old);
  }
#else
  (void)e;
  kuala__apierr_set(&err, 415, NULL,
                    "the body of the request was in an unknown format - PATCH is not available "
                    "in this build of the emulator");
  emu_reply_err(c->req, &err);
#endif
}

/* ---- delete ---- */

typedef struct {
  const char *policy; /* Foreground, Background, Orphan or NULL */
  int orphan;         /* -1 unset, 0, 1 (orphanDependents) */
  const char *pre_uid, *pre_rv;
} delopts_t;

/* 0: removed now (*out = last state); 1: marked deleting (*out = object);
 * otherwise an HTTP error code. */
static int delete_obj(emu_t *e, emu_rtype_t *rt, emu_obj_t *o, const delopts_t *d, int dry,
                      json_object **out, kuala_apierr_t *err)
{
  json_object *obj = emu_obj_parse(o);
  char q[300], now[32];
  emu_now(now, sizeof now);
  *out = NULL;
  if (d && d->pre_uid && *d->pre_uid && (!o->uid || strcmp(d->pre_uid, o->uid) != 0)) {
    json_object_put(obj);
    kuala__apierr_set(err, 409, NULL,
                      "Operation cannot be fulfilled on %s \"%s\": Precondition failed: UID in "
                      "precondition: %s, UID in object meta: %s",
                      emu_qualified(rt, q, sizeof q), o->name, d->pre_uid, o->uid ? o->uid : "");
    kuala__apierr_details(err, o->name, rt->group, rt->plural);
    return 409;
  }
  if (d && d->pre_rv && *d->pre_rv) {
    char cur[24];
    snprintf(cur, sizeof cur, "%llu", (unsigned long long)o->rv);
    if (strcmp(cur, d->pre_rv) != 0) {
      json_object_put(obj);
      kuala__apierr_set(err, 409, NULL,
                        "Operation cannot be fulfilled on %s \"%s\": Precondition failed: "
                        "ResourceVersion in precondition: %s, ResourceVersion in object meta: %s",
                        emu_qualified(rt, q, sizeof q), o->name, d->pre_rv, cur);
      kuala__apierr_details(err, o->name, rt->group, rt->plural);
      return 409;
    }
  }
  int is_ns = !rt->group[0] && strcmp(rt->plural, "namespaces") == 0;
  int is_crd = strcmp(rt->plural, "customresourcedefinitions") == 0 &&
               strcmp(rt->group, "apiextensions.k8s.io") == 0;
  if (is_ns) {
    if (strcmp(o->name, "default") == 0 || strcmp(o->name, "kube-system") == 0 ||
        strcmp(o->name, "kube-public") == 0) {
      json_object_put(obj);
      kuala__apierr_set(err, 403, NULL,
                        "namespaces \"%s\" is forbidden: this namespace may not be deleted",
                        o->name);
      kuala__apierr_details(err, o->name, "", "namespaces");
      return 403;
    }
    if (!is_deleting(obj)) {
      kuala_json_set_str(md(obj), "deletionTimestamp", now);
      json_object_object_add(md(obj), "deletionGracePeriodSeconds", json_object_new_int(0));
      kuala_json_set_str(kuala_json_ensure_obj(obj, "status"), "phase", "Terminating");
      if (!dry) {
        uint64_t rv;
        emu_commit(e, rt, obj, &rv);
      }
    }
    *out = obj;
    return 1;
  }
  /* GC finalizers from the propagation policy (spec §4.6). */
  const char *policy = d ? d->policy : NULL;
  if (d && d->orphan == 1) {
    policy = "Orphan";
  } else if (d && d->orphan == 0 && !policy) {
    policy = "Background";
  }
  if (policy && strcmp(policy, "Foreground") == 0) {
    fin_add(obj, FIN_FOREGROUND);
    fin_del(obj, FIN_ORPHAN);
  } else if (policy && strcmp(policy, "Orphan") == 0) {
    fin_add(obj, FIN_ORPHAN);
    fin_del(obj, FIN_FOREGROUND);
  } else if (policy && strcmp(policy, "Background") == 0) {
    fin_del(obj, FIN_ORPHAN);
    fin_del(obj, FIN_FOREGROUND);
  }
  if (strs_has(finalizers(obj), FIN_ORPHAN) && strs_has(finalizers(obj), FIN_FOREGROUND)) {
    json_object_put(obj);
    kuala__apierr_field(err, KUALA_CAUSE_INVALID, "metadata.finalizers", NULL,
                        "finalizer orphan and foregroundDeletion cannot be both set");
    return kuala__apierr_invalid(err, rt->kind, rt->group, o->name);
  }
  if (is_crd) {
    fin_add(obj, FIN_CRD);
    json_object *conds = kuala_json_get(obj, "status", "conditions", NULL);
    if (conds && json_object_is_type(conds, json_type_array)) {
      crd_condition(conds, "Terminating", "True", "InstanceDeletionPending",
                    "CustomResourceDefinition marked for deletion; CustomResource deletion will "
                    "begin soon",
                    now);
    }
  }
  if (is_deleting(obj) || fin_count(obj) > 0) {
    if (!is_deleting(obj)) {
      kuala_json_set_str(md(obj), "deletionTimestamp", now);
      json_object_object_add(md(obj), "deletionGracePeriodSeconds", json_object_new_int(0));
      int64_t g = generation_of(obj);
      if (g > 0) {
        json_object_object_add(md(obj), "generation", json_object_new_int64(g + 1));
      }
    }
    if (!dry) {
      if (fin_count(obj) == 0) {
        /* A deleting object whose policy removed the last finalizer. */
        emu_remove(e, rt, o);
        *out = obj;
        return 0;
      }
      uint64_t rv;
      emu_commit(e, rt, obj, &rv);
      if (is_crd) {
        for (emu_rtype_t *x = e->rtypes; x; x = x->next) {
          if (x->crd_name && strcmp(x->crd_name, o->name) == 0) {
            x->terminating = 1;
          }
        }
      }
    }
    *out = obj;
    return 1;
  }
  if (!dry) {
    emu_remove(e, rt, o);
  }
  *out = obj;
  return 0;
}

static int parse_delopts(emu_ctx_t *c, delopts_t *d, json_object **opts, kuala_apierr_t *err)
{
  memset(d, 0, sizeof *d);
  d->orphan = -1;
  *opts = NULL;
  size_t len;
  const char *body = kuala__httpd_body(c->req, &len);
  char why[256];
  if (len > 0) {
    if (kuala_json_parse(opts, body, len, why, sizeof why) < 0 ||
        !json_object_is_type(*opts, json_type_object)) {
      return kuala__apierr_set(err, 400, NULL,
                               "DeleteOptions in version \"v1\" cannot be handled as a "
                               "DeleteOptions: %s",
                               *opts ? "expected a JSON object" : why);
    }
    d->policy = kuala_json_path_str(*opts, "propagationPolicy");
    json_object *od = kuala_json_get(*opts, "orphanDependents", NULL);
    if (od) {
      d->orphan = json_object_get_boolean(od);
    }
    d->pre_uid = kuala_json_path_str(*opts, "preconditions.uid");
    d->pre_rv = kuala_json_path_str(*opts, "preconditions.resourceVersion");
    json_object *dry = kuala_json_get(*opts, "dryRun", NULL);
    if (dry && json_object_is_type(dry, json_type_array) && json_object_array_length(dry) > 0) {
      const char *v = json_object_get_string(json_object_array_get_idx(dry, 0));
      if (!v || strcmp(v, "All") != 0) {
        return kuala__apierr_set(err, 422, NULL,
                                 "dryRun: Unsupported value: \"%s\": supported values: \"All\"",
                                 v ? v : "");
      }
      c->dry = 1;
    }
  }
  const char *qp = kuala__httpd_query(c->req, "propagationPolicy");
  if (qp && *qp) {
    d->policy = qp;
  }
  const char *qo = kuala__httpd_query(c->req, "orphanDependents");
  if (qo && *qo) {
    d->orphan = strcmp(qo, "true") == 0;
  }
  if (d->policy && *d->policy && strcmp(d->policy, "Foreground") != 0 &&
      strcmp(d->policy, "Background") != 0 && strcmp(d->policy, "Orphan") != 0) {
    return kuala__apierr_set(err, 422, NULL,
                             "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: "
                             "Unsupported value: \"%s\": supported values: \"Foreground\", "
                             "\"Background\", \"Orphan\", \"nil\"",
                             d->policy);
  }
  if (d->policy && !*d->policy) {
    d->policy = NULL;
  }
  if (d->policy && d->orphan != -1) {
    return kuala__apierr_set(err, 422, NULL,
                             "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: "
                             "Invalid value: \"%s\": orphanDependents and deletionPropagation "
                             "cannot be both set",
                             d->policy);
  }
  return 0;
}

void emu_do_delete(emu_t *e, emu_ctx_t *c)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  delopts_t d;
  json_object *opts = NULL, *out = NULL;
  if (c->sub) {
    emu_reply_code(c->req, 405, "delete is not supported on subresources");
    return;
  }
  if (parse_delopts(c, &d, &opts, &err)) {
    if (opts) {
      json_object_put(opts);
    }
    emu_reply_err(c->req, &err);
    return;
  }
  emu_obj_t *o = emu_store_get(c->rt->store, c->ns, c->name);
  if (!o) {
    if (opts) {
      json_object_put(opts);
    }
    emu_err_notfound(&err, c->rt, c->name);
    emu_reply_err(c->req, &err);
    return;
  }
  char uid[64];
  snprintf(uid, sizeof uid, "%s", o->uid ? o->uid : "");
  int rc = delete_obj(e, c->rt, o, &d, c->dry, &out, &err);
  if (opts) {
    json_object_put(opts);
  }
  if (rc > 1) {
    emu_reply_err(c->req, &err);
    return;
  }
  if (rc == 1) {
    emu_convert_out(c->rt, out);
    emu_reply_object(c->req, c->rt, 200, out);
    return;
  }
  json_object_put(out);
  emu_reply_json(c->req, 200, kuala__apierr_success(c->name, c->rt->group, c->rt->plural, uid));
}

void emu_do_deletecollection(emu_t *e, emu_ctx_t *c)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  delopts_t d;
  json_object *opts = NULL;
  kuala_selector_t *ls = NULL, *fs = NULL;
  if (!c->rt->group[0] && strcmp(c->rt->plural, "namespaces") == 0) {
    emu_reply_code(c->req, 405,
                   "deletecollection is not supported on resources of kind "
                   "\"namespaces\"");
    return;
  }
  if (parse_delopts(c, &d, &opts, &err) || emu_parse_selectors(c->req, c->rt, &ls, &fs, &err)) {
    if (opts) {
      json_object_put(opts);
    }
    emu_reply_err(c->req, &err);
    return;
  }
  /* Collect keys first: deleting changes the store. */
  size_t n;
  emu_obj_t **all = emu_store_sorted(c->rt->store, &n);
  char **keys = kuala_calloc(n ? n : 1, sizeof *keys);
  char **nss = kuala_calloc(n ? n : 1, sizeof *nss);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    emu_obj_t *o = all[i];
    if (c->ns && strcmp(o->ns, c->ns) != 0) {
      continue;
    }
    if (!emu_matches(c->rt, ls, fs, o->ns, o->name, o->labels, o->json->data, o->json->len)) {
      continue;
    }
    nss[k] = kuala_strdup(o->ns);
    keys[k++] = kuala_strdup(o->name);
  }
  json_object *items = json_object_new_array();
  for (size_t i = 0; i < k; i++) {
    emu_obj_t *o = emu_store_get(c->rt->store, c->rt->namespaced ? nss[i] : NULL, keys[i]);
    json_object *out = NULL;
    if (o && delete_obj(e, c->rt, o, &d, c->dry, &out, &err) <= 1) {
      json_object_array_add(items, out);
    } else {
      kuala__apierr_clear(&err);
    }
    kuala_free(keys[i]);
    kuala_free(nss[i]);
  }
  kuala_free(keys);
  kuala_free(nss);
  if (opts) {
    json_object_put(opts);
  }
  kuala_selector_free(ls);
  kuala_selector_free(fs);
  json_object *list = json_object_new_object();
  char av[300], rv[24];
  kuala_json_set_str(list, "kind", c->rt->list_kind);
  kuala_json_set_str(list, "apiVersion", emu_api_version(c->rt, av, sizeof av));
  snprintf(rv, sizeof rv, "%llu", (unsigned long long)e->rev);
  json_object *lm = json_object_new_object();
  kuala_json_set_str(lm, "resourceVersion", rv);
  json_object_object_add(list, "metadata", lm);
  json_object_object_add(list, "items", items);
  emu_reply_json(c->req, 200, list);
}

/* ---- internal entry points for controllers and start-up ---- */

int emu_create_internal(emu_t *e, emu_rtype_t *rt, json_object *obj)
{
  emu_ctx_t c = {.e = e, .rt = rt, .method = "POST"};
  const char *ns = mds(obj, "namespace");
  c.ns = ns ? kuala_strdup(ns) : NULL;
  kuala_apierr_t err = KUALA_APIERR_INIT;
  json_object *result = NULL;
  int code;
  wopts_t wo = {.is_create = 1};
  int rc = write_obj(e, &c, NULL, NULL, obj, &wo, &result, &code, &err);
  kuala__apierr_clear(&err);
  kuala_free(c.ns);
  if (result) {
    json_object_put(result);
  }
  return rc;
}

void emu_delete_internal(emu_t *e, emu_rtype_t *rt, emu_obj_t *o, const char *policy)
{
  delopts_t d = {.policy = policy, .orphan = -1};
  json_object *out = NULL;
  kuala_apierr_t err = KUALA_APIERR_INIT;
  delete_obj(e, rt, o, &d, 0, &out, &err);
  if (out) {
    json_object_put(out);
  }
  kuala__apierr_clear(&err);
}

void emu_update_internal(emu_t *e, emu_rtype_t *rt, json_object *obj)
{
  emu_obj_t *rec =
      emu_store_get(rt->store, rt->namespaced ? mds(obj, "namespace") : NULL, mds(obj, "name"));
  if (!rec) {
    return;
  }
  if (is_deleting(obj) && all_fin_count(obj) == 0) {
    emu_remove(e, rt, rec);
    if (strcmp(rt->plural, "customresourcedefinitions") == 0) {
      emu_crd_unregister(e, mds(obj, "name"));
    }
    return;
  }
  uint64_t rv;
  emu_commit(e, rt, obj, &rv);
}
