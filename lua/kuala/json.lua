--- JSON helpers shared by the SDK and controllers.
--
-- Inside the engine, JSON text converts to and from Lua tables in C
-- (`kuala.core`); this module exposes the sentinels that keep a round trip
-- exact:
--   * `json.null` stands for JSON null (a merge patch uses it to delete a
--     field); it is a light userdata inside the engine;
--   * `json.array(t)` / `json.object(t)` mark a table, so an empty one
--     encodes as `[]` or `{}` (an unmarked empty table encodes as `{}`).
-- Outside the engine (busted specs, `kuala.testing`) the same names work
-- with Lua-side sentinels, and `encode` falls back to a Lua encoder.
local ok, core = pcall(require, "kuala.core")
if not ok or type(core) ~= "table" then core = nil end

local _M = {}

_M.null = core and core.null or setmetatable({}, {
  __tostring = function() return "kuala.null" end,
  __jsontype = "null",
})
_M.array_mt = core and core.array_mt or { __jsontype = "array" }
_M.object_mt = core and core.object_mt or { __jsontype = "object" }

--- Mark `t` (default a new table) as a JSON array.
---@param t table|nil
---@return table
function _M.array(t)
  -- The marker metatables are protected: marking twice must not re-set it.
  if t and getmetatable(t) == _M.array_mt then return t end
  return setmetatable(t or {}, _M.array_mt)
end

--- Mark `t` (default a new table) as a JSON object.
---@param t table|nil
---@return table
function _M.object(t)
  if t and getmetatable(t) == _M.object_mt then return t end
  return setmetatable(t or {}, _M.object_mt)
end

--- True when `t` is marked as, or looks like, a JSON array.
---@param t any
---@return boolean
function _M.is_array(t)
  if type(t) ~= "table" then return false end
  local mt = getmetatable(t)
  if mt == _M.array_mt then return true end
  if mt == _M.object_mt then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

local function lua_encode(v, out, depth)
  if depth > 64 then error("table nesting deeper than 64 (a cycle?)", 0) end
  local tv = type(v)
  if v == nil or v == _M.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      error("cannot encode NaN or infinity", 0)
    end
    if v == math.floor(v) and math.abs(v) <= 2 ^ 53 then
      out[#out + 1] = string.format("%d", v)
    else
      out[#out + 1] = string.format("%.17g", v)
    end
  elseif tv == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c)
      local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t",
                    ["\r"] = "\\r" }
      return map[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif tv == "table" then
    if _M.is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        lua_encode(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("object keys must be strings", 0) end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        lua_encode(k, out, depth + 1)
        out[#out + 1] = ":"
        lua_encode(v[k], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("cannot encode a " .. tv, 0)
  end
end

--- Encode a Lua value as compact JSON.
---@param v any
---@return string|nil json
---@return string|nil err
function _M.encode(v)
  if core then return core.json_encode(v) end
  local out = {}
  local ok2, err = pcall(lua_encode, v, out, 0)
  if not ok2 then return nil, err end
  return table.concat(out)
end

--- Decode JSON text (inside the engine only).
---@param s string
---@return any value
---@return string|nil err
function _M.decode(s)
  if core then return core.json_decode(s) end
  return nil, "json.decode needs the kuala engine"
end

--- Deep copy of a decoded value (markers kept).
---@param v any
---@return any
function _M.copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = _M.copy(x) end
  return setmetatable(c, getmetatable(v))
end

return _M
