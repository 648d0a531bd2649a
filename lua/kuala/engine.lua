--- The engine backend: the context's view of the C cache and API client.
-- luacheck: ignore self
-- Only used inside the engine (it needs `kuala.core`).
local core = require("kuala.core")

local _M = {}

local verbs = core.verbs

function _M:get(q)
  return core.cache_get(q)
end

function _M:list(q)
  return core.cache_list(q)
end

function _M:call(c)
  local verb = verbs[c.verb]
  if not verb then error("unknown verb " .. tostring(c.verb), 2) end
  local code, body = core._call(verb, c.api_version, c.kind, c.namespace, c.name,
                                c.subresource, c.body, c.patch_type, c.field_manager, c.force)
  local decoded
  if body then
    local err
    decoded, err = core.json_decode(body)
    if decoded == nil and code == 0 then
      return nil, "EBADMSG", { message = err }
    end
  end
  if code ~= 0 then
    return nil, (core.errname(code)), decoded
  end
  return decoded or true
end

function _M:log(level, msg, fields)
  core.log(level, msg, fields)
end

return _M
