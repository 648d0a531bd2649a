-- Every ```lua block of docs/sdk.md that follows a "<!-- runnable -->" line
-- runs here (busted's describe/it inside a block work as usual).
local function blocks(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  local out = {}
  for code in text:gmatch("<!%-%- runnable %-%->\n```lua\n(.-)\n```") do out[#out + 1] = code end
  return out
end

describe("docs/sdk.md examples", function()
  local list = blocks("docs/sdk.md")
  it("has runnable examples", function()
    assert.is_true(#list >= 2)
  end)
  for i, code in ipairs(list) do
    local fn = assert(loadstring(code, "=docs/sdk.md example " .. i))
    setfenv(fn, getfenv(1)) -- busted's describe/it/assert
    if code:find("describe(", 1, true) then
      fn() -- an example spec: its describe/it nest here
    else
      it("example " .. i .. " runs", fn)
    end
  end
end)
