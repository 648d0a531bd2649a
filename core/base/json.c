/*
 * json.c: json-c helpers (see kuala/json.h). Stateless apart from one cached
 * tokener per thread; every function borrows its inputs.
 *
 * Everything from the network goes through kuala_json_parse(), which first
 * validates the text strictly against RFC 8259 (json-c's own strict mode
 * still takes NaN, Infinity, "1." and raw control characters in strings)
 * and only then builds the json-c tree. The validator is iterative and
 * allocation-free, so depth is bounded by a constant, not by the C stack.
 */
#include "kuala/json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/jscan.h"
#include "kuala/error.h"

/* One tokener per thread, reset between documents: allocating a tokener
 * (and its depth stack) per call was a third of the cost of parsing a 1 KB
 * object. Parsing never re-enters itself, so one is enough. After any
 * error it is thrown away: json_tokener_reset() leaves parts of the state
 * behind (a pending UTF-16 high surrogate, for one), which would corrupt
 * the next, unrelated document. */
static _Thread_local json_tokener *cached_tok;

static json_tokener *tokener(void)
{
  if (cached_tok == NULL) {
    /* +1: the validator has already enforced the depth limit. */
    cached_tok = json_tokener_new_ex(KUALA_JSON_WIRE_DEPTH + 1);
    json_tokener_set_flags(cached_tok, JSON_TOKENER_STRICT);
  } else {
    json_tokener_reset(cached_tok);
  }
  return cached_tok;
}

static void tokener_discard(void)
{
  json_tokener_free(cached_tok);
  cached_tok = NULL;
}

/* ---- strict RFC 8259 validation ---- */

/* The token scanners (strings, numbers, literals) are jscan.c's, shared
 * with the tree-free ingest scan, so both refuse exactly the same text. */
static int is_json_ws(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int bad(char *err, size_t errlen, const char *why, size_t at)
{
  if (err && errlen) {
    snprintf(err, errlen, "%s at offset %zu", why, at);
  }
  return KUALA_EBADMSG;
}

int kuala_json_validate(const char *s, size_t len, size_t max_depth, char *err, size_t errlen)
{
  /* One bit per open container (1 = object), so validation needs no
   * recursion and no allocation whatever the input. */
  uint64_t stack[(KUALA_JSON_WIRE_DEPTH + 63) / 64];
  size_t depth = 0;
  int rc, esc;
  if (max_depth > KUALA_JSON_WIRE_DEPTH) {
    max_depth = KUALA_JSON_WIRE_DEPTH;
  }
  size_t i = 0;
  while (i < len && is_json_ws(s[i])) {
    i++;
  }
  for (;;) {
    /* A value starts at s[i]. */
    if (i >= len) {
      return bad(err, errlen, "unexpected end of JSON input", i);
    }
    char c = s[i];
    if (c == '{' || c == '[') {
      if (depth >= max_depth) {
        char why[64];
        snprintf(why, sizeof why, "nesting deeper than %zu", max_depth);
        return bad(err, errlen, why, i);
      }
      if (c == '{') {
        stack[depth / 64] |= (uint64_t)1 << (depth % 64);
      } else {
        stack[depth / 64] &= ~((uint64_t)1 << (depth % 64));
      }
      depth++;
      i++;
      while (i < len && is_json_ws(s[i])) {
        i++;
      }
      if (i < len && s[i] == (c == '{' ? '}' : ']')) {
        depth--;
        i++;
        goto after_value;
      }
      if (c == '[') {
        continue;
      }
      goto member;
    } else if ((rc = kuala__jscan_scalar(s, len, &i, &esc, err, errlen)) < 0) {
      return rc;
    }
  after_value:
    while (i < len && is_json_ws(s[i])) {
      i++;
    }
    if (depth == 0) {
      if (i < len) {
        return bad(err, errlen, "data after the top-level value", i);
      }
      return 0;
    }
    if (i >= len) {
      return bad(err, errlen, "unexpected end of JSON input", i);
    }
    int in_obj = (stack[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
    if (s[i] == (in_obj ? '}' : ']')) {
      depth--;
      i++;
      goto after_value;
    }
    if (s[i] != ',') {
      return bad(err, errlen, in_obj ? "',' or '}' expected" : "',' or ']' expected", i);
    }
    i++;
    while (i < len && is_json_ws(s[i])) {
      i++;
    }
    if (!in_obj) {
      continue;
    }
  member:
    /* An object member: "key" ws ':' ws value. */
    if (i >= len || s[i] != '"') {
      return bad(err, errlen, i >= len ? "unexpected end of JSON input" : "string key expected", i);
    }
    if ((rc = kuala__jscan_string(s, len, &i, &esc, err, errlen)) < 0) {
      return rc;
    }
    while (i < len && is_json_ws(s[i])) {
      i++;
    }
    if (i >= len || s[i] != ':') {
      return bad(err, errlen, "':' expected after object key", i);
    }
    i++;
    while (i < len && is_json_ws(s[i])) {
      i++;
    }
  }
}

size_t kuala_json_member_count(const char *s, size_t len)
{
  /* The text is valid JSON: skip strings, count commas at depth 1. */
  size_t i = 0, depth = 0, count = 0;
  int empty = 1, esc;
  while (i < len && is_json_ws(s[i])) {
    i++;
  }
  if (i >= len || s[i] != '{') {
    return 0;
  }
  for (; i < len; i++) {
    char c = s[i];
    if (c == '"') {
      kuala__jscan_string(s, len, &i, &esc, NULL, 0);
      i--;
      if (depth == 1) {
        empty = 0;
      }
    } else if (c == '{' || c == '[') {
      depth++;
      if (depth > 1) {
        empty = 0;
      }
    } else if (c == '}' || c == ']') {
      if (--depth == 0) {
        break;
      }
    } else if (c == ',' && depth == 1) {
      count++;
    }
  }
  return empty ? 0 : count + 1;
}

int kuala_json_parse(json_object **out, const char *s, size_t len, char *err, size_t errlen)
{
  *out = NULL;
  int rc = kuala_json_validate(s, len, KUALA_JSON_WIRE_DEPTH, err, errlen);
  if (rc < 0) {
    return rc;
  }
  if (len > INT32_MAX) {
    if (err) {
      snprintf(err, errlen, "JSON document larger than 2 GiB");
    }
    return KUALA_E2BIG;
  }
  json_tokener *tok = tokener();
  json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  if (jerr == json_tokener_continue) {
    /* A bare number at the very end may still be incomplete for the
     * tokener; a trailing newline settles it. */
    obj = json_tokener_parse_ex(tok, "\n", 1);
    jerr = json_tokener_get_error(tok);
  }
  if (jerr != json_tokener_success) { /* (obj NULL and success: the document is null) */
    /* Valid text json-c still refuses (it should not happen): report it
     * and start the next document with a fresh tokener. */
    json_object_put(obj);
    tokener_discard();
    if (err) {
      snprintf(err, errlen, "%s", json_tokener_error_desc(jerr));
    }
    return KUALA_EBADMSG;
  }
  *out = obj;
  return 0;
}

const char *kuala_json_compact(json_object *obj, size_t *len)
{
  size_t n = 0;
  const char *s = json_object_to_json_string_length(
      obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
  if (len) {
    *len = n;
  }
  return s;
}

json_object *kuala_json_path(json_object *obj, const char *path)
{
  char key[256];
  const char *p = path;
  while (obj && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n >= sizeof key || !json_object_is_type(obj, json_type_object)) {
      return NULL;
    }
    memcpy(key, p, n);
    key[n] = '\0';
    json_object *child;
    if (!json_object_object_get_ex(obj, key, &child)) {
      return NULL;
    }
    obj = child;
    p += n;
    if (*p == '.') {
      p++;
    }
  }
  return obj;
}

json_object *kuala_json_get(json_object *obj, ...)
{
  va_list ap;
  va_start(ap, obj);
  const char *key;
  while (obj && (key = va_arg(ap, const char *)) != NULL) {
    json_object *child;
    if (!json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &child)) {
      obj = NULL;
      break;
    }
    obj = child;
  }
  va_end(ap);
  return obj;
}

const char *kuala_json_path_str(json_object *obj, const char *path)
{
  json_object *v = kuala_json_path(obj, path);
  return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

json_object *kuala_json_ensure_obj(json_object *obj, const char *key)
{
  json_object *child;
  if (json_object_object_get_ex(obj, key, &child) && json_object_is_type(child, json_type_object)) {
    return child;
  }
  child = json_object_new_object();
  json_object_object_add(obj, key, child);
  return child;
}

void kuala_json_set_str(json_object *obj, const char *key, const char *value)
{
  json_object_object_add(obj, key, json_object_new_string(value));
}

json_object *kuala_json_copy(json_object *obj)
{
  json_object *out = NULL;
  if (!obj) {
    return NULL;
  }
  if (json_object_deep_copy(obj, &out, NULL) < 0) {
    return NULL;
  }
  return out;
}

int kuala_json_equal(json_object *a, json_object *b)
{
  return json_object_equal(a, b);
}
