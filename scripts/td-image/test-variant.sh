#!/usr/bin/env bash
# test-variant.sh TOOLS KVER OUT: the *test* variant of the TD image, for `make vm-test` only
# (build.sh runs it when CONKER_TD_TEST_VARIANT=1, with its build environment TOOLS). It is
# the production UKI's kernel and initrd plus a second, uncompressed cpio with the test-only
# files of test-variant/ and the qemu_fw_cfg module, packed with the same ukify into
#   OUT/test/conker-td-test.efi      command line TD_CMDLINE + " conker.variant=test"
#   OUT/test/conker-td-test-alt.efi  the same but one byte ("tesu"): its measurements differ
# Neither is ever a production image: they run conkerd on a simulated TD that the host hands
# in, with the host's token, and a test agent on virtio-serial (docs/td-image.md section 8).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
tools=$1
kver=$2
out=$3
: "${SOURCE_DATE_EPOCH:?export SOURCE_DATE_EPOCH}"
src=$here/test-variant

root=$tools/test-root
rm -rf "$root" "$tools/out"
mkdir -p "$root/usr/lib/conker-test" "$root/etc/systemd/system/conkerd.service.d" \
  "$root/etc/systemd/system/multi-user.target.wants" "$tools/out"
# The fw_cfg driver, from the locked kernel package (the production image does not carry it).
for deb in "$(bash "$here/fetch.sh")"/kernel/*.deb; do
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$root/usr/lib/conker-test" --wildcards \
    --strip-components=8 "./usr/lib/modules/$kver/kernel/drivers/firmware/qemu_fw_cfg.ko*" \
    2>/dev/null || true
done
ls "$root"/usr/lib/conker-test/qemu_fw_cfg.ko* >/dev/null ||
  { echo "test-variant: qemu_fw_cfg module not found in the kernel packages" >&2; exit 1; }
install -m 0755 "$src/setup.sh" "$root/usr/lib/conker-test/setup"
install -m 0755 "$src/agent.sh" "$root/usr/lib/conker-test/agent"
install -m 0644 "$src/conker-test-setup.service" "$src/conker-test-agent.service" \
  "$root/etc/systemd/system/"
install -m 0644 "$src/conkerd-test.conf" "$root/etc/systemd/system/conkerd.service.d/"
ln -s ../conker-test-agent.service "$root/etc/systemd/system/multi-user.target.wants/"

cp "$out/vmlinuz" "$out/initrd.cpio.zst" "$tools/out/"
printf '%s conker.variant=test' "$TD_CMDLINE" >"$tools/out/cmdline"
printf '%s conker.variant=tesu' "$TD_CMDLINE" >"$tools/out/cmdline-alt"
td_chroot "$tools" sh -ec '
  kver=$1
  cd /test-root
  find . -print0 | xargs -0 touch -h -d "@$SOURCE_DATE_EPOCH"
  find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --reproducible --quiet \
    >/out/test.cpio
  for v in "" -alt; do
    ukify build --linux=/out/vmlinuz --initrd=/out/initrd.cpio.zst --initrd=/out/test.cpio \
      --cmdline=@/out/cmdline$v --os-release=@/td-root/usr/lib/os-release --uname="$kver" \
      --output=/out/conker-td-test$v.efi >/dev/null
  done
' sh "$kver"
mkdir -p "$out/test"
cp "$tools/out/conker-td-test.efi" "$tools/out/conker-td-test-alt.efi" "$tools/out/test.cpio" \
  "$tools/out/cmdline" "$tools/out/cmdline-alt" "$out/test/"
rm -rf "$root" "$tools/out"
echo "td-image: test variant (never for production): $out/test/conker-td-test.efi and -alt.efi"
