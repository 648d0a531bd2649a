/*
 * fuzz_watch.c: libFuzzer target for the watch path from bytes to the
 * cache: the JSON-lines splitter (core/client/lines.c), the event checks
 * the client makes (strict JSON, {"type":...,"object":{...}}, no
 * duplicate key), and the store's put of the object's raw text, as the
 * reflector does it (core/cache/store.c).
 *
 * Properties: the splitter yields the same lines whatever the chunking
 * (the chunk sizes come from the input), dropped over-long lines included;
 * a stored object is valid JSON equal to the event's object with
 * metadata.managedFields removed, and is filed under the name the event's
 * object carries.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/client.h"
#include "kuala/json.h"
#include "kuala/store.h"
#include "store.h"

#define MAX_LINE 4096
#define MAX_LINES 512

typedef struct {
  size_t n;
  size_t len[MAX_LINES];
  char *line[MAX_LINES]; /* NULL: a dropped over-long line */
} lines_t;

static int collect(void *data, const char *line, size_t len)
{
  lines_t *l = data;
  if (l->n == MAX_LINES) {
    return 1; /* enough: stop */
  }
  l->len[l->n] = len;
  l->line[l->n] = line ? memcpy(malloc(len + 1), line, len + 1) : NULL;
  l->n++;
  return 0;
}

static void split(const uint8_t *data, size_t size, size_t step_seed, lines_t *out, int *rc)
{
  kuala_lines_t p;
  kuala_lines_init(&p, MAX_LINE);
  p.skip_long = 1;
  size_t i = 0, x = step_seed | 1;
  *rc = 0;
  while (i < size && *rc == 0) {
    size_t k = step_seed ? 1 + (x % 97) : size - i;
    x = x * 1103515245u + 12345u;
    if (k > size - i) {
      k = size - i;
    }
    *rc = kuala_lines_feed(&p, (const char *)data + i, k, collect, out);
    i += k;
  }
  kuala_lines_free(&p);
}

static void free_lines(lines_t *l)
{
  for (size_t i = 0; i < l->n; i++) {
    free(l->line[i]);
  }
}

static void check_event(kuala_store_t *st, const char *line, size_t len)
{
  json_object *ev = NULL, *type, *obj;
  if (kuala_json_parse(&ev, line, len, NULL, 0) != 0) {
    return;
  }
  if (!json_object_is_type(ev, json_type_object) ||
      kuala_json_member_count(line, len) != (size_t)json_object_object_length(ev) ||
      !json_object_object_get_ex(ev, "type", &type) ||
      !json_object_is_type(type, json_type_string) ||
      !json_object_object_get_ex(ev, "object", &obj) ||
      !json_object_is_type(obj, json_type_object)) {
    json_object_put(ev);
    return;
  }
  size_t off = 0;
  if (kuala__json_member(line, len, "object", &off, NULL) != 0) {
    abort(); /* the tree has it, so the text has it */
  }
  json_object *want = NULL;
  kuala_json_parse(&want, kuala_json_compact(obj, NULL), strlen(kuala_json_compact(obj, NULL)),
                   NULL, 0);
  if (kuala_store_put(st, obj, line + off, len - off, 0, NULL, NULL) == 0) {
    json_object *meta = NULL, *name = NULL, *ns = NULL;
    json_object_object_get_ex(want, "metadata", &meta);
    json_object_object_get_ex(meta, "name", &name);
    json_object_object_get_ex(meta, "namespace", &ns);
    kuala_obj_t got;
    const char *nss =
        ns && json_object_is_type(ns, json_type_string) ? json_object_get_string(ns) : "";
    if (!name || kuala_store_get(st, nss, json_object_get_string(name), &got) != 0) {
      abort(); /* filed under the name the object carries */
    }
    json_object *stored = NULL;
    if (kuala_json_parse(&stored, got.json, got.json_len, NULL, 0) != 0) {
      abort();
    }
    json_object_object_del(meta, "managedFields");
    if (!json_object_equal(stored, want)) {
      abort();
    }
    json_object_put(stored);
  }
  json_object_put(want);
  json_object_put(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1) {
    return 0;
  }
  lines_t *whole = calloc(1, sizeof *whole), *pieces = calloc(1, sizeof *pieces);
  int rc1, rc2;
  split(data + 1, size - 1, 0, whole, &rc1);
  split(data + 1, size - 1, data[0], pieces, &rc2);
  if (rc1 == 0 && rc2 == 0) {
    if (whole->n != pieces->n) {
      abort();
    }
    for (size_t i = 0; i < whole->n; i++) {
      if ((whole->line[i] == NULL) != (pieces->line[i] == NULL) ||
          (whole->line[i] && (whole->len[i] != pieces->len[i] ||
                              memcmp(whole->line[i], pieces->line[i], whole->len[i]) != 0))) {
        abort();
      }
    }
  }
  kuala_store_opts_t o;
  memset(&o, 0, sizeof o);
  kuala_store_t *st = NULL;
  kuala_store_new(&st, &o);
  for (size_t i = 0; i < whole->n; i++) {
    if (whole->line[i]) {
      check_event(st, whole->line[i], whole->len[i]);
    }
  }
  kuala_store_free(st);
  free_lines(whole);
  free_lines(pieces);
  free(whole);
  free(pieces);
  return 0;
}
