/*
 * jscan.c: the validating single-pass scanner behind tree-free ingest (see
 * base/jscan.h).
 *
 * The walk is kuala_json_validate()'s (iterative, one bit per open
 * container, no recursion) with a role attached to the few outer levels
 * that matter: a container's role follows from its parent's role and the
 * key it is the value of (LIST -"items"-> ITEMS -> ITEM -"metadata"-> META
 * -"labels"-> LABELS ...). Everything below those levels is only
 * validated. Each level with a role keeps a bit per key it has seen, which
 * is how duplicates are caught without a set.
 *
 * Invariants: a result field is only written for a container whose role
 * says so; item records are appended when an ITEMS element starts and
 * completed when it ends; nothing is allocated except the item array when
 * a list has more items than any before it.
 */
#include "base/jscan.h"

#include <stdio.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"

enum {
  R_NONE = 0,
  R_LIST,     /* the List object */
  R_LISTMETA, /* its metadata */
  R_ITEMS,    /* its items array */
  R_EVENT,    /* a watch event object */
  R_ITEM,     /* an object the store takes */
  R_META,     /* that object's metadata */
  R_LABELS,   /* metadata.labels (span only) */
  R_OWNERS,   /* metadata.ownerReferences (span only) */
};

/* Keys we look at; K_OTHER for the rest. */
enum {
  K_OTHER = 0,
  K_ITEMS,
  K_METADATA,
  K_CONTINUE,
  K_RV,
  K_TYPE,
  K_OBJECT,
  K_NAME,
  K_NAMESPACE,
  K_UID,
  K_LABELS,
  K_OWNERS,
};

/* Roles are tracked this deep (a list item's labels sit at depth 5). */
#define ROLE_DEPTH 8

typedef struct {
  uint8_t role;
  uint16_t seen; /* bit per K_* key met in this container */
  size_t start;  /* offset of the opening bracket */
  kuala__jobj_t *obj;
} level_t;

static const unsigned char str_stop[256] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                            1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1};

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Non-zero when one of the 8 bytes in v may be a quote, a backslash or a
 * control character (never zero when one is). */
static inline uint64_t stop8(uint64_t v)
{
  uint64_t q = v ^ (ONES * '"'), b = v ^ (ONES * '\\');
  return ((q - ONES) & ~q & HIGHS) | ((b - ONES) & ~b & HIGHS) | ((v - ONES * 0x20) & ~v & HIGHS);
}

static int is_ws(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(char c)
{
  return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int bad(char *err, size_t errlen, const char *why, size_t at)
{
  if (err && errlen) {
    snprintf(err, errlen, "%s at offset %zu", why, at);
  }
  return KUALA_EBADMSG;
}

int kuala__jscan_string(const char *s, size_t n, size_t *i, int *esc, char *err, size_t errlen)
{
  size_t j = *i + 1;
  for (;;) {
    /* Eight bytes at a time while none can end the run, then bytewise
     * over at most eight (the word test may flag a plain byte). */
    while (j + 8 <= n) {
      uint64_t v;
      memcpy(&v, s + j, 8);
      if (stop8(v)) {
        break;
      }
      j += 8;
    }
    size_t lim = j + 8 < n ? j + 8 : n;
    while (j < lim && !str_stop[(unsigned char)s[j]]) {
      j++;
    }
    if (j == lim && j < n) {
      continue;
    }
    if (j >= n) {
      return bad(err, errlen, "unterminated string", *i);
    }
    char c = s[j];
    if (c == '"') {
      *i = j + 1;
      return 0;
    }
    if (c != '\\') {
      return bad(err, errlen, "control character in string", j);
    }
    *esc = 1;
    if (j + 1 >= n) {
      return bad(err, errlen, "unterminated string", *i);
    }
    switch (s[j + 1]) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        j += 2;
        break;
      case 'u':
        if (j + 5 >= n || !is_hex(s[j + 2]) || !is_hex(s[j + 3]) || !is_hex(s[j + 4]) ||
            !is_hex(s[j + 5])) {
          return bad(err, errlen, "invalid \\u escape", j);
        }
        j += 6;
        break;
      default:
        return bad(err, errlen, "invalid escape in string", j);
    }
  }
}

int kuala__jscan_number(const char *s, size_t n, size_t *i, char *err, size_t errlen)
{
  size_t j = *i;
  if (s[j] == '-') {
    j++;
  }
  if (j >= n || !is_digit(s[j])) {
    return bad(err, errlen, "invalid number", *i);
  }
  if (s[j] == '0') {
    j++;
    if (j < n && is_digit(s[j])) {
      return bad(err, errlen, "leading zero in number", *i);
    }
  } else {
    while (j < n && is_digit(s[j])) {
      j++;
    }
  }
  if (j < n && s[j] == '.') {
    j++;
    if (j >= n || !is_digit(s[j])) {
      return bad(err, errlen, "digit expected after decimal point", j);
    }
    while (j < n && is_digit(s[j])) {
      j++;
    }
  }
  if (j < n && (s[j] == 'e' || s[j] == 'E')) {
    j++;
    if (j < n && (s[j] == '+' || s[j] == '-')) {
      j++;
    }
    if (j >= n || !is_digit(s[j])) {
      return bad(err, errlen, "digit expected in exponent", j);
    }
    while (j < n && is_digit(s[j])) {
      j++;
    }
  }
  *i = j;
  return 0;
}

int kuala__jscan_literal(const char *s, size_t n, size_t *i, char *err, size_t errlen)
{
  static const char *const lits[] = {"true", "false", "null"};
  static const size_t lens[] = {4, 5, 4};
  for (size_t k = 0; k < 3; k++) {
    if (lits[k][0] == s[*i]) {
      if (n - *i < lens[k] || memcmp(s + *i, lits[k], lens[k]) != 0) {
        break;
      }
      *i += lens[k];
      return 0;
    }
  }
  return bad(err, errlen, "invalid literal (only true, false and null; lower case)", *i);
}

int kuala__jscan_scalar(const char *s, size_t n, size_t *i, int *esc, char *err, size_t errlen)
{
  char c = s[*i];
  if (c == '"') {
    return kuala__jscan_string(s, n, i, esc, err, errlen);
  }
  if (c == '-' || is_digit(c)) {
    return kuala__jscan_number(s, n, i, err, errlen);
  }
  if (c == 't' || c == 'f' || c == 'n') {
    return kuala__jscan_literal(s, n, i, err, errlen);
  }
  char why[48];
  if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f) {
    snprintf(why, sizeof why, "unexpected character '%c'", c);
  } else {
    snprintf(why, sizeof why, "unexpected byte 0x%02x", (unsigned char)c);
  }
  return bad(err, errlen, why, *i);
}

/* Which K_* a raw key is, for a container with role `role`. Keys with
 * escapes are decoded first ("na\u006de" is "name" to any decoder). */
static int key_id(int role, const char *k, size_t len, int esc)
{
  char tmp[32];
  if (esc) {
    if (len > 6 * sizeof tmp) {
      return K_OTHER;
    }
    kuala_buf_t b;
    kuala_buf_init(&b, 0);
    kuala__jscan_unescape(k, len, &b);
    if (b.len >= sizeof tmp) {
      kuala_buf_free(&b);
      return K_OTHER;
    }
    memcpy(tmp, b.data, b.len);
    len = b.len;
    kuala_buf_free(&b);
    k = tmp;
  }
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0)
  switch (role) {
    case R_LIST:
      return IS("items") ? K_ITEMS : IS("metadata") ? K_METADATA : K_OTHER;
    case R_LISTMETA:
      return IS("continue") ? K_CONTINUE : IS("resourceVersion") ? K_RV : K_OTHER;
    case R_EVENT:
      return IS("type") ? K_TYPE : IS("object") ? K_OBJECT : K_OTHER;
    case R_ITEM:
      return IS("metadata") ? K_METADATA : K_OTHER;
    case R_META:
      switch (len ? k[0] : 0) {
        case 'n':
          return IS("name") ? K_NAME : IS("namespace") ? K_NAMESPACE : K_OTHER;
        case 'r':
          return IS("resourceVersion") ? K_RV : K_OTHER;
        case 'u':
          return IS("uid") ? K_UID : K_OTHER;
        case 'l':
          return IS("labels") ? K_LABELS : K_OTHER;
        case 'o':
          return IS("ownerReferences") ? K_OWNERS : K_OTHER;
        default:
          return K_OTHER;
      }
    default:
      return K_OTHER;
  }
#undef IS
}

void kuala__jscan_init(kuala__jscan_t *sc)
{
  memset(sc, 0, sizeof(*sc));
}

void kuala__jscan_free(kuala__jscan_t *sc)
{
  kuala_free(sc->items);
  memset(sc, 0, sizeof(*sc));
}

static kuala__jobj_t *new_item(kuala__jscan_t *sc, size_t off)
{
  if (sc->nitems == sc->items_cap) {
    sc->items_cap = sc->items_cap ? sc->items_cap * 2 : 256;
    sc->items = kuala_realloc(sc->items, sc->items_cap * sizeof(kuala__jobj_t));
  }
  kuala__jobj_t *o = &sc->items[sc->nitems++];
  memset(o, 0, sizeof(*o));
  o->off = off;
  return o;
}

/* A non-container value of an item at the level that makes it an item:
 * recorded as "not an object". */
static void scalar_item(kuala__jscan_t *sc, size_t off, size_t end)
{
  kuala__jobj_t *o = new_item(sc, off);
  o->len = end - off;
  o->flags = KUALA_JOBJ_NOTOBJ;
}

int kuala__jscan(kuala__jscan_t *sc, kuala__jscan_mode_t mode, const char *s, size_t len,
                 size_t max_depth, char *err, size_t errlen)
{
  uint64_t stack[(KUALA_JSON_WIRE_DEPTH + 63) / 64];
  level_t lv[ROLE_DEPTH];
  size_t depth = 0;
  int rc;
  /* The role of the value about to start, and which key it is under. */
  int next_role = mode == KUALA_JSCAN_LIST ? R_LIST : mode == KUALA_JSCAN_EVENT ? R_EVENT : R_ITEM;
  int cur_key = K_OTHER;
  size_t dup_at = SIZE_MAX; /* first duplicate in an envelope */
  sc->nitems = 0;
  memset(&sc->obj, 0, sizeof(sc->obj));
  memset(&sc->type, 0, sizeof(sc->type));
  memset(&sc->cont, 0, sizeof(sc->cont));
  memset(&sc->rv, 0, sizeof(sc->rv));
  sc->items_kind = KUALA_JITEMS_ABSENT;
  sc->top_is_object = 0;
  if (max_depth > KUALA_JSON_WIRE_DEPTH) {
    max_depth = KUALA_JSON_WIRE_DEPTH;
  }
  size_t i = 0;
  while (i < len && is_ws(s[i])) {
    i++;
  }
  for (;;) {
    /* A value starts at s[i]; next_role is its role, cur_key its key. */
    if (i >= len) {
      return bad(err, errlen, "unexpected end of JSON input", i);
    }
    char c = s[i];
    int parent = depth > 0 && depth <= ROLE_DEPTH ? lv[depth - 1].role : R_NONE;
    if (c == '{' || c == '[') {
      if (depth >= max_depth) {
        char why[64];
        snprintf(why, sizeof why, "nesting deeper than %zu", max_depth);
        return bad(err, errlen, why, i);
      }
      if (c == '{') {
        stack[depth / 64] |= (uint64_t)1 << (depth % 64);
      } else {
        stack[depth / 64] &= ~((uint64_t)1 << (depth % 64));
      }
      if (depth < ROLE_DEPTH) {
        level_t *l = &lv[depth];
        int role = next_role;
        /* A role only holds for the container type it expects. */
        if (c == '[' ? (role != R_ITEMS && role != R_OWNERS)
                     : (role == R_ITEMS || role == R_OWNERS)) {
          role = R_NONE;
        }
        l->role = (uint8_t)role;
        l->seen = 0;
        l->start = i;
        l->obj = NULL;
        if (depth == 0) {
          sc->top_is_object = c == '{';
        }
        if (role == R_ITEM) {
          if (parent == R_ITEMS) {
            l->obj = new_item(sc, i);
          } else {
            l->obj = &sc->obj;
            l->obj->off = i;
          }
        } else if (role == R_META || role == R_LABELS || role == R_OWNERS) {
          l->obj = lv[depth - 1].obj;
        }
        if (role == R_META) {
          l->obj->flags |= KUALA_JOBJ_META;
        } else if (role == R_ITEMS) {
          sc->items_kind = KUALA_JITEMS_ARRAY;
        }
      }
      if (parent == R_ITEMS && c == '[') {
        new_item(sc, i)->flags = KUALA_JOBJ_NOTOBJ;
      } else if (depth == 0 && c == '[' && mode == KUALA_JSCAN_OBJECT) {
        sc->obj.flags = KUALA_JOBJ_NOTOBJ;
      } else if (parent == R_EVENT && cur_key == K_OBJECT && c == '[') {
        sc->obj.flags = KUALA_JOBJ_NOTOBJ; /* (no span: the event is refused) */
      } else if (parent == R_LIST && cur_key == K_ITEMS && c == '{') {
        sc->items_kind = KUALA_JITEMS_OTHER;
      }
      depth++;
      i++;
      while (i < len && is_ws(s[i])) {
        i++;
      }
      if (i < len && s[i] == (c == '{' ? '}' : ']')) {
        i++;
        goto close;
      }
      if (c == '[') {
        next_role = depth <= ROLE_DEPTH && lv[depth - 1].role == R_ITEMS ? R_ITEM : R_NONE;
        cur_key = K_OTHER;
        continue;
      }
      goto member;
    }
    size_t vstart = i;
    int esc = 0;
    if ((rc = kuala__jscan_scalar(s, len, &i, &esc, err, errlen)) < 0) {
      return rc;
    }
    /* Record the scalars we want. */
    if (parent != R_NONE) {
      kuala__jstr_t *dst = NULL;
      kuala__jobj_t *o = lv[depth - 1].obj;
      switch (parent) {
        case R_LISTMETA:
          dst = cur_key == K_CONTINUE ? &sc->cont : cur_key == K_RV ? &sc->rv : NULL;
          break;
        case R_EVENT:
          dst = cur_key == K_TYPE ? &sc->type : NULL;
          if (cur_key == K_OBJECT) {
            sc->obj.off = vstart;
            sc->obj.len = i - vstart;
            sc->obj.flags = KUALA_JOBJ_NOTOBJ;
          }
          break;
        case R_LIST:
          if (cur_key == K_ITEMS) {
            sc->items_kind = c == 'n' ? KUALA_JITEMS_NULL : KUALA_JITEMS_OTHER;
          }
          break;
        case R_ITEMS:
          scalar_item(sc, vstart, i);
          break;
        case R_META:
          dst = cur_key == K_NAME        ? &o->name
                : cur_key == K_NAMESPACE ? &o->ns
                : cur_key == K_RV        ? &o->rv
                : cur_key == K_UID       ? &o->uid
                                         : NULL;
          break;
        default:
          break;
      }
      if (dst && c == '"') {
        dst->off = vstart + 1;
        dst->len = i - vstart - 2;
        dst->set = 1;
        dst->esc = (uint8_t)esc;
      }
    } else if (depth == 0 && mode == KUALA_JSCAN_OBJECT) {
      sc->obj.off = vstart;
      sc->obj.len = i - vstart;
      sc->obj.flags = KUALA_JOBJ_NOTOBJ;
    }
    goto after_value;
  close:
    /* The container that opened at depth - 1 ended just before s[i]. */
    depth--;
    if (depth < ROLE_DEPTH) {
      level_t *l = &lv[depth];
      size_t span = i - l->start;
      switch (l->role) {
        case R_ITEM:
          l->obj->len = span;
          break;
        case R_LABELS:
          l->obj->labels.off = l->start;
          l->obj->labels.len = span;
          break;
        case R_OWNERS:
          l->obj->owners.off = l->start;
          l->obj->owners.len = span;
          break;
        default:
          break;
      }
    }
  after_value:
    while (i < len && is_ws(s[i])) {
      i++;
    }
    if (depth == 0) {
      if (i < len) {
        return bad(err, errlen, "data after the top-level value", i);
      }
      return dup_at == SIZE_MAX ? 0 : bad(err, errlen, "duplicate key", dup_at);
    }
    if (i >= len) {
      return bad(err, errlen, "unexpected end of JSON input", i);
    }
    int in_obj = (stack[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
    if (s[i] == (in_obj ? '}' : ']')) {
      i++;
      goto close;
    }
    if (s[i] != ',') {
      return bad(err, errlen, in_obj ? "',' or '}' expected" : "',' or ']' expected", i);
    }
    i++;
    while (i < len && is_ws(s[i])) {
      i++;
    }
    if (!in_obj) {
      next_role = depth <= ROLE_DEPTH && lv[depth - 1].role == R_ITEMS ? R_ITEM : R_NONE;
      cur_key = K_OTHER;
      continue;
    }
  member:
    /* An object member: "key" ws ':' ws value. */
    if (i >= len || s[i] != '"') {
      return bad(err, errlen, i >= len ? "unexpected end of JSON input" : "string key expected", i);
    }
    {
      size_t kstart = i;
      int kesc = 0;
      if ((rc = kuala__jscan_string(s, len, &i, &kesc, err, errlen)) < 0) {
        return rc;
      }
      cur_key = K_OTHER;
      next_role = R_NONE;
      if (depth <= ROLE_DEPTH && lv[depth - 1].role != R_NONE) {
        level_t *l = &lv[depth - 1];
        cur_key = key_id(l->role, s + kstart + 1, i - kstart - 2, kesc);
        if (cur_key != K_OTHER) {
          if (l->seen & (1u << cur_key)) {
            if (l->role == R_LIST || l->role == R_LISTMETA || l->role == R_EVENT) {
              /* Reported once the rest is known valid: a text error
               * wins, with the validator's message. */
              if (dup_at == SIZE_MAX) {
                dup_at = kstart;
              }
            } else {
              l->obj->flags |= KUALA_JOBJ_DUP;
            }
          }
          l->seen |= (uint16_t)(1u << cur_key);
        }
        switch (cur_key) {
          case K_ITEMS:
            next_role = R_ITEMS;
            break;
          case K_METADATA:
            next_role = l->role == R_LIST ? R_LISTMETA : R_META;
            break;
          case K_OBJECT:
            next_role = R_ITEM;
            break;
          case K_LABELS:
            next_role = R_LABELS;
            break;
          case K_OWNERS:
            next_role = R_OWNERS;
            break;
          default:
            break;
        }
      }
    }
    while (i < len && is_ws(s[i])) {
      i++;
    }
    if (i >= len || s[i] != ':') {
      return bad(err, errlen, "':' expected after object key", i);
    }
    i++;
    while (i < len && is_ws(s[i])) {
      i++;
    }
  }
}

static int hexval(char c)
{
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

unsigned kuala__jscan_hex4(const char *p)
{
  return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

size_t kuala__utf8_encode(unsigned cp, char b[4])
{
  if (cp < 0x80) {
    b[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    b[0] = (char)(0xc0 | cp >> 6);
    b[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    b[0] = (char)(0xe0 | cp >> 12);
    b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
    b[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  b[0] = (char)(0xf0 | cp >> 18);
  b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
  b[2] = (char)(0x80 | (cp >> 6 & 0x3f));
  b[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

void kuala__jscan_unescape(const char *raw, size_t len, kuala_buf_t *out)
{
  size_t i = 0;
  while (i < len) {
    const char *bs = memchr(raw + i, '\\', len - i);
    size_t plain = bs ? (size_t)(bs - raw) - i : len - i;
    kuala_buf_append(out, raw + i, plain);
    i += plain;
    if (i >= len) {
      break;
    }
    char e = raw[i + 1];
    i += 2;
    switch (e) {
      case 'b':
        kuala_buf_putc(out, '\b');
        break;
      case 'f':
        kuala_buf_putc(out, '\f');
        break;
      case 'n':
        kuala_buf_putc(out, '\n');
        break;
      case 'r':
        kuala_buf_putc(out, '\r');
        break;
      case 't':
        kuala_buf_putc(out, '\t');
        break;
      case 'u': {
        unsigned cp = kuala__jscan_hex4(raw + i);
        i += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
          if (i + 6 <= len && raw[i] == '\\' && raw[i + 1] == 'u') {
            unsigned lo = kuala__jscan_hex4(raw + i + 2);
            if (lo >= 0xdc00 && lo < 0xe000) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
              i += 6;
            } else {
              cp = 0xfffd;
            }
          } else {
            cp = 0xfffd;
          }
        } else if (cp >= 0xdc00 && cp < 0xe000) {
          cp = 0xfffd;
        }
        char u[4];
        kuala_buf_append(out, u, kuala__utf8_encode(cp, u));
        break;
      }
      default: /* '"', '\\', '/' */
        kuala_buf_putc(out, e);
        break;
    }
  }
}
