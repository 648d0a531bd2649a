/*
 * Unit tests for the json-c helpers (core/json.c).
 */
#include <check.h>

#include "kuala_test.h"
#include <stdlib.h>
#include <string.h>

#include "kuala/error.h"
#include "kuala/json.h"

START_TEST(test_json_parse_and_errors)
{
  json_object *o;
  char err[128];
  const char *doc = "{\"a\":{\"b\":\"c/d\"}}  \n";
  ck_assert_int_eq(kuala_json_parse(&o, doc, strlen(doc), err, sizeof err), 0);
  ck_assert_str_eq(kuala_json_compact(o, NULL), "{\"a\":{\"b\":\"c/d\"}}");
  json_object_put(o);

  ck_assert_int_eq(kuala_json_parse(&o, "{\"a\":", 5, err, sizeof err), KUALA_EBADMSG);
  ck_assert_ptr_null(o);
  ck_assert_str_eq(err, "unexpected end of JSON input");
  ck_assert_int_eq(kuala_json_parse(&o, "{} x", 4, err, sizeof err), KUALA_EBADMSG);
  ck_assert_ptr_nonnull(strstr(err, "unexpected character"));
  ck_assert_int_eq(kuala_json_parse(&o, "5", 1, err, sizeof err), 0);
  ck_assert_int_eq(json_object_get_int(o), 5);
  json_object_put(o);
  ck_assert_int_eq(kuala_json_parse(&o, "{bad}", 5, err, sizeof err), KUALA_EBADMSG);
  ck_assert_int_eq(kuala_json_parse(&o, "", 0, err, sizeof err), KUALA_EBADMSG);
  /* Nesting beyond the cap is refused rather than recursing without bound. */
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  ck_assert_int_eq(kuala_json_parse(&o, deep, 200, err, sizeof err), KUALA_EBADMSG);
}
END_TEST

START_TEST(test_json_paths)
{
  json_object *o = json_tokener_parse(
      "{\"metadata\":{\"name\":\"x\",\"labels\":{\"app.kubernetes.io/name\":\"web\"}},"
      "\"n\":1}");
  ck_assert_str_eq(kuala_json_path_str(o, "metadata.name"), "x");
  ck_assert_ptr_null(kuala_json_path_str(o, "metadata.nope"));
  ck_assert_ptr_null(kuala_json_path_str(o, "n.x"));
  ck_assert_ptr_null(kuala_json_path_str(o, "n"));
  json_object *v = kuala_json_get(o, "metadata", "labels", "app.kubernetes.io/name", NULL);
  ck_assert_str_eq(json_object_get_string(v), "web");
  ck_assert_ptr_null(kuala_json_get(o, "metadata", "x", "y", NULL));

  json_object *st = kuala_json_ensure_obj(o, "status");
  kuala_json_set_str(st, "phase", "Active");
  ck_assert_str_eq(kuala_json_path_str(o, "status.phase"), "Active");
  ck_assert_ptr_eq(kuala_json_ensure_obj(o, "status"), st);

  json_object *c = kuala_json_copy(o);
  ck_assert_int_eq(kuala_json_equal(o, c), 1);
  kuala_json_set_str(kuala_json_ensure_obj(c, "status"), "phase", "Gone");
  ck_assert_int_eq(kuala_json_equal(o, c), 0);
  json_object_put(c);
  json_object_put(o);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("json");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_json_parse_and_errors);
  tcase_add_test(tc, test_json_paths);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
