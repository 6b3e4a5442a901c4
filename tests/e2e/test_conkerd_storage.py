"""conkerd's storage verdict outside the TD image (docs/conkerd.md "Host-proof storage"):

- `conkerd --check-storage DIR` prints the verdict and exits 0 (host-proof), 1 (not) or 2
  (cannot tell);
- under --tee sim conkerd logs the verdict on its data dir at start and starts anyway (the VM
  test reads that line; only --tee tdx enforces it).
The LUKS2-with-integrity case is the TD image's: test_td_image.py boots it."""

import os
import subprocess

import pytest

from helpers.conkerd import CONKERD, Conkerd, skip_reason


def check_storage(path, *extra):
    if not os.path.exists(CONKERD):
        pytest.skip(f"{CONKERD} not built")
    return subprocess.run([CONKERD, *extra, "--check-storage", str(path)], capture_output=True,
                          text=True, timeout=30)


def test_check_storage_tmpfs_is_host_proof():
    if not os.path.ismount("/dev/shm"):
        pytest.skip("/dev/shm is not a mount on this host")
    r = check_storage("/dev/shm")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "data dir /dev/shm: tmpfs (TD memory): host-proof\n"


def test_check_storage_host_disk(tmp_path):
    """A directory on the host's own filesystem: a verdict either way, never an error."""
    r = check_storage(tmp_path)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert r.stdout.startswith(f"data dir {tmp_path}: ")
    assert r.stdout.rstrip().endswith("host-proof" if r.returncode == 0 else
                                      "NOT host-proof (the host can read and rewrite it)")


def test_check_storage_missing_dir(tmp_path):
    r = check_storage(tmp_path / "nope")
    assert r.returncode == 2
    assert r.stdout == ""
    assert f"data dir {tmp_path / 'nope'}: cannot stat" in r.stderr


def test_verdict_logged_under_sim(tmp_path):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with Conkerd(tmp_path) as d:
        want = check_storage(d.data).stdout.strip()
        assert want.startswith(f"data dir {d.data}: ")
        assert f"{want} (not enforced: not a TDX TD)" in d.log()
