/*
 * alloc.c: allocation that aborts on out-of-memory.
 */
#include "kuala/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
  fprintf(stderr, "kuala: out of memory allocating %zu bytes\n", n);
  abort();
}

void *kuala_malloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (p == NULL) {
    oom(n);
  }
  return p;
}

void *kuala_calloc(size_t count, size_t n)
{
  void *p = calloc(count ? count : 1, n ? n : 1);
  if (p == NULL) {
    oom(count * n);
  }
  return p;
}

void *kuala_realloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) {
    oom(n);
  }
  return q;
}

void *kuala_memdup(const void *p, size_t n)
{
  char *q = kuala_malloc(n + 1);
  if (n > 0) {
    memcpy(q, p, n);
  }
  q[n] = '\0';
  return q;
}

char *kuala_strdup(const char *s)
{
  return kuala_memdup(s, strlen(s));
}

char *kuala_strndup(const char *s, size_t n)
{
  size_t len = strnlen(s, n);
  return kuala_memdup(s, len);
}

void kuala_free(void *p)
{
  free(p);
}
