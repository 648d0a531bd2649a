#!/usr/bin/env bash
# docs/lua-api.md documents exactly the public annotated functions of
# lua/kuala/*.lua, with the parameter names of their ---@param lines.
# Also shows the checker can fail: a copy of the doc with one heading
# renamed and one parameter dropped must be rejected.
set -euo pipefail
src=${KUALA_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
python3 "$src/scripts/check_lua_api.py" "$src"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/docs" && cp -r "$src/lua" "$tmp/lua"
sed -e 's/^### `Context:get(what, name, namespace)`/### `Context:get(what, name)`/' \
    -e 's/^### `kuala.util.contains(list, v)`/### `kuala.util.contains_all(list, v)`/' \
    "$src/docs/lua-api.md" > "$tmp/docs/lua-api.md"
if out=$(python3 "$src/scripts/check_lua_api.py" "$tmp"); then
  echo "FAIL: the checker accepted a doc with a wrong signature" >&2; exit 1
fi
for want in "Context:get documents parameters" "kuala.util.contains_all (kuala.util) is documented" \
            "kuala.util.contains (kuala.util) is public and annotated but not documented"; do
  grep -qF "$want" <<<"$out" || { echo "FAIL: checker output lacks '$want':" >&2; echo "$out" >&2; exit 1; }
done
echo "docs_api: ok"
