#!/usr/bin/env bash
# The switch between versions: `kuala run --watch` on a directory; the old
# version's reconcile is stuck in a slow API call (emulator latency fault).
# An edit loads the new version, whose controller queues the key but does
# not run it while the old reconcile runs (one key never in both versions);
# after --reload-grace-period the old reconcile is cancelled, then the new
# version reconciles the object, long before the slow call would have ended.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
tmp=$(mktemp -d)
pids=()
admin=
cleanup() {
  [ -n "$admin" ] && curl -s -X POST "http://127.0.0.1:$admin/faults/reset" >/dev/null 2>&1
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- kuala log:"; cat "$tmp/kuala.log" || true; exit 1; }
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local n=$(($1 * 5)) what=$2; shift 2
  for _ in $(seq $n); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for $what"
}

export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
"$bin/apiserver/kuala-apiserver" --port 0 --admin-port 0 --kubeconfig-out "$KUBECONFIG" \
  >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
wait_for 10 "the emulator" grep -q "^admin listening on" "$tmp/emu.out"
admin=$(sed -n 's/^admin listening on http:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/emu.out")

b="$tmp/slow"
mkdir -p "$b"
write_bundle() { # write_bundle VERSION SLOW(0|1)
  cat >"$b/main.lua" <<EOF
local kuala = require("kuala")
kuala.permissions { { "v1/ConfigMap", "patch" } }
kuala.crd {
  group = "grace.kuala.dev", version = "v1", kind = "Probe",
  scope = "Namespaced", status = true,
  schema = { spec = { count = { type = "integer" } } },
}
kuala.permissions { { "v1/ConfigMap", "patch" } } -- the slow apply (docs/permissions.md)
kuala.controller {
  name = "slow",
  watch = "grace.kuala.dev/v1/Probe",
  reconcile = function(ctx, req)
    local p = ctx:get(req)
    if not p then return end
    if $2 == 1 then
      local ok, err = ctx:apply({ apiVersion = "v1", kind = "ConfigMap",
        metadata = { name = "slow-" .. req.name, namespace = req.namespace },
        data = { at = "reconcile" } })
      if not ok then error("slow apply: " .. tostring(err)) end
    end
    local _, err = ctx:update_status(p, { version = "$1" })
    if err then error("status: " .. tostring(err)) end
  end,
}
EOF
}
write_bundle v1 1

"$bin/core/kuala" run --kubeconfig="$KUBECONFIG" --watch --reload-grace-period=2 "$b" \
  >"$tmp/kuala.log" 2>&1 &
kuala_pid=$!
pids+=($kuala_pid)
wait_for 20 "engine ready" grep -q "engine ready" "$tmp/kuala.log"

# Every ConfigMap write now takes 30 s.
curl -sf -X POST "http://127.0.0.1:$admin/faults/latency?ms=30000&path=/api/v1/namespaces/default/configmaps&method=PATCH" \
  >/dev/null || fail "cannot set the latency fault"
printf 'apiVersion: grace.kuala.dev/v1\nkind: Probe\nmetadata: {name: p1, namespace: default}\nspec: {count: 1}\n' \
  | kubectl apply -f - >/dev/null
sleep 1 # v1's reconcile is now waiting on its slow apply

start=$(date +%s)
write_bundle v2 0
wait_for 15 "the old reconcile to be cancelled after the grace period" \
  grep -q "grace period over" "$tmp/kuala.log"
status_v2() { [ "$(kubectl get probe p1 -o jsonpath='{.status.version}')" = v2 ]; }
wait_for 15 "v2 to reconcile p1" status_v2
took=$(($(date +%s) - start))
[ $took -lt 25 ] || fail "v2 took ${took}s: it waited for the slow call instead of the grace period"
# Order: the old version drained (cancelled) before the new one went live.
grace_line=$(grep -n "grace period over" "$tmp/kuala.log" | head -1 | cut -d: -f1)
live_line=$(grep -n "bundle reloaded bundle=slow" "$tmp/kuala.log" | head -1 | cut -d: -f1)
[ -n "$live_line" ] && [ "$grace_line" -lt "$live_line" ] \
  || fail "the new version went live (line $live_line) before the old one drained (line $grace_line)"
grep -q "draining the previous version bundle=slow.*running=1" "$tmp/kuala.log" \
  || fail "the drain did not see the running reconcile"

curl -s -X POST "http://127.0.0.1:$admin/faults/reset" >/dev/null
kill -TERM $kuala_pid
rc=0
wait $kuala_pid || rc=$?
[ $rc -eq 0 ] || fail "kuala run exited $rc after SIGTERM"
echo "reload_grace: ok"
