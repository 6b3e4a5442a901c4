"""The broker as an OCI image (scripts/broker-image.sh, `make broker-image`), run with podman the
way the seed runs its broker with docker: `--net=host -v DIR:/secret IMAGE` followed by the
seed's own arguments (the listen address swapped for 127.0.0.1, plus --mrtd as our policy asks
and --trust-sim-root for the simulated TD). The demo's simulated TD, through conkerd and with
the broker pinned by the fingerprint it logs, must then receive the secret; the broker runs as the image's non-root user and audits the release.

podman runs with its own storage, run and tmp directories under the test's temporary directory
(vfs driver), so the test neither sees nor leaves anything in the host's podman state."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers.broker import free_port
from helpers.conkerd import BUILD
from test_seed_story import Seed, getsecret, needs

ROOT = Path(__file__).resolve().parents[2]
IMAGE_UID = 10001


class Podman:
    def __init__(self, base: Path):
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.glob = ["podman", "--root", str(base / "storage"), "--runroot", str(base / "run"),
                     "--tmpdir", str(base / "tmp"), "--storage-driver", "vfs", "--events-backend", "file",
                     "--runtime", "runc", "--cgroup-manager", "cgroupfs"]

    def __call__(self, *args, check=True, timeout=120):
        p = subprocess.run(self.glob + list(args), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def close(self):
        self("rm", "--all", "--force", "--time", "5", check=False)
        self("rmi", "--all", "--force", check=False)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for m in sorted((m for m in mounts if m.startswith(str(self.base) + "/")), reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    needs()
    for tool in ("podman", "umoci"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (scripts/deps.sh installs it)")
    tmp = tmp_path_factory.mktemp("brokerimage")
    subprocess.run(["bash", str(ROOT / "scripts" / "broker-image.sh"), BUILD], check=True, capture_output=True,
                   timeout=300)
    seed = Seed(tmp)
    podman = Podman(Path(f"/tmp/ckpod-{os.getpid()}"))
    try:
        yield seed, podman, tmp
    finally:
        podman.close()
        seed.close()


def wait_listening(podman: Podman, name: str, port: int):
    deadline = time.time() + 60
    while time.time() < deadline:
        state = podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        if state not in ("running", "created", "configured"):
            logs = podman("logs", name, check=False)
            raise AssertionError(f"the broker container is {state}: {logs.stdout}{logs.stderr}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the broker container does not listen")


def test_broker_image_releases_to_simulated_td(env):
    seed, podman, tmp = env
    image = podman("pull", "--quiet", f"oci:{BUILD}/images/conker-broker:latest").stdout.strip()
    assert podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == \
        f"{IMAGE_UID}:{IMAGE_UID}"

    # The data owner's directory, as in the seed: secret.json, plus the simulator's root and its
    # collateral (which the broker finds next to the root).
    owner = tmp / "local-secret"
    owner.mkdir()
    owner.chmod(0o755)
    secret = {"key": "123456", "marker": os.urandom(8).hex()}
    (owner / "secret.json").write_text(json.dumps(secret))
    shutil.copy(seed.d.sim_root, owner / "sim-root.pem")
    shutil.copy(seed.d.sim_dir / "collateral.json", owner / "collateral.json")
    for f in owner.iterdir():
        f.chmod(0o644)

    info = seed.d.tdx_info()["measurements"]
    port = free_port()
    # The seed's arguments, verbatim apart from the address (127.0.0.1, not 0.0.0.0) and the port.
    args = ["-m", "-i", "127.0.0.1", "-p", str(port), "-v", "tdx_ecdsa", "-a", "nullattester",
            "-s", "/secret/secret.json", "-d", seed.image_id.removeprefix("sha256:"), "-w", info["rtmr"][1]]
    # Plus the MRTD pin our policy asks for (RTMR1 alone can be forged by a host-supplied
    # firmware), and the simulator's root.
    args += ["--mrtd", info["mr_td"], "--trust-sim-root", "/secret/sim-root.pem"]
    name = f"ckbroker-{os.getpid()}"
    podman("run", "--detach", "--name", name, "--net=host", "--ulimit", "nofile=1024:1024",
           "--ulimit", "nproc=1024:1024", "-v", f"{owner}:/secret", image, *args)
    wait_listening(podman, name, port)

    # The broker process runs as the image's user, not as root.
    pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == [str(IMAGE_UID)] * 4, uids

    # The data owner hands out the pin the broker logs at start; conkerd refuses unpinned brokers.
    logs = podman("logs", name).stdout + podman("logs", name).stderr
    m = re.search(r"pin it with host:port#(sha256:[0-9a-f]{64})", logs)
    assert m, logs
    tid, t, published = seed.run(f"127.0.0.1:{port}#{m.group(1)}")
    assert t["Status"] == "Running", t["Events"]
    assert json.loads(getsecret(published)) == secret

    audit = tmp / "audit.jsonl"
    podman("cp", f"{name}:/var/log/conker-broker/audit.jsonl", str(audit))
    entries = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    assert [e["decision"] for e in entries] == ["release"], entries
    assert entries[0]["appId"] == seed.image_id
    seed.delete(tid)
