#!/usr/bin/env bash
# Initial sync of N existing ConfigMaps: `kuala run bench/bundles/sync` (the
# engine: bundle, controller, work queue) against the bare informer
# (build/bench/sync_bench), interleaved, REPS runs each, on the emulator.
#
#   bench/sync_bench.sh [N [REPS]]            (default 10000 3)
#   KUALA_SYNC_BINS="main=/tmp/kuala-main new=build/core/kuala" bench/sync_bench.sh 10000 3
#
# Each run prints: wall seconds from launch to the sync (kuala: the log line
# "cache synced"; sync_bench: its own line), CPU seconds and VmHWM / VmRSS of
# the process at that moment (from /proc), then the process is stopped.
# KUALA_SYNC_INFORMERS lists bare-informer variants, "name=sync_bench args"
# separated by ';' (default: one, the library defaults); KUALA_SYNC_RUN_ARGS
# are added to `kuala run`; KUALA_SYNC_PEERS=1 adds the client-node informer
# (bench/peers/sync-client-node.js) to each round; KUALA_SYNC_EMU_ARGS go to
# the emulator (e.g. "--max-pending 1073741824": it sends a streaming list's
# initial events without backpressure and drops a watch with more than
# 64 MiB unsent, about 40k of these objects; the informer then falls back).
# Needs node and bench/peers/node_modules (npm ci in bench/peers).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
n=${1:-10000}
reps=${2:-3}
bins=${KUALA_SYNC_BINS:-kuala=$build/core/kuala}
tmp=$(mktemp -d)
emu_pid=
cleanup() {
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck disable=SC2086
"$build/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$tmp/kc" ${KUALA_SYNC_EMU_ARGS:-} \
  >"$tmp/emu.log" 2>&1 &
emu_pid=$!
for _ in $(seq 100); do [ -s "$tmp/kc" ] && break; sleep 0.1; done
export KUBECONFIG=$tmp/kc
node "$root/bench/peers/create-configmaps.js" bench 0 "$n" >/dev/null

# measure NAME REGEX CMD...: wall/CPU/memory until REGEX appears in the output.
measure() {
  local name=$1 re=$2
  shift 2
  local log=$tmp/run.log
  : >"$log"
  local t0 t1
  t0=$(date +%s%N)
  "$@" >>"$log" 2>&1 &
  local pid=$!
  while ! grep -q -E "$re" "$log"; do
    if ! kill -0 "$pid" 2>/dev/null && ! grep -q -E "$re" "$log"; then
      echo "$name: exited early: $(tail -1 "$log")"
      return 1
    fi
    sleep 0.01
  done
  t1=$(date +%s%N)
  local ut st hz cpu hwm rss
  if [ -r "/proc/$pid/stat" ]; then
    read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
    hz=$(getconf CLK_TCK)
    cpu=$(awk -v u="$ut" -v s="$st" -v hz="$hz" 'BEGIN { printf "%.2f", (u + s) / hz }')
    hwm=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
    rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
  else # sync_bench prints its own figures and exits
    cpu=$(sed -n 's/.*cpu_seconds=\([0-9.]*\).*/\1/p' "$log")
    hwm=$(sed -n 's/.*vmhwm_mb=\([0-9.]*\).*/\1/p' "$log")
    rss=$(sed -n 's/.*vmrss_mb=\([0-9.]*\).*/\1/p' "$log")
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf '%-12s n=%-7s wall=%ss cpu=%ss vmhwm=%sMB vmrss=%sMB %s\n' "$name" "$n" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" "$cpu" "$hwm" "$rss" \
    "$(grep -o 'fallback=[01]' "$log" || true)"
}

# Informer variants: "name=sync_bench arguments" separated by ';'.
variants=${KUALA_SYNC_INFORMERS:-informer=}
for rep in $(seq "$reps"); do
  for b in $bins; do
    # shellcheck disable=SC2086
    measure "${b%%=*}" 'cache synced' "${b#*=}" run ${KUALA_SYNC_RUN_ARGS:-} \
      "$root/bench/bundles/sync"
  done
  IFS=';' read -ra vs <<<"$variants"
  for v in "${vs[@]}"; do
    # shellcheck disable=SC2086
    measure "${v%%=*}" '^sync_bench ' "$build/bench/sync_bench" ${v#*=}
  done
  if [ -n "${KUALA_SYNC_PEERS:-}" ]; then
    measure client-node '^synced ' node "$root/bench/peers/sync-client-node.js" bench
  fi
done
