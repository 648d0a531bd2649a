-- The objects a Tenant owns, as plain tables (unit-tested in
-- tests/lua/controllers/tenant_spec.lua).
local _M = {}

--- Default container resources in every tenant namespace.
_M.DEFAULT_REQUEST = { cpu = "100m", memory = "64Mi" }
_M.DEFAULT_LIMIT = { cpu = "500m", memory = "256Mi" }

local function labels(t)
  return { ["app.kubernetes.io/managed-by"] = "kuala",
           ["tenancy.kuala.dev/tenant"] = t.metadata.name }
end

---@param t table the Tenant
---@return table[] objects to apply, the Namespace first
function _M.for_tenant(t)
  local ns = t.metadata.name
  local q = t.spec.quota or {}
  return {
    { apiVersion = "v1", kind = "Namespace", metadata = { name = ns, labels = labels(t) } },
    { apiVersion = "v1", kind = "ResourceQuota",
      metadata = { name = "tenant-quota", namespace = ns, labels = labels(t) },
      spec = { hard = { ["requests.cpu"] = q.cpu or "4", ["requests.memory"] = q.memory or "8Gi",
                        pods = tostring(q.pods or 20) } } },
    { apiVersion = "v1", kind = "LimitRange",
      metadata = { name = "tenant-limits", namespace = ns, labels = labels(t) },
      spec = { limits = { { type = "Container",
                            defaultRequest = _M.DEFAULT_REQUEST,
                            default = _M.DEFAULT_LIMIT } } } },
    { apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding",
      metadata = { name = "tenant-admins", namespace = ns, labels = labels(t) },
      roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = "admin" },
      subjects = { { apiGroup = "rbac.authorization.k8s.io", kind = "Group",
                     name = t.spec.group } } },
  }
end

return _M
