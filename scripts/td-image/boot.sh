#!/usr/bin/env bash
# boot.sh UKI CONSOLE_LOG [TIMEOUT_S]: boots the unified kernel image in QEMU under TCG (no KVM
# here, no TDX: this checks the image, not the TD) with Debian's OVMF, the serial console
# written to CONSOLE_LOG, a virtio NIC on QEMU's user network with restrict=on (DHCP from QEMU,
# no route out of it) and no disk; succeeds once the console shows that systemd
# reached multi-user.target (and, when the image has conkerd.service, that it was started), and
# fails on a kernel panic, QEMU exiting, or TIMEOUT_S seconds (default 600).
set -euo pipefail
uki=$1
log=$2
timeout=${3:-600}
# The image's own firmware (build.sh puts OVMF.fd next to the UKI), else Debian's.
firmware=${CONKER_TD_OVMF:-$(dirname "$uki")/OVMF.fd}
[ -e "$firmware" ] || firmware=/usr/share/ovmf/OVMF.fd
marker='Reached target multi-user.target'

: >"$log"
qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 1 -m 2048 -bios "$firmware" \
  -kernel "$uki" -display none -monitor none -serial "file:$log" -no-reboot \
  -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0,romfile= &
qemu=$!
trap 'kill "$qemu" 2>/dev/null || true; wait "$qemu" 2>/dev/null || true' EXIT

for ((i = 0; i < timeout; i++)); do
  # systemd colours the unit names: compare without the escape sequences.
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
  if grep -aq "$marker" <<<"$plain"; then
    started=$(grep -a 'Started conkerd.service' <<<"$plain" || true)
    echo "boot: multi-user.target reached after ~${i}s${started:+; conkerd.service started}"
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
