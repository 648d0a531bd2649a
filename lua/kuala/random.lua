--- kuala.random: entropy from the operating system's CSPRNG (OpenSSL's
--- RAND_bytes inside the engine; /dev/urandom under plain LuaJIT, e.g. in
--- busted specs). Use it for passwords, tokens and names; math.random is
--- seeded from the same source in every VM but is not cryptographic.
local _M = {}

local function source()
  local ok, core = pcall(require, "kuala.core")
  if ok and type(core) == "table" and core.random_bytes then return core.random_bytes end
  return function(n)
    local f = assert(io.open("/dev/urandom", "rb"))
    local s = f:read(n)
    f:close()
    return s
  end
end

local raw

--- n random bytes (a binary string), 0 <= n <= 65536.
---@param n integer
---@return string
function _M.bytes(n)
  if type(n) ~= "number" or n < 0 or n > 65536 or n ~= math.floor(n) then
    error("kuala.random.bytes needs an integer between 0 and 65536", 2)
  end
  raw = raw or source()
  return raw(n)
end

local URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

--- A URL-safe random string of n characters from [A-Za-z0-9_-] (6 bits
--- each; default 32 characters = 192 bits).
---@param n integer|nil
---@return string
function _M.token(n)
  n = n or 32
  if type(n) ~= "number" or n < 1 or n > 65536 or n ~= math.floor(n) then
    error("kuala.random.token needs a length between 1 and 65536", 2)
  end
  local b = _M.bytes(n)
  local out = {}
  for i = 1, n do
    local x = b:byte(i) % 64 -- 256 is a multiple of 64: no bias
    out[i] = URL:sub(x + 1, x + 1)
  end
  return table.concat(out)
end

--- A random (version 4) UUID: "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
---@return string
function _M.uuid()
  local b = { _M.bytes(16):byte(1, 16) }
  b[7] = b[7] % 16 + 64  -- version 4
  b[9] = b[9] % 64 + 128 -- variant 10xx
  local hex = {}
  for i = 1, 16 do hex[i] = string.format("%02x", b[i]) end
  return table.concat(hex, "", 1, 4) .. "-" .. table.concat(hex, "", 5, 6) .. "-" ..
    table.concat(hex, "", 7, 8) .. "-" .. table.concat(hex, "", 9, 10) .. "-" ..
    table.concat(hex, "", 11, 16)
end

return _M
