#!/usr/bin/env bash
# deploy/kubernetes is a kustomize base that kubectl renders and the
# emulator accepts whole: every rendered object is created, and the
# Deployment keeps the properties operations rely on (requests/limits,
# probes on the probe port, a locked-down security context, leader
# election, a PodDisruptionBudget that selects its pods). The RBAC is what
# `kuala rbac` generates today (deploy/generate.sh), every flag the
# Deployment passes is one `kuala run` knows, and the bundle ConfigMaps from
# kustomize's configMapGenerator hold exactly what `kuala bundle` prints.
set -uo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
source "$src/tests/integration/lib/emulator_lib.sh"
command -v kubectl >/dev/null || { echo "SKIP: kubectl is missing"; exit 77; }
emu_start
export KUBECONFIG=$EMU_DIR/kubeconfig KUBECACHEDIR=$EMU_DIR/kcache

kubectl kustomize "$src/deploy/kubernetes" >"$EMU_DIR/rendered.yaml" 2>"$EMU_DIR/kustomize.err"
expect_eq "kubectl kustomize renders deploy/kubernetes" "$?" "0"
rendered=$(grep -c '^kind:' "$EMU_DIR/rendered.yaml")
kubectl apply -f "$EMU_DIR/rendered.yaml" >"$EMU_DIR/apply.out" 2>&1
expect_eq "kubectl apply of the rendered tree" "$?" "0"
applied=$(grep -cE ' (created|configured|unchanged)$' "$EMU_DIR/apply.out")
expect_eq "every rendered object accepted ($rendered)" "$applied" "$rendered"
[ "$applied" = "$rendered" ] || cat "$EMU_DIR/apply.out"

jp() { kubectl -n kuala-system get "$1" -o "jsonpath={$2}"; }
c='.spec.template.spec.containers[0]'
expect_eq "cpu request" "$(jp deploy/kuala "$c.resources.requests.cpu")" "100m"
expect_eq "memory request" "$(jp deploy/kuala "$c.resources.requests.memory")" "64Mi"
expect_eq "cpu limit" "$(jp deploy/kuala "$c.resources.limits.cpu")" "500m"
expect_eq "memory limit" "$(jp deploy/kuala "$c.resources.limits.memory")" "256Mi"
expect_eq "liveness probe" "$(jp deploy/kuala "$c.livenessProbe.httpGet.path")" "/healthz"
expect_eq "readiness probe" "$(jp deploy/kuala "$c.readinessProbe.httpGet.path")" "/readyz"
expect_eq "probe port is the health-probe port" \
  "$(jp deploy/kuala "$c.ports[?(@.name==\"probes\")].containerPort")" "8081"
expect_eq "runAsNonRoot" "$(jp deploy/kuala '.spec.template.spec.securityContext.runAsNonRoot')" "true"
expect_eq "read-only root filesystem" "$(jp deploy/kuala "$c.securityContext.readOnlyRootFilesystem")" "true"
expect_eq "no privilege escalation" "$(jp deploy/kuala "$c.securityContext.allowPrivilegeEscalation")" "false"
expect_eq "every capability dropped" "$(jp deploy/kuala "$c.securityContext.capabilities.drop[0]")" "ALL"
args=$(jp deploy/kuala "$c.args")
expect_contains "leader election on" "$args" "--leader-elect"
expect_contains "metrics port" "$args" "--metrics-bind-address=:8080"
expect_eq "service account" "$(jp deploy/kuala '.spec.template.spec.serviceAccountName')" "kuala"
expect_eq "PodDisruptionBudget selects the pods" \
  "$(jp pdb/kuala '.spec.selector.matchLabels.app\.kubernetes\.io/name')" \
  "$(jp deploy/kuala '.spec.template.metadata.labels.app\.kubernetes\.io/name')"

# RBAC: the committed file is a fresh generation.
"$src/deploy/generate.sh" "$bin/core/kuala" "$EMU_DIR/rbac.yaml"
expect_eq "deploy/kubernetes/rbac.yaml is what deploy/generate.sh makes now" \
  "$(diff "$src/deploy/kubernetes/rbac.yaml" "$EMU_DIR/rbac.yaml" && echo same)" "same"
expect_eq "the engine's ClusterRole was applied" \
  "$(kubectl get clusterrole kuala -o name)" "clusterrole.rbac.authorization.k8s.io/kuala"

# Every flag of the Deployment is one `kuala run` accepts.
help=$("$bin/core/kuala" run --help)
for flag in $(jp deploy/kuala "$c.args[*]" | tr ' ' '\n' | grep '^--' | sed 's/=.*//'); do
  expect_contains "kuala run knows $flag" "$help" "$flag"
done

# Bundles: each controllers/*/ bundle is generated, and matches kuala bundle.
for d in "$src"/controllers/*/; do
  [ -f "$d/main.lua" ] || continue
  name=$(basename "$d")
  got=$(kubectl -n kuala-system get configmap "$name" -o json 2>/dev/null |
    jq -S '{label: .metadata.labels["kuala.dev/bundle"], data: .data}')
  want=$("$bin/core/kuala" bundle "$d" --name "$name" |
    kubectl create --dry-run=client -o json -f - 2>/dev/null |
    jq -S '{label: .metadata.labels["kuala.dev/bundle"], data: .data}')
  expect_eq "bundle ConfigMap $name matches kuala bundle" "$got" "$want"
  [ -n "$want" ] && [ "$want" != null ] || fail "kuala bundle $name printed nothing usable"
done
finish
