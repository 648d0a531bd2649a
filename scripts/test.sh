#!/usr/bin/env bash
# README command 2: install what is missing, build, run the whole suite.
# One ctest run covers the C unit tests, the Lua specs (busted under LuaJIT),
# the integration tests and the style checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$@"
build=${KUALA_BUILD_DIR:-$root/build}
cd "$build"
ctest --output-on-failure -j "$(nproc)" --timeout 900
