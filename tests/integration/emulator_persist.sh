#!/usr/bin/env bash
# kuala-apiserver --data-dir: objects (built-in and custom) and the revision
# counter survive a restart; resuming a watch from before the restart is 410.
source "$(dirname "$0")/lib/emulator_lib.sh"

if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
  echo "SKIP: needs curl and jq (scripts/deps.sh installs them)"; exit 77
fi

DATA=$(mktemp -d /tmp/kuala-emu-data.XXXXXX)
emu_start --data-dir "$DATA"
CM=/api/v1/namespaces/default/configmaps
api POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions '{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.demo.kuala.dev"},"spec":{"group":"demo.kuala.dev","scope":"Namespaced","names":{"plural":"widgets","kind":"Widget"},"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}' >/dev/null
r=$(api POST /apis/demo.kuala.dev/v1/namespaces/default/widgets '{"apiVersion":"demo.kuala.dev/v1","kind":"Widget","metadata":{"name":"w1"},"spec":{"size":3}}')
expect_eq "custom resource created" "${r%% *}" "201"
r=$(api POST $CM '{"metadata":{"name":"keep"},"data":{"a":"1"}}')
uid=$(echo "${r#* }" | jq -r .metadata.uid)
api POST $CM '{"metadata":{"name":"gone"}}' >/dev/null
api DELETE $CM/gone >/dev/null
rev=$(api GET $CM | cut -d' ' -f2- | jq -r .metadata.resourceVersion)

# Restart on the same data directory (SIGKILL: nothing is flushed on exit).
kill -9 "$EMU_PID"; wait "$EMU_PID" 2>/dev/null
rm -rf "$EMU_DIR"
emu_start --data-dir "$DATA"
r=$(api GET $CM/keep)
expect_eq "configmap survives" "$(echo "${r#* }" | jq -r .data.a)" "1"
expect_eq "uid survives" "$(echo "${r#* }" | jq -r .metadata.uid)" "$uid"
expect_eq "deleted object stays deleted" "$(api GET $CM/gone | cut -d' ' -f1)" "404"
r=$(api GET /apis/demo.kuala.dev/v1/namespaces/default/widgets/w1)
expect_eq "custom resource survives with its CRD" "$(echo "${r#* }" | jq -r .spec.size)" "3"
expect_eq "revision survives" "$(api GET $CM | cut -d' ' -f2- | jq -r .metadata.resourceVersion)" "$rev"
r=$(api POST $CM '{"metadata":{"name":"after"}}')
expect_eq "next write takes the next revision" "$(echo "${r#* }" | jq -r .metadata.resourceVersion)" "$((rev + 1))"
curl -s -N -m 3 "$EMU_URL$CM?watch=true&resourceVersion=$((rev - 1))" >"$EMU_DIR/w"
expect_eq "resume from before the restart: 410" "$(jq -r .object.code "$EMU_DIR/w")" "410"
rm -rf "$DATA"
finish
