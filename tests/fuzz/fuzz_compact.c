/*
 * fuzz_compact.c: libFuzzer target for the raw JSON scanner and compactor
 * of the store (core/cache/store.c: kuala__json_skip, _member,
 * _array_next, _compact).
 *
 * On any bytes (valid JSON or not) they must stay inside the buffer and
 * report offsets within it. On valid JSON the compacted text must be valid
 * and equal to the input as a document, with metadata.managedFields
 * removed when stripping is asked for. The first byte selects stripping.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/json.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1) {
    return 0;
  }
  int strip = data[0] & 1;
  const char *s = (const char *)data + 1;
  size_t n = size - 1;

  if (kuala__json_skip(s, n, 0) > n) {
    abort();
  }
  size_t off = 0, len = 0;
  if (kuala__json_member(s, n, "metadata", &off, &len) == 0 && off + len > n) {
    abort();
  }
  size_t pos = 0, steps = 0;
  while (kuala__json_array_next(s, n, &pos, &off, &len)) {
    if (off + len > n || pos > n || ++steps > n + 1) {
      abort();
    }
  }

  kuala_buf_t out = KUALA_BUF_INIT(0);
  size_t consumed = 0;
  int rc = kuala__json_compact(s, n, strip, &out, &consumed);
  if (rc == 0 && (consumed > n || out.len > n)) {
    abort();
  }
  json_object *in = NULL, *got = NULL;
  if (rc == 0 && kuala_json_parse(&in, s, n, NULL, 0) == 0) {
    if (kuala_json_parse(&got, out.data ? out.data : "", out.len, NULL, 0) != 0) {
      abort(); /* valid input must compact to valid output */
    }
    json_object *meta = NULL;
    if (strip && json_object_is_type(in, json_type_object) &&
        json_object_object_get_ex(in, "metadata", &meta) &&
        json_object_is_type(meta, json_type_object)) {
      json_object_object_del(meta, "managedFields");
    }
    if (!json_object_equal(in, got)) {
      abort();
    }
  }
  json_object_put(in);
  json_object_put(got);
  kuala_buf_free(&out);
  return 0;
}
