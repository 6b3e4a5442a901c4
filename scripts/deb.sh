#!/usr/bin/env bash
# Builds the Debian packages `conker` (conkerd, conker-shim, conker-fetch, the conker CLI, conkerd.service,
# conkerd.conf, man pages) and `conker-broker` (the broker, its unit, conf, system user and man
# page) from this tree:
#   scripts/deb.sh [OUT]        (default OUT=build-deb; the .deb files land in OUT/)
# Meson builds and installs into a staging root (OUT/build, OUT/root, prefix /usr); each package
# takes its files from there, and a file that no package takes is an error. Runtime dependencies
# on shared libraries come from dpkg-shlibdeps; lintian checks both packages at the error level.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=$(realpath -m "${1:-build-deb}")
bdir=$out/build
root=$out/root
stage=$out/stage

version=$(sed -n "s/^  version : '\([^']*\)',$/\1/p" meson.build)
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "deb: cannot read the version from meson.build" >&2; exit 1; }

if [ ! -f "$bdir/build.ninja" ]; then
  meson setup "$bdir" --prefix=/usr --sysconfdir=/etc --localstatedir=/var --buildtype=release \
    -Doptimization=2 -Dtests=false -Dman=enabled -Dsystemdsystemunitdir=/lib/systemd/system \
    -Dsysusersdir=/usr/lib/sysusers.d -Dtmpfilesdir=/usr/lib/tmpfiles.d >/dev/null
fi
if ! meson compile -C "$bdir" >"$out/compile.log" 2>&1; then
  cat "$out/compile.log" >&2
  echo "deb: the build failed" >&2
  exit 1
fi
rm -rf "$root" "$stage"
DESTDIR="$root" meson install -C "$bdir" --no-rebuild --strip --quiet

# Package contents, relative to the staging root.
conker_files=(
  usr/sbin/conkerd usr/bin/conker usr/bin/conker-shim usr/bin/conker-fetch
  etc/conker/conkerd.conf lib/systemd/system/conkerd.service usr/lib/tmpfiles.d/conker.conf
  usr/share/man/man8/conkerd.8 usr/share/man/man5/conkerd.conf.5 usr/share/man/man1/conker.1
  usr/share/man/man8/conker-shim.8 usr/share/man/man8/conker-fetch.8
)
broker_files=(
  usr/bin/conker-broker etc/conker/conker-broker.conf lib/systemd/system/conker-broker.service
  usr/lib/sysusers.d/conker-broker.conf usr/share/man/man8/conker-broker.8
)

take() { # take PKG FILE...: move files from the staging root into the package tree
  local pkg=$1; shift
  for f in "$@"; do
    [ -e "$root/$f" ] || { echo "deb: $f was not installed" >&2; exit 1; }
    mkdir -p "$stage/$pkg/$(dirname "$f")"
    mv "$root/$f" "$stage/$pkg/$f"
  done
}
take conker "${conker_files[@]}"
take conker-broker "${broker_files[@]}"
left=$(find "$root" -type f -o -type l)
if [ -n "$left" ]; then
  echo "deb: installed but in no package:" >&2
  echo "$left" >&2
  exit 1
fi

# dpkg-shlibdeps reads debian/control; a minimal one in a scratch directory is enough.
shlibs() {
  local scratch
  scratch=$(mktemp -d)
  mkdir "$scratch/debian"
  printf 'Source: conker\n\nPackage: %s\nArchitecture: any\n' "$1" >"$scratch/debian/control"
  shift
  (cd "$scratch" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
  rm -rf "$scratch"
}

finish() { # finish PKG "DEPENDS" "SHORT" "LONG" CONFFILE...
  local pkg=$1 depends=$2 short=$3 long=$4 d=$stage/$1
  shift 4
  install -d -m 0755 "$d/DEBIAN" "$d/usr/share/doc/$pkg"
  find "$d/usr/share/man" -type f -exec gzip -9n {} +
  install -m 0644 packaging/debian/copyright "$d/usr/share/doc/$pkg/copyright"
  sed "s/@PACKAGE@/$pkg/; s/@VERSION@/$version/" packaging/debian/changelog |
    gzip -9n >"$d/usr/share/doc/$pkg/changelog.gz"
  for s in postinst prerm postrm; do
    [ -f "packaging/debian/$pkg.$s" ] && install -m 0755 "packaging/debian/$pkg.$s" "$d/DEBIAN/$s"
  done
  printf '%s\n' "$@" >"$d/DEBIAN/conffiles"
  chmod 0644 "$d/DEBIAN/conffiles"
  {
    echo "Package: $pkg"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: Conker developers <conker@lists.example.org>"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$d" | cut -f1)"
    echo "Depends: $depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Homepage: https://github.com/iExecBlockchainComputing/conker"
    echo "Description: $short"
    echo "$long" | fold -s -w 78 | sed 's/ *$//; s/^/ /'
  } >"$d/DEBIAN/control"
  find "$d" -type d -exec chmod 0755 {} +
  dpkg-deb --root-owner-group -Zxz --build "$d" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
}

conker_libs=$(shlibs conker "$stage/conker/usr/sbin/conkerd" "$stage/conker/usr/bin/conker" \
  "$stage/conker/usr/bin/conker-shim" "$stage/conker/usr/bin/conker-fetch")
broker_libs=$(shlibs conker-broker "$stage/conker-broker/usr/bin/conker-broker")

finish conker "$conker_libs, runc, nftables, iproute2, e2fsprogs, ca-certificates" \
  "confidential container engine for Intel TDX" \
  "conkerd runs in a TDX confidential VM: it takes container requests over a REST API, pulls the image itself, proves the VM's measurements and the image to secret brokers over RA-TLS, writes the released secrets into the container, gives it encrypted volumes and runs it with runc. This package has conkerd, conker-shim, conker-fetch (its pull helper), the conker command-line client, the systemd unit and the man pages." \
  /etc/conker/conkerd.conf
finish conker-broker "$broker_libs, adduser, ca-certificates" \
  "secret broker for Conker confidential containers" \
  "conker-broker releases a JSON secret only to a TDX confidential VM whose quote verifies against Intel's DCAP collateral and whose measurements and container image match the data owner's policy, and keeps an audit log of every decision. This package has the broker, its systemd unit (running as the conker-broker system user) and its man page." \
  /etc/conker/conker-broker.conf

rm -rf "$root" "$stage"
for deb in "$out"/conker_"$version"_"$arch".deb "$out"/conker-broker_"$version"_"$arch".deb; do
  echo "deb: built $deb"
done
if command -v lintian >/dev/null; then
  lintian --fail-on error \
    "$out"/conker_"$version"_"$arch".deb "$out"/conker-broker_"$version"_"$arch".deb
fi
