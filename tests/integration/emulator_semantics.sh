#!/usr/bin/env bash
# kuala-apiserver's semantic engines judged by kubectl 1.32 and curl
# (docs/emulator-semantics.md): OpenAPI-backed validation, CRD checks,
# pruning/defaulting/validation messages, fieldValidation, JSON patch 422,
# merge and strategic merge patch, 415 for SMP on custom resources,
# server-side apply (conflict, force, removal, no-op) and printer columns.
# Self-contained: starts its own emulator on 127.0.0.1 and stops it.
set -uo pipefail

BIN=${KUALA_BINARY_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}/apiserver/kuala-apiserver
if [ ! -x "$BIN" ]; then
  echo "SKIP: $BIN not built"; exit 77
fi
if ! command -v kubectl >/dev/null || ! command -v curl >/dev/null; then
  echo "SKIP: kubectl or curl missing"; exit 77
fi

DIR=$(mktemp -d /tmp/kuala-sem-test.XXXXXX)
"$BIN" --port 0 --kubeconfig-out "$DIR/kubeconfig" >"$DIR/out" 2>"$DIR/err" &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null
  wait "$PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$DIR/out" 2>/dev/null && break
  sleep 0.05
done
URL=$(sed -n 's/^listening on \(.*\)$/\1/p' "$DIR/out")
if [ -z "$URL" ]; then
  echo "FAIL: emulator did not start"; cat "$DIR/err"; exit 1
fi
export KUBECONFIG=$DIR/kubeconfig KUBECACHEDIR=$DIR/kubecache
K="timeout 30 kubectl --request-timeout=20s"
FAILS=0

expect() { # expect NAME HAYSTACK NEEDLE
  if [[ "$2" == *"$3"* ]]; then
    echo "ok   $1"
  else
    echo "FAIL $1"; echo "  want: $3"; echo "  got:  $2"; FAILS=$((FAILS + 1))
  fi
}

cat >"$DIR/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.sem.example.com
spec:
  group: sem.example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget, shortNames: [wg]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            properties:
              color: {type: string, enum: [red, blue]}
              size: {type: integer, minimum: 1, maximum: 10, default: 3}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              phase: {type: string}
EOF

# CRD checks: a name that is not plural.group is refused with the field path.
sed 's/name: widgets.sem.example.com/name: widget.sem.example.com/' "$DIR/crd.yaml" >"$DIR/bad-crd.yaml"
out=$($K create -f "$DIR/bad-crd.yaml" 2>&1)
expect "CRD name must be plural.group" "$out" 'must be spec.names.plural+"."+spec.group'
out=$($K apply -f "$DIR/crd.yaml" 2>&1)
expect "apply CRD without --validate=false" "$out" "widgets.sem.example.com created"
out=$($K wait --for=condition=Established crd/widgets.sem.example.com --timeout=15s 2>&1)
expect "CRD established" "$out" "condition met"

# Strict field validation (kubectl's default, found through /openapi/v3).
printf 'apiVersion: sem.example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {color: red, bogus: 1}\n' >"$DIR/w-unknown.yaml"
out=$($K create -f "$DIR/w-unknown.yaml" 2>&1)
expect "strict decoding error" "$out" 'strict decoding error: unknown field "spec.bogus"'
out=$($K create --validate=warn -f "$DIR/w-unknown.yaml" 2>&1)
expect "warn mode drops the field with a warning" "$out" 'unknown field "spec.bogus"'
$K delete widget w >/dev/null 2>&1

# Validation messages (422).
printf 'apiVersion: sem.example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: 15}\n' >"$DIR/w-bad.yaml"
out=$($K create -f "$DIR/w-bad.yaml" 2>&1)
expect "maximum message" "$out" "spec.size: Invalid value: 15: spec.size in body should be less than or equal to 10"
expect "required message" "$out" "spec.color: Required value"
printf 'apiVersion: sem.example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {color: green, size: "two"}\n' >"$DIR/w-bad2.yaml"
out=$($K create -f "$DIR/w-bad2.yaml" 2>&1)
expect "enum message" "$out" 'spec.color: Unsupported value: "green": supported values: "red", "blue"'
expect "type message" "$out" 'spec.size in body must be of type integer: "string"'

# Defaulting, preserved unknown fields, printer columns.
printf 'apiVersion: sem.example.com/v1\nkind: Widget\nmetadata: {name: a}\nspec: {color: red, free: {any: {thing: 1}}}\n' >"$DIR/w-a.yaml"
out=$($K apply --server-side -f "$DIR/w-a.yaml" 2>&1)
expect "server-side apply creates" "$out" "widget.sem.example.com/a serverside-applied"
out=$($K get widget a -o jsonpath='{.spec.size} {.spec.free.any.thing}' 2>&1)
expect "default and preserve-unknown-fields" "$out" "3 1"
out=$($K get widgets 2>&1)
expect "printer columns" "$out" "NAME   SIZE   COLOR"
expect "printer column cells" "$out" "a      3      red"

# A no-op server-side apply writes nothing.
rv1=$($K get widget a -o jsonpath='{.metadata.resourceVersion}')
sleep 1.1
$K apply --server-side -f "$DIR/w-a.yaml" >/dev/null 2>&1
rv2=$($K get widget a -o jsonpath='{.metadata.resourceVersion}')
expect "no-op apply keeps resourceVersion" "$rv2" "$rv1"

# Another manager changes size; a later apply of a different size conflicts.
out=$($K patch widget a --type=merge -p '{"spec":{"size":5}}' 2>&1)
expect "merge patch" "$out" "widget.sem.example.com/a patched"
printf 'apiVersion: sem.example.com/v1\nkind: Widget\nmetadata: {name: a}\nspec: {color: red, size: 7}\n' >"$DIR/w-a7.yaml"
out=$($K apply --server-side -f "$DIR/w-a7.yaml" 2>&1)
expect "apply conflict" "$out" 'Apply failed with 1 conflict: conflict with "kubectl-patch" using sem.example.com/v1: .spec.size'
out=$($K apply --server-side --force-conflicts -f "$DIR/w-a7.yaml" 2>&1)
expect "force-conflicts" "$out" "serverside-applied"
mf=$(curl -s "$URL/apis/sem.example.com/v1/namespaces/default/widgets/a")
expect "managedFields Apply entry" "$mf" '"manager":"kubectl","operation":"Apply"'
if [[ "$mf" == *'"kubectl-patch"'* ]]; then
  echo "FAIL force moves the field away from kubectl-patch"; FAILS=$((FAILS + 1))
else
  echo "ok   force moves the field away from kubectl-patch"
fi
# Dropping a field from the applied config removes it (free was only ours).
printf 'apiVersion: sem.example.com/v1\nkind: Widget\nmetadata: {name: a}\nspec: {color: red, size: 7}\n' >"$DIR/w-a7.yaml"
$K apply --server-side -f "$DIR/w-a7.yaml" >/dev/null 2>&1
out=$($K get widget a -o jsonpath='{.spec}' 2>&1)
if [[ "$out" == *thing* ]]; then
  echo "FAIL removed field is gone: $out"; FAILS=$((FAILS + 1))
else
  echo "ok   removed field is gone"
fi

# JSON patch: a failed test is 422; SMP on a custom resource is 415.
out=$($K patch widget a --type=json -p '[{"op":"test","path":"/spec/size","value":1}]' 2>&1)
expect "json patch test failure" "$out" "testing value /spec/size failed: test failed"
code=$(curl -s -o "$DIR/smp.json" -w '%{http_code}' -X PATCH -H 'Content-Type: application/strategic-merge-patch+json' \
  --data '{"spec":{"size":2}}' "$URL/apis/sem.example.com/v1/namespaces/default/widgets/a")
expect "SMP on a CR is 415" "$code" "415"
expect "415 reason" "$(cat "$DIR/smp.json")" '"reason":"UnsupportedMediaType"'

# Strategic merge patch on a built-in: finalizers are a set, owner refs merge by uid.
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: "1"}\n' >"$DIR/cm.yaml"
$K apply -f "$DIR/cm.yaml" >/dev/null 2>&1
$K patch configmap cm -p '{"metadata":{"finalizers":["x.io/a"]}}' >/dev/null 2>&1
$K patch configmap cm -p '{"metadata":{"finalizers":["x.io/b"]}}' >/dev/null 2>&1
out=$($K get configmap cm -o jsonpath='{.metadata.finalizers}' 2>&1)
expect "SMP finalizers union" "$out" '["x.io/a","x.io/b"]'
$K patch configmap cm --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null 2>&1

# kubectl's generators send protobuf bodies.
out=$($K create configmap gen --from-literal=k=v 2>&1)
expect "kubectl create configmap (protobuf body)" "$out" "configmap/gen created"
out=$($K get configmap gen -o jsonpath='{.data.k}' 2>&1)
expect "protobuf ConfigMap data" "$out" "v"
out=$($K create deployment gen --image=busybox --replicas=0 2>&1)
expect "kubectl create deployment (protobuf body)" "$out" "deployment.apps/gen created"
out=$($K get deployment gen -o jsonpath='{.spec.replicas}/{.spec.template.spec.containers[0].image}' 2>&1)
expect "protobuf Deployment keeps replicas 0" "$out" "0/busybox"

# /openapi/v3 lists the CRD's group version with the fieldValidation parameter.
idx=$(curl -s "$URL/openapi/v3")
expect "openapi index lists the CRD" "$idx" '"apis/sem.example.com/v1"'
doc=$(curl -s "$URL/openapi/v3/apis/sem.example.com/v1")
expect "openapi patch op has fieldValidation" "$doc" '"name":"fieldValidation"'

if [ "$FAILS" -ne 0 ]; then
  echo "$FAILS check(s) failed"; exit 1
fi
echo "all checks passed"
