/*
 * ljson.c: the one place where JSON and Lua values convert into each other.
 *
 * Decoding parses with json-c (depth capped) and pushes plain Lua tables.
 * Three things would otherwise be lost on the way back:
 *  - JSON null: pushed as kuala.null (a light userdata NULL), so a merge
 *    patch can delete a field;
 *  - empty {} vs empty []: an empty object gets the object marker metatable,
 *    an empty array the array marker; non-empty tables need no marker;
 *  - integers beyond 2^53: a double cannot hold them, so they become a boxed
 *    int64 userdata that encodes back to the same digits.
 *
 * Encoding walks the Lua value into a capped buffer. It never raises a Lua
 * error except when the VM runs out of memory, so callers pass a buffer that
 * survives a longjmp (the bundle's scratch buffer).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kuala/error.h"
#include "kuala/json.h"
#include "lrt.h"

char kuala__lua_key_array_mt;
char kuala__lua_key_object_mt;
char kuala__lua_key_int64_mt;
static char key_park_mt; /* metatable of the userdata that parks a json-c tree */

#define EXACT_INT_MAX 9007199254740992.0 /* 2^53 */

static int int64_tostring(lua_State *L)
{
  int64_t *v = lua_touserdata(L, 1);
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%" PRId64, *v);
  lua_pushstring(L, tmp);
  return 1;
}

static int int64_eq(lua_State *L)
{
  int64_t *a = lua_touserdata(L, 1), *b = lua_touserdata(L, 2);
  lua_pushboolean(L, a && b && *a == *b);
  return 1;
}

static void push_marker(lua_State *L, char *key)
{
  lua_pushlightuserdata(L, key);
  lua_rawget(L, LUA_REGISTRYINDEX);
}

static int tree_gc(lua_State *L);

void kuala__lua_json_init(lua_State *L)
{
  lua_pushlightuserdata(L, &key_park_mt);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, tree_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawset(L, LUA_REGISTRYINDEX);

  lua_pushlightuserdata(L, &kuala__lua_key_array_mt);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_rawset(L, LUA_REGISTRYINDEX);

  lua_pushlightuserdata(L, &kuala__lua_key_object_mt);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "object");
  lua_setfield(L, -2, "__jsontype");
  lua_rawset(L, LUA_REGISTRYINDEX);

  lua_pushlightuserdata(L, &kuala__lua_key_int64_mt);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, int64_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, int64_eq);
  lua_setfield(L, -2, "__eq");
  lua_pushliteral(L, "int64");
  lua_setfield(L, -2, "__jsontype");
  lua_rawset(L, LUA_REGISTRYINDEX);
}

static void push_tree(lua_State *L, json_object *o)
{
  luaL_checkstack(L, 4, "JSON too deep");
  switch (json_object_get_type(o)) {
    case json_type_null:
      lua_pushlightuserdata(L, NULL);
      break;
    case json_type_boolean:
      lua_pushboolean(L, json_object_get_boolean(o));
      break;
    case json_type_double:
      lua_pushnumber(L, json_object_get_double(o));
      break;
    case json_type_int: {
      int64_t v = json_object_get_int64(o);
      if (v <= ((int64_t)1 << 53) && v >= -((int64_t)1 << 53)) {
        lua_pushnumber(L, (lua_Number)v);
      } else {
        int64_t *box = lua_newuserdata(L, sizeof *box);
        *box = v;
        push_marker(L, &kuala__lua_key_int64_mt);
        lua_setmetatable(L, -2);
      }
      break;
    }
    case json_type_string:
      lua_pushlstring(L, json_object_get_string(o), (size_t)json_object_get_string_len(o));
      break;
    case json_type_array: {
      size_t n = json_object_array_length(o);
      lua_createtable(L, (int)n, 0);
      for (size_t i = 0; i < n; i++) {
        push_tree(L, json_object_array_get_idx(o, i));
        lua_rawseti(L, -2, (int)i + 1);
      }
      if (n == 0) {
        push_marker(L, &kuala__lua_key_array_mt);
        lua_setmetatable(L, -2);
      }
      break;
    }
    case json_type_object: {
      int n = json_object_object_length(o);
      lua_createtable(L, 0, n);
      json_object_object_foreach(o, k, v)
      {
        lua_pushstring(L, k);
        push_tree(L, v);
        lua_rawset(L, -3);
      }
      if (n == 0) {
        push_marker(L, &kuala__lua_key_object_mt);
        lua_setmetatable(L, -2);
      }
      break;
    }
  }
}

/* The parsed tree is freed by a finalizer-free path: push_tree may raise
 * (out of memory), so the tree is parked in a userdata whose __gc puts it. */
static int tree_gc(lua_State *L)
{
  json_object **slot = lua_touserdata(L, 1);
  if (slot && *slot) {
    json_object_put(*slot);
    *slot = NULL;
  }
  return 0;
}

int kuala__lua_json_push(lua_State *L, const char *s, size_t len, char *err, size_t errlen)
{
  json_object *tree = NULL;
  char why[128];
  if (kuala_json_parse(&tree, s, len, why, sizeof why) != 0) {
    if (err)
      snprintf(err, errlen, "invalid JSON: %s", why);
    return KUALA_EBADMSG;
  }
  /* Park the tree so that an error while pushing does not leak it. */
  json_object **slot = lua_newuserdata(L, sizeof *slot);
  *slot = tree;
  push_marker(L, &key_park_mt);
  lua_setmetatable(L, -2);
  push_tree(L, tree);
  json_object_put(tree);
  *slot = NULL;
  lua_remove(L, -2);
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

static int enc_number(enc_t *e, lua_Number v)
{
  char tmp[40];
  int n;
  if (isnan(v) || isinf(v))
    return enc_fail(e, KUALA_EINVAL, "cannot encode NaN or infinity");
  if (v == floor(v) && fabs(v) <= EXACT_INT_MAX) {
    n = snprintf(tmp, sizeof tmp, "%" PRId64, (int64_t)v);
  } else {
    n = snprintf(tmp, sizeof tmp, "%.17g", v);
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
    return enc_fail(e, KUALA_EINVAL, "table nesting deeper than 64 (a cycle?)");
  }
  int is_array = has_marker(L, idx, &kuala__lua_key_array_mt);
  int is_object = has_marker(L, idx, &kuala__lua_key_object_mt);
  size_t n = lua_objlen(L, idx);
  size_t count = 0;
  int all_strings = 1, all_index = 1;
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
      return enc_fail(e, KUALA_EINVAL, "object keys must be strings");
    }
    size_t klen;
    const char *k = lua_tolstring(L, -2, &klen);
    if ((!first && (rc = put(e, ",", 1))) ||
        (rc = kuala_buf_json_str(e->out, k, klen) ? enc_fail(e, KUALA_E2BIG, "JSON too large")
                                                  : 0) ||
        (rc = put(e, ":", 1)) || (rc = enc_value(e, lua_gettop(L), depth + 1))) {
      lua_pop(L, 2);
      return rc;
    }
    first = 0;
    lua_pop(L, 1);
  }
  return put(e, "}", 1);
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
      return kuala_buf_json_str(e->out, s, n) ? enc_fail(e, KUALA_E2BIG, "JSON too large") : 0;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL)
        return put(e, "null", 4);
      return enc_fail(e, KUALA_EINVAL, "cannot encode a light userdata");
    case LUA_TUSERDATA:
      if (has_marker(L, idx, &kuala__lua_key_int64_mt)) {
        char tmp[32];
        int n = snprintf(tmp, sizeof tmp, "%" PRId64, *(int64_t *)lua_touserdata(L, idx));
        return put(e, tmp, (size_t)n);
      }
      return enc_fail(e, KUALA_EINVAL, "cannot encode a userdata");
    case LUA_TTABLE:
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
