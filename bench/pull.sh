#!/usr/bin/env bash
# Pull benchmark: `conker image pull` against `podman pull` and `skopeo copy` (download only)
# of the same multi-layer image (>= 50 MB: incompressible and compressible files, many small
# files, 5 layers) from a local docker-registry on 127.0.0.1 over plain HTTP, no throttling.
# Each tool runs 3 times into an empty store; the medians and the ratios are printed.
# Goals: Conker <= 0.5x podman, <= 1.0x skopeo.
#
# Usage: bench/pull.sh [BUILD_DIR]   (needs root; the image is built once and cached under
# /var/tmp/conker-bench-pull; CONKER_BENCH_RUNS overrides the run count; CONKER_BENCH_DIR
# (default /var/tmp) is where the three tools write, e.g. /dev/shm to take the disk out)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
[ -x "$build/src/cli/conker" ] || { echo "bench/pull: $build/src/cli/conker not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bench/pull: needs root" >&2; exit 77; }

exec /usr/bin/python3 - "$build" <<'PY'
import os, resource, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "tests/e2e")
from helpers.registry import ImageBuilder, Registry, run

build = Path(sys.argv[1])
conker = build / "src/cli/conker"
cache = Path("/var/tmp/conker-bench-pull")
runs = int(os.environ.get("CONKER_BENCH_RUNS", "3"))


def build_image():
    layout = cache / "work" / "image"
    if (cache / "done").exists():
        return layout
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    b = ImageBuilder(cache / "work")
    img = b.busybox("image")
    rnd = lambda n: os.urandom(n)

    def incompressible(root):
        d = root / "data/random"
        d.mkdir(parents=True)
        for i in range(24):
            (d / f"blob{i:02}.bin").write_bytes(rnd(1 << 20))

    def compressible(root):
        d = root / "usr/share/doc/bench"
        d.mkdir(parents=True)
        words = [os.urandom(4).hex() for _ in range(4096)]
        for i in range(12):
            # Text with a small vocabulary: compresses ~3-5x, like source and docs do.
            text = " ".join(words[(i * 7919 + k * 31) % 4096] for k in range(280000))
            (d / f"text{i:02}.txt").write_text(text)

    def small_files(root):
        d = root / "usr/lib/bench"
        for i in range(3000):
            sub = d / f"m{i // 100:02}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i:04}.py").write_bytes(rnd(1024) + b"x = 1\n" * 300)

    def mixed(root):
        d = root / "opt/app"
        d.mkdir(parents=True)
        for i in range(8):
            (d / f"lib{i}.so").write_bytes(rnd(1 << 20) + bytes(1 << 20))

    for change in (incompressible, compressible, small_files, mixed):
        img.add_dir_layer(change)
    shutil.rmtree(cache / "work" / "bundle", ignore_errors=True)
    (cache / "done").write_text("ok\n")
    return img.layout


cpu_times = []  # CPU seconds (user + sys, the tool and its children) of the last timed() call


def timed(cmd, **kw):
    """Wall time of cmd; its CPU time goes to cpu_times. On a loaded host the wall time mostly
    measures the run queue, so both are reported."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    dt = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"bench/pull: {cmd[0]} failed: {r.stderr.strip()[-800:]}")
    cpu_times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return dt


def median_of(fn):
    cpu_times.clear()
    times = [fn() for _ in range(runs)]
    return statistics.median(times), times, statistics.median(cpu_times)


layout = build_image()
size = sum(f.stat().st_size for f in (layout / "blobs/sha256").iterdir())
podman_roots = []  # podman argument prefixes of each run, reset at the end
tmp = Path(tempfile.mkdtemp(prefix="ck-bench-pull-", dir=os.environ.get("CONKER_BENCH_DIR", "/var/tmp")))
try:
    with Registry(tmp / "registry", tls=False, auth=False) as reg:
        run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
             f"oci:{layout}:latest", f"docker://{reg.host}/bench/pull:v1"])
        ref = f"{reg.host}/bench/pull:v1"

        # Every run writes into a fresh directory and nothing is deleted until the end: on
        # ext4 without a journal, inodes freed in the last 30 s are skipped (slowly) by the
        # inode allocator, so deleting run N's tree would slow run N+1 down.
        counter = iter(range(1000))
        podman_driver = os.environ.get("CONKER_BENCH_PODMAN_DRIVER", "overlay")

        def conker_pull():
            d = tmp / f"conker-data-{next(counter)}"
            return timed([str(conker), "image", "pull", "--plain-http", "--data-dir", str(d), ref])

        def podman_args(i):
            return ["podman", "--root", str(tmp / f"podman-root-{i}"), "--runroot",
                    str(tmp / f"podman-run-{i}"), "--storage-driver", podman_driver]

        def podman_pull():
            i = next(counter)
            podman_roots.append(podman_args(i))
            return timed(podman_args(i) + ["--runtime", "runc", "--cgroup-manager", "cgroupfs",
                                           "--events-backend", "none", "pull", "--quiet",
                                           "--tls-verify=false", ref])

        def skopeo_copy():
            d = tmp / f"skopeo-oci-{next(counter)}"
            return timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                          f"docker://{ref}", f"oci:{d}:v1"])

        print(f"image: 5 layers, {size / 1e6:.1f} MB compressed; {runs} runs each, median; in {tmp.parent}")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'':22} {'wall':>8} {'cpu':>8}   wall of each run")
        c, ct, cc = median_of(conker_pull)
        print(f"{'conker image pull':22} {c:7.3f}s {cc:7.3f}s   {' '.join(f'{x:.3f}' for x in ct)}")
        try:
            p, pt, pc = median_of(podman_pull)
        except SystemExit as e:
            if podman_driver != "overlay":
                raise
            print(f"podman overlay driver failed ({e}); using vfs")
            podman_driver = "vfs"
            p, pt, pc = median_of(podman_pull)
        print(f"{'podman pull (' + podman_driver + ')':22} {p:7.3f}s {pc:7.3f}s   {' '.join(f'{x:.3f}' for x in pt)}")
        s, st, sc = median_of(skopeo_copy)
        print(f"{'skopeo copy':22} {s:7.3f}s {sc:7.3f}s   {' '.join(f'{x:.3f}' for x in st)}")
        print(f"ratio conker/podman = {c / p:.2f} wall, {cc / pc:.2f} cpu (goal <= 0.5)")
        print(f"ratio conker/skopeo = {c / s:.2f} wall, {cc / sc:.2f} cpu (goal <= 1.0)")
finally:
    for args in podman_roots:
        subprocess.run(args + ["system", "reset", "--force"], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)
PY
