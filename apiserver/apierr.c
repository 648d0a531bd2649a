/*
 * apierr.c: the API error struct and its Status rendering (spec §7).
 *
 * Invariants: `code == 0` iff no error is held; `reason` always points to a
 * static string; every char* and the causes array are owned by the struct.
 */
#include "apierr.h"

#include <stdio.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"

void kuala__apierr_init(kuala_apierr_t *e)
{
  memset(e, 0, sizeof(*e));
}

void kuala__apierr_clear(kuala_apierr_t *e)
{
  kuala_free(e->message);
  kuala_free(e->name);
  kuala_free(e->group);
  kuala_free(e->kind);
  kuala_free(e->uid);
  if (e->causes) {
    json_object_put(e->causes);
  }
  kuala__apierr_init(e);
}

const char *kuala__apierr_reason_for(int code)
{
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "";
  }
}

int kuala__apierr_vset(kuala_apierr_t *e, int code, const char *reason, const char *fmt, va_list ap)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_vprintf(&b, fmt, ap);
  char *msg = kuala_buf_take(&b, NULL);
  kuala__apierr_clear(e);
  e->code = code;
  e->reason = reason ? reason : kuala__apierr_reason_for(code);
  e->message = msg ? msg : kuala_strdup("");
  return code;
}

int kuala__apierr_set(kuala_apierr_t *e, int code, const char *reason, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  kuala__apierr_vset(e, code, reason, fmt, ap);
  va_end(ap);
  return code;
}

static void replace_str(char **dst, const char *src)
{
  if (!src) {
    return;
  }
  kuala_free(*dst);
  *dst = kuala_strdup(src);
}

void kuala__apierr_details(kuala_apierr_t *e, const char *name, const char *group, const char *kind)
{
  replace_str(&e->name, name);
  replace_str(&e->group, group);
  replace_str(&e->kind, kind);
}

void kuala__apierr_add_cause(kuala_apierr_t *e, const char *reason, const char *message,
                             const char *field)
{
  if (!e->causes) {
    e->causes = json_object_new_array();
  }
  json_object *c = json_object_new_object();
  json_object_object_add(c, "reason", json_object_new_string(reason ? reason : ""));
  json_object_object_add(c, "message", json_object_new_string(message ? message : ""));
  if (field) {
    json_object_object_add(c, "field", json_object_new_string(field));
  }
  json_object_array_add(e->causes, c);
}

size_t kuala__apierr_cause_count(const kuala_apierr_t *e)
{
  return e->causes ? json_object_array_length(e->causes) : 0;
}

/* The label that starts a field error body, and whether it shows the value. */
static const char *body_label(const char *cause, int *with_value)
{
  *with_value = 1;
  if (strcmp(cause, KUALA_CAUSE_REQUIRED) == 0) {
    *with_value = 0;
    return "Required value";
  }
  if (strcmp(cause, KUALA_CAUSE_NOT_SUPPORTED) == 0) {
    return "Unsupported value";
  }
  if (strcmp(cause, KUALA_CAUSE_FORBIDDEN) == 0) {
    *with_value = 0;
    return "Forbidden";
  }
  if (strcmp(cause, KUALA_CAUSE_TOO_LONG) == 0) {
    *with_value = 0;
    return "Too long";
  }
  if (strcmp(cause, KUALA_CAUSE_TOO_MANY) == 0) {
    return "Too many";
  }
  if (strcmp(cause, KUALA_CAUSE_DUPLICATE) == 0) {
    return "Duplicate value";
  }
  if (strcmp(cause, KUALA_CAUSE_NOT_FOUND) == 0) {
    return "Not found";
  }
  /* FieldValueInvalid, FieldValueTypeInvalid and anything unknown. */
  return "Invalid value";
}

void kuala__apierr_field(kuala_apierr_t *e, const char *cause, const char *field,
                         json_object *value, const char *detail)
{
  int with_value = 1;
  const char *label = body_label(cause, &with_value);
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_puts(&b, label);
  if (with_value) {
    kuala_buf_puts(&b, ": ");
    kuala_buf_puts(&b, json_object_to_json_string_ext(
                           value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
  }
  if (detail && *detail) {
    kuala_buf_puts(&b, ": ");
    kuala_buf_puts(&b, detail);
  }
  kuala__apierr_add_cause(e, cause, b.data ? b.data : "", field);
  kuala_buf_free(&b);
}

static const char *cause_str(json_object *c, const char *key)
{
  json_object *v = NULL;
  if (!json_object_object_get_ex(c, key, &v) || !json_object_is_type(v, json_type_string)) {
    return NULL;
  }
  return json_object_get_string(v);
}

int kuala__apierr_invalid(kuala_apierr_t *e, const char *kind, const char *group, const char *name)
{
  size_t n = kuala__apierr_cause_count(e);
  if (n == 0) {
    return 0;
  }
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_puts(&b, kind ? kind : "");
  if (group && *group) {
    kuala_buf_printf(&b, ".%s", group);
  }
  kuala_buf_printf(&b, " \"%s\" is invalid: ", name ? name : "");
  if (n > 1) {
    kuala_buf_putc(&b, '[');
  }
  for (size_t i = 0; i < n; i++) {
    json_object *c = json_object_array_get_idx(e->causes, i);
    const char *field = cause_str(c, "field");
    const char *msg = cause_str(c, "message");
    if (i > 0) {
      kuala_buf_puts(&b, ", ");
    }
    if (field && *field) {
      kuala_buf_printf(&b, "%s: ", field);
    }
    kuala_buf_puts(&b, msg ? msg : "");
  }
  if (n > 1) {
    kuala_buf_putc(&b, ']');
  }
  kuala_free(e->message);
  e->message = kuala_buf_take(&b, NULL);
  e->code = 422;
  e->reason = "Invalid";
  kuala__apierr_details(e, name, group, kind);
  return 422;
}

static json_object *details_obj(const char *name, const char *group, const char *kind,
                                const char *uid, json_object *causes, int retry_after)
{
  if (!(name && *name) && !(group && *group) && !(kind && *kind) && !(uid && *uid) && !causes &&
      retry_after <= 0) {
    return NULL;
  }
  json_object *d = json_object_new_object();
  if (name && *name) {
    json_object_object_add(d, "name", json_object_new_string(name));
  }
  if (group && *group) {
    json_object_object_add(d, "group", json_object_new_string(group));
  }
  if (kind && *kind) {
    json_object_object_add(d, "kind", json_object_new_string(kind));
  }
  if (uid && *uid) {
    json_object_object_add(d, "uid", json_object_new_string(uid));
  }
  if (causes) {
    json_object_object_add(d, "causes", json_object_get(causes));
  }
  if (retry_after > 0) {
    json_object_object_add(d, "retryAfterSeconds", json_object_new_int(retry_after));
  }
  return d;
}

static json_object *status_head(const char *status)
{
  json_object *s = json_object_new_object();
  json_object_object_add(s, "kind", json_object_new_string("Status"));
  json_object_object_add(s, "apiVersion", json_object_new_string("v1"));
  json_object_object_add(s, "metadata", json_object_new_object());
  json_object_object_add(s, "status", json_object_new_string(status));
  return s;
}

json_object *kuala__apierr_status(const kuala_apierr_t *e)
{
  int code = e->code > 0 ? e->code : 500;
  const char *reason = e->code > 0 && e->reason ? e->reason : kuala__apierr_reason_for(code);
  const char *message = e->code > 0 && e->message ? e->message : "Internal error occurred";
  json_object *s = status_head("Failure");
  json_object_object_add(s, "message", json_object_new_string(message));
  if (reason && *reason) {
    json_object_object_add(s, "reason", json_object_new_string(reason));
  }
  json_object *d = details_obj(e->name, e->group, e->kind, e->uid, e->causes, e->retry_after);
  if (d) {
    json_object_object_add(s, "details", d);
  }
  json_object_object_add(s, "code", json_object_new_int(code));
  return s;
}

char *kuala__apierr_status_json(const kuala_apierr_t *e, size_t *len)
{
  json_object *s = kuala__apierr_status(e);
  size_t n = 0;
  const char *str = json_object_to_json_string_length(
      s, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
  char *out = kuala_memdup(str, n);
  json_object_put(s);
  if (len) {
    *len = n;
  }
  return out;
}

json_object *kuala__apierr_success(const char *name, const char *group, const char *kind,
                                   const char *uid)
{
  json_object *s = status_head("Success");
  json_object *d = details_obj(name, group, kind, uid, NULL, 0);
  if (d) {
    json_object_object_add(s, "details", d);
  }
  return s;
}

char *kuala__apierr_warning(char *out, size_t n, const char *text)
{
  static const char head[] = "299 - \"";
  if (n < sizeof head + 1) {
    if (n > 0) {
      out[0] = '\0';
    }
    return out;
  }
  size_t len = sizeof head - 1;
  memcpy(out, head, len);
  for (const char *p = text ? text : ""; *p; p++) {
    size_t need = (*p == '"' || *p == '\\') ? 2 : 1;
    if (len + need + 2 > n) { /* room for the closing quote and NUL */
      break;
    }
    if (need == 2) {
      out[len++] = '\\';
    }
    out[len++] = *p;
  }
  out[len++] = '"';
  out[len] = '\0';
  return out;
}
