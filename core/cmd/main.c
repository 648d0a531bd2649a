/*
 * main.c: the `kuala` command line.
 *
 * Subcommands grow with the engine; each one says plainly when it is not
 * built yet instead of pretending to work.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kuala/error.h"
#include "kuala/version.h"
#include "cmd_bundle.h"
#include "cmd_crd.h"
#include "devcluster.h"
#include "flags.h"
#include "cmd_rbac.h"
#include "cmd_test.h"

static void usage(FILE *f)
{
  fprintf(f,
          "usage: kuala [global flags] <command> [args]\n"
          "\n"
          "commands:\n"
          "  run DIR...         run controller bundles against a cluster (kubeconfig)\n"
          "  dev [DIR...]       run bundles against a local API emulator (kuala-apiserver)\n"
          "  check DIR...       load and validate bundles offline (exit 1 with file:line)\n"
          "  crd DIR...         print the CRDs the bundles declare (YAML)\n"
          "  bundle DIR         print the ConfigMap that ships a bundle (YAML, for kubectl apply)\n"
          "  rbac DIR...        print least-privilege RBAC for the bundles (YAML)\n"
          "  test [DIR]         run the bundle's busted specs with the kuala SDK on the path\n"
          "  version            print the version\n"
          "  help               this text (every command also takes -h/--help)\n"
          "\n"
          "global flags:\n"
          "  --log-level=LEVEL  error|warn|info|debug|trace (default info)\n"
          "  --log-format=FMT   text|json (default text)\n"
          "                     (both also accepted among a command's own flags)\n"
          "  --version          print the version\n");
}

int main(int argc, char **argv)
{
  int i = 1;
  for (; i < argc && strncmp(argv[i], "-", 1) == 0; i++) {
    const char *a = argv[i];
    int g = kuala__flag_global(argc, argv, &i);
    if (g < 0) {
      return 2;
    }
    if (g > 0) {
      continue;
    }
    if (strcmp(a, "--version") == 0) {
      printf("kuala %s\n", KUALA_VERSION_STRING);
      return 0;
    }
    if (kuala__flag_is_help(a)) {
      usage(stdout);
      return 0;
    }
    fprintf(stderr, "kuala: unknown flag %s\n", a);
    usage(stderr);
    return 2;
  }
  if (i >= argc || strcmp(argv[i], "help") == 0) {
    usage(i >= argc ? stderr : stdout);
    return i >= argc ? 2 : 0;
  }
  if (strcmp(argv[i], "run") == 0) {
    return kuala__cli_run(argc - i, argv + i);
  }
  if (strcmp(argv[i], "dev") == 0) {
    return kuala__cli_dev(argc - i, argv + i);
  }
  if (strcmp(argv[i], "check") == 0) {
    return kuala__cli_check(argc - i, argv + i);
  }
  if (strcmp(argv[i], "bundle") == 0) {
    return kuala__cli_bundle(argc - i, argv + i);
  }
  if (strcmp(argv[i], "crd") == 0) {
    return kuala__cli_crd(argc - i, argv + i);
  }
  if (strcmp(argv[i], KUALA__DEVCLUSTER_GUARD_CMD) == 0) {
    return kuala__devcluster_guard_main(argc - i, argv + i);
  }
  if (strcmp(argv[i], "rbac") == 0) {
    return kuala__cli_rbac(argc - i, argv + i);
  }
  if (strcmp(argv[i], "test") == 0) {
    return kuala__cli_test(argc - i, argv + i);
  }
  if (strcmp(argv[i], "version") == 0) {
    if (i + 1 < argc && kuala__flag_is_help(argv[i + 1])) {
      printf("usage: kuala version\nprint the version\n");
      return 0;
    }
    if (i + 1 < argc) {
      fprintf(stderr, "kuala version: unexpected argument %s\n", argv[i + 1]);
      return 2;
    }
    printf("kuala %s\n", KUALA_VERSION_STRING);
    return 0;
  }
  fprintf(stderr, "kuala: unknown command %s\n", argv[i]);
  usage(stderr);
  return 2;
}
