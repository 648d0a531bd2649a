--- The engine backend: the context's view of the C cache and API client.
-- luacheck: ignore self
-- Only used inside the engine (it needs `kuala.core`).
--
-- Reads: the first read of a kind that no informer caches yet answers
-- EAGAIN from C; inside a reconcile the read then waits (the coroutine
-- yields) until that cache has synced, bounded by the reconcile deadline,
-- and reads again, so a nil always means "absent". Outside a reconcile
-- (map functions, predicates) it cannot wait: "ENOTSYNCED". A kind that the
-- API server does not serve (after a discovery refresh): "EUNKNOWNTYPE".
local core = require("kuala.core")

local _M = {}

local verbs = core.verbs

local function read(fn, q)
  local r, err = fn(q)
  if r ~= nil or err ~= "EAGAIN" then return r, err end
  if not core.in_reconcile() then return nil, "ENOTSYNCED" end
  local code = core._cache_wait(q)
  if code ~= 0 then
    local name = core.errname(code)
    if name == "ENOTFOUND" then return nil, "EUNKNOWNTYPE" end
    return nil, name
  end
  r, err = fn(q)
  if r == nil and err == "EAGAIN" then return nil, "ENOTSYNCED" end
  return r, err
end

function _M:get(q)
  return read(core.cache_get, q)
end

function _M:list(q)
  return read(core.cache_list, q)
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

function _M:enqueue(controller, ns, name, after)
  local code = core.enqueue(controller, ns, name, after or 0)
  if code ~= 0 then return nil, (core.errname(code)) end
  return true
end

function _M:start_cache(api_version, kind)
  core.cache_start({ api_version = api_version, kind = kind })
end

function _M:now()
  return core.now()
end

function _M:log(level, msg, fields)
  core.log(level, msg, fields)
end

return _M
