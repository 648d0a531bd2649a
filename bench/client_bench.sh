#!/usr/bin/env bash
# Run client_bench against a fresh emulator on 127.0.0.1.
#   bench/client_bench.sh [N]     (build dir: $KUALA_BUILD_DIR or ./build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
out=$(mktemp)
"$build/apiserver/kuala-apiserver" --port 0 >"$out" 2>&1 &
emu=$!
trap 'kill $emu 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$out" || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "client_bench.sh: emulator did not start"; cat "$out"; exit 1; }
"$build/bench/client_bench" "$url" "${1:-5000}"
