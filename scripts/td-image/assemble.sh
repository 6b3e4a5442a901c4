#!/usr/bin/env bash
# assemble.sh TD CONKER ROOT: makes the TD's root filesystem ROOT from the bootstrapped TD
# userspace, the installed Conker tree and the image's own configuration. Kernel modules are
# added by kernel.sh.
set -euo pipefail
td=$1
conker=$2
root=$3

rm -rf "$root"
cp -a "$td" "$root"
# Documentation is not code; the copyright files stay (the licences travel with the binaries).
find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/locale" \
  "$root/usr/share/lintian" "$root/var/cache/debconf"/*-old "$root/var/lib/dpkg"/*-old
# The TD never runs apt: no package lists or download cache. (Their partial/ directories were
# owned by apt's sandbox user or by root depending on the build host's environment, which made
# two builds differ.)
rm -rf "$root/var/lib/apt/lists" "$root/var/cache/apt"
cp -a "$conker"/. "$root"/

# systemd: an empty machine-id (a transient one is made at each boot: the TD has no identity
# that survives it), the host name, and conkerd started at boot when its unit is installed.
: >"$root/etc/machine-id"
echo conker-td >"$root/etc/hostname"
ln -sf /usr/lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
# No login on any console: the serial port is the host's, and nobody logs into a TD.
for unit in getty.target serial-getty@.service getty@.service console-getty.service \
  getty-static.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# The network: systemd-networkd configures the virtio NIC by DHCPv4 (from QEMU's user network or
# the host) and nothing else. Debian's default .network files (containers' veth and bridges by
# name, tunnels) are masked: conkerd's bridge and veth pairs are its own to configure.
mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/system/sockets.target.wants" \
  "$root/etc/systemd/system/network-online.target.wants" \
  "$root/etc/systemd/system/multi-user.target.wants"
for f in "$root"/usr/lib/systemd/network/*.network; do
  ln -sf /dev/null "$root/etc/systemd/network/$(basename "$f")"
done
cat >"$root/etc/systemd/network/20-conker-td.network" <<'NET'
[Match]
Driver=virtio_net

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
ln -sf /usr/lib/systemd/system/systemd-networkd.service \
  "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
ln -sf /usr/lib/systemd/system/systemd-networkd.socket \
  "$root/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
ln -sf /usr/lib/systemd/system/systemd-networkd-wait-online.service \
  "$root/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"

# Layers are EROFS images (docs/image.md): conkerd probes EROFS over overlayfs when it starts,
# under ProtectKernelModules, so both modules are loaded at boot rather than on first use.
mkdir -p "$root/etc/modules-load.d"
printf '%s\n' erofs overlay >"$root/etc/modules-load.d/conker.conf"

if [ -e "$root/usr/lib/systemd/system/conkerd.service" ]; then
  ln -sf "/usr/lib/systemd/system/conkerd.service" \
    "$root/etc/systemd/system/multi-user.target.wants/conkerd.service"
fi

# The state disk (docs/td-image.md §8): a oneshot that makes a fresh LUKS2-with-integrity
# filesystem on the virtio disk "conker-state" and mounts it on the data dir; conkerd requires it.
sd=$(dirname "$0")/statedisk
install -D -m 0755 "$sd/conker-statedisk" "$root/usr/libexec/conker/conker-statedisk"
install -D -m 0644 "$sd/conker-statedisk.service" \
  "$root/usr/lib/systemd/system/conker-statedisk.service"
install -D -m 0644 "$sd/10-statedisk.conf" "$root/usr/lib/systemd/system/conkerd.service.d/10-statedisk.conf"
