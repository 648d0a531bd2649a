/*
 * cmd_check.c: `kuala check DIR...`, offline validation of bundles.
 *
 * Each directory is loaded in the offline runtime of cmd_crd.c (no API
 * server, empty cache): that compiles and runs the entry module and every
 * module it requires at load time, in the same sandbox and under the same
 * limits as `kuala run`, and validates the declarations (controllers,
 * watches, CRDs). Every problem is printed with the bundle, the file and
 * the line the runtime reports; the exit status is 1 when any bundle has
 * one, 0 when all are fine, 2 for bad usage. Type strings that are
 * neither built in nor declared by the bundle's CRDs are printed as
 * warnings with their file and line (the exit status does not change). A module that is only
 * required later, inside a reconcile, is not compiled here.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd_crd.h"
#include "flags.h"
#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/runtime.h"

static void usage(FILE *f)
{
  fprintf(f,
          "usage: kuala check DIR...\n"
          "load and validate controller bundles offline (no cluster needed):\n"
          "syntax, sandbox, limits, controller and CRD declarations. Prints\n"
          "one line per bundle; exits 1 when any bundle has a problem.\n");
}

/* Type strings discovery could not know offline ("apps/v1/Deploymnet"):
 * warnings, not errors — the kind may come from a CRD another bundle or
 * chart installs. */
static void print_type_warnings(const char *dir, kuala_bundle_t *b)
{
  char *json = NULL;
  size_t len = 0;
  json_object *arr = NULL;
  if (kuala_bundle_type_warnings(b, &json, &len) == 0 &&
      kuala_json_parse(&arr, json, len, NULL, 0) == 0 &&
      json_object_is_type(arr, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
      json_object *w = json_object_array_get_idx(arr, i);
      const char *file = kuala_json_path_str(w, "file");
      json_object *line = kuala_json_path(w, "line");
      const char *msg = kuala_json_path_str(w, "message");
      const char *type = kuala_json_path_str(w, "type");
      if (file && line) {
        fprintf(stderr, "kuala check: warning: %s/%s:%d: %s\n", dir, file,
                json_object_get_int(line),
                msg    ? msg
                : type ? type
                       : "unknown type");
      } else {
        fprintf(stderr, "kuala check: warning: %s: %s\n", dir,
                msg    ? msg
                : type ? type
                       : "unknown type");
      }
    }
  }
  json_object_put(arr);
  kuala_free(json);
}

/* Check one bundle directory; 0 when it is fine. */
static int check_one(kuala__offline_t *off, const char *dir)
{
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "kuala check: %s: not a directory\n", dir);
    return 1;
  }
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = kuala_bundle_load_dir(&b, off->rt, dir, NULL, NULL, &err);
  if (rc) {
    fprintf(stderr, "kuala check: %s: %s\n", dir, err ? err : kuala_strerror(rc));
    kuala_free(err);
    return 1;
  }
  int bad = 0;
  size_t ncontrollers = kuala_bundle_controller_count(b);
  for (size_t i = 0; i < ncontrollers; i++) {
    char *json = NULL;
    size_t len = 0;
    rc = kuala_bundle_controller_json(b, i, &json, &len);
    if (rc) {
      fprintf(stderr, "kuala check: %s: controller %s: invalid declaration (%s)\n", dir,
              kuala_bundle_controller_name(b, i), kuala_strerror(rc));
      bad = 1;
    }
    kuala_free(json);
  }
  char *crds = NULL;
  size_t len = 0;
  size_t ncrds = 0;
  json_object *arr = NULL;
  rc = kuala_bundle_crds_json(b, &crds, &len);
  if (rc == 0) {
    rc = kuala_json_parse(&arr, crds, len, NULL, 0);
  }
  if (rc || !json_object_is_type(arr, json_type_array)) {
    fprintf(stderr, "kuala check: %s: cannot render the CRDs (%s)\n", dir,
            kuala_strerror(rc ? rc : KUALA_EINVAL));
    bad = 1;
  } else {
    ncrds = json_object_array_length(arr);
  }
  json_object_put(arr);
  kuala_free(crds);
  if (!bad && ncontrollers == 0 && ncrds == 0) {
    fprintf(stderr, "kuala check: %s: bundle %s: main.lua declares no controller and no CRD\n", dir,
            kuala_bundle_name(b));
    bad = 1;
  }
  print_type_warnings(dir, b);
  if (!bad) {
    printf("ok %s: bundle %s, %zu controller%s, %zu CRD%s\n", dir, kuala_bundle_name(b),
           ncontrollers, ncontrollers == 1 ? "" : "s", ncrds, ncrds == 1 ? "" : "s");
  }
  kuala_bundle_close(b);
  return bad;
}

int kuala__cli_check(int argc, char **argv)
{
  int ndirs = 0;
  for (int i = 1; i < argc; i++) {
    if (kuala__flag_is_help(argv[i])) {
      usage(stdout);
      return 0;
    }
    if (argv[i][0] == '-') {
      fprintf(stderr, "kuala check: unknown flag %s\n", argv[i]);
      usage(stderr);
      return 2;
    }
    ndirs++;
  }
  if (ndirs == 0) {
    usage(stderr);
    return 2;
  }
  kuala__offline_t off;
  int rc = kuala__offline_open(&off);
  if (rc) {
    fprintf(stderr, "kuala check: %s\n", kuala_strerror(rc));
    return 1;
  }
  int status = 0;
  for (int i = 1; i < argc; i++) {
    if (check_one(&off, argv[i])) {
      status = 1;
    }
  }
  kuala__offline_close(&off);
  return status;
}
