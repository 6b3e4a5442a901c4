"""What conkerd.service and conker-broker.service rely on, checked without systemd.

conkerd.service's capability bounding set is enough for the whole seed story: conkerd runs
under exactly the CapabilityBoundingSet= of packaging/systemd/conkerd.service.in (applied with
setpriv(1), as systemd applies it: the bounding set, and so the permitted and effective sets of
a root process, hold nothing else), and a task pulls its image, attests to the broker, gets an
encrypted volume (loop device, fscrypt key), its network (veth, bridge, nftables) and its
secret tmpfs, runs with Docker's default capabilities, and serves the released secret.

The seed story also runs with $NOTIFY_SOCKET set, as under Type=notify (the shim keeps it from
runc). Type=notify: both daemons send READY=1 to $NOTIFY_SOCKET only once they listen, and STOPPING=1
when they shut down."""

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

import test_seed_story
from helpers.broker import BROKER, IMAGE_ID, SimTD
from helpers.conkerd import Conkerd, free_port
from test_seed_story import Seed, getsecret, needs

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "systemd" / "conkerd.service.in"
CAP_NUMBERS = {  # linux/capability.h
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}


def unit_capabilities() -> list[str]:
    lines = re.findall(r"^CapabilityBoundingSet=(.*)$", UNIT.read_text(), re.M)
    assert len(lines) == 1, lines
    caps = lines[0].split()
    assert caps and all(c in CAP_NUMBERS for c in caps), caps
    return caps


class BoundedConkerd(Conkerd):
    """conkerd started under the unit's capability bounding set and, as Type=notify gives it,
    with $NOTIFY_SOCKET set (its shims and runc must not inherit it: `runc run --detach` would
    wait for the container's READY=1, and the task would hang at Starting)."""
    caps: list[str] = []
    notify: str = ""

    def argv(self):
        spec = "-all," + ",".join("+" + c.removeprefix("CAP_").lower() for c in self.caps)
        return ["env", f"NOTIFY_SOCKET={self.notify}", "setpriv", "--bounding-set", spec, "--inh-caps",
                "-all", "--"] + super().argv()


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    needs()
    if subprocess.run(["setpriv", "--help"], capture_output=True).returncode != 0:
        pytest.skip("setpriv (util-linux) is not available")
    BoundedConkerd.caps = unit_capabilities()
    tmp = tmp_path_factory.mktemp("unitcaps")
    n = NotifySocket(tmp / "notify")
    BoundedConkerd.notify = str(n.path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_seed_story, "Conkerd", BoundedConkerd)
        s = Seed(tmp)
    try:
        yield s
    finally:
        s.close()
        n.close()


def test_seed_story_under_unit_capabilities(seed):
    want = sum(1 << CAP_NUMBERS[c] for c in BoundedConkerd.caps)
    with open(f"/proc/{seed.d.proc.pid}/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert int(status["CapBnd"], 16) == want, status["CapBnd"]
    assert int(status["CapEff"], 16) & ~want == 0, status["CapEff"]

    secret = seed.secret_file()
    b = seed.seed_broker(secret)
    tid, t, port = seed.run(b.pinned)
    assert t["Status"] == "Running", t["Events"]
    assert getsecret(port) == secret.read_text()
    seed.delete(tid)


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def recv(self, proc: subprocess.Popen, timeout: float) -> str:
        """The next datagram; fails at once if proc exits first."""
        self.sock.settimeout(0.2)
        for _ in range(int(timeout / 0.2)):
            try:
                return self.sock.recv(4096).decode()
            except TimeoutError:
                if proc.poll() is not None:
                    raise AssertionError(f"exited {proc.returncode} before notifying")
        raise AssertionError("no notification")

    def close(self):
        self.sock.close()
        self.path.unlink(missing_ok=True)


def test_conkerd_notifies_ready_once_listening(tmp_path):
    """Type=notify: READY=1 arrives only when the API already answers; STOPPING=1 on SIGTERM."""
    needs()
    n = NotifySocket(tmp_path / "notify")
    d = Conkerd(tmp_path)
    try:
        d.port = free_port()
        proc = subprocess.Popen(d.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                env={**os.environ, "NOTIFY_SOCKET": str(n.path)})
        d.proc = proc
        assert n.recv(proc, 60) == "READY=1"
        # No retry: the API listens by the time READY=1 is sent.
        assert requests.get(d.url("/sw/api/v1/pub/health"), timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert n.recv(proc, 30) == "STOPPING=1"
        assert proc.wait(timeout=30) == 0
    finally:
        d.close()
        n.close()


def test_broker_notifies_ready_once_listening(tmp_path):
    """The same for conker-broker: READY=1 once its TLS port accepts connections."""
    if not os.path.exists(BROKER):
        pytest.skip("conker-broker is not built")
    sim = SimTD(tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text('{"k":"v"}')
    port = free_port()
    args = [BROKER, "-i", "127.0.0.1", "-p", str(port), "-s", str(secret), "-w", sim.rtmr1, "-d", IMAGE_ID,
            "--firmware", "any", "--trust-sim-root", sim.root, "--audit-log", str(tmp_path / "audit.jsonl")]
    n = NotifySocket(tmp_path / "notify")
    log = open(tmp_path / "broker.log", "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "NOTIFY_SOCKET": str(n.path)})
    try:
        assert n.recv(proc, 60) == "READY=1"
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        proc.send_signal(signal.SIGTERM)
        assert n.recv(proc, 30) == "STOPPING=1"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        n.close()
