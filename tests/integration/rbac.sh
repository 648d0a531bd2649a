#!/usr/bin/env bash
# Least privilege end to end (issue 11), against kuala-apiserver with static
# tokens and --authorization-mode=RBAC:
#  1. every bundle in controllers/ runs with a token bound to exactly what
#     `kuala rbac` generated for it: its samples are reconciled with zero 403s;
#  2. a bundle that creates a Secret it did not declare gets EFORBIDDEN from
#     the engine (no request sent: the client's request counters show no 403
#     and the emulator logged none); with the declaration but without the
#     RBAC the emulator answers 403 with kube-apiserver's message; both cases
#     leave a clear log line;
#  3. `kubectl auth can-i` agrees with what the emulator does to real
#     requests on a table of cases;
#  4. two bundles in one engine with --impersonate-bundles: each bundle's
#     writes go through its own ServiceAccount, and neither can do the
#     other's work.
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
fail() {
  echo "FAIL: $*"
  for f in "$tmp"/*.log "$tmp"/emu*.err; do
    [ -f "$f" ] && { echo "--- $f:"; tail -40 "$f"; }
  done
  exit 1
}
export KUBECACHEDIR="$tmp/kcache"
NS=kuala-system
ENGINE_USER=system:serviceaccount:$NS:kuala

cat >"$tmp/tokens.csv" <<EOF
admin-token,admin,1,"system:masters"
engine-token,$ENGINE_USER,2
nobody-token,nobody,3
EOF

# emu NAME: start an emulator; sets URL. Its stderr (403 lines) goes to NAME.err.
emu() {
  "$bin/apiserver/kuala-apiserver" --port 0 --tls --kubeconfig-out "$tmp/$1.kubeconfig" \
    --token-auth-file "$tmp/tokens.csv" \
    --authorization-mode=RBAC --deployment-ready-delay 100 --admin-port 0 \
    >"$tmp/$1.out" 2>"$tmp/$1.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "^listening on" "$tmp/$1.out" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^listening on \(.*\)$/\1/p' "$tmp/$1.out")
  [ -n "$URL" ] || fail "emulator $1 did not start"
  # kubectl sends tokens over TLS only: each user's kubeconfig is the
  # emulator's (with its CA) plus a token.
  for who in admin engine nobody; do
    sed "s/^    {}$/    token: $who-token/" "$tmp/$1.kubeconfig" >"$tmp/$who.kubeconfig"
  done
  kc create namespace $NS >/dev/null 2>&1 || true
}
kc() { kubectl --kubeconfig "$tmp/admin.kubeconfig" "$@"; }
# forbidden_count NAME: 403s the emulator gave, from its admin counter, which
# must agree with its log lines.
forbidden_count() {
  local admin counted logged
  admin=$(sed -n 's/^admin listening on \(.*\)$/\1/p' "$tmp/$1.out")
  counted=$(curl -sf "$admin/faults" | grep -o '"forbidden":[0-9]*' | cut -d: -f2)
  logged=$(grep -c "^kuala-apiserver: 403 " "$tmp/$1.err" || true)
  [ "$counted" = "$logged" ] || fail "emulator $1: admin counts $counted 403s, log has $logged"
  echo "$counted"
}

# run NAME ARGS...: start `kuala run` as the engine's ServiceAccount.
run() {
  local name=$1; shift
  "$bin/core/kuala" run --kubeconfig="$tmp/engine.kubeconfig" \
    --metrics-bind-address=127.0.0.1:0 --health-probe-bind-address=0 "$@" >"$tmp/$name.log" 2>&1 &
  KUALA_PID=$!
  pids+=($KUALA_PID)
}
stop() { kill "$KUALA_PID" 2>/dev/null || true; wait "$KUALA_PID" 2>/dev/null || true; }
wait_for() { # wait_for DESCRIPTION COMMAND...: poll for up to 30 s
  local what=$1; shift
  for _ in $(seq 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for $what"
}
metrics() { # metrics LOG: the engine's /metrics
  local addr
  addr=$(grep -o 'serving metrics.*address=[0-9.:]*' "$tmp/$1" | grep -o '[0-9.]*:[0-9]*$' | head -1)
  curl -sf "http://$addr/metrics"
}

# ---- 1. every shipped bundle, with exactly the generated RBAC ---------------
emu emu1
bundles=()
for d in "$src"/controllers/*/; do bundles+=("${d%/}"); done
"$bin/core/kuala" rbac "${bundles[@]}" >"$tmp/rbac.yaml" || fail "kuala rbac failed"
# Deterministic: a second generation is byte for byte the same.
"$bin/core/kuala" rbac "${bundles[@]}" | cmp -s - "$tmp/rbac.yaml" || fail "kuala rbac is not stable"
kc apply -f "$tmp/rbac.yaml" >/dev/null || fail "kubectl apply of the generated RBAC failed"
# Before the binding applies, the engine's token may not even list pods.
kubectl --kubeconfig "$tmp/engine.kubeconfig" get pods >/dev/null 2>&1 \
  && fail "the engine's token can list pods"
base=$(forbidden_count emu1)
[ "$base" = 1 ] || fail "the emulator logged $base 403s for one refused request"
run shipped "${bundles[@]}"
samples=()
for d in "${bundles[@]}"; do
  for f in "$d"/samples/*.yaml; do [ -f "$f" ] && samples+=("$f"); done
done
[ ${#samples[@]} -gt 0 ] || fail "no samples in controllers/"
wait_for "the bundles' CRDs" kc apply -f "$(IFS=,; echo "${samples[*]}")"
has_status() { # every sample custom resource has a status written by its controller
  local f
  for f in "${samples[@]}"; do
    kc get -f "$f" -o json |
      jq -e '[(.items // [.])[] | select(.apiVersion | test("\\.kuala\\.dev/")) | .status != null]
             | all' >/dev/null || return 1
  done
}
wait_for "every sample to be reconciled" has_status
# replicator (its sample is plain ConfigMaps): the copy reached the namespace.
copied() { [ -n "$(kc get configmap shared-settings -n team-b -o name)" ]; }
wait_for "the replicator's copy" copied
# webapp: its Deployment and Service exist and the app becomes Ready.
ready() { [ "$(kc get webapp hello -o jsonpath='{.status.phase}')" = Ready ]; }
wait_for "the WebApp to be Ready" ready
# tenant: Ready only once its RoleBinding to ClusterRole admin was created,
# which RBAC allows only with `bind` on that role (declared by the bundle).
tenant_ready() {
  [ "$(kc get tenant team-a -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_for "the Tenant to be Ready" tenant_ready
stop
n=$(($(forbidden_count emu1) - base))
[ "$n" = 0 ] || fail "the shipped bundles met $n 403s with the generated RBAC"
grep -q "permission denied" "$tmp/shipped.log" && fail "the engine refused a shipped bundle's call"
echo "ok 1: ${#bundles[@]} shipped bundle(s) reconciled with the generated RBAC, 0 403s"
# Escalation prevention: the engine may create RoleBindings, yet not one to
# a role whose rights it does not hold (cluster-admin); ClusterRole admin it
# may bind (the tenant bundle declares `bind` on it).
ekc() { kubectl --kubeconfig "$tmp/engine.kubeconfig" "$@"; }
out=$(ekc create rolebinding esc --clusterrole=cluster-admin --user=mallory -n team-a 2>&1) &&
  fail "the engine bound cluster-admin without holding it"
grep -q 'rolebindings.rbac.authorization.k8s.io "esc" is forbidden: user ".*" (groups=\[.*\]) is attempting to grant RBAC permissions not currently held:' <<<"$out" ||
  fail "escalation refused with another message: $out"
grep -q '{APIGroups:\["\*"\], Resources:\["\*"\], Verbs:\["\*"\]}' <<<"$out" ||
  fail "the refusal does not name the missing rule: $out"
ekc create rolebinding esc --clusterrole=admin --user=mallory -n team-a >/dev/null ||
  fail "the engine could not bind ClusterRole admin although it may bind it"
kc create rolebinding esc2 --clusterrole=cluster-admin --user=mallory -n team-a >/dev/null ||
  fail "system:masters could not bind cluster-admin"
echo "ok 1b: RBAC escalation prevention (bind) as kube-apiserver enforces it"
# The Tenant's RoleBinding does what it promises: ClusterRole admin (the
# emulator's bootstrap role, aggregated from system:aggregate-to-*) lets the
# tenant's group run workloads and manage RBAC in its namespace, not beyond.
as_tenant=(--as alice --as-group team-a-admins)
kc create configmap mine -n team-a "${as_tenant[@]}" >/dev/null ||
  fail "a member of team-a-admins could not create a ConfigMap in team-a"
kc create rolebinding viewers --clusterrole=view --group=team-a-viewers -n team-a "${as_tenant[@]}" >/dev/null ||
  fail "a member of team-a-admins could not bind ClusterRole view in team-a"
out=$(kc create configmap mine -n team-b "${as_tenant[@]}" 2>&1) &&
  fail "a member of team-a-admins created a ConfigMap in team-b"
grep -q 'configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group "" in the namespace "team-b"' <<<"$out" ||
  fail "team-b refused with another message: $out"
[ "$(kc auth can-i delete namespaces/team-a "${as_tenant[@]}" 2>/dev/null || true)" = no ] ||
  fail "ClusterRole admin let the tenant delete its namespace"
echo "ok 1c: the tenant's group is admin of its namespace (ClusterRole admin, aggregated), not of others"

# ---- 2. undeclared call: engine EFORBIDDEN; declared without RBAC: 403 -------
peek() { # peek DIR DECLARATION: a bundle that creates a Secret per labelled ConfigMap
  mkdir -p "$1"
  cat >"$1/main.lua" <<EOF
local kuala = require("kuala")
$2
kuala.controller {
  name = "peek",
  watch = "v1/ConfigMap",
  labels = { peek = "yes" },
  reconcile = function(ctx, req)
    local cm = ctx:get(req)
    if not cm or (cm.metadata.annotations or {})["peek/result"] then return end
    local _, err, st = ctx:create({ apiVersion = "v1", kind = "Secret",
      metadata = { name = cm.metadata.name .. "-secret", namespace = req.namespace },
      stringData = { x = "y" } })
    -- A second reconcile may start before the annotation reaches the cache.
    if err == "EEXISTS" then err = nil end
    local result = err and (err .. ": " .. tostring(st and st.message)) or "created"
    local _, perr = ctx:patch(cm, { metadata = { annotations = { ["peek/result"] = result } } })
    if perr then error("patch: " .. perr) end
  end,
}
EOF
}
peek "$tmp/undeclared/peek" ""
peek "$tmp/declared/peek" 'kuala.permissions { { "v1/Secret", "create" } }'
emu emu2
# The RBAC of the bundle as it was before it declared the Secret.
"$bin/core/kuala" rbac "$tmp/undeclared/peek" | kc apply -f - >/dev/null || fail "apply RBAC (peek)"
result() { kc get cm "$1" -o jsonpath='{.metadata.annotations.peek/result}'; }
has_result() { [ -n "$(result "$1")" ]; }

run undeclared "$tmp/undeclared/peek"
kc create configmap probe-a >/dev/null && kc label configmap probe-a peek=yes >/dev/null
wait_for "the undeclared bundle's attempt" has_result probe-a
r=$(result probe-a)
case "$r" in
  "EFORBIDDEN: bundle \"peek\" may not create v1/Secret: declare it with kuala.permissions{{\"v1/Secret\", \"create\"}}") ;;
  *) fail "undeclared create: got '$r'" ;;
esac
grep "permission denied" "$tmp/undeclared.log" | grep -q 'may not create v1/Secret' \
  || fail "no log line for the refused call"
m=$(metrics undeclared.log) || fail "no metrics from the engine"
echo "$m" | grep -q '^rest_client_requests_total{code="403"' && fail "a request was answered 403"
[ "$(forbidden_count emu2)" = 0 ] || fail "the emulator saw a 403 for an undeclared call"
kc get secret probe-a-secret >/dev/null 2>&1 && fail "the Secret exists"
stop

run declared "$tmp/declared/peek"
kc create configmap probe-b >/dev/null && kc label configmap probe-b peek=yes >/dev/null
wait_for "the declared bundle's attempt" has_result probe-b
r=$(result probe-b)
want="EFORBIDDEN: secrets is forbidden: User \"$ENGINE_USER\" cannot create resource \"secrets\" in API group \"\" in the namespace \"default\""
[ "$r" = "$want" ] || fail "declared without RBAC: got '$r'"
grep -q "403 POST /api/v1/namespaces/default/secrets: secrets is forbidden" "$tmp/emu2.err" \
  || fail "the emulator did not log the 403"
m=$(metrics declared.log) || fail "no metrics from the engine"
echo "$m" | grep -q '^rest_client_requests_total{code="403",.*method="POST"' \
  || fail "the client's counters show no 403 POST"
stop
echo "ok 2: undeclared -> EFORBIDDEN from the engine, nothing sent; declared without RBAC -> 403"

# ---- 3. kubectl auth can-i agrees with the emulator -------------------------
# WHO|CAN-I ARGS|METHOD PATH|EXPECTED (the RBAC of step 2 is in place)
cases=(
  "engine|create secrets|POST /api/v1/namespaces/default/secrets|no"
  "engine|list configmaps|GET /api/v1/namespaces/default/configmaps|yes"
  "engine|patch configmaps/probe-a|PATCH /api/v1/namespaces/default/configmaps/probe-a|yes"
  "engine|delete configmaps/probe-a|DELETE /api/v1/namespaces/default/configmaps/probe-a|no"
  "engine|get leases -n $NS|GET /apis/coordination.k8s.io/v1/namespaces/$NS/leases/x|yes"
  "engine|get leases -n default|GET /apis/coordination.k8s.io/v1/namespaces/default/leases/x|no"
  "engine|create customresourcedefinitions.apiextensions.k8s.io|POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions|yes"
  "engine|update deployments.apps --subresource=scale|PUT /apis/apps/v1/namespaces/default/deployments/x/scale|no"
  "nobody|list pods|GET /api/v1/namespaces/default/pods|no"
  "nobody|get /apis|GET /apis|yes"
  "admin|delete nodes/n1|DELETE /api/v1/nodes/n1|yes"
)
for c in "${cases[@]}"; do
  IFS='|' read -r who args req want <<<"$c"
  # shellcheck disable=SC2086
  got=$(kubectl --kubeconfig "$tmp/$who.kubeconfig" auth can-i $args 2>>"$tmp/can-i.log" || true)
  [ "$got" = "$want" ] || fail "can-i as $who: $args: got '$got', want '$want'"
  method=${req%% *}; path=${req#* }
  code=$(curl -sk -o /dev/null -w '%{http_code}' -X "$method" -H "Authorization: Bearer $who-token" \
    -H 'Content-Type: application/merge-patch+json' -d '{}' "$URL$path")
  if [ "$want" = no ]; then
    [ "$code" = 403 ] || fail "$who $method $path: emulator answered $code, can-i said no"
  else
    [ "$code" != 403 ] || fail "$who $method $path: emulator answered 403, can-i said yes"
  fi
done
echo "ok 3: kubectl auth can-i agrees with the emulator on ${#cases[@]} cases"
# Every Impersonate-Group header counts (kubectl --as-group, repeated).
kc create clusterrole pod-reader --verb=list --resource=pods >/dev/null
kc create clusterrolebinding g2-pod-readers --clusterrole=pod-reader --group=g2 >/dev/null
got=$(kc auth can-i list pods --as bob --as-group g1 --as-group g2 2>/dev/null || true)
[ "$got" = yes ] || fail "the second Impersonate-Group header was ignored (can-i: $got)"
got=$(kc auth can-i list pods --as bob --as-group g1 2>/dev/null || true)
[ "$got" = no ] || fail "bob in g1 only may list pods (can-i: $got)"
echo "ok 3b: every Impersonate-Group header is read"
# Impersonate-Extra-<key>: each value needs `impersonate` on
# userextras/<key> (authentication.k8s.io), named by the value.
kc create clusterrole impersonator --verb=impersonate --resource=users,groups >/dev/null
kc create clusterrolebinding nobody-impersonates --clusterrole=impersonator --user=nobody >/dev/null
imp() { # imp EXTRA_HEADER: GET /api/v1/pods as bob in g2 through nobody; prints code and body
  curl -sk -w '\n%{http_code}' -H "Authorization: Bearer nobody-token" -H "Impersonate-User: bob" \
    -H "Impersonate-Group: g2" ${1:+-H "$1"} "$URL/api/v1/pods"
}
[ "$(imp | tail -1)" = 200 ] || fail "nobody could not impersonate bob in g2: $(imp)"
out=$(imp "Impersonate-Extra-Scopes: view")
[ "$(tail -1 <<<"$out")" = 403 ] || fail "an extra was impersonated without userextras rights: $out"
grep -q 'userextras.authentication.k8s.io \\"view\\" is forbidden: User \\"nobody\\" cannot impersonate resource \\"userextras/scopes\\" in API group \\"authentication.k8s.io\\" at the cluster scope' <<<"$out" ||
  fail "the extra was refused with another message: $out"
kc create clusterrole scope-impersonator --verb=impersonate --resource=userextras.authentication.k8s.io/scopes --resource-name=view >/dev/null
kc create clusterrolebinding nobody-scopes --clusterrole=scope-impersonator --user=nobody >/dev/null
[ "$(imp "Impersonate-Extra-Scopes: view" | tail -1)" = 200 ] || fail "the allowed extra was refused: $(imp "Impersonate-Extra-Scopes: view")"
[ "$(imp "Impersonate-Extra-Scopes: edit" | tail -1)" = 403 ] || fail "an extra value outside resourceNames was allowed"
[ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer nobody-token" -H "Impersonate-Extra-Scopes: view" "$URL/api/v1/pods")" = 400 ] ||
  fail "an extra without Impersonate-User was not a 400"
echo "ok 3c: Impersonate-Extra-* values are checked (userextras/<key>)"

# ---- 4. two bundles, --impersonate-bundles ----------------------------------
emu emu3
echo_b="$src/tests/integration/bundles/echo"
"$bin/core/kuala" rbac --impersonate-bundles "$echo_b" "$tmp/declared/peek" >"$tmp/rbac-imp.yaml"
kc apply -f "$tmp/rbac-imp.yaml" >/dev/null || fail "apply RBAC (impersonation)"
export POD_NAMESPACE=$NS
run imp --impersonate-bundles "$echo_b" "$tmp/declared/peek"
wait_for "the Echo CRD" kc get crd echos.e2e.kuala.dev
cat >"$tmp/echo.yaml" <<'YAML'
apiVersion: e2e.kuala.dev/v1
kind: Echo
metadata: {name: hello, namespace: default}
spec: {message: hi}
YAML
wait_for "the Echo CRD to be served" kc apply -f "$tmp/echo.yaml"
kc create configmap probe-c >/dev/null && kc label configmap probe-c peek=yes >/dev/null
echoed() { [ "$(kc get echo hello -o jsonpath='{.status.echoed}')" = hi ]; }
wait_for "echo's status" echoed
wait_for "echo's ConfigMap" kc get cm hello-echo
wait_for "peek's attempt" has_result probe-c
[ "$(result probe-c)" = created ] || fail "peek under its own ServiceAccount: $(result probe-c)"
kc get secret probe-c-secret >/dev/null || fail "peek's Secret is missing"
stop
[ "$(forbidden_count emu3)" = 0 ] || fail "403s with --impersonate-bundles: $(grep 403 "$tmp/emu3.err")"
# Each identity holds only its own bundle's rights.
as() { kc auth can-i --as="system:serviceaccount:$NS:$1" "${@:2}" 2>>"$tmp/can-i.log" || true; }
[ "$(as kuala-peek create secrets)" = yes ] || fail "kuala-peek cannot create secrets"
[ "$(as kuala-echo create secrets)" = no ] || fail "kuala-echo can create secrets"
[ "$(as kuala-peek update echos.e2e.kuala.dev --subresource=status)" = no ] \
  || fail "kuala-peek can write echo status"
[ "$(as kuala-echo update echos.e2e.kuala.dev --subresource=status)" = yes ] \
  || fail "kuala-echo cannot write echo status"
[ "$(as kuala create configmaps)" = no ] || fail "the engine itself can create configmaps"
[ "$(as kuala create secrets)" = no ] || fail "the engine itself can create secrets"
echo "ok 4: with --impersonate-bundles each bundle wrote as its own ServiceAccount"
