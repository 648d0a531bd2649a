#!/usr/bin/env bash
# Leader election with two `kuala run --leader-elect` replicas on one
# kuala-apiserver (127.0.0.1), with short test durations (lease 4 s, renew
# deadline 3 s, retry period 0.5 s):
#  - exactly one replica leads; only it reconciles (the standby's
#    reconcile counters stay 0 while its cache holds every object);
#  - kill -9 of the leader: the standby takes over within the lease
#    duration plus a few retry periods and reconciles new objects without
#    relisting (its informer relist counter stays 1);
#  - SIGTERM of that leader releases the Lease: a third replica takes over
#    at its next attempt, about two retry periods (bounded here at 3 s);
#  - the last replica's SIGTERM leaves the Lease unheld.
# Only bounds are asserted; the measured hand-over times are printed.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
command -v kubectl >/dev/null || { echo "SKIP: kubectl not installed"; exit 77; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$tmp"/kuala-*.log; do echo "--- $f:"; cat "$f"; done
  exit 1
}
poll() { # poll DESCRIPTION SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "timed out after ${secs}s waiting for $what"
}

export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
"$bin/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$KUBECONFIG" \
  >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
poll "the emulator" 10 grep -q "^listening on" "$tmp/emu.out"

declare -A PID METRICS
start_replica() { # start_replica NAME
  "$bin/core/kuala" run --kubeconfig="$KUBECONFIG" --metrics-bind-address=127.0.0.1:0 \
    --health-probe-bind-address=0 --leader-elect --leader-election-id=tally-lock \
    --leader-election-namespace=default --leader-election-lease-duration=4s \
    --leader-election-renew-deadline=3s --leader-election-retry-period=500ms \
    "$src/tests/integration/bundles/tally" >"$tmp/kuala-$1.log" 2>&1 &
  PID[$1]=$!
  pids+=($!)
  poll "the metrics server of $1" 10 grep -q "serving metrics" "$tmp/kuala-$1.log"
  METRICS[$1]=$(sed -n 's/.*serving metrics address=\([^ ]*\).*/\1/p' "$tmp/kuala-$1.log")
}
value() { # value REPLICA 'series'
  curl -sf "http://${METRICS[$1]}/metrics" | awk -v k="$2" '$1 == k { print $2 }'
}
leads() { [ "$(value "$1" 'leader_election_master_status{name="tally-lock"}')" = 1 ]; }
success() { value "$1" 'controller_runtime_reconcile_total{controller="tally",result="success"}'; }
relists() {
  value "$1" 'kuala_informer_relists_total{group="ops.kuala.dev",namespace="",resource="tallies",selector="",version="v1"}'
}
seen() { [ "$(kubectl get tally "$1" -o jsonpath='{.status.seen}')" = 1 ]; }
create() { # create NAME...
  for n in "$@"; do
    printf 'apiVersion: ops.kuala.dev/v1\nkind: Tally\nmetadata: {name: %s, namespace: default}\nspec: {mode: ok}\n---\n' "$n"
  done | kubectl apply -f - >/dev/null || fail "kubectl apply failed"
}
now() { date +%s.%N; }
holder() { kubectl get lease tally-lock -n default -o jsonpath='{.spec.holderIdentity}'; }

start_replica a
poll "replica a to lead" 10 leads a
start_replica b
synced() { [ "$(value b 'kuala_informer_synced{group="ops.kuala.dev",namespace="",resource="tallies",selector="",version="v1"}')" = 1 ]; }
poll "replica b's cache to sync" 20 synced

create t1 t2 t3
for t in t1 t2 t3; do poll "status of $t" 20 seen "$t"; done
sleep 1 # give a wrongly running standby the time to reconcile too
[ "$(success a)" = 3 ] || fail "the leader reconciled $(success a) times, want 3"
[ "$(success b)" = 0 ] || fail "the standby reconciled $(success b) times, want 0"
[ "$(value b 'leader_election_master_status{name="tally-lock"}')" = 0 ] || fail "b claims to lead"
[ "$(value b 'kuala_informer_objects{group="ops.kuala.dev",namespace="",resource="tallies",selector="",version="v1"}')" = 3 ] \
  || fail "the standby's cache is not warm"
echo "ok: only the leader reconciles (a: 3, b: 0); the standby's cache holds all 3"

# kill -9: no release; b must wait for the lease to expire (4 s from the
# moment it last saw the record change) and takes over within a few retries.
{ kill -9 "${PID[a]}" && wait "${PID[a]}"; } 2>/dev/null || true
start=$(now)
poll "replica b to lead after kill -9 of a" 10 leads b
took=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
echo "ok: b leads $took s after kill -9 of the leader (lease 4 s, retry 0.5 s)"
create t4
poll "status of t4 (reconciled by b)" 20 seen t4
[ "$(relists b)" = 1 ] || fail "the new leader relisted (relists=$(relists b))"
# b reconciles every primary when it takes over (as a fresh leader would),
# then t4.
n=$(success b)
[ "$n" -ge 1 ] || fail "b reconciled nothing"
echo "ok: the new leader reconciles ($n) without a relist"

# SIGTERM: b releases the Lease; c (already campaigning, cache warm) takes
# over at its next attempt, i.e. within ~2 retry periods; we allow 3 s.
start_replica c
poll "replica c's cache to sync" 20 sh -c "curl -sf http://${METRICS[c]}/metrics | grep -q '^kuala_informer_synced{group=\"ops.kuala.dev\".* 1$'"
kill -TERM "${PID[b]}"
start=$(now)
poll "replica c to lead after SIGTERM of b" 3 leads c
took=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
grep -q "lease released" "$tmp/kuala-b.log" || fail "b did not release the lease"
wait "${PID[b]}" || fail "b exited with status $?"
echo "ok: c leads $took s after SIGTERM of the leader (release)"
[ "$(kubectl get lease tally-lock -n default -o jsonpath='{.spec.leaseTransitions}')" = 2 ] \
  || fail "leaseTransitions is not 2"
create t5
poll "status of t5 (reconciled by c)" 20 seen t5
case "$(holder)" in *_*) ;; *) fail "holderIdentity '$(holder)' is not hostname_suffix" ;; esac
kill -TERM "${PID[c]}"
wait "${PID[c]}" || fail "c exited with status $?"
[ -z "$(holder)" ] || fail "the lease is still held after the last replica stopped"
echo "ops_leader: ok"
