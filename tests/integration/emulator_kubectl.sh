#!/usr/bin/env bash
# kuala-apiserver judged by the real kubectl (spec §1.7): discovery,
# api-resources, CRDs + wait, create/apply/get/patch/replace/delete with
# finalizers and --wait, label and field selectors, bounded watches.
source "$(dirname "$0")/lib/emulator_lib.sh"

if ! command -v kubectl >/dev/null; then
  echo "SKIP: kubectl not installed"; exit 77
fi
if ! command -v jq >/dev/null; then
  echo "SKIP: jq not installed (scripts/deps.sh installs it)"; exit 77
fi

emu_start --deployment-ready-delay 200
export KUBECONFIG=$EMU_DIR/kubeconfig
export KUBECACHEDIR=$EMU_DIR/kubecache
K="kubectl --request-timeout=20s"

# Discovery.
out=$($K api-resources 2>&1)
expect_contains "api-resources lists configmaps" "$out" "configmaps"
expect_contains "api-resources lists deployments" "$out" "apps/v1"
expect_contains "api-resources lists CRDs" "$out" "customresourcedefinitions"
out=$($K get ns -o name 2>&1)
expect_contains "pre-seeded kube-system" "$out" "namespace/kube-system"

# CRD: apply without --validate=false, wait for Established.
cat >"$EMU_DIR/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
          status:
            type: object
            properties:
              phase: {type: string}
EOF
out=$($K apply -f "$EMU_DIR/crd.yaml" 2>&1)
expect_contains "apply CRD" "$out" "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"
out=$($K wait --for=condition=Established crd/crontabs.stable.example.com --timeout=15s 2>&1)
expect_contains "wait Established" "$out" "condition met"
out=$($K api-resources --api-group=stable.example.com 2>&1)
expect_contains "CRD in discovery" "$out" "crontabs"

# Custom resources: client-side apply, defaulting, merge/json/status patches.
cat >"$EMU_DIR/ct.yaml" <<'EOF'
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: my-cron, labels: {app: cron}}
spec: {cronSpec: "* * * * */5"}
EOF
out=$($K apply -f "$EMU_DIR/ct.yaml" 2>&1)
expect_contains "apply CR" "$out" "crontab.stable.example.com/my-cron created"
out=$($K apply -f "$EMU_DIR/ct.yaml" 2>&1)
expect_contains "re-apply is unchanged" "$out" "unchanged"
expect_eq "defaulted replicas" "$($K get ct my-cron -o jsonpath='{.spec.replicas}')" "1"
expect_eq "generation 1" "$($K get ct my-cron -o jsonpath='{.metadata.generation}')" "1"
$K patch ct my-cron --type=merge -p '{"spec":{"replicas":3}}' >/dev/null
expect_eq "merge patch" "$($K get ct my-cron -o jsonpath='{.spec.replicas}')" "3"
expect_eq "generation bumped" "$($K get ct my-cron -o jsonpath='{.metadata.generation}')" "2"
$K patch ct my-cron --type=json -p '[{"op":"replace","path":"/spec/replicas","value":4}]' >/dev/null
expect_eq "json patch" "$($K get ct my-cron -o jsonpath='{.spec.replicas}')" "4"
out=$($K patch ct my-cron --type=json -p '[{"op":"test","path":"/spec/replicas","value":9}]' 2>&1)
expect_contains "failed json patch test is an error" "$out" "testing value /spec/replicas failed: test failed"
$K patch ct my-cron --subresource=status --type=merge -p '{"status":{"phase":"Running"}}' >/dev/null
expect_eq "status patch" "$($K get ct my-cron -o jsonpath='{.status.phase}')" "Running"
expect_eq "status patch keeps generation" "$($K get ct my-cron -o jsonpath='{.metadata.generation}')" "3"
out=$($K patch ct my-cron --type=merge -p '{"spec":{"replicas":"two"}}' 2>&1)
expect_contains "schema validation" "$out" "Invalid"
out=$($K patch ct my-cron -p '{"spec":{"replicas":2}}' 2>&1)
expect_contains "strategic patch on a CR is 415" "$out" "the body of the request was in an unknown format"

# get -o json, -l, --field-selector.
$K create -f - >/dev/null <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-a, labels: {tier: web, env: prod}}
data: {k: v}
EOF
$K create -f - >/dev/null <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-b, labels: {tier: db, env: prod}}
data: {k: w}
EOF
expect_eq "get -o json" "$($K get cm cm-a -o json | jq -r .data.k)" "v"
expect_eq "label selector" "$($K get cm -l 'env=prod,tier in (db)' -o name)" "configmap/cm-b"
expect_eq "label selector notin" "$($K get cm -l 'tier notin (db),env' -o name)" "configmap/cm-a"
expect_eq "field selector" "$($K get cm --field-selector metadata.name=cm-a -o name)" "configmap/cm-a"
out=$($K get cm --field-selector spec.color=red 2>&1)
expect_contains "unsupported field label" "$out" "field label not supported: spec.color"
out=$($K get cm -l 'env in prod' 2>&1)
expect_contains "bad label selector" "$out" "unable to parse requirement"

# Paging through kubectl (limit/continue) and server-side dry run.
expect_eq "get --chunk-size=1 pages through everything" "$($K get cm --chunk-size=1 -o name | sort | tr '\n' ' ')" "configmap/cm-a configmap/cm-b "
out=$($K patch cm cm-a --type=merge -p '{"data":{"k":"dry"}}' --dry-run=server 2>&1)
expect_contains "patch --dry-run=server" "$out" "configmap/cm-a patched"
expect_eq "dry run stored nothing" "$($K get cm cm-a -o jsonpath='{.data.k}')" "v"

# replace (PUT) with the server's RV.
$K get cm cm-a -o json | jq '.data.k = "replaced"' >"$EMU_DIR/cm-a.json"
out=$($K replace -f "$EMU_DIR/cm-a.json" 2>&1)
expect_contains "replace" "$out" "configmap/cm-a replaced"
out=$($K replace -f "$EMU_DIR/cm-a.json" 2>&1)
expect_contains "replace with a stale RV conflicts" "$out" "the object has been modified"

# Bounded watch: sees a change made while it runs.
$K get cm -w -o name >"$EMU_DIR/watch.out" 2>&1 &
wpid=$!
wait_lines "$EMU_DIR/watch.out" "configmap/cm-b" 1
sleep 0.5 # the watch request follows the list
$K create -f - >/dev/null <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-watched}
EOF
wait_lines "$EMU_DIR/watch.out" "configmap/cm-watched" 1
kill $wpid 2>/dev/null; wait $wpid 2>/dev/null
expect_contains "get -w sees the new object" "$(cat "$EMU_DIR/watch.out")" "configmap/cm-watched"

# Human-readable watch (Tables on list and watch alike).
$K get ct -w >"$EMU_DIR/watch2.out" 2>&1 &
wpid=$!
wait_lines "$EMU_DIR/watch2.out" "my-cron" 1
sleep 0.5 # the watch request follows the list
$K patch ct my-cron --type=merge -p '{"spec":{"replicas":5}}' >/dev/null
wait_lines "$EMU_DIR/watch2.out" "my-cron" 2
kill $wpid 2>/dev/null; wait $wpid 2>/dev/null
expect_eq "get -w prints the table header once and a row per event" \
  "$(awk '{print $1}' "$EMU_DIR/watch2.out" | tr '\n' ' ')" "NAME my-cron my-cron "

# Deployment with simulated status; kubectl rollout status waits for it.
$K create -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
EOF
out=$($K wait --for=condition=Available deploy/web --timeout=15s 2>&1)
expect_contains "deployment becomes Available" "$out" "condition met"
expect_eq "readyReplicas" "$($K get deploy web -o jsonpath='{.status.readyReplicas}')" "2"
$K apply -f - >/dev/null 2>&1 <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:2}]}
EOF
sleep 1
expect_eq "apply (strategic) updates deployment" "$($K get deploy web -o jsonpath='{.spec.template.spec.containers[0].image}')" "nginx:2"
out=$($K scale deploy/web --replicas=4 2>&1)
expect_contains "kubectl scale (the /scale subresource)" "$out" "deployment.apps/web scaled"
expect_eq "scale changed spec.replicas" "$($K get deploy web -o jsonpath='{.spec.replicas}')" "4"
out=$($K rollout status deploy/web --timeout=15s 2>&1)
expect_contains "rollout status" "$out" "successfully rolled out"
expect_eq "status follows" "$($K get deploy web -o jsonpath='{.status.observedGeneration}/{.status.readyReplicas}')" "3/4"

# Finalizers: delete leaves the object, removing the last finalizer deletes it.
$K patch ct my-cron --type=merge -p '{"metadata":{"finalizers":["example.com/cleanup"]}}' >/dev/null
out=$($K delete ct my-cron --wait=false 2>&1)
expect_contains "delete with finalizer" "$out" "deleted"
ts=$($K get ct my-cron -o jsonpath='{.metadata.deletionTimestamp}' 2>&1)
expect_contains "deletionTimestamp set" "$ts" "T"
out=$($K patch ct my-cron --type=merge -p '{"metadata":{"finalizers":["example.com/cleanup","new"]}}' 2>&1)
expect_contains "no new finalizers while deleting" "$out" "no new finalizers"
$K delete ct my-cron --timeout=20s >"$EMU_DIR/del.out" 2>&1 &
dpid=$!
sleep 1
$K patch ct my-cron --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null 2>&1
wait $dpid
expect_eq "delete --wait returns after the finalizer goes" "$?" "0"
out=$($K get ct my-cron 2>&1)
expect_contains "object gone" "$out" "NotFound"

# Server-side apply, when the emulator was built with it.
out=$($K apply --server-side -f "$EMU_DIR/ct.yaml" 2>&1)
if echo "$out" | grep -q "serverside-applied"; then
  expect_contains "server-side apply" "$out" "serverside-applied"
  mgr=$($K get ct my-cron -o json --show-managed-fields | jq -r '.metadata.managedFields[0].manager')
  expect_eq "managedFields recorded" "$mgr" "kubectl"
  sed 's/\* \* \* \* \*\/5/1 1 1 1 1/' "$EMU_DIR/ct.yaml" >"$EMU_DIR/ct2.yaml"
  out=$($K apply --server-side --field-manager=other -f "$EMU_DIR/ct2.yaml" 2>&1)
  expect_contains "server-side apply conflict" "$out" 'conflict with "kubectl": .spec.cronSpec'
  out=$($K apply --server-side --field-manager=other --force-conflicts -f "$EMU_DIR/ct2.yaml" 2>&1)
  expect_contains "force-conflicts takes over" "$out" "serverside-applied"
  expect_eq "forced value stored" "$($K get ct my-cron -o jsonpath='{.spec.cronSpec}')" "1 1 1 1 1"
else
  echo "note: server-side apply not available in this build: $out"
fi

# Generators (protobuf bodies) and RBAC objects.
out=$($K create role pod-reader --verb=get,list --resource=pods 2>&1)
expect_contains "create role" "$out" "role.rbac.authorization.k8s.io/pod-reader created"
out=$($K create rolebinding read-pods --role=pod-reader --serviceaccount=default:bot 2>&1)
expect_contains "create rolebinding" "$out" "rolebinding.rbac.authorization.k8s.io/read-pods created"
out=$($K create deployment gen --image=nginx 2>&1)
expect_contains "create deployment" "$out" "deployment.apps/gen created"
out=$($K expose deployment gen --port=80 2>&1)
expect_contains "expose" "$out" "service/gen exposed"
out=$($K label deploy gen tier=front 2>&1)
expect_contains "label" "$out" "deployment.apps/gen labeled"
expect_eq "label stored" "$($K get deploy -l tier=front -o name)" "deployment.apps/gen"

# Namespace deletion cascades; CRD deletion removes its objects.
$K create -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
EOF
$K -n team-a create -f - >/dev/null <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: inside}
EOF
out=$($K delete ns team-a --timeout=20s 2>&1)
expect_contains "namespace deleted" "$out" "namespace \"team-a\" deleted"
out=$($K get ns team-a 2>&1)
expect_contains "namespace gone" "$out" "NotFound"
out=$($K delete ns default 2>&1)
expect_contains "default may not be deleted" "$out" "may not be deleted"
out=$($K delete crd crontabs.stable.example.com --timeout=20s 2>&1)
expect_contains "CRD deleted" "$out" "deleted"
out=$($K get crontabs.stable.example.com 2>&1)
expect_contains "CR type gone" "$out" "the server doesn't have a resource type"

finish
