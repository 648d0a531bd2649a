#!/usr/bin/env bash
# Converge benchmark (issue 13 §1): N Echo custom resources exist (created
# with kubectl before kuala starts); `kuala run` with bench/bundles/converge
# writes a ConfigMap for each (server-side apply) and its status. Measured:
# from kuala's first log line to the N-th "echoed" line (log timestamps),
# and kuala's CPU seconds (utime + stime from /proc) and peak RSS (VmHWM)
# at that point. A fresh
# emulator per run; prints every run, then the median and min-max.
#
#   bench/converge_bench.sh [N [RUNS [extra kuala run flags...]]]
#   e.g. bench/converge_bench.sh 2000 3
#        bench/converge_bench.sh 2000 1 --kube-api-qps=50 --kube-api-burst=100
# Build dir: $KUALA_BUILD_DIR or ./build. Not part of the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
n=${1:-2000}
runs=${2:-3}
shift $(($# > 2 ? 2 : $#))
extra=("$@")
bundle=$root/bench/bundles/converge
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
export KUBECACHEDIR=$tmp/kcache

# The N objects, one YAML stream.
for i in $(seq "$n"); do
  printf -- '---\napiVersion: e2e.kuala.dev/v1\nkind: Echo\nmetadata:\n  name: e%d\n  namespace: default\nspec:\n  message: m%d\n' "$i" "$i"
done >"$tmp/echos.yaml"

ms_of() { # "2026-12-06T03:42:02.270Z ..." -> milliseconds since the epoch
  date -u -d "$(cut -c1-23 <<<"$1")" +%s%3N
}

secs=()
cpus=()
rsss=()
for r in $(seq "$runs"); do
  export KUBECONFIG=$tmp/kubeconfig.$r
  "$build/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$KUBECONFIG" >"$tmp/emu.$r" 2>&1 &
  emu=$!
  pids+=("$emu")
  for _ in $(seq 100); do grep -q "^listening on" "$tmp/emu.$r" && break; sleep 0.1; done
  "$build/core/kuala" crd "$bundle" | kubectl apply -f - >/dev/null
  kubectl wait --for=condition=Established crd/echos.e2e.kuala.dev --timeout=60s >/dev/null
  kubectl create -f "$tmp/echos.yaml" >/dev/null
  log=$tmp/kuala.$r.log
  "$build/core/kuala" run "${extra[@]}" "$bundle" >"$log" 2>&1 &
  k=$!
  pids+=("$k")
  while [ "$(grep -c ' echoed ' "$log" || true)" -lt "$n" ]; do
    kill -0 "$k" 2>/dev/null || { cat "$log"; echo "converge_bench: kuala exited"; exit 1; }
    sleep 0.05
  done
  read -r ut st < <(awk '{print $14, $15}' "/proc/$k/stat")
  rss=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$k/status")
  hz=$(getconf CLK_TCK)
  first=$(head -1 "$log")
  last=$(grep ' echoed ' "$log" | sed -n "${n}p")
  s=$(awk -v a="$(ms_of "$first")" -v b="$(ms_of "$last")" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
  c=$(awk -v u="$ut" -v t="$st" -v hz="$hz" 'BEGIN { printf "%.2f", (u + t) / hz }')
  secs+=("$s")
  cpus+=("$c")
  rsss+=("$rss")
  echo "run $r: $n objects converged in $s s, kuala CPU $c s, peak RSS $rss MB"
  [ -n "${KUALA_BENCH_KEEP:-}" ] && cp "$log" "$KUALA_BENCH_KEEP.$r"
  kill -TERM "$k"
  wait "$k" || true
  kill "$emu"
  wait "$emu" 2>/dev/null || true
done

stats() { # values... -> "median (min-max)"
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.2f (%.2f-%.2f)", m, v[1], v[NR] }'
}
echo "converge_bench: N=$n runs=$runs flags=[${extra[*]}] on $(nproc) cores"
echo "  seconds:     $(stats "${secs[@]}")"
echo "  CPU seconds: $(stats "${cpus[@]}")"
echo "  peak RSS MB: $(stats "${rsss[@]}")"
