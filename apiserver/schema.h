/*
 * schema: CustomResourceDefinition checks and per-instance structural schema
 * processing (spec §8.1, §8.2, §8.4, §4.7 fieldValidation).
 *
 * Per custom resource write the pipeline is: decode → prune → default →
 * validate → store. kuala__schema_process() runs the three steps in order.
 * Functions return 0 or an HTTP status code and fill the kuala_apierr_t.
 * Objects passed as "modified in place" are changed; everything else is
 * borrowed.
 */
#ifndef KUALA_APISERVER_SCHEMA_H
#define KUALA_APISERVER_SCHEMA_H

#include <json-c/json.h>

#include "apierr.h"

typedef enum {
  KUALA_FV_WARN = 0, /* server default: drop unknown fields, one warning each */
  KUALA_FV_IGNORE,   /* drop unknown fields silently */
  KUALA_FV_STRICT    /* unknown fields are a 400 (kubectl's default) */
} kuala_field_validation_t;

/*
 * Parse the `fieldValidation` query parameter: NULL or "" → Warn; "Ignore",
 * "Warn", "Strict" (exact). Anything else is 400 BadRequest.
 */
int kuala__schema_field_validation(kuala_field_validation_t *out, const char *s,
                                   kuala_apierr_t *err);

/*
 * Fill the CRD's defaults in place (§8.2): names.singular = lowercase kind,
 * names.listKind = kind+"List", conversion.strategy = "None", and each
 * version's missing booleans. Safe on malformed input (skips what it cannot
 * read).
 */
void kuala__schema_crd_default(json_object *crd);

/*
 * Validate a CustomResourceDefinition (§8.1) after defaulting: name ==
 * plural.group, group with a dot, names (plural/singular lowercase DNS
 * labels, kind/listKind set), scope, versions (at least one, unique names,
 * exactly one storage), structural schemas (type everywhere, object root,
 * no $ref/definitions/additionalProperties:false/uniqueItems:true,
 * properties vs additionalProperties, metadata restricted to
 * name/generateName), defaults valid against their own schema, and printer
 * columns. Returns 0 or 422 Invalid on kind CustomResourceDefinition with
 * one cause per problem.
 */
int kuala__schema_crd_validate(json_object *crd, kuala_apierr_t *err);

/*
 * The openAPIV3Schema of version `version` of `crd` (borrowed), or NULL when
 * the version does not exist or has no schema.
 */
json_object *kuala__schema_crd_version_schema(json_object *crd, const char *version);

/* What a custom resource is, for error messages. */
typedef struct kuala_schema_ctx_s {
  const char *group;   /* "stable.example.com" */
  const char *version; /* "v1" */
  const char *kind;    /* "CronTab" */
  const char *name;    /* the object's name (messages), may be NULL */
  kuala_field_validation_t fv;
  /* Out: unknown fields met while pruning, as an array of strings
   * ("unknown field \"spec.foo\""), when the caller wants warnings (Warn).
   * Owned by the caller; may be NULL. */
  json_object *warnings;
} kuala_schema_ctx_t;

/*
 * Drop every field the schema does not declare, except below
 * x-kubernetes-preserve-unknown-fields (declared properties below such a
 * node are pruned again) and the always-kept apiVersion, kind and known
 * metadata fields; embedded resources keep their apiVersion/kind/metadata.
 * `obj` is modified in place. Each dropped path is appended to `unknown`
 * (an array, may be NULL) as "spec.foo".
 */
void kuala__schema_prune(json_object *obj, json_object *schema, json_object *unknown);

/*
 * Apply defaults in place: missing fields with a `default` get a deep copy
 * of it; a `null` that is not nullable gets the default, or is removed.
 * Only existing objects are descended into.
 */
void kuala__schema_default(json_object *obj, json_object *schema);

/*
 * Validate `obj` against `schema`, appending one field error per problem to
 * `err` (kuala__apierr_field); it does not set the code. Messages follow
 * the kube-openapi validator ("spec.replicas in body must be of type
 * integer: \"string\"", "… should be less than or equal to 10", …).
 * Returns the number of errors appended.
 */
int kuala__schema_validate(json_object *obj, json_object *schema, kuala_apierr_t *err);

/*
 * The whole pipeline for one custom resource: prune (unknown fields: 400
 * under Strict, "strict decoding error: unknown field \"spec.foo\"";
 * warnings under Warn), default, validate (422 "<Kind>.<group> \"name\" is
 * invalid: …"). `obj` is modified in place. `schema` may be NULL (no
 * schema: everything preserved). Returns 0, 400 or 422.
 */
int kuala__schema_process(json_object *obj, json_object *schema, kuala_schema_ctx_t *ctx,
                          kuala_apierr_t *err);

#endif /* KUALA_APISERVER_SCHEMA_H */
