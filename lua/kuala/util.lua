--- Small helpers used across the SDK (types, object references).
local _M = {}

--- Split "apps/v1/Deployment" (or "v1/Service") into api_version and kind.
---@param s string
---@return string api_version
---@return string kind
function _M.parse_type(s)
  if type(s) ~= "string" then
    error("a type is a string such as 'apps/v1/Deployment' (got " .. type(s) .. ")", 3)
  end
  local api_version, kind = s:match("^(.+)/([^/]+)$")
  if not api_version or api_version == "" or not kind:match("^%u") then
    error("invalid type '" .. s .. "': expected 'group/version/Kind' or 'v1/Kind'", 3)
  end
  return api_version, kind
end

--- "apps/v1/Deployment" from an object's apiVersion and kind.
---@param obj table
---@return string
function _M.type_of(obj)
  return tostring(obj.apiVersion) .. "/" .. tostring(obj.kind)
end

--- Sorted key, value pairs of a table of scalars, as strings.
---@param fields table|nil
---@return string[]
function _M.flatten(fields)
  local out = {}
  if type(fields) ~= "table" then return out end
  local keys = {}
  for k in pairs(fields) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    out[#out + 1] = k
    out[#out + 1] = tostring(fields[k])
  end
  return out
end

--- Shallow check that a list contains a value.
---@param list table|nil
---@param v any
---@return boolean
function _M.contains(list, v)
  if type(list) ~= "table" then return false end
  for _, x in ipairs(list) do
    if x == v then return true end
  end
  return false
end

--- RFC 3339 UTC time stamp for now.
---@return string
function _M.now_rfc3339()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

return _M
