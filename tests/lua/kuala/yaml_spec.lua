local yaml = require("kuala.yaml")
local json = require("kuala.json")

describe("kuala.yaml", function()
  it("writes nested maps and lists in block style with apiVersion and kind first", function()
    local out = yaml.encode({ spec = { names = { "a", "b" } }, kind = "X", apiVersion = "v1" })
    assert.equal("apiVersion: v1\nkind: X\nspec:\n  names:\n  - a\n  - b\n", out)
  end)

  it("quotes strings that YAML would read as something else", function()
    local out = yaml.encode({ a = "true", b = "1.5", c = "", d = "x: y", e = "plain" })
    assert.equal('a: "true"\nb: "1.5"\nc: ""\nd: "x: y"\ne: plain\n', out)
  end)

  it("writes lists of maps with the first key after the dash", function()
    local out = yaml.encode({ items = { { name = "a", type = "string" }, { name = "b" } } })
    assert.equal("items:\n- name: a\n  type: string\n- name: b\n", out)
  end)

  it("keeps empty objects and arrays apart", function()
    assert.equal("a: {}\nb: []\n", yaml.encode({ a = json.object(), b = json.array() }))
  end)

  it("writes numbers and booleans plainly", function()
    assert.equal("a: 1\nb: 2.5\nc: false\n", yaml.encode({ a = 1, b = 2.5, c = false }))
  end)
end)
