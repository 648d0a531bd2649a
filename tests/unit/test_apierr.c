/*
 * Unit tests for apiserver/apierr: Status rendering exactly as spec §7.
 */
#include <check.h>

#include "kuala_test.h"
#include <stdlib.h>
#include <string.h>

#include "apierr.h"
#include "kuala/alloc.h"

static char *render(const kuala_apierr_t *e)
{
  return kuala__apierr_status_json(e, NULL);
}

START_TEST(test_apierr_unsupported_media_type_has_no_details)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  ck_assert_int_eq(kuala__apierr_set(&e, 415, NULL, "the body of the request was in %s", "x"), 415);
  char *s = render(&e);
  ck_assert_str_eq(s,
                   "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                   "\"Failure\",\"message\":\"the body of the request was in x\",\"reason\":"
                   "\"UnsupportedMediaType\",\"code\":415}");
  kuala_free(s);
  kuala__apierr_clear(&e);
  ck_assert_int_eq(e.code, 0);
  ck_assert_ptr_null(e.message);
}
END_TEST

START_TEST(test_apierr_not_found_details_omit_core_group)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala__apierr_set(&e, 404, NULL, "configmaps \"%s\" not found", "x");
  kuala__apierr_details(&e, "x", "", "configmaps");
  char *s = render(&e);
  ck_assert_str_eq(s,
                   "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                   "\"Failure\",\"message\":\"configmaps \\\"x\\\" not found\",\"reason\":"
                   "\"NotFound\",\"details\":{\"name\":\"x\",\"kind\":\"configmaps\"},"
                   "\"code\":"
                   "404}");
  kuala_free(s);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_apierr_invalid_message_lists_every_cause)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *v = json_object_new_int(15);
  kuala__apierr_field(&e, KUALA_CAUSE_INVALID, "spec.replicas", v,
                      "spec.replicas in body should be less than or equal to 10");
  kuala__apierr_field(&e, KUALA_CAUSE_REQUIRED, "spec.image", NULL, NULL);
  json_object_put(v);
  ck_assert_int_eq(kuala__apierr_cause_count(&e), 2);
  ck_assert_int_eq(kuala__apierr_invalid(&e, "CronTab", "stable.example.com", "x"), 422);
  char *s = render(&e);
  ck_assert_str_eq(s,
                   "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":"
                   "{},\"status\":\"Failure\","
                   "\"message\":\"CronTab.stable.example.com \\\"x\\\" is "
                   "invalid: [spec.replicas: Invalid "
                   "value: 15: spec.replicas in body should be less than or "
                   "equal to 10, spec.image: Required "
                   "value]\",\"reason\":\"Invalid\",\"details\":{\"name\":"
                   "\"x\",\"group\":\"stable.example."
                   "com\",\"kind\":\"CronTab\",\"causes\":[{\"reason\":"
                   "\"FieldValueInvalid\",\"message\":"
                   "\"Invalid value: 15: spec.replicas in body should be "
                   "less than or equal to 10\",\"field\":"
                   "\"spec.replicas\"},{\"reason\":\"FieldValueRequired\","
                   "\"message\":\"Required value\","
                   "\"field\":\"spec.image\"}]},\"code\":422}");
  kuala_free(s);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_apierr_invalid_single_cause_has_no_brackets)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *v = json_object_new_string("two");
  kuala__apierr_field(&e, KUALA_CAUSE_TYPE_INVALID, "spec.replicas", v,
                      "spec.replicas in body must be of type integer: \"string\"");
  json_object_put(v);
  kuala__apierr_invalid(&e, "CronTab", "stable.example.com", "x");
  ck_assert_str_eq(e.message,
                   "CronTab.stable.example.com \"x\" is invalid: spec.replicas: Invalid "
                   "value: "
                   "\"two\": spec.replicas in body must be of type integer: \"string\"");
  kuala__apierr_clear(&e);
  /* Core group: the kind alone. */
  kuala__apierr_field(&e, KUALA_CAUSE_REQUIRED, "metadata.name", NULL, "name or generateName");
  kuala__apierr_invalid(&e, "ConfigMap", "", "");
  ck_assert_str_eq(e.message,
                   "ConfigMap \"\" is invalid: metadata.name: "
                   "Required value: name or generateName");
  kuala__apierr_clear(&e);
  /* Nothing recorded: no error. */
  ck_assert_int_eq(kuala__apierr_invalid(&e, "X", "", "y"), 0);
  ck_assert_int_eq(e.code, 0);
}
END_TEST

START_TEST(test_apierr_conflict_causes_and_retry_after)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala__apierr_set(&e, 409, NULL, "Apply failed with 1 conflict: conflict with \"m\": .spec.a");
  kuala__apierr_add_cause(&e, KUALA_CAUSE_MANAGER_CONFLICT, "conflict with \"m\"", ".spec.a");
  char *s = render(&e);
  ck_assert_ptr_nonnull(strstr(s,
                               "\"reason\":\"Conflict\",\"details\":{\"causes\":[{\"reason\":"
                               "\"FieldManagerConflict\",\"message\":\"conflict with \\\"m\\\"\","
                               "\"field\":\".spec.a\"}]},\"code\":409}"));
  kuala_free(s);
  kuala__apierr_set(&e, 429, NULL, "Too many requests, please try again later.");
  ck_assert_int_eq(kuala__apierr_cause_count(&e), 0); /* set() replaces the old error */
  e.retry_after = 1;
  s = render(&e);
  ck_assert_ptr_nonnull(strstr(s,
                               "\"reason\":\"TooManyRequests\",\"details\":{"
                               "\"retryAfterSeconds\":1},\"code\":429}"));
  kuala_free(s);
  kuala__apierr_clear(&e);
}
END_TEST

START_TEST(test_apierr_reasons_and_empty_error)
{
  ck_assert_str_eq(kuala__apierr_reason_for(400), "BadRequest");
  ck_assert_str_eq(kuala__apierr_reason_for(410), "Expired");
  ck_assert_str_eq(kuala__apierr_reason_for(413), "RequestEntityTooLarge");
  ck_assert_str_eq(kuala__apierr_reason_for(504), "Timeout");
  ck_assert_str_eq(kuala__apierr_reason_for(299), "");
  kuala_apierr_t e = KUALA_APIERR_INIT;
  kuala__apierr_set(&e, 409, "AlreadyExists", "configmaps \"a\" already exists");
  ck_assert_str_eq(e.reason, "AlreadyExists");
  kuala__apierr_clear(&e);
  /* An empty error renders as a 500 rather than a malformed Status. */
  json_object *st = kuala__apierr_status(&e);
  json_object *code = NULL;
  ck_assert(json_object_object_get_ex(st, "code", &code));
  ck_assert_int_eq(json_object_get_int(code), 500);
  json_object_put(st);
}
END_TEST

START_TEST(test_apierr_success_status)
{
  json_object *st = kuala__apierr_success("x", "stable.example.com", "crontabs", "u-1");
  ck_assert_str_eq(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                   "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                   "\"Success\",\"details\":{\"name\":\"x\",\"group\":\"stable.example."
                   "com\","
                   "\"kind\":\"crontabs\",\"uid\":\"u-1\"}}");
  json_object_put(st);
}
END_TEST

START_TEST(test_apierr_warning_header_escapes_quotes)
{
  char w[64];
  ck_assert_str_eq(kuala__apierr_warning(w, sizeof w, "unknown field \"spec.foo\""),
                   "299 - \"unknown field \\\"spec.foo\\\"\"");
  ck_assert_str_eq(kuala__apierr_warning(w, sizeof w, "a\\b"), "299 - \"a\\\\b\"");
  /* Truncation keeps the header well-formed. */
  char small[16];
  kuala__apierr_warning(small, sizeof small, "\"\"\"\"\"\"\"\"");
  ck_assert_int_eq(small[strlen(small) - 1], '"');
  ck_assert_int_le(strlen(small), sizeof small - 1);
  ck_assert_str_eq(small, "299 - \"\\\"\\\"\\\"\"");
}
END_TEST

static Suite *apierr_suite(void)
{
  Suite *s = suite_create("apierr");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_apierr_unsupported_media_type_has_no_details);
  tcase_add_test(tc, test_apierr_not_found_details_omit_core_group);
  tcase_add_test(tc, test_apierr_invalid_message_lists_every_cause);
  tcase_add_test(tc, test_apierr_invalid_single_cause_has_no_brackets);
  tcase_add_test(tc, test_apierr_conflict_causes_and_retry_after);
  tcase_add_test(tc, test_apierr_reasons_and_empty_error);
  tcase_add_test(tc, test_apierr_success_status);
  tcase_add_test(tc, test_apierr_warning_header_escapes_quotes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(apierr_suite());
}
