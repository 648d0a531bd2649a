local crd = require("kuala.crd")

local function schema_of(c)
  return c.spec.versions[1].schema.openAPIV3Schema
end

describe("kuala.crd", function()
  local spec = {
    group = "demo.kuala.dev", version = "v1", kind = "WebApp",
    short_names = { "wa" }, status = true,
    columns = { { name = "Image", path = ".spec.image" } },
    schema = {
      spec = {
        image = { type = "string", required = true, pattern = "^[a-z]" },
        replicas = { type = "integer", minimum = 0, maximum = 10, default = 1 },
        mode = { type = "string", enum = { "fast", "safe" } },
        ports = { type = "array", items = { type = "integer" }, max_items = 4 },
        labels = { type = "map", values = "string" },
        extra = { type = "object", preserve_unknown = true },
        tls = { secret = "string", enabled = { type = "boolean", default = false } },
      },
    },
  }

  it("names the CRD plural.group with kind, list kind, plural, singular, short names",
     function()
    local c = crd.build(spec)
    assert.equal("apiextensions.k8s.io/v1", c.apiVersion)
    assert.equal("CustomResourceDefinition", c.kind)
    assert.equal("webapps.demo.kuala.dev", c.metadata.name)
    assert.same({ kind = "WebApp", listKind = "WebAppList", plural = "webapps",
                  singular = "webapp", shortNames = { "wa" } }, c.spec.names)
    assert.equal("Namespaced", c.spec.scope)
  end)

  it("builds a structural schema: types, required, defaults, bounds, enum, pattern", function()
    local s = schema_of(crd.build(spec))
    assert.equal("object", s.type)
    local sp = s.properties.spec
    assert.same({ "image" }, sp.required)
    assert.same({ type = "string", pattern = "^[a-z]" }, sp.properties.image)
    assert.same({ type = "integer", minimum = 0, maximum = 10, default = 1 },
                sp.properties.replicas)
    assert.same({ "fast", "safe" }, sp.properties.mode.enum)
    assert.same({ type = "array", items = { type = "integer" }, maxItems = 4 },
                sp.properties.ports)
    assert.same({ type = "object", additionalProperties = { type = "string" } },
                sp.properties.labels)
    assert.is_true(sp.properties.extra["x-kubernetes-preserve-unknown-fields"])
    assert.equal("object", sp.properties.tls.type)
    assert.equal(false, sp.properties.tls.properties.enabled.default)
    assert.same({ type = "string" }, s.properties.apiVersion)
    assert.same({ type = "object" }, s.properties.metadata)
  end)

  it("adds the status subresource and a preserve-unknown status field", function()
    local c = crd.build(spec)
    local v = c.spec.versions[1]
    assert.is_table(v.subresources.status)
    assert.is_true(schema_of(c).properties.status["x-kubernetes-preserve-unknown-fields"])
    assert.is_true(v.served and v.storage)
  end)

  it("adds printer columns", function()
    local cols = crd.build(spec).spec.versions[1].additionalPrinterColumns
    assert.same({ { name = "Image", type = "string", jsonPath = ".spec.image" } }, cols)
  end)

  it("pluralizes kinds ending in y and s", function()
    assert.equal("policies.x.io",
                 crd.build({ group = "x.io", version = "v1", kind = "Policy" }).metadata.name)
    assert.equal("classes.x.io",
                 crd.build({ group = "x.io", version = "v1", kind = "Class" }).metadata.name)
  end)

  it("supports cluster scope", function()
    local c = crd.build({ group = "x.io", version = "v1alpha1", kind = "Thing", scope = "Cluster" })
    assert.equal("Cluster", c.spec.scope)
    assert.equal("v1alpha1", c.spec.versions[1].name)
  end)

  it("rejects bad declarations with the field path in the message", function()
    local function err_of(s)
      local ok, e = pcall(crd.build, s)
      assert.is_false(ok)
      return e
    end
    assert.matches("group", err_of({ group = "nodot", version = "v1", kind = "A" }))
    assert.matches("version", err_of({ group = "a.b", version = "1", kind = "A" }))
    assert.matches("kind", err_of({ group = "a.b", version = "v1", kind = "lower" }))
    assert.matches("scope", err_of({ group = "a.b", version = "v1", kind = "A", scope = "x" }))
    local base = { group = "a.b", version = "v1", kind = "A" }
    local function with(fields)
      local s = {}
      for k, v in pairs(base) do s[k] = v end
      s.schema = { spec = fields }
      return s
    end
    assert.matches("A.spec.n: unknown type 'int'", err_of(with({ n = { type = "int" } })))
    assert.matches("A.spec.n: minimum needs",
                   err_of(with({ n = { type = "string", minimum = 1 } })))
    assert.matches("A.spec.n: default",
                   err_of(with({ n = { type = "integer", default = "x" } })))
    assert.matches("A.spec.n: enum value",
                   err_of(with({ n = { type = "integer", enum = { "a" } } })))
    assert.matches("A.spec.l: an array needs items", err_of(with({ l = { type = "array" } })))
    assert.matches("unknown key 'requird'",
                   err_of(with({ n = { type = "string", requird = true } })))
  end)
end)
