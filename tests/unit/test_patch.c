/*
 * Unit tests for apiserver/patch: content types, body decoding (JSON and
 * YAML), RFC 6902 JSON patch, RFC 7386 merge patch, strategic merge patch.
 */
#include <check.h>

#include "kuala_test.h"
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "kuala/json.h"
#include "patch.h"

static json_object *J(const char *s)
{
  json_object *o = NULL;
  char msg[128];
  ck_assert_msg(kuala__json_parse(&o, s, strlen(s), 64, msg, sizeof msg) == 0, "bad test JSON %s",
                s);
  return o;
}

/* Assert that `got` equals the JSON text `want` (key order ignored), then free
 * `got`. */
static void expect_json(json_object *got, const char *want)
{
  json_object *w = J(want);
  ck_assert_msg(kuala__json_equal(got, w), "got %s, want %s", kuala_json_compact(got, NULL), want);
  json_object_put(w);
  json_object_put(got);
}

START_TEST(test_patch_content_types)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala_patch_type_t t;
  ck_assert_int_eq(kuala__patch_type(&t, "application/json-patch+json", 0, &e), 0);
  ck_assert_int_eq(t, KUALA_PATCH_JSON);
  ck_assert_int_eq(kuala__patch_type(&t, "application/merge-patch+json; charset=utf-8", 1, &e), 0);
  ck_assert_int_eq(t, KUALA_PATCH_MERGE);
  ck_assert_int_eq(kuala__patch_type(&t, "application/strategic-merge-patch+json", 0, &e), 0);
  ck_assert_int_eq(t, KUALA_PATCH_STRATEGIC);
  ck_assert_int_eq(kuala__patch_type(&t, "Application/Apply-Patch+YAML", 1, &e), 0);
  ck_assert_int_eq(t, KUALA_PATCH_APPLY);
  /* SMP on a custom resource is refused with the exact upstream message. */
  ck_assert_int_eq(kuala__patch_type(&t, "application/strategic-merge-patch+json", 1, &e), 415);
  ck_assert_str_eq(e.reason, "UnsupportedMediaType");
  ck_assert_str_eq(e.message,
                   "the body of the request was in an unknown format - accepted media types "
                   "include: application/json-patch+json, application/merge-patch+json, "
                   "application/apply-patch+yaml");
  ck_assert_int_eq(kuala__patch_type(&t, "application/json", 0, &e), 415);
  ck_assert_ptr_nonnull(strstr(e.message, "application/strategic-merge-patch+json, "));
  ck_assert_int_eq(kuala__patch_type(&t, NULL, 0, &e), 415);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_patch_decode_rejects_malformed_bodies)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *p = NULL;
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_MERGE, "{\"a\":", 5, &e), 400);
  ck_assert_ptr_nonnull(strstr(e.message, "error decoding patch"));
  /* A merge-style body sent as a JSON patch is a 400 (client-node default). */
  const char *merge = "{\"metadata\":{\"labels\":{\"a\":\"b\"}}}";
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_JSON, merge, strlen(merge), &e), 400);
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_JSON, "[1]", 3, &e), 400);
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_MERGE, "[]", 2, &e), 400);
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_MERGE, "{} x", 4, &e), 400);
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_MERGE, "", 0, &e), 400);
  ck_assert_ptr_null(p);
  /* More than 10000 operations: 413. */
  size_t n = 10001;
  char *big = malloc(n * 3 + 3);
  size_t len = 0;
  big[len++] = '[';
  for (size_t i = 0; i < n; i++) {
    memcpy(big + len, i ? ",{}" : "{}", i ? 3 : 2);
    len += i ? 3 : 2;
  }
  big[len++] = ']';
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_JSON, big, len, &e), 413);
  free(big);
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_JSON, "[{}]", 4, &e), 0);
  json_object_put(p);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_patch_yaml_apply_body)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *p = NULL;
  const char *y =
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  "
      "labels: {team: \"007\"}\n"
      "data:\n  n: \"1\"\n  b: 'yes'\nspec:\n  replicas: 3\n  "
      "ratio: 0.5\n  on: true\n"
      "  flag: off\n  none: ~\n  text: |\n    two\n    lines\n  "
      "list: [1, x, 2.5]\n";
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_APPLY, y, strlen(y), &e), 0);
  expect_json(p,
              "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
              "\"a\","
              "\"labels\":{\"team\":\"007\"}},\"data\":{\"n\":\"1\",\"b\":\"yes\"},"
              "\"spec\":{"
              "\"replicas\":3,\"ratio\":0.5,\"on\":true,\"flag\":false,\"none\":null,"
              "\"text\":\"two\\nlines\\n\",\"list\":[1,\"x\",2.5]}}");
  /* JSON is accepted as is. */
  const char *js = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"data\":{\"x\":\"1\"}}";
  ck_assert_int_eq(kuala__patch_decode(&p, KUALA_PATCH_APPLY, js, strlen(js), &e), 0);
  expect_json(p, js);
  /* Syntax errors, several documents, scalars and non-string keys are 400s. */
  const char *bad[] = {"a: [1, 2\n", "a: 1\n---\nb: 2\n", "just a string\n", "? [a]\n: 1\n",
                       "a: *nope\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(kuala__patch_decode(&p, KUALA_PATCH_APPLY, bad[i], strlen(bad[i]), &e) == 400,
                  "accepted %s", bad[i]);
    ck_assert_ptr_null(p);
  }
  kuala__apierr_clear(&e);
}
END_TEST

static int run_json_patch(json_object **out, const char *doc, const char *ops, kuala_apierr_t *e)
{
  json_object *d = J(doc), *o = J(ops);
  int rc = kuala__patch_json(out, d, o, e);
  /* The input is never modified. */
  json_object *again = J(doc);
  ck_assert(kuala__json_equal(d, again));
  json_object_put(again);
  json_object_put(d);
  json_object_put(o);
  return rc;
}

START_TEST(test_patch_json_operations)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *r = NULL;
  const char *doc = "{\"a\":{\"b\":[1,2,3]},\"c\":\"x\",\"d/e\":1,\"f~g\":2}";
  ck_assert_int_eq(run_json_patch(&r, doc,
                                  "[{\"op\":\"add\",\"path\":\"/a/b/1\",\"value\":9},"
                                  "{\"op\":\"add\",\"path\":\"/a/b/-\",\"value\":4},"
                                  "{\"op\":\"remove\",\"path\":\"/c\"},"
                                  "{\"op\":\"replace\",\"path\":\"/d~1e\",\"value\":{\"z\":null}},"
                                  "{\"op\":\"copy\",\"from\":\"/f~0g\",\"path\":\"/h\"},"
                                  "{\"op\":\"move\",\"from\":\"/a/b/0\",\"path\":\"/i\"},"
                                  "{\"op\":\"test\",\"path\":\"/h\",\"value\":2.0}]",
                                  &e),
                   0);
  expect_json(r,
              "{\"a\":{\"b\":[9,2,3,4]},\"d/"
              "e\":{\"z\":null},\"f~g\":2,\"h\":2,\"i\":1}");
  /* Replacing the root. */
  ck_assert_int_eq(run_json_patch(&r, doc, "[{\"op\":\"replace\",\"path\":\"\",\"value\":[]}]", &e),
                   0);
  expect_json(r, "[]");
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_patch_json_failures_are_422)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *r = NULL;
  const char *doc = "{\"metadata\":{\"resourceVersion\":\"12\",\"finalizers\":[\"a\"]}}";
  /* kopf's optimistic finalizer update: a stale test fails with 422 Invalid. */
  ck_assert_int_eq(run_json_patch(&r, doc,
                                  "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\","
                                  "\"value\":\"11\"},{\"op\":\"remove\",\"path\":"
                                  "\"/metadata/finalizers/0\"}]",
                                  &e),
                   422);
  ck_assert_str_eq(e.reason, "Invalid");
  ck_assert_str_eq(e.message, "testing value /metadata/resourceVersion failed: test failed");
  ck_assert_ptr_null(r);
  const char *fails[] = {
      "[{\"op\":\"remove\",\"path\":\"/nope\"}]",
      "[{\"op\":\"replace\",\"path\":\"/metadata/nope\",\"value\":1}]",
      "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]",
      "[{\"op\":\"add\",\"path\":\"/metadata/finalizers/5\",\"value\":\"x\"}]",
      "[{\"op\":\"remove\",\"path\":\"/metadata/finalizers/1\"}]",
      "[{\"op\":\"replace\",\"path\":\"/metadata/finalizers/"
      "-\",\"value\":\"x\"}]",
      "[{\"op\":\"move\",\"from\":\"/metadata\",\"path\":\"/metadata/x\"}]",
      "[{\"op\":\"copy\",\"from\":\"/zz\",\"path\":\"/y\"}]",
      "[{\"op\":\"test\",\"path\":\"/nope\",\"value\":null}]",
      "[{\"op\":\"add\",\"path\":\"/metadata/finalizers/01\",\"value\":\"x\"}]",
  };
  for (size_t i = 0; i < sizeof fails / sizeof fails[0]; i++) {
    ck_assert_msg(run_json_patch(&r, doc, fails[i], &e) == 422, "%s: %d", fails[i], e.code);
  }
  /* Malformed operations are 400. */
  const char *malformed[] = {"[{\"op\":\"jump\",\"path\":\"/a\"}]", "[{\"op\":\"add\"}]",
                             "[{\"op\":\"add\",\"path\":\"/a\"}]",
                             "[{\"op\":\"move\",\"path\":\"/a\"}]", "[{\"path\":\"/a\"}]"};
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
    ck_assert_msg(run_json_patch(&r, doc, malformed[i], &e) == 400, "%s", malformed[i]);
  }
  kuala__apierr_clear(&e);
}
END_TEST

static json_object *merge(const char *doc, const char *patch)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *d = J(doc), *p = J(patch), *r = NULL;
  ck_assert_int_eq(kuala__patch_merge(&r, d, p, &e), 0);
  json_object_put(d);
  json_object_put(p);
  return r;
}

START_TEST(test_patch_merge_rfc7386)
{
  /* The examples of RFC 7386 appendix A. */
  expect_json(merge("{\"a\":\"b\"}", "{\"a\":\"c\"}"), "{\"a\":\"c\"}");
  expect_json(merge("{\"a\":\"b\"}", "{\"b\":\"c\"}"), "{\"a\":\"b\",\"b\":\"c\"}");
  expect_json(merge("{\"a\":\"b\"}", "{\"a\":null}"), "{}");
  expect_json(merge("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}"), "{\"b\":\"c\"}");
  expect_json(merge("{\"a\":[\"b\"]}", "{\"a\":\"c\"}"), "{\"a\":\"c\"}");
  expect_json(merge("{\"a\":\"c\"}", "{\"a\":[\"b\"]}"), "{\"a\":[\"b\"]}");
  expect_json(merge("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}"),
              "{\"a\":{\"b\":\"d\"}}");
  expect_json(merge("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}"), "{\"a\":[1]}");
  expect_json(merge("[\"a\",\"b\"]", "[\"c\",\"d\"]"), "[\"c\",\"d\"]");
  expect_json(merge("{\"a\":\"b\"}", "[\"c\"]"), "[\"c\"]");
  expect_json(merge("{\"e\":null}", "{\"a\":1}"), "{\"e\":null,\"a\":1}");
  expect_json(merge("[1,2]", "{\"a\":\"b\",\"c\":null}"), "{\"a\":\"b\"}");
  expect_json(merge("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}"), "{\"a\":{\"bb\":{}}}");
  /* Lists are replaced whole (finalizers included). */
  expect_json(merge("{\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}",
                    "{\"metadata\":{\"finalizers\":[\"c\"]}}"),
              "{\"metadata\":{\"finalizers\":[\"c\"]}}");
}
END_TEST

static json_object *smp(const char *kind, const char *group, const char *doc, const char *patch,
                        int want_rc)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *d = J(doc), *p = J(patch), *r = NULL;
  int rc = kuala__patch_strategic(&r, d, p, group, kind, &e);
  ck_assert_msg(rc == want_rc, "rc %d (%s)", rc, e.message ? e.message : "");
  json_object *again = J(doc);
  ck_assert(kuala__json_equal(d, again));
  json_object_put(again);
  json_object_put(d);
  json_object_put(p);
  kuala__apierr_clear(&e);
  return r;
}

START_TEST(test_patch_strategic_metadata_lists)
{
  const char *doc =
      "{\"metadata\":{\"finalizers\":[\"a\",\"b\"],\"labels\":{"
      "\"x\":\"1\",\"y\":\"2\"},"
      "\"ownerReferences\":[{\"uid\":\"u1\",\"name\":\"o1\"},{"
      "\"uid\":\"u2\",\"name\":\"o2\"}]},"
      "\"data\":{\"k\":\"v\"}}";
  /* Finalizers are a union; owner references merge by uid; null deletes. */
  expect_json(smp("ConfigMap", "", doc,
                  "{\"metadata\":{\"finalizers\":[\"b\",\"c\"],\"labels\":{\"y\":null},"
                  "\"ownerReferences\":[{\"uid\":\"u2\",\"name\":\"new\"},{\"uid\":"
                  "\"u3\","
                  "\"name\":\"o3\"}]}}",
                  0),
              "{\"metadata\":{\"finalizers\":[\"a\",\"b\",\"c\"],\"labels\":{\"x\":"
              "\"1\"},"
              "\"ownerReferences\":[{\"uid\":\"u1\",\"name\":\"o1\"},{\"uid\":\"u2\","
              "\"name\":"
              "\"new\"},{\"uid\":\"u3\",\"name\":\"o3\"}]},\"data\":{\"k\":\"v\"}}");
  /* $deleteFromPrimitiveList and $patch: delete on a list element. */
  expect_json(smp("ConfigMap", "", doc,
                  "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"a\"],"
                  "\"ownerReferences\":[{\"uid\":\"u1\",\"$patch\":\"delete\"}]}}",
                  0),
              "{\"metadata\":{\"finalizers\":[\"b\"],\"labels\":{\"x\":\"1\",\"y\":"
              "\"2\"},"
              "\"ownerReferences\":[{\"uid\":\"u2\",\"name\":\"o2\"}]},\"data\":{\"k\":"
              "\"v\"}}");
  /* $patch: replace on a map and on a list; $patch: delete on a map. */
  expect_json(smp("ConfigMap", "", doc,
                  "{\"metadata\":{\"labels\":{\"z\":\"3\",\"$patch\":\"replace\"},"
                  "\"finalizers\":[\"q\",{\"$patch\":\"replace\"}]},\"data\":{\"$"
                  "patch\":"
                  "\"delete\"}}",
                  0),
              "{\"metadata\":{\"finalizers\":[\"q\"],\"labels\":{\"z\":\"3\"},"
              "\"ownerReferences\":[{\"uid\":\"u1\",\"name\":\"o1\"},{\"uid\":\"u2\","
              "\"name\":"
              "\"o2\"}]}}");
  /* $retainKeys drops keys that are not listed. */
  expect_json(smp("ConfigMap", "", "{\"data\":{\"a\":\"1\",\"b\":\"2\"}}",
                  "{\"data\":{\"$retainKeys\":[\"b\",\"c\"],\"c\":\"3\"}}", 0),
              "{\"data\":{\"b\":\"2\",\"c\":\"3\"}}");
  /* Any other list is replaced. */
  expect_json(smp("ConfigMap", "", "{\"spec\":{\"l\":[1,2]}}", "{\"spec\":{\"l\":[3]}}", 0),
              "{\"spec\":{\"l\":[3]}}");
  /* Bad directives are 400. */
  json_object *r = smp("ConfigMap", "", doc, "{\"metadata\":{\"$patch\":\"explode\"}}", 400);
  ck_assert_ptr_null(r);
  r = smp("ConfigMap", "", doc, "{\"metadata\":{\"ownerReferences\":[{\"name\":\"no-uid\"}]}}",
          400);
  ck_assert_ptr_null(r);
  r = smp("ConfigMap", "", doc, "{\"$bogus\":1}", 400);
  ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_patch_strategic_pod_template_lists)
{
  const char *dep =
      "{\"spec\":{\"replicas\":1,\"template\":{\"spec\":{\"containers\":["
      "{\"name\":\"app\",\"image\":\"a:1\",\"env\":[{\"name\":\"A\",\"value\":"
      "\"1\"}],"
      "\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}]},"
      "{\"name\":\"side\",\"image\":\"s:1\"}],\"volumes\":[{\"name\":\"v1\","
      "\"emptyDir\":{}}]}}}}";
  expect_json(smp("Deployment", "apps", dep,
                  "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":"
                  "\"app\","
                  "\"image\":\"a:2\",\"env\":[{\"name\":\"B\",\"value\":\"2\"}],"
                  "\"ports\":[{"
                  "\"containerPort\":80,\"name\":\"http\"}]},{\"name\":\"side\",\"$"
                  "patch\":"
                  "\"delete\"}],\"volumes\":[{\"name\":\"v2\",\"emptyDir\":{}}]}}}}",
                  0),
              "{\"spec\":{\"replicas\":1,\"template\":{\"spec\":{\"containers\":["
              "{\"name\":\"app\",\"image\":\"a:2\",\"env\":[{\"name\":\"A\",\"value\":"
              "\"1\"},"
              "{\"name\":\"B\",\"value\":\"2\"}],\"ports\":[{\"containerPort\":80,"
              "\"protocol\":"
              "\"TCP\",\"name\":\"http\"}]}],\"volumes\":[{\"name\":\"v1\","
              "\"emptyDir\":{}},"
              "{\"name\":\"v2\",\"emptyDir\":{}}]}}}}");
  /* $setElementOrder reorders a merged list. */
  expect_json(smp("Deployment", "apps", dep,
                  "{\"spec\":{\"template\":{\"spec\":{\"$setElementOrder/"
                  "containers\":[{\"name\":"
                  "\"side\"},{\"name\":\"app\"}]}}}}",
                  0),
              "{\"spec\":{\"replicas\":1,\"template\":{\"spec\":{\"containers\":["
              "{\"name\":\"side\",\"image\":\"s:1\"},"
              "{\"name\":\"app\",\"image\":\"a:1\",\"env\":[{\"name\":\"A\",\"value\":"
              "\"1\"}],"
              "\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}]}],\"volumes\":[{"
              "\"name\":"
              "\"v1\",\"emptyDir\":{}}]}}}}");
  /* Service ports merge by port. */
  expect_json(smp("Service", "", "{\"spec\":{\"ports\":[{\"port\":80,\"name\":\"a\"}]}}",
                  "{\"spec\":{\"ports\":[{\"port\":443,\"name\":\"b\"}]}}", 0),
              "{\"spec\":{\"ports\":[{\"port\":80,\"name\":\"a\"},{\"port\":"
              "443,\"name\":\"b\"}]}}");
  /* The same list on a kind without a strategy is replaced. */
  expect_json(smp("ConfigMap", "", "{\"spec\":{\"ports\":[{\"port\":80}]}}",
                  "{\"spec\":{\"ports\":[{\"port\":443}]}}", 0),
              "{\"spec\":{\"ports\":[{\"port\":443}]}}");
}
END_TEST

START_TEST(test_patch_run_dispatch)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *d = J("{\"a\":1}"), *p = J("{\"a\":2}"), *r = NULL;
  ck_assert_int_eq(kuala__patch_run(&r, KUALA_PATCH_MERGE, d, p, "", "ConfigMap", &e), 0);
  expect_json(r, "{\"a\":2}");
  ck_assert_int_eq(kuala__patch_run(&r, KUALA_PATCH_STRATEGIC, d, p, "", "ConfigMap", &e), 0);
  expect_json(r, "{\"a\":2}");
  ck_assert_int_eq(kuala__patch_run(&r, KUALA_PATCH_APPLY, d, p, "", "ConfigMap", &e), 500);
  ck_assert_int_eq(kuala__patch_run(&r, KUALA_PATCH_JSON, d, p, "", "ConfigMap", &e), 400);
  json_object_put(d);
  json_object_put(p);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_patch_odd_inputs_are_answered)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *r = NULL;
  /* Deep nesting within the cap is fine; beyond it the body is refused. */
  char deep[4200];
  size_t n = 0;
  for (int i = 0; i < 600; i++) {
    deep[n++] = '[';
  }
  for (int i = 0; i < 600; i++) {
    deep[n++] = ']';
  }
  ck_assert_int_eq(kuala__patch_decode(&r, KUALA_PATCH_MERGE, deep, n, &e), 400);
  ck_assert_int_eq(kuala__patch_decode(&r, KUALA_PATCH_APPLY, deep, n, &e), 400);
  /* Pointer oddities: "~", "~2", empty tokens, non-containers. */
  const char *ops[] = {"[{\"op\":\"add\",\"path\":\"a\",\"value\":1}]",
                       "[{\"op\":\"add\",\"path\":\"/x~\",\"value\":1}]",
                       "[{\"op\":\"add\",\"path\":\"/s/t\",\"value\":1}]",
                       "[{\"op\":\"remove\",\"path\":\"\"}]",
                       "[{\"op\":\"move\",\"from\":\"/s\",\"path\":\"/s\"}]",
                       "[{\"op\":\"add\",\"path\":\"//\",\"value\":1}]",
                       "[{\"op\":\"copy\",\"from\":\"\",\"path\":\"/whole\"}]"};
  json_object *doc = J("{\"s\":\"str\",\"\":{}}");
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    json_object *p = J(ops[i]);
    int rc = kuala__patch_json(&r, doc, p, &e);
    ck_assert_msg(rc == 0 || rc == 400 || rc == 422, "%s: %d", ops[i], rc);
    json_object_put(r);
    r = NULL;
    json_object_put(p);
  }
  /* "/x~" is a literal key; "//" adds under the empty key; move onto itself is a no-op. */
  json_object *p =
      J("[{\"op\":\"add\",\"path\":\"//\",\"value\":1},{\"op\":\"move\","
        "\"from\":\"/s\",\"path\":\"/s\"}]");
  ck_assert_int_eq(kuala__patch_json(&r, doc, p, &e), 0);
  expect_json(r, "{\"s\":\"str\",\"\":{\"\":1}}");
  json_object_put(p);
  /* SMP with directives of the wrong shape. */
  const char *smps[] = {"{\"$setElementOrder/x\":5,\"x\":[1]}", "{\"$retainKeys\":5}",
                        "{\"$deleteFromPrimitiveList/x\":5}",
                        "{\"metadata\":{\"finalizers\":[{}]}}", "{\"$patch\":\"delete\"}"};
  for (size_t i = 0; i < sizeof smps / sizeof smps[0]; i++) {
    json_object *sp = J(smps[i]);
    json_object *res = NULL;
    int rc = kuala__patch_strategic(&res, doc, sp, "", "ConfigMap", &e);
    ck_assert_msg(rc == 0 || rc == 400, "%s: %d", smps[i], rc);
    json_object_put(res);
    json_object_put(sp);
  }
  json_object_put(doc);
  kuala__apierr_clear(&e);
}
END_TEST

static Suite *patch_suite(void)
{
  Suite *s = suite_create("patch");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_patch_content_types);
  tcase_add_test(tc, test_patch_decode_rejects_malformed_bodies);
  tcase_add_test(tc, test_patch_yaml_apply_body);
  tcase_add_test(tc, test_patch_json_operations);
  tcase_add_test(tc, test_patch_json_failures_are_422);
  tcase_add_test(tc, test_patch_merge_rfc7386);
  tcase_add_test(tc, test_patch_strategic_metadata_lists);
  tcase_add_test(tc, test_patch_strategic_pod_template_lists);
  tcase_add_test(tc, test_patch_run_dispatch);
  tcase_add_test(tc, test_patch_odd_inputs_are_answered);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(patch_suite());
}
