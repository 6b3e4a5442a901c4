#!/usr/bin/env bash
# kernel.sh ROOT OUT: unpacks the locked kernel packages; writes the kernel to OUT/vmlinuz and
# copies into ROOT the modules the TD needs (virtio devices, the TDX guest and TSM report
# drivers, device-mapper crypt/integrity/verity, nftables, bridges and veth, overlayfs, ext4,
# vsock, their crypto), nothing else. modules.dep is made with the tools chroot's depmod.
set -euo pipefail
. "$(dirname "$0")/config.sh"
root=$1
out=$2
repo=$(bash "$(dirname "$0")/fetch.sh")/kernel
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for deb in "$repo"/*.deb; do dpkg-deb -x "$deb" "$tmp"; done
kver=$(ls "$tmp/usr/lib/modules")
[ "$(echo "$kver" | wc -l)" = 1 ] || { echo "kernel: expected one kernel, got: $kver" >&2; exit 1; }
install -m 0644 "$tmp/usr/lib/modules/$kver/vmlinuz" "$out/vmlinuz"

src=$tmp/usr/lib/modules/$kver
dst=$root/usr/lib/modules/$kver
keep=(
  kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko* kernel/drivers/net/virtio_net.ko*
  kernel/drivers/net/net_failover.ko* kernel/net/core/failover.ko* kernel/drivers/net/veth.ko*
  kernel/drivers/char/hw_random/virtio-rng.ko* kernel/drivers/char/virtio_console.ko*
  kernel/drivers/virt kernel/drivers/md kernel/crypto kernel/lib kernel/arch/x86/crypto
  kernel/net/bridge kernel/net/802 kernel/net/llc kernel/net/netfilter kernel/net/ipv4/netfilter
  kernel/net/ipv6/netfilter kernel/net/vmw_vsock kernel/fs/overlayfs kernel/fs/ext4
  kernel/fs/jbd2 kernel/fs/mbcache.ko* kernel/fs/autofs kernel/fs/erofs kernel/fs/fuse kernel/drivers/scsi/virtio_scsi.ko*
  kernel/drivers/block/loop.ko* kernel/security/keys
)
mkdir -p "$dst"
for f in "$src"/modules.order "$src"/modules.builtin*; do [ -e "$f" ] && cp "$f" "$dst"/; done
for k in "${keep[@]}"; do
  for p in "$src"/$k; do
    [ -e "$p" ] || continue
    mkdir -p "$dst/$(dirname "${p#"$src"/}")"
    cp -a "$p" "$dst/$(dirname "${p#"$src"/}")/"
  done
done
echo "$kver"
