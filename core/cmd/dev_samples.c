/*
 * dev_samples.c: `kuala dev` applies each bundle's samples/ once the engine
 * is ready, so a fresh `kuala dev` reconciles something at once (what
 * scripts/dev.sh used to do with kubectl).
 *
 * Every *.yaml, *.yml and *.json file directly under DIR/samples/ is read
 * as a stream of documents; each document (a List's items too) is turned
 * into JSON and server-side applied through the engine (field manager
 * "kuala-dev"). Plain YAML scalars get their YAML 1.2 core-schema types
 * (null, booleans, integers, floats); quoted ones stay strings.
 *
 * Ownership: nothing outlives a call except the small per-object context
 * freed by the apply's callback.
 */
#include "dev_samples.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/log.h"

#define MAX_SAMPLE_BYTES (1u << 20)

static json_object *scalar(const yaml_node_t *n)
{
  const char *v = (const char *)n->data.scalar.value;
  size_t len = n->data.scalar.length;
  if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
    return json_object_new_string_len(v, (int)len);
  }
  if (len == 0 || strcmp(v, "null") == 0 || strcmp(v, "~") == 0 || strcmp(v, "Null") == 0) {
    return NULL;
  }
  if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0) {
    return json_object_new_boolean(1);
  }
  if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0) {
    return json_object_new_boolean(0);
  }
  char *end = NULL;
  errno = 0;
  long long i = strtoll(v, &end, 10);
  if (end && *end == '\0' && errno == 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))) {
    return json_object_new_int64(i);
  }
  errno = 0;
  double d = strtod(v, &end);
  if (end && *end == '\0' && errno == 0 &&
      (v[0] == '-' || v[0] == '.' || (v[0] >= '0' && v[0] <= '9'))) {
    return json_object_new_double(d);
  }
  return json_object_new_string_len(v, (int)len);
}

static json_object *to_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
  if (n == NULL || depth > 64) {
    return NULL;
  }
  if (n->type == YAML_SCALAR_NODE) {
    return scalar(n);
  }
  if (n->type == YAML_SEQUENCE_NODE) {
    json_object *a = json_object_new_array();
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
      json_object_array_add(a, to_json(doc, yaml_document_get_node(doc, *it), depth + 1));
    }
    return a;
  }
  json_object *o = json_object_new_object();
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    if (k == NULL || k->type != YAML_SCALAR_NODE) {
      continue;
    }
    json_object_object_add(o, (const char *)k->data.scalar.value,
                           to_json(doc, yaml_document_get_node(doc, p->value), depth + 1));
  }
  return o;
}

typedef struct {
  char *what; /* "kind/name (file)" */
} applied_t;

static void applied(void *data, int err, const char *json, size_t len)
{
  applied_t *a = data;
  (void)json;
  (void)len;
  if (err == 0) {
    KUALA_LOG(KUALA_LOG_INFO, "sample applied", "object", a->what);
  } else if (err != KUALA_ECANCELED) {
    KUALA_LOG(KUALA_LOG_WARN, "sample not applied", "object", a->what, "error",
              kuala_strerror(err));
  }
  kuala_free(a->what);
  kuala_free(a);
}

static void apply_obj(kuala_engine_t *e, json_object *obj, const char *file)
{
  if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
    return;
  }
  const char *kind = kuala_json_path_str(obj, "kind");
  json_object *items = kuala_json_path(obj, "items");
  if (kind && strlen(kind) > 4 && strcmp(kind + strlen(kind) - 4, "List") == 0 && items &&
      json_object_is_type(items, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(items); i++) {
      apply_obj(e, json_object_array_get_idx(items, i), file);
    }
    return;
  }
  const char *name = kuala_json_path_str(obj, "metadata.name");
  char what[600];
  snprintf(what, sizeof(what), "%s/%s (%s)", kind ? kind : "?", name ? name : "?", file);
  size_t len;
  const char *json = kuala_json_compact(obj, &len);
  applied_t *a = kuala_malloc(sizeof(*a));
  a->what = kuala_strdup(what);
  int rc = kuala_engine_apply(e, json, len, "kuala-dev", applied, a);
  if (rc) {
    KUALA_LOG(KUALA_LOG_WARN, "sample not applied", "object", what, "error", kuala_strerror(rc));
    kuala_free(a->what);
    kuala_free(a);
  }
}

static void apply_file(kuala_engine_t *e, const char *path)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return;
  }
  char *buf = kuala_malloc(MAX_SAMPLE_BYTES);
  size_t n = fread(buf, 1, MAX_SAMPLE_BYTES, f);
  fclose(f);
  yaml_parser_t parser;
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_string(&parser, (const unsigned char *)buf, n);
  for (;;) {
    yaml_document_t doc;
    if (!yaml_parser_load(&parser, &doc)) {
      KUALA_LOG(KUALA_LOG_WARN, "sample is not valid YAML", "file", path, "error",
                parser.problem ? parser.problem : "?");
      break;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
      yaml_document_delete(&doc);
      break;
    }
    json_object *obj = to_json(&doc, root, 0);
    yaml_document_delete(&doc);
    apply_obj(e, obj, path);
    json_object_put(obj);
  }
  yaml_parser_delete(&parser);
  kuala_free(buf);
}

static int has_ext(const char *name, const char *ext)
{
  size_t n = strlen(name), m = strlen(ext);
  return n > m && strcmp(name + n - m, ext) == 0;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t kuala__dev_apply_samples(kuala_engine_t *e, const char *bundle_dir)
{
  char dir[1024];
  snprintf(dir, sizeof(dir), "%s/samples", bundle_dir);
  DIR *d = opendir(dir);
  if (d == NULL) {
    return 0;
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL) {
    if (ent->d_name[0] != '.' && (has_ext(ent->d_name, ".yaml") || has_ext(ent->d_name, ".yml") ||
                                  has_ext(ent->d_name, ".json"))) {
      names = kuala_realloc(names, (n + 1) * sizeof(*names));
      names[n++] = kuala_strdup(ent->d_name);
    }
  }
  closedir(d);
  qsort(names, n, sizeof(*names), cmp_str);
  for (size_t i = 0; i < n; i++) {
    char path[1600];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    apply_file(e, path);
    kuala_free(names[i]);
  }
  kuala_free(names);
  return n;
}
