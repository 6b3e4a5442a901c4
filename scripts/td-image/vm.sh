#!/usr/bin/env bash
# vm.sh UKI CONSOLE_LOG [OPTION...]: runs the unified kernel image in QEMU under TCG (these
# machines have no KVM and no TDX) in the foreground, for `make vm-test` (tests/e2e/test_vm.py):
# q35, 1 vCPU, the image's OVMF.fd (next to the UKI or one directory up), the serial console
# to CONSOLE_LOG, no reboot, and a virtio NIC on QEMU's user network with restrict=on (no route
# out of it; only the forwards below). Options:
#   --memory MB            guest memory (default 2048)
#   --disk IMG             a raw file as the virtio disk with serial conker-state (the state disk)
#   --agent SOCK           a virtio-serial port org.conker.test on the unix socket SOCK (server)
#   --fw-cfg NAME=FILE     a QEMU fw_cfg file (NAME starts with opt/)
#   --hostfwd H:G          host 127.0.0.1:H to the guest's port G (TCP)
#   --guestfwd ADDR:P=H    the guest's connections to ADDR:P (in 10.0.2.0/24) reach the host's
#                          127.0.0.1:H (socat, one process per connection)
set -euo pipefail
uki=$1
log=$2
shift 2
firmware=${CONKER_TD_OVMF:-}
for f in "$(dirname "$uki")/OVMF.fd" "$(dirname "$uki")/../OVMF.fd" /usr/share/ovmf/OVMF.fd; do
  [ -n "$firmware" ] || { [ -e "$f" ] && firmware=$f; }
done
mem=2048
net=user,id=n0,restrict=on
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --memory) mem=$2 ;;
    --disk)
      extra+=(-drive "file=$2,if=none,id=state,format=raw,discard=off"
        -device "virtio-blk-pci,drive=state,serial=conker-state") ;;
    --agent)
      extra+=(-device virtio-serial-pci -chardev "socket,id=agent,path=$2,server=on,wait=off"
        -device "virtserialport,chardev=agent,name=org.conker.test") ;;
    --fw-cfg) extra+=(-fw_cfg "name=${2%%=*},file=${2#*=}") ;;
    --hostfwd) net+=",hostfwd=tcp:127.0.0.1:${2%%:*}-:${2#*:}" ;;
    --guestfwd) net+=",guestfwd=tcp:${2%%=*}-cmd:socat - TCP:127.0.0.1:${2#*=}" ;;
    *) echo "vm: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
exec qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 1 -m "$mem" -bios "$firmware" \
  -kernel "$uki" -display none -monitor none -serial "file:$log" -no-reboot \
  -netdev "$net" -device virtio-net-pci,netdev=n0,romfile= "${extra[@]}"
