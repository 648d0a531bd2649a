#!/usr/bin/env bash
# Hot reload latency with N objects cached (default 10000), R runs (default
# 5), against a fresh emulator on 127.0.0.1. Writes bench/results/reload.json.
#   bench/reload_bench.sh [N] [R]     (build dir: $KUALA_BUILD_DIR or ./build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
n=${1:-10000}
runs=${2:-5}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$build/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$tmp/kubeconfig" >"$tmp/emu.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^listening on' "$tmp/emu.out" && break; sleep 0.1; done
grep -q '^listening on' "$tmp/emu.out" || { echo "reload_bench.sh: emulator did not start"; cat "$tmp/emu.out"; exit 1; }
mkdir -p "$root/bench/results"
"$build/bench/reload_bench" "$tmp/kubeconfig" "$n" "$runs" "$root/bench/results/reload.json"
