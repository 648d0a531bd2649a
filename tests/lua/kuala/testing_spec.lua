-- kuala.testing and kuala.ctx: a controller's reconcile against the fake
-- cluster (writes, status, events, finalizers, errors).
local testing = require("kuala.testing")
local json = require("kuala.json")

local APP = "demo.kuala.dev/v1/App"

local function app(name, extra)
  local o = { apiVersion = "demo.kuala.dev/v1", kind = "App",
              metadata = { name = name, namespace = "ns" }, spec = { size = 2 } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("kuala.testing", function()
  local kuala, cluster
  before_each(function()
    testing.reset()
    kuala = require("kuala")
    cluster = testing.cluster()
  end)

  it("runs a reconcile that applies an owned object with owner reference and field manager",
     function()
    kuala.controller { name = "apps", watch = APP, reconcile = function(ctx, req)
      local a = ctx:get(req)
      assert(ctx:apply({ apiVersion = "v1", kind = "ConfigMap",
                         metadata = { name = a.metadata.name },
                         data = { size = tostring(a.spec.size) } }))
      return { requeue_after = 30 }
    end }
    cluster:seed(app("web"))
    local res = assert(cluster:reconcile("apps", { namespace = "ns", name = "web" }))
    assert.equal(30, res.requeue_after)
    local cm = cluster:get("v1/ConfigMap", "web", "ns")
    assert.equal("2", cm.data.size)
    local ref = cm.metadata.ownerReferences[1]
    assert.same({ "App", "web", true }, { ref.kind, ref.name, ref.controller })
    assert.equal(cluster:get(APP, "web", "ns").metadata.uid, ref.uid)
    local w = cluster:writes("APPLY")
    assert.equal(1, #w)
    assert.equal("apps", w[1].field_manager)
    assert.is_true(w[1].force)
  end)

  it("returns nothing to do when the primary is gone", function()
    kuala.controller { name = "apps", watch = APP, reconcile = function(ctx, req)
      if not ctx:get(req) then return end
      error("unreachable")
    end }
    assert.same({ requeue_after = 0 }, cluster:reconcile("apps", { namespace = "ns", name = "x" }))
    assert.equal(0, #cluster:writes())
  end)

  it("reports errors with their location", function()
    kuala.controller { name = "apps", watch = APP, reconcile = function()
      error("broken")
    end }
    local res, err = cluster:reconcile("apps", { namespace = "ns", name = "x" })
    assert.is_nil(res)
    assert.matches("testing_spec.lua:%d+: broken", err)
  end)

  it("rejects a bad return value", function()
    kuala.controller { name = "apps", watch = APP, reconcile = function() return 5 end }
    local _, err = cluster:reconcile("apps", { namespace = "ns", name = "x" })
    assert.matches("requeue_after", err)
  end)

  it("writes status, merge patches (null deletes) and events", function()
    kuala.controller { name = "apps", watch = APP, reconcile = function(ctx, req)
      local a = ctx:get(req)
      assert(ctx:update_status(a, { phase = "Ready" }))
      a = ctx:get(req)
      assert(ctx:patch_status(a, { ready = 2 }))
      assert(ctx:patch(a, { metadata = { labels = { drop = json.null, keep = "y" } } }))
      assert(ctx:event(a, "Normal", "Synced", "all good"))
      assert.has_error(function() ctx:event(a, "Info", "x", "y") end)
    end }
    cluster:seed(app("web", { metadata = { name = "web", namespace = "ns",
                                           labels = { drop = "x" } } }))
    assert(cluster:reconcile("apps", { namespace = "ns", name = "web" }))
    local a = cluster:get(APP, "web", "ns")
    assert.same({ phase = "Ready", ready = 2 }, a.status)
    assert.same({ keep = "y" }, a.metadata.labels)
    assert.equal(1, a.metadata.generation) -- status and metadata edits keep the generation
    local ev = cluster:events()[1]
    assert.same({ "Normal", "Synced", "all good", "web", "apps" },
                { ev.type, ev.reason, ev.message, ev.involvedObject.name, ev.source.component })
    assert.equal("status", cluster:writes("UPDATE")[1].subresource)
  end)

  it("hands API errors back as nil, name, status", function()
    local seen
    kuala.controller { name = "apps", watch = APP, reconcile = function(ctx, req)
      local a = ctx:get(req)
      local _, err = ctx:update(a)
      seen = err
    end }
    cluster:seed(app("web"))
    cluster:fail_next("UPDATE", "ECONFLICT")
    assert(cluster:reconcile("apps", { namespace = "ns", name = "web" }))
    assert.equal("ECONFLICT", seen)
  end)

  it("detects stale updates", function()
    kuala.controller { name = "apps", watch = APP, reconcile = function(ctx, req)
      local a = ctx:get(req)
      a.metadata.resourceVersion = "0"
      local _, err = ctx:update(a)
      assert(err == "ECONFLICT", err)
    end }
    cluster:seed(app("web"))
    assert(cluster:reconcile("apps", { namespace = "ns", name = "web" }))
  end)

  it("reads cluster-scoped objects with namespace = false", function()
    local found
    kuala.controller { name = "apps", watch = APP, reconcile = function(ctx)
      found = { ctx:get("v1/Namespace", "prod", false) ~= nil,
                ctx:get("v1/Namespace", "prod") ~= nil,
                #ctx:list("v1/Namespace", { namespace = false }) }
    end }
    cluster:seed({ apiVersion = "v1", kind = "Namespace", metadata = { name = "prod" } })
    assert(cluster:reconcile("apps", { namespace = "ns", name = "a" }))
    assert.same({ true, false, 1 }, found)
  end)

  it("lists from the cache by namespace and labels", function()
    local names
    kuala.controller { name = "apps", watch = APP, reconcile = function(ctx)
      names = {}
      for _, o in ipairs(ctx:list(APP, { labels = { tier = "web" } })) do
        names[#names + 1] = o.metadata.name
      end
      names.all = #ctx:list(APP, { all_namespaces = true })
      names.sel = #ctx:list(APP, { selector = "tier!=web" })
    end }
    cluster:seed(app("a", { metadata = { name = "a", namespace = "ns",
                                         labels = { tier = "web" } } }),
                 app("b", { metadata = { name = "b", namespace = "ns",
                                         labels = { tier = "db" } } }),
                 app("c", { metadata = { name = "c", namespace = "other",
                                         labels = { tier = "web" } } }))
    assert(cluster:reconcile("apps", { namespace = "ns", name = "a" }))
    assert.same({ "a", all = 3, sel = 1 }, names)
  end)

  it("adds the finalizer, runs finalize on deletion, then removes it", function()
    local finalized = 0
    kuala.controller { name = "apps", watch = APP,
      reconcile = function() end,
      finalize = function(ctx, obj)
        finalized = finalized + 1
        ctx.log:info("cleaning up", { name = obj.metadata.name })
      end }
    cluster:seed(app("web"))
    assert(cluster:reconcile("apps", { namespace = "ns", name = "web" }))
    local a = cluster:get(APP, "web", "ns")
    assert.same({ "apps.kuala.dev/finalizer" }, a.metadata.finalizers)
    -- A delete now only marks the object.
    local ctx = cluster:context("apps", { namespace = "ns", name = "web" })
    assert(ctx:delete(a))
    assert.is_string(cluster:get(APP, "web", "ns").metadata.deletionTimestamp)
    assert(cluster:reconcile("apps", { namespace = "ns", name = "web" }))
    assert.equal(1, finalized)
    assert.is_nil(cluster:get(APP, "web", "ns")) -- finalizer removed: gone
    assert.equal("cleaning up", cluster.logs[1].msg)
    assert.same({ controller = "apps", namespace = "ns", name = "web" },
                { controller = cluster.logs[1].fields.controller,
                  namespace = cluster.logs[1].fields.namespace,
                  name = cluster.logs[1].fields.name })
  end)

  it("keeps the finalizer while finalize asks to come back", function()
    kuala.controller { name = "apps", watch = APP, reconcile = function() end,
      finalize = function() return { requeue_after = 5 } end }
    cluster:seed(app("web", { metadata = { name = "web", namespace = "ns",
                                           finalizers = { "apps.kuala.dev/finalizer" },
                                           deletionTimestamp = "2026-01-01T00:00:00Z" } }))
    assert.same({ requeue_after = 5 },
                cluster:reconcile("apps", { namespace = "ns", name = "web" }))
    assert.is_table(cluster:get(APP, "web", "ns"))
  end)

  it("loads a bundle directory with its own modules", function()
    local k = testing.load("controllers/webapp")
    assert.is_table(k._by_name.webapp)
    assert.equal(1, #k._crds)
  end)
end)
