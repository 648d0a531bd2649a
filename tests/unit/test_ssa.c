/*
 * Unit tests for apiserver/ssa: server-side apply (create, conflicts,
 * force, removal, shared ownership, list types, status subresource) and
 * managedFields upkeep for non-apply writes.
 */
#include <check.h>

#include "kuala_test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "kuala/json.h"
#include "ssa.h"

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

#define AV "stable.example.com/v1"
#define T0 "2025-03-01T10:00:00Z"
#define T1 "2025-03-01T10:01:00Z"
#define T2 "2025-03-01T10:02:00Z"

static kuala_ssa_opts_t opts(const char *manager, const char *now)
{
  kuala_ssa_opts_t o = {0};
  o.manager = manager;
  o.api_version = AV;
  o.name = "a";
  o.now = now;
  return o;
}

/* Apply `body` as `manager`; returns the status code, result in *out. */
static int apply(json_object **out, json_object *live, const char *body, kuala_ssa_opts_t o,
                 kuala_apierr_t *e)
{
  json_object *b = J(body);
  kuala__apierr_clear(e);
  int rc = kuala__ssa_apply(out, live, b, &o, e);
  json_object_put(b);
  return rc;
}

static json_object *mf_entry(json_object *obj, const char *manager, const char *op)
{
  json_object *mf = kuala_json_path(obj, "metadata.managedFields");
  for (size_t i = 0; json_object_is_type(mf, json_type_array) && i < json_object_array_length(mf);
       i++) {
    json_object *e = json_object_array_get_idx(mf, i);
    if (strcmp(kuala__json_get_str(e, "manager"), manager) == 0 &&
        strcmp(kuala__json_get_str(e, "operation"), op) == 0) {
      return e;
    }
  }
  return NULL;
}

#define BODY1                                                         \
  "{\"apiVersion\":\"" AV                                             \
  "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":\"a\",\"labels\":{" \
  "\"team\":\"x\"}},\"spec\":{\"cronSpec\":\"* * * * *\",\"replicas\":1}}"

START_TEST(test_ssa_apply_creates_and_records_ownership)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *r = NULL;
  ck_assert_int_eq(apply(&r, NULL, BODY1, opts("ctl", T0), &e), 0);
  expect_json(r, "{\"apiVersion\":\"" AV
                 "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":\"a\","
                 "\"labels\":{\"team\":\"x\"},\"managedFields\":[{\"manager\":\"ctl\","
                 "\"operation\":\"Apply\",\"apiVersion\":\"" AV "\",\"time\":\"" T0
                 "\","
                 "\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{\"f:labels\":{"
                 "\"f:team\":{}}},\"f:spec\":{\"f:cronSpec\":{},\"f:replicas\":{}}}}]},"
                 "\"spec\":{\"cronSpec\":\"* * * * *\",\"replicas\":1}}");
  /* Applying the same body later changes nothing, not even the time (a no-op write). */
  json_object *r2 = NULL;
  ck_assert_int_eq(apply(&r2, r, BODY1, opts("ctl", T2), &e), 0);
  ck_assert(kuala__json_equal(r, r2));
  json_object_put(r2);
  /* A changed value refreshes the time. */
  const char *b2 = "{\"apiVersion\":\"" AV
                   "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":\"a\","
                   "\"labels\":{\"team\":\"x\"}},\"spec\":{\"cronSpec\":\"* * * * *\","
                   "\"replicas\":2}}";
  ck_assert_int_eq(apply(&r2, r, b2, opts("ctl", T2), &e), 0);
  ck_assert_str_eq(kuala__json_get_str(mf_entry(r2, "ctl", "Apply"), "time"), T2);
  json_object_put(r2);
  json_object_put(r);
}
END_TEST

START_TEST(test_ssa_apply_request_validation)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *r = NULL;
  ck_assert_int_eq(apply(&r, NULL, BODY1, opts(NULL, T0), &e), 422);
  ck_assert_str_eq(e.message,
                   "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is "
                   "required for apply patch");
  char longname[200];
  memset(longname, 'm', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  ck_assert_int_eq(apply(&r, NULL, BODY1, opts(longname, T0), &e), 422);
  ck_assert_int_eq(
      apply(&r, NULL,
            "{\"apiVersion\":\"stable.example.com/v2\",\"kind\":\"CronTab\",\"metadata\":{"
            "\"name\":\"a\"}}",
            opts("ctl", T0), &e),
      400);
  ck_assert_str_eq(e.message,
                   "Incorrect version specified in apply patch. Specified patch version: "
                   "stable.example.com/v2, expected: stable.example.com/v1");
  ck_assert_int_eq(apply(&r, NULL,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\",\"managedFields\":[]}}",
                         opts("ctl", T0), &e),
                   400);
  ck_assert_str_eq(e.message, "metadata.managedFields must be nil");
  ck_assert_int_eq(apply(&r, NULL,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"b\"}}",
                         opts("ctl", T0), &e),
                   400);
  ck_assert_int_eq(apply(&r, NULL, "{\"metadata\":{\"name\":\"a\"}}", opts("ctl", T0), &e), 400);
  ck_assert_ptr_null(r);
  kuala__apierr_clear(&e);
}
END_TEST

/* A live object: applied by ctl at T0, then replicas changed to 2 by a PUT from kubectl-edit. */
static json_object *edited_live(void)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *r = NULL;
  ck_assert_int_eq(apply(&r, NULL, BODY1, opts("ctl", T0), &e), 0);
  json_object *upd = kuala_json_copy(r);
  json_object_object_add(kuala_json_path(upd, "spec"), "replicas", json_object_new_int(2));
  kuala_ssa_opts_t o = opts("kubectl-edit", T1);
  ck_assert_int_eq(kuala__ssa_update(upd, r, &o, &e), 0);
  json_object_put(r);
  return upd;
}

START_TEST(test_ssa_update_moves_ownership)
{
  json_object *live = edited_live();
  json_object *ctl = mf_entry(live, "ctl", "Apply");
  json_object *edit = mf_entry(live, "kubectl-edit", "Update");
  ck_assert_ptr_nonnull(ctl);
  ck_assert_ptr_nonnull(edit);
  expect_json(kuala__json_get(ctl, "fieldsV1"),
              "{\"f:metadata\":{\"f:labels\":{\"f:team\":{}}},\"f:spec\":{\"f:cronSpec\":{}}}");
  expect_json(kuala__json_get(edit, "fieldsV1"), "{\"f:spec\":{\"f:replicas\":{}}}");
  ck_assert_str_eq(kuala__json_get_str(edit, "apiVersion"), AV);
  ck_assert_str_eq(kuala__json_get_str(edit, "time"), T1);
  /* Apply entries sort before Update entries. */
  json_object *mf = kuala_json_path(live, "metadata.managedFields");
  ck_assert_str_eq(kuala__json_get_str(json_object_array_get_idx(mf, 0), "operation"), "Apply");
  /* A no-op update leaves managedFields exactly as they were. */
  json_object *same = kuala_json_copy(live);
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala_ssa_opts_t o = opts("other", T2);
  ck_assert_int_eq(kuala__ssa_update(same, live, &o, &e), 0);
  ck_assert(kuala__json_equal(same, live));
  json_object_put(same);
  json_object_put(live);
}
END_TEST

START_TEST(test_ssa_apply_conflict_and_force)
{
  json_object *live = edited_live();
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *r = NULL;
  const char *b3 = "{\"apiVersion\":\"" AV
                   "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":\"a\","
                   "\"labels\":{\"team\":\"x\"}},\"spec\":{\"cronSpec\":\"* * * * *\","
                   "\"replicas\":3}}";
  ck_assert_int_eq(apply(&r, live, b3, opts("ctl", T2), &e), 409);
  ck_assert_ptr_null(r);
  json_object *st = kuala__apierr_status(&e);
  expect_json(st,
              "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
              "\"Failure\",\"message\":\"Apply failed with 1 conflict: conflict with "
              "\\\"kubectl-edit\\\" using stable.example.com/v1: .spec.replicas\",\"reason\":"
              "\"Conflict\",\"details\":{\"causes\":[{\"reason\":\"FieldManagerConflict\","
              "\"message\":\"conflict with \\\"kubectl-edit\\\" using stable.example.com/v1\","
              "\"field\":\".spec.replicas\"}]},\"code\":409}");
  json_object_put(st);
  /* The live value re-applied is no conflict: ownership becomes shared. */
  const char *b2 = "{\"apiVersion\":\"" AV
                   "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":\"a\","
                   "\"labels\":{\"team\":\"x\"}},\"spec\":{\"cronSpec\":\"* * * * *\","
                   "\"replicas\":2}}";
  ck_assert_int_eq(apply(&r, live, b2, opts("ctl", T2), &e), 0);
  expect_json(kuala__json_get(mf_entry(r, "ctl", "Apply"), "fieldsV1"),
              "{\"f:metadata\":{\"f:labels\":{\"f:team\":{}}},\"f:spec\":{\"f:cronSpec\":{},"
              "\"f:replicas\":{}}}");
  expect_json(kuala__json_get(mf_entry(r, "kubectl-edit", "Update"), "fieldsV1"),
              "{\"f:spec\":{\"f:replicas\":{}}}");
  json_object_put(r);
  /* force=true takes the field; the emptied Update entry disappears. */
  kuala_ssa_opts_t o = opts("ctl", T2);
  o.force = 1;
  ck_assert_int_eq(apply(&r, live, b3, o, &e), 0);
  ck_assert_int_eq(json_object_get_int(kuala_json_path(r, "spec.replicas")), 3);
  ck_assert_ptr_null(mf_entry(r, "kubectl-edit", "Update"));
  ck_assert_int_eq(json_object_array_length(kuala_json_path(r, "metadata.managedFields")), 1);
  json_object_put(r);
  json_object_put(live);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_ssa_apply_several_conflicts_message)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *a = NULL, *b = NULL, *r = NULL;
  ck_assert_int_eq(apply(&a, NULL,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"x\":1,\"y\":1}}",
                         opts("m2", T0), &e),
                   0);
  ck_assert_int_eq(apply(&b, a,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"z\":1}}",
                         opts("m1", T0), &e),
                   0);
  ck_assert_int_eq(apply(&r, b,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"x\":2,\"y\":2,\"z\":2}}",
                         opts("m3", T0), &e),
                   409);
  ck_assert_str_eq(e.message,
                   "Apply failed with 3 conflicts: conflicts with \"m1\":\n- .spec.z\n"
                   "conflicts with \"m2\":\n- .spec.x\n- .spec.y");
  ck_assert_int_eq(kuala__apierr_cause_count(&e), 3);
  json_object_put(a);
  json_object_put(b);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_ssa_apply_removes_fields_no_longer_applied)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *a = NULL, *b = NULL, *c = NULL, *d = NULL;
  const char *both = "{\"apiVersion\":\"" AV
                     "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":\"a\"}"
                     ",\"spec\":{\"x\":1,\"y\":1}}";
  const char *only_x = "{\"apiVersion\":\"" AV
                       "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                       "\"a\"},\"spec\":{\"x\":1}}";
  ck_assert_int_eq(apply(&a, NULL, both, opts("ctl", T0), &e), 0);
  ck_assert_int_eq(apply(&b, a, only_x, opts("ctl", T1), &e), 0);
  expect_json(kuala__json_get(b, "spec"), "{\"x\":1}");
  /* When another manager also applied y, it stays. */
  ck_assert_int_eq(apply(&c, a,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"y\":1}}",
                         opts("other", T1), &e),
                   0);
  ck_assert_int_eq(apply(&d, c, only_x, opts("ctl", T2), &e), 0);
  expect_json(kuala__json_get(d, "spec"), "{\"x\":1,\"y\":1}");
  expect_json(kuala__json_get(mf_entry(d, "other", "Apply"), "fieldsV1"),
              "{\"f:spec\":{\"f:y\":{}}}");
  json_object_put(a);
  json_object_put(b);
  json_object_put(c);
  json_object_put(d);
}
END_TEST

START_TEST(test_ssa_list_map_and_status_subresource)
{
  json_object *schema =
      J("{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\",\"properties\":{"
        "\"ports\":{\"type\":\"array\",\"x-kubernetes-list-type\":\"map\","
        "\"x-kubernetes-list-map-keys\":[\"name\"],\"items\":{\"type\":\"object\",\"properties\":{"
        "\"name\":{\"type\":\"string\"},\"port\":{\"type\":\"integer\"}}}},"
        "\"tags\":{\"type\":\"array\",\"x-kubernetes-list-type\":\"set\",\"items\":{\"type\":"
        "\"string\"}}}},\"status\":{\"type\":\"object\"}}}");
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *a = NULL, *b = NULL, *c = NULL, *d = NULL;
  kuala_ssa_opts_t o = opts("one", T0);
  o.schema = schema;
  o.status_subresource = 1;
  ck_assert_int_eq(apply(&a, NULL,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80}],\"tags\":["
                         "\"a\"]},\"status\":{\"phase\":\"ignored\"}}",
                         o, &e),
                   0);
  ck_assert_ptr_null(kuala__json_get(a, "status")); /* status belongs to /status */
  expect_json(kuala__json_get(mf_entry(a, "one", "Apply"), "fieldsV1"),
              "{\"f:spec\":{\"f:ports\":{\"k:{\\\"name\\\":\\\"http\\\"}\":{\".\":{},\"f:name\":{},"
              "\"f:port\":{}}},\"f:tags\":{\"v:\\\"a\\\"\":{}}}}");
  o.manager = "two";
  ck_assert_int_eq(apply(&b, a,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"ports\":[{\"name\":\"https\",\"port\":443}],\"tags\":["
                         "\"b\"]}}",
                         o, &e),
                   0);
  /* Granular lists: both managers' elements coexist. */
  expect_json(kuala__json_get(b, "spec"),
              "{\"ports\":[{\"name\":\"http\",\"port\":80},{\"name\":\"https\",\"port\":443}],"
              "\"tags\":[\"a\",\"b\"]}");
  /* A conflicting port value names the element path. */
  o.manager = "one";
  ck_assert_int_eq(apply(&c, b,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80},{\"name\":"
                         "\"https\",\"port\":8443}]}}",
                         o, &e),
                   409);
  ck_assert_str_eq(e.message,
                   "Apply failed with 1 conflict: conflict with \"two\": "
                   ".spec.ports[name=\"https\"].port");
  /* Dropping its own element removes it, the other manager's stays. */
  ck_assert_int_eq(apply(&c, b,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{}}",
                         o, &e),
                   0);
  expect_json(kuala__json_get(c, "spec"),
              "{\"ports\":[{\"name\":\"https\",\"port\":443}],\"tags\":[\"b\"]}");
  /* A /status apply owns only status, recorded with the subresource. */
  o.manager = "ctrl";
  o.subresource = "status";
  ck_assert_int_eq(apply(&d, c,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"tags\":[\"zzz\"]},\"status\":{\"phase\":\"Ready\"}}",
                         o, &e),
                   0);
  ck_assert_str_eq(kuala_json_path_str(d, "status.phase"), "Ready");
  expect_json(kuala__json_get(d, "spec"),
              "{\"ports\":[{\"name\":\"https\",\"port\":443}],\"tags\":[\"b\"]}");
  json_object *ent = mf_entry(d, "ctrl", "Apply");
  ck_assert_str_eq(kuala__json_get_str(ent, "subresource"), "status");
  expect_json(kuala__json_get(ent, "fieldsV1"), "{\"f:status\":{\"f:phase\":{}}}");
  json_object_put(a);
  json_object_put(b);
  json_object_put(c);
  json_object_put(d);
  json_object_put(schema);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_ssa_update_entries_reset_prune_and_cap)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  /* Create: every field, maps marked with "." (metadata excepted). */
  json_object *obj =
      J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\","
        "\"namespace\":\"d\",\"uid\":\"u\",\"labels\":{\"a\":\"1\"},"
        "\"ownerReferences\":[{\"uid\":\"o1\",\"kind\":\"X\"}]},\"data\":{\"k\":"
        "\"v\"}}");
  kuala_ssa_opts_t o = {0};
  o.manager = "kubectl-create";
  o.api_version = "v1";
  o.now = T0;
  ck_assert_int_eq(kuala__ssa_update(obj, NULL, &o, &e), 0);
  json_object *ent = mf_entry(obj, "kubectl-create", "Update");
  ck_assert_ptr_nonnull(ent);
  /* Serialized like upstream: "." first, then fields in order. */
  ck_assert_str_eq(kuala_json_compact(kuala__json_get(ent, "fieldsV1"), NULL),
                   "{\"f:data\":{\".\":{},\"f:k\":{}},\"f:metadata\":{\"f:labels\":{\".\":{},"
                   "\"f:a\":{}},\"f:ownerReferences\":{\".\":{},\"k:{\\\"uid\\\":\\\"o1\\\"}\":{"
                   "\".\":{},\"f:kind\":{},\"f:uid\":{}}}}}");
  expect_json(kuala__json_get(ent, "fieldsV1"),
              "{\"f:metadata\":{\"f:labels\":{\".\":{},\"f:a\":{}},\"f:ownerReferences\":{\".\":"
              "{},\"k:{\\\"uid\\\":\\\"o1\\\"}\":{\".\":{},\"f:kind\":{},\"f:uid\":{}}}},"
              "\"f:data\":{\".\":{},\"f:k\":{}}}");
  /* Removing a field drops it from every set. */
  json_object *next = kuala_json_copy(obj);
  json_object_object_del(kuala_json_path(next, "metadata"), "labels");
  o.manager = "someone";
  o.now = T1;
  ck_assert_int_eq(kuala__ssa_update(next, obj, &o, &e), 0);
  ent = mf_entry(next, "kubectl-create", "Update");
  ck_assert_ptr_null(kuala_json_path(kuala__json_get(ent, "fieldsV1"), "f:metadata.f:labels"));
  ck_assert_ptr_null(mf_entry(next, "someone", "Update")); /* removal alone owns nothing */
  /* managedFields: [{}] clears them; [] keeps the stored ones. */
  json_object *cleared = kuala_json_copy(next);
  json_object_object_add(kuala_json_path(cleared, "metadata"), "managedFields", J("[{}]"));
  ck_assert_int_eq(kuala__ssa_update(cleared, next, &o, &e), 0);
  ck_assert_ptr_null(kuala_json_path(cleared, "metadata.managedFields"));
  json_object *kept = kuala_json_copy(next);
  json_object_object_add(kuala_json_path(kept, "metadata"), "managedFields", J("[]"));
  ck_assert_int_eq(kuala__ssa_update(kept, next, &o, &e), 0);
  ck_assert(kuala__json_equal(kuala_json_path(kept, "metadata.managedFields"),
                              kuala_json_path(next, "metadata.managedFields")));
  /* More than 10 Update managers fold the oldest into ancient-changes. */
  json_object *cur = kuala_json_copy(next);
  for (int i = 0; i < 12; i++) {
    json_object *n2 = kuala_json_copy(cur);
    char key[16], mgr[16], now[32];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(mgr, sizeof mgr, "m%02d", i);
    snprintf(now, sizeof now, "2025-03-01T11:%02d:00Z", i);
    json_object_object_add(kuala_json_path(n2, "data"), key, json_object_new_string("v"));
    o.manager = mgr;
    o.now = now;
    ck_assert_int_eq(kuala__ssa_update(n2, cur, &o, &e), 0);
    json_object_put(cur);
    cur = n2;
  }
  json_object *mf = kuala_json_path(cur, "metadata.managedFields");
  ck_assert_int_eq(json_object_array_length(mf), 10);
  ck_assert_ptr_nonnull(mf_entry(cur, "ancient-changes", "Update"));
  ck_assert_ptr_nonnull(mf_entry(cur, "m11", "Update"));
  ck_assert_ptr_null(mf_entry(cur, "m00", "Update"));
  json_object_put(cur);
  json_object_put(kept);
  json_object_put(cleared);
  json_object_put(next);
  json_object_put(obj);
}
END_TEST

START_TEST(test_ssa_fieldset_strips_system_fields)
{
  json_object *obj =
      J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\","
        "\"namespace\":\"d\",\"uid\":\"u\",\"resourceVersion\":\"3\",\"generation\":"
        "1,\"creationTimestamp\":\"" T0
        "\",\"finalizers\":[\"x\"]},\"data\":{},"
        "\"list\":[1,2]}");
  json_object *fs = kuala__ssa_fieldset(obj, NULL);
  expect_json(fs,
              "{\"f:metadata\":{\"f:finalizers\":{\"v:\\\"x\\\"\":{}}},\"f:data\":{},"
              "\"f:list\":{}}");
  json_object_put(fs);
  json_object_put(obj);
}
END_TEST

START_TEST(test_ssa_atomic_map_is_replaced_whole)
{
  json_object *schema =
      J("{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\","
        "\"properties\":{\"sel\":{\"type\":\"object\",\"x-kubernetes-map-type\":"
        "\"atomic\",\"additionalProperties\":{\"type\":\"string\"}}}}}}");
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *a = NULL, *b = NULL;
  kuala_ssa_opts_t o = opts("one", T0);
  o.schema = schema;
  ck_assert_int_eq(apply(&a, NULL,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"sel\":{\"x\":\"1\",\"y\":\"2\"}}}",
                         o, &e),
                   0);
  expect_json(kuala__json_get(mf_entry(a, "one", "Apply"), "fieldsV1"),
              "{\"f:spec\":{\"f:sel\":{}}}");
  ck_assert_int_eq(apply(&b, a,
                         "{\"apiVersion\":\"" AV "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                         "\"a\"},\"spec\":{\"sel\":{\"z\":\"3\"}}}",
                         o, &e),
                   0);
  expect_json(kuala_json_path(b, "spec.sel"), "{\"z\":\"3\"}");
  json_object_put(a);
  json_object_put(b);
  json_object_put(schema);
}
END_TEST

START_TEST(test_ssa_builtin_lists_merge_by_key)
{
  /* Two managers each apply their own container of a Deployment: both stay. */
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *a = NULL, *b = NULL, *c = NULL;
  kuala_ssa_opts_t o = {0};
  o.manager = "one";
  o.api_version = "apps/v1";
  o.name = "d";
  o.now = T0;
  const char *head =
      "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{"
      "\"name\":\"d\"},\"spec\":{\"template\":{\"spec\":{\"containers\":[";
  char body[512];
  snprintf(body, sizeof body,
           "%s{\"name\":\"app\",\"image\":\"a:1\",\"ports\":[{"
           "\"containerPort\":80}]}]}}}}",
           head);
  ck_assert_int_eq(apply(&a, NULL, body, o, &e), 0);
  expect_json(kuala__json_get(mf_entry(a, "one", "Apply"), "fieldsV1"),
              "{\"f:spec\":{\"f:template\":{\"f:spec\":{\"f:containers\":{"
              "\"k:{\\\"name\\\":\\\"app\\\"}\":{\".\":{},\"f:name\":{},\"f:image\":{},"
              "\"f:ports\":{\"k:{\\\"containerPort\\\":80}\":{\".\":{},"
              "\"f:containerPort\":{}}}}}}}}}");
  o.manager = "two";
  snprintf(body, sizeof body, "%s{\"name\":\"side\",\"image\":\"s:1\"}]}}}}", head);
  ck_assert_int_eq(apply(&b, a, body, o, &e), 0);
  json_object *cs = kuala_json_path(b, "spec.template.spec.containers");
  ck_assert_int_eq(json_object_array_length(cs), 2);
  /* Changing the other manager's image conflicts on that element's field. */
  o.manager = "one";
  snprintf(body, sizeof body,
           "%s{\"name\":\"app\",\"image\":\"a:1\",\"ports\":[{"
           "\"containerPort\":80}]},{\"name\":\"side\",\"image\":\"s:2\"}]}}}}",
           head);
  ck_assert_int_eq(apply(&c, b, body, o, &e), 409);
  ck_assert_str_eq(e.message,
                   "Apply failed with 1 conflict: conflict with \"two\": "
                   ".spec.template.spec.containers[name=\"side\"].image");
  json_object_put(a);
  json_object_put(b);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_ssa_malformed_managed_fields_do_not_crash)
{
  const char *mfs[] = {
      "5",
      "[1,null,{}]",
      "[{\"manager\":\"x\",\"operation\":\"Apply\",\"fieldsV1\":{\"f:spec\":5}}]",
      "[{\"manager\":7,\"operation\":\"Update\",\"fieldsV1\":{\"k:notjson\":{},\"f:spec\":{"
      "\"f:x\":{\"v:[\":{}}}}}]",
      "[{\"manager\":\"m\",\"operation\":\"Update\",\"apiVersion\":\"" AV
      "\",\"fieldsV1\":{"
      "\"f:spec\":{\"f:x\":{},\"i:9\":{},\"k:{\\\"a\\\":1}\":{}}}}]",
  };
  for (size_t i = 0; i < sizeof mfs / sizeof mfs[0]; i++) {
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"" AV
             "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":\"a\","
             "\"managedFields\":%s},\"spec\":{\"x\":1,\"l\":[1]}}",
             mfs[i]);
    json_object *live = J(buf);
    kuala_apierr_t e = KUALA_APIERR_INIT;
    json_object *r = NULL;
    int rc = apply(&r, live,
                   "{\"apiVersion\":\"" AV
                   "\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
                   "\"a\"},\"spec\":{\"x\":2}}",
                   opts("ctl", T0), &e);
    ck_assert_msg(rc == 0 || rc == 409, "managedFields %zu: %d", i, rc);
    json_object_put(r);
    json_object *upd = kuala_json_copy(live);
    json_object_object_add(kuala_json_path(upd, "spec"), "x", json_object_new_int(3));
    kuala_ssa_opts_t o = opts("edit", T1);
    ck_assert_int_eq(kuala__ssa_update(upd, live, &o, &e), 0);
    ck_assert_ptr_nonnull(mf_entry(upd, "edit", "Update"));
    json_object_put(upd);
    json_object_put(live);
    kuala__apierr_clear(&e);
  }
}
END_TEST

static Suite *ssa_suite(void)
{
  Suite *s = suite_create("ssa");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_ssa_apply_creates_and_records_ownership);
  tcase_add_test(tc, test_ssa_apply_request_validation);
  tcase_add_test(tc, test_ssa_update_moves_ownership);
  tcase_add_test(tc, test_ssa_apply_conflict_and_force);
  tcase_add_test(tc, test_ssa_apply_several_conflicts_message);
  tcase_add_test(tc, test_ssa_apply_removes_fields_no_longer_applied);
  tcase_add_test(tc, test_ssa_list_map_and_status_subresource);
  tcase_add_test(tc, test_ssa_update_entries_reset_prune_and_cap);
  tcase_add_test(tc, test_ssa_fieldset_strips_system_fields);
  tcase_add_test(tc, test_ssa_builtin_lists_merge_by_key);
  tcase_add_test(tc, test_ssa_atomic_map_is_replaced_whole);
  tcase_add_test(tc, test_ssa_malformed_managed_fields_do_not_crash);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(ssa_suite());
}
