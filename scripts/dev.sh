#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job.
# The main job is `kuala dev`: the engine with the example controllers
# against the embedded API emulator. Until `kuala dev` exists this runs what
# is built so far and says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh"
build=${KUALA_BUILD_DIR:-$root/build}
kuala="$build/core/kuala"
if "$kuala" help 2>/dev/null | grep -q '^  dev '; then
  exec "$kuala" dev "$root/controllers" "$@"
fi
echo "dev.sh: 'kuala dev' is not built yet; running what exists:"
"$kuala" version
