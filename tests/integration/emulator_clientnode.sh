#!/usr/bin/env bash
# kuala-apiserver judged by @kubernetes/client-node (pinned in
# tests/js/package-lock.json): an informer syncs, follows changes and
# recovers from dropped watches and 410s. See tests/js/informer.test.js.
source "$(dirname "$0")/lib/emulator_lib.sh"

JS=$(cd "$(dirname "$0")/../js" && pwd)
if ! command -v node >/dev/null; then
  echo "SKIP: node not installed"; exit 77
fi
if [ ! -d "$JS/node_modules/@kubernetes/client-node" ]; then
  echo "SKIP: run 'npm ci' in tests/js (scripts/deps.sh does it)"; exit 77
fi

emu_start --admin-port 0
cd "$JS"
KUBECONFIG=$EMU_DIR/kubeconfig EMU_ADMIN=$EMU_ADMIN timeout 90 node informer.test.js
rc=$?
expect_eq "client-node informer test" "$rc" "0"
finish
