/*
 * buf.c: growable buffer with a cap.
 *
 * Invariant: data == NULL or data[len] == '\0' and len < cap. Growth doubles
 * but never beyond max + 1 (room for the terminator) when a cap is set.
 */
#include "kuala/buf.h"

#include <stdio.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"

void kuala_buf_init(kuala_buf_t *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void kuala_buf_free(kuala_buf_t *b)
{
  kuala_free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void kuala_buf_reset(kuala_buf_t *b)
{
  b->len = 0;
  if (b->data) {
    b->data[0] = '\0';
  }
}

int kuala_buf_reserve(kuala_buf_t *b, size_t extra)
{
  size_t need = b->len + extra + 1;
  if (need < b->len) {
    return KUALA_E2BIG;
  }
  if (b->max && b->len + extra > b->max) {
    return KUALA_E2BIG;
  }
  if (need <= b->cap) {
    return 0;
  }
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    cap *= 2;
  }
  if (b->max && cap > b->max + 1) {
    cap = b->max + 1;
  }
  b->data = kuala_realloc(b->data, cap);
  b->cap = cap;
  return 0;
}

int kuala_buf_append(kuala_buf_t *b, const void *p, size_t n)
{
  int rc = kuala_buf_reserve(b, n);
  if (rc) {
    return rc;
  }
  if (n) {
    memcpy(b->data + b->len, p, n);
  }
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int kuala_buf_puts(kuala_buf_t *b, const char *s)
{
  return kuala_buf_append(b, s, strlen(s));
}

int kuala_buf_putc(kuala_buf_t *b, char c)
{
  return kuala_buf_append(b, &c, 1);
}

int kuala_buf_vprintf(kuala_buf_t *b, const char *fmt, va_list ap)
{
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    return KUALA_EINVAL;
  }
  int rc = kuala_buf_reserve(b, (size_t)n);
  if (rc) {
    return rc;
  }
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int kuala_buf_printf(kuala_buf_t *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int rc = kuala_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

int kuala_buf_json_str(kuala_buf_t *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  size_t start = b->len;
  int rc = kuala_buf_putc(b, '"');
  for (size_t i = 0; rc == 0 && i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
      case '"':
        rc = kuala_buf_append(b, "\\\"", 2);
        break;
      case '\\':
        rc = kuala_buf_append(b, "\\\\", 2);
        break;
      case '\n':
        rc = kuala_buf_append(b, "\\n", 2);
        break;
      case '\r':
        rc = kuala_buf_append(b, "\\r", 2);
        break;
      case '\t':
        rc = kuala_buf_append(b, "\\t", 2);
        break;
      default:
        if (c < 0x20) {
          char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
          rc = kuala_buf_append(b, esc, sizeof(esc));
        } else {
          rc = kuala_buf_putc(b, (char)c);
        }
    }
  }
  if (rc == 0) {
    rc = kuala_buf_putc(b, '"');
  }
  if (rc) {
    /* Leave the buffer as it was. */
    b->len = start;
    if (b->data) {
      b->data[start] = '\0';
    }
  }
  return rc;
}

void kuala_buf_consume(kuala_buf_t *b, size_t n)
{
  if (n >= b->len) {
    kuala_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

char *kuala_buf_take(kuala_buf_t *b, size_t *len)
{
  char *p = b->data ? b->data : kuala_strdup("");
  if (len) {
    *len = b->len;
  }
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}
