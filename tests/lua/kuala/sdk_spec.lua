-- Issue 10 in the fake cluster: finalize runs once, failures leave a
-- rate-limited Warning Event, read-your-writes, Lua indexes, map functions
-- with a cache view, owner references on create, enqueue and the clock,
-- schema defaults, cluster:delete and the event helpers.
local testing = require("kuala.testing")

local APP = "demo.kuala.dev/v1/App"

local function app(name, extra)
  local o = { apiVersion = "demo.kuala.dev/v1", kind = "App",
              metadata = { name = name, namespace = "ns" }, spec = { size = 2 } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("issue 10", function()
  local kuala, cluster
  before_each(function()
    testing.reset()
    kuala = require("kuala")
    cluster = testing.cluster()
  end)

  describe("finalize", function()
    local runs
    before_each(function()
      runs = 0
      kuala.controller { name = "fin", watch = APP,
        reconcile = function() end,
        finalize = function(ctx, obj)
          runs = runs + 1
          ctx:event(obj, "Normal", "CleanedUp", "bye")
        end }
      cluster:seed(app("web"))
      assert(cluster:reconcile("fin", { namespace = "ns", name = "web" })) -- adds the finalizer
      assert(cluster:delete(APP, "web", "ns"))
    end)

    it("runs once, and not again for an object already gone from the server", function()
      -- The cache still holds the object being deleted after finalize ran
      -- (a child's DELETED event re-enqueues it): simulate that stale cache.
      local stale = cluster:get(APP, "web", "ns")
      assert(cluster:reconcile("fin", { namespace = "ns", name = "web" }))
      assert.equal(1, runs)
      assert.is_nil(cluster:get(APP, "web", "ns"))
      local real_get = cluster.get_cached
      cluster.get_cached = function(self, q)
        if q.kind == "App" then return stale end
        return real_get(self, q)
      end
      local ok, err = cluster:reconcile("fin", { namespace = "ns", name = "web" })
      assert.truthy(ok, err)
      assert.equal(1, runs)
      assert.equal(1, #cluster:events())
    end)

    it("treats a finalizer removal that finds the object gone as success", function()
      cluster:fail_next("PATCH", "ENOTFOUND")
      local ok, err = cluster:reconcile("fin", { namespace = "ns", name = "web" })
      assert.truthy(ok, err)
      assert.equal(1, runs)
    end)
  end)

  it("records a rate-limited Warning Event on the primary when a reconcile fails", function()
    kuala.controller { name = "bad", watch = APP, reconcile = function()
      error("no database")
    end }
    cluster:seed(app("web"))
    local _, err = cluster:reconcile("bad", { namespace = "ns", name = "web" })
    assert.truthy(err:find("no database", 1, true))
    _, err = cluster:reconcile("bad", { namespace = "ns", name = "web" })
    assert.truthy(err)
    local ev = cluster:events()
    assert.equal(1, #ev)
    assert.same({ "Warning", "ReconcileError", "web" },
                { ev[1].type, ev[1].reason, ev[1].involvedObject.name })
    assert.truthy(ev[1].message:find("no database", 1, true))
    cluster:advance(61)
    cluster:reconcile("bad", { namespace = "ns", name = "web" })
    assert.equal(2, #cluster:events())
  end)

  it("reads its own writes while the cache lags", function()
    local seen
    kuala.controller { name = "ryw", watch = APP, reconcile = function(ctx, req)
      local a = ctx:get(req)
      assert(ctx:patch_status(a, { phase = "Ready" }))
      seen = ctx:get(req).status
    end }
    cluster:seed(app("web"))
    -- A cache that never moves: it keeps the seeded version.
    local frozen = cluster:get(APP, "web", "ns")
    local real_get = cluster.get_cached
    cluster.get_cached = function(self, q)
      if q.kind == "App" then return frozen end
      return real_get(self, q)
    end
    assert(cluster:reconcile("ryw", { namespace = "ns", name = "web" }))
    assert.same({ phase = "Ready" }, seen)
  end)

  it("lists through Lua indexes and fails clearly on unknown ones", function()
    kuala.controller { name = "idx", watch = APP,
      indexes = { by_source = function(o) return { o.spec.source } end },
      reconcile = function(ctx)
        local got = ctx:list(APP, { index = "by_source", value = "git" })
        assert(#got == 2, #got)
        local none = ctx:list(APP, { index = "by_source", value = "nope" })
        assert(#none == 0)
        local ok, err = pcall(ctx.list, ctx, APP, { index = "by_sauce", value = "x" })
        assert(not ok and err:find("unknown index 'by_sauce'", 1, true), err)
        assert(err:find("namespace, owner", 1, true), err)
      end }
    cluster:seed(app("a", { spec = { source = "git" } }), app("b", { spec = { source = "git" } }),
                 app("c", { spec = { source = "s3" } }))
    local ok, err = cluster:reconcile("idx", { namespace = "ns", name = "a" })
    assert.truthy(ok, err)
    assert.has_error(function()
      kuala.controller { name = "x", watch = APP, indexes = { owner = function() end },
                         reconcile = function() end }
    end)
  end)

  it("gives map functions a read-only cache view", function()
    kuala.controller { name = "mapper", watch = APP,
      watches = { { type = "v1/ConfigMap", map = function(cm, ctx)
        local out = {}
        for _, a in ipairs(ctx:list(APP, { index = "by_config", value = cm.metadata.name })) do
          out[#out + 1] = { namespace = a.metadata.namespace, name = a.metadata.name }
        end
        assert(not pcall(ctx.apply, ctx, cm))
        return out
      end } },
      indexes = { by_config = function(o) return { o.spec.config } end },
      reconcile = function() end }
    cluster:seed(app("a", { spec = { config = "shared" } }), app("b", { spec = { config = "x" } }))
    local cm = { apiVersion = "v1", kind = "ConfigMap",
                 metadata = { name = "shared", namespace = "ns" } }
    assert.same({ { namespace = "ns", name = "a" } },
                cluster:requests("mapper", { type = "MODIFIED", object = cm }))
    assert.is_true(cluster:passes("mapper", { type = "ADDED", object = cm }))
  end)

  it("sets the owner reference on ctx:create and exposes kuala.owner_ref", function()
    kuala.controller { name = "own", watch = APP, reconcile = function(ctx, req)
      assert(ctx:create({ apiVersion = "v1", kind = "Secret",
                          metadata = { name = req.name .. "-pw" } }))
      assert(ctx:create({ apiVersion = "v1", kind = "Secret",
                          metadata = { name = req.name .. "-free" } }, { owner = false }))
    end }
    cluster:seed(app("web"))
    assert(cluster:reconcile("own", { namespace = "ns", name = "web" }))
    local s = cluster:get("v1/Secret", "web-pw", "ns")
    assert.same({ kuala.owner_ref(cluster:get(APP, "web", "ns")) }, s.metadata.ownerReferences)
    assert.is_nil(cluster:get("v1/Secret", "web-free", "ns").metadata.ownerReferences)
    assert.has_error(function() kuala.owner_ref({ metadata = {} }) end)
  end)

  it("runs requeue_after and ctx:enqueue on the spec's clock", function()
    local count = 0
    kuala.controller { name = "tick", watch = APP, reconcile = function(ctx, req)
      count = count + 1
      if req.name == "web" and count == 1 then ctx:enqueue({ namespace = "ns", name = "db" }, 5) end
      if req.name == "web" then return { requeue_after = 30 } end
    end }
    cluster:seed(app("web"), app("db"))
    assert(cluster:reconcile("tick", { namespace = "ns", name = "web" }))
    assert.same({}, cluster:advance(4))
    local due = cluster:advance(1)
    assert.equal(1, #due)
    assert.equal("db", due[1].req.name)
    local ran = cluster:run_due(25)
    assert.equal(1, #ran)
    assert.equal("web", ran[1].req.name)
    assert.equal(2, count) -- advance() only returns what came due; run_due reconciles it
  end)

  it("applies the schema defaults of the bundle's CRDs", function()
    kuala.crd { group = "demo.kuala.dev", version = "v1", kind = "App",
                schema = { spec = { size = { type = "integer", default = 1 },
                                    mode = { type = "string", default = "fast" } } } }
    cluster:seed({ apiVersion = "demo.kuala.dev/v1", kind = "App",
                   metadata = { name = "d", namespace = "ns" }, spec = { size = 3 } })
    local d = cluster:get(APP, "d", "ns")
    assert.same({ size = 3, mode = "fast" }, d.spec)
  end)

  it("deletes like a user: finalizers first", function()
    cluster:seed(app("plain"), app("held", { metadata = { name = "held", namespace = "ns",
                                                           finalizers = { "x/y" } } }))
    assert(cluster:delete(APP, "plain", "ns"))
    assert.is_nil(cluster:get(APP, "plain", "ns"))
    assert(cluster:delete(APP, "held", "ns"))
    assert.truthy(cluster:get(APP, "held", "ns").metadata.deletionTimestamp)
    assert.same({ nil, "ENOTFOUND" }, { cluster:delete(APP, "nope", "ns") })
  end)
end)
