#!/usr/bin/env bash
# tests/fuzz/run.sh: build the libFuzzer targets with clang (ASan + UBSan,
# a build directory of their own: the main build uses gcc) and run each
# for a bounded time. docs/reliability.md, section Fuzzing, explains it.
#
#   tests/fuzz/run.sh                      # every target, 20 s each
#   tests/fuzz/run.sh --time 600 json      # one target, 10 minutes
#   tests/fuzz/run.sh --build-only         # just build
#   tests/fuzz/run.sh --no-build --time 15 watch   # (ctest: fuzz/<target>)
#
# Options: --time SECONDS per target (default 20), --build-dir DIR
# (default build-fuzz in the source tree), --jobs N (libFuzzer workers per
# target, default 1), --build-only, --no-build. Targets: json json_lua
# compact watch selector kubeconfig apiserver jscan (default all).
#
# Each run first replays tests/fuzz/regressions/<target>/* (every crash
# found so far, which must stay fixed), then fuzzes starting from the
# committed seeds in tests/fuzz/corpus/<target>/ plus a scratch corpus
# (the committed seeds are never written to). A crash leaves its input in
# <build-dir>/artifacts/<target>/: fix the bug, then copy the input into
# tests/fuzz/regressions/<target>/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
time_s=20
build="$root/build-fuzz"
jobs=1
do_build=1
do_run=1
targets=()
all=(json json_lua compact watch selector kubeconfig apiserver jscan)

while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_s="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --build-only) do_run=0; shift ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
mkdir -p "$build"
build="$(cd "$build" && pwd)"

cc="${KUALA_FUZZ_CC:-$(command -v clang || command -v clang-14 || true)}"
if [ -z "$cc" ]; then
  echo "run.sh: clang not found (apt-get install clang libclang-rt-dev)" >&2
  exit 2
fi

if [ "$do_build" = 1 ]; then
  cmake -S "$root" -B "$build" -DKUALA_FUZZ=ON -DKUALA_WERROR=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$cc" >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; exit 1; }
  tgts=()
  for t in "${targets[@]}"; do tgts+=(--target "fuzz_$t"); done
  nice cmake --build "$build" -j"${KUALA_FUZZ_BUILD_JOBS:-2}" "${tgts[@]}" >"$build/build.log" 2>&1 ||
    { tail -50 "$build/build.log" >&2; exit 1; }
  echo "fuzz: built ${targets[*]} in $build"
fi
[ "$do_run" = 1 ] || exit 0

# Leaks are bugs too; UBSan stops at the first report.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: $bin missing (build first)" >&2; exit 1; }
  art="$build/artifacts/$t"
  mkdir -p "$art"
  reg="$here/regressions/$t"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
    if ! "$bin" -runs=1 "$reg"/* >"$art/regressions.log" 2>&1; then
      echo "fuzz: $t: a regression input fails again (log: $art/regressions.log)" >&2
      tail -30 "$art/regressions.log" >&2
      failed=1
      continue
    fi
  fi
  work="$(mktemp -d)"
  if [ "$jobs" -gt 1 ]; then cd "$art"; fi
  seeds=()
  [ -d "$here/corpus/$t" ] && seeds=("$here/corpus/$t")
  par=()
  # (libFuzzer's -jobs writes fuzz-N.log into the current directory.)
  [ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
  dict=()
  [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
  if "$bin" -max_total_time="$time_s" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "${par[@]}" -artifact_prefix="$art/" "${dict[@]}" \
    "$work" "${seeds[@]}" >"$art/run.log" 2>&1; then
    echo "fuzz: $t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$art/run.log" |
      grep -o '[0-9]*$' || echo '?') runs in ${time_s}s, no crash"
  else
    echo "fuzz: $t: FAILED; input saved in $art/ (log: $art/run.log)" >&2
    grep -E "ERROR|SUMMARY|==[0-9]+==|abort|Test unit written" "$art/run.log" | head -20 >&2
    failed=1
  fi
  rm -rf "$work"
done
exit $failed
