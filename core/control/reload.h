/*
 * reload.h: bundle sources as in-memory file sets, and their content hash.
 *
 * A bundle's source is a set of Lua modules, whether it comes from a
 * directory (files "main.lua", "lib/util.lua") or from a ConfigMap (keys
 * "main.lua", "lib.util.lua": a ConfigMap key cannot hold a '/'). Both are
 * turned into the same kuala__bfiles_t, whose `name` is the path the
 * runtime expects ("lib/util.lua"), sorted by name. The hash is computed on
 * that normalised form, so the engine (reading a directory or a ConfigMap)
 * and `kuala bundle` (writing the ConfigMap's annotation) agree on it:
 *
 *   sha256 over, for each file in name order: name, '\0', decimal length,
 *   '\0', content  →  "sha256:<64 hex digits>"
 *
 * Not thread-safe; plain data, owned by whoever filled it.
 */
#ifndef KUALA_CONTROL_RELOAD_H
#define KUALA_CONTROL_RELOAD_H

#include <stddef.h>

#include "kuala/runtime.h"

struct json_object;

#define KUALA_BUNDLE_LABEL "kuala.dev/bundle"
#define KUALA_BUNDLE_HASH_ANNOTATION "kuala.dev/bundle-hash"
#define KUALA_BUNDLE_HASH_LEN 72 /* "sha256:" + 64 hex + NUL, rounded */

typedef struct {
  kuala_bundle_file_t *files; /* name and src owned */
  size_t n, cap;
} kuala__bfiles_t;

void kuala__bfiles_free(kuala__bfiles_t *fs);
/* Add one file (copied); keeps the set sorted by name. */
void kuala__bfiles_add(kuala__bfiles_t *fs, const char *name, const char *src, size_t len);

/* Every *.lua file under `dir` (recursively, skipping hidden entries).
 * 0, or a negative KUALA_E* with *err (caller frees) saying why. */
int kuala__bfiles_read_dir(kuala__bfiles_t *fs, const char *dir, char **err);

/* The Lua modules of a ConfigMap object (its "data"): each key that is a
 * module name plus ".lua" becomes a file; other keys are reported through
 * `ignored` (may be NULL) and skipped. */
typedef void (*kuala__bfiles_ignored_cb)(void *data, const char *key);
int kuala__bfiles_from_configmap(kuala__bfiles_t *fs, struct json_object *cm,
                                 kuala__bfiles_ignored_cb ignored, void *data);

/* File name ("lib/util.lua") <-> ConfigMap key ("lib.util.lua"). 0, or
 * KUALA_EINVAL when the name cannot be mapped (a '.' inside a directory or
 * file stem, characters a ConfigMap key refuses). */
int kuala__bundle_key_of_file(const char *file, char *out, size_t cap);
int kuala__bundle_file_of_key(const char *key, char *out, size_t cap);

/* "sha256:..." of the set into out (KUALA_BUNDLE_HASH_LEN bytes). */
void kuala__bfiles_hash(const kuala__bfiles_t *fs, char *out);

#endif /* KUALA_CONTROL_RELOAD_H */
