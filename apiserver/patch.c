/*
 * patch.c: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic
 * merge patch for built-in kinds, PATCH content types and body decoding
 * (JSON, or YAML for apply through libyaml).
 *
 * Ownership: inputs are borrowed and never modified; every engine works on a
 * deep copy and hands the result to the caller. Inside the engines a json-c
 * object is held by exactly one container (array or object) at a time;
 * moving a value between containers takes a reference first.
 */
#include "patch.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "jsonx.h"
#include "kuala/json.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"

/* JSON nesting accepted in PATCH bodies. */
#define PATCH_MAX_DEPTH 512
/* YAML nodes expanded while converting (bounds alias bombs). */
#define YAML_MAX_NODES 1000000

/* ---------------------------------------------------------------- types */

static int ct_is(const char *ct, size_t n, const char *want)
{
  return strlen(want) == n && strncasecmp(ct, want, n) == 0;
}

int kuala__patch_type(kuala_patch_type_t *out, const char *content_type, int is_custom,
                      kuala_apierr_t *err)
{
  *out = KUALA_PATCH_NONE;
  const char *ct = content_type ? content_type : "";
  while (*ct == ' ' || *ct == '\t') {
    ct++;
  }
  size_t n = strcspn(ct, ";");
  while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
    n--;
  }
  if (ct_is(ct, n, "application/json-patch+json")) {
    *out = KUALA_PATCH_JSON;
  } else if (ct_is(ct, n, "application/merge-patch+json")) {
    *out = KUALA_PATCH_MERGE;
  } else if (ct_is(ct, n, "application/strategic-merge-patch+json") && !is_custom) {
    *out = KUALA_PATCH_STRATEGIC;
  } else if (ct_is(ct, n, "application/apply-patch+yaml")) {
    *out = KUALA_PATCH_APPLY;
  } else {
    return kuala__apierr_set(
        err, 415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, %sapplication/apply-patch+yaml",
        is_custom ? "" : "application/strategic-merge-patch+json, ");
  }
  return 0;
}

/* ------------------------------------------------------------- decoding */

int kuala__patch_decode(json_object **out, kuala_patch_type_t type, const char *body, size_t len,
                        kuala_apierr_t *err)
{
  *out = NULL;
  json_object *doc = NULL;
  if (type == KUALA_PATCH_APPLY) {
    int rc = kuala__patch_yaml_decode(&doc, body, len, err);
    if (rc) {
      return rc;
    }
    if (!json_object_is_type(doc, json_type_object)) {
      json_object_put(doc);
      return kuala__apierr_set(err, 400, NULL,
                               "error decoding YAML: the apply patch must be an object");
    }
    *out = doc;
    return 0;
  }
  char msg[256];
  if (kuala__json_parse(&doc, body, len, PATCH_MAX_DEPTH, msg, sizeof msg) != 0) {
    if (type == KUALA_PATCH_JSON) {
      return kuala__apierr_set(err, 400, NULL, "error decoding patch: invalid JSON patch: %s", msg);
    }
    return kuala__apierr_set(err, 400, NULL, "error decoding patch: %s", msg);
  }
  if (type == KUALA_PATCH_JSON) {
    if (!json_object_is_type(doc, json_type_array)) {
      json_object_put(doc);
      return kuala__apierr_set(
          err, 400, NULL,
          "error decoding patch: json: cannot unmarshal object into Go value of type "
          "jsonpatch.Patch");
    }
    size_t nops = json_object_array_length(doc);
    if (nops > KUALA_PATCH_MAX_OPS) {
      json_object_put(doc);
      return kuala__apierr_set(err, 413, NULL,
                               "The allowed maximum operations in a JSON patch is %d, got %zu",
                               KUALA_PATCH_MAX_OPS, nops);
    }
    for (size_t i = 0; i < nops; i++) {
      if (!json_object_is_type(json_object_array_get_idx(doc, i), json_type_object)) {
        json_object_put(doc);
        return kuala__apierr_set(err, 400, NULL,
                                 "error decoding patch: invalid JSON patch: operation %zu is "
                                 "not an object",
                                 i);
      }
    }
  } else if (!json_object_is_type(doc, json_type_object)) {
    json_object_put(doc);
    return kuala__apierr_set(err, 400, NULL,
                             "error decoding patch: the patch must be a JSON object");
  }
  *out = doc;
  return 0;
}

/* ----------------------------------------------------------------- YAML */

typedef struct {
  yaml_document_t *doc;
  size_t budget;
  const char *error;
} yconv_t;

static int plain_is(const char *s, const char *const *words)
{
  for (; *words; words++) {
    if (strcmp(s, *words) == 0) {
      return 1;
    }
  }
  return 0;
}

/* Resolve a plain (unquoted) scalar the way go-yaml (YAML 1.1) does. */
static json_object *yaml_plain_scalar(const char *s, size_t n)
{
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
  static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                      "on",   "On",   "ON",   "y",   "Y",   NULL};
  static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO",
                                       "off",   "Off",   "OFF",   "n",  "N",  NULL};
  if (plain_is(s, nulls)) {
    return NULL;
  }
  if (plain_is(s, trues)) {
    return json_object_new_boolean(1);
  }
  if (plain_is(s, falses)) {
    return json_object_new_boolean(0);
  }
  const char *p = s;
  if (*p == '+' || *p == '-') {
    p++;
  }
  if (*p && isdigit((unsigned char)*p)) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    /* Only decimal and 0x hex: a leading 0 (octal in 1.1) stays decimal-safe. */
    if (end == s + n && errno == 0 && !(p[0] == '0' && p[1] && p[1] != 'x' && p[1] != 'X')) {
      return json_object_new_int64(v);
    }
    errno = 0;
    double d = strtod(s, &end);
    if (end == s + n && errno == 0 && isfinite(d) && strpbrk(s, "xX") == NULL) {
      return json_object_new_double(d);
    }
  } else if (*p == '.' && isdigit((unsigned char)p[1])) {
    char *end = NULL;
    double d = strtod(s, &end);
    if (end == s + n && isfinite(d)) {
      return json_object_new_double(d);
    }
  }
  return json_object_new_string_len(s, (int)n);
}

static int yaml_node_to_json(yconv_t *c, yaml_node_t *node, json_object **out, int depth)
{
  *out = NULL;
  if (!node) {
    return 0;
  }
  if (depth > PATCH_MAX_DEPTH) {
    c->error = "document nested too deeply";
    return -1;
  }
  if (c->budget == 0) {
    c->error = "document too large after alias expansion";
    return -1;
  }
  c->budget--;
  switch (node->type) {
    case YAML_SCALAR_NODE: {
      const char *s = (const char *)node->data.scalar.value;
      size_t n = node->data.scalar.length;
      /* Quoted, literal and folded scalars are strings; plain ones are resolved. */
      if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        *out = json_object_new_string_len(s, (int)n);
      } else {
        *out = yaml_plain_scalar(s, n);
      }
      return 0;
    }
    case YAML_SEQUENCE_NODE: {
      json_object *arr = json_object_new_array();
      for (yaml_node_item_t *it = node->data.sequence.items.start;
           it < node->data.sequence.items.top; it++) {
        json_object *v = NULL;
        if (yaml_node_to_json(c, yaml_document_get_node(c->doc, *it), &v, depth + 1)) {
          json_object_put(arr);
          return -1;
        }
        json_object_array_add(arr, v);
      }
      *out = arr;
      return 0;
    }
    case YAML_MAPPING_NODE: {
      json_object *obj = json_object_new_object();
      for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
           p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (!k || k->type != YAML_SCALAR_NODE) {
          c->error = "mapping keys must be strings";
          json_object_put(obj);
          return -1;
        }
        json_object *v = NULL;
        if (yaml_node_to_json(c, yaml_document_get_node(c->doc, p->value), &v, depth + 1)) {
          json_object_put(obj);
          return -1;
        }
        char *key = kuala_strndup((const char *)k->data.scalar.value, k->data.scalar.length);
        json_object_object_add(obj, key, v);
        kuala_free(key);
      }
      *out = obj;
      return 0;
    }
    default:
      *out = NULL;
      return 0;
  }
}

int kuala__patch_yaml_decode(json_object **out, const char *text, size_t len, kuala_apierr_t *err)
{
  *out = NULL;
  /* JSON is YAML, but json-c is exact about numbers and strings: try it first. */
  size_t i = 0;
  while (i < len && isspace((unsigned char)text[i])) {
    i++;
  }
  if (i < len && (text[i] == '{' || text[i] == '[')) {
    json_object *doc = NULL;
    char msg[64];
    if (kuala__json_parse(&doc, text, len, PATCH_MAX_DEPTH, msg, sizeof msg) == 0) {
      *out = doc;
      return 0;
    }
  }
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) {
    return kuala__apierr_set(err, 500, NULL, "Internal error occurred: yaml parser");
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    int rc = kuala__apierr_set(err, 400, NULL, "error decoding YAML: %s at line %zu column %zu",
                               parser.problem ? parser.problem : "syntax error",
                               parser.problem_mark.line + 1, parser.problem_mark.column + 1);
    yaml_parser_delete(&parser);
    return rc;
  }
  yconv_t c = {&doc, YAML_MAX_NODES, NULL};
  json_object *obj = NULL;
  int bad = yaml_node_to_json(&c, yaml_document_get_root_node(&doc), &obj, 0);
  yaml_document_delete(&doc);
  if (!bad) {
    /* A second document is an error: apply takes exactly one object. */
    yaml_document_t next;
    if (!yaml_parser_load(&parser, &next)) {
      c.error = parser.problem ? parser.problem : "syntax error";
      bad = 1;
    } else {
      if (yaml_document_get_root_node(&next)) {
        c.error = "the body holds more than one YAML document";
        bad = 1;
      }
      yaml_document_delete(&next);
    }
  }
  yaml_parser_delete(&parser);
  if (bad) {
    json_object_put(obj);
    return kuala__apierr_set(err, 400, NULL, "error decoding YAML: %s", c.error);
  }
  *out = obj;
  return 0;
}

/* ------------------------------------------------------- JSON pointer */

/* Decode one reference token ("a~1b" → "a/b"); kuala_malloc'ed. */
static char *ptr_token(const char *s, size_t n)
{
  char *t = kuala_malloc(n + 1);
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
      t[j++] = s[i + 1] == '0' ? '~' : '/';
      i++;
    } else {
      t[j++] = s[i];
    }
  }
  t[j] = '\0';
  return t;
}

/* Parse an array index token; -1 if not a valid non-negative integer. */
static long ptr_index(const char *tok)
{
  if (!*tok || (tok[0] == '0' && tok[1]) || strlen(tok) > 9) {
    return -1;
  }
  for (const char *p = tok; *p; p++) {
    if (!isdigit((unsigned char)*p)) {
      return -1;
    }
  }
  return strtol(tok, NULL, 10);
}

/*
 * Resolve `path` in `doc` down to its parent container: *parent is the
 * container (borrowed), *last the final token (owned by the caller). Returns
 * 0, or -1 when an intermediate element is missing. Path "" has no parent:
 * *parent is NULL and *last is NULL.
 */
static int ptr_parent(json_object *doc, const char *path, json_object **parent, char **last)
{
  *parent = NULL;
  *last = NULL;
  if (*path == '\0') {
    return 0;
  }
  if (*path != '/') {
    return -1;
  }
  json_object *cur = doc;
  const char *p = path + 1;
  for (;;) {
    size_t n = strcspn(p, "/");
    char *tok = ptr_token(p, n);
    if (p[n] == '\0') {
      *parent = cur;
      *last = tok;
      return 0;
    }
    json_object *next = NULL;
    if (json_object_is_type(cur, json_type_object)) {
      if (!json_object_object_get_ex(cur, tok, &next)) {
        next = NULL;
      }
    } else if (json_object_is_type(cur, json_type_array)) {
      long idx = ptr_index(tok);
      if (idx >= 0 && (size_t)idx < json_object_array_length(cur)) {
        next = json_object_array_get_idx(cur, (size_t)idx);
      }
    }
    kuala_free(tok);
    if (!next) {
      return -1;
    }
    cur = next;
    p += n + 1;
  }
}

/* The value at `path` (borrowed) or NULL; *found says whether it exists (JSON null). */
static json_object *ptr_get(json_object *doc, const char *path, int *found)
{
  *found = 0;
  json_object *parent = NULL;
  char *last = NULL;
  if (ptr_parent(doc, path, &parent, &last)) {
    return NULL;
  }
  if (!parent) {
    *found = 1;
    return doc;
  }
  json_object *v = NULL;
  if (json_object_is_type(parent, json_type_object)) {
    *found = json_object_object_get_ex(parent, last, &v);
  } else if (json_object_is_type(parent, json_type_array)) {
    long idx = ptr_index(last);
    if (idx >= 0 && (size_t)idx < json_object_array_length(parent)) {
      v = json_object_array_get_idx(parent, (size_t)idx);
      *found = 1;
    }
  }
  kuala_free(last);
  return v;
}

/* Insert `v` (reference taken over) at `idx` of `arr` (0 <= idx <= len). */
static void array_insert(json_object *arr, size_t idx, json_object *v)
{
  size_t len = json_object_array_length(arr);
  json_object_array_add(arr, NULL);
  for (size_t i = len; i > idx; i--) {
    json_object *prev = json_object_array_get_idx(arr, i - 1);
    json_object_array_put_idx(arr, i, json_object_get(prev));
  }
  json_object_array_put_idx(arr, idx, v);
}

/*
 * Add `v` (reference taken over) at `path`. *doc may be replaced (path "").
 * Returns 0 or -1 (the reference is released on failure).
 */
static int ptr_add(json_object **doc, const char *path, json_object *v, int replace_only)
{
  json_object *parent = NULL;
  char *last = NULL;
  if (ptr_parent(*doc, path, &parent, &last)) {
    json_object_put(v);
    return -1;
  }
  int rc = 0;
  if (!parent) {
    json_object_put(*doc);
    *doc = v;
  } else if (json_object_is_type(parent, json_type_object)) {
    if (replace_only && !json_object_object_get_ex(parent, last, NULL)) {
      json_object_put(v);
      rc = -1;
    } else {
      json_object_object_add(parent, last, v);
    }
  } else if (json_object_is_type(parent, json_type_array)) {
    size_t len = json_object_array_length(parent);
    long idx = strcmp(last, "-") == 0 && !replace_only ? (long)len : ptr_index(last);
    if (idx < 0 || (size_t)idx > len || (replace_only && (size_t)idx == len)) {
      json_object_put(v);
      rc = -1;
    } else if (replace_only) {
      json_object_array_put_idx(parent, (size_t)idx, v);
    } else {
      array_insert(parent, (size_t)idx, v);
    }
  } else {
    json_object_put(v);
    rc = -1;
  }
  kuala_free(last);
  return rc;
}

/* Remove the value at `path`; if `taken` is set it receives a reference to it. */
static int ptr_remove(json_object *doc, const char *path, json_object **taken)
{
  if (taken) {
    *taken = NULL;
  }
  json_object *parent = NULL;
  char *last = NULL;
  if (ptr_parent(doc, path, &parent, &last) || !parent) {
    kuala_free(last);
    return -1;
  }
  int rc = -1;
  json_object *v = NULL;
  if (json_object_is_type(parent, json_type_object)) {
    if (json_object_object_get_ex(parent, last, &v)) {
      if (taken) {
        *taken = json_object_get(v);
      }
      json_object_object_del(parent, last);
      rc = 0;
    }
  } else if (json_object_is_type(parent, json_type_array)) {
    long idx = ptr_index(last);
    if (idx >= 0 && (size_t)idx < json_object_array_length(parent)) {
      v = json_object_array_get_idx(parent, (size_t)idx);
      if (taken) {
        *taken = json_object_get(v);
      }
      json_object_array_del_idx(parent, (size_t)idx, 1);
      rc = 0;
    }
  }
  kuala_free(last);
  return rc;
}

/* --------------------------------------------------------- JSON patch */

static const char *op_str(json_object *op, const char *key)
{
  json_object *v = NULL;
  if (!json_object_object_get_ex(op, key, &v) || !json_object_is_type(v, json_type_string)) {
    return NULL;
  }
  return json_object_get_string(v);
}

static int json_patch_fail(kuala_apierr_t *err, const char *fmt, const char *a, const char *b)
{
  return kuala__apierr_set(err, 422, "Invalid", fmt, a, b ? b : "");
}

int kuala__patch_json(json_object **out, json_object *doc, json_object *ops, kuala_apierr_t *err)
{
  *out = NULL;
  if (!json_object_is_type(ops, json_type_array)) {
    return kuala__apierr_set(err, 400, NULL, "invalid JSON patch: not an array of operations");
  }
  json_object *cur = kuala_json_copy(doc);
  int rc = 0;
  size_t n = json_object_array_length(ops);
  for (size_t i = 0; i < n && rc == 0; i++) {
    json_object *op = json_object_array_get_idx(ops, i);
    const char *name = json_object_is_type(op, json_type_object) ? op_str(op, "op") : NULL;
    const char *path = name ? op_str(op, "path") : NULL;
    json_object *value = NULL;
    int has_value = name && json_object_object_get_ex(op, "value", &value);
    if (!name || !path) {
      rc = kuala__apierr_set(
          err, 400, NULL, "invalid JSON patch: operation %zu needs string \"op\" and \"path\"", i);
      break;
    }
    if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
      if (!has_value) {
        rc = kuala__apierr_set(err, 400, NULL, "invalid JSON patch: %s operation %zu has no value",
                               name, i);
      } else if (ptr_add(&cur, path, kuala_json_copy(value), name[0] == 'r')) {
        rc = json_patch_fail(err, "%s operation does not apply: doc is missing path: \"%s\"", name,
                             path);
      }
    } else if (strcmp(name, "remove") == 0) {
      if (ptr_remove(cur, path, NULL)) {
        rc = json_patch_fail(err, "remove operation does not apply: doc is missing path: \"%s\"%s",
                             path, NULL);
      }
    } else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
      const char *from = op_str(op, "from");
      if (!from) {
        rc = kuala__apierr_set(err, 400, NULL, "invalid JSON patch: %s operation %zu has no from",
                               name, i);
        break;
      }
      json_object *v = NULL;
      if (name[0] == 'm') {
        size_t fl = strlen(from);
        if (strncmp(path, from, fl) == 0 && path[fl] == '/') {
          rc = json_patch_fail(err, "move operation does not apply: \"%s\" is a child of \"%s\"",
                               path, from);
          break;
        }
        if (ptr_remove(cur, from, &v)) {
          rc = json_patch_fail(
              err, "move operation does not apply: doc is missing from path: \"%s\"%s", from, NULL);
          break;
        }
      } else {
        int found = 0;
        json_object *src = ptr_get(cur, from, &found);
        if (!found) {
          rc = json_patch_fail(
              err, "copy operation does not apply: doc is missing from path: \"%s\"%s", from, NULL);
          break;
        }
        v = kuala_json_copy(src);
      }
      if (ptr_add(&cur, path, v, 0)) {
        rc = json_patch_fail(err,
                             "%s operation does not apply: doc is missing destination path: \"%s\"",
                             name, path);
      }
    } else if (strcmp(name, "test") == 0) {
      int found = 0;
      json_object *v = ptr_get(cur, path, &found);
      if (!has_value) {
        rc = kuala__apierr_set(err, 400, NULL,
                               "invalid JSON patch: test operation %zu has no value", i);
      } else if (!found || !kuala__json_equal(v, value)) {
        rc = json_patch_fail(err, "testing value %s failed: test failed%s", path, NULL);
      }
    } else {
      rc = kuala__apierr_set(err, 400, NULL, "invalid JSON patch: unexpected operation \"%s\"",
                             name);
    }
  }
  if (rc) {
    json_object_put(cur);
    return rc;
  }
  *out = cur;
  return 0;
}

/* -------------------------------------------------------- merge patch */

/* Merge `patch` into `target` (owned, may be NULL); returns the new owned value. */
static json_object *merge_into(json_object *target, json_object *patch)
{
  if (!json_object_is_type(patch, json_type_object)) {
    json_object_put(target);
    return kuala_json_copy(patch);
  }
  if (!json_object_is_type(target, json_type_object)) {
    json_object_put(target);
    target = json_object_new_object();
  }
  json_object_object_foreach(patch, key, val)
  {
    if (val == NULL) {
      json_object_object_del(target, key);
      continue;
    }
    json_object *old = NULL;
    if (json_object_object_get_ex(target, key, &old)) {
      json_object_get(old);
    }
    json_object_object_add(target, key, merge_into(old, val));
  }
  return target;
}

int kuala__patch_merge(json_object **out, json_object *doc, json_object *patch, kuala_apierr_t *err)
{
  (void)err;
  *out = merge_into(kuala_json_copy(doc), patch);
  return 0;
}

/* ---------------------------------------------------- strategic merge */

typedef struct {
  const char *group; /* NULL = any */
  const char *kind;  /* NULL = any */
  const char *path;  /* dotted, array levels elided */
  const char *key;   /* merge key; NULL = merge set of primitives */
} smp_rule_t;

/* Template lists apply to every workload kind; matched by path suffix below. */
static const char *const pod_lists[][2] = {
    {"containers", "name"},
    {"initContainers", "name"},
    {"ephemeralContainers", "name"},
    {"volumes", "name"},
    {"imagePullSecrets", "name"},
    {"containers.ports", "containerPort"},
    {"containers.env", "name"},
    {"containers.volumeMounts", "mountPath"},
    {"containers.volumeDevices", "devicePath"},
    {"initContainers.ports", "containerPort"},
    {"initContainers.env", "name"},
    {"initContainers.volumeMounts", "mountPath"},
};

static const smp_rule_t smp_rules[] = {
    {NULL, NULL, "metadata.finalizers", NULL}, {NULL, NULL, "metadata.ownerReferences", "uid"},
    {"", "Service", "spec.ports", "port"},     {"apps", "Deployment", "status.conditions", "type"},
    {"", "Pod", "status.conditions", "type"},  {"", "Namespace", "status.conditions", "type"},
    {"", "Node", "status.conditions", "type"},
};

static const char *pod_spec_prefix(const char *group, const char *kind)
{
  if (strcmp(group, "") == 0 && strcmp(kind, "Pod") == 0) {
    return "spec.";
  }
  if (strcmp(group, "") == 0 && strcmp(kind, "ReplicationController") == 0) {
    return "spec.template.spec.";
  }
  if (strcmp(group, "apps") == 0 &&
      (strcmp(kind, "Deployment") == 0 || strcmp(kind, "StatefulSet") == 0 ||
       strcmp(kind, "DaemonSet") == 0 || strcmp(kind, "ReplicaSet") == 0)) {
    return "spec.template.spec.";
  }
  if (strcmp(group, "batch") == 0 && strcmp(kind, "Job") == 0) {
    return "spec.template.spec.";
  }
  if (strcmp(group, "batch") == 0 && strcmp(kind, "CronJob") == 0) {
    return "spec.jobTemplate.spec.template.spec.";
  }
  return NULL;
}

/*
 * The strategy for the list at `path`: returns 1 for a merge list (key in
 * *key, NULL for a primitive set), 0 for replace.
 */
int kuala__patch_list_key(const char *group, const char *kind, const char *path, const char **key)
{
  *key = NULL;
  for (size_t i = 0; i < sizeof(smp_rules) / sizeof(smp_rules[0]); i++) {
    const smp_rule_t *r = &smp_rules[i];
    if ((r->group && strcmp(r->group, group) != 0) || (r->kind && strcmp(r->kind, kind) != 0)) {
      continue;
    }
    if (strcmp(r->path, path) == 0) {
      *key = r->key;
      return 1;
    }
  }
  const char *prefix = pod_spec_prefix(group, kind);
  size_t pl = prefix ? strlen(prefix) : 0;
  if (prefix && strncmp(path, prefix, pl) == 0) {
    for (size_t i = 0; i < sizeof(pod_lists) / sizeof(pod_lists[0]); i++) {
      if (pod_lists[i][1] && strcmp(path + pl, pod_lists[i][0]) == 0) {
        *key = pod_lists[i][1];
        return 1;
      }
    }
  }
  return 0;
}

typedef struct {
  const char *group;
  const char *kind;
  kuala_apierr_t *err;
  int rc;
} smp_t;

static char *path_join(const char *base, const char *key)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  if (*base) {
    kuala_buf_printf(&b, "%s.%s", base, key);
  } else {
    kuala_buf_puts(&b, key);
  }
  return kuala_buf_take(&b, NULL);
}

static const char *directive(json_object *obj, const char *name)
{
  json_object *v = NULL;
  if (json_object_is_type(obj, json_type_object) && json_object_object_get_ex(obj, name, &v) &&
      json_object_is_type(v, json_type_string)) {
    return json_object_get_string(v);
  }
  return NULL;
}

/* A copy of `obj` without its "$…" directive keys (recursively for maps). */
static json_object *strip_directives(json_object *obj)
{
  if (json_object_is_type(obj, json_type_array)) {
    json_object *arr = json_object_new_array();
    size_t n = json_object_array_length(obj);
    for (size_t i = 0; i < n; i++) {
      json_object *el = json_object_array_get_idx(obj, i);
      if (directive(el, "$patch")) {
        continue;
      }
      json_object_array_add(arr, strip_directives(el));
    }
    return arr;
  }
  if (!json_object_is_type(obj, json_type_object)) {
    return kuala_json_copy(obj);
  }
  json_object *res = json_object_new_object();
  json_object_object_foreach(obj, key, val)
  {
    if (key[0] == '$') {
      continue;
    }
    if (val == NULL) {
      continue; /* null in a replaced map means absent */
    }
    json_object_object_add(res, key, strip_directives(val));
  }
  return res;
}

static json_object *smp_merge_map(smp_t *s, json_object *orig, json_object *patch,
                                  const char *path);

static int list_contains(json_object *arr, json_object *v)
{
  size_t n = json_object_array_length(arr);
  for (size_t i = 0; i < n; i++) {
    if (kuala__json_equal(json_object_array_get_idx(arr, i), v)) {
      return 1;
    }
  }
  return 0;
}

static long find_by_key(json_object *arr, const char *key, json_object *kv)
{
  size_t n = json_object_array_length(arr);
  for (size_t i = 0; i < n; i++) {
    json_object *el = json_object_array_get_idx(arr, i);
    json_object *v = NULL;
    if (json_object_is_type(el, json_type_object) && json_object_object_get_ex(el, key, &v) &&
        kuala__json_equal(v, kv)) {
      return (long)i;
    }
  }
  return -1;
}

/* Merge the patch list into `orig` (owned, may be NULL); returns the new owned list. */
static json_object *smp_merge_list(smp_t *s, json_object *orig, json_object *patch,
                                   const char *path, const char *key)
{
  size_t n = json_object_array_length(patch);
  /* A {"$patch":"replace"} element replaces the whole list with the others. */
  for (size_t i = 0; i < n; i++) {
    const char *d = directive(json_object_array_get_idx(patch, i), "$patch");
    if (d && strcmp(d, "replace") == 0) {
      json_object_put(orig);
      return strip_directives(patch);
    }
  }
  json_object *res = json_object_is_type(orig, json_type_array) ? orig : json_object_new_array();
  if (res != orig) {
    json_object_put(orig);
  }
  for (size_t i = 0; i < n && s->rc == 0; i++) {
    json_object *el = json_object_array_get_idx(patch, i);
    if (!key) {
      if (json_object_is_type(el, json_type_object) || json_object_is_type(el, json_type_array)) {
        s->rc = kuala__apierr_set(s->err, 400, NULL,
                                  "unable to merge list %s: expected a list of primitives", path);
        break;
      }
      if (!list_contains(res, el)) {
        json_object_array_add(res, kuala_json_copy(el));
      }
      continue;
    }
    json_object *kv = NULL;
    if (!json_object_is_type(el, json_type_object) || !json_object_object_get_ex(el, key, &kv)) {
      s->rc = kuala__apierr_set(s->err, 400, NULL,
                                "map: %s does not contain declared merge key: %s", path, key);
      break;
    }
    long at = find_by_key(res, key, kv);
    const char *d = directive(el, "$patch");
    if (d && strcmp(d, "delete") == 0) {
      if (at >= 0) {
        json_object_array_del_idx(res, (size_t)at, 1);
      }
      continue;
    }
    if (at >= 0) {
      json_object *old = json_object_get(json_object_array_get_idx(res, (size_t)at));
      json_object *merged = smp_merge_map(s, old, el, path);
      json_object_array_put_idx(res, (size_t)at, merged ? merged : json_object_new_object());
    } else {
      json_object *merged = smp_merge_map(s, NULL, el, path);
      json_object_array_add(res, merged ? merged : json_object_new_object());
    }
  }
  return res;
}

/* Reorder `list` (owned) by the order list; elements not named keep their order, after. */
static json_object *apply_order(json_object *list, json_object *order, const char *key)
{
  if (!json_object_is_type(list, json_type_array) || !json_object_is_type(order, json_type_array)) {
    return list;
  }
  json_object *res = json_object_new_array();
  size_t n = json_object_array_length(list);
  char *used = kuala_calloc(n ? n : 1, 1);
  size_t m = json_object_array_length(order);
  for (size_t i = 0; i < m; i++) {
    json_object *want = json_object_array_get_idx(order, i);
    json_object *wk = want;
    if (key && json_object_is_type(want, json_type_object)) {
      json_object_object_get_ex(want, key, &wk);
    }
    for (size_t j = 0; j < n; j++) {
      json_object *el = json_object_array_get_idx(list, j);
      json_object *ek = el;
      if (key && json_object_is_type(el, json_type_object)) {
        json_object_object_get_ex(el, key, &ek);
      }
      if (!used[j] && kuala__json_equal(ek, wk)) {
        used[j] = 1;
        json_object_array_add(res, json_object_get(el));
        break;
      }
    }
  }
  for (size_t j = 0; j < n; j++) {
    if (!used[j]) {
      json_object_array_add(res, json_object_get(json_object_array_get_idx(list, j)));
    }
  }
  kuala_free(used);
  json_object_put(list);
  return res;
}

/* Merge map `patch` into `orig` (owned, may be NULL). NULL result = delete this map. */
static json_object *smp_merge_map(smp_t *s, json_object *orig, json_object *patch, const char *path)
{
  const char *d = directive(patch, "$patch");
  if (d && strcmp(d, "replace") == 0) {
    json_object_put(orig);
    return strip_directives(patch);
  }
  if (d && strcmp(d, "delete") == 0) {
    json_object_put(orig);
    return NULL;
  }
  if (d && strcmp(d, "merge") != 0) {
    s->rc = kuala__apierr_set(s->err, 400, NULL, "Unknown patch type: %s in map: %s", d,
                              *path ? path : "<root>");
    return orig;
  }
  json_object *res = json_object_is_type(orig, json_type_object) ? orig : json_object_new_object();
  if (res != orig) {
    json_object_put(orig);
  }
  json_object_object_foreach(patch, key, val)
  {
    if (s->rc) {
      break;
    }
    if (key[0] == '$') {
      continue; /* directives are handled below */
    }
    if (val == NULL) {
      json_object_object_del(res, key);
      continue;
    }
    char *sub = path_join(path, key);
    json_object *old = NULL;
    if (json_object_object_get_ex(res, key, &old)) {
      json_object_get(old);
    }
    json_object *nv = NULL;
    const char *mkey = NULL;
    if (json_object_is_type(val, json_type_array) &&
        kuala__patch_list_key(s->group, s->kind, sub, &mkey)) {
      nv = smp_merge_list(s, old, val, sub, mkey);
    } else if (json_object_is_type(val, json_type_array)) {
      json_object_put(old);
      nv = strip_directives(val);
    } else if (json_object_is_type(val, json_type_object)) {
      nv = smp_merge_map(s, old, val, sub);
      if (!nv) {
        json_object_object_del(res, key);
        kuala_free(sub);
        continue;
      }
    } else {
      json_object_put(old);
      nv = kuala_json_copy(val);
    }
    json_object_object_add(res, key, nv);
    kuala_free(sub);
  }
  /* Parallel directives: $deleteFromPrimitiveList/x, $setElementOrder/x, $retainKeys. */
  json_object_object_foreach(patch, dkey, dval)
  {
    if (s->rc) {
      break;
    }
    if (strncmp(dkey, "$deleteFromPrimitiveList/", 25) == 0) {
      json_object *list = NULL;
      if (!json_object_is_type(dval, json_type_array)) {
        s->rc = kuala__apierr_set(s->err, 400, NULL, "%s must be a list", dkey);
        break;
      }
      if (json_object_object_get_ex(res, dkey + 25, &list) &&
          json_object_is_type(list, json_type_array)) {
        for (size_t i = json_object_array_length(list); i > 0; i--) {
          if (list_contains(dval, json_object_array_get_idx(list, i - 1))) {
            json_object_array_del_idx(list, i - 1, 1);
          }
        }
      }
    } else if (strncmp(dkey, "$setElementOrder/", 17) == 0) {
      json_object *list = NULL;
      const char *name = dkey + 17;
      if (json_object_object_get_ex(res, name, &list)) {
        char *sub = path_join(path, name);
        const char *mkey = NULL;
        if (kuala__patch_list_key(s->group, s->kind, sub, &mkey)) {
          json_object_object_add(res, name, apply_order(json_object_get(list), dval, mkey));
        }
        kuala_free(sub);
      }
    } else if (strcmp(dkey, "$retainKeys") == 0) {
      if (!json_object_is_type(dval, json_type_array)) {
        s->rc = kuala__apierr_set(s->err, 400, NULL, "$retainKeys must be a list");
        break;
      }
      json_object *drop = json_object_new_array();
      json_object_object_foreach(res, rk, rv)
      {
        (void)rv;
        json_object *ks = json_object_new_string(rk);
        if (!list_contains(dval, ks)) {
          json_object_array_add(drop, ks);
        } else {
          json_object_put(ks);
        }
      }
      for (size_t i = 0; i < json_object_array_length(drop); i++) {
        json_object_object_del(res, json_object_get_string(json_object_array_get_idx(drop, i)));
      }
      json_object_put(drop);
    } else if (dkey[0] == '$' && strcmp(dkey, "$patch") != 0) {
      s->rc =
          kuala__apierr_set(s->err, 400, NULL, "unknown strategic merge patch directive: %s", dkey);
    }
  }
  return res;
}

int kuala__patch_strategic(json_object **out, json_object *doc, json_object *patch,
                           const char *group, const char *kind, kuala_apierr_t *err)
{
  *out = NULL;
  if (!json_object_is_type(patch, json_type_object)) {
    return kuala__apierr_set(err, 400, NULL, "error decoding patch: the patch must be an object");
  }
  smp_t s = {group ? group : "", kind ? kind : "", err, 0};
  json_object *res = smp_merge_map(&s, kuala_json_copy(doc), patch, "");
  if (s.rc) {
    json_object_put(res);
    return s.rc;
  }
  *out = res ? res : json_object_new_object();
  return 0;
}

int kuala__patch_run(json_object **out, kuala_patch_type_t type, json_object *doc,
                     json_object *patch, const char *group, const char *kind, kuala_apierr_t *err)
{
  switch (type) {
    case KUALA_PATCH_JSON:
      return kuala__patch_json(out, doc, patch, err);
    case KUALA_PATCH_MERGE:
      return kuala__patch_merge(out, doc, patch, err);
    case KUALA_PATCH_STRATEGIC:
      return kuala__patch_strategic(out, doc, patch, group, kind, err);
    default:
      *out = NULL;
      return kuala__apierr_set(err, 500, NULL,
                               "Internal error occurred: patch type not handled here");
  }
}
