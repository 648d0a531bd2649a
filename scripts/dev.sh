#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job:
# `kuala dev` (the engine with the example controllers against a local
# kuala-apiserver), then apply every bundle's samples/ so reconciles happen
# at once. Drive it with the kubectl line it prints; Ctrl-C stops it.
# Extra arguments go to `kuala dev` (e.g. --exit-after=30).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh"
build=${KUALA_BUILD_DIR:-$root/build}
cd "$root"
log=$(mktemp)
"$build/core/kuala" dev "$@" 2> >(tee "$log" >&2) &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT INT TERM
for _ in $(seq 300); do
  grep -q "engine ready" "$log" && break
  kill -0 $pid 2>/dev/null || { echo "dev.sh: kuala dev exited"; exit 1; }
  sleep 0.1
done
kc=$(grep -o 'KUBECONFIG=[^ ]*' "$log" | head -1 | cut -d= -f2)
if [ -n "$kc" ]; then
  for s in controllers/*/samples; do
    [ -d "$s" ] && KUBECONFIG=$kc kubectl apply -f "$s" >&2
  done
  echo "dev.sh: samples applied; watch them with: KUBECONFIG=$kc kubectl get webapps -w" >&2
fi
wait $pid
