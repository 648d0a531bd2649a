/*
 * ssa: server-side apply and managedFields bookkeeping (spec §5.4).
 *
 * Field sets are computed over plain JSON: maps are granular, lists are
 * atomic unless the schema marks them `x-kubernetes-list-type: map` (merged
 * by `x-kubernetes-list-map-keys`) or `set`; built-in
 * metadata.ownerReferences is a map list keyed by uid and
 * metadata.finalizers a set. Ownership is stored in the object's
 * metadata.managedFields (FieldsV1 tries), so GET shows it and a restart
 * keeps it.
 *
 * Both entry points are pure: `live` and `applied` are borrowed and never
 * modified; the result is a new object owned by the caller.
 */
#ifndef KUALA_APISERVER_SSA_H
#define KUALA_APISERVER_SSA_H

#include <json-c/json.h>

#include "apierr.h"

/* Update entries beyond this many are folded into the "ancient-changes" manager. */
#define KUALA_SSA_MAX_UPDATE_MANAGERS 10

typedef struct kuala_ssa_opts_s {
  const char *manager;     /* fieldManager (apply: required; update: may be a UA prefix) */
  const char *api_version; /* the request's group/version: "v1", "stable.example.com/v1" */
  const char *subresource; /* NULL/"" for the main resource, or "status" */
  const char *name;        /* the URL's object name, checked against the body; may be NULL */
  int force;               /* apply: take ownership on conflict */
  int status_subresource;  /* the resource has a /status subresource (CRDs: subresources.status) */
  json_object *schema;     /* openAPIV3Schema for list-type markers; NULL for built-ins */
  const char *now;         /* RFC 3339 time to record; NULL = the current time */
} kuala_ssa_opts_t;

/*
 * Server-side apply of `applied` (the decoded body) onto `live` (NULL when
 * the object does not exist yet: the apply creates it). On success *out is
 * the merged object with managedFields updated; the caller then runs the
 * usual update path (validation, generation, RV, events; a result equal to
 * `live` is a no-op).
 *
 * Errors: 422 fieldManager missing/too long; 400 apiVersion mismatch
 * ("Incorrect version specified in apply patch. …"), managedFields present
 * ("metadata.managedFields must be nil"), name mismatch; 409 Conflict with
 * one FieldManagerConflict cause per field when `force` is 0.
 */
int kuala__ssa_apply(json_object **out, json_object *live, json_object *applied,
                     const kuala_ssa_opts_t *o, kuala_apierr_t *err);

/*
 * Ownership for a non-apply write (create, update, JSON/merge/strategic
 * patch): `obj` is the object about to be stored (modified in place: its
 * metadata.managedFields is rewritten), `old` the previous object (NULL on
 * create). The manager's Update entry (manager, apiVersion, subresource)
 * gains every field that changed or was added; those fields leave the other
 * managers' sets; empty entries are dropped; entries beyond
 * KUALA_SSA_MAX_UPDATE_MANAGERS Update entries merge into
 * "ancient-changes". `metadata.managedFields: [{}]` in `obj` clears them;
 * `[]` or absent keeps the old ones. Never conflicts. Returns 0.
 */
int kuala__ssa_update(json_object *obj, json_object *old, const kuala_ssa_opts_t *o,
                      kuala_apierr_t *err);

/*
 * The FieldsV1 trie of every leaf, map entry and list item `obj` sets, with
 * the system fields stripped (apiVersion, kind, metadata.name, namespace,
 * uid, resourceVersion, generation, creationTimestamp, managedFields,
 * selfLink, status for main-resource writes of a status-subresource kind,
 * etc.). A new object.
 */
json_object *kuala__ssa_fieldset(json_object *obj, const kuala_ssa_opts_t *o);

#endif /* KUALA_APISERVER_SSA_H */
