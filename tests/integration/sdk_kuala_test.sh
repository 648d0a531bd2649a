#!/usr/bin/env bash
# Issue 10: testing a controller outside this repository. `cmake --install`
# puts the SDK in <prefix>/share/lua/5.1/kuala/, and `kuala test DIR` runs
# the project's busted specs with that SDK on the path (no .busted file):
# a passing spec passes, a failing one fails the command.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$bin" --prefix "$tmp/inst" >/dev/null || fail "cmake --install"
[ -f "$tmp/inst/share/lua/5.1/kuala/init.lua" ] || fail "SDK not installed in share/lua/5.1/kuala"
[ -f "$tmp/inst/share/lua/5.1/kuala/testing.lua" ] || fail "kuala.testing not installed"

proj="$tmp/project"
mkdir -p "$proj/spec"
cat >"$proj/main.lua" <<'LUA'
local kuala = require("kuala")
kuala.crd { group = "acme.example.com", version = "v1", kind = "Greeting", status = true,
            schema = { spec = { text = { type = "string", default = "hello" } } } }
kuala.controller { name = "greeter", watch = "acme.example.com/v1/Greeting",
  reconcile = function(ctx, req)
    local g = ctx:get(req)
    if not g then return end
    assert(ctx:apply({ apiVersion = "v1", kind = "ConfigMap",
                       metadata = { name = g.metadata.name }, data = { text = g.spec.text } }))
  end }
LUA
cat >"$proj/spec/greeter_spec.lua" <<'LUA'
local testing = require("kuala.testing")
describe("greeter", function()
  it("writes the (defaulted) greeting into a ConfigMap", function()
    testing.load()
    local path = package.searchpath("kuala.testing", package.path)
    assert.truthy(path:find(os.getenv("EXPECT_SDK"), 1, true), path)
    local cluster = testing.cluster():seed({ apiVersion = "acme.example.com/v1",
      kind = "Greeting", metadata = { name = "g", namespace = "default" }, spec = {} })
    assert(cluster:reconcile("greeter", { namespace = "default", name = "g" }))
    assert.equal("hello", cluster:get("v1/ConfigMap", "g", "default").data.text)
  end)
end)
LUA
out=$(cd / && env -u KUALA_SDK_DIR EXPECT_SDK="$tmp/inst/share/lua/5.1" \
      "$tmp/inst/bin/kuala" test "$proj" 2>&1) || { echo "$out"; fail "kuala test failed on a passing spec"; }
echo "$out" | grep -q "1 success" || { echo "$out"; fail "the spec did not run"; }

cat >"$proj/spec/broken_spec.lua" <<'LUA'
describe("broken", function() it("fails", function() assert.equal(1, 2) end) end)
LUA
if (cd / && env -u KUALA_SDK_DIR EXPECT_SDK="$tmp/inst/share/lua/5.1" "$tmp/inst/bin/kuala" test "$proj" >"$tmp/out" 2>&1); then
  cat "$tmp/out"; fail "kuala test passed with a failing spec"
fi
grep -q "1 failure" "$tmp/out" || { cat "$tmp/out"; fail "no failure reported"; }
echo "ok: kuala test with the installed SDK"
