"""The TD image build (scripts/td-image/, docs/td-image.md).

test_fetch_*: fast and local (the mirror is 127.0.0.1:9, where nothing listens): a mirror that
cannot be read fails with a message naming it; packages already in the cache need no mirror.
test_reproducible, test_initrd_contents and test_boot: slow (two full image builds, ~1 min each
with the package cache warm, and a boot under QEMU TCG, ~1 min), so they run only when asked
(CONKER_TD_IMAGE_TEST=1, `make td-image-test`): the image is built twice into two directories,
every artefact's digest and the predicted reference values are compared, the initrd's entries
are read back, and the first build is booted to systemd's multi-user.target on the serial
console with the image's own (locked) firmware: without a disk (the data dir stays in TD
memory), with a fresh state disk (LUKS2 with integrity, conkerd's storage verdict host-proof),
with a disk too small to format (conkerd is not started), and with a test-only program added to
the initrd that flips bytes under the state disk's mapping (I/O errors, never altered bytes)."""
import json
import pathlib
import re
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
SCRIPTS = os.path.join(SRC, "scripts", "td-image")
BUILD = os.environ.get("CONKER_BUILD", os.path.join(SRC, "build"))
CONKER = os.path.join(BUILD, "src", "cli", "conker")
ARTEFACTS = ["conker-td.efi", "vmlinuz", "initrd.cpio.zst", "cmdline", "OVMF.fd"]


def need_tools(*tools):
    if os.geteuid() != 0:
        pytest.skip("the TD image build needs root (mmdebstrap --mode=root, chroot)")
    for t in tools:
        if not shutil.which(t):
            pytest.skip(f"{t} is not installed (scripts/deps.sh installs it)")


def fetch(tmp_path, lock_lines, mirror):
    lock = tmp_path / "packages.lock"
    lock.write_text("# test lock\n" + "".join(f"{l}\n" for l in lock_lines))
    env = dict(os.environ, CONKER_TD_LOCK=str(lock), CONKER_TD_CACHE=str(tmp_path / "cache"),
               CONKER_TD_MIRROR=mirror)
    return subprocess.run(["bash", os.path.join(SCRIPTS, "fetch.sh")], env=env,
                          capture_output=True, text=True, timeout=120)


def test_fetch_unreachable_mirror_names_it(tmp_path):
    need_tools("apt-get")
    r = fetch(tmp_path, ["td runc 1.0-1 " + "0" * 64], "http://127.0.0.1:9/debian")
    assert r.returncode != 0
    assert "fetch: cannot read the package lists of http://127.0.0.1:9/debian" in r.stderr
    assert "1 locked packages are not in" in r.stderr
    assert not (tmp_path / "cache" / "pool").exists() or not os.listdir(tmp_path / "cache" / "pool")


def test_fetch_cached_lock_needs_no_mirror(tmp_path):
    """Packages already in the pool (matched by digest) are served without the mirror."""
    need_tools("apt-get", "apt-ftparchive")
    pool = tmp_path / "cache" / "pool"
    pool.mkdir(parents=True)
    deb = pool / "fake.deb"
    # Any bytes: fetch.sh trusts the pool because its file names are the locked digests.
    deb.write_bytes(b"not a real package")
    sha = subprocess.run(["sha256sum", str(deb)], capture_output=True, text=True,
                         check=True).stdout.split()[0]
    deb.rename(pool / f"{sha}.deb")
    r = fetch(tmp_path, [f"td fake 1.0-1 {sha}"], "http://127.0.0.1:9/debian")
    assert r.returncode == 0, r.stderr
    repo = r.stdout.strip()
    assert os.path.exists(os.path.join(repo, "td", "fake_1.0-1_amd64.deb"))
    assert os.path.exists(os.path.join(repo, "td", "Release"))
    assert "Suite: trixie" in open(os.path.join(repo, "td", "Release")).read()


# Both builds get the same SOURCE_DATE_EPOCH even if a commit lands between them (build.sh
# would otherwise take each build's HEAD time, and the initrd's mtimes would differ).
SOURCE_DATE_EPOCH = os.environ.get("SOURCE_DATE_EPOCH") or subprocess.run(
    ["git", "-C", SRC, "log", "-1", "--format=%ct"], capture_output=True, text=True).stdout.strip()


def build(out):
    env = dict(os.environ, CONKER_TD_OUT=str(out), SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
    r = subprocess.run(["bash", os.path.join(SCRIPTS, "build.sh"), CONKER], env=env,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    sums = {}
    for line in (out / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    return sums, r.stdout


# The image `make test` already built for test_vm.py (scripts/test.sh sets CONKER_VM_TEST=1
# once build.sh succeeded into build/td-image): its second build is test_reproducible's.
PREBUILT = os.environ.get("CONKER_TD_OUT", os.path.join(SRC, "build", "td-image"))


def full_run():
    return os.environ.get("CONKER_TD_IMAGE_TEST") == "1"


def need_full_run():
    """The boots here take minutes each; `make test` boots the image in test_vm.py instead."""
    if not full_run():
        pytest.skip("TD image boots take minutes: run with CONKER_TD_IMAGE_TEST=1 "
                    "(make td-image-test); make test boots the image in test_vm.py")


@pytest.fixture(scope="module")
def td_image(tmp_path_factory):
    """The image for the module: (directory, digests, build output or None when it is the one
    `make test` built before the end-to-end suites)."""
    prebuilt = (os.environ.get("CONKER_VM_TEST") == "1"
                and os.path.exists(os.path.join(PREBUILT, "SHA256SUMS")))
    if not full_run() and not prebuilt:
        pytest.skip("TD image builds take minutes: run with CONKER_TD_IMAGE_TEST=1 "
                    "(make td-image-test), or make test where QEMU and mmdebstrap are installed")
    need_tools("mmdebstrap", "apt-ftparchive", "unshare")
    if not os.path.exists(CONKER):
        pytest.skip(f"{CONKER} not built (make build)")
    if not full_run():
        out = pathlib.Path(PREBUILT)
        sums = dict(reversed(l.split()) for l in (out / "SHA256SUMS").read_text().splitlines())
        return out, sums, None
    out = tmp_path_factory.mktemp("td-image-a")
    sums, stdout = build(out)
    return out, sums, stdout


def test_reproducible(td_image, tmp_path):
    out_a, a, stdout_a = td_image
    b, _ = build(tmp_path / "b")
    assert sorted(a) == sorted(ARTEFACTS)
    assert a == b
    ref_a = json.loads((out_a / "reference-values.json").read_text())
    ref_b = json.loads((tmp_path / "b" / "reference-values.json").read_text())
    assert ref_a == ref_b
    assert all(len(ref_a[r]) == 96 for r in ("mrtd", "rtmr1", "rtmr2"))
    if stdout_a is not None:
        assert ref_a["rtmr1"] in stdout_a
    # The UKI carries the measured command line verbatim.
    cmdline = (out_a / "cmdline").read_bytes()
    assert cmdline in (out_a / "conker-td.efi").read_bytes()


def boot(out, tmp_path, disk=None, extra_initrd=None):
    """boot.sh on the built UKI: (exit status, boot.sh's stderr, the console without colours)."""
    need_tools("qemu-system-x86_64")
    # boot.sh boots with the image's own firmware, out/OVMF.fd.
    assert (out / "OVMF.fd").exists()
    log = tmp_path / "console.log"
    env = dict(os.environ)
    if extra_initrd:
        env["CONKER_TD_EXTRA_INITRD"] = str(extra_initrd)
    args = ["bash", os.path.join(SCRIPTS, "boot.sh"), str(out / "conker-td.efi"), str(log), "600"]
    r = subprocess.run(args + ([str(disk)] if disk else []), capture_output=True, text=True,
                       timeout=700, env=env)
    console = re.sub(r"\x1b\[[0-9;]*m", "", log.read_bytes().decode(errors="replace"))
    return r.returncode, r.stderr, console


def state_disk(tmp_path, size):
    """A fresh sparse raw file: what a host gives the TD as its state disk."""
    disk = tmp_path / "state.img"
    with open(disk, "wb") as f:
        f.truncate(size)
    return disk


VERDICT = ("data dir /var/lib/conker: ext4 on /dev/mapper/conker-state (dm-1 conker-state: LUKS2 "
           "with integrity over dm-0): host-proof")


def test_boot(td_image, tmp_path):
    need_full_run()
    out, _, _ = td_image
    rc, err, console = boot(out, tmp_path)
    assert rc == 0, err + console[-4000:]
    # Booted from the UKI's own command line, and no login prompt on the host's serial port.
    assert "Reached target multi-user.target" in console
    assert "login:" not in console
    assert "Started systemd-networkd.service" in console
    # No state disk: the unit says so and succeeds; the data dir stays on the initramfs, which
    # conkerd's check calls TD memory.
    assert "statedisk: no state disk" in console
    assert "data dir /var/lib/conker: rootfs (TD memory: the initramfs): host-proof" in console
    assert "Finished conker-statedisk.service" in console


def test_boot_state_disk(td_image, tmp_path):
    """A fresh 256 MiB disk: formatted as LUKS2 with integrity under a key made in the TD,
    mounted on the data dir, and conkerd's own check (conkerd --check-storage) says host-proof.
    The LUKS2 header stays in TD memory: the disk carries dm-integrity's superblock and
    ciphertext, no LUKS header and no ext4 label in clear."""
    need_full_run()
    out, _, _ = td_image
    disk = state_disk(tmp_path, 256 << 20)
    rc, err, console = boot(out, tmp_path, disk)
    assert rc == 0, err + console[-4000:]
    assert "Finished conker-statedisk.service" in console
    assert VERDICT in console
    assert "Dependency failed for conkerd.serv" not in console
    data = disk.read_bytes()
    assert data[:8] == b"integrt\0"
    assert b"LUKS\xba\xbe" not in data and b"SKUL\xba\xbe" not in data
    assert b"conker-state" not in data


def test_state_disk_failure_stops_conkerd(td_image, tmp_path):
    """A disk too small to hold the filesystem: the unit fails, and conkerd, which requires it,
    is not started (it never runs on a disk it could not protect)."""
    need_full_run()
    out, _, _ = td_image
    rc, err, console = boot(out, tmp_path, state_disk(tmp_path, 8 << 20))
    assert rc == 1, console[-4000:]
    assert "the state disk unit failed" in err
    assert "Failed to start conker-statedisk.service" in console
    # systemd shortens status lines to the console's 80 columns: "conkerd.serv…".
    assert "Dependency failed for conkerd.serv" in console
    assert "Started conkerd.service" not in console


def cpio_newc_write(entries):
    """An uncompressed newc archive of (name, mode, data) entries, with its trailer."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        fields = [ino, mode, 0, 0, 1, int(SOURCE_DATE_EPOCH), len(data), 0, 0, 0, 0,
                  len(name) + 1, 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def test_state_disk_tamper(td_image, tmp_path):
    """Flipped bytes under the mapping read as I/O errors, never as altered data. A test-only
    unit (tests/data/td-image/tamper-check, appended to the initrd of a direct kernel boot of
    the image's own kernel, initrd and command line) fills the state filesystem, flips 16 bytes
    of the raw disk (what the host can write), and reads the file back block by block, buffered
    and with O_DIRECT."""
    need_full_run()
    out, _, _ = td_image
    script = open(os.path.join(SRC, "tests", "data", "td-image", "tamper-check"), "rb").read()
    unit = (b"[Unit]\nRequires=conker-statedisk.service\nAfter=conker-statedisk.service\n"
            b"[Service]\nType=oneshot\nExecStart=/usr/libexec/conker/tamper-check\n"
            b"StandardOutput=journal+console\nStandardError=journal+console\n")
    extra = tmp_path / "tamper.cpio"
    extra.write_bytes(cpio_newc_write([
        ("usr/libexec/conker/tamper-check", 0o100755, script),
        ("usr/lib/systemd/system/tamper-check.service", 0o100644, unit),
        ("etc/systemd/system/multi-user.target.wants/tamper-check.service", 0o120777,
         b"/usr/lib/systemd/system/tamper-check.service"),
    ]))
    rc, err, console = boot(out, tmp_path, state_disk(tmp_path, 64 << 20), extra)
    assert rc == 0, err + console[-4000:]
    assert VERDICT in console
    m = re.search(r"tamper-check: read back: (\d+) blocks failed with an I/O error, (\d+) blocks "
                  r"differ without one, of (\d+)", console)
    assert m, console[-4000:]
    eio, silent, total = map(int, m.groups())
    assert eio >= 1 and silent == 0 and total > 16
    # With O_DIRECT the same blocks fail, and no other block differs.
    assert f"read back with O_DIRECT: {eio} blocks failed with an I/O error, {eio} blocks differ" \
        in console
    assert "tamper-check: PASS" in console


def cpio_newc(data):
    """(name, mode, mtime) of each entry of a newc cpio archive, in archive order."""
    entries, off = [], 0
    for _ in range(1_000_000):
        assert data[off:off + 6] == b"070701", f"bad cpio magic at {off}"
        fields = [int(data[off + 6 + 8 * i:off + 14 + 8 * i], 16) for i in range(13)]
        mode, mtime, size, namesize = fields[1], fields[5], fields[6], fields[11]
        name = data[off + 110:off + 110 + namesize - 1].decode()
        off = (off + 110 + namesize + 3) & ~3
        off = (off + size + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries.append((name, mode, mtime))
    raise AssertionError("cpio archive without a trailer")


def test_initrd_contents(td_image):
    out, _, _ = td_image
    need_tools("zstd")
    raw = subprocess.run(["zstd", "-dc", str(out / "initrd.cpio.zst")], capture_output=True,
                         check=True).stdout
    entries = cpio_newc(raw)
    names = [n for n, _, _ in entries]
    # Sorted in the C locale, every mtime the commit's time.
    assert names == sorted(names, key=lambda n: n.encode())
    assert {m for _, _, m in entries} == {int(SOURCE_DATE_EPOCH)}
    have = set(names)
    # cpio stores the names without find's "./".
    for prog in ["usr/sbin/conkerd", "usr/bin/conker", "usr/bin/conker-shim",
                 "usr/bin/conker-fetch", "usr/sbin/runc",
                 "usr/sbin/nft", "usr/sbin/cryptsetup", "usr/lib/systemd/systemd",
                 "etc/systemd/network/20-conker-td.network", "dev/console",
                 "usr/libexec/conker/conker-statedisk",
                 "usr/lib/systemd/system/conker-statedisk.service",
                 "usr/lib/systemd/system/conkerd.service.d/10-statedisk.conf", "usr/bin/keyctl",
                 "usr/sbin/mkfs.ext4"]:
        assert prog in have, prog
    mods = [n for n in names if "/kernel/" in n]
    for mod in ["tdx-guest.ko", "tsm_report.ko", "dm-integrity.ko", "dm-crypt.ko", "virtio_net.ko",
                "erofs.ko", "nf_tables.ko", "veth.ko"]:
        assert any(n.rsplit("/", 1)[-1].startswith(mod) for n in mods), mod
    # Nothing a TD does not run: no other kernels' modules, no sound or GPU drivers, no docs.
    assert not any("/kernel/sound/" in n or "/kernel/drivers/gpu/" in n for n in mods)
    assert not any(n.startswith("usr/share/man/") for n in names)
    assert "etc/machine-id" in have
