-- Objects a WebApp owns, built from its spec. A bundle's own module:
-- `require("manifests")` loads it from the bundle, nowhere else.
local _M = {}

local function labels(app)
  return { ["app.kubernetes.io/name"] = app.metadata.name,
           ["app.kubernetes.io/managed-by"] = "kuala" }
end

--- The label selector of the WebApp's pods, as a string (status.selector:
--- the scale subresource hands it to autoscalers).
function _M.selector(app)
  local l, keys = labels(app), {}
  for k in pairs(l) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = k .. "=" .. l[k] end
  return table.concat(keys, ",")
end

-- spec.env (a map) as the container's env list, sorted by name so the
-- desired object is the same on every reconcile.
local function env(app)
  local names = {}
  for k in pairs(app.spec.env or {}) do names[#names + 1] = k end
  if #names == 0 then return nil end
  table.sort(names)
  local out = {}
  for i, k in ipairs(names) do out[i] = { name = k, value = app.spec.env[k] } end
  return out
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
          env = env(app),
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
