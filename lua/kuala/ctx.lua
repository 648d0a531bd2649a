--- The reconcile context (`ctx`) and the reconcile runner.
--
-- A context talks to a *backend*: the engine (`kuala.engine`, C cache and
-- API client) or a fake cluster (`kuala.testing`). A backend has
--   backend:get(query)  -> obj | nil, err           (cache, synchronous)
--   backend:list(query) -> array | nil, err         (cache, synchronous)
--   backend:call(call)  -> obj|true | nil, err, status   (API; may wait)
--   backend:log(level, msg, fields)                 (fields: k, v, k, v ...)
-- where query = {api_version, kind, namespace, name, selector, index, value}
-- and call = {verb, api_version, kind, namespace, name, subresource, body,
-- patch_type, field_manager, force}. Errors are names such as "ENOTFOUND",
-- "ECONFLICT", "ETIMEDOUT".
local json = require("kuala.json")
local util = require("kuala.util")

local _M = {}

---@class kuala.Request
---@field namespace string|nil
---@field name string

---@class kuala.Logger
local Logger = {}
Logger.__index = Logger

local function log_at(level)
  return function(self, msg, fields)
    local kv = util.flatten(fields)
    local out = {}
    for _, x in ipairs(self._ctx) do out[#out + 1] = x end
    for _, x in ipairs(kv) do out[#out + 1] = x end
    self._backend:log(level, tostring(msg), out)
  end
end

--- Log at error level with the request's context (controller, namespace, name).
---@param msg string
---@param fields table|nil key = value pairs
Logger.error = log_at("error")
--- Log at warn level.
Logger.warn = log_at("warn")
--- Log at info level.
Logger.info = log_at("info")
--- Log at debug level.
Logger.debug = log_at("debug")

---@class kuala.Context
---@field req kuala.Request
---@field log kuala.Logger
---@field controller table
local Context = {}
Context.__index = Context

local function target(self, what, name, namespace)
  if type(what) == "table" and what.name and not what.kind then
    -- a request: the primary type
    return self.controller._watch.api_version, self.controller._watch.kind,
      what.namespace, what.name
  end
  if type(what) == "table" then
    local md = what.metadata or {}
    return what.apiVersion, what.kind, md.namespace, md.name
  end
  local api_version, kind = util.parse_type(what)
  if namespace == false then
    namespace = nil -- a cluster-scoped type
  elseif namespace == nil then
    namespace = self.req.namespace
  end
  return api_version, kind, namespace, name
end

--- Read one object from the cache: `ctx:get(req)` for the primary,
--- `ctx:get("apps/v1/Deployment", name[, namespace])` for another type
--- (namespace defaults to the request's; pass false for cluster-scoped
--- types such as "v1/Namespace").
---@param what kuala.Request|string
---@param name string|nil
---@param namespace string|false|nil
---@return table|nil obj
---@return string|nil err
function Context:get(what, name, namespace)
  local api_version, kind, ns, n = target(self, what, name, namespace)
  if not n then error("ctx:get needs a name", 2) end
  local obj, err = self._backend:get({ api_version = api_version, kind = kind,
                                       namespace = ns, name = n })
  if not obj and err == "ENOTFOUND" then return nil end
  return obj, err
end

--- List objects of a type from the cache.
--- opts: namespace (default: the request's; false for cluster-scoped
--- types), all_namespaces, labels
--- ({app = "x"}), selector ("app=x,tier!=db"), index + value.
---@param type_ string "apps/v1/Deployment"
---@param opts table|nil
---@return table[]|nil objs
---@return string|nil err
function Context:list(type_, opts)
  opts = opts or {}
  local api_version, kind = util.parse_type(type_)
  local selector = opts.selector
  if opts.labels then
    local parts = {}
    for k, v in pairs(opts.labels) do parts[#parts + 1] = k .. "=" .. v end
    table.sort(parts)
    local s = table.concat(parts, ",")
    selector = selector and (selector .. "," .. s) or s
  end
  local ns = opts.namespace
  if ns == nil and not opts.all_namespaces then ns = self.req.namespace end
  if opts.all_namespaces or ns == false then ns = nil end
  return self._backend:list({ api_version = api_version, kind = kind, namespace = ns,
                              selector = selector, index = opts.index, value = opts.value })
end

local function call(self, c)
  c.field_manager = c.field_manager or self.controller.name
  return self._backend:call(c)
end

local function need_identity(obj, what)
  if type(obj) ~= "table" or type(obj.metadata) ~= "table" then
    error(what .. " needs an object with metadata", 3)
  end
  if not obj.apiVersion or not obj.kind then
    error(what .. " needs apiVersion and kind", 3)
  end
end

--- The primary object of this reconcile (from the cache), or nil.
---@return table|nil
function Context:primary()
  if self._primary == nil then
    self._primary = self:get(self.req) or false
  end
  return self._primary or nil
end

--- An owner reference to `owner` (controller = true).
---@param owner table
---@return table
function _M.owner_ref(owner)
  return { apiVersion = owner.apiVersion, kind = owner.kind, name = owner.metadata.name,
           uid = owner.metadata.uid, controller = true, blockOwnerDeletion = true }
end

--- Server-side apply `obj` with field manager = the controller's name and
--- force. The primary becomes its controller owner unless opts.owner ==
--- false; its namespace defaults to the request's unless opts.cluster.
---@param obj table
---@param opts table|nil {owner = false, cluster = true, force = false}
---@return table|nil applied
---@return string|nil err
---@return table|nil status
function Context:apply(obj, opts)
  opts = opts or {}
  need_identity(obj, "ctx:apply")
  local md = obj.metadata
  if not md.name then error("ctx:apply needs metadata.name", 2) end
  if md.namespace == nil and not opts.cluster then md.namespace = self.req.namespace end
  if opts.owner ~= false then
    local p = self:primary()
    if p and p.metadata and p.metadata.uid then
      local refs = md.ownerReferences or {}
      local found = false
      for _, r in ipairs(refs) do
        if r.uid == p.metadata.uid then found = true end
      end
      if not found then refs[#refs + 1] = _M.owner_ref(p) end
      md.ownerReferences = refs
    end
  end
  return call(self, { verb = "APPLY", api_version = obj.apiVersion, kind = obj.kind,
                      namespace = md.namespace, name = md.name, body = obj,
                      force = opts.force ~= false })
end

--- Create `obj` (POST).
---@param obj table
---@return table|nil created
---@return string|nil err
---@return table|nil status
function Context:create(obj)
  need_identity(obj, "ctx:create")
  if obj.metadata.namespace == nil then obj.metadata.namespace = self.req.namespace end
  return call(self, { verb = "CREATE", api_version = obj.apiVersion, kind = obj.kind,
                      namespace = obj.metadata.namespace, body = obj })
end

--- Replace `obj` (PUT; metadata.resourceVersion gives optimistic locking).
---@param obj table
---@return table|nil updated
---@return string|nil err
---@return table|nil status
function Context:update(obj)
  need_identity(obj, "ctx:update")
  return call(self, { verb = "UPDATE", api_version = obj.apiVersion, kind = obj.kind,
                      namespace = obj.metadata.namespace, name = obj.metadata.name,
                      body = obj })
end

--- Patch `obj` (a table with apiVersion, kind, metadata) with `patch`
--- (a table, or a string for a JSON patch); patch_type "merge" (default),
--- "json" or "strategic". Use kuala.null to delete a field.
---@param obj table
---@param patch table|string
---@param patch_type string|nil
---@return table|nil patched
---@return string|nil err
---@return table|nil status
function Context:patch(obj, patch, patch_type)
  need_identity(obj, "ctx:patch")
  return call(self, { verb = "PATCH", api_version = obj.apiVersion, kind = obj.kind,
                      namespace = obj.metadata.namespace, name = obj.metadata.name,
                      body = patch, patch_type = patch_type or "merge" })
end

--- Delete `obj`. A missing object is not an error.
---@param obj table
---@return boolean|nil ok
---@return string|nil err
function Context:delete(obj)
  need_identity(obj, "ctx:delete")
  local r, err, status = call(self, { verb = "DELETE", api_version = obj.apiVersion,
                                      kind = obj.kind, namespace = obj.metadata.namespace,
                                      name = obj.metadata.name })
  if not r and err == "ENOTFOUND" then return true end
  if not r then return nil, err, status end
  return true
end

--- Replace the status of `obj` (PUT .../status); `status`, when given,
--- becomes obj.status first.
---@param obj table
---@param status table|nil
---@return table|nil updated
---@return string|nil err
---@return table|nil status
function Context:update_status(obj, status)
  need_identity(obj, "ctx:update_status")
  if status ~= nil then obj.status = status end
  return call(self, { verb = "UPDATE", subresource = "status", api_version = obj.apiVersion,
                      kind = obj.kind, namespace = obj.metadata.namespace,
                      name = obj.metadata.name, body = obj })
end

--- Merge-patch the status of `obj` with `patch` (the contents of status).
---@param obj table
---@param patch table
---@return table|nil patched
---@return string|nil err
---@return table|nil status
function Context:patch_status(obj, patch)
  need_identity(obj, "ctx:patch_status")
  return call(self, { verb = "PATCH", subresource = "status", patch_type = "merge",
                      api_version = obj.apiVersion, kind = obj.kind,
                      namespace = obj.metadata.namespace, name = obj.metadata.name,
                      body = { status = patch } })
end

--- Record a Kubernetes Event about `obj`.
---@param obj table
---@param type_ string "Normal" or "Warning"
---@param reason string CamelCase reason
---@param message string
---@return table|nil event
---@return string|nil err
function Context:event(obj, type_, reason, message)
  need_identity(obj, "ctx:event")
  if type_ ~= "Normal" and type_ ~= "Warning" then
    error("event type must be 'Normal' or 'Warning'", 2)
  end
  local md = obj.metadata
  local now = util.now_rfc3339()
  local ns = md.namespace or "default"
  return call(self, {
    verb = "CREATE", api_version = "v1", kind = "Event", namespace = ns,
    body = {
      apiVersion = "v1", kind = "Event",
      metadata = { generateName = (md.name or "object") .. ".", namespace = ns },
      involvedObject = { apiVersion = obj.apiVersion, kind = obj.kind, name = md.name,
                         namespace = md.namespace, uid = md.uid,
                         resourceVersion = md.resourceVersion },
      type = type_, reason = tostring(reason), message = tostring(message),
      source = { component = self.controller.name },
      reportingComponent = self.controller.name,
      firstTimestamp = now, lastTimestamp = now, count = 1,
    },
  })
end

--- A new context for controller `c` on `backend` for request `req`.
---@param c table normalized controller
---@param backend table
---@param req kuala.Request
---@return kuala.Context
function _M.new(c, backend, req)
  local self = setmetatable({ controller = c, req = req, _backend = backend }, Context)
  self.log = setmetatable({
    _backend = backend,
    _ctx = { "controller", c.name, "namespace", req.namespace or "", "name", req.name },
  }, Logger)
  return self
end

local function has_finalizer(obj, f)
  return util.contains(obj.metadata.finalizers, f)
end

local function set_finalizers(ctx, obj, list)
  return ctx:patch(obj, { metadata = { finalizers = json.array(list),
                                       resourceVersion = obj.metadata.resourceVersion } })
end

local function requeue_of(r)
  if type(r) == "table" and type(r.requeue_after) == "number" and r.requeue_after > 0 then
    return r.requeue_after
  end
  if r ~= nil and type(r) ~= "table" then
    error("reconcile must return nothing or {requeue_after = seconds}, got " .. type(r), 0)
  end
  return 0
end

--- Run one reconcile of controller `c` for namespace/name on `backend`.
--- Handles the finalizer when the controller has `finalize`. Returns the
--- requeue delay in seconds (0 = none); raises on error.
---@param c table
---@param backend table
---@param ns string|nil
---@param name string
---@return number requeue_after
function _M.run(c, backend, ns, name)
  local req = { namespace = ns, name = name }
  local ctx = _M.new(c, backend, req)
  if c.finalize then
    local obj = ctx:primary()
    if obj then
      local f = c.finalizer
      if obj.metadata.deletionTimestamp ~= nil and obj.metadata.deletionTimestamp ~= json.null then
        if not has_finalizer(obj, f) then return 0 end
        local r = c.finalize(ctx, obj)
        local after = requeue_of(r)
        if after > 0 then return after end
        local rest = {}
        for _, x in ipairs(obj.metadata.finalizers) do
          if x ~= f then rest[#rest + 1] = x end
        end
        local ok, err = set_finalizers(ctx, obj, rest)
        if not ok then error("removing finalizer " .. f .. ": " .. tostring(err), 0) end
        return 0
      end
      if not has_finalizer(obj, f) then
        local list = {}
        for _, x in ipairs(obj.metadata.finalizers or {}) do list[#list + 1] = x end
        list[#list + 1] = f
        local updated, err = set_finalizers(ctx, obj, list)
        if not updated then error("adding finalizer " .. f .. ": " .. tostring(err), 0) end
        if type(updated) == "table" then ctx._primary = updated end
      end
    end
  end
  return requeue_of(c.reconcile(ctx, req))
end

return _M
