/*
 * Unit tests for apiserver/openapi: the /openapi/v3 index and documents
 * kubectl inspects, JSONPath for printer columns, and Tables.
 */
#include <check.h>

#include "kuala_test.h"
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "kuala/alloc.h"
#include "kuala/json.h"
#include "openapi.h"

static json_object *J(const char *s)
{
  json_object *o = NULL;
  char msg[128];
  ck_assert_msg(kuala__json_parse(&o, s, strlen(s), 64, msg, sizeof msg) == 0, "bad JSON %s", s);
  return o;
}

static void expect_json(json_object *got, const char *want)
{
  json_object *w = J(want);
  ck_assert_msg(kuala__json_equal(got, w), "got %s, want %s", kuala_json_compact(got, NULL), want);
  json_object_put(w);
}

static kuala_openapi_res_t RES[] = {
    {"", "v1", "configmaps", "ConfigMap", 1, NULL},
    {"", "v1", "namespaces", "Namespace", 0, NULL},
    {"apps", "v1", "deployments", "Deployment", 1, NULL},
    {"stable.example.com", "v1", "crontabs", "CronTab", 1, NULL},
};
#define NRES (sizeof RES / sizeof RES[0])

START_TEST(test_openapi_index_lists_each_group_version_once)
{
  json_object *idx = kuala__openapi_index(RES, NRES);
  json_object *paths = kuala__json_get(idx, "paths");
  ck_assert_int_eq(json_object_object_length(paths), 3);
  json_object *core = kuala__json_get(paths, "api/v1");
  const char *url = kuala__json_get_str(core, "serverRelativeURL");
  ck_assert_ptr_nonnull(url);
  ck_assert_int_eq(strncmp(url, "/openapi/v3/api/v1?hash=", 24), 0);
  char *h = kuala__openapi_gv_hash(RES, NRES, "api/v1");
  ck_assert_str_eq(url + 24, h);
  kuala_free(h);
  ck_assert_ptr_nonnull(kuala__json_get(paths, "apis/stable.example.com/v1"));
  ck_assert_ptr_nonnull(kuala__json_get(paths, "apis/apps/v1"));
  json_object_put(idx);
  ck_assert_ptr_null(kuala__openapi_gv_hash(RES, NRES, "apis/nope/v1"));
}
END_TEST

/* What cli-runtime's query-param verifier checks: a patch operation with the
 * GVK and fieldValidation. */
static int supports_field_validation(json_object *doc, const char *group, const char *version,
                                     const char *kind)
{
  json_object *paths = kuala__json_get(doc, "paths");
  json_object_object_foreach(paths, path, item)
  {
    (void)path;
    json_object *patch = kuala__json_get(item, "patch");
    json_object *gvk = kuala__json_get(patch, "x-kubernetes-group-version-kind");
    if (!gvk || strcmp(kuala__json_get_str(gvk, "group"), group) != 0 ||
        strcmp(kuala__json_get_str(gvk, "version"), version) != 0 ||
        strcmp(kuala__json_get_str(gvk, "kind"), kind) != 0) {
      continue;
    }
    json_object *params = kuala__json_get(patch, "parameters");
    for (size_t i = 0; i < json_object_array_length(params); i++) {
      const char *name = kuala__json_get_str(json_object_array_get_idx(params, i), "name");
      if (name && strcmp(name, "fieldValidation") == 0) {
        return 1;
      }
    }
  }
  return 0;
}

START_TEST(test_openapi_gv_doc_supports_field_validation)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *doc = NULL;
  ck_assert_int_eq(kuala__openapi_gv_doc(&doc, RES, NRES, "api/v1", &e), 0);
  ck_assert_str_eq(kuala__json_get_str(doc, "openapi"), "3.0.0");
  ck_assert(supports_field_validation(doc, "", "v1", "ConfigMap"));
  ck_assert(supports_field_validation(doc, "", "v1", "Namespace"));
  ck_assert(!supports_field_validation(doc, "apps", "v1", "Deployment"));
  json_object *paths = kuala__json_get(doc, "paths");
  ck_assert_ptr_nonnull(kuala__json_get(paths, "/api/v1/namespaces/{namespace}/configmaps/{name}"));
  ck_assert_ptr_nonnull(kuala__json_get(paths, "/api/v1/namespaces/{name}"));
  /* SMP is never offered in the requestBody (spec §1.5). */
  json_object *content = kuala_json_get(paths, "/api/v1/namespaces/{namespace}/configmaps/{name}",
                                        "patch", "requestBody", "content", NULL);
  ck_assert_ptr_nonnull(content);
  ck_assert_ptr_nonnull(kuala__json_get(content, "application/apply-patch+yaml"));
  ck_assert_ptr_null(kuala__json_get(content, "application/strategic-merge-patch+json"));
  json_object_put(doc);
  /* Query strings and slashes are tolerated; unknown group versions are 404. */
  ck_assert_int_eq(kuala__openapi_gv_doc(&doc, RES, NRES, "/apis/apps/v1?hash=X", &e), 0);
  ck_assert(supports_field_validation(doc, "apps", "v1", "Deployment"));
  json_object_put(doc);
  ck_assert_int_eq(kuala__openapi_gv_doc(&doc, RES, NRES, "apis/apps/v2", &e), 404);
  ck_assert_str_eq(e.reason, "NotFound");
  ck_assert_ptr_null(doc);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_openapi_crd_schema_changes_the_hash)
{
  json_object *schema = J("{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\"}}}");
  kuala_openapi_res_t res[] = {{"stable.example.com", "v1", "crontabs", "CronTab", 1, NULL}};
  char *h1 = kuala__openapi_gv_hash(res, 1, "apis/stable.example.com/v1");
  res[0].schema = schema;
  char *h2 = kuala__openapi_gv_hash(res, 1, "apis/stable.example.com/v1");
  ck_assert_str_ne(h1, h2);
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *doc = NULL;
  ck_assert_int_eq(kuala__openapi_gv_doc(&doc, res, 1, "apis/stable.example.com/v1", &e), 0);
  json_object *comp =
      kuala_json_get(doc, "components", "schemas", "com.example.stable.v1.CronTab", NULL);
  ck_assert_ptr_nonnull(comp);
  ck_assert_str_eq(kuala_json_path_str(comp, "properties.spec.type"), "object");
  ck_assert(supports_field_validation(doc, "stable.example.com", "v1", "CronTab"));
  json_object_put(doc);
  kuala_free(h1);
  kuala_free(h2);
  json_object_put(schema);
}
END_TEST

START_TEST(test_openapi_accept_and_include)
{
  ck_assert(
      kuala__openapi_accepts_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/"
                                   "json;as=Table;v=v1beta1;g=meta."
                                   "k8s.io,application/json"));
  ck_assert(kuala__openapi_accepts_table("application/json; as=Table; g=meta.k8s.io; v=v1"));
  ck_assert(!kuala__openapi_accepts_table("application/json, */*;q=0.8"));
  ck_assert(!kuala__openapi_accepts_table("application/json;as=Table;g=other.io"));
  ck_assert(!kuala__openapi_accepts_table(NULL));
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala_table_include_t inc;
  ck_assert_int_eq(kuala__openapi_table_include(&inc, NULL, &e), 0);
  ck_assert_int_eq(inc, KUALA_TABLE_OBJ_METADATA);
  ck_assert_int_eq(kuala__openapi_table_include(&inc, "Object", &e), 0);
  ck_assert_int_eq(inc, KUALA_TABLE_OBJ_OBJECT);
  ck_assert_int_eq(kuala__openapi_table_include(&inc, "None", &e), 0);
  ck_assert_int_eq(inc, KUALA_TABLE_OBJ_NONE);
  ck_assert_int_eq(kuala__openapi_table_include(&inc, "All", &e), 400);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_openapi_jsonpath_subset)
{
  json_object *o =
      J("{\"spec\":{\"replicas\":3,\"list\":[{\"a\":1},{\"a\":2}]},"
        "\"metadata\":{\"labels\":{"
        "\"app.kubernetes.io/"
        "name\":\"web\"}},\"status\":{\"conditions\":[{\"type\":\"Ready\","
        "\"status\":\"True\"},{\"type\":\"Synced\",\"status\":\"False\"}]}}");
  expect_json(kuala__openapi_jsonpath(o, ".spec.replicas"), "3");
  expect_json(kuala__openapi_jsonpath(o, ".spec.list[1].a"), "2");
  expect_json(kuala__openapi_jsonpath(o, ".spec.list[-1].a"), "2");
  expect_json(kuala__openapi_jsonpath(o, "{.spec.list[0]}"), "{\"a\":1}");
  expect_json(kuala__openapi_jsonpath(o, ".metadata.labels['app.kubernetes.io/name']"), "\"web\"");
  expect_json(kuala__openapi_jsonpath(o, ".status.conditions[?(@.type==\"Synced\")].status"),
              "\"False\"");
  ck_assert_ptr_null(kuala__openapi_jsonpath(o, ".status.conditions[?(@.type==\"X\")].status"));
  ck_assert_ptr_null(kuala__openapi_jsonpath(o, ".spec.list[5]"));
  ck_assert_ptr_null(kuala__openapi_jsonpath(o, ".spec.nope"));
  ck_assert_ptr_null(kuala__openapi_jsonpath(o, "spec"));
  ck_assert_ptr_null(kuala__openapi_jsonpath(o, ".spec.list[x]"));
  json_object_put(o);
}
END_TEST

START_TEST(test_openapi_tables)
{
  /* 2025-03-01T10:00:00Z = 1740823200 */
  time_t now = 1740823200 + 6;
  json_object *list =
      J("{\"kind\":\"CronTabList\",\"metadata\":{"
        "\"resourceVersion\":\"812\",\"continue\":\"abc\","
        "\"remainingItemCount\":4},\"items\":[{\"metadata\":{"
        "\"name\":\"my-new-cron-object\","
        "\"namespace\":\"default\",\"resourceVersion\":\"811\","
        "\"creationTimestamp\":"
        "\"2025-03-01T10:00:00Z\"},\"spec\":{\"replicas\":2,"
        "\"cronSpec\":\"* * * * *\"}}]}");
  /* A custom resource without columns: Name + Age, PartialObjectMetadata rows.
   */
  json_object *t = kuala__openapi_table(list, NULL, 1, KUALA_TABLE_OBJ_METADATA, 1, now);
  ck_assert_str_eq(kuala__json_get_str(t, "kind"), "Table");
  ck_assert_str_eq(kuala__json_get_str(t, "apiVersion"), "meta.k8s.io/v1");
  expect_json(kuala__json_get(t, "metadata"),
              "{\"resourceVersion\":\"812\",\"continue\":\"abc\","
              "\"remainingItemCount\":4}");
  json_object *defs = kuala__json_get(t, "columnDefinitions");
  ck_assert_int_eq(json_object_array_length(defs), 2);
  ck_assert_str_eq(kuala__json_get_str(json_object_array_get_idx(defs, 1), "name"), "Age");
  json_object *row = json_object_array_get_idx(kuala__json_get(t, "rows"), 0);
  expect_json(kuala__json_get(row, "cells"), "[\"my-new-cron-object\",\"6s\"]");
  ck_assert_str_eq(kuala_json_path_str(row, "object.kind"), "PartialObjectMetadata");
  ck_assert_str_eq(kuala_json_path_str(row, "object.metadata.resourceVersion"), "811");
  ck_assert_ptr_null(kuala_json_path(row, "object.spec"));
  json_object_put(t);
  /* Printer columns, full objects, no column definitions (later watch events).
   */
  json_object *cols =
      J("[{\"name\":\"Replicas\",\"type\":\"integer\","
        "\"jsonPath\":\".spec.replicas\"},"
        "{\"name\":\"Spec\",\"type\":\"string\",\"jsonPath\":"
        "\".spec.cronSpec\",\"priority\":1},"
        "{\"name\":\"Missing\",\"type\":\"string\","
        "\"jsonPath\":\".status.phase\"},"
        "{\"name\":\"Created\",\"type\":\"date\",\"jsonPath\":"
        "\".metadata.creationTimestamp\"}]");
  t = kuala__openapi_table(list, cols, 1, KUALA_TABLE_OBJ_OBJECT, 0, now + 3600 * 50);
  ck_assert_ptr_null(kuala__json_get(t, "columnDefinitions"));
  row = json_object_array_get_idx(kuala__json_get(t, "rows"), 0);
  expect_json(kuala__json_get(row, "cells"),
              "[\"my-new-cron-object\",2,\"* * * * *\",null,\"2d2h\"]");
  ck_assert_int_eq(json_object_get_int(kuala_json_path(row, "object.spec.replicas")), 2);
  json_object_put(t);
  t = kuala__openapi_table(list, cols, 1, KUALA_TABLE_OBJ_NONE, 1, now);
  defs = kuala__json_get(t, "columnDefinitions");
  ck_assert_int_eq(json_object_array_length(defs), 5);
  ck_assert_int_eq(
      json_object_get_int(kuala__json_get(json_object_array_get_idx(defs, 2), "priority")), 1);
  row = json_object_array_get_idx(kuala__json_get(t, "rows"), 0);
  ck_assert_ptr_null(kuala__json_get(row, "object"));
  json_object_put(t);
  /* A built-in single object: Name + Created At in RFC 3339. */
  json_object *cm = json_object_array_get_idx(kuala__json_get(list, "items"), 0);
  t = kuala__openapi_table(cm, NULL, 0, KUALA_TABLE_OBJ_METADATA, 1, now);
  defs = kuala__json_get(t, "columnDefinitions");
  ck_assert_str_eq(kuala__json_get_str(json_object_array_get_idx(defs, 1), "name"), "Created At");
  row = json_object_array_get_idx(kuala__json_get(t, "rows"), 0);
  expect_json(kuala__json_get(row, "cells"), "[\"my-new-cron-object\",\"2025-03-01T10:00:00Z\"]");
  expect_json(kuala__json_get(t, "metadata"), "{\"resourceVersion\":\"811\"}");
  json_object_put(t);
  json_object_put(cols);
  json_object_put(list);
}
END_TEST

START_TEST(test_openapi_jsonpath_garbage)
{
  json_object *o = J("{\"a\":[{\"b\":1}],\"c\":{\"d\":\"e\"}}");
  const char *bad[] = {
      "",      ".",          "[",   ".a[",    ".a[0",     ".a[?(@.b==1",
      "[?()]", ".a[?(@==)]", "{}",  "{",      ".a['x",    ".a[99999999999999999999]",
      "..c",   ".c.d.e",     "$.a", ".a[-5]", ".a[?(x)]", NULL};
  for (size_t i = 0; bad[i]; i++) {
    /* Anything goes as long as it returns (NULL or a borrowed node). */
    (void)kuala__openapi_jsonpath(o, bad[i]);
  }
  ck_assert_ptr_null(kuala__openapi_jsonpath(o, NULL));
  ck_assert_ptr_null(kuala__openapi_jsonpath(o, ".a[?(@.b==2)]"));
  expect_json(kuala__openapi_jsonpath(o, ".a[?(@.b==1)].b"), "1");
  /* Tables of odd lists still render a row per item. */
  json_object *list = J("{\"items\":[5,null,{\"metadata\":7}],\"metadata\":[]}");
  json_object *t = kuala__openapi_table(list, NULL, 1, KUALA_TABLE_OBJ_METADATA, 1, 0);
  ck_assert_int_eq(json_object_array_length(kuala__json_get(t, "rows")), 3);
  json_object_put(t);
  json_object_put(list);
  json_object_put(o);
}
END_TEST

START_TEST(test_openapi_builtin_printers)
{
  time_t now = 1740823200 + 300; /* creation + 5m */
  json_object *list =
      J("{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":"
        "\"9\"},\"items\":[{\"metadata\":{\"name\":\"a\",\"creationTimestamp\":"
        "\"2025-03-01T10:00:00Z\"},\"data\":{\"x\":\"1\",\"y\":\"2\"},\"binaryData\":{\"z\":"
        "\"AA==\"}}]}");
  json_object *t = kuala__openapi_table(list, NULL, 0, KUALA_TABLE_OBJ_METADATA, 1, now);
  json_object *defs = kuala__json_get(t, "columnDefinitions");
  ck_assert_int_eq(json_object_array_length(defs), 3);
  ck_assert_str_eq(kuala__json_get_str(json_object_array_get_idx(defs, 1), "name"), "Data");
  expect_json(
      kuala_json_get(json_object_array_get_idx(kuala__json_get(t, "rows"), 0), "cells", NULL),
      "[\"a\",3,\"5m\"]");
  json_object_put(t);
  json_object_put(list);

  json_object *dep =
      J("{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"web\","
        "\"creationTimestamp\":\"2025-03-01T10:00:00Z\"},\"spec\":{\"replicas\":3,\"selector\":{"
        "\"matchLabels\":{\"app\":\"web\"}},\"template\":{\"spec\":{\"containers\":[{\"name\":"
        "\"app\",\"image\":\"nginx:1\"},{\"name\":\"side\",\"image\":\"busybox\"}]}}},"
        "\"status\":{\"readyReplicas\":2,\"updatedReplicas\":3,\"availableReplicas\":2}}");
  t = kuala__openapi_table(dep, NULL, 0, KUALA_TABLE_OBJ_NONE, 1, now);
  expect_json(
      kuala_json_get(json_object_array_get_idx(kuala__json_get(t, "rows"), 0), "cells", NULL),
      "[\"web\",\"2/3\",3,2,\"5m\",\"app,side\",\"nginx:1,busybox\",\"app=web\"]");
  defs = kuala__json_get(t, "columnDefinitions");
  ck_assert_int_eq(
      json_object_get_int(kuala__json_get(json_object_array_get_idx(defs, 5), "priority")), 1);
  json_object_put(t);
  json_object_put(dep);

  json_object *svc =
      J("{\"kind\":\"Service\",\"metadata\":{\"name\":\"s\",\"creationTimestamp\":"
        "\"2025-03-01T10:00:00Z\"},\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.0.0.1\","
        "\"ports\":[{\"port\":80,\"nodePort\":30080,\"protocol\":\"TCP\"},{\"port\":53,"
        "\"protocol\":\"UDP\"}]}}");
  t = kuala__openapi_table(svc, NULL, 0, KUALA_TABLE_OBJ_NONE, 1, now);
  expect_json(
      kuala_json_get(json_object_array_get_idx(kuala__json_get(t, "rows"), 0), "cells", NULL),
      "[\"s\",\"NodePort\",\"10.0.0.1\",\"<none>\",\"80:30080/TCP,53/UDP\",\"5m\","
      "\"<none>\"]");
  json_object_put(t);
  json_object_put(svc);

  /* Events lead with Last Seen; Name is a wide column. */
  json_object *ev =
      J("{\"kind\":\"Event\",\"metadata\":{\"name\":\"e1\"},\"lastTimestamp\":"
        "\"2025-03-01T10:00:00Z\",\"type\":\"Normal\",\"reason\":\"Synced\",\"involvedObject\":{"
        "\"kind\":\"ConfigMap\",\"name\":\"a\"},\"message\":\"done\"}");
  t = kuala__openapi_table(ev, NULL, 0, KUALA_TABLE_OBJ_NONE, 1, now);
  defs = kuala__json_get(t, "columnDefinitions");
  ck_assert_str_eq(kuala__json_get_str(json_object_array_get_idx(defs, 0), "name"), "Last Seen");
  expect_json(
      kuala_json_get(json_object_array_get_idx(kuala__json_get(t, "rows"), 0), "cells", NULL),
      "[\"5m\",\"Normal\",\"Synced\",\"configmap/a\",\"done\",\"e1\"]");
  json_object_put(t);
  json_object_put(ev);

  /* Kinds without a printer keep the generic columns. */
  json_object *role =
      J("{\"kind\":\"Role\",\"metadata\":{\"name\":\"r\",\"creationTimestamp\":"
        "\"2025-03-01T10:00:00Z\"}}");
  t = kuala__openapi_table(role, NULL, 0, KUALA_TABLE_OBJ_NONE, 1, now);
  ck_assert_str_eq(
      kuala__json_get_str(json_object_array_get_idx(kuala__json_get(t, "columnDefinitions"), 1),
                          "name"),
      "Created At");
  json_object_put(t);
  json_object_put(role);
}
END_TEST

static Suite *openapi_suite(void)
{
  Suite *s = suite_create("openapi");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_openapi_index_lists_each_group_version_once);
  tcase_add_test(tc, test_openapi_gv_doc_supports_field_validation);
  tcase_add_test(tc, test_openapi_crd_schema_changes_the_hash);
  tcase_add_test(tc, test_openapi_accept_and_include);
  tcase_add_test(tc, test_openapi_jsonpath_subset);
  tcase_add_test(tc, test_openapi_tables);
  tcase_add_test(tc, test_openapi_jsonpath_garbage);
  tcase_add_test(tc, test_openapi_builtin_printers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(openapi_suite());
}
