-- WebApp: the example from DESIGN.md. A WebApp owns a Deployment and a
-- Service; its status reports how many replicas are ready, following the
-- Deployment (kuala-apiserver simulates Deployment readiness).
local kuala = require("kuala")
local manifests = require("manifests")

kuala.crd {
  group = "demo.kuala.dev", version = "v1", kind = "WebApp",
  scope = "Namespaced", short_names = { "wa" }, status = true,
  columns = {
    { name = "Image", type = "string", path = ".spec.image" },
    { name = "Ready", type = "integer", path = ".status.readyReplicas" },
    { name = "Phase", type = "string", path = ".status.phase" },
  },
  schema = {
    spec = {
      image = { type = "string", required = true, min_length = 1 },
      replicas = { type = "integer", minimum = 0, maximum = 50, default = 1 },
      port = { type = "integer", minimum = 1, maximum = 65535, default = 8080 },
    },
    status = {
      readyReplicas = "integer",
      phase = { type = "string", enum = { "Pending", "Ready" } },
    },
  },
}

kuala.controller {
  name = "webapp",
  watch = "demo.kuala.dev/v1/WebApp",
  owns = { "apps/v1/Deployment", "v1/Service" },
  predicates = kuala.predicates.generation_changed,
  concurrency = 4,
  reconcile = function(ctx, req)
    local app = ctx:get(req)
    if not app then return end -- deleted: owned objects go with it (GC)
    local _, err = ctx:apply(manifests.deployment(app))
    if err then error("applying the Deployment: " .. err) end
    _, err = ctx:apply(manifests.service(app))
    if err then error("applying the Service: " .. err) end

    local deploy = ctx:get("apps/v1/Deployment", app.metadata.name)
    local ready = deploy and deploy.status and deploy.status.readyReplicas or 0
    local phase = ready >= app.spec.replicas and "Ready" or "Pending"
    local st = app.status or {}
    if st.readyReplicas ~= ready or st.phase ~= phase then
      _, err = ctx:update_status(app, { readyReplicas = ready, phase = phase })
      if err then error("updating status: " .. err) end
      if phase == "Ready" and st.phase ~= "Ready" then
        ctx:event(app, "Normal", "Ready", ready .. " replica(s) ready")
      end
      ctx.log:info("status", { ready = ready, phase = phase })
    end
  end,
}
