#!/usr/bin/env bash
# Broker benchmark: attested secret releases per second with 1, 8 and 64 concurrent clients,
# against plain mutual-TLS 1.3 exchanges with the same keys, cipher and server code, in the
# same run. Prints one line per client count with both rates, their ratio and p99 latencies.
#
#   bench/broker.sh [BUILD_DIR] [SECONDS_PER_RUN]
#   (environment: BROKER_CLIENTS="1 8 64", BROKER_ROUNDS=2, BROKER_WORKERS=8,
#    BROKER_AUDIT_FSYNC=always, BROKER_CACHE_TTL=0)
#
# Attested: conker-broker with a simulated TD's RTMR1 and the sim root, speaking the bound
#   protocol (docs/protocol.md): every connection is a fresh client identity (new P-256 key and
#   certificate), a full TLS 1.3 handshake, the exporter value, evidence made by the simulated
#   TD for that session (the TD's quote is in the timed loop, on the same CPUs), POST
#   /v1/secret, quote verification, the session binding, policy evaluation, an audit line
#   (fsync policy as given in BROKER_AUDIT_FSYNC, default "always") and the secret. Every quote
#   is new, so the verification cache cannot help; it is off (BROKER_CACHE_TTL, default 0).
# Plain: conker-broker-plain, the same listener, workers, TLS context and request handling,
#   without attestation, policy or audit; the loader uses a fresh identity per connection too.
# Columns: releases per second and their ratio (what the machine's other load and the disk's
# fdatasync latency move), p99 latencies, and the CPU milliseconds one exchange costs (server
# and loader together) in each mode with their ratio plain/attested (what other load does not
# move: the cost of attestation itself).
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
  --cache-ttl "${BROKER_CACHE_TTL:-0}" --max-clients 1024 2>"$work/broker.log" &
broker_pid=$!
pids+=($!)
pp=$(free_port)
"$bin/conker-broker-plain" --port "$pp" --secret "$work/secret.json" --workers "$workers" 2>"$work/plain.log" &
plain_pid=$!
pids+=($!)
wait_port "$pa" && wait_port "$pp" || { echo "bench/broker.sh: servers did not start"; cat "$work"/*.log; exit 1; }

echo "broker benchmark: ${secs}s per run, $workers workers, audit fsync ${BROKER_AUDIT_FSYNC:-always}," \
     "verification cache ttl ${BROKER_CACHE_TTL:-0}s, fresh identity per connection, session binding on," \
     "$(nproc) CPUs"
printf '%-8s %12s %12s %6s %10s %10s %9s %9s %8s\n' clients attested/s plain-mtls/s ratio p99-att-ms \
  p99-pln-ms cpu-ms/att cpu-ms/pln cpu-ratio
# Attested and plain runs alternate (ROUNDS of each per client count) so that load from other
# processes on the machine falls on both alike; rates are totals over the rounds.
rounds=${BROKER_ROUNDS:-2}
# CPU seconds (user + system) a server process has used: with the loader's own figure this gives
# the CPU cost of one release, which other load on the machine does not change.
srv_cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat"; }
for c in ${BROKER_CLIENTS:-1 8 64}; do
  runs=()
  for _ in $(seq "$rounds"); do
    s0=$(srv_cpu "$broker_pid")
    r=$("$bin/conker-broker-load" --endpoint "127.0.0.1:$pa" "${sim[@]}" --app-id "$image" \
      --clients "$c" --seconds "$secs")
    runs+=("$r" "$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$s0" "$(srv_cpu "$broker_pid")")")
    s0=$(srv_cpu "$plain_pid")
    r=$("$bin/conker-broker-load" --endpoint "127.0.0.1:$pp" "${sim[@]}" --app-id "$image" --plain \
      --clients "$c" --seconds "$secs")
    runs+=("$r" "$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$s0" "$(srv_cpu "$plain_pid")")")
  done
  python3 - "$c" "${runs[@]}" <<'PY'
import json, sys
c, a = sys.argv[1], sys.argv[2:]
runs = [dict(json.loads(a[i]), server_cpu_s=float(a[i + 1])) for i in range(0, len(a), 2)]
def total(mode):
    rs = [r for r in runs if r["mode"] == mode]
    ok = sum(r["ok"] for r in rs)
    cpu_ms = 1000 * sum(r["cpu_s"] + r["server_cpu_s"] for r in rs) / ok if ok else 0.0
    return (ok / sum(r["seconds"] for r in rs), max(r["p99_ms"] for r in rs), sum(r["errors"] for r in rs), cpu_ms)
(a, a99, ae, acpu), (p, p99, pe, pcpu) = total("bound"), total("plain")
ratio = a / p if p else 0.0
print(f'{c:<8} {a:12.1f} {p:12.1f} {ratio:6.2f} {a99:10.2f} {p99:10.2f} {acpu:9.3f} {pcpu:9.3f} {pcpu / acpu if acpu else 0:8.2f}'
      + (f'   errors: attested {ae}, plain {pe}' if ae or pe else ''))
PY
done
echo "audit lines written: $(wc -l <"$work/audit.jsonl")"
