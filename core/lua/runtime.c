/*
 * runtime.c: bundles, sandboxed VMs and the reconcile scheduler.
 *
 * One VM (lua_newstate with a counting allocator) per bundle. The sandbox
 * is built in C before any bundle code runs: io, debug, ffi, package,
 * os.execute/exit/getenv/remove/rename, loadfile/dofile, getfenv/setfenv,
 * module, newproxy and string.dump are gone; load/loadstring accept text
 * only; require loads the embedded SDK and the bundle's own files and
 * nothing else; assigning an undeclared global raises.
 *
 * Reconciles: each runs in its own coroutine (a Lua thread anchored in the
 * registry by one reference, released when the reconcile ends). API calls
 * (kuala.core._call) start a backend request and yield; the completion
 * callback resumes the coroutine. When the backend answers inside
 * call_start, the call returns without yielding.
 *
 * Limits: the allocator refuses to grow the VM past the memory cap (Lua
 * then raises "not enough memory", catchable by the reconcile's caller);
 * the watchdog (cpu.c) stops code that exceeds the CPU budget; a uv timer
 * enforces the wall-clock deadline of a reconcile that waits on the API: it
 * cancels the pending call and resumes with KUALA_ETIMEDOUT.
 *
 * Ownership: the runtime owns its bundles; a bundle owns its VM, its files
 * and its tasks. A task owns its deadline timer until it ends (the timer is
 * then closed and freed by its close callback). A pending call (op_t) is
 * owned by the backend until its callback runs; if the task is gone by then
 * the op is an orphan and the callback only frees it.
 */
#include <dirent.h>
#include <openssl/rand.h>
#include <lualib.h>
#include <luajit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/log.h"
#include "kuala/host.h"
#include "kuala/permissions.h"
#include "lrt.h"
#include "lrt_cpu.h"

char kuala__lua_key_bundle;
static char key_loaded;   /* registry: modules loaded by require */
static char key_core;     /* registry: the kuala.core table */
static char key_jit;      /* registry: the jit library (not visible to bundles) */
static char key_loading;  /* sentinel value while a module loads */
static char key_api_mark; /* yielded by an API call that waits */
static char key_sdk_env;  /* registry: the environment of SDK modules */

#define DEFAULT_MEMORY (64u << 20)
#define DEFAULT_CPU_MS 1000
#define DEFAULT_DEADLINE_MS 30000
#define MAX_FILE_BYTES (4u << 20)
#define MAX_BUNDLE_BYTES (32u << 20)
#define MAX_DIR_DEPTH 8
/* Preemption (see docs/lua-runtime.md, "Time slices"). */
#define SLICE_NS 3000000LL /* CPU time a reconcile runs before it yields the loop */
#define HOT_FIRST_MS 2000  /* first cool-down of a bundle that hit its budget */
#define HOT_MAX_MS 60000   /* longest cool-down */
#define LOW_QUEUE_EVERY 4  /* a hot bundle's slice runs at least every 4th turn */

typedef struct task_s task_t;

typedef struct {
  char *name; /* "lib/util.lua" */
  char *src;
  size_t len;
} bfile_t;

typedef struct op_s {
  task_t *task; /* NULL once orphaned */
  kuala_bundle_t *b;
  void *handle;
  int is_wait;  /* a cache wait (cache_wait_cancel), not an API call */
  int in_start; /* the backend is still inside call_start */
  int done;     /* answered inside call_start */
  int err;
  kuala_host_call_t *host; /* a host module call (kuala/host.h), not an API call */
} op_t;

struct task_s {
  kuala_bundle_t *b;
  lua_State *co;
  int co_ref;
  op_t *op;            /* pending API call or NULL */
  uv_timer_t *timer;   /* deadline, started at the first wait */
  uint64_t started_ms; /* uv_now at start */
  int64_t cpu_used_ns; /* CPU spent in Lua so far */
  int expired;         /* the deadline passed */
  int started;         /* its coroutine ran at least once */
  int queue;           /* run queue it waits in: 0 none, 1 normal, 2 low */
  kuala_reconcile_done_cb done;
  void *data;
  task_t *prev, *next;
  task_t *rq_prev, *rq_next; /* run queue links */
  int nargs;                 /* arguments of the entry function */
  char *ctl, *ns, *name;     /* the request (a failure is reported with them) */
  int report;                /* a failure report (kuala._reconcile_failed) */
};

/* The VM allocator keeps freed blocks of up to POOL_CLASSES * POOL_STEP
 * bytes on one free list per size class (at most POOL_MAX bytes in all),
 * because a reconcile allocates and frees dozens of small GC objects and
 * glibc's malloc/free was a fifth of the CPU of a reconcile that reads an
 * object (perf, lua_bench). */
#define POOL_STEP 16
#define POOL_CLASSES 16
#define POOL_MAX (256u << 10)

struct kuala_bundle_s {
  kuala_runtime_t *rt;
  char *name;
  lua_State *L;
  size_t mem_used;
  size_t mem_limit;
  uint32_t cpu_budget_ms;
  uint32_t deadline_ms;
  int enforce; /* the cap applies (off while C pushes results) */
  bfile_t *files;
  size_t nfiles;
  char **controllers;
  size_t ncontrollers;
  task_t *tasks;
  size_t active;
  int refs;
  task_t *current;     /* task whose coroutine runs now, NULL outside reconciles */
  int in_lua;          /* Lua code of this VM is running (no re-entry) */
  int mem_over;        /* past the cap, within the grace: the hook will raise */
  int mem_tripped;     /* the hook raised the memory error */
  int closing;         /* kuala_bundle_close is running */
  char fail_at[256];   /* the bundle's line when core.traceback saw a limit hit */
  int mem_seen;        /* core.traceback saw a memory error in this run */
  kuala_buf_t scratch; /* encode buffer; survives Lua errors */
  kuala_buf_t answer;  /* body of an answer that arrived inside call_start */
  uint64_t hot_until;  /* uv_now until which the bundle is under pressure */
  uint32_t hot_ms;     /* its current cool-down (doubles per budget hit) */
  uint64_t budget_hits;
  uint64_t slices; /* times a reconcile of it was preempted */
  kuala_bundle_t *prev, *next;
  /* Implied + declared permissions (permissions.c), set at load. */
  kuala_permissions_t *perms;
  /* Freed small blocks of the VM kept for reuse (bundle_alloc). */
  void *pool[POOL_CLASSES];
  size_t pooled; /* bytes in the pool, at most POOL_MAX */
};

struct kuala_runtime_s {
  uv_loop_t *loop;
  kuala_backend_t backend;
  size_t memory_limit;
  uint32_t cpu_budget_ms;
  uint32_t deadline_ms;
  char *sdk_dir;
  kuala__lua_cpu_t *cpu;
  kuala_bundle_t *bundles;
  struct hmod_s *hmods; /* host modules (kuala/host.h) */
  /* Reconciles ready to run: preempted ones and those of hot bundles. The
   * idle handle runs one slice per loop iteration while any is queued. */
  struct {
    task_t *head, *tail;
  } rq[2];
  unsigned turn;
  int64_t slice_ns; /* SLICE_NS, or $KUALA_LUA_SLICE_MS (0: no preemption) */
  int read_cache;   /* cache reads keep constructors ($KUALA_LUA_READ_CACHE=0: off) */
  uv_idle_t *idle;  /* created at the first need, closed by kuala_runtime_free */
};

static kuala_bundle_t *bundle_of(lua_State *L)
{
  lua_pushlightuserdata(L, &kuala__lua_key_bundle);
  lua_rawget(L, LUA_REGISTRYINDEX);
  kuala_bundle_t *b = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return b;
}

/* ---- allocator ---------------------------------------------------------- */

/* Size class of a block of n bytes (n >= 1), or -1 when it is not pooled.
 * LuaJIT passes the exact old size on every free and realloc, so the class
 * of a block is known when it comes back. */
static int pool_class(size_t n)
{
  return n <= POOL_CLASSES * POOL_STEP ? (int)((n - 1) / POOL_STEP) : -1;
}

static void *pool_get(kuala_bundle_t *b, size_t n)
{
  int c = pool_class(n);
  if (c < 0)
    return malloc(n);
  void *p = b->pool[c];
  if (!p)
    return malloc((size_t)(c + 1) * POOL_STEP);
  memcpy(&b->pool[c], p, sizeof p);
  b->pooled -= (size_t)(c + 1) * POOL_STEP;
  return p;
}

static void pool_put(kuala_bundle_t *b, void *p, size_t n)
{
  int c = pool_class(n);
  size_t sz = (size_t)(c + 1) * POOL_STEP;
  if (c < 0 || b->pooled + sz > POOL_MAX) {
    free(p);
    return;
  }
  memcpy(p, &b->pool[c], sizeof p);
  b->pool[c] = p;
  b->pooled += sz;
}

static void pool_drain(kuala_bundle_t *b)
{
  for (int c = 0; c < POOL_CLASSES; c++) {
    while (b->pool[c]) {
      void *p = b->pool[c];
      memcpy(&b->pool[c], p, sizeof p);
      free(p);
    }
  }
  b->pooled = 0;
}

/* realloc through the pool: small blocks keep their class's size. */
static void *pool_realloc(kuala_bundle_t *b, void *ptr, size_t osize, size_t nsize)
{
  if (!ptr || osize == 0)
    return pool_get(b, nsize);
  int oc = pool_class(osize), nc = pool_class(nsize);
  if (oc < 0 && nc < 0)
    return realloc(ptr, nsize);
  if (oc >= 0 && oc == nc)
    return ptr;
  void *p = pool_get(b, nsize);
  if (!p)
    return NULL;
  memcpy(p, ptr, osize < nsize ? osize : nsize);
  pool_put(b, ptr, osize);
  return p;
}

static void *bundle_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  kuala_bundle_t *b = ud;
  if (nsize == 0) {
    if (ptr)
      pool_put(b, ptr, osize);
    b->mem_used -= osize;
    return NULL;
  }
  if (nsize > osize && b->enforce) {
    size_t next = b->mem_used - osize + nsize;
    /* Past the cap the hook raises at the next instruction, with the line;
     * past cap + grace the allocation fails ("not enough memory"). */
    if (next > b->mem_limit + b->mem_limit / 8)
      return NULL;
    if (next > b->mem_limit && !b->mem_over) {
      b->mem_over = 1;
      kuala__lua_cpu_poke(b->rt->cpu, b->L);
    }
  }
  void *p = pool_realloc(b, ptr, osize, nsize);
  if (p == NULL)
    return NULL;
  b->mem_used = b->mem_used - osize + nsize;
  return p;
}

/* Hook callback: still over the cap? Then the hook raises. */
static int over_memory(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  if (!b->mem_over)
    return 0;
  if (b->mem_used <= b->mem_limit) {
    b->mem_over = 0;
    return 0;
  }
  b->mem_tripped = 1;
  return 1;
}

static int on_panic(lua_State *L)
{
  const char *msg = lua_tostring(L, -1);
  kuala_logf(KUALA_LOG_ERROR, NULL, 0, "lua: unprotected error: %s", msg ? msg : "?");
  abort();
}

/* ---- errors with a location --------------------------------------------- */

/* "bundle/file.lua:12" of the innermost Lua frame of `co` into out. */
static void where(lua_State *co, char *out, size_t outlen)
{
  lua_Debug ar;
  out[0] = 0;
  for (int level = 0; lua_getstack(co, level, &ar); level++) {
    if (lua_getinfo(co, "Sl", &ar) && ar.currentline > 0) {
      snprintf(out, outlen, "%s:%d", ar.short_src, ar.currentline);
      return;
    }
  }
}

/* Whether a chunk belongs to the SDK ("kuala/x.lua") or to the runtime's
 * own Lua wrappers ("kuala.coroutine", "kuala.xpcall", "kuala.host"). */
static int sdk_chunk(const char *src)
{
  return strncmp(src, "kuala/", 6) == 0 || strncmp(src, "kuala.", 6) == 0;
}

/* Whether a frame belongs to the SDK or the runtime (C functions have no
 * bundle line either). */
static int sdk_frame(const lua_Debug *ar)
{
  return ar->currentline <= 0 || sdk_chunk(ar->short_src);
}

/* "bundle/file.lua:12" of the innermost bundle frame of `co` (SDK frames
 * skipped), or "" when there is none. */
static void bundle_where(lua_State *co, char *out, size_t outlen)
{
  lua_Debug ar;
  out[0] = 0;
  for (int level = 0; level < 200 && lua_getstack(co, level, &ar); level++) {
    if (lua_getinfo(co, "Sl", &ar) && !sdk_frame(&ar)) {
      snprintf(out, outlen, "%s:%d", ar.short_src, ar.currentline);
      return;
    }
  }
}

/* A traceback of the bundle's frames of a failed coroutine, innermost
 * first; runs of SDK frames fold into one line. Appends to out. */
static void bundle_traceback(lua_State *co, char *out, size_t outlen)
{
  lua_Debug ar;
  size_t used = strlen(out);
  int folded = 0, lines = 0, any = 0;
  /* Bounded (200 levels): it runs as an error handler, where no hook can
   * stop it. */
  for (int level = 0; level < 200 && lua_getstack(co, level, &ar) && used + 1 < outlen; level++) {
    if (!lua_getinfo(co, "Sln", &ar))
      continue;
    if (sdk_frame(&ar)) {
      folded++;
      continue;
    }
    if (!any) {
      used += (size_t)snprintf(out + used, outlen - used, "\nstack traceback:");
      any = 1;
    }
    if (used + 1 >= outlen)
      break;
    if (folded) {
      used += (size_t)snprintf(out + used, outlen - used, "\n\t(%d kuala SDK frame%s)", folded,
                               folded == 1 ? "" : "s");
      folded = 0;
    }
    if (used + 1 >= outlen)
      break;
    if (++lines > 12) {
      used += (size_t)snprintf(out + used, outlen - used, "\n\t...");
      break;
    }
    if (ar.name)
      used += (size_t)snprintf(out + used, outlen - used, "\n\t%s:%d: in function '%s'",
                               ar.short_src, ar.currentline, ar.name);
    else
      used += (size_t)snprintf(out + used, outlen - used, "\n\t%s:%d: in %s", ar.short_src,
                               ar.currentline, *ar.what == 'm' ? "main chunk" : "a function");
  }
}

/* ---- the kuala.core module ---------------------------------------------- */

static task_t *current_task(lua_State *L, kuala_bundle_t *b, const char *what)
{
  /* While a task runs, any running thread of the VM is the task's coroutine
   * or a coroutine it resumed (through the sandbox's resume, which forwards
   * API waits upward). */
  if (b->current == NULL) {
    luaL_error(L,
               "%s cannot be called here: API calls wait for the server, which is only "
               "possible inside a reconcile (not at module top level, in predicates or map "
               "functions)",
               what);
  }
  (void)L;
  return b->current;
}

static void task_resume(task_t *t, int nargs);
static void report_failure(kuala_bundle_t *b, task_t *failed, const char *msg);

static void op_cancel(kuala_bundle_t *b, op_t *op)
{
  if (op->is_wait)
    b->rt->backend.cache_wait_cancel(b->rt->backend.self, op->handle);
  else
    b->rt->backend.call_cancel(b->rt->backend.self, op->handle);
}

static void op_done(void *data, int err, const char *json, size_t len)
{
  op_t *op = data;
  kuala_bundle_t *b = op->b;
  if (op->in_start) {
    op->done = 1;
    op->err = err;
    kuala_buf_reset(&b->answer);
    if (json && kuala_buf_append(&b->answer, json, len))
      op->err = KUALA_E2BIG;
    return;
  }
  task_t *t = op->task;
  kuala_free(op);
  if (t == NULL)
    return; /* orphan: the bundle closed or the task ended */
  t->op = NULL;
  if (t->expired)
    err = KUALA_ETIMEDOUT;
  b->enforce = 0;
  lua_settop(t->co, 0); /* drop the yielded mark */
  lua_pushinteger(t->co, err);
  if (json && !t->expired) {
    lua_pushlstring(t->co, json, len);
  } else {
    lua_pushnil(t->co);
  }
  b->enforce = 1;
  task_resume(t, 2);
}

static const char *opt_str(lua_State *L, int idx)
{
  return lua_isnoneornil(L, idx) ? NULL : luaL_checkstring(L, idx);
}

/* core._call(verb, api_version, kind, ns, name, subresource, body, patch_type,
 *            field_manager, force) -> code, json|nil
 * Yields unless the backend answers at once. */
static int l_core_call(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  kuala_call_t call;
  memset(&call, 0, sizeof call);
  call.verb = (kuala_call_verb_t)luaL_checkinteger(L, 1);
  call.api_version = luaL_checkstring(L, 2);
  call.kind = luaL_checkstring(L, 3);
  call.ns = opt_str(L, 4);
  call.name = opt_str(L, 5);
  call.subresource = opt_str(L, 6);
  call.patch_type = opt_str(L, 8);
  call.field_manager = opt_str(L, 9);
  call.force = lua_toboolean(L, 10);
  call.permissions = b->perms;
  if (call.verb < KUALA_CALL_GET || call.verb > KUALA_CALL_DELETE) {
    return luaL_argerror(L, 1, "unknown verb");
  }
  task_t *t = current_task(L, b, "an API call");
  if (t->expired) {
    lua_pushinteger(L, KUALA_ETIMEDOUT);
    lua_pushnil(L);
    return 2;
  }
  if (lua_type(L, 7) == LUA_TSTRING) {
    call.body = lua_tolstring(L, 7, &call.body_len);
  } else if (!lua_isnoneornil(L, 7)) {
    char why[160];
    if (kuala__lua_json_encode(L, 7, &b->scratch, why, sizeof why)) {
      return luaL_error(L, "cannot encode the request body: %s", why);
    }
    call.body = b->scratch.data;
    call.body_len = b->scratch.len;
  }
  op_t *op = kuala_calloc(1, sizeof *op);
  op->task = t;
  op->b = b;
  op->in_start = 1;
  int rc = b->rt->backend.call_start(b->rt->backend.self, &call, op_done, op, &op->handle);
  op->in_start = 0;
  if (rc != 0) {
    kuala_free(op);
    lua_pushinteger(L, rc);
    lua_pushnil(L);
    return 2;
  }
  if (op->done) { /* fast path: no yield */
    int err = op->err;
    kuala_free(op);
    lua_pushinteger(L, err);
    if (b->answer.len) {
      lua_pushlstring(L, b->answer.data, b->answer.len);
    } else {
      lua_pushnil(L);
    }
    return 2;
  }
  t->op = op;
  /* The mark lets the sandbox's coroutine.resume tell an API wait of a
   * nested coroutine from an ordinary yield and pass it upward. */
  lua_pushlightuserdata(L, &key_api_mark);
  return lua_yield(L, 1);
}

static void push_query(lua_State *L, kuala_cache_query_t *q)
{
  memset(q, 0, sizeof *q);
  luaL_checktype(L, 1, LUA_TTABLE);
  const char **fields[] = {&q->api_version,    &q->kind,  &q->ns,         &q->name,
                           &q->label_selector, &q->index, &q->index_value};
  const char *names[] = {"api_version", "kind", "namespace", "name", "selector", "index", "value"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    lua_getfield(L, 1, names[i]);
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "query field '%s' must be a string", names[i]);
      *fields[i] = lua_tostring(L, -1);
    }
    lua_pop(L, 1); /* the string stays alive: it is referenced by the table */
  }
  if (!q->api_version || !q->kind)
    luaL_error(L, "query needs api_version and kind");
}

/* A cached object as a fresh table tree, through the VM's read cache
 * (ljson.c), which may use up to 1/8 of the memory cap and is bypassed
 * while the VM uses more than 3/4 of it. */
static void push_decoded(lua_State *L, kuala_bundle_t *b, const char *json, size_t len,
                         const char *ident, size_t identlen)
{
  char why[160];
  size_t budget = b->rt->read_cache ? b->mem_limit / 8 : 0;
  if (b->mem_used > b->mem_limit / 4 * 3)
    budget = 0; /* short of memory: decode, keep nothing more */
  if (kuala__lua_json_push_cached(L, json, len, budget, ident, identlen, &b->scratch, why,
                                  sizeof why)) {
    luaL_error(L, "cache returned %s", why);
  }
}

/* core.cache_get{api_version=, kind=, namespace=, name=} -> obj | nil, errname */
static int l_core_cache_get(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  kuala_cache_query_t q;
  push_query(L, &q);
  q.permissions = b->perms;
  if (!q.name)
    return luaL_error(L, "get needs a name");
  const char *json = NULL;
  size_t len = 0;
  int rc = b->rt->backend.cache_get(b->rt->backend.self, &q, &json, &len);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, kuala_err_name(rc));
    return 2;
  }
  char ident[512];
  int il =
      snprintf(ident, sizeof ident, "%s/%s/%s/%s", q.api_version, q.kind, q.ns ? q.ns : "", q.name);
  push_decoded(L, b, json, len, il > 0 && (size_t)il < sizeof ident ? ident : NULL,
               il > 0 && (size_t)il < sizeof ident ? (size_t)il : 0);
  return 1;
}

typedef struct {
  const char **json;
  size_t *len;
  size_t n, cap;
} list_acc_t;

static int list_each(void *data, const char *json, size_t len)
{
  list_acc_t *a = data;
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 16;
    a->json = kuala_realloc(a->json, a->cap * sizeof *a->json);
    a->len = kuala_realloc(a->len, a->cap * sizeof *a->len);
  }
  a->json[a->n] = json;
  a->len[a->n++] = len;
  return 0;
}

static int acc_gc(lua_State *L)
{
  list_acc_t *a = lua_touserdata(L, 1);
  if (!a)
    return 0;
  kuala_free(a->json);
  kuala_free(a->len);
  a->json = NULL;
  a->len = NULL;
  return 0;
}

/* core.cache_list{api_version=, kind=, namespace=, selector=, index=, value=}
 * -> array | nil, errname */
static int l_core_cache_list(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  kuala_cache_query_t q;
  push_query(L, &q);
  q.permissions = b->perms;
  /* The accumulator lives in a userdata so a Lua error cannot leak it. */
  list_acc_t *a = lua_newuserdata(L, sizeof *a);
  memset(a, 0, sizeof *a);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, acc_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  int rc = b->rt->backend.cache_list(b->rt->backend.self, &q, list_each, a);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, kuala_err_name(rc));
    return 2;
  }
  lua_createtable(L, (int)a->n, 0);
  for (size_t i = 0; i < a->n; i++) {
    push_decoded(L, b, a->json[i], a->len[i], NULL, 0);
    lua_rawseti(L, -2, (int)i + 1);
  }
  if (a->n == 0) {
    lua_pushlightuserdata(L, &kuala__lua_key_array_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
  }
  return 1;
}

static int l_core_json_encode(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  char why[160];
  luaL_checkany(L, 1);
  if (kuala__lua_json_encode(L, 1, &b->scratch, why, sizeof why)) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  lua_pushlstring(L, b->scratch.data, b->scratch.len);
  return 1;
}

static int l_core_json_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char why[160];
  if (kuala__lua_json_push(L, s, len, why, sizeof why)) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  return 1;
}

/* core.log(level, msg, {k, v, k, v, ...}) -- strings only, the SDK converts. */
static int l_core_log(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  const char *lvl = luaL_checkstring(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  kuala_log_level_t level;
  if (kuala_log_parse_level(lvl, &level))
    return luaL_argerror(L, 1, "unknown log level");
  if (!kuala_log_enabled(level))
    return 0;
  kuala_log_kv_t kv[17];
  size_t n = 0;
  kv[n].key = "bundle";
  kv[n++].value = b->name;
  if (lua_istable(L, 3)) {
    int len = (int)lua_objlen(L, 3);
    for (int i = 1; i + 1 <= len && n < 17; i += 2) {
      lua_rawgeti(L, 3, i);
      lua_rawgeti(L, 3, i + 1);
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
        return luaL_error(L, "log fields must be strings");
      }
      kv[n].key = lua_tostring(L, -2);
      kv[n++].value = lua_tostring(L, -1);
      /* Leave both on the stack: they stay referenced until we return. */
    }
  }
  kuala_log(level, kv, n, msg, NULL);
  return 0;
}

static int l_core_errname(lua_State *L)
{
  int code = (int)luaL_checkinteger(L, 1);
  lua_pushstring(L, kuala_err_name(code));
  lua_pushstring(L, kuala_strerror(code));
  return 2;
}

static int l_core_now(lua_State *L)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core._cache_wait{api_version=, kind=} -> code
 * Yields the reconcile until the cache of that kind has synced (bounded by
 * the reconcile's deadline). 0: read again; KUALA_ENOTFOUND: the kind is not
 * served; KUALA_EAGAIN: the backend cannot wait (no cache_wait). */
static int l_core_cache_wait(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  kuala_cache_query_t q;
  push_query(L, &q);
  q.permissions = b->perms;
  if (!b->rt->backend.cache_wait) {
    lua_pushinteger(L, KUALA_EAGAIN);
    return 1;
  }
  task_t *t = current_task(L, b, "waiting for a cache");
  if (t->expired) {
    lua_pushinteger(L, KUALA_ETIMEDOUT);
    return 1;
  }
  uint64_t elapsed = uv_now(b->rt->loop) - t->started_ms;
  uint64_t left = elapsed >= b->deadline_ms ? 1 : b->deadline_ms - elapsed;
  op_t *op = kuala_calloc(1, sizeof *op);
  op->task = t;
  op->b = b;
  op->is_wait = 1;
  op->in_start = 1;
  int rc = b->rt->backend.cache_wait(b->rt->backend.self, &q, left, op_done, op, &op->handle);
  op->in_start = 0;
  if (rc != 0 || op->done) {
    int err = rc ? rc : op->err;
    kuala_free(op);
    lua_pushinteger(L, err);
    return 1;
  }
  t->op = op;
  lua_pushlightuserdata(L, &key_api_mark);
  return lua_yield(L, 1);
}

/* core.traceback(msg) -> msg with the bundle's frames (SDK frames folded).
 * Used as the xpcall handler of reconciles, so it runs where the error was
 * raised. A memory or CPU limit error is returned as it is (allocating
 * would fail or be stopped again); only its location is kept for the final
 * message. */
static int l_core_traceback(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    lua_pushvalue(L, 1);
    return 1;
  }
  int mem = b->mem_over || b->mem_tripped || strstr(msg, "memory limit exceeded") ||
            strstr(msg, "not enough memory");
  if (mem || strstr(msg, "CPU budget exceeded")) {
    b->mem_seen |= mem;
    bundle_where(L, b->fail_at, sizeof b->fail_at);
    lua_pushvalue(L, 1);
    return 1;
  }
  char out[2048];
  snprintf(out, sizeof out, "%s", msg);
  bundle_traceback(L, out, sizeof out);
  lua_pushstring(L, out);
  return 1;
}

/* core.bundle_files() -> {[name] = source}: the bundle's own files (for
 * kuala._type_warnings). */
static int l_core_bundle_files(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  lua_createtable(L, 0, (int)b->nfiles);
  for (size_t i = 0; i < b->nfiles; i++) {
    lua_pushlstring(L, b->files[i].src, b->files[i].len);
    lua_setfield(L, -2, b->files[i].name);
  }
  return 1;
}

/* core.in_reconcile() -> boolean: whether a reconcile coroutine runs (reads
 * may wait), as opposed to module top level, predicates and map functions. */
static int l_core_in_reconcile(lua_State *L)
{
  lua_pushboolean(L, bundle_of(L)->current != NULL);
  return 1;
}

/* core.cache_start{api_version=, kind=}: start the informer of a kind now
 * (kuala.controller's `reads`), without waiting. Errors are ignored: the
 * first read resolves again. */
static int l_core_cache_start(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  kuala_cache_query_t q;
  push_query(L, &q);
  q.permissions = b->perms;
  q.name = "";
  const char *json;
  size_t len;
  (void)b->rt->backend.cache_get(b->rt->backend.self, &q, &json, &len);
  return 0;
}

/* core.enqueue(controller, ns|nil, name|nil, after_seconds) -> code
 * name nil: every primary object of the controller. */
static int l_core_enqueue(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  const char *ctl = luaL_checkstring(L, 1);
  const char *ns = opt_str(L, 2);
  const char *name = opt_str(L, 3);
  lua_Number after = luaL_optnumber(L, 4, 0);
  if (!b->rt->backend.enqueue) {
    lua_pushinteger(L, KUALA_ENOTSUP);
    return 1;
  }
  uint64_t ms = after > 0 ? (uint64_t)(after * 1000.0) : 0;
  lua_pushinteger(L, b->rt->backend.enqueue(b->rt->backend.self, ctl, ns, name, ms));
  return 1;
}

/* core.random_bytes(n) -> string of n bytes from the OS CSPRNG (OpenSSL). */
static int l_core_random_bytes(lua_State *L)
{
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 0 || n > 65536)
    return luaL_argerror(L, 1, "between 0 and 65536 bytes");
  luaL_Buffer lb;
  luaL_buffinit(L, &lb);
  unsigned char chunk[256];
  while (n > 0) {
    int k = n > (lua_Integer)sizeof chunk ? (int)sizeof chunk : (int)n;
    if (RAND_bytes(chunk, k) != 1)
      return luaL_error(L, "the system's random number generator failed");
    luaL_addlstring(&lb, (const char *)chunk, (size_t)k);
    n -= k;
  }
  luaL_pushresult(&lb);
  return 1;
}

static void push_core(lua_State *L)
{
  static const luaL_Reg fns[] = {{"_call", l_core_call},
                                 {"cache_get", l_core_cache_get},
                                 {"cache_list", l_core_cache_list},
                                 {"json_encode", l_core_json_encode},
                                 {"json_decode", l_core_json_decode},
                                 {"log", l_core_log},
                                 {"errname", l_core_errname},
                                 {"now", l_core_now},
                                 {"_cache_wait", l_core_cache_wait},
                                 {"cache_start", l_core_cache_start},
                                 {"in_reconcile", l_core_in_reconcile},
                                 {"traceback", l_core_traceback},
                                 {"bundle_files", l_core_bundle_files},
                                 {"enqueue", l_core_enqueue},
                                 {"random_bytes", l_core_random_bytes},
                                 {NULL, NULL}};
  lua_createtable(L, 0, 16);
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, -2, f->name);
  }
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushlightuserdata(L, &kuala__lua_key_array_mt);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_setfield(L, -2, "array_mt");
  lua_pushlightuserdata(L, &kuala__lua_key_object_mt);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_setfield(L, -2, "object_mt");
  static const struct {
    const char *name;
    int verb;
  } verbs[] = {{"GET", KUALA_CALL_GET},       {"CREATE", KUALA_CALL_CREATE},
               {"UPDATE", KUALA_CALL_UPDATE}, {"PATCH", KUALA_CALL_PATCH},
               {"APPLY", KUALA_CALL_APPLY},   {"DELETE", KUALA_CALL_DELETE}};
  lua_createtable(L, 0, 6);
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
    lua_pushinteger(L, verbs[i].verb);
    lua_setfield(L, -2, verbs[i].name);
  }
  lua_setfield(L, -2, "verbs");
  lua_pushinteger(L, KUALA_ETIMEDOUT);
  lua_setfield(L, -2, "ETIMEDOUT");
}

/* ---- host modules (kuala/host.h) ------------------------------------------ */

typedef struct hmod_s {
  char *name;
  kuala_host_fn_t *fns; /* names copied */
  size_t nfns;
  void *data;
  char **bundles; /* NULL = every bundle; else NULL-terminated */
  struct hmod_s *next;
} hmod_t;

/* A host call outlives whatever waits for it: the host owns it until it
 * finishes it. `op` is NULL once nobody waits (deadline, bundle closed). */
struct kuala_host_call_s {
  op_t *op;
};

/* Nobody waits for the host call of `op` any more: free the op; the call
 * stays with the host, which frees it when it finishes it. */
static void host_abandon(op_t *op)
{
  op->host->op = NULL;
  op->host = NULL;
  kuala_free(op);
}

static void host_finish(kuala_host_call_t *call, int err, const char *text, size_t len)
{
  op_t *op = call->op;
  kuala_free(call);
  if (op == NULL) {
    return;
  }
  op->host = NULL;
  op_done(op, err, text, len);
}

void kuala_host_call_done(kuala_host_call_t *call, const char *json, size_t len)
{
  host_finish(call, 0, json, json ? len : 0);
}

void kuala_host_call_fail(kuala_host_call_t *call, int err, const char *message)
{
  if (err >= 0) {
    err = KUALA_EIO;
  }
  host_finish(call, err, message, message ? strlen(message) : 0);
}

static int valid_module_name(const char *s);

static int is_identifier(const char *s)
{
  if (!s || !*s || (*s >= '0' && *s <= '9')) {
    return 0;
  }
  for (; *s; s++) {
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_')) {
      return 0;
    }
  }
  return 1;
}

int kuala_runtime_add_host_module(kuala_runtime_t *rt, const kuala_host_module_t *m)
{
  if (!rt || !m || !m->name || !valid_module_name(m->name) ||
      (strncmp(m->name, "kuala", 5) == 0 && (m->name[5] == 0 || m->name[5] == '.')) ||
      (m->nfns && !m->fns)) {
    return KUALA_EINVAL;
  }
  for (size_t i = 0; i < m->nfns; i++) {
    if (!is_identifier(m->fns[i].name) || !m->fns[i].fn) {
      return KUALA_EINVAL;
    }
  }
  for (hmod_t *h = rt->hmods; h; h = h->next) {
    if (strcmp(h->name, m->name) == 0) {
      return KUALA_EEXISTS;
    }
  }
  hmod_t *h = kuala_calloc(1, sizeof *h);
  h->name = kuala_strdup(m->name);
  h->nfns = m->nfns;
  h->fns = kuala_calloc(m->nfns + 1, sizeof *h->fns);
  for (size_t i = 0; i < m->nfns; i++) {
    h->fns[i] = m->fns[i];
    h->fns[i].name = kuala_strdup(m->fns[i].name);
  }
  h->data = m->data;
  if (m->bundles) {
    size_t n = 0;
    while (m->bundles[n]) {
      n++;
    }
    h->bundles = kuala_calloc(n + 1, sizeof *h->bundles);
    for (size_t i = 0; i < n; i++) {
      h->bundles[i] = kuala_strdup(m->bundles[i]);
    }
  }
  h->next = rt->hmods;
  rt->hmods = h;
  return 0;
}

static void host_modules_free(kuala_runtime_t *rt)
{
  while (rt->hmods) {
    hmod_t *h = rt->hmods;
    rt->hmods = h->next;
    for (size_t i = 0; i < h->nfns; i++) {
      kuala_free((char *)h->fns[i].name);
    }
    for (size_t i = 0; h->bundles && h->bundles[i]; i++) {
      kuala_free(h->bundles[i]);
    }
    kuala_free(h->bundles);
    kuala_free(h->fns);
    kuala_free(h->name);
    kuala_free(h);
  }
}

/* The module `name` as bundle `bundle` may see it, or NULL. */
static const hmod_t *host_module_find(const kuala_runtime_t *rt, const char *name,
                                      const char *bundle)
{
  for (const hmod_t *h = rt->hmods; h; h = h->next) {
    if (strcmp(h->name, name) != 0) {
      continue;
    }
    if (!h->bundles) {
      return h;
    }
    for (size_t i = 0; h->bundles[i]; i++) {
      if (strcmp(h->bundles[i], bundle) == 0) {
        return h;
      }
    }
    return NULL;
  }
  return NULL;
}

/* upvalues: light userdata hmod_t *, function index.
 * (...) -> code, text|nil, like core._call; yields for an async answer. */
static int l_host_raw(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  const hmod_t *h = lua_touserdata(L, lua_upvalueindex(1));
  const kuala_host_fn_t *f = &h->fns[lua_tointeger(L, lua_upvalueindex(2))];
  task_t *t = NULL;
  if (f->async) {
    char what[200];
    snprintf(what, sizeof what, "%s.%s (an asynchronous host function)", h->name, f->name);
    t = current_task(L, b, what);
    if (t->expired) {
      lua_pushinteger(L, KUALA_ETIMEDOUT);
      lua_pushnil(L);
      return 2;
    }
  }
  /* The arguments as one JSON array; nil becomes null. */
  int n = lua_gettop(L);
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    if (lua_isnil(L, i)) {
      lua_pushlightuserdata(L, NULL);
    } else {
      lua_pushvalue(L, i);
    }
    lua_rawseti(L, -2, i);
  }
  if (n == 0) {
    lua_pushlightuserdata(L, &kuala__lua_key_array_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
  }
  char why[160];
  if (kuala__lua_json_encode(L, n + 1, &b->scratch, why, sizeof why)) {
    return luaL_error(L, "%s.%s: cannot encode the arguments: %s", h->name, f->name, why);
  }
  kuala_host_call_t *call = kuala_calloc(1, sizeof *call);
  op_t *op = kuala_calloc(1, sizeof *op);
  op->b = b;
  op->host = call;
  op->in_start = 1;
  call->op = op;
  f->fn(h->data, call, b->name, b->scratch.data, b->scratch.len);
  op->in_start = 0;
  if (op->done) { /* answered at once */
    int err = op->err;
    kuala_free(op);
    lua_pushinteger(L, err);
    if (b->answer.len || err) {
      lua_pushlstring(L, b->answer.data ? b->answer.data : "", b->answer.len);
    } else {
      lua_pushnil(L);
    }
    return 2;
  }
  if (!f->async) {
    host_abandon(op);
    return luaL_error(L,
                      "host function %s.%s did not answer before returning (it is declared "
                      "synchronous)",
                      h->name, f->name);
  }
  op->task = t;
  t->op = op;
  lua_pushlightuserdata(L, &key_api_mark);
  return lua_yield(L, 1);
}

/* Wraps a raw host function: value | nil, "ENAME", message. */
static const char host_wrapper[] =
    "local raw, errname, decode, label = ...\n"
    "return function(...)\n"
    "  local code, text = raw(...)\n"
    "  if code ~= 0 then return nil, errname(code), text end\n"
    "  if text == nil then return nil end\n"
    "  local v, why = decode(text)\n"
    "  if v == nil and why then\n"
    "    return nil, 'EBADMSG', label .. ' answered invalid JSON: ' .. why\n"
    "  end\n"
    "  return v\n"
    "end\n";

static int l_core_errname(lua_State *L);
static int l_core_json_decode(lua_State *L);

/* Push the module table of host module h. */
static void push_host_module(lua_State *L, const hmod_t *h)
{
  lua_createtable(L, 0, (int)h->nfns);
  for (size_t i = 0; i < h->nfns; i++) {
    if (luaL_loadbuffer(L, host_wrapper, sizeof host_wrapper - 1, "=kuala.host")) {
      lua_error(L);
    }
    lua_pushlightuserdata(L, (void *)h);
    lua_pushinteger(L, (lua_Integer)i);
    lua_pushcclosure(L, l_host_raw, 2);
    lua_pushcfunction(L, l_core_errname);
    lua_pushcfunction(L, l_core_json_decode);
    lua_pushfstring(L, "%s.%s", h->name, h->fns[i].name);
    lua_call(L, 4, 1);
    lua_setfield(L, -2, h->fns[i].name);
  }
}

/* ---- require ------------------------------------------------------------ */

static int valid_module_name(const char *s)
{
  if (!*s || *s == '.')
    return 0;
  for (const char *p = s; *p; p++) {
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-' || *p == '.')) {
      return 0;
    }
    if (p[0] == '.' && p[1] == '.')
      return 0;
  }
  return 1;
}

static char *read_file(const char *path, size_t max, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  kuala_buf_t buf = KUALA_BUF_INIT(max);
  char tmp[8192];
  size_t n;
  int ok = 1;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
    if (kuala_buf_append(&buf, tmp, n)) {
      ok = 0;
      break;
    }
  }
  if (ferror(f))
    ok = 0;
  fclose(f);
  if (!ok) {
    kuala_buf_free(&buf);
    return NULL;
  }
  if (buf.data == NULL)
    kuala_buf_append(&buf, "", 0), kuala_buf_reserve(&buf, 1);
  return kuala_buf_take(&buf, len);
}

/* Load the SDK module `name` (already validated, starts with "kuala").
 * Pushes the chunk; returns 0, or 1 when there is no such SDK module. */
static int load_sdk(lua_State *L, kuala_bundle_t *b, const char *name)
{
  if (b->rt->sdk_dir) {
    char path[1024], rel[256];
    if (strcmp(name, "kuala") == 0) {
      snprintf(rel, sizeof rel, "kuala/init.lua");
    } else {
      snprintf(rel, sizeof rel, "%s.lua", name);
      for (char *p = rel; *p; p++) {
        if (*p == '.' && strcmp(p, ".lua") != 0)
          *p = '/';
      }
    }
    snprintf(path, sizeof path, "%s/%s", b->rt->sdk_dir, rel);
    size_t len;
    char *src = read_file(path, MAX_FILE_BYTES, &len);
    if (!src)
      return 1;
    char chunk[300];
    snprintf(chunk, sizeof chunk, "@%s", rel);
    int rc = luaL_loadbuffer(L, src, len, chunk);
    kuala_free(src);
    if (rc)
      lua_error(L);
    return 0;
  }
  for (const kuala__lua_sdk_module_t *m = kuala__lua_sdk; m->name; m++) {
    if (strcmp(m->name, name) == 0) {
      if (luaL_loadbuffer(L, (const char *)m->code, m->len, name))
        lua_error(L);
      return 0;
    }
  }
  return 1;
}

static int load_bundle_module(lua_State *L, kuala_bundle_t *b, const char *name)
{
  char path[512], alt[600];
  if (strlen(name) > 400)
    return 1;
  snprintf(path, sizeof path, "%s", name);
  for (char *p = path; *p; p++) {
    if (*p == '.')
      *p = '/';
  }
  snprintf(alt, sizeof alt, "%s/init.lua", path);
  strncat(path, ".lua", sizeof path - strlen(path) - 1);
  for (size_t i = 0; i < b->nfiles; i++) {
    if (strcmp(b->files[i].name, path) == 0 || strcmp(b->files[i].name, alt) == 0) {
      char chunk[600];
      snprintf(chunk, sizeof chunk, "@%s/%s", b->name, b->files[i].name);
      if (luaL_loadbufferx(L, b->files[i].src, b->files[i].len, chunk, "t"))
        lua_error(L);
      return 0;
    }
  }
  return 1;
}

/* Modules only the SDK's own modules may require: they hand out the raw
 * primitives (_call, cache_get, ...) that the SDK wraps with its checks. */
static int is_internal(const char *name)
{
  return strcmp(name, "kuala.core") == 0 || strcmp(name, "kuala.engine") == 0;
}

static int require_impl(lua_State *L, int privileged)
{
  kuala_bundle_t *b = bundle_of(L);
  const char *name = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  /* Before the cache: an SDK module may have loaded it already. */
  if (!privileged && is_internal(name)) {
    return luaL_error(L,
                      "module '%s' is internal to the kuala SDK and cannot be required by "
                      "bundle code (use require('kuala') and the ctx methods)",
                      name);
  }
  lua_pushlightuserdata(L, &key_loaded);
  lua_rawget(L, LUA_REGISTRYINDEX); /* 2: loaded */
  lua_getfield(L, 2, name);
  if (!lua_isnil(L, -1)) {
    if (lua_touserdata(L, -1) == &key_loading) {
      return luaL_error(L, "module '%s' requires itself (a require loop)", name);
    }
    return 1;
  }
  lua_pop(L, 1);
  if (!valid_module_name(name)) {
    return luaL_error(L, "invalid module name '%s'", name);
  }
  if (strcmp(name, "kuala.core") == 0) {
    lua_pushlightuserdata(L, &key_core);
    lua_rawget(L, LUA_REGISTRYINDEX);
    return 1;
  }
  const hmod_t *hm = host_module_find(b->rt, name, b->name);
  if (hm) {
    push_host_module(L, hm);
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);
    return 1;
  }
  int missing;
  if (strncmp(name, "kuala", 5) == 0 && (name[5] == 0 || name[5] == '.')) {
    missing = load_sdk(L, b, name);
    if (!missing) {
      /* SDK code runs with a `require` that reaches the internal modules. */
      lua_pushlightuserdata(L, &key_sdk_env);
      lua_rawget(L, LUA_REGISTRYINDEX);
      lua_setfenv(L, -2);
    }
  } else {
    missing = load_bundle_module(L, b, name);
  }
  if (missing) {
    return luaL_error(L,
                      "module '%s' not found in bundle '%s' (only the bundle's own files and "
                      "the kuala SDK can be required; C modules, ffi, io and debug are not "
                      "available)",
                      name, b->name);
  }
  lua_pushlightuserdata(L, &key_loading);
  lua_setfield(L, 2, name);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

static int l_require(lua_State *L)
{
  return require_impl(L, 0);
}

static int l_sdk_require(lua_State *L)
{
  return require_impl(L, 1);
}

/* ---- sandbox ------------------------------------------------------------ */

static int l_global_newindex(lua_State *L)
{
  const char *k = lua_tostring(L, 2);
  return luaL_error(L,
                    "assignment to undeclared global '%s' (globals are locked: use a local, "
                    "or rawset(_G, name, value) to declare one on purpose)",
                    k ? k : "?");
}

/* load/loadstring that refuse bytecode. load(fn) is supported by gathering
 * the pieces first. */
static int l_safe_load(lua_State *L)
{
  size_t len;
  const char *s;
  const char *chunkname;
  luaL_Buffer lb;
  if (lua_type(L, 1) == LUA_TFUNCTION) {
    luaL_buffinit(L, &lb);
    for (;;) {
      lua_pushvalue(L, 1);
      lua_call(L, 0, 1);
      if (lua_isnil(L, -1) || (lua_isstring(L, -1) && lua_objlen(L, -1) == 0)) {
        lua_pop(L, 1);
        break;
      }
      if (!lua_isstring(L, -1))
        return luaL_error(L, "reader function must return a string");
      luaL_addvalue(&lb);
    }
    luaL_pushresult(&lb);
    lua_replace(L, 1);
  }
  s = luaL_checklstring(L, 1, &len);
  chunkname = luaL_optstring(L, 2, "=(load)");
  if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
    lua_pushnil(L);
    lua_pushliteral(L, "binary chunks (bytecode) cannot be loaded in the sandbox");
    return 2;
  }
  if (luaL_loadbufferx(L, s, len, chunkname, "t")) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

static int l_safe_collectgarbage(lua_State *L)
{
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "count") == 0) {
    lua_pushnumber(
        L, (lua_Number)lua_gc(L, LUA_GCCOUNT, 0) + (lua_Number)lua_gc(L, LUA_GCCOUNTB, 0) / 1024.0);
    return 1;
  }
  if (strcmp(opt, "collect") == 0 || strcmp(opt, "step") == 0) {
    lua_gc(L, strcmp(opt, "collect") == 0 ? LUA_GCCOLLECT : LUA_GCSTEP, 0);
    lua_pushinteger(L, 0);
    return 1;
  }
  return luaL_error(L, "collectgarbage('%s') is not allowed in the sandbox", opt);
}

static int l_print(lua_State *L)
{
  kuala_bundle_t *b = bundle_of(L);
  luaL_Buffer lb;
  int n = lua_gettop(L);
  luaL_buffinit(L, &lb);
  for (int i = 1; i <= n; i++) {
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, i);
    lua_call(L, 1, 1);
    if (i > 1)
      luaL_addchar(&lb, '\t');
    luaL_addvalue(&lb);
  }
  luaL_pushresult(&lb);
  kuala_log_kv_t kv = {"bundle", b->name};
  kuala_log(KUALA_LOG_INFO, &kv, 1, lua_tostring(L, -1), NULL);
  return 0;
}

static void open_lib(lua_State *L, const char *name, lua_CFunction fn)
{
  lua_pushcfunction(L, fn);
  lua_pushstring(L, name);
  lua_call(L, 1, 0);
}

/* A removed function: calling it says what the sandbox took away and why
 * (upvalue 1 is the message). */
static int l_removed(lua_State *L)
{
  return luaL_error(L, "%s", lua_tostring(L, lua_upvalueindex(1)));
}

static void set_removed(lua_State *L, int t, const char *prefix, const char *const *names,
                        const char *why)
{
  for (; *names; names++) {
    lua_pushfstring(L,
                    "%s%s was removed by the kuala sandbox: %s (see docs/lua-runtime.md, "
                    "\"Bundles and the sandbox\")",
                    prefix, *names, why);
    lua_pushcclosure(L, l_removed, 1);
    lua_setfield(L, t, *names);
  }
}

static void set_nil(lua_State *L, int t, const char *const *names)
{
  for (; *names; names++) {
    lua_pushnil(L);
    lua_setfield(L, t, *names);
  }
}

static int build_sandbox(lua_State *L)
{
  kuala_bundle_t *b = lua_touserdata(L, 1);
  lua_pushlightuserdata(L, &kuala__lua_key_bundle);
  lua_pushlightuserdata(L, b);
  lua_rawset(L, LUA_REGISTRYINDEX);
  kuala__lua_json_init(L);

  open_lib(L, "", luaopen_base);
  open_lib(L, LUA_TABLIBNAME, luaopen_table);
  open_lib(L, LUA_STRLIBNAME, luaopen_string);
  open_lib(L, LUA_MATHLIBNAME, luaopen_math);
  open_lib(L, LUA_OSLIBNAME, luaopen_os);
  open_lib(L, LUA_BITLIBNAME, luaopen_bit);
  open_lib(L, LUA_JITLIBNAME, luaopen_jit);

  lua_pushvalue(L, LUA_GLOBALSINDEX);
  int g = lua_gettop(L);

  /* Keep jit for the runtime (tests ask whether it is on), hide it. */
  lua_pushlightuserdata(L, &key_jit);
  lua_getfield(L, g, "jit");
  lua_rawset(L, LUA_REGISTRYINDEX);

  static const char *const gone[] = {"jit", "package", "io", "debug", "ffi", NULL};
  set_nil(L, g, gone);
  static const char *const files[] = {"dofile", "loadfile", NULL};
  set_removed(L, g, "", files,
              "bundles cannot read files (require loads the bundle's own modules)");
  static const char *const envs[] = {"getfenv", "setfenv", "module", "newproxy", NULL};
  set_removed(L, g, "", envs,
              "it reaches other functions' environments or userdata internals, which would "
              "undo the sandbox");
  lua_pushcfunction(L, l_safe_load);
  lua_setfield(L, g, "load");
  lua_pushcfunction(L, l_safe_load);
  lua_setfield(L, g, "loadstring");
  lua_pushcfunction(L, l_safe_collectgarbage);
  lua_setfield(L, g, "collectgarbage");
  lua_pushcfunction(L, l_require);
  lua_setfield(L, g, "require");
  lua_pushcfunction(L, l_print);
  lua_setfield(L, g, "print");

  lua_getfield(L, g, "string");
  static const char *const dump[] = {"dump", NULL};
  set_removed(L, lua_gettop(L), "string.", dump,
              "bytecode can break out of the VM and cannot be loaded back in the sandbox");
  /* Pattern functions whose cost the CPU budget bounds (lpattern.c). The
   * string metatable's __index is this table, so s:find() gets them too. */
  kuala__lua_patterns_open(L, -1);
  lua_pop(L, 1);

  /* math.random: a different sequence in every VM and on every start. */
  unsigned char seed[8];
  if (RAND_bytes(seed, sizeof seed) == 1) {
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof seed; i++)
      v = v << 8 | seed[i];
    lua_getfield(L, g, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushnumber(L, (lua_Number)(v >> 11)); /* 53 bits: exact in a double */
    lua_call(L, 1, 0);
    lua_pop(L, 1);
  }

  /* os: time and date only. */
  lua_getfield(L, g, "os");
  int os = lua_gettop(L);
  lua_createtable(L, 0, 4);
  static const char *const keep[] = {"time", "clock", "date", "difftime", NULL};
  for (const char *const *k = keep; *k; k++) {
    lua_getfield(L, os, *k);
    lua_setfield(L, -2, *k);
  }
  static const char *const procs[] = {"execute", "exit", NULL};
  set_removed(L, lua_gettop(L), "os.", procs,
              "a bundle runs inside the engine's process and cannot start or end processes");
  static const char *const fs[] = {"remove", "rename", "tmpname", NULL};
  set_removed(L, lua_gettop(L), "os.", fs, "bundles have no file system access");
  static const char *const env[] = {"getenv", "setlocale", NULL};
  set_removed(L, lua_gettop(L), "os.", env,
              "the engine's environment and locale are not the bundle's (pass settings in a "
              "ConfigMap the controller reads, or as bundle files)");
  lua_setfield(L, g, "os");
  lua_pop(L, 1);

  /* Remove the hidden libraries from the module table too. */
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  static const char *const unload[] = {"jit", "os", "io", "debug", "package", "ffi", NULL};
  set_nil(L, lua_gettop(L), unload);
  lua_pop(L, 1);

  lua_pushlightuserdata(L, &key_loaded);
  lua_createtable(L, 0, 16);
  lua_rawset(L, LUA_REGISTRYINDEX);
  /* The SDK modules' environment: the globals, plus a require that may
   * load the internal modules (see is_internal). */
  lua_pushlightuserdata(L, &key_sdk_env);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_sdk_require);
  lua_setfield(L, -2, "require");
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, g);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, g);
  lua_setfield(L, -2, "__newindex");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, &key_core);
  push_core(L);
  lua_pushstring(L, b->name);
  lua_setfield(L, -2, "bundle");
  /* LuaJIT's own xpcall, for the SDK only: its reconcile runner needs the
   * handler (core.traceback, bounded C) to run where the error was raised.
   * Bundles get the budget-safe one below. */
  lua_getfield(L, g, "xpcall");
  lua_setfield(L, -2, "xpcall");
  lua_rawset(L, LUA_REGISTRYINDEX);

  /* coroutine.resume/wrap that forward API waits of nested coroutines to
   * the reconcile's coroutine (the scheduler only resumes that one). */
  static const char wrappers[] =
      "local raw_resume, raw_yield, status, create, MARK = ...\n"
      "local function step(co, ok, ...)\n"
      "  if ok and (...) == MARK and status(co) == 'suspended' then\n"
      "    return step(co, raw_resume(co, raw_yield(MARK)))\n"
      "  end\n"
      "  return ok, ...\n"
      "end\n"
      "local function resume(co, ...) return step(co, raw_resume(co, ...)) end\n"
      "local function unwrap(ok, ...)\n"
      "  if not ok then error((...), 0) end\n"
      "  return ...\n"
      "end\n"
      "local function wrap(f)\n"
      "  local co = create(f)\n"
      "  return function(...) return unwrap(resume(co, ...)) end\n"
      "end\n"
      "return resume, wrap\n";
  lua_getfield(L, g, "coroutine");
  int co_lib = lua_gettop(L);
  if (luaL_loadbuffer(L, wrappers, sizeof wrappers - 1, "=kuala.coroutine"))
    lua_error(L);
  lua_getfield(L, co_lib, "resume");
  lua_getfield(L, co_lib, "yield");
  lua_getfield(L, co_lib, "status");
  lua_getfield(L, co_lib, "create");
  lua_pushlightuserdata(L, &key_api_mark);
  lua_call(L, 5, 2);
  lua_setfield(L, co_lib, "wrap");
  lua_setfield(L, co_lib, "resume");
  lua_pop(L, 1);

  /* xpcall that runs the handler after the protected call has unwound.
   * LuaJIT runs a real xpcall handler at the point of the error, inside the
   * error machinery, where no hook fires: a handler that loops would never
   * be stopped (and one called for "CPU budget exceeded" would get a fresh
   * budget). Without the debug library a handler cannot inspect the failed
   * stack anyway, so running it afterwards changes nothing a bundle can
   * see; an error inside the handler gives "error in error handling" as
   * LuaJIT does. */
  static const char xpcall_src[] =
      "local pcall = ...\n"
      "local function handled(ok, ...)\n"
      "  if ok then return (...) end\n"
      "  return 'error in error handling'\n"
      "end\n"
      "local function finish(h, ok, ...)\n"
      "  if ok then return true, ... end\n"
      "  return false, handled(pcall(h, (...)))\n"
      "end\n"
      "return function(f, h, ...) return finish(h, pcall(f, ...)) end\n";
  /* The SDK's reconcile runner catches nothing: a failed reconcile's
   * coroutine keeps its stack, and describe_failure reads the bundle's
   * frames from it. */
  if (luaL_loadbuffer(L, xpcall_src, sizeof xpcall_src - 1, "=kuala.xpcall"))
    lua_error(L);
  lua_getfield(L, g, "pcall");
  lua_call(L, 1, 1);
  lua_setfield(L, g, "xpcall");

  /* Lock the globals (and the lock: __metatable). */
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_global_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, g);
  return 0;
}

/* ---- running Lua under the limits --------------------------------------- */

/* Classify a failed run into an error code and message. */
static int describe_failure(kuala_bundle_t *b, lua_State *co, int status, int cpu_tripped,
                            const char *what, char *out, size_t outlen)
{
  char loc[256], mine[256];
  where(co, loc, sizeof loc);
  bundle_where(co, mine, sizeof mine);
  int code;
  /* A run the hook suspended (LUA_YIELD) has no error message on its stack. */
  const char *top = status == LUA_YIELD ? NULL : lua_tostring(co, -1);
  /* The memory cap wins when both limits hit (the reconcile's own error
   * handling may run into the CPU budget after the memory error). */
  int mem = status == LUA_ERRMEM || b->mem_tripped || b->mem_seen ||
            (top && (strcmp(top, "not enough memory") == 0 ||
                     strstr(top, ": memory limit exceeded") != NULL));
  if (cpu_tripped || mem) {
    /* The hook's message carries the line that was running; a hard memory
     * failure has none. When that line is in the SDK, name the bundle's. */
    const char *msg =
        top && strstr(top, mem ? ": memory limit exceeded" : ": CPU budget exceeded") ? top : NULL;
    char at[600];
    snprintf(at, sizeof at, "%.280s", msg ? msg : mem && b->fail_at[0] ? b->fail_at : loc);
    char *cut = strstr(at, mem ? ": memory limit exceeded" : ": CPU budget exceeded");
    if (cut)
      *cut = 0;
    if (!mine[0] && b->fail_at[0])
      snprintf(mine, sizeof mine, "%s", b->fail_at);
    if (sdk_chunk(at) && mine[0]) {
      char sdk[280];
      snprintf(sdk, sizeof sdk, "%.270s", at);
      snprintf(at, sizeof at, "%s (inside the SDK at %s)", mine, sdk);
    }
    if (mem) {
      b->mem_tripped = 0;
      snprintf(out, outlen, "bundle %s: %s stopped: memory limit of %zu bytes exceeded%s%s",
               b->name, what, b->mem_limit, at[0] ? " at " : "", at);
      /* Give the garbage back now, so the next run starts under the cap;
       * the read cache's constructors too. */
      kuala__lua_rcache_clear(b->L);
      lua_gc(b->L, LUA_GCCOLLECT, 0);
      b->mem_over = b->mem_used > b->mem_limit;
      code = KUALA_ENOMEM;
    } else {
      snprintf(out, outlen, "bundle %s: %s stopped: CPU budget of %u ms exceeded at %s", b->name,
               what, b->cpu_budget_ms, at[0] ? at : "?");
      code = KUALA_ETIMEDOUT;
    }
  } else {
    const char *msg = top;
    snprintf(out, outlen, "bundle %s: %s failed: %s", b->name, what,
             msg ? msg : "(error object is not a string)");
    code = KUALA_EINVAL;
  }
  b->fail_at[0] = 0;
  b->mem_seen = 0;
  /* A failed coroutine keeps its stack: add the bundle's frames. */
  if (co != b->L)
    bundle_traceback(co, out, outlen);
  return code;
}

/* ---- loading ------------------------------------------------------------ */

static int cmp_file(const void *a, const void *b)
{
  return strcmp(((const bfile_t *)a)->name, ((const bfile_t *)b)->name);
}

static void bundle_free(kuala_bundle_t *b)
{
  if (b->L) {
    kuala__lua_cpu_forget(b->L);
    lua_close(b->L);
  }
  pool_drain(b);
  for (size_t i = 0; i < b->nfiles; i++) {
    kuala_free(b->files[i].name);
    kuala_free(b->files[i].src);
  }
  kuala_free(b->files);
  for (size_t i = 0; i < b->ncontrollers; i++)
    kuala_free(b->controllers[i]);
  kuala_free(b->controllers);
  kuala_buf_free(&b->scratch);
  kuala_buf_free(&b->answer);
  kuala_permissions_free(b->perms);
  kuala_free(b->name);
  kuala_free(b);
}

static char *fail_msg(const char *fmt, const char *a, const char *c)
{
  kuala_buf_t buf = KUALA_BUF_INIT(0);
  kuala_buf_printf(&buf, fmt, a, c);
  return kuala_buf_take(&buf, NULL);
}

/* Run the entry module, then read the controller names. */
static int run_entry(lua_State *L)
{
  const char *entry = lua_tostring(L, 1);
  lua_getglobal(L, "require");
  lua_pushstring(L, entry);
  lua_call(L, 1, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "kuala");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "_controller_names");
  lua_call(L, 0, 1);
  return 1;
}

static int build_permissions(kuala_bundle_t *b, char **err);

int kuala_bundle_load(kuala_bundle_t **out, kuala_runtime_t *rt, const char *name,
                      const kuala_bundle_file_t *files, size_t nfiles, const char *entry,
                      char **err)
{
  *out = NULL;
  if (err)
    *err = NULL;
  if (!rt || !name || !*name || (nfiles && !files))
    return KUALA_EINVAL;
  if (!entry)
    entry = "main";
  if (!valid_module_name(entry)) {
    if (err)
      *err = fail_msg("bundle %s: invalid entry module name '%s'", name, entry);
    return KUALA_EINVAL;
  }
  kuala_bundle_t *b = kuala_calloc(1, sizeof *b);
  b->rt = rt;
  b->name = kuala_strdup(name);
  b->mem_limit = rt->memory_limit;
  b->cpu_budget_ms = rt->cpu_budget_ms;
  b->deadline_ms = rt->deadline_ms;
  kuala_buf_init(&b->scratch, KUALA__LUA_JSON_MAX);
  kuala_buf_init(&b->answer, 0);
  b->files = kuala_calloc(nfiles ? nfiles : 1, sizeof *b->files);
  size_t total = 0;
  for (size_t i = 0; i < nfiles; i++) {
    total += files[i].len;
    if (!files[i].name || (!files[i].src && files[i].len) || files[i].len > MAX_FILE_BYTES ||
        total > MAX_BUNDLE_BYTES) {
      if (err)
        *err = fail_msg("bundle %s: file %s is missing or too large", name,
                        files[i].name ? files[i].name : "?");
      bundle_free(b);
      return files[i].name ? KUALA_E2BIG : KUALA_EINVAL;
    }
    b->files[i].name = kuala_strdup(files[i].name);
    b->files[i].src = kuala_memdup(files[i].src ? files[i].src : "", files[i].len);
    b->files[i].len = files[i].len;
    b->nfiles++;
  }
  qsort(b->files, b->nfiles, sizeof *b->files, cmp_file);

  b->L = lua_newstate(bundle_alloc, b);
  if (!b->L) {
    bundle_free(b);
    return KUALA_ENOMEM;
  }
  lua_atpanic(b->L, on_panic);
  luaJIT_setmode(b->L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
  if (lua_cpcall(b->L, build_sandbox, b)) {
    if (err)
      *err = fail_msg("bundle %s: cannot build the sandbox: %s", name, lua_tostring(b->L, -1));
    bundle_free(b);
    return KUALA_ENOMEM;
  }
  b->enforce = 1;

  /* Run the entry module in a coroutine so that the CPU budget and error
   * locations work as for reconciles. */
  lua_State *L = b->L;
  lua_State *co = lua_newthread(L);
  lua_pushcfunction(co, run_entry);
  lua_pushstring(co, entry);
  kuala__lua_cpu_enter(rt->cpu, b->L, co, (int64_t)b->cpu_budget_ms * 1000000, 0);
  int st = lua_resume(co, 1);
  int tripped = 0;
  kuala__lua_cpu_leave(rt->cpu, co, &tripped);
  int rc = 0;
  if (st == LUA_YIELD) {
    if (err)
      *err = fail_msg("bundle %s: module top level of '%s' tried to wait (yield)", name, entry);
    rc = KUALA_EINVAL;
  } else if (st != 0) {
    char msg[1024];
    rc = describe_failure(b, co, st, tripped, "loading", msg, sizeof msg);
    if (err)
      *err = kuala_strdup(msg);
  } else {
    size_t n = lua_istable(co, -1) ? lua_objlen(co, -1) : 0;
    b->controllers = kuala_calloc(n ? n : 1, sizeof *b->controllers);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(co, -1, (int)i + 1);
      const char *cn = lua_tostring(co, -1);
      b->controllers[b->ncontrollers++] = kuala_strdup(cn ? cn : "?");
      lua_pop(co, 1);
    }
  }
  lua_pop(L, 1); /* the loader thread */
  if (rc == 0)
    rc = build_permissions(b, err);
  if (rc) {
    bundle_free(b);
    return rc;
  }
  lua_gc(L, LUA_GCCOLLECT, 0);
  b->next = rt->bundles;
  if (rt->bundles)
    rt->bundles->prev = b;
  rt->bundles = b;
  *out = b;
  return 0;
}

typedef struct {
  kuala_bundle_file_t *files;
  size_t n, cap, total;
} dir_acc_t;

static int scan_dir(dir_acc_t *acc, const char *root, const char *rel, int depth)
{
  char path[1024];
  snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
  if (depth > MAX_DIR_DEPTH)
    return KUALA_E2BIG;
  DIR *d = opendir(path);
  if (!d)
    return depth == 0 ? KUALA_ENOENT : 0;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char sub[512], full[1536];
    snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
    snprintf(full, sizeof full, "%s/%s", root, sub);
    struct stat st;
    if (stat(full, &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      rc = scan_dir(acc, root, sub, depth + 1);
      continue;
    }
    size_t nl = strlen(e->d_name);
    if (!S_ISREG(st.st_mode) || nl < 5 || strcmp(e->d_name + nl - 4, ".lua") != 0)
      continue;
    size_t len;
    char *src = read_file(full, MAX_FILE_BYTES, &len);
    if (!src) {
      rc = KUALA_E2BIG;
      break;
    }
    acc->total += len;
    if (acc->total > MAX_BUNDLE_BYTES) {
      kuala_free(src);
      rc = KUALA_E2BIG;
      break;
    }
    if (acc->n == acc->cap) {
      acc->cap = acc->cap ? acc->cap * 2 : 16;
      acc->files = kuala_realloc(acc->files, acc->cap * sizeof *acc->files);
    }
    acc->files[acc->n].name = kuala_strdup(sub);
    acc->files[acc->n].src = src;
    acc->files[acc->n++].len = len;
  }
  closedir(d);
  return rc;
}

int kuala_bundle_load_dir(kuala_bundle_t **out, kuala_runtime_t *rt, const char *dir,
                          const char *name, const char *entry, char **err)
{
  *out = NULL;
  if (err)
    *err = NULL;
  if (!dir)
    return KUALA_EINVAL;
  dir_acc_t acc = {0};
  int rc = scan_dir(&acc, dir, "", 0);
  if (rc) {
    if (err)
      *err = fail_msg("bundle %s: cannot read the directory (%s)", dir, kuala_strerror(rc));
  } else {
    char base[256];
    if (!name) {
      const char *s = dir + strlen(dir);
      while (s > dir && s[-1] == '/')
        s--;
      const char *e = s;
      while (s > dir && s[-1] != '/')
        s--;
      snprintf(base, sizeof base, "%.*s", (int)(e - s), s);
      name = *base ? base : "bundle";
    }
    rc = kuala_bundle_load(out, rt, name, acc.files, acc.n, entry, err);
  }
  for (size_t i = 0; i < acc.n; i++) {
    kuala_free((char *)acc.files[i].name);
    kuala_free((char *)acc.files[i].src);
  }
  kuala_free(acc.files);
  return rc;
}

/* ---- reconciles --------------------------------------------------------- */

static void timer_closed(uv_handle_t *h)
{
  kuala_free(h);
}

/* ---- run queue ---------------------------------------------------------- */

static void rq_remove(kuala_runtime_t *rt, task_t *t)
{
  if (!t->queue)
    return;
  int q = t->queue - 1;
  if (t->rq_prev)
    t->rq_prev->rq_next = t->rq_next;
  else
    rt->rq[q].head = t->rq_next;
  if (t->rq_next)
    t->rq_next->rq_prev = t->rq_prev;
  else
    rt->rq[q].tail = t->rq_prev;
  t->rq_prev = t->rq_next = NULL;
  t->queue = 0;
}

static int bundle_hot(kuala_bundle_t *b)
{
  return b->hot_until && uv_now(b->rt->loop) < b->hot_until;
}

static void rq_idle(uv_idle_t *h);

/* Put t at the back of the line: the normal queue, or the low one while its
 * bundle is under pressure. */
static void rq_push(kuala_runtime_t *rt, task_t *t)
{
  int q = bundle_hot(t->b) ? 1 : 0;
  t->queue = q + 1;
  t->rq_next = NULL;
  t->rq_prev = rt->rq[q].tail;
  if (rt->rq[q].tail)
    rt->rq[q].tail->rq_next = t;
  else
    rt->rq[q].head = t;
  rt->rq[q].tail = t;
  if (!rt->idle) {
    rt->idle = kuala_malloc(sizeof *rt->idle);
    uv_idle_init(rt->loop, rt->idle);
    rt->idle->data = rt;
  }
  uv_idle_start(rt->idle, rq_idle);
}

static void task_finish(task_t *t, int err, const char *message, double requeue_after)
{
  kuala_bundle_t *b = t->b;
  if (t->timer) {
    uv_timer_stop(t->timer);
    uv_close((uv_handle_t *)t->timer, timer_closed);
    t->timer = NULL;
  }
  if (t->op) { /* still pending (shutdown): orphan it and cancel */
    op_t *op = t->op;
    t->op = NULL;
    op->task = NULL;
    if (op->host) {
      host_abandon(op);
    } else {
      op_cancel(b, op);
    }
  }
  rq_remove(b->rt, t);
  luaL_unref(b->L, LUA_REGISTRYINDEX, t->co_ref);
  b->refs--;
  if (t->prev)
    t->prev->next = t->next;
  if (t->next)
    t->next->prev = t->prev;
  if (b->tasks == t)
    b->tasks = t->next;
  b->active--;
  kuala_reconcile_result_t res = {err, message, requeue_after};
  kuala_reconcile_done_cb done = t->done;
  void *data = t->data;
  kuala_free(t->ctl);
  kuala_free(t->ns);
  kuala_free(t->name);
  kuala_free(t);
  done(data, &res); /* last: it may close the bundle */
}

static void deadline_fired(uv_timer_t *timer)
{
  task_t *t = timer->data;
  t->expired = 1;
  if (t->op && t->op->host) {
    /* A host call cannot be cancelled: stop waiting for it (its answer
     * will be dropped) and resume the coroutine with KUALA_ETIMEDOUT. */
    op_t *op = t->op;
    op->task = NULL;
    t->op = NULL;
    host_abandon(op);
    lua_settop(t->co, 0);
    lua_pushinteger(t->co, KUALA_ETIMEDOUT);
    lua_pushnil(t->co);
    task_resume(t, 2);
  } else if (t->op) {
    /* The completion resumes the coroutine with KUALA_ETIMEDOUT. */
    op_cancel(t->b, t->op);
  }
}

static void start_deadline(task_t *t)
{
  kuala_bundle_t *b = t->b;
  if (t->timer)
    return;
  uint64_t elapsed = uv_now(b->rt->loop) - t->started_ms;
  uint64_t left = elapsed >= b->deadline_ms ? 0 : b->deadline_ms - elapsed;
  t->timer = kuala_malloc(sizeof *t->timer);
  uv_timer_init(b->rt->loop, t->timer);
  t->timer->data = t;
  uv_timer_start(t->timer, deadline_fired, left, 0);
}

/* The bundle's reconcile hit its CPU budget: put it under pressure for a
 * cool-down that doubles with every hit. */
static void bundle_heat(kuala_bundle_t *b)
{
  b->budget_hits++;
  b->hot_ms = b->hot_ms ? b->hot_ms * 2 : HOT_FIRST_MS;
  if (b->hot_ms > HOT_MAX_MS)
    b->hot_ms = HOT_MAX_MS;
  b->hot_until = uv_now(b->rt->loop) + b->hot_ms;
}

static void task_resume(task_t *t, int nargs)
{
  kuala_bundle_t *b = t->b;
  kuala_runtime_t *rt = b->rt;
  int64_t budget = (int64_t)b->cpu_budget_ms * 1000000 - t->cpu_used_ns;
  if (budget < 1)
    budget = 1;
  kuala__lua_cpu_enter(rt->cpu, b->L, t->co, budget, rt->slice_ns);
  b->current = t;
  b->in_lua++;
  t->started = 1;
  int st = lua_resume(t->co, nargs);
  b->in_lua--;
  b->current = NULL;
  int why = 0;
  t->cpu_used_ns += kuala__lua_cpu_leave(rt->cpu, t->co, &why);
  int tripped = (why & KUALA__CPU_TRIPPED) != 0;
  char msg[1024];
  if (st == LUA_YIELD && t->op && !tripped) {
    start_deadline(t);
    return;
  }
  if (st == LUA_YIELD && (why & KUALA__CPU_SLICED) && !tripped) {
    /* Preempted: to the back of the line, so the loop serves the others. */
    b->slices++;
    start_deadline(t);
    rq_push(rt, t);
    return;
  }
  if (tripped)
    bundle_heat(b);
  else if (b->hot_ms)
    b->hot_ms /= 2;
  if (st == LUA_YIELD && !tripped) {
    snprintf(msg, sizeof msg,
             "bundle %s: reconcile yielded outside an API call (coroutine.yield in a "
             "reconcile is not allowed)",
             b->name);
    task_finish(t, KUALA_EINVAL, msg, 0);
  } else if (st != 0 || tripped) {
    /* A reconcile suspended past its budget (st == LUA_YIELD) is never
     * resumed: none of its code runs again, error handlers included. */
    int code = describe_failure(b, t->co, st, tripped, "reconcile", msg, sizeof msg);
    if (t->expired && !tripped) {
      code = KUALA_ETIMEDOUT;
      snprintf(msg, sizeof msg, "bundle %s: reconcile deadline of %u ms exceeded", b->name,
               b->deadline_ms);
    }
    /* A script error: a Warning Event on the primary (rate-limited by the
     * SDK). Not for limit hits: a VM past its budget runs no more code. */
    if (code == KUALA_EINVAL && !t->report)
      report_failure(b, t, msg);
    task_finish(t, code, msg, 0);
  } else if (t->expired) {
    snprintf(msg, sizeof msg, "bundle %s: reconcile deadline of %u ms exceeded", b->name,
             b->deadline_ms);
    task_finish(t, KUALA_ETIMEDOUT, msg, 0);
  } else {
    double requeue = lua_isnumber(t->co, -1) ? lua_tonumber(t->co, -1) : 0;
    lua_settop(t->co, 0);
    task_finish(t, 0, NULL, requeue > 0 ? requeue : 0);
  }
}

/* One slice per loop iteration: the normal queue first, the low one when
 * the normal is empty and at least every LOW_QUEUE_EVERY-th turn. */
static void rq_idle(uv_idle_t *h)
{
  kuala_runtime_t *rt = h->data;
  int q = rt->rq[0].head ? 0 : 1;
  if (rt->rq[1].head && ++rt->turn % LOW_QUEUE_EVERY == 0)
    q = 1;
  task_t *t = rt->rq[q].head;
  if (t == NULL) {
    uv_idle_stop(h);
    return;
  }
  rq_remove(rt, t);
  if (!rt->rq[0].head && !rt->rq[1].head)
    uv_idle_stop(h);
  if (t->expired) {
    char msg[256];
    snprintf(msg, sizeof msg, "bundle %s: reconcile deadline of %u ms exceeded", t->b->name,
             t->b->deadline_ms);
    task_finish(t, KUALA_ETIMEDOUT, msg, 0);
    return;
  }
  task_resume(t, t->started ? 0 : t->nargs);
}

/* Start a task running kuala.<fn>(controller, ns, name[, msg]). */
static int task_start(kuala_bundle_t *b, const char *fn, const char *controller, const char *ns,
                      const char *name, const char *msg, kuala_reconcile_done_cb done, void *data)
{
  task_t *t = kuala_calloc(1, sizeof *t);
  t->b = b;
  t->done = done;
  t->data = data;
  t->started_ms = uv_now(b->rt->loop);
  t->ctl = kuala_strdup(controller);
  t->ns = ns && *ns ? kuala_strdup(ns) : NULL;
  t->name = kuala_strdup(name);
  t->report = msg != NULL;
  t->nargs = msg ? 4 : 3;
  lua_State *L = b->L;
  /* The pushes below run with the cap lifted: they are small, and an
   * unprotected allocation failure here would abort. */
  b->enforce = 0;
  t->co = lua_newthread(L);
  t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  b->refs++;
  lua_pushlightuserdata(t->co, &key_loaded);
  lua_rawget(t->co, LUA_REGISTRYINDEX);
  lua_getfield(t->co, -1, "kuala");
  lua_getfield(t->co, -1, fn);
  lua_replace(t->co, 1);
  lua_settop(t->co, 1);
  lua_pushstring(t->co, controller);
  if (ns && *ns) {
    lua_pushstring(t->co, ns);
  } else {
    lua_pushnil(t->co);
  }
  lua_pushstring(t->co, name);
  if (msg)
    lua_pushstring(t->co, msg);
  b->enforce = 1;
  t->next = b->tasks;
  if (b->tasks)
    b->tasks->prev = t;
  b->tasks = t;
  b->active++;
  if (bundle_hot(b)) {
    /* Under pressure: wait in the low queue instead of running now. */
    rq_push(b->rt, t);
    return 0;
  }
  task_resume(t, t->nargs);
  return 0;
}

static void report_done(void *data, const kuala_reconcile_result_t *res)
{
  (void)data, (void)res;
}

/* Run kuala._reconcile_failed for a failed reconcile: the SDK records a
 * rate-limited Warning Event on the primary. Fire and forget. */
static void report_failure(kuala_bundle_t *b, task_t *failed, const char *msg)
{
  if (b->closing || b->in_lua || failed->ctl == NULL)
    return;
  (void)task_start(b, "_reconcile_failed", failed->ctl, failed->ns, failed->name, msg, report_done,
                   NULL);
}

int kuala_bundle_reconcile(kuala_bundle_t *b, const char *controller, const char *ns,
                           const char *name, kuala_reconcile_done_cb done, void *data)
{
  if (!b || !controller || !name || !done)
    return KUALA_EINVAL;
  if (b->closing)
    return KUALA_ESHUTDOWN;
  if (b->in_lua) /* called from inside this VM (a backend callback) */
    return KUALA_EBUSY;
  size_t i;
  for (i = 0; i < b->ncontrollers; i++) {
    if (strcmp(b->controllers[i], controller) == 0)
      break;
  }
  if (i == b->ncontrollers)
    return KUALA_ENOENT;
  return task_start(b, "_reconcile", controller, ns, name, NULL, done, data);
}

size_t kuala_bundle_active(const kuala_bundle_t *b)
{
  return b->active;
}

void kuala_bundle_close(kuala_bundle_t *b)
{
  if (!b || b->closing)
    return;
  b->closing = 1;
  kuala_runtime_t *rt = b->rt;
  char msg[256];
  snprintf(msg, sizeof msg, "bundle %s: closed while the reconcile was running", b->name);
  while (b->tasks)
    task_finish(b->tasks, KUALA_ECANCELED, msg, 0);
  if (b->prev)
    b->prev->next = b->next;
  if (b->next)
    b->next->prev = b->prev;
  if (rt->bundles == b)
    rt->bundles = b->next;
  bundle_free(b);
}

const char *kuala_bundle_name(const kuala_bundle_t *b)
{
  return b->name;
}

size_t kuala_bundle_controller_count(const kuala_bundle_t *b)
{
  return b->ncontrollers;
}

const char *kuala_bundle_controller_name(const kuala_bundle_t *b, size_t i)
{
  return i < b->ncontrollers ? b->controllers[i] : NULL;
}

int kuala_bundle_set_limits(kuala_bundle_t *b, const kuala_bundle_limits_t *limits)
{
  if (!b || !limits)
    return KUALA_EINVAL;
  if (limits->memory_limit)
    b->mem_limit = limits->memory_limit;
  if (limits->cpu_budget_ms)
    b->cpu_budget_ms = limits->cpu_budget_ms;
  if (limits->deadline_ms)
    b->deadline_ms = limits->deadline_ms;
  return 0;
}

size_t kuala_bundle_memory(const kuala_bundle_t *b)
{
  return b->mem_used;
}

int kuala__lua_bundle_refs(const kuala_bundle_t *b)
{
  return b->refs;
}

int kuala__lua_bundle_jit_on(kuala_bundle_t *b)
{
  lua_State *L = b->L;
  lua_pushlightuserdata(L, &key_jit);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "status");
  lua_call(L, 0, 1);
  int on = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return on;
}

int kuala__lua_bundle_hot(kuala_bundle_t *b)
{
  return bundle_hot(b);
}

uint64_t kuala__lua_bundle_slices(const kuala_bundle_t *b)
{
  return b->slices;
}

void kuala__lua_bundle_rcache_stats(kuala_bundle_t *b, kuala__lua_rcache_stats_t *out)
{
  kuala__lua_rcache_stats(b->L, out);
}

/* Call kuala.<fn>([arg]), expecting a string, under the CPU budget; arg is
 * passed when >= 0. */
static int call_sdk_string(kuala_bundle_t *b, const char *fn, long arg, char **out, size_t *len)
{
  if (b->in_lua)
    return KUALA_EBUSY;
  lua_State *L = b->L;
  lua_State *co = lua_newthread(L);
  lua_pushlightuserdata(co, &key_loaded);
  lua_rawget(co, LUA_REGISTRYINDEX);
  lua_getfield(co, -1, "kuala");
  lua_getfield(co, -1, fn);
  lua_replace(co, 1);
  lua_settop(co, 1);
  if (arg >= 0)
    lua_pushinteger(co, arg);
  kuala_runtime_t *rt = b->rt;
  kuala__lua_cpu_enter(rt->cpu, b->L, co, (int64_t)b->cpu_budget_ms * 1000000, 0);
  b->in_lua++;
  int st = lua_resume(co, arg >= 0 ? 1 : 0);
  b->in_lua--;
  int tripped = 0;
  kuala__lua_cpu_leave(rt->cpu, co, &tripped);
  int rc = 0;
  if (st != 0 || tripped || !lua_isstring(co, -1)) {
    char msg[1024];
    rc = st == LUA_YIELD ? KUALA_EINVAL : describe_failure(b, co, st, tripped, fn, msg, sizeof msg);
    if (rc == 0)
      rc = KUALA_EINVAL;
    kuala_logf(KUALA_LOG_ERROR, NULL, 0, "%s", st ? msg : "SDK returned no string");
  } else {
    size_t n;
    const char *s = lua_tolstring(co, -1, &n);
    *out = kuala_memdup(s, n);
    if (len)
      *len = n;
  }
  lua_pop(L, 1);
  return rc;
}

int kuala_bundle_crds(kuala_bundle_t *b, int yaml, char **out, size_t *len)
{
  *out = NULL;
  return call_sdk_string(b, yaml ? "_crds_yaml" : "_crds_json", -1, out, len);
}

int kuala_bundle_type_warnings(kuala_bundle_t *b, char **out, size_t *len)
{
  return call_sdk_string(b, "_type_warnings", -1, out, len);
}

int kuala_bundle_crds_json(kuala_bundle_t *b, char **out, size_t *len)
{
  return kuala_bundle_crds(b, 0, out, len);
}

int kuala_bundle_controller_json(kuala_bundle_t *b, size_t i, char **out, size_t *len)
{
  *out = NULL;
  if (i >= b->ncontrollers)
    return KUALA_ENOENT;
  return call_sdk_string(b, "_controller_json", (long)i + 1, out, len);
}

int kuala_bundle_permissions_json(kuala_bundle_t *b, char **out, size_t *len)
{
  *out = NULL;
  return call_sdk_string(b, "_permissions_json", -1, out, len);
}

const kuala_permissions_t *kuala_bundle_permissions(const kuala_bundle_t *b)
{
  return b->perms;
}

/* The permission set from the controllers and kuala.permissions (an SDK
 * without _permissions_json declares nothing). */
static int build_permissions(kuala_bundle_t *b, char **err)
{
  kuala_permissions_new(&b->perms, b->name);
  char why[512] = "";
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < b->ncontrollers; i++) {
    char *json = NULL;
    size_t len = 0;
    rc = kuala_bundle_controller_json(b, i, &json, &len);
    if (rc == 0)
      rc = kuala_permissions_add_controller(b->perms, json, len, why, sizeof why);
    kuala_free(json);
  }
  char *json = NULL;
  size_t len = 0;
  if (rc == 0 && call_sdk_string(b, "_permissions_json", -1, &json, &len) == 0)
    rc = kuala_permissions_add_declared(b->perms, json, len, why, sizeof why);
  kuala_free(json);
  if (rc && err)
    *err = fail_msg("bundle %s: kuala.permissions: %s", b->name, why[0] ? why : kuala_strerror(rc));
  return rc;
}

/* ---- map functions and predicates --------------------------------------- */

typedef struct {
  const char *controller;
  size_t index;
  const char *type;
  const char *old;
  size_t old_len;
  const char *json;
  size_t len;
  kuala_bundle_emit_cb emit;
  void *data;
  int result;
} vmcall_t;

static void push_sdk_fn(lua_State *L, const char *fn)
{
  lua_pushlightuserdata(L, &key_loaded);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "kuala");
  lua_getfield(L, -1, fn);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

static void push_obj(lua_State *L, const char *json, size_t len)
{
  char why[160];
  if (kuala__lua_json_push(L, json, len, why, sizeof why))
    luaL_error(L, "%s", why);
}

static int pm_map(lua_State *L)
{
  vmcall_t *c = lua_touserdata(L, 1);
  push_sdk_fn(L, "_map");
  lua_pushstring(L, c->controller);
  lua_pushinteger(L, (lua_Integer)c->index);
  push_obj(L, c->json, c->len);
  lua_call(L, 3, 1);
  if (lua_isnil(L, -1)) {
    c->result = KUALA_ENOENT;
    return 0;
  }
  if (!lua_istable(L, -1))
    return luaL_error(L, "map function must return a list of requests");
  int n = (int)lua_objlen(L, -1);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (!lua_istable(L, -1))
      return luaL_error(L, "map result %d is not a request table", i);
    lua_getfield(L, -1, "namespace");
    lua_getfield(L, -2, "name");
    if (lua_type(L, -1) != LUA_TSTRING) {
      return luaL_error(L, "map result %d has no name", i);
    }
    const char *ns = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    c->emit(c->data, ns, lua_tostring(L, -1));
    lua_pop(L, 3);
  }
  return 0;
}

static int pm_predicate(lua_State *L)
{
  vmcall_t *c = lua_touserdata(L, 1);
  push_sdk_fn(L, "_predicate");
  lua_pushstring(L, c->controller);
  lua_pushstring(L, c->type);
  if (c->old) {
    push_obj(L, c->old, c->old_len);
  } else {
    lua_pushnil(L);
  }
  push_obj(L, c->json, c->len);
  lua_call(L, 4, 1);
  c->result = lua_toboolean(L, -1);
  return 0;
}

/* Run fn under the CPU budget on the main state; API calls are refused
 * there because no task is current. */
static int vm_run(kuala_bundle_t *b, lua_CFunction fn, vmcall_t *c, const char *what)
{
  if (b->in_lua)
    return KUALA_EBUSY;
  kuala_runtime_t *rt = b->rt;
  lua_State *L = b->L;
  kuala__lua_cpu_enter(rt->cpu, L, L, (int64_t)b->cpu_budget_ms * 1000000, 0);
  b->in_lua++;
  int st = lua_cpcall(L, fn, c);
  b->in_lua--;
  int tripped = 0;
  kuala__lua_cpu_leave(rt->cpu, L, &tripped);
  if (st == 0 && !tripped)
    return 0;
  char msg[1024];
  int rc = describe_failure(b, L, st, tripped, what, msg, sizeof msg);
  lua_pop(L, 1);
  kuala_log_kv_t kv[] = {{"bundle", b->name}, {"controller", c->controller}};
  kuala_log(KUALA_LOG_ERROR, kv, 2, msg, NULL);
  return rc;
}

int kuala_bundle_map(kuala_bundle_t *b, const char *controller, size_t index, const char *json,
                     size_t len, kuala_bundle_emit_cb emit, void *data)
{
  if (!b || !controller || !json || !emit)
    return KUALA_EINVAL;
  vmcall_t c = {controller, index, NULL, NULL, 0, json, len, emit, data, 0};
  int rc = vm_run(b, pm_map, &c, "map function");
  return rc ? rc : c.result;
}

int kuala_bundle_predicate(kuala_bundle_t *b, const char *controller, const char *type,
                           const char *old, size_t old_len, const char *json, size_t len)
{
  if (!b || !controller || !type || !json)
    return 0;
  vmcall_t c = {controller, 0, type, old, old_len, json, len, NULL, NULL, 0};
  int rc = vm_run(b, pm_predicate, &c, "predicate");
  return rc ? 0 : c.result;
}

/* ---- the offline backend ------------------------------------------------ */

static int offline_get(void *self, const kuala_cache_query_t *q, const char **json, size_t *len)
{
  (void)self, (void)q, (void)json, (void)len;
  return KUALA_ENOTFOUND;
}

static int offline_list(void *self, const kuala_cache_query_t *q, kuala_cache_each_cb each,
                        void *data)
{
  (void)self, (void)q, (void)each, (void)data;
  return 0;
}

static int offline_start(void *self, const kuala_call_t *call, kuala_call_done_cb done, void *data,
                         void **handle)
{
  (void)self, (void)call, (void)done, (void)data, (void)handle;
  return KUALA_ENOSYS;
}

static void offline_cancel(void *self, void *handle)
{
  (void)self, (void)handle;
}

const kuala_backend_t *kuala_backend_offline(void)
{
  static const kuala_backend_t be = {offline_get, offline_list, offline_start, offline_cancel,
                                     NULL,        NULL,         NULL,          NULL};
  return &be;
}

/* ---- runtime ------------------------------------------------------------ */

int kuala_runtime_new(kuala_runtime_t **out, uv_loop_t *loop, const kuala_backend_t *backend,
                      const kuala_runtime_opts_t *opts)
{
  *out = NULL;
  if (!loop || !backend || !backend->cache_get || !backend->cache_list || !backend->call_start ||
      !backend->call_cancel) {
    return KUALA_EINVAL;
  }
  kuala_runtime_t *rt = kuala_calloc(1, sizeof *rt);
  rt->loop = loop;
  rt->backend = *backend;
  rt->memory_limit = opts && opts->memory_limit ? opts->memory_limit : DEFAULT_MEMORY;
  rt->cpu_budget_ms = opts && opts->cpu_budget_ms ? opts->cpu_budget_ms : DEFAULT_CPU_MS;
  rt->deadline_ms = opts && opts->deadline_ms ? opts->deadline_ms : DEFAULT_DEADLINE_MS;
  /* Benchmarks compare with preemption off: KUALA_LUA_SLICE_MS=0. */
  const char *slice = getenv("KUALA_LUA_SLICE_MS");
  rt->slice_ns = slice && *slice ? (int64_t)(strtod(slice, NULL) * 1e6) : SLICE_NS;
  if (rt->slice_ns < 0)
    rt->slice_ns = 0;
  /* Benchmarks compare with the read cache off: KUALA_LUA_READ_CACHE=0. */
  const char *rcache = getenv("KUALA_LUA_READ_CACHE");
  rt->read_cache = !(rcache && strcmp(rcache, "0") == 0);
  const char *sdk = opts && opts->sdk_dir ? opts->sdk_dir : getenv("KUALA_SDK_DIR");
  if (sdk && *sdk)
    rt->sdk_dir = kuala_strdup(sdk);
  int rc = kuala__lua_cpu_new(&rt->cpu, over_memory);
  if (rc) {
    kuala_free(rt->sdk_dir);
    kuala_free(rt);
    return rc;
  }
  *out = rt;
  return 0;
}

static void idle_closed(uv_handle_t *h)
{
  kuala_free(h);
}

void kuala_runtime_free(kuala_runtime_t *rt)
{
  if (!rt)
    return;
  while (rt->bundles)
    kuala_bundle_close(rt->bundles);
  if (rt->idle)
    uv_close((uv_handle_t *)rt->idle, idle_closed);
  kuala__lua_cpu_free(rt->cpu);
  host_modules_free(rt);
  kuala_free(rt->sdk_dir);
  kuala_free(rt);
}
