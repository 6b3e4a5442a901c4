#!/usr/bin/env bash
# Pull benchmark: `conker image pull` against `podman pull` and `skopeo copy` (download only)
# of two images from a local docker-registry on 127.0.0.1 over plain HTTP, no throttling:
#   synthetic  5 layers, >= 50 MB: incompressible and compressible files, 3,000 small files;
#   realistic  5 layers built from what this Debian host has: Python's standard library and
#              dist-packages, Perl's modules, a set of shared libraries, then a layer that
#              deletes and changes files (whiteouts) — thousands of files, tens of MB compressed.
# Conker runs with the layer format it picks itself (auto: EROFS where the kernel mounts it)
# and with layer-format dir, so both layer formats are measured on the same images. Each tool
# runs N times into an empty store, the tools taking turns (round robin); medians of wall and CPU
# time and the ratios are printed.
# Goals: realistic image <= 0.2x podman and <= 1.5x skopeo (wall); synthetic <= 0.5x podman.
#
# Usage: bench/pull.sh [BUILD_DIR]   (needs root; the images are built once and cached under
# /var/tmp/conker-bench-pull; CONKER_BENCH_RUNS overrides the run count (default 3);
# CONKER_BENCH_DIR (default /var/tmp) is where the three tools write, e.g. /dev/shm to take the
# disk out; CONKER_BENCH_IMAGES=synthetic,realistic selects the images)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
[ -x "$build/src/cli/conker" ] || { echo "bench/pull: $build/src/cli/conker not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bench/pull: needs root" >&2; exit 77; }

exec /usr/bin/python3 - "$build" <<'PY'
import json, os, resource, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "tests/e2e")
from helpers.registry import ImageBuilder, Registry, run

build = Path(sys.argv[1])
conker = build / "src/cli/conker"
cache_root = Path("/var/tmp/conker-bench-pull")
runs = int(os.environ.get("CONKER_BENCH_RUNS", "3"))
wanted = os.environ.get("CONKER_BENCH_IMAGES", "synthetic,realistic").split(",")


def synthetic_layers():
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

    return [incompressible, compressible, small_files, mixed]


def copy_in(root, src):
    """Copies the host tree src to the same path under root (symlinks kept as links)."""
    src = Path(src)
    if src.is_dir():
        shutil.copytree(src, root / src.relative_to("/"), symlinks=True, dirs_exist_ok=True)


def realistic_layers():
    def python(root):
        copy_in(root, "/usr/lib/python3.11")
        copy_in(root, "/usr/lib/python3/dist-packages")

    def perl(root):
        for d in ("/usr/share/perl", "/usr/share/perl5", "/usr/lib/x86_64-linux-gnu/perl",
                  "/usr/lib/x86_64-linux-gnu/perl5", "/usr/lib/x86_64-linux-gnu/perl-base"):
            copy_in(root, d)

    def libs(root):
        # Shared libraries of the host, smallest first, up to ~120 MB: many files of every size.
        src = Path("/usr/lib/x86_64-linux-gnu")
        files = sorted((p for p in src.iterdir() if p.is_file() and not p.is_symlink() and ".so" in p.name),
                       key=lambda p: (p.stat().st_size, p.name))
        dest = root / "usr/lib/x86_64-linux-gnu"
        dest.mkdir(parents=True, exist_ok=True)
        total = 0
        for p in files:
            if total + p.stat().st_size > 120 << 20:
                break
            shutil.copy2(p, dest / p.name)
            total += p.stat().st_size
        for p in src.iterdir():  # the soname links that point at what was copied
            if p.is_symlink() and (dest / os.readlink(p)).exists():
                os.symlink(os.readlink(p), dest / p.name)

    def update(root):
        # An upgrade-like layer: deleted test suites (whiteouts), changed files.
        for sub in ("usr/lib/python3.11/test", "usr/lib/python3.11/idlelib", "usr/lib/python3.11/lib2to3"):
            shutil.rmtree(root / sub, ignore_errors=True)
        for p in sorted((root / "usr/lib/python3.11").glob("*.py"))[:200]:
            p.write_bytes(p.read_bytes() + b"\n# patched\n")

    return [python, perl, libs, update]


def build_image(name, layers):
    cache = cache_root / name
    layout = cache / "work" / "image"
    if (cache / "done").exists():
        return layout
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    b = ImageBuilder(cache / "work")
    img = b.busybox("image")
    for change in layers:
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


images = {"synthetic": synthetic_layers, "realistic": realistic_layers}
podman_roots = []  # podman argument prefixes of each run, reset at the end
tmp = Path(tempfile.mkdtemp(prefix="ck-bench-pull-", dir=os.environ.get("CONKER_BENCH_DIR", "/var/tmp")))
try:
    with Registry(tmp / "registry", tls=False, auth=False) as reg:
        # Every run writes into a fresh directory and nothing is deleted until the end: on
        # ext4 without a journal, inodes freed in the last 30 s are skipped (slowly) by the
        # inode allocator, so deleting run N's tree would slow run N+1 down.
        counter = iter(range(10000))
        podman_driver = os.environ.get("CONKER_BENCH_PODMAN_DRIVER", "overlay")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {runs} runs each, median; "
              f"in {tmp.parent}")
        for name in wanted:
            layout = build_image(name, images[name]())
            index = json.loads((layout / "index.json").read_text())
            manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
            n_layers = len(manifest["layers"])
            size = sum(x["size"] for x in manifest["layers"])
            ref = f"{reg.host}/bench/{name}:v1"
            run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                 f"oci:{layout}:latest", f"docker://{ref}"])
            oracle = cache_root / name / "files"
            if not oracle.exists():
                bundle = cache_root / name / "bundle"
                shutil.rmtree(bundle, ignore_errors=True)
                run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)])
                n = sum(len(d) + len(f) for _, d, f in os.walk(bundle / "rootfs"))
                shutil.rmtree(bundle, ignore_errors=True)
                oracle.write_text(f"{n}\n")
            n_files = int(oracle.read_text())

            def conker_pull(fmt):
                def pull():
                    d = tmp / f"conker-data-{next(counter)}"
                    return timed([str(conker), "image", "pull", "--plain-http", "--data-dir", str(d),
                                  "--layer-format", fmt, ref])
                return pull

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

            print(f"\n{name} image: {n_layers} layers, {size / 1e6:.1f} MB compressed, "
                  f"{n_files} files and directories")
            print(f"{'':24} {'wall':>8} {'cpu':>8}   wall of each run")
            # Round robin (each tool once per round, N rounds), after a sync: the writeback of
            # one tool's run (or of building the image) then slows every tool alike instead of
            # whichever happens to run first.
            subprocess.run(["sync"], check=True)
            tools = {"conker pull (auto)": conker_pull("auto"), "conker pull (dir)": conker_pull("dir"),
                     "podman": podman_pull, "skopeo": skopeo_copy}
            walls = {k: [] for k in tools}
            cpus = {k: [] for k in tools}
            for _ in range(runs):
                for label, fn in tools.items():
                    cpu_times.clear()
                    try:
                        walls[label].append(fn())
                    except SystemExit as e:
                        if label != "podman" or podman_driver != "overlay":
                            raise
                        print(f"podman overlay driver failed ({e}); using vfs")
                        podman_driver = "vfs"
                        walls[label].append(fn())
                    cpus[label].append(cpu_times[-1])
            rows = {k: (statistics.median(walls[k]), walls[k], statistics.median(cpus[k])) for k in tools}
            for label in tools:
                c, ct, cc = rows[label]
                shown = f"podman pull ({podman_driver})" if label == "podman" else \
                    "skopeo copy" if label == "skopeo" else label
                print(f"{shown:24} {c:7.3f}s {cc:7.3f}s   {' '.join(f'{x:.3f}' for x in ct)}")
            p, _, pc = rows["podman"]
            s_, _, sc = rows["skopeo"]
            for label in ("conker pull (auto)", "conker pull (dir)"):
                c, _, cc = rows[label]
                print(f"{label}: {c / p:.2f}x podman wall ({cc / pc:.2f} cpu), "
                      f"{c / s_:.2f}x skopeo wall ({cc / sc:.2f} cpu)")
            goal = "<= 0.2x podman, <= 1.5x skopeo" if name == "realistic" else "<= 0.5x podman"
            print(f"goal ({name}): {goal}")
finally:
    for args in podman_roots:
        subprocess.run(args + ["system", "reset", "--force"], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)
PY
