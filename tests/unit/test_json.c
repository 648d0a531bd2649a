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
  ck_assert_str_eq(err, "unexpected end of JSON input at offset 5");
  ck_assert_int_eq(kuala_json_parse(&o, "{} x", 4, err, sizeof err), KUALA_EBADMSG);
  ck_assert_str_eq(err, "data after the top-level value at offset 3");
  ck_assert_int_eq(kuala_json_parse(&o, "5", 1, err, sizeof err), 0);
  ck_assert_int_eq(json_object_get_int(o), 5);
  json_object_put(o);
  ck_assert_int_eq(kuala_json_parse(&o, "{bad}", 5, err, sizeof err), KUALA_EBADMSG);
  ck_assert_int_eq(kuala_json_parse(&o, "", 0, err, sizeof err), KUALA_EBADMSG);
}
END_TEST

static char *nested(size_t depth)
{
  char *s = malloc(2 * depth + 1);
  memset(s, '[', depth);
  memset(s + depth, ']', depth);
  s[2 * depth] = '\0';
  return s;
}

/* Issue 14 item 3: the API server accepts objects nested 10000 deep; a
 * watch event or a list adds up to two levels. Deeper is refused with a
 * reason, without recursion. */
START_TEST(test_json_depth_is_what_the_api_server_accepts)
{
  json_object *o;
  char err[128];
  char *ok = nested(KUALA_JSON_MAX_DEPTH + 2);
  ck_assert_int_eq(kuala_json_parse(&o, ok, strlen(ok), err, sizeof err), 0);
  json_object_put(o);
  free(ok);
  ok = nested(58); /* the depth of the object in the report */
  ck_assert_int_eq(kuala_json_parse(&o, ok, strlen(ok), err, sizeof err), 0);
  json_object_put(o);
  free(ok);
  char *deep = nested(KUALA_JSON_MAX_DEPTH + 3);
  ck_assert_int_eq(kuala_json_parse(&o, deep, strlen(deep), err, sizeof err), KUALA_EBADMSG);
  ck_assert_ptr_nonnull(strstr(err, "nesting deeper than 10002"));
  free(deep);
  /* A million brackets: refused quickly, no stack overflow. */
  deep = nested(1000000);
  ck_assert_int_eq(kuala_json_validate(deep, strlen(deep), 1000000, err, sizeof err),
                   KUALA_EBADMSG);
  free(deep);
}
END_TEST

/* Issue 14 item 7: strict RFC 8259. Every one of these was accepted by
 * json-c (strict mode included) or by the watch path. */
START_TEST(test_json_strict_rfc8259)
{
  static const char *const bad[] = {"[1,2,]",
                                    "{\"a\":1,}",
                                    "[0088]",
                                    "[01]",
                                    "['a']",
                                    "{'a':1}",
                                    "[1 /*c*/]",
                                    "[1 //c\n]",
                                    "# c\n[1]",
                                    "[TRUE]",
                                    "[True]",
                                    "[NaN]",
                                    "[Infinity]",
                                    "[-Infinity]",
                                    "[nan]",
                                    "[1.]",
                                    "[.5]",
                                    "[+1]",
                                    "[0x10]",
                                    "[1e]",
                                    "[1e+]",
                                    "[-]",
                                    "[\"a\tb\"]",
                                    "[\"a\nb\"]",
                                    "[\"\\x\"]",
                                    "[\"\\u12\"]",
                                    "[\"\\u12g4\"]",
                                    "{\"a\" 1}",
                                    "{a:1}",
                                    "[1 2]",
                                    "[1,,2]",
                                    "[,1]",
                                    "{,}",
                                    "{\"a\":1 \"b\":2}",
                                    "[nul]",
                                    "[truee]",
                                    "[\"a\"",
                                    "\"a",
                                    "",
                                    "  ",
                                    "[1]]",
                                    "[1] [2]",
                                    "\xef\xbb\xbf[1]",
                                    "[\v1]",
                                    "[\f1]",
                                    "[\"\x01\"]",
                                    NULL};
  char err[128];
  for (size_t i = 0; bad[i]; i++) {
    json_object *o = (json_object *)1;
    int rc = kuala_json_parse(&o, bad[i], strlen(bad[i]), err, sizeof err);
    ck_assert_msg(rc == KUALA_EBADMSG, "accepted: %s", bad[i]);
    ck_assert_ptr_null(o);
    ck_assert_msg(strstr(err, " at offset ") != NULL, "%s: %s", bad[i], err);
  }
  /* NUL bytes, inside and outside strings. */
  ck_assert_int_eq(kuala_json_validate("[\"a\0b\"]", 7, 8, err, sizeof err), KUALA_EBADMSG);
  ck_assert_int_eq(kuala_json_validate("[1,\0 2]", 7, 8, err, sizeof err), KUALA_EBADMSG);
  ck_assert_int_eq(kuala_json_validate("[1]\0", 4, 8, err, sizeof err), KUALA_EBADMSG);
  static const char *const good[] = {"0",
                                     "-0",
                                     "1.5e-3",
                                     "1E+10",
                                     "-12.0",
                                     "\"\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\"",
                                     " {\"a\" : [ true , false , null ] } \r\n",
                                     "{}",
                                     "[]",
                                     "[[],{}]",
                                     "\"\xc3\xa9\"",
                                     "12345678901234567890123",
                                     NULL};
  for (size_t i = 0; good[i]; i++) {
    json_object *o = NULL;
    ck_assert_msg(kuala_json_parse(&o, good[i], strlen(good[i]), err, sizeof err) == 0, "%s: %s",
                  good[i], err);
    json_object_put(o);
  }
}
END_TEST

/* Issue 14 item 4: a failed parse left a UTF-16 high surrogate pending in
 * the reused tokener, and the next document's \u00e9 came out wrong. */
START_TEST(test_json_failed_parse_does_not_corrupt_the_next)
{
  const char *b = "{\"s\":\"caf\\u00e9\"}";
  json_object *alone = NULL, *after = NULL, *o = NULL;
  ck_assert_int_eq(kuala_json_parse(&alone, b, strlen(b), NULL, 0), 0);
  static const char *const a[] = {"\"\\ud83d\\u\"",      "[\"\\ud83d", "{\"\\ud83d\\u00",
                                  "[\"\\ud83d\\u00e9\"", "[1,",        NULL};
  for (size_t i = 0; a[i]; i++) {
    kuala_json_parse(&o, a[i], strlen(a[i]), NULL, 0);
    json_object_put(o);
    ck_assert_int_eq(kuala_json_parse(&after, b, strlen(b), NULL, 0), 0);
    ck_assert_msg(json_object_equal(alone, after), "after %s: %s", a[i],
                  json_object_to_json_string(after));
    ck_assert_str_eq(kuala_json_path_str(after, "s"), "caf\xc3\xa9");
    json_object_put(after);
  }
  json_object_put(alone);
}
END_TEST

START_TEST(test_json_member_count_sees_duplicates)
{
  const char *dup = "{\"type\":\"ADDED\",\"object\":{\"a\":[1,{\"b\":2}]},\"obj\\u0065ct\":{}}";
  json_object *o;
  ck_assert_int_eq(kuala_json_parse(&o, dup, strlen(dup), NULL, 0), 0);
  ck_assert_uint_eq(kuala_json_member_count(dup, strlen(dup)), 3);
  ck_assert_int_eq(json_object_object_length(o), 2);
  json_object_put(o);
  ck_assert_uint_eq(kuala_json_member_count("{}", 2), 0);
  ck_assert_uint_eq(kuala_json_member_count(" {\"a,\":\"}\"}", 11), 1);
  ck_assert_uint_eq(kuala_json_member_count("[1,2]", 5), 0);
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
  tcase_add_test(tc, test_json_depth_is_what_the_api_server_accepts);
  tcase_add_test(tc, test_json_strict_rfc8259);
  tcase_add_test(tc, test_json_failed_parse_does_not_corrupt_the_next);
  tcase_add_test(tc, test_json_member_count_sees_duplicates);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
