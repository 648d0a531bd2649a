-- What a copy looks like and how a copy leads back to its source
-- (unit-tested in tests/lua/controllers/replicator_spec.lua).
local _M = {}

_M.REPLICATE = "replicator.kuala.dev/replicate"  -- label on sources
_M.NAMESPACES = "replicator.kuala.dev/namespaces" -- annotation: namespace selector
_M.SOURCE = "replicator.kuala.dev/source"        -- label on copies: "<ns>.<name>"

--- "<namespace>.<name>" of a source (both are DNS labels/subdomains, and a
--- namespace holds no dot, so the first dot splits them back).
function _M.key_of(src)
  return src.metadata.namespace .. "." .. src.metadata.name
end

--- The request of the source a copy came from, or nil.
function _M.source_of(cm)
  local l = cm.metadata and cm.metadata.labels
  local key = l and l[_M.SOURCE]
  if type(key) ~= "string" then return nil end
  local ns, name = key:match("^([^.]+)%.(.+)$")
  if not ns then return nil end
  return { namespace = ns, name = name }
end

--- The namespace selector of a source, or nil when it has none.
function _M.selector_of(src)
  local a = src.metadata.annotations
  local s = a and a[_M.NAMESPACES]
  if type(s) ~= "string" or s == "" then return nil end
  return s
end

--- Whether `labels` match an equality-based label selector ("team=b",
--- "env!=dev", "tier", "!legacy", comma-separated: all must hold).
--- Matching here, on the namespaces the watch already caches, keeps one
--- view of them: a second, selector-filtered cache could lag behind the
--- watch that triggered the reconcile.
function _M.matches(labels, selector)
  labels = labels or {}
  for term in selector:gmatch("[^,]+") do
    term = term:match("^%s*(.-)%s*$")
    local k, v = term:match("^(.-)%s*!=%s*(.*)$")
    if k then
      if labels[k] == v then return false end
    else
      k, v = term:match("^(.-)%s*==?%s*(.*)$")
      if k then
        if labels[k] ~= v then return false end
      elseif term:sub(1, 1) == "!" then
        if labels[term:sub(2):match("^%s*(.-)$")] ~= nil then return false end
      elseif labels[term] == nil then
        return false
      end
    end
  end
  return true
end

--- The namespaces (names) whose labels match `selector`, from the cache.
function _M.matching_namespaces(ctx, selector)
  local out = {}
  for _, ns in ipairs(ctx:list("v1/Namespace", { namespace = false })) do
    if not ns.metadata.deletionTimestamp and _M.matches(ns.metadata.labels, selector) then
      out[#out + 1] = ns.metadata.name
    end
  end
  return out
end

--- The copy of `src` for namespace `ns`.
function _M.copy_of(src, ns)
  return {
    apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = src.metadata.name, namespace = ns,
                 labels = { [_M.SOURCE] = _M.key_of(src),
                            ["app.kubernetes.io/managed-by"] = "kuala" } },
    data = src.data,
    binaryData = src.binaryData,
  }
end

return _M
