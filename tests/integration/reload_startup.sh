#!/usr/bin/env bash
# Resilient startup: `kuala run` started before its API server is reachable
# retries (each attempt logged, with backoff) and converges once the server
# comes up: the CRD is installed, the controller runs, a CR is reconciled.
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
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local n=$(($1 * 5)) what=$2; shift 2
  for _ in $(seq $n); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for $what"
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: later
  cluster: {server: "http://127.0.0.1:$port"}
users:
- name: later
  user: {}
contexts:
- name: later
  context: {cluster: later, user: later}
current-context: later
EOF

"$bin/core/kuala" run --kubeconfig="$KUBECONFIG" "$src/tests/integration/bundles/echo" \
  >"$tmp/kuala.log" 2>&1 &
kuala_pid=$!
pids+=($kuala_pid)

# Nothing listens yet: attempts are logged and retried, the process lives on.
wait_for 15 "a logged retry" grep -q "CRD installation failed.*attempt=2" "$tmp/kuala.log"
kill -0 $kuala_pid || fail "kuala run exited while the API server was unreachable"
grep -q "engine ready" "$tmp/kuala.log" && fail "engine ready before any API server answered"

"$bin/apiserver/kuala-apiserver" --port "$port" >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
wait_for 10 "the emulator" grep -q "^listening on" "$tmp/emu.out"

# The backoff is at most 30 s (plus jitter below it): converge within 45 s.
wait_for 45 "the engine to converge" grep -q "engine ready bundles=1 failed=0 controllers=1" "$tmp/kuala.log"
kubectl get crd echos.e2e.kuala.dev >/dev/null || fail "CRD not installed"
cat <<'YAML' | kubectl apply -f - >/dev/null
apiVersion: e2e.kuala.dev/v1
kind: Echo
metadata: {name: late, namespace: default}
spec: {message: converged}
YAML
wait_for 20 "the Echo to be reconciled" sh -c \
  "[ \"\$(kubectl get cm late-echo -o jsonpath='{.data.message}')\" = converged ]"

kill -TERM $kuala_pid
rc=0
wait $kuala_pid || rc=$?
[ $rc -eq 0 ] || fail "kuala run exited $rc after SIGTERM"
echo "reload_startup: ok"
