-- Test bundle for the metrics and leader-election tests: a Tally is
-- reconciled exactly once per generation. spec.mode picks the outcome:
-- "ok" (success), "later" (requeue_after an hour) or "fail" (an error,
-- retried with backoff). status.seen records the generation reconciled.
local kuala = require("kuala")

kuala.crd {
  group = "ops.kuala.dev", version = "v1", kind = "Tally",
  scope = "Namespaced", status = true,
  schema = {
    spec = {
      mode = { type = "string", default = "ok" },
    },
  },
}

kuala.controller {
  name = "tally",
  watch = "ops.kuala.dev/v1/Tally",
  predicates = kuala.predicates.generation_changed,
  reconcile = function(ctx, req)
    local t = ctx:get(req)
    if not t then return end
    if t.spec.mode == "fail" then error("tally asked to fail") end
    local _, err = ctx:update_status(t, { seen = t.metadata.generation })
    if err then error("status update failed: " .. tostring(err)) end
    if t.spec.mode == "later" then return { requeue_after = 3600 } end
  end,
}
