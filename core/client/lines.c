/*
 * lines.c: the incremental JSON-lines splitter behind watch streams.
 *
 * Bytes arrive in arbitrary chunks; a line may be split across any number
 * of them. Each line is assembled in `buf` (so the callback gets a
 * NUL-terminated string), which never grows past `max` bytes: a longer
 * line fails with KUALA_E2BIG as soon as it passes the cap, before its end
 * arrives. A trailing '\r' is stripped so CRLF streams work too.
 */
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/error.h"

void kuala_lines_init(kuala_lines_t *p, size_t max_line)
{
  p->buf = NULL;
  p->len = 0;
  p->cap = 0;
  p->max = max_line;
}

void kuala_lines_free(kuala_lines_t *p)
{
  kuala_free(p->buf);
  p->buf = NULL;
  p->len = p->cap = 0;
}

size_t kuala_lines_pending(const kuala_lines_t *p)
{
  return p->len;
}

static int keep(kuala_lines_t *p, const char *s, size_t n)
{
  if (p->max && p->len + n > p->max) {
    return KUALA_E2BIG;
  }
  if (p->len + n + 1 > p->cap) {
    size_t cap = p->cap ? p->cap : 256;
    while (cap < p->len + n + 1) {
      cap *= 2;
    }
    p->buf = kuala_realloc(p->buf, cap);
    p->cap = cap;
  }
  memcpy(p->buf + p->len, s, n);
  p->len += n;
  p->buf[p->len] = '\0';
  return 0;
}

static int emit(char *line, size_t len, kuala_lines_cb on_line, void *data)
{
  if (len > 0 && line[len - 1] == '\r') {
    len--;
  }
  if (len == 0) {
    return 0;
  }
  char saved = line[len];
  line[len] = '\0';
  int rc = on_line(data, line, len);
  line[len] = saved;
  return rc;
}

int kuala_lines_feed(kuala_lines_t *p, const char *chunk, size_t n, kuala_lines_cb on_line,
                     void *data)
{
  while (n > 0) {
    const char *nl = memchr(chunk, '\n', n);
    if (!nl) {
      return keep(p, chunk, n);
    }
    size_t part = (size_t)(nl - chunk);
    /* Assemble the line in the buffer (it may have started in an earlier
     * chunk, and the callback gets a NUL-terminated string). */
    int rc = keep(p, chunk, part);
    if (rc == 0) {
      size_t len = p->len;
      p->len = 0;
      rc = emit(p->buf, len, on_line, data);
    }
    if (rc != 0) {
      return rc;
    }
    chunk = nl + 1;
    n -= part + 1;
  }
  return 0;
}
