#!/usr/bin/env bash
# Configure and build kuala into ./build (or $KUALA_BUILD_DIR).
# Extra arguments go to cmake's configure step (e.g. -DKUALA_SANITIZE=ON).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=${KUALA_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
