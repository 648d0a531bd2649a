#!/usr/bin/env bash
# End to end: kuala-apiserver + `kuala run` with a healthy and a broken bundle,
# driven with kubectl. Checks that the CRD declared in Lua is installed and
# Established, that a CR is reconciled (owned ConfigMap applied, status
# written), that changes are followed, that the broken bundle is reported
# with its file and line while the healthy one works, and that SIGTERM stops
# the engine cleanly.
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

export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
"$bin/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$KUBECONFIG" >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "^listening on" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
grep -q "^listening on" "$tmp/emu.out" || { cat "$tmp/emu.err"; fail "emulator did not start"; }

"$bin/core/kuala" run --kubeconfig="$KUBECONFIG" "$src/tests/integration/bundles/echo" \
  "$src/tests/integration/bundles/broken" >"$tmp/kuala.log" 2>&1 &
kuala_pid=$!
pids+=($kuala_pid)

# The broken bundle is reported with its file and line.
for _ in $(seq 100); do grep -q "bundle failed to load" "$tmp/kuala.log" && break; sleep 0.1; done
grep "bundle failed to load" "$tmp/kuala.log" | grep -q "main.lua:9" \
  || fail "the broken bundle's error does not name main.lua:9"

# The CRD declared in Lua is installed and Established.
for _ in $(seq 150); do kubectl get crd echos.e2e.kuala.dev >/dev/null 2>&1 && break; sleep 0.2; done
kubectl wait --for=condition=Established crd/echos.e2e.kuala.dev --timeout=30s >/dev/null \
  || fail "CRD not Established"

cat >"$tmp/echo.yaml" <<'YAML'
apiVersion: e2e.kuala.dev/v1
kind: Echo
metadata:
  name: hello
  namespace: default
spec:
  message: hi
YAML
kubectl apply -f "$tmp/echo.yaml" >/dev/null || fail "kubectl apply of the Echo failed"

wait_for() { # wait_for DESCRIPTION COMMAND...: poll for up to 20 s
  local what=$1; shift
  for _ in $(seq 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for $what"
}
cm_is() { [ "$(kubectl get cm hello-echo -o jsonpath='{.data.message}')" = "$1" ]; }
status_is() { [ "$(kubectl get echo hello -o jsonpath='{.status.echoed}')" = "$1" ]; }

wait_for "the owned ConfigMap" cm_is hi
wait_for "status.echoed=hi" status_is hi
# The schema default was applied by the server and seen by the controller.
[ "$(kubectl get cm hello-echo -o jsonpath='{.data.copies}')" = "1" ] || fail "default not applied"
# The ConfigMap is owned by the Echo (controller reference).
owner=$(kubectl get cm hello-echo -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}')
[ "$owner" = "Echo/hello/true" ] || fail "owner reference is '$owner'"

# Changes are followed.
kubectl patch echo hello --type=merge -p '{"spec":{"message":"world"}}' >/dev/null
wait_for "the ConfigMap to follow the change" cm_is world
wait_for "status.echoed=world" status_is world

# The owned ConfigMap is put back when someone deletes it.
kubectl delete cm hello-echo >/dev/null
wait_for "the ConfigMap to come back" cm_is world

# SIGTERM: graceful stop, exit status 0.
kill -TERM "$kuala_pid"
for _ in $(seq 100); do kill -0 "$kuala_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$kuala_pid" 2>/dev/null; then fail "kuala did not stop within 10 s of SIGTERM"; fi
wait "$kuala_pid" || fail "kuala exited with status $?"
grep -q "engine stopping" "$tmp/kuala.log" || fail "no graceful stop in the log"
if grep -q "handles left open" "$tmp/kuala.log"; then fail "uv handles leaked at exit"; fi
echo "engine_e2e: ok"
