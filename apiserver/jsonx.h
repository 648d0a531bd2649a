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
