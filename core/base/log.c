/*
 * log.c: structured logging to a sink (stderr by default).
 *
 * State is process-global and owned by the loop thread: kuala runs all of its
 * work on one libuv loop, so no locking is needed. A line is built in a
 * kuala_buf_t capped at 64 KiB; a longer message is truncated, never lost
 * entirely.
 */
#include "kuala/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "kuala/buf.h"
#include "kuala/error.h"

#define LOG_LINE_MAX (64 * 1024)

static kuala_log_level_t log_level = KUALA_LOG_INFO;
static kuala_log_format_t log_format = KUALA_LOG_TEXT;
static kuala_log_sink_cb log_sink = NULL;
static void *log_sink_data = NULL;

static const char *level_names[] = {"error", "warn", "info", "debug", "trace"};

void kuala_log_set_level(kuala_log_level_t level)
{
  log_level = level;
}

kuala_log_level_t kuala_log_get_level(void)
{
  return log_level;
}

void kuala_log_set_format(kuala_log_format_t format)
{
  log_format = format;
}

void kuala_log_set_sink(kuala_log_sink_cb cb, void *data)
{
  log_sink = cb;
  log_sink_data = data;
}

const char *kuala_log_level_name(kuala_log_level_t level)
{
  if ((unsigned)level > KUALA_LOG_TRACE) {
    return "unknown";
  }
  return level_names[level];
}

int kuala_log_parse_level(const char *s, kuala_log_level_t *out)
{
  for (int i = 0; i <= KUALA_LOG_TRACE; i++) {
    if (s && strcmp(s, level_names[i]) == 0) {
      *out = (kuala_log_level_t)i;
      return 0;
    }
  }
  if (s && strcmp(s, "warning") == 0) {
    *out = KUALA_LOG_WARN;
    return 0;
  }
  return KUALA_EINVAL;
}

int kuala_log_parse_format(const char *s, kuala_log_format_t *out)
{
  if (s && strcmp(s, "text") == 0) {
    *out = KUALA_LOG_TEXT;
    return 0;
  }
  if (s && strcmp(s, "json") == 0) {
    *out = KUALA_LOG_JSON;
    return 0;
  }
  return KUALA_EINVAL;
}

int kuala_log_enabled(kuala_log_level_t level)
{
  return level <= log_level;
}

static void put_time(kuala_buf_t *b)
{
  struct timeval tv;
  struct tm tm;
  char ts[32];
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  kuala_buf_printf(b, "%s.%03dZ", ts, (int)(tv.tv_usec / 1000));
}

/* Text values are bare when they are simple, JSON-quoted otherwise. */
static void put_text_value(kuala_buf_t *b, const char *v)
{
  if (v == NULL) {
    kuala_buf_puts(b, "<nil>");
    return;
  }
  int bare = *v != '\0';
  for (const char *p = v; *p && bare; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
      bare = 0;
    }
  }
  if (bare) {
    kuala_buf_puts(b, v);
  } else {
    kuala_buf_json_str(b, v, strlen(v));
  }
}

static void put_field(kuala_buf_t *b, const char *k, const char *v)
{
  if (k == NULL) {
    return;
  }
  if (log_format == KUALA_LOG_JSON) {
    kuala_buf_putc(b, ',');
    kuala_buf_json_str(b, k, strlen(k));
    kuala_buf_putc(b, ':');
    if (v == NULL) {
      kuala_buf_puts(b, "null");
    } else {
      kuala_buf_json_str(b, v, strlen(v));
    }
  } else {
    kuala_buf_putc(b, ' ');
    kuala_buf_puts(b, k);
    kuala_buf_putc(b, '=');
    put_text_value(b, v);
  }
}

static void emit(kuala_log_level_t level, kuala_buf_t *b)
{
  if (b->data == NULL) {
    return;
  }
  if (log_sink) {
    log_sink(log_sink_data, level, b->data, b->len);
  } else {
    fprintf(stderr, "%s\n", b->data);
  }
}

static void log_line(kuala_log_level_t level, const kuala_log_kv_t *ctx, size_t nctx,
                     const char *msg, va_list *pairs)
{
  kuala_buf_t b = KUALA_BUF_INIT(LOG_LINE_MAX);
  if (log_format == KUALA_LOG_JSON) {
    kuala_buf_puts(&b, "{\"ts\":\"");
    put_time(&b);
    kuala_buf_printf(&b, "\",\"level\":\"%s\",\"msg\":", kuala_log_level_name(level));
    kuala_buf_json_str(&b, msg, strlen(msg));
  } else {
    put_time(&b);
    kuala_buf_printf(&b, " %-5s ", kuala_log_level_name(level));
    kuala_buf_puts(&b, msg);
  }
  for (size_t i = 0; i < nctx; i++) {
    put_field(&b, ctx[i].key, ctx[i].value);
  }
  if (pairs) {
    const char *k;
    while ((k = va_arg(*pairs, const char *)) != NULL) {
      const char *v = va_arg(*pairs, const char *);
      put_field(&b, k, v);
    }
  }
  if (log_format == KUALA_LOG_JSON) {
    kuala_buf_putc(&b, '}');
  }
  emit(level, &b);
  kuala_buf_free(&b);
}

void kuala_logv(kuala_log_level_t level, const kuala_log_kv_t *ctx, size_t nctx, const char *msg,
                va_list pairs)
{
  if (!kuala_log_enabled(level)) {
    return;
  }
  va_list ap;
  va_copy(ap, pairs);
  log_line(level, ctx, nctx, msg, &ap);
  va_end(ap);
}

void kuala_log(kuala_log_level_t level, const kuala_log_kv_t *ctx, size_t nctx, const char *msg,
               ...)
{
  va_list ap;
  va_start(ap, msg);
  kuala_logv(level, ctx, nctx, msg, ap);
  va_end(ap);
}

void kuala_logf(kuala_log_level_t level, const kuala_log_kv_t *ctx, size_t nctx, const char *fmt,
                ...)
{
  if (!kuala_log_enabled(level)) {
    return;
  }
  kuala_buf_t m = KUALA_BUF_INIT(LOG_LINE_MAX);
  va_list ap;
  va_start(ap, fmt);
  kuala_buf_vprintf(&m, fmt, ap);
  va_end(ap);
  log_line(level, ctx, nctx, m.data ? m.data : "", NULL);
  kuala_buf_free(&m);
}
