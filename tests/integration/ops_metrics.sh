#!/usr/bin/env bash
# Metrics and probes of `kuala run` against kuala-apiserver, all on 127.0.0.1:
#  - /readyz is 500 while the emulator holds every request (admin pause) and
#    200 once the engine started and the caches synced; /healthz is 200;
#  - after a known set of reconciles /metrics carries every documented
#    family with exact counts (4 successes, 1 requeue_after, errors ==
#    reconcile_errors_total), and `promtool check metrics` is clean;
#  - a real Prometheus (Debian's package) scrapes kuala and answers
#    controller_runtime_reconcile_total through its HTTP API.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
for tool in promtool prometheus kubectl curl; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (scripts/deps.sh)"; exit 77; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- kuala log:"; cat "$tmp/kuala.log" 2>/dev/null || true
  echo "--- prometheus log (tail):"; tail -20 "$tmp/prom.log" 2>/dev/null || true
  exit 1
}
# poll DESCRIPTION SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds.
poll() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out after ${secs}s waiting for $what"
}

export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kcache"
"$bin/apiserver/kuala-apiserver" --port 0 --admin-port 0 --kubeconfig-out "$KUBECONFIG" \
  >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
poll "the emulator" 10 grep -q "^admin listening on" "$tmp/emu.out"
admin=$(sed -n 's/^admin listening on \(.*\)$/\1/p' "$tmp/emu.out")

# Hold every API request: the engine cannot start, so it is not ready.
curl -sf -X POST "$admin/faults/pause" >/dev/null || fail "cannot pause the emulator"
"$bin/core/kuala" run --kubeconfig="$KUBECONFIG" --metrics-bind-address=127.0.0.1:0 \
  --health-probe-bind-address=127.0.0.1:0 "$src/tests/integration/bundles/tally" \
  >"$tmp/kuala.log" 2>&1 &
kuala_pid=$!
pids+=($kuala_pid)
poll "the probe server" 10 grep -q "serving health probes" "$tmp/kuala.log"
probes=$(sed -n 's/.*serving health probes address=\([^ ]*\).*/\1/p' "$tmp/kuala.log")
metrics=$(sed -n 's/.*serving metrics address=\([^ ]*\).*/\1/p' "$tmp/kuala.log")
[ -n "$probes" ] && [ -n "$metrics" ] || fail "no probe or metrics address in the log"

code=$(curl -s -o "$tmp/readyz" -w '%{http_code}' "http://$probes/readyz")
[ "$code" = 500 ] || fail "/readyz answered $code while the API server is paused"
grep -q '^\[-\]engine failed' "$tmp/readyz" || fail "/readyz does not name the engine check: $(cat "$tmp/readyz")"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$probes/healthz")
[ "$code" = 200 ] || fail "/healthz answered $code while the loop runs"
sleep 1
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$probes/readyz")
[ "$code" = 500 ] || fail "/readyz answered $code a second later, still paused"
echo "ok: /readyz is 500 while the API server is paused, /healthz 200"

curl -sf -X POST "$admin/faults/resume" >/dev/null || fail "cannot resume the emulator"
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$probes/readyz")" = 200 ]; }
poll "/readyz to turn 200" 30 ready
curl -s "http://$probes/readyz?verbose" >"$tmp/readyz"
grep -q '^\[+\]caches ok' "$tmp/readyz" || fail "verbose /readyz: $(cat "$tmp/readyz")"
grep -q '^readyz check passed' "$tmp/readyz" || fail "verbose /readyz: $(cat "$tmp/readyz")"
echo "ok: /readyz 200 once synced, with per-check detail"

# A known set of reconciles.
for i in 1 2 3 4; do
  printf 'apiVersion: ops.kuala.dev/v1\nkind: Tally\nmetadata: {name: ok%s, namespace: default}\nspec: {mode: ok}\n' "$i"
  echo "---"
done >"$tmp/tallies.yaml"
printf 'apiVersion: ops.kuala.dev/v1\nkind: Tally\nmetadata: {name: later, namespace: default}\nspec: {mode: later}\n---\n' >>"$tmp/tallies.yaml"
printf 'apiVersion: ops.kuala.dev/v1\nkind: Tally\nmetadata: {name: bad, namespace: default}\nspec: {mode: fail}\n' >>"$tmp/tallies.yaml"
kubectl apply -f "$tmp/tallies.yaml" >/dev/null || fail "kubectl apply of the Tallies failed"
seen() { [ "$(kubectl get tally "$1" -o jsonpath='{.status.seen}')" = 1 ]; }
for t in ok1 ok2 ok3 ok4 later; do poll "status of $t" 30 seen "$t"; done

scrape() { curl -sf "http://$metrics/metrics" >"$tmp/metrics"; }
value() { # value 'name{labels}' → the sample's value
  awk -v k="$1" '$1 == k { print $2 }' "$tmp/metrics"
}
success_is() { scrape && [ "$(value 'controller_runtime_reconcile_total{controller="tally",result="success"}')" = 4 ]; }
poll "4 successful reconciles in /metrics" 20 success_is
errors_seen() { scrape && [ "$(value 'controller_runtime_reconcile_total{controller="tally",result="error"}')" -ge 1 ]; }
poll "the failing Tally's errors in /metrics" 20 errors_seen
scrape || fail "cannot scrape /metrics"

expect() { # expect 'series' value
  local got
  got=$(value "$1")
  [ "$got" = "$2" ] || fail "$1 is '$got', want '$2'"
  echo "ok: $1 = $2"
}
expect 'controller_runtime_reconcile_total{controller="tally",result="success"}' 4
expect 'controller_runtime_reconcile_total{controller="tally",result="requeue_after"}' 1
expect 'controller_runtime_reconcile_total{controller="tally",result="requeue"}' 0
errs=$(value 'controller_runtime_reconcile_total{controller="tally",result="error"}')
expect 'controller_runtime_reconcile_errors_total{controller="tally"}' "$errs"
total=$((4 + 1 + errs))
expect 'controller_runtime_reconcile_time_seconds_count{controller="tally"}' "$total"
expect 'controller_runtime_reconcile_time_seconds_bucket{controller="tally",le="+Inf"}' "$total"
expect 'controller_runtime_max_concurrent_reconciles{controller="tally"}' 1
expect 'kuala_informer_objects{group="ops.kuala.dev",namespace="",resource="tallies",selector="",version="v1"}' 6
expect 'kuala_informer_synced{group="ops.kuala.dev",namespace="",resource="tallies",selector="",version="v1"}' 1
expect 'kuala_lua_limit_hits_total{controller="tally",limit="cpu"}' 0
expect 'kuala_bundle_loads_total{bundle="tally"}' 1
expect 'kuala_bundle_load_errors_total{bundle="tally"}' 0
grep -q '^kuala_bundle_info{bundle="tally",.*state="running"} 1$' "$tmp/metrics" \
  || fail "no kuala_bundle_info for the running tally bundle"
mem=$(value 'kuala_bundle_memory_bytes{bundle="tally"}')
[ "${mem:-0}" -gt 0 ] || fail "kuala_bundle_memory_bytes is '$mem'"
curl -sf "http://$metrics/bundles" >"$tmp/bundles.json" || fail "GET /bundles failed"
[ "$(jq -r '.[0].name + " " + .[0].state + " " + (.[0].loads|tostring)' "$tmp/bundles.json")" = "tally running 1" ] \
  || fail "/bundles: $(cat "$tmp/bundles.json")"
echo "ok: /bundles and kuala_bundle_* describe the running bundle"
# The requeue_after key is parked, not queued: the adds are the 6 creates
# plus the failing key's retries (each retry is an add).
retries=$(value 'workqueue_retries_total{name="tally",controller="tally"}')
[ "$retries" -ge "$errs" ] || fail "workqueue_retries_total $retries < errors $errs"
expect 'workqueue_depth{name="tally",controller="tally"}' 0

for fam in controller_runtime_reconcile_total controller_runtime_reconcile_errors_total \
  controller_runtime_reconcile_time_seconds controller_runtime_max_concurrent_reconciles \
  controller_runtime_active_workers workqueue_depth workqueue_adds_total \
  workqueue_queue_duration_seconds workqueue_work_duration_seconds workqueue_retries_total \
  workqueue_unfinished_work_seconds workqueue_longest_running_processor_seconds \
  rest_client_requests_total process_cpu_seconds_total process_resident_memory_bytes \
  process_open_fds process_max_fds process_start_time_seconds process_virtual_memory_bytes \
  kuala_informer_objects kuala_informer_cache_bytes kuala_informer_relists_total \
  kuala_lua_limit_hits_total kuala_bundle_info kuala_bundle_loads_total \
  kuala_bundle_load_errors_total kuala_bundle_memory_bytes; do
  grep -q "^# TYPE $fam " "$tmp/metrics" || fail "no family $fam in /metrics"
done
echo "ok: every documented family is present"
grep -q '^rest_client_requests_total{code="200",host="127.0.0.1:[0-9]*",method="GET"} [1-9]' \
  "$tmp/metrics" || fail "no rest_client_requests_total for GET 200"
grep -q '^rest_client_requests_total{code="200",host="127.0.0.1:[0-9]*",method="PUT"} [1-9]' \
  "$tmp/metrics" || fail "the status writes are not counted as PUT 200"

promtool check metrics <"$tmp/metrics" >"$tmp/promtool.out" 2>&1 \
  || { cat "$tmp/promtool.out"; fail "promtool check metrics found problems"; }
echo "ok: promtool check metrics is clean"

# A real Prometheus, on loopback only, with its own storage and a bounded life.
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/prom.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kuala
    static_configs:
      - targets: ["$metrics"]
YAML
timeout 120 prometheus --config.file="$tmp/prom.yml" --storage.tsdb.path="$tmp/prom-data" \
  --web.listen-address="127.0.0.1:$pport" >"$tmp/prom.log" 2>&1 &
pids+=($!)
query() {
  curl -sf "http://127.0.0.1:$pport/api/v1/query" \
    --data-urlencode 'query=controller_runtime_reconcile_total{job="kuala",controller="tally",result="success"}' \
    >"$tmp/query.json" &&
    [ "$(jq -r '.data.result[0].value[1]' "$tmp/query.json")" = 4 ]
}
poll "Prometheus to scrape controller_runtime_reconcile_total" 60 query
up() {
  curl -sf "http://127.0.0.1:$pport/api/v1/query" --data-urlencode 'query=up{job="kuala"}' \
    >"$tmp/up.json" && [ "$(jq -r '.data.result[0].value[1]' "$tmp/up.json")" = 1 ]
}
poll "up{job=kuala} == 1" 10 up
echo "ok: Prometheus scraped kuala: controller_runtime_reconcile_total{result=success} = 4"

kill -TERM "$kuala_pid"
for _ in $(seq 100); do kill -0 "$kuala_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$kuala_pid" 2>/dev/null && fail "kuala did not stop within 10 s of SIGTERM"
wait "$kuala_pid" || fail "kuala exited with status $?"
if grep -q "handles left open" "$tmp/kuala.log"; then fail "uv handles leaked at exit"; fi
echo "ops_metrics: ok"
