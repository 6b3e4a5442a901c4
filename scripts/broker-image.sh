#!/usr/bin/env bash
# Builds the broker image conker-broker:latest with the same tools as the example image (umoci):
# conker-broker with the shared libraries it links (resolved with ldd, copied from this host),
# the system CA bundle (for Intel PCS or a PCCS), a non-root user (uid/gid 10001), /secret as
# the secret directory and ENTRYPOINT conker-broker, so that the seed's command line works
# verbatim after the image name:
#   podman run --net=host -v $PWD/local-secret:/secret conker-broker \
#       -m -i 0.0.0.0 -p 3333 -v tdx_ecdsa -a nullattester -s /secret/secret.json -d <id> -w <rtmr1> --mrtd <mrtd>
# The result is an OCI layout at BUILD/images/conker-broker (tag "latest"); load it with
#   skopeo copy oci:BUILD/images/conker-broker:latest containers-storage:localhost/conker-broker:latest
#   scripts/broker-image.sh BUILD
set -euo pipefail
# shellcheck source=scripts/lib/oci-layout.sh
. "$(dirname "$0")/lib/oci-layout.sh"
cd "$(dirname "$0")/.."
build=${1:-build}
broker="$build/src/conker-broker/conker-broker"
uid=10001

if [ ! -x "$broker" ]; then
  echo "broker-image: $broker is missing; run 'make build' first" >&2
  exit 1
fi
if ldd "$broker" | grep -q 'libasan\|libubsan'; then
  echo "broker-image: $broker is a sanitizer build; use a normal build" >&2
  exit 1
fi

out="$build/images/conker-broker"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
oci_empty_bundle "$out" "$stage"
rootfs="$stage/bundle/rootfs"

install -D -m 0755 "$broker" "$rootfs/usr/bin/conker-broker"
strip --strip-unneeded "$rootfs/usr/bin/conker-broker"
# Every library under the name the dynamic loader looks for (ldd's left column path), with
# the content of the file it resolves to; the loader itself at its PT_INTERP path (the kernel
# executes it, hence 0755 for all of them, as Debian ships libraries).
ldd "$broker" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u |
  while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/usr/sbin/nologin\nbroker:x:%d:%d:conker-broker:/var/lib/conker-broker:/usr/sbin/nologin\n' \
  "$uid" "$uid" >"$rootfs/etc/passwd"
printf 'root:x:0:\nbroker:x:%d:\n' "$uid" >"$rootfs/etc/group"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
# /secret: the owner's secret directory (mounted over); the audit log's default directory and
# a state directory belong to the broker user.
install -d -m 0755 "$rootfs/secret"
install -d -m 0700 "$rootfs/var/log/conker-broker" "$rootfs/var/lib/conker-broker"
install -d -m 1777 "$rootfs/tmp"
if [ "$(id -u)" -eq 0 ]; then
  chown "$uid:$uid" "$rootfs/var/log/conker-broker" "$rootfs/var/lib/conker-broker"
fi
chmod 0755 "$rootfs"

umoci repack --image "$out:latest" --history.created_by "conker scripts/broker-image.sh" "$stage/bundle"
umoci config --image "$out:latest" \
  --config.entrypoint /usr/bin/conker-broker \
  --config.user "$uid:$uid" \
  --config.exposedports 3333/tcp \
  --config.volume /secret \
  --config.workingdir / \
  --config.label org.opencontainers.image.title=conker-broker \
  --config.label "org.opencontainers.image.description=Conker secret broker (conker-broker(8))" \
  --history.created_by "conker scripts/broker-image.sh"
umoci gc --layout "$out"
echo "broker-image: built $out:latest ($(du -sh "$out" | cut -f1))"
