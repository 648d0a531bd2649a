-- WebApp: the example from DESIGN.md. A WebApp owns a Deployment and a
-- Service; its status reports how many replicas are ready, following the
-- Deployment (kuala-apiserver simulates Deployment readiness), with a Ready
-- condition. It declares the scale subresource, so `kubectl scale webapp`
-- and a HorizontalPodAutoscaler work on it, and it is idempotent: applies
-- skip what the cache already holds and the status is written only when it
-- changes, so a reconcile with nothing to do sends no request.
local kuala = require("kuala")
local conditions = require("kuala.conditions")
local json = require("kuala.json")
local manifests = require("manifests")

kuala.crd {
  group = "demo.kuala.dev", version = "v1", kind = "WebApp",
  scope = "Namespaced", short_names = { "wa" }, status = true,
  scale = { spec = ".spec.replicas", status = ".status.replicas", selector = ".status.selector" },
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
      env = { type = "map", values = "string",
              description = "environment variables of the web container" },
    },
    status = {
      replicas = "integer",
      readyReplicas = "integer",
      selector = "string",
      phase = { type = "string", enum = { "Pending", "Ready" } },
      observedGeneration = "integer",
      conditions = { type = "array", items = { type = "any" } },
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
    local _, err = ctx:apply(manifests.deployment(app), { skip_unchanged = true })
    if err then error("applying the Deployment: " .. err) end
    _, err = ctx:apply(manifests.service(app), { skip_unchanged = true })
    if err then error("applying the Service: " .. err) end

    local deploy = ctx:get("apps/v1/Deployment", app.metadata.name)
    local ds = deploy and deploy.status or {}
    local ready = ds.readyReplicas or 0
    local phase = ready >= app.spec.replicas and "Ready" or "Pending"
    local before = json.encode(app.status or {})
    local was = app.status and app.status.phase
    app.status = app.status or {}
    app.status.replicas = ds.replicas or 0
    app.status.readyReplicas = ready
    app.status.selector = manifests.selector(app)
    app.status.phase = phase
    app.status.observedGeneration = app.metadata.generation
    conditions.set(app, { type = "Ready", status = phase == "Ready" and "True" or "False",
                          reason = phase == "Ready" and "Available" or "Progressing",
                          message = ready .. "/" .. app.spec.replicas .. " replicas ready" })
    if json.encode(app.status) ~= before then
      _, err = ctx:update_status(app, app.status)
      if err then error("updating status: " .. err) end
      if phase == "Ready" and was ~= "Ready" then
        ctx:event(app, "Normal", "Ready", ready .. " replica(s) ready")
      end
      ctx.log:info("status", { ready = ready, phase = phase })
    end
  end,
}
