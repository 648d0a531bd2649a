/*
 * schema.c: CRD object checks and the per-instance structural schema
 * pipeline (prune → default → validate).
 *
 * The instance engines walk the object and the openAPIV3Schema side by
 * side. Paths are built the way the real server prints them: "spec.a",
 * "spec.list[0].b" for instances; "spec.versions[0].schema.openAPIV3Schema.
 * properties[spec].type" for CRD schema problems. Messages copy the
 * kube-openapi validator's wording (spec §7, §8.4).
 *
 * Ownership: the schema and CRD are borrowed; instance objects are modified
 * in place by prune and default; errors accumulate in the caller's
 * kuala_apierr_t as causes.
 */
#include "schema.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "jsonx.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/json.h"

/* ------------------------------------------------------------ helpers */

static json_object *sget(json_object *schema, const char *key)
{
  return kuala__json_get(schema, key);
}

static int sbool(json_object *schema, const char *key)
{
  json_object *v = sget(schema, key);
  return json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static const char *stype(json_object *schema)
{
  return kuala__json_get_str(schema, "type");
}

/* Child paths: "a" + "b" = "a.b"; root "" + "b" = "b"; index: "a[3]". */
static char *path_key(const char *base, const char *key)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  if (*base) {
    kuala_buf_printf(&b, "%s.%s", base, key);
  } else {
    kuala_buf_puts(&b, key);
  }
  return kuala_buf_take(&b, NULL);
}

static char *path_idx(const char *base, size_t i)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_printf(&b, "%s[%zu]", base, i);
  return kuala_buf_take(&b, NULL);
}

/* "spec.x[0]": bracket form used by CRD schema paths ("properties[spec]"). */
static char *path_bracket(const char *base, const char *member, const char *key)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_printf(&b, "%s.%s[%s]", base, member, key);
  return kuala_buf_take(&b, NULL);
}

/* The JSON type name of a value as the validator prints it. */
static const char *value_type(json_object *v)
{
  switch (json_object_get_type(v)) {
    case json_type_null:
      return "null";
    case json_type_boolean:
      return "boolean";
    case json_type_int:
      return "integer";
    case json_type_double:
      return "number";
    case json_type_string:
      return "string";
    case json_type_array:
      return "array";
    case json_type_object:
      return "object";
    default:
      return "unknown";
  }
}

static int is_integer(json_object *v)
{
  if (json_object_is_type(v, json_type_int)) {
    return 1;
  }
  if (json_object_is_type(v, json_type_double)) {
    double d = json_object_get_double(v);
    return isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0;
  }
  return 0;
}

static void add_err(kuala_apierr_t *err, const char *cause, const char *field, json_object *value,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_err(kuala_apierr_t *err, const char *cause, const char *field, json_object *value,
                    const char *fmt, ...)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    kuala_buf_vprintf(&b, fmt, ap);
    va_end(ap);
  }
  kuala__apierr_field(err, cause, field, value, b.data);
  kuala_buf_free(&b);
}

/* Numbers as Go's %v prints them: integers without a fraction. */
static void num_str(char *out, size_t n, json_object *v)
{
  if (json_object_is_type(v, json_type_int)) {
    snprintf(out, n, "%lld", (long long)json_object_get_int64(v));
    return;
  }
  double d = json_object_get_double(v);
  if (d == floor(d) && fabs(d) < 1e15) {
    snprintf(out, n, "%.0f", d);
  } else {
    snprintf(out, n, "%g", d);
  }
}

/* ------------------------------------------------------ fieldValidation */

int kuala__schema_field_validation(kuala_field_validation_t *out, const char *s,
                                   kuala_apierr_t *err)
{
  *out = KUALA_FV_WARN;
  if (!s || !*s || strcmp(s, "Warn") == 0) {
    return 0;
  }
  if (strcmp(s, "Ignore") == 0) {
    *out = KUALA_FV_IGNORE;
    return 0;
  }
  if (strcmp(s, "Strict") == 0) {
    *out = KUALA_FV_STRICT;
    return 0;
  }
  return kuala__apierr_set(err, 400, NULL,
                           "fieldValidation parameter unsupported: %s (accepted values: Ignore, "
                           "Warn, Strict)",
                           s);
}

/* ---------------------------------------------------------------- prune */

static const char *const meta_fields[] = {"name",
                                          "generateName",
                                          "namespace",
                                          "selfLink",
                                          "uid",
                                          "resourceVersion",
                                          "generation",
                                          "creationTimestamp",
                                          "deletionTimestamp",
                                          "deletionGracePeriodSeconds",
                                          "labels",
                                          "annotations",
                                          "ownerReferences",
                                          "finalizers",
                                          "managedFields",
                                          NULL};

static int is_meta_field(const char *k)
{
  for (const char *const *p = meta_fields; *p; p++) {
    if (strcmp(*p, k) == 0) {
      return 1;
    }
  }
  return 0;
}

static void note_unknown(json_object *unknown, const char *path)
{
  if (unknown) {
    json_object_array_add(unknown, json_object_new_string(path));
  }
}

/* Drop unknown ObjectMeta fields (the typed decoder of the real server does). */
static void prune_meta(json_object *meta, const char *path, json_object *unknown)
{
  if (!json_object_is_type(meta, json_type_object)) {
    return;
  }
  json_object *drop = json_object_new_array();
  json_object_object_foreach(meta, k, v)
  {
    (void)v;
    if (!is_meta_field(k)) {
      json_object_array_add(drop, json_object_new_string(k));
    }
  }
  for (size_t i = 0; i < json_object_array_length(drop); i++) {
    const char *dk = json_object_get_string(json_object_array_get_idx(drop, i));
    char *p = path_key(path, dk);
    note_unknown(unknown, p);
    kuala_free(p);
    json_object_object_del(meta, dk);
  }
  json_object_put(drop);
}

static void prune_node(json_object *v, json_object *s, const char *path, int root,
                       json_object *unknown);

static void prune_object(json_object *obj, json_object *s, const char *path, int root,
                         json_object *unknown)
{
  json_object *props = sget(s, "properties");
  json_object *addl = sget(s, "additionalProperties");
  int preserve = sbool(s, "x-kubernetes-preserve-unknown-fields");
  int embedded = sbool(s, "x-kubernetes-embedded-resource");
  json_object *drop = json_object_new_array();
  json_object_object_foreach(obj, k, v)
  {
    char *p = path_key(path, k);
    json_object *ps = kuala__json_get(props, k);
    if ((root || embedded) && (strcmp(k, "apiVersion") == 0 || strcmp(k, "kind") == 0)) {
      /* Always kept; they carry no schema below. */
    } else if ((root || embedded) && strcmp(k, "metadata") == 0) {
      prune_meta(v, p, unknown);
    } else if (ps) {
      prune_node(v, ps, p, 0, unknown);
    } else if (json_object_is_type(addl, json_type_object)) {
      prune_node(v, addl, p, 0, unknown);
    } else if (preserve ||
               (json_object_is_type(addl, json_type_boolean) && json_object_get_boolean(addl))) {
      /* Unknown but preserved: the subtree is kept as is. */
    } else {
      note_unknown(unknown, p);
      json_object_array_add(drop, json_object_new_string(k));
    }
    kuala_free(p);
  }
  for (size_t i = 0; i < json_object_array_length(drop); i++) {
    json_object_object_del(obj, json_object_get_string(json_object_array_get_idx(drop, i)));
  }
  json_object_put(drop);
}

static void prune_node(json_object *v, json_object *s, const char *path, int root,
                       json_object *unknown)
{
  if (!s) {
    return;
  }
  if (json_object_is_type(v, json_type_object)) {
    prune_object(v, s, path, root, unknown);
  } else if (json_object_is_type(v, json_type_array)) {
    json_object *items = sget(s, "items");
    if (!json_object_is_type(items, json_type_object)) {
      return;
    }
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
      char *p = path_idx(path, i);
      prune_node(json_object_array_get_idx(v, i), items, p, 0, unknown);
      kuala_free(p);
    }
  }
}

void kuala__schema_prune(json_object *obj, json_object *schema, json_object *unknown)
{
  if (!json_object_is_type(obj, json_type_object) || !schema) {
    return;
  }
  prune_object(obj, schema, "", 1, unknown);
}

/* -------------------------------------------------------------- default */

static void default_node(json_object *v, json_object *s);

static void default_object(json_object *obj, json_object *s)
{
  json_object *props = sget(s, "properties");
  if (json_object_is_type(props, json_type_object)) {
    json_object_object_foreach(props, k, ps)
    {
      json_object *def = NULL;
      int has_def = json_object_object_get_ex(ps, "default", &def);
      json_object *cur = NULL;
      int present = json_object_object_get_ex(obj, k, &cur);
      if (present && cur == NULL && !sbool(ps, "nullable")) {
        if (has_def && def) {
          json_object_object_add(obj, k, kuala_json_copy(def));
        } else {
          json_object_object_del(obj, k); /* a null without a default is pruned */
        }
      } else if (!present && has_def && def) {
        json_object_object_add(obj, k, kuala_json_copy(def));
      }
    }
  }
  json_object *addl = sget(s, "additionalProperties");
  json_object_object_foreach(obj, key, val)
  {
    json_object *ps = kuala__json_get(props, key);
    if (ps) {
      default_node(val, ps);
    } else if (json_object_is_type(addl, json_type_object)) {
      default_node(val, addl);
    }
  }
}

static void default_node(json_object *v, json_object *s)
{
  if (!s) {
    return;
  }
  if (json_object_is_type(v, json_type_object)) {
    default_object(v, s);
  } else if (json_object_is_type(v, json_type_array)) {
    json_object *items = sget(s, "items");
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n && items; i++) {
      default_node(json_object_array_get_idx(v, i), items);
    }
  }
}

void kuala__schema_default(json_object *obj, json_object *schema)
{
  default_node(obj, schema);
}

/* ------------------------------------------------------------- patterns */

/*
 * Translate an ECMA-262 pattern (what CRD authors write) to POSIX ERE: the
 * class escapes \d \w \s (and negations) become bracket expressions, other
 * escaped characters become literal. Returns NULL for constructs ERE lacks
 * (lookarounds, non-greedy quantifiers, backreferences); the pattern is then
 * not enforced (documented in docs/emulator-semantics.md).
 */
static char *ecma_to_ere(const char *re)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  int in_class = 0;
  for (const char *p = re; *p; p++) {
    if (*p == '\\' && p[1]) {
      char c = *++p;
      const char *cls = NULL;
      switch (c) {
        case 'd':
          cls = in_class ? "0-9" : "[0-9]";
          break;
        case 'w':
          cls = in_class ? "A-Za-z0-9_" : "[A-Za-z0-9_]";
          break;
        case 's':
          cls = in_class ? "[:space:]" : "[[:space:]]";
          break;
        case 'D':
          cls = in_class ? NULL : "[^0-9]";
          break;
        case 'W':
          cls = in_class ? NULL : "[^A-Za-z0-9_]";
          break;
        case 'S':
          cls = in_class ? NULL : "[^[:space:]]";
          break;
        case 'n':
          cls = "\n";
          break;
        case 't':
          cls = "\t";
          break;
        default:
          if (isdigit((unsigned char)c) || c == 'b' || c == 'B') {
            kuala_buf_free(&b);
            return NULL;
          }
          break;
      }
      if (cls) {
        kuala_buf_puts(&b, cls);
      } else if (c == 'D' || c == 'W' || c == 'S') {
        kuala_buf_free(&b);
        return NULL;
      } else if (in_class) {
        if (c == ']' || c == '\\' || c == '-' || c == '^') {
          /* Hard to express inside an ERE bracket portably. */
          kuala_buf_free(&b);
          return NULL;
        }
        kuala_buf_putc(&b, c);
      } else if (isalnum((unsigned char)c)) {
        kuala_buf_putc(&b, c);
      } else {
        kuala_buf_printf(&b, "[%c]", c == '^' ? '^' : c);
        if (c == '^') {
          /* "[^]" is not a literal caret: use an escaped form instead. */
          b.len -= 3;
          kuala_buf_puts(&b, "\\^");
        }
      }
      continue;
    }
    if (!in_class && *p == '(' && p[1] == '?') {
      if (p[2] == ':') {
        kuala_buf_putc(&b, '(');
        p += 2;
        continue;
      }
      kuala_buf_free(&b);
      return NULL;
    }
    if (!in_class && (*p == '*' || *p == '+' || *p == '?' || *p == '}') && p[1] == '?') {
      kuala_buf_free(&b);
      return NULL;
    }
    if (*p == '[' && !in_class) {
      in_class = 1;
      kuala_buf_putc(&b, '[');
      if (p[1] == '^') {
        kuala_buf_putc(&b, '^');
        p++;
      }
      if (p[1] == ']') {
        kuala_buf_putc(&b, ']');
        p++;
      }
      continue;
    }
    if (*p == ']' && in_class) {
      in_class = 0;
    }
    kuala_buf_putc(&b, *p);
  }
  if (in_class) {
    kuala_buf_free(&b);
    return NULL;
  }
  char *out = kuala_buf_take(&b, NULL);
  return out ? out : kuala_strdup("");
}

/* 1 match, 0 no match, -1 the pattern cannot be checked. */
static int pattern_match(const char *pattern, const char *s)
{
  char *ere = ecma_to_ere(pattern);
  if (!ere) {
    return -1;
  }
  regex_t rx;
  int rc = regcomp(&rx, ere, REG_EXTENDED | REG_NOSUB);
  kuala_free(ere);
  if (rc != 0) {
    return -1;
  }
  rc = regexec(&rx, s, 0, NULL, 0);
  regfree(&rx);
  return rc == 0 ? 1 : 0;
}

/* Number of UTF-8 code points (the validator counts runes, not bytes). */
static size_t utf8_len(const char *s)
{
  size_t n = 0;
  for (; *s; s++) {
    if (((unsigned char)*s & 0xC0) != 0x80) {
      n++;
    }
  }
  return n;
}

/* ------------------------------------------------------------- validate */

typedef struct {
  kuala_apierr_t *err;
  int count;
  char *first_detail; /* when non-NULL slot wanted: the first error's detail text */
  int want_detail;
} vctx_t;

static void validate_node(vctx_t *c, json_object *v, json_object *s, const char *path);

static void verr(vctx_t *c, const char *cause, const char *path, json_object *value,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void verr(vctx_t *c, const char *cause, const char *path, json_object *value,
                 const char *fmt, ...)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    kuala_buf_vprintf(&b, fmt, ap);
    va_end(ap);
  }
  kuala__apierr_field(c->err, cause, path, value, b.data);
  if (c->want_detail && !c->first_detail) {
    c->first_detail = kuala_strdup(
        b.data ? b.data : (strcmp(cause, KUALA_CAUSE_REQUIRED) == 0 ? "Required value" : ""));
  }
  kuala_buf_free(&b);
  c->count++;
}

static const char *body_path(const char *path)
{
  return *path ? path : "body";
}

/* Returns 0 when the type does not match (other checks are then skipped). */
static int check_type(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  const char *t = stype(s);
  if (sbool(s, "x-kubernetes-int-or-string")) {
    if (!is_integer(v) && !json_object_is_type(v, json_type_string)) {
      verr(c, KUALA_CAUSE_TYPE_INVALID, path, v,
           "%s in body must be of type integer,string: \"%s\"", body_path(path), value_type(v));
      return 0;
    }
    return 1;
  }
  if (!t) {
    return 1;
  }
  int ok = 0;
  if (strcmp(t, "object") == 0) {
    ok = json_object_is_type(v, json_type_object);
  } else if (strcmp(t, "array") == 0) {
    ok = json_object_is_type(v, json_type_array);
  } else if (strcmp(t, "string") == 0) {
    ok = json_object_is_type(v, json_type_string);
  } else if (strcmp(t, "integer") == 0) {
    ok = is_integer(v);
  } else if (strcmp(t, "number") == 0) {
    ok = kuala__json_is_number(v);
  } else if (strcmp(t, "boolean") == 0) {
    ok = json_object_is_type(v, json_type_boolean);
  } else {
    ok = 1; /* unknown types are rejected at CRD creation */
  }
  if (!ok) {
    verr(c, KUALA_CAUSE_TYPE_INVALID, path, v, "%s in body must be of type %s: \"%s\"",
         body_path(path), t, value_type(v));
  }
  return ok;
}

static void check_enum(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  json_object *en = sget(s, "enum");
  if (!json_object_is_type(en, json_type_array)) {
    return;
  }
  size_t n = json_object_array_length(en);
  for (size_t i = 0; i < n; i++) {
    if (kuala__json_equal(json_object_array_get_idx(en, i), v)) {
      return;
    }
  }
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_puts(&b, "supported values: ");
  for (size_t i = 0; i < n; i++) {
    kuala_buf_printf(&b, "%s%s", i ? ", " : "",
                     kuala_json_compact(json_object_array_get_idx(en, i), NULL));
  }
  verr(c, KUALA_CAUSE_NOT_SUPPORTED, path, v, "%s", b.data);
  kuala_buf_free(&b);
}

static void check_number(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  double d = json_object_get_double(v);
  char lim[64];
  json_object *mx = sget(s, "maximum");
  if (kuala__json_is_number(mx)) {
    int excl = sbool(s, "exclusiveMaximum");
    double m = json_object_get_double(mx);
    if (excl ? d >= m : d > m) {
      num_str(lim, sizeof lim, mx);
      verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body should be less than %s%s", body_path(path),
           excl ? "" : "or equal to ", lim);
    }
  }
  json_object *mn = sget(s, "minimum");
  if (kuala__json_is_number(mn)) {
    int excl = sbool(s, "exclusiveMinimum");
    double m = json_object_get_double(mn);
    if (excl ? d <= m : d < m) {
      num_str(lim, sizeof lim, mn);
      verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body should be greater than %s%s",
           body_path(path), excl ? "" : "or equal to ", lim);
    }
  }
  json_object *mo = sget(s, "multipleOf");
  if (kuala__json_is_number(mo) && json_object_get_double(mo) > 0) {
    double q = d / json_object_get_double(mo);
    if (fabs(q - nearbyint(q)) > 1e-9) {
      num_str(lim, sizeof lim, mo);
      verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body should be a multiple of %s",
           body_path(path), lim);
    }
  }
}

/* Digits s[0..n) all decimal. */
static int all_digits(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) {
      return 0;
    }
  }
  return 1;
}

/* RFC 3339 full-date: YYYY-MM-DD with a plausible month and day. */
static int is_date(const char *s, size_t n)
{
  if (n != 10 || s[4] != '-' || s[7] != '-' || !all_digits(s, 4) || !all_digits(s + 5, 2) ||
      !all_digits(s + 8, 2)) {
    return 0;
  }
  int m = (s[5] - '0') * 10 + (s[6] - '0');
  int d = (s[8] - '0') * 10 + (s[9] - '0');
  return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

/* RFC 3339 date-time: date "T" HH:MM:SS[.frac](Z|±HH:MM). */
static int is_date_time(const char *s)
{
  size_t n = strlen(s);
  if (n < 20 || !is_date(s, 10) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')) {
    return 0;
  }
  const char *t = s + 11;
  if (!all_digits(t, 2) || t[2] != ':' || !all_digits(t + 3, 2) || t[5] != ':' ||
      !all_digits(t + 6, 2)) {
    return 0;
  }
  const char *p = t + 8;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p)) {
      return 0;
    }
    while (isdigit((unsigned char)*p)) {
      p++;
    }
  }
  if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
    return 1;
  }
  return (*p == '+' || *p == '-') && all_digits(p + 1, 2) && p[3] == ':' && all_digits(p + 4, 2) &&
         p[6] == '\0';
}

static int is_uuid(const char *s)
{
  if (strlen(s) != 36) {
    return 0;
  }
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !isxdigit((unsigned char)s[i])) {
      return 0;
    }
  }
  return 1;
}

static int is_base64(const char *s)
{
  size_t n = strlen(s), pad = 0;
  if (n % 4 != 0) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '=') {
      pad++;
      if (i < n - 2) {
        return 0;
      }
    } else if (pad || !(isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '/')) {
      return 0;
    }
  }
  return 1;
}

/*
 * `format` checks for the common OpenAPI formats (others are accepted
 * unchecked, as the real server does for unknown formats). Returns 1 when
 * `str` conforms.
 */
static int format_ok(const char *fmt, const char *str)
{
  unsigned char addr[16];
  if (strcmp(fmt, "date-time") == 0 || strcmp(fmt, "datetime") == 0) {
    return is_date_time(str);
  }
  if (strcmp(fmt, "date") == 0) {
    return is_date(str, strlen(str));
  }
  if (strcmp(fmt, "uuid") == 0) {
    return is_uuid(str);
  }
  if (strcmp(fmt, "byte") == 0) {
    return is_base64(str);
  }
  if (strcmp(fmt, "ipv4") == 0) {
    return inet_pton(AF_INET, str, addr) == 1;
  }
  if (strcmp(fmt, "ipv6") == 0) {
    return inet_pton(AF_INET6, str, addr) == 1;
  }
  return 1;
}

static void check_string(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  const char *str = json_object_get_string(v);
  size_t len = utf8_len(str);
  json_object *mx = sget(s, "maxLength");
  if (json_object_is_type(mx, json_type_int) && (long long)len > json_object_get_int64(mx)) {
    long long m = (long long)json_object_get_int64(mx);
    verr(c, KUALA_CAUSE_TOO_LONG, path, v, "may not be more than %lld byte%s", m,
         m == 1 ? "" : "s");
  }
  json_object *mn = sget(s, "minLength");
  if (json_object_is_type(mn, json_type_int) && (long long)len < json_object_get_int64(mn)) {
    verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body should be at least %lld chars long",
         body_path(path), (long long)json_object_get_int64(mn));
  }
  const char *pat = kuala__json_get_str(s, "pattern");
  if (pat && pattern_match(pat, str) == 0) {
    verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body should match '%s'", body_path(path), pat);
  }
  const char *fmt = kuala__json_get_str(s, "format");
  if (fmt && !format_ok(fmt, str)) {
    verr(c, KUALA_CAUSE_TYPE_INVALID, path, v, "%s in body must be of type %s: %s", body_path(path),
         fmt, kuala_json_compact(v, NULL));
  }
}

static void check_array(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  size_t n = json_object_array_length(v);
  json_object *mx = sget(s, "maxItems");
  if (json_object_is_type(mx, json_type_int) && (long long)n > json_object_get_int64(mx)) {
    json_object *cnt = json_object_new_int64((int64_t)n);
    verr(c, KUALA_CAUSE_TOO_MANY, path, cnt, "must have at most %lld items",
         (long long)json_object_get_int64(mx));
    json_object_put(cnt);
  }
  json_object *mn = sget(s, "minItems");
  if (json_object_is_type(mn, json_type_int) && (long long)n < json_object_get_int64(mn)) {
    verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body should have at least %lld items",
         body_path(path), (long long)json_object_get_int64(mn));
  }
  const char *lt = kuala__json_get_str(s, "x-kubernetes-list-type");
  json_object *keys = sget(s, "x-kubernetes-list-map-keys");
  /* Map-list items must carry every key. */
  if (lt && strcmp(lt, "map") == 0 && json_object_is_type(keys, json_type_array)) {
    for (size_t i = 0; i < n; i++) {
      json_object *el = json_object_array_get_idx(v, i);
      if (!json_object_is_type(el, json_type_object)) {
        continue; /* the items type check reports it */
      }
      for (size_t k = 0; k < json_object_array_length(keys); k++) {
        json_object *kn = json_object_array_get_idx(keys, k);
        /* Defaults ran before validation, so a defaulted key is already present. */
        if (json_object_is_type(kn, json_type_string) &&
            !json_object_object_get_ex(el, json_object_get_string(kn), NULL)) {
          char *ip = path_idx(path, i);
          char *kp = path_key(ip, json_object_get_string(kn));
          verr(c, KUALA_CAUSE_REQUIRED, kp, NULL, NULL);
          kuala_free(kp);
          kuala_free(ip);
        }
      }
    }
  }
  for (size_t i = 0; lt && i < n; i++) {
    json_object *a = json_object_array_get_idx(v, i);
    for (size_t j = 0; j < i; j++) {
      json_object *b = json_object_array_get_idx(v, j);
      int dup = 0;
      json_object *shown = NULL;
      if (strcmp(lt, "set") == 0) {
        dup = kuala__json_equal(a, b);
        shown = json_object_get(a);
      } else if (strcmp(lt, "map") == 0 && json_object_is_type(keys, json_type_array)) {
        dup = 1;
        shown = json_object_new_object();
        for (size_t k = 0; k < json_object_array_length(keys); k++) {
          json_object *kn = json_object_array_get_idx(keys, k);
          const char *key =
              json_object_is_type(kn, json_type_string) ? json_object_get_string(kn) : NULL;
          if (!key) {
            continue;
          }
          json_object *ka = kuala__json_get(a, key), *kb = kuala__json_get(b, key);
          if (!kuala__json_equal(ka, kb)) {
            dup = 0;
          }
          if (ka) {
            json_object_object_add(shown, key, json_object_get(ka));
          }
        }
      }
      if (dup) {
        char *p = path_idx(path, i);
        verr(c, KUALA_CAUSE_DUPLICATE, p, shown, NULL);
        kuala_free(p);
        json_object_put(shown);
        break;
      }
      json_object_put(shown);
    }
  }
  json_object *items = sget(s, "items");
  if (json_object_is_type(items, json_type_object)) {
    for (size_t i = 0; i < n; i++) {
      char *p = path_idx(path, i);
      validate_node(c, json_object_array_get_idx(v, i), items, p);
      kuala_free(p);
    }
  }
}

static void check_required(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  json_object *req = sget(s, "required");
  for (size_t i = 0; json_object_is_type(req, json_type_array) && i < json_object_array_length(req);
       i++) {
    json_object *kn = json_object_array_get_idx(req, i);
    const char *k = json_object_is_type(kn, json_type_string) ? json_object_get_string(kn) : NULL;
    if (k && !json_object_object_get_ex(v, k, NULL)) {
      char *p = path_key(path, k);
      verr(c, KUALA_CAUSE_REQUIRED, p, NULL, NULL);
      kuala_free(p);
    }
  }
}

static void check_object(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  int np = json_object_object_length(v);
  json_object *mx = sget(s, "maxProperties");
  if (json_object_is_type(mx, json_type_int) && np > json_object_get_int64(mx)) {
    json_object *cnt = json_object_new_int(np);
    verr(c, KUALA_CAUSE_TOO_MANY, path, cnt, "must have at most %lld items",
         (long long)json_object_get_int64(mx));
    json_object_put(cnt);
  }
  json_object *mn = sget(s, "minProperties");
  if (json_object_is_type(mn, json_type_int) && np < json_object_get_int64(mn)) {
    verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body should have at least %lld properties",
         body_path(path), (long long)json_object_get_int64(mn));
  }
  if (sbool(s, "x-kubernetes-embedded-resource")) {
    const char *req_fields[] = {"apiVersion", "kind"};
    for (size_t i = 0; i < 2; i++) {
      const char *fv = kuala__json_get_str(v, req_fields[i]);
      if (!fv || !*fv) {
        char *p = path_key(path, req_fields[i]);
        verr(c, KUALA_CAUSE_REQUIRED, p, NULL, "must not be empty");
        kuala_free(p);
      }
    }
  }
  json_object *props = sget(s, "properties");
  json_object *addl = sget(s, "additionalProperties");
  json_object_object_foreach(v, k, val)
  {
    json_object *ps = kuala__json_get(props, k);
    if (!ps && json_object_is_type(addl, json_type_object)) {
      ps = addl;
    }
    if (ps) {
      char *p = path_key(path, k);
      validate_node(c, val, ps, p);
      kuala_free(p);
    }
  }
  /* Required after the properties, in the order of the kube-openapi validator. */
  check_required(c, v, s, path);
}

/* Number of errors `v` has against `s`, without recording them. */
static int count_errors(json_object *v, json_object *s, const char *path)
{
  kuala_apierr_t scratch = KUALA_APIERR_INIT;
  vctx_t sc = {&scratch, 0, NULL, 0};
  validate_node(&sc, v, s, path);
  kuala__apierr_clear(&scratch);
  return sc.count;
}

/* allOf / anyOf / oneOf / not: value validations only (structural schemas). */
static void check_combinators(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  json_object *all = sget(s, "allOf");
  for (size_t i = 0; json_object_is_type(all, json_type_array) && i < json_object_array_length(all);
       i++) {
    validate_node(c, v, json_object_array_get_idx(all, i), path);
  }
  json_object *any = sget(s, "anyOf");
  if (json_object_is_type(any, json_type_array) && json_object_array_length(any) > 0) {
    int ok = 0;
    for (size_t i = 0; i < json_object_array_length(any) && !ok; i++) {
      ok = count_errors(v, json_object_array_get_idx(any, i), path) == 0;
    }
    if (!ok) {
      verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body must validate at least one schema (anyOf)",
           body_path(path));
    }
  }
  json_object *one = sget(s, "oneOf");
  if (json_object_is_type(one, json_type_array) && json_object_array_length(one) > 0) {
    int passing = 0;
    for (size_t i = 0; i < json_object_array_length(one); i++) {
      passing += count_errors(v, json_object_array_get_idx(one, i), path) == 0;
    }
    if (passing != 1) {
      verr(c, KUALA_CAUSE_INVALID, path, v,
           "%s in body must validate one and only one schema (oneOf)", body_path(path));
    }
  }
  json_object *not = sget(s, "not");
  if (json_object_is_type(not, json_type_object) && count_errors(v, not, path) == 0) {
    verr(c, KUALA_CAUSE_INVALID, path, v, "%s in body must not validate the schema (not)",
         body_path(path));
  }
}

static void validate_node(vctx_t *c, json_object *v, json_object *s, const char *path)
{
  if (!json_object_is_type(s, json_type_object)) {
    return;
  }
  if (v == NULL) {
    if (sbool(s, "nullable") || (!stype(s) && !sbool(s, "x-kubernetes-int-or-string"))) {
      return;
    }
    check_type(c, v, s, path);
    return;
  }
  if (!check_type(c, v, s, path)) {
    return;
  }
  check_enum(c, v, s, path);
  check_combinators(c, v, s, path);
  if (kuala__json_is_number(v)) {
    check_number(c, v, s, path);
  } else if (json_object_is_type(v, json_type_string)) {
    check_string(c, v, s, path);
  } else if (json_object_is_type(v, json_type_array)) {
    check_array(c, v, s, path);
  } else if (json_object_is_type(v, json_type_object)) {
    check_object(c, v, s, path);
  }
}

int kuala__schema_validate(json_object *obj, json_object *schema, kuala_apierr_t *err)
{
  vctx_t c = {err, 0, NULL, 0};
  if (!schema) {
    return 0;
  }
  if (json_object_is_type(obj, json_type_object)) {
    /* The root's apiVersion/kind/metadata are the server's business, not the schema's. */
    json_object *props = sget(schema, "properties");
    json_object_object_foreach(obj, k, val)
    {
      if (strcmp(k, "apiVersion") == 0 || strcmp(k, "kind") == 0 || strcmp(k, "metadata") == 0) {
        continue;
      }
      json_object *ps = kuala__json_get(props, k);
      if (ps) {
        validate_node(&c, val, ps, k);
      }
    }
    check_required(&c, obj, schema, "");
    return c.count;
  }
  validate_node(&c, obj, schema, "");
  return c.count;
}

/* -------------------------------------------------------------- process */

int kuala__schema_process(json_object *obj, json_object *schema, kuala_schema_ctx_t *ctx,
                          kuala_apierr_t *err)
{
  if (!schema) {
    return 0;
  }
  json_object *unknown = json_object_new_array();
  kuala__schema_prune(obj, schema, unknown);
  size_t nu = json_object_array_length(unknown);
  if (nu > 0 && ctx->fv == KUALA_FV_STRICT) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    for (size_t i = 0; i < nu; i++) {
      kuala_buf_printf(&b, "%sunknown field \"%s\"", i ? ", " : "",
                       json_object_get_string(json_object_array_get_idx(unknown, i)));
    }
    kuala__apierr_set(err, 400, NULL,
                      "%s in version \"%s\" cannot be handled as a %s: strict decoding error: %s",
                      ctx->kind ? ctx->kind : "", ctx->version ? ctx->version : "",
                      ctx->kind ? ctx->kind : "", b.data);
    kuala_buf_free(&b);
    json_object_put(unknown);
    return 400;
  }
  if (nu > 0 && ctx->fv == KUALA_FV_WARN && ctx->warnings) {
    for (size_t i = 0; i < nu; i++) {
      kuala_buf_t b = KUALA_BUF_INIT(0);
      kuala_buf_printf(&b, "unknown field \"%s\"",
                       json_object_get_string(json_object_array_get_idx(unknown, i)));
      json_object_array_add(ctx->warnings, json_object_new_string(b.data));
      kuala_buf_free(&b);
    }
  }
  json_object_put(unknown);
  kuala__schema_default(obj, schema);
  kuala_apierr_t verrs = KUALA_APIERR_INIT;
  if (kuala__schema_validate(obj, schema, &verrs) > 0) {
    const char *name = ctx->name ? ctx->name : kuala_json_path_str(obj, "metadata.name");
    kuala__apierr_invalid(&verrs, ctx->kind, ctx->group, name ? name : "");
    kuala__apierr_clear(err);
    *err = verrs;
    return 422;
  }
  kuala__apierr_clear(&verrs);
  return 0;
}

/* ------------------------------------------------------------------ CRD */

json_object *kuala__schema_crd_version_schema(json_object *crd, const char *version)
{
  json_object *versions = kuala_json_path(crd, "spec.versions");
  if (!json_object_is_type(versions, json_type_array) || !version) {
    return NULL;
  }
  for (size_t i = 0; i < json_object_array_length(versions); i++) {
    json_object *v = json_object_array_get_idx(versions, i);
    const char *name = kuala__json_get_str(v, "name");
    if (name && strcmp(name, version) == 0) {
      return kuala_json_path(v, "schema.openAPIV3Schema");
    }
  }
  return NULL;
}

void kuala__schema_crd_default(json_object *crd)
{
  json_object *spec = kuala__json_get(crd, "spec");
  if (!json_object_is_type(spec, json_type_object)) {
    return;
  }
  json_object *names = kuala__json_get(spec, "names");
  const char *kind = kuala__json_get_str(names, "kind");
  if (kind && *kind) {
    const char *singular = kuala__json_get_str(names, "singular");
    if (!singular || !*singular) {
      char *low = kuala_strdup(kind);
      for (char *p = low; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
      }
      kuala_json_set_str(names, "singular", low);
      kuala_free(low);
    }
    const char *lk = kuala__json_get_str(names, "listKind");
    if (!lk || !*lk) {
      kuala_buf_t b = KUALA_BUF_INIT(0);
      kuala_buf_printf(&b, "%sList", kind);
      kuala_json_set_str(names, "listKind", b.data);
      kuala_buf_free(&b);
    }
  }
  json_object *conv = kuala_json_ensure_obj(spec, "conversion");
  if (!kuala__json_get_str(conv, "strategy")) {
    kuala_json_set_str(conv, "strategy", "None");
  }
}

/* DNS-1123 label (lowercase, 63 max). */
static int is_dns_label(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1])) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-')) {
      return 0;
    }
  }
  return 1;
}

static int is_dns_subdomain(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 253) {
    return 0;
  }
  char *copy = kuala_strdup(s);
  int ok = 1;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
    if (!is_dns_label(tok)) {
      ok = 0;
    }
  }
  if (s[0] == '.' || s[n - 1] == '.' || strstr(s, "..")) {
    ok = 0;
  }
  kuala_free(copy);
  return ok;
}

static const char dns_label_msg[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

static void check_name_field(kuala_apierr_t *err, json_object *names, const char *key, int required,
                             int dns)
{
  char path[64];
  snprintf(path, sizeof path, "spec.names.%s", key);
  json_object *v = kuala__json_get(names, key);
  const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
  if (!s || !*s) {
    if (required) {
      add_err(err, KUALA_CAUSE_REQUIRED, path, NULL, NULL);
    }
    return;
  }
  if (dns && !is_dns_label(s)) {
    add_err(err, KUALA_CAUSE_INVALID, path, v, "%s", dns_label_msg);
  }
}

/* Structural-schema checks of one schema node (recursive). */
static void check_structural(kuala_apierr_t *err, json_object *s, const char *path,
                             const char *ipath, int root, int under_preserve, int depth)
{
  if (depth > 64) {
    add_err(err, KUALA_CAUSE_FORBIDDEN, path, NULL, "schema nested too deeply");
    return;
  }
  if (!json_object_is_type(s, json_type_object)) {
    add_err(err, KUALA_CAUSE_INVALID, path, s, "must be an object");
    return;
  }
  const char *t = stype(s);
  int ios = sbool(s, "x-kubernetes-int-or-string");
  int preserve = sbool(s, "x-kubernetes-preserve-unknown-fields");
  char *tp = path_key(path, "type");
  if (root) {
    if (!t) {
      add_err(err, KUALA_CAUSE_REQUIRED, tp, NULL, "must not be empty at the root");
    } else if (strcmp(t, "object") != 0) {
      add_err(err, KUALA_CAUSE_INVALID, tp, sget(s, "type"), "must be object at the root");
    }
  } else if (!t && !ios && !preserve) {
    add_err(err, KUALA_CAUSE_REQUIRED, tp, NULL, "must not be empty for specified object fields");
  }
  if (t) {
    static const char *const types[] = {"object", "array",   "string", "integer",
                                        "number", "boolean", NULL};
    int ok = 0;
    for (const char *const *p = types; *p; p++) {
      ok |= strcmp(*p, t) == 0;
    }
    if (!ok) {
      json_object *tv = sget(s, "type");
      add_err(err, KUALA_CAUSE_NOT_SUPPORTED, tp, tv,
              "supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", "
              "\"string\"");
    }
  }
  kuala_free(tp);
  const char *forbidden[][2] = {{"$ref", "$ref is not supported"},
                                {"definitions", "definitions are not supported"},
                                {"id", "id is not supported"},
                                {"dependencies", "dependencies are not supported"},
                                {"patternProperties", "patternProperties is not supported"}};
  for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++) {
    if (sget(s, forbidden[i][0])) {
      char *p = path_key(path, forbidden[i][0]);
      add_err(err, KUALA_CAUSE_FORBIDDEN, p, NULL, "%s", forbidden[i][1]);
      kuala_free(p);
    }
  }
  if (sbool(s, "uniqueItems")) {
    char *p = path_key(path, "uniqueItems");
    add_err(err, KUALA_CAUSE_FORBIDDEN, p, NULL,
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic");
    kuala_free(p);
  }
  json_object *addl = sget(s, "additionalProperties");
  json_object *props = sget(s, "properties");
  if (json_object_is_type(addl, json_type_boolean) && !json_object_get_boolean(addl)) {
    char *p = path_key(path, "additionalProperties");
    add_err(err, KUALA_CAUSE_FORBIDDEN, p, NULL, "additionalProperties cannot be set to false");
    kuala_free(p);
  }
  if (addl && props) {
    char *p = path_key(path, "additionalProperties");
    add_err(err, KUALA_CAUSE_FORBIDDEN, p, NULL,
            "additionalProperties and properties are mutual exclusive");
    kuala_free(p);
  }
  if (json_object_is_type(props, json_type_object)) {
    json_object_object_foreach(props, k, ps)
    {
      char *p = path_bracket(path, "properties", k);
      if (root && strcmp(k, "metadata") == 0 && json_object_is_type(ps, json_type_object)) {
        json_object *mp = sget(ps, "properties");
        int bad = 0;
        if (json_object_is_type(mp, json_type_object)) {
          json_object_object_foreach(mp, mk, mv)
          {
            (void)mv;
            bad |= strcmp(mk, "name") != 0 && strcmp(mk, "generateName") != 0;
          }
        }
        if (bad || sget(ps, "additionalProperties") || sget(ps, "required")) {
          add_err(err, KUALA_CAUSE_FORBIDDEN, p, NULL,
                  "must not specify anything other than name and generateName, but metadata is "
                  "implicitly specified");
        }
      }
      char *ip = path_key(ipath, k);
      check_structural(err, ps, p, ip, 0, under_preserve || preserve, depth + 1);
      kuala_free(ip);
      kuala_free(p);
    }
  }
  if (json_object_is_type(addl, json_type_object)) {
    char *p = path_key(path, "additionalProperties");
    check_structural(err, addl, p, ipath, 0, under_preserve || preserve, depth + 1);
    kuala_free(p);
  }
  json_object *items = sget(s, "items");
  if (t && strcmp(t, "array") == 0 && !items) {
    char *p = path_key(path, "items");
    add_err(err, KUALA_CAUSE_REQUIRED, p, NULL, "must be specified");
    kuala_free(p);
  } else if (json_object_is_type(items, json_type_array)) {
    char *p = path_key(path, "items");
    add_err(err, KUALA_CAUSE_FORBIDDEN, p, NULL, "items must be a schema object and not an array");
    kuala_free(p);
  } else if (items) {
    char *p = path_key(path, "items");
    char *ip = path_idx(ipath, 0);
    check_structural(err, items, p, ip, 0, under_preserve || preserve, depth + 1);
    kuala_free(ip);
    kuala_free(p);
  }
  const char *pat = kuala__json_get_str(s, "pattern");
  if (pat) {
    regex_t rx;
    char *ere = ecma_to_ere(pat);
    if (ere && regcomp(&rx, ere, REG_EXTENDED | REG_NOSUB) != 0) {
      char *p = path_key(path, "pattern");
      add_err(err, KUALA_CAUSE_INVALID, p, sget(s, "pattern"),
              "must be a valid regular expression");
      kuala_free(p);
    } else if (ere) {
      regfree(&rx);
    }
    kuala_free(ere);
  }
  /* Defaults must validate against their own schema node. */
  json_object *def = NULL;
  if (json_object_object_get_ex(s, "default", &def) && def) {
    char *p = path_key(path, "default");
    kuala_apierr_t derr = KUALA_APIERR_INIT;
    json_object *copy = kuala_json_copy(def);
    if (json_object_is_type(copy, json_type_object)) {
      kuala__schema_prune(copy, s, NULL);
    }
    vctx_t c = {&derr, 0, NULL, 1};
    validate_node(&c, copy, s, ipath);
    if (c.count > 0) {
      add_err(err, KUALA_CAUSE_INVALID, p, def, "%s", c.first_detail ? c.first_detail : "");
    }
    kuala_free(c.first_detail);
    json_object_put(copy);
    kuala__apierr_clear(&derr);
    kuala_free(p);
  }
}

static void check_columns(kuala_apierr_t *err, json_object *cols, const char *vpath)
{
  if (!cols) {
    return;
  }
  if (!json_object_is_type(cols, json_type_array)) {
    char *p = path_key(vpath, "additionalPrinterColumns");
    add_err(err, KUALA_CAUSE_INVALID, p, cols, "must be a list");
    kuala_free(p);
    return;
  }
  static const char *const types[] = {"integer", "number", "string", "boolean", "date", NULL};
  for (size_t i = 0; i < json_object_array_length(cols); i++) {
    json_object *col = json_object_array_get_idx(cols, i);
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_printf(&b, "%s.additionalPrinterColumns[%zu]", vpath, i);
    const char *name = kuala__json_get_str(col, "name");
    const char *type = kuala__json_get_str(col, "type");
    const char *jp = kuala__json_get_str(col, "jsonPath");
    if (!name || !*name) {
      char *p = path_key(b.data, "name");
      add_err(err, KUALA_CAUSE_REQUIRED, p, NULL, NULL);
      kuala_free(p);
    }
    int ok = 0;
    for (const char *const *t = types; type && *t; t++) {
      ok |= strcmp(*t, type) == 0;
    }
    if (!ok) {
      char *p = path_key(b.data, "type");
      add_err(err, KUALA_CAUSE_NOT_SUPPORTED, p, kuala__json_get(col, "type"),
              "supported values: \"integer\", \"number\", \"string\", \"boolean\", \"date\"");
      kuala_free(p);
    }
    if (!jp || !*jp) {
      char *p = path_key(b.data, "jsonPath");
      add_err(err, KUALA_CAUSE_REQUIRED, p, NULL, NULL);
      kuala_free(p);
    } else if (jp[0] != '.') {
      char *p = path_key(b.data, "jsonPath");
      add_err(err, KUALA_CAUSE_INVALID, p, kuala__json_get(col, "jsonPath"),
              "must be a simple json path starting with .");
      kuala_free(p);
    }
    kuala_buf_free(&b);
  }
}

/* The schema node a simple ".a.b" path leads to, or NULL. */
static json_object *schema_at(json_object *schema, const char *jp)
{
  if (!jp || jp[0] != '.') {
    return NULL;
  }
  json_object *cur = schema;
  const char *p = jp + 1;
  while (cur && *p) {
    size_t n = strcspn(p, ".");
    if (n == 0 || p[n - 1] == ']' || memchr(p, '[', n)) {
      return NULL;
    }
    char *key = kuala_strndup(p, n);
    cur = kuala__json_get(sget(cur, "properties"), key);
    kuala_free(key);
    p += n;
    if (*p == '.') {
      p++;
    }
  }
  return cur;
}

/* selectableFields (spec §6): at most 8, each a path to a string, integer or boolean field. */
static void check_selectable(kuala_apierr_t *err, json_object *sel, json_object *schema,
                             const char *vpath)
{
  if (!sel) {
    return;
  }
  char *sp = path_key(vpath, "selectableFields");
  if (!json_object_is_type(sel, json_type_array)) {
    add_err(err, KUALA_CAUSE_INVALID, sp, sel, "must be a list");
    kuala_free(sp);
    return;
  }
  size_t n = json_object_array_length(sel);
  if (n > 8) {
    json_object *cnt = json_object_new_int64((int64_t)n);
    add_err(err, KUALA_CAUSE_TOO_MANY, sp, cnt, "must have at most 8 items");
    json_object_put(cnt);
  }
  for (size_t i = 0; i < n; i++) {
    json_object *f = json_object_array_get_idx(sel, i);
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_printf(&b, "%s[%zu].jsonPath", sp, i);
    json_object *jv = kuala__json_get(f, "jsonPath");
    const char *jp = json_object_is_type(jv, json_type_string) ? json_object_get_string(jv) : NULL;
    json_object *target = schema_at(schema, jp);
    const char *t = stype(target);
    if (!jp || !*jp) {
      add_err(err, KUALA_CAUSE_REQUIRED, b.data, NULL, NULL);
    } else if (jp[0] != '.') {
      add_err(err, KUALA_CAUSE_INVALID, b.data, jv, "must be a simple json path starting with .");
    } else if (!target) {
      add_err(err, KUALA_CAUSE_INVALID, b.data, jv,
              "is an invalid path: no such field in the schema");
    } else if (!t || (strcmp(t, "string") != 0 && strcmp(t, "integer") != 0 &&
                      strcmp(t, "boolean") != 0)) {
      add_err(err, KUALA_CAUSE_INVALID, b.data, jv,
              "selectable field type must be one of: string, integer, boolean");
    } else {
      for (size_t j = 0; j < i; j++) {
        const char *other = kuala__json_get_str(json_object_array_get_idx(sel, j), "jsonPath");
        if (other && strcmp(other, jp) == 0) {
          add_err(err, KUALA_CAUSE_DUPLICATE, b.data, jv, NULL);
          break;
        }
      }
    }
    kuala_buf_free(&b);
  }
  kuala_free(sp);
}

int kuala__schema_crd_validate(json_object *crd, kuala_apierr_t *err)
{
  kuala_apierr_t e = KUALA_APIERR_INIT;
  const char *name = kuala_json_path_str(crd, "metadata.name");
  json_object *spec = kuala__json_get(crd, "spec");
  const char *group = kuala__json_get_str(spec, "group");
  json_object *names = kuala__json_get(spec, "names");
  const char *plural = kuala__json_get_str(names, "plural");

  if (!json_object_is_type(spec, json_type_object)) {
    add_err(&e, KUALA_CAUSE_REQUIRED, "spec", NULL, NULL);
  }
  if (!group || !*group) {
    add_err(&e, KUALA_CAUSE_REQUIRED, "spec.group", NULL, NULL);
  } else if (!strchr(group, '.')) {
    add_err(&e, KUALA_CAUSE_INVALID, "spec.group", kuala__json_get(spec, "group"),
            "should be a domain with at least one dot");
  } else if (!is_dns_subdomain(group)) {
    add_err(&e, KUALA_CAUSE_INVALID, "spec.group", kuala__json_get(spec, "group"),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character");
  }
  if (plural && group && name) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_printf(&b, "%s.%s", plural, group);
    if (strcmp(b.data, name) != 0) {
      add_err(&e, KUALA_CAUSE_INVALID, "metadata.name", kuala_json_path(crd, "metadata.name"),
              "must be spec.names.plural+\".\"+spec.group");
    }
    kuala_buf_free(&b);
  } else if (!name || !*name) {
    add_err(&e, KUALA_CAUSE_REQUIRED, "metadata.name", NULL, "name or generateName is required");
  }
  if (!json_object_is_type(names, json_type_object)) {
    add_err(&e, KUALA_CAUSE_REQUIRED, "spec.names", NULL, NULL);
  } else {
    check_name_field(&e, names, "plural", 1, 1);
    check_name_field(&e, names, "singular", 1, 1);
    check_name_field(&e, names, "kind", 1, 0);
    check_name_field(&e, names, "listKind", 1, 0);
    json_object *sn = kuala__json_get(names, "shortNames");
    for (size_t i = 0; json_object_is_type(sn, json_type_array) && i < json_object_array_length(sn);
         i++) {
      json_object *v = json_object_array_get_idx(sn, i);
      if (!json_object_is_type(v, json_type_string) || !is_dns_label(json_object_get_string(v))) {
        char path[64];
        snprintf(path, sizeof path, "spec.names.shortNames[%zu]", i);
        add_err(&e, KUALA_CAUSE_INVALID, path, v, "%s", dns_label_msg);
      }
    }
    const char *kind = kuala__json_get_str(names, "kind");
    const char *lk = kuala__json_get_str(names, "listKind");
    if (kind && lk && *kind && strcmp(kind, lk) == 0) {
      add_err(&e, KUALA_CAUSE_INVALID, "spec.names.listKind", kuala__json_get(names, "listKind"),
              "kind and listKind cannot be the same");
    }
  }
  json_object *scope = kuala__json_get(spec, "scope");
  const char *sc =
      json_object_is_type(scope, json_type_string) ? json_object_get_string(scope) : "";
  if (!*sc) {
    add_err(&e, KUALA_CAUSE_REQUIRED, "spec.scope", NULL, NULL);
  } else if (strcmp(sc, "Namespaced") != 0 && strcmp(sc, "Cluster") != 0) {
    add_err(&e, KUALA_CAUSE_NOT_SUPPORTED, "spec.scope", scope,
            "supported values: \"Cluster\", \"Namespaced\"");
  }
  json_object *versions = kuala__json_get(spec, "versions");
  size_t nv =
      json_object_is_type(versions, json_type_array) ? json_object_array_length(versions) : 0;
  if (nv == 0) {
    add_err(&e, KUALA_CAUSE_INVALID, "spec.versions", versions,
            "must have exactly one version "
            "marked as storage version");
  } else {
    int storage = 0;
    for (size_t i = 0; i < nv; i++) {
      json_object *v = json_object_array_get_idx(versions, i);
      char vpath[64];
      snprintf(vpath, sizeof vpath, "spec.versions[%zu]", i);
      const char *vn = kuala__json_get_str(v, "name");
      char *np = path_key(vpath, "name");
      if (!vn || !*vn) {
        add_err(&e, KUALA_CAUSE_REQUIRED, np, NULL, NULL);
      } else if (!is_dns_label(vn)) {
        add_err(&e, KUALA_CAUSE_INVALID, np, kuala__json_get(v, "name"), "%s", dns_label_msg);
      } else {
        for (size_t j = 0; j < i; j++) {
          const char *other = kuala__json_get_str(json_object_array_get_idx(versions, j), "name");
          if (other && strcmp(other, vn) == 0) {
            add_err(&e, KUALA_CAUSE_INVALID, "spec.versions", versions,
                    "must contain unique version names");
            break;
          }
        }
      }
      kuala_free(np);
      if (sbool(v, "storage")) {
        storage++;
      }
      json_object *schema = kuala_json_path(v, "schema.openAPIV3Schema");
      char spath[128];
      snprintf(spath, sizeof spath, "%s.schema.openAPIV3Schema", vpath);
      if (!schema) {
        add_err(&e, KUALA_CAUSE_REQUIRED, spath, NULL, "schemas are required");
      } else {
        check_structural(&e, schema, spath, "", 1, 0, 0);
      }
      check_columns(&e, kuala__json_get(v, "additionalPrinterColumns"), vpath);
      check_selectable(&e, kuala__json_get(v, "selectableFields"), schema, vpath);
    }
    if (storage != 1) {
      add_err(&e, KUALA_CAUSE_INVALID, "spec.versions", versions,
              "must have exactly one version marked as storage version");
    }
  }
  if (kuala__apierr_cause_count(&e) > 0) {
    kuala__apierr_invalid(&e, "CustomResourceDefinition", "apiextensions.k8s.io", name ? name : "");
    kuala__apierr_clear(err);
    *err = e;
    return 422;
  }
  kuala__apierr_clear(&e);
  return 0;
}
