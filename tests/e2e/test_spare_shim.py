"""The spare conker-shim (src/runtime/shim-spare.c): conkerd keeps one shim started ahead, a start
hands it the container, a new spare follows; a spare that died is replaced and the start that
found it dead still works; a spare dies with its conkerd (kill -9 included) while the shims of
containers live on and are re-adopted.

A spare is told apart from other processes by its command line (`conker-shim --spare`) and from
other conkerds' spares by its socket: the peer of its fd 3 is a socket of our conkerd."""

import json
import shutil
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.conkerd import BUILD, Conkerd, free_published_port, skip_reason
from helpers.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
APP = os.path.join(BUILD, "src", "example-app", "conker-example-app")
P = "/sw/api/v1/container"


def needs():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if not os.path.exists(APP):
        pytest.skip("conker-example-app is needed (normal build)")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def fd_links(pid: int) -> dict[str, str]:
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def socket_inodes(pid: int) -> set[str]:
    return {link[8:-1] for link in fd_links(pid).values() if link.startswith("socket:[")}


def spares_of(conkerd_pid: int) -> list[int]:
    """Live `conker-shim --spare` processes whose fd 3 is connected to a socket of conkerd_pid."""
    mine = socket_inodes(conkerd_pid)
    # `ss -x`: "u_seq ESTAB 0 0 * <inode> * <peer inode> users:((...,pid=N,fd=3))"
    peers = {}
    for line in subprocess.run(["ss", "-xapH"], capture_output=True, text=True).stdout.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "u_seq":
            for part in line.split("pid=")[1:]:
                pid, _, rest = part.partition(",fd=")
                if rest.split(")")[0] == "3":
                    peers[int(pid)] = f[7]
    out = []
    for pid, peer in peers.items():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:2] == [b"--spare"] and peer in mine and alive(pid):
            out.append(pid)
    return out


def wait_spare(d: Conkerd, not_pid: int = 0, timeout: float = 20.0) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = [p for p in spares_of(d.proc.pid) if p != not_pid]
        if s:
            assert len(s) == 1, s
            return s[0]
        time.sleep(0.05)
    raise AssertionError("no spare conker-shim appeared")


def shim_pid(d: Conkerd, name: str) -> int:
    cid = d.task(name)["ContainerInspect"]["Id"]
    return json.loads((d.run_dir / "shims" / cid / "state.json").read_text())["shim_pid"]


def start(d: Conkerd, name: str, ref: str):
    body = {"Name": name, "ImageInfo": {"ImageName": ref},
            "Ports": [{"TargetPort": 8080, "PublishedPort": free_published_port()}]}
    r = d.api("POST", P, data=json.dumps(body))
    assert r.status_code == 200, r.text
    t = d.wait_status(name, {"Running", "Failed"})
    assert t["Status"] == "Running", t["Events"]


@pytest.fixture
def reg(tmp_path):
    needs()
    if not os.path.exists("/usr/bin/docker-registry"):
        pytest.skip("docker-registry is not installed (scripts/deps.sh installs it)")
    with Registry(tmp_path / "registry", tls=False, auth=False) as r:
        subprocess.run(["bash", str(ROOT / "scripts" / "images.sh"), BUILD, r.host, *r.skopeo_dest_args()],
                       check=True, capture_output=True, timeout=180)
        yield r


def test_start_uses_the_spare_and_a_new_one_follows(tmp_path, reg):
    ref = f"{reg.host}/reckey/conker-example-app:latest"
    with Conkerd(tmp_path, extra_args=["--insecure-registry", reg.host]) as d:
        first = wait_spare(d)
        start(d, "one", ref)
        assert shim_pid(d, "one") == first
        assert "spare shim + runc" in d.log()
        second = wait_spare(d, not_pid=first)
        start(d, "two", ref)
        assert shim_pid(d, "two") == second
        third = wait_spare(d, not_pid=second)
        assert third not in (first, second)
        # The shims that took containers are container shims now, not spares.
        assert spares_of(d.proc.pid) == [third]
        for name in ("one", "two"):
            assert d.api("DELETE", f"{P}/{name}").status_code == 200
        assert alive(third)


def test_dead_spare_is_replaced_and_the_start_still_works(tmp_path, reg):
    ref = f"{reg.host}/reckey/conker-example-app:latest"
    with Conkerd(tmp_path, extra_args=["--insecure-registry", reg.host]) as d:
        dead = wait_spare(d)
        os.kill(dead, signal.SIGKILL)
        deadline = time.time() + 10
        while alive(dead) and time.time() < deadline:
            time.sleep(0.05)
        start(d, "fallback", ref)
        assert shim_pid(d, "fallback") != dead
        fresh = wait_spare(d, not_pid=dead)
        start(d, "next", ref)
        assert shim_pid(d, "next") == fresh
        for name in ("fallback", "next"):
            assert d.api("DELETE", f"{P}/{name}").status_code == 200


def test_spare_dies_with_conkerd_and_containers_are_readopted(tmp_path, reg):
    ref = f"{reg.host}/reckey/conker-example-app:latest"
    with Conkerd(tmp_path, extra_args=["--insecure-registry", reg.host]) as d:
        start(d, "kept", ref)
        used = shim_pid(d, "kept")
        spare = wait_spare(d, not_pid=used)
        d.kill9()
        deadline = time.time() + 10
        while alive(spare) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(spare), "the spare outlived conkerd"
        assert alive(used), "the container's shim died with conkerd"
        d.start()
        assert d.task("kept")["Status"] == "Running"
        assert shim_pid(d, "kept") == used
        wait_spare(d, not_pid=spare)
        assert d.api("DELETE", f"{P}/kept").status_code == 200
        # A clean stop takes the spare with it too.
        spare = wait_spare(d)
        d.stop()
        deadline = time.time() + 10
        while alive(spare) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(spare), "the spare outlived a stopped conkerd"


def memfds(pid: int) -> dict[str, str]:
    return {fd: link for fd, link in fd_links(pid).items() if link.startswith("/memfd:conker-runtime")}


def test_spare_holds_a_sealed_copy_of_crun_used_once(tmp_path, reg):
    """With crun, the spare copies the runtime into a memfd sealed the way crun checks for (so crun
    does not copy itself again): the copy is byte-identical, cannot be written, and is gone from
    the shim once its container runs (restarts use the binary on disk again)."""
    ref = f"{reg.host}/reckey/conker-example-app:latest"
    with Conkerd(tmp_path, extra_args=["--insecure-registry", reg.host]) as d:
        spare = wait_spare(d)
        if "--runtime-copy" not in Path(f"/proc/{spare}/cmdline").read_bytes().decode(errors="replace"):
            pytest.skip("conkerd runs runc here (crun is not installed)")
        argv = Path(f"/proc/{spare}/cmdline").read_bytes().split(b"\0")
        crun = argv[argv.index(b"--runtime-copy") + 1].decode()
        deadline = time.time() + 10
        while not memfds(spare) and time.time() < deadline:
            time.sleep(0.05)
        (fd, _), = memfds(spare).items()
        with open(f"/proc/{spare}/fd/{fd}", "rb") as f, open(crun, "rb") as g:
            assert f.read() == g.read()
        w = os.open(f"/proc/{spare}/fd/{fd}", os.O_WRONLY)
        try:
            with pytest.raises(PermissionError):  # F_SEAL_WRITE
                os.write(w, b"\x7fELF")
            with pytest.raises(PermissionError):  # F_SEAL_SHRINK
                os.ftruncate(w, 0)
        finally:
            os.close(w)
        start(d, "sealed", ref)
        assert shim_pid(d, "sealed") == spare
        assert memfds(spare) == {}
        assert d.api("DELETE", f"{P}/sealed").status_code == 200


def test_runtime_replaced_while_the_spare_waits_runs_from_disk(tmp_path, reg):
    """A spare may wait for minutes with its copy of crun. When the file is replaced meanwhile (a
    package upgrade renames a new binary over it), the next start must run the new file, never
    the old copy: here the new file is a wrapper that records its `run` and then execs crun."""
    crun = shutil.which("crun")
    if not crun:
        pytest.skip("crun is not installed (scripts/deps.sh installs it)")
    ref = f"{reg.host}/reckey/conker-example-app:latest"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    runtime = bindir / "crun"
    shutil.copy2(crun, runtime)
    marker = tmp_path / "runtime-calls"
    with Conkerd(tmp_path, extra_args=["--insecure-registry", reg.host, "--runtime", str(runtime)]) as d:
        spare = wait_spare(d)
        if "--runtime-copy" not in Path(f"/proc/{spare}/cmdline").read_bytes().decode(errors="replace"):
            pytest.skip("conkerd does not run crun here")
        deadline = time.time() + 10
        while not memfds(spare) and time.time() < deadline:
            time.sleep(0.05)
        assert memfds(spare), "the spare made no copy of crun"
        new = bindir / "crun.new"
        new.write_text(f'#!/bin/sh\necho "$*" >> {marker}\nexec {crun} "$@"\n')
        new.chmod(0o755)
        os.replace(new, runtime)
        start(d, "upgraded", ref)
        assert shim_pid(d, "upgraded") == spare
        calls = marker.read_text().splitlines() if marker.exists() else []
        assert any(" run " in f" {c} " for c in calls), calls
        cid = d.task("upgraded")["ContainerInspect"]["Id"]
        assert "changed since this spare copied it" in (d.run_dir / "shims" / cid / "shim.log").read_text()
        assert d.api("DELETE", f"{P}/upgraded").status_code == 200
