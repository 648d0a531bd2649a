/*
 * fuzz_selector.c: libFuzzer target for label and field selectors
 * (core/cache/selector.c).
 *
 * Whatever parses must format to text that parses again to a selector
 * with the same canonical text and the same requirements (the field
 * selector `metadata.name=foo\,bar` did not: its escape was lost). The
 * first byte chooses labels or fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/selector.h"

static void same_reqs(const kuala_selector_t *a, const kuala_selector_t *b)
{
  if (kuala_selector_count(a) != kuala_selector_count(b)) {
    abort();
  }
  for (size_t i = 0; i < kuala_selector_count(a); i++) {
    const char *ka, *kb;
    kuala_selector_op_t oa, ob;
    const char *const *va, *const *vb;
    size_t na, nb;
    kuala_selector_req(a, i, &ka, &oa, &va, &na);
    kuala_selector_req(b, i, &kb, &ob, &vb, &nb);
    if (strcmp(ka, kb) != 0 || oa != ob || na != nb) {
      abort();
    }
    for (size_t j = 0; j < na; j++) {
      if (strcmp(va[j], vb[j]) != 0) {
        abort();
      }
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1 || size > 4096) {
    return 0;
  }
  int fields = data[0] & 1;
  char *text = malloc(size);
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  kuala_selector_t *sel = NULL, *again = NULL;
  char err[256];
  int rc = fields ? kuala_selector_parse_fields(&sel, text, err, sizeof err)
                  : kuala_selector_parse_labels(&sel, text, err, sizeof err);
  if (rc == 0) {
    size_t need = kuala_selector_format(sel, NULL, 0);
    char *out = malloc(need + 1);
    kuala_selector_format(sel, out, need + 1);
    rc = fields ? kuala_selector_parse_fields(&again, out, err, sizeof err)
                : kuala_selector_parse_labels(&again, out, err, sizeof err);
    if (rc != 0) {
      abort(); /* formatted text must parse */
    }
    same_reqs(sel, again);
    char *out2 = malloc(need + 1);
    if (kuala_selector_format(again, out2, need + 1) != need || strcmp(out, out2) != 0) {
      abort();
    }
    const char *keys[] = {"app", "metadata.name", "tier"};
    const char *vals[] = {"web", "foo,bar", "3"};
    kuala_selector_matches_kv(sel, keys, vals, 3);
    free(out);
    free(out2);
  }
  kuala_selector_free(sel);
  kuala_selector_free(again);
  free(text);
  return 0;
}
