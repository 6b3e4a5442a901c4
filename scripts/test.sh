#!/usr/bin/env bash
# Runs every test suite and prints one closing line "N passed, N failed, N skipped".
# Usage: scripts/test.sh BUILD_DIR ASAN_BUILD_DIR
# Suites: static checks; unit + fuzz-regress (normal build); unit + fuzz-regress (ASan+UBSan);
# slow; end-to-end (pytest, needs root). A skipped test (exit 77) is counted as skipped, never
# as passed. Exit status is non-zero when anything failed or when no test ran at all.
set -uo pipefail
cd "$(dirname "$0")/.."
# Debian's interpreter, where scripts/deps.sh installed pytest and requests (a python3 earlier
# in PATH, e.g. from pyenv, would not have them).
py=/usr/bin/python3

build=${1:-build}
asan=${2:-build-asan}
passed=0 failed=0 skipped=0
report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT

count_meson() { # $1 = build dir
  "$py" - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): p += 1
        elif r == "SKIP": s += 1
        else: f += 1
except FileNotFoundError:
    pass
print(p, f, s)
PY
}

add() { passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + $3)); }

echo "== static checks"
for check in check-banned check-format; do
  if bash "scripts/$check.sh"; then add 1 0 0; else add 0 1 0; fi
done

for dir in "$build" "$asan"; do
  echo "== unit and fuzz corpora ($dir)"
  meson test -C "$dir" --suite unit --suite fuzz-regress --print-errorlogs --num-processes 2 >"$report/out" 2>&1
  tail -n 12 "$report/out"
  grep -E '^[ 0-9/]+ .* (FAIL|TIMEOUT|ERROR) ' "$report/out" || true
  add $(count_meson "$dir")
done

if meson test -C "$build" --list 2>/dev/null | grep -q ' slow '; then
  echo "== slow"
  meson test -C "$build" --suite slow --print-errorlogs >"$report/out" 2>&1
  tail -n 8 "$report/out"
  add $(count_meson "$build")
fi

# The TD image booted under QEMU (tests/e2e/test_vm.py, minutes): where QEMU and the image
# build's tools are present, build the image and its test variant first; otherwise the test
# skips and says which is missing.
if [ "$(id -u)" = 0 ] && command -v qemu-system-x86_64 >/dev/null && command -v mmdebstrap >/dev/null; then
  echo "== TD image and its test variant (for tests/e2e/test_vm.py)"
  if CONKER_TD_TEST_VARIANT=1 bash scripts/td-image/build.sh "$PWD/$build/src/cli/conker" >"$report/out" 2>&1; then
    export CONKER_VM_TEST=1
  else
    tail -n 20 "$report/out"
    add 0 1 0
  fi
fi

if ls tests/e2e/test_*.py >/dev/null 2>&1; then
  echo "== end to end"
  CONKER_BUILD="$PWD/$build" "$py" -m pytest -v -rs --junitxml="$report/e2e.xml" tests/e2e 2>&1 | tail -n 60
  add $("$py" - "$report/e2e.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    t = ET.parse(sys.argv[1]).getroot()
    suites = [t] if t.tag == "testsuite" else t.findall("testsuite")
    tests = sum(int(s.get("tests", 0)) for s in suites)
    fail = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skip = sum(int(s.get("skipped", 0)) for s in suites)
    print(tests - fail - skip, fail, skip)
except Exception:
    print(0, 1, 0)
PY
)
fi

echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
