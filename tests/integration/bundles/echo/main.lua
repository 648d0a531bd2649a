-- End-to-end test bundle: an Echo copies spec.message into a ConfigMap it
-- owns (server-side apply) and reports it in status.
local kuala = require("kuala")

kuala.crd {
  group = "e2e.kuala.dev", version = "v1", kind = "Echo",
  scope = "Namespaced", status = true,
  schema = {
    spec = {
      message = { type = "string", required = true },
      copies = { type = "integer", minimum = 0, default = 1 },
    },
  },
}

kuala.controller {
  name = "echo",
  watch = "e2e.kuala.dev/v1/Echo",
  owns = { "v1/ConfigMap" },
  reconcile = function(ctx, req)
    local echo = ctx:get(req)
    if not echo then return end
    local ok, err = ctx:apply({
      apiVersion = "v1", kind = "ConfigMap",
      metadata = { name = echo.metadata.name .. "-echo", namespace = req.namespace },
      data = { message = echo.spec.message, copies = tostring(echo.spec.copies) },
    })
    if not ok then error("apply failed: " .. tostring(err)) end
    local _, serr = ctx:update_status(echo, { echoed = echo.spec.message })
    if serr then error("status update failed: " .. tostring(serr)) end
    ctx.log:info("echoed", { message = echo.spec.message })
  end,
}
