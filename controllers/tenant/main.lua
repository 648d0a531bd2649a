-- Tenant: one cluster-scoped object per team. A Tenant becomes a Namespace
-- of the same name with a ResourceQuota, a LimitRange (default requests
-- 100m/64Mi and limits 500m/256Mi for containers that set none) and a
-- RoleBinding that makes the tenant's group admin of its namespace. Its
-- status carries a Ready condition (kuala.conditions: lastTransitionTime
-- moves only when the status flips) and the observed generation.
--
-- Idempotent: every apply uses skip_unchanged, and the status is written
-- only when it changes, so a reconcile with nothing to do sends no request
-- (tests/integration/examples.sh counts them).
local kuala = require("kuala")
local conditions = require("kuala.conditions")
local json = require("kuala.json")
local resources = require("resources")

kuala.crd {
  group = "tenancy.kuala.dev", version = "v1", kind = "Tenant",
  scope = "Cluster", short_names = { "tn" }, status = true,
  columns = {
    { name = "Group", type = "string", path = ".spec.group" },
    { name = "CPU", type = "string", path = ".spec.quota.cpu" },
    { name = "Ready", type = "string", path = '.status.conditions[?(@.type=="Ready")].status' },
  },
  schema = {
    spec = {
      group = { type = "string", required = true, min_length = 1,
                description = "the group that administers the tenant's namespace" },
      quota = {
        type = "object", default = {},
        fields = {
          cpu = { type = "string", default = "4" },
          memory = { type = "string", default = "8Gi" },
          pods = { type = "integer", minimum = 0, default = 20 },
        },
      },
    },
    status = {
      namespace = "string",
      observedGeneration = "integer",
      conditions = { type = "array", items = { type = "any" } },
    },
  },
}

-- RBAC lets a controller bind a role only if it holds every permission of
-- that role itself, or may `bind` it: the tenant binds ClusterRole admin
-- without holding admin's rights.
kuala.permissions {
  { "rbac.authorization.k8s.io/v1/ClusterRole", "bind", names = { "admin" } },
}

kuala.controller {
  name = "tenant",
  watch = "tenancy.kuala.dev/v1/Tenant",
  owns = { "v1/Namespace", "v1/ResourceQuota", "v1/LimitRange",
           "rbac.authorization.k8s.io/v1/RoleBinding" },
  reconcile = function(ctx, req)
    local t = ctx:get(req)
    if not t then return end -- deleted: its Namespace goes with it (owner reference)
    local ns = t.metadata.name
    for _, obj in ipairs(resources.for_tenant(t)) do
      local _, err = ctx:apply(obj, { cluster = obj.kind == "Namespace", skip_unchanged = true })
      if err then
        if conditions.set(t, { type = "Ready", status = "False", reason = "ApplyFailed",
                               message = obj.kind .. ": " .. err }) then
          ctx:update_status(t, t.status)
        end
        error("applying the " .. obj.kind .. ": " .. err)
      end
    end
    local before = json.encode(t.status or {})
    t.status = t.status or {}
    t.status.namespace = ns
    t.status.observedGeneration = t.metadata.generation
    conditions.set(t, { type = "Ready", status = "True", reason = "Provisioned",
                        message = "namespace " .. ns .. " with quota and limits" })
    if json.encode(t.status) ~= before then
      local _, err = ctx:update_status(t, t.status)
      if err then error("updating status: " .. err) end
      ctx:event(t, "Normal", "Provisioned", "namespace " .. ns .. " ready for " .. t.spec.group)
    end
  end,
}
