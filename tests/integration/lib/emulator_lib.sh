# Helpers sourced by tests/integration/emulator_*.sh (not a test itself;
# it exits 0 at once when run directly).
#
# emu_start [args...]   start kuala-apiserver on a free port; sets EMU_PID,
#                       EMU_PORT, EMU_URL, EMU_ADMIN (admin port, if asked
#                       for with --admin-port 0) and EMU_DIR (temp dir)
# check NAME CMD...     run CMD, fail the test with NAME if it fails
# expect_eq NAME GOT WANT
# expect_contains NAME HAYSTACK NEEDLE
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  exit 0
fi
set -uo pipefail

EMU_BIN=${KUALA_BINARY_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/build}/apiserver/kuala-apiserver
FAILS=0
STEPS=0

emu_start() {
  EMU_DIR=$(mktemp -d /tmp/kuala-emu-test.XXXXXX)
  "$EMU_BIN" --port 0 --kubeconfig-out "$EMU_DIR/kubeconfig" "$@" >"$EMU_DIR/out" 2>"$EMU_DIR/err" &
  EMU_PID=$!
  for _ in $(seq 1 100); do
    if grep -q '^listening on ' "$EMU_DIR/out" 2>/dev/null; then break; fi
    sleep 0.05
  done
  EMU_URL=$(sed -n 's/^listening on \(.*\)$/\1/p' "$EMU_DIR/out")
  EMU_PORT=${EMU_URL##*:}
  EMU_ADMIN=$(sed -n 's/^admin listening on http:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$EMU_DIR/out")
  if [ -z "$EMU_URL" ]; then
    echo "FAIL: emulator did not start"; cat "$EMU_DIR/err"; exit 1
  fi
  trap emu_stop EXIT
}

emu_stop() {
  if [ -n "${EMU_PID:-}" ]; then
    kill "$EMU_PID" 2>/dev/null
    wait "$EMU_PID" 2>/dev/null
  fi
  # A sanitizer build reports memory errors on the emulator's stderr.
  if grep -q 'Sanitizer' "${EMU_DIR:-/nonexistent}/err" 2>/dev/null; then
    echo "FAIL: the emulator reported a sanitizer error:"
    cat "$EMU_DIR/err"
    rm -rf "${EMU_DIR:-/nonexistent}"
    exit 1
  fi
  # Any leftover background job of the test (bounded watches).
  jobs -p | xargs -r kill 2>/dev/null
  rm -rf "${EMU_DIR:-/nonexistent}"
}

fail() {
  echo "FAIL: $*"
  FAILS=$((FAILS + 1))
}

expect_eq() {
  STEPS=$((STEPS + 1))
  if [ "$2" != "$3" ]; then fail "$1: got [$2], want [$3]"; else echo "ok: $1"; fi
}

expect_contains() {
  STEPS=$((STEPS + 1))
  case "$2" in
    *"$3"*) echo "ok: $1" ;;
    *) fail "$1: [$3] not found in [$2]" ;;
  esac
}

expect_not_contains() {
  STEPS=$((STEPS + 1))
  case "$2" in
    *"$3"*) fail "$1: [$3] unexpectedly found in [$2]" ;;
    *) echo "ok: $1" ;;
  esac
}

# HTTP helper: api METHOD PATH [BODY [CONTENT-TYPE]] → prints "CODE BODY"
api() {
  local method=$1 path=$2 body=${3:-} ctype=${4:-application/json}
  if [ -n "$body" ]; then
    curl -s -m 10 -o "$EMU_DIR/resp" -w '%{http_code}' -X "$method" -H "Content-Type: $ctype" \
      --data-binary "$body" "$EMU_URL$path"
  else
    curl -s -m 10 -o "$EMU_DIR/resp" -w '%{http_code}' -X "$method" "$EMU_URL$path"
  fi
  printf ' '
  cat "$EMU_DIR/resp"
}

# wait_lines FILE PATTERN COUNT [SECONDS]: until FILE has COUNT lines
# matching PATTERN (grep -c), or the time is up.
wait_lines() {
  local i
  for i in $(seq 1 $((${4:-15} * 10))); do
    if [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "$3" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

finish() {
  echo "$STEPS checks, $FAILS failures"
  [ "$FAILS" -eq 0 ]
}
