#!/usr/bin/env bash
# Puts every package of packages.lock into the local cache and makes one flat apt repository per
# set (td, tools, kernel) holding exactly the locked .debs. The builds then read only these
# repositories: what they install cannot drift with the mirror.
#   pool:  $TD_CACHE_ROOT/pool/<sha256>.deb   (content-addressed, shared across locks)
#   repos: $TD_CACHE_ROOT/<lock sha256>/<set>/{*.deb,Packages}
# Prints the repository root. Fails, naming the packages, when the mirror no longer has a
# locked version (Debian's mirrors keep only the current one).
set -euo pipefail
. "$(dirname "$0")/config.sh"

[ -r "$TD_LOCK" ] || { echo "fetch: $TD_LOCK missing (run scripts/td-image/lock.sh)" >&2; exit 1; }
lockhash=$(sha256sum "$TD_LOCK" | cut -c1-64)
repo=$TD_CACHE_ROOT/$lockhash
pool=$TD_CACHE_ROOT/pool
mkdir -p "$pool"

if [ -f "$repo/complete" ]; then
  echo "$repo"
  exit 0
fi

mapfile -t lines < <(grep -v '^#' "$TD_LOCK")
want=()
for l in "${lines[@]}"; do
  read -r _ pkg ver sha <<<"$l"
  [ -f "$pool/$sha.deb" ] || want+=("$pkg=$ver")
done

if [ "${#want[@]}" -gt 0 ]; then
  td_apt_env
  if ! apt-get "${TD_APT_OPTS[@]}" -qq --error-on=any update >&2; then
    echo "fetch: cannot read the package lists of $TD_MIRROR ($TD_SUITE, $TD_BACKPORTS);" \
      "${#want[@]} locked packages are not in $pool yet" >&2
    exit 1
  fi
  dl=$(mktemp -d "$TD_CACHE_ROOT/dl.XXXXXX")
  trap 'rm -rf "$dl"' EXIT
  mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
  if ! (cd "$dl" && apt-get "${TD_APT_OPTS[@]}" -q download "${want[@]}") \
    >"$dl/log" 2>&1; then
    cat "$dl/log" >&2
    missing=$(sed -n -e "s/^E: Version '\(.*\)' for '\(.*\)' was not found$/  \2=\1/p" \
      -e "s/^E: Unable to locate package \(.*\)$/  \1 (no such package)/p" "$dl/log")
    if [ -n "$missing" ]; then
      {
        echo "fetch: the mirror $TD_MIRROR no longer has these locked versions:"
        echo "$missing"
        echo "fetch: either point CONKER_TD_MIRROR at a snapshot that has them (e.g."
        echo "  http://snapshot.debian.org/archive/debian/<date>), or refresh the lock with"
        echo "  'make td-image-lock' (a new lock changes the image and its measurements)."
      } >&2
    fi
    exit 1
  fi
  rm -f "$dl/log"
  for f in "$dl"/*.deb; do
    sha=$(sha256sum "$f" | cut -c1-64)
    grep -q " $sha\$" "$TD_LOCK" || { echo "fetch: $f matches no locked digest" >&2; exit 1; }
    mv "$f" "$pool/$sha.deb"
  done
fi

rm -rf "$repo"
for l in "${lines[@]}"; do
  read -r set pkg ver sha <<<"$l"
  [ -f "$pool/$sha.deb" ] || { echo "fetch: $pkg=$ver not downloaded" >&2; exit 1; }
  mkdir -p "$repo/$set"
  ln -f "$pool/$sha.deb" "$repo/$set/${pkg}_${ver//:/%3a}_amd64.deb"
done
for d in "$repo"/*/; do
  # A Release naming the suite: mmdebstrap selects minbase's packages by ?archive(^trixie$).
  (cd "$d" && apt-ftparchive packages . >Packages 2>/dev/null &&
    apt-ftparchive -o APT::FTPArchive::Release::Suite="$TD_SUITE" \
      -o APT::FTPArchive::Release::Codename="$TD_SUITE" \
      -o APT::FTPArchive::Release::Date="$(date -u -R -d @0)" release . >Release)
done
touch "$repo/complete"
echo "$repo"
