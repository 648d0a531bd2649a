#!/usr/bin/env bash
# `kuala crd` on good and bad bundles, through the binary:
#  - the example WebApp bundle prints a CRD that parses as YAML;
#  - bundles with a syntax error, a runtime error, an infinite loop (JIT on),
#    a memory bomb, os.execute, io.open and require "ffi" are each refused
#    with a message naming the bundle, the file and the line, and the
#    command exits 1, while the healthy bundle given with them still prints
#    its CRD.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}/core/kuala
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. The example bundle.
"$bin" crd "$src/controllers/webapp" >"$tmp/webapp.yaml" || fail "kuala crd webapp failed"
grep -q "^kind: CustomResourceDefinition$" "$tmp/webapp.yaml" || fail "no CRD printed"
grep -q "name: webapps.demo.kuala.dev" "$tmp/webapp.yaml" || fail "wrong CRD name"
if python3 -c "import yaml" 2>/dev/null; then
  python3 - "$tmp/webapp.yaml" <<'PY' || fail "the CRD is not valid YAML with the expected shape"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
v = doc["spec"]["versions"][0]
props = v["schema"]["openAPIV3Schema"]["properties"]["spec"]
assert props["required"] == ["image"], props
assert props["properties"]["replicas"]["default"] == 1
assert v["subresources"]["status"] == {}
PY
fi

# 2. Broken bundles beside a healthy one.
mk() { mkdir -p "$tmp/$1"; printf '%s\n' "$2" >"$tmp/$1/main.lua"; }
healthy='local kuala = require("kuala")
kuala.crd { group = "ok.kuala.dev", version = "v1", kind = "Fine" }'
mk healthy "$healthy"
mk syntax 'local kuala = require("kuala")
local x = = 1'
mk runtime 'local t
return t.field'
mk loop 'local n = 0
while true do n = n + 1 end'
# 1 MB strings reach the 64 MiB cap in ~64 iterations, well inside the CPU
# budget even in sanitizer builds.
mk bomb 'local t = {}
for i = 1, 1e9 do t[i] = ("x"):rep(1000000) .. i end'
mk execute 'os.execute("touch '"$tmp"'/pwned")'
mk ioopen 'local f = io.open("/etc/passwd")'
mk ffi '
local ffi = require("ffi")'

check() { # bundle expected-location expected-text
  local out
  set +e
  out=$("$bin" crd "$tmp/$1" "$tmp/healthy" 2>"$tmp/$1.err")
  local rc=$?
  set -e
  [ $rc -eq 1 ] || fail "$1: exit status $rc, want 1"
  grep -qF "bundle $1" "$tmp/$1.err" || fail "$1: bundle not named: $(cat "$tmp/$1.err")"
  grep -qF "$2" "$tmp/$1.err" || fail "$1: no '$2' in: $(cat "$tmp/$1.err")"
  grep -qF "$3" "$tmp/$1.err" || fail "$1: no '$3' in: $(cat "$tmp/$1.err")"
  echo "$out" | grep -q "name: fines.ok.kuala.dev" || fail "$1: the healthy bundle did not print"
  echo "ok: $1: $(head -c 200 "$tmp/$1.err")"
}
check syntax "syntax/main.lua:2:" "unexpected symbol"
check runtime "runtime/main.lua:2:" "attempt to index"
if [ "${KUALA_SANITIZER:-}" = thread ]; then
  # TSan delays signals until the thread calls into libc, which a compiled
  # loop never does, so the CPU budget cannot stop it in TSan builds (see
  # docs/lua-runtime.md); every other build checks it.
  echo "lua_bundles: the runaway-loop case is left out under TSan (signals are deferred)"
else
  check loop "loop/main.lua:2" "CPU budget"
fi
check bomb "memory limit" "loading stopped"
check execute "execute/main.lua:1:" "execute"
check ioopen "ioopen/main.lua:1:" "'io'"
check ffi "ffi/main.lua:2:" "module 'ffi' not found"
[ ! -e "$tmp/pwned" ] || fail "os.execute ran"
echo "lua_bundles: ok"
