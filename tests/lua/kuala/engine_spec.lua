-- kuala.engine maps the C primitives (kuala.core) onto the context's
-- backend interface. The C side is replaced here by a stub with the same
-- contract: _call returns (code, json) and errname(code) names the code.
describe("kuala.engine", function()
  local engine, core
  setup(function()
    core = {
      verbs = { GET = 1, CREATE = 2, UPDATE = 3, PATCH = 4, APPLY = 5, DELETE = 6 },
      answers = {},
      errname = function(code) return code == -4404 and "ENOTFOUND" or "EAPI" end,
      json_decode = function(s)
        if s == "bad" then return nil, "invalid JSON" end
        return { decoded = s }
      end,
    }
    function core._call(verb, ...)
      core.last = { verb, ... }
      return unpack(core.answers)
    end
    package.loaded["kuala.core"] = core
    package.loaded["kuala.engine"] = nil
    engine = require("kuala.engine")
  end)
  teardown(function()
    package.loaded["kuala.core"] = nil
    package.loaded["kuala.engine"] = nil
  end)

  it("passes the call fields in order with the numeric verb", function()
    core.answers = { 0, "{}" }
    engine:call({ verb = "APPLY", api_version = "v1", kind = "ConfigMap", namespace = "ns",
                  name = "cm", body = { a = 1 }, field_manager = "ctl", force = true })
    assert.same({ 5, "v1", "ConfigMap", "ns", "cm", nil, { a = 1 }, nil, "ctl", true },
                core.last)
  end)

  it("decodes answers and turns codes into error names with the Status", function()
    core.answers = { 0, "obj" }
    assert.same({ decoded = "obj" }, engine:call({ verb = "GET", api_version = "v1",
                                                   kind = "X" }))
    core.answers = { 0 }
    assert.is_true(engine:call({ verb = "DELETE", api_version = "v1", kind = "X" }))
    core.answers = { -4404, "status" }
    local r, err, status = engine:call({ verb = "GET", api_version = "v1", kind = "X" })
    assert.is_nil(r)
    assert.equal("ENOTFOUND", err)
    assert.same({ decoded = "status" }, status)
    core.answers = { 0, "bad" }
    r, err = engine:call({ verb = "GET", api_version = "v1", kind = "X" })
    assert.is_nil(r)
    assert.equal("EBADMSG", err)
  end)

  it("refuses unknown verbs", function()
    assert.has_error(function() engine:call({ verb = "POST" }) end)
  end)
end)
