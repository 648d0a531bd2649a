#!/usr/bin/env bash
# kuala-apiserver must not lie (issue 14 items 5, 10-15; issue 13's large
# lists): names that are not path segments are 400, numbers Go refuses are
# refused, deep objects work on every path and survive a restart, a watch
# from a future revision gets upstream's "Too large resource version"
# ERROR, Deployment status catches up after SIGKILL, half-sent requests
# time out, connections are capped, unauthenticated callers cannot trigger
# faults, and a list bigger than the slow-client cap arrives whole.
source "$(dirname "$0")/lib/emulator_lib.sh"

if ! command -v jq >/dev/null || ! command -v curl >/dev/null || ! command -v python3 >/dev/null; then
  echo "SKIP: needs curl, jq and python3 (scripts/deps.sh installs them)"; exit 77
fi

code() { echo "${1%% *}"; }
body() { echo "${1#* }"; }
CM=/api/v1/namespaces/default/configmaps
W=/apis/demo.kuala.dev/v1/namespaces/default/widgets
CRD='{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.demo.kuala.dev"},"spec":{"group":"demo.kuala.dev","scope":"Namespaced","names":{"plural":"widgets","kind":"Widget"},"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}'
# deep N NAME: a Widget whose spec nests N objects
deep() {
  python3 -c 'import json,sys
v=1
for _ in range(int(sys.argv[1])): v={"a":v}
print(json.dumps({"apiVersion":"demo.kuala.dev/v1","kind":"Widget","metadata":{"name":sys.argv[2]},"spec":v}))' "$1" "$2"
}
widget_is_established() { [ "$(api GET $W | cut -d' ' -f1)" = 200 ]; }

DATA=$(mktemp -d /tmp/kuala-emu-hard.XXXXXX)
emu_start --data-dir "$DATA" --deployment-ready-delay 5000

# ---- item 10: names that cannot be path segments ----
for n in a b other; do api POST $CM "{\"metadata\":{\"name\":\"$n\"}}" >/dev/null; done
r=$(api DELETE "$CM/%00")
expect_eq "DELETE configmaps/%00 is 400" "$(code "$r")" "400"
expect_eq "... and deletes nothing" "$(api GET $CM | cut -d' ' -f2- | jq '.items|length')" "3"
expect_eq "GET other%00junk is 400 (not 'other')" "$(code "$(api GET "$CM/other%00junk")")" "400"
expect_eq "a NUL in the query is 400" "$(code "$(api GET "$CM?labelSelector=a%00b")")" "400"
for seg in . ..; do
  c=$(curl -s --path-as-is -o "$EMU_DIR/resp" -w '%{http_code}' -X DELETE "$EMU_URL$CM/$seg")
  expect_eq "DELETE configmaps/$seg is 400" "$c" "400"
  expect_contains "... with upstream's message" "$(cat "$EMU_DIR/resp")" "may not be '$seg'"
done
expect_eq "an encoded / in a name is 400" "$(code "$(api DELETE "$CM/a%2Fb")")" "400"
expect_eq "an encoded % in a name is 400" "$(code "$(api GET "$CM/a%25b")")" "400"
expect_eq "all three ConfigMaps are still there" "$(api GET $CM | cut -d' ' -f2- | jq '.items|length')" "3"

# ---- item 12: numbers Go's decoder refuses ----
api POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions "$CRD" >/dev/null
for _ in $(seq 50); do widget_is_established && break; sleep 0.1; done
for v in NaN Infinity -Infinity 1e400 -1e400 99999999999999999999999; do
  r=$(api POST $W "{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"Widget\",\"metadata\":{\"generateName\":\"n-\"},\"spec\":{\"x\":$v}}")
  expect_eq "number $v is refused" "$(code "$r")" "400"
done
r=$(api POST $W '{"apiVersion":"demo.kuala.dev/v1","kind":"Widget","metadata":{"name":"nan"},"spec":{"x":NaN}}')
expect_contains "NaN: Go's syntax error" "$(body "$r")" "invalid character 'N' looking for beginning of value"
r=$(api POST $W '{"apiVersion":"demo.kuala.dev/v1","kind":"Widget","metadata":{"name":"big"},"spec":{"x":1e400}}')
expect_contains "1e400: Go's range error" "$(body "$r")" "cannot unmarshal number 1e400 into Go value of type float64"
r=$(api POST $W '{"apiVersion":"demo.kuala.dev/v1","kind":"Widget","metadata":{"name":"edge"},"spec":{"i":9223372036854775807,"f":1.5e300,"s":"NaN"}}')
expect_eq "int64 max, large floats and \"NaN\" strings are fine" "$(code "$r")" "201"
expect_contains "... and served back with the same digits" "$(body "$(api GET $W/edge)")" '"i":9223372036854775807'
r=$(api PATCH $W/edge '{"spec":{"x":Infinity}}' application/merge-patch+json)
expect_eq "a merge patch with Infinity is refused" "$(code "$r")" "400"
expect_eq "the list still parses" "$(api GET $W | cut -d' ' -f2- | jq -r '.items|length')" "1"

# ---- item 11: deep objects, every path consistent, restart-proof ----
expect_eq "60 levels: create" "$(deep 60 d60 | curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @- "$EMU_URL$W")" "201"
expect_eq "500 levels: create" "$(deep 500 d500 | curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @- "$EMU_URL$W")" "201"
c=$(deep 600 d600 | curl -s -o "$EMU_DIR/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @- "$EMU_URL$W")
expect_eq "600 levels: refused with 400" "$c" "400"
expect_contains "... saying why" "$(cat "$EMU_DIR/resp")" "exceeded max depth"
for n in d60 d500; do
  expect_eq "$n: merge patch" "$(code "$(api PATCH $W/$n '{"metadata":{"labels":{"p":"1"}}}' application/merge-patch+json)")" "200"
  expect_eq "$n: server-side apply" "$(deep ${n#d} $n | curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @- "$EMU_URL$W/$n?fieldManager=test")" "200"
  api GET $W/$n | cut -d' ' -f2- >"$EMU_DIR/obj.json"
  expect_eq "$n: GET + PUT back" "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' --data-binary @"$EMU_DIR/obj.json" "$EMU_URL$W/$n")" "200"
done
deep_patch=$(python3 -c 'import json
v=1
for _ in range(100): v={"a":v}
print(json.dumps([{"op":"add","path":"/spec"+"/a"*450+"/b","value":v}]))')
expect_eq "a JSON patch may not build a deeper object than a body may be" \
  "$(code "$(api PATCH $W/d500 "$deep_patch" application/json-patch+json)")" "400"

# ---- item 13 (setup): a Deployment whose status is still pending ----
r=$(api POST /apis/apps/v1/namespaces/default/deployments '{"metadata":{"name":"web"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}')
expect_eq "deployment created" "$(code "$r")" "201"

kill -9 "$EMU_PID"; wait "$EMU_PID" 2>/dev/null
OLD_PORT=$EMU_PORT
OLD_REV=$(jq -r .metadata.resourceVersion <<<"$(body "$r")")
rm -rf "$EMU_DIR"
emu_start --data-dir "$DATA" --deployment-ready-delay 100
expect_not_contains "nothing skipped on load" "$(cat "$EMU_DIR/err")" "skipping"
expect_eq "d500 survives the restart" "$(code "$(api GET $W/d500)")" "200"
expect_eq "d60 survives the restart" "$(code "$(api GET $W/d60)")" "200"
expect_eq "d500: DELETE after the restart" "$(code "$(api DELETE $W/d500)")" "200"
expect_eq "d60: DELETE" "$(code "$(api DELETE $W/d60)")" "200"
expect_eq "the server is still up" "$(code "$(api GET $W)")" "200"

# ---- item 13: Deployment status catches up after SIGKILL + restart ----
ok=""
for _ in $(seq 50); do
  d=$(api GET /apis/apps/v1/namespaces/default/deployments/web | cut -d' ' -f2-)
  if [ "$(jq -r '.status.observedGeneration // 0' <<<"$d")" = "$(jq -r .metadata.generation <<<"$d")" ] &&
     [ "$(jq -r '.status.readyReplicas // 0' <<<"$d")" = 2 ]; then ok=1; break; fi
  sleep 0.1
done
expect_eq "deployment status re-armed after the restart" "$ok" "1"
kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null
rm -rf "$EMU_DIR" "$DATA"

# ---- item 5: a watch from a revision the server has not reached ----
emu_start
rev=$(api GET $CM | cut -d' ' -f2- | jq -r .metadata.resourceVersion)
curl -s -N -m 10 "$EMU_URL$CM?watch=true&resourceVersion=$((rev + 1000))" >"$EMU_DIR/w"
expect_eq "future RV: one ERROR event" "$(jq -r .type "$EMU_DIR/w")" "ERROR"
expect_eq "... code 504" "$(jq -r .object.code "$EMU_DIR/w")" "504"
expect_eq "... reason Timeout" "$(jq -r .object.reason "$EMU_DIR/w")" "Timeout"
expect_eq "... cause ResourceVersionTooLarge" "$(jq -r '.object.details.causes[0].reason' "$EMU_DIR/w")" "ResourceVersionTooLarge"
expect_eq "... upstream's message" "$(jq -r .object.message "$EMU_DIR/w")" "Timeout: Too large resource version: $((rev + 1000)), current: $rev"
expect_eq "... retry after 1 s" "$(jq -r .object.details.retryAfterSeconds "$EMU_DIR/w")" "1"
# A revision reached while the watch waits (< 3 s) is served normally.
curl -s -N -m 4 "$EMU_URL$CM?watch=true&resourceVersion=$((rev + 1))" >"$EMU_DIR/w2" &
sleep 0.5
api POST $CM '{"metadata":{"name":"r1"}}' >/dev/null
api POST $CM '{"metadata":{"name":"r2"}}' >/dev/null
wait_lines "$EMU_DIR/w2" '"ADDED"' 1 5
expect_eq "future RV reached in time: events after it" "$(jq -r .object.metadata.name "$EMU_DIR/w2" | head -1)" "r2"
# get and list wait the same 3 s for a future revision (upstream's watch
# cache, waitUntilFreshAndBlock), then answer the same 504.
now=$(api GET $CM | cut -d' ' -f2- | jq -r .metadata.resourceVersion)
t0=$(date +%s%N)
out=$(api GET "$CM?resourceVersion=$((now + 1000))")
waited=$((($(date +%s%N) - t0) / 1000000))
expect_eq "list with a future RV: 504 too" "$(code "$out")" "504"
expect_eq "... after waiting about 3 s for the revision" "$([ "$waited" -ge 2500 ] && echo yes || echo "no (${waited} ms)")" "yes"
expect_eq "... upstream's message" "$(body "$out" | jq -r .message)" "Timeout: Too large resource version: $((now + 1000)), current: $now"
expect_eq "... cause ResourceVersionTooLarge" "$(body "$out" | jq -r '.details.causes[0].reason')" "ResourceVersionTooLarge"
expect_eq "... Retry-After: 1" "$(curl -s -i "$EMU_URL$CM/r1?resourceVersion=$((now + 1000))" | tr -d '\r' | sed -n 's/^Retry-After: //Ip')" "1"
expect_eq "get with a future RV: 504 too" "$(code "$(api GET "$CM/r1?resourceVersion=$((now + 1000))")")" "504"
# A revision reached while a get or list waits is served normally.
now=$(api GET $CM | cut -d' ' -f2- | jq -r .metadata.resourceVersion)
curl -s -m 5 -o "$EMU_DIR/g" -w '%{http_code}' "$EMU_URL$CM/r1?resourceVersion=$((now + 2))" >"$EMU_DIR/gc" &
gpid=$!
curl -s -m 5 -o "$EMU_DIR/l" -w '%{http_code}' "$EMU_URL$CM?resourceVersion=$((now + 2))" >"$EMU_DIR/lc" &
lpid=$!
sleep 0.5
api POST $CM '{"metadata":{"name":"r3"}}' >/dev/null
api POST $CM '{"metadata":{"name":"r4"}}' >/dev/null
wait "$gpid" "$lpid" || true
expect_eq "future RV reached in time: get answers 200" "$(cat "$EMU_DIR/gc")" "200"
expect_eq "... with the object" "$(jq -r .metadata.name "$EMU_DIR/g")" "r1"
expect_eq "future RV reached in time: list answers 200" "$(cat "$EMU_DIR/lc")" "200"
expect_eq "... with what the revision holds" "$(jq -r '[.items[].metadata.name] | index("r4") != null' "$EMU_DIR/l")" "true"
kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null
rm -rf "$EMU_DIR"

# ---- item 15: authentication before faults ----
emu_start --token s3cret --admin-port 0
ADM="http://127.0.0.1:$EMU_ADMIN"
expect_eq "admin without the token: 401" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$ADM/faults/pause")" "401"
expect_eq "admin with the token: 200" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret' -X POST "$ADM/faults/pause")" "200"
expect_eq "paused: an unauthenticated call is refused at once, not held" "$(curl -s -m 3 -o /dev/null -w '%{http_code}' "$EMU_URL/api/v1/namespaces")" "401"
expect_eq "paused: an authenticated call is held" "$(curl -s -m 1 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret' "$EMU_URL/api/v1/namespaces")" "000"
curl -s -o /dev/null -H 'Authorization: Bearer s3cret' -X POST "$ADM/faults/reset"
curl -s -o /dev/null -H 'Authorization: Bearer s3cret' -X POST "$ADM/faults/latency?ms=3000"
expect_eq "latency: an unauthenticated call is refused at once" "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$EMU_URL/api/v1/namespaces")" "401"
kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null
rm -rf "$EMU_DIR"

# ---- item 14: timeouts and the connection cap; issue 13: large lists ----
emu_start --read-header-timeout 500 --read-body-timeout 500 --idle-timeout 1000
out=$(python3 - "$EMU_PORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
def closed_within(data, secs):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    s.settimeout(secs)
    try:
        return s.recv(100) == b""
    except socket.timeout:
        return False
print("half_header", closed_within(b"GET /api HTTP/1.1\r\nHost: x\r\n", 5))
print("half_body", closed_within(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\n"
                                 b"Host: x\r\nContent-Length: 100\r\n\r\n{", 5))
print("silent", closed_within(b"", 5))
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
s.settimeout(5)
first = s.recv(10000)
print("idle", first.startswith(b"HTTP/1.1 200") and s.recv(100) == b"")
PY
)
echo "$out"
expect_contains "a half-sent header is closed" "$out" "half_header True"
expect_contains "a half-sent body is closed" "$out" "half_body True"
expect_contains "a silent connection is closed" "$out" "silent True"
expect_contains "an idle keep-alive connection is closed" "$out" "idle True"
kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null
rm -rf "$EMU_DIR"

# Default timeouts (32 s / 60 s): 5000 stalled requests stay open meanwhile.
emu_start --max-connections 5100 --max-pending 65536
out=$(python3 - "$EMU_PORT" "$EMU_PID" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def rss_kb():
    return int(open("/proc/%s/status" % pid).read().split("VmRSS:")[1].split()[0])
before = rss_kb()
socks = []
for _ in range(5000):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"metadata\":")
    socks.append(s)
time.sleep(0.3)
print("rss_growth_mb", (rss_kb() - before) // 1024)
more = [socket.create_connection(("127.0.0.1", port)) for _ in range(150)]
last = more[-1]
last.settimeout(5)
print("over_cap", last.recv(40).split(b"\r\n")[0].decode())
PY
)
echo "$out"
growth=$(sed -n 's/^rss_growth_mb //p' <<<"$out")
expect_eq "5000 half-sent requests hold < 32 MB (got ${growth} MB)" "$([ -n "$growth" ] && [ "$growth" -lt 32 ] && echo yes)" "yes"
expect_contains "past the connection cap: 503" "$out" "over_cap HTTP/1.1 503 Service Unavailable"
expect_eq "the server still answers" "$(code "$(api GET /api)")" "200"

python3 - "$EMU_URL" <<'PY'
import json, sys, urllib.request
u = sys.argv[1] + "/api/v1/namespaces/default/configmaps"
for i in range(300):
    body = json.dumps({"metadata": {"name": "big%03d" % i}, "data": {"v": "x" * 10000}}).encode()
    urllib.request.urlopen(urllib.request.Request(u, data=body, method="POST",
                                                  headers={"Content-Type": "application/json"})).read()
PY
curl -s --limit-rate 3M -o "$EMU_DIR/list" "$EMU_URL$CM"
expect_eq "a 3 MB list through a 64 KiB cap (slow reader) arrives whole" "$(jq '.items|length' "$EMU_DIR/list")" "300"
expect_eq "... in key order, last item intact" "$(jq -r '.items[299].data.v|length' "$EMU_DIR/list")" "10000"
curl -s -o "$EMU_DIR/list2" "$EMU_URL$CM"
expect_eq "a fast reader gets the same bytes" "$(cmp -s "$EMU_DIR/list" "$EMU_DIR/list2" && echo same)" "same"
# A streaming list (watch, sendInitialEvents) is as large as the list and
# goes through the same cap: its initial events are written as the reader
# drains, never cut off; the initial-events-end bookmark follows them. 20 MB
# (more than the loopback socket buffers hold), read at 10 MB/s.
python3 - "$EMU_URL" <<'PY'
import json, sys, urllib.request
base = sys.argv[1] + "/api/v1/namespaces"
urllib.request.urlopen(urllib.request.Request(base, data=json.dumps({"metadata": {"name": "stream"}}).encode(),
                                              method="POST", headers={"Content-Type": "application/json"})).read()
for i in range(1000):
    body = json.dumps({"metadata": {"name": "s%04d" % i}, "data": {"v": "x" * 20000}}).encode()
    urllib.request.urlopen(urllib.request.Request(base + "/stream/configmaps", data=body, method="POST",
                                                  headers={"Content-Type": "application/json"})).read()
PY
rv=$(curl -s "$EMU_URL/api/v1/namespaces/stream/configmaps?limit=1" | jq -r .metadata.resourceVersion)
curl -s --limit-rate 10M -m 30 -o "$EMU_DIR/stream" \
  "$EMU_URL/api/v1/namespaces/stream/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5" || true
expect_eq "a 20 MB streaming list through a 64 KiB cap: every initial event" \
  "$(jq -r 'select(.type=="ADDED") | .object.metadata.name' "$EMU_DIR/stream" | grep -c '^s')" "1000"
expect_eq "... then the initial-events-end bookmark at the list's revision" \
  "$(jq -r 'select(.type=="BOOKMARK" and .object.metadata.annotations["k8s.io/initial-events-end"]=="true") | .object.metadata.resourceVersion' "$EMU_DIR/stream" | head -1)" "$rv"
finish
