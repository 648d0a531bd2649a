#!/usr/bin/env bash
# `kuala dev` and its emulator live and die together:
#  - SIGKILL of `kuala dev` (no chance to clean up) still ends its
#    kuala-apiserver and removes the emulator's temporary directory (the
#    guard process gets PR_SET_PDEATHSIG and cleans up);
#  - SIGTERM stops everything and exits 0, leaving nothing behind.
set -euo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- kuala dev log:"; cat "$tmp/dev.log" 2>/dev/null || true; exit 1; }

alive() { # PID: running and not a zombie
  [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

start_dev() { # start kuala dev with its own TMPDIR; sets DEV, GUARD, EMU
  mkdir -p "$tmp/t"
  TMPDIR="$tmp/t" "$bin/core/kuala" dev "$src/tests/integration/bundles/echo" >"$tmp/dev.log" 2>&1 &
  DEV=$!
  pids+=("$DEV")
  for _ in $(seq 300); do grep -q "controllers running" "$tmp/dev.log" && break; sleep 0.1; done
  grep -q "controllers running" "$tmp/dev.log" || fail "kuala dev did not become ready"
  GUARD=$(pgrep -P "$DEV" | head -1)
  [ -n "$GUARD" ] || fail "no guard process under kuala dev"
  EMU=$(pgrep -P "$GUARD" | head -1)
  [ -n "$EMU" ] || fail "no emulator under the guard"
  pids+=("$EMU")
  grep -q kuala-apiserver "/proc/$EMU/cmdline" || fail "the guard's child is not kuala-apiserver"
  ls "$tmp/t" | grep -q "^kuala-dev-" || fail "no kuala-dev-* temporary directory"
}

gone_within() { # SECONDS: wait until the emulator and the temp dir are gone
  for _ in $(seq $(($1 * 10))); do
    if ! alive "$EMU" && [ -z "$(ls -A "$tmp/t")" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

# 1. SIGKILL.
start_dev
kill -KILL "$DEV"
wait "$DEV" 2>/dev/null || true
gone_within 15 || fail "after SIGKILL of kuala dev: emulator alive=$(alive "$EMU" && echo yes || echo no), left: $(ls -A "$tmp/t")"
echo "ok: SIGKILL of kuala dev ends the emulator and removes its directory"

# 2. SIGTERM.
start_dev
kill -TERM "$DEV"
set +e
wait "$DEV"
rc=$?
set -e
[ $rc -eq 0 ] || fail "kuala dev exited $rc after SIGTERM, want 0"
gone_within 15 || fail "after SIGTERM: emulator alive=$(alive "$EMU" && echo yes || echo no), left: $(ls -A "$tmp/t")"
echo "ok: SIGTERM of kuala dev stops everything, exit 0"
echo "dev_lifecycle: ok"
