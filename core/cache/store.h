/*
 * store.h: internal helpers of the object store shared with the informer
 * and reflector: a small JSON text scanner that finds byte spans inside a
 * document json-c has already accepted, and copies a document minified.
 *
 * None of these validate: they assume the text parsed (json-c said so) and
 * never read past `n` even when it did not.
 */
#ifndef KUALA_CORE_STORE_H
#define KUALA_CORE_STORE_H

#include <stddef.h>

#include "base/jscan.h"
#include "kuala/buf.h"
#include "kuala/store.h"

/* Index just past the JSON value that starts at or after `i` (leading
 * whitespace skipped). Returns n when the text ends first. */
size_t kuala__json_skip(const char *s, size_t n, size_t i);

/* Span of the value of top-level member `key` of the object in s[0..n).
 * Returns 0 and sets *off and *len, or KUALA_ENOENT. With len NULL only
 * the start is found (the value is not scanned). */
int kuala__json_member(const char *s, size_t n, const char *key, size_t *off, size_t *len);

/* Iterate the elements of the array whose '[' is at or after *pos: start
 * with pos set to the offset of the array value. Each call returns 1 and one
 * element's span, then 0 at the end. */
int kuala__json_array_next(const char *s, size_t n, size_t *pos, size_t *off, size_t *len);

/* Append the first JSON value of s[0..n) to out without insignificant
 * whitespace; when strip_mf, leave out the member "managedFields" of the
 * top-level "metadata" object. *consumed (if not NULL) gets the index just
 * past that value, so a caller can walk an array of values in one pass. */
int kuala__json_compact(const char *s, size_t n, int strip_mf, kuala_buf_t *out, size_t *consumed);

/* kuala_store_put where `raw` may run past the object (e.g. the rest of a
 * list's items array): only its first JSON value is used, and *consumed
 * gets its length when the text was used (0 otherwise). */
int kuala__store_put_ex(kuala_store_t *s, struct json_object *obj, const char *raw, size_t rawlen,
                        int flags, kuala_store_change_cb cb, void *data, size_t *consumed);

/* 1 when this store needs a json-c tree per object (a transform,
 * metadata_only or user index functions): the text puts below then parse
 * each object on their own; else they never build one. */
int kuala__store_wants_tree(const kuala_store_t *s);

/* kuala_store_put / kuala_store_delete_obj for an object found by the
 * scanner (base/jscan.h) in the text t: its metadata comes from the scan,
 * the stored bytes are compacted straight from t. A scan that marked the
 * object not an object or without a metadata object gives KUALA_EINVAL,
 * a duplicate key among the fields read KUALA_EBADMSG. */
int kuala__store_put_text(kuala_store_t *s, const char *t, const kuala__jobj_t *o, int flags,
                          kuala_store_change_cb cb, void *data);
int kuala__store_delete_text(kuala_store_t *s, const char *t, const kuala__jobj_t *o,
                             kuala_store_change_cb cb, void *data);

#endif /* KUALA_CORE_STORE_H */
