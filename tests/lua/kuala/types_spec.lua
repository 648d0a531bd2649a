-- kuala.types: type strings known offline (kuala check's warnings).
local types = require("kuala.types")
local crd = require("kuala.crd")

describe("kuala.types", function()
  local app = crd.build { group = "demo.kuala.dev", version = "v1", kind = "App" }

  it("knows built-in kinds and the bundle's CRDs, suggests close names", function()
    assert.is_true(types.known("apps/v1/Deployment"))
    assert.is_true(types.known("v1/Secret"))
    assert.is_true(types.known("demo.kuala.dev/v1/App", { app }))
    local ok, hint = types.known("apps/v1/Deploymnet")
    assert.is_false(ok)
    assert.equal("apps/v1/Deployment", hint)
    ok, hint = types.known("demo.kuala.dev/v1/Ap", { app })
    assert.is_false(ok)
    assert.equal("demo.kuala.dev/v1/App", hint)
  end)

  it("finds literal type strings in sources with file and line", function()
    local w = types.warnings({}, { app }, {
      ["main.lua"] = "local a = ctx:get('v1/Secret', 'x')\nlocal b = ctx:list(\"v1/Secrte\")\n",
    })
    assert.equal(1, #w)
    assert.same({ "main.lua", 2, "v1/Secrte" }, { w[1].file, w[1].line, w[1].type })
    assert.truthy(w[1].message:find("did you mean 'v1/Secret'", 1, true))
  end)
end)
