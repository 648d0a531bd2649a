-- kuala: controller declarations, predicates and watch mapping.
local testing = require("kuala.testing")

describe("kuala.controller", function()
  local kuala
  before_each(function()
    testing.reset()
    kuala = require("kuala")
  end)

  it("normalizes the watch, owns, watches and defaults", function()
    local c = kuala.controller {
      name = "web", watch = "demo.kuala.dev/v1/WebApp", owns = { "apps/v1/Deployment" },
      reconcile = function() end,
    }
    assert.equal("demo.kuala.dev/v1", c._watch.api_version)
    assert.equal("WebApp", c._watch.kind)
    assert.equal("Deployment", c.owns[1].kind)
    assert.equal(1, c.concurrency)
    assert.equal("web.kuala.dev/finalizer", c.finalizer)
    assert.same({ "web" }, kuala._controller_names())
  end)

  it("rejects bad declarations with clear messages", function()
    assert.has_error(function() kuala.controller { name = "Bad Name", watch = "v1/Pod",
                                                   reconcile = function() end } end)
    assert.has_error(function() kuala.controller { name = "x", watch = "v1/Pod" } end,
                     "controller 'x' needs reconcile = function(ctx, req)")
    assert.has_error(function() kuala.controller { name = "x", watch = "Pod",
                                                   reconcile = function() end } end)
    assert.has_error(function() kuala.controller { name = "x", watch = "v1/Pod", concurrency = 0,
                                                   reconcile = function() end } end)
    assert.has_error(function() kuala.controller { name = "x", watch = "v1/Pod",
                                                   watches = { "v1/ConfigMap" },
                                                   reconcile = function() end } end)
    kuala.controller { name = "x", watch = "v1/Pod", reconcile = function() end }
    assert.has_error(function() kuala.controller { name = "x", watch = "v1/Pod",
                                                   reconcile = function() end } end,
                     "controller 'x' declared twice")
  end)

  it("maps owned objects to their controller owner of the primary type", function()
    kuala.controller { name = "web", watch = "demo.kuala.dev/v1/WebApp",
                       owns = { "apps/v1/Deployment" }, reconcile = function() end }
    local dep = { apiVersion = "apps/v1", kind = "Deployment",
                  metadata = { name = "web-dep", namespace = "ns",
                               ownerReferences = { { apiVersion = "demo.kuala.dev/v1",
                                                     kind = "WebApp", name = "web",
                                                     controller = true } } } }
    assert.same({ { namespace = "ns", name = "web" } },
                kuala._requests("web", { "owns", 1 }, { type = "ADDED", object = dep }))
    dep.metadata.ownerReferences[1].controller = nil
    assert.same({}, kuala._requests("web", { "owns", 1 }, { type = "ADDED", object = dep }))
  end)

  it("runs map functions for extra watches", function()
    kuala.controller {
      name = "web", watch = "demo.kuala.dev/v1/WebApp",
      watches = { { type = "v1/ConfigMap", map = function(cm)
        return { namespace = cm.metadata.namespace, name = cm.metadata.labels.app }
      end } },
      reconcile = function() end,
    }
    local cm = { apiVersion = "v1", kind = "ConfigMap",
                 metadata = { name = "cfg", namespace = "ns", labels = { app = "web" } } }
    assert.same({ { namespace = "ns", name = "web" } },
                kuala._requests("web", { "watches", 1 }, { type = "ADDED", object = cm }))
    assert.same({ { namespace = "ns", name = "web" } }, kuala._map("web", 1, cm))
  end)

  it("filters with generation_changed, label and custom predicates and scoping", function()
    kuala.controller {
      name = "web", watch = "demo.kuala.dev/v1/WebApp", namespace = "prod",
      predicates = { kuala.predicates.generation_changed, kuala.predicates.labels({ tier = "a" }),
                     function(ev) return ev.object.metadata.name ~= "skip" end },
      reconcile = function() end,
    }
    local function obj(name, ns, gen, tier)
      return { apiVersion = "demo.kuala.dev/v1", kind = "WebApp",
               metadata = { name = name, namespace = ns, generation = gen,
                            labels = { tier = tier } } }
    end
    local function reqs(ev) return #kuala._requests("web", "watch", ev) end
    assert.equal(1, reqs({ type = "ADDED", object = obj("w", "prod", 1, "a") }))
    assert.equal(0, reqs({ type = "ADDED", object = obj("w", "dev", 1, "a") }))
    assert.equal(0, reqs({ type = "ADDED", object = obj("w", "prod", 1, "b") }))
    assert.equal(0, reqs({ type = "ADDED", object = obj("skip", "prod", 1, "a") }))
    assert.equal(0, reqs({ type = "MODIFIED", old = obj("w", "prod", 1, "a"),
                           object = obj("w", "prod", 1, "a") }))
    assert.equal(1, reqs({ type = "MODIFIED", old = obj("w", "prod", 1, "a"),
                           object = obj("w", "prod", 2, "a") }))
    -- The engine applies generation_changed natively; Lua checks the rest.
    assert.is_true(kuala._predicate("web", "update", obj("w", "prod", 1, "a"),
                                    obj("w", "prod", 1, "a")))
    assert.is_false(kuala._predicate("web", "add", nil, obj("skip", "prod", 1, "a")))
  end)

  it("declares controllers for the engine as JSON", function()
    kuala.controller { name = "web", watch = "demo.kuala.dev/v1/WebApp",
                       labels = { b = "2", a = "1" },
                       predicates = { kuala.predicates.generation_changed },
                       owns = { "apps/v1/Deployment" }, concurrency = 2,
                       reconcile = function() end }
    local s = kuala._controller_json(1)
    assert.matches('"labels":"a=1,b=2"', s, 1, true)
    assert.matches('"generation_changed":true', s, 1, true)
    assert.matches('"predicate":false', s, 1, true)
    assert.matches('"concurrency":2', s, 1, true)
    assert.matches('"owns":[{"apiVersion":"apps/v1","kind":"Deployment"}]', s, 1, true)
    assert.matches('"watches":[]', s, 1, true)
  end)

  it("collects CRDs and prints them as YAML and JSON", function()
    kuala.crd { group = "demo.kuala.dev", version = "v1", kind = "WebApp",
                schema = { spec = { image = { type = "string", required = true } } } }
    local y = kuala._crds_yaml()
    assert.matches("^apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n", y)
    assert.matches("name: webapps.demo.kuala.dev", y, 1, true)
    assert.matches('^%[{"apiVersion":"apiextensions.k8s.io/v1"', kuala._crds_json())
    assert.has_error(function()
      kuala.crd { group = "demo.kuala.dev", version = "v1", kind = "WebApp" }
    end)
  end)
end)
