/*
 * Small json-c helpers shared by the engine and the emulator.
 *
 * Ownership follows json-c: functions that return `json_object *` without
 * "new" in the name return borrowed pointers (valid while the parent lives);
 * kuala_json_parse() returns a new reference the caller must put.
 */
#ifndef KUALA_JSON_H
#define KUALA_JSON_H

#include <json-c/json.h>
#include <stddef.h>

/* Maximum nesting accepted by kuala_json_parse (deeper input is refused). */
#define KUALA_JSON_MAX_DEPTH 64

/* Parse exactly one JSON document from s[0..len). On failure returns
 * KUALA_EBADMSG and writes a short reason into err (if not NULL), e.g.
 * "unexpected end of data" or "trailing characters after the document". */
int kuala_json_parse(json_object **out, const char *s, size_t len, char *err, size_t errlen);

/* Compact serialization (no spaces, '/' not escaped). The string is owned by
 * `obj` and valid until obj changes or is freed; *len may be NULL. */
const char *kuala_json_compact(json_object *obj, size_t *len);

/* Follow a dot-separated path of object keys ("metadata.name"). Returns NULL
 * when any step is missing or not an object. */
json_object *kuala_json_path(json_object *obj, const char *path);

/* Like kuala_json_path() for a NULL-terminated list of keys, for keys that
 * contain dots ("metadata", "labels", "app.kubernetes.io/name", NULL). */
json_object *kuala_json_get(json_object *obj, ...);

/* The string at `path`, or NULL when missing or not a string. */
const char *kuala_json_path_str(json_object *obj, const char *path);

/* The child object `key` of `obj`, created (as {}) when missing or not an
 * object. Returns the child (borrowed). */
json_object *kuala_json_ensure_obj(json_object *obj, const char *key);

/* Set obj[key] = string value (copies value). */
void kuala_json_set_str(json_object *obj, const char *key, const char *value);

/* Deep copy (new reference). */
json_object *kuala_json_copy(json_object *obj);

/* 1 when both documents are equal (object key order ignored). */
int kuala_json_equal(json_object *a, json_object *b);

#endif /* KUALA_JSON_H */
