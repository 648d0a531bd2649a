/*
 * Unit tests for the read cache of core/lua/ljson.c: ctx:get / ctx:list
 * hand out fresh tables equal to a decode of the cached JSON, also when
 * they come from a compiled constructor (from the second read of a
 * document on), and nothing a reconcile does to them reaches the cache or
 * another reconcile.
 *
 * A fake backend serves documents by name: "web" is a document the test
 * changes between reconciles (every JSON feature the decoder knows: nested
 * objects and arrays, empty {} and [] with their markers, null, booleans,
 * boxed integers, fractions, escapes, surrogates, awkward keys, strings that
 * would break out of a Lua literal); "inf", "deep" and "huge" cannot have a
 * constructor; "gen-N" are distinct documents for the memory bound. The
 * bundle compares what it reads with json.decode of the same text (kept in
 * the bundle as long strings, by resourceVersion) and raises on any
 * difference (values, markers, lengths, key sets); the C side
 * checks the cache's counters, so each test proves the cached path ran.
 *
 * Also: the cache is dropped after a memory error, and the encoder's string
 * and integer writers agree with kuala_buf_json_str and printf.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/log.h"
#include "kuala/runtime.h"
#include "kuala_test.h"
#include "lua/lrt.h"

/* ---- documents ---------------------------------------------------------- */

#define DOC_V1                                                                                     \
  "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"App\",\"metadata\":{\"name\":\"web\","         \
  "\"namespace\":\"ns1\",\"uid\":\"u-1\",\"resourceVersion\":\"7\",\"labels\":{\"a\":\"1\","       \
  "\"we\\\"ird]]key\":\"x\",\"\":\"empty\",\"k\\u0000z\":\"nul\",\"\\u00e9t\\u00e9\":\"summer\"}," \
  "\"annotations\":{}},\"spec\":{\"replicas\":3,\"ratio\":0.1,\"tiny\":1e-7,\"neg\":-0,"           \
  "\"float\":1.5e300,\"big\":12345678901234567890,\"nbig\":-99999999999999999999999,"              \
  "\"above53\":9007199254740993,\"list\":[1,\"two\",true,false,null,{\"x\":[]},[[]],"              \
  "[{\"deep\":{\"er\":[3,2,1]}}]],\"empty\":[],\"obj\":{},\"nothing\":null,"                       \
  "\"s\":\"line\\nnext \\\"q\\\" back\\\\slash tab\\t \\u00e9 \\ud83d\\ude00 lone \\udc00 "        \
  "end]]\","                                                                                       \
  "\"inj\":\"\\\"] = os.exit() --\",\"ctl\":\"\\u0001\\u001f\\u007f\"}}"

/* The same object at a later version: other values, same shape. */
#define DOC_V2                                                                                 \
  "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"App\",\"metadata\":{\"name\":\"web\","     \
  "\"namespace\":\"ns1\",\"uid\":\"u-1\",\"resourceVersion\":\"8\",\"labels\":{\"a\":\"2\"}}," \
  "\"spec\":{\"replicas\":5,\"list\":[1,2],\"big\":12345678901234567891}}"

/* Same length as DOC_V2, one byte different (resourceVersion 9). */
#define DOC_V3                                                                                 \
  "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"App\",\"metadata\":{\"name\":\"web\","     \
  "\"namespace\":\"ns1\",\"uid\":\"u-1\",\"resourceVersion\":\"9\",\"labels\":{\"a\":\"2\"}}," \
  "\"spec\":{\"replicas\":5,\"list\":[1,2],\"big\":12345678901234567891}}"

#define DOC_INF "{\"kind\":\"App\",\"metadata\":{\"name\":\"inf\"},\"spec\":{\"x\":1e400}}"

static const char *web_doc = DOC_V1;
static char deep_doc[1024];
static char *huge_doc;
static char gen_doc[512];
static int lists;

static void make_docs(void)
{
  /* 120 levels of arrays: deeper than a constructor may be. */
  size_t n = 0;
  n += (size_t)snprintf(deep_doc + n, sizeof deep_doc - n, "{\"kind\":\"App\",\"d\":");
  for (int i = 0; i < 120; i++)
    deep_doc[n++] = '[';
  deep_doc[n++] = '1';
  for (int i = 0; i < 120; i++)
    deep_doc[n++] = ']';
  deep_doc[n++] = '}';
  deep_doc[n] = '\0';
  /* 80 KB: above the cache's document size limit. */
  size_t hn = 80 * 1024;
  huge_doc = kuala_malloc(hn + 64);
  n = (size_t)snprintf(huge_doc, 64, "{\"kind\":\"App\",\"pad\":\"");
  memset(huge_doc + n, 'p', hn);
  n += hn;
  memcpy(huge_doc + n, "\"}", 3);
}

static int fake_get(void *self, const kuala_cache_query_t *q, const char **json, size_t *len)
{
  (void)self;
  const char *doc = NULL;
  if (!q->name)
    return KUALA_ENOTFOUND;
  if (strcmp(q->name, "web") == 0) {
    doc = web_doc;
  } else if (strcmp(q->name, "inf") == 0) {
    doc = DOC_INF;
  } else if (strcmp(q->name, "deep") == 0) {
    doc = deep_doc;
  } else if (strcmp(q->name, "huge") == 0) {
    doc = huge_doc;
  } else if (strncmp(q->name, "gen-", 4) == 0) {
    snprintf(gen_doc, sizeof gen_doc,
             "{\"kind\":\"App\",\"metadata\":{\"name\":\"%s\",\"labels\":{\"n\":\"%s\"}},"
             "\"spec\":{\"a\":[1,2,3],\"b\":{\"c\":\"%s-%s\"},\"pad\":\"%0200d\"}}",
             q->name, q->name, q->name, q->name, 7);
    doc = gen_doc;
  }
  if (!doc)
    return KUALA_ENOTFOUND;
  *json = doc;
  *len = strlen(doc);
  return 0;
}

static int fake_list(void *self, const kuala_cache_query_t *q, kuala_cache_each_cb each, void *data)
{
  (void)self, (void)q;
  lists++;
  for (int i = 0; i < 3; i++)
    each(data, web_doc, strlen(web_doc));
  return 0;
}

static char last_body[8192];
static int updates;

static int fake_start(void *self, const kuala_call_t *call, kuala_call_done_cb done, void *data,
                      void **handle)
{
  (void)self;
  *handle = NULL;
  updates++;
  snprintf(last_body, sizeof last_body, "%.*s", (int)call->body_len, call->body ? call->body : "");
  done(data, 0, "{}", 2);
  return 0;
}

static void fake_cancel(void *self, void *handle)
{
  (void)self, (void)handle;
}

/* ---- fixture ------------------------------------------------------------ */

static void quiet_sink(void *data, kuala_log_level_t level, const char *line, size_t len)
{
  (void)data, (void)level, (void)line, (void)len;
}

static struct {
  uv_loop_t loop;
  kuala_runtime_t *rt;
  int live;
} fx;

static void fixture_release(void *arg)
{
  (void)arg;
  if (!fx.live)
    return;
  fx.live = 0;
  kuala_runtime_free(fx.rt);
  fx.rt = NULL;
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&fx.loop);
  kuala_log_set_sink(NULL, NULL);
  kuala_free(huge_doc);
  huge_doc = NULL;
  ck_assert_int_eq(rc, 0);
}

/* The bundle: helpers, then one controller per scenario. DOC is the text
 * the fake serves for "web" at the start (DOC_V1). */
static const char *BUNDLE_HEAD =
    "local kuala = require('kuala')\n"
    "local json = require('kuala.json')\n"
    "local function same(a, b, path)\n"
    "  path = path or '$'\n"
    "  if type(a) ~= type(b) then\n"
    "    error(path .. ': ' .. type(a) .. ' vs ' .. type(b), 0)\n"
    "  end\n"
    "  if type(a) ~= 'table' then\n"
    "    if a ~= b or tostring(a) ~= tostring(b) then\n"
    "      error(path .. ': ' .. tostring(a) .. ' vs ' .. tostring(b), 0)\n"
    "    end\n"
    "    return\n"
    "  end\n"
    "  if getmetatable(a) ~= getmetatable(b) then error(path .. ': marker', 0) end\n"
    "  if #a ~= #b then error(path .. ': length', 0) end\n"
    "  local n = 0\n"
    "  for k, v in pairs(a) do n = n + 1; same(v, rawget(b, k), path .. '.' .. tostring(k)) end\n"
    "  for _ in pairs(b) do n = n - 1 end\n"
    "  if n ~= 0 then error(path .. ': key count', 0) end\n"
    "end\n"
    "local DOCS = { ['7'] = [==[" DOC_V1 "]==], ['8'] = [==[" DOC_V2
    "]==],\n"
    "  ['9'] = [==[" DOC_V3
    "]==] }\n"
    "-- A fresh decode of the text of the version `rv` (default: the first).\n"
    "local function fresh(rv) return assert(json.decode(DOCS[rv or '7'])) end\n"
    "local kept -- what 'mutate' changed, looked at again by 'after'\n";

static const char *BUNDLE_CONTROLLERS =
    /* Three reads (decode, build, constructor) all equal a fresh decode. */
    "kuala.controller { name = 'read', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    local want = fresh()\n"
    "    for _ = 1, 3 do same(ctx:get(req), want) end\n"
    "  end }\n"
    /* Iteration, length, markers, table functions on a cached read. */
    "kuala.controller { name = 'iterate', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    local o = ctx:get(req)\n"
    "    local l = o.spec.list\n"
    "    assert(#l == 8 and l[2] == 'two' and l[5] == json.null)\n"
    "    local seen = 0\n"
    "    for i, v in ipairs(l) do seen = seen + 1; assert(rawget(l, i) == v) end\n"
    "    assert(seen == 8)\n"
    "    local keys = {}\n"
    "    for k in pairs(o.metadata.labels) do keys[#keys + 1] = k end\n"
    "    table.sort(keys)\n"
    "    assert(table.concat(keys, ',') == ',a,k\\0z,we\"ird]]key,\\195\\169t\\195\\169', "
    "table.concat(keys, ','))\n"
    "    assert(next(o.spec.empty) == nil and getmetatable(o.spec.empty) == json.array_mt)\n"
    "    assert(next(o.spec.obj) == nil and getmetatable(o.spec.obj) == json.object_mt)\n"
    "    assert(getmetatable(o.metadata.annotations) == json.object_mt)\n"
    "    assert(not pcall(setmetatable, o.spec.empty, {}))\n"
    "    assert(getmetatable(o.spec.big) == 'kuala.integer')\n"
    "    assert(tostring(o.spec.big) == '12345678901234567890')\n"
    "    assert(tostring(o.spec.above53) == '9007199254740993')\n"
    "    assert(o.spec.inj == '\"] = os.exit() --')\n"
    "    assert(o.spec.s:find('\\240\\159\\152\\128', 1, true))\n"
    "    assert(getmetatable(o) == nil and getmetatable(o.spec) == nil)\n"
    "    local nested = l[7] -- [[]]\n"
    "    assert(#nested == 1 and getmetatable(nested[1]) == json.array_mt)\n"
    "    table.insert(l, 'nine'); table.remove(l, 1)\n"
    "    assert(#l == 8 and l[8] == 'nine' and l[1] == 'two')\n"
    "    setmetatable(o.spec, { __index = function() return 42 end })\n"
    "    assert(o.spec.missing == 42)\n"
    "  end }\n"
    /* Mutations stay in the reconcile's own tables. */
    "kuala.controller { name = 'mutate', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    local want = fresh()\n"
    "    local a, b = ctx:get(req), ctx:get(req)\n"
    "    a.spec.replicas = 99\n"
    "    a.metadata.labels.a = 'changed'\n"
    "    a.metadata.labels.added = 'new'\n"
    "    a.spec.empty[1] = 'x'\n"
    "    a.spec.obj.k = 'v'\n"
    "    a.metadata.annotations.note = 'n'\n"
    "    table.insert(a.spec.list, 1, 'first')\n"
    "    a.spec.list[7].x[1] = 'in'\n"
    "    a.status = { ready = true }\n"
    "    a.spec.nothing = nil\n"
    "    same(b, want)\n"
    "    same(ctx:get(req), want)\n"
    "    kept = a\n"
    "  end }\n"
    /* What 'mutate' kept is still its own, and a new read is clean. */
    "kuala.controller { name = 'after', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    assert(kept.spec.replicas == 99 and kept.status.ready and #kept.spec.empty == 1)\n"
    "    same(ctx:get(req), fresh())\n"
    "  end }\n"
    /* A changed document is seen at once; compare with its own text. */
    "kuala.controller { name = 'version', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    local o = ctx:get(req)\n"
    "    same(o, fresh(o.metadata.resourceVersion))\n"
    "    return { requeue_after = tonumber(o.metadata.resourceVersion) }\n"
    "  end }\n"
    /* Encode of a read, mutated, through ctx:update. */
    "kuala.controller { name = 'update', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    local o = ctx:get(req)\n"
    "    o.spec.replicas = 4\n"
    "    o.metadata.labels.added = 'yes'\n"
    "    o.spec.list[6].x[1] = 'in'\n"
    "    o.spec.obj = nil\n"
    "    assert(ctx:update(o))\n"
    "  end }\n";

static const char *BUNDLE_MORE =
    /* Lists go through the same cache. */
    "kuala.controller { name = 'list', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    local want = fresh()\n"
    "    local items = ctx:list('demo.kuala.dev/v1/App')\n"
    "    assert(#items == 3)\n"
    "    items[1].spec.replicas = 0\n"
    "    same(items[2], want)\n"
    "    same(items[3], want)\n"
    "  end }\n"
    /* Documents without a constructor: still right. */
    "kuala.controller { name = 'odd', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx, req)\n"
    "    for _ = 1, 3 do\n"
    "      local o = ctx:get(req)\n"
    "      if req.name == 'inf' then assert(o.spec.x == math.huge) end\n"
    "      if req.name == 'deep' then\n"
    "        local d, n = o.d, 0\n"
    "        while type(d) == 'table' do d = d[1]; n = n + 1 end\n"
    "        assert(n == 120 and d == 1, n)\n"
    "      end\n"
    "      if req.name == 'huge' then assert(#o.pad == 80 * 1024) end\n"
    "    end\n"
    "  end }\n"
    /* Every byte in a string, and integers, through the encoder. */
    "kuala.controller { name = 'bytes', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx)\n"
    "    local t = {}\n"
    "    for i = 0, 255 do t[#t + 1] = string.char(i) end\n"
    "    assert(ctx:update({ apiVersion = 'demo.kuala.dev/v1', kind = 'App',\n"
    "      metadata = { name = 'web', namespace = 'ns1' }, s = table.concat(t) .. 'end',\n"
    "      n = { -0.0, -5, 0, 2^53, -2^53, 12, 0.5, 1e300 } }))\n"
    "  end }\n"
    "kuala.controller { name = 'gc', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function() collectgarbage('collect') end }\n"
    /* A memory bomb. */
    "kuala.controller { name = 'bomb', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function()\n"
    "    local t = {}\n"
    "    for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end\n"
    "  end }\n"
    /* Many distinct documents: read each twice (so each gets a constructor). */
    "kuala.controller { name = 'many', watch = 'demo.kuala.dev/v1/App',\n"
    "  reconcile = function(ctx)\n"
    "    for i = 1, 3000 do\n"
    "      local name = 'gen-' .. i\n"
    "      for _ = 1, 2 do\n"
    "        local o = ctx:get('demo.kuala.dev/v1/App', name)\n"
    "        assert(o.metadata.name == name and o.spec.b.c == name .. '-' .. name)\n"
    "      end\n"
    "    end\n"
    "  end }\n";

typedef struct {
  int calls, err;
  double requeue;
  char message[1024];
} result_t;

static void on_done(void *data, const kuala_reconcile_result_t *res)
{
  result_t *r = data;
  r->calls++;
  r->err = res->err;
  r->requeue = res->requeue_after;
  snprintf(r->message, sizeof r->message, "%s", res->message ? res->message : "");
}

static kuala_bundle_t *load_bundle(size_t memory_limit)
{
  kuala_log_set_sink(quiet_sink, NULL);
  ck_assert_int_eq(uv_loop_init(&fx.loop), 0);
  make_docs();
  web_doc = DOC_V1;
  kuala_backend_t be = {fake_get, fake_list, fake_start, fake_cancel, NULL, NULL, NULL, NULL};
  kuala_runtime_opts_t opts = {0};
  opts.memory_limit = memory_limit;
  ck_assert_int_eq(kuala_runtime_new(&fx.rt, &fx.loop, &be, &opts), 0);
  fx.live = 1;
  kuala_test_defer(fixture_release, NULL);
  size_t n = strlen(BUNDLE_HEAD) + strlen(BUNDLE_CONTROLLERS) + strlen(BUNDLE_MORE) + 1;
  char *src = kuala_malloc(n);
  snprintf(src, n, "%s%s%s", BUNDLE_HEAD, BUNDLE_CONTROLLERS, BUNDLE_MORE);
  kuala_bundle_file_t f = {"main.lua", src, strlen(src)};
  kuala_bundle_t *b = NULL;
  char *err = NULL;
  int rc = kuala_bundle_load(&b, fx.rt, "readcache", &f, 1, NULL, &err);
  kuala_free(src);
  ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
  return b;
}

/* Run one reconcile of `controller` for the object `name`, to its end. */
static result_t reconcile(kuala_bundle_t *b, const char *controller, const char *name)
{
  result_t r = {0};
  ck_assert_int_eq(kuala_bundle_reconcile(b, controller, "ns1", name, on_done, &r), 0);
  while (r.calls == 0)
    uv_run(&fx.loop, UV_RUN_ONCE);
  return r;
}

static kuala__lua_rcache_stats_t stats(kuala_bundle_t *b)
{
  kuala__lua_rcache_stats_t s;
  kuala__lua_bundle_rcache_stats(b, &s);
  return s;
}

#define EXPECT_OK(r) ck_assert_msg((r).err == 0, "reconcile failed: %s", (r).message)

/* ---- tests -------------------------------------------------------------- */

START_TEST(test_readcache_reads_equal_a_fresh_decode)
{
  kuala_bundle_t *b = load_bundle(0);
  result_t r = reconcile(b, "read", "web");
  EXPECT_OK(r);
  kuala__lua_rcache_stats_t s = stats(b);
  ck_assert_uint_eq(s.builds, 1);
  ck_assert_uint_ge(s.hits, 1);
  /* A second reconcile: only constructor runs. */
  r = reconcile(b, "read", "web");
  EXPECT_OK(r);
  ck_assert_uint_ge(stats(b).hits, s.hits + 3);
  ck_assert_uint_eq(stats(b).builds, 1);
  r = reconcile(b, "iterate", "web");
  EXPECT_OK(r);
  kuala_test_cleanup();
}
END_TEST

START_TEST(test_readcache_mutation_stays_in_the_reconcile)
{
  kuala_bundle_t *b = load_bundle(0);
  EXPECT_OK(reconcile(b, "read", "web")); /* the constructor exists */
  uint64_t hits = stats(b).hits;
  EXPECT_OK(reconcile(b, "mutate", "web"));
  EXPECT_OK(reconcile(b, "after", "web"));
  EXPECT_OK(reconcile(b, "mutate", "web"));
  EXPECT_OK(reconcile(b, "read", "web"));
  ck_assert_uint_ge(stats(b).hits, hits + 9);
  ck_assert_uint_eq(stats(b).builds, 1);
  kuala_test_cleanup();
}
END_TEST

START_TEST(test_readcache_new_version_is_seen)
{
  kuala_bundle_t *b = load_bundle(0);
  EXPECT_OK(reconcile(b, "read", "web"));
  web_doc = DOC_V2;
  result_t r = reconcile(b, "version", "web");
  EXPECT_OK(r);
  ck_assert(r.requeue == 8.0);
  r = reconcile(b, "version", "web");
  EXPECT_OK(r);
  r = reconcile(b, "version", "web"); /* V2 from its constructor */
  EXPECT_OK(r);
  ck_assert(r.requeue == 8.0);
  ck_assert_uint_eq(stats(b).builds, 2);
  web_doc = DOC_V3; /* same length, one byte changed */
  ck_assert_uint_eq(strlen(DOC_V2), strlen(DOC_V3));
  r = reconcile(b, "version", "web");
  EXPECT_OK(r);
  ck_assert(r.requeue == 9.0);
  /* Back to the first: its entry went when V2 replaced it under the same
   * object (one entry per object, not per version), so it is decoded,
   * seen, built again, then a hit. */
  web_doc = DOC_V1;
  uint64_t hits = stats(b).hits, builds = stats(b).builds;
  EXPECT_OK(reconcile(b, "read", "web"));
  ck_assert_uint_eq(stats(b).builds, builds + 1);
  ck_assert_uint_eq(stats(b).hits, hits + 1);
  kuala_test_cleanup();
}
END_TEST

START_TEST(test_readcache_encode_of_a_mutated_read_is_exact)
{
  kuala_bundle_t *b = load_bundle(0);
  EXPECT_OK(reconcile(b, "read", "web"));
  uint64_t hits = stats(b).hits;
  EXPECT_OK(reconcile(b, "update", "web"));
  ck_assert_uint_eq(stats(b).hits, hits + 1);
  ck_assert_int_eq(updates, 1);
  /* The expected document: DOC_V1 with the same edits, compared as JSON
   * values (object key order is not part of a document's meaning). */
  json_object *want = NULL, *got = NULL;
  ck_assert_int_eq(kuala_json_parse(&want, DOC_V1, strlen(DOC_V1), NULL, 0), 0);
  json_object *spec = kuala_json_path(want, "spec");
  json_object_object_add(spec, "replicas", json_object_new_int(4));
  json_object_object_del(spec, "obj");
  json_object *x = kuala_json_path(want, "spec.list");
  x = json_object_object_get(json_object_array_get_idx(x, 5), "x");
  json_object_array_add(x, json_object_new_string("in"));
  json_object_object_add(kuala_json_path(want, "metadata.labels"), "added",
                         json_object_new_string("yes"));
  int rc = kuala_json_parse(&got, last_body, strlen(last_body), NULL, 0);
  ck_assert_msg(rc == 0, "body: %s", last_body);
  /* Big integers keep their digits; -0 is written 0, as a decode gives. */
  ck_assert_ptr_nonnull(strstr(last_body, "\"big\":12345678901234567890"));
  ck_assert_ptr_nonnull(strstr(last_body, "\"nbig\":-99999999999999999999999"));
  ck_assert_ptr_nonnull(strstr(last_body, "\"above53\":9007199254740993"));
  ck_assert_ptr_nonnull(strstr(last_body, "\"empty\":[]"));
  ck_assert_ptr_nonnull(strstr(last_body, "\"annotations\":{}"));
  json_object_object_add(spec, "neg", json_object_new_int(0));
  ck_assert_msg(json_object_equal(want, got), "got %s\nwant %s", last_body,
                json_object_to_json_string_ext(want, JSON_C_TO_STRING_PLAIN));
  json_object_put(want);
  json_object_put(got);
  kuala_test_cleanup();
}
END_TEST

START_TEST(test_readcache_lists_and_documents_without_constructor)
{
  kuala_bundle_t *b = load_bundle(0);
  EXPECT_OK(reconcile(b, "list", "web"));
  EXPECT_OK(reconcile(b, "list", "web"));
  ck_assert_uint_eq(stats(b).builds, 1);
  ck_assert_uint_ge(stats(b).hits, 4);
  uint64_t refused = stats(b).refused;
  EXPECT_OK(reconcile(b, "odd", "inf"));
  EXPECT_OK(reconcile(b, "odd", "deep"));
  ck_assert_uint_eq(stats(b).refused, refused + 2);
  /* Above the size limit: decoded every time, the cache never sees it. */
  kuala__lua_rcache_stats_t before = stats(b);
  EXPECT_OK(reconcile(b, "odd", "huge"));
  ck_assert_uint_eq(stats(b).builds, before.builds);
  ck_assert_uint_eq(stats(b).misses, before.misses);
  ck_assert_uint_eq(stats(b).hits, before.hits);
  kuala_test_cleanup();
}
END_TEST

START_TEST(test_readcache_memory_is_bounded)
{
  /* 16 MiB cap: the cache may use 2 MiB; 3000 documents of ~330 bytes
   * would need about 7 MB of constructors. */
  size_t cap = 16u << 20;
  kuala_bundle_t *b = load_bundle(cap);
  result_t r = reconcile(b, "many", "x");
  EXPECT_OK(r);
  kuala__lua_rcache_stats_t s = stats(b);
  ck_assert_uint_eq(s.builds, 3000);
  ck_assert_uint_ge(s.flips, 2);
  ck_assert_uint_le(s.bytes, cap / 16);
  r = reconcile(b, "read", "web");
  EXPECT_OK(r);
  ck_assert_uint_lt(kuala_bundle_memory(b), cap);
  kuala_test_cleanup();
}
END_TEST

/* The encoder's string and integer writers (rewritten with the cache) give
 * what kuala_buf_json_str and printf give. */
START_TEST(test_readcache_encoder_strings_and_integers)
{
  kuala_bundle_t *b = load_bundle(0);
  EXPECT_OK(reconcile(b, "bytes", "web"));
  char raw[260];
  for (int i = 0; i < 256; i++)
    raw[i] = (char)i;
  memcpy(raw + 256, "end", 3);
  kuala_buf_t want;
  kuala_buf_init(&want, 1 << 20);
  ck_assert_int_eq(kuala_buf_puts(&want, "\"s\":"), 0);
  ck_assert_int_eq(kuala_buf_json_str(&want, raw, 259), 0);
  int found = strstr(last_body, want.data) != NULL;
  char msg[200];
  snprintf(msg, sizeof msg, "%.150s", want.data);
  kuala_buf_free(&want);
  ck_assert_msg(found, "body %s lacks %s", last_body, msg);
  ck_assert_msg(strstr(last_body,
                       "\"n\":[0,-5,0,9007199254740992,-9007199254740992,12,0.5,"
                       "1.0000000000000001e+300]") ||
                    strstr(last_body,
                           "\"n\":[0,-5,0,9007199254740992,-9007199254740992,12,0.5,"
                           "1e+300]"),
                "%s", last_body);
  kuala_test_cleanup();
}
END_TEST

START_TEST(test_readcache_is_dropped_after_a_memory_error)
{
  kuala_bundle_t *b = load_bundle(8u << 20);
  EXPECT_OK(reconcile(b, "read", "web"));
  kuala__lua_rcache_stats_t s = stats(b);
  ck_assert_uint_eq(s.builds, 1);
  ck_assert_uint_gt(s.bytes, 0);
  result_t r = reconcile(b, "bomb", "web");
  ck_assert_int_eq(r.err, KUALA_ENOMEM);
  s = stats(b);
  ck_assert_uint_eq(s.bytes, 0);
  /* The constructor is gone: decoded again (and right), then rebuilt.
   * (Until the bomb's garbage is collected the VM is above 3/4 of its cap
   * and reads bypass the cache.) */
  EXPECT_OK(reconcile(b, "gc", "web"));
  ck_assert_uint_lt(kuala_bundle_memory(b), 4u << 20);
  EXPECT_OK(reconcile(b, "read", "web"));
  ck_assert_uint_eq(stats(b).misses, s.misses + 2);
  ck_assert_uint_eq(stats(b).builds, 2);
  ck_assert_uint_eq(stats(b).hits, s.hits + 1);
  ck_assert_uint_lt(kuala_bundle_memory(b), 8u << 20);
  kuala_test_cleanup();
}
END_TEST

int main(void)
{
  Suite *s = suite_create("lua_readcache");
  TCase *tc = kuala_test_tcase("lua_readcache");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_readcache_reads_equal_a_fresh_decode);
  tcase_add_test(tc, test_readcache_mutation_stays_in_the_reconcile);
  tcase_add_test(tc, test_readcache_new_version_is_seen);
  tcase_add_test(tc, test_readcache_encode_of_a_mutated_read_is_exact);
  tcase_add_test(tc, test_readcache_lists_and_documents_without_constructor);
  tcase_add_test(tc, test_readcache_memory_is_bounded);
  tcase_add_test(tc, test_readcache_is_dropped_after_a_memory_error);
  tcase_add_test(tc, test_readcache_encoder_strings_and_integers);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
