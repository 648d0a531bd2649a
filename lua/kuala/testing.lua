--- kuala.testing: run a controller's reconcile in busted against an
--- in-memory fake cluster. No server, no engine.
--
--   local testing = require("kuala.testing")
--   local kuala = testing.load("controllers/webapp")   -- runs main.lua
--   local cluster = testing.cluster()
--   cluster:seed({ apiVersion = "demo.kuala.dev/v1", kind = "WebApp",
--                  metadata = { name = "web", namespace = "default" },
--                  spec = { image = "nginx" } })
--   local res = assert(cluster:reconcile("webapp", { namespace = "default", name = "web" }))
--   local dep = cluster:get("apps/v1/Deployment", "web", "default")
--   assert.equal(1, #cluster:writes("APPLY"))
--
-- The fake keeps objects by type/namespace/name, assigns uid,
-- resourceVersion and generation, supports apply (recursive merge), create
-- (generateName too), update (resourceVersion conflicts), merge patches
-- (kuala.null deletes), the status subresource, and deletion with
-- finalizers, schema defaults of the CRDs the loaded bundle declares, and a
-- clock the spec controls (cluster:advance) for requeue_after and
-- ctx:enqueue. It is a test double: server-side validation and garbage
-- collection are not emulated.
local json = require("kuala.json")
local util = require("kuala.util")
local ctxlib = require("kuala.ctx")

local _M = {}

---@class kuala.FakeCluster
---@field objects table<string, table>
---@field calls table[] every API call, in order
---@field logs table[] {level=, msg=, fields=}
local Cluster = {}
Cluster.__index = Cluster

local copy = json.copy

local function key(api_version, kind, ns, name)
  return api_version .. "/" .. kind .. "/" .. (ns or "") .. "/" .. name
end

local function merge(dst, patch)
  if type(patch) ~= "table" or json.is_array(patch) or type(dst) ~= "table" or
      json.is_array(dst) then
    return copy(patch)
  end
  for k, v in pairs(patch) do
    if v == json.null then
      dst[k] = nil
    else
      dst[k] = merge(dst[k], v)
    end
  end
  return dst
end

local function without(t, field)
  local c = copy(t)
  c[field] = nil
  return c
end

local function same(a, b)
  return json.encode(a) == json.encode(b)
end

--- A new, empty fake cluster.
---@return kuala.FakeCluster
function _M.cluster()
  return setmetatable({ objects = {}, calls = {}, logs = {}, _rv = 0, _uid = 0,
                        _fail = {}, clock = 1000000, queue = {} }, Cluster)
end

-- ---- clock and queue -----------------------------------------------------

--- The fake clock (seconds). Starts at 1000000; only cluster:advance moves it.
---@return number
function Cluster:now()
  return self.clock
end

local function schedule(self, controller, req, after)
  self.queue[#self.queue + 1] = { controller = controller, due = self.clock + (after or 0),
                                  req = { namespace = req.namespace, name = req.name } }
end

--- Move the clock forward by `seconds` and return the requests that came
--- due ({controller=, req=, due=}, earliest first), removing them from the
--- queue: the requeue_after of reconciles and ctx:enqueue(req, after).
---@param seconds number
---@return table[]
function Cluster:advance(seconds)
  self.clock = self.clock + (seconds or 0)
  local due, rest = {}, {}
  for _, e in ipairs(self.queue) do
    if e.due <= self.clock then due[#due + 1] = e else rest[#rest + 1] = e end
  end
  table.sort(due, function(a, b) return a.due < b.due end)
  self.queue = rest
  return due
end

--- Advance the clock and reconcile every request that came due. Returns
--- the results in order ({controller=, req=, result=, err=}).
---@param seconds number
---@return table[]
function Cluster:run_due(seconds)
  local out = {}
  for _, e in ipairs(self:advance(seconds)) do
    local r, err = self:reconcile(e.controller, e.req)
    out[#out + 1] = { controller = e.controller, req = e.req, result = r, err = err }
  end
  return out
end

-- ---- schema defaults -------------------------------------------------------

local function apply_defaults(schema, v)
  if type(schema) ~= "table" or type(v) ~= "table" then return end
  if schema.type == "object" and schema.properties then
    for k, sub in pairs(schema.properties) do
      if v[k] == nil and sub.default ~= nil then v[k] = copy(sub.default) end
      if v[k] ~= nil then apply_defaults(sub, v[k]) end
    end
  elseif schema.type == "object" and type(schema.additionalProperties) == "table" then
    for _, x in pairs(v) do apply_defaults(schema.additionalProperties, x) end
  elseif schema.type == "array" and schema.items then
    for _, x in ipairs(v) do apply_defaults(schema.items, x) end
  end
end

-- Defaults from the openAPIV3Schema of a CRD declared by the loaded bundle.
local function default_object(obj)
  local kuala = package.loaded["kuala"]
  if not kuala or type(obj) ~= "table" then return end
  for _, c in ipairs(kuala._crds or {}) do
    if c.spec.names.kind == obj.kind then
      for _, ver in ipairs(c.spec.versions) do
        if c.spec.group .. "/" .. ver.name == obj.apiVersion then
          apply_defaults(ver.schema.openAPIV3Schema, obj)
        end
      end
    end
  end
end

function Cluster:_next_rv()
  self._rv = self._rv + 1
  return tostring(self._rv)
end

function Cluster:_store(obj)
  local md = obj.metadata
  self.objects[key(obj.apiVersion, obj.kind, md.namespace, md.name)] = obj
end

--- Put objects into the cluster as they are (uid, resourceVersion and
--- generation filled in when missing).
---@param ... table objects
---@return kuala.FakeCluster self
function Cluster:seed(...)
  for _, o in ipairs({ ... }) do
    if type(o) ~= "table" or not o.apiVersion or not o.kind or type(o.metadata) ~= "table" or
        not o.metadata.name then
      error("seed needs objects with apiVersion, kind and metadata.name", 2)
    end
    local obj = copy(o)
    self._uid = self._uid + 1
    obj.metadata.uid = obj.metadata.uid or ("uid-" .. self._uid)
    obj.metadata.resourceVersion = self:_next_rv()
    obj.metadata.generation = obj.metadata.generation or 1
    default_object(obj)
    self:_store(obj)
  end
  return self
end

--- The stored object (a copy), or nil.
---@param type_ string "apps/v1/Deployment"
---@param name string
---@param namespace string|nil
---@return table|nil
function Cluster:get(type_, name, namespace)
  local api_version, kind = util.parse_type(type_)
  local o = self.objects[key(api_version, kind, namespace, name)]
  return o and copy(o) or nil
end

--- The API calls made so far, optionally only those with `verb`
--- ("APPLY", "CREATE", "UPDATE", "PATCH", "DELETE", "GET").
---@param verb string|nil
---@return table[]
function Cluster:writes(verb)
  local out = {}
  for _, c in ipairs(self.calls) do
    if verb == nil or c.verb == verb then out[#out + 1] = c end
  end
  return out
end

--- Events recorded with ctx:event (the Event objects).
---@return table[]
function Cluster:events()
  local out = {}
  for _, c in ipairs(self.calls) do
    if c.verb == "CREATE" and c.kind == "Event" and c.result then out[#out + 1] = c.result end
  end
  return out
end

--- Make the next call with `verb` fail with error `err` (e.g. "ECONFLICT").
---@param verb string
---@param err string
function Cluster:fail_next(verb, err)
  self._fail[verb] = err
end

-- backend: cache ---------------------------------------------------------

local function matches_selector(obj, selector)
  if not selector or selector == "" then return true end
  local labels = obj.metadata.labels or {}
  for part in selector:gmatch("[^,]+") do
    local k, op, v = part:match("^%s*([^!=%s]+)%s*([!=]=?)%s*(.-)%s*$")
    if not k then
      if part:match("^%s*!") then
        if labels[part:match("^%s*!%s*(.-)%s*$")] ~= nil then return false end
      elseif labels[part:match("^%s*(.-)%s*$")] == nil then
        return false
      end
    elseif op == "!=" then
      if labels[k] == v then return false end
    elseif labels[k] ~= v then
      return false
    end
  end
  return true
end

function Cluster:get_cached(q)
  local o = self.objects[key(q.api_version, q.kind, q.namespace, q.name)]
  if not o then return nil, "ENOTFOUND" end
  return copy(o)
end

function Cluster:list_cached(q)
  local out, keys = {}, {}
  for k, o in pairs(self.objects) do
    if o.apiVersion == q.api_version and o.kind == q.kind and
        (q.namespace == nil or o.metadata.namespace == q.namespace) and
        matches_selector(o, q.selector) then
      local ok = true
      if q.index == "namespace" then
        ok = o.metadata.namespace == q.value
      elseif q.index == "owner" then
        ok = false
        for _, r in ipairs(o.metadata.ownerReferences or {}) do
          if r.uid == q.value then ok = true end
        end
      elseif q.index then
        error("the fake cluster has no index '" .. q.index .. "'", 3)
      end
      if ok then keys[#keys + 1] = k end
    end
  end
  table.sort(keys)
  for i, k in ipairs(keys) do out[i] = copy(self.objects[k]) end
  return json.array(out)
end

-- backend: API -------------------------------------------------------------

function Cluster:_write(c)
  local k = c.name and key(c.api_version, c.kind, c.namespace, c.name)
  local cur = k and self.objects[k]
  local body = c.body
  if c.verb == "GET" then
    if not cur then return nil, "ENOTFOUND" end
    return copy(cur)
  elseif c.verb == "CREATE" then
    local obj = copy(body)
    local md = obj.metadata
    if not md.name and md.generateName then
      self._uid = self._uid + 1
      md.name = md.generateName .. string.format("%05d", self._uid)
    end
    if not md.name then return nil, "EINVALID", { message = "metadata.name is required" } end
    k = key(obj.apiVersion, obj.kind, md.namespace, md.name)
    if self.objects[k] then return nil, "EEXISTS" end
    self._uid = self._uid + 1
    md.uid = "uid-" .. self._uid
    md.resourceVersion = self:_next_rv()
    md.generation = 1
    md.creationTimestamp = util.now_rfc3339()
    default_object(obj)
    self.objects[k] = obj
    return copy(obj)
  elseif c.verb == "APPLY" then
    local obj
    if cur then
      obj = copy(cur)
      local before = without(obj, "status")
      local patch = copy(body)
      patch.metadata.resourceVersion = nil
      merge(obj, patch)
      if not same(before, without(obj, "status")) then
        obj.metadata.generation = (obj.metadata.generation or 1) + 1
      end
    else
      obj = copy(body)
      self._uid = self._uid + 1
      obj.metadata.uid = "uid-" .. self._uid
      obj.metadata.generation = 1
    end
    obj.metadata.resourceVersion = self:_next_rv()
    default_object(obj)
    self.objects[key(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name)] = obj
    return copy(obj)
  elseif c.verb == "UPDATE" or c.verb == "PATCH" then
    if not cur then return nil, "ENOTFOUND" end
    local obj = copy(cur)
    local new
    if c.verb == "UPDATE" then
      if body.metadata and body.metadata.resourceVersion and
          body.metadata.resourceVersion ~= cur.metadata.resourceVersion then
        return nil, "ECONFLICT"
      end
      new = copy(body)
    else
      if c.patch_type == "json" then
        return nil, "ENOTSUP", { message = "the fake cluster supports merge patches only" }
      end
      local rv = type(body.metadata) == "table" and body.metadata.resourceVersion
      if rv and rv ~= cur.metadata.resourceVersion then return nil, "ECONFLICT" end
      new = merge(copy(cur), body)
    end
    if c.subresource == "status" then
      obj.status = copy(new.status)
    else
      local status = obj.status
      local before = without(obj, "status")
      local md = obj.metadata
      obj = new
      obj.status = status
      obj.metadata.uid, obj.metadata.deletionTimestamp = md.uid, md.deletionTimestamp
      if not same(before.spec, obj.spec) then
        obj.metadata.generation = (md.generation or 1) + 1
      else
        obj.metadata.generation = md.generation
      end
    end
    obj.metadata.resourceVersion = self:_next_rv()
    default_object(obj)
    if obj.metadata.deletionTimestamp and #(obj.metadata.finalizers or {}) == 0 then
      self.objects[k] = nil
    else
      self.objects[k] = obj
    end
    return copy(obj)
  elseif c.verb == "DELETE" then
    if not cur then return nil, "ENOTFOUND" end
    if #(cur.metadata.finalizers or {}) > 0 then
      cur.metadata.deletionTimestamp = cur.metadata.deletionTimestamp or util.now_rfc3339()
      cur.metadata.resourceVersion = self:_next_rv()
    else
      self.objects[k] = nil
    end
    return { kind = "Status", status = "Success" }
  end
  return nil, "EINVAL"
end

function Cluster:call(c)
  local rec = { verb = c.verb, api_version = c.api_version, kind = c.kind,
                namespace = c.namespace, name = c.name, subresource = c.subresource,
                patch_type = c.patch_type, field_manager = c.field_manager, force = c.force,
                body = copy(c.body) }
  self.calls[#self.calls + 1] = rec
  local fail = self._fail[c.verb]
  if fail then
    self._fail[c.verb] = nil
    rec.err = fail
    return nil, fail, { kind = "Status", status = "Failure", reason = fail }
  end
  local r, err, status = self:_write(c)
  rec.result, rec.err = r, err
  return r, err, status
end

function Cluster:log(level, msg, fields)
  local f = {}
  for i = 1, #fields, 2 do f[fields[i]] = fields[i + 1] end
  self.logs[#self.logs + 1] = { level = level, msg = msg, fields = f }
end

-- The context talks to a backend; the cluster is its own backend, with
-- get/list named apart from the test-facing Cluster:get.
local function backend_of(cluster)
  return {
    get = function(_, q) return cluster:get_cached(q) end,
    list = function(_, q) return cluster:list_cached(q) end,
    call = function(_, c) return cluster:call(c) end,
    log = function(_, level, msg, fields) return cluster:log(level, msg, fields) end,
    now = function() return cluster:now() end,
    enqueue = function(_, controller, ns, name, after)
      local kuala = require("kuala")
      if name == nil then
        local c = kuala._by_name[controller]
        for _, o in pairs(cluster.objects) do
          if o.apiVersion == c._watch.api_version and o.kind == c._watch.kind then
            schedule(cluster, controller, { namespace = o.metadata.namespace,
                                            name = o.metadata.name }, 0)
          end
        end
      else
        schedule(cluster, controller, { namespace = ns, name = name }, after)
      end
      return true
    end,
    traceback = function(e)
      if debug and debug.traceback and type(e) == "string" then return debug.traceback(e, 2) end
      return e
    end,
  }
end

--- Delete an object as a user would (kubectl delete): with finalizers it
--- gets a deletionTimestamp, else it is gone. Returns true, or nil,
--- "ENOTFOUND".
---@param type_ string
---@param name string
---@param namespace string|nil
---@return boolean|nil ok
---@return string|nil err
function Cluster:delete(type_, name, namespace)
  local api_version, kind = util.parse_type(type_)
  local r, err = self:_write({ verb = "DELETE", api_version = api_version, kind = kind,
                               namespace = namespace, name = name })
  if not r then return nil, err end
  return true
end

local function event_of(ev)
  if ev.object == nil then error("an event needs {type=, object=[, old=]}", 3) end
  return { type = ev.type or "ADDED", object = ev.object, old = ev.old }
end

--- Whether an event passes the predicates (and namespace/label scoping) of
--- controller `name`'s watch of the object's type. ev = {type = "ADDED"|
--- "MODIFIED"|"DELETED", object=, old=}.
---@param name string
---@param ev table
---@return boolean
function Cluster.passes(_, name, ev)
  local kuala = require("kuala")
  local c = kuala._by_name[name]
  if not c then error("no controller '" .. tostring(name) .. "'", 2) end
  ev = event_of(ev)
  local all = { c._watch }
  for _, w in ipairs(c.owns) do all[#all + 1] = w end
  for _, w in ipairs(c.watches) do all[#all + 1] = w end
  for _, w in ipairs(all) do
    if w.api_version == ev.object.apiVersion and w.kind == ev.object.kind then
      return kuala._passes(c, w, ev)
    end
  end
  return false
end

--- The requests an event enqueues for controller `name`: the primary's
--- own key, the controller owner of owned objects, or what the map
--- function returns (its ctx reads this cluster). Predicates apply.
---@param name string
---@param ev table {type=, object=, old=}
---@return kuala.Request[]
function Cluster:requests(name, ev)
  local kuala = require("kuala")
  local c = kuala._by_name[name]
  if not c then error("no controller '" .. tostring(name) .. "'", 2) end
  ev = event_of(ev)
  local out, seen = {}, {}
  local function add(list)
    for _, r in ipairs(list) do
      local k = (r.namespace or "") .. "/" .. r.name
      if not seen[k] then
        seen[k] = true
        out[#out + 1] = { namespace = r.namespace, name = r.name }
      end
    end
  end
  local function match(w)
    return w.api_version == ev.object.apiVersion and w.kind == ev.object.kind
  end
  if match(c._watch) then add(kuala._requests(name, "watch", ev, backend_of(self))) end
  for i, w in ipairs(c.owns) do
    if match(w) then add(kuala._requests(name, { "owns", i }, ev, backend_of(self))) end
  end
  for i, w in ipairs(c.watches) do
    if match(w) then add(kuala._requests(name, { "watches", i }, ev, backend_of(self))) end
  end
  return out
end

--- Run controller `name`'s reconcile for req = {namespace=, name=}.
--- Returns {requeue_after = n} or nil, err (the error message).
---@param name string
---@param req kuala.Request
---@return table|nil result
---@return string|nil err
function Cluster:reconcile(name, req)
  local kuala = require("kuala")
  local c = kuala._by_name[name]
  if not c then error("no controller '" .. tostring(name) .. "' (did you testing.load it?)", 2) end
  local be = backend_of(self)
  local ok, r = xpcall(ctxlib.run, be.traceback, c, be, req.namespace, req.name)
  if not ok then
    ctxlib.report_failure(c, be, req.namespace, req.name, r)
    return nil, r
  end
  if r > 0 then schedule(self, name, req, r) end
  return { requeue_after = r }
end

--- A context for controller `name` on this cluster (to test helpers that
--- take a ctx).
---@param name string
---@param req kuala.Request
---@return kuala.Context
function Cluster:context(name, req)
  local c = require("kuala")._by_name[name]
  if not c then error("no controller '" .. tostring(name) .. "'", 2) end
  return ctxlib.new(c, backend_of(self), req)
end

--- Forget every declared controller and CRD (fresh registry between tests).
function _M.reset()
  local kuala = require("kuala")
  kuala._controllers, kuala._by_name, kuala._crds = {}, {}, {}
  kuala._permissions = {}
end

--- Reset, then run bundle `dir`'s entry module (default "main") with the
--- bundle's own modules on the path. Returns the kuala module. `dir`
--- defaults to $KUALA_BUNDLE_DIR (set by `kuala test`), else ".".
---@param dir string|nil
---@param entry string|nil
---@return table kuala
function _M.load(dir, entry)
  dir = dir or os.getenv("KUALA_BUNDLE_DIR") or "."
  _M.reset()
  local saved = package.path
  package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
  local fn, err = loadfile(dir .. "/" .. (entry or "main") .. ".lua")
  if not fn then
    package.path = saved
    error(err, 2)
  end
  local ok, e = pcall(fn)
  package.path = saved
  if not ok then error(e, 2) end
  return require("kuala")
end

return _M
