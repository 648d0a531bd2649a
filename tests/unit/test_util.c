/*
 * Unit tests for the util layer: errors, buffers, logging, the hash map.
 */
#include "kuala_test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"
#include "kuala/log.h"
#include "base/map.h"

START_TEST(test_error_names_and_messages)
{
  ck_assert_str_eq(kuala_err_name(KUALA_EINVAL), "EINVAL");
  ck_assert_str_eq(kuala_err_name(KUALA_ECONFLICT), "ECONFLICT");
  ck_assert_str_eq(kuala_err_name(0), "OK");
  ck_assert_str_eq(kuala_err_name(-9999), "UNKNOWN");
  ck_assert_str_eq(kuala_strerror(KUALA_ENOTFOUND), "not found (404)");
  ck_assert_int_eq(KUALA_EINVAL, -EINVAL);
  ck_assert_int_eq(KUALA_ETIMEDOUT, -ETIMEDOUT);
  /* Unlisted errnos still get a message from libc. */
  ck_assert_str_eq(kuala_strerror(-EMFILE), strerror(EMFILE));
}
END_TEST

START_TEST(test_error_from_http)
{
  ck_assert_int_eq(kuala_err_from_http(200), 0);
  ck_assert_int_eq(kuala_err_from_http(201), 0);
  ck_assert_int_eq(kuala_err_from_http(404), KUALA_ENOTFOUND);
  ck_assert_int_eq(kuala_err_from_http(409), KUALA_ECONFLICT);
  ck_assert_int_eq(kuala_err_from_http(410), KUALA_EGONE);
  ck_assert_int_eq(kuala_err_from_http(429), KUALA_ETOOMANY);
  ck_assert_int_eq(kuala_err_from_http(418), KUALA_EAPI);
}
END_TEST

START_TEST(test_buf_grows_and_caps)
{
  kuala_buf_t b;
  kuala_buf_init(&b, 10);
  ck_assert_int_eq(kuala_buf_puts(&b, "hello"), 0);
  ck_assert_int_eq(kuala_buf_puts(&b, "world"), 0);
  ck_assert_str_eq(b.data, "helloworld");
  /* The 11th byte is refused and the contents stay as they were. */
  ck_assert_int_eq(kuala_buf_putc(&b, '!'), KUALA_E2BIG);
  ck_assert_uint_eq(b.len, 10);
  ck_assert_str_eq(b.data, "helloworld");
  ck_assert_int_eq(kuala_buf_printf(&b, "%d", 1), KUALA_E2BIG);
  kuala_buf_consume(&b, 5);
  ck_assert_str_eq(b.data, "world");
  ck_assert_int_eq(kuala_buf_printf(&b, "-%d", 42), 0);
  ck_assert_str_eq(b.data, "world-42");
  size_t len;
  char *p = kuala_buf_take(&b, &len);
  ck_assert_uint_eq(len, 8);
  ck_assert_ptr_null(b.data);
  kuala_free(p);
  kuala_buf_free(&b);
}
END_TEST

START_TEST(test_buf_json_string_escapes)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  const char s[] = "a\"b\\c\n\x01";
  ck_assert_int_eq(kuala_buf_json_str(&b, s, sizeof(s) - 1), 0);
  ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
  kuala_buf_free(&b);
  /* A string that does not fit leaves the buffer untouched. */
  kuala_buf_t c = KUALA_BUF_INIT(4);
  kuala_buf_puts(&c, "ab");
  ck_assert_int_eq(kuala_buf_json_str(&c, "xyz", 3), KUALA_E2BIG);
  ck_assert_str_eq(c.data, "ab");
  kuala_buf_free(&c);
}
END_TEST

static kuala_buf_t captured;

static void capture(void *data, kuala_log_level_t level, const char *line, size_t len)
{
  (void)data;
  (void)level;
  kuala_buf_append(&captured, line, len);
  kuala_buf_putc(&captured, '\n');
}

START_TEST(test_log_text_and_json)
{
  kuala_buf_init(&captured, 0);
  kuala_log_set_sink(capture, NULL);
  kuala_log_set_level(KUALA_LOG_INFO);
  kuala_log_set_format(KUALA_LOG_TEXT);
  kuala_log_kv_t ctx[] = {{"controller", "webapp"}, {"key", "default/a b"}};
  kuala_log(KUALA_LOG_INFO, ctx, 2, "reconciled", "took", "3ms", NULL);
  ck_assert_ptr_nonnull(strstr(captured.data, " info  reconciled controller=webapp"));
  ck_assert_ptr_nonnull(strstr(captured.data, "key=\"default/a b\" took=3ms\n"));

  /* Below the threshold nothing is written. */
  kuala_buf_reset(&captured);
  kuala_log(KUALA_LOG_DEBUG, NULL, 0, "hidden", NULL);
  ck_assert_uint_eq(captured.len, 0);

  kuala_log_set_format(KUALA_LOG_JSON);
  KUALA_LOG(KUALA_LOG_WARN, "quote\"d", "bundle", "b1");
  ck_assert_ptr_nonnull(strstr(captured.data,
                               "\"level\":\"warn\",\"msg\":\"quote\\\"d\","
                               "\"bundle\":\"b1\"}"));
  ck_assert_int_eq(captured.data[0], '{');

  kuala_buf_reset(&captured);
  kuala_logf(KUALA_LOG_ERROR, ctx, 1, "failed %d times", 3);
  ck_assert_ptr_nonnull(strstr(captured.data, "\"msg\":\"failed 3 times\",\"controller\":"));

  kuala_log_level_t lvl;
  kuala_log_format_t fmt;
  ck_assert_int_eq(kuala_log_parse_level("debug", &lvl), 0);
  ck_assert_int_eq(lvl, KUALA_LOG_DEBUG);
  ck_assert_int_eq(kuala_log_parse_level("loud", &lvl), KUALA_EINVAL);
  ck_assert_int_eq(kuala_log_parse_format("json", &fmt), 0);
  ck_assert_int_eq(kuala_log_parse_format("xml", &fmt), KUALA_EINVAL);

  kuala_log_set_sink(NULL, NULL);
  kuala_log_set_format(KUALA_LOG_TEXT);
  kuala_buf_free(&captured);
}
END_TEST

START_TEST(test_map_put_get_del_many)
{
  kuala__map_t m;
  kuala__map_init(&m);
  enum { N = 5000 };
  char **keys = kuala_calloc(N, sizeof(char *));
  for (int i = 0; i < N; i++) {
    char k[32];
    snprintf(k, sizeof(k), "ns/obj-%d", i);
    keys[i] = kuala_strdup(k);
    ck_assert_ptr_null(kuala__map_put(&m, keys[i], strlen(keys[i]), keys[i]));
  }
  ck_assert_uint_eq(m.len, N);
  /* Delete every third key; the rest must stay reachable (backward shift). */
  for (int i = 0; i < N; i += 3) {
    ck_assert_ptr_eq(kuala__map_del(&m, keys[i], strlen(keys[i])), keys[i]);
  }
  for (int i = 0; i < N; i++) {
    void *v = kuala__map_get(&m, keys[i], strlen(keys[i]));
    if (i % 3 == 0) {
      ck_assert_ptr_null(v);
    } else {
      ck_assert_ptr_eq(v, keys[i]);
    }
  }
  size_t iter = 0, seen = 0;
  while (kuala__map_next(&m, &iter, NULL, NULL, NULL)) {
    seen++;
  }
  ck_assert_uint_eq(seen, m.len);
  ck_assert_ptr_null(kuala__map_del(&m, "absent", 6));
  /* Replacing returns the old value. */
  ck_assert_ptr_eq(kuala__map_put(&m, keys[1], strlen(keys[1]), keys[2]), keys[1]);
  kuala__map_free(&m);
  for (int i = 0; i < N; i++) {
    kuala_free(keys[i]);
  }
  kuala_free(keys);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("util");
  TCase *tc = tcase_create("util");
  tcase_add_test(tc, test_error_names_and_messages);
  tcase_add_test(tc, test_error_from_http);
  tcase_add_test(tc, test_buf_grows_and_caps);
  tcase_add_test(tc, test_buf_json_string_escapes);
  tcase_add_test(tc, test_log_text_and_json);
  tcase_add_test(tc, test_map_put_get_del_many);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
