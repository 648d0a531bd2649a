/*
 * cmd_crd.c: `kuala crd DIR...`, and the offline runtime it shares with
 * `kuala check` (cmd_check.c).
 *
 * The offline runtime is a Lua runtime whose backend has an empty cache and
 * no API server (a bundle's top level cannot make API calls anyway), on a
 * private loop: enough to load bundles and read their declarations. `crd`
 * loads each bundle in it and prints the CRDs the bundles declared,
 * separated by "---". A bundle that fails to load is reported with its file
 * and line and the command exits with 1.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "flags.h"
#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/runtime.h"
#include "cmd_crd.h"

int kuala__offline_open(kuala__offline_t *o)
{
  memset(o, 0, sizeof(*o));
  if (uv_loop_init(&o->loop) != 0)
    return KUALA_EIO;
  int rc = kuala_runtime_new(&o->rt, &o->loop, kuala_backend_offline(), NULL);
  if (rc) {
    o->rt = NULL;
    uv_loop_close(&o->loop);
  }
  return rc;
}

void kuala__offline_close(kuala__offline_t *o)
{
  kuala_runtime_free(o->rt);
  o->rt = NULL;
  uv_run(&o->loop, UV_RUN_DEFAULT);
  uv_loop_close(&o->loop);
}

int kuala__cli_crd(int argc, char **argv)
{
  if (argc < 2 || kuala__flag_is_help(argv[1])) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: kuala crd DIR...\n"
            "print the CustomResourceDefinitions the bundles declare (YAML)\n");
    return argc < 2 ? 2 : 0;
  }
  kuala__offline_t off;
  int rc = kuala__offline_open(&off);
  if (rc) {
    fprintf(stderr, "kuala crd: %s\n", kuala_strerror(rc));
    return 1;
  }
  int status = 0;
  int printed = 0;
  for (int i = 1; i < argc; i++) {
    kuala_bundle_t *b = NULL;
    char *err = NULL;
    rc = kuala_bundle_load_dir(&b, off.rt, argv[i], NULL, NULL, &err);
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
  kuala__offline_close(&off);
  return status;
}
