--- kuala: the Lua SDK for writing Kubernetes controllers.
--
--   local kuala = require("kuala")
--   kuala.crd { group = "demo.kuala.dev", version = "v1", kind = "WebApp", ... }
--   kuala.controller { name = "webapp", watch = "demo.kuala.dev/v1/WebApp",
--                      reconcile = function(ctx, req) ... end }
--
-- See docs/sdk.md. Names starting with `_` are for the engine and the
-- testing helpers, not for controllers.
local json = require("kuala.json")
local util = require("kuala.util")
local crd = require("kuala.crd")
local ctxlib = require("kuala.ctx")
local random = require("kuala.random")
local conditions = require("kuala.conditions")

local _M = {
  null = json.null,
  array = json.array,
  object = json.object,
  random = random,
  uuid = random.uuid,
  conditions = conditions,
  owner_ref = ctxlib.owner_ref,
  _controllers = {},
  _by_name = {},
  _crds = {},
  _permissions = {},
}

-- The engine's backend when running inside the engine, else nil (busted).
local function engine_backend()
  local ok, core = pcall(require, "kuala.core")
  if not ok or type(core) ~= "table" or not core.in_reconcile then return nil end
  return require("kuala.engine")
end

--- Declare a CustomResourceDefinition (see kuala.crd.build for the fields).
---@param spec table
---@return table crd the CRD object
function _M.crd(spec)
  local obj = crd.build(spec)
  for _, c in ipairs(_M._crds) do
    if c.metadata.name == obj.metadata.name then
      error("CRD " .. obj.metadata.name .. " declared twice", 2)
    end
  end
  _M._crds[#_M._crds + 1] = obj
  return obj
end

-- ---- permissions ---------------------------------------------------------

local VERBS = { get = true, list = true, watch = true, create = true, update = true,
                patch = true, delete = true, deletecollection = true, bind = true,
                escalate = true, ["*"] = true }

--- Declare API access beyond what the controllers imply (watched types may
--- be read, owned types written, the primary's status and finalizers
--- updated, Events recorded). Each entry is {type, verbs[, names]}:
---   kuala.permissions { {"v1/Secret", "get,create"},
---                       {"apps/v1/Deployment/scale", "update"},
---                       {"v1/ConfigMap", "get", names = {"settings"}} }
--- The engine refuses anything else (EFORBIDDEN) and `kuala rbac` turns the
--- declarations into RBAC rules. See docs/permissions.md.
---@param list table
function _M.permissions(list)
  if type(list) ~= "table" then
    error("kuala.permissions needs a list of {\"group/version/Kind\", \"verbs\"}", 2)
  end
  for i, p in ipairs(list) do
    if type(p) ~= "table" or type(p[1]) ~= "string" or type(p[2]) ~= "string" then
      error("kuala.permissions entry " .. i ..
            " must be {\"group/version/Kind[/subresource]\", \"verb,verb\"}", 2)
    end
    if not (p[1]:match("^[%w.-]+/[A-Z][%w]*$") or p[1]:match("^[%w.-]+/[A-Z][%w]*/[%w]+$")
            or p[1]:match("^[%w.-]+/[%w.-]+/[A-Z][%w]*$")
            or p[1]:match("^[%w.-]+/[%w.-]+/[A-Z][%w]*/[%w]+$")) then
      error("kuala.permissions entry " .. i .. ": type must look like \"v1/Secret\" or " ..
            "\"apps/v1/Deployment/scale\", got " .. p[1], 2)
    end
    for v in p[2]:gmatch("[^,%s]+") do
      if not VERBS[v] then
        error("kuala.permissions entry " .. i .. ": unknown verb '" .. v .. "'", 2)
      end
    end
    local names = p.names or p[3]
    if type(names) == "string" then
      local t = {}
      for n in names:gmatch("[^,%s]+") do t[#t + 1] = n end
      names = t
    end
    if names ~= nil and type(names) ~= "table" then
      error("kuala.permissions entry " .. i .. ": names must be a list of strings", 2)
    end
    _M._permissions[#_M._permissions + 1] = {
      type = p[1], verbs = p[2], names = names and json.array(names) or nil,
    }
  end
end

--- The kuala.permissions declarations as a JSON array (engine).
---@return string
function _M._permissions_json()
  local s, err = json.encode(json.array(_M._permissions))
  if not s then error(err, 0) end
  return s
end

-- ---- predicates ----------------------------------------------------------

--- Predicates decide whether a watch event enqueues a reconcile. Each is a
--- function(event) -> boolean with event = {type = "ADDED"|"MODIFIED"|
--- "DELETED", object = new, old = previous (MODIFIED only)}.
_M.predicates = {}

--- Pass MODIFIED events only when metadata.generation changed (spec edits);
--- other event types pass.
---@param ev table
---@return boolean
function _M.predicates.generation_changed(ev)
  if ev.type ~= "MODIFIED" or not ev.old then return true end
  local a = ev.old.metadata and ev.old.metadata.generation
  local b = ev.object.metadata and ev.object.metadata.generation
  return a ~= b
end

--- A predicate that passes objects whose labels match all of `labels`.
---@param labels table<string, string>
---@return fun(ev: table): boolean
function _M.predicates.labels(labels)
  if type(labels) ~= "table" then error("predicates.labels needs a table", 2) end
  return function(ev)
    local l = ev.object and ev.object.metadata and ev.object.metadata.labels or {}
    for k, v in pairs(labels) do
      if l[k] ~= v then return false end
    end
    return true
  end
end

-- ---- controllers ---------------------------------------------------------

local function norm_watch(w, what, level)
  if type(w) == "string" then w = { type = w } end
  if type(w) ~= "table" or type(w.type) ~= "string" then
    error(what .. " must be a type string such as 'apps/v1/Deployment' or {type = ...}",
          level)
  end
  local api_version, kind = util.parse_type(w.type)
  local preds = w.predicates or {}
  if type(preds) == "function" then preds = { preds } end
  for i, p in ipairs(preds) do
    if type(p) ~= "function" then
      error(what .. ": predicate " .. i .. " is not a function", level)
    end
  end
  if w.map ~= nil and type(w.map) ~= "function" then
    error(what .. ": map must be a function(obj) returning requests", level)
  end
  return { type = w.type, api_version = api_version, kind = kind, predicates = preds,
           map = w.map, namespace = w.namespace, labels = w.labels }
end

--- Declare a controller.
---
--- Fields: name (unique, also the field manager), watch (primary type,
--- "group/version/Kind" or {type=, predicates=, namespace=, labels=}),
--- owns (list of owned types, mapped through controller ownerReferences),
--- watches (extra {type=, map=function(obj, ctx) -> {{namespace=, name=}, ...}};
--- ctx is a read-only cache view), reads (types the reconcile reads: their
--- caches start with the controller), indexes ({name = function(obj) ->
--- {values}} for ctx:list(type, {index = name, value = v})),
--- predicates (for the primary), namespace / labels (scoping), concurrency,
--- reconcile(ctx, req) -> nil | {requeue_after = s} (error -> backoff),
--- finalize(ctx, obj) (adds/removes the finalizer `finalizer`, default
--- "<name>.kuala.dev/finalizer").
---@param spec table
---@return table controller the normalized controller
function _M.controller(spec)
  if type(spec) ~= "table" then error("kuala.controller needs a table", 2) end
  local name = spec.name
  if type(name) ~= "string" or not name:match("^[a-z0-9][a-z0-9.-]*$") then
    error("controller name must be a lowercase DNS-like string, got " .. tostring(name), 2)
  end
  if _M._by_name[name] then error("controller '" .. name .. "' declared twice", 2) end
  if type(spec.reconcile) ~= "function" then
    error("controller '" .. name .. "' needs reconcile = function(ctx, req)", 2)
  end
  if spec.finalize ~= nil and type(spec.finalize) ~= "function" then
    error("controller '" .. name .. "': finalize must be a function(ctx, obj)", 2)
  end
  local watch = norm_watch(spec.watch, "controller '" .. name .. "' watch", 3)
  if spec.predicates then
    local extra = spec.predicates
    if type(extra) == "function" then extra = { extra } end
    for _, p in ipairs(extra) do
      if type(p) ~= "function" then error("predicates must be functions", 2) end
      watch.predicates[#watch.predicates + 1] = p
    end
  end
  local owns = {}
  for i, t in ipairs(spec.owns or {}) do
    owns[i] = norm_watch(t, "controller '" .. name .. "' owns[" .. i .. "]", 3)
  end
  local watches = {}
  for i, w in ipairs(spec.watches or {}) do
    local nw = norm_watch(w, "controller '" .. name .. "' watches[" .. i .. "]", 3)
    if not nw.map then
      error("controller '" .. name .. "' watches[" .. i .. "] needs map = function(obj)", 2)
    end
    watches[i] = nw
  end
  local reads = {}
  for i, t in ipairs(spec.reads or {}) do
    local api_version, kind = util.parse_type(t)
    reads[i] = { type = t, api_version = api_version, kind = kind }
  end
  local indexes = {}
  for iname, fn in pairs(spec.indexes or {}) do
    if type(iname) ~= "string" or not iname:match("^[%a_][%w_.-]*$") then
      error("controller '" .. name .. "': index names are identifiers, got " .. tostring(iname), 2)
    end
    if iname == "namespace" or iname == "owner" or iname == "labels" then
      error("controller '" .. name .. "': index name '" .. iname .. "' is built in", 2)
    end
    if type(fn) ~= "function" then
      error("controller '" .. name .. "': index '" .. iname ..
            "' must be a function(obj) returning a list of strings", 2)
    end
    indexes[iname] = fn
  end
  local conc = spec.concurrency or 1
  if type(conc) ~= "number" or conc < 1 or conc ~= math.floor(conc) then
    error("controller '" .. name .. "': concurrency must be a positive integer", 2)
  end
  local c = {
    name = name,
    _watch = watch,
    owns = owns,
    watches = watches,
    namespace = spec.namespace,
    labels = spec.labels,
    concurrency = conc,
    reconcile = spec.reconcile,
    finalize = spec.finalize,
    finalizer = spec.finalizer or (name .. ".kuala.dev/finalizer"),
    reads = reads,
    indexes = indexes,
  }
  _M._controllers[#_M._controllers + 1] = c
  _M._by_name[name] = c
  -- `reads`: start those caches now, so the first reconcile does not wait
  -- and map functions can read them.
  local be = engine_backend()
  if be then
    for _, r in ipairs(reads) do be:start_cache(r.api_version, r.kind) end
  end
  return c
end

--- Names of the declared controllers (engine).
---@return string[]
function _M._controller_names()
  local out = {}
  for i, c in ipairs(_M._controllers) do out[i] = c.name end
  return out
end

--- Whether a watch event on source `src` ("watch", "owns", "watches") passes
--- the controller's scoping and predicates. Pure: no API calls.
---@param c table
---@param w table normalized watch
---@param ev table
---@return boolean
function _M._passes(c, w, ev)
  local obj = ev.object
  local md = obj and obj.metadata or {}
  local ns = w.namespace or c.namespace
  if ns and md.namespace ~= ns then return false end
  local labels = w.labels or (w == c._watch and c.labels) or nil
  if labels then
    local l = md.labels or {}
    for k, v in pairs(labels) do
      if l[k] ~= v then return false end
    end
  end
  for _, p in ipairs(w.predicates) do
    if not p(ev) then return false end
  end
  return true
end

--- The requests a watch event enqueues for controller `c` (engine and
--- testing). `source` is "watch", {"owns", i} or {"watches", i}.
---@param name string controller name
---@param source string|table
---@param ev table {type=, object=, old=}
---@param backend table|nil the cache the map function's ctx reads
---@return kuala.Request[]
function _M._requests(name, source, ev, backend)
  local c = _M._by_name[name]
  if not c then error("no controller '" .. tostring(name) .. "'", 2) end
  local w
  if source == "watch" then
    w = c._watch
  elseif type(source) == "table" and source[1] == "owns" then
    w = c.owns[source[2]]
  elseif type(source) == "table" and source[1] == "watches" then
    w = c.watches[source[2]]
  end
  if not w then error("unknown watch source", 2) end
  if not _M._passes(c, w, ev) then return {} end
  local md = ev.object.metadata or {}
  if w == c._watch then
    return { { namespace = md.namespace, name = md.name } }
  end
  if w.map then
    local view = backend and ctxlib.view(c, backend, md.namespace) or nil
    local reqs = w.map(ev.object, view) or {}
    if reqs.name then reqs = { reqs } end
    return reqs
  end
  -- owned: the controller owner of the primary type
  for _, r in ipairs(md.ownerReferences or {}) do
    if r.controller and r.kind == c._watch.kind and r.apiVersion == c._watch.api_version then
      return { { namespace = md.namespace, name = r.name } }
    end
  end
  return {}
end

local function watch_list(c)
  local all = { c._watch }
  for _, w in ipairs(c.owns) do all[#all + 1] = w end
  for _, w in ipairs(c.watches) do all[#all + 1] = w end
  return all
end

local function selector_of(labels)
  if not labels then return nil end
  local parts = {}
  for k, v in pairs(labels) do parts[#parts + 1] = k .. "=" .. v end
  table.sort(parts)
  return table.concat(parts, ",")
end

--- The declaration of controller i (1-based) for the engine, as JSON.
---@param i integer
---@return string
function _M._controller_json(i)
  local c = _M._controllers[i]
  if not c then error("no controller #" .. tostring(i), 0) end
  local gen, custom = false, false
  local function decl(w, primary)
    local d = { apiVersion = w.api_version, kind = w.kind,
                namespace = w.namespace or (primary and c.namespace) or nil,
                labels = selector_of(w.labels or (primary and c.labels) or nil) }
    for _, p in ipairs(w.predicates) do
      if primary and p == _M.predicates.generation_changed then gen = true else custom = true end
    end
    return d
  end
  local owns, watches, reads = {}, {}, {}
  for k, w in ipairs(c.owns) do owns[k] = decl(w, false) end
  for k, w in ipairs(c.watches) do watches[k] = decl(w, false) end
  for k, r in ipairs(c.reads or {}) do reads[k] = { apiVersion = r.api_version, kind = r.kind } end
  local out = {
    name = c.name, watch = decl(c._watch, true), owns = json.array(owns),
    watches = json.array(watches), reads = json.array(reads), concurrency = c.concurrency,
    generation_changed = gen, predicate = custom,
  }
  local s, err = json.encode(out)
  if not s then error(err, 0) end
  return s
end

local EVENT_TYPES = { add = "ADDED", update = "MODIFIED", delete = "DELETED" }

--- Engine: whether an event passes the Lua predicates of the watch whose
--- type matches the object (generation_changed on the primary is left to
--- the engine, which applies it natively).
---@param name string
---@param kind_ string "add" | "update" | "delete"
---@param old table|nil
---@param obj table
---@return boolean
function _M._predicate(name, kind_, old, obj)
  local c = _M._by_name[name]
  if not c then error("no controller '" .. tostring(name) .. "'", 0) end
  local ev = { type = EVENT_TYPES[kind_] or kind_, object = obj, old = old }
  for _, w in ipairs(watch_list(c)) do
    if w.api_version == obj.apiVersion and w.kind == obj.kind then
      for _, p in ipairs(w.predicates) do
        if p ~= _M.predicates.generation_changed or w ~= c._watch then
          if not p(ev) then return false end
        end
      end
      return true
    end
  end
  return true
end

--- Engine: the requests the map function of watch `index` (0 = primary,
--- then owns, then watches) returns for obj. When that watch has no map
--- function, the map watch of the object's type is used.
---@param name string
---@param index integer
---@param obj table
---@return kuala.Request[]|nil
function _M._map(name, index, obj)
  local c = _M._by_name[name]
  if not c then return nil end
  local all = watch_list(c)
  local w = all[index + 1]
  if not (w and w.map) then
    w = nil
    for _, x in ipairs(c.watches) do
      if x.api_version == obj.apiVersion and x.kind == obj.kind then w = x end
    end
  end
  if not w then return nil end
  local be = engine_backend()
  local view = be and ctxlib.view(c, be, obj.metadata and obj.metadata.namespace) or nil
  local reqs = w.map(obj, view) or {}
  if reqs.name then reqs = { reqs } end
  return reqs
end

--- Run a reconcile in the engine (called by C inside a coroutine).
---@param name string
---@param ns string|nil
---@param objname string
---@return number requeue_after
function _M._reconcile(name, ns, objname)
  local c = _M._by_name[name]
  if not c then error("no controller '" .. tostring(name) .. "'", 0) end
  return ctxlib.run(c, require("kuala.engine"), ns, objname)
end

--- After a failed reconcile (called by C in its own coroutine): the
--- rate-limited Warning Event on the primary.
---@param name string
---@param ns string|nil
---@param objname string
---@param msg string
function _M._reconcile_failed(name, ns, objname, msg)
  local c = _M._by_name[name]
  if not c then return end
  ctxlib.report_failure(c, require("kuala.engine"), ns, objname, msg)
end

--- Type strings not known offline, as a JSON array of {file, line, type,
--- message} (`kuala check` prints them as warnings). `sources` maps file
--- names to their text; inside the engine the bundle's files are used.
---@param sources table<string, string>|nil
---@return string
function _M._type_warnings(sources)
  if sources == nil then
    local ok, core = pcall(require, "kuala.core")
    if ok and type(core) == "table" and core.bundle_files then sources = core.bundle_files() end
  end
  local w = require("kuala.types").warnings(_M._controllers, _M._crds, sources)
  local s, err = json.encode(json.array(w))
  if not s then error(err, 0) end
  return s
end

--- All declared CRDs as a JSON array (engine).
---@return string
function _M._crds_json()
  local s, err = json.encode(json.array(_M._crds))
  if not s then error(err, 0) end
  return s
end

--- All declared CRDs as a YAML stream (`kuala crd DIR`).
---@return string
function _M._crds_yaml()
  local yaml = require("kuala.yaml")
  local docs = {}
  for i, c in ipairs(_M._crds) do docs[i] = yaml.encode(c) end
  return table.concat(docs, "---\n")
end

return _M
