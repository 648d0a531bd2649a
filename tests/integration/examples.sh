#!/usr/bin/env bash
# The example operators in controllers/ (webapp, tenant, replicator) run
# together in one `kuala run` against the emulator, from their samples/:
# each converges (WebApp Ready, Tenant provisioned with its namespace,
# quota, limits and admin binding, the replicated ConfigMap copied into the
# matching namespace and following edits and label changes), and each is
# idempotent: reconciles triggered with nothing to change send no write
# (the engine's own rest_client_requests_total counts them).
set -uo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
source "$src/tests/integration/lib/emulator_lib.sh"
command -v kubectl >/dev/null || { echo "SKIP: kubectl is missing"; exit 77; }
emu_start
kpid=
cleanup() { [ -n "$kpid" ] && kill "$kpid" 2>/dev/null; emu_stop; }
trap cleanup EXIT
export KUBECONFIG=$EMU_DIR/kubeconfig KUBECACHEDIR=$EMU_DIR/kcache
log=$EMU_DIR/kuala.log
"$bin/core/kuala" run --kubeconfig="$KUBECONFIG" --metrics-bind-address=127.0.0.1:0 \
  --health-probe-bind-address=0 \
  "$src/controllers/webapp" "$src/controllers/tenant" "$src/controllers/replicator" >"$log" 2>&1 &
kpid=$!
wait_lines "$log" "engine ready" 1 30 || { cat "$log"; fail "engine ready"; finish; exit 1; }
metrics=$(sed -n 's/.*serving metrics address=\([^ ]*\).*/\1/p' "$log" | head -1)

for d in webapp tenant replicator; do
  kubectl apply -f "$src/controllers/$d/samples/" >/dev/null || fail "applying $d's samples"
done
poll() { # poll SECONDS CMD...: until CMD succeeds
  local n=$(($1 * 10)); shift
  for _ in $(seq $n); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
jp() { kubectl get "$@" 2>/dev/null; }
is() { [ "$(jp "$1" "$2" ${3:+-n "$3"} -o "jsonpath={$4}")" = "$5" ]; }

poll 30 is webapp hello default .status.phase Ready
expect_eq "webapp: the sample WebApp is Ready" "$(jp webapp hello -o 'jsonpath={.status.phase}')" "Ready"
expect_eq "webapp: Ready condition" "$(jp webapp hello -o 'jsonpath={.status.conditions[0].status}')" "True"
expect_eq "webapp: spec.env reaches the container" \
  "$(jp deploy hello -o 'jsonpath={.spec.template.spec.containers[0].env[0].value}')" "hello from kuala"
kubectl scale webapp hello --replicas=3 >/dev/null || fail "kubectl scale webapp"
poll 30 is deploy hello default .spec.replicas 3
expect_eq "webapp: kubectl scale (scale subresource) reaches the Deployment" \
  "$(jp deploy hello -o 'jsonpath={.spec.replicas}')" "3"
poll 30 is webapp hello default .status.readyReplicas 3
poll 30 is tenant team-a "" '.status.conditions[0].status' True
expect_eq "tenant: Ready condition" "$(jp tenant team-a -o 'jsonpath={.status.conditions[0].reason}')" "Provisioned"
expect_eq "tenant: namespace owned by the Tenant" \
  "$(jp namespace team-a -o 'jsonpath={.metadata.ownerReferences[0].kind}')" "Tenant"
expect_eq "tenant: quota" "$(jp resourcequota tenant-quota -n team-a -o 'jsonpath={.spec.hard.requests\.cpu}')" "8"
expect_eq "tenant: default limits" \
  "$(jp limitrange tenant-limits -n team-a -o 'jsonpath={.spec.limits[0].default.memory}')" "256Mi"
expect_eq "tenant: admin binding" \
  "$(jp rolebinding tenant-admins -n team-a -o 'jsonpath={.subjects[0].name}')" "team-a-admins"
poll 30 is configmap shared-settings team-b .data.log_level info
expect_eq "replicator: copied into the matching namespace" \
  "$(jp configmap shared-settings -n team-b -o 'jsonpath={.data.log_level}')" "info"

# Idempotence: reconciles with nothing to change send no write. (WebApp
# filters on generation, so its annotation alone starts no reconcile; the
# webapp bundle's own idempotence is in tests/lua/controllers/webapp_spec.lua.)
writes() {
  curl -s "http://$metrics/metrics" |
    awk '/^rest_client_requests_total\{/ && /method="(POST|PUT|PATCH|DELETE)"/ {s += $NF} END {print s + 0}'
}
reconciles() {
  curl -s "http://$metrics/metrics" |
    awk -v c="$1" '$0 ~ "^controller_runtime_reconcile_total\\{controller=\""c"\"" {s += $NF} END {print s + 0}'
}
sleep 2 # let the follow-up reconciles of the writes above settle
w0=$(writes) t0=$(reconciles tenant) r0=$(reconciles replicator)
kubectl annotate tenant team-a example.kuala.dev/touched=1 >/dev/null
kubectl annotate configmap shared-settings example.kuala.dev/touched=1 >/dev/null
kubectl annotate webapp hello example.kuala.dev/touched=1 >/dev/null
poll 20 test "$(reconciles tenant)" -gt "$t0"
poll 20 sh -c "[ \$(curl -s http://$metrics/metrics | grep -c 'controller=\"replicator\"') -gt 0 ]"
for _ in $(seq 50); do [ "$(reconciles tenant)" -gt "$t0" ] && [ "$(reconciles replicator)" -gt "$r0" ] && break; sleep 0.2; done
expect_eq "tenant and replicator reconciled again" \
  "$([ "$(reconciles tenant)" -gt "$t0" ] && [ "$(reconciles replicator)" -gt "$r0" ] && echo yes)" "yes"
sleep 1
expect_eq "idempotent: no write for reconciles with nothing to change" "$(writes)" "$w0"

# Changes still flow: an edit and a namespace that stops matching.
kubectl patch configmap shared-settings --type=merge -p '{"data":{"log_level":"debug"}}' >/dev/null
poll 20 is configmap shared-settings team-b .data.log_level debug
expect_eq "replicator: an edit of the source reaches the copy" \
  "$(jp configmap shared-settings -n team-b -o 'jsonpath={.data.log_level}')" "debug"
kubectl label namespace team-b team=x --overwrite >/dev/null
poll 20 sh -c "! kubectl get configmap shared-settings -n team-b"
expect_eq "replicator: the copy goes when its namespace stops matching" \
  "$(kubectl get configmap shared-settings -n team-b -o name 2>/dev/null)" ""
# The source goes: its finalizer removes the copies first.
kubectl label namespace team-b team=b --overwrite >/dev/null
poll 20 is configmap shared-settings team-b .data.log_level debug
kubectl delete configmap shared-settings --wait=true --timeout=30s >/dev/null
expect_eq "replicator: deleting the source removes its copies" \
  "$(kubectl get configmap shared-settings -n team-b -o name 2>/dev/null)" ""

kill -TERM "$kpid"
wait "$kpid"
expect_eq "SIGTERM: kuala exits 0" "$?" "0"
kpid=
if [ "$FAILS" -gt 0 ]; then tail -40 "$log"; fi
finish
