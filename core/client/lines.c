/*
 * lines.c: the incremental JSON-lines splitter behind watch streams.
 *
 * Bytes arrive in arbitrary chunks; a line may be split across any number
 * of them. Each line is assembled in a capped kuala_buf_t (so the callback
 * gets a NUL-terminated string), which never grows past the line cap: a
 * longer line fails with KUALA_E2BIG as soon as it passes the cap, before
 * its end arrives (or, with skip_long, is dropped up to its newline and
 * reported as a NULL line). A trailing '\r' is stripped so CRLF streams
 * work too.
 */
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/error.h"

void kuala_lines_init(kuala_lines_t *p, size_t max_line)
{
  kuala_buf_init(&p->buf, max_line);
  p->skip_long = 0;
  p->dropping = 0;
}

void kuala_lines_free(kuala_lines_t *p)
{
  kuala_buf_free(&p->buf);
}

size_t kuala_lines_pending(const kuala_lines_t *p)
{
  return p->buf.len + p->dropping;
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

static int report_dropped(kuala_lines_t *p, kuala_lines_cb on_line, void *data)
{
  size_t dropped = p->dropping;
  p->dropping = 0;
  return on_line(data, NULL, dropped);
}

int kuala_lines_feed(kuala_lines_t *p, const char *chunk, size_t n, kuala_lines_cb on_line,
                     void *data)
{
  while (n > 0) {
    const char *nl = memchr(chunk, '\n', n);
    size_t part = nl ? (size_t)(nl - chunk) : n;
    if (p->dropping) {
      /* Inside an over-long line: count its bytes, keep none. */
      p->dropping += part;
      if (!nl) {
        return 0;
      }
      int rc = report_dropped(p, on_line, data);
      if (rc != 0) {
        return rc;
      }
      chunk = nl + 1;
      n -= part + 1;
      continue;
    }
    /* Assemble the line in the buffer (it may have started in an earlier
     * chunk, and the callback gets a NUL-terminated string). */
    int rc = kuala_buf_append(&p->buf, chunk, part);
    if (rc == KUALA_E2BIG && p->skip_long) {
      p->dropping = p->buf.len + part;
      p->buf.len = 0;
      if (!nl) {
        return 0;
      }
      if ((rc = report_dropped(p, on_line, data)) != 0) {
        return rc;
      }
      chunk = nl + 1;
      n -= part + 1;
      continue;
    }
    if (!nl) {
      return rc;
    }
    if (rc == 0) {
      /* Empty the buffer before the callback, which may stop the watch
       * that owns `p`; the line's bytes stay in place until the next
       * append, which restores the buffer's terminator. */
      size_t len = p->buf.len;
      p->buf.len = 0;
      rc = emit(p->buf.data, len, on_line, data);
    }
    if (rc != 0) {
      return rc;
    }
    chunk = nl + 1;
    n -= part + 1;
  }
  return 0;
}
