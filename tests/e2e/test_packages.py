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
scripts/deb.sh itself fails when lintian reports an error, so building is also that check."""

import datetime
import glob
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

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


def test_install_into_clean_debian(debs, debian_root):
    root = debian_root
    for name, deb in debs.items():
        shutil.copy(deb, root / "tmp" / deb.name)
    chroot(root, "apt-get", "update", "-q")
    chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends",
           *[f"/tmp/{d.name}" for d in debs.values()], timeout=900)

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
    for page in ("man8/conkerd.8.gz", "man5/conkerd.conf.5.gz", "man1/conker.1.gz", "man8/conker-broker.8.gz"):
        assert (root / "usr/share/man" / page).exists(), page

    chroot(root, "apt-get", "purge", "-y", "-q", "conker", "conker-broker")
    assert not (root / "lib/systemd/system/conkerd.service").exists()
    assert not (wants / "conkerd.service").exists()
    assert not (root / "etc/conker/conkerd.conf").exists()
