-- The example WebApp bundle (controllers/webapp) against the fake cluster.
local testing = require("kuala.testing")

local function webapp(spec)
  return { apiVersion = "demo.kuala.dev/v1", kind = "WebApp",
           metadata = { name = "web", namespace = "default" }, spec = spec }
end

describe("controllers/webapp", function()
  local cluster
  before_each(function()
    testing.load("controllers/webapp")
    cluster = testing.cluster()
  end)

  it("declares the WebApp CRD with its schema", function()
    local crd = require("kuala")._crds[1]
    assert.equal("webapps.demo.kuala.dev", crd.metadata.name)
    local spec = crd.spec.versions[1].schema.openAPIV3Schema.properties.spec
    assert.same({ "image" }, spec.required)
  end)

  it("applies a Deployment and a Service owned by the WebApp", function()
    cluster:seed(webapp({ image = "nginx:1", replicas = 2, port = 8080 }))
    assert(cluster:reconcile("webapp", { namespace = "default", name = "web" }))
    local dep = cluster:get("apps/v1/Deployment", "web", "default")
    assert.equal(2, dep.spec.replicas)
    assert.equal("nginx:1", dep.spec.template.spec.containers[1].image)
    assert.equal("WebApp", dep.metadata.ownerReferences[1].kind)
    local svc = cluster:get("v1/Service", "web", "default")
    assert.is_table(svc)
    assert.equal("webapp", cluster:writes("APPLY")[1].field_manager)
  end)

  it("reports Pending until the Deployment has ready replicas, then Ready with an event",
     function()
    cluster:seed(webapp({ image = "nginx:1", replicas = 1, port = 8080 }))
    assert(cluster:reconcile("webapp", { namespace = "default", name = "web" }))
    local app = cluster:get("demo.kuala.dev/v1/WebApp", "web", "default")
    assert.equal("Pending", app.status.phase)
    -- The Deployment becomes ready (the fake has no controllers: do it by hand).
    local dep = cluster:get("apps/v1/Deployment", "web", "default")
    dep.status = { readyReplicas = 1 }
    cluster:seed(dep)
    assert(cluster:reconcile("webapp", { namespace = "default", name = "web" }))
    app = cluster:get("demo.kuala.dev/v1/WebApp", "web", "default")
    assert.equal(1, app.status.readyReplicas)
    assert.equal("Ready", app.status.phase)
    assert.equal("True", app.status.conditions[1].status)
    assert.equal("Available", app.status.conditions[1].reason)
    assert.equal("app.kubernetes.io/managed-by=kuala,app.kubernetes.io/name=web",
                 app.status.selector)
    assert.equal("Ready", cluster:events()[1].reason)
  end)

  it("passes spec.env to the container, sorted, and declares the scale subresource", function()
    local crd = require("kuala")._crds[1]
    assert.same({ specReplicasPath = ".spec.replicas", statusReplicasPath = ".status.replicas",
                  labelSelectorPath = ".status.selector" },
                crd.spec.versions[1].subresources.scale)
    cluster:seed(webapp({ image = "nginx:1", replicas = 1, port = 8080,
                          env = { B = "2", A = "1" } }))
    assert(cluster:reconcile("webapp", { namespace = "default", name = "web" }))
    local dep = cluster:get("apps/v1/Deployment", "web", "default")
    assert.same({ { name = "A", value = "1" }, { name = "B", value = "2" } },
                dep.spec.template.spec.containers[1].env)
  end)

  it("sends no write when nothing changed (idempotent)", function()
    cluster:seed(webapp({ image = "nginx:1", replicas = 1, port = 8080 }))
    assert(cluster:reconcile("webapp", { namespace = "default", name = "web" }))
    local n = #cluster:writes()
    assert(cluster:reconcile("webapp", { namespace = "default", name = "web" }))
    assert.equal(n, #cluster:writes())
  end)

  it("does nothing once the WebApp is deleted", function()
    assert(cluster:reconcile("webapp", { namespace = "default", name = "web" }))
    assert.equal(0, #cluster:writes())
  end)

  it("fails the reconcile (so it is retried) when an apply fails", function()
    cluster:seed(webapp({ image = "nginx:1", replicas = 1, port = 8080 }))
    cluster:fail_next("APPLY", "ETOOMANY")
    local res, err = cluster:reconcile("webapp", { namespace = "default", name = "web" })
    assert.is_nil(res)
    assert.matches("applying the Deployment: ETOOMANY", err)
  end)
end)
