-- Converge benchmark bundle (bench/converge_bench.sh): an Echo gets a
-- ConfigMap it owns (server-side apply) and status.echoed, written with a
-- merge patch and only when it differs, as a typical operator does (a PUT
-- of the whole status from a possibly stale cache would conflict and turn
-- the benchmark into a measure of the retry backoff).
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
      data = { message = echo.spec.message },
    })
    if not ok then error("apply failed: " .. tostring(err)) end
    if not echo.status or echo.status.echoed ~= echo.spec.message then
      local _, serr = ctx:patch_status(echo, { echoed = echo.spec.message })
      if serr then error("status patch failed: " .. tostring(serr)) end
      ctx.log:info("echoed", { message = echo.spec.message })
    end
  end,
}
