-- Objects a WebApp owns, built from its spec. A bundle's own module:
-- `require("manifests")` loads it from the bundle, nowhere else.
local _M = {}

local function labels(app)
  return { ["app.kubernetes.io/name"] = app.metadata.name,
           ["app.kubernetes.io/managed-by"] = "kuala" }
end

function _M.deployment(app)
  return {
    apiVersion = "apps/v1", kind = "Deployment",
    metadata = { name = app.metadata.name, namespace = app.metadata.namespace,
                 labels = labels(app) },
    spec = {
      replicas = app.spec.replicas,
      selector = { matchLabels = labels(app) },
      template = {
        metadata = { labels = labels(app) },
        spec = { containers = { {
          name = "web", image = app.spec.image,
          ports = { { containerPort = app.spec.port } },
        } } },
      },
    },
  }
end

function _M.service(app)
  return {
    apiVersion = "v1", kind = "Service",
    metadata = { name = app.metadata.name, namespace = app.metadata.namespace,
                 labels = labels(app) },
    spec = {
      selector = labels(app),
      ports = { { name = "http", port = 80, targetPort = app.spec.port } },
    },
  }
end

return _M
