#!/usr/bin/env bash
# deploy/rootfs.sh BINARY OUTDIR: lay out the runtime filesystem of the kuala
# image in OUTDIR. Used by deploy/Dockerfile (final stage) and by
# scripts/image.sh (daemonless OCI build), so both images hold the same files:
#   /usr/bin/kuala            the stripped binary (Lua SDK embedded as bytecode)
#   the shared libraries it loads, at the paths the loader looks them up,
#   and the loader itself (the ldd closure: nothing else);
#   /etc/ssl/certs/ca-certificates.crt   for HTTPS to the API server;
#   /etc/passwd, /etc/group   one non-root user, kuala (UID/GID 65532);
#   /etc/nsswitch.conf        so cluster DNS names resolve;
#   /tmp                      an empty mount point (the pod mounts an emptyDir).
set -euo pipefail
bin=${1:?usage: deploy/rootfs.sh BINARY OUTDIR}
out=${2:?usage: deploy/rootfs.sh BINARY OUTDIR}
[ -x "$bin" ] || { echo "rootfs: $bin is not an executable" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/usr/bin" "$out/etc/ssl/certs" "$out/tmp"
chmod 1777 "$out/tmp"
cp "$bin" "$out/usr/bin/kuala"
strip --strip-unneeded "$out/usr/bin/kuala"

# The ldd closure: every library the binary (and, transitively, each library)
# needs, copied with its real contents under the path the loader uses.
ldd "$bin" | awk '/=> \// {print $3} /^\s*\/[^ ]*ld-linux/ {print $1}' | sort -u |
while read -r lib; do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done
# /lib64 is a link on usrmerged Debian: keep the loader reachable there too.
if [ -e "$out/lib64/ld-linux-x86-64.so.2" ] || [ -e /lib64/ld-linux-x86-64.so.2 ]; then
  mkdir -p "$out/lib64"
  cp -L /lib64/ld-linux-x86-64.so.2 "$out/lib64/ld-linux-x86-64.so.2"
fi

ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "rootfs: $ca missing (install ca-certificates)" >&2; exit 1; }
cp "$ca" "$out$ca"
printf 'root:x:0:0:root:/root:/sbin/nologin\nkuala:x:65532:65532:kuala:/nonexistent:/sbin/nologin\n' \
  >"$out/etc/passwd"
printf 'root:x:0:\nkuala:x:65532:\n' >"$out/etc/group"
printf 'hosts: files dns\n' >"$out/etc/nsswitch.conf"
