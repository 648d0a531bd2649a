-- Integration test bundle (sdk_scale.sh): a CRD with the scale
-- subresource declared in the DSL, so `kubectl scale` works on it.
local kuala = require("kuala")

kuala.crd {
  group = "e2e.kuala.dev", version = "v1", kind = "Widget",
  status = { replicas = "integer", selector = "string" },
  scale = { spec = ".spec.replicas", status = ".status.replicas", selector = ".status.selector" },
  schema = { spec = { replicas = { type = "integer", minimum = 0, default = 1 } } },
}
