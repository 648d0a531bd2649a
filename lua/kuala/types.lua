--- kuala.types: which "group/version/Kind" strings an API server is known
--- to serve without asking it (the built-in Kubernetes kinds plus the
--- bundle's own kuala.crd declarations). Used by `kuala check` to warn
--- about misspelt type strings offline; the engine itself asks discovery
--- and raises "unknown type" at the first read.
local _M = {}

local BUILTIN = {
  ["v1"] = { "Binding", "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "Node",
             "PersistentVolume", "PersistentVolumeClaim", "Pod", "PodTemplate",
             "ReplicationController", "ResourceQuota", "Secret", "Service",
             "ServiceAccount" },
  ["apps/v1"] = { "ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet",
                  "StatefulSet" },
  ["batch/v1"] = { "CronJob", "Job" },
  ["autoscaling/v1"] = { "HorizontalPodAutoscaler", "Scale" },
  ["autoscaling/v2"] = { "HorizontalPodAutoscaler" },
  ["policy/v1"] = { "PodDisruptionBudget" },
  ["networking.k8s.io/v1"] = { "Ingress", "IngressClass", "NetworkPolicy" },
  ["rbac.authorization.k8s.io/v1"] = { "ClusterRole", "ClusterRoleBinding", "Role",
                                       "RoleBinding" },
  ["coordination.k8s.io/v1"] = { "Lease" },
  ["events.k8s.io/v1"] = { "Event" },
  ["discovery.k8s.io/v1"] = { "EndpointSlice" },
  ["storage.k8s.io/v1"] = { "CSIDriver", "CSINode", "StorageClass", "VolumeAttachment" },
  ["scheduling.k8s.io/v1"] = { "PriorityClass" },
  ["node.k8s.io/v1"] = { "RuntimeClass" },
  ["certificates.k8s.io/v1"] = { "CertificateSigningRequest" },
  ["apiextensions.k8s.io/v1"] = { "CustomResourceDefinition" },
  ["apiregistration.k8s.io/v1"] = { "APIService" },
  ["admissionregistration.k8s.io/v1"] = { "MutatingWebhookConfiguration",
                                          "ValidatingWebhookConfiguration" },
}

local known
local function known_set()
  if known then return known end
  known = {}
  for gv, kinds in pairs(BUILTIN) do
    for _, k in ipairs(kinds) do known[gv .. "/" .. k] = true end
  end
  return known
end

-- Levenshtein distance, for "did you mean".
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- Whether `t` is known offline; else nil and a suggestion (or nil).
---@param t string "apps/v1/Deployment"
---@param crds table[]|nil CRD objects declared by the bundle
---@return boolean known
---@return string|nil suggestion
function _M.known(t, crds)
  local set = known_set()
  if set[t] then return true end
  local extra = {}
  for _, c in ipairs(crds or {}) do
    for _, v in ipairs(c.spec and c.spec.versions or {}) do
      local id = c.spec.group .. "/" .. v.name .. "/" .. c.spec.names.kind
      if id == t then return true end
      extra[#extra + 1] = id
    end
  end
  local best, bestd = nil, 4
  local function try(id)
    local d = distance(t, id)
    if d < bestd then best, bestd = id, d end
  end
  for id in pairs(set) do try(id) end
  for _, id in ipairs(extra) do try(id) end
  return false, best
end

--- Warnings for type strings that are not known offline: from the
--- controllers' declarations and from string literals in the sources
--- ({[file] = text}). Each is {file=, line=, type=, message=}.
---@param controllers table[]
---@param crds table[]
---@param sources table<string, string>|nil
---@return table[]
function _M.warnings(controllers, crds, sources)
  local out, seen = {}, {}
  local function check(t, file, line)
    if seen[t .. "@" .. tostring(file) .. ":" .. tostring(line)] then return end
    seen[t .. "@" .. tostring(file) .. ":" .. tostring(line)] = true
    seen[t] = true
    local ok, hint = _M.known(t, crds)
    if ok then return end
    local msg = "type '" .. t .. "' is neither a built-in kind nor declared by this bundle's " ..
      "kuala.crd; if it comes from another CRD this is fine, otherwise it will fail with " ..
      "'unknown type' at runtime"
    if hint then msg = msg .. " (did you mean '" .. hint .. "'?)" end
    out[#out + 1] = { file = file, line = line, type = t, message = msg }
  end
  local files = {}
  for f in pairs(sources or {}) do files[#files + 1] = f end
  table.sort(files)
  for _, f in ipairs(files) do
    local n = 0
    for line in (sources[f] .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      for _, t in line:gmatch("([\"'])([%w%.%-]*/?v%d[%w]*/%u%w*)%1") do
        check(t, f, n)
      end
    end
  end
  for _, c in ipairs(controllers or {}) do
    local all = { c._watch }
    for _, w in ipairs(c.owns or {}) do all[#all + 1] = w end
    for _, w in ipairs(c.watches or {}) do all[#all + 1] = w end
    for _, w in ipairs(c.reads or {}) do all[#all + 1] = w end
    for _, w in ipairs(all) do
      if not seen[w.type] then check(w.type, nil, nil) end
    end
  end
  return out
end

return _M
