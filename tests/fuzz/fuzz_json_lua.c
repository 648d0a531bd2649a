/*
 * fuzz_json_lua.c: libFuzzer target for the JSON <-> Lua conversion
 * (core/lua/ljson.c).
 *
 * Properties: decoding succeeds exactly when the strict validator accepts
 * the text; what decodes encodes (unless it holds a number a double cannot
 * represent, e.g. 1e400); the encoding is valid JSON and a fixed point
 * (decode + encode gives the same document again), so big integers, empty
 * arrays vs objects, null and strings survive any number of round trips.
 * Lua errors (stack, memory) are caught and must not leave the VM unusable.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/buf.h"
#include "kuala/json.h"
#include "lrt.h"

typedef struct {
  const char *s;
  size_t n;
  kuala_buf_t *out;
  int push_rc, enc_rc;
  char err[160];
} job_t;

static int run_job(lua_State *L)
{
  job_t *j = lua_touserdata(L, 1);
  j->push_rc = kuala__lua_json_push(L, j->s, j->n, j->err, sizeof j->err);
  if (j->push_rc == 0) {
    j->enc_rc = kuala__lua_json_encode(L, -1, j->out, j->err, sizeof j->err);
  }
  return 0;
}

static lua_State *vm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!vm) {
    vm = luaL_newstate();
    kuala__lua_json_init(vm);
  }
  kuala_buf_t first = KUALA_BUF_INIT(0), second = KUALA_BUF_INIT(0);
  job_t j1 = {(const char *)data, size, &first, -1, -1, ""};
  if (lua_cpcall(vm, run_job, &j1) != 0) {
    lua_settop(vm, 0); /* a Lua error (stack or memory): allowed, not a crash */
    goto cleanup;
  }
  lua_settop(vm, 0);
  int valid = kuala_json_validate((const char *)data, size, KUALA_JSON_WIRE_DEPTH, NULL, 0) == 0;
  if (valid != (j1.push_rc == 0)) {
    abort();
  }
  if (j1.push_rc != 0) {
    goto cleanup;
  }
  if (j1.enc_rc != 0) {
    if (!strstr(j1.err, "infinity") && !strstr(j1.err, "deeper")) {
      abort();
    }
    goto cleanup;
  }
  if (kuala_json_validate(first.data, first.len, KUALA_JSON_WIRE_DEPTH, NULL, 0) != 0) {
    abort();
  }
  job_t j2 = {first.data, first.len, &second, -1, -1, ""};
  if (lua_cpcall(vm, run_job, &j2) != 0) {
    abort(); /* its own output must decode */
  }
  lua_settop(vm, 0);
  if (j2.push_rc != 0 || j2.enc_rc != 0) {
    abort();
  }
  /* Same document (object members may come out in another order: Lua
   * tables do not keep one). */
  json_object *a = NULL, *b = NULL;
  if (kuala_json_parse(&a, first.data, first.len, NULL, 0) != 0 ||
      kuala_json_parse(&b, second.data, second.len, NULL, 0) != 0 || !json_object_equal(a, b)) {
    abort();
  }
  json_object_put(a);
  json_object_put(b);
cleanup:
  kuala_buf_free(&first);
  kuala_buf_free(&second);
  lua_gc(vm, LUA_GCSTEP, 0);
  return 0;
}
