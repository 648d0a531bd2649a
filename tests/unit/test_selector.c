/*
 * Unit tests for label and field selectors (core/selector.c).
 */
#include <check.h>

#include "kuala_test.h"
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/error.h"
#include "kuala/selector.h"

static int match_kv(const char *text, const char *const *keys, const char *const *vals, size_t n)
{
  kuala_selector_t *sel;
  char err[256];
  int rc = kuala_selector_parse_labels(&sel, text, err, sizeof err);
  ck_assert_msg(rc == 0, "parse failed for '%s': %s", text, err);
  int m = kuala_selector_matches_kv(sel, keys, vals, n);
  kuala_selector_free(sel);
  return m;
}

START_TEST(test_selector_equality_and_existence)
{
  const char *k[] = {"env", "tier", "app.kubernetes.io/name"};
  const char *v[] = {"prod", "web", "demo"};
  ck_assert_int_eq(match_kv("", k, v, 3), 1);
  ck_assert_int_eq(match_kv("env=prod", k, v, 3), 1);
  ck_assert_int_eq(match_kv("env==prod", k, v, 3), 1);
  ck_assert_int_eq(match_kv("env=qa", k, v, 3), 0);
  ck_assert_int_eq(match_kv("env!=qa", k, v, 3), 1);
  ck_assert_int_eq(match_kv("env!=prod", k, v, 3), 0);
  /* != matches when the label is absent. */
  ck_assert_int_eq(match_kv("missing!=x", k, v, 3), 1);
  ck_assert_int_eq(match_kv("tier", k, v, 3), 1);
  ck_assert_int_eq(match_kv("!tier", k, v, 3), 0);
  ck_assert_int_eq(match_kv("!canary", k, v, 3), 1);
  ck_assert_int_eq(match_kv(" env = prod , tier ", k, v, 3), 1);
  ck_assert_int_eq(match_kv("app.kubernetes.io/name=demo,env=prod", k, v, 3), 1);
  ck_assert_int_eq(match_kv("app.kubernetes.io/name=demo,env=qa", k, v, 3), 0);
  /* An empty value selects labels whose value is empty, not absent ones. */
  const char *k2[] = {"e"};
  const char *v2[] = {""};
  ck_assert_int_eq(match_kv("e=", k2, v2, 1), 1);
  ck_assert_int_eq(match_kv("f=", k2, v2, 1), 0);
}
END_TEST

START_TEST(test_selector_set_based)
{
  const char *k[] = {"env", "n"};
  const char *v[] = {"qa", "7"};
  ck_assert_int_eq(match_kv("env in (prod,qa)", k, v, 2), 1);
  ck_assert_int_eq(match_kv("env in (prod)", k, v, 2), 0);
  ck_assert_int_eq(match_kv("env notin (prod)", k, v, 2), 1);
  ck_assert_int_eq(match_kv("env notin (prod, qa)", k, v, 2), 0);
  ck_assert_int_eq(match_kv("x notin (a)", k, v, 2), 1);
  ck_assert_int_eq(match_kv("x in (a)", k, v, 2), 0);
  ck_assert_int_eq(match_kv("env in (prod,qa),!canary,n", k, v, 2), 1);
  ck_assert_int_eq(match_kv("n>5", k, v, 2), 1);
  ck_assert_int_eq(match_kv("n>7", k, v, 2), 0);
  ck_assert_int_eq(match_kv("n<8", k, v, 2), 1);
  ck_assert_int_eq(match_kv("env>1", k, v, 2), 0); /* not an integer */
  /* "in" and "notin" are plain words in value position. */
  const char *k3[] = {"w"};
  const char *v3[] = {"in"};
  ck_assert_int_eq(match_kv("w=in", k3, v3, 1), 1);
}
END_TEST

START_TEST(test_selector_parse_errors)
{
  const char *bad[] = {"env in prod",  "env in (prod", "=x",    "env=prod=",      "!",   "a b",
                       "env in (a b)", "-bad=x",       "k=-v-", "UPPER.Prefix/x", "n>x", ",",
                       "env==,",       "env notin"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    kuala_selector_t *sel = (kuala_selector_t *)1;
    char err[256] = "";
    int rc = kuala_selector_parse_labels(&sel, bad[i], err, sizeof err);
    ck_assert_msg(rc == KUALA_EINVAL, "'%s' should not parse", bad[i]);
    ck_assert_ptr_null(sel);
    ck_assert_msg(strlen(err) > 0, "no message for '%s'", bad[i]);
  }
  kuala_selector_t *sel;
  char err[256];
  ck_assert_int_eq(kuala_selector_parse_labels(&sel, "env in prod", err, sizeof err), KUALA_EINVAL);
  ck_assert_str_eq(err, "unable to parse requirement: found 'prod', expected: '('");
  /* A long key name part is refused. */
  char longkey[80];
  memset(longkey, 'a', 70);
  longkey[70] = '\0';
  ck_assert_int_eq(kuala_selector_parse_labels(&sel, longkey, err, sizeof err), KUALA_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "invalid label key"));
}
END_TEST

START_TEST(test_selector_json_labels)
{
  json_object *labels = json_tokener_parse("{\"app\":\"web\",\"n\":3}");
  kuala_selector_t *sel;
  ck_assert_int_eq(kuala_selector_parse_labels(&sel, "app=web", NULL, 0), 0);
  ck_assert_int_eq(kuala_selector_matches_json(sel, labels), 1);
  ck_assert_int_eq(kuala_selector_matches_json(sel, NULL), 0);
  kuala_selector_free(sel);
  /* A non-string value counts as absent. */
  ck_assert_int_eq(kuala_selector_parse_labels(&sel, "!n", NULL, 0), 0);
  ck_assert_int_eq(kuala_selector_matches_json(sel, labels), 1);
  kuala_selector_free(sel);
  json_object_put(labels);
}
END_TEST

START_TEST(test_selector_fields)
{
  kuala_selector_t *sel;
  char err[256];
  ck_assert_int_eq(kuala_selector_parse_fields(&sel, "metadata.name=a\\,b,status.phase!=Active",
                                               err, sizeof err),
                   0);
  ck_assert_uint_eq(kuala_selector_count(sel), 2);
  const char *key;
  kuala_selector_op_t op;
  const char *const *vals;
  size_t nv;
  kuala_selector_req(sel, 0, &key, &op, &vals, &nv);
  ck_assert_str_eq(key, "metadata.name");
  ck_assert_int_eq(op, KUALA_SEL_EQ);
  ck_assert_str_eq(vals[0], "a,b");
  ck_assert_str_eq(kuala_selector_pinned(sel, "metadata.name"), "a,b");
  ck_assert_ptr_null(kuala_selector_pinned(sel, "status.phase"));
  const char *k[] = {"metadata.name", "status.phase"};
  const char *v1[] = {"a,b", "Terminating"};
  const char *v2[] = {"a,b", "Active"};
  ck_assert_int_eq(kuala_selector_matches_kv(sel, k, v1, 2), 1);
  ck_assert_int_eq(kuala_selector_matches_kv(sel, k, v2, 2), 0);
  char text[128];
  kuala_selector_format(sel, text, sizeof text);
  /* Issue 14: the value's escape was lost, and the text parsed back as
   * three terms. Values are escaped as written by k8s fields.EscapeValue. */
  ck_assert_str_eq(text, "metadata.name=a\\,b,status.phase!=Active");
  kuala_selector_t *again;
  ck_assert_int_eq(kuala_selector_parse_fields(&again, text, err, sizeof err), 0);
  ck_assert_uint_eq(kuala_selector_count(again), 2);
  kuala_selector_req(again, 0, &key, &op, &vals, &nv);
  ck_assert_str_eq(vals[0], "a,b");
  kuala_selector_free(again);
  kuala_selector_free(sel);
  ck_assert_int_eq(
      kuala_selector_parse_fields(&sel, "metadata.name=foo\\,bar\\=\\\\x", err, sizeof err), 0);
  kuala_selector_format(sel, text, sizeof text);
  ck_assert_str_eq(text, "metadata.name=foo\\,bar\\=\\\\x");
  kuala_selector_free(sel);

  ck_assert_int_eq(kuala_selector_parse_fields(&sel, "a==x=y", err, sizeof err), KUALA_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "unescaped"));
  ck_assert_int_eq(kuala_selector_parse_fields(&sel, "justakey", err, sizeof err), KUALA_EINVAL);
  ck_assert_str_eq(err, "invalid selector: 'justakey'; can't understand 'justakey'");
  ck_assert_int_eq(kuala_selector_parse_fields(&sel, "a=\\q", err, sizeof err), KUALA_EINVAL);
  ck_assert_int_eq(kuala_selector_parse_fields(&sel, "", err, sizeof err), 0);
  ck_assert_int_eq(kuala_selector_empty(sel), 1);
  kuala_selector_free(sel);
  /* Empty value is allowed. */
  ck_assert_int_eq(kuala_selector_parse_fields(&sel, "spec.x=", err, sizeof err), 0);
  kuala_selector_req(sel, 0, &key, &op, &vals, &nv);
  ck_assert_str_eq(vals[0], "");
  kuala_selector_free(sel);
}
END_TEST

START_TEST(test_selector_format_roundtrip)
{
  const char *texts[] = {"a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3"};
  kuala_selector_t *sel, *again;
  char out[256], out2[256];
  ck_assert_int_eq(kuala_selector_parse_labels(&sel, texts[0], NULL, 0), 0);
  kuala_selector_format(sel, out, sizeof out);
  ck_assert_str_eq(out, texts[0]);
  ck_assert_int_eq(kuala_selector_parse_labels(&again, out, NULL, 0), 0);
  kuala_selector_format(again, out2, sizeof out2);
  ck_assert_str_eq(out, out2);
  kuala_selector_free(sel);
  kuala_selector_free(again);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("selector");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_selector_equality_and_existence);
  tcase_add_test(tc, test_selector_set_based);
  tcase_add_test(tc, test_selector_parse_errors);
  tcase_add_test(tc, test_selector_json_labels);
  tcase_add_test(tc, test_selector_fields);
  tcase_add_test(tc, test_selector_format_roundtrip);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
