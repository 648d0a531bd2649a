-- kuala.json outside the engine: sentinels, markers and the Lua encoder.
local json = require("kuala.json")

describe("kuala.json", function()
  it("encodes empty tables as objects unless marked as arrays", function()
    assert.equal("{}", json.encode({}))
    assert.equal("[]", json.encode(json.array()))
    assert.equal("{}", json.encode(json.object()))
  end)

  it("encodes null, booleans, integers and floats exactly", function()
    assert.equal('{"a":null,"b":true,"c":3,"d":2.5}',
                 json.encode({ a = json.null, b = true, c = 3, d = 2.5 }))
    assert.equal("9007199254740992", json.encode(2 ^ 53))
  end)

  it("escapes strings", function()
    assert.equal([["a\"b\\c\n"]], json.encode('a"b\\c\n'))
  end)

  it("refuses tables that mix array and object keys, NaN and functions", function()
    local s, err = json.encode({ 1, 2, x = 3 })
    assert.is_nil(s)
    assert.matches("keys must be strings", err)
    assert.is_nil(json.encode(0 / 0))
    assert.is_nil(json.encode(function() end))
  end)

  it("stops at depth 64 instead of looping on a cycle", function()
    local t = {}
    t.self = t
    local s, err = json.encode(t)
    assert.is_nil(s)
    assert.matches("deeper than 64", err)
  end)

  it("tells arrays from objects", function()
    assert.is_true(json.is_array({ 1, 2 }))
    assert.is_true(json.is_array(json.array()))
    assert.is_false(json.is_array({}))
    assert.is_false(json.is_array({ a = 1 }))
  end)

  it("deep-copies values and keeps the markers", function()
    local a = { x = { y = json.array() } }
    local b = json.copy(a)
    assert.are_not.equal(a.x, b.x)
    assert.equal(json.array_mt, getmetatable(b.x.y))
  end)

  it("has no decoder outside the engine and says so", function()
    local v, err = json.decode("{}")
    assert.is_nil(v)
    assert.matches("engine", err)
  end)
end)
