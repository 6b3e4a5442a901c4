#!/usr/bin/env bash
# Fails when a tracked C file differs from what clang-format makes of it (.clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h')
for f in $files; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ "${#bad[@]}" -gt 0 ]; then
  echo "not clang-formatted (run 'make format'):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "check-format: $(echo $files | wc -w) files formatted"
