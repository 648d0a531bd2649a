/*
 * reload_src.c: bundle file sets from directories and ConfigMaps, and the
 * content hash both the engine and `kuala bundle` use (see reload.h).
 *
 * Ownership: a kuala__bfiles_t owns every name and source it holds.
 * Limits follow the runtime's directory loader (a file up to 4 MiB, a
 * bundle up to 16 MiB, 16 levels of directories); the runtime checks the
 * same limits again when it loads.
 */
#include "control/reload.h"

#include <dirent.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kuala/alloc.h"
#include "kuala/error.h"

#define MAX_DEPTH 16
#define MAX_FILE_BYTES (4u << 20)
#define MAX_TOTAL_BYTES (16u << 20)

void kuala__bfiles_free(kuala__bfiles_t *fs)
{
  for (size_t i = 0; i < fs->n; i++) {
    kuala_free((char *)fs->files[i].name);
    kuala_free((char *)fs->files[i].src);
  }
  kuala_free(fs->files);
  memset(fs, 0, sizeof(*fs));
}

void kuala__bfiles_add(kuala__bfiles_t *fs, const char *name, const char *src, size_t len)
{
  if (fs->n == fs->cap) {
    fs->cap = fs->cap ? fs->cap * 2 : 8;
    fs->files = kuala_realloc(fs->files, fs->cap * sizeof(*fs->files));
  }
  size_t at = fs->n;
  while (at > 0 && strcmp(fs->files[at - 1].name, name) > 0) {
    at--;
  }
  memmove(&fs->files[at + 1], &fs->files[at], (fs->n - at) * sizeof(*fs->files));
  char *copy = kuala_malloc(len + 1);
  memcpy(copy, src, len);
  copy[len] = '\0';
  fs->files[at].name = kuala_strdup(name);
  fs->files[at].src = copy;
  fs->files[at].len = len;
  fs->n++;
}

static char *msg(const char *fmt, const char *a, const char *b)
{
  char buf[4096];
  snprintf(buf, sizeof(buf), fmt, a, b);
  return kuala_strdup(buf);
}

static int read_whole(const char *path, char **out, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return KUALA_ENOENT;
  }
  size_t cap = 4096, n = 0;
  char *buf = kuala_malloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n > MAX_FILE_BYTES) {
      fclose(f);
      kuala_free(buf);
      return KUALA_E2BIG;
    }
    if (n == cap) {
      cap *= 2;
      buf = kuala_realloc(buf, cap);
    }
  }
  fclose(f);
  *out = buf;
  *len = n;
  return 0;
}

static int scan(kuala__bfiles_t *fs, const char *root, const char *rel, int depth, size_t *total,
                char **err)
{
  char path[1024];
  snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
  if (depth > MAX_DEPTH) {
    *err = msg("%s: directories nested too deep%s", path, "");
    return KUALA_E2BIG;
  }
  DIR *d = opendir(path);
  if (d == NULL) {
    if (depth == 0) {
      *err = msg("%s: cannot open the directory%s", path, "");
      return KUALA_ENOENT;
    }
    return 0;
  }
  struct dirent *ent;
  int rc = 0;
  while (rc == 0 && (ent = readdir(d)) != NULL) {
    if (ent->d_name[0] == '.') {
      continue;
    }
    char sub[512], full[1600];
    snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", ent->d_name);
    snprintf(full, sizeof(full), "%s/%s", root, sub);
    struct stat st;
    if (stat(full, &st) != 0) {
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      rc = scan(fs, root, sub, depth + 1, total, err);
      continue;
    }
    size_t nl = strlen(ent->d_name);
    if (!S_ISREG(st.st_mode) || nl < 5 || strcmp(ent->d_name + nl - 4, ".lua") != 0) {
      continue;
    }
    char *src = NULL;
    size_t len = 0;
    rc = read_whole(full, &src, &len);
    if (rc) {
      *err = msg("%s: cannot read (%s)", full, kuala_strerror(rc));
      break;
    }
    *total += len;
    if (*total > MAX_TOTAL_BYTES) {
      kuala_free(src);
      *err = msg("%s: bundle larger than 16 MiB%s", root, "");
      rc = KUALA_E2BIG;
      break;
    }
    kuala__bfiles_add(fs, sub, src, len);
    kuala_free(src);
  }
  closedir(d);
  return rc;
}

int kuala__bfiles_read_dir(kuala__bfiles_t *fs, const char *dir, char **err)
{
  size_t total = 0;
  *err = NULL;
  int rc = scan(fs, dir, "", 0, &total, err);
  if (rc) {
    kuala__bfiles_free(fs);
  }
  return rc;
}

static int key_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

int kuala__bundle_key_of_file(const char *file, char *out, size_t cap)
{
  size_t n = strlen(file);
  if (n < 5 || strcmp(file + n - 4, ".lua") != 0 || n + 1 > cap) {
    return KUALA_EINVAL;
  }
  size_t stem = n - 4;
  int prev_sep = 1;
  for (size_t i = 0; i < stem; i++) {
    char c = file[i];
    if (c == '/') {
      if (prev_sep) {
        return KUALA_EINVAL;
      }
      out[i] = '.';
      prev_sep = 1;
    } else if (key_char(c)) {
      out[i] = c;
      prev_sep = 0;
    } else {
      return KUALA_EINVAL; /* a '.' would be read back as a directory */
    }
  }
  if (prev_sep) {
    return KUALA_EINVAL;
  }
  memcpy(out + stem, ".lua", 5);
  return 0;
}

int kuala__bundle_file_of_key(const char *key, char *out, size_t cap)
{
  size_t n = strlen(key);
  if (n < 5 || strcmp(key + n - 4, ".lua") != 0 || n + 1 > cap) {
    return KUALA_EINVAL;
  }
  size_t stem = n - 4;
  int prev_sep = 1;
  for (size_t i = 0; i < stem; i++) {
    char c = key[i];
    if (c == '.') {
      if (prev_sep) {
        return KUALA_EINVAL;
      }
      out[i] = '/';
      prev_sep = 1;
    } else if (key_char(c)) {
      out[i] = c;
      prev_sep = 0;
    } else {
      return KUALA_EINVAL;
    }
  }
  if (prev_sep) {
    return KUALA_EINVAL;
  }
  memcpy(out + stem, ".lua", 5);
  return 0;
}

int kuala__bfiles_from_configmap(kuala__bfiles_t *fs, struct json_object *cm,
                                 kuala__bfiles_ignored_cb ignored, void *data)
{
  json_object *d = NULL;
  if (!json_object_object_get_ex(cm, "data", &d) || !json_object_is_type(d, json_type_object)) {
    return 0;
  }
  json_object_object_foreach(d, key, val)
  {
    char file[512];
    if (!json_object_is_type(val, json_type_string) ||
        kuala__bundle_file_of_key(key, file, sizeof(file)) != 0) {
      if (ignored) {
        ignored(data, key);
      }
      continue;
    }
    kuala__bfiles_add(fs, file, json_object_get_string(val),
                      (size_t)json_object_get_string_len(val));
  }
  return 0;
}

void kuala__bfiles_hash(const kuala__bfiles_t *fs, char *out)
{
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  for (size_t i = 0; i < fs->n; i++) {
    char num[32];
    int nn = snprintf(num, sizeof(num), "%zu", fs->files[i].len);
    EVP_DigestUpdate(ctx, fs->files[i].name, strlen(fs->files[i].name) + 1);
    EVP_DigestUpdate(ctx, num, (size_t)nn + 1);
    EVP_DigestUpdate(ctx, fs->files[i].src, fs->files[i].len);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_DigestFinal_ex(ctx, md, &mdlen);
  EVP_MD_CTX_free(ctx);
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "sha256:", 7);
  for (unsigned int i = 0; i < mdlen; i++) {
    out[7 + 2 * i] = hex[md[i] >> 4];
    out[8 + 2 * i] = hex[md[i] & 15];
  }
  out[7 + 2 * mdlen] = '\0';
}
