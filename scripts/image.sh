#!/usr/bin/env bash
# scripts/image.sh [OUTDIR]: build the kuala container image without a
# daemon, as an OCI image layout (umoci) plus a docker-archive tarball
# (skopeo) that `docker load` / `podman load` accept. The image holds the
# same files as deploy/Dockerfile's final stage (deploy/rootfs.sh lays them
# out): the kuala binary, the shared libraries it loads, CA certificates and
# one non-root user. Entrypoint `kuala`, command `run`, user 65532.
#
# Writes OUTDIR/oci (layout, tag kuala:VERSION), OUTDIR/kuala-image.tar and,
# when KUALA_IMAGE_RESULTS=1, bench/results/image.json with the sizes.
# Uses the build in $KUALA_BUILD_DIR (default ./build); builds it if needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/image}
build=${KUALA_BUILD_DIR:-$root/build}
for tool in umoci skopeo; do
  command -v $tool >/dev/null || { echo "image: $tool missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
[ -x "$build/core/kuala" ] || "$root/scripts/build.sh" >/dev/null
version=$("$build/core/kuala" --version | awk '{print $2}')
tag="kuala:$version"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out/oci" "$out/kuala-image.tar"
mkdir -p "$out"
umoci init --layout "$out/oci"
umoci new --image "$out/oci:$version"
# --rootless: no need for real root ownership on the host side; the image's
# files are owned by root inside (umoci records uid/gid 0 for them).
umoci unpack --rootless --image "$out/oci:$version" "$work/bundle" >/dev/null
"$root/deploy/rootfs.sh" "$build/core/kuala" "$work/bundle/rootfs"
umoci repack --image "$out/oci:$version" "$work/bundle"
umoci config --image "$out/oci:$version" \
  --author "kuala" \
  --config.user 65532:65532 \
  --config.workingdir / \
  --config.entrypoint /usr/bin/kuala \
  --config.cmd run \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.label org.opencontainers.image.title=kuala \
  --config.label "org.opencontainers.image.version=$version"
umoci gc --layout "$out/oci"
skopeo copy --quiet "oci:$out/oci:$version" "docker-archive:$out/kuala-image.tar:$tag"

# Compressed size: what a registry stores and a node pulls (the gzip layer
# blobs, config and manifest of the OCI layout).
compressed=$(find "$out/oci/blobs" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
unpacked=$(du -sb "$work/bundle/rootfs" | awk '{print $1}')
nlibs=$(find "$work/bundle/rootfs" -name '*.so*' -type f | wc -l)
binsize=$(stat -c %s "$work/bundle/rootfs/usr/bin/kuala")
awk -v t="$tag" -v d="$out/oci" -v c="$compressed" -v u="$unpacked" -v n="$nlibs" -v b="$binsize" \
  'BEGIN {printf "image: %s in %s (compressed %.1f MiB, unpacked %.1f MiB, %d shared libraries, binary %.0f KiB)\n", t, d, c/1048576, u/1048576, n, b/1024}'
if [ "${KUALA_IMAGE_RESULTS:-0}" = 1 ]; then
  cat >"$root/bench/results/image.json" <<JSON
{
  "command": "KUALA_IMAGE_RESULTS=1 scripts/image.sh",
  "tag": "$tag",
  "compressed_bytes": $compressed,
  "unpacked_bytes": $unpacked,
  "shared_libraries": $nlibs,
  "binary_bytes": $binsize,
  "goal_compressed_bytes": 20971520
}
JSON
  echo "image: wrote bench/results/image.json"
fi
