/*
 * selector.c: label and field selectors (see kuala/selector.h).
 *
 * A selector is an array of requirements; each owns its key and value
 * strings. Parsing is a small hand-written lexer + recursive descent over the
 * grammar of apimachinery's labels.Parse; matching is a loop over the
 * requirements that asks a lookup callback for each key's value.
 *
 * Invariants: a requirement of op EQ/NEQ/GT/LT has exactly one value,
 * IN/NOTIN at least one (an empty list `()` means the one value ""),
 * EXISTS/ABSENT none.
 */
#include "kuala/selector.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"

typedef struct {
  char *key;
  kuala_selector_op_t op;
  char **values;
  size_t nvalues;
} req_t;

struct kuala_selector_s {
  req_t *reqs;
  size_t n;
  size_t cap;
  int fields; /* a field selector: values are escaped when formatted */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
  if (!err || errlen == 0) {
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static req_t *add_req(kuala_selector_t *sel, char *key, kuala_selector_op_t op)
{
  if (sel->n == sel->cap) {
    sel->cap = sel->cap ? sel->cap * 2 : 4;
    sel->reqs = kuala_realloc(sel->reqs, sel->cap * sizeof *sel->reqs);
  }
  req_t *r = &sel->reqs[sel->n++];
  r->key = key;
  r->op = op;
  r->values = NULL;
  r->nvalues = 0;
  return r;
}

static void req_add_value(req_t *r, char *v)
{
  r->values = kuala_realloc(r->values, (r->nvalues + 1) * sizeof *r->values);
  r->values[r->nvalues++] = v;
}

void kuala_selector_free(kuala_selector_t *sel)
{
  if (!sel) {
    return;
  }
  for (size_t i = 0; i < sel->n; i++) {
    kuala_free(sel->reqs[i].key);
    for (size_t j = 0; j < sel->reqs[i].nvalues; j++) {
      kuala_free(sel->reqs[i].values[j]);
    }
    kuala_free(sel->reqs[i].values);
  }
  kuala_free(sel->reqs);
  kuala_free(sel);
}

/* ---- label syntax checks (apimachinery validation.IsQualifiedName) ---- */

static int is_alnum(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 characters. */
static int valid_name_part(const char *s, size_t n)
{
  if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1])) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
      return 0;
    }
  }
  return 1;
}

/* DNS-1123 subdomain: lowercase alnum, '-' and '.', alnum at both ends. */
static int valid_dns_subdomain(const char *s, size_t n)
{
  if (n == 0 || n > 253) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) {
      return 0;
    }
  }
  return is_alnum(s[0]) && is_alnum(s[n - 1]);
}

static int check_key(const char *key, char *err, size_t errlen)
{
  const char *slash = strchr(key, '/');
  const char *name = key;
  if (slash) {
    if (!valid_dns_subdomain(key, (size_t)(slash - key))) {
      seterr(err, errlen,
             "invalid label key \"%s\": prefix part must be a lowercase RFC 1123 subdomain", key);
      return KUALA_EINVAL;
    }
    name = slash + 1;
  }
  if (!valid_name_part(name, strlen(name))) {
    seterr(err, errlen,
           "invalid label key \"%s\": name part must consist of alphanumeric characters, "
           "'-', '_' or '.', and must start and end with an alphanumeric character (at most "
           "63 characters)",
           key);
    return KUALA_EINVAL;
  }
  return 0;
}

static int check_value(const char *v, char *err, size_t errlen)
{
  size_t n = strlen(v);
  if (n == 0 || valid_name_part(v, n)) {
    return 0;
  }
  seterr(err, errlen,
         "invalid label value: \"%s\": a valid label must be an empty string or consist of "
         "alphanumeric characters, '-', '_' or '.', and must start and end with an "
         "alphanumeric character (at most 63 characters)",
         v);
  return KUALA_EINVAL;
}

/* ---- label lexer ---- */

typedef enum {
  T_END,
  T_IDENT,
  T_NOT,   /* ! */
  T_EQ,    /* = */
  T_DEQ,   /* == */
  T_NEQ,   /* != */
  T_COMMA, /* , */
  T_OPEN,  /* ( */
  T_CLOSE, /* ) */
  T_GT,    /* > */
  T_LT,    /* < */
  T_IN,    /* in */
  T_NOTIN, /* notin */
} tok_kind_t;

typedef struct {
  const char *s;
  size_t pos;
  /* Current token. */
  tok_kind_t kind;
  const char *start;
  size_t len;
} lexer_t;

static int special(char c)
{
  return c == '!' || c == '=' || c == ',' || c == '(' || c == ')' || c == '<' || c == '>';
}

static void lex_next(lexer_t *lx)
{
  const char *s = lx->s;
  while (s[lx->pos] && isspace((unsigned char)s[lx->pos])) {
    lx->pos++;
  }
  lx->start = s + lx->pos;
  char c = s[lx->pos];
  if (c == '\0') {
    lx->kind = T_END;
    lx->len = 0;
    return;
  }
  if (special(c)) {
    char d = s[lx->pos + 1];
    lx->len = 1;
    switch (c) {
      case '!':
        if (d == '=') {
          lx->kind = T_NEQ;
          lx->len = 2;
        } else {
          lx->kind = T_NOT;
        }
        break;
      case '=':
        if (d == '=') {
          lx->kind = T_DEQ;
          lx->len = 2;
        } else {
          lx->kind = T_EQ;
        }
        break;
      case ',':
        lx->kind = T_COMMA;
        break;
      case '(':
        lx->kind = T_OPEN;
        break;
      case ')':
        lx->kind = T_CLOSE;
        break;
      case '<':
        lx->kind = T_LT;
        break;
      default:
        lx->kind = T_GT;
        break;
    }
    lx->pos += lx->len;
    return;
  }
  size_t n = 0;
  while (s[lx->pos + n] && !special(s[lx->pos + n]) && !isspace((unsigned char)s[lx->pos + n])) {
    n++;
  }
  lx->len = n;
  lx->pos += n;
  lx->kind = T_IDENT;
  if (n == 2 && memcmp(lx->start, "in", 2) == 0) {
    lx->kind = T_IN;
  } else if (n == 5 && memcmp(lx->start, "notin", 5) == 0) {
    lx->kind = T_NOTIN;
  }
}

static const char *tok_text(const lexer_t *lx, char *tmp, size_t tmplen)
{
  if (lx->kind == T_END) {
    return "end of string";
  }
  size_t n = lx->len < tmplen - 1 ? lx->len : tmplen - 1;
  memcpy(tmp, lx->start, n);
  tmp[n] = '\0';
  return tmp;
}

static int unexpected(const lexer_t *lx, const char *expected, char *err, size_t errlen)
{
  char tmp[64];
  seterr(err, errlen, "unable to parse requirement: found '%s', expected: %s",
         tok_text(lx, tmp, sizeof tmp), expected);
  return KUALA_EINVAL;
}

/* In the value position of k=v, "in" and "notin" are plain identifiers. */
static int is_ident_like(tok_kind_t k)
{
  return k == T_IDENT || k == T_IN || k == T_NOTIN;
}

static int parse_label_req(kuala_selector_t *sel, lexer_t *lx, char *err, size_t errlen)
{
  int negate = 0;
  if (lx->kind == T_NOT) {
    negate = 1;
    lex_next(lx);
  }
  if (!is_ident_like(lx->kind)) {
    return unexpected(lx, "identifier", err, errlen);
  }
  char *key = kuala_strndup(lx->start, lx->len);
  if (check_key(key, err, errlen) < 0) {
    kuala_free(key);
    return KUALA_EINVAL;
  }
  lex_next(lx);
  if (negate) {
    add_req(sel, key, KUALA_SEL_ABSENT);
    if (lx->kind != T_COMMA && lx->kind != T_END) {
      return unexpected(lx, "',' or end of string", err, errlen);
    }
    return 0;
  }
  switch (lx->kind) {
    case T_COMMA:
    case T_END:
      add_req(sel, key, KUALA_SEL_EXISTS);
      return 0;
    case T_EQ:
    case T_DEQ:
    case T_NEQ:
    case T_GT:
    case T_LT: {
      kuala_selector_op_t op = lx->kind == T_NEQ  ? KUALA_SEL_NEQ
                               : lx->kind == T_GT ? KUALA_SEL_GT
                               : lx->kind == T_LT ? KUALA_SEL_LT
                                                  : KUALA_SEL_EQ;
      req_t *r = add_req(sel, key, op);
      lex_next(lx);
      char *v;
      if (is_ident_like(lx->kind)) {
        v = kuala_strndup(lx->start, lx->len);
        lex_next(lx);
      } else if ((lx->kind == T_COMMA || lx->kind == T_END) && op != KUALA_SEL_GT &&
                 op != KUALA_SEL_LT) {
        v = kuala_strdup(""); /* "k=" selects an empty value */
      } else {
        return unexpected(lx, "identifier", err, errlen);
      }
      req_add_value(r, v);
      if (op == KUALA_SEL_GT || op == KUALA_SEL_LT) {
        char *end;
        errno = 0;
        (void)strtoll(v, &end, 10);
        if (errno || *v == '\0' || *end != '\0') {
          seterr(err, errlen,
                 "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an "
                 "integer, found '%s'",
                 v);
          return KUALA_EINVAL;
        }
      } else if (check_value(v, err, errlen) < 0) {
        return KUALA_EINVAL;
      }
      break;
    }
    case T_IN:
    case T_NOTIN: {
      req_t *r = add_req(sel, key, lx->kind == T_IN ? KUALA_SEL_IN : KUALA_SEL_NOTIN);
      lex_next(lx);
      if (lx->kind != T_OPEN) {
        return unexpected(lx, "'('", err, errlen);
      }
      lex_next(lx);
      /* values: [ident] (',' [ident])* ')' ; missing entries are "". */
      for (;;) {
        if (is_ident_like(lx->kind)) {
          req_add_value(r, kuala_strndup(lx->start, lx->len));
          if (check_value(r->values[r->nvalues - 1], err, errlen) < 0) {
            return KUALA_EINVAL;
          }
          lex_next(lx);
        } else if (lx->kind == T_COMMA || lx->kind == T_CLOSE) {
          req_add_value(r, kuala_strdup(""));
        } else {
          return unexpected(lx, "identifier, ',' or ')'", err, errlen);
        }
        if (lx->kind == T_CLOSE) {
          lex_next(lx);
          break;
        }
        if (lx->kind != T_COMMA) {
          return unexpected(lx, "',' or ')'", err, errlen);
        }
        lex_next(lx);
      }
      break;
    }
    default:
      kuala_free(key);
      return unexpected(lx, "'=', '!=', '==', 'in', 'notin', ',' or end of string", err, errlen);
  }
  if (lx->kind != T_COMMA && lx->kind != T_END) {
    return unexpected(lx, "',' or end of string", err, errlen);
  }
  return 0;
}

int kuala_selector_parse_labels(kuala_selector_t **out, const char *text, char *err, size_t errlen)
{
  *out = NULL;
  kuala_selector_t *sel = kuala_calloc(1, sizeof *sel);
  lexer_t lx = {.s = text ? text : ""};
  lex_next(&lx);
  if (lx.kind == T_END) {
    *out = sel;
    return 0;
  }
  for (;;) {
    if (parse_label_req(sel, &lx, err, errlen) < 0) {
      kuala_selector_free(sel);
      return KUALA_EINVAL;
    }
    if (lx.kind == T_END) {
      break;
    }
    lex_next(&lx); /* the comma */
  }
  *out = sel;
  return 0;
}

/* ---- field selectors ---- */

/* Unescape `\\`, `\,` and `\=`; an unescaped ',' or '=' or a bad escape is
 * an error. */
static char *unescape_field_value(const char *s, size_t n, char *err, size_t errlen)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_puts(&b, "");
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '\\') {
      if (i + 1 >= n || (s[i + 1] != '\\' && s[i + 1] != ',' && s[i + 1] != '=')) {
        seterr(err, errlen, "invalid field selector: invalid escape sequence in value %.*s", (int)n,
               s);
        kuala_buf_free(&b);
        return NULL;
      }
      c = s[++i];
    } else if (c == ',' || c == '=') {
      seterr(err, errlen, "invalid field selector: unescaped '%c' in value %.*s", c, (int)n, s);
      kuala_buf_free(&b);
      return NULL;
    }
    kuala_buf_putc(&b, c);
  }
  return kuala_buf_take(&b, NULL);
}

static int parse_field_term(kuala_selector_t *sel, const char *t, size_t n, char *err,
                            size_t errlen)
{
  static const struct {
    const char *text;
    kuala_selector_op_t op;
  } ops[] = {{"!=", KUALA_SEL_NEQ}, {"==", KUALA_SEL_EQ}, {"=", KUALA_SEL_EQ}};
  for (size_t i = 0; i < n; i++) {
    if (t[i] == '\\') {
      i++;
      continue;
    }
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
      size_t ol = strlen(ops[k].text);
      if (i + ol <= n && memcmp(t + i, ops[k].text, ol) == 0) {
        if (i == 0) {
          break;
        }
        char *v = unescape_field_value(t + i + ol, n - i - ol, err, errlen);
        if (!v) {
          return KUALA_EINVAL;
        }
        req_t *r = add_req(sel, kuala_strndup(t, i), ops[k].op);
        req_add_value(r, v);
        return 0;
      }
    }
  }
  seterr(err, errlen, "invalid selector: '%.*s'; can't understand '%.*s'", (int)n, t, (int)n, t);
  return KUALA_EINVAL;
}

int kuala_selector_parse_fields(kuala_selector_t **out, const char *text, char *err, size_t errlen)
{
  *out = NULL;
  kuala_selector_t *sel = kuala_calloc(1, sizeof *sel);
  sel->fields = 1;
  const char *s = text ? text : "";
  size_t start = 0, i = 0;
  for (;; i++) {
    if (s[i] == '\\' && s[i + 1]) {
      i++;
      continue;
    }
    if (s[i] == ',' || s[i] == '\0') {
      if (i > start && parse_field_term(sel, s + start, i - start, err, errlen) < 0) {
        kuala_selector_free(sel);
        return KUALA_EINVAL;
      }
      if (s[i] == '\0') {
        break;
      }
      start = i + 1;
    }
  }
  *out = sel;
  return 0;
}

/* ---- accessors ---- */

int kuala_selector_empty(const kuala_selector_t *sel)
{
  return !sel || sel->n == 0;
}

size_t kuala_selector_count(const kuala_selector_t *sel)
{
  return sel ? sel->n : 0;
}

void kuala_selector_req(const kuala_selector_t *sel, size_t i, const char **key,
                        kuala_selector_op_t *op, const char *const **values, size_t *nvalues)
{
  const req_t *r = &sel->reqs[i];
  if (key) {
    *key = r->key;
  }
  if (op) {
    *op = r->op;
  }
  if (values) {
    *values = (const char *const *)r->values;
  }
  if (nvalues) {
    *nvalues = r->nvalues;
  }
}

const char *kuala_selector_pinned(const kuala_selector_t *sel, const char *key)
{
  for (size_t i = 0; sel && i < sel->n; i++) {
    if (sel->reqs[i].op == KUALA_SEL_EQ && strcmp(sel->reqs[i].key, key) == 0) {
      return sel->reqs[i].values[0];
    }
  }
  return NULL;
}

/* ---- matching ---- */

static int in_set(const req_t *r, const char *v)
{
  for (size_t i = 0; i < r->nvalues; i++) {
    if (strcmp(r->values[i], v) == 0) {
      return 1;
    }
  }
  return 0;
}

static int int_cmp_ok(const char *have, const char *want, int gt)
{
  char *end;
  errno = 0;
  long long a = strtoll(have, &end, 10);
  if (errno || *have == '\0' || *end != '\0') {
    return 0;
  }
  long long b = strtoll(want, NULL, 10);
  return gt ? a > b : a < b;
}

int kuala_selector_matches(const kuala_selector_t *sel, kuala_selector_lookup_cb lookup, void *data)
{
  if (!sel) {
    return 1;
  }
  for (size_t i = 0; i < sel->n; i++) {
    const req_t *r = &sel->reqs[i];
    const char *v = lookup(data, r->key);
    int ok;
    switch (r->op) {
      case KUALA_SEL_EQ:
        ok = v && strcmp(v, r->values[0]) == 0;
        break;
      case KUALA_SEL_NEQ:
        ok = !v || strcmp(v, r->values[0]) != 0;
        break;
      case KUALA_SEL_IN:
        ok = v && in_set(r, v);
        break;
      case KUALA_SEL_NOTIN:
        ok = !v || !in_set(r, v);
        break;
      case KUALA_SEL_EXISTS:
        ok = v != NULL;
        break;
      case KUALA_SEL_ABSENT:
        ok = v == NULL;
        break;
      case KUALA_SEL_GT:
      case KUALA_SEL_LT:
        ok = v && int_cmp_ok(v, r->values[0], r->op == KUALA_SEL_GT);
        break;
      default:
        ok = 0;
        break;
    }
    if (!ok) {
      return 0;
    }
  }
  return 1;
}

static const char *json_lookup(void *data, const char *key)
{
  json_object *labels = data, *v;
  if (!labels || !json_object_is_type(labels, json_type_object) ||
      !json_object_object_get_ex(labels, key, &v) || !json_object_is_type(v, json_type_string)) {
    return NULL;
  }
  return json_object_get_string(v);
}

int kuala_selector_matches_json(const kuala_selector_t *sel, struct json_object *labels)
{
  return kuala_selector_matches(sel, json_lookup, labels);
}

typedef struct {
  const char *const *keys;
  const char *const *values;
  size_t n;
} kv_t;

static const char *kv_lookup(void *data, const char *key)
{
  const kv_t *kv = data;
  for (size_t i = 0; i < kv->n; i++) {
    if (strcmp(kv->keys[i], key) == 0) {
      return kv->values[i];
    }
  }
  return NULL;
}

int kuala_selector_matches_kv(const kuala_selector_t *sel, const char *const *keys,
                              const char *const *values, size_t n)
{
  kv_t kv = {keys, values, n};
  return kuala_selector_matches(sel, kv_lookup, &kv);
}

size_t kuala_selector_format(const kuala_selector_t *sel, char *buf, size_t buflen)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_puts(&b, "");
  for (size_t i = 0; sel && i < sel->n; i++) {
    const req_t *r = &sel->reqs[i];
    if (i) {
      kuala_buf_putc(&b, ',');
    }
    if (sel->fields) {
      /* Field values escape '\\', ',' and '=' (k8s fields.EscapeValue), so
       * that the text parses back to the same value: metadata.name=foo\,bar
       * came back as two terms. Keys are kept as written, as k8s does. */
      kuala_buf_printf(&b, "%s%s", r->key, r->op == KUALA_SEL_NEQ ? "!=" : "=");
      for (const char *v = r->values[0]; *v; v++) {
        if (*v == '\\' || *v == ',' || *v == '=') {
          kuala_buf_putc(&b, '\\');
        }
        kuala_buf_putc(&b, *v);
      }
      continue;
    }
    switch (r->op) {
      case KUALA_SEL_EQ:
        kuala_buf_printf(&b, "%s=%s", r->key, r->values[0]);
        break;
      case KUALA_SEL_NEQ:
        kuala_buf_printf(&b, "%s!=%s", r->key, r->values[0]);
        break;
      case KUALA_SEL_GT:
        kuala_buf_printf(&b, "%s>%s", r->key, r->values[0]);
        break;
      case KUALA_SEL_LT:
        kuala_buf_printf(&b, "%s<%s", r->key, r->values[0]);
        break;
      case KUALA_SEL_EXISTS:
        kuala_buf_puts(&b, r->key);
        break;
      case KUALA_SEL_ABSENT:
        kuala_buf_printf(&b, "!%s", r->key);
        break;
      case KUALA_SEL_IN:
      case KUALA_SEL_NOTIN:
        kuala_buf_printf(&b, "%s %s (", r->key, r->op == KUALA_SEL_IN ? "in" : "notin");
        for (size_t j = 0; j < r->nvalues; j++) {
          kuala_buf_printf(&b, "%s%s", j ? "," : "", r->values[j]);
        }
        kuala_buf_putc(&b, ')');
        break;
    }
  }
  size_t n = b.len;
  if (buflen) {
    size_t c = n < buflen - 1 ? n : buflen - 1;
    memcpy(buf, b.data, c);
    buf[c] = '\0';
  }
  kuala_buf_free(&b);
  return n;
}
