/*
 * The object store behind an informer: Kubernetes objects kept as compact
 * JSON bytes plus the few metadata fields that its indexes need.
 *
 * Each object is stored once as minified JSON (metadata.managedFields
 * stripped unless asked otherwise, an optional transform may drop more).
 * There is never a parsed json-c tree per cached object: ingesting parses
 * once to read the indexed fields, then keeps only bytes.
 *
 * Indexes: namespace/name (primary), namespace, owner UID
 * (metadata.ownerReferences[].uid), labels (label selector lookups), and
 * user-defined index functions.
 *
 * Ownership: a kuala_obj_t is a borrowed view into the store. It stays valid
 * until the next call that modifies the store (put, delete, replace_end,
 * add_index, free); copy what you need to keep (kuala_obj_dup). Change
 * callbacks get views that are valid only while the callback runs, and must
 * not modify the store; they may read it (reads see the new state).
 */
#ifndef KUALA_STORE_H
#define KUALA_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "kuala/selector.h"

struct json_object;

typedef struct kuala_store_s kuala_store_t;

/* A borrowed view of one stored object. All strings are NUL-terminated. */
typedef struct kuala_obj_s {
  const char *ns;   /* "" for cluster-scoped objects */
  const char *name; /* metadata.name */
  const char *rv;   /* metadata.resourceVersion ("" if absent) */
  const char *json; /* compact JSON of the whole object */
  size_t json_len;  /* bytes in json, NUL not counted */
} kuala_obj_t;

/* A view with its own copy of every string; free with kuala_obj_dup_free. */
typedef struct kuala_obj_dup_s {
  kuala_obj_t obj;
  char *mem;
} kuala_obj_dup_t;

typedef enum {
  KUALA_STORE_ADDED = 1,
  KUALA_STORE_UPDATED = 2,
  KUALA_STORE_DELETED = 3,
} kuala_store_change_t;

/* Called once per change. `old` is NULL for ADDED; `obj` is the new state
 * (ADDED, UPDATED) or the last state (DELETED). For a DELETED produced by
 * kuala_store_replace_end (the object vanished while we were not watching),
 * `final_state_unknown` is 1 and `obj` is the last state the store knew. */
typedef void (*kuala_store_change_cb)(void *data, kuala_store_change_t change,
                                      const kuala_obj_t *old, const kuala_obj_t *obj,
                                      int final_state_unknown);

/* Transform applied to the parsed object before it is stored (e.g. drop
 * status or annotations). Return 0, or a negative KUALA_E* to reject the
 * object (the put then fails with that code). It must keep metadata.name. */
typedef int (*kuala_store_transform_cb)(void *data, struct json_object *obj);

/* Index function: call kuala_store_emit() once per value the object has in
 * this index (zero values is fine). Return 0 or a negative KUALA_E*. */
typedef struct kuala_store_emit_s kuala_store_emit_t;
typedef int (*kuala_store_index_cb)(void *data, struct json_object *obj, kuala_store_emit_t *emit);
void kuala_store_emit(kuala_store_emit_t *emit, const char *value, size_t len);

/* Iteration callback: return 0 to continue, non-zero to stop (that value is
 * returned by the iterating function). */
typedef int (*kuala_store_iter_cb)(void *data, const kuala_obj_t *obj);

typedef struct {
  int keep_managed_fields;            /* 0 (default): strip metadata.managedFields */
  int metadata_only;                  /* keep only apiVersion, kind and metadata */
  kuala_store_transform_cb transform; /* optional */
  void *transform_data;
  size_t max_object_bytes; /* 0 = 16 MiB; bigger objects fail with E2BIG */
} kuala_store_opts_t;

/* Create a store. `opts` may be NULL (defaults). */
int kuala_store_new(kuala_store_t **out, const kuala_store_opts_t *opts);
void kuala_store_free(kuala_store_t *s);

/* Register a user index under `name` ("namespace", "owner" and "labels" are
 * built in and reserved). Existing objects are indexed at once (their JSON
 * is parsed again). KUALA_EEXIST if the name is taken. */
int kuala_store_add_index(kuala_store_t *s, const char *name, kuala_store_index_cb fn, void *data);

/* Flags for kuala_store_put. */
#define KUALA_STORE_SKIP_SAME_RV 1 /* no UPDATED when the stored RV is the same */

/* Insert or replace an object. `obj` is the parsed object (borrowed; it may
 * be modified: managedFields removed, transform applied). `raw`, if not
 * NULL, is the JSON text `obj` was parsed from; the store then copies it
 * minus whitespace and managedFields instead of serialising the tree again
 * (only when no transform and no metadata_only are set). `cb` (may be NULL)
 * sees the change. KUALA_EINVAL if the object has no metadata.name. */
int kuala_store_put(kuala_store_t *s, struct json_object *obj, const char *raw, size_t rawlen,
                    int flags, kuala_store_change_cb cb, void *data);
/* Parse `json` and put it. */
int kuala_store_put_json(kuala_store_t *s, const char *json, size_t len, int flags,
                         kuala_store_change_cb cb, void *data);

/* Delete (ns, name). `cb` sees DELETED with the stored last state.
 * KUALA_ENOTFOUND if absent (cb not called). */
int kuala_store_delete(kuala_store_t *s, const char *ns, const char *name, kuala_store_change_cb cb,
                       void *data);

/* Delete the object named by `obj` (a parsed object, e.g. from a watch
 * DELETED event; `raw` as for kuala_store_put). `cb` sees DELETED with the
 * given final state (compacted like a put). KUALA_ENOTFOUND if absent. */
int kuala_store_delete_obj(kuala_store_t *s, struct json_object *obj, const char *raw,
                           size_t rawlen, kuala_store_change_cb cb, void *data);

/* Relist: between begin and end, every put marks its object as seen; end
 * deletes every object not seen since begin and reports each as DELETED with
 * final_state_unknown = 1. Returns the number of objects deleted. A begin
 * while a replace is open (a relist that failed and starts over) starts the
 * pass again: what the abandoned pass saw counts as unseen. */
void kuala_store_replace_begin(kuala_store_t *s);
size_t kuala_store_replace_end(kuala_store_t *s, kuala_store_change_cb cb, void *data);

/* Reads. */
int kuala_store_get(const kuala_store_t *s, const char *ns, const char *name, kuala_obj_t *out);
/* Every object in namespace `ns` (NULL = all) whose labels match `sel`
 * (NULL = all). Uses the namespace and label indexes when they narrow it. */
int kuala_store_foreach(const kuala_store_t *s, const char *ns, const kuala_selector_t *sel,
                        kuala_store_iter_cb cb, void *data);
/* Every object whose index `index` ("namespace", "owner" or a user index)
 * has `value`. KUALA_ENOENT if there is no such index. */
int kuala_store_by_index(const kuala_store_t *s, const char *index, const char *value,
                         kuala_store_iter_cb cb, void *data);
/* Number of objects with that value in that index (0 if none). */
size_t kuala_store_index_count(const kuala_store_t *s, const char *index, const char *value);

size_t kuala_store_len(const kuala_store_t *s);
/* Sum of the stored compact JSON sizes. */
size_t kuala_store_json_bytes(const kuala_store_t *s);
/* Heap bytes held by the store: every allocation (as malloc really sized
 * it, plus its chunk header), objects, strings, tables and indexes. */
size_t kuala_store_mem_bytes(const kuala_store_t *s);

/* Copy a view so it outlives the store. */
void kuala_obj_dup(kuala_obj_dup_t *out, const kuala_obj_t *obj);
void kuala_obj_dup_free(kuala_obj_dup_t *d);

#endif /* KUALA_STORE_H */
