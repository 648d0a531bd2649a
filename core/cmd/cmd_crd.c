/*
 * cmd_crd.c: `kuala crd DIR...`.
 *
 * Loads each bundle against a backend with an empty cache and no API
 * server (a bundle's top level cannot make API calls anyway), then prints
 * the CRDs the bundles declared, separated by "---". A bundle that fails to
 * load is reported with its file and line and the command exits with 1.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/runtime.h"
#include "cmd_crd.h"

static int none_get(void *self, const kuala_cache_query_t *q, const char **json, size_t *len)
{
  (void)self, (void)q, (void)json, (void)len;
  return KUALA_ENOTFOUND;
}

static int none_list(void *self, const kuala_cache_query_t *q, kuala_cache_each_cb each, void *data)
{
  (void)self, (void)q, (void)each, (void)data;
  return 0;
}

static int none_start(void *self, const kuala_call_t *call, kuala_call_done_cb done, void *data,
                      void **handle)
{
  (void)self, (void)call, (void)done, (void)data, (void)handle;
  return KUALA_ENOSYS;
}

static void none_cancel(void *self, void *handle)
{
  (void)self, (void)handle;
}

int kuala__cli_crd(int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: kuala crd DIR...\n"
            "print the CustomResourceDefinitions the bundles declare (YAML)\n");
    return argc < 2 ? 2 : 0;
  }
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0)
    return 1;
  kuala_backend_t be = {none_get, none_list, none_start, none_cancel, NULL, NULL, NULL, NULL};
  kuala_runtime_t *rt = NULL;
  int status = 0;
  int rc = kuala_runtime_new(&rt, &loop, &be, NULL);
  if (rc) {
    fprintf(stderr, "kuala crd: %s\n", kuala_strerror(rc));
    status = 1;
  }
  int printed = 0;
  for (int i = 1; rt && i < argc; i++) {
    kuala_bundle_t *b = NULL;
    char *err = NULL;
    rc = kuala_bundle_load_dir(&b, rt, argv[i], NULL, NULL, &err);
    if (rc) {
      fprintf(stderr, "kuala crd: %s\n", err ? err : kuala_strerror(rc));
      kuala_free(err);
      status = 1;
      continue;
    }
    char *yaml = NULL;
    size_t len = 0;
    rc = kuala_bundle_crds(b, 1, &yaml, &len);
    if (rc) {
      fprintf(stderr, "kuala crd: %s: cannot render the CRDs (%s)\n", argv[i], kuala_strerror(rc));
      status = 1;
    } else if (len > 0) {
      if (printed++)
        fputs("---\n", stdout);
      fwrite(yaml, 1, len, stdout);
    }
    kuala_free(yaml);
    kuala_bundle_close(b);
  }
  kuala_runtime_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return status;
}
