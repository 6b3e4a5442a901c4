"""The test variant of the TD image booted under QEMU TCG (scripts/td-image/vm.sh), for
test_vm.py. The host plays the TDX module: it predicts MRTD/RTMR1/RTMR2 of the very UKI it
boots (`conker tdx predict`) and hands the guest a simulated TD with that profile through
fw_cfg. The guest reaches the host's registry at 10.0.2.100:5000 and the broker at
10.0.2.101:3333 (QEMU guestfwd); the host reaches conkerd's API and the app's published port
through hostfwd ports on 127.0.0.1; a test agent answers on a virtio-serial socket."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import requests

from .conkerd import CONKER, Conkerd, free_port

ROOT = Path(__file__).resolve().parents[3]
IMAGE = Path(os.environ.get("CONKER_TD_OUT", ROOT / "build" / "td-image"))
UKI = IMAGE / "test" / "conker-td-test.efi"
UKI_ALT = IMAGE / "test" / "conker-td-test-alt.efi"
VM_SH = ROOT / "scripts" / "td-image" / "vm.sh"
REGISTRY_ADDR = "10.0.2.100:5000"
BROKER_ADDR = "10.0.2.101:3333"
APP_PORT = 30080  # the app's published port inside the guest


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the VM test needs root (it builds the TD image)"
    for tool in ("qemu-system-x86_64", "socat"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/deps.sh)"
    if not UKI.exists() or not UKI_ALT.exists():
        return f"no test variant in {UKI.parent}: run `make vm-test` (it builds the image and the variant)"
    if not os.path.exists(CONKER):
        return f"{CONKER} is not built"
    return None


def predict(uki: Path, out: Path) -> dict:
    """`conker tdx predict` on the UKI with the image's own firmware: MRTD, RTMR1, RTMR2."""
    subprocess.run([CONKER, "tdx", "predict", "--firmware", str(IMAGE / "OVMF.fd"), "--uki", str(uki),
                    "-o", str(out)], check=True, capture_output=True, timeout=300)
    ref = json.loads(out.read_text())
    assert all(re.fullmatch("[0-9a-f]{96}", ref[k]) for k in ("mrtd", "rtmr1", "rtmr2")), ref
    return ref


def sim_for(base_sim: Path, ref: dict, dest: Path) -> Path:
    """A copy of the simulated TD base_sim (same PKI, so one broker trusts every boot) whose
    profile carries the predicted measurements ref, packed as the tar the guest unpacks."""
    shutil.copytree(base_sim, dest)
    prof = json.loads((dest / "profile.json").read_text())
    prof.update(mr_td=ref["mrtd"], rtmr1=ref["rtmr1"], rtmr2=ref["rtmr2"])
    (dest / "profile.json").write_text(json.dumps(prof, indent=2))
    tar = dest.with_suffix(".tar")
    with tarfile.open(tar, "w") as t:
        for f in sorted(dest.iterdir()):
            t.add(f, arcname=f.name)
    return tar


class Vm:
    """One boot: QEMU runs until stop(). api() talks to conkerd (HTTPS, RA-TLS certificate of
    the simulated TD: not verified here; test_conkerd_attest.py checks it), agent() to the agent."""

    def __init__(self, work: Path, uki: Path, disk: Path, sim_tar: Path, token: str, ca_file: Path,
                 registry_port: int, broker_port: int):
        work.mkdir(parents=True, exist_ok=True)
        self.work, self.token = work, token
        self.console = work / "console.log"
        self.agent_sock = work / "agent.sock"
        (work / "token").write_text(token)
        self.api_port, self.app_port = free_port(), free_port()
        reg_host, reg_port = REGISTRY_ADDR.split(":")
        br_host, br_port = BROKER_ADDR.split(":")
        argv = ["bash", str(VM_SH), str(uki), str(self.console), "--disk", str(disk),
                "--agent", str(self.agent_sock),
                "--fw-cfg", f"opt/conker/sim.tar={sim_tar}", "--fw-cfg", f"opt/conker/token={work / 'token'}",
                "--fw-cfg", f"opt/conker/registry-ca.pem={ca_file}",
                "--hostfwd", f"{self.api_port}:8383", "--hostfwd", f"{self.app_port}:{APP_PORT}",
                "--guestfwd", f"{reg_host}:{reg_port}={registry_port}",
                "--guestfwd", f"{br_host}:{br_port}={broker_port}"]
        self.started = time.monotonic()
        self.qemu_log = open(work / "qemu.log", "w")
        self.proc = subprocess.Popen(argv, stdout=self.qemu_log, stderr=subprocess.STDOUT)
        self.agent_conn: socket.socket | None = None

    def console_text(self) -> str:
        try:
            return re.sub(r"\x1b\[[0-9;]*m", "", self.console.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def wait_conkerd(self, timeout: float = 600) -> float:
        """Seconds until the console says conkerd.service started (Type=notify: ready)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.console_text()
            if "Started conkerd.service" in text:
                return time.monotonic() - self.started
            for bad in ("Failed to start conkerd.service", "Kernel panic",
                        "Dependency failed for conkerd.service"):
                if bad in text:
                    raise AssertionError(f"{bad}:\n{self.journal()}\n{text[-4000:]}")
            if self.proc.poll() is not None:
                raise AssertionError(f"QEMU exited ({self.proc.returncode}):\n{text[-4000:]}")
            time.sleep(1)
        raise AssertionError(f"conkerd did not start within {timeout}s:\n{self.console_text()[-4000:]}")

    def stop(self):
        if self.agent_conn:
            self.agent_conn.close()
            self.agent_conn = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.qemu_log.close()

    # -- conkerd's API ------------------------------------------------------------------------
    def api(self, method: str, path: str, timeout: float = 60, **kw):
        return requests.request(method, f"https://127.0.0.1:{self.api_port}{path}", verify=False,
                                headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout, **kw)

    def conker_attested(self, ref: Path, sim: Path, *args) -> subprocess.CompletedProcess:
        """`conker --attest REF ... ARGS`: the CLI verifies conkerd's RA-TLS certificate (the
        simulated TD's quote, trusted through sim's root) against REF before sending the token."""
        return subprocess.run([CONKER, "--attest", str(ref), "--trust-sim-root", str(sim / "root-ca.pem"),
                               "--collateral", str(sim / "collateral.json"), args[0], "--host",
                               f"https://127.0.0.1:{self.api_port}", "--token-file", str(self.work / "token"),
                               *args[1:]], capture_output=True, text=True, timeout=120)

    # The task document and its polling need only api(): the same as for a conkerd on the host.
    task = Conkerd.task
    wait_status = Conkerd.wait_status

    # -- the test agent (scripts/td-image/test-variant/agent.sh) ------------------------------
    def agent(self, cmd: str, timeout: float = 300) -> tuple[int, list[str]]:
        if self.agent_conn is None:
            self.agent_conn = socket.socket(socket.AF_UNIX)
            self.agent_conn.connect(str(self.agent_sock))
            self.agent_buf = b""
        self.agent_conn.settimeout(timeout)
        self.agent_conn.sendall(cmd.encode() + b"\n")
        lines: list[str] = []
        while True:
            while b"\n" not in self.agent_buf:
                chunk = self.agent_conn.recv(65536)
                if not chunk:
                    raise AssertionError(f"agent closed the port during {cmd!r}")
                self.agent_buf += chunk
            line, self.agent_buf = self.agent_buf.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith(".end "):
                return int(text[5:]), lines
            lines.append(text)

    def journal(self) -> str:
        try:
            return "\n".join(self.agent("journal", timeout=60)[1])
        except (OSError, AssertionError) as e:
            return f"(no journal: {e})"
