/*
 * apierr: the emulator's API error, rendered as a Kubernetes Status object.
 *
 * Every handler and every semantic engine (patch, ssa, schema) reports a
 * failure by filling a kuala_apierr_t and returning its HTTP status code. The
 * HTTP layer renders it once with kuala__apierr_status() (spec §7):
 *
 *   {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
 *    "message":"…","reason":"…","details":{…},"code":N}
 *
 * `details` is present only when a name, group, kind, cause or retry hint is
 * set, which is what the real server does for BadRequest and 415 errors.
 *
 * Ownership: the struct owns every string and the causes array; clear it with
 * kuala__apierr_clear(). A zeroed struct (KUALA_APIERR_INIT) is empty and
 * valid. Setting an error on a struct that already holds one replaces it.
 */
#ifndef KUALA_APISERVER_APIERR_H
#define KUALA_APISERVER_APIERR_H

#include <json-c/json.h>
#include <stdarg.h>

typedef struct kuala_apierr_s {
  int code;            /* HTTP status; 0 = no error */
  const char *reason;  /* static string ("Invalid", "Conflict", …) */
  char *message;       /* owned; NULL when no error */
  char *name;          /* details.name, owned, optional */
  char *group;         /* details.group, owned, optional ("" = core: omitted) */
  char *kind;          /* details.kind, owned, optional */
  char *uid;           /* details.uid, owned, optional (delete Success) */
  json_object *causes; /* owned reference to an array of {reason,message,field} */
  int retry_after;     /* details.retryAfterSeconds + Retry-After header; 0 = none */
} kuala_apierr_t;

#define KUALA_APIERR_INIT                          \
  {                                                \
    0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0 \
  }

/* Cause reasons (metav1.CauseType). */
#define KUALA_CAUSE_REQUIRED "FieldValueRequired"
#define KUALA_CAUSE_INVALID "FieldValueInvalid"
#define KUALA_CAUSE_TYPE_INVALID "FieldValueTypeInvalid"
#define KUALA_CAUSE_NOT_SUPPORTED "FieldValueNotSupported"
#define KUALA_CAUSE_FORBIDDEN "FieldValueForbidden"
#define KUALA_CAUSE_TOO_LONG "FieldValueTooLong"
#define KUALA_CAUSE_TOO_MANY "FieldValueTooMany"
#define KUALA_CAUSE_DUPLICATE "FieldValueDuplicate"
#define KUALA_CAUSE_NOT_FOUND "FieldValueNotFound"
#define KUALA_CAUSE_MANAGER_CONFLICT "FieldManagerConflict"

/* Reset to the empty state. */
void kuala__apierr_init(kuala_apierr_t *e);

/* Free everything the struct owns and reset it to the empty state. */
void kuala__apierr_clear(kuala_apierr_t *e);

/*
 * The standard reason for an HTTP status: 400 "BadRequest", 401
 * "Unauthorized", 403 "Forbidden", 404 "NotFound", 405 "MethodNotAllowed",
 * 406 "NotAcceptable", 409 "Conflict", 410 "Expired", 413
 * "RequestEntityTooLarge", 415 "UnsupportedMediaType", 422 "Invalid", 429
 * "TooManyRequests", 500 "InternalError", 503 "ServiceUnavailable", 504
 * "Timeout"; "" for anything else. Static storage.
 */
const char *kuala__apierr_reason_for(int code);

/*
 * Set the error: `code` is the HTTP status, `reason` a static string or NULL
 * for kuala__apierr_reason_for(code), the message a printf format. Replaces
 * any previous error (details and causes included). Returns `code`, so
 * engines can write `return kuala__apierr_set(e, 422, NULL, "…");`.
 */
int kuala__apierr_set(kuala_apierr_t *e, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int kuala__apierr_vset(kuala_apierr_t *e, int code, const char *reason, const char *fmt,
                       va_list ap);

/*
 * Set details.name / group / kind (each may be NULL to leave unset). For
 * NotFound, AlreadyExists, Conflict and Forbidden `kind` is the resource
 * plural; for Invalid it is the Kind (spec §7). An empty group is omitted.
 */
void kuala__apierr_details(kuala_apierr_t *e, const char *name, const char *group,
                           const char *kind);

/* Append one cause {reason, message, field}; `field` may be NULL. */
void kuala__apierr_add_cause(kuala_apierr_t *e, const char *reason, const char *message,
                             const char *field);

/*
 * Field errors, the way apimachinery's field.Error renders them. Each call
 * appends one cause whose message is the "error body" below, and whose field
 * is `field`. The code stays unset until kuala__apierr_invalid() is called.
 *
 *   REQUIRED        "Required value"                 (+ ": detail")
 *   INVALID         "Invalid value: <v>"             (+ ": detail")
 *   TYPE_INVALID    "Invalid value: <v>"             (+ ": detail")
 *   NOT_SUPPORTED   "Unsupported value: <v>"         (+ ": detail")
 *   FORBIDDEN       "Forbidden"                      (+ ": detail")
 *   TOO_LONG        "Too long"                       (+ ": detail")
 *   TOO_MANY        "Too many: <v>"                  (+ ": detail")
 *   DUPLICATE       "Duplicate value: <v>"           (+ ": detail")
 *   NOT_FOUND       "Not found: <v>"                 (+ ": detail")
 *
 * <v> is the JSON rendering of `value` (strings quoted, `null` for NULL);
 * `cause` is one of the KUALA_CAUSE_* reasons above; `detail` may be NULL.
 */
void kuala__apierr_field(kuala_apierr_t *e, const char *cause, const char *field,
                         json_object *value, const char *detail);

/* Number of causes recorded so far. */
size_t kuala__apierr_cause_count(const kuala_apierr_t *e);

/*
 * Turn the recorded field errors into a 422 Invalid:
 *   `<Kind>[.<group>] "<name>" is invalid: <field>: <body>`
 * or, with several causes, `… is invalid: [f1: b1, f2: b2]`. Sets details
 * name, group and kind (the Kind). Returns 422, or 0 if no cause was recorded
 * (the struct is then left untouched).
 */
int kuala__apierr_invalid(kuala_apierr_t *e, const char *kind, const char *group, const char *name);

/*
 * The Status object for `e` (a new reference owned by the caller), with
 * keys in the real server's order: kind, apiVersion, metadata, status,
 * message, reason, details, code. If `e` holds no error, a 500 is rendered.
 */
json_object *kuala__apierr_status(const kuala_apierr_t *e);

/* The same, serialized compactly; the string is kuala_malloc'ed, `len` may be NULL. */
char *kuala__apierr_status_json(const kuala_apierr_t *e, size_t *len);

/*
 * A "Success" Status as returned by some deletes:
 * {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",
 *  "details":{"name":…,"group":…,"kind":…,"uid":…}}. Any argument may be NULL.
 */
json_object *kuala__apierr_success(const char *name, const char *group, const char *kind,
                                   const char *uid);

/*
 * The value of a `Warning:` response header for `text`: `299 - "<text>"`
 * with `"` and `\` escaped as HTTP quoted-strings require, so kubectl
 * prints `Warning: unknown field "spec.foo"`. Truncated (never split inside
 * an escape) to fit `n` bytes, NUL included. Returns `out`.
 */
char *kuala__apierr_warning(char *out, size_t n, const char *text);

#endif /* KUALA_APISERVER_APIERR_H */
