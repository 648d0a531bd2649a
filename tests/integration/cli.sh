#!/usr/bin/env bash
# The `kuala` command line, through the binary:
#  - every subcommand accepts -h and --help (exit 0, usage on stdout);
#    unknown flags and commands exit 2;
#  - `kuala check` exits 0 and says ok for good bundles, exits 1 naming the
#    file and line of each broken one (and still checks the others);
#  - a missing kubeconfig names every source that was tried;
#  - --log-level / --log-format are accepted among a command's flags, in
#    both --flag=value and --flag value forms;
#  - the shipped API client has no client-side rate limit, and
#    --kube-api-qps / --kube-api-burst turn one on (read from the engine's
#    startup line against the emulator).
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
kuala=$bin/core/kuala
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. Help and usage errors.
for cmd in "" run dev check crd version help; do
  for h in -h --help; do
    set +e
    # shellcheck disable=SC2086
    out=$("$kuala" $cmd $h 2>"$tmp/err")
    rc=$?
    set -e
    [ $rc -eq 0 ] || fail "kuala $cmd $h: exit $rc, want 0 ($(cat "$tmp/err"))"
    case "$out" in *usage:*) ;; *) fail "kuala $cmd $h printed no usage on stdout" ;; esac
  done
done
set +e
"$kuala" run --no-such-flag x >/dev/null 2>&1; rc1=$?
"$kuala" no-such-command >/dev/null 2>&1; rc2=$?
"$kuala" check --no-such-flag >/dev/null 2>&1; rc3=$?
"$kuala" >/dev/null 2>&1; rc4=$?
set -e
[ "$rc1 $rc2 $rc3 $rc4" = "2 2 2 2" ] || fail "usage errors exit $rc1 $rc2 $rc3 $rc4, want 2 2 2 2"
"$kuala" --version | grep -q "^kuala [0-9]" || fail "kuala --version"
echo "ok: help and usage exit codes"

# 2. kuala check.
out=$("$kuala" check "$src/controllers/webapp" "$src/tests/integration/bundles/echo") \
  || fail "kuala check of good bundles failed: $out"
[ "$(grep -c '^ok ' <<<"$out")" -eq 2 ] || fail "kuala check printed: $out"
grep -q "bundle echo, 1 controller, 1 CRD" <<<"$out" || fail "kuala check summary: $out"
mkdir -p "$tmp/syntax" "$tmp/runtime" "$tmp/lib/lib" "$tmp/empty" "$tmp/nomain"
printf 'local kuala = require("kuala")\n\nlocal x = = 1\n' >"$tmp/syntax/main.lua"
printf 'local kuala = require("kuala")\nkuala.controller { name = "c", watch = 42,\n  reconcile = function() end }\n' \
  >"$tmp/runtime/main.lua"
printf 'require("lib.util")\n' >"$tmp/lib/main.lua"
printf 'local helper = {}\nreturn nil + 1, helper\n' >"$tmp/lib/lib/util.lua"
printf 'local x = 1 -- declares nothing\nreturn x\n' >"$tmp/empty/main.lua"
set +e
"$kuala" check "$tmp/syntax" "$src/controllers/webapp" "$tmp/runtime" "$tmp/lib" "$tmp/empty" \
  "$tmp/nomain" >"$tmp/check.out" 2>"$tmp/check.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "kuala check of broken bundles: exit $rc, want 1"
grep -q "^ok .*webapp" "$tmp/check.out" || fail "the good bundle beside broken ones was not checked"
grep -q "syntax/main.lua:3:" "$tmp/check.err" || fail "no syntax/main.lua:3 in: $(cat "$tmp/check.err")"
grep -q "runtime/main.lua:2" "$tmp/check.err" || fail "no runtime/main.lua:2 in: $(cat "$tmp/check.err")"
grep -q "lib/util.lua:2:" "$tmp/check.err" || fail "no lib/util.lua:2 in: $(cat "$tmp/check.err")"
grep -q "empty.*declares no controller" "$tmp/check.err" || fail "empty bundle not reported"
grep -q "nomain" "$tmp/check.err" || fail "a directory without main.lua not reported"
# A misspelt type is a warning with file and line; the bundle still passes.
mkdir -p "$tmp/typo"
cat >"$tmp/typo/main.lua" <<'LUA'
local kuala = require("kuala")
kuala.controller { name = "typo", watch = "v1/ConfigMap",
  reconcile = function(ctx, req)
    return ctx:get("apps/v1/Deploymnet", req.name)
  end }
LUA
"$kuala" check "$tmp/typo" >"$tmp/typo.out" 2>"$tmp/typo.err" \
  || fail "a misspelt type must only warn: $(cat "$tmp/typo.err")"
grep -q "warning: .*typo/main.lua:4: .*apps/v1/Deploymnet" "$tmp/typo.err" \
  || fail "no warning with file:line for the misspelt type: $(cat "$tmp/typo.err")"
echo "ok: kuala check"

# 3. A missing kubeconfig names every source tried.
set +e
env -u KUBECONFIG -u KUBERNETES_SERVICE_HOST HOME="$tmp/nohome" \
  "$kuala" run "$src/tests/integration/bundles/echo" >/dev/null 2>"$tmp/nokc.err"
rc=$?
KUBECONFIG="$tmp/a:$tmp/b" HOME="$tmp/nohome" \
  "$kuala" run "$src/tests/integration/bundles/echo" >/dev/null 2>"$tmp/nokc2.err"
rc2=$?
set -e
[ $rc -eq 1 ] && [ $rc2 -eq 1 ] || fail "missing kubeconfig: exit $rc/$rc2, want 1"
for want in "--kubeconfig: not given" '$KUBECONFIG: not set' "$tmp/nohome/.kube/config" \
  "in-cluster service account: not in a cluster"; do
  grep -qF -- "$want" "$tmp/nokc.err" || fail "no '$want' in: $(cat "$tmp/nokc.err")"
done
grep -qF "\$KUBECONFIG ($tmp/a:$tmp/b)" "$tmp/nokc2.err" || fail "KUBECONFIG not named: $(cat "$tmp/nokc2.err")"
echo "ok: missing kubeconfig names the sources"

# 4. Global flags among a command's flags; client rate limit defaults and flags.
export KUBECONFIG="$tmp/kubeconfig"
"$bin/apiserver/kuala-apiserver" --port 0 --kubeconfig-out "$KUBECONFIG" >"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "^listening on" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
grep -q "^listening on" "$tmp/emu.out" || { cat "$tmp/emu.err"; fail "emulator did not start"; }
run_briefly() { # LOG ARGS...: kuala run until it is ready, then --exit-after stops it
  local log=$1
  shift
  "$kuala" run "$@" --exit-after=2 "$src/tests/integration/bundles/echo" >"$log" 2>&1 \
    || fail "kuala run $* failed: $(cat "$log")"
}
run_briefly "$tmp/default.log" --log-format json
grep -q '"msg":"API client".*"client_qps":"none"' "$tmp/default.log" \
  || fail "default client rate limit is not none: $(grep 'API client' "$tmp/default.log")"
run_briefly "$tmp/qps.log" --kube-api-qps 5 --log-level=info
grep -q 'API client .*client_qps=5 client_burst=10' "$tmp/qps.log" \
  || fail "--kube-api-qps 5: $(grep 'API client' "$tmp/qps.log")"
run_briefly "$tmp/burst.log" --kube-api-qps=300 --kube-api-burst=400 --log-level warn
if grep -q 'API client' "$tmp/burst.log"; then fail "--log-level warn still logs info lines"; fi
run_briefly "$tmp/burst2.log" --kube-api-qps=300 --kube-api-burst=400
grep -q 'client_qps=300 client_burst=400' "$tmp/burst2.log" \
  || fail "--kube-api-burst: $(grep 'API client' "$tmp/burst2.log")"
echo "ok: global flags and client rate limit flags"
echo "cli: ok"
