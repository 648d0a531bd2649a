-- Proves the Lua specs run under LuaJIT inside the suite (ctest lua/busted).
describe("the spec runner", function()
  it("runs under LuaJIT", function()
    assert.is_table(jit)
    assert.truthy(jit.version:match("^LuaJIT 2%.1"))
  end)

  it("has 64-bit integers only through FFI, so exact integers above 2^53 need care", function()
    assert.are.equal(2 ^ 53, 2 ^ 53 + 1)
  end)
end)
