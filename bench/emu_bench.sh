#!/usr/bin/env bash
# Start kuala-apiserver on a free port and run bench/emu_bench against it.
#   bench/emu_bench.sh [OBJECTS] [WATCHERS]     (defaults 100000 and 100)
set -euo pipefail
build=${KUALA_BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build}
out=$(mktemp)
"$build/apiserver/kuala-apiserver" --port 0 --history 200000 >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 100); do grep -q '^listening' "$out" && break; sleep 0.05; done
port=$(sed -n 's/^listening on http:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$out")
"$build/bench/emu_bench" "$port" "${1:-100000}" "${2:-100}"
echo "server RSS: $(awk '/VmHWM/ {print $2 " " $3}' /proc/$pid/status) peak"
