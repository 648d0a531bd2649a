-- Replicator: copies a ConfigMap labelled replicator.kuala.dev/replicate=true
-- into every namespace that matches the label selector in its annotation
-- replicator.kuala.dev/namespaces (e.g. "team=a"), keeps the copies in sync,
-- removes a copy when its namespace stops matching, and removes them all
-- when the source goes (a finalizer). It shows:
--   * a Lua index (`by_source`: copies by the source they came from),
--   * map functions that read the cache (a Namespace event enqueues the
--     sources; a copy event finds its source),
--   * idempotence: skip_unchanged applies and no write when all is in sync.
local kuala = require("kuala")
local copies = require("copies")

-- Copies are ConfigMaps it creates, patches (apply) and deletes in other
-- namespaces: beyond what watching ConfigMaps implies (docs/permissions.md).
kuala.permissions { { "v1/ConfigMap", "create,patch,delete" } }

-- Sources are the ConfigMaps labelled replicate=true. The label-selected
-- watch shares the engine's one ConfigMap informer with the cache reads
-- (filtered in the engine), so an event and the ctx:get it starts see the
-- same state; a source whose label goes away still gets a last reconcile.
local function is_source(cm)
  local l = cm and cm.metadata and cm.metadata.labels
  return l ~= nil and l[copies.REPLICATE] == "true"
end

local WATCH = {
  type = "v1/ConfigMap",
  labels = { [copies.REPLICATE] = "true" },
}

kuala.controller {
  name = "replicator",
  watch = WATCH,
  watches = {
    -- A namespace appeared, changed labels or went: every source reconciles
    -- (read from the cache; each decides from its own selector, so a
    -- namespace that stopped matching loses its copy too). Deciding here
    -- from the namespace cache would race with the namespace's own event.
    { type = "v1/Namespace", map = function(_, view)
        local out = {}
        for _, cm in ipairs(view:list(WATCH.type, { all_namespaces = true,
                                                     labels = { [copies.REPLICATE] = "true" } })) do
          out[#out + 1] = { namespace = cm.metadata.namespace, name = cm.metadata.name }
        end
        return out
      end },
    -- A copy was edited or deleted by someone else: its source puts it back.
    { type = "v1/ConfigMap", map = function(cm)
        local req = copies.source_of(cm)
        return req and { req } or {}
      end },
  },
  indexes = {
    by_source = function(cm)
      local l = cm.metadata.labels
      return l and l[copies.SOURCE] and { l[copies.SOURCE] } or {}
    end,
  },

  reconcile = function(ctx, req)
    local src = ctx:get(req)
    if not is_source(src) then return end
    local sel = copies.selector_of(src)
    local want = {}
    if sel then
      for _, ns in ipairs(copies.matching_namespaces(ctx, sel)) do
        if ns ~= src.metadata.namespace then
          want[ns] = true
          local _, err = ctx:apply(copies.copy_of(src, ns),
                                   { owner = false, skip_unchanged = true })
          if err then error("copying into " .. ns .. ": " .. err) end
        end
      end
    end
    -- Copies in namespaces that no longer match.
    for _, cm in ipairs(ctx:list("v1/ConfigMap", { all_namespaces = true, index = "by_source",
                                                   value = copies.key_of(src) })) do
      if not want[cm.metadata.namespace] then
        local _, err = ctx:delete(cm)
        if err then error("removing the copy in " .. cm.metadata.namespace .. ": " .. err) end
      end
    end
  end,

  -- The source is being deleted: remove every copy first — those the cache
  -- knows (index) and, by name, those in every matching namespace (a copy
  -- written a moment ago may not be in the cache yet; deleting a missing
  -- object is fine).
  finalize = function(ctx, src)
    local targets = {}
    for _, cm in ipairs(ctx:list("v1/ConfigMap", { all_namespaces = true, index = "by_source",
                                                   value = copies.key_of(src) })) do
      targets[cm.metadata.namespace] = true
    end
    local sel = copies.selector_of(src)
    if sel then
      for _, ns in ipairs(copies.matching_namespaces(ctx, sel)) do
        if ns ~= src.metadata.namespace then targets[ns] = true end
      end
    end
    for ns in pairs(targets) do
      local _, err = ctx:delete(copies.copy_of(src, ns))
      if err then error("removing the copy in " .. ns .. ": " .. err) end
    end
  end,
}
