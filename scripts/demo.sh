#!/usr/bin/env bash
# `make demo`: the seed story (docs/design.md §1) on this machine, end to end, with a simulated TD.
#
#   1. build the example app image and push it to a local docker-registry (TLS with a CA made for
#      the demo, htpasswd user/pass) as reckey/conker-example-app:latest;
#   2. create a simulated TD and start conkerd on it (--tee sim, --tls-cert auto: an RA-TLS API
#      certificate), docker.io mirrored to that registry; the operator attests conkerd with
#      `conker --attest` (reference values from the TD) before sending it the token, and a wrong
#      MRTD is refused;
#   3. read the TD's MRTD and RTMR1 and the image ID, write secret.json and start conker-broker
#      with the seed's flags plus --mrtd (plus --trust-sim-root for the simulator's root, and an
#      audit log);
#   4. POST the seed's request, print each task event as it arrives until Running;
#   5. ask the app for its secret, DELETE the task, and tear everything down.
#
# Everything lives in one temporary directory; the EXIT trap removes it and whatever the demo
# started (processes, mounts, network namespace, nftables table, bridge, loop devices), also when
# a step fails. Usage: scripts/demo.sh [BUILD_DIR]   (needs root: containers, mounts, nftables)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
conker="$build/src/cli/conker"
conkerd="${CONKERD:-$build/src/conkerd/conkerd}" # CONKERD: another conkerd binary (e.g. a sanitizer build)
broker="$build/src/conker-broker/conker-broker"
registry_bin=/usr/bin/docker-registry

bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'
[ -t 1 ] || bold='' dim='' green='' red='' off=''
step_no=0
step() { step_no=$((step_no + 1)); printf '\n%s== %d. %s%s\n' "$bold" "$step_no" "$*" "$off"; }
say() { printf '   %s\n' "$*"; }
die() { printf '%sdemo: %s%s\n' "$red" "$*" "$off" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (containers need mounts, network namespaces and nftables)"
for p in "$conker" "$conkerd" "$broker"; do [ -x "$p" ] || die "$p is missing; run 'make build'"; done
[ -x "$registry_bin" ] || die "docker-registry is missing; run 'make deps'"

# A free TCP port on 127.0.0.1 (the preferred one when it is free).
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
free_port() {
        if [ -n "${1:-}" ] && port_free "$1"; then echo "$1"; return; fi
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
work=$(mktemp -d "/tmp/ckdemo-$tag-XXXX")
chmod 0700 "$work"
pids=()
task=''
api=''
pin=''
# The API's requests with the token: -k because the RA-TLS certificate is self-signed; the
# certificate check is --pinnedpubkey, the key `conker --attest` proved a fresh quote for.
api_curl() { curl -sS -k --tlsv1.3 --pinnedpubkey "$pin" -H @"$work/auth-header" "$@"; }

teardown() {
        local rc=$?
        set +e
        trap - EXIT INT TERM
        printf '\n%s== teardown%s\n' "$bold" "$off"
        if [ -n "$task" ] && [ -n "$pin" ]; then
                api_curl -o /dev/null -X DELETE "$api/sw/api/v1/container/$task"
        fi
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
                kill -TERM "${pids[i]}" 2>/dev/null
        done
        for p in "${pids[@]}"; do
                for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$p" 2>/dev/null
                wait "$p" 2>/dev/null
        done
        # Whatever a failed run may have left: containers, mounts, rules, links, loop devices.
        if [ -d "$work/run/shims" ]; then
                for d in "$work"/run/shims/*/; do
                        [ -d "$d" ] || continue
                        runc --root "$work/run/runc" delete --force "$(basename "$d")" >/dev/null 2>&1
                        shim=$(jq -r '.shim_pid // 0' "$d/state.json" 2>/dev/null)
                        [ "${shim:-0}" -gt 0 ] 2>/dev/null && kill -KILL "$shim" 2>/dev/null
                done
        fi
        awk -v p="$work" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
                while read -r m; do umount -l "$m"; done
        losetup -nO NAME,BACK-FILE 2>/dev/null | awk -v p="$work" 'index($2, p) == 1 { print $1 }' |
                while read -r l; do losetup -d "$l"; done
        nft delete table inet "ckdemo$tag" >/dev/null 2>&1
        ip link del "ckdemo$tag" >/dev/null 2>&1
        rm -rf "$work"
        if [ "$rc" -eq 0 ]; then
                say "${green}stopped conkerd, conker-broker and the registry; removed $work$off"
        else
                say "${red}the demo failed (exit $rc); everything it started was removed$off"
        fi
        exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

started=$(date +%s)

# ---------------------------------------------------------------------------------------------
step "Build the example app image (make images)"
bash scripts/images.sh "$build" | sed 's/^/   /'

# ---------------------------------------------------------------------------------------------
step "Start a local registry (TLS with a demo CA, htpasswd user/pass) and push the image"
mkdir -p "$work/registry/certs" "$work/registry/storage"
certs="$work/registry/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$certs/ca.key" \
        -out "$certs/ca.crt" -days 1 -subj "/CN=conker demo CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$certs/server.key" \
        -out "$certs/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$certs/server.ext"
openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
        -out "$certs/server.crt" -days 1 -extfile "$certs/server.ext" 2>/dev/null
htpasswd -Bbn user pass >"$work/registry/htpasswd" 2>/dev/null
rport=$(free_port)
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry/storage
http:
  addr: 127.0.0.1:$rport
  secret: conker-demo-not-a-secret
  tls:
    certificate: $certs/server.crt
    key: $certs/server.key
auth:
  htpasswd:
    realm: conker-demo
    path: $work/registry/htpasswd
EOF
"$registry_bin" serve "$work/registry/config.yml" >"$work/registry/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$certs/ca.crt" "https://127.0.0.1:$rport/v2/" || true)
        [ "$code" = 401 ] && break
        sleep 0.1
done
[ "$code" = 401 ] || die "the registry did not start (see $work/registry/registry.log)"
say "registry: https://127.0.0.1:$rport (CA $certs/ca.crt, user/pass)"
# skopeo's layout for a registry CA, and its credentials in a file rather than on argv.
mkdir -p "$work/registry/skopeo-certs"
cp "$certs/ca.crt" "$work/registry/skopeo-certs/ca.crt"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}\n' "$rport" "$(printf user:pass | base64)" >"$work/registry/auth.json"
bash scripts/images.sh "$build" "127.0.0.1:$rport" --dest-authfile "$work/registry/auth.json" \
        --dest-cert-dir "$work/registry/skopeo-certs" | sed 's/^/   /'
image_id=$(skopeo inspect --raw --authfile "$work/registry/auth.json" --cert-dir "$work/registry/skopeo-certs" \
        "docker://127.0.0.1:$rport/reckey/conker-example-app:latest" | jq -r .config.digest)
[[ "$image_id" =~ ^sha256:[0-9a-f]{64}$ ]] || die "cannot read the image ID from the registry"
say "image ID (config digest): $image_id"

# ---------------------------------------------------------------------------------------------
step "Create a simulated TD (conker tdx-sim init) and start conkerd on it (--tee sim, --tls-cert auto)"
"$conker" tdx-sim init "$work/sim" | sed 's/^/   /'
tee_args=(--tee sim --sim-dir "$work/sim" --sim-state-dir "$work/sim-state")
aport=$(free_port 8383)
api="https://127.0.0.1:$aport"
: >"$work/conkerd.conf"
"$conkerd" --config "$work/conkerd.conf" "${tee_args[@]}" --listen "127.0.0.1:$aport" --tls-cert auto \
        --data-dir "$work/data" --run-dir "$work/run" --token-file "$work/token" \
        --registry-mirror "docker.io=127.0.0.1:$rport" --registry-ca-file "$certs/ca.crt" \
        --bridge "ckdemo$tag" --nft-table "ckdemo$tag" --subnet "10.$((RANDOM % 150 + 100)).$((RANDOM % 255)).0/24" \
        --netns-dir "$work/netns" --netns-prefix "ckd$tag-" --stop-timeout 2 \
        >"$work/conkerd.log" 2>&1 &
pids+=($!)
# The health probe carries no credential; -k until the certificate is attested below.
for _ in $(seq 100); do
        curl -fsSk -o /dev/null "$api/sw/api/v1/pub/health" 2>/dev/null && break
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/conkerd.log" >&2; die "conkerd exited"; }
        sleep 0.1
done
curl -fsSk -o /dev/null "$api/sw/api/v1/pub/health" || die "conkerd did not come up (see $work/conkerd.log)"
say "conkerd: $api (simulated TD $work/sim, log $work/conkerd.log)"

# ---------------------------------------------------------------------------------------------
step "The operator attests conkerd before sending it anything (conker --attest)"
# Reference values: what the operator expects the TD to be (here read from the simulated TD;
# for real hardware, from a measurement of the TD image the operator built).
"$conker" tdx info --json "${tee_args[@]}" |
        jq '.measurements | {mrtd: .mr_td, rtmr0: .rtmr[0], rtmr1: .rtmr[1], rtmr2: .rtmr[2], source: "demo"}' \
                >"$work/refvalues.json"
attest_args=(--trust-sim-root "$work/sim/root-ca.pem" --collateral "$work/sim/collateral.json")
say "reference values: $work/refvalues.json (MRTD, RTMR0-2)"
# A policy with one MRTD byte changed: conker refuses before it sends the token.
jq '.mrtd |= (if .[0:2] == "00" then "01" else "00" end) + .[2:]' "$work/refvalues.json" >"$work/wrong-mrtd.json"
if out=$("$conker" --attest "$work/wrong-mrtd.json" "${attest_args[@]}" attest --host "$api" 2>&1); then
        die "conker accepted a TD whose MRTD differs from the policy"
fi
say "${dim}with one MRTD byte changed: $out$off"
"$conker" --attest "$work/refvalues.json" "${attest_args[@]}" attest --host "$api" | sed 's/^/   /'
pin=$("$conker" --attest "$work/refvalues.json" "${attest_args[@]}" attest --pin --host "$api")
# The token goes to curl from a file (-H @file), never on a command line.
(umask 077 && printf 'Authorization: Bearer %s\n' "$(cat "$work/token")" >"$work/auth-header")
say "${green}attested; the requests below go only to that key (curl --pinnedpubkey $pin)$off"

# ---------------------------------------------------------------------------------------------
step "The data owner: read the TD's MRTD and RTMR1, write secret.json, start conker-broker"
tdinfo=$("$conker" tdx info --json "${tee_args[@]}")
rtmr1=$(jq -r '.measurements.rtmr[1]' <<<"$tdinfo")
mrtd=$(jq -r '.measurements.mr_td' <<<"$tdinfo")
[[ "$rtmr1" =~ ^[0-9a-f]{96}$ ]] || die "cannot read RTMR1 from the simulated TD"
[[ "$mrtd" =~ ^[0-9a-f]{96}$ ]] || die "cannot read MRTD from the simulated TD"
say "MRTD:  $mrtd (the firmware: an RTMR1 pin alone could be forged by the host's firmware)"
say "RTMR1: $rtmr1"
mkdir -p "$work/secret"
printf '{"userId":"demo","apiKey":"conker-demo-%s","note":"released only to an attested TD"}\n' \
        "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$work/secret/secret.json"
chmod 0400 "$work/secret/secret.json"
say "secret.json: $(cat "$work/secret/secret.json")"
bport=$(free_port 3333)
broker_args=(-m -i 127.0.0.1 -p "$bport" -v tdx_ecdsa -a nullattester -s "$work/secret/secret.json"
        -w "$rtmr1" -d "${image_id#sha256:}" --mrtd "$mrtd" --trust-sim-root "$work/sim/root-ca.pem"
        --audit-log "$work/audit.jsonl" --fingerprint-file "$work/broker.fingerprint")
say "conker-broker ${broker_args[*]}"
"$broker" "${broker_args[@]}" >"$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
        port_free "$bport" || break
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/broker.log" >&2; die "conker-broker exited"; }
        sleep 0.1
done
port_free "$bport" && die "conker-broker did not start listening (see $work/broker.log)"
fp=$(cat "$work/broker.fingerprint")
[[ "$fp" =~ ^sha256:[0-9a-f]{64}$ ]] || die "cannot read the broker's certificate fingerprint"
say "broker certificate: $fp (the operator pins it in the endpoint: conkerd refuses an unpinned broker)"

# ---------------------------------------------------------------------------------------------
step "The operator: POST /sw/api/v1/container (the seed's request)"
pport=$(free_port 30080)
# The seed's body verbatim; only when 3333/30080 are taken here are the ports moved (consistently).
body='{"Name":"conker-example-app","ImageInfo":{"ImageName":"reckey/conker-example-app:latest","RegisterAuthInfo":{"Username":"user","Password":"pass"}},"Ports":[{"TargetPort":8080,"PublishedPort":30080}],"Env":["userId=secret-127.0.0.1:3333"],"Mounts":[{"Type":"volume","Target":"/data","Source":"data","RW":true}],"KmsEndpoints":["127.0.0.1:3333"]}'
body=${body//127.0.0.1:3333/127.0.0.1:$bport}
body=${body//\"PublishedPort\":30080/\"PublishedPort\":$pport}
# The broker is pinned (host:port#sha256:<fingerprint>): the evidence only goes to that broker.
body=${body//\"KmsEndpoints\":\[\"127.0.0.1:$bport\"\]/\"KmsEndpoints\":[\"127.0.0.1:$bport#$fp\"]}
say "$body"
resp=$(api_curl -X POST -H 'Content-Type: application/json' --data-binary "$body" "$api/sw/api/v1/container")
say "-> $resp"
task=$(jq -r '.data.Id // empty' <<<"$resp")
[ -n "$task" ] || die "conkerd refused the request"

# ---------------------------------------------------------------------------------------------
step "Follow the task's events until Running"
seen=0
status=''
for _ in $(seq 1200); do
        doc=$(api_curl "$api/sw/api/v1/container/$task")
        n=$(jq '.data.Events | length' <<<"$doc")
        if [ "$n" -gt "$seen" ]; then
                jq -r --argjson from "$seen" '.data.Events[$from:][] | "\(.Time[11:23])  \(.Action)\t\(.Message)"' \
                        <<<"$doc" | sed 's/^/   /'
                seen=$n
        fi
        status=$(jq -r .data.Status <<<"$doc")
        case "$status" in Running | Failed | Cancelled) break ;; esac
        sleep 0.1
done
[ "$status" = Running ] || die "the task ended $status"

# ---------------------------------------------------------------------------------------------
step "The app inside the container: curl 127.0.0.1:$pport/api/v1/getsecret"
answer=''
for _ in $(seq 50); do
        answer=$(curl -fsS "http://127.0.0.1:$pport/api/v1/getsecret" 2>/dev/null) && break
        sleep 0.2
done
[ -n "$answer" ] || die "the app does not answer on 127.0.0.1:$pport"
say "$answer"
if [ "$(jq -r .data <<<"$answer")" = "$(cat "$work/secret/secret.json")" ]; then
        say "${green}the container received exactly the broker's secret.json$off"
else
        die "the app's secret differs from secret.json"
fi
say "RTMR3 log of the TD (what the broker replayed):"
jq -c . "$work/sim-state/rtmr3.log" | sed 's/^/     /'
say "broker audit log:"
jq -c '{time, decision, reason, appId, secretId, pinned, taskConfigDigest, tcbStatus, simulated} | with_entries(select(.value != null))' "$work/audit.jsonl" |
        sed 's/^/     /'

# ---------------------------------------------------------------------------------------------
step "DELETE /sw/api/v1/container (container, volume, secret tmpfs, rules, image)"
resp=$(api_curl -X DELETE "$api/sw/api/v1/container/$task")
say "-> $resp"
[ "$(jq -r .code <<<"$resp")" = 200 ] || die "DELETE failed"
[ ! -e "$work/run/tasks/$task" ] || die "the task's secret directory is still there"
say "secret tmpfs gone: $work/run/tasks/$task does not exist"
task=''

printf '\n%sThe seed story ran in %d s.%s\n' "$bold" "$(($(date +%s) - started))" "$off"
