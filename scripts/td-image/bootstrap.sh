#!/usr/bin/env bash
# bootstrap.sh SET DIR: installs exactly the packages of SET (td or tools) in packages.lock into
# the new directory DIR with mmdebstrap, from the local repository fetch.sh made (no mirror, no
# other versions), and checks that the installed set is the locked one.
# Reproducible: mmdebstrap honours SOURCE_DATE_EPOCH (the caller exports it) and removes what
# differs between runs (apt lists and caches, logs, machine-id).
set -euo pipefail
. "$(dirname "$0")/config.sh"
set_=$1
dir=$2
: "${SOURCE_DATE_EPOCH:?export SOURCE_DATE_EPOCH}"

repo=$(bash "$(dirname "$0")/fetch.sh")/$set_
[ -f "$repo/Packages" ] || { echo "bootstrap: no set '$set_' in the lock" >&2; exit 1; }
pkgs=$(awk -v s="$set_" '$1 == s {print $2}' "$TD_LOCK" | paste -sd,)

rm -rf "$dir"
mmdebstrap --quiet --mode=root --variant=minbase --include="$pkgs" \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id' \
  --customize-hook='rm -f "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log' \
  --customize-hook='rm -f "$1"/var/cache/ldconfig/aux-cache "$1"/etc/apt/sources.list' \
  "$TD_SUITE" "$dir" "deb [trusted=yes] copy://$repo ./" >&2

installed=$(chroot "$dir" dpkg-query -W -f '${Package} ${Version}\n' | LC_ALL=C sort)
locked=$(awk -v s="$set_" '$1 == s {print $2, $3}' "$TD_LOCK" | LC_ALL=C sort)
if [ "$installed" != "$locked" ]; then
  echo "bootstrap: installed packages differ from the lock ($set_):" >&2
  diff <(echo "$locked") <(echo "$installed") >&2 || true
  exit 1
fi
