/*
 * cmd_bundle.c: `kuala bundle DIR [--name N] [--namespace NS]` prints the
 * ConfigMap that ships a bundle to a running engine:
 *
 *   kuala bundle controllers/webapp | kubectl apply -f -
 *
 * One key per Lua module ("main.lua", "lib.util.lua" for lib/util.lua),
 * the label kuala.dev/bundle=NAME the engine selects on, and the
 * annotation kuala.dev/bundle-hash with the content hash the engine
 * computes the same way (control/reload.h), so an unchanged bundle is not
 * reloaded. Nothing is sent anywhere; the output is YAML on stdout.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cmd_bundle.h"
#include "control/reload.h"
#include "flags.h"
#include "kuala/alloc.h"
#include "kuala/error.h"

#define CONFIGMAP_MAX_BYTES 1048576 /* the API server's limit on a ConfigMap */

static void usage(FILE *f)
{
  fprintf(f,
          "usage: kuala bundle DIR [--name NAME] [--namespace NS]\n"
          "\n"
          "Print the ConfigMap (YAML) that ships the bundle in DIR to an engine\n"
          "watching ConfigMaps labelled kuala.dev/bundle:\n"
          "  kuala bundle controllers/webapp | kubectl apply -f -\n"
          "\n"
          "  --name=NAME       bundle (and ConfigMap) name (default: DIR's last component)\n"
          "  --namespace=NS    metadata.namespace (default: none, kubectl's namespace)\n");
}

/* Whether `s` can go into a literal block scalar unchanged. */
static int block_safe(const char *s, size_t len)
{
  if (len == 0) {
    return 0;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      return 0;
    }
    /* A line starting with a tab or space-then-nothing is fine under an
     * explicit indentation indicator; a BOM is not. */
  }
  return !(len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0);
}

static void print_value(const char *s, size_t len)
{
  if (!block_safe(s, len)) {
    json_object *str = json_object_new_string_len(s, (int)len);
    printf(" %s\n", json_object_to_json_string_ext(str, JSON_C_TO_STRING_PLAIN));
    json_object_put(str);
    return;
  }
  size_t trail = 0;
  while (trail < len && s[len - 1 - trail] == '\n') {
    trail++;
  }
  const char *chomp = trail == 0 ? "-" : trail == 1 ? "" : "+";
  printf(" |2%s\n", chomp);
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(s + i, '\n', len - i);
    size_t end = nl ? (size_t)(nl - s) : len;
    if (end > i) {
      printf("    %.*s\n", (int)(end - i), s + i);
    } else {
      printf("\n");
    }
    i = end + 1;
  }
}

int kuala__cli_bundle(int argc, char **argv)
{
  const char *dir = NULL, *name = NULL, *ns = NULL;
  int bad = 0;
  for (int i = 1; i < argc && !bad; i++) {
    if (kuala__flag_is_help(argv[i])) {
      usage(stdout);
      return 0;
    }
    int m = kuala__flag_value(argc, argv, &i, "--name", &name);
    if (m == 0) {
      m = kuala__flag_value(argc, argv, &i, "--namespace", &ns);
    }
    if (m < 0) {
      bad = 1;
    } else if (m == 0 && argv[i][0] == '-') {
      fprintf(stderr, "kuala bundle: unknown flag %s\n", argv[i]);
      bad = 1;
    } else if (m == 0 && dir == NULL) {
      dir = argv[i];
    } else if (m == 0) {
      fprintf(stderr, "kuala bundle: one directory at a time (%s)\n", argv[i]);
      bad = 1;
    }
  }
  if (bad || dir == NULL) {
    usage(stderr);
    return 2;
  }
  char base[256];
  if (name == NULL) {
    const char *end = dir + strlen(dir);
    while (end > dir && end[-1] == '/') {
      end--;
    }
    const char *st = end;
    while (st > dir && st[-1] != '/') {
      st--;
    }
    snprintf(base, sizeof(base), "%.*s", (int)(end - st), st);
    name = base;
  }
  size_t nl = strlen(name);
  for (size_t i = 0; i < nl; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.') || nl > 63) {
      fprintf(stderr,
              "kuala bundle: '%s' is not a valid name (lower-case letters, digits, '-', '.'; "
              "at most 63): pass --name\n",
              name);
      return 2;
    }
  }
  kuala__bfiles_t fs = {0};
  char *err = NULL;
  int rc = kuala__bfiles_read_dir(&fs, dir, &err);
  if (rc) {
    fprintf(stderr, "kuala bundle: %s\n", err ? err : kuala_strerror(rc));
    kuala_free(err);
    return 1;
  }
  if (fs.n == 0) {
    fprintf(stderr, "kuala bundle: %s holds no .lua file\n", dir);
    kuala__bfiles_free(&fs);
    return 1;
  }
  size_t total = 0;
  for (size_t i = 0; i < fs.n; i++) {
    char key[512];
    if (kuala__bundle_key_of_file(fs.files[i].name, key, sizeof(key)) != 0) {
      fprintf(stderr,
              "kuala bundle: %s/%s cannot be a ConfigMap key (a module name may use letters, "
              "digits, '-' and '_', and '/' between directories)\n",
              dir, fs.files[i].name);
      kuala__bfiles_free(&fs);
      return 1;
    }
    total += fs.files[i].len + strlen(key);
  }
  if (total > CONFIGMAP_MAX_BYTES) {
    fprintf(stderr, "kuala bundle: %zu bytes of sources: a ConfigMap holds at most %d\n", total,
            CONFIGMAP_MAX_BYTES);
    kuala__bfiles_free(&fs);
    return 1;
  }
  char hash[KUALA_BUNDLE_HASH_LEN];
  kuala__bfiles_hash(&fs, hash);
  printf(
      "apiVersion: v1\n"
      "kind: ConfigMap\n"
      "metadata:\n"
      "  name: %s\n",
      name);
  if (ns) {
    printf("  namespace: %s\n", ns);
  }
  printf(
      "  labels:\n"
      "    " KUALA_BUNDLE_LABEL
      ": %s\n"
      "  annotations:\n"
      "    " KUALA_BUNDLE_HASH_ANNOTATION
      ": \"%s\"\n"
      "data:\n",
      name, hash);
  for (size_t i = 0; i < fs.n; i++) {
    char key[512];
    kuala__bundle_key_of_file(fs.files[i].name, key, sizeof(key));
    printf("  %s:", key);
    print_value(fs.files[i].src, fs.files[i].len);
  }
  kuala__bfiles_free(&fs);
  return 0;
}
