#!/usr/bin/env bash
# SIGTERM while reconciles wait on a slow API call, against the emulator
# with injected latency on ConfigMap writes:
#  1. --graceful-shutdown-timeout=60: the running reconcile finishes (its
#     ConfigMap is written, result success), no reconcile starts after the
#     stop, exit 0. The same run checks --log-level=debug: one "reconcile
#     start" and one "reconcile end" line per reconcile (with result and
#     duration), "API call" lines and the informers' watch starts.
#  2. --graceful-shutdown-timeout=1 and a call that takes much longer: the
#     reconcile is cancelled after the timeout, exit 0.
#  3. A second SIGTERM exits at once (status 130) without waiting.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
log=$tmp/kuala.log
fail() { echo "FAIL: $*"; echo "--- kuala log:"; cat "$log" 2>/dev/null || true; exit 1; }

export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
"$bin/apiserver/kuala-apiserver" --port 0 --admin-port 0 --kubeconfig-out "$KUBECONFIG" \
  >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "^admin listening on" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
admin=$(sed -n 's/^admin listening on \(http:[^ ]*\)$/\1/p' "$tmp/emu.out")
[ -n "$admin" ] || { cat "$tmp/emu.err"; fail "emulator did not start"; }
latency() { # MS: delay ConfigMap writes (server-side apply is a PATCH)
  curl -fsS -X POST "$admin/faults/latency?ms=$1&method=PATCH&path=/api/v1/namespaces/default/configmaps" >/dev/null \
    || fail "cannot set the latency fault"
}

start_kuala() { # GRACE_SECONDS
  : >"$log"
  "$bin/core/kuala" run --log-level=debug --graceful-shutdown-timeout="$1" \
    "$src/tests/integration/bundles/echo" >"$log" 2>&1 &
  KUALA=$!
  pids+=("$KUALA")
  for _ in $(seq 300); do grep -q "controllers running" "$log" && break; sleep 0.1; done
  grep -q "controllers running" "$log" || fail "kuala run did not become ready"
}

echo_cr() { # NAME
  printf 'apiVersion: e2e.kuala.dev/v1\nkind: Echo\nmetadata:\n  name: %s\n  namespace: default\nspec:\n  message: hi\n' "$1" \
    | kubectl apply -f - >/dev/null || fail "kubectl apply of Echo $1 failed"
}

wait_log() { # PATTERN SECONDS
  for _ in $(seq $(($2 * 10))); do grep -q "$1" "$log" && return 0; sleep 0.1; done
  fail "no '$1' in the log within $2 s"
}

exit_within() { # SECONDS: wait for kuala to exit; sets RC
  for _ in $(seq $(($1 * 10))); do kill -0 "$KUALA" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$KUALA" 2>/dev/null && fail "kuala still runs $1 s after the signal"
  set +e
  wait "$KUALA"
  RC=$?
  set -e
}

count() { grep -c "$1" "$log" || true; }

# 1. In-flight reconciles finish.
start_kuala 60
latency 3000
echo_cr slow
echo_cr queued
wait_log "reconcile start.*key=default/" 30
kill -TERM "$KUALA"
exit_within 60
[ "$RC" -eq 0 ] || fail "exit status $RC after SIGTERM, want 0"
starts=$(count "reconcile start")
ends=$(count "reconcile end.*result=success duration_ms=[0-9.]*")
[ "$starts" -ge 1 ] && [ "$starts" -eq "$ends" ] \
  || fail "reconcile start lines: $starts, successful end lines: $ends"
if grep -q "graceful shutdown timeout\|reconcile failed" "$log"; then
  fail "a reconcile was cut short"
fi
# Nothing started after the stop began.
if sed -n '/engine stopping/,$p' "$log" | grep -q "reconcile start"; then
  fail "a reconcile started after SIGTERM"
fi
# The reconcile that was running wrote its ConfigMap before the exit.
first=$(sed -n 's/.*reconcile start.*key=default\/\([a-z]*\).*/\1/p' "$log" | head -1)
kubectl get cm "$first-echo" >/dev/null 2>&1 || fail "ConfigMap $first-echo missing"
[ "$(count 'API call')" -ge 2 ] || fail "no API call lines at debug level"
[ "$(count 'informer: watch start')" -ge 1 ] || fail "no watch start lines at debug level"
echo "ok: SIGTERM lets $starts running reconcile(s) finish, exit 0; debug lines counted"

# 2. The timeout cancels what still runs.
latency 120000
start_kuala 1 # reconciles every Echo again; each apply now hangs
wait_log "reconcile start.*key=default/" 30
kill -TERM "$KUALA"
exit_within 30
[ "$RC" -eq 0 ] || fail "exit status $RC after the graceful timeout, want 0"
grep -q "graceful shutdown timeout reached" "$log" || fail "no timeout line"
grep -q "reconcile end.*result=error" "$log" || fail "the hanging reconcile did not end"
echo "ok: the graceful timeout cancels a reconcile that does not finish"

# 3. A second signal exits at once.
start_kuala 60
wait_log "reconcile start.*key=default/" 30
kill -TERM "$KUALA"
wait_log "engine stopping" 10
kill -TERM "$KUALA"
exit_within 10
[ "$RC" -eq 130 ] || fail "exit status $RC after a second signal, want 130"
echo "graceful_shutdown: ok"
