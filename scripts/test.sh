#!/usr/bin/env bash
# README command 2: install what is missing, build, run the whole suite
# twice: once as built normally (./build), then once more built with
# AddressSanitizer + UndefinedBehaviorSanitizer (./build-asan). Each run is
# one ctest over the C unit tests, the Lua specs (busted under LuaJIT), the
# integration tests and the style checks. Fails when either run fails.
#
# Extra arguments go to the normal build's cmake configure step.
# KUALA_BUILD_DIR / KUALA_ASAN_BUILD_DIR move the two build directories;
# KUALA_TEST_SANITIZERS=0 skips the sanitizer run (for a quick local check;
# CI always runs it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
asan=${KUALA_ASAN_BUILD_DIR:-$root/build-asan}
jobs=$(nproc)

"$root/scripts/deps.sh"

status=0
start=$SECONDS
echo "== test.sh: normal build ($build)"
KUALA_BUILD_DIR=$build "$root/scripts/build.sh" "$@"
(cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 900) || status=1
normal_s=$((SECONDS - start))

asan_s=0
if [ "${KUALA_TEST_SANITIZERS:-1}" != 0 ]; then
  start=$SECONDS
  echo "== test.sh: ASan + UBSan build ($asan)"
  KUALA_BUILD_DIR=$asan "$root/scripts/build.sh" -DKUALA_SANITIZE=ON
  (cd "$asan" && ctest --output-on-failure -j "$jobs" --timeout 900) || status=1
  asan_s=$((SECONDS - start))
fi

echo "== test.sh: normal ${normal_s}s, ASan+UBSan ${asan_s}s (build + tests each): $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit $status
