#!/usr/bin/env bash
# Installs every Debian package that Conker's build, tests, benchmarks and demo need.
# Idempotent: packages already present are not touched, and apt is only called when
# something is missing. Run as root (CI and `make test` do).
set -euo pipefail

build=(
  build-essential meson ninja-build pkg-config clang lld clang-format
  libssl-dev libcurl4-openssl-dev libjansson-dev libarchive-dev libsqlite3-dev
  libevent-dev libcbor-dev libcmocka-dev libclang-rt-14-dev libseccomp-dev libnftables-dev
  libisal-dev libzstd-dev scdoc
)
# crun: the faster OCI runtime, which conkerd's default `runtime = auto` takes when it is in PATH
# (docs/runtime.md); runc stays the fallback and the TD image's runtime. With
# crun installed podman prefers it, which fails on hybrid cgroup hosts: our podman calls pass
# `--runtime runc`.
runtime=(
  runc crun nftables iproute2 e2fsprogs util-linux keyutils kmod openssl ca-certificates
)
tests=(
  docker-registry apache2-utils umoci skopeo busybox-static
  python3 python3-pytest python3-requests python3-jsonschema python3-yaml python3-prometheus-client
  podman curl jq xxd attr erofs-utils
  debootstrap lintian dpkg-dev systemd-container
  ovmf osslsigncode
)
# make td-image (scripts/td-image/): mmdebstrap assembles the TD from the locked packages,
# apt-ftparchive (apt-utils) indexes the local repository of those packages; QEMU boots the
# image in its test (make td-image-test); make vm-test forwards the guest's connections to the
# host's registry and broker with socat (one process per connection, QEMU guestfwd cmd:).
td_image=(
  mmdebstrap apt-utils qemu-system-x86 socat
)

want=("${build[@]}" "${runtime[@]}" "${tests[@]}" "${td_image[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# A signed Debian kernel for the Authenticode test of `conker tdx predict`
# (tests/unit/test-predict-kernel.c): only its vmlinuz is extracted, nothing is installed.
test_kernel() {
  local dir=/var/cache/conker-test/kernel pkg tmp
  [ -s "$dir/vmlinuz" ] && return 0
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || { echo "deps: no signed cloud kernel package known to apt; the kernel test will skip" >&2; return 0; }
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) && dpkg-deb -x "$tmp"/*.deb "$tmp/x"; then
    mkdir -p "$dir"
    cp "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz.tmp" && mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
    echo "$pkg" >"$dir/package"
  else
    echo "deps: could not download $pkg; the kernel test will skip" >&2
  fi
  rm -rf "$tmp"
}

if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all ${#want[@]} packages present"
  test_kernel
  exit 0
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian registry package starts a system service on port 5000; tests run their own
# registries on loopback ports they choose, so the packaged service is not wanted.
if systemctl list-unit-files docker-registry.service >/dev/null 2>&1; then
  systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi
test_kernel
echo "deps: done"
