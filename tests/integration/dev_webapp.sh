#!/usr/bin/env bash
# `kuala dev` with the example WebApp bundle (the path README command 1
# takes): the emulator child starts, the CRD is installed, a sample WebApp is
# reconciled into a Deployment and a Service, its status follows the
# Deployment's simulated readiness, scaling is followed, and --exit-after
# stops everything cleanly (emulator child and temporary directory gone).
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$tmp/dev.log"; exit 1; }
cd "$src"
"$bin/core/kuala" dev --exit-after=60 controllers/webapp >"$tmp/dev.log" 2>&1 &
pid=$!
for _ in $(seq 150); do grep -q "engine ready" "$tmp/dev.log" && break; sleep 0.1; done
grep -q "controllers running bundles=1 failed=0 crds=1 controllers=1" "$tmp/dev.log" \
  || fail "engine not ready with the webapp bundle"
export KUBECONFIG=$(grep -o 'KUBECONFIG=[^ ]*' "$tmp/dev.log" | head -1 | cut -d= -f2)
export KUBECACHEDIR="$tmp/kcache"
kubectl apply -f controllers/webapp/samples/ >/dev/null
wait_for() {
  local what=$1; shift
  for _ in $(seq 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "timed out waiting for $what"
}
jp() { kubectl get "$1" "$2" -o "jsonpath={$3}"; }
eq() { [ "$(jp "$1" "$2" "$3")" = "$4" ]; }
wait_for "WebApp Ready" eq webapp hello .status.phase Ready
eq deploy hello .spec.replicas 2 || fail "Deployment replicas"
eq deploy hello '.spec.template.spec.containers[0].image' nginx:1.27 || fail "Deployment image"
eq svc hello '.spec.ports[0].targetPort' 8080 || fail "Service targetPort (schema default)"
eq deploy hello '.metadata.ownerReferences[0].name' hello || fail "Deployment owner"
kubectl get events --field-selector reason=Ready -o name | grep -q . || fail "no Ready event"
# Scale: the generation changes, the Deployment follows, status follows it.
kubectl patch webapp hello --type=merge -p '{"spec":{"replicas":3}}' >/dev/null
wait_for "Deployment scaled" eq deploy hello .spec.replicas 3
wait_for "status readyReplicas=3" eq webapp hello .status.readyReplicas 3
# Graceful stop via SIGINT, like Ctrl-C.
dir=$(dirname "$KUBECONFIG")
kill -INT "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "kuala dev did not stop"
wait "$pid" || fail "kuala dev exited with $?"
pid=
[ ! -e "$dir" ] || fail "temporary directory $dir left behind"
if pgrep -f "kuala-apiserver --port 0 --kubeconfig-out $dir" >/dev/null; then
  fail "emulator child still running"
fi
echo "dev_webapp: ok"
