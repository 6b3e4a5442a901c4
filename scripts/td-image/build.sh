#!/usr/bin/env bash
# build.sh [CONKER_CLI]: `make td-image`. Builds the Conker TD image from packages.lock and the
# worktree into $TD_OUT (build/td-image/):
#   conker-td.efi      the unified kernel image (kernel + initrd + command line): what the TD boots
#   vmlinuz, initrd.cpio.zst, cmdline   its parts
#   OVMF.fd            the TD firmware (TDVF), from the locked ovmf package
#   SHA256SUMS         their digests
#   reference-values.json   `conker tdx predict --firmware OVMF.fd --uki conker-td.efi`
#                      (MRTD, RTMR1, RTMR2)
#   test/              with CONKER_TD_TEST_VARIANT=1 only: the test variant (test-variant.sh)
# SOURCE_DATE_EPOCH is the time of the last commit unless set.
set -euo pipefail
here=$(dirname "$0")
. "$here/config.sh"
cli=${1:-$TD_SRC/build/src/cli/conker}
[ "$(id -u)" = 0 ] || { echo "td-image: needs root (mmdebstrap --mode=root, chroot)" >&2; exit 1; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$TD_SRC" log -1 --format=%ct)}

work=$TD_OUT/work
mkdir -p "$work"
bash "$here/fetch.sh" >/dev/null
echo "td-image: bootstrapping the build environment and the TD userspace (trixie, locked)"
bash "$here/bootstrap.sh" tools "$work/tools"
bash "$here/bootstrap.sh" td "$work/td"
echo "td-image: building Conker in the build environment"
bash "$here/build-conker.sh" "$work/tools" "$work/conker"
bash "$here/assemble.sh" "$work/td" "$work/conker" "$work/tools/td-root"
# Every Conker program must find its shared libraries among the TD's packages.
(cd "$work/conker" && find . -type f -perm -u+x) | while read -r prog; do
  if td_chroot "$work/tools/td-root" ldd "${prog#.}" | grep 'not found'; then
    echo "td-image: ${prog#.} needs libraries the TD lacks: add their packages to TD_PACKAGES" >&2
    exit 1
  fi
done
kver=$(bash "$here/kernel.sh" "$work/tools/td-root" "$TD_OUT")
echo "td-image: packing the initrd and the unified kernel image (kernel $kver)"
bash "$here/pack.sh" "$work/tools" "$kver" "$TD_OUT"
# The test variant (`make vm-test` only), with the same build environment: never shipped.
if [ "${CONKER_TD_TEST_VARIANT:-0}" = 1 ]; then
  bash "$here/test-variant.sh" "$work/tools" "$kver" "$TD_OUT"
fi
# The firmware, unpacked from its locked package.
fw=$(mktemp -d)
dpkg-deb -x "$(bash "$here/fetch.sh")"/firmware/"$TD_FIRMWARE_PACKAGE"_*.deb "$fw"
install -m 0644 "$fw/usr/share/ovmf/OVMF.fd" "$TD_OUT/OVMF.fd"
rm -rf "$fw"
rm -rf "$work"

cd "$TD_OUT"
sha256sum conker-td.efi vmlinuz initrd.cpio.zst cmdline OVMF.fd >SHA256SUMS
cat SHA256SUMS
if [ -x "$cli" ]; then
  "$cli" tdx predict --firmware OVMF.fd --uki conker-td.efi -o reference-values.json
  echo "td-image: reference values (conker tdx predict --firmware $TD_OUT/OVMF.fd" \
    "--uki $TD_OUT/conker-td.efi; RTMR0 needs the VM's --memory and ACPI tables):"
  cat reference-values.json
else
  echo "td-image: $cli not built; run 'make build' then: conker tdx predict --uki $TD_OUT/conker-td.efi" >&2
fi
