-- Fault-suite bundle (tests/integration/faults.sh): a Churn copies
-- spec.message into a ConfigMap it owns and reports it in status, and
-- checks that no key is ever reconciled twice at once: a reconcile that
-- finds its key already in flight logs "OVERLAP", which the suite greps for.
local kuala = require("kuala")

kuala.crd {
  group = "faults.kuala.dev", version = "v1", kind = "Churn",
  scope = "Namespaced", status = true,
  schema = {
    spec = { message = { type = "string", required = true } },
  },
}

local inflight = {}

local function reconcile(ctx, req)
  local obj = ctx:get(req)
  if not obj then return end
  local ok, err = ctx:apply({
    apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = obj.metadata.name .. "-out", namespace = req.namespace },
    data = { message = obj.spec.message },
  })
  if not ok then error("apply failed: " .. tostring(err)) end
  if not obj.status or obj.status.seen ~= obj.spec.message then
    local _, serr = ctx:update_status(obj, { seen = obj.spec.message })
    if serr then error("status update failed: " .. tostring(serr)) end
  end
end

kuala.controller {
  name = "churn",
  watch = "faults.kuala.dev/v1/Churn",
  owns = { "v1/ConfigMap" },
  reconcile = function(ctx, req)
    local key = (req.namespace or "") .. "/" .. req.name
    if inflight[key] then
      ctx.log:error("OVERLAP", { key = key })
    end
    inflight[key] = true
    local ok, err = pcall(reconcile, ctx, req)
    inflight[key] = nil
    if not ok then error(err, 0) end
  end,
}
