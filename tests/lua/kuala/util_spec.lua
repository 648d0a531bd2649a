local util = require("kuala.util")

describe("kuala.util", function()
  it("splits group/version/Kind and core v1/Kind types", function()
    assert.same({ "apps/v1", "Deployment" }, { util.parse_type("apps/v1/Deployment") })
    assert.same({ "v1", "Service" }, { util.parse_type("v1/Service") })
  end)

  it("rejects malformed types with a clear message", function()
    assert.has_error(function() util.parse_type("Deployment") end)
    assert.has_error(function() util.parse_type("apps/v1/deployment") end)
    assert.has_error(function() util.parse_type(42) end)
  end)

  it("flattens fields into sorted string pairs", function()
    assert.same({ "a", "1", "b", "true" }, util.flatten({ b = true, a = 1 }))
    assert.same({}, util.flatten(nil))
  end)

  it("writes RFC 3339 UTC time stamps", function()
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", util.now_rfc3339())
  end)
end)
