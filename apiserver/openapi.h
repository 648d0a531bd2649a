/*
 * openapi: the /openapi/v3 documents kubectl reads before create/apply
 * (spec §1.5), and Table rendering for `kubectl get` (spec §1.6).
 *
 * The server describes what it serves as an array of kuala_openapi_res_t;
 * this module only formats. kubectl needs, per group version, a path whose
 * `patch` operation carries x-kubernetes-group-version-kind and lists the
 * `fieldValidation` query parameter: then it sends fieldValidation=Strict
 * and lets the server validate. SMP is deliberately not listed in the
 * requestBody (see §1.5).
 *
 * All results are new json-c objects owned by the caller; inputs borrowed.
 */
#ifndef KUALA_APISERVER_OPENAPI_H
#define KUALA_APISERVER_OPENAPI_H

#include <json-c/json.h>
#include <stddef.h>
#include <time.h>

#include "apierr.h"

typedef struct kuala_openapi_res_s {
  const char *group;   /* "" for the core group */
  const char *version; /* "v1" */
  const char *plural;  /* "configmaps" */
  const char *kind;    /* "ConfigMap" */
  int namespaced;
  json_object *schema; /* CRD openAPIV3Schema, borrowed; NULL for built-ins */
} kuala_openapi_res_t;

/*
 * GET /openapi/v3:
 * {"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=H"},…}}
 * with one entry per distinct group version in `res`; H is a content hash of
 * the per-group-version document, so it changes when a CRD schema changes.
 */
json_object *kuala__openapi_index(const kuala_openapi_res_t *res, size_t n);

/*
 * GET /openapi/v3/<gvpath> where gvpath is "api/v1" or "apis/<group>/<version>"
 * (no leading slash, no query). Returns 0 with the document in *out, or 404
 * NotFound when no resource of `res` belongs to that group version.
 */
int kuala__openapi_gv_doc(json_object **out, const kuala_openapi_res_t *res, size_t n,
                          const char *gvpath, kuala_apierr_t *err);

/*
 * The hex content hash used in serverRelativeURL for gvpath (NULL when the
 * group version is unknown). kuala_malloc'ed.
 */
char *kuala__openapi_gv_hash(const kuala_openapi_res_t *res, size_t n, const char *gvpath);

/* includeObject= for Tables. */
typedef enum {
  KUALA_TABLE_OBJ_METADATA = 0, /* default: PartialObjectMetadata rows */
  KUALA_TABLE_OBJ_OBJECT,       /* the full object */
  KUALA_TABLE_OBJ_NONE          /* no object */
} kuala_table_include_t;

/*
 * Whether an Accept header asks for a meta.k8s.io Table (as=Table;g=meta.k8s.io).
 */
int kuala__openapi_accepts_table(const char *accept);
/* Whether some media range of `accept` has as=<as> and g=meta.k8s.io. */
int kuala__openapi_accepts_as(const char *accept, const char *as);
/* as=PartialObjectMetadata or as=PartialObjectMetadataList (metadata-only
 * informers). */
int kuala__openapi_accepts_partial(const char *accept);
/* The metadata-only form of an object (PartialObjectMetadata) or of a list
 * (PartialObjectMetadataList, list metadata kept). Returns a new object;
 * `doc` is not consumed. */
json_object *kuala__openapi_partial(json_object *doc);

/*
 * Parse includeObject (NULL/"" → Metadata; "Object", "None", "Metadata").
 * Returns 0 or 400.
 */
int kuala__openapi_table_include(kuala_table_include_t *out, const char *s, kuala_apierr_t *err);

/*
 * Render a Table (meta.k8s.io/v1) from `src`, either a list (with "items" and
 * "metadata") or a single object (one row). `columns` is a CRD version's
 * additionalPrinterColumns (borrowed, may be NULL): with columns, Name then
 * each column (jsonPath subset: .a.b, .a[0].b, .a['x.y']); a custom resource
 * without columns (`custom` = 1) gets Name and Age; a built-in gets Name and
 * "Created At" (RFC 3339). Date cells of custom resources are ages relative
 * to `now` ("6s", "5m", "3h", "2d"). `with_columns` = 0 omits
 * columnDefinitions (watch events after the first). Returns the Table.
 */
json_object *kuala__openapi_table(json_object *src, json_object *columns, int custom,
                                  kuala_table_include_t include, int with_columns, time_t now);

/*
 * Evaluate a printer-column JSONPath (".spec.replicas") against `obj`; the
 * borrowed value, or NULL when absent or the path is unsupported.
 */
json_object *kuala__openapi_jsonpath(json_object *obj, const char *path);

#endif /* KUALA_APISERVER_OPENAPI_H */
