/*
 * jsonx: json-c helpers for the emulator's semantic engines (patch, ssa,
 * schema, openapi) that kuala/json.h does not provide: parsing with a
 * caller-chosen depth (CRD schemas nest deeper than KUALA_JSON_MAX_DEPTH)
 * and JSON-value equality with numbers compared numerically (RFC 6902
 * `test` and SSA's "same value" checks need 1 == 1.0; json_object_equal
 * does not). Copies, paths and serialization come from kuala/json.h.
 */
#ifndef KUALA_APISERVER_JSONX_H
#define KUALA_APISERVER_JSONX_H

#include <json-c/json.h>
#include <stddef.h>

/*
 * Parse exactly one JSON value from text[0..len) with a nesting cap. Returns
 * 0 with a new object in *out (NULL for the literal `null`), or -1 with a
 * short reason in msg. Trailing non-space bytes are an error.
 */
int kuala__json_parse(json_object **out, const char *text, size_t len, int max_depth, char *msg,
                      size_t msglen);

/*
 * Nesting limits. A request body may nest KUALA_EMU_MAX_DEPTH levels
 * (deeper is refused with 400 before anything is stored); stored objects
 * are re-read with KUALA_EMU_STORED_DEPTH, which leaves room for what the
 * server adds (managedFields mirror the object's fields one level below
 * metadata.managedFields[i].fieldsV1, watch events and lists wrap objects),
 * so everything acknowledged can be read back, patched, deleted and loaded
 * after a restart.
 */
#define KUALA_EMU_MAX_DEPTH 512
#define KUALA_EMU_STORED_DEPTH (2 * KUALA_EMU_MAX_DEPTH + 64)

/*
 * Check a JSON request body the way Go's decoder (kube-apiserver) would
 * before json-c sees it: bare words other than true/false/null (NaN,
 * Infinity) are syntax errors, a number out of float64 range (1e400) or an
 * integer out of int64 range is refused (json-c would saturate it), and
 * nesting deeper than max_depth is refused. Returns 0, or -1 with a
 * Go-style message in msg.
 */
int kuala__json_check_body(const char *s, size_t len, int max_depth, char *msg, size_t msglen);

/* Nesting depth of v (a scalar is 0, {} is 1); stops counting past limit. */
int kuala__json_depth(json_object *v, int limit);

/*
 * Parse a document the server stored itself (objects, events), allowing
 * KUALA_EMU_STORED_DEPTH levels. Same contract as kuala_json_parse: 0 with
 * a new object, or -1.
 */
int kuala__json_parse_stored(json_object **out, const char *s, size_t len);

/*
 * JSON equality: same type and value, numbers compared numerically (1 and
 * 1.0 are equal), objects regardless of key order, arrays in order. NULL
 * equals NULL.
 */
int kuala__json_equal(json_object *a, json_object *b);

/* Borrowed member of an object by key, or NULL (also when obj is not an object). */
json_object *kuala__json_get(json_object *obj, const char *key);

/* The string member `key` of `obj`, or NULL when absent or not a string. */
const char *kuala__json_get_str(json_object *obj, const char *key);

/* Whether `v` is a JSON number (int or double). */
int kuala__json_is_number(json_object *v);

#endif /* KUALA_APISERVER_JSONX_H */
