#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job:
# `kuala dev` (the engine with the example controllers against a local
# kuala-apiserver; it applies every bundle's samples/ itself once ready and
# reloads a bundle when one of its files is saved). Drive it with the
# kubectl line it prints; Ctrl-C stops it.
# Extra arguments go to `kuala dev` (e.g. --exit-after=30).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh"
build=${KUALA_BUILD_DIR:-$root/build}
cd "$root"
exec "$build/core/kuala" dev "$@"
