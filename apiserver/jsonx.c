/*
 * jsonx.c: json-c helpers for the emulator's semantic engines. Pure
 * functions; every returned pointer is borrowed unless the doc says "new".
 */
#include "jsonx.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int kuala__json_parse(json_object **out, const char *text, size_t len, int max_depth, char *msg,
                      size_t msglen)
{
  *out = NULL;
  if (len > (size_t)0x7fffffff) {
    snprintf(msg, msglen, "body too large");
    return -1;
  }
  json_tokener *tok = json_tokener_new_ex(max_depth);
  if (!tok) {
    snprintf(msg, msglen, "out of memory");
    return -1;
  }
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  json_object *obj = json_tokener_parse_ex(tok, text ? text : "", (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  size_t used = jerr == json_tokener_success ? json_tokener_get_parse_end(tok) : 0;
  if (jerr == json_tokener_continue) {
    /* Flush a trailing bare number or literal. */
    obj = json_tokener_parse_ex(tok, "", 1);
    jerr = json_tokener_get_error(tok);
    used = len;
  }
  json_tokener_free(tok);
  if (jerr != json_tokener_success) {
    snprintf(msg, msglen, "%s", len == 0 ? "empty body" : json_tokener_error_desc(jerr));
    json_object_put(obj);
    return -1;
  }
  for (size_t i = used; i < len; i++) {
    if (!isspace((unsigned char)text[i])) {
      snprintf(msg, msglen, "invalid character after top-level value at offset %zu", i);
      json_object_put(obj);
      return -1;
    }
  }
  *out = obj;
  return 0;
}

int kuala__json_check_body(const char *s, size_t len, int max_depth, char *msg, size_t msglen)
{
  int depth = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch == '"') {
      for (i++; i < len && s[i] != '"'; i++) {
        if (s[i] == '\\') {
          i++;
        }
      }
      continue;
    }
    if (ch == '{' || ch == '[') {
      if (++depth > max_depth) {
        snprintf(msg, msglen, "exceeded max depth (%d levels of nesting)", max_depth);
        return -1;
      }
      continue;
    }
    if (ch == '}' || ch == ']') {
      depth--;
      continue;
    }
    if (ch == '-' || isdigit((unsigned char)ch)) {
      size_t j = i + 1;
      int is_int = 1;
      while (j < len && (isdigit((unsigned char)s[j]) || s[j] == '.' || s[j] == 'e' ||
                         s[j] == 'E' || s[j] == '+' || s[j] == '-')) {
        if (!isdigit((unsigned char)s[j])) {
          is_int = 0;
        }
        j++;
      }
      if (ch == '-' && j == i + 1) {
        snprintf(msg, msglen, "invalid character '%c' in numeric literal",
                 j < len && isprint((unsigned char)s[j]) ? s[j] : '?');
        return -1;
      }
      char num[64];
      size_t n = j - i;
      int too_long = n >= sizeof num;
      if (!too_long) {
        memcpy(num, s + i, n);
        num[n] = '\0';
      }
      int bad = 0;
      if (is_int) {
        /* Digits only: in int64 range or refused (no silent saturation). */
        errno = 0;
        bad = too_long || (strtoll(num, NULL, 10), errno == ERANGE);
      } else {
        errno = 0;
        bad = !too_long && !isfinite(strtod(num, NULL));
      }
      if (bad) {
        snprintf(msg, msglen, "json: cannot unmarshal number %.*s into Go value of type %s",
                 (int)(n > 40 ? 40 : n), s + i, is_int ? "int64" : "float64");
        return -1;
      }
      i = j - 1;
      continue;
    }
    if (isalpha((unsigned char)ch)) {
      size_t j = i;
      while (j < len && isalpha((unsigned char)s[j])) {
        j++;
      }
      size_t n = j - i;
      if (!((n == 4 && memcmp(s + i, "true", 4) == 0) ||
            (n == 5 && memcmp(s + i, "false", 5) == 0) ||
            (n == 4 && memcmp(s + i, "null", 4) == 0))) {
        snprintf(msg, msglen, "invalid character '%c' looking for beginning of value", ch);
        return -1;
      }
      i = j - 1;
    }
  }
  return 0;
}

int kuala__json_parse_stored(json_object **out, const char *s, size_t len)
{
  /* One tokener for the process (the emulator is single-threaded): its
   * depth stack is allocated once. Replaced after a failed parse, which
   * a reset does not fully clear. */
  static json_tokener *tok;
  *out = NULL;
  if (len > (size_t)0x7fffffff) {
    return -1;
  }
  if (!tok) {
    tok = json_tokener_new_ex(KUALA_EMU_STORED_DEPTH);
    if (!tok) {
      return -1;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  }
  json_tokener_reset(tok);
  json_object *obj = json_tokener_parse_ex(tok, s ? s : "", (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  if (jerr == json_tokener_continue) {
    obj = json_tokener_parse_ex(tok, "", 1);
    jerr = json_tokener_get_error(tok);
  }
  if (jerr != json_tokener_success) {
    json_object_put(obj);
    json_tokener_free(tok);
    tok = NULL;
    return -1;
  }
  *out = obj;
  return 0;
}

int kuala__json_depth(json_object *v, int limit)
{
  if (limit <= 0) {
    return 1;
  }
  int best = 0;
  if (json_object_is_type(v, json_type_object)) {
    json_object_object_foreach(v, k, child)
    {
      (void)k;
      int d = kuala__json_depth(child, limit - 1);
      best = d > best ? d : best;
    }
    return best + 1;
  }
  if (json_object_is_type(v, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(v); i++) {
      int d = kuala__json_depth(json_object_array_get_idx(v, i), limit - 1);
      best = d > best ? d : best;
    }
    return best + 1;
  }
  return 0;
}

int kuala__json_is_number(json_object *v)
{
  return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

int kuala__json_equal(json_object *a, json_object *b)
{
  if (a == b) {
    return 1;
  }
  if (!a || !b) {
    return 0;
  }
  if (kuala__json_is_number(a) && kuala__json_is_number(b)) {
    if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int)) {
      return json_object_get_int64(a) == json_object_get_int64(b);
    }
    return json_object_get_double(a) == json_object_get_double(b);
  }
  if (json_object_get_type(a) != json_object_get_type(b)) {
    return 0;
  }
  switch (json_object_get_type(a)) {
    case json_type_boolean:
      return json_object_get_boolean(a) == json_object_get_boolean(b);
    case json_type_string:
      return json_object_get_string_len(a) == json_object_get_string_len(b) &&
             memcmp(json_object_get_string(a), json_object_get_string(b),
                    (size_t)json_object_get_string_len(a)) == 0;
    case json_type_array: {
      size_t n = json_object_array_length(a);
      if (n != json_object_array_length(b)) {
        return 0;
      }
      for (size_t i = 0; i < n; i++) {
        if (!kuala__json_equal(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i))) {
          return 0;
        }
      }
      return 1;
    }
    case json_type_object: {
      if (json_object_object_length(a) != json_object_object_length(b)) {
        return 0;
      }
      json_object_object_foreach(a, key, val)
      {
        json_object *other = NULL;
        if (!json_object_object_get_ex(b, key, &other) || !kuala__json_equal(val, other)) {
          return 0;
        }
      }
      return 1;
    }
    default:
      return 0;
  }
}

json_object *kuala__json_get(json_object *obj, const char *key)
{
  json_object *v = NULL;
  if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &v)) {
    return NULL;
  }
  return v;
}

const char *kuala__json_get_str(json_object *obj, const char *key)
{
  json_object *v = kuala__json_get(obj, key);
  return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}
