#!/usr/bin/env bash
# boot.sh UKI CONSOLE_LOG [TIMEOUT_S] [DISK]: boots the unified kernel image in QEMU under TCG
# (no KVM here, no TDX: this checks the image, not the TD) with Debian's OVMF, the serial console
# written to CONSOLE_LOG, a virtio NIC on QEMU's user network with restrict=on (DHCP from QEMU,
# no route out of it) and, when DISK is given, that raw file as the TD's state disk (a virtio
# disk with serial "conker-state": the image formats it at boot, docs/td-image.md §8); succeeds
# once the console shows that systemd reached multi-user.target (and, when the image has
# conkerd.service, that it was started; with a DISK, that the state disk was made), and fails
# on a kernel panic, QEMU exiting, a failed state disk, or TIMEOUT_S seconds (default 600).
# Tests only: with CONKER_TD_EXTRA_INITRD=CPIO, the UKI's parts next to it (vmlinuz,
# initrd.cpio.zst, cmdline) are booted directly, with that uncompressed cpio archive appended
# to the initrd (files a test adds to the root filesystem; not the measured image).
set -euo pipefail
uki=$1
log=$2
timeout=${3:-600}
disk=${4:-}
# The image's own firmware (build.sh puts OVMF.fd next to the UKI), else Debian's.
firmware=${CONKER_TD_OVMF:-$(dirname "$uki")/OVMF.fd}
[ -e "$firmware" ] || firmware=/usr/share/ovmf/OVMF.fd
marker='Reached target multi-user.target'
kernel=(-kernel "$uki")
if [ -n "${CONKER_TD_EXTRA_INITRD:-}" ]; then
  parts=$(dirname "$uki")
  initrd=$(mktemp)
  cat "$parts/initrd.cpio.zst" >"$initrd"
  # The kernel looks for the next archive at a multiple of 4 bytes and skips zeros.
  len=$(stat -c %s "$initrd")
  head -c $(((4 - len % 4) % 4)) /dev/zero >>"$initrd"
  cat "$CONKER_TD_EXTRA_INITRD" >>"$initrd"
  kernel=(-kernel "$parts/vmlinuz" -initrd "$initrd" -append "$(cat "$parts/cmdline")")
fi
drive=()
if [ -n "$disk" ]; then
  [ -f "$disk" ] || { echo "boot: no disk file $disk" >&2; exit 1; }
  drive=(-drive "file=$disk,if=none,id=state,format=raw"
    -device "virtio-blk-pci,drive=state,serial=conker-state")
fi

: >"$log"
qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 1 -m 2048 -bios "$firmware" \
  "${kernel[@]}" -display none -monitor none -serial "file:$log" -no-reboot \
  -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0,romfile= "${drive[@]}" &
qemu=$!
trap 'kill "$qemu" 2>/dev/null || true; wait "$qemu" 2>/dev/null || true; rm -f "${initrd:-}"' EXIT

for ((i = 0; i < timeout; i++)); do
  # systemd colours the unit names: compare without the escape sequences.
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
  if grep -aq "$marker" <<<"$plain"; then
    if [ -n "$disk" ] && grep -aq 'Failed to start conker-statedisk.service' <<<"$plain"; then
      echo "boot: the state disk unit failed (console: $log)" >&2
      exit 1
    fi
    started=$(grep -a 'Started conkerd.service' <<<"$plain" || true)
    if [ -n "$disk" ] && ! grep -aq 'Finished conker-statedisk.service' <<<"$plain"; then
      echo "boot: multi-user.target reached but the state disk unit did not finish (console: $log)" >&2
      exit 1
    fi
    echo "boot: multi-user.target reached after ~${i}s${started:+; conkerd.service started}${disk:+; state disk made}"
    exit 0
  fi
  if grep -aq 'Kernel panic' <<<"$plain"; then
    echo "boot: kernel panic (console: $log)" >&2
    exit 1
  fi
  if ! kill -0 "$qemu" 2>/dev/null; then
    echo "boot: QEMU exited before multi-user.target (console: $log)" >&2
    exit 1
  fi
  sleep 1
done
echo "boot: no '$marker' within ${timeout}s (console: $log)" >&2
exit 1
