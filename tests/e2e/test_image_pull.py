"""End to end: `conker image pull/ls/rm/mount` against a real registry (TLS + htpasswd).

The acceptance tests of the image engine: a multi-layer image built with umoci (whiteouts,
an opaque dir, hard links, symlinks, owners, setuid) is pulled, mounted as an overlay and
compared with umoci's own unpack of the same image; bad credentials, unknown tags, tampered
blobs and hostile layers fail cleanly and leave the store and the host untouched; removal
frees exactly the unshared content. Every test runs with both layer formats (`--layer-format
dir` and `erofs`).
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import hostile
from helpers.registry import (OCI_LAYER_TAR, REGISTRY_BIN, ImageBuilder, Registry, build_test_image,
                              tar_bytes, write_oci_layout)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts, chown, mknod)")


def conker_bin() -> str:
    build = os.environ.get("CONKER_BUILD", str(Path(__file__).resolve().parents[2] / "build"))
    path = Path(build) / "src/cli/conker"
    if not path.exists():
        pytest.skip(f"{path} not built")
    return str(path)


class Conker:
    """Runs `conker image ...` against one data dir."""

    def __init__(self, data_dir: Path, reg: Registry, fmt: str):
        self.data_dir, self.reg, self.fmt = data_dir, reg, fmt

    def format_args(self, command):
        return ["--layer-format", self.fmt] if command in ("pull", "load") else []

    def run(self, *args, password=None, check=False):
        cmd = [conker_bin(), "image", *args, "--data-dir", str(self.data_dir), *self.format_args(args[0])]
        r = subprocess.run(cmd, input=password, capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd} failed: {r.stderr}")
        return r

    def pull(self, ref, password=None, extra=(), check=False):
        reg = self.reg
        args = ["pull", f"{reg.host}/{ref}", "--ca-file", str(reg.ca_file), *extra]
        if reg.auth:
            args += ["--user", reg.user, "--password-stdin"]
            password = reg.password if password is None else password
        return self.run(*args, password=(password + "\n") if password is not None else None, check=check)

    def images(self):
        return json.loads(self.run("ls", "--json", check=True).stdout)


# -- module fixtures: one registry and the images every test uses --------------------------
@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry is not installed")
    if not shutil.which("umoci") or not shutil.which("skopeo"):
        pytest.skip("umoci and skopeo are needed to build and push test images")
    with Registry(tmp_path_factory.mktemp("registry")) as r:
        yield r


@pytest.fixture(scope="module")
def multilayer(reg, tmp_path_factory):
    """demo/multi:v1 — see helpers.registry.build_test_image()."""
    img = build_test_image(ImageBuilder(tmp_path_factory.mktemp("build")), "multi")
    reg.push_layout(img.layout, img.tag, "demo/multi:v1")
    oracle = img.unpack_reference(tmp_path_factory.mktemp("oracle") / "bundle")
    return img, oracle


def erofs_supported() -> bool:
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] == "erofs" for line in f if line.strip())


@pytest.fixture(params=["dir", "erofs"])
def conker(reg, tmp_path, request):
    if request.param == "erofs" and not erofs_supported():
        pytest.skip("this kernel has no EROFS")
    return Conker(tmp_path / "data", reg, request.param)


@contextmanager
def layer_roots(data: Path):
    """The root directory of every stored layer: an unpacked directory as it is, an EROFS
    image mounted read-only for the duration."""
    roots, mounted = [], []
    try:
        for p in sorted((data / "layers").iterdir()):
            if p.is_dir():
                roots.append(p)
                continue
            m = Path(tempfile.mkdtemp(prefix="ck-layer-"))
            subprocess.run(["mount", "-t", "erofs", "-o", "ro", str(p), str(m)], check=True)
            mounted.append(m)
            roots.append(m)
        yield roots
    finally:
        for m in mounted:
            subprocess.run(["umount", str(m)], check=False)
            m.rmdir()


# -- tree comparison --------------------------------------------------------------------
def snapshot(root: Path) -> tuple[dict, set]:
    """{relpath: attributes} and the set of hard-link groups of a tree."""
    entries, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            a = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
                 "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISREG(st.st_mode):
                a["sha"] = hashlib.sha256(p.read_bytes()).hexdigest()
                a["mtime"] = int(st.st_mtime)
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                a["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                a["rdev"] = st.st_rdev
            entries[rel] = a
    links = {frozenset(v) for v in inodes.values() if len(v) > 1}
    return entries, links


def store_files(data: Path) -> dict:
    def names(sub):
        d = data / sub
        return sorted(p.name for p in d.iterdir()) if d.exists() else []
    return {"blobs": names("blobs/sha256"), "layers": names("layers"), "ingest": names("ingest")}


# -- tests ------------------------------------------------------------------------------
def test_pull_multilayer_tree_matches_umoci(conker, multilayer, tmp_path):
    img, oracle = multilayer
    r = conker.pull("demo/multi:v1")
    assert r.returncode == 0, r.stderr
    images = conker.images()
    assert [i["Name"] for i in images] == [f"{conker.reg.host}/demo/multi:v1"]
    manifest = json.loads((img.layout / "index.json").read_text())["manifests"][0]
    assert images[0]["ManifestDigest"] == manifest["digest"]
    assert r.stdout.split()[-1] == images[0]["Id"]

    target, state = tmp_path / "rootfs", tmp_path / "state"
    target.mkdir()
    conker.run("mount", images[0]["Id"][7:19], str(target), "--state", str(state), check=True)
    try:
        got, got_links = snapshot(target)
        want, want_links = snapshot(oracle)
        assert sorted(got) == sorted(want)
        for k in want:
            assert got[k] == want[k], k
        assert got_links == want_links
        # The things the layers are about, spelled out.
        assert not (target / "etc/motd").exists()             # umoci whiteout
        assert not (target / "bin/wget").exists()             # hand-made whiteout
        assert sorted(os.listdir(target / "opt/app")) == ["new.txt"]  # opaque dir
        assert os.stat(target / "srv/a").st_ino == os.stat(target / "srv/b").st_ino
        assert os.readlink(target / "srv/link") == "a"
        assert os.readlink(target / "usr/bin/hello") == "/bin/busybox"
        su = os.stat(target / "usr/bin/su-like")
        assert stat.S_IMODE(su.st_mode) == 0o4755
        notes = os.stat(target / "home/user/notes")
        assert (notes.st_uid, notes.st_gid, stat.S_IMODE(notes.st_mode)) == (1000, 1000, 0o640)
        assert subprocess.run(["chroot", str(target), "/bin/sh", "-c", "echo ok"],
                              capture_output=True, text=True).stdout == "ok\n"
        # The rootfs is writable through its own upper dir only.
        (target / "new-file").write_text("upper\n")
        assert (state / "upper/new-file").exists()
        # Removal refuses while the rootfs is mounted.
        r = conker.run("rm", images[0]["Id"])
        assert r.returncode != 0 and "in use" in r.stderr
    finally:
        conker.run("umount", str(target), "--state", str(state), "--remove-state", check=True)
    assert not os.path.ismount(target)
    assert not (state / "upper").exists()
    # Pulling again is a no-op on the content.
    before = store_files(conker.data_dir)
    assert conker.pull("demo/multi:v1").returncode == 0
    assert store_files(conker.data_dir) == before
    assert before["ingest"] == []


def test_wrong_password_is_a_clear_auth_error(conker, multilayer):
    r = conker.pull("demo/multi:v1", password="not-the-password")
    assert r.returncode != 0
    msg = r.stderr.lower()
    assert "auth" in msg or "credential" in msg or "unauthorized" in msg, r.stderr
    assert "not-the-password" not in r.stderr
    assert conker.images() == []


def test_unknown_tag_is_not_found(conker, multilayer):
    r = conker.pull("demo/multi:no-such-tag")
    assert r.returncode != 0
    msg = r.stderr.lower()
    assert "not found" in msg or "unknown" in msg or "no such" in msg, r.stderr
    assert conker.images() == []


def test_tampered_blob_fails_and_store_unchanged(conker, reg):
    members = [{"name": "payload", "data": os.urandom(4096)}]
    info = hostile.push_hostile(reg, "demo/tampered", "v1", members)
    layer = info["layers"][0]
    data = reg.blob_data_path(layer)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))

    r = conker.pull("demo/tampered:v1")
    assert r.returncode != 0
    assert layer in r.stderr, r.stderr
    # Nothing new in the store: no blob (not even the config), no layer, no image.
    assert store_files(conker.data_dir) == {"blobs": [], "layers": [], "ingest": []}
    assert conker.images() == []


CONFIG_FAULTS = ("tampered", "arch", "os", "diff_id_count", "diff_id_extra", "wrong_diff_id")


@pytest.mark.parametrize("fault", CONFIG_FAULTS)
def test_bad_config_while_layers_in_flight_leaves_nothing(conker, reg, fault):
    """The config is fetched beside the layers: one that fails its digest or its checks, with
    layer downloads (a few MB) in flight or already committed, fails the pull, and nothing of it
    stays in the store: no blob, no layer, no image."""
    layers = []
    for size in (6 << 20, 64 << 10, 4096):
        plain = tar_bytes([{"name": f"f{size}", "data": os.urandom(size)}])
        layers.append((plain, plain, OCI_LAYER_TAR))
    diff_ids = [hashlib.sha256(p).hexdigest() for _, p, _ in layers]
    extra = {"arch": {"architecture": "arm64"},
             "os": {"os": "windows"},
             "diff_id_count": {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_ids[0]]}},
             "diff_id_extra": {"rootfs": {"type": "layers",
                                          "diff_ids": ["sha256:" + d for d in diff_ids + diff_ids[:1]]}},
             "wrong_diff_id": {"rootfs": {"type": "layers",
                                          "diff_ids": ["sha256:" + d for d in diff_ids[:2]] +
                                          ["sha256:" + "0" * 64]}}}.get(fault)
    info = reg.push_image(f"demo/badcfg-{fault}", "v1", layers, config_extra=extra)
    if fault == "tampered":
        data = reg.blob_data_path(info["config"])
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        data.write_bytes(bytes(raw))

    r = conker.pull(f"demo/badcfg-{fault}:v1")
    assert r.returncode != 0
    want = {"tampered": info["config"], "arch": "linux/amd64", "os": "windows/amd64", "diff_id_count": "diff_ids",
            "diff_id_extra": "diff_ids",
            "wrong_diff_id": info["layers"][2]}[fault]
    assert want in r.stderr, r.stderr
    assert store_files(conker.data_dir) == {"blobs": [], "layers": [], "ingest": []}
    assert conker.images() == []


def test_store_opened_beside_the_manifest_fails_either_way(conker, multilayer, tmp_path):
    """The CLI opens the store on a thread while the pull asks for the manifest: a store that
    cannot be created fails a pull whose registry answers, and an unknown tag fails a pull whose
    store opens (and leaves that store empty)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    bad = Conker(blocker / "data", conker.reg, conker.fmt)
    r = bad.pull("demo/multi:v1")
    assert r.returncode != 0
    assert "data directory" in r.stderr, r.stderr
    assert blocker.read_text() == ""

    r = conker.pull("demo/multi:no-such-tag")
    assert r.returncode != 0
    assert "data directory" not in r.stderr, r.stderr
    assert store_files(conker.data_dir) == {"blobs": [], "layers": [], "ingest": []}
    assert conker.images() == []


@pytest.mark.parametrize("case", sorted(hostile.CASES))
def test_hostile_layer_rejected_or_confined(conker, reg, tmp_path, case):
    make, expect = hostile.CASES[case]
    outside = hostile.make_outside(tmp_path / "outside")
    repo = f"evil/{case}"
    hostile.push_hostile(reg, repo, "v1", make(outside))

    r = conker.pull(f"{repo}:v1")
    assert hostile.canary_intact(outside) == []
    if expect == "reject":
        assert r.returncode != 0, f"{case} was accepted"
    elif expect == "confine":
        assert r.returncode == 0, r.stderr
    files = store_files(conker.data_dir)
    assert not any(n.endswith(".tmp") for n in files["layers"])
    if r.returncode != 0:
        assert conker.images() == []
        assert files == {"blobs": [], "layers": [], "ingest": []}
        return
    # Accepted: whatever it wrote is inside its layer.
    (img,) = conker.images()
    target, state = tmp_path / "rootfs", tmp_path / "state"
    target.mkdir()
    conker.run("mount", img["Id"], str(target), "--state", str(state), check=True)
    try:
        if case == "absolute-name":
            assert (target / str(outside).lstrip("/") / "evil-absolute").read_bytes() == b"escaped\n"
        if case == "forged-overlay-xattrs":
            with layer_roots(conker.data_dir) as layer_dirs:
                for d in layer_dirs:
                    assert [a for a in os.listxattr(d / "etc") if "overlay" in a] == []
                    assert os.getxattr(d / "etc", "user.kept") == b"allowed"  # the allow-list works
        assert hostile.canary_intact(outside) == []
    finally:
        conker.run("umount", str(target), "--state", str(state), "--remove-state", check=True)


def test_decompression_bomb_past_the_cap(conker, reg):
    blob, plain = hostile.bomb_layer(64 << 20)
    from helpers.registry import OCI_LAYER_GZIP
    reg.push_image("evil/bomb", "v1", [(blob, plain, OCI_LAYER_GZIP)])
    # A small unpacked-size cap set for the test...
    r = conker.pull("evil/bomb:v1", extra=["--max-unpacked", str(8 << 20), "--max-ratio", "100000"])
    assert r.returncode != 0
    assert "limit" in r.stderr, r.stderr
    # ...and the default ratio cap (64 MiB of zeros gzip to ~64 KiB).
    r = conker.pull("evil/bomb:v1")
    assert r.returncode != 0
    assert "ratio" in r.stderr, r.stderr
    files = store_files(conker.data_dir)
    assert files["layers"] == [] and files["ingest"] == []
    assert conker.images() == []


def test_rm_frees_unshared_blobs_keeps_shared(conker, reg, tmp_path):
    b = ImageBuilder(tmp_path / "build")
    img = b.busybox("base")
    reg.push_layout(img.layout, img.tag, "demo/one:v1")
    img.add_tar_layer(tar_bytes([{"name": "only-two", "data": b"second image\n"}]))
    reg.push_layout(img.layout, img.tag, "demo/two:v1")

    assert conker.pull("demo/one:v1").returncode == 0
    assert conker.pull("demo/two:v1").returncode == 0
    images = {i["Name"].split("/", 1)[1]: i for i in conker.images()}
    one, two = images["demo/one:v1"], images["demo/two:v1"]
    shared = set(one["Layers"]) & set(two["Layers"])
    only_two = set(two["Layers"]) - shared
    assert shared and only_two
    assert len(store_files(conker.data_dir)["layers"]) == 2

    assert conker.run("rm", f"{reg.host}/demo/two:v1").returncode == 0
    blobs = store_files(conker.data_dir)["blobs"]
    assert all(d.split(":")[1] in blobs for d in shared)
    assert not any(d.split(":")[1] in blobs for d in only_two)
    assert two["Id"].split(":")[1] not in blobs
    assert len(store_files(conker.data_dir)["layers"]) == 1

    # The remaining image still mounts.
    target, state = tmp_path / "rootfs", tmp_path / "state"
    target.mkdir()
    conker.run("mount", one["Id"], str(target), "--state", str(state), check=True)
    assert (target / "bin/busybox").exists()
    conker.run("umount", str(target), "--state", str(state), "--remove-state", check=True)

    assert conker.run("rm", one["Id"]).returncode == 0
    files = store_files(conker.data_dir)
    assert files["blobs"] == [] and files["layers"] == []
    assert conker.images() == []


def test_concurrent_pulls_share_one_store(conker, multilayer):
    """Two processes pull the same image into one data dir at once: both succeed, every blob
    and layer is written once (flock per digest), and the result mounts."""
    reg = conker.reg
    cmd = [conker_bin(), "image", "pull", f"{reg.host}/demo/multi:v1", "--ca-file", str(reg.ca_file),
           "--user", reg.user, "--password-stdin", "--data-dir", str(conker.data_dir),
           *conker.format_args("pull")]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(reg.password + "\n", timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    (img,) = conker.images()
    files = store_files(conker.data_dir)
    assert len(files["layers"]) == len(img["Layers"])
    assert files["ingest"] == []


def test_load_oci_layout_matches_umoci(conker, multilayer, tmp_path):
    """`conker image load` (no registry) gives the same rootfs as a pull."""
    img, oracle = multilayer
    r = conker.run("load", f"{img.layout}:{img.tag}", "localhost/loaded:v1")
    assert r.returncode == 0, r.stderr
    target, state = tmp_path / "rootfs", tmp_path / "state"
    target.mkdir()
    conker.run("mount", "localhost/loaded:v1", str(target), "--state", str(state), check=True)
    try:
        assert snapshot(target) == snapshot(oracle)
    finally:
        conker.run("umount", str(target), "--state", str(state), "--remove-state", check=True)


def test_load_refuses_a_layout_that_lies(conker, tmp_path):
    """`conker image load` reads only files inside the layout (a blobs directory that is a
    symbolic link out of it is not followed) and checks the config against the manifest as a
    pull does (one diff_id more than layers is refused)."""
    plain = tar_bytes([{"name": "file", "data": b"x\n"}])
    info = write_oci_layout(tmp_path / "real", "v1", [(plain, plain, OCI_LAYER_TAR)])
    out = tmp_path / "out"
    out.mkdir()
    for name in ("index.json", "oci-layout"):
        (out / name).write_bytes((tmp_path / "real" / name).read_bytes())
    (out / "blobs").symlink_to(tmp_path / "real" / "blobs")
    r = conker.run("load", f"{out}:v1", "localhost/outside:v1")
    assert r.returncode != 0, r.stdout
    assert info["manifest"].split(":")[1] in r.stderr, r.stderr

    write_oci_layout(tmp_path / "extra", "v1", [(plain, plain, OCI_LAYER_TAR)],
                     config_extra={"rootfs": {"type": "layers", "diff_ids": [info["diff_ids"][0]] * 2}})
    r = conker.run("load", f"{tmp_path / 'extra'}:v1", "localhost/extra:v1")
    assert r.returncode != 0, r.stdout
    assert "diff_ids" in r.stderr, r.stderr
    assert conker.images() == []


def test_deep_image_mounts_past_one_page(conker, tmp_path):
    """130 layers: the lowerdir list of a data dir this deep in /tmp exceeds one page, so the
    mount goes through fsconfig(lowerdir+); every layer must still be visible, top first."""
    layers = []
    for k in range(130):
        members = [{"name": f"layers/f{k:03}", "data": f"{k}\n".encode()},
                   {"name": "top", "data": f"{k}\n".encode()}]
        if k:
            members.append({"name": f"layers/.wh.gone{k - 1:03}"})
        members.append({"name": f"layers/gone{k:03}", "data": b"whited out by the next layer\n"})
        plain = tar_bytes(members)
        layers.append((plain, plain, OCI_LAYER_TAR))
    write_oci_layout(tmp_path / "deep", "v1", layers)
    r = conker.run("load", f"{tmp_path / 'deep'}:v1", "localhost/deep:v1")
    assert r.returncode == 0, r.stderr
    assert len(str(conker.data_dir / "layers/130")) * 130 > 4096

    target, state = tmp_path / "rootfs", tmp_path / "state"
    target.mkdir()
    conker.run("mount", "localhost/deep:v1", str(target), "--state", str(state), check=True)
    try:
        assert (target / "top").read_text() == "129\n"
        names = sorted(os.listdir(target / "layers"))
        assert names == sorted([f"f{k:03}" for k in range(130)] + ["gone129"])
    finally:
        conker.run("umount", str(target), "--state", str(state), "--remove-state", check=True)


def test_umount_busy_rootfs_detaches(conker, tmp_path):
    plain = tar_bytes([{"name": "file", "data": b"x\n"}])
    write_oci_layout(tmp_path / "one", "v1", [(plain, plain, OCI_LAYER_TAR)])
    assert conker.run("load", f"{tmp_path / 'one'}:v1", "localhost/one:v1").returncode == 0
    target, state = tmp_path / "rootfs", tmp_path / "state"
    target.mkdir()
    conker.run("mount", "localhost/one:v1", str(target), "--state", str(state), check=True)
    busy = subprocess.Popen(["sleep", "60"], cwd=target)
    try:
        r = conker.run("umount", str(target))
        assert r.returncode == 0, r.stderr
        assert not os.path.ismount(target)
        # Idempotent.
        assert conker.run("umount", str(target)).returncode == 0
        # No longer in use: removal works.
        assert conker.run("rm", "localhost/one:v1").returncode == 0
    finally:
        busy.kill()
        busy.wait()


def test_kill_mid_load_then_recovery(conker, tmp_path):
    """kill -9 while layers are being written and unpacked: the next open of the store removes
    partial blobs and half-unpacked layers (and unreferenced blobs), and loading again works."""
    import random
    import time
    rnd = random.Random(7)
    layers = []
    for k in range(4):
        members = [{"name": f"d{k}/f{i:04}", "data": rnd.randbytes(8192)} for i in range(400)]
        plain = tar_bytes(members)
        layers.append((plain, plain, OCI_LAYER_TAR))
    write_oci_layout(tmp_path / "big", "v1", layers)
    cmd = [conker_bin(), "image", "load", f"{tmp_path / 'big'}:v1", "localhost/big:v1",
           "--data-dir", str(conker.data_dir), *conker.format_args("load")]
    saw_leftovers = False
    for delay in (0.05, 0.15, 0.3, 0.6, 1.0):
        shutil.rmtree(conker.data_dir, ignore_errors=True)
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.kill()
        p.wait()
        before = store_files(conker.data_dir) if conker.data_dir.exists() else None
        if before and (before["ingest"] or any(n.endswith(".tmp") for n in before["layers"])):
            saw_leftovers = True
        images = conker.images()  # opens the store: recovery runs
        after = store_files(conker.data_dir)
        assert after["ingest"] == []
        assert not any(n.endswith(".tmp") for n in after["layers"])
        if not images:
            assert after == {"blobs": [], "layers": [], "ingest": []}, (delay, before, after)
    r = conker.run("load", f"{tmp_path / 'big'}:v1", "localhost/big:v1")
    assert r.returncode == 0, r.stderr
    assert len(store_files(conker.data_dir)["layers"]) == 4
    if not saw_leftovers:
        print("note: no kill landed mid-write on this run (the load was too fast)")
