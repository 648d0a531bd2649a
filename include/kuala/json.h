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

/* Deepest nesting of one object: what kube-apiserver accepts
 * (k8s.io/apimachinery/pkg/util/json maxDepth, Go's encoding/json
 * maxNestingDepth: 10000). */
#define KUALA_JSON_MAX_DEPTH 10000
/* Deepest nesting kuala_json_parse accepts: one object plus the envelope
 * around it on the wire (a list's {"items":[...]}, a watch event's
 * {"object":...}), so any object the server stores can be listed and
 * watched. */
#define KUALA_JSON_WIRE_DEPTH (KUALA_JSON_MAX_DEPTH + 2)

/* Parse exactly one JSON document from s[0..len). The text must be strict
 * RFC 8259 (kuala_json_validate) nested at most KUALA_JSON_WIRE_DEPTH deep.
 * On failure returns KUALA_EBADMSG and writes a short reason with the byte
 * offset into err (if not NULL), e.g. "leading zero in number at offset 1".
 * A failed parse never affects the next one. */
int kuala_json_parse(json_object **out, const char *s, size_t len, char *err, size_t errlen);

/* 0 when s[0..len) is exactly one JSON text as RFC 8259 defines it
 * (whitespace around it allowed) nested at most max_depth (capped at
 * KUALA_JSON_WIRE_DEPTH) deep; else KUALA_EBADMSG and a reason in err.
 * Refuses what lenient parsers take: trailing commas, leading zeros,
 * single quotes, comments, TRUE/NaN/Infinity, "1.", ".5", "+1", raw
 * control characters (NUL included) in strings, bad escapes. Duplicate
 * keys are syntactically valid; see kuala_json_member_count(). Byte
 * sequences that are not UTF-8 are not checked. Iterative, no allocation. */
int kuala_json_validate(const char *s, size_t len, size_t max_depth, char *err, size_t errlen);

/* Number of members the object text s[0..len) lists, duplicates counted
 * (0 when it is not an object). `s` must be valid JSON. Compared with
 * json_object_object_length() of its parsed tree it detects duplicate
 * keys (json-c keeps the last one). */
size_t kuala_json_member_count(const char *s, size_t len);

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
