/*
 * Unit tests for preemption and the budget escapes (core/lua/): a spinning
 * reconcile is sliced so another bundle's reconcile completes while it
 * spins; the CPU budget still ends it; a bundle that hits its budget is
 * put under pressure; xpcall handlers and catastrophic patterns cannot
 * escape the budget; long legitimate loops give the right result when
 * sliced; the sandbox's pattern functions agree with LuaJIT's.
 *
 * Assertions are on ordering and counts, never on durations (the CPU
 * charge test compares the charge with the CPU time the run really used,
 * a bound, not a duration).
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/log.h"
#include "kuala/runtime.h"
#include "kuala_test.h"
#include "lua/lrt.h"
#include "lua/lrt_cpu.h"
#include "helpers/latebackend.h"

/* TSan defers signal delivery until the thread calls into the C library,
 * which a compiled Lua loop never does: neither slicing nor the budget can
 * interrupt such a loop there. Those tests are left out of TSan builds
 * (main says so); the pattern tests poll the clock and run everywhere. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* ---- helpers ------------------------------------------------------------ */

typedef struct {
  int calls;
  int err;
  double requeue;
  int order; /* value of the shared counter when it finished */
  char message[1024];
} result_t;

static int finished; /* reconciles finished so far, in order */

static void on_done(void *data, const kuala_reconcile_result_t *res)
{
  result_t *r = data;
  r->calls++;
  r->err = res->err;
  r->requeue = res->requeue_after;
  r->order = ++finished;
  snprintf(r->message, sizeof r->message, "%s", res->message ? res->message : "");
}

static void quiet_sink(void *data, kuala_log_level_t level, const char *line, size_t len)
{
  (void)data, (void)level, (void)line, (void)len;
}

static void setup(uv_loop_t *loop, kuala_runtime_t **rt, uint32_t budget_ms)
{
  kuala_log_set_sink(quiet_sink, NULL);
  finished = 0;
  ck_assert_int_eq(uv_loop_init(loop), 0);
  /* Nothing cached; every call answered 1 ms later. */
  static latebackend_t lb;
  lb = (latebackend_t){loop, NULL, "{\"kind\":\"App\",\"metadata\":{\"name\":\"reply\"}}", 1};
  kuala_backend_t be = latebackend(&lb);
  kuala_runtime_opts_t opts = {0};
  opts.cpu_budget_ms = budget_ms;
  ck_assert_int_eq(kuala_runtime_new(rt, loop, &be, &opts), 0);
}

static void teardown(uv_loop_t *loop, kuala_runtime_t *rt)
{
  kuala_runtime_free(rt);
  uv_run(loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(loop), 0);
  kuala_log_set_sink(NULL, NULL);
}

static kuala_bundle_t *load(kuala_runtime_t *rt, const char *name, const char *src)
{
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  kuala_bundle_file_t f = {"main.lua", src, strlen(src)};
  int rc = kuala_bundle_load(&b, rt, name, &f, 1, NULL, &err);
  ck_assert_msg(rc == 0, "load %s failed: %s", name, err ? err : "?");
  return b;
}

static void wait_done(uv_loop_t *loop, result_t *r)
{
  while (r->calls == 0)
    uv_run(loop, UV_RUN_ONCE);
}

#define CONTROLLER(body)                                              \
  "local kuala = require('kuala')\n"                                  \
  "kuala.controller { name = 'c', watch = 'demo.kuala.dev/v1/App',\n" \
  "  reconcile = function(ctx, req)\n" body "\n  end }\n"

/* The healthy neighbour: one API call (answered later), then done. */
#define HEALTHY                                                                 \
  CONTROLLER(                                                                   \
      "local out = ctx:apply({ apiVersion = 'v1', kind = 'ConfigMap',\n"        \
      "  metadata = { name = 'x', namespace = 'ns1' }, data = { a = 'b' } })\n" \
      "assert(out and out.metadata.name == 'reply')\n"                          \
      "return { requeue_after = 7 }")

/* ---- preemption --------------------------------------------------------- */

START_TEST(test_lua_preempt_spinner_is_sliced_and_budget_ends_it)
{
  uv_loop_t loop;
  kuala_runtime_t *rt;
  setup(&loop, &rt, 300);
  kuala_bundle_t *spin = load(rt, "spin", CONTROLLER("local x = 0\nwhile true do x = x + 1 end"));
  kuala_bundle_t *good = load(rt, "good", HEALTHY);
  ck_assert_int_eq(kuala__lua_bundle_jit_on(spin), 1);

  result_t s = {0}, g[3] = {{0}};
  ck_assert_int_eq(kuala_bundle_reconcile(spin, "c", "ns1", "web", on_done, &s), 0);
  /* It used up its first slice and went to the run queue. */
  ck_assert_int_eq(s.calls, 0);
  /* Three healthy reconciles in a row, each waiting on the API, complete
   * while the spinner still spins. */
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(kuala_bundle_reconcile(good, "c", "ns1", "web", on_done, &g[i]), 0);
    wait_done(&loop, &g[i]);
    ck_assert_msg(g[i].err == 0, "healthy: %s", g[i].message);
    ck_assert(g[i].requeue == 7.0);
    ck_assert_int_eq(s.calls, 0);
  }
  /* The budget still ends it, summed over its slices. */
  wait_done(&loop, &s);
  ck_assert_int_eq(s.err, KUALA_ETIMEDOUT);
  ck_assert_msg(
      strstr(s.message, "CPU budget of 300 ms") && strstr(s.message, "at spin/main.lua:5"), "%s",
      s.message);
  ck_assert_int_gt(s.order, g[2].order);
  ck_assert_uint_ge(kuala__lua_bundle_slices(spin), 2);
  ck_assert_int_eq(kuala__lua_bundle_refs(spin), 0);
  teardown(&loop, rt);
}
END_TEST

START_TEST(test_lua_preempt_long_loops_give_right_results)
{
  uv_loop_t loop;
  kuala_runtime_t *rt;
  setup(&loop, &rt, 20000);
  /* Long enough to be sliced; inside pcall, inside a metamethod-free
   * closure, and in a coroutine of the bundle's own (sliced only once
   * control is back in the reconcile's coroutine). */
  kuala_bundle_t *b =
      load(rt, "long",
           CONTROLLER("local n = 30000000\n"
                      "local function sum() local x = 0 for i = 1, n do x = x + i % 7 end return x "
                      "end\n"
                      "local a = sum()\n"
                      "local ok, c = pcall(sum)\n"
                      "assert(ok)\n"
                      "local co = coroutine.wrap(function() coroutine.yield(sum()) end)\n"
                      "local d = co()\n"
                      "if req.name == 'sum' then return { requeue_after = a + c + d } end\n"
                      "return { requeue_after = (a == c and c == d) and 1 or 2 }"));
  result_t r = {0}, q = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "sum", on_done, &r), 0);
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "same", on_done, &q), 0);
  wait_done(&loop, &r);
  wait_done(&loop, &q);
  ck_assert_msg(r.err == 0, "%s", r.message);
  ck_assert_msg(q.err == 0, "%s", q.message);
  /* sum of i % 7 for i = 1..n, computed here in C */
  double want = 0;
  for (long i = 1; i <= 30000000; i++)
    want += (double)(i % 7);
  ck_assert_double_eq(r.requeue, 3 * want);
  ck_assert(q.requeue == 1.0);
  ck_assert_uint_ge(kuala__lua_bundle_slices(b), 2);
  teardown(&loop, rt);
}
END_TEST

START_TEST(test_lua_preempt_hot_bundle_waits_its_turn)
{
  uv_loop_t loop;
  kuala_runtime_t *rt;
  setup(&loop, &rt, 50);
  kuala_bundle_t *spin =
      load(rt, "spin", CONTROLLER("if req.name == 'noop' then return end\nwhile true do end"));
  kuala_bundle_t *good = load(rt, "good", CONTROLLER("return { requeue_after = 3 }"));
  ck_assert_int_eq(kuala__lua_bundle_hot(spin), 0);
  /* Before any budget hit a no-op reconcile completes at once. */
  result_t n0 = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(spin, "c", "ns1", "noop", on_done, &n0), 0);
  ck_assert_int_eq(n0.calls, 1);
  result_t s = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(spin, "c", "ns1", "web", on_done, &s), 0);
  wait_done(&loop, &s);
  ck_assert_int_eq(s.err, KUALA_ETIMEDOUT);
  ck_assert_int_eq(kuala__lua_bundle_hot(spin), 1);
  /* Under pressure, even a no-op reconcile of it waits in the low queue;
   * the healthy bundle still runs at once. */
  result_t n1 = {0}, h = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(spin, "c", "ns1", "noop", on_done, &n1), 0);
  ck_assert_int_eq(n1.calls, 0);
  ck_assert_int_eq(kuala_bundle_reconcile(good, "c", "ns1", "web", on_done, &h), 0);
  ck_assert_int_eq(h.calls, 1);
  wait_done(&loop, &n1);
  ck_assert_int_eq(n1.err, 0);
  ck_assert_int_gt(n1.order, h.order);
  teardown(&loop, rt);
}
END_TEST

START_TEST(test_lua_preempt_close_drops_queued_reconciles)
{
  uv_loop_t loop;
  kuala_runtime_t *rt;
  setup(&loop, &rt, 5000);
  kuala_bundle_t *spin = load(rt, "spin", CONTROLLER("while true do end"));
  result_t a = {0}, b = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(spin, "c", "ns1", "a", on_done, &a), 0);
  ck_assert_int_eq(kuala_bundle_reconcile(spin, "c", "ns1", "b", on_done, &b), 0);
  ck_assert_int_eq(a.calls + b.calls, 0);
  kuala_bundle_close(spin);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(a.err, KUALA_ECANCELED);
  teardown(&loop, rt); /* the idle handle is closed, uv_loop_close == 0 */
}
END_TEST

/* ---- CPU accounting ----------------------------------------------------- */

static int64_t thread_cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The run's CPU clock is read lazily (cpu.c): a short run nobody looked at
 * is charged its wall time, a longer one its CPU time from an estimated
 * start. Either way the charge is never below the CPU time the run used,
 * or a bundle could split its work into short runs and escape its budget.
 * Runs from 0 to 3 ms of CPU, so both ways are taken. */
START_TEST(test_lua_preempt_cpu_charge_never_below_cpu_time)
{
  kuala__lua_cpu_t *cpu = NULL;
  ck_assert_int_eq(kuala__lua_cpu_new(&cpu, NULL), 0);
  lua_State *L = luaL_newstate();
  static const int64_t spins_us[] = {0, 20, 100, 400, 900, 3000};
  int64_t charged_total = 0, used_total = 0;
  for (int round = 0; round < 50; round++) {
    for (size_t i = 0; i < sizeof spins_us / sizeof spins_us[0]; i++) {
      /* A slice far away: the tick timer runs, the hook never yields. */
      kuala__lua_cpu_enter(cpu, L, L, 60 * 1000000000LL, 30 * 1000000000LL);
      int64_t c0 = thread_cpu_ns(), c1 = c0;
      while (c1 - c0 < spins_us[i] * 1000)
        c1 = thread_cpu_ns();
      int why = -1;
      int64_t charged = kuala__lua_cpu_leave(cpu, L, &why);
      ck_assert_int_eq(why, 0);
      ck_assert_msg(charged >= c1 - c0, "run of %lld ns CPU charged %lld ns", (long long)(c1 - c0),
                    (long long)charged);
      charged_total += charged;
      used_total += c1 - c0;
    }
  }
  ck_assert_int_ge(charged_total, used_total);
  kuala__lua_cpu_forget(L);
  lua_close(L);
  kuala__lua_cpu_free(cpu);
}
END_TEST

/* ---- budget escapes ----------------------------------------------------- */

START_TEST(test_lua_preempt_xpcall_handler_cannot_escape)
{
  uv_loop_t loop;
  kuala_runtime_t *rt;
  setup(&loop, &rt, 100);
  kuala_bundle_t *bad = load(
      rt, "bad",
      CONTROLLER("if req.name == 'plain' then\n"
                 "  xpcall(function() while true do end end, function() while true do end end)\n"
                 "elseif req.name == 'nested' then\n"
                 "  xpcall(function() local x = 0 while true do x = x + 1 end end,\n"
                 "    function() xpcall(function() while true do end end,\n"
                 "      function() local y = 0 while true do y = y + 1 end end) end)\n"
                 "else\n"
                 "  local co = coroutine.wrap(function()\n"
                 "    xpcall(function() while true do end end, function() while true do end "
                 "end)\n"
                 "  end)\n"
                 "  co()\n"
                 "end\n"
                 "return { requeue_after = 1 }"));
  kuala_bundle_t *good = load(rt, "good", CONTROLLER("return { requeue_after = 2 }"));
  const char *names[] = {"plain", "nested", "coroutine"};
  for (int i = 0; i < 3; i++) {
    result_t r = {0}, h = {0};
    ck_assert_int_eq(kuala_bundle_reconcile(bad, "c", "ns1", names[i], on_done, &r), 0);
    wait_done(&loop, &r);
    ck_assert_msg(r.err == KUALA_ETIMEDOUT, "%s: %d %s", names[i], r.err, r.message);
    ck_assert_int_eq(kuala_bundle_reconcile(good, "c", "ns1", "web", on_done, &h), 0);
    ck_assert_int_eq(h.err, 0);
  }
  teardown(&loop, rt);
}
END_TEST

START_TEST(test_lua_preempt_xpcall_keeps_its_meaning)
{
  uv_loop_t loop;
  kuala_runtime_t *rt;
  setup(&loop, &rt, 1000);
  kuala_bundle_t *b = load(
      rt, "x",
      CONTROLLER("local ok, e = xpcall(function() error('boom', 0) end, function(m) return "
                 "'handled ' .. m end)\n"
                 "assert(not ok and e == 'handled boom', tostring(e))\n"
                 "local ok2, a, b = xpcall(function(p, q) return p + q, 'two' end, print, 1, 2)\n"
                 "assert(ok2 and a == 3 and b == 'two')\n"
                 "local ok3, e3 = xpcall(error, function() error('again') end)\n"
                 "assert(not ok3 and e3 == 'error in error handling', tostring(e3))\n"
                 "return { requeue_after = 4 }"));
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, "c", "ns1", "web", on_done, &r), 0);
  wait_done(&loop, &r);
  ck_assert_msg(r.err == 0 && r.requeue == 4.0, "%s", r.message);
  teardown(&loop, rt);
}
END_TEST

START_TEST(test_lua_preempt_catastrophic_patterns_end)
{
  uv_loop_t loop;
  kuala_runtime_t *rt;
  setup(&loop, &rt, 100);
  kuala_bundle_t *bad = load(
      rt, "regex",
      CONTROLLER("local s, p = string.rep('a', 24), string.rep('a*', 24) .. 'b'\n"
                 "if req.name == 'find' then return { requeue_after = s:find(p) or 0 } end\n"
                 "if req.name == 'match' then return { requeue_after = #(s:match(p) or '') } end\n"
                 "if req.name == 'gsub' then local _, n = s:gsub(p, 'x') return { requeue_after "
                 "= n } end\n"
                 "if req.name == 'gmatch' then for m in s:gmatch(p) do end return end\n"
                 "if req.name == 'pcall' then while true do pcall(string.find, s, p) end end\n"
                 "if req.name == 'plain' then\n"
                 "  local big = string.rep('a', 200000)\n"
                 "  for i = 1, 1e9 do big:find(string.rep('a', 100000) .. 'b', 1, true) end\n"
                 "end"));
  kuala_bundle_t *good = load(rt, "good", CONTROLLER("return { requeue_after = 2 }"));
  const char *names[] = {"find", "match", "gsub", "gmatch", "pcall", "plain"};
  for (int i = 0; i < 6; i++) {
    result_t r = {0}, h = {0};
    ck_assert_int_eq(kuala_bundle_reconcile(bad, "c", "ns1", names[i], on_done, &r), 0);
    wait_done(&loop, &r);
    ck_assert_msg(r.err == KUALA_ETIMEDOUT && strstr(r.message, "CPU budget of 100 ms"),
                  "%s: %d %s", names[i], r.err, r.message);
    ck_assert_int_eq(kuala_bundle_reconcile(good, "c", "ns1", "web", on_done, &h), 0);
    ck_assert_int_eq(h.err, 0);
  }
  teardown(&loop, rt);
}
END_TEST

static void no_emit(void *data, const char *ns, const char *name)
{
  (void)data, (void)ns, (void)name;
  ck_abort_msg("the map function must not emit");
}

START_TEST(test_lua_preempt_catastrophic_pattern_at_load_and_in_predicates)
{
  uv_loop_t loop;
  kuala_runtime_t *rt;
  setup(&loop, &rt, 100);
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  const char *src = "local x = string.rep('a', 24):find(string.rep('a*', 24) .. 'b')\n";
  kuala_bundle_file_t f = {"main.lua", src, strlen(src)};
  ck_assert_int_eq(kuala_bundle_load(&b, rt, "topl", &f, 1, NULL, &err), KUALA_ETIMEDOUT);
  ck_assert_msg(strstr(err, "CPU budget") && strstr(err, "topl/main.lua:1"), "%s", err);
  kuala_free(err);
  kuala_bundle_t *p = load(
      rt, "pred",
      "local kuala = require('kuala')\n"
      "local function slow() return string.rep('a', 24):find(string.rep('a*', 24) .. 'b') end\n"
      "kuala.controller { name = 'c', watch = 'demo.kuala.dev/v1/App',\n"
      "  predicates = { function(ev) return slow() ~= nil end },\n"
      "  watches = { { type = 'v1/ConfigMap', map = function(cm) slow() return {} end } },\n"
      "  reconcile = function() end }\n");
  const char *cm = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}";
  const char *app =
      "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"App\",\"metadata\":{"
      "\"name\":\"a\"}}";
  ck_assert_int_eq(kuala_bundle_predicate(p, "c", "add", NULL, 0, app, strlen(app)), 0);
  ck_assert_int_eq(kuala_bundle_map(p, "c", 1, cm, strlen(cm), no_emit, NULL), KUALA_ETIMEDOUT);
  teardown(&loop, rt);
}
END_TEST

/* The sandbox's find/match/gmatch/gsub against LuaJIT's own, on a corpus.
 * Each case runs through both in a plain VM; results (or error status)
 * must be equal. */
static const char *corpus =
    "local cases = {\n"
    "  {'hello world', 'o'}, {'hello world', 'o', 5}, {'hello world', 'l+'},\n"
    "  {'hello world', '^h'}, {'hello world', '^w'}, {'hello world', 'd$'},\n"
    "  {'hello world', '(h)(e)'}, {'hello world', '()ll()'}, {'key = value', "
    "'(%w+)%s*=%s*(%w+)'},\n"
    "  {'  trim  ', '^%s*(.-)%s*$'}, {'THE (quick) fox', '%((%a+)%)'}, {'f(a(b)c)d', '%b()'},\n"
    "  {'THE (quick) fox', '%f[%a]%a+'}, {'abcabc', '(abc)%1'}, {'x=1, y=22', '(%a)=(%d+)'},\n"
    "  {'[tag]', '[%[%]]'}, {'a-b', '[a-]'}, {'a]b', '[]]'}, {'a^b', '[%^]'}, {'a.b', '%.'},\n"
    "  {'', ''}, {'abc', ''}, {'abc', '', 10}, {'abc', 'c', -1}, {'abc', 'a', -10},\n"
    "  {'aaa', 'a-b'}, {'aaab', 'a-b'}, {'abc', '.-'}, {'abc', 'x*'}, {'abc', '[^b]+'},\n"
    "  {'hello', 'l?l'}, {'a\\0b', '%z'}, {'a\\0b', 'a\\0b'}, {'aXb', '%u'}, {'aXb', '%U+'},\n"
    "  {'12ab', '%x+'}, {'a,b;c', '%p'}, {'tab\\there', '%c'}, {'ab', '(a)(b)()'},\n"
    "  {'abc', '[a-c]+$'}, {'x', '%'}, {'x', '[a'}, {'x', '(x'}, {'x', 'x)'}, {'x', '%1'},\n"
    "  {'x', '%b'}, {'x', '%f'}, {'$5', '$5'}, {'a$', 'a$'}, {'^a', '^^a'},\n"
    "}\n"
    "local function pack(...) return { n = select('#', ...), ... } end\n"
    "local function same(a, b)\n"
    "  if a.n ~= b.n then return false end\n"
    "  for i = 1, a.n do if a[i] ~= b[i] then return false end end\n"
    "  return true\n"
    "end\n"
    "local function show(t) local o = {} for i = 1, t.n do o[i] = string.format('%q', "
    "tostring(t[i])) end return "
    "table.concat(o, ',') end\n"
    "local bad = {}\n"
    "local function cmp(name, f1, f2, ...)\n"
    "  local a, b = pack(pcall(f1, ...)), pack(pcall(f2, ...))\n"
    "  if not a[1] and not b[1] then return end\n"
    "  if not same(a, b) then bad[#bad + 1] = name .. '(' .. show(pack(...)) .. '): ' .. show(a) "
    ".. ' vs ' .. show(b) end\n"
    "end\n"
    "local function gm(gmatch) return function(s, p)\n"
    "  local out = {} for a, b in gmatch(s, p) do out[#out + 1] = tostring(a) .. '/' .. "
    "tostring(b) end return table.concat(out, '|') end end\n"
    "for _, c in ipairs(cases) do\n"
    "  cmp('find', ORIG.find, NEW.find, c[1], c[2], c[3])\n"
    "  cmp('find plain', ORIG.find, NEW.find, c[1], c[2], c[3] or 1, true)\n"
    "  cmp('match', ORIG.match, NEW.match, c[1], c[2], c[3])\n"
    "  cmp('gmatch', gm(ORIG.gmatch), gm(NEW.gmatch), c[1], c[2])\n"
    "  cmp('gsub', ORIG.gsub, NEW.gsub, c[1], c[2], '<%0>')\n"
    "  cmp('gsub1', ORIG.gsub, NEW.gsub, c[1], c[2], '%1', 2)\n"
    "  cmp('gsubf', ORIG.gsub, NEW.gsub, c[1], c[2], function(x) return x and x:upper() end)\n"
    "  cmp('gsubt', ORIG.gsub, NEW.gsub, c[1], c[2], { a = 'A', h = false })\n"
    "end\n"
    "return #bad, table.concat(bad, '\\n')\n";

START_TEST(test_lua_preempt_patterns_agree_with_luajit)
{
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "string");
  lua_createtable(L, 0, 4);
  lua_getfield(L, -2, "find");
  lua_setfield(L, -2, "find");
  lua_getfield(L, -2, "match");
  lua_setfield(L, -2, "match");
  lua_getfield(L, -2, "gmatch");
  lua_setfield(L, -2, "gmatch");
  lua_getfield(L, -2, "gsub");
  lua_setfield(L, -2, "gsub");
  lua_setglobal(L, "ORIG");
  lua_createtable(L, 0, 4);
  kuala__lua_patterns_open(L, -1);
  lua_setglobal(L, "NEW");
  lua_pop(L, 1);
  ck_assert_int_eq(luaL_loadstring(L, corpus), 0);
  int st = lua_pcall(L, 0, 2, 0);
  ck_assert_msg(st == 0, "%s", lua_tostring(L, -1));
  ck_assert_msg(lua_tointeger(L, -2) == 0, "%d differences:\n%s", (int)lua_tointeger(L, -2),
                lua_tostring(L, -1));
  /* Outside any run the step cap ends a catastrophic pattern. */
  ck_assert_int_eq(
      luaL_loadstring(L, "return NEW.find(string.rep('a', 24), string.rep('a*', 24) .. 'b')"), 0);
  st = lua_pcall(L, 0, 1, 0);
  ck_assert_int_ne(st, 0);
  ck_assert_msg(strstr(lua_tostring(L, -1), "pattern too complex"), "%s", lua_tostring(L, -1));
  lua_close(L);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("lua_preempt");
  TCase *tc = tcase_create("lua_preempt");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_lua_preempt_patterns_agree_with_luajit);
  tcase_add_test(tc, test_lua_preempt_xpcall_keeps_its_meaning);
  tcase_add_test(tc, test_lua_preempt_catastrophic_patterns_end);
  tcase_add_test(tc, test_lua_preempt_catastrophic_pattern_at_load_and_in_predicates);
  tcase_add_test(tc, test_lua_preempt_cpu_charge_never_below_cpu_time);
  if (!UNDER_TSAN) {
    tcase_add_test(tc, test_lua_preempt_spinner_is_sliced_and_budget_ends_it);
    tcase_add_test(tc, test_lua_preempt_long_loops_give_right_results);
    tcase_add_test(tc, test_lua_preempt_hot_bundle_waits_its_turn);
    tcase_add_test(tc, test_lua_preempt_close_drops_queued_reconciles);
    tcase_add_test(tc, test_lua_preempt_xpcall_handler_cannot_escape);
  } else {
    fprintf(stderr,
            "lua_preempt: slicing and CPU-budget tests of compiled loops not run under "
            "TSan (it defers the signals that interrupt compiled Lua loops)\n");
  }
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
