/*
 * Unit tests for apiserver/schema: CRD checks and the prune → default →
 * validate pipeline with the real server's messages.
 */
#include <check.h>

#include "kuala_test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "kuala/json.h"
#include "schema.h"

static json_object *J(const char *s)
{
  json_object *o = NULL;
  char msg[128];
  ck_assert_msg(kuala__json_parse(&o, s, strlen(s), 128, msg, sizeof msg) == 0, "bad JSON %s: %s",
                s, msg);
  return o;
}

static void expect_json(json_object *got, const char *want)
{
  json_object *w = J(want);
  ck_assert_msg(kuala__json_equal(got, w), "got %s, want %s", kuala_json_compact(got, NULL), want);
  json_object_put(w);
}

static const char *CRONTAB_CRD =
    "{\"apiVersion\":\"apiextensions.k8s.io/"
    "v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"crontabs.stable.example.com\"},"
    "\"spec\":{\"group\":\"stable.example.com\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"crontabs\",\"kind\":\"CronTab\",\"shortNames\":["
    "\"ct\"]},"
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"required\":[\"cronSpec\"],\"properties\":{"
    "\"cronSpec\":{\"type\":\"string\",\"pattern\":\"^(\\\\d+|\\\\*)(/"
    "\\\\d+)?(\\\\s+(\\\\d+|\\\\*)"
    "(/\\\\d+)?){4}$\"},"
    "\"image\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":5},"
    "\"replicas\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10,"
    "\"default\":1},"
    "\"ratio\":{\"type\":\"number\",\"exclusiveMinimum\":true,\"minimum\":0,"
    "\"multipleOf\":0.5},"
    "\"mode\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"]},"
    "\"note\":{\"type\":\"string\",\"nullable\":true},"
    "\"port\":{\"x-kubernetes-int-or-string\":true},"
    "\"tags\":{\"type\":\"array\",\"maxItems\":2,\"minItems\":1,\"x-kubernetes-"
    "list-type\":\"set\","
    "\"items\":{\"type\":\"string\"}},"
    "\"ports\":{\"type\":\"array\",\"x-kubernetes-list-type\":\"map\",\"x-"
    "kubernetes-list-map-"
    "keys\":[\"name\"],\"items\":{\"type\":\"object\",\"properties\":{\"name\":"
    "{\"type\":"
    "\"string\"},\"port\":{\"type\":\"integer\",\"default\":80}}}},"
    "\"labels\":{\"type\":\"object\",\"additionalProperties\":{\"type\":"
    "\"string\"}},"
    "\"template\":{\"type\":\"object\",\"x-kubernetes-embedded-resource\":true,"
    "\"x-kubernetes-preserve-unknown-fields\":true},"
    "\"extra\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":"
    "true,"
    "\"properties\":{\"typed\":{\"type\":\"object\",\"properties\":{\"k\":{"
    "\"type\":\"string\"}}}}},"
    "\"nested\":{\"type\":\"object\",\"properties\":{\"deep\":{\"type\":"
    "\"string\",\"default\":"
    "\"d\"}}}}},"
    "\"status\":{\"type\":\"object\",\"properties\":{\"phase\":{\"type\":"
    "\"string\"}}}}}},"
    "\"subresources\":{\"status\":{}},"
    "\"selectableFields\":[{\"jsonPath\":\".spec.mode\"},{\"jsonPath\":\".spec.replicas\"}],"
    "\"additionalPrinterColumns\":[{\"name\":\"Replicas\",\"type\":\"integer\","
    "\"jsonPath\":"
    "\".spec.replicas\"}]}]}}";

static json_object *crontab_schema(json_object **crd)
{
  *crd = J(CRONTAB_CRD);
  json_object *s = kuala__schema_crd_version_schema(*crd, "v1");
  ck_assert_ptr_nonnull(s);
  return s;
}

START_TEST(test_schema_field_validation_param)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala_field_validation_t fv;
  ck_assert_int_eq(kuala__schema_field_validation(&fv, NULL, &e), 0);
  ck_assert_int_eq(fv, KUALA_FV_WARN);
  ck_assert_int_eq(kuala__schema_field_validation(&fv, "Strict", &e), 0);
  ck_assert_int_eq(fv, KUALA_FV_STRICT);
  ck_assert_int_eq(kuala__schema_field_validation(&fv, "Ignore", &e), 0);
  ck_assert_int_eq(fv, KUALA_FV_IGNORE);
  ck_assert_int_eq(kuala__schema_field_validation(&fv, "strict", &e), 400);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_schema_crd_defaults_and_valid_crd)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *crd = J(CRONTAB_CRD);
  kuala__schema_crd_default(crd);
  ck_assert_str_eq(kuala_json_path_str(crd, "spec.names.singular"), "crontab");
  ck_assert_str_eq(kuala_json_path_str(crd, "spec.names.listKind"), "CronTabList");
  ck_assert_str_eq(kuala_json_path_str(crd, "spec.conversion.strategy"), "None");
  int rc = kuala__schema_crd_validate(crd, &e);
  ck_assert_msg(rc == 0, "valid CRD refused: %s", e.message);
  ck_assert_ptr_null(kuala__schema_crd_version_schema(crd, "v2"));
  json_object_put(crd);
}
END_TEST

/* Validate a CRD after applying a merge of `change` into the crontab CRD. */
static int crd_with(const char *mutate_path, const char *value_json, kuala_apierr_t *e)
{
  json_object *crd = J(CRONTAB_CRD);
  kuala__schema_crd_default(crd);
  /* mutate_path is dotted, with numeric components for array indices. */
  char buf[256];
  snprintf(buf, sizeof buf, "%s", mutate_path);
  json_object *cur = crd;
  char *save = NULL;
  char *tok = strtok_r(buf, ".", &save);
  while (tok) {
    char *next = strtok_r(NULL, ".", &save);
    int is_idx = tok[0] >= '0' && tok[0] <= '9';
    if (!next) {
      json_object *v = value_json ? J(value_json) : NULL;
      if (is_idx) {
        json_object_array_put_idx(cur, (size_t)strtol(tok, NULL, 10), v);
      } else if (value_json) {
        json_object_object_add(cur, tok, v);
      } else {
        json_object_object_del(cur, tok);
      }
      break;
    }
    cur = is_idx ? json_object_array_get_idx(cur, (size_t)strtol(tok, NULL, 10))
                 : kuala__json_get(cur, tok);
    ck_assert_ptr_nonnull(cur);
    tok = next;
  }
  kuala__apierr_clear(e);
  int rc = kuala__schema_crd_validate(crd, e);
  json_object_put(crd);
  return rc;
}

static void expect_crd_error(const char *path, const char *value, const char *needle)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  ck_assert_int_eq(crd_with(path, value, &e), 422);
  ck_assert_str_eq(e.reason, "Invalid");
  ck_assert_str_eq(e.kind, "CustomResourceDefinition");
  ck_assert_msg(strstr(e.message, needle) != NULL, "message %s lacks %s", e.message, needle);
  kuala__apierr_clear(&e);
}

START_TEST(test_schema_crd_rejections)
{
  expect_crd_error("metadata.name", "\"crontab.stable.example.com\"",
                   "CustomResourceDefinition.apiextensions.k8s.io "
                   "\"crontab.stable.example.com\" is "
                   "invalid: metadata.name: Invalid value: "
                   "\"crontab.stable.example.com\": must be "
                   "spec.names.plural+\".\"+spec.group");
  expect_crd_error("spec.group", "\"example\"",
                   "spec.group: Invalid value: \"example\": should be a domain "
                   "with at least one "
                   "dot");
  expect_crd_error("spec.scope", "\"Global\"",
                   "spec.scope: Unsupported value: \"Global\": supported "
                   "values: \"Cluster\", "
                   "\"Namespaced\"");
  expect_crd_error("spec.versions.0.storage", "false",
                   "must have exactly one version marked as storage version");
  expect_crd_error("spec.versions", "[]",
                   "must have exactly one version marked as storage version");
  expect_crd_error("spec.names.plural", "\"CronTabs\"", "spec.names.plural: Invalid value");
  expect_crd_error("spec.names.kind", NULL, "spec.names.kind: Required value");
  expect_crd_error("spec.versions.0.schema.openAPIV3Schema.type", NULL,
                   "spec.versions[0].schema.openAPIV3Schema.type: Required "
                   "value: must not be "
                   "empty at the root");
  expect_crd_error("spec.versions.0.schema.openAPIV3Schema.type", "\"string\"",
                   "must be object at the root");
  expect_crd_error("spec.versions.0.schema.openAPIV3Schema.properties.spec.properties.image",
                   "{\"minLength\":1}",
                   "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties["
                   "image]."
                   "type: Required value: must not be empty for specified object fields");
  expect_crd_error(
      "spec.versions.0.schema.openAPIV3Schema.properties.spec."
      "additionalProperties",
      "false", "additionalProperties cannot be set to false");
  expect_crd_error("spec.versions.0.schema.openAPIV3Schema.properties.spec.properties.tags",
                   "{\"type\":\"array\",\"uniqueItems\":true,\"items\":{\"type\":\"string\"}"
                   "}",
                   "uniqueItems cannot be set to true");
  expect_crd_error("spec.versions.0.schema.openAPIV3Schema.properties.spec.properties.x",
                   "{\"$ref\":\"#/definitions/x\"}", "$ref is not supported");
  expect_crd_error("spec.versions.0.schema.openAPIV3Schema.properties.metadata",
                   "{\"type\":\"object\",\"properties\":{\"labels\":{\"type\":\"object\"}}}",
                   "must not specify anything other than name and generateName");
  expect_crd_error(
      "spec.versions.0.schema.openAPIV3Schema.properties.spec."
      "properties.replicas."
      "default",
      "20",
      "properties[replicas].default: Invalid value: 20: "
      "spec.replicas in body should "
      "be less than or equal to 10");
  expect_crd_error("spec.versions.0.additionalPrinterColumns.0.type", "\"float\"",
                   "spec.versions[0].additionalPrinterColumns[0].type: Unsupported value: "
                   "\"float\"");
  expect_crd_error(
      "spec.versions.0.schema.openAPIV3Schema.properties.spec."
      "properties.labels."
      "properties",
      "{\"a\":{\"type\":\"string\"}}", "additionalProperties and properties are mutual exclusive");
  expect_crd_error(
      "spec.versions.0.selectableFields", "[{\"jsonPath\":\".spec.nope\"}]",
      "spec.versions[0].selectableFields[0].jsonPath: Invalid value: \".spec.nope\": is "
      "an invalid path");
  expect_crd_error("spec.versions.0.selectableFields", "[{\"jsonPath\":\".spec.labels\"}]",
                   "selectable field type must be one of: string, integer, boolean");
  expect_crd_error(
      "spec.versions.0.selectableFields",
      "[{\"jsonPath\":\".spec.mode\"},{\"jsonPath\":\".spec.mode\"}]",
      "spec.versions[0].selectableFields[1].jsonPath: Duplicate value: \".spec.mode\"");
  expect_crd_error("spec.versions.0.selectableFields", "[{},{},{},{},{},{},{},{},{}]",
                   "spec.versions[0].selectableFields: Too many: 9: must have at most 8 items");
  expect_crd_error("spec.versions.0.schema", NULL,
                   "spec.versions[0].schema.openAPIV3Schema: Required value");
}
END_TEST

START_TEST(test_schema_prune_drops_unknown_fields)
{
  json_object *crd = NULL;
  json_object *s = crontab_schema(&crd);
  json_object *obj =
      J("{\"apiVersion\":\"stable.example.com/"
        "v1\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
        "\"x\",\"labels\":{\"a\":\"b\"},\"bogus\":1},\"spec\":{\"cronSpec\":\"*"
        " * * * *\",\"foo\":1,"
        "\"labels\":{\"any\":\"thing\"},\"ports\":[{\"name\":\"a\",\"junk\":"
        "true}],"
        "\"extra\":{\"free\":{\"x\":1},\"typed\":{\"k\":\"v\",\"drop\":2}},"
        "\"template\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{"
        "\"name\":\"p\"},"
        "\"spec\":{\"anything\":1}}},\"top\":true}");
  json_object *unknown = json_object_new_array();
  kuala__schema_prune(obj, s, unknown);
  expect_json(obj,
              "{\"apiVersion\":\"stable.example.com/"
              "v1\",\"kind\":\"CronTab\",\"metadata\":{"
              "\"name\":\"x\",\"labels\":{\"a\":\"b\"}},\"spec\":{\"cronSpec\":"
              "\"* * * * *\","
              "\"labels\":{\"any\":\"thing\"},\"ports\":[{\"name\":\"a\"}],"
              "\"extra\":{\"free\":{\"x\":1},\"typed\":{\"k\":\"v\"}},"
              "\"template\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
              "\"metadata\":{\"name\":\"p\"},"
              "\"spec\":{\"anything\":1}}}}");
  expect_json(unknown,
              "[\"metadata.bogus\",\"spec.foo\",\"spec.ports[0]."
              "junk\",\"spec.extra.typed.drop\","
              "\"top\"]");
  json_object_put(unknown);
  json_object_put(obj);
  json_object_put(crd);
}
END_TEST

START_TEST(test_schema_defaulting)
{
  json_object *crd = NULL;
  json_object *s = crontab_schema(&crd);
  json_object *obj =
      J("{\"spec\":{\"cronSpec\":\"x\",\"note\":null,\"image\":"
        "null,\"ports\":[{\"name\":\"a\"},"
        "{\"name\":\"b\",\"port\":8080}],\"nested\":{}}}");
  kuala__schema_default(obj, s);
  /* replicas defaulted, null image pruned, nullable note kept, items and nested
   * defaulted. */
  expect_json(obj,
              "{\"spec\":{\"cronSpec\":\"x\",\"note\":null,\"replicas\":1,"
              "\"ports\":[{\"name\":"
              "\"a\",\"port\":80},{\"name\":\"b\",\"port\":8080}],"
              "\"nested\":{\"deep\":\"d\"}}}");
  json_object_put(obj);
  /* A missing parent is not created: its children get no defaults. */
  obj = J("{\"metadata\":{\"name\":\"x\"}}");
  kuala__schema_default(obj, s);
  expect_json(obj, "{\"metadata\":{\"name\":\"x\"}}");
  json_object_put(obj);
  /* null with a default: the default wins. */
  obj = J("{\"spec\":{\"replicas\":null}}");
  kuala__schema_default(obj, s);
  expect_json(obj, "{\"spec\":{\"replicas\":1}}");
  json_object_put(obj);
  json_object_put(crd);
}
END_TEST

/* Validate spec `spec_json` and return the messages joined by " | ". */
static char *validate_spec(const char *spec_json, int *count)
{
  json_object *crd = NULL;
  json_object *s = crontab_schema(&crd);
  char buf[2048];
  snprintf(buf, sizeof buf, "{\"spec\":%s}", spec_json);
  json_object *obj = J(buf);
  kuala_apierr_t e = KUALA_APIERR_INIT;
  *count = kuala__schema_validate(obj, s, &e);
  ck_assert_int_eq((size_t)*count, kuala__apierr_cause_count(&e));
  kuala__apierr_invalid(&e, "CronTab", "stable.example.com", "x");
  char *msg = strdup(e.message ? e.message : "");
  kuala__apierr_clear(&e);
  json_object_put(obj);
  json_object_put(crd);
  return msg;
}

static void expect_valid(const char *spec)
{
  int n = 0;
  char *m = validate_spec(spec, &n);
  ck_assert_msg(n == 0, "%s refused: %s", spec, m);
  free(m);
}

static void expect_invalid(const char *spec, const char *message)
{
  int n = 0;
  char *m = validate_spec(spec, &n);
  ck_assert_msg(n == 1, "%s: %d errors: %s", spec, n, m);
  ck_assert_str_eq(m, message);
  free(m);
}

#define PFX "CronTab.stable.example.com \"x\" is invalid: "

START_TEST(test_schema_validate_types_and_bounds)
{
  expect_valid("{\"cronSpec\":\"*/5 * * * *\",\"replicas\":10}");
  expect_valid(
      "{\"cronSpec\":\"1 2 3 4 "
      "5\",\"replicas\":2.0,\"ratio\":1.5,\"port\":\"http\"}");
  expect_valid(
      "{\"cronSpec\":\"* * * * "
      "*\",\"port\":8080,\"note\":null,\"mode\":\"b\"}");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"replicas\":\"two\"}", PFX
                 "spec.replicas: Invalid value: \"two\": spec.replicas in body must be of "
                 "type integer: \"string\"");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"replicas\":1.5}", PFX
                 "spec.replicas: Invalid value: 1.5: spec.replicas in body "
                 "must be of type "
                 "integer: \"number\"");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"replicas\":0}", PFX
                 "spec.replicas: Invalid value: 0: spec.replicas in body "
                 "should be greater "
                 "than or equal to 1");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"ratio\":0}", PFX
                 "spec.ratio: Invalid value: 0: spec.ratio in body should "
                 "be greater than 0");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"ratio\":0.7}", PFX
                 "spec.ratio: Invalid value: 0.7: spec.ratio in body should be a multiple "
                 "of 0.5");
  expect_invalid("{\"cronSpec\":\"* * * *\"}", PFX
                 "spec.cronSpec: Invalid value: \"* * * *\": spec.cronSpec in body should "
                 "match '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"image\":\"toolong\"}",
                 PFX "spec.image: Too long: may not be more than 5 bytes");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"image\":\"a\"}", PFX
                 "spec.image: Invalid value: \"a\": spec.image in body "
                 "should be at least 2 "
                 "chars long");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"mode\":\"c\"}",
                 PFX "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"mode\":null}", PFX
                 "spec.mode: Invalid value: null: spec.mode in body must "
                 "be of type string: "
                 "\"null\"");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"port\":true}", PFX
                 "spec.port: Invalid value: true: spec.port in body must be of type "
                 "integer,string: \"boolean\"");
}
END_TEST

START_TEST(test_schema_validate_collections)
{
  expect_invalid("{}", PFX "spec.cronSpec: Required value");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"tags\":[\"a\",\"b\",\"c\"]}",
                 PFX "spec.tags: Too many: 3: must have at most 2 items");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"tags\":[]}", PFX
                 "spec.tags: Invalid value: []: spec.tags in body should have at least 1 "
                 "items");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"tags\":[\"a\",\"a\"]}",
                 PFX "spec.tags[1]: Duplicate value: \"a\"");
  expect_invalid(
      "{\"cronSpec\":\"* * * * "
      "*\",\"ports\":[{\"name\":\"a\"},{\"name\":\"a\"}]}",
      PFX "spec.ports[1]: Duplicate value: {\"name\":\"a\"}");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"ports\":[{\"port\":1}]}",
                 PFX "spec.ports[0].name: Required value");
  expect_invalid(
      "{\"cronSpec\":\"* * * * "
      "*\",\"ports\":[{\"name\":\"a\",\"port\":\"x\"}]}",
      PFX
      "spec.ports[0].port: Invalid value: \"x\": "
      "spec.ports[0].port in body must "
      "be of type integer: \"string\"");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"labels\":{\"a\":1}}", PFX
                 "spec.labels.a: Invalid value: 1: spec.labels.a in body must be of type "
                 "string: \"integer\"");
  expect_invalid("{\"cronSpec\":\"* * * * *\",\"template\":{\"kind\":\"Pod\"}}",
                 PFX "spec.template.apiVersion: Required value: must not be empty");
  int n = 0;
  char *m = validate_spec("{\"replicas\":15,\"image\":\"x\"}", &n);
  ck_assert_int_eq(n, 3);
  ck_assert_ptr_nonnull(strstr(m, "is invalid: ["));
  free(m);
}
END_TEST

START_TEST(test_schema_process_pipeline)
{
  json_object *crd = NULL;
  json_object *s = crontab_schema(&crd);
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala_schema_ctx_t ctx = {"stable.example.com", "v1", "CronTab", NULL, KUALA_FV_STRICT, NULL};
  /* Strict: unknown fields are a 400 naming each one. */
  json_object *obj =
      J("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"cronSpec\":\"* * * * *\","
        "\"foo\":1,\"bar\":2}}");
  ck_assert_int_eq(kuala__schema_process(obj, s, &ctx, &e), 400);
  ck_assert_str_eq(e.reason, "BadRequest");
  ck_assert_str_eq(e.message,
                   "CronTab in version \"v1\" cannot be handled as a CronTab: strict "
                   "decoding "
                   "error: unknown field \"spec.foo\", unknown field \"spec.bar\"");
  json_object_put(obj);
  /* Warn: dropped, one warning each, then defaulted. */
  ctx.fv = KUALA_FV_WARN;
  ctx.warnings = json_object_new_array();
  obj =
      J("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"cronSpec\":\"* * * * "
        "*\",\"foo\":1}}");
  ck_assert_int_eq(kuala__schema_process(obj, s, &ctx, &e), 0);
  expect_json(ctx.warnings, "[\"unknown field \\\"spec.foo\\\"\"]");
  expect_json(obj,
              "{\"metadata\":{\"name\":\"x\"},\"spec\":{\"cronSpec\":\"* * * * *\","
              "\"replicas\":1}}");
  json_object_put(obj);
  json_object_put(ctx.warnings);
  ctx.warnings = NULL;
  /* Ignore + invalid: the exact 422 of spec §7. */
  ctx.fv = KUALA_FV_IGNORE;
  obj = J("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"replicas\":15,\"junk\":1}}");
  ck_assert_int_eq(kuala__schema_process(obj, s, &ctx, &e), 422);
  json_object *st = kuala__apierr_status(&e);
  expect_json(st,
              "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
              "\"Failure\","
              "\"message\":\"CronTab.stable.example.com \\\"x\\\" is invalid: "
              "[spec.replicas: "
              "Invalid value: 15: spec.replicas in body should be less than or equal "
              "to 10, "
              "spec.cronSpec: Required "
              "value]\",\"reason\":\"Invalid\",\"details\":{\"name\":"
              "\"x\",\"group\":\"stable.example.com\",\"kind\":\"CronTab\",\"causes\":["
              "{\"reason\":\"FieldValueInvalid\",\"message\":\"Invalid value: 15: "
              "spec.replicas "
              "in body should be less than or equal to "
              "10\",\"field\":\"spec.replicas\"},"
              "{\"reason\":\"FieldValueRequired\",\"message\":\"Required "
              "value\",\"field\":"
              "\"spec.cronSpec\"}]},\"code\":422}");
  json_object_put(st);
  json_object_put(obj);
  /* No schema: nothing changes. */
  obj = J("{\"spec\":{\"anything\":1}}");
  ck_assert_int_eq(kuala__schema_process(obj, NULL, &ctx, &e), 0);
  expect_json(obj, "{\"spec\":{\"anything\":1}}");
  json_object_put(obj);
  kuala__apierr_clear(&e);
  json_object_put(crd);
}
END_TEST

START_TEST(test_schema_malformed_schemas_do_not_crash)
{
  /* Schemas a CRD check would refuse must still be safe to run against. */
  const char *schemas[] = {
      "{\"type\":\"object\",\"properties\":5,\"required\":[1,null,\"a\"]}",
      "{\"type\":\"object\",\"properties\":{\"a\":7,\"b\":{\"type\":\"array\",\"items\":[1]}}}",
      "{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"x-kubernetes-list-type\":"
      "\"map\",\"x-kubernetes-list-map-keys\":[null,3],\"items\":{\"type\":\"object\"}}}}",
      "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\",\"enum\":5,"
      "\"minimum\":\"x\",\"pattern\":\"(unclosed\",\"maxLength\":-1}}",
      "{\"type\":\"weird\",\"properties\":{\"a\":{\"default\":null,\"nullable\":\"yes\"}}}",
      "[]",
  };
  const char *objs[] = {"{\"a\":{\"b\":[1,{\"c\":null}]},\"l\":[{\"x\":1},{\"x\":1}],\"b\":[1]}",
                        "{\"a\":null,\"z\":\"q\"}"};
  for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++) {
    json_object *s = J(schemas[i]);
    for (size_t j = 0; j < sizeof objs / sizeof objs[0]; j++) {
      json_object *o = J(objs[j]);
      kuala_apierr_t e = KUALA_APIERR_INIT;
      kuala_schema_ctx_t ctx = {"g.io", "v1", "K", "n", KUALA_FV_WARN, NULL};
      int rc = kuala__schema_process(o, s, &ctx, &e);
      ck_assert_msg(rc == 0 || rc == 400 || rc == 422, "schema %zu obj %zu: %d", i, j, rc);
      kuala__apierr_clear(&e);
      json_object_put(o);
    }
    /* As a CRD: refused with a 422, never a crash. */
    char crd[1024];
    snprintf(crd, sizeof crd,
             "{\"metadata\":{\"name\":\"ks.g.io\"},\"spec\":{\"group\":\"g.io\",\"scope\":"
             "\"Cluster\",\"names\":{\"plural\":\"ks\",\"kind\":\"K\"},\"versions\":[{\"name\":"
             "\"v1\",\"served\":true,\"storage\":true,\"schema\":{\"openAPIV3Schema\":%s},"
             "\"additionalPrinterColumns\":[5,{\"name\":1}]}]}}",
             schemas[i]);
    json_object *c = J(crd);
    kuala__schema_crd_default(c);
    kuala_apierr_t e = KUALA_APIERR_INIT;
    ck_assert_int_eq(kuala__schema_crd_validate(c, &e), 422);
    kuala__apierr_clear(&e);
    json_object_put(c);
    json_object_put(s);
  }
  /* CRDs that are not even objects where they should be. */
  const char *crds[] = {"{}", "{\"spec\":5}", "{\"spec\":{\"names\":[],\"versions\":{}}}", "[]"};
  for (size_t i = 0; i < sizeof crds / sizeof crds[0]; i++) {
    json_object *c = J(crds[i]);
    kuala__schema_crd_default(c);
    kuala_apierr_t e = KUALA_APIERR_INIT;
    ck_assert_int_eq(kuala__schema_crd_validate(c, &e), 422);
    kuala__apierr_clear(&e);
    json_object_put(c);
  }
}
END_TEST

START_TEST(test_schema_validate_combinators)
{
  json_object *s =
      J("{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\","
        "\"properties\":{\"a\":{\"type\":\"integer\",\"anyOf\":[{\"minimum\":10},"
        "{\"maximum\":0}]},\"b\":{\"type\":\"string\",\"oneOf\":[{\"pattern\":\"^x\"},"
        "{\"pattern\":\"y$\"}]},\"c\":{\"type\":\"string\",\"not\":{\"enum\":[\"bad\"]}},"
        "\"d\":{\"type\":\"integer\",\"allOf\":[{\"minimum\":1},{\"maximum\":3}]}}}}}");
  struct {
    const char *obj;
    int errors;
    const char *needle;
  } cases[] = {
      {"{\"spec\":{\"a\":11,\"b\":\"xa\",\"c\":\"ok\",\"d\":2}}", 0, NULL},
      {"{\"spec\":{\"a\":5}}", 1, "spec.a in body must validate at least one schema (anyOf)"},
      {"{\"spec\":{\"b\":\"xy\"}}", 1,
       "spec.b in body must validate one and only one schema (oneOf)"},
      {"{\"spec\":{\"b\":\"zz\"}}", 1, "must validate one and only one schema (oneOf)"},
      {"{\"spec\":{\"c\":\"bad\"}}", 1, "spec.c in body must not validate the schema (not)"},
      {"{\"spec\":{\"d\":7}}", 1, "spec.d in body should be less than or equal to 3"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_object *o = J(cases[i].obj);
    kuala_apierr_t e = KUALA_APIERR_INIT;
    int n = kuala__schema_validate(o, s, &e);
    ck_assert_msg(n == cases[i].errors, "%s: %d errors", cases[i].obj, n);
    if (cases[i].needle) {
      kuala__apierr_invalid(&e, "K", "g.io", "x");
      ck_assert_msg(strstr(e.message, cases[i].needle) != NULL, "%s", e.message);
    }
    kuala__apierr_clear(&e);
    json_object_put(o);
  }
  json_object_put(s);
}
END_TEST

START_TEST(test_schema_validate_formats)
{
  json_object *s =
      J("{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\","
        "\"properties\":{\"when\":{\"type\":\"string\",\"format\":\"date-time\"},"
        "\"day\":{\"type\":\"string\",\"format\":\"date\"},\"id\":{\"type\":"
        "\"string\",\"format\":\"uuid\"},\"ip\":{\"type\":\"string\",\"format\":"
        "\"ipv4\"},\"ip6\":{\"type\":\"string\",\"format\":\"ipv6\"},\"blob\":{"
        "\"type\":\"string\",\"format\":\"byte\"},\"other\":{\"type\":\"string\","
        "\"format\":\"whatever\"}}}}}");
  struct {
    const char *obj;
    int errors;
  } cases[] = {
      {"{\"spec\":{\"when\":\"2025-03-01T10:00:00Z\",\"day\":\"2025-03-01\",\"id\":"
       "\"0b6f5b0e-1111-2222-3333-444455556666\",\"ip\":\"10.0.0.1\",\"ip6\":\"::1\","
       "\"blob\":\"AAEC/w==\",\"other\":\"x\"}}",
       0},
      {"{\"spec\":{\"when\":\"2025-03-01T10:00:00.123+02:00\"}}", 0},
      {"{\"spec\":{\"when\":\"yesterday\"}}", 1},
      {"{\"spec\":{\"day\":\"2025-13-01\"}}", 1},
      {"{\"spec\":{\"id\":\"not-a-uuid\"}}", 1},
      {"{\"spec\":{\"ip\":\"10.0.0.256\",\"ip6\":\"1.2.3.4\"}}", 2},
      {"{\"spec\":{\"blob\":\"abc\"}}", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_object *o = J(cases[i].obj);
    kuala_apierr_t e = KUALA_APIERR_INIT;
    int n = kuala__schema_validate(o, s, &e);
    ck_assert_msg(n == cases[i].errors, "%s: %d errors", cases[i].obj, n);
    kuala__apierr_clear(&e);
    json_object_put(o);
  }
  json_object *o = J("{\"spec\":{\"when\":\"yesterday\"}}");
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala__schema_validate(o, s, &e);
  kuala__apierr_invalid(&e, "K", "g.io", "x");
  ck_assert_str_eq(e.message,
                   "K.g.io \"x\" is invalid: spec.when: Invalid value: \"yesterday\": "
                   "spec.when in body must be of type date-time: \"yesterday\"");
  kuala__apierr_clear(&e);
  json_object_put(o);
  json_object_put(s);
}
END_TEST

static Suite *schema_suite(void)
{
  Suite *s = suite_create("schema");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_schema_field_validation_param);
  tcase_add_test(tc, test_schema_crd_defaults_and_valid_crd);
  tcase_add_test(tc, test_schema_crd_rejections);
  tcase_add_test(tc, test_schema_prune_drops_unknown_fields);
  tcase_add_test(tc, test_schema_defaulting);
  tcase_add_test(tc, test_schema_validate_types_and_bounds);
  tcase_add_test(tc, test_schema_validate_collections);
  tcase_add_test(tc, test_schema_process_pipeline);
  tcase_add_test(tc, test_schema_malformed_schemas_do_not_crash);
  tcase_add_test(tc, test_schema_validate_combinators);
  tcase_add_test(tc, test_schema_validate_formats);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(schema_suite());
}
