/*
 * A growable byte buffer with a hard cap.
 *
 * Everything sized by the network goes through one of these: appending past
 * `max` fails with KUALA_E2BIG and leaves the buffer as it was. The data is
 * always NUL-terminated (the NUL is not counted in `len`).
 */
#ifndef KUALA_BUF_H
#define KUALA_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct kuala_buf_s {
  char *data; /* owned; NULL until the first append */
  size_t len;
  size_t cap;
  size_t max; /* 0 = no cap */
} kuala_buf_t;

#define KUALA_BUF_INIT(maxbytes) \
  {                              \
    NULL, 0, 0, (maxbytes)       \
  }

void kuala_buf_init(kuala_buf_t *b, size_t max);
void kuala_buf_free(kuala_buf_t *b);
/* Forget the contents, keep the memory. */
void kuala_buf_reset(kuala_buf_t *b);
/* Make room for `extra` more bytes; KUALA_E2BIG past the cap. */
int kuala_buf_reserve(kuala_buf_t *b, size_t extra);
int kuala_buf_append(kuala_buf_t *b, const void *p, size_t n);
int kuala_buf_puts(kuala_buf_t *b, const char *s);
int kuala_buf_putc(kuala_buf_t *b, char c);
int kuala_buf_printf(kuala_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int kuala_buf_vprintf(kuala_buf_t *b, const char *fmt, va_list ap);
/* Append `s` as a JSON string literal, quotes included. */
int kuala_buf_json_str(kuala_buf_t *b, const char *s, size_t n);
/* Drop the first `n` bytes (used by line parsers). */
void kuala_buf_consume(kuala_buf_t *b, size_t n);
/* Hand the data to the caller (who frees it with kuala_free); b is reset. */
char *kuala_buf_take(kuala_buf_t *b, size_t *len);

#endif /* KUALA_BUF_H */
