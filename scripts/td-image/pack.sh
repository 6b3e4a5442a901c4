#!/usr/bin/env bash
# pack.sh TOOLS KVER OUT: in the tools chroot, runs depmod on TOOLS/td-root, packs it into
# OUT/initrd.cpio.zst (names sorted, every mtime SOURCE_DATE_EPOCH, inode and device numbers
# renumbered, one zstd thread) and builds the unified kernel image OUT/conker-td.efi from
# OUT/vmlinuz, the initrd and the fixed command line with ukify and systemd-stub.
set -euo pipefail
. "$(dirname "$0")/config.sh"
tools=$1
kver=$2
out=$3
: "${SOURCE_DATE_EPOCH:?export SOURCE_DATE_EPOCH}"

rm -rf "$tools/out"
mkdir -p "$tools/out"
cp "$out/vmlinuz" "$tools/out/vmlinuz"
printf '%s' "$TD_CMDLINE" >"$tools/out/cmdline"
td_chroot "$tools" sh -ec '
  kver=$1
  depmod -b /td-root "$kver"
  cd /td-root
  find . -print0 | xargs -0 touch -h -d "@$SOURCE_DATE_EPOCH"
  find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --reproducible --quiet |
    zstd -q -T1 -10 >/out/initrd.cpio.zst
  ukify build --linux=/out/vmlinuz --initrd=/out/initrd.cpio.zst --cmdline=@/out/cmdline \
    --os-release=@/td-root/usr/lib/os-release --uname="$kver" --output=/out/conker-td.efi >/dev/null
' sh "$kver"
cp "$tools/out/initrd.cpio.zst" "$tools/out/conker-td.efi" "$tools/out/cmdline" "$out/"
rm -rf "$tools/out"
