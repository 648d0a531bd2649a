-- kuala.ctx on a recording backend: what each method sends.
local ctxlib = require("kuala.ctx")
local json = require("kuala.json")

local function backend(objects)
  local b = { calls = {}, logs = {} }
  function b.get(_, q) return objects[q.kind .. "/" .. tostring(q.namespace) .. "/" .. q.name],
                             objects[q.kind .. "/" .. tostring(q.namespace) .. "/" .. q.name]
                             == nil and "ENOTFOUND" or nil end
  function b.list(_, q) b.last_list = q return json.array() end
  function b.call(_, c) b.calls[#b.calls + 1] = c return c.body or true end
  function b.log(_, level, msg, fields) b.logs[#b.logs + 1] = { level, msg, fields } end
  return b
end

local controller = {
  name = "ctl", _watch = { api_version = "demo.kuala.dev/v1", kind = "App" },
}

local primary = { apiVersion = "demo.kuala.dev/v1", kind = "App",
                  metadata = { name = "a", namespace = "ns", uid = "u1" } }

describe("kuala.ctx", function()
  local be, ctx
  before_each(function()
    be = backend({ ["App/ns/a"] = primary })
    ctx = ctxlib.new(controller, be, { namespace = "ns", name = "a" })
  end)

  it("gets the primary from a request and other types by name", function()
    assert.equal(primary, ctx:get(ctx.req))
    assert.is_nil(ctx:get("v1/ConfigMap", "missing"))
    assert.equal(primary, ctx:primary())
  end)

  it("builds list queries from labels, selectors, namespaces and indexes", function()
    ctx:list("apps/v1/Deployment", { labels = { b = "2", a = "1" }, selector = "x!=y" })
    assert.same({ api_version = "apps/v1", kind = "Deployment", namespace = "ns",
                  selector = "x!=y,a=1,b=2" }, be.last_list)
    ctx:list("v1/Pod", { all_namespaces = true, index = "owner", value = "u1" })
    assert.same({ api_version = "v1", kind = "Pod", index = "owner", value = "u1" },
                be.last_list)
  end)

  it("applies with force, the controller as field manager and an owner reference", function()
    ctx:apply({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "cm" } })
    local c = be.calls[1]
    assert.same({ "APPLY", "v1", "ConfigMap", "ns", "cm", "ctl", true },
                { c.verb, c.api_version, c.kind, c.namespace, c.name, c.field_manager, c.force })
    assert.same({ ctxlib.owner_ref(primary) }, c.body.metadata.ownerReferences)
    ctx:apply({ apiVersion = "v1", kind = "Namespace", metadata = { name = "x" } },
              { owner = false, cluster = true, force = false })
    c = be.calls[2]
    assert.is_nil(c.namespace)
    assert.is_false(c.force)
    assert.is_nil(c.body.metadata.ownerReferences)
  end)

  it("skips an apply the cache already holds when asked (skip_unchanged)", function()
    local live = { apiVersion = "v1", kind = "ConfigMap",
                   metadata = { name = "cm", namespace = "ns", uid = "c1", resourceVersion = "9",
                                labels = { app = "a", extra = "server" },
                                ownerReferences = { ctxlib.owner_ref(primary) } },
                   data = { k = "v", other = "kept" } }
    be = backend({ ["App/ns/a"] = primary, ["ConfigMap/ns/cm"] = live })
    ctx = ctxlib.new(controller, be, { namespace = "ns", name = "a" })
    local want = function(v)
      return { apiVersion = "v1", kind = "ConfigMap",
               metadata = { name = "cm", labels = { app = "a" } }, data = { k = v } }
    end
    assert.equal(live, ctx:apply(want("v"), { skip_unchanged = true }))
    assert.equal(0, #be.calls)
    ctx:apply(want("changed"), { skip_unchanged = true })
    assert.equal(1, #be.calls)
    ctx:apply(want("v")) -- without the option: always sent
    assert.equal(2, #be.calls)
    -- A missing owner reference or label is a change.
    live.metadata.ownerReferences = nil
    ctx:apply(want("v"), { skip_unchanged = true })
    assert.equal(3, #be.calls)
    live.metadata.ownerReferences = { ctxlib.owner_ref(primary) }
    live.metadata.labels.app = nil
    ctx:apply(want("v"), { skip_unchanged = true })
    assert.equal(4, #be.calls)
  end)

  it("compares lists item by item for skip_unchanged", function()
    local live = { apiVersion = "v1", kind = "Service",
                   metadata = { name = "s", namespace = "ns", uid = "s1",
                                ownerReferences = { ctxlib.owner_ref(primary) } },
                   spec = { ports = { { port = 80, protocol = "TCP", targetPort = 8080 } } } }
    be = backend({ ["App/ns/a"] = primary, ["Service/ns/s"] = live })
    ctx = ctxlib.new(controller, be, { namespace = "ns", name = "a" })
    local svc = function(ports)
      return { apiVersion = "v1", kind = "Service", metadata = { name = "s" },
               spec = { ports = ports } }
    end
    ctx:apply(svc({ { port = 80, targetPort = 8080 } }), { skip_unchanged = true })
    assert.equal(0, #be.calls) -- the server's default (protocol) does not count
    ctx:apply(svc({ { port = 80, targetPort = 8080 }, { port = 443 } }), { skip_unchanged = true })
    assert.equal(1, #be.calls)
  end)

  it("does not add the same owner twice", function()
    local obj = { apiVersion = "v1", kind = "ConfigMap",
                  metadata = { name = "cm", ownerReferences = { ctxlib.owner_ref(primary) } } }
    ctx:apply(obj)
    assert.equal(1, #be.calls[1].body.metadata.ownerReferences)
  end)

  it("sends patches, status writes and deletes to the right subresource", function()
    ctx:patch(primary, { spec = { x = json.null } })
    ctx:patch_status(primary, { ready = true })
    ctx:update_status(primary, { phase = "Ready" })
    ctx:delete(primary)
    local c = be.calls
    assert.same({ "PATCH", "merge" }, { c[1].verb, c[1].patch_type })
    assert.same({ "PATCH", "status", { status = { ready = true } } },
                { c[2].verb, c[2].subresource, c[2].body })
    assert.same({ "UPDATE", "status", "Ready" }, { c[3].verb, c[3].subresource,
                                                    c[3].body.status.phase })
    assert.equal("DELETE", c[4].verb)
  end)

  it("refuses objects without identity, with the caller's position", function()
    local ok, err = pcall(ctx.apply, ctx, { kind = "X", metadata = { name = "a" } })
    assert.is_false(ok)
    assert.matches("ctx:apply needs apiVersion and kind", err)
    assert.has_error(function() ctx:create({}) end)
    assert.has_error(function() ctx:get("nokind") end)
  end)

  it("logs with the request's context", function()
    ctx.log:warn("slow", { ms = 12 })
    assert.same({ "warn", "slow", { "controller", "ctl", "namespace", "ns", "name", "a",
                                    "ms", "12" } }, be.logs[1])
  end)
end)
