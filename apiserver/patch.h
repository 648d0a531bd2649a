/*
 * patch: the PATCH engines of the emulator (spec §5.1–§5.3).
 *
 *   application/json-patch+json           RFC 6902 operation list
 *   application/merge-patch+json          RFC 7386 merge patch
 *   application/strategic-merge-patch+json Kubernetes SMP (built-in kinds only)
 *   application/apply-patch+yaml          server-side apply (see ssa.h); the
 *                                         body is YAML or JSON
 *
 * All functions are pure: they read borrowed json-c inputs and hand back new
 * objects owned by the caller; the inputs are never modified. They return 0
 * or an HTTP status code and fill the kuala_apierr_t on failure.
 *
 * A handler does:
 *
 *   kuala_patch_type_t t;
 *   json_object *p = NULL, *obj = NULL;
 *   if ((rc = kuala__patch_type(&t, content_type, is_custom_resource, &err)) ||
 *       (rc = kuala__patch_decode(&p, t, body, len, &err)))
 *     return reply_status(rc, &err);
 *   if (t == KUALA_PATCH_APPLY) -> kuala__ssa_apply(...)
 *   else rc = kuala__patch_run(&obj, t, live, p, group, kind, &err);
 */
#ifndef KUALA_APISERVER_PATCH_H
#define KUALA_APISERVER_PATCH_H

#include <json-c/json.h>
#include <stddef.h>

#include "apierr.h"

/* The real server refuses JSON patches with more operations than this (413). */
#define KUALA_PATCH_MAX_OPS 10000

typedef enum {
  KUALA_PATCH_NONE = 0,
  KUALA_PATCH_JSON,      /* application/json-patch+json */
  KUALA_PATCH_MERGE,     /* application/merge-patch+json */
  KUALA_PATCH_STRATEGIC, /* application/strategic-merge-patch+json */
  KUALA_PATCH_APPLY      /* application/apply-patch+yaml (also +cbor is refused) */
} kuala_patch_type_t;

/*
 * The patch type from a Content-Type header (parameters such as
 * `;charset=utf-8` are ignored, case-insensitive). `is_custom` refuses SMP
 * the way the real server does for custom resources. Returns 0, or 415
 * UnsupportedMediaType with the exact message of spec §5.1.
 */
int kuala__patch_type(kuala_patch_type_t *out, const char *content_type, int is_custom,
                      kuala_apierr_t *err);

/*
 * Decode a PATCH body: JSON for every type, YAML or JSON for APPLY. A JSON
 * patch must be an array of objects and a merge/strategic/apply patch an
 * object. Returns 0 with a new object in *out, 400 (BadRequest) on malformed
 * input, or 413 for a JSON patch above KUALA_PATCH_MAX_OPS operations.
 */
int kuala__patch_decode(json_object **out, kuala_patch_type_t type, const char *body, size_t len,
                        kuala_apierr_t *err);

/*
 * RFC 6902: apply `ops` (an array) to `doc`. Returns 0 with the result in
 * *out, 400 for a malformed operation (unknown op, missing path/value/from)
 * and 422 Invalid for a failing operation (missing path, index out of range,
 * failed `test`: "testing value /a failed: test failed").
 */
int kuala__patch_json(json_object **out, json_object *doc, json_object *ops, kuala_apierr_t *err);

/*
 * RFC 7386: merge `patch` into `doc`. `null` deletes a key; arrays and
 * scalars replace. A non-object patch replaces the document. Returns 0 with
 * the result in *out (never fails on valid JSON input).
 */
int kuala__patch_merge(json_object **out, json_object *doc, json_object *patch,
                       kuala_apierr_t *err);

/*
 * Strategic merge patch for the built-in kinds. `kind` (with `group`, ""
 * for core) selects the list merge keys: metadata.ownerReferences by uid and
 * metadata.finalizers as a set for every kind; for Deployment the pod
 * template lists (containers, initContainers by name; ports by
 * containerPort; env by name; volumeMounts by mountPath; volumes by name;
 * imagePullSecrets by name); for Service spec.ports by port. Every other
 * list is replaced. Directives: $patch replace/delete/merge (maps and list
 * elements), $deleteFromPrimitiveList/<list>, $setElementOrder/<list> (order
 * honoured for merged lists), $retainKeys. Returns 0, or 400 for a malformed
 * directive.
 */
int kuala__patch_strategic(json_object **out, json_object *doc, json_object *patch,
                           const char *group, const char *kind, kuala_apierr_t *err);

/*
 * The merge strategy of the built-in list at dotted path `path` (array
 * levels elided, e.g. "spec.template.spec.containers.ports") of kind
 * `group`/`kind`: 1 for a list merged by key (*key set, or NULL for a set of
 * primitives such as metadata.finalizers), 0 for an atomic list. Shared with
 * server-side apply so both treat built-in lists the same way.
 */
int kuala__patch_list_key(const char *group, const char *kind, const char *path, const char **key);

/*
 * Dispatch on `type` to one of the three functions above. APPLY is not
 * handled here (see kuala__ssa_apply): it returns 500.
 */
int kuala__patch_run(json_object **out, kuala_patch_type_t type, json_object *doc,
                     json_object *patch, const char *group, const char *kind, kuala_apierr_t *err);

/*
 * Parse YAML (one document) or JSON text into json-c. Scalars follow YAML
 * 1.1/1.2 core rules for plain scalars (true/false, null/~, integers,
 * floats); quoted scalars stay strings. Returns 0, or 400 with a message on
 * a syntax error, several documents, or non-string mapping keys.
 */
int kuala__patch_yaml_decode(json_object **out, const char *text, size_t len, kuala_apierr_t *err);

#endif /* KUALA_APISERVER_PATCH_H */
