#!/usr/bin/env bash
# deploy/generate.sh [KUALA_BIN] [OUT]: regenerate deploy/kubernetes/rbac.yaml
# (least-privilege RBAC for every bundle in controllers/ plus what the engine
# itself needs) with `kuala rbac`. Run it after changing a bundle's watches
# or permissions; tests/integration/deploy_manifests.sh fails while the
# committed file differs from a fresh generation.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kuala=${1:-$root/build/core/kuala}
out=${2:-$root/deploy/kubernetes/rbac.yaml}
cd "$root"
bundles=()
for d in controllers/*/; do
  [ -f "$d/main.lua" ] && bundles+=("${d%/}")
done
"$kuala" rbac --namespace kuala-system --service-account kuala "${bundles[@]}" >"$out"
