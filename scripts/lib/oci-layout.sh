# shellcheck shell=bash
# Sourced by scripts/images.sh and scripts/broker-image.sh: the start both image builds share.
# oci_empty_bundle OUT STAGE: a fresh OCI layout at OUT holding an empty image "latest",
# unpacked as a runtime bundle at STAGE/bundle (umoci --rootless when not root).
oci_empty_bundle() {
  local out=$1 stage=$2
  local rootless=()
  [ "$(id -u)" -eq 0 ] || rootless=(--rootless)
  rm -rf "$out"
  mkdir -p "$(dirname "$out")"
  umoci init --layout "$out"
  umoci new --image "$out:latest"
  umoci unpack "${rootless[@]}" --image "$out:latest" "$stage/bundle"
}
