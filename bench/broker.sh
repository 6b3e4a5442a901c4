#!/usr/bin/env bash
# Broker benchmark: attested secret releases per second with 1, 8 and 64 concurrent clients,
# against plain mutual-TLS 1.3 exchanges with the same keys, cipher and server code, in the
# same run. Prints one line per client count with both rates, their ratio and p99 latencies.
#
#   bench/broker.sh [BUILD_DIR] [SECONDS_PER_RUN]
#
# Attested: conker-broker with a simulated TD's RTMR1 and the sim root; every connection is a
#   full TLS 1.3 handshake with an RA-TLS client certificate, policy evaluation, an audit line
#   (fsync policy as given in BROKER_AUDIT_FSYNC, default "always") and the secret. Quote
#   verification is cached per certificate (--cache-ttl, the broker's default); set
#   BROKER_CACHE_TTL=0 to verify every quote.
# Plain: conker-broker-plain, the same listener, workers, TLS context and request handling,
#   without attestation, policy or audit.
# The loader makes 64 RA-TLS identities first (not timed) and uses them round-robin in both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
secs=${2:-3}
bin="$build/src/conker-broker"
for p in conker-broker conker-broker-plain conker-broker-load conker-broker-testclient; do
  [ -x "$bin/$p" ] || { echo "bench/broker.sh: $bin/$p is not built"; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

image="sha256:$(printf 'ab%.0s' $(seq 32))"
"$bin/conker-broker-testclient" sim-init "$work/sim" >/dev/null
mkdir -p "$work/state"
sim=(--sim-dir "$work/sim" --sim-state-dir "$work/state")
rtmr1=$("$bin/conker-broker-testclient" rtmr1 "${sim[@]}")
mrtd=$("$bin/conker-broker-testclient" mrtd "${sim[@]}")
echo '{"bench":"secret","value":"0123456789abcdef"}' >"$work/secret.json"
workers=${BROKER_WORKERS:-8}

pa=$(free_port)
"$bin/conker-broker" -m -i 127.0.0.1 -p "$pa" -v tdx_ecdsa -a nullattester -s "$work/secret.json" \
  -w "$rtmr1" -d "$image" --mrtd "$mrtd" --trust-sim-root "$work/sim/root-ca.pem" -l warn --workers "$workers" \
  --audit-log "$work/audit.jsonl" --audit-fsync "${BROKER_AUDIT_FSYNC:-always}" \
  --cache-ttl "${BROKER_CACHE_TTL:-300}" --max-clients 1024 2>"$work/broker.log" &
pids+=($!)
pp=$(free_port)
"$bin/conker-broker-plain" --port "$pp" --secret "$work/secret.json" --workers "$workers" 2>"$work/plain.log" &
pids+=($!)
wait_port "$pa" && wait_port "$pp" || { echo "bench/broker.sh: servers did not start"; cat "$work"/*.log; exit 1; }

echo "broker benchmark: ${secs}s per run, $workers workers, audit fsync ${BROKER_AUDIT_FSYNC:-always}," \
     "verification cache ttl ${BROKER_CACHE_TTL:-300}s, $(nproc) CPUs"
printf '%-8s %14s %14s %7s %12s %12s\n' clients attested/s plain-mtls/s ratio p99-att-ms p99-plain-ms
for c in 1 8 64; do
  a=$("$bin/conker-broker-load" --endpoint "127.0.0.1:$pa" "${sim[@]}" --app-id "$image" --identities 64 \
      --clients "$c" --seconds "$secs")
  p=$("$bin/conker-broker-load" --endpoint "127.0.0.1:$pp" "${sim[@]}" --app-id "$image" --identities 64 \
      --clients "$c" --seconds "$secs")
  python3 - "$c" "$a" "$p" <<'PY'
import json, sys
c, a, p = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
ratio = a["per_second"] / p["per_second"] if p["per_second"] else 0.0
print(f'{c:<8} {a["per_second"]:14.1f} {p["per_second"]:14.1f} {ratio:7.2f} {a["p99_ms"]:12.2f} {p["p99_ms"]:12.2f}'
      + (f'   errors: attested {a["errors"]}, plain {p["errors"]}' if a["errors"] or p["errors"] else ''))
PY
done
echo "audit lines written: $(wc -l <"$work/audit.jsonl")"
