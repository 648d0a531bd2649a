/*
 * Unit tests for bundle sources (core/control/reload_src.c): file names and
 * ConfigMap keys, reading a directory, reading a ConfigMap, and the content
 * hash shared by the engine and `kuala bundle`.
 */
#include "kuala_test.h"
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/reload.h"
#include "kuala/alloc.h"
#include "kuala/error.h"

START_TEST(test_key_file_mapping)
{
  char out[256];
  ck_assert_int_eq(kuala__bundle_key_of_file("main.lua", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "main.lua");
  ck_assert_int_eq(kuala__bundle_key_of_file("lib/util.lua", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "lib.util.lua");
  ck_assert_int_eq(kuala__bundle_file_of_key("lib.util.lua", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "lib/util.lua");
  ck_assert_int_eq(kuala__bundle_file_of_key("a-b_c.lua", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "a-b_c.lua");
  /* Not mappable: a dot in a stem, other characters, not .lua, empty parts. */
  ck_assert_int_eq(kuala__bundle_key_of_file("my.mod.lua", out, sizeof(out)), KUALA_EINVAL);
  ck_assert_int_eq(kuala__bundle_key_of_file("sp ace.lua", out, sizeof(out)), KUALA_EINVAL);
  ck_assert_int_eq(kuala__bundle_file_of_key("README.md", out, sizeof(out)), KUALA_EINVAL);
  ck_assert_int_eq(kuala__bundle_file_of_key(".lua", out, sizeof(out)), KUALA_EINVAL);
  ck_assert_int_eq(kuala__bundle_file_of_key("a..b.lua", out, sizeof(out)), KUALA_EINVAL);
  ck_assert_int_eq(kuala__bundle_file_of_key(".a.lua", out, sizeof(out)), KUALA_EINVAL);
  ck_assert_int_eq(kuala__bundle_file_of_key("a/b.lua", out, sizeof(out)), KUALA_EINVAL);
  /* Too small a buffer. */
  ck_assert_int_eq(kuala__bundle_file_of_key("main.lua", out, 4), KUALA_EINVAL);
}
END_TEST

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static int nignored;
static void on_ignored(void *data, const char *key)
{
  (void)data;
  (void)key;
  nignored++;
}

START_TEST(test_dir_and_configmap_hash_alike)
{
  char dir[] = "/tmp/kuala-reload-test.XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char p[512];
  snprintf(p, sizeof(p), "%s/lib", dir);
  ck_assert_int_eq(mkdir(p, 0700), 0);
  snprintf(p, sizeof(p), "%s/.hidden", dir);
  ck_assert_int_eq(mkdir(p, 0700), 0);
  snprintf(p, sizeof(p), "%s/main.lua", dir);
  write_file(p, "return require('lib.util')\n");
  snprintf(p, sizeof(p), "%s/lib/util.lua", dir);
  write_file(p, "return 42\n");
  snprintf(p, sizeof(p), "%s/README.md", dir);
  write_file(p, "not lua\n");
  snprintf(p, sizeof(p), "%s/.hidden/x.lua", dir);
  write_file(p, "hidden\n");

  kuala__bfiles_t fs = {0};
  char *err = NULL;
  ck_assert_int_eq(kuala__bfiles_read_dir(&fs, dir, &err), 0);
  ck_assert_ptr_null(err);
  ck_assert_uint_eq(fs.n, 2);
  ck_assert_str_eq(fs.files[0].name, "lib/util.lua"); /* sorted */
  ck_assert_str_eq(fs.files[1].name, "main.lua");
  char h1[KUALA_BUNDLE_HASH_LEN];
  kuala__bfiles_hash(&fs, h1);
  ck_assert_int_eq(strncmp(h1, "sha256:", 7), 0);
  ck_assert_uint_eq(strlen(h1), 7 + 64);

  /* The same modules as a ConfigMap (keys in another order, one extra key
   * that is ignored with a warning): the same hash. */
  const char *cmjson =
      "{\"data\":{\"main.lua\":\"return require('lib.util')\\n\","
      "\"notes.txt\":\"x\",\"lib.util.lua\":\"return 42\\n\"}}";
  json_object *cm = json_tokener_parse(cmjson);
  kuala__bfiles_t fc = {0};
  nignored = 0;
  ck_assert_int_eq(kuala__bfiles_from_configmap(&fc, cm, on_ignored, NULL), 0);
  ck_assert_int_eq(nignored, 1);
  ck_assert_uint_eq(fc.n, 2);
  char h2[KUALA_BUNDLE_HASH_LEN];
  kuala__bfiles_hash(&fc, h2);
  ck_assert_str_eq(h1, h2);
  json_object_put(cm);

  /* One byte changed, or content moved between files: another hash. */
  kuala__bfiles_t fd = {0};
  kuala__bfiles_add(&fd, "main.lua", "return require('lib.util')\n", 27);
  kuala__bfiles_add(&fd, "lib/util.lua", "return 43\n", 10);
  char h3[KUALA_BUNDLE_HASH_LEN];
  kuala__bfiles_hash(&fd, h3);
  ck_assert_str_ne(h1, h3);
  kuala__bfiles_t fe = {0};
  kuala__bfiles_add(&fe, "lib/util.lua", "return 42\nreturn require('lib.util')\n", 37);
  kuala__bfiles_add(&fe, "main.lua", "", 0);
  char h4[KUALA_BUNDLE_HASH_LEN];
  kuala__bfiles_hash(&fe, h4);
  ck_assert_str_ne(h1, h4);

  kuala__bfiles_free(&fs);
  kuala__bfiles_free(&fc);
  kuala__bfiles_free(&fd);
  kuala__bfiles_free(&fe);
  snprintf(p, sizeof(p), "rm -rf '%s'", dir);
  ck_assert_int_eq(system(p), 0);
}
END_TEST

START_TEST(test_missing_dir_says_why)
{
  kuala__bfiles_t fs = {0};
  char *err = NULL;
  ck_assert_int_eq(kuala__bfiles_read_dir(&fs, "/nonexistent/kuala-bundle", &err), KUALA_ENOENT);
  ck_assert_ptr_nonnull(err);
  ck_assert_ptr_nonnull(strstr(err, "/nonexistent/kuala-bundle"));
  ck_assert_uint_eq(fs.n, 0);
  kuala_free(err);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("reload");
  TCase *tc = tcase_create("reload");
  tcase_add_test(tc, test_key_file_mapping);
  tcase_add_test(tc, test_dir_and_configmap_hash_alike);
  tcase_add_test(tc, test_missing_dir_says_why);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
