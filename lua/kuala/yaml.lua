--- A small YAML emitter (block style) for manifests such as CRDs.
-- Keys are sorted, with apiVersion, kind, metadata, spec first. Strings
-- that YAML would read as something else are double-quoted.
local json = require("kuala.json")

local _M = {}

local FIRST = { apiVersion = 1, kind = 2, metadata = 3, name = 4, spec = 5 }

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local fa, fb = FIRST[a] or 100, FIRST[b] or 100
    if fa ~= fb then return fa < fb end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local PLAIN_BAD = {
  ["true"] = 1, ["false"] = 1, ["yes"] = 1, ["no"] = 1, ["on"] = 1, ["off"] = 1,
  ["null"] = 1, ["~"] = 1, [""] = 1, ["y"] = 1, ["n"] = 1,
}

local function scalar(v)
  if v == json.null then return "null" end
  local tv = type(v)
  if tv == "boolean" then return tostring(v) end
  if tv == "number" then
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if tv == "string" then
    if PLAIN_BAD[v:lower()] or v:match("^[%s%-?:,%[%]{}#&*!|>'\"%%@`]") or
        v:match("[:#]%s") or v:match("[:%s]$") or v:find("[%c]") or
        tonumber(v) ~= nil or v:match("^0[xob]") then
      return (json.encode(v))
    end
    return v
  end
  error("cannot write a " .. tv .. " as YAML", 0)
end

local function is_empty(t)
  return next(t) == nil
end

local emit

local function emit_table(t, indent, out)
  local pad = string.rep("  ", indent)
  if json.is_array(t) then
    for _, v in ipairs(t) do
      if type(v) == "table" and not is_empty(v) then
        local sub = {}
        emit(v, indent + 1, sub)
        -- put the first line after the dash
        sub[1] = pad .. "- " .. sub[1]:sub(#pad + 3)
        for _, l in ipairs(sub) do out[#out + 1] = l end
      else
        local s = type(v) == "table" and (getmetatable(v) == json.array_mt and "[]" or "{}") or
                  scalar(v)
        out[#out + 1] = pad .. "- " .. s
      end
    end
    return
  end
  for _, k in ipairs(sorted_keys(t)) do
    local v = t[k]
    local key = scalar(tostring(k))
    if type(v) == "table" and not is_empty(v) then
      out[#out + 1] = pad .. key .. ":"
      emit(v, json.is_array(v) and indent or indent + 1, out)
    elseif type(v) == "table" then
      out[#out + 1] = pad .. key .. ": " .. (getmetatable(v) == json.array_mt and "[]" or "{}")
    else
      out[#out + 1] = pad .. key .. ": " .. scalar(v)
    end
  end
end

emit = function(v, indent, out)
  if type(v) == "table" then
    emit_table(v, indent, out)
  else
    out[#out + 1] = string.rep("  ", indent) .. scalar(v)
  end
end

--- Encode a Lua value as a YAML document (ends with a newline).
---@param v any
---@return string
function _M.encode(v)
  local out = {}
  if type(v) == "table" and is_empty(v) then return "{}\n" end
  emit(v, 0, out)
  return table.concat(out, "\n") .. "\n"
end

return _M
