/*
 * json.c: json-c helpers (see kuala/json.h). Stateless; every function
 * borrows its inputs.
 */
#include "kuala/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kuala/error.h"

/* One tokener per thread, reset between documents: allocating a tokener
 * (and its depth stack) per call was a third of the cost of parsing a 1 KB
 * object. Parsing never re-enters itself, so one is enough. */
static _Thread_local json_tokener *cached_tok;

static json_tokener *tokener(void)
{
  if (cached_tok == NULL) {
    cached_tok = json_tokener_new_ex(KUALA_JSON_MAX_DEPTH);
    json_tokener_set_flags(cached_tok, JSON_TOKENER_STRICT);
  } else {
    json_tokener_reset(cached_tok);
  }
  return cached_tok;
}

int kuala_json_parse(json_object **out, const char *s, size_t len, char *err, size_t errlen)
{
  *out = NULL;
  json_tokener *tok = tokener();
  json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  if (jerr == json_tokener_continue && len > 0) {
    /* A bare number at the very end may still be incomplete for the
     * tokener; a trailing newline settles it. */
    obj = json_tokener_parse_ex(tok, "\n", 1);
    jerr = json_tokener_get_error(tok);
    tok->char_offset = (int)len;
  }
  size_t used = (size_t)tok->char_offset > len ? len : (size_t)tok->char_offset;
  if (jerr == json_tokener_continue) {
    if (err) {
      snprintf(err, errlen, "unexpected end of JSON input");
    }
    return KUALA_EBADMSG;
  }
  if (jerr != json_tokener_success) {
    if (err) {
      snprintf(err, errlen, "%s at offset %zu", json_tokener_error_desc(jerr), used);
    }
    return KUALA_EBADMSG;
  }
  /* Only whitespace may follow the document. */
  for (size_t i = used; i < len; i++) {
    char c = s[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      json_object_put(obj);
      if (err) {
        snprintf(err, errlen, "invalid character '%c' after top-level value", c);
      }
      return KUALA_EBADMSG;
    }
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
