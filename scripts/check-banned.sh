#!/usr/bin/env bash
# Fails when a tracked C file calls a function docs/style.md bans (unbounded string functions,
# atoi-style parsing, strtok, shelling out). Comments are not searched.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok|system|popen|tmpnam|mktemp)[[:space:]]*\('
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h')
hits=$(grep -nE "$banned" $files | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*)' || true)
if [ -n "$hits" ]; then
  echo "banned functions (see docs/style.md):"
  echo "$hits"
  exit 1
fi
echo "check-banned: $(echo $files | wc -w) files clean"
