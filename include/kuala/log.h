/*
 * Structured, levelled logging.
 *
 * A line is a level, a message and key=value fields. Context that belongs to
 * a whole operation (controller, key, bundle) travels as a kuala_log_kv_t
 * array so every line of a reconcile carries it. Two formats: text
 * (`ts level msg k=v ...`, values quoted when needed) and JSON (one object a
 * line, keys ts/level/msg then the fields), chosen with --log-format.
 */
#ifndef KUALA_LOG_H
#define KUALA_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
  KUALA_LOG_ERROR = 0,
  KUALA_LOG_WARN = 1,
  KUALA_LOG_INFO = 2,
  KUALA_LOG_DEBUG = 3,
  KUALA_LOG_TRACE = 4,
} kuala_log_level_t;

typedef enum {
  KUALA_LOG_TEXT = 0,
  KUALA_LOG_JSON = 1,
} kuala_log_format_t;

typedef struct {
  const char *key;
  const char *value;
} kuala_log_kv_t;

/* Receives each finished line (no trailing newline). Default: stderr. */
typedef void (*kuala_log_sink_cb)(void *data, kuala_log_level_t level, const char *line,
                                  size_t len);

void kuala_log_set_level(kuala_log_level_t level);
kuala_log_level_t kuala_log_get_level(void);
void kuala_log_set_format(kuala_log_format_t format);
/* NULL restores the stderr sink. */
void kuala_log_set_sink(kuala_log_sink_cb cb, void *data);
/* "error".."trace" → level; KUALA_EINVAL for anything else. */
int kuala_log_parse_level(const char *s, kuala_log_level_t *out);
/* "text" | "json" → format; KUALA_EINVAL for anything else. */
int kuala_log_parse_format(const char *s, kuala_log_format_t *out);
const char *kuala_log_level_name(kuala_log_level_t level);
int kuala_log_enabled(kuala_log_level_t level);

/* Log `msg` with context fields `ctx[0..nctx)` followed by the NULL-terminated
 * key, value, key, value, ... pairs in the varargs. */
void kuala_log(kuala_log_level_t level, const kuala_log_kv_t *ctx, size_t nctx, const char *msg,
               ...);
void kuala_logv(kuala_log_level_t level, const kuala_log_kv_t *ctx, size_t nctx, const char *msg,
                va_list pairs);
/* printf-style message, context fields only. */
void kuala_logf(kuala_log_level_t level, const kuala_log_kv_t *ctx, size_t nctx, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

/* KUALA_LOG(level, msg, "k", "v", ...): pairs are NULL-terminated for you. */
#define KUALA_LOG(level, ...)                       \
  do {                                              \
    if (kuala_log_enabled(level)) {                 \
      kuala_log(level, NULL, 0, __VA_ARGS__, NULL); \
    }                                               \
  } while (0)

#endif /* KUALA_LOG_H */
