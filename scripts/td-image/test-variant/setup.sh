#!/bin/sh
# /usr/lib/conker-test/setup (test variant only): reads what the host hands in through QEMU's
# fw_cfg (opt/conker/sim.tar: the simulated TD made by `conker tdx-sim init` with the profile
# the host predicted; opt/conker/token; opt/conker/registry-ca.pem) into the places
# conkerd-test.conf names. Fails, and so keeps conkerd from starting, when any is missing.
set -eu
mod=$(ls /usr/lib/conker-test/qemu_fw_cfg.ko*)
grep -q '^qemu_fw_cfg ' /proc/modules || insmod "$mod"
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/conker
for f in sim.tar token registry-ca.pem; do
  [ -r "$fw/$f/raw" ] || { echo "conker-test-setup: fw_cfg opt/conker/$f missing" >&2; exit 1; }
done
umask 077
mkdir -p /run/conker /run/conker-test
rm -rf /run/conker/tdx-sim
mkdir /run/conker/tdx-sim
tar -xf "$fw/sim.tar/raw" -C /run/conker/tdx-sim --no-same-owner
cat "$fw/token/raw" >/run/conker-test/token
cat "$fw/registry-ca.pem/raw" >/run/conker-test/registry-ca.pem
