/*
 * path.c: URL paths for Kubernetes resources, query strings, and the
 * mapping from HTTP status + Status reason to KUALA_E* codes.
 *
 * Path layout (spec §1.1): core group under /api/v1, named groups under
 * /apis/GROUP/VERSION; namespaced items under namespaces/NS. Every path
 * segment and query value is percent-encoded, so a name can never smuggle a
 * '/', '?' or '&' into the URL.
 */
#include <stdio.h>
#include <string.h>

#include "client/internal.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"

static int unreserved(unsigned char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int kuala__client_escape(kuala_buf_t *b, const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int rc;
    if (unreserved(*p)) {
      rc = kuala_buf_putc(b, (char)*p);
    } else {
      char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      rc = kuala_buf_append(b, enc, 3);
    }
    if (rc != 0) {
      return rc;
    }
  }
  return 0;
}

/* A path segment must be non-empty and may not be "." or "..". */
static int valid_segment(const char *s)
{
  return s && *s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

static void query(kuala_buf_t *b, int *first, const char *key, const char *value)
{
  kuala_buf_putc(b, *first ? '?' : '&');
  *first = 0;
  kuala_buf_puts(b, key);
  kuala_buf_putc(b, '=');
  kuala__client_escape(b, value);
}

int kuala_client_path(char **out, const kuala_client_target_t *t, const char *verb,
                      const kuala_client_opts_t *opts)
{
  *out = NULL;
  if (!t || !verb || !valid_segment(t->version) || !valid_segment(t->resource)) {
    return KUALA_EINVAL;
  }
  int is_list = strcmp(verb, "list") == 0;
  int is_watch = strcmp(verb, "watch") == 0;
  int is_create = strcmp(verb, "create") == 0;
  int item = !(is_list || is_watch || is_create);
  if (!is_list && !is_watch && !is_create && strcmp(verb, "get") != 0 &&
      strcmp(verb, "update") != 0 && strcmp(verb, "patch") != 0 && strcmp(verb, "delete") != 0) {
    return KUALA_EINVAL;
  }
  if (item && !valid_segment(t->name)) {
    return KUALA_EINVAL;
  }
  if (!item && t->name && !is_watch) {
    return KUALA_EINVAL;
  }
  if (t->ns && !valid_segment(t->ns)) {
    return KUALA_EINVAL;
  }
  if (t->group && *t->group && !valid_segment(t->group)) {
    return KUALA_EINVAL;
  }
  if (t->subresource && (!valid_segment(t->subresource) || !item)) {
    return KUALA_EINVAL;
  }

  kuala_buf_t b = KUALA_BUF_INIT(0);
  if (t->group && *t->group) {
    kuala_buf_puts(&b, "/apis/");
    kuala__client_escape(&b, t->group);
    kuala_buf_putc(&b, '/');
  } else {
    kuala_buf_puts(&b, "/api/");
  }
  kuala__client_escape(&b, t->version);
  if (t->ns) {
    kuala_buf_puts(&b, "/namespaces/");
    kuala__client_escape(&b, t->ns);
  }
  kuala_buf_putc(&b, '/');
  kuala__client_escape(&b, t->resource);
  if (item) {
    kuala_buf_putc(&b, '/');
    kuala__client_escape(&b, t->name);
    if (t->subresource) {
      kuala_buf_putc(&b, '/');
      kuala__client_escape(&b, t->subresource);
    }
  }

  int first = 1;
  char num[32];
  if (is_watch) {
    query(&b, &first, "watch", "1");
  }
  if (opts) {
    if ((is_list || is_watch) && opts->label_selector && *opts->label_selector) {
      query(&b, &first, "labelSelector", opts->label_selector);
    }
    if (is_watch && t->name) {
      kuala_buf_t fs = KUALA_BUF_INIT(0);
      kuala_buf_printf(&fs, "metadata.name=%s", t->name);
      if (opts->field_selector && *opts->field_selector) {
        kuala_buf_printf(&fs, ",%s", opts->field_selector);
      }
      query(&b, &first, "fieldSelector", fs.data);
      kuala_buf_free(&fs);
    } else if ((is_list || is_watch) && opts->field_selector && *opts->field_selector) {
      query(&b, &first, "fieldSelector", opts->field_selector);
    }
    if (is_list && opts->limit > 0) {
      snprintf(num, sizeof(num), "%ld", opts->limit);
      query(&b, &first, "limit", num);
    }
    if (is_list && opts->continue_token && *opts->continue_token) {
      query(&b, &first, "continue", opts->continue_token);
    }
    if ((is_list || is_watch || strcmp(verb, "get") == 0) && opts->resource_version) {
      query(&b, &first, "resourceVersion", opts->resource_version);
    }
    if ((is_list || is_watch) && opts->resource_version_match) {
      query(&b, &first, "resourceVersionMatch", opts->resource_version_match);
    }
    if (is_watch && opts->allow_watch_bookmarks) {
      query(&b, &first, "allowWatchBookmarks", "true");
    }
    if (is_watch && opts->send_initial_events) {
      query(&b, &first, "sendInitialEvents", "true");
    }
    if (is_watch && opts->timeout_seconds > 0) {
      snprintf(num, sizeof(num), "%ld", opts->timeout_seconds);
      query(&b, &first, "timeoutSeconds", num);
    }
    int write = is_create || strcmp(verb, "update") == 0 || strcmp(verb, "patch") == 0;
    if (write && opts->field_manager && *opts->field_manager) {
      query(&b, &first, "fieldManager", opts->field_manager);
    }
    if (strcmp(verb, "patch") == 0 && opts->force) {
      query(&b, &first, "force", "true");
    }
    if ((write || strcmp(verb, "delete") == 0) && opts->dry_run) {
      query(&b, &first, "dryRun", "All");
    }
  }
  *out = kuala_buf_take(&b, NULL);
  return 0;
}

int kuala_client_status_code(int http_status, const char *reason)
{
  int code = kuala_err_from_http(http_status);
  if (code == 0 || !reason) {
    return code;
  }
  if (strcmp(reason, "AlreadyExists") == 0) {
    return KUALA_EEXISTS;
  }
  if (strcmp(reason, "Conflict") == 0) {
    return KUALA_ECONFLICT;
  }
  if (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0) {
    return KUALA_EGONE;
  }
  return code;
}
