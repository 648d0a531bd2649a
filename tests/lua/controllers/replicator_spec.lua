-- The example replicator bundle (controllers/replicator) against the fake
-- cluster: copies follow the source and the namespaces' labels.
local testing = require("kuala.testing")
local copies

local function ns(name, labels)
  return { apiVersion = "v1", kind = "Namespace", metadata = { name = name, labels = labels } }
end

local function source(data)
  return { apiVersion = "v1", kind = "ConfigMap",
           metadata = { name = "settings", namespace = "default", uid = "s-1",
                        labels = { [copies.REPLICATE] = "true" },
                        annotations = { [copies.NAMESPACES] = "team=b" } },
           data = data }
end

local req = { namespace = "default", name = "settings" }

describe("controllers/replicator", function()
  local cluster
  before_each(function()
    package.loaded.copies = nil
    testing.load("controllers/replicator")
    copies = require("copies")
    cluster = testing.cluster()
    cluster:seed(ns("default", {}), ns("team-b1", { team = "b" }), ns("team-b2", { team = "b" }),
                 ns("other", { team = "c" }))
  end)

  it("copies the source into every matching namespace, labelled with its source", function()
    cluster:seed(source({ level = "info" }))
    assert(cluster:reconcile("replicator", req))
    for _, n in ipairs({ "team-b1", "team-b2" }) do
      local c = cluster:get("v1/ConfigMap", "settings", n)
      assert.same({ level = "info" }, c.data)
      assert.equal("default.settings", c.metadata.labels[copies.SOURCE])
    end
    assert.is_nil(cluster:get("v1/ConfigMap", "settings", "other"))
  end)

  it("is idempotent, follows edits and drops copies whose namespace stops matching", function()
    cluster:seed(source({ level = "info" }))
    assert(cluster:reconcile("replicator", req))
    local n = #cluster:writes()
    assert(cluster:reconcile("replicator", req))
    assert.equal(n, #cluster:writes()) -- nothing changed: no write
    cluster:seed(source({ level = "debug" }))
    assert(cluster:reconcile("replicator", req))
    assert.equal("debug", cluster:get("v1/ConfigMap", "settings", "team-b1").data.level)
    cluster:seed(ns("team-b2", { team = "c" }))
    assert(cluster:reconcile("replicator", req))
    assert.is_nil(cluster:get("v1/ConfigMap", "settings", "team-b2"))
    assert.is_table(cluster:get("v1/ConfigMap", "settings", "team-b1"))
  end)

  it("maps a copy back to its source and ignores other ConfigMaps", function()
    assert.same({ namespace = "default", name = "settings" },
                copies.source_of(copies.copy_of(source({}), "team-b1")))
    assert.is_nil(copies.source_of({ metadata = { labels = { app = "x" } } }))
  end)
end)
