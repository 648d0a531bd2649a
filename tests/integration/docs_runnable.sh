#!/usr/bin/env bash
# Every block of docs/*.md marked `<!-- runnable: KIND NAME -->` runs
# (scripts/docs_runnable.py says how): bundles must load, shown `kuala crd`
# output must match, sh blocks run against a fresh kuala-apiserver.
# Then the runner must reject a page with a broken bundle and a stale output.
set -euo pipefail
src=${KUALA_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${KUALA_BINARY_DIR:-$src/build}
kuala=$bin/core/kuala
emu=$bin/apiserver/kuala-apiserver
run() { timeout 300 python3 "$src/scripts/docs_runnable.py" "$1" "$kuala" "$emu"; }

run "$src/docs"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/broken.md" <<'MD'
<!-- runnable: bundle broken -->
```lua
local kuala = require("kuala")
kuala.crd { group = "demo.kuala.dev", version = "v1", kind = "Broken",
  schema = { spec = { n = { type = "int" } } } }
```

<!-- runnable: bundle fine -->
```lua
require("kuala").crd { group = "demo.kuala.dev", version = "v1", kind = "Fine" }
```

<!-- runnable: crd fine -->
```yaml
apiVersion: apiextensions.k8s.io/v1
kind: SomethingElse
```

<!-- runnable: sh -->
```sh
kubectl get configmap does-not-exist
```
MD
if out=$(run "$tmp"); then
  echo "FAIL: the runner accepted broken blocks:"; echo "$out"; exit 1
fi
for want in "FAIL $tmp/broken.md:1: bundle broken" "FAIL $tmp/broken.md:13: crd fine" \
            "FAIL $tmp/broken.md:19: sh" "3 failures"; do
  grep -qF "$want" <<<"$out" || { echo "FAIL: runner output lacks '$want':"; echo "$out"; exit 1; }
done
echo "docs_runnable: ok"
