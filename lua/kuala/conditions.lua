--- kuala.conditions: status conditions with the semantics of apimachinery's
--- meta.SetStatusCondition: lastTransitionTime changes only when status
--- changes; reason, message and observedGeneration are always updated.
--
--   kuala.conditions.set(app, {type = "Ready", status = "True",
--                             reason = "Available", message = "3/3 ready"})
--   if kuala.conditions.is_true(app, "Ready") then ... end
--
-- The first argument is an object (its .status, created when missing; its
-- metadata.generation becomes observedGeneration) or a status table.
local json = require("kuala.json")
local util = require("kuala.util")

local _M = {}

local STATUSES = { True = true, False = true, Unknown = true }

local function status_of(t, create)
  if type(t) ~= "table" then error("conditions: needs an object or a status table", 3) end
  if type(t.metadata) == "table" and (t.kind or t.apiVersion) then
    if t.status == nil or t.status == json.null then
      if not create then return nil, t.metadata.generation end
      t.status = {}
    end
    return t.status, t.metadata.generation
  end
  return t, nil
end

--- Set (add or update) condition `cond` = {type=, status="True"|"False"|
--- "Unknown", reason=, message=, observedGeneration=}. Returns true when
--- something changed (so the caller knows whether to write the status).
---@param target table object or status table
---@param cond table
---@return boolean changed
function _M.set(target, cond)
  local st, gen = status_of(target, true)
  if type(cond) ~= "table" or type(cond.type) ~= "string" or cond.type == "" then
    error("conditions.set needs {type = 'Ready', status = 'True', reason = ..., message = ...}", 2)
  end
  if not STATUSES[cond.status] then
    error("conditions.set: status must be 'True', 'False' or 'Unknown' (got " ..
          tostring(cond.status) .. ")", 2)
  end
  if type(cond.reason) ~= "string" or not cond.reason:match("^[A-Za-z][A-Za-z0-9_,:]*$") then
    error("conditions.set: reason must be a CamelCase word such as 'Available' (got " ..
          tostring(cond.reason) .. ")", 2)
  end
  local og = cond.observedGeneration or gen
  if st.conditions == nil or st.conditions == json.null then st.conditions = json.array() end
  for _, c in ipairs(st.conditions) do
    if c.type == cond.type then
      local changed = false
      if c.status ~= cond.status then
        c.status = cond.status
        c.lastTransitionTime = cond.lastTransitionTime or util.now_rfc3339()
        changed = true
      end
      local msg = cond.message or ""
      if c.reason ~= cond.reason then c.reason, changed = cond.reason, true end
      if c.message ~= msg then c.message, changed = msg, true end
      if og ~= nil and c.observedGeneration ~= og then c.observedGeneration, changed = og, true end
      return changed
    end
  end
  local n = { type = cond.type, status = cond.status, reason = cond.reason,
              message = cond.message or "",
              lastTransitionTime = cond.lastTransitionTime or util.now_rfc3339(),
              observedGeneration = og }
  -- (An empty list created above keeps its array marker: the marker is a
  -- protected metatable in the engine, and a non-empty array needs none.)
  st.conditions[#st.conditions + 1] = n
  return true
end

--- The condition of type `t`, or nil.
---@param target table object or status table
---@param t string
---@return table|nil
function _M.get(target, t)
  local st = status_of(target, false)
  if type(st) ~= "table" or type(st.conditions) ~= "table" then return nil end
  for _, c in ipairs(st.conditions) do
    if c.type == t then return c end
  end
  return nil
end

--- Whether condition `t` has status "True".
---@param target table
---@param t string
---@return boolean
function _M.is_true(target, t)
  local c = _M.get(target, t)
  return c ~= nil and c.status == "True"
end

--- Remove condition `t`; returns true when it was there.
---@param target table
---@param t string
---@return boolean
function _M.remove(target, t)
  local st = status_of(target, false)
  if type(st) ~= "table" or type(st.conditions) ~= "table" then return false end
  for i, c in ipairs(st.conditions) do
    if c.type == t then
      table.remove(st.conditions, i)
      if #st.conditions == 0 then st.conditions = json.array() end
      return true
    end
  end
  return false
end

return _M
