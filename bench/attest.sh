#!/usr/bin/env bash
# Attesting-step benchmark: how long conkerd's Attesting step takes for the seed's request (one
# KMS endpoint), measured inside conkerd and read back from the task events, over several tasks.
#
#   bench/attest.sh [BUILD_DIR] [TASKS]      (root; default 10 tasks)
#
# Setup (not timed): a local docker-registry with the example app, conkerd on a simulated TD
# (--tee sim) with docker.io mirrored to it, conker-broker with the seed's flags and
# --trust-sim-root. Each task is the seed's request; it runs to Running and is deleted before
# the next one. The step's time is what conkerd reports in the Attested event ("attested to 1 KMS
# endpoint in N ms": measuring the image into RTMR3, a fresh client key, the TLS handshake with
# the pinned broker, the exporter value, the quote over claims bound to that session, the
# broker's verification, binding check and policy, the audit line and the secret) and, as a cross-check, the
# difference of the Attesting and Attested event timestamps. The seed's README gives 280 ms for
# the same step (rats-tls, real TDX quote generation); the comparison is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
tasks=${2:-10}
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/attest.sh: needs root (conkerd runs containers); skipped"
  exit 0
fi
for p in src/conkerd/conkerd src/conker-broker/conker-broker src/cli/conker; do
  [ -x "$build/$p" ] || { echo "bench/attest.sh: $build/$p is not built"; exit 1; }
done
CONKER_BUILD="$build" exec /usr/bin/python3 - "$tasks" <<'EOF'
import json, os, re, statistics, subprocess, sys, tempfile, time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, "tests/e2e")
from helpers.broker import Broker          # noqa: E402
from helpers.conkerd import BUILD, Conkerd  # noqa: E402
from helpers.registry import Registry      # noqa: E402

SEED_MS = 280
n = int(sys.argv[1])
tmp = Path(tempfile.mkdtemp(prefix="ck-bench-attest-"))
reg = d = b = None


def ts(s):
    # RFC 3339 with nanoseconds; keep microseconds for datetime.
    return datetime.fromisoformat(re.sub(r"\.(\d{6})\d*Z$", r".\1+00:00", s)).timestamp()


try:
    reg = Registry(tmp / "registry", user="user", password="pass")
    reg.start()
    subprocess.run(["bash", "scripts/images.sh", BUILD, reg.host, *reg.skopeo_dest_args()], check=True,
                   capture_output=True, timeout=180)
    m = reg.session().get(f"{reg.url}/v2/reckey/conker-example-app/manifests/latest",
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    m.raise_for_status()
    image_id = m.json()["config"]["digest"]
    d = Conkerd(tmp, extra_args=["--registry-mirror", f"docker.io={reg.host}",
                                 "--registry-ca-file", str(reg.ca_file), "--log-level", "info"])
    d.start()
    rtmr1 = d.tdx_info()["measurements"]["rtmr"][1]
    mrtd = d.tdx_info()["measurements"]["mr_td"]
    secret = tmp / "secret.json"
    secret.write_text('{"bench": true}')
    b = Broker(tmp, ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(secret), "-w", rtmr1,
                     "-d", image_id[7:], "--mrtd", mrtd, "--trust-sim-root", str(d.sim_root)])
    reported, stamped = [], []
    for i in range(n):
        body = {"Name": f"bench-attest-{i}", "ImageInfo": {"ImageName": "reckey/conker-example-app:latest",
                "RegisterAuthInfo": {"Username": "user", "Password": "pass"}},
                "Env": [f"userId=secret-{b.endpoint}"], "KmsEndpoints": [b.pinned]}
        r = d.api("POST", "/sw/api/v1/container", json=body)
        assert r.status_code == 200, r.text
        tid = r.json()["data"]["Id"]
        t = d.wait_status(tid, {"Running", "Failed"}, timeout=120)
        assert t["Status"] == "Running", t["Events"]
        ev = {e["Action"]: e for e in t["Events"]}
        mm = re.fullmatch(r"attested to 1 KMS endpoint in (\d+) ms", ev["Attested"]["Message"])
        reported.append(int(mm.group(1)))
        stamped.append((ts(ev["Attested"]["Time"]) - ts(ev["Attesting"]["Time"])) * 1000)
        d.api("DELETE", f"/sw/api/v1/container/{tid}", timeout=120)
    med = statistics.median(reported)
    print(f"Attesting step (conkerd, simulated TD, 1 KMS endpoint on 127.0.0.1), {n} tasks:")
    print(f"  reported by conkerd: median {med:.0f} ms, min {min(reported)} ms, max {max(reported)} ms")
    print(f"  from event times:    median {statistics.median(stamped):.1f} ms")
    print(f"  seed README:         {SEED_MS} ms  -> {SEED_MS / max(med, 1):.1f}x "
          f"{'faster' if med < SEED_MS else 'slower'} (note: simulated quotes, no network to the broker)")
finally:
    for x in (b,):
        if x:
            x.stop()
    if d:
        d.close()
    if reg:
        reg.stop()
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
EOF
