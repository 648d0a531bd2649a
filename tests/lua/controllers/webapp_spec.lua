-- The example WebApp controller, reconciled against kuala.testing's fake
-- cluster (no server). The same bundle runs end to end in
-- tests/integration/dev_webapp.sh.
local testing = require("kuala.testing")

local function webapp(spec, status)
  return {
    apiVersion = "demo.kuala.dev/v1", kind = "WebApp",
    metadata = { name = "web", namespace = "default" },
    -- what the API server delivers: schema defaults already applied
    spec = spec or { image = "nginx:1.27", replicas = 2, port = 8080 },
    status = status,
  }
end

local req = { namespace = "default", name = "web" }

describe("controllers/webapp", function()
  local cluster

  before_each(function()
    local kuala = testing.load("controllers/webapp")
    assert.is_table(kuala._by_name.webapp)
    cluster = testing.cluster()
  end)

  it("declares a namespaced WebApp CRD with a status subresource and printer columns", function()
    local kuala = require("kuala")
    local crds = kuala._crds
    assert.equal(1, #crds)
    local crd = crds[1]
    assert.equal("webapps.demo.kuala.dev", crd.metadata.name)
    assert.equal("Namespaced", crd.spec.scope)
    local v = crd.spec.versions[1]
    assert.is_table(v.subresources.status)
    assert.equal(3, #v.additionalPrinterColumns)
    local spec = v.schema.openAPIV3Schema.properties.spec
    assert.same({ "image" }, spec.required)
    assert.equal(1, spec.properties.replicas.default)
  end)

  it("applies a Deployment and a Service owned by the WebApp", function()
    cluster:seed(webapp())
    local _, err = cluster:reconcile("webapp", req)
    assert.is_nil(err)
    local dep = cluster:get("apps/v1/Deployment", "web", "default")
    assert.equal(2, dep.spec.replicas)
    assert.equal("nginx:1.27", dep.spec.template.spec.containers[1].image)
    assert.equal(8080, dep.spec.template.spec.containers[1].ports[1].containerPort)
    local owner = dep.metadata.ownerReferences[1]
    assert.equal("WebApp", owner.kind)
    assert.equal("web", owner.name)
    assert.is_true(owner.controller)
    local svc = cluster:get("v1/Service", "web", "default")
    assert.equal(8080, svc.spec.ports[1].targetPort)
    assert.equal(2, #cluster:writes("APPLY"))
  end)

  it("reports Pending until the Deployment has its replicas ready", function()
    cluster:seed(webapp())
    assert.is_nil(select(2, cluster:reconcile("webapp", req)))
    local app = cluster:get("demo.kuala.dev/v1/WebApp", "web", "default")
    assert.equal("Pending", app.status.phase)
    assert.equal(0, app.status.readyReplicas)
    assert.equal(0, #cluster:events())
  end)

  it("turns Ready with an event once the Deployment is ready, and then stays quiet", function()
    cluster:seed(webapp(nil, { phase = "Pending", readyReplicas = 0 }), {
      apiVersion = "apps/v1", kind = "Deployment",
      metadata = { name = "web", namespace = "default" },
      spec = { replicas = 2 }, status = { readyReplicas = 2 },
    })
    assert.is_nil(select(2, cluster:reconcile("webapp", req)))
    local app = cluster:get("demo.kuala.dev/v1/WebApp", "web", "default")
    assert.equal("Ready", app.status.phase)
    assert.equal(2, app.status.readyReplicas)
    assert.equal(1, #cluster:events())
    -- A second pass changes nothing: no status write, no second event.
    local updates = #cluster:writes("UPDATE") + #cluster:writes("PATCH")
    assert.is_nil(select(2, cluster:reconcile("webapp", req)))
    assert.equal(updates, #cluster:writes("UPDATE") + #cluster:writes("PATCH"))
    assert.equal(1, #cluster:events())
  end)

  it("does nothing for a WebApp that is gone", function()
    local _, err = cluster:reconcile("webapp", req)
    assert.is_nil(err)
    assert.equal(0, #cluster:writes("APPLY"))
  end)

  it("fails (and so backs off) when the API refuses the Deployment", function()
    cluster:seed(webapp())
    cluster:fail_next("APPLY", "EFORBIDDEN")
    local res, err = cluster:reconcile("webapp", req)
    assert.is_nil(res)
    assert.matches("applying the Deployment: EFORBIDDEN", err)
  end)
end)
