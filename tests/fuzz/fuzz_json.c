/*
 * fuzz_json.c: libFuzzer target for kuala_json_parse and the strict
 * validator (core/base/json.c).
 *
 * Properties checked on every input:
 *  - the validator and the parser agree (valid text parses, invalid text
 *    is refused, never half-accepted);
 *  - a parsed document serialises to text that parses back to an equal
 *    tree;
 *  - kuala_json_member_count never counts fewer members than the tree has;
 *  - parse A, then B gives the same result as parsing B alone: a failed
 *    parse leaves nothing behind in the per-thread tokener (issue 14 item
 *    4). The first byte chooses where the input splits into A and B.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/json.h"

static int same(json_object *a, json_object *b)
{
  if (!a || !b) {
    return a == b;
  }
  return json_object_equal(a, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  char err[160];
  json_object *o = NULL;
  int valid = kuala_json_validate(s, size, KUALA_JSON_WIRE_DEPTH, err, sizeof err) == 0;
  int parsed = kuala_json_parse(&o, s, size, err, sizeof err) == 0;
  if (valid != parsed) {
    abort();
  }
  if (o) {
    size_t n = 0;
    const char *text = kuala_json_compact(o, &n);
    json_object *back = NULL;
    if (kuala_json_parse(&back, text, n, err, sizeof err) != 0 || !same(o, back)) {
      abort();
    }
    json_object_put(back);
    if (json_object_is_type(o, json_type_object) &&
        kuala_json_member_count(s, size) < (size_t)json_object_object_length(o)) {
      abort();
    }
    json_object_put(o);
  }

  if (size < 2) {
    return 0;
  }
  size_t split = 1 + (size_t)data[0] * (size - 1) / 256;
  const char *a = s + 1, *b = s + split;
  size_t alen = split - 1, blen = size - split;
  json_object *alone = NULL, *after = NULL, *junk = NULL;
  int r1 = kuala_json_parse(&alone, b, blen, NULL, 0);
  kuala_json_parse(&junk, a, alen, NULL, 0);
  json_object_put(junk);
  int r2 = kuala_json_parse(&after, b, blen, NULL, 0);
  if (r1 != r2 || !same(alone, after)) {
    abort();
  }
  json_object_put(alone);
  json_object_put(after);
  return 0;
}
