#!/usr/bin/env bash
# Container start latency: time from POST /sw/api/v1/container to the task being Running, for an
# image conkerd already has, against `podman run -d` of the same image (same machine, same run,
# 5 runs each, interleaved, median), both publishing a port. Prints the ratio (goal <= 0.2), how much of
# conkerd's time is the pull step (with the default pull-policy `always`, every start asks the
# registry -- here on loopback -- for the manifest) and the Creating step (with the image cached
# under the reference its rootfs is mounted during the pull), and conkerd's RSS (VmRSS, RssAnon and RssFile
# from /proc/<pid>/status) idle, after the timed runs and after TASKS (default 50) more tasks came
# and went.
#
# conkerd runs with RUNTIME (default: crun when installed, else runc; a name in PATH or a path) and
# says which; podman always runs with runc (`--runtime runc`): on a host with hybrid cgroups podman
# cannot use crun, and runc is what it used before crun was installed.
#
# Usage: [RUNTIME=crun|runc|PATH] bench/start.sh [BUILD_DIR]
#        (root; needs docker-registry, umoci, skopeo, podman, runc)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
runs=${RUNS:-5}
tasks=${TASKS:-50}
if [ -z "${RUNTIME:-}" ]; then
  if command -v crun >/dev/null; then RUNTIME=crun; else RUNTIME=runc; fi
fi
command -v "$RUNTIME" >/dev/null || { echo "bench/start: runtime $RUNTIME is missing" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "bench/start: needs root" >&2; exit 1; }
for t in podman docker-registry skopeo umoci runc; do
  command -v "$t" >/dev/null || [ -x "/usr/bin/$t" ] || { echo "bench/start: $t is missing" >&2; exit 1; }
done
bash scripts/images.sh "$build" >/dev/null

CONKER_BUILD="$build" RUNS="$runs" TASKS="$tasks" RUNTIME="$RUNTIME" /usr/bin/python3 - <<'PY'
import datetime, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "tests/e2e")
from helpers.conkerd import Conkerd, BUILD          # noqa: E402
from helpers.registry import Registry, free_port    # noqa: E402

runtime = os.environ["RUNTIME"]
runtime_version = subprocess.run([runtime, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
runs = int(os.environ["RUNS"])
tasks = int(os.environ["TASKS"])
layout = Path(BUILD) / "images" / "conker-example-app"
tmp = Path(tempfile.mkdtemp(prefix="ck-bench-start-"))
P = "/sw/api/v1/container"


def ms(x):
    return f"{x * 1000:.1f} ms"


def rss(pid):
    want = ("VmRSS", "RssAnon", "RssFile")
    v = {l.split(":")[0]: int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith(want)}
    return f"{v['VmRSS']} kB (anon {v['RssAnon']}, file {v['RssFile']})"


def event_time(task, action):
    for ev in task["Events"]:
        if ev["Action"] == action:
            # RFC 3339 with nanoseconds: keep microseconds for fromisoformat.
            t = ev["Time"].rstrip("Z")
            head, _, frac = t.partition(".")
            return datetime.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}").timestamp()
    raise KeyError(action)


def start_one(d, name, port):
    body = json.dumps({"Name": name, "ImageInfo": {"ImageName": ref},
                       "Ports": [{"TargetPort": 8080, "PublishedPort": port}]})
    t0 = time.perf_counter()
    r = d.api("POST", P, data=body)
    assert r.status_code == 200, r.text
    while d.api("GET", f"{P}/{name}").json()["data"]["Status"] not in ("Running", "Failed"):
        time.sleep(0.002)
    took = time.perf_counter() - t0
    t = d.task(name)
    assert t["Status"] == "Running", t
    pull = event_time(t, "Pulled") - event_time(t, "Pulling")
    create = event_time(t, "Created") - event_time(t, "Creating")
    d.api("DELETE", f"{P}/{name}", timeout=120)
    return took, pull, create


def podman_one(image, i):
    name = f"ck-bench-start-{os.getpid()}-{i}"
    port = free_port() % 30000 + 30000
    # rlimits at or below the host's: podman's defaults exceed what this host allows.
    argv = ["podman", "--runtime", "runc", "run", "-d", "--name", name, "-p", f"{port}:8080",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    took = time.perf_counter() - t0
    subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    return took


with Registry(tmp / "reg", tls=False, auth=False) as reg:
    subprocess.run(["bash", "scripts/images.sh", BUILD, reg.host, "--dest-tls-verify=false"], check=True,
                   capture_output=True)
    ref = f"{reg.host}/reckey/conker-example-app:latest"
    with Conkerd(tmp, extra_args=["--insecure-registry", reg.host, "--log-level", "warn", "--runtime", runtime]) as d:
        time.sleep(1)
        idle_rss = rss(d.proc.pid)
        # A first task pulls the image and keeps it in use, so deleting the timed tasks leaves
        # it cached.
        r = d.api("POST", P, data=json.dumps({"Name": "keeper", "ImageInfo": {"ImageName": ref}}))
        assert r.status_code == 200, r.text
        d.wait_status("keeper", {"Running"})
        # podman: the same image from its OCI layout, cached before timing.
        subprocess.run(["podman", "pull", "-q", f"oci:{layout}:latest"], check=True, capture_output=True)
        image = subprocess.run(["podman", "images", "-q", "--filter", f"reference=*{layout.name}*"],
                               capture_output=True, text=True).stdout.split()[0]
        # Interleaved, one conkerd start then one podman start, so that both see the same load on
        # a shared machine.
        conker_times, pull_times, create_times, podman_times = [], [], [], []
        for i in range(runs):
            took, pull, create = start_one(d, f"b{i}", free_port() % 30000 + 30000)
            conker_times.append(took)
            pull_times.append(pull)
            create_times.append(create)
            podman_times.append(podman_one(image, i))
        busy_rss = rss(d.proc.pid)
        for i in range(tasks):
            start_one(d, f"m{i}", free_port() % 30000 + 30000)
        many_rss = rss(d.proc.pid)

    subprocess.run(["podman", "rmi", "-f", image], capture_output=True)

c, p = statistics.median(conker_times), statistics.median(podman_times)
print(f"start latency, cached image, median of {runs}; conkerd runtime: {runtime_version} ({runtime}), "
      f"podman runtime: runc")
print(f"  conkerd POST -> Running : {ms(c)}   (runs: {', '.join(ms(x) for x in conker_times)})")
print(f"    of which pull step    : {ms(statistics.median(pull_times))}   (pull-policy always: manifest "
      f"request to a registry on loopback; runs: {', '.join(ms(x) for x in pull_times)})")
print(f"    of which Creating     : {ms(statistics.median(create_times))}   (rootfs, volumes, secret tmpfs; "
      f"runs: {', '.join(ms(x) for x in create_times)})")
print(f"  podman run -d           : {ms(p)}   (runs: {', '.join(ms(x) for x in podman_times)})")
print(f"  ratio conkerd/podman    : {c / p:.2f}   (goal <= 0.2)")
print(f"  conkerd RSS idle        : {idle_rss}")
print(f"  conkerd RSS after {runs} timed tasks: {busy_rss}")
print(f"  conkerd RSS after {tasks} more tasks: {many_rss}")
subprocess.run(["rm", "-rf", str(tmp)])
PY
