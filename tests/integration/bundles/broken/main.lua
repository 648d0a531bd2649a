-- A bundle with a syntax error: the engine must name this file and line
-- and keep the other bundles running.
local kuala = require("kuala")

kuala.controller {
  name = "broken",
  watch = "v1/ConfigMap",
  reconcile = function(ctx, req)
    if then return end
  end,
}
