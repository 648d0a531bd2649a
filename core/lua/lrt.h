/*
 * lrt.h: internals of the Lua runtime shared by the files of core/lua/.
 *
 * Only core/lua/ includes lua.h. The runtime keeps one VM per bundle; the
 * structures below are owned by the loop thread, except the `wd_*` fields
 * of the runtime, which the watchdog thread reads under `wd_mu`.
 */
#ifndef KUALA_LUA_LRT_H
#define KUALA_LUA_LRT_H

#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kuala/buf.h"
#include "kuala/runtime.h"

/* Deepest table nesting encoded (what the API server accepts for one
 * object); decoding takes what kuala_json_parse takes. */
#define KUALA__LUA_JSON_DEPTH 10000
/* Cap on one encoded JSON document. */
#define KUALA__LUA_JSON_MAX (64u << 20)

/* Registry keys (light userdata addresses are unique). */
extern char kuala__lua_key_bundle;    /* -> light userdata kuala_bundle_t * */
extern char kuala__lua_key_array_mt;  /* metatable marking an empty JSON array */
extern char kuala__lua_key_object_mt; /* metatable marking an empty JSON object */
extern char kuala__lua_key_int64_mt;  /* metatable of boxed integers (beyond 2^53) */

/* Decode JSON text and push the value. On failure pushes nothing and
 * returns KUALA_EBADMSG / KUALA_E2BIG with a reason in err. Must run where a
 * Lua error (out of memory) may be raised safely. */
int kuala__lua_json_push(lua_State *L, const char *s, size_t len, char *err, size_t errlen);
/* Encode the value at `idx` into `out` (reset first). Returns 0 or
 * KUALA_EINVAL / KUALA_E2BIG with a reason in err. Raises only on out of
 * memory, so `out` must be owned by something that outlives the error. */
int kuala__lua_json_encode(lua_State *L, int idx, kuala_buf_t *out, char *err, size_t errlen);
/* Counters of the read cache (ljson.c). */
typedef struct {
  uint64_t hits;       /* reads answered by a constructor */
  uint64_t misses;     /* reads decoded */
  uint64_t builds;     /* constructors compiled */
  uint64_t refused;    /* documents that cannot have one (limits, check failed) */
  uint64_t collisions; /* same hash, other bytes */
  uint64_t flips;      /* generations dropped */
  size_t bytes;        /* estimated size of the current generation */
} kuala__lua_rcache_stats_t;
/* kuala__lua_json_push through the VM's read cache: the value is a fresh
 * table tree equal to a decode of the text; a document read before runs
 * its compiled constructor instead of being decoded. `budget` bounds the
 * cache's memory (0: no cache); `ident` (may be NULL) names the object
 * the text is a version of, so reading a new version drops the old one's
 * entry; `scratch` is overwritten. Same errors as kuala__lua_json_push. */
int kuala__lua_json_push_cached(lua_State *L, const char *s, size_t len, size_t budget,
                                const char *ident, size_t identlen, kuala_buf_t *scratch, char *err,
                                size_t errlen);
void kuala__lua_rcache_stats(lua_State *L, kuala__lua_rcache_stats_t *out);
/* Drop every entry of the read cache (after a memory error). */
void kuala__lua_rcache_clear(lua_State *L);
/* Create the marker metatables in the registry. */
void kuala__lua_json_init(lua_State *L);

/* The embedded SDK: module name, LuaJIT bytecode. NULL-terminated. */
typedef struct {
  const char *name;
  const unsigned char *code;
  size_t len;
} kuala__lua_sdk_module_t;
extern const kuala__lua_sdk_module_t kuala__lua_sdk[];

/* Replace find, match, gmatch and gsub in the table at idx (the string
 * library) with the budget-aware matcher of lpattern.c. */
void kuala__lua_patterns_open(lua_State *L, int idx);

/* Test helpers (internal). */
/* Registry references the bundle holds for running reconciles. */
int kuala__lua_bundle_refs(const kuala_bundle_t *b);
/* 1 when the bundle VM has the JIT compiler on. */
int kuala__lua_bundle_jit_on(kuala_bundle_t *b);
/* 1 while the bundle is under pressure for hitting its CPU budget. */
int kuala__lua_bundle_hot(kuala_bundle_t *b);
/* The read cache's counters of the bundle's VM. */
void kuala__lua_bundle_rcache_stats(kuala_bundle_t *b, kuala__lua_rcache_stats_t *out);
/* Times a reconcile of the bundle was preempted at the end of its slice. */
uint64_t kuala__lua_bundle_slices(const kuala_bundle_t *b);

#endif /* KUALA_LUA_LRT_H */
