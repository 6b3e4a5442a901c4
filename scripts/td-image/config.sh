# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the scripts
# Shared settings of the TD image build (sourced by the other scripts in this directory).
# Everything that changes the image's bytes is here or in packages.lock.

TD_SUITE=trixie
TD_BACKPORTS=trixie-backports
# The kernel comes from backports: trixie's own 6.12 predates the RTMR sysfs ABI (6.16).
TD_MIRROR=${CONKER_TD_MIRROR:-http://deb.debian.org/debian}
TD_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

TD_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TD_LOCK=${CONKER_TD_LOCK:-$TD_SRC/scripts/td-image/packages.lock}
TD_CACHE_ROOT=${CONKER_TD_CACHE:-/var/cache/conker-td}
TD_OUT=${CONKER_TD_OUT:-$TD_SRC/build/td-image}

# What the TD runs: systemd as init (it runs conkerd.service as the units ship it: notify,
# sandbox, tmpfiles, restart), the container runtime and the tools conkerd execs, and the
# shared libraries of the Conker binaries.
TD_PACKAGES=(
  systemd systemd-sysv udev kmod runc nftables iproute2 e2fsprogs cryptsetup-bin util-linux
  keyutils ca-certificates
  libssl3t64 libcurl4t64 libjansson4 libarchive13t64 libsqlite3-0 libevent-2.1-7t64
  libevent-openssl-2.1-7t64 libevent-pthreads-2.1-7t64 libcbor0.10 libseccomp2 libnftables1
  libisal2 libzstd1
)
# The build environment: a trixie chroot that compiles Conker (so the binaries link against the
# TD's libraries and the build paths are fixed) and runs ukify, cpio and zstd (so the tools'
# versions are pinned with everything else, not taken from the host).
TD_TOOLS_PACKAGES=(
  build-essential meson ninja-build pkg-config systemd-dev
  libssl-dev libcurl4-openssl-dev libjansson-dev libarchive-dev libsqlite3-dev libevent-dev
  libcbor-dev libseccomp-dev libnftables-dev libisal-dev libzstd-dev
  systemd-ukify systemd-boot-efi python3-pefile cpio zstd kmod
)
TD_KERNEL_META=linux-image-amd64
# The TD firmware: trixie's OVMF.fd carries the TDVF metadata (it is a TDVF build), so it is
# pinned with the image and its MRTD predicted. Only this package, not its dependencies.
TD_FIRMWARE_PACKAGE=ovmf

# The kernel command line, measured with the UKI. console=ttyS0 for the serial console (QEMU
# -nographic and the TD's virtual serial port); no root=: the initrd is the root filesystem.
TD_CMDLINE="console=ttyS0 rdinit=/sbin/init panic=-1 systemd.show_status=1 quiet"

# A private apt configuration for the downloads (the host's apt state is not touched).
td_apt_env() {
  local d=$TD_CACHE_ROOT/apt
  mkdir -p "$d"/etc/apt/sources.list.d "$d"/etc/apt/preferences.d "$d"/var/lib/apt/lists/partial \
    "$d"/var/cache/apt/archives/partial "$d"/var/lib/dpkg
  : >"$d"/var/lib/dpkg/status
  printf 'deb [signed-by=%s] %s %s main\ndeb [signed-by=%s] %s %s main\n' \
    "$TD_KEYRING" "$TD_MIRROR" "$TD_SUITE" "$TD_KEYRING" "$TD_MIRROR" "$TD_BACKPORTS" \
    >"$d"/etc/apt/sources.list
  TD_APT_OPTS=(-o "Dir=$d" -o "Dir::State::status=$d/var/lib/dpkg/status"
    -o "Dir::Etc::trustedparts=/nonexistent" -o APT::Architecture=amd64
    -o "APT::Architectures=amd64" -o Debug::NoLocking=1 -o Acquire::Languages=none
    -o "Dir::Etc::main=/dev/null" -o "Dir::Etc::parts=/nonexistent")
}

# td_chroot DIR CMD...: runs CMD in the chroot DIR with /proc and /dev, in a private mount
# namespace (the mounts go away with it).
td_chroot() {
  local dir=$1
  shift
  unshare --mount --propagation private -- sh -c '
    d=$1; shift
    mount -t proc proc "$d/proc" && mount --rbind /dev "$d/dev" && exec chroot "$d" "$@"' \
    sh "$dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" TZ=UTC "$@"
}
