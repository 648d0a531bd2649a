#!/usr/bin/env bash
# Issue 10: kuala.crd{scale = {...}} declares the scale subresource, and
# the emulator serves /scale for custom resources: `kubectl scale` changes
# .spec.replicas, the Scale shows .status.replicas and the selector.
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
fail() { echo "FAIL: $*"; exit 1; }

export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
"$bin/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$KUBECONFIG" >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "^listening on" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
grep -q "^listening on" "$tmp/emu.out" || { cat "$tmp/emu.err"; fail "emulator did not start"; }

"$bin/core/kuala" crd "$src/tests/integration/bundles/widget" >"$tmp/crd.yaml" || fail "kuala crd"
grep -q "specReplicasPath: .spec.replicas" "$tmp/crd.yaml" || fail "no scale subresource in the CRD"
kubectl apply -f "$tmp/crd.yaml" >/dev/null || fail "CRD apply"
kubectl wait --for=condition=Established crd/widgets.e2e.kuala.dev --timeout=30s >/dev/null
kubectl apply -f - >/dev/null <<'YAML' || fail "Widget apply"
apiVersion: e2e.kuala.dev/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {replicas: 2}
YAML
gen=$(kubectl get widget w1 -o jsonpath='{.metadata.generation}')
kubectl scale widget/w1 --replicas=5 >/dev/null || fail "kubectl scale"
[ "$(kubectl get widget w1 -o jsonpath='{.spec.replicas}')" = "5" ] || fail "spec.replicas not 5"
[ "$(kubectl get widget w1 -o jsonpath='{.metadata.generation}')" -gt "$gen" ] || fail "generation not bumped"
kubectl patch widget w1 --subresource=status --type=merge \
  -p '{"status":{"replicas":4,"selector":"app=w1"}}' >/dev/null || fail "status patch"
scale=$(kubectl get --raw /apis/e2e.kuala.dev/v1/namespaces/default/widgets/w1/scale)
echo "$scale" | grep -q '"kind":"Scale"' || fail "not a Scale: $scale"
echo "$scale" | grep -q '"replicas":5' || fail "spec.replicas in Scale: $scale"
echo "$scale" | grep -q '"status":{[^}]*"replicas":4' || fail "status.replicas in Scale: $scale"
echo "$scale" | grep -q '"selector":"app=w1"' || fail "selector in Scale: $scale"
# Discovery lists widgets/scale.
kubectl get --raw /apis/e2e.kuala.dev/v1 | grep -q '"widgets/scale"' || fail "no widgets/scale in discovery"
# A kind without scale has no /scale.
if kubectl get --raw /apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.e2e.kuala.dev/scale >/dev/null 2>&1; then
  fail "/scale served for a type without the subresource"
fi
echo "ok: kubectl scale on a custom resource"
