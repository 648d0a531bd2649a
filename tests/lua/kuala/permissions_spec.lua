-- kuala.permissions: the declarations the engine enforces and `kuala rbac`
-- turns into RBAC (docs/permissions.md).
local testing = require("kuala.testing")

describe("kuala.permissions", function()
  local kuala
  before_each(function()
    testing.reset()
    kuala = require("kuala")
  end)

  it("records types, verbs and optional names for the engine", function()
    kuala.permissions {
      { "v1/Secret", "get,list,watch" },
      { "apps/v1/Deployment/scale", "update" },
      { "v1/ConfigMap", "get", names = { "settings" } },
      { "v1/Pod/status", "patch", "a, b" },
    }
    local decl = kuala._permissions
    assert.equal(4, #decl)
    assert.same({ type = "v1/Secret", verbs = "get,list,watch" }, decl[1])
    assert.equal("apps/v1/Deployment/scale", decl[2].type)
    assert.same({ "settings" }, decl[3].names)
    assert.same({ "a", "b" }, decl[4].names)
  end)

  it("starts empty: an undeclaring bundle gets only what its controllers imply", function()
    assert.same({}, kuala._permissions)
  end)

  it("refuses unknown verbs and malformed types with the entry's number", function()
    assert.has_error(function() kuala.permissions { { "v1/Secret", "get,peek" } } end,
                     "kuala.permissions entry 1: unknown verb 'peek'")
    assert.has_error(function()
      kuala.permissions { { "v1/Secret", "get" }, { "secret", "get" } }
    end,
                     "kuala.permissions entry 2: type must look like \"v1/Secret\" or " ..
                     "\"apps/v1/Deployment/scale\", got secret")
    assert.has_error(function() kuala.permissions { "v1/Secret" } end)
  end)
end)
