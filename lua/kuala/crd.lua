--- The CRD schema DSL: a compact Lua description -> a structural
--- apiextensions.k8s.io/v1 CustomResourceDefinition.
--
--   kuala.crd {
--     group = "demo.kuala.dev", version = "v1", kind = "WebApp",
--     scope = "Namespaced", short_names = { "wa" }, status = true,
--     columns = { { name = "Image", type = "string", path = ".spec.image" } },
--     schema = {
--       spec = {
--         image = { type = "string", required = true, pattern = "^[a-z]" },
--         replicas = { type = "integer", minimum = 0, maximum = 10, default = 1 },
--         mode = { type = "string", enum = { "fast", "safe" } },
--         ports = { type = "array", items = { type = "integer" } },
--         labels = { type = "map", values = "string" },
--         extra = { type = "object", preserve_unknown = true },
--       },
--     },
--   }
--
-- A field is a type name ("string"), or a table with `type`, or a table
-- without `type` whose entries are the fields of a nested object.
local json = require("kuala.json")

local _M = {}

local SCALARS = { string = true, integer = true, number = true, boolean = true }

local FIELD_KEYS = {
  type = true, required = true, default = true, description = true,
  minimum = true, maximum = true, exclusive_minimum = true, exclusive_maximum = true,
  min_length = true, max_length = true, min_items = true, max_items = true,
  enum = true, pattern = true, format = true, items = true, fields = true,
  values = true, preserve_unknown = true, nullable = true, int_or_string = true,
}

local function fail(path, msg)
  error("kuala.crd: " .. path .. ": " .. msg, 0)
end

local convert

local function object_schema(fields, path, extra)
  local props, required = {}, {}
  local names = {}
  for k in pairs(fields) do
    if type(k) ~= "string" then fail(path, "field names must be strings") end
    names[#names + 1] = k
  end
  table.sort(names)
  for _, k in ipairs(names) do
    local sub, req = convert(fields[k], path .. "." .. k)
    props[k] = sub
    if req then required[#required + 1] = k end
  end
  local s = { type = "object" }
  if #names > 0 then s.properties = props end
  if #required > 0 then s.required = required end
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function check_type(path, v, want)
  if v ~= nil and type(v) ~= want then fail(path, "expected a " .. want .. ", got " .. type(v)) end
end

-- Returns the OpenAPI schema of field `f` and whether it is required.
convert = function(f, path)
  if type(f) == "string" then f = { type = f } end
  if type(f) ~= "table" then fail(path, "a field is a type name or a table") end
  if f.type == nil then
    return object_schema(f, path), false
  end
  for k in pairs(f) do
    if not FIELD_KEYS[k] then fail(path, "unknown key '" .. tostring(k) .. "'") end
  end
  local t = f.type
  local s
  if SCALARS[t] then
    s = { type = t }
  elseif t == "object" then
    s = object_schema(f.fields or {}, path)
  elseif t == "array" then
    if f.items == nil then fail(path, "an array needs items") end
    s = { type = "array", items = (convert(f.items, path .. "[]")) }
  elseif t == "map" then
    if f.values == nil then fail(path, "a map needs values") end
    s = { type = "object", additionalProperties = (convert(f.values, path .. "{}")) }
  elseif t == "any" then
    s = { ["x-kubernetes-preserve-unknown-fields"] = true }
  else
    fail(path, "unknown type '" .. tostring(t) .. "' (string, integer, number, boolean, " ..
               "object, array, map, any)")
  end
  if f.preserve_unknown then
    if t ~= "object" then fail(path, "preserve_unknown needs type object") end
    s["x-kubernetes-preserve-unknown-fields"] = true
  end
  if f.int_or_string then s = { ["x-kubernetes-int-or-string"] = true } end
  check_type(path, f.description, "string")
  s.description = f.description
  local numeric = t == "integer" or t == "number"
  for key, out in pairs({ minimum = "minimum", maximum = "maximum" }) do
    if f[key] ~= nil then
      if not numeric then fail(path, key .. " needs an integer or number field") end
      check_type(path, f[key], "number")
      s[out] = f[key]
    end
  end
  if f.exclusive_minimum then s.exclusiveMinimum = true end
  if f.exclusive_maximum then s.exclusiveMaximum = true end
  for key, out in pairs({ min_length = "minLength", max_length = "maxLength" }) do
    if f[key] ~= nil then
      if t ~= "string" then fail(path, key .. " needs a string field") end
      check_type(path, f[key], "number")
      s[out] = f[key]
    end
  end
  for key, out in pairs({ min_items = "minItems", max_items = "maxItems" }) do
    if f[key] ~= nil then
      if t ~= "array" then fail(path, key .. " needs an array field") end
      s[out] = f[key]
    end
  end
  if f.pattern ~= nil then
    if t ~= "string" then fail(path, "pattern needs a string field") end
    check_type(path, f.pattern, "string")
    s.pattern = f.pattern
  end
  check_type(path, f.format, "string")
  s.format = f.format
  if f.enum ~= nil then
    if type(f.enum) ~= "table" or #f.enum == 0 then fail(path, "enum must be a non-empty list") end
    for _, v in ipairs(f.enum) do
      if SCALARS[t] and type(v) ~= (t == "integer" and "number" or t) then
        fail(path, "enum value " .. tostring(v) .. " is not a " .. t)
      end
    end
    s.enum = f.enum
  end
  if f.default ~= nil then
    local dt = type(f.default)
    local ok = (t == "string" and dt == "string") or (numeric and dt == "number") or
               (t == "boolean" and dt == "boolean") or (dt == "table")
    if not ok then fail(path, "default " .. tostring(f.default) .. " is not a " .. t) end
    if t == "integer" and f.default ~= math.floor(f.default) then
      fail(path, "default of an integer field must be an integer")
    end
    s.default = f.default
  end
  if f.nullable then s.nullable = true end
  return s, f.required == true
end

local function plural_of(kind)
  local l = kind:lower()
  if l:match("[^aeiou]y$") then return l:sub(1, -2) .. "ies" end
  if l:match("s$") or l:match("x$") or l:match("ch$") or l:match("sh$") then return l .. "es" end
  return l .. "s"
end

--- Build a CustomResourceDefinition object from the DSL.
---@param spec table group, version, kind, schema; optional scope
---  ("Namespaced"|"Cluster"), plural, singular, short_names, categories,
---  status (true, or a field table for the status schema), columns
---  ({name=, type=, path=, description=, priority=}), description, scale
---  ({spec = ".spec.replicas", status = ".status.replicas",
---  selector = ".status.selector"}: the scale subresource)
---@return table
function _M.build(spec)
  if type(spec) ~= "table" then error("kuala.crd needs a table", 0) end
  local group, version, kind = spec.group, spec.version, spec.kind
  -- Lua patterns have no optional groups: check the first and last
  -- characters separately.
  if type(group) ~= "string" or not group:match("^[a-z0-9][a-z0-9.-]*$") or
      not group:match("[a-z0-9]$") or not group:find("%.") then
    fail("group", "must be a DNS subdomain with a dot, e.g. demo.kuala.dev")
  end
  if type(version) ~= "string" or not version:match("^v%d+[a-z0-9]*$") then
    fail("version", "must look like v1, v1beta1")
  end
  if type(kind) ~= "string" or not kind:match("^%u%w*$") then
    fail("kind", "must be CamelCase, e.g. WebApp")
  end
  local scope = spec.scope or "Namespaced"
  if scope ~= "Namespaced" and scope ~= "Cluster" then
    fail("scope", "must be Namespaced or Cluster")
  end
  local plural = spec.plural or plural_of(kind)
  local singular = spec.singular or kind:lower()
  local fields = spec.schema or {}
  if type(fields) ~= "table" then fail("schema", "must be a table of fields") end
  local top = {}
  for k, v in pairs(fields) do top[k] = v end
  if spec.status and top.status == nil then
    top.status = type(spec.status) == "table" and spec.status or
                 { type = "object", preserve_unknown = true }
  end
  local root = object_schema(top, kind)
  root.properties = root.properties or {}
  root.properties.apiVersion = { type = "string" }
  root.properties.kind = { type = "string" }
  root.properties.metadata = { type = "object" }
  if spec.description then root.description = spec.description end

  local ver = {
    name = version, served = true, storage = true,
    schema = { openAPIV3Schema = root },
  }
  if spec.status then ver.subresources = { status = json.object() } end
  if spec.scale ~= nil then
    local sc = spec.scale
    if type(sc) ~= "table" then fail("scale", "must be {spec = '.spec.replicas', status = ...}") end
    for k in pairs(sc) do
      if k ~= "spec" and k ~= "status" and k ~= "selector" then
        fail("scale", "unknown key '" .. tostring(k) .. "' (spec, status, selector)")
      end
    end
    if type(sc.spec) ~= "string" or not sc.spec:match("^%.spec%.[%w_.]+$") then
      fail("scale.spec", "must be a path under .spec, e.g. .spec.replicas")
    end
    if type(sc.status) ~= "string" or not sc.status:match("^%.status%.[%w_.]+$") then
      fail("scale.status", "must be a path under .status, e.g. .status.replicas")
    end
    if sc.selector ~= nil and (type(sc.selector) ~= "string" or
        not sc.selector:match("^%.status%.[%w_.]+$")) then
      fail("scale.selector", "must be a path under .status, e.g. .status.selector")
    end
    if not spec.status then fail("scale", "needs status = true (the scale reads .status)") end
    ver.subresources.scale = { specReplicasPath = sc.spec, statusReplicasPath = sc.status,
                               labelSelectorPath = sc.selector }
  end
  if spec.columns then
    local cols = {}
    for i, c in ipairs(spec.columns) do
      if type(c) ~= "table" or type(c.name) ~= "string" or type(c.path) ~= "string" then
        fail("columns[" .. i .. "]", "needs name and path (a JSONPath such as .spec.image)")
      end
      cols[i] = { name = c.name, type = c.type or "string", jsonPath = c.path,
                  description = c.description, priority = c.priority }
    end
    ver.additionalPrinterColumns = cols
  end
  local names = { kind = kind, listKind = kind .. "List", plural = plural, singular = singular }
  if spec.short_names then names.shortNames = spec.short_names end
  if spec.categories then names.categories = spec.categories end
  return {
    apiVersion = "apiextensions.k8s.io/v1",
    kind = "CustomResourceDefinition",
    metadata = { name = plural .. "." .. group },
    spec = { group = group, scope = scope, names = names, versions = { ver } },
  }
end

return _M
