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
runtime=(
  runc nftables iproute2 e2fsprogs util-linux keyutils kmod openssl ca-certificates
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
# image in its test (make td-image-test).
td_image=(
  mmdebstrap apt-utils qemu-system-x86
)

want=("${build[@]}" "${runtime[@]}" "${tests[@]}" "${td_image[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all ${#want[@]} packages present"
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
echo "deps: done"
