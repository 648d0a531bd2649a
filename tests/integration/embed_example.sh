#!/usr/bin/env bash
# examples/embed: a C daemon that embeds kuala, built against the
# *installed* library with pkg-config alone, runs two engines (one per
# emulator) on its own loop with a host module each. A Note in each
# cluster is saved through that cluster's host module (an asynchronous call
# the reconcile waits for) and gets the store's revision in its status; an
# edit saves revision 2; the stores never see the other cluster's notes;
# SIGTERM stops both engines and the daemon exits 0 with no handle left.
set -uo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
source "$src/tests/integration/lib/emulator_lib.sh"
command -v kubectl >/dev/null || { echo "SKIP: kubectl is missing"; exit 77; }
tmp=$(mktemp -d)
npid=
emu2_pid=
cleanup() {
  [ -n "$npid" ] && kill "$npid" 2>/dev/null
  [ -n "$emu2_pid" ] && kill "$emu2_pid" 2>/dev/null
  emu_stop
  rm -rf "$tmp"
}

cmake --install "$bin" --prefix "$tmp/prefix" >/dev/null || { echo "FAIL: install"; exit 1; }
pc=$(dirname "$(find "$tmp/prefix" -name kuala.pc | head -1)")
# shellcheck disable=SC2086
PKG_CONFIG_PATH=$pc make -s -C "$src/examples/embed" -f Makefile notes \
  CFLAGS="-O1 -Wall -Wextra -Werror ${KUALA_EXTRA_CFLAGS:-}" \
  LDFLAGS="${KUALA_EXTRA_CFLAGS:-}" >"$tmp/build.log" 2>&1
rc=$?
mv "$src/examples/embed/notes" "$tmp/notes" 2>/dev/null
[ $rc -eq 0 ] || { cat "$tmp/build.log"; echo "FAIL: the example does not build with pkg-config alone"; rm -rf "$tmp"; exit 1; }

emu_start
trap cleanup EXIT
kc1=$EMU_DIR/kubeconfig
"$EMU_BIN" --port 0 --kubeconfig-out "$tmp/kc2" >"$tmp/emu2.out" 2>"$tmp/emu2.err" &
emu2_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' "$tmp/emu2.out" 2>/dev/null && break; sleep 0.05; done
kc2=$tmp/kc2

"$tmp/notes" --kubeconfig "$kc1" --kubeconfig "$kc2" --exit-after 120 >"$tmp/notes.out" 2>"$tmp/notes.err" &
npid=$!
wait_lines "$tmp/notes.err" "ready (1 bundle, 1 controller)" 2 30 \
  || { cat "$tmp/notes.err"; fail "both engines ready"; }

export KUBECACHEDIR=$tmp/kcache
note() {
  printf 'apiVersion: embed.kuala.dev/v1\nkind: Note\nmetadata: {name: %s, namespace: default}\nspec: {text: "%s"}\n' "$2" "$3" |
    KUBECONFIG=$1 kubectl apply -f - >/dev/null
}
rev_of() {
  KUBECONFIG=$1 kubectl get note "$2" -o 'jsonpath={.status.revision}/{.status.observedGeneration}' 2>/dev/null
}
wait_rev() {
  local got=
  for _ in $(seq 150); do
    got=$(rev_of "$1" "$2")
    [ "$got" = "$3" ] && break
    sleep 0.1
  done
  echo "$got"
}
note "$kc1" shopping "milk"
note "$kc2" todo "write docs"
expect_eq "cluster 1: the note saved through its host module" "$(wait_rev "$kc1" shopping 1/1)" "1/1"
expect_eq "cluster 2: the note saved through its host module" "$(wait_rev "$kc2" todo 1/1)" "1/1"
note "$kc1" shopping "milk, eggs"
expect_eq "an edit is saved again (revision 2)" "$(wait_rev "$kc1" shopping 2/2)" "2/2"

kill -TERM "$npid"
wait "$npid"
rc=$?
npid=
expect_eq "SIGTERM: the daemon stops both engines and exits 0" "$rc" "0"
out=$(cat "$tmp/notes.out")
expect_contains "store 1 holds its note" "$out" "cluster0 default/shopping revision=2 text=milk, eggs"
expect_contains "store 2 holds its note" "$out" "cluster1 default/todo revision=1 text=write docs"
expect_eq "no note crossed to the other cluster's store" "$(grep -c 'cluster0 default/todo\|cluster1 default/shopping' "$tmp/notes.out")" "0"
expect_not_contains "no handle left open" "$(cat "$tmp/notes.err")" "handles left open"
if grep -q 'Sanitizer' "$tmp/notes.err"; then fail "sanitizer report"; cat "$tmp/notes.err"; fi
finish
