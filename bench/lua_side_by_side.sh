#!/usr/bin/env bash
# Side-by-side Lua micro benchmark: a baseline lua_bench binary (built from
# another commit) and this build's, run alternately PAIRS times, then the
# median (min-max) of each rate and the ratio of the medians. On a shared
# machine only runs taken in the same minutes compare; this interleaves them.
#
#   bench/lua_side_by_side.sh BASELINE_LUA_BENCH [PAIRS [RECONCILES]]
#   e.g. git worktree add /tmp/base c3e13ce && cmake -S /tmp/base -B /tmp/base/build \
#          && cmake --build /tmp/base/build --target lua_bench
#        bench/lua_side_by_side.sh /tmp/base/build/bench/lua_bench 5
# Build dir: $KUALA_BUILD_DIR or ./build. Not part of the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
base=${1:?usage: bench/lua_side_by_side.sh BASELINE_LUA_BENCH [PAIRS [RECONCILES]]}
pairs=${2:-5}
n=${3:-200000}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "# lua_side_by_side: $pairs pairs of lua_bench --reconciles $n, before = $base, after = $build/bench/lua_bench (git $(git -C "$root" rev-parse --short HEAD))"
echo "# $(date -u +%FT%TZ), $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$pairs"); do
  for side in before after; do
    bin=$base
    [ "$side" = after ] && bin=$build/bench/lua_bench
    echo "## pair $i: $side"
    "$bin" --reconciles "$n" 2>&1 | grep -E '^[a-z]+_reconciles_per_second' | tee -a "$tmp.$side"
  done
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# median (min-max) of each rate; ratio: after / before of the medians"
for k in noop get apply interleaved; do
  for side in before after; do
    awk -v k="${k}_reconciles_per_second" '$1 == k { print $2 }' "$tmp.$side" | sort -g |
      awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
             printf "%.0f %.0f %.0f\n", m, v[1], v[NR] }' >"$tmp.$side.$k"
  done
  read -r mb lb hb <"$tmp.before.$k"
  read -r ma la ha <"$tmp.after.$k"
  awk -v k="$k" -v mb="$mb" -v lb="$lb" -v hb="$hb" -v ma="$ma" -v la="$la" -v ha="$ha" \
    'BEGIN { printf "%-12s before %9d (%d-%d)  after %9d (%d-%d)  ratio %.2f\n", k, mb, lb, hb, ma, la, ha, ma / mb }'
done
rm -f "$tmp".*
