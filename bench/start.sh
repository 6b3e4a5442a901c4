#!/usr/bin/env bash
# Container start latency: time from POST /sw/api/v1/container to the task being Running, for an
# image conkerd already has, against `podman run -d` of the same image (same machine, same run,
# 5 runs each, median), both publishing a port. Prints the ratio (goal <= 0.25) and conkerd's
# idle RSS (VmRSS from /proc/<pid>/status).
#
# Usage: bench/start.sh [BUILD_DIR]    (root; needs docker-registry, umoci, skopeo, podman, runc)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
runs=${RUNS:-5}

[ "$(id -u)" -eq 0 ] || { echo "bench/start: needs root" >&2; exit 1; }
for t in podman docker-registry skopeo umoci runc; do
  command -v "$t" >/dev/null || [ -x "/usr/bin/$t" ] || { echo "bench/start: $t is missing" >&2; exit 1; }
done
bash scripts/images.sh "$build" >/dev/null

CONKER_BUILD="$build" RUNS="$runs" /usr/bin/python3 - <<'PY'
import json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "tests/e2e")
from helpers.conkerd import Conkerd, BUILD          # noqa: E402
from helpers.registry import Registry, free_port    # noqa: E402

runs = int(os.environ["RUNS"])
layout = Path(BUILD) / "images" / "conker-example-app"
tmp = Path(tempfile.mkdtemp(prefix="ck-bench-start-"))
P = "/sw/api/v1/container"


def ms(x):
    return f"{x * 1000:.1f} ms"


with Registry(tmp / "reg", tls=False, auth=False) as reg:
    subprocess.run(["bash", "scripts/images.sh", BUILD, reg.host, "--dest-tls-verify=false"], check=True,
                   capture_output=True)
    ref = f"{reg.host}/reckey/conker-example-app:latest"
    with Conkerd(tmp, extra_args=["--insecure-registry", reg.host, "--log-level", "warn"]) as d:
        time.sleep(1)
        idle_rss = [l for l in open(f"/proc/{d.proc.pid}/status") if l.startswith("VmRSS")][0].split()[1]
        # A first task pulls the image and keeps it in use, so deleting the timed tasks leaves
        # it cached.
        r = d.api("POST", P, data=json.dumps({"Name": "keeper", "ImageInfo": {"ImageName": ref}}))
        assert r.status_code == 200, r.text
        d.wait_status("keeper", {"Running"})
        conker_times = []
        for i in range(runs):
            port = free_port() % 30000 + 30000
            body = json.dumps({"Name": f"b{i}", "ImageInfo": {"ImageName": ref},
                               "Ports": [{"TargetPort": 8080, "PublishedPort": port}]})
            t0 = time.perf_counter()
            r = d.api("POST", P, data=body)
            assert r.status_code == 200, r.text
            while d.api("GET", f"{P}/b{i}").json()["data"]["Status"] not in ("Running", "Failed"):
                time.sleep(0.002)
            conker_times.append(time.perf_counter() - t0)
            assert d.task(f"b{i}")["Status"] == "Running"
            d.api("DELETE", f"{P}/b{i}", timeout=120)
        busy_rss = [l for l in open(f"/proc/{d.proc.pid}/status") if l.startswith("VmRSS")][0].split()[1]

    # podman: the same image from its OCI layout, cached before timing.
    subprocess.run(["podman", "pull", "-q", f"oci:{layout}:latest"], check=True, capture_output=True)
    image = subprocess.run(["podman", "images", "-q", "--filter", f"reference=*{layout.name}*"],
                           capture_output=True, text=True).stdout.split()[0]
    podman_times = []
    for i in range(runs):
        name = f"ck-bench-start-{os.getpid()}-{i}"
        port = free_port() % 30000 + 30000
        # rlimits at or below the host's: podman's defaults exceed what this host allows.
        argv = ["podman", "run", "-d", "--name", name, "-p", f"{port}:8080", "--ulimit", "nofile=1024:1024",
                "--ulimit", "nproc=1024:1024", image]
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        podman_times.append(time.perf_counter() - t0)
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    subprocess.run(["podman", "rmi", "-f", image], capture_output=True)

c, p = statistics.median(conker_times), statistics.median(podman_times)
print(f"start latency, cached image, median of {runs}")
print(f"  conkerd POST -> Running : {ms(c)}   (runs: {', '.join(ms(x) for x in conker_times)})")
print(f"  podman run -d           : {ms(p)}   (runs: {', '.join(ms(x) for x in podman_times)})")
print(f"  ratio conkerd/podman    : {c / p:.2f}   (goal <= 0.25)")
print(f"  conkerd idle RSS        : {idle_rss} kB (after {runs} tasks: {busy_rss} kB)")
subprocess.run(["rm", "-rf", str(tmp)])
PY
