/*
 * flags.c: the one flag parser of the `kuala` command (see flags.h).
 */
#include "flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/log.h"

int kuala__flag_value(int argc, char **argv, int *i, const char *name, const char **value)
{
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) {
    return 0;
  }
  if (a[n] == '=') {
    *value = a + n + 1;
    return 1;
  }
  if (a[n] != '\0') {
    return 0;
  }
  if (*i + 1 >= argc) {
    fprintf(stderr, "kuala: %s needs a value\n", name);
    return -1;
  }
  *value = argv[++*i];
  return 1;
}

int kuala__flag_bool(char **argv, int i, const char *name, int *on)
{
  const char *a = argv[i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) {
    return 0;
  }
  if (a[n] == '\0') {
    *on = 1;
    return 1;
  }
  if (a[n] != '=') {
    return 0;
  }
  if (strcmp(a + n + 1, "true") == 0) {
    *on = 1;
  } else if (strcmp(a + n + 1, "false") == 0) {
    *on = 0;
  } else {
    fprintf(stderr, "kuala: %s wants true or false, got '%s'\n", name, a + n + 1);
    return -1;
  }
  return 1;
}

int kuala__flag_num(const char *name, const char *v, double *out)
{
  char *end;
  double d = strtod(v, &end);
  if (end == v || *end != '\0' || !(d >= 0)) {
    fprintf(stderr, "kuala: %s wants a non-negative number, got '%s'\n", name, v);
    return -1;
  }
  *out = d;
  return 0;
}

int kuala__flag_is_help(const char *a)
{
  return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

int kuala__flag_global(int argc, char **argv, int *i)
{
  const char *v = NULL;
  int m = kuala__flag_value(argc, argv, i, "--log-level", &v);
  if (m > 0) {
    kuala_log_level_t lvl;
    if (kuala_log_parse_level(v, &lvl)) {
      fprintf(stderr, "kuala: invalid --log-level %s (want error|warn|info|debug|trace)\n", v);
      return -1;
    }
    kuala_log_set_level(lvl);
    return 1;
  }
  if (m == 0) {
    m = kuala__flag_value(argc, argv, i, "--log-format", &v);
  }
  if (m > 0) {
    kuala_log_format_t fmt;
    if (kuala_log_parse_format(v, &fmt)) {
      fprintf(stderr, "kuala: invalid --log-format %s (want text|json)\n", v);
      return -1;
    }
    kuala_log_set_format(fmt);
    return 1;
  }
  return m;
}
