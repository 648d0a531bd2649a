#!/usr/bin/env bash
# Issue 10, trap 1: a bundle that reads a kind nobody watches (a Secret)
# and creates it when absent must create it exactly once across engine
# restarts. Three `kuala run --exit-after` against one emulator: the
# Secret keeps its uid and password, one PasswordGenerated Event exists,
# and every run did reconcile (status.run changes each time).
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
fail() { echo "FAIL: $*"; echo "--- kuala log:"; cat "$tmp"/kuala*.log || true; exit 1; }

export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
"$bin/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$KUBECONFIG" >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "^listening on" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
grep -q "^listening on" "$tmp/emu.out" || { cat "$tmp/emu.err"; fail "emulator did not start"; }

wait_for() { # wait_for DESCRIPTION COMMAND...: poll for up to 30 s
  local what=$1 until=$((SECONDS + 30)); shift
  while [ $SECONDS -lt $until ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for $what"
}
secret() { kubectl get secret v1-password -o jsonpath="$1"; }
run_of() { kubectl get vault v1 -o jsonpath='{.status.run}'; }
generated() { kubectl get events -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}' | grep -c '^PasswordGenerated$' || true; }

# Run 1: installs the CRD; the Vault is created once it is Established.
"$bin/core/kuala" run --exit-after=8 "${VAULT_BUNDLE:-$src/tests/integration/bundles/vault}" >"$tmp/kuala1.log" 2>&1 &
k=$!
pids+=($k)
wait_for "the Vault CRD" kubectl get crd vaults.e2e.kuala.dev
kubectl wait --for=condition=Established crd/vaults.e2e.kuala.dev --timeout=30s >/dev/null
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: e2e.kuala.dev/v1
kind: Vault
metadata: {name: v1, namespace: default}
spec: {user: alice}
YAML
wait_for "the password Secret" secret '{.metadata.uid}'
wait_for "the first status" run_of
wait "$k" || fail "run 1 did not exit cleanly"
uid=$(secret '{.metadata.uid}')
pw=$(secret '{.data.password}')
last=$(run_of)
[ -n "$uid" ] && [ -n "$pw" ] && [ -n "$last" ] || fail "run 1 left no Secret or status"

for n in 2 3; do
  "$bin/core/kuala" run --exit-after=4 "${VAULT_BUNDLE:-$src/tests/integration/bundles/vault}" >"$tmp/kuala$n.log" 2>&1 &
  k=$!
  pids+=($k)
  wait "$k" || fail "run $n did not exit cleanly"
  now=$(run_of)
  [ "$now" != "$last" ] || fail "run $n did not reconcile the Vault (status.run unchanged)"
  last=$now
  [ "$(secret '{.metadata.uid}')" = "$uid" ] || fail "run $n recreated the Secret"
  [ "$(secret '{.data.password}')" = "$pw" ] || fail "run $n replaced the password"
done
count=$(generated)
[ "$count" = "1" ] || fail "PasswordGenerated $count times (want 1)"
echo "ok: one Secret, one password, three runs"
