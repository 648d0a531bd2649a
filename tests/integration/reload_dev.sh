#!/usr/bin/env bash
# `kuala dev` watches its bundle directories: it applies the bundle's
# samples/ itself once ready, an edit (also in a subdirectory) reloads the
# bundle and re-reconciles every object with the new code, a save with a
# syntax error is reported with file and line while the old code keeps
# running, and the next good save goes live.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$tmp/dev.log"; exit 1; }
wait_for() { # wait_for DESCRIPTION COMMAND...: poll for up to 20 s
  local what=$1; shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "timed out waiting for $what"
}

b="$tmp/probe"
mkdir -p "$b/lib" "$b/samples"
echo 'return "v1"' >"$b/lib/version.lua"
cat >"$b/main.lua" <<'EOF'
local kuala = require("kuala")
local VERSION = require("lib.version")
kuala.crd {
  group = "devreload.kuala.dev", version = "v1", kind = "Probe",
  scope = "Namespaced", status = true,
  schema = { spec = { count = { type = "integer" } } },
}
kuala.controller {
  name = "probe",
  watch = "devreload.kuala.dev/v1/Probe",
  reconcile = function(ctx, req)
    local p = ctx:get(req)
    if not p then return end
    local _, err = ctx:update_status(p, { version = VERSION, seen = p.spec.count or 0 })
    if err then error("status: " .. tostring(err)) end
  end,
}
EOF
cat >"$b/samples/probe.yaml" <<'EOF'
apiVersion: devreload.kuala.dev/v1
kind: Probe
metadata:
  name: sample
  namespace: default
spec:
  count: 7
EOF

cd "$tmp"
"$bin/core/kuala" dev --exit-after=90 "$b" >"$tmp/dev.log" 2>&1 &
pid=$!
wait_for "engine ready" grep -q "engine ready" "$tmp/dev.log"
export KUBECONFIG=$(grep -o 'KUBECONFIG=[^ ]*' "$tmp/dev.log" | head -1 | cut -d= -f2)
export KUBECACHEDIR="$tmp/kcache"
status_is() { [ "$(kubectl get probe sample -o jsonpath='{.status.version}/{.status.seen}')" = "$1" ]; }

# The sample was applied by kuala dev itself (no kubectl apply here).
wait_for "the sample to be applied and reconciled" status_is v1/7
grep -q "sample applied" "$tmp/dev.log" || fail "no 'sample applied' line"

# An edit in a subdirectory reloads; the existing object is reconciled again.
echo 'return "v2"' >"$b/lib/version.lua"
wait_for "v2 after the edit" status_is v2/7
grep -q "bundle reloaded bundle=probe" "$tmp/dev.log" || fail "no reload logged"

# A broken save: reported with file and line, v2 keeps reconciling.
cp "$b/main.lua" "$tmp/main.good"
echo 'local x = = 1' >>"$b/main.lua"
wait_for "the load error" grep -q "bundle failed to load bundle=probe" "$tmp/dev.log"
grep "bundle failed to load bundle=probe" "$tmp/dev.log" | grep -q "main.lua:18" \
  || fail "the load error does not name main.lua:18"
kubectl patch probe sample --type=merge -p '{"spec":{"count":8}}' >/dev/null
wait_for "v2 to keep reconciling" status_is v2/8

# The next good save goes live.
cp "$tmp/main.good" "$b/main.lua"
echo 'return "v3"' >"$b/lib/version.lua"
wait_for "v3 after the fix" status_is v3/8

kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ $rc -eq 0 ] || fail "kuala dev exited $rc"
grep -q "handles left open" "$tmp/dev.log" && fail "handles left open at exit"
echo "reload_dev: ok"
