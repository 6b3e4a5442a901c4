#!/usr/bin/env bash
# Quote verification throughput on one core against the bound implied by OpenSSL's own P-256
# verify speed, measured in the same run on the same machine.
#
# A full verification with cached collateral needs two P-256 ECDSA verifications that depend on
# the quote (QE report signature with the PCK key, quote signature with the attestation key);
# the PCK chain, CRLs, TCB Info and QE Identity are verified once per collateral and time window
# (see src/attest/verify.c). So the bound is verify_rate / 2, where verify_rate is the "verify/s"
# column of `openssl speed -seconds 3 ecdsap256`. Goal: ratio >= 0.7.
# Both rates are per CPU second (openssl speed divides by user CPU time unless -elapsed is given;
# bench-verify by user + system CPU time), so that other load on the machine does not skew the
# ratio.
# Usage: bench/verify.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
vectors=tests/data/tdx
quote=$vectors/dcap-qvl/tdx_quote
col=$vectors/dcap-qvl/tdx_quote_collateral.json
at=1752919234
secs=${BENCH_SECONDS:-3}

driver=$build/bench/bench-verify
[ -x "$driver" ] || { echo "bench-verify not built in $build" >&2; exit 1; }

# Both on one core, one after the other.
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)

speed=$("${pin[@]}" openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/ {print $NF}')
[ -n "$speed" ] || { echo "could not read openssl speed output" >&2; exit 1; }
ours=$("${pin[@]}" "$driver" "$quote" "$col" "$at" "$secs" | awk '/verifications_per_second/ {print $2}')

python3 - "$speed" "$ours" <<'PY'
import sys
verify_rate, ours = float(sys.argv[1]), float(sys.argv[2])
bound = verify_rate / 2
print(f"openssl speed -seconds 3 ecdsap256 verify/s (per CPU second): {verify_rate:.0f}")
print(f"bound (verify/s / 2, two P-256 verifies per quote): {bound:.0f} quotes/s")
print(f"conker quote verifications/s (1 thread, per CPU second, cached collateral): {ours:.0f}")
print(f"ratio: {ours / bound:.2f} (goal >= 0.70)")
PY
