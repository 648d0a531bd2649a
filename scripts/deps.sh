#!/usr/bin/env bash
# Install exactly the Debian packages kuala needs that are missing on this
# machine. Idempotent: a second run installs nothing. Works as root on a bare
# Debian 12 with only gcc and cmake (sudo is used when not root).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates
  luajit libluajit-5.1-dev
  libuv1-dev libcurl4-openssl-dev libjson-c-dev libssl-dev libyaml-dev
  libhttp-parser-dev libsqlite3-dev
  check lua-busted lua-check
  clang-format python3 curl
  clang libclang-rt-dev
  nghttp2-server
  jq
  umoci skopeo
  prometheus
  gnuplot-nox python3-kubernetes
)
# clang + libclang-rt-dev (libclang_rt.fuzzer, ASan, UBSan): the libFuzzer
# targets of tests/fuzz (fuzz/* in ctest); the main build stays on gcc.
# prometheus (with promtool): tests/integration/ops_metrics.sh scrapes kuala
# with a real Prometheus on 127.0.0.1 and lints /metrics with promtool.
# gnuplot-nox, python3-kubernetes: scripts/bench.sh plots its results and runs
# the Python client as a peer (not needed by the test suite).
# kubectl is a judge of the emulator in the test suite; it comes preinstalled
# on these machines (1.32). Debian's kubernetes-client is 1.20 and lacks
# --subresource, so we never install it; tests that need kubectl say so and
# are skipped with a reason when it is absent.

# The emulator's client-node tests (tests/js) pin @kubernetes/client-node in
# package-lock.json: `npm ci` there when node and npm exist and it is missing
# (run on every exit path below).
js_deps() {
  local js
  js="$(cd "$(dirname "$0")/.." && pwd)/tests/js"
  if [ -f "$js/package-lock.json" ] && command -v npm >/dev/null &&
    [ ! -d "$js/node_modules/@kubernetes/client-node" ]; then
    echo "deps: npm ci in tests/js"
    (cd "$js" && npm ci --no-audit --no-fund) ||
      echo "deps: npm ci failed; the client-node tests will be skipped"
  fi
}
trap js_deps EXIT

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
