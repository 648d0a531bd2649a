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
#include "kuala/log.h"
#include "kuala/version.h"
#include "cmd_bundle.h"
#include "cmd_crd.h"
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
          "  crd DIR...         print the CRDs the bundles declare (YAML)\n"
          "  bundle DIR         print the ConfigMap that ships a bundle (YAML, for kubectl apply)\n"
          "  rbac DIR...        print least-privilege RBAC for the bundles (YAML)\n"
          "  test [DIR]         run the bundle's busted specs with the kuala SDK on the path\n"
          "  version            print the version\n"
          "  help               this text\n"
          "\n"
          "global flags:\n"
          "  --log-level=LEVEL  error|warn|info|debug|trace (default info)\n"
          "  --log-format=FMT   text|json (default text)\n"
          "  --version          print the version\n");
}

int main(int argc, char **argv)
{
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--log-level=", 12) == 0) {
      kuala_log_level_t lvl;
      if (kuala_log_parse_level(a + 12, &lvl)) {
        fprintf(stderr, "kuala: invalid --log-level %s (want error|warn|info|debug|trace)\n",
                a + 12);
        return 2;
      }
      kuala_log_set_level(lvl);
    } else if (strncmp(a, "--log-format=", 13) == 0) {
      kuala_log_format_t fmt;
      if (kuala_log_parse_format(a + 13, &fmt)) {
        fprintf(stderr, "kuala: invalid --log-format %s (want text|json)\n", a + 13);
        return 2;
      }
      kuala_log_set_format(fmt);
    } else if (strcmp(a, "--version") == 0) {
      printf("kuala %s\n", KUALA_VERSION_STRING);
      return 0;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "kuala: unknown flag %s\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (i < argc && strcmp(argv[i], "-h") == 0) {
    usage(stdout);
    return 0;
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
  if (strcmp(argv[i], "bundle") == 0) {
    return kuala__cli_bundle(argc - i, argv + i);
  }
  if (strcmp(argv[i], "crd") == 0) {
    return kuala__cli_crd(argc - i, argv + i);
  }
  if (strcmp(argv[i], "rbac") == 0) {
    return kuala__cli_rbac(argc - i, argv + i);
  }
  if (strcmp(argv[i], "test") == 0) {
    return kuala__cli_test(argc - i, argv + i);
  }
  if (strcmp(argv[i], "version") == 0) {
    printf("kuala %s\n", KUALA_VERSION_STRING);
    return 0;
  }
  fprintf(stderr, "kuala: unknown command %s\n", argv[i]);
  usage(stderr);
  return 2;
}
