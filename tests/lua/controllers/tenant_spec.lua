-- The example Tenant bundle (controllers/tenant) against the fake cluster.
local testing = require("kuala.testing")

local function tenant()
  return { apiVersion = "tenancy.kuala.dev/v1", kind = "Tenant",
           metadata = { name = "team-a", uid = "t-1", generation = 1 },
           spec = { group = "team-a-admins", quota = { cpu = "8", memory = "16Gi", pods = 30 } } }
end

describe("controllers/tenant", function()
  local cluster
  before_each(function()
    testing.load("controllers/tenant")
    cluster = testing.cluster()
  end)

  it("declares a cluster-scoped Tenant CRD whose quota has defaults", function()
    local crd = require("kuala")._crds[1]
    assert.equal("Cluster", crd.spec.scope)
    local q = crd.spec.versions[1].schema.openAPIV3Schema.properties.spec.properties.quota
    assert.equal("4", q.properties.cpu.default)
    assert.equal(20, q.properties.pods.default)
  end)

  it("provisions a namespace with quota, default limits and an admin binding", function()
    cluster:seed(tenant())
    assert(cluster:reconcile("tenant", { name = "team-a" }))
    local ns = cluster:get("v1/Namespace", "team-a")
    assert.equal("Tenant", ns.metadata.ownerReferences[1].kind)
    local q = cluster:get("v1/ResourceQuota", "tenant-quota", "team-a")
    assert.same({ ["requests.cpu"] = "8", ["requests.memory"] = "16Gi", pods = "30" }, q.spec.hard)
    local lr = cluster:get("v1/LimitRange", "tenant-limits", "team-a")
    assert.same({ cpu = "100m", memory = "64Mi" }, lr.spec.limits[1].defaultRequest)
    assert.same({ cpu = "500m", memory = "256Mi" }, lr.spec.limits[1].default)
    local rb = cluster:get("rbac.authorization.k8s.io/v1/RoleBinding", "tenant-admins", "team-a")
    assert.equal("team-a-admins", rb.subjects[1].name)
    assert.equal("admin", rb.roleRef.name)
    local t = cluster:get("tenancy.kuala.dev/v1/Tenant", "team-a")
    assert.equal("True", t.status.conditions[1].status)
    assert.equal("Provisioned", t.status.conditions[1].reason)
    assert.equal(1, t.status.observedGeneration)
  end)

  it("sends no write when nothing changed (idempotent)", function()
    cluster:seed(tenant())
    assert(cluster:reconcile("tenant", { name = "team-a" }))
    local n = #cluster:writes()
    assert.is_true(n >= 5) -- four applies and the status
    assert(cluster:reconcile("tenant", { name = "team-a" }))
    assert.equal(n, #cluster:writes())
  end)

  it("reports ApplyFailed and retries when an apply fails", function()
    cluster:seed(tenant())
    cluster:fail_next("APPLY", "ETOOMANY")
    local res, err = cluster:reconcile("tenant", { name = "team-a" })
    assert.is_nil(res)
    assert.matches("ETOOMANY", err)
    local t = cluster:get("tenancy.kuala.dev/v1/Tenant", "team-a")
    assert.equal("False", t.status.conditions[1].status)
    assert.equal("ApplyFailed", t.status.conditions[1].reason)
  end)
end)
