#!/usr/bin/env bash
# kuala-apiserver over raw HTTP (curl): Status errors, resourceVersion and
# pagination semantics, watch resume / 410 / bookmarks / sendInitialEvents,
# selector transitions, writes, dry run, garbage collection, bad input.
source "$(dirname "$0")/lib/emulator_lib.sh"

if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
  echo "SKIP: needs curl and jq (scripts/deps.sh installs them)"; exit 77
fi

emu_start --history 32 --admin-port 0
CM=/api/v1/namespaces/default/configmaps

code() { echo "${1%% *}"; }
# wait_code PATH CODE: poll a GET until it answers CODE (10 s at most).
wait_code() {
  local i
  for i in $(seq 1 100); do
    [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$EMU_URL$1")" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
body() { echo "${1#* }"; }

# ---- Status errors ----
r=$(api GET /api/v1/namespaces/default/nothings)
expect_eq "unknown resource 404" "$(code "$r")" "404"
expect_eq "404 is a Status" "$(body "$r" | jq -r '.kind + "/" + .reason')" "Status/NotFound"
r=$(api GET $CM/missing)
expect_eq "missing object message" "$(body "$r" | jq -r .message)" 'configmaps "missing" not found'
expect_eq "details.kind is the resource" "$(body "$r" | jq -r .details.kind)" "configmaps"
r=$(api GET "$CM?labelSelector=a%20in%20b")
expect_eq "bad label selector 400" "$(code "$r")" "400"
r=$(api POST $CM '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"')
expect_eq "malformed JSON 400" "$(code "$r")" "400"
expect_contains "malformed JSON message" "$(body "$r" | jq -r .message)" 'ConfigMap in version "v1" cannot be handled as a ConfigMap'
r=$(api POST $CM 'name: x' text/plain)
expect_eq "wrong content type 415" "$(code "$r")" "415"
head -c 3200000 /dev/zero | tr '\0' 'a' >"$EMU_DIR/big"
c=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data-binary @"$EMU_DIR/big" "$EMU_URL$CM")
expect_eq "oversized body 413" "$c" "413"
r=$(api POST /api/v1/namespaces/nowhere/configmaps '{"metadata":{"name":"x"}}')
expect_eq "namespace must exist" "$(body "$r" | jq -r .message)" 'namespaces "nowhere" not found'
r=$(api POST $CM '{"metadata":{}}')
expect_eq "name required 422" "$(code "$r")" "422"
r=$(api POST $CM '{"metadata":{"name":"Bad_Name"}}')
expect_eq "invalid name 422" "$(body "$r" | jq -r .reason)" "Invalid"
r=$(api POST $CM '{"metadata":{"name":"x","resourceVersion":"5"}}')
expect_eq "rv on create 500" "$(code "$r")" "500"
r=$(api PATCH $CM/x '{}' text/plain)
expect_eq "server keeps serving after bad input" "$(code "$(api GET /version)")" "200"
c=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.kubernetes.protobuf' "$EMU_URL$CM")
expect_eq "protobuf-only Accept 406" "$c" "406"

r=$(api POST $CM '{"metadata":{"name":"badkey"},"data":{"no spaces":"x"}}')
expect_eq "invalid ConfigMap key 422" "$(body "$r" | jq -r '.reason + " " + .details.causes[0].field')" "Invalid data[no spaces]"
r=$(api POST /api/v1/namespaces/default/secrets '{"metadata":{"name":"s1"},"stringData":{"pw":"hunter2"}}')
expect_eq "Secret stringData is merged into data" "$(body "$r" | jq -r '.data.pw + " " + .type + " " + (.stringData // "gone")')" "aHVudGVyMg== Opaque gone"
r=$(api POST /api/v1/namespaces/default/secrets '{"metadata":{"name":"s2"},"data":{"pw":"not base64!"}}')
expect_eq "invalid base64 400" "$(code "$r")" "400"

r=$(api POST "$CM?fieldValidation=Strict" '{"metadata":{"name":"strict"},"datta":{"a":"b"}}')
expect_eq "Strict: unknown field 400" "$(body "$r" | jq -r .message)" 'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "datta"'
c=$(curl -s -m 5 -D "$EMU_DIR/h" -o "$EMU_DIR/r" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary '{"metadata":{"name":"warned","colour":"x"},"datta":{}}' "$EMU_URL$CM")
expect_eq "Warn (default): created" "$c" "201"
expect_contains "Warn: Warning header" "$(cat "$EMU_DIR/h")" 'Warning: 299 - "unknown field \"datta\""'
expect_eq "Warn: unknown fields dropped" "$(jq -c '[.datta, .metadata.colour]' "$EMU_DIR/r")" "[null,null]"

# ---- create / update / no-op / conflict ----
r=$(api POST $CM '{"metadata":{"generateName":"gen-"},"data":{"a":"1"}}')
expect_eq "generateName 201" "$(code "$r")" "201"
expect_contains "generated name" "$(body "$r" | jq -r .metadata.name)" "gen-"
expect_eq "uid is a UUID" "$(body "$r" | jq -r '.metadata.uid | test("^[0-9a-f-]{36}$")')" "true"
r=$(api POST $CM '{"metadata":{"name":"a","labels":{"app":"x"}},"data":{"k":"1"}}')
rv1=$(body "$r" | jq -r .metadata.resourceVersion)
r=$(api POST $CM '{"metadata":{"name":"a"}}')
expect_eq "already exists 409" "$(body "$r" | jq -r .reason)" "AlreadyExists"
r=$(api PUT $CM/a "{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"x\"},\"resourceVersion\":\"$rv1\"},\"data\":{\"k\":\"1\"}}")
expect_eq "no-op update keeps the RV" "$(body "$r" | jq -r .metadata.resourceVersion)" "$rv1"
r=$(api PUT $CM/a "{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"x\"},\"resourceVersion\":\"$rv1\"},\"data\":{\"k\":\"2\"}}")
rv2=$(body "$r" | jq -r .metadata.resourceVersion)
expect_eq "update takes a new RV" "$([ "$rv2" -gt "$rv1" ] && echo yes)" "yes"
r=$(api PUT $CM/a "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"$rv1\"},\"data\":{}}")
expect_eq "stale RV conflict" "$(body "$r" | jq -r .reason)" "Conflict"
expect_contains "conflict message" "$(body "$r" | jq -r .message)" 'Operation cannot be fulfilled on configmaps "a": the object has been modified'
r=$(api PUT $CM/b '{"metadata":{"name":"b"}}')
expect_eq "PUT on a missing object 404" "$(code "$r")" "404"
r=$(api PUT $CM/a '{"metadata":{"name":"zz"}}')
expect_eq "name mismatch 400" "$(code "$r")" "400"
r=$(api POST "$CM?dryRun=All" '{"metadata":{"name":"dry"}}')
expect_eq "dry run answers 201" "$(code "$r")" "201"
expect_eq "dry run stores nothing" "$(code "$(api GET $CM/dry)")" "404"

# ---- list: RV semantics and pagination ----
for i in 1 2 3 4 5; do api POST $CM "{\"metadata\":{\"name\":\"p$i\",\"labels\":{\"page\":\"yes\"}}}" >/dev/null; done
r=$(api GET "$CM?limit=2")
expect_eq "page size" "$(body "$r" | jq '.items | length')" "2"
tok=$(body "$r" | jq -r .metadata.continue)
lrv=$(body "$r" | jq -r .metadata.resourceVersion)
total=$(body "$(api GET $CM)" | jq '.items | length')
expect_eq "remainingItemCount" "$(body "$r" | jq .metadata.remainingItemCount)" "$((total - 2))"
r=$(api GET "$CM?limit=2&continue=$tok")
expect_eq "next page keeps the list RV" "$(body "$r" | jq -r .metadata.resourceVersion)" "$lrv"
r=$(api GET "$CM?limit=100&labelSelector=page%3Dyes")
expect_eq "selector list" "$(body "$r" | jq '.items | length')" "5"
expect_eq "no remainingItemCount on the last page" "$(body "$r" | jq .metadata.remainingItemCount)" "null"
r=$(api GET "$CM?limit=2&continue=notatoken")
expect_eq "bad continue token 400" "$(code "$r")" "400"
api POST $CM '{"metadata":{"name":"late"}}' >/dev/null
api DELETE $CM/p5 >/dev/null
r=$(api GET "$CM?limit=100&continue=$tok")
expect_eq "continue after changes serves the first page's snapshot" \
  "$(body "$r" | jq -r '[.metadata.resourceVersion, ([.items[].metadata.name] | map(select(. == "late" or . == "p5")) | join(","))] | join(" ")')" "$lrv p5"
r=$(api GET "$CM?limit=2&continue=$(echo -n '{"v":"meta.k8s.io/v1","rv":1,"start":"default/a"}' | base64 -w0 | tr '+/' '-_' | tr -d '=')")
expect_eq "continue token without snapshot after a change is 410" "$(body "$r" | jq -r '(.code|tostring) + .reason')" "410Expired"
r=$(api GET "$CM?resourceVersion=999999")
expect_eq "future RV is 504" "$(body "$r" | jq -r '(.code|tostring) + .reason')" "504Timeout"
r=$(api GET "$CM?resourceVersion=abc")
expect_eq "malformed RV 400" "$(code "$r")" "400"
r=$(api GET "$CM?resourceVersionMatch=Exact")
expect_eq "resourceVersionMatch without RV 422" "$(code "$r")" "422"

# ---- watch ----
now=$(body "$(api GET $CM)" | jq -r .metadata.resourceVersion)
curl -s -N -m 3 "$EMU_URL$CM?watch=true&resourceVersion=$now&timeoutSeconds=2" >"$EMU_DIR/w1" &
w1pid=$!
sleep 0.3
api POST $CM '{"metadata":{"name":"w1","labels":{"sel":"in"}}}' >/dev/null
api PATCH $CM/w1 '{"metadata":{"labels":{"sel":"out"}}}' application/merge-patch+json >/dev/null
api DELETE $CM/w1 >/dev/null
wait $w1pid
expect_eq "watch from RV: event types" "$(jq -r .type "$EMU_DIR/w1" | tr '\n' ' ')" "ADDED MODIFIED DELETED "
expect_eq "one JSON document per line" "$(wc -l <"$EMU_DIR/w1" | tr -d ' ')" "3"
# Resume from the first event's RV: the rest is replayed.
rvA=$(head -1 "$EMU_DIR/w1" | jq -r .object.metadata.resourceVersion)
curl -s -N -m 2 "$EMU_URL$CM?watch=true&resourceVersion=$rvA&timeoutSeconds=1" >"$EMU_DIR/w2"
expect_eq "resume replays later events" "$(jq -r .type "$EMU_DIR/w2" | tr '\n' ' ')" "MODIFIED DELETED "
# Selector transitions.
curl -s -N -m 3 "$EMU_URL$CM?watch=true&resourceVersion=$now&timeoutSeconds=1&labelSelector=sel%3Din" >"$EMU_DIR/w3"
expect_eq "leaving the selector is DELETED" "$(jq -r .type "$EMU_DIR/w3" | tr '\n' ' ')" "ADDED DELETED "
# Initial events, bookmarks only when asked.
curl -s -N -m 3 "$EMU_URL$CM?watch=true&timeoutSeconds=1&labelSelector=page%3Dyes" >"$EMU_DIR/w4"
expect_eq "RV unset: initial ADDED" "$(jq -r .type "$EMU_DIR/w4" | sort | uniq -c | tr -s ' ')" " 4 ADDED"
curl -s -N -m 3 "$EMU_URL$CM?watch=true&timeoutSeconds=1&labelSelector=page%3Dyes&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true" >"$EMU_DIR/w5"
expect_eq "sendInitialEvents ends with the annotated bookmark" \
  "$(tail -1 "$EMU_DIR/w5" | jq -r '.type + " " + .object.metadata.annotations["k8s.io/initial-events-end"]')" "BOOKMARK true"
curl -s -N -m 8 "$EMU_URL$CM?watch=true&resourceVersion=$now&timeoutSeconds=5&allowWatchBookmarks=true&labelSelector=none%3Dnone" >"$EMU_DIR/w5b"
expect_eq "a bookmark shortly before the deadline" "$(jq -r .type "$EMU_DIR/w5b" | tr '\n' ' ')" "BOOKMARK "
curl -s -N -m 4 "$EMU_URL$CM?watch=true&resourceVersion=$now&timeoutSeconds=2&labelSelector=none%3Dnone" >"$EMU_DIR/w5c"
expect_eq "no bookmark unless asked" "$(wc -c <"$EMU_DIR/w5c" | tr -d ' ')" "0"
r=$(api GET "$CM?watch=true&sendInitialEvents=true")
expect_eq "sendInitialEvents without NotOlderThan 422" "$(code "$r")" "422"
# Too old: the ring holds 32 events.
for i in $(seq 1 40); do api POST $CM "{\"metadata\":{\"name\":\"fill$i\"}}" >/dev/null; done
curl -s -N -m 3 "$EMU_URL$CM?watch=true&resourceVersion=$now" >"$EMU_DIR/w6"
expect_eq "too old RV: ERROR 410 then close" "$(jq -r '.type + " " + (.object.code|tostring) + " " + .object.reason' "$EMU_DIR/w6")" "ERROR 410 Expired"
expect_contains "too old message" "$(jq -r .object.message "$EMU_DIR/w6")" "too old resource version: $now"

# ---- Events: two APIs over one store ----
r=$(api POST /apis/events.k8s.io/v1/namespaces/default/events '{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"ev1"},"eventTime":"2025-03-01T10:00:00.000000Z","reportingController":"example.com/engine","reportingInstance":"engine-0","action":"Reconcile","reason":"Synced","note":"all good","type":"Normal","regarding":{"apiVersion":"v1","kind":"ConfigMap","name":"a","namespace":"default"}}')
expect_eq "events.k8s.io create" "$(code "$r")" "201"
expect_eq "events.k8s.io view keeps its names" "$(body "$r" | jq -r .note)" "all good"
r=$(api GET /api/v1/namespaces/default/events/ev1)
expect_eq "core view renames note to message" "$(body "$r" | jq -r .message)" "all good"
expect_eq "core view renames regarding" "$(body "$r" | jq -r .involvedObject.name)" "a"
expect_eq "core view apiVersion" "$(body "$r" | jq -r .apiVersion)" "v1"
r=$(api GET "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Da,reason%3DSynced")
expect_eq "core event field selector" "$(body "$r" | jq -r '.items[0].metadata.name')" "ev1"
r=$(api POST /apis/events.k8s.io/v1/namespaces/default/events '{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"ev-bad"},"type":"Info","deprecatedCount":3}')
expect_eq "events.k8s.io validation 422" "$(code "$r")" "422"
expect_contains "events.k8s.io required fields" "$(body "$r" | jq -r .message)" "eventTime: Required value"
api POST /api/v1/namespaces/default/events '{"metadata":{"name":"ev2"},"involvedObject":{"kind":"ConfigMap","name":"b"},"reason":"Made","message":"core one","count":2,"source":{"component":"kopf"}}' >/dev/null
r=$(api GET /apis/events.k8s.io/v1/namespaces/default/events/ev2)
expect_eq "events.k8s.io view of a core event" "$(body "$r" | jq -r '.note + "/" + (.deprecatedCount|tostring) + "/" + .regarding.name')" "core one/2/b"

# ---- garbage collection ----
r=$(api POST $CM '{"metadata":{"name":"owner"}}')
ouid=$(body "$r" | jq -r .metadata.uid)
api POST $CM "{\"metadata\":{\"name\":\"dep\",\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"owner\",\"uid\":\"$ouid\"}]}}" >/dev/null
api DELETE $CM/owner >/dev/null
wait_code $CM/dep 404
expect_eq "background GC deletes the dependent" "$(code "$(api GET $CM/dep)")" "404"
r=$(api POST $CM '{"metadata":{"name":"owner2"}}')
ouid=$(body "$r" | jq -r .metadata.uid)
api POST $CM "{\"metadata\":{\"name\":\"dep2\",\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"owner2\",\"uid\":\"$ouid\"}]}}" >/dev/null
r=$(api DELETE $CM/owner2 '{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Orphan"}')
expect_eq "orphan adds the finalizer" "$(body "$r" | jq -r '.metadata.finalizers[0]')" "orphan"
wait_code $CM/owner2 404
expect_eq "orphan: owner gone" "$(code "$(api GET $CM/owner2)")" "404"
expect_eq "orphan: dependent kept without the reference" "$(body "$(api GET $CM/dep2)" | jq -r '.metadata.ownerReferences // "none"')" "none"
r=$(api POST $CM '{"metadata":{"name":"owner3"}}')
ouid=$(body "$r" | jq -r .metadata.uid)
api POST $CM "{\"metadata\":{\"name\":\"dep3\",\"finalizers\":[\"x/y\"],\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"owner3\",\"uid\":\"$ouid\",\"blockOwnerDeletion\":true}]}}" >/dev/null
r=$(api DELETE "$CM/owner3?propagationPolicy=Foreground")
expect_eq "foreground adds the finalizer" "$(body "$r" | jq -r '.metadata.finalizers[0]')" "foregroundDeletion"
sleep 0.5
expect_eq "foreground: owner waits for a blocking dependent" "$(code "$(api GET $CM/owner3)")" "200"
api PATCH $CM/dep3 '[{"op":"remove","path":"/metadata/finalizers"}]' application/json-patch+json >/dev/null
wait_code $CM/owner3 404
expect_eq "foreground: dependent gone" "$(code "$(api GET $CM/dep3)")" "404"
expect_eq "foreground: owner gone" "$(code "$(api GET $CM/owner3)")" "404"

# ---- Namespace lifecycle: finalizers and /finalize ----
api POST /api/v1/namespaces '{"metadata":{"name":"stuck"}}' >/dev/null
api POST /api/v1/namespaces/stuck/configmaps '{"metadata":{"name":"held","finalizers":["x/y"]}}' >/dev/null
r=$(api DELETE /api/v1/namespaces/stuck)
expect_eq "namespace delete answers the Terminating namespace" "$(body "$r" | jq -r .status.phase)" "Terminating"
r=$(api POST /api/v1/namespaces/stuck/configmaps '{"metadata":{"name":"new"}}')
expect_eq "no creates in a terminating namespace" "$(body "$r" | jq -r '(.code|tostring) + " " + .details.causes[0].reason')" "403 NamespaceTerminating"
sleep 0.3
api PATCH /api/v1/namespaces/stuck '{"metadata":{"labels":{"touched":"yes"}}}' application/merge-patch+json >/dev/null
expect_eq "a terminating namespace waits for its content" "$(code "$(api GET /api/v1/namespaces/stuck)")" "200"
ns=$(body "$(api GET /api/v1/namespaces/stuck)")
r=$(api PUT /api/v1/namespaces/stuck/finalize "$(echo "$ns" | jq -c '.spec.finalizers = []')")
expect_eq "PUT /finalize without the kubernetes finalizer removes it" "$(code "$(api GET /api/v1/namespaces/stuck)")" "404"

# ---- Deployment /scale ----
D=/apis/apps/v1/namespaces/default/deployments
api POST $D '{"metadata":{"name":"d1"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"d1"}},"template":{"metadata":{"labels":{"app":"d1"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}' >/dev/null
r=$(api GET $D/d1/scale)
expect_eq "GET scale" "$(body "$r" | jq -r '.kind + " " + .apiVersion + " " + (.spec.replicas|tostring) + " " + .status.selector')" "Scale autoscaling/v1 2 app=d1"
r=$(api PATCH $D/d1/scale '{"spec":{"replicas":-1}}' application/merge-patch+json)
expect_eq "negative replicas 422" "$(code "$r")" "422"
r=$(api PATCH $D/d1/scale '{"spec":{"replicas":5}}' application/merge-patch+json)
expect_eq "PATCH scale" "$(body "$r" | jq .spec.replicas)" "5"
expect_eq "deployment follows the scale" "$(body "$(api GET $D/d1)" | jq '.spec.replicas, .metadata.generation' | tr '\n' ' ')" "5 2 "

# ---- fault injection ----
curl -s -m 5 -X POST "http://127.0.0.1:$EMU_ADMIN/faults/watch-410?count=1" >/dev/null
curl -s -N -m 3 "$EMU_URL$CM?watch=true&resourceVersion=$(body "$(api GET $CM)" | jq -r .metadata.resourceVersion)" >"$EMU_DIR/w7"
expect_eq "injected 410" "$(jq -r .object.code "$EMU_DIR/w7")" "410"
curl -s -m 5 -X POST "http://127.0.0.1:$EMU_ADMIN/faults/errors?percent=100&code=429" >/dev/null
c=$(curl -s -m 5 -D "$EMU_DIR/h" -o /dev/null -w '%{http_code}' "$EMU_URL$CM")
expect_eq "injected 429" "$c" "429"
expect_contains "Retry-After" "$(cat "$EMU_DIR/h")" "Retry-After: 1"
curl -s -m 5 -X POST "http://127.0.0.1:$EMU_ADMIN/faults/errors?percent=100&code=503&method=POST&path=/api/v1/namespaces/default/secrets" >/dev/null
expect_eq "targeted fault hits its path and method" "$(code "$(api POST /api/v1/namespaces/default/secrets '{"metadata":{"name":"t"}}')")" "503"
expect_eq "targeted fault spares other requests" "$(code "$(api GET /api/v1/namespaces/default/secrets)")" "200"
curl -s -m 5 -X POST "http://127.0.0.1:$EMU_ADMIN/faults/reset" >/dev/null
curl -s -N -m 5 "$EMU_URL$CM?watch=true&timeoutSeconds=30" >"$EMU_DIR/w8" &
wp=$!
sleep 0.3
curl -s -m 5 -X POST "http://127.0.0.1:$EMU_ADMIN/faults/close-watches" >/dev/null
wait $wp
expect_eq "close-watches ends open watches at once" "$?" "0"
curl -s -N -m 5 "$EMU_URL$CM?watch=true&timeoutSeconds=30&allowWatchBookmarks=true" >/dev/null &
wp=$!
sleep 0.3
curl -s -m 5 -X POST "http://127.0.0.1:$EMU_ADMIN/faults/close-watches?abrupt=true" >/dev/null
api POST $CM '{"metadata":{"name":"after-abort"}}' >/dev/null
wait $wp
expect_eq "abrupt close drops the connection (curl sees an error)" "$([ $? -ne 0 ] && echo yes)" "yes"
expect_eq "server serves after an abrupt close" "$(code "$(api GET $CM/after-abort)")" "200"
curl -s -m 5 -X POST "http://127.0.0.1:$EMU_ADMIN/faults/latency?ms=300" >/dev/null
t0=$(date +%s%N)
api GET /version >/dev/null
t1=$(date +%s%N)
expect_eq "latency injected" "$([ $(((t1 - t0) / 1000000)) -ge 300 ] && echo yes)" "yes"
curl -s -m 5 -X POST "http://127.0.0.1:$EMU_ADMIN/faults/reset" >/dev/null

finish
