#!/usr/bin/env bash
# Fault suite (issue 14 "Keep them closed"): `kuala run` with the faults
# bundle (tests/integration/bundles/faults) reconciles N Churn objects while
# a client keeps changing them and every fault the emulator's admin endpoint
# offers is injected in turn: clean and abrupt watch closes, watch 410s,
# 429 / 500 / targeted 503 errors, latency, a pause, a SIGKILL + restart
# with --data-dir, and finally a restart without it (empty store, revision
# counter back at the start). Afterwards every object's final state must be
# reconciled (its ConfigMap and status carry the last message), no key may
# have been reconciled twice at once (the bundle logs OVERLAP), the engine
# must still run, and the peak API request rate during the storm is printed
# (FAULTS_RESULT line).
#
# Size: KUALA_FAULTS_N objects (default 100) so that it runs in under 2
# minutes on 2 busy cores. KUALA_FAULTS_SOAK_SECONDS=600 adds the soak
# (docs/reliability.md); the suite itself never sets it.
set -uo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
N=${KUALA_FAULTS_N:-100}
for t in jq curl python3 kubectl; do
  command -v $t >/dev/null || { echo "SKIP: needs $t"; exit 77; }
done
tmp=$(mktemp -d /tmp/kuala-faults.XXXXXX)
pids=()
emu_pid=
cleanup() {
  [ -n "${sampler_pid:-}" ] && kill "$sampler_pid" 2>/dev/null
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- kuala log (last 40 lines):"; tail -40 "$tmp/kuala.log" 2>/dev/null
  echo "--- emulator stderr:"; tail -20 "$tmp/emu.err" 2>/dev/null
  exit 1
}
export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
G=/apis/faults.kuala.dev/v1/namespaces/default/churns

start_emu() { # start_emu PORT [args...]
  local port=$1; shift
  : >"$tmp/emu.out"
  "$bin/apiserver/kuala-apiserver" --port "$port" --admin-port 0 --kubeconfig-out "$KUBECONFIG" \
    "$@" >"$tmp/emu.out" 2>>"$tmp/emu.err" &
  emu_pid=$!
  for _ in $(seq 100); do grep -q "^admin listening on" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "^admin listening on" "$tmp/emu.out" || fail "emulator did not start"
  URL=$(sed -n 's/^listening on //p' "$tmp/emu.out")
  ADMIN=$(sed -n 's/^admin listening on //p' "$tmp/emu.out")
  echo "$ADMIN" >"$tmp/admin"
}
kill_emu() {
  kill -9 "$emu_pid" 2>/dev/null
  wait "$emu_pid" 2>/dev/null
  emu_pid=
}
admin() { curl -s -m 5 -o /dev/null -X POST "$ADMIN/faults/$1"; }

# churn MSG: set every object's spec.message (create when missing), 16
# clients in parallel, retrying what the injected faults refuse.
churn() {
  python3 - "$URL$G" "$N" "$1" <<'PY'
import json, sys, time, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, n, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def call(method, u, body, ctype):
    req = urllib.request.Request(u, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return 0
def one(i):
    name = "c%04d" % i
    for _ in range(200):
        c = call("PATCH", url + "/" + name, {"spec": {"message": msg}},
                 "application/merge-patch+json")
        if c == 404:
            c = call("POST", url, {"apiVersion": "faults.kuala.dev/v1", "kind": "Churn",
                                   "metadata": {"name": name}, "spec": {"message": msg}},
                     "application/json")
        if 200 <= c < 300 or c == 409:
            return True
        time.sleep(0.1)
    return False
with ThreadPoolExecutor(16) as ex:
    ok = all(ex.map(one, range(n)))
sys.exit(0 if ok else 1)
PY
}

# converged MSG: every object's ConfigMap and status carry MSG (curl + jq:
# cheaper to start than python on a busy machine).
converged() {
  local churns cms seen out total
  churns=$(curl -s -m 10 "$URL$G") || return 1
  cms=$(curl -s -m 10 "$URL/api/v1/namespaces/default/configmaps") || return 1
  total=$(jq '.items|length' <<<"$churns" 2>/dev/null) || return 1
  seen=$(jq --arg m "$1" '[.items[]|select(.status.seen==$m)]|length' <<<"$churns")
  out=$(jq --arg m "$1" '[.items[]|select((.metadata.name|endswith("-out")) and .data.message==$m)]|length' <<<"$cms")
  echo "status $seen/$N configmaps $out/$N"
  [ "$total" = "$N" ] && [ "$seen" = "$N" ] && [ "$out" = "$N" ]
}
wait_converged() { # wait_converged MSG SECONDS
  local deadline=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if converged "$1" >"$tmp/conv" 2>/dev/null; then return 0; fi
    sleep 1
  done
  fail "not converged on '$1' within $2 s: $(cat "$tmp/conv" 2>/dev/null)"
}

# ---- start: emulator with --data-dir, the engine, the objects ----
DATA="$tmp/data"
mkdir -p "$DATA"
start_emu 0 --data-dir "$DATA" --read-header-timeout 5000
PORT=${URL##*:}
"$bin/core/kuala" run --kubeconfig="$KUBECONFIG" --metrics-bind-address=0 \
  --health-probe-bind-address=0 "$src/tests/integration/bundles/faults" >"$tmp/kuala.log" 2>&1 &
kuala_pid=$!
pids+=($kuala_pid)
for _ in $(seq 150); do kubectl get crd churns.faults.kuala.dev >/dev/null 2>&1 && break; sleep 0.2; done
kubectl wait --for=condition=Established crd/churns.faults.kuala.dev --timeout=30s >/dev/null ||
  fail "the bundle's CRD is not Established"
kubectl get crd churns.faults.kuala.dev -o json | jq 'del(.metadata.uid, .metadata.resourceVersion,
  .metadata.creationTimestamp, .metadata.managedFields, .metadata.generation, .status)' >"$tmp/crd.json"
churn m0 || fail "initial create"
wait_converged m0 90
echo "ok: $N objects reconciled (${SECONDS}s)"

# Peak request rate: sample the emulator's request counter every 0.5 s.
(
  last=""; peak=0
  while :; do
    a=$(cat "$tmp/admin")
    r=$(curl -s -m 1 "$a/faults" | jq -r .requests 2>/dev/null)
    if [ -n "$r" ] && [ "$r" != null ] && [ -n "$last" ] && [ "$r" -ge "$last" ]; then
      rate=$(( (r - last) * 2 ))
      [ "$rate" -gt "$peak" ] && peak=$rate && echo "$peak" >"$tmp/peak"
    fi
    last=$r
    sleep 0.5
  done
) &
sampler_pid=$!

# ---- the storm: one fault per round while the objects change ----
round=0
storm() { # storm DESCRIPTION FAULT-COMMAND...
  round=$((round + 1))
  local what=$1; shift
  "$@"
  churn "m$round" || fail "churn under '$what'"
  sleep 1
  admin reset
  echo "ok: round $round under '$what' (${SECONDS}s)"
}
storm "clean watch closes" admin close-watches
storm "abrupt watch closes" admin "close-watches?abrupt=true"
storm "watch 410s" eval 'admin "watch-410?count=5"; admin close-watches'
storm "429 on 30% of requests" admin "errors?percent=30&code=429"
storm "500 on 20% of requests" admin "errors?percent=20&code=500"
storm "503 on half the PUTs (status writes)" admin "errors?percent=50&code=503&method=PUT"
storm "300 ms latency" admin "latency?ms=300"
storm "a 2 s pause" eval 'admin pause; (sleep 2; admin resume) &'
restart_with_data() {
  kill_emu
  start_emu "$PORT" --data-dir "$DATA" --read-header-timeout 5000
}
storm "SIGKILL + restart with --data-dir" restart_with_data
churn final || fail "final churn"
wait_converged final 120
echo "ok: every object reconciled to its final state after the storm (${SECONDS}s)"

# ---- restart without --data-dir: empty store, revision counter back ----
kill_emu
start_emu "$PORT"
kubectl create -f "$tmp/crd.json" >/dev/null || fail "re-creating the CRD"
kubectl wait --for=condition=Established crd/churns.faults.kuala.dev --timeout=30s >/dev/null
churn after-empty || fail "churn after the empty restart"
wait_converged after-empty 120
echo "ok: reconciled again after a restart with an empty store"

# ---- soak (not in the suite): KUALA_FAULTS_SOAK_SECONDS of churn with a
# fault per round; the engine's RSS and open fds after a 60 s warm-up are
# compared with the end (RSS growth < 5 %, fds flat).
if [ -n "${KUALA_FAULTS_SOAK_SECONDS:-}" ]; then
  cycle=("close-watches" "close-watches?abrupt=true" "errors?percent=20&code=500"
    "latency?ms=100" "errors?percent=30&code=429" "watch-410?count=3")
  rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$kuala_pid/status"; }
  fds() { ls "/proc/$kuala_pid/fd" | wc -l; }
  soak_start=$SECONDS
  end=$((SECONDS + KUALA_FAULTS_SOAK_SECONDS))
  i=0
  rss0=
  while [ "$SECONDS" -lt "$end" ]; do
    admin "${cycle[$((i % ${#cycle[@]}))]}"
    [ "$((i % ${#cycle[@]}))" = 5 ] && admin close-watches
    churn "soak$i" || fail "soak churn $i"
    sleep 2
    admin reset
    i=$((i + 1))
    if [ -z "$rss0" ] && [ $((SECONDS - soak_start)) -ge 60 ]; then
      wait_converged "soak$((i - 1))" 120
      rss0=$(rss_kb) fds0=$(fds)
      echo "soak: warm-up done after $i rounds: rss ${rss0} kB, ${fds0} fds"
    fi
  done
  wait_converged "soak$((i - 1))" 120
  rss1=$(rss_kb) fds1=$(fds)
  rss0=${rss0:-$rss1} fds0=${fds0:-$fds1}
  growth=$(awk -v a="$rss0" -v b="$rss1" 'BEGIN {printf "%.1f", (b - a) * 100 / a}')
  echo "SOAK_RESULT seconds=$KUALA_FAULTS_SOAK_SECONDS rounds=$i updates=$((i * N)) rss_after_warmup_kb=$rss0 rss_end_kb=$rss1 growth_pct=$growth fds_after_warmup=$fds0 fds_end=$fds1"
  awk -v g="$growth" 'BEGIN {exit !(g < 5)}' || fail "RSS grew by $growth % during the soak"
  [ "$fds1" -le $((fds0 + 2)) ] || fail "open fds grew from $fds0 to $fds1"
fi

kill "$sampler_pid" 2>/dev/null
kill -0 "$kuala_pid" 2>/dev/null || fail "the engine died"
if grep -q OVERLAP "$tmp/kuala.log"; then fail "a key was reconciled twice at once"; fi
echo "ok: no key reconciled twice at once"
grep -q "resource version newer than the server's" "$tmp/kuala.log" ||
  echo "note: no informer saw a future resourceVersion (it relisted for another reason)"
echo "FAULTS_RESULT objects=$N peak_requests_per_second=$(cat "$tmp/peak" 2>/dev/null || echo 0) seconds=$SECONDS"
