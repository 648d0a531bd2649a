#!/usr/bin/env bash
# Run client_bench against a fresh emulator on 127.0.0.1, and (when nghttpd
# from nghttp2-server is installed) against nghttpd serving the same small
# JSON object over TLS + ALPN h2, for the HTTP/2 multiplexing figures.
#   bench/client_bench.sh [N]     (build dir: $KUALA_BUILD_DIR or ./build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
n=${1:-5000}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

"$build/apiserver/kuala-apiserver" --port 0 >"$tmp/emu.out" 2>&1 &
pids+=($!)
url=""
for _ in $(seq 50); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/emu.out" || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "client_bench.sh: emulator did not start"; cat "$tmp/emu.out"; exit 1; }

h2args=()
if command -v nghttpd >/dev/null; then
  ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  (cd "$tmp" &&
    openssl req -x509 $ec -keyout ca.key -out ca.crt -subj /CN=bench-ca -days 1 2>/dev/null &&
    openssl req $ec -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1\n' >srv.ext &&
    openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt \
      -days 1 -extfile srv.ext 2>/dev/null)
  mkdir -p "$tmp/docs/api/v1/namespaces/default/configmaps"
  printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench"},"data":{"k":"v"}}' \
    >"$tmp/docs/api/v1/namespaces/default/configmaps/bench"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  nghttpd -a 127.0.0.1 -d "$tmp/docs" "$port" "$tmp/srv.key" "$tmp/srv.crt" >/dev/null 2>&1 &
  pids+=($!)
  sleep 0.3
  h2args=("https://127.0.0.1:$port" "$tmp/ca.crt")
else
  echo "client_bench.sh: nghttpd not installed (nghttp2-server): no HTTP/2 figures"
fi
"$build/bench/client_bench" "$url" "$n" "${h2args[@]}"
