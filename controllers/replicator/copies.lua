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
