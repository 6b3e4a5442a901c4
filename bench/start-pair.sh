#!/usr/bin/env bash
# Start latency of two conkerd builds side by side: both daemons run at once against one local
# registry and their starts alternate (before, after, after, before, ...), so that both see the
# same load on a shared machine. Prints, per build, POST -> Running as the client sees it,
# conkerd's own Starting -> Running (the task's events) and runtime_run's `shim + runc` stage
# (its debug line), as median, p25, p75 and min over N starts (default 30), and the median of the
# paired differences of Starting -> Running. For changes inside the start whose few milliseconds
# bench/start.sh's 5-start medians cannot resolve on a loaded machine.
#
# Usage: [N=30] bench/start-pair.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR
#        (root; needs docker-registry, umoci, skopeo; the images come from AFTER's scripts/images.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 1 ]; then  # `make bench` passes one build: there is nothing to pair it with
  echo "bench/start-pair: compares two builds (BEFORE_BUILD_DIR AFTER_BUILD_DIR); one given, nothing run"
  exit 0
fi
[ $# -eq 2 ] || { echo "usage: bench/start-pair.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR" >&2; exit 2; }
before=$(realpath "$1")
after=$(realpath "$2")
[ "$(id -u)" -eq 0 ] || { echo "bench/start-pair: needs root" >&2; exit 1; }
for b in "$before" "$after"; do
  [ -x "$b/src/conkerd/conkerd" ] || { echo "bench/start-pair: no conkerd in $b" >&2; exit 1; }
done
bash scripts/images.sh "$after" >/dev/null

CONKER_BUILD="$after" BEFORE="$before" N="${N:-30}" /usr/bin/python3 - <<'PY'
import datetime, json, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "tests/e2e")
import helpers.conkerd as hc                          # noqa: E402
from helpers.conkerd import Conkerd                   # noqa: E402
from helpers.registry import Registry, free_port      # noqa: E402

P = "/sw/api/v1/container"
n = int(os.environ["N"])
before = os.environ["BEFORE"]


class BeforeConkerd(Conkerd):
    """The same instance set-up with the other build's conkerd and conker-shim."""
    def argv(self):
        return [x.replace(hc.BUILD, before) if isinstance(x, str) else x for x in super().argv()]


def ts(x):
    head, _, frac = x.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}").timestamp()


def start_one(d, name, ref):
    body = json.dumps({"Name": name, "ImageInfo": {"ImageName": ref},
                       "Ports": [{"TargetPort": 8080, "PublishedPort": free_port() % 30000 + 30000}]})
    t0 = time.perf_counter()
    r = d.api("POST", P, data=body)
    assert r.status_code == 200, r.text
    while d.api("GET", f"{P}/{name}").json()["data"]["Status"] not in ("Running", "Failed"):
        time.sleep(0.002)
    took = (time.perf_counter() - t0) * 1000
    t = d.task(name)
    assert t["Status"] == "Running", t["Events"]
    ev = {e["Action"]: e["Time"] for e in t["Events"]}
    d.api("DELETE", f"{P}/{name}", timeout=120)
    return took, (ts(ev["Running"]) - ts(ev["Starting"])) * 1000


def q(v):
    v = sorted(v)
    return (f"median {statistics.median(v):.1f}, p25 {v[len(v) // 4]:.1f}, p75 {v[3 * len(v) // 4]:.1f}, "
            f"min {v[0]:.1f} ms")


tmp = Path(tempfile.mkdtemp(prefix="ck-bench-pair-"))
res = {"before": [], "after": []}
try:
    with Registry(tmp / "reg", tls=False, auth=False) as reg:
        subprocess.run(["bash", "scripts/images.sh", hc.BUILD, reg.host, "--dest-tls-verify=false"], check=True,
                       capture_output=True)
        ref = f"{reg.host}/reckey/conker-example-app:latest"
        with BeforeConkerd(tmp / "before", extra_args=["--insecure-registry", reg.host]) as b, \
                Conkerd(tmp / "after", extra_args=["--insecure-registry", reg.host]) as a:
            for d in (b, a):  # pulls the image and keeps it cached
                r = d.api("POST", P, data=json.dumps({"Name": "keeper", "ImageInfo": {"ImageName": ref}}))
                assert r.status_code == 200, r.text
                d.wait_status("keeper", {"Running"})
            for i in range(n):
                order = (("before", b), ("after", a)) if i % 2 == 0 else (("after", a), ("before", b))
                for k, d in order:
                    res[k].append(start_one(d, f"s{i}", ref))
                    time.sleep(0.1)
            logs = {"before": b.log(), "after": a.log()}
finally:
    subprocess.run(["rm", "-rf", str(tmp)])

print(f"start, {n} starts each, alternating; load {open('/proc/loadavg').read().split()[0]}")
for k in ("before", "after"):
    stage = [float(x) for x in re.findall(r"shim \+ runc ([\d.]+)", logs[k])][-n:]
    print(f"  {k:6}: POST -> Running {q([x[0] for x in res[k]])}")
    print(f"          Starting -> Running {q([x[1] for x in res[k]])}")
    print(f"          shim + runc {q(stage)}" + (" (spare shim)" if "spare shim + runc" in logs[k] else ""))
diff = [x[1] - y[1] for x, y in zip(res["before"], res["after"])]
print(f"  paired Starting -> Running, before - after: median {statistics.median(diff):.1f} ms")
PY
