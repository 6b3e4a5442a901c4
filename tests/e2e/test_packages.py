"""The Debian packages (`make deb`, scripts/deb.sh) installed into a clean Debian 12 root.

The root is made with debootstrap (--variant=minbase, plus systemd and man-db so that
`systemd-analyze verify` can load the units and check their man pages) from the Debian mirror
apt is configured with, and cached as a tarball under /var/cache/conker-test/, one per day, so
that reruns unpack it instead of bootstrapping again; downloaded packages are cached there too.
In a fresh copy of it, apt installs both packages with their dependencies; then:
  - `systemd-analyze verify` accepts conkerd.service and conker-broker.service (their commands
    exist, their man pages are installed);
  - `conkerd --version`, `conker version` and `conker-broker --help` run;
  - the conffiles, the conker-broker system user and /etc/conker/broker are in place, and
    conkerd.service is enabled but conker-broker.service (unconfigured) is not;
  - purging both packages runs their maintainer scripts cleanly and leaves no unit behind.
A second test boots such a root with systemd-nspawn (its own network namespace), so that the
units run under a real systemd: conkerd.service (enabled by the package, configured for a
simulated TD) comes up at boot, conker-broker.service starts once BROKER_ARGS is set, both are
active only after their READY=1 (Type=notify), inside their sandboxes, and conkerd answers
`conker ps` with the token it created.
scripts/deb.sh itself fails when lintian reports an error, so building is also that check."""

import datetime
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers.conkerd import BUILD

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/conker-test")
SUITE = "bookworm"
EXTRA = ["systemd", "man-db"]


def apt_mirror() -> str:
    """The Debian mirror of this host's apt configuration for SUITE (deb822 or one-line form)."""
    texts = []
    for p in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            texts.append(Path(p).read_text())
        except OSError:
            pass
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                return fields["URIs"].split()[0]
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if m.group(2) == SUITE:
                return m.group(1)
    return "http://deb.debian.org/debian"


def run(argv, timeout=600, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def base_tarball() -> Path:
    """Today's minbase root as a tarball, bootstrapped once per day; older ones are removed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().strftime("%Y%m%d")
    tarball = CACHE / f"debian-{SUITE}-minbase-{stamp}.tar"
    if tarball.exists():
        return tarball
    mirror = apt_mirror()
    try:
        urllib.request.urlopen(f"{mirror}/dists/{SUITE}/Release", timeout=30).close()
    except OSError as e:
        pytest.skip(f"the Debian mirror {mirror} is not reachable: {e}")
    work = CACHE / f"bootstrap-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(EXTRA), SUITE, str(work), mirror],
            timeout=1200)
        run(["tar", "-C", str(work), "--numeric-owner", "-cf", f"{tarball}.part", "."])
        os.rename(f"{tarball}.part", tarball)
    finally:
        umount_below(work)
        shutil.rmtree(work, ignore_errors=True)
        Path(f"{tarball}.part").unlink(missing_ok=True)
    for old in CACHE.glob(f"debian-{SUITE}-minbase-*.tar"):
        if old != tarball:
            old.unlink(missing_ok=True)
    return tarball


def umount_below(d: Path):
    prefix = str(d)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for m in sorted((m for m in mounts if m == prefix or m.startswith(prefix + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


@pytest.fixture(scope="module")
def debs():
    if os.geteuid() != 0:
        pytest.skip("installing into a debootstrap root needs root")
    for tool in ("debootstrap", "dpkg-deb", "dpkg-shlibdeps", "lintian", "scdoc"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (scripts/deps.sh installs it)")
    out = ROOT / "build-deb"
    run(["bash", str(ROOT / "scripts" / "deb.sh"), str(out)], timeout=1800)
    found = {}
    for name in ("conker", "conker-broker"):
        m = sorted(out.glob(f"{name}_*.deb"), key=os.path.getmtime)
        assert m, f"scripts/deb.sh made no {name} package"
        found[name] = m[-1]
    return found


@pytest.fixture
def debian_root(tmp_path):
    tarball = base_tarball()
    root = tmp_path / "root"
    root.mkdir()
    archives = CACHE / "apt-archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(tarball)])
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    # No service may start inside the root (invoke-rc.d and deb-systemd-invoke ask this).
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    try:
        run(["mount", "-t", "proc", "proc", str(root / "proc")])
        run(["mount", "--bind", str(archives), str(root / "var/cache/apt/archives")])
        yield root
    finally:
        umount_below(root)


def chroot(root: Path, *argv, timeout=600):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
    return run(["chroot", str(root), *argv], timeout=timeout, env=env)


def apt_install(root: Path, debs: dict):
    for deb in debs.values():
        shutil.copy(deb, root / "tmp" / deb.name)
    chroot(root, "apt-get", "update", "-q")
    chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends",
           *[f"/tmp/{d.name}" for d in debs.values()], timeout=900)


def test_install_into_clean_debian(debs, debian_root):
    root = debian_root
    apt_install(root, debs)

    # The units load, their commands exist and their man pages are installed.
    for unit in ("conkerd.service", "conker-broker.service"):
        p = chroot(root, "systemd-analyze", "verify", f"/lib/systemd/system/{unit}")
        assert p.stderr.strip() == "", p.stderr

    assert chroot(root, "conkerd", "--version").stdout.strip() == "conkerd " + debs["conker"].name.split("_")[1]
    assert chroot(root, "conker", "version").stdout.startswith("conker ")
    assert "--mutual" in chroot(root, "conker-broker", "--help").stdout
    # The dependencies came with them.
    chroot(root, "runc", "--version")
    chroot(root, "nft", "--version")

    conf = (root / "etc/conker/conkerd.conf").read_text()
    assert "#listen = 0.0.0.0:8383" in conf
    assert (root / "etc/conker/conker-broker.conf").read_text().count('BROKER_ARGS=""') == 1
    conffiles = chroot(root, "dpkg-query", "-W", "-f=${Conffiles}\n", "conker", "conker-broker").stdout
    assert "/etc/conker/conkerd.conf" in conffiles and "/etc/conker/conker-broker.conf" in conffiles
    assert chroot(root, "getent", "passwd", "conker-broker").stdout.split(":")[5] == "/var/lib/conker-broker"
    st = os.stat(root / "etc/conker/broker")
    assert oct(st.st_mode & 0o7777) == "0o750"
    assert chroot(root, "stat", "-c", "%U:%G", "/etc/conker/broker").stdout.strip() == "root:conker-broker"
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "conkerd.service").is_symlink()
    assert not (wants / "conker-broker.service").exists()
    for page in ("man8/conkerd.8.gz", "man5/conkerd.conf.5.gz", "man1/conker.1.gz", "man8/conker-shim.8.gz",
                 "man8/conker-broker.8.gz"):
        assert (root / "usr/share/man" / page).exists(), page

    chroot(root, "apt-get", "purge", "-y", "-q", "conker", "conker-broker")
    assert not (root / "lib/systemd/system/conkerd.service").exists()
    assert not (wants / "conkerd.service").exists()
    assert not (root / "etc/conker/conkerd.conf").exists()


class Booted:
    """systemd booted in root by systemd-nspawn, with a private network namespace; commands run
    inside with nsenter(1) into the container's PID 1."""

    def __init__(self, root: Path, log: Path):
        self.log = open(log, "w")
        self.proc = subprocess.Popen(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
                                      "--private-network", "--console=pipe", "-D", str(root), "--boot"],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.leader = 0
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
            if kids:
                self.leader = int(kids[0])
                break
            time.sleep(0.2)
        if not self.leader:
            self.close()
            pytest.skip(f"systemd-nspawn cannot start a container here: {log.read_text()[-500:]}")

    def run(self, *argv, check=True, timeout=120):
        p = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "--", "env",
                            "PATH=/usr/sbin:/usr/bin:/sbin:/bin", *argv], capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {p.returncode}: {p.stdout}{p.stderr}")
        return p

    def wait_booted(self) -> str:
        state = ""
        for _ in range(300):
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.2)
        return state

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn shuts the container down cleanly
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def test_units_run_under_systemd(debs, debian_root, tmp_path):
    if not shutil.which("systemd-nspawn"):
        pytest.skip("systemd-nspawn is not installed (scripts/deps.sh installs systemd-container)")
    app = Path(BUILD) / "src" / "example-app" / "conker-example-app"
    if not app.exists() or "statically linked" not in run(["file", str(app)]).stdout:
        pytest.skip("a static conker-example-app is needed (normal build)")
    run(["bash", str(ROOT / "scripts" / "images.sh"), BUILD])
    root = debian_root
    apt_install(root, debs)

    # conkerd's data dir on an ext4 with the encrypt feature (a loop image mounted from here):
    # the container has no loop devices of its own for conkerd's fallback volume image.
    image = tmp_path / "data.img"
    with open(image, "wb") as f:
        f.truncate(256 << 20)
    run(["mkfs.ext4", "-q", "-F", "-O", "encrypt", str(image)])
    (root / "var/lib/conker").mkdir(mode=0o700)
    run(["mount", "-o", "loop", str(image), str(root / "var/lib/conker")])
    os.chmod(root / "var/lib/conker", 0o700)
    # conkerd on a simulated TD; the example image already in its store (the container has no
    # registry to pull from, hence pull-policy missing).
    chroot(root, "conker", "tdx-sim", "init", "/var/lib/conker-sim")
    shutil.copytree(Path(BUILD) / "images" / "conker-example-app", root / "opt/app")
    chroot(root, "conker", "image", "load", "/opt/app:latest", "docker.io/reckey/conker-example-app:latest")
    (root / "etc/conker/conkerd.conf").write_text(
        "listen = 127.0.0.1:8383\ntee = sim\nsim-dir = /var/lib/conker-sim\n"
        "sim-state-dir = /var/lib/conker/sim-state\npull-policy = missing\n")
    # The broker with the seed's flags, its secret and the simulator's root in /etc/conker/broker.
    broker_dir = root / "etc/conker/broker"
    shutil.copy(root / "var/lib/conker-sim/root-ca.pem", broker_dir / "sim-root.pem")
    shutil.copy(root / "var/lib/conker-sim/collateral.json", broker_dir / "collateral.json")
    (broker_dir / "secret.json").write_text('{"key":"123456"}')
    owner_files = [f"/etc/conker/broker/{n}" for n in ("secret.json", "sim-root.pem", "collateral.json")]
    chroot(root, "chgrp", "conker-broker", *owner_files)
    chroot(root, "chmod", "0640", *owner_files)
    args = ("-m -i 127.0.0.1 -p 3333 -v tdx_ecdsa -a nullattester -s /etc/conker/broker/secret.json "
            "-d " + "ab" * 32 + " -w " + "cd" * 48 + " --mrtd " + "ef" * 48 +
            " --trust-sim-root /etc/conker/broker/sim-root.pem")
    conf = root / "etc/conker/conker-broker.conf"
    conf.write_text(conf.read_text().replace('BROKER_ARGS=""', f'BROKER_ARGS="{args}"'))
    umount_below(root / "proc")
    umount_below(root / "var/cache/apt/archives")

    booted = Booted(root, tmp_path / "nspawn.log")
    try:
        state = booted.wait_booted()
        if state not in ("running", "degraded"):
            # A boot that waits for conkerd (no READY=1) is our failure, not the host's.
            jobs = booted.run("systemctl", "list-jobs", "--no-legend", check=False).stdout
            assert "conkerd" not in jobs, jobs + booted.run("journalctl", "-u", "conkerd", "--no-pager",
                                                            check=False).stdout
            pytest.skip(f"systemd does not finish booting in systemd-nspawn here ({state or 'no answer'}): {jobs}")
        # Another unit may fail in a container on some hosts; ours must not.
        failed = booted.run("systemctl", "list-units", "--failed", "--no-legend", check=False).stdout
        assert "conkerd.service" not in failed, failed

        # Enabled by the package: started at boot, active only after READY=1, in its sandbox.
        active = booted.run("systemctl", "is-active", "conkerd", check=False).stdout.strip()
        assert active == "active", booted.run("journalctl", "-u", "conkerd", "--no-pager", check=False).stdout
        assert booted.run("systemctl", "show", "-P", "Type", "conkerd").stdout.strip() == "notify"
        assert booted.run("stat", "-c", "%a", "/etc/conker/token").stdout.strip() == "600"
        assert booted.run("stat", "-c", "%a", "/run/netns").stdout.strip() == "755"
        ps = booted.run("conker", "ps", "--host", "http://127.0.0.1:8383", check=False)
        assert ps.returncode == 0, ps.stdout + ps.stderr

        # A task through the sandbox: overlay rootfs, an fscrypt volume, the secret tmpfs, a veth,
        # the bridge and the nftables table. Running it needs writable cgroup controllers, which
        # systemd-nspawn does not give a container on a cgroup v1 host: there the task may stop
        # at Starting, and only for that reason.
        tid = booted.run("conker", "run", "-d", "--name", "app", "-p", "30080:8080", "-v", "data:/data",
                         "reckey/conker-example-app:latest").stdout.strip()
        events = []
        for _ in range(300):
            events = json.loads(booted.run("conker", "events", "--json", tid).stdout)
            events = events.get("data", events) if isinstance(events, dict) else events
            if events and events[-1].get("Type", events[-1].get("Action")) in ("Running", "Failed"):
                break
            time.sleep(0.2)
        kinds = [e.get("Type", e.get("Action")) for e in events]
        assert "Created" in kinds, events
        if kinds[-1] != "Running":
            assert kinds[-2:] == ["Starting", "Failed"] and "cgroup" in events[-1]["Message"], events
        booted.run("conker", "rm", tid, timeout=120)

        # The broker: not enabled by the package; starts (active after READY=1) as its own user
        # with no capabilities once BROKER_ARGS is set.
        assert booted.run("systemctl", "is-enabled", "conker-broker", check=False).stdout.strip() == "disabled"
        start = booted.run("systemctl", "start", "conker-broker", check=False, timeout=120)
        journal = booted.run("journalctl", "-u", "conker-broker", "--no-pager", check=False).stdout
        assert start.returncode == 0, start.stderr + journal
        assert booted.run("systemctl", "is-active", "conker-broker").stdout.strip() == "active", journal
        pid = booted.run("systemctl", "show", "-P", "MainPID", "conker-broker").stdout.strip()
        status = booted.run("cat", f"/proc/{pid}/status").stdout
        uid = booted.run("id", "-u", "conker-broker").stdout.strip()
        assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
        assert re.search(r"^CapEff:\s+0+$", status, re.M), status
        assert booted.run("stat", "-c", "%U %a", "/var/lib/conker-broker").stdout.strip() == "conker-broker 700"

        booted.run("systemctl", "stop", "conker-broker", "conkerd")
    finally:
        booted.close()
        umount_below(root)
