/*
 * cmd_test.c: `kuala test [DIR] [-- BUSTED_ARGS...]`.
 *
 * Runs a bundle's busted specs with the kuala SDK on the Lua path, so an
 * author's project needs no .busted file and no copy of the SDK. The SDK is
 * looked up in this order: $KUALA_SDK_DIR, <prefix>/share/lua/5.1 next to
 * the binary (what `cmake --install` lays out), then the source tree the
 * binary was built from. Specs are DIR/spec/ if it exists, else DIR/tests/,
 * else DIR itself (files matching *_spec.lua). The command changes into DIR
 * and sets KUALA_BUNDLE_DIR to it (testing.load() with no argument loads
 * that bundle), then replaces itself with `busted --lua=luajit`.
 *
 * Ownership: nothing outlives the exec; the paths are stack buffers.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd_test.h"

#ifndef KUALA_SDK_SOURCE_DIR
#define KUALA_SDK_SOURCE_DIR ""
#endif

static int is_dir(const char *p)
{
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether dir holds the SDK (dir/kuala/init.lua). */
static int has_sdk(const char *dir)
{
  char p[PATH_MAX];
  struct stat st;
  int n = snprintf(p, sizeof p, "%s/kuala/init.lua", dir);
  return n > 0 && (size_t)n < sizeof p && stat(p, &st) == 0;
}

static int find_sdk(char *out, size_t outlen)
{
  const char *env = getenv("KUALA_SDK_DIR");
  if (env && *env && has_sdk(env)) {
    snprintf(out, outlen, "%s", env);
    return 0;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0; /* .../bin */
      char cand[PATH_MAX];
      int k = snprintf(cand, sizeof cand, "%s/../share/lua/5.1", exe);
      char real[PATH_MAX];
      if (k > 0 && (size_t)k < sizeof cand && realpath(cand, real) && has_sdk(real)) {
        snprintf(out, outlen, "%s", real);
        return 0;
      }
    }
  }
  if (KUALA_SDK_SOURCE_DIR[0] && has_sdk(KUALA_SDK_SOURCE_DIR)) {
    snprintf(out, outlen, "%s", KUALA_SDK_SOURCE_DIR);
    return 0;
  }
  return -1;
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: kuala test [DIR] [-- BUSTED_ARGS...]\n"
          "  runs DIR's busted specs (DIR/spec, DIR/tests or DIR; *_spec.lua) under LuaJIT\n"
          "  with the kuala SDK on the path; DIR defaults to the current directory\n");
}

int kuala__cli_test(int argc, char **argv)
{
  const char *dir = ".";
  int i = 1;
  if (i < argc && (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)) {
    usage(stdout);
    return 0;
  }
  if (i < argc && strcmp(argv[i], "--") != 0) {
    dir = argv[i++];
  }
  if (i < argc && strcmp(argv[i], "--") == 0) {
    i++;
  } else if (i < argc) {
    usage(stderr);
    return 2;
  }
  char sdk[PATH_MAX];
  if (find_sdk(sdk, sizeof sdk) != 0) {
    fprintf(stderr,
            "kuala test: cannot find the kuala Lua SDK (kuala/init.lua): set KUALA_SDK_DIR, or "
            "install kuala with cmake --install (it puts the SDK in <prefix>/share/lua/5.1)\n");
    return 1;
  }
  char abs[PATH_MAX];
  if (!realpath(dir, abs) || !is_dir(abs)) {
    fprintf(stderr, "kuala test: %s: not a directory\n", dir);
    return 1;
  }
  if (chdir(abs) != 0) {
    fprintf(stderr, "kuala test: cannot enter %s: %s\n", abs, strerror(errno));
    return 1;
  }
  const char *root = is_dir("spec") ? "spec" : is_dir("tests") ? "tests" : ".";
  /* LUA_PATH, not --lpath: busted re-runs itself under --lua through a
   * shell, which would split the ';' of an unquoted --lpath. */
  char lpath[4 * PATH_MAX + 64];
  const char *old = getenv("LUA_PATH");
  snprintf(lpath, sizeof lpath, "%s/?.lua;%s/?/init.lua;%s/?.lua;%s/?/init.lua;%s", sdk, sdk, abs,
           abs, old && *old ? old : ";");
  setenv("LUA_PATH", lpath, 1);
  setenv("KUALA_BUNDLE_DIR", abs, 1);
  setenv("KUALA_SDK_DIR", sdk, 1);
  const char *fixed[] = {"busted", "--lua=luajit", "--pattern=_spec"};
  size_t nfixed = sizeof fixed / sizeof fixed[0];
  size_t nextra = (size_t)(argc - i);
  char **args = calloc(nfixed + nextra + 2, sizeof *args);
  if (args == NULL) {
    return 1;
  }
  for (size_t k = 0; k < nfixed; k++) {
    args[k] = (char *)fixed[k];
  }
  for (size_t k = 0; k < nextra; k++) {
    args[nfixed + k] = argv[i + (int)k];
  }
  args[nfixed + nextra] = (char *)root;
  execvp("busted", args);
  fprintf(stderr,
          "kuala test: cannot run busted: %s (install it: luarocks install busted, or "
          "the lua-busted package)\n",
          strerror(errno));
  free(args);
  return 1;
}
