/*
 * mem.c: process-wide heap policy, see mem.h.
 *
 * State: two globals, set from the loop thread only (tuned, releases).
 */
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "kuala/log.h"

static int tuned;
static size_t releases;

void kuala__mem_tune(void)
{
#if defined(__GLIBC__)
  mallopt(M_MXFAST, 0);
  tuned = 1;
#endif
}

/* VmRSS of this process in KiB, or -1. */
static long rss_kib(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) {
    return -1;
  }
  long size = 0, resident = -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2) {
    resident = -1;
  }
  fclose(f);
  return resident < 0 ? -1 : resident * 4;
}

void kuala__mem_release(const char *why)
{
  if (!tuned) {
    return;
  }
#if defined(__GLIBC__)
  int debug = kuala_log_enabled(KUALA_LOG_DEBUG);
  long before = debug ? rss_kib() : 0;
  malloc_trim(0);
  releases++;
  if (debug) {
    char b[32], a[32];
    snprintf(b, sizeof b, "%ld", before);
    snprintf(a, sizeof a, "%ld", rss_kib());
    KUALA_LOG(KUALA_LOG_DEBUG, "heap trimmed", "after", why, "rss_kib_before", b, "rss_kib_after",
              a);
  }
#else
  (void)why;
#endif
}

size_t kuala__mem_releases(void)
{
  return releases;
}
