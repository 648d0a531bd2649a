#!/usr/bin/env bash
# Hot reload from ConfigMaps, against kuala-apiserver, driven with kubectl:
#  - `kuala bundle DIR | kubectl apply -f -` ships a bundle that `kuala run`
#    (no directory: ConfigMap sources) loads;
#  - a ConfigMap update brings the new behaviour with no list request;
#  - an update with the same content (same hash) does not reload;
#  - a broken update leaves the old version reconciling, with a Warning
#    Event BundleLoadFailed on the ConfigMap naming file and line;
#  - deleting the ConfigMap stops the bundle's controllers and keeps its
#    CRD and custom resources;
#  - SIGTERM exits 0.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- kuala log:"; cat "$tmp/kuala.log" || true; exit 1; }
wait_for() { # wait_for DESCRIPTION COMMAND...: poll for up to 20 s
  local what=$1; shift
  for _ in $(seq 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for $what"
}

export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
"$bin/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$KUBECONFIG" >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "^listening on" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
grep -q "^listening on" "$tmp/emu.out" || { cat "$tmp/emu.err"; fail "emulator did not start"; }

# A bundle whose reconcile writes its VERSION and the spec's count to status.
mkdir -p "$tmp/probe/lib"
write_bundle() { # write_bundle VERSION [extra line for main.lua]
  cat >"$tmp/probe/lib/version.lua" <<EOF
return "$1"
EOF
  cat >"$tmp/probe/main.lua" <<EOF
local kuala = require("kuala")
local VERSION = require("lib.version")
kuala.crd {
  group = "reload.kuala.dev", version = "v1", kind = "Probe",
  scope = "Namespaced", status = true,
  schema = { spec = { count = { type = "integer" } } },
}
kuala.controller {
  name = "probe",
  watch = "reload.kuala.dev/v1/Probe",
  reconcile = function(ctx, req)
    local p = ctx:get(req)
    if not p then return end
    local _, err = ctx:update_status(p, { version = VERSION, seen = p.spec.count or 0 })
    if err then error("status: " .. tostring(err)) end
  end,
}
${2:-}
EOF
}
ship() { "$bin/core/kuala" bundle "$tmp/probe" --namespace default >"$tmp/cm.yaml" \
  && kubectl apply -f "$tmp/cm.yaml" >/dev/null; }

write_bundle v1
ship || fail "kuala bundle | kubectl apply failed"
grep -q 'lib.version.lua:' "$tmp/cm.yaml" || fail "lib/version.lua is not the key lib.version.lua"
grep -q 'kuala.dev/bundle-hash: "sha256:' "$tmp/cm.yaml" || fail "no hash annotation"

"$bin/core/kuala" run --kubeconfig="$KUBECONFIG" --reload-grace-period=5 \
  --metrics-bind-address=127.0.0.1:0 --health-probe-bind-address=0 >"$tmp/kuala.log" 2>&1 &
kuala_pid=$!
pids+=($kuala_pid)
wait_for "engine ready" grep -q "engine ready" "$tmp/kuala.log"
grep -q "bundle running bundle=probe" "$tmp/kuala.log" || fail "the ConfigMap bundle is not running"

probe() { # probe COUNT
  printf 'apiVersion: reload.kuala.dev/v1\nkind: Probe\nmetadata: {name: p1, namespace: default}\nspec: {count: %s}\n' "$1" \
    | kubectl apply -f - >/dev/null
}
status_is() { [ "$(kubectl get probe p1 -o jsonpath='{.status.version}/{.status.seen}')" = "$1" ]; }
probe 1
wait_for "v1 to reconcile" status_is v1/1

# 1. A ConfigMap update → the new behaviour, with no list request.
lists_before=$(grep "bundle running bundle=probe" "$tmp/kuala.log" | sed -n 's/.*list_requests=\([0-9]*\).*/\1/p')
write_bundle v2
ship
wait_for "v2 to reconcile the existing object" status_is v2/1
wait_for "the reload log line" grep -q "bundle reloaded bundle=probe" "$tmp/kuala.log"
lists_after=$(grep "bundle reloaded bundle=probe" "$tmp/kuala.log" | tail -1 | sed -n 's/.*list_requests=\([0-9]*\).*/\1/p')
[ -n "$lists_before" ] && [ "$lists_before" = "$lists_after" ] \
  || fail "list requests went from '$lists_before' to '$lists_after' across the reload"
wait_for "a BundleLoaded event" sh -c \
  "kubectl get events -n default --field-selector reason=BundleLoaded -o name | grep -q ."
probe 2
wait_for "v2 to follow a change" status_is v2/2

# 2. Same content, new metadata (same hash) → no reload.
loads=$(grep -c "bundle loaded\|new bundle version loaded" "$tmp/kuala.log")
kubectl annotate cm probe -n default touched=yes >/dev/null
kubectl label cm probe -n default extra=1 >/dev/null
sleep 1
[ "$(grep -c "bundle loaded\|new bundle version loaded" "$tmp/kuala.log")" = "$loads" ] \
  || fail "an update with the same content loaded a new version"

# 3. A broken update: the old version keeps reconciling; a Warning Event.
write_bundle v3 'local broken = = 1'
ship
wait_for "the load failure" grep -q "bundle failed to load bundle=probe" "$tmp/kuala.log"
grep "bundle failed to load bundle=probe" "$tmp/kuala.log" | grep -q "main.lua:18" \
  || fail "the failure does not name main.lua:18"
wait_for "a BundleLoadFailed Warning event" sh -c \
  "kubectl get events -n default --field-selector reason=BundleLoadFailed,type=Warning \
     -o jsonpath='{.items[*].message}' | grep -q 'main.lua:18'"
ev_obj=$(kubectl get events -n default --field-selector reason=BundleLoadFailed \
  -o jsonpath='{.items[0].involvedObject.kind}/{.items[0].involvedObject.name}')
[ "$ev_obj" = "ConfigMap/probe" ] || fail "the event is on '$ev_obj', not ConfigMap/probe"
probe 3
wait_for "v2 to keep reconciling after a broken update" status_is v2/3
# /bundles and the metrics say the same.
maddr=$(sed -n 's/.*serving metrics address=\([0-9.]*:[0-9]*\).*/\1/p' "$tmp/kuala.log" | head -1)
[ -n "$maddr" ] || fail "no metrics address logged"
curl -sf "http://$maddr/bundles" >"$tmp/bundles.json" || fail "GET /bundles failed"
python3 - "$tmp/bundles.json" <<'PY' || fail "/bundles: $(cat "$tmp/bundles.json")"
import json, sys
b = [x for x in json.load(open(sys.argv[1])) if x["name"] == "probe"][0]
assert b["source"] == "configmap:default/probe", b
assert b["state"] == "running", b
assert b["hash"].startswith("sha256:"), b
assert b["loads"] == 2, b
assert b["load_errors"] == 1, b
assert "main.lua:18" in b["last_error"], b
assert b["loaded_at"].endswith("Z"), b
assert b["memory_bytes"] > 0, b
PY
curl -sf "http://$maddr/metrics" | grep -E '^kuala_bundle_load_errors_total\{[^}]*bundle="probe"[^}]*\} 1$' >/dev/null \
  || fail "kuala_bundle_load_errors_total for probe is not 1"

# 4. Removing the ConfigMap stops the controllers, keeps the CRD and the CR.
kubectl delete cm probe -n default >/dev/null
wait_for "the removal" grep -q "bundle source removed bundle=probe" "$tmp/kuala.log"
probe 4
sleep 2
status_is v2/3 || fail "a removed bundle still reconciles ($(kubectl get probe p1 -o jsonpath='{.status}'))"
kubectl get crd probes.reload.kuala.dev >/dev/null || fail "the CRD was deleted"
kubectl get probe p1 -n default >/dev/null || fail "the custom resource was deleted"
curl -sf "http://$maddr/bundles" | python3 -c '
import json, sys
b = [x for x in json.load(sys.stdin) if x["name"] == "probe"][0]
assert b["state"] == "removed", b' || fail "/bundles does not say removed"

# 5. Shipping it again brings it back (a fresh version, same name).
write_bundle v5
ship
wait_for "v5 after re-adding the bundle" status_is v5/4
# Removal released the bundle's informers: coming back lists again.
lists_readd=$(grep -E "bundle (running|reloaded) bundle=probe" "$tmp/kuala.log" | tail -1 | sed -n 's/.*list_requests=\([0-9]*\).*/\1/p')
[ "$lists_readd" -gt "$lists_after" ] \
  || fail "no new list after re-adding a removed bundle ($lists_after -> $lists_readd): informers kept"

kill -TERM $kuala_pid
rc=0
wait $kuala_pid || rc=$?
[ $rc -eq 0 ] || fail "kuala run exited $rc after SIGTERM"
grep -q "handles left open" "$tmp/kuala.log" && fail "handles left open at exit"
echo "reload_configmap: ok"
