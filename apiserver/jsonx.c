/*
 * jsonx.c: json-c helpers for the emulator's semantic engines. Pure
 * functions; every returned pointer is borrowed unless the doc says "new".
 */
#include "jsonx.h"

#include <ctype.h>
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
