#!/usr/bin/env bash
# The container image (scripts/image.sh, daemonless: umoci + skopeo) holds
# everything kuala needs and nothing else: it is built, unpacked the way a
# container runtime would, and the binary is run inside it with chroot as
# the image's non-root user: `kuala --version`, `kuala crd` on an example
# bundle, and `kuala run` reconciling a WebApp against the emulator over
# loopback (so TLS and HTTP libraries load too). The docker-archive tarball
# must list the same config. Skipped (77) when umoci/skopeo or root are
# missing, with the reason.
set -uo pipefail
src=${KUALA_SOURCE_DIR:?}
bin=${KUALA_BINARY_DIR:?}
source "$src/tests/integration/lib/emulator_lib.sh"
if [ -n "${KUALA_SANITIZER:-}" ]; then
  echo "SKIP: the image is built from a plain build (this one is sanitized)"; exit 77
fi
for t in umoci skopeo chroot; do
  command -v $t >/dev/null || { echo "SKIP: $t is missing"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "SKIP: chroot needs root"; exit 77; }

tmp=$(mktemp -d)
kpid=
cleanup() {
  [ -n "$kpid" ] && kill "$kpid" 2>/dev/null
  emu_stop
  rm -rf "$tmp"
}
KUALA_BUILD_DIR=$bin "$src/scripts/image.sh" "$tmp/out" >"$tmp/image.log" 2>&1 \
  || { cat "$tmp/image.log"; echo "FAIL: scripts/image.sh"; rm -rf "$tmp"; exit 1; }
cat "$tmp/image.log"
version=$("$bin/core/kuala" --version | awk '{print $2}')

umoci unpack --image "$tmp/out/oci:$version" "$tmp/bundle" >/dev/null \
  || { echo "FAIL: umoci unpack"; rm -rf "$tmp"; exit 1; }
rootfs=$tmp/bundle/rootfs
cfg=$tmp/bundle/config.json

# Only what the image is meant to hold: no shell, no package manager.
extra=$(cd "$rootfs" && find . -type f ! -path './usr/bin/kuala' ! -name '*.so*' \
  ! -path './etc/passwd' ! -path './etc/group' ! -path './etc/nsswitch.conf' \
  ! -path './etc/ssl/certs/ca-certificates.crt')
expect_eq "no files beyond binary, libraries, CA bundle and user database" "$extra" ""
expect_eq "no shell in the image" "$(ls "$rootfs/bin/sh" "$rootfs/usr/bin/sh" 2>/dev/null)" ""
expect_eq "entrypoint" "$(jq -c '.process.args' "$cfg")" '["/usr/bin/kuala","run"]'
expect_eq "runs as the non-root user" "$(jq -c '[.process.user.uid, .process.user.gid]' "$cfg")" '[65532,65532]'
expect_contains "docker-archive tarball names the tag" \
  "$(tar -xOf "$tmp/out/kuala-image.tar" manifest.json)" "kuala:$version"

as_user() { chroot --userspec=65532:65532 "$rootfs" "$@"; }
expect_eq "kuala --version inside the image" "$(as_user /usr/bin/kuala --version 2>&1)" "kuala $version"
cp -r "$src/controllers/webapp" "$rootfs/tmp/webapp"
chmod -R a+rX "$rootfs/tmp/webapp"
crd=$(as_user /usr/bin/kuala crd /tmp/webapp 2>&1)
expect_contains "kuala crd on the example bundle inside the image" "$crd" "kind: CustomResourceDefinition"

# The engine itself, inside the image, against the emulator on loopback.
emu_start
trap cleanup EXIT
cp "$EMU_DIR/kubeconfig" "$rootfs/tmp/kubeconfig"
chmod a+r "$rootfs/tmp/kubeconfig"
# chroot directly, not through the as_user function: a backgrounded function
# runs in a subshell, and the SIGTERM below must reach kuala itself.
chroot --userspec=65532:65532 "$rootfs" /usr/bin/kuala run --kubeconfig /tmp/kubeconfig --exit-after=60 /tmp/webapp \
  >"$tmp/run.log" 2>&1 &
kpid=$!
export KUBECONFIG=$EMU_DIR/kubeconfig KUBECACHEDIR=$tmp/kcache
wait_lines "$tmp/run.log" "engine ready" 1 20 || { cat "$tmp/run.log"; fail "engine in the image never got ready"; }
kubectl apply -f "$src/controllers/webapp/samples/" >/dev/null 2>&1
got=
for _ in $(seq 100); do
  got=$(kubectl get deploy hello -o 'jsonpath={.metadata.ownerReferences[0].kind}' 2>/dev/null)
  [ -n "$got" ] && break
  sleep 0.2
done
expect_eq "the engine in the image reconciled a WebApp into a Deployment" "$got" "WebApp"
kill -TERM "$kpid"
wait "$kpid"
rc=$?
expect_eq "SIGTERM: the engine in the image exits 0" "$rc" "0"
[ "$rc" = 0 ] || cat "$tmp/run.log"
kpid=
finish
