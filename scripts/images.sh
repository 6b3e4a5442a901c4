#!/usr/bin/env bash
# Builds the demo image conker-example-app:latest: one layer holding only the static
# conker-example-app binary and an empty /secret mount point, Entrypoint the binary, port
# 8080/tcp exposed. The result is an OCI layout at BUILD/images/conker-example-app (tag
# "latest"). With a registry argument it is also pushed there with skopeo:
#   scripts/images.sh BUILD                      # build only
#   scripts/images.sh BUILD 127.0.0.1:5000       # and push as 127.0.0.1:5000/reckey/conker-example-app:latest
#   scripts/images.sh BUILD 127.0.0.1:5000 --dest-creds u:p --dest-cert-dir DIR   (extra skopeo flags)
set -euo pipefail
# shellcheck source=scripts/lib/oci-layout.sh
. "$(dirname "$0")/lib/oci-layout.sh"
cd "$(dirname "$0")/.."
build=${1:-build}
registry=${2:-}
shift $(( $# > 2 ? 2 : $# ))

app="$build/src/example-app/conker-example-app"
if [ ! -x "$app" ]; then
  echo "images: $app is missing; run 'make build' first" >&2
  exit 1
fi
if ! file "$app" | grep -q 'statically linked'; then
  echo "images: $app is not statically linked (a sanitizer build?)" >&2
  exit 1
fi

out="$build/images/conker-example-app"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
oci_empty_bundle "$out" "$stage"
mkdir -p "$stage/bundle/rootfs/secret"
install -m 0755 "$app" "$stage/bundle/rootfs/conker-example-app"
chmod 0755 "$stage/bundle/rootfs" "$stage/bundle/rootfs/secret"
umoci repack --image "$out:latest" --history.created_by "conker scripts/images.sh" "$stage/bundle"
umoci config --image "$out:latest" \
  --config.entrypoint /conker-example-app \
  --config.exposedports 8080/tcp \
  --config.env PORT=8080 \
  --config.workingdir / \
  --config.label org.opencontainers.image.title=conker-example-app \
  --history.created_by "conker scripts/images.sh"
umoci gc --layout "$out"
echo "images: built $out:latest"

if [ -n "$registry" ]; then
  dest="docker://$registry/reckey/conker-example-app:latest"
  # Extra arguments are skopeo destination flags; without any, the registry is taken to be a
  # plain-HTTP loopback mirror.
  [ $# -gt 0 ] || set -- --dest-tls-verify=false
  skopeo copy --quiet "$@" "oci:$out:latest" "$dest"
  echo "images: pushed $dest"
fi
