#!/usr/bin/env bash
# build-conker.sh TOOLS DEST: compiles Conker in the tools chroot (trixie's compiler and
# libraries, fixed paths /src and /build, SOURCE_DATE_EPOCH) and installs it into DEST with
# `meson install --destdir`. The sources are the files git tracks, as they are in the worktree;
# a dirty worktree is named in a warning, since the image then matches no commit.
set -euo pipefail
. "$(dirname "$0")/config.sh"
tools=$1
dest=$2
: "${SOURCE_DATE_EPOCH:?export SOURCE_DATE_EPOCH}"

if [ -n "$(git -C "$TD_SRC" status --porcelain --untracked-files=no)" ]; then
  echo "build-conker: warning: the worktree has uncommitted changes; the image matches no commit" >&2
fi
rm -rf "$tools/src" "$tools/build" "$tools/dest"
mkdir -p "$tools/src"
git -C "$TD_SRC" ls-files -z | (cd "$TD_SRC" && tar --null -T - -cf -) | tar -C "$tools/src" -xf -
# No man pages in the TD (the option exists once the packaging work is in).
opts="-Dtests=false"
if grep -q "option('man'" "$TD_SRC/meson_options.txt"; then opts="$opts -Dman=disabled"; fi
td_chroot "$tools" sh -ec '
  meson setup --prefix=/usr --buildtype=release -Db_pie=true '"$opts"' /build /src >/dev/null
  meson compile -C /build >/dev/null
  meson install -C /build --destdir /dest --quiet' >&2
rm -rf "$dest"
mv "$tools/dest" "$dest"
rm -rf "$tools/src" "$tools/build"
