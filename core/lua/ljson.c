/*
 * ljson.c: the one place where JSON and Lua values convert into each other.
 *
 * Decoding validates the text (kuala_json_validate: strict RFC 8259, depth
 * capped at KUALA_JSON_WIRE_DEPTH) and then walks it once, pushing plain
 * Lua tables directly: no json-c tree in between, so nothing C-owned is
 * alive if pushing raises (out of memory). Three things would otherwise be
 * lost on the way back:
 *  - JSON null: pushed as kuala.null (a light userdata NULL), so a merge
 *    patch can delete a field;
 *  - empty {} vs empty []: an empty object gets the object marker metatable,
 *    an empty array the array marker; non-empty tables need no marker;
 *  - integers beyond 2^53: a double cannot hold them, so they become a boxed
 *    integer, a userdata holding the exact decimal digits, which encodes back
 *    to the same digits whatever their size (never rounded or clamped).
 *
 * Every metatable handed to bundle code is protected (`__metatable`): the
 * markers return themselves, so `getmetatable(t) == json.array_mt` keeps
 * working; the boxed integer's returns a string, so its C functions cannot
 * be reached and called with the wrong argument. Those functions check
 * their arguments anyway.
 *
 * Encoding walks the Lua value into a capped buffer. It never raises a Lua
 * error except when the VM runs out of memory, so callers pass a buffer that
 * survives a longjmp (the bundle's scratch buffer).
 */
#include <inttypes.h>
#include <luajit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jscan.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "lrt.h"

char kuala__lua_key_array_mt;
char kuala__lua_key_object_mt;
char kuala__lua_key_int64_mt;

#define EXACT_INT_MAX 9007199254740992.0 /* 2^53 */

/* A boxed integer: its decimal digits (with the sign), not NUL-terminated. */
typedef struct {
  size_t len;
  char digits[];
} bigint_t;

static void push_marker(lua_State *L, char *key)
{
  lua_pushlightuserdata(L, key);
  lua_rawget(L, LUA_REGISTRYINDEX);
}

/* The boxed integer at idx, or NULL when it is anything else. */
static bigint_t *to_bigint(lua_State *L, int idx)
{
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) {
    return NULL;
  }
  push_marker(L, &kuala__lua_key_int64_mt);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? lua_touserdata(L, idx) : NULL;
}

/* luaL_checkudata for a metatable kept under a registry address. */
static bigint_t *check_bigint(lua_State *L, int idx)
{
  bigint_t *b = to_bigint(L, idx);
  if (!b) {
    luaL_typerror(L, idx, "boxed integer");
  }
  return b;
}

static int bigint_tostring(lua_State *L)
{
  bigint_t *b = check_bigint(L, 1);
  lua_pushlstring(L, b->digits, b->len);
  return 1;
}

static int bigint_eq(lua_State *L)
{
  bigint_t *a = to_bigint(L, 1), *b = to_bigint(L, 2);
  lua_pushboolean(L, a && b && a->len == b->len && memcmp(a->digits, b->digits, a->len) == 0);
  return 1;
}

void kuala__lua_json_init(lua_State *L)
{
  lua_pushlightuserdata(L, &kuala__lua_key_array_mt);
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__metatable");
  lua_rawset(L, LUA_REGISTRYINDEX);

  lua_pushlightuserdata(L, &kuala__lua_key_object_mt);
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "object");
  lua_setfield(L, -2, "__jsontype");
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__metatable");
  lua_rawset(L, LUA_REGISTRYINDEX);

  lua_pushlightuserdata(L, &kuala__lua_key_int64_mt);
  lua_createtable(L, 0, 4);
  lua_pushcfunction(L, bigint_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, bigint_eq);
  lua_setfield(L, -2, "__eq");
  lua_pushliteral(L, "int64");
  lua_setfield(L, -2, "__jsontype");
  lua_pushliteral(L, "kuala.integer");
  lua_setfield(L, -2, "__metatable");
  lua_rawset(L, LUA_REGISTRYINDEX);
}

/* ---- decoding ----------------------------------------------------------- */

/* The text was validated: the walk below trusts its syntax. */
typedef struct {
  lua_State *L;
  const char *s;
  size_t n, i;
  int depth;
} dec_t;

/* LuaJIT lets one C function use at most LUAI_MAXCSTACK (8000) stack
 * slots, and every open container holds one or two. Every FRAME_LEVELS
 * levels, the walk therefore continues in a fresh C frame (a lua_call of
 * a trampoline), which brings its own 8000: the API server's 10000 levels
 * need 10 nested frames, well under the C call limit of 200. */
#define FRAME_LEVELS 1000

static void dec_ws(dec_t *d)
{
  while (d->i < d->n &&
         (d->s[d->i] == ' ' || d->s[d->i] == '\t' || d->s[d->i] == '\n' || d->s[d->i] == '\r')) {
    d->i++;
  }
}

/* s[i] is the opening quote. Escapes are decoded; a UTF-16 surrogate that
 * is not part of a pair becomes U+FFFD, as Go's decoder (the API server's)
 * does. */
static void dec_string(dec_t *d)
{
  const char *s = d->s;
  size_t start = ++d->i, j = start;
  while (s[j] != '"' && s[j] != '\\') {
    j++;
  }
  if (s[j] == '"') {
    lua_pushlstring(d->L, s + start, j - start);
    d->i = j + 1;
    return;
  }
  luaL_Buffer b;
  luaL_buffinit(d->L, &b);
  luaL_addlstring(&b, s + start, j - start);
  for (;;) {
    char c = s[j];
    if (c == '"') {
      break;
    }
    if (c != '\\') {
      size_t k = j;
      while (s[k] != '"' && s[k] != '\\') {
        k++;
      }
      luaL_addlstring(&b, s + j, k - j);
      j = k;
      continue;
    }
    char e = s[j + 1];
    j += 2;
    switch (e) {
      case 'b':
        luaL_addchar(&b, '\b');
        break;
      case 'f':
        luaL_addchar(&b, '\f');
        break;
      case 'n':
        luaL_addchar(&b, '\n');
        break;
      case 'r':
        luaL_addchar(&b, '\r');
        break;
      case 't':
        luaL_addchar(&b, '\t');
        break;
      case 'u': {
        unsigned cp = kuala__jscan_hex4(s + j);
        j += 4;
        if (cp >= 0xd800 && cp <= 0xdbff && s[j] == '\\' && s[j + 1] == 'u') {
          unsigned lo = kuala__jscan_hex4(s + j + 2);
          if (lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            j += 6;
          }
        }
        if (cp >= 0xd800 && cp <= 0xdfff) {
          cp = 0xfffd;
        }
        char u[4];
        luaL_addlstring(&b, u, kuala__utf8_encode(cp, u));
        break;
      }
      default: /* '"', '\\', '/' */
        luaL_addchar(&b, e);
        break;
    }
  }
  luaL_pushresult(&b);
  d->i = j + 1;
}

static void dec_number(dec_t *d)
{
  const char *s = d->s;
  size_t start = d->i, j = start;
  int integral = 1;
  if (s[j] == '-') {
    j++;
  }
  size_t digits_at = j;
  while (j < d->n && s[j] >= '0' && s[j] <= '9') {
    j++;
  }
  size_t ndigits = j - digits_at;
  while (j < d->n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
                      s[j] == '+' || s[j] == '-')) {
    integral = 0;
    j++;
  }
  d->i = j;
  if (integral && ndigits <= 15) {
    double v = 0; /* below 2^53: exact */
    for (size_t k = digits_at; k < j; k++) {
      v = v * 10 + (s[k] - '0');
    }
    lua_pushnumber(d->L, s[start] == '-' ? -v : v);
    return;
  }
  if (integral) {
    /* Up to 2^53 a number holds it exactly; beyond, keep the digits. */
    if (ndigits <= 16) {
      uint64_t u = 0;
      for (size_t k = digits_at; k < j; k++) {
        u = u * 10 + (uint64_t)(s[k] - '0');
      }
      if (u <= ((uint64_t)1 << 53)) {
        lua_pushnumber(d->L, s[start] == '-' ? -(double)u : (double)u);
        return;
      }
    }
    bigint_t *b = lua_newuserdata(d->L, sizeof *b + (j - start));
    b->len = j - start;
    memcpy(b->digits, s + start, b->len);
    push_marker(d->L, &kuala__lua_key_int64_mt);
    lua_setmetatable(d->L, -2);
    return;
  }
  char tmp[64];
  if (j - start < sizeof tmp) {
    memcpy(tmp, s + start, j - start);
    tmp[j - start] = '\0';
    lua_pushnumber(d->L, strtod(tmp, NULL));
  } else {
    /* A very long mantissa: Lua's own conversion copes with any length. */
    lua_pushlstring(d->L, s + start, j - start);
    lua_Number v = lua_tonumber(d->L, -1);
    lua_pop(d->L, 1);
    lua_pushnumber(d->L, v);
  }
}

static void dec_value(dec_t *d);
/* The value at d->i (containers and scalars alike). */
static void dec_container(dec_t *d);

static int dec_trampoline(lua_State *L)
{
  dec_container(lua_touserdata(L, 1));
  return 1;
}

static void dec_value(dec_t *d)
{
  lua_State *L = d->L;
  luaL_checkstack(L, 4, "JSON too deep");
  dec_ws(d);
  char c = d->s[d->i];
  if (c != '{' && c != '[') {
    dec_container(d); /* a scalar */
    return;
  }
  if (++d->depth % FRAME_LEVELS == 0) {
    lua_pushcfunction(L, dec_trampoline);
    lua_pushlightuserdata(L, d);
    lua_call(L, 1, 1);
  } else {
    dec_container(d);
  }
  d->depth--;
}

static void dec_container(dec_t *d)
{
  lua_State *L = d->L;
  char c = d->s[d->i];
  switch (c) {
    case '{': {
      d->i++;
      lua_newtable(L);
      dec_ws(d);
      if (d->s[d->i] == '}') {
        d->i++;
        push_marker(L, &kuala__lua_key_object_mt);
        lua_setmetatable(L, -2);
        return;
      }
      for (;;) {
        dec_ws(d);
        dec_string(d);
        dec_ws(d);
        d->i++; /* ':' */
        dec_value(d);
        lua_rawset(L, -3); /* a repeated key: the last one wins, as in json-c */
        dec_ws(d);
        if (d->s[d->i++] == '}') {
          return;
        }
      }
    }
    case '[': {
      d->i++;
      lua_newtable(L);
      dec_ws(d);
      if (d->s[d->i] == ']') {
        d->i++;
        push_marker(L, &kuala__lua_key_array_mt);
        lua_setmetatable(L, -2);
        return;
      }
      for (int k = 1;; k++) {
        dec_value(d);
        lua_rawseti(L, -2, k);
        dec_ws(d);
        if (d->s[d->i++] == ']') {
          return;
        }
      }
    }
    case '"':
      dec_string(d);
      return;
    case 't':
      d->i += 4;
      lua_pushboolean(L, 1);
      return;
    case 'f':
      d->i += 5;
      lua_pushboolean(L, 0);
      return;
    case 'n':
      d->i += 4;
      lua_pushlightuserdata(L, NULL);
      return;
    default:
      dec_number(d);
      return;
  }
}

int kuala__lua_json_push(lua_State *L, const char *s, size_t len, char *err, size_t errlen)
{
  char why[128];
  if (kuala_json_validate(s, len, KUALA_JSON_WIRE_DEPTH, why, sizeof why) != 0) {
    if (err)
      snprintf(err, errlen, "invalid JSON: %s", why);
    return KUALA_EBADMSG;
  }
  dec_t d = {L, s, len, 0, 0};
  dec_value(&d);
  return 0;
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct {
  lua_State *L;
  kuala_buf_t *out;
  char *err;
  size_t errlen;
} enc_t;

static int enc_fail(enc_t *e, int code, const char *what)
{
  if (e->err)
    snprintf(e->err, e->errlen, "%s", what);
  return code;
}

static int put(enc_t *e, const char *s, size_t n)
{
  return kuala_buf_append(e->out, s, n) ? enc_fail(e, KUALA_E2BIG, "JSON document too large") : 0;
}

/* A JSON string: what kuala_buf_json_str writes (escapes for `"`, `\` and
 * bytes below 0x20, everything else as is), appended in runs rather than
 * byte by byte: strings were most of the time of an encode. */
static int put_str(enc_t *e, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  if (put(e, "\"", 1))
    return KUALA_E2BIG;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && (unsigned char)s[j] >= 0x20 && s[j] != '"' && s[j] != '\\')
      j++;
    if (j > i && put(e, s + i, j - i))
      return KUALA_E2BIG;
    if (j == n)
      break;
    unsigned char c = (unsigned char)s[j];
    char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
    size_t k = 2;
    if (c == '\n') {
      esc[1] = 'n';
    } else if (c == '\r') {
      esc[1] = 'r';
    } else if (c == '\t') {
      esc[1] = 't';
    } else if (c < 0x20) {
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      k = 6;
    }
    if (put(e, esc, k))
      return KUALA_E2BIG;
    i = j + 1;
  }
  return put(e, "\"", 1);
}

static int enc_number(enc_t *e, lua_Number v)
{
  char tmp[40];
  int n;
  if (isnan(v) || isinf(v))
    return enc_fail(e, KUALA_EINVAL, "cannot encode NaN or infinity");
  if (v == floor(v) && fabs(v) <= EXACT_INT_MAX) {
    /* Digits by hand: snprintf was a tenth of an encode. */
    uint64_t u = (uint64_t)fabs(v);
    char *p = tmp + sizeof tmp;
    do {
      *--p = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    if (v < 0)
      *--p = '-';
    return put(e, p, (size_t)(tmp + sizeof tmp - p));
  } else {
    /* The shortest form that reads back as the same double, so 0.1 stays
     * "0.1" rather than becoming 0.10000000000000001. */
    for (int prec = 15;; prec++) {
      n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
      if (prec >= 17 || strtod(tmp, NULL) == v)
        break;
    }
  }
  return put(e, tmp, (size_t)n);
}

/* 1 when the table at idx has metatable marker `key`. */
static int has_marker(lua_State *L, int idx, char *key)
{
  if (!lua_getmetatable(L, idx))
    return 0;
  push_marker(L, key);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

static int enc_value(enc_t *e, int idx, int depth);

static int enc_table(enc_t *e, int idx, int depth)
{
  lua_State *L = e->L;
  int rc;
  if (depth >= KUALA__LUA_JSON_DEPTH) {
    return enc_fail(e, KUALA_EINVAL, "table nesting deeper than 10000 (a cycle?)");
  }
  int is_array = 0, is_object = 0;
  if (lua_getmetatable(L, idx)) {
    push_marker(L, &kuala__lua_key_array_mt);
    is_array = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    push_marker(L, &kuala__lua_key_object_mt);
    is_object = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  size_t n = lua_objlen(L, idx);
  size_t count = 0;
  int all_strings = 1, all_index = 1;
  /* Unmarked and t[1] == nil (length 0): not an array, so an object if
   * every key is a string, which the writing loop checks as it goes; one
   * walk instead of two for most tables. */
  int unchecked = !is_array && !is_object && n == 0;
  if (unchecked)
    is_object = 1;
  if (!is_array && !is_object) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      count++;
      if (lua_type(L, -2) != LUA_TSTRING)
        all_strings = 0;
      if (lua_type(L, -2) != LUA_TNUMBER) {
        all_index = 0;
      } else {
        lua_Number k = lua_tonumber(L, -2);
        if (k < 1 || k != floor(k) || k > (lua_Number)n)
          all_index = 0;
      }
      lua_pop(L, 1);
    }
    if (count == 0) {
      is_object = 1;
    } else if (all_index && count == n) {
      is_array = 1; /* n distinct keys, each an integer in 1..n: exactly 1..n */
    } else if (all_strings) {
      is_object = 1;
    } else {
      return enc_fail(e, KUALA_EINVAL,
                      "table mixes array and object keys (or has holes); JSON needs one");
    }
  }
  if (is_array) {
    if ((rc = put(e, "[", 1)))
      return rc;
    for (size_t i = 1; i <= n; i++) {
      if (i > 1 && (rc = put(e, ",", 1)))
        return rc;
      lua_rawgeti(L, idx, (int)i);
      rc = enc_value(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (rc)
        return rc;
    }
    return put(e, "]", 1);
  }
  if ((rc = put(e, "{", 1)))
    return rc;
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      return enc_fail(e, KUALA_EINVAL,
                      unchecked ? "table mixes array and object keys (or has holes); JSON needs one"
                                : "object keys must be strings");
    }
    size_t klen;
    const char *k = lua_tolstring(L, -2, &klen);
    if ((!first && (rc = put(e, ",", 1))) || (rc = put_str(e, k, klen)) || (rc = put(e, ":", 1)) ||
        (rc = enc_value(e, lua_gettop(L), depth + 1))) {
      lua_pop(L, 2);
      return rc;
    }
    first = 0;
    lua_pop(L, 1);
  }
  return put(e, "}", 1);
}

static int enc_trampoline(lua_State *L)
{
  enc_t *e = lua_touserdata(L, 1);
  lua_pushinteger(L, enc_table(e, 2, (int)lua_tointeger(L, 3)));
  return 1;
}

static int enc_value(enc_t *e, int idx, int depth)
{
  lua_State *L = e->L;
  if (!lua_checkstack(L, 6))
    return enc_fail(e, KUALA_EINVAL, "JSON too deep");
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      return put(e, "null", 4);
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) ? put(e, "true", 4) : put(e, "false", 5);
    case LUA_TNUMBER:
      return enc_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return put_str(e, s, n);
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL)
        return put(e, "null", 4);
      return enc_fail(e, KUALA_EINVAL, "cannot encode a light userdata");
    case LUA_TUSERDATA: {
      bigint_t *b = to_bigint(L, idx);
      if (b)
        return put(e, b->digits, b->len);
      return enc_fail(e, KUALA_EINVAL, "cannot encode a userdata");
    }
    case LUA_TTABLE:
      if (depth > 0 && depth % FRAME_LEVELS == 0) {
        /* A fresh C frame, as for decoding (see FRAME_LEVELS). */
        lua_pushcfunction(L, enc_trampoline);
        lua_pushlightuserdata(L, e);
        lua_pushvalue(L, idx);
        lua_pushinteger(L, depth);
        lua_call(L, 3, 1);
        int rc = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        return rc;
      }
      return enc_table(e, idx, depth);
    default: {
      char msg[64];
      snprintf(msg, sizeof msg, "cannot encode a %s", luaL_typename(L, idx));
      return enc_fail(e, KUALA_EINVAL, msg);
    }
  }
}

int kuala__lua_json_encode(lua_State *L, int idx, kuala_buf_t *out, char *err, size_t errlen)
{
  enc_t e = {L, out, err, errlen};
  if (idx < 0 && idx > LUA_REGISTRYINDEX)
    idx = lua_gettop(L) + idx + 1;
  kuala_buf_reset(out);
  int rc = enc_value(&e, idx, 0);
  if (rc == 0 && out->data == NULL)
    rc = put(&e, "", 0);
  return rc;
}

/* ---- read cache: decoded objects as compiled constructors ---------------
 *
 * Reads of the informer cache (core.cache_get / cache_list) hand out fresh,
 * plain Lua tables, as a decode does: bundle code mutates them, iterates
 * them with pairs/ipairs, uses `#` and rawget, and passes them to
 * ctx:update. This LuaJIT has no __pairs/__len for tables (built without
 * 5.2 compatibility), so a lazy or copy-on-write proxy would break those;
 * a generic deep copy from C costs more than decoding. What is cheap in
 * LuaJIT is a table constructor whose fields are constants: the parser
 * builds a template table once and each run duplicates it (bytecode TDUP,
 * one allocation and a copy per table).
 *
 * So the second time the same JSON document is read, its decoded value is
 * turned into Lua source (`return function() return {["k"]="v", ...} end`,
 * strings as quoted literals with every byte outside printable ASCII, `"`
 * and `\` written as \ddd, so no document can inject code), compiled in an
 * empty environment with the JIT off for it, and checked once against the
 * fresh decode (same keys, values and markers, recursively); from then on a
 * read of that document runs the constructor: new tables every time, only
 * immutable values shared (strings, boxed integers, kuala.null). Nothing a
 * reconcile does to its tables can reach the cache or another reconcile.
 *
 * Key: a 53-bit hash of the document's bytes; an entry keeps a copy of the
 * bytes and a hit is a full memcmp, so a changed object (new
 * resourceVersion) or a hash collision is a miss, never a stale read.
 * Documents are not trusted to be unique per key either: the entry is only
 * used when the bytes are equal.
 *
 * Bounds: documents up to RC_MAX_DOC bytes and RC_MAX_DEPTH levels (others
 * are always decoded); memory in two generations (the current one takes
 * new and promoted entries; once its estimated size passes half the budget
 * it becomes the old one and the previous old one is dropped), so the
 * cache holds at most about `budget` bytes (the runtime gives it 1/8 of
 * the bundle's memory cap). Everything lives in the VM and is counted by
 * its allocator. Documents read once cost a small "seen" mark, not a
 * compile. */

#define RC_MAX_DOC (64u << 10)
#define RC_MAX_DEPTH 64
#define RC_SEEN_COST 64
/* The constructor's bytecode, template tables and the byte copy: measured
 * at about 5.5 KB for a 1.2 KB object. */
#define RC_ENTRY_COST(len) (6 * (len) + 512)

static char key_rcache; /* registry: the cache's state userdata */

typedef struct {
  size_t cur_bytes;
  kuala__lua_rcache_stats_t st;
} rc_state_t;

static uint64_t rc_hash(const char *s, size_t n)
{
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n, w;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  w = 0;
  memcpy(&w, s + i, n - i);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  h *= 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 31);
}

/* Pushes the state userdata (its environment holds {cur, old}), creating it
 * at the first use. */
static rc_state_t *rc_push_state(lua_State *L)
{
  lua_pushlightuserdata(L, &key_rcache);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_type(L, -1) == LUA_TUSERDATA)
    return lua_touserdata(L, -1);
  lua_pop(L, 1);
  rc_state_t *st = lua_newuserdata(L, sizeof *st);
  memset(st, 0, sizeof *st);
  lua_createtable(L, 2, 0);
  lua_newtable(L);
  lua_rawseti(L, -2, 1);
  lua_newtable(L);
  lua_rawseti(L, -2, 2);
  lua_setfenv(L, -2);
  lua_pushlightuserdata(L, &key_rcache);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return st;
}

static int rc_empty_object(lua_State *L)
{
  lua_createtable(L, 0, 0);
  push_marker(L, &kuala__lua_key_object_mt);
  lua_setmetatable(L, -2);
  return 1;
}

static int rc_empty_array(lua_State *L)
{
  lua_createtable(L, 0, 0);
  push_marker(L, &kuala__lua_key_array_mt);
  lua_setmetatable(L, -2);
  return 1;
}

typedef struct {
  lua_State *L;
  kuala_buf_t *out;
  int big;  /* stack index of the table of boxed integers */
  int nbig; /* how many it holds */
} gen_t;

static int gen_put(gen_t *g, const char *s, size_t n)
{
  return kuala_buf_append(g->out, s, n) ? -1 : 0;
}

/* A Lua string literal: printable ASCII as is, every other byte (and `"`,
 * `\`) as a three-digit decimal escape. */
static int gen_str(gen_t *g, const char *s, size_t n)
{
  if (gen_put(g, "\"", 1))
    return -1;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && (unsigned char)s[j] >= 0x20 && (unsigned char)s[j] < 0x7f && s[j] != '"' &&
           s[j] != '\\')
      j++;
    if (j > i && gen_put(g, s + i, j - i))
      return -1;
    if (j < n) {
      char esc[8];
      int k = snprintf(esc, sizeof esc, "\\%03u", (unsigned)(unsigned char)s[j]);
      if (gen_put(g, esc, (size_t)k))
        return -1;
      j++;
    }
    i = j;
  }
  return gen_put(g, "\"", 1);
}

/* Source for the value at idx; -1 when it cannot be a template. */
static int gen_value(gen_t *g, int idx, int depth)
{
  lua_State *L = g->L;
  char tmp[48];
  int n;
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) ? gen_put(g, "true", 4) : gen_put(g, "false", 5);
    case LUA_TNUMBER: {
      lua_Number v = lua_tonumber(L, idx);
      if (isnan(v) || isinf(v))
        return -1;
      if (v == floor(v) && fabs(v) <= EXACT_INT_MAX)
        n = snprintf(tmp, sizeof tmp, "%.0f", v);
      else
        n = snprintf(tmp, sizeof tmp, "%.17g", v);
      return gen_put(g, tmp, (size_t)n);
    }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      return gen_str(g, s, len);
    }
    case LUA_TLIGHTUSERDATA:
      return lua_touserdata(L, idx) == NULL ? gen_put(g, "N", 1) : -1;
    case LUA_TUSERDATA:
      if (!to_bigint(L, idx))
        return -1;
      lua_pushvalue(L, idx);
      lua_rawseti(L, g->big, ++g->nbig);
      n = snprintf(tmp, sizeof tmp, "I[%d]", g->nbig);
      return gen_put(g, tmp, (size_t)n);
    case LUA_TTABLE:
      break;
    default:
      return -1;
  }
  if (depth >= RC_MAX_DEPTH || !lua_checkstack(L, 6))
    return -1;
  int marked_array = has_marker(L, idx, &kuala__lua_key_array_mt);
  int marked_object = has_marker(L, idx, &kuala__lua_key_object_mt);
  if (!marked_array && !marked_object && lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return -1; /* decoded values have no other metatable */
  }
  lua_pushnil(L);
  if (!lua_next(L, idx)) {
    if (marked_array)
      return gen_put(g, "A()", 3);
    return marked_object ? gen_put(g, "O()", 3) : gen_put(g, "{}", 2);
  }
  int array = lua_type(L, -2) == LUA_TNUMBER;
  lua_pop(L, 2);
  if (marked_array || marked_object)
    return -1; /* decoded markers sit on empty tables only */
  if (gen_put(g, "{", 1))
    return -1;
  if (array) {
    /* Keys 1..n; anything else makes the check against the decode fail. */
    size_t len = lua_objlen(L, idx);
    for (size_t i = 1; i <= len; i++) {
      lua_rawgeti(L, idx, (int)i);
      int rc = gen_value(g, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (rc || gen_put(g, ",", 1))
        return -1;
    }
    return gen_put(g, "}", 1);
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t klen = 0;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
    if (!k || gen_put(g, "[", 1) || gen_str(g, k, klen) || gen_put(g, "]=", 2) ||
        gen_value(g, lua_gettop(L), depth + 1) || gen_put(g, ",", 1)) {
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
  }
  return gen_put(g, "}", 1);
}

/* 1 when the values at a and b are the same: equal scalars (the same boxed
 * integer), or tables with the same marker and the same contents. */
static int rc_same(lua_State *L, int a, int b, int depth)
{
  if (lua_type(L, a) != lua_type(L, b))
    return 0;
  if (lua_type(L, a) != LUA_TTABLE)
    return lua_rawequal(L, a, b);
  if (depth > RC_MAX_DEPTH || !lua_checkstack(L, 6))
    return 0;
  int ma = lua_getmetatable(L, a);
  int mb = lua_getmetatable(L, b);
  int same = ma == mb && (!ma || lua_rawequal(L, -1, -2));
  lua_pop(L, ma + mb);
  if (!same || lua_objlen(L, a) != lua_objlen(L, b))
    return 0;
  size_t na = 0, nb = 0;
  lua_pushnil(L);
  while (lua_next(L, a)) {
    na++;
    lua_pushvalue(L, -2);
    lua_rawget(L, b);
    int top = lua_gettop(L);
    if (!rc_same(L, top - 1, top, depth + 1)) {
      lua_pop(L, 3);
      return 0;
    }
    lua_pop(L, 2);
  }
  lua_pushnil(L);
  while (lua_next(L, b)) {
    nb++;
    lua_pop(L, 1);
  }
  return na == nb;
}

/* Compile a constructor for the decoded value at idx and check it. Pushes
 * the constructor and returns 0, or pushes nothing and returns -1. */
static int rc_build(lua_State *L, int idx, kuala_buf_t *scratch)
{
  int base = lua_gettop(L);
  lua_newtable(L); /* boxed integers */
  gen_t g = {L, scratch, lua_gettop(L), 0};
  kuala_buf_reset(scratch);
  static const char head[] = "local N,O,A,I=...\nreturn function() return ";
  static const char tail[] = " end\n";
  if (gen_put(&g, head, sizeof head - 1) || gen_value(&g, idx, 0) ||
      gen_put(&g, tail, sizeof tail - 1)) {
    lua_settop(L, base);
    return -1;
  }
  if (luaL_loadbuffer(L, scratch->data, scratch->len, "=kuala.readcache") != 0) {
    lua_settop(L, base); /* too many constants or registers: decode instead */
    return -1;
  }
  lua_newtable(L); /* no globals reachable */
  lua_setfenv(L, -2);
  lua_pushlightuserdata(L, NULL);
  lua_pushcfunction(L, rc_empty_object);
  lua_pushcfunction(L, rc_empty_array);
  lua_pushvalue(L, base + 1);
  if (lua_pcall(L, 4, 1, 0) != 0 || lua_type(L, -1) != LUA_TFUNCTION) {
    lua_settop(L, base);
    return -1;
  }
  /* Interpreted: thousands of one-off constructors would crowd the
   * bundle's own traces out of the JIT, for little gain (~2.3 vs 1.9 us). */
  luaJIT_setmode(L, -1, LUAJIT_MODE_FUNC | LUAJIT_MODE_OFF);
  lua_pushvalue(L, -1);
  if (lua_pcall(L, 0, 1, 0) != 0 || !rc_same(L, idx, lua_gettop(L), 0)) {
    lua_settop(L, base);
    return -1;
  }
  lua_pop(L, 1);
  lua_replace(L, base + 1);
  lua_settop(L, base + 1);
  return 0;
}

static void rc_account(lua_State *L, rc_state_t *st, int env, size_t cost, size_t budget)
{
  st->cur_bytes += cost;
  if (st->cur_bytes <= budget / 2)
    return;
  lua_rawgeti(L, env, 1);
  lua_rawseti(L, env, 2);
  lua_newtable(L);
  lua_rawseti(L, env, 1);
  st->cur_bytes = 0;
  st->st.flips++;
}

/* Cost of an entry value (true/false: a mark; table: a constructor). */
static size_t rc_cost(lua_State *L, int idx)
{
  if (lua_type(L, idx) != LUA_TTABLE)
    return RC_SEEN_COST;
  lua_rawgeti(L, idx, 2);
  size_t len = lua_objlen(L, -1);
  lua_pop(L, 1);
  return RC_ENTRY_COST(len);
}

/* `ident` (the object's identity, "apiVersion/kind/ns/name") maps to the
 * key of the last version read under it, in the same generations: when a
 * new version of an object is read, the old version's entry is dropped at
 * once instead of ageing out, so a churning object costs one entry, not
 * one per version (RSS stayed flat in the 10-minute soak only with this). */
static void rc_track_ident(lua_State *L, rc_state_t *st, int env, const char *ident,
                           size_t identlen, lua_Number key, size_t budget)
{
  lua_Number old = -1;
  for (int g = 1; g <= 2 && old < 0; g++) {
    lua_rawgeti(L, env, g);
    lua_pushlstring(L, ident, identlen);
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TNUMBER)
      old = lua_tonumber(L, -1);
    lua_pop(L, 2);
  }
  if (old == key)
    return;
  if (old >= 0) {
    for (int g = 1; g <= 2; g++) {
      lua_rawgeti(L, env, g);
      lua_pushnumber(L, old);
      lua_pushnil(L);
      lua_rawset(L, -3);
      lua_pop(L, 1);
    }
  }
  lua_rawgeti(L, env, 1);
  lua_pushlstring(L, ident, identlen);
  lua_pushnumber(L, key);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  rc_account(L, st, env, RC_SEEN_COST, budget);
}

int kuala__lua_json_push_cached(lua_State *L, const char *s, size_t len, size_t budget,
                                const char *ident, size_t identlen, kuala_buf_t *scratch, char *err,
                                size_t errlen)
{
  if (budget == 0 || len > RC_MAX_DOC || len == 0)
    return kuala__lua_json_push(L, s, len, err, errlen);
  luaL_checkstack(L, 12, "read cache");
  int base = lua_gettop(L);
  uint64_t h = rc_hash(s, len);
  lua_Number key = (lua_Number)(h >> 11); /* 53 bits: exact as a number */
  rc_state_t *st = rc_push_state(L);
  lua_getfenv(L, -1);
  int env = lua_gettop(L);
  if (ident && identlen)
    rc_track_ident(L, st, env, ident, identlen, key, budget);
  lua_rawgeti(L, env, 1);
  int cur = lua_gettop(L);
  lua_pushnumber(L, key);
  lua_rawget(L, cur);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_rawgeti(L, env, 2);
    lua_pushnumber(L, key);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (!lua_isnil(L, -1)) { /* still used: promote it to the current generation */
      lua_pushnumber(L, key);
      lua_pushvalue(L, -2);
      lua_rawset(L, cur);
      rc_account(L, st, env, rc_cost(L, lua_gettop(L)), budget);
      lua_rawgeti(L, env, 1); /* the current generation may have flipped */
      lua_replace(L, cur);
    }
  }
  int entry = lua_gettop(L);
  if (lua_type(L, entry) == LUA_TTABLE) {
    lua_rawgeti(L, entry, 2);
    const void *bytes = lua_touserdata(L, -1);
    int same = bytes && lua_objlen(L, -1) == len && memcmp(bytes, s, len) == 0;
    lua_pop(L, 1);
    if (same) {
      st->st.hits++;
      lua_rawgeti(L, entry, 1);
      lua_call(L, 0, 1);
      lua_replace(L, base + 1);
      lua_settop(L, base + 1);
      return 0;
    }
    st->st.collisions++;
  }
  /* A miss: decode as always. */
  int rc = kuala__lua_json_push(L, s, len, err, errlen);
  if (rc) {
    lua_settop(L, base);
    return rc;
  }
  int val = lua_gettop(L);
  st->st.misses++;
  if (lua_type(L, entry) == LUA_TBOOLEAN && lua_toboolean(L, entry) &&
      lua_type(L, val) == LUA_TTABLE) {
    /* Second read of this document: build its constructor. */
    lua_pushnumber(L, key);
    if (rc_build(L, val, scratch) == 0) {
      lua_createtable(L, 2, 0);
      lua_insert(L, -2);
      lua_rawseti(L, -2, 1);
      void *copy = lua_newuserdata(L, len);
      memcpy(copy, s, len);
      lua_rawseti(L, -2, 2);
      st->st.builds++;
      lua_rawset(L, cur);
      rc_account(L, st, env, RC_ENTRY_COST(len), budget);
    } else {
      lua_pushboolean(L, 0); /* never again for these bytes */
      st->st.refused++;
      lua_rawset(L, cur);
      rc_account(L, st, env, RC_SEEN_COST, budget);
    }
  } else if (lua_isnil(L, entry) || lua_type(L, entry) == LUA_TTABLE) {
    lua_pushnumber(L, key);
    lua_pushboolean(L, 1); /* seen once */
    lua_rawset(L, cur);
    rc_account(L, st, env, RC_SEEN_COST, budget);
  }
  lua_replace(L, base + 1);
  lua_settop(L, base + 1);
  return 0;
}

void kuala__lua_rcache_stats(lua_State *L, kuala__lua_rcache_stats_t *out)
{
  memset(out, 0, sizeof *out);
  lua_pushlightuserdata(L, &key_rcache);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_type(L, -1) == LUA_TUSERDATA) {
    rc_state_t *st = lua_touserdata(L, -1);
    *out = st->st;
    out->bytes = st->cur_bytes;
  }
  lua_pop(L, 1);
}

void kuala__lua_rcache_clear(lua_State *L)
{
  lua_pushlightuserdata(L, &key_rcache);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_type(L, -1) == LUA_TUSERDATA) {
    rc_state_t *st = lua_touserdata(L, -1);
    lua_getfenv(L, -1);
    /* No allocation: the generations are emptied by dropping their keys. */
    for (int g = 1; g <= 2; g++) {
      lua_rawgeti(L, -1, g);
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, -4);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    st->cur_bytes = 0;
  }
  lua_pop(L, 1);
}
