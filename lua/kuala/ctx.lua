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

-- ---- reads -------------------------------------------------------------

local BUILTIN_INDEXES = { namespace = true, owner = true }

local function type_str(api_version, kind)
  return tostring(api_version) .. "/" .. tostring(kind)
end

-- A read that did not answer: raise with a message naming the type (level
-- 3 = the caller of ctx:get / ctx:list).
local function read_failed(what, api_version, kind, err)
  local t = type_str(api_version, kind)
  if err == "EUNKNOWNTYPE" then
    error(what .. ": unknown type '" .. t .. "': the API server serves no kind " ..
          tostring(kind) .. " in " .. tostring(api_version) ..
          " (checked after a discovery refresh; is the name spelt right and its CRD installed?)",
          3)
  elseif err == "ENOTSYNCED" then
    error(what .. ": the cache of " .. t .. " has not synced yet, and reads outside a " ..
          "reconcile (map functions, predicates) cannot wait; list '" .. t ..
          "' in the controller's reads = {...} so its cache starts with the controller", 3)
  end
  error(what .. ": cannot read " .. t .. " from the cache (" .. tostring(err) .. ")", 3)
end

-- Read-your-writes: the last object each controller wrote, by type/ns/name,
-- until the cache shows that version or a newer one (or OVERLAY_TTL
-- seconds pass). resourceVersions are compared as numbers when both are
-- decimal (etcd revisions; the emulator's too), otherwise only equality
-- retires an entry.
local OVERLAY_TTL = 30
local OVERLAY_MAX = 512

local function okey(api_version, kind, ns, name)
  return type_str(api_version, kind) .. "/" .. (ns or "") .. "/" .. tostring(name)
end

local function rv_newer_or_same(cache_rv, written_rv)
  if cache_rv == written_rv then return true end
  local a, b = tonumber(cache_rv), tonumber(written_rv)
  if a and b and tostring(cache_rv):match("^%d+$") and tostring(written_rv):match("^%d+$") then
    return a >= b
  end
  return false
end

local function overlay_of(c)
  local o = rawget(c, "_overlay")
  if not o then
    o = { n = 0, entries = {} }
    c._overlay = o
  end
  return o
end

local function clock(backend)
  if backend.now then return backend:now() end
  return os.time()
end

local function remember(self, obj)
  if type(obj) ~= "table" or type(obj.metadata) ~= "table" or not obj.metadata.resourceVersion
      or not obj.metadata.name or not obj.kind or obj.kind == "Event" then
    return
  end
  local o = overlay_of(self.controller)
  local k = okey(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name)
  if not o.entries[k] then
    if o.n >= OVERLAY_MAX then o.entries, o.n = {}, 0 end
    o.n = o.n + 1
  end
  o.entries[k] = { obj = json.copy(obj), at = clock(self._backend) }
end

local function forget(self, api_version, kind, ns, name)
  local o = overlay_of(self.controller)
  local k = okey(api_version, kind, ns, name)
  if o.entries[k] then
    o.entries[k] = nil
    o.n = o.n - 1
  end
end

-- The newer of the cache's object and this controller's last write.
local function overlaid(self, api_version, kind, ns, name, cached)
  local o = rawget(self.controller, "_overlay")
  if not o then return cached end
  local k = okey(api_version, kind, ns, name)
  local e = o.entries[k]
  if not e then return cached end
  local md = e.obj.metadata
  local stale = clock(self._backend) - e.at > OVERLAY_TTL
  if not stale and cached and cached.metadata.uid == md.uid and
      not rv_newer_or_same(cached.metadata.resourceVersion, md.resourceVersion) then
    return json.copy(e.obj)
  end
  if not stale and cached == nil then
    return json.copy(e.obj) -- created a moment ago; the cache has not seen it
  end
  o.entries[k] = nil
  o.n = o.n - 1
  return cached
end

--- Read one object from the cache: `ctx:get(req)` for the primary,
--- `ctx:get("apps/v1/Deployment", name[, namespace])` for another type
--- (namespace defaults to the request's; pass false for cluster-scoped
--- types such as "v1/Namespace"). Returns nil only when the object does
--- not exist: the first read of a kind that no informer caches yet waits
--- (inside a reconcile) until its cache has synced. Raises on an unknown
--- type. Objects this controller wrote are seen at least at the written
--- version (read-your-writes).
---@param what kuala.Request|string
---@param name string|nil
---@param namespace string|false|nil
---@return table|nil obj
function Context:get(what, name, namespace)
  local api_version, kind, ns, n = target(self, what, name, namespace)
  if not n then error("ctx:get needs a name", 2) end
  local obj, err = self._backend:get({ api_version = api_version, kind = kind,
                                       namespace = ns, name = n })
  if not obj and err ~= "ENOTFOUND" then read_failed("ctx:get", api_version, kind, err) end
  if self._view then return obj end
  return overlaid(self, api_version, kind, ns, n, obj)
end

local function index_filter(self, name, value, api_version, kind)
  local fn = self.controller.indexes and self.controller.indexes[name]
  if not fn then
    local known = {}
    for k in pairs(BUILTIN_INDEXES) do known[#known + 1] = k end
    for k in pairs(self.controller.indexes or {}) do known[#known + 1] = k end
    table.sort(known)
    error("ctx:list: unknown index '" .. tostring(name) .. "' on " ..
          type_str(api_version, kind) .. " (known: " .. table.concat(known, ", ") ..
          "; declare it with kuala.controller{indexes = {" .. tostring(name) ..
          " = function(obj) return {...} end}})", 3)
  end
  return function(obj)
    local ok, vals = pcall(fn, obj)
    if not ok then error("index '" .. name .. "' failed: " .. tostring(vals), 0) end
    if type(vals) == "string" then return vals == value end
    for _, v in ipairs(vals or {}) do
      if v == value then return true end
    end
    return false
  end
end

--- List objects of a type from the cache; never nil (an empty array when
--- nothing matches).
--- opts: namespace (default: the request's; false for cluster-scoped
--- types), all_namespaces, labels
--- ({app = "x"}), selector ("app=x,tier!=db"), index + value (built-in
--- "namespace" and "owner" (the owner's uid), or one declared in the
--- controller's `indexes`).
---@param type_ string "apps/v1/Deployment"
---@param opts table|nil
---@return table[] objs
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
  local index, value, filter = opts.index, opts.value, nil
  if index ~= nil then
    if type(index) ~= "string" or value == nil then
      error("ctx:list: index needs a name and a value", 2)
    end
    value = tostring(value)
    if not BUILTIN_INDEXES[index] then
      filter = index_filter(self, index, value, api_version, kind)
      index, value = nil, nil
    end
  end
  local items, err = self._backend:list({ api_version = api_version, kind = kind, namespace = ns,
                                          selector = selector, index = index, value = value })
  if not items then read_failed("ctx:list", api_version, kind, err) end
  if filter then
    local out = {}
    for _, o in ipairs(items) do
      if filter(o) then out[#out + 1] = o end
    end
    items = json.array(out)
  end
  if not self._view and rawget(self.controller, "_overlay") then
    for i, o in ipairs(items) do
      local md = o.metadata or {}
      items[i] = overlaid(self, api_version, kind, md.namespace, md.name, o)
    end
  end
  return items
end

--- Enqueue a request for this controller, now or after `after` seconds
--- (`ctx:enqueue({namespace=, name=}[, after])`). Returns true or nil, err.
---@param req kuala.Request
---@param after number|nil seconds
---@return boolean|nil ok
---@return string|nil err
function Context:enqueue(req, after)
  if type(req) ~= "table" or type(req.name) ~= "string" then
    error("ctx:enqueue needs a request {namespace=, name=}", 2)
  end
  if after ~= nil and (type(after) ~= "number" or after < 0) then
    error("ctx:enqueue: after must be a number of seconds >= 0", 2)
  end
  if not self._backend.enqueue then return nil, "ENOTSUP" end
  return self._backend:enqueue(self.controller.name, req.namespace, req.name, after or 0)
end

--- Enqueue every primary object of this controller (kube-rs
--- reconcile_all_on): e.g. after a shared ConfigMap changed.
---@return boolean|nil ok
---@return string|nil err
function Context:requeue_all()
  if not self._backend.enqueue then return nil, "ENOTSUP" end
  return self._backend:enqueue(self.controller.name, nil, nil, 0)
end

local function call(self, c)
  if self._view then
    error("this ctx is a read-only cache view (map functions): API calls are not allowed", 3)
  end
  c.field_manager = c.field_manager or self.controller.name
  local r, err, status = self._backend:call(c)
  if r and c.verb ~= "DELETE" and c.verb ~= "GET" then remember(self, r) end
  if c.verb == "DELETE" then forget(self, c.api_version, c.kind, c.namespace, c.name) end
  return r, err, status
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

--- An owner reference to `owner` (controller = true, blockOwnerDeletion =
--- true unless opts.controller == false / opts.block == false). Raises when
--- owner has no uid (not read from the server).
---@param owner table
---@param opts table|nil
---@return table
function _M.owner_ref(owner, opts)
  opts = opts or {}
  if type(owner) ~= "table" or type(owner.metadata) ~= "table" or not owner.metadata.uid then
    error("owner_ref needs an object read from the server (with metadata.uid)", 2)
  end
  return { apiVersion = owner.apiVersion, kind = owner.kind, name = owner.metadata.name,
           uid = owner.metadata.uid, controller = opts.controller ~= false,
           blockOwnerDeletion = opts.block ~= false }
end

-- The primary becomes the controller owner of md (apply and create); a
-- cluster-scoped primary can own namespaced objects, not the reverse, and
-- objects in another namespace cannot be owned (the API rejects both).
local function add_owner(self, md)
  local p = self:primary()
  if not (p and p.metadata and p.metadata.uid) then return end
  local pns = p.metadata.namespace
  if pns and pns ~= "" and md.namespace ~= pns then return end
  local refs = md.ownerReferences or {}
  for _, r in ipairs(refs) do
    if r.uid == p.metadata.uid then return end
    if r.controller then return end -- already has a controller owner
  end
  refs[#refs + 1] = _M.owner_ref(p)
  md.ownerReferences = refs
end

-- Whether `have` already holds every value of `want` (what the server
-- added, defaults and status, does not count). Lists match item by item.
local function holds(have, want)
  if type(want) ~= "table" then return have == want end
  if type(have) ~= "table" then return false end
  if json.is_array(want) then
    if not json.is_array(have) and next(have) ~= nil then return false end
    if #have ~= #want then return false end
    for i = 1, #want do
      if not holds(have[i], want[i]) then return false end
    end
    return true
  end
  for k, v in pairs(want) do
    if not holds(have[k], v) then return false end
  end
  return true
end

-- The cached object when it already holds everything `obj` asks for.
local function unchanged(self, obj, md)
  local cur = self:get(obj.apiVersion .. "/" .. obj.kind, md.name, md.namespace)
  if not cur then return nil end
  local want = {}
  for k, v in pairs(obj) do
    if k ~= "metadata" and k ~= "status" then want[k] = v end
  end
  want.metadata = { labels = md.labels, annotations = md.annotations }
  if not holds(cur, want) then return nil end
  -- Owner references: each wanted one present (by uid).
  for _, r in ipairs(md.ownerReferences or {}) do
    local found = false
    for _, h in ipairs(cur.metadata.ownerReferences or {}) do
      if h.uid == r.uid then found = true end
    end
    if not found then return nil end
  end
  return cur
end

--- Server-side apply `obj` with field manager = the controller's name and
--- force. The primary becomes its controller owner unless opts.owner ==
--- false; its namespace defaults to the request's unless opts.cluster.
--- With opts.skip_unchanged, no request is sent when the cached object
--- already holds every field `obj` sets (labels, annotations, owner
--- references included): the cached object is returned. Use it for
--- idempotent reconciles; fields this controller applied earlier and no
--- longer sets are then not removed until something else changes.
---@param obj table
---@param opts table|nil {owner = false, cluster = true, force = false, skip_unchanged = true}
---@return table|nil applied
---@return string|nil err
---@return table|nil status
function Context:apply(obj, opts)
  opts = opts or {}
  need_identity(obj, "ctx:apply")
  local md = obj.metadata
  if not md.name then error("ctx:apply needs metadata.name", 2) end
  if md.namespace == nil and not opts.cluster then md.namespace = self.req.namespace end
  if opts.owner ~= false then add_owner(self, md) end
  if opts.skip_unchanged then
    local cur = unchanged(self, obj, md)
    if cur then return cur end
  end
  return call(self, { verb = "APPLY", api_version = obj.apiVersion, kind = obj.kind,
                      namespace = md.namespace, name = md.name, body = obj,
                      force = opts.force ~= false })
end

--- Create `obj` (POST). The primary becomes its controller owner unless
--- opts.owner == false; the namespace defaults to the request's unless
--- opts.cluster.
---@param obj table
---@param opts table|nil {owner = false, cluster = true}
---@return table|nil created
---@return string|nil err
---@return table|nil status
function Context:create(obj, opts)
  opts = opts or {}
  need_identity(obj, "ctx:create")
  if obj.metadata.namespace == nil and not opts.cluster then
    obj.metadata.namespace = self.req.namespace
  end
  if opts.owner ~= false then add_owner(self, obj.metadata) end
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

local function deleting(obj)
  local ts = obj.metadata.deletionTimestamp
  return ts ~= nil and ts ~= json.null
end

-- The finalizer step when the cached primary is being deleted. The cache
-- may lag (a child's DELETED event re-enqueues the parent after it is gone):
-- the object is read from the server first, and finalize runs only when it
-- still exists and still carries our finalizer. Removing the finalizer from
-- an object that is gone by then is success.
local function finalize_step(c, ctx, cached)
  local f = c.finalizer
  if not has_finalizer(cached, f) then return 0 end
  local live, err = ctx._backend:call({ verb = "GET", api_version = cached.apiVersion,
                                        kind = cached.kind,
                                        namespace = cached.metadata.namespace,
                                        name = cached.metadata.name })
  if not live then
    if err == "ENOTFOUND" then return 0 end
    error("reading " .. tostring(cached.metadata.name) .. " before finalize: " .. tostring(err), 0)
  end
  if live.metadata.uid ~= cached.metadata.uid or not has_finalizer(live, f) or
      not deleting(live) then
    return 0
  end
  ctx._primary = live
  local after = requeue_of(c.finalize(ctx, live))
  if after > 0 then return after end
  local rest = {}
  for _, x in ipairs(live.metadata.finalizers) do
    if x ~= f then rest[#rest + 1] = x end
  end
  local ok, perr = set_finalizers(ctx, live, rest)
  if not ok and perr ~= "ENOTFOUND" then
    error("removing finalizer " .. f .. ": " .. tostring(perr), 0)
  end
  return 0
end

local function body(c, ctx, req)
  if c.finalize then
    local obj = ctx:primary()
    if obj then
      if deleting(obj) then return finalize_step(c, ctx, obj) end
      local f = c.finalizer
      if not has_finalizer(obj, f) then
        local list = {}
        for _, x in ipairs(obj.metadata.finalizers or {}) do list[#list + 1] = x end
        list[#list + 1] = f
        local updated, err = set_finalizers(ctx, obj, list)
        if not updated and err == "ENOTFOUND" then return 0 end
        if not updated then error("adding finalizer " .. f .. ": " .. tostring(err), 0) end
        if type(updated) == "table" then ctx._primary = updated end
      end
    end
  end
  return requeue_of(c.reconcile(ctx, req))
end

-- Failure Events: at most one Warning per object per WARN_EVERY seconds.
local WARN_EVERY = 60

local function warn_failure(c, ctx, req, msg)
  local ok, p = pcall(ctx.primary, ctx)
  if not ok or not p or not p.metadata or not p.metadata.uid then return end
  local warned = rawget(c, "_warned")
  if not warned then
    warned = {}
    c._warned = warned
  end
  local k = (req.namespace or "") .. "/" .. req.name
  local now = clock(ctx._backend)
  if warned[k] and now - warned[k] < WARN_EVERY then return end
  warned[k] = now
  local first = tostring(msg):match("^[^\n]*") or ""
  if #first > 1000 then first = first:sub(1, 1000) .. "..." end
  pcall(ctx.event, ctx, p, "Warning", "ReconcileError", first)
end

--- Run one reconcile of controller `c` for namespace/name on `backend`.
--- Handles the finalizer when the controller has `finalize`. Returns the
--- requeue delay in seconds (0 = none); raises on error. Errors are not
--- caught here, so the runtime sees the failed stack (the bundle's frames
--- go into the message); it then calls report_failure.
---@param c table
---@param backend table
---@param ns string|nil
---@param name string
---@return number requeue_after
function _M.run(c, backend, ns, name)
  local req = { namespace = ns, name = name }
  local ctx = _M.new(c, backend, req)
  return body(c, ctx, req)
end

--- After a failed reconcile: a Warning Event "ReconcileError" on the
--- primary, at most one per object per minute.
---@param c table
---@param backend table
---@param ns string|nil
---@param name string
---@param msg string
function _M.report_failure(c, backend, ns, name, msg)
  local req = { namespace = ns, name = name }
  warn_failure(c, _M.new(c, backend, req), req, msg)
end

--- A read-only cache view for map functions: `get` and `list` (with
--- indexes) on the cache, no API calls, no waiting. `ns` is the default
--- namespace (the event object's).
---@param c table normalized controller
---@param backend table
---@param ns string|nil
---@return kuala.Context
function _M.view(c, backend, ns)
  local self = _M.new(c, backend, { namespace = ns, name = "" })
  self._view = true
  return self
end

return _M
