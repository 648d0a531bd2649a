-- Replicator: copies a ConfigMap labelled replicator.kuala.dev/replicate=true
-- into every namespace that matches the label selector in its annotation
-- replicator.kuala.dev/namespaces (e.g. "team=a"), keeps the copies in sync,
-- removes a copy when its namespace stops matching, and removes them all
-- when the source goes (a finalizer). It shows:
--   * a Lua index (`by_source`: copies by the source they came from),
--   * map functions that read the cache (a Namespace event finds the
--     sources whose selector matches it; a copy event finds its source),
--   * idempotence: skip_unchanged applies and no write when all is in sync.
local kuala = require("kuala")
local copies = require("copies")

-- Copies are ConfigMaps it creates, patches (apply) and deletes in other
-- namespaces: beyond what watching ConfigMaps implies (docs/permissions.md).
kuala.permissions { { "v1/ConfigMap", "create,patch,delete" } }

local WATCH = { type = "v1/ConfigMap", labels = { [copies.REPLICATE] = "true" } }

kuala.controller {
  name = "replicator",
  watch = WATCH,
  watches = {
    -- A namespace appeared, changed labels or went: every source whose
    -- selector matches it (read from the cache) reconciles...
    { type = "v1/Namespace", map = function(ns, view)
        local out = {}
        for _, src in ipairs(view:list(WATCH.type, { all_namespaces = true,
                                                      labels = WATCH.labels })) do
          local sel = copies.selector_of(src)
          if sel then
            for _, m in ipairs(view:list("v1/Namespace", { namespace = false, selector = sel })) do
              if m.metadata.name == ns.metadata.name then
                out[#out + 1] = { namespace = src.metadata.namespace, name = src.metadata.name }
              end
            end
          end
        end
        -- ...and every source with a copy there (the namespace may have
        -- stopped matching: that copy has to go).
        for _, cm in ipairs(view:list("v1/ConfigMap", { namespace = ns.metadata.name })) do
          out[#out + 1] = copies.source_of(cm)
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
    if not src then return end
    local sel = copies.selector_of(src)
    local want = {}
    if sel then
      for _, ns in ipairs(ctx:list("v1/Namespace", { namespace = false, selector = sel })) do
        if ns.metadata.name ~= src.metadata.namespace and not ns.metadata.deletionTimestamp then
          want[ns.metadata.name] = true
          local _, err = ctx:apply(copies.copy_of(src, ns.metadata.name),
                                   { owner = false, skip_unchanged = true })
          if err then error("copying into " .. ns.metadata.name .. ": " .. err) end
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

  -- The source is being deleted: remove every copy first.
  finalize = function(ctx, src)
    for _, cm in ipairs(ctx:list("v1/ConfigMap", { all_namespaces = true, index = "by_source",
                                                   value = copies.key_of(src) })) do
      local _, err = ctx:delete(cm)
      if err then error("removing the copy in " .. cm.metadata.namespace .. ": " .. err) end
    end
  end,
}
