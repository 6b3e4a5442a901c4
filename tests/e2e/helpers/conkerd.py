"""conkerd as a subprocess for end-to-end tests.

    with Conkerd(tmp_path, extra_args=[...]) as d:
        r = d.api("POST", "/sw/api/v1/container", json=body)
        d.wait_status(task_id, {"Running"})

Each instance gets its own data and run dirs, a free loopback port, and per-instance names for
everything host-global (bridge, nftables table, netns prefix and dir, subnet); `close()` stops
the daemon and removes all of it, also after a failed test: tasks are deleted through the API
first, then whatever is left (mounts under the instance dir, the table, the bridge) is removed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

BUILD = os.environ.get("CONKER_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "..", "build"))
CONKERD = os.path.join(BUILD, "src", "conkerd", "conkerd")
CONKER = os.path.join(BUILD, "src", "cli", "conker")
SHIM = os.path.join(BUILD, "src", "conker-shim", "conker-shim")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_published_port() -> int:
    """A port in conkerd's default published range (30000-65534) that is free on the host."""
    for _ in range(200):
        port = 30000 + int.from_bytes(os.urandom(2), "little") % 35000
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in the published range")


def wait_for(pred, timeout: float, what: str):
    """Polls pred() until it returns something true; the timeout only bounds a hung test."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "conkerd end-to-end tests need root"
    for p in (CONKERD, SHIM, CONKER):
        if not os.path.exists(p):
            return f"{p} is not built"
    if not shutil.which("runc"):
        return "runc is not installed"
    return None


class Conkerd:
    def __init__(self, workdir: Path | None = None, extra_args=(), auth: bool = True, tls: dict | None = None,
                 listen_host: str = "127.0.0.1", wrap=()):
        """tls: {"verify": CA path, "cert": (crt, key)} when conkerd serves HTTPS (pass its
        --tls-* flags in extra_args); the probes and api() then use them. With --tls-cert auto
        pass tls={"verify": False}: the certificate is checked by `conker --attest`, not a CA.
        listen_host: conkerd refuses a non-loopback address without TLS or --insecure-http.
        wrap: a command prefix (e.g. ip netns exec NS) for a daemon in another namespace."""
        tag = "%06x" % random.randrange(1 << 24)
        self.tag = tag
        # Always short and under /tmp: unix socket paths below the run dir must stay under 108
        # bytes (workdir is accepted for symmetry with the other helpers but not used).
        self.dir = Path(tempfile.mkdtemp(prefix=f"ckd{tag}-", dir="/tmp"))
        self.data = self.dir / "data"
        self.run_dir = self.dir / "run"
        self.token_file = self.dir / "token"
        self.log_file = self.dir / "conkerd.log"
        self.conf = self.dir / "conkerd.conf"
        self.conf.write_text("# e2e\n")
        # conkerd opens its TEE at start: a simulated TD of this instance (its root is what a
        # broker must be told to trust) with its RTMR state inside the instance dir.
        self.sim_dir = self.dir / "sim"
        self.sim_root = self.sim_dir / "root-ca.pem"
        subprocess.run([CONKER, "tdx-sim", "init", str(self.sim_dir)], check=True, capture_output=True)
        self.port = 0
        self.bridge = f"ckd{tag}"
        self.table = f"ckd{tag}"
        self.subnet = f"10.{random.randrange(100, 250)}.{random.randrange(0, 255)}.0/24"
        self.extra_args = list(extra_args)
        self.auth = auth
        self.proc: subprocess.Popen | None = None
        self.token: str | None = None
        self.tls = tls or {}
        self.listen_host = listen_host
        self.wrap = list(wrap)
        self.exit_code: int | None = None
        self.final_log = ""

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def argv(self):
        a = [*self.wrap, CONKERD, "--config", str(self.conf), "--tee", "sim", "--listen",
             f"{self.listen_host}:{self.port}",
             "--data-dir", str(self.data), "--run-dir", str(self.run_dir), "--token-file", str(self.token_file),
             "--shim", SHIM, "--bridge", self.bridge, "--subnet", self.subnet, "--nft-table", self.table,
             "--netns-dir", str(self.dir / "netns"), "--netns-prefix", f"d{self.tag}-",
             "--sim-dir", str(self.sim_dir), "--sim-state-dir", str(self.dir / "sim-state"),
             "--log-level", "debug", "--stop-timeout", "2"]
        if not self.auth:
            a.append("--no-auth")
        return a + self.extra_args

    def start(self, timeout: float = 30.0):
        for _ in range(5):
            self.port = free_port()
            log = open(self.log_file, "ab")
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
            log.close()
            deadline = time.time() + timeout
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if requests.get(self.url("/sw/api/v1/pub/health"), timeout=1, **self.tls).status_code == 200:
                        if self.auth:
                            self.token = self.token_file.read_text().strip()
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if "cannot listen" not in self.log():
                break
        raise RuntimeError(f"conkerd did not start:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self):
        self.stop(signal.SIGKILL)

    def close(self):
        # Delete what the daemon still knows about, so containers, volume keys and rules go the
        # proper way; then remove anything left behind by force.
        if self.proc and self.proc.poll() is None:
            try:
                r = self.api("GET", "/sw/api/v1/containers", timeout=5)
                for t in (r.json().get("data") or []):
                    self.api("DELETE", f"/sw/api/v1/container/{t['Id']}", timeout=60)
            except Exception:
                pass
        # 0 for a clean shutdown; a sanitizer build reports leaks and errors through it.
        self.exit_code = self.stop()
        self.final_log = self.log()
        self._kill_leftover_containers()
        self._umount_below(self.dir)
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for link in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines():
            name = link.split(":")[1].strip().split("@")[0] if ":" in link else ""
            if name.startswith(f"v{self.tag}") or self.tag in name:
                subprocess.run(["ip", "link", "del", name], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_leftover_containers(self):
        """Shims and containers of this instance that survived a failed test: by the pids in the
        runtime's own state files, and runc's own state under this run dir."""
        shims = self.run_dir / "shims"
        if not shims.is_dir():
            return
        for d in shims.iterdir():
            subprocess.run(["runc", "--root", str(self.run_dir / "runc"), "delete", "--force", d.name],
                           capture_output=True)
            try:
                pid = json.loads((d / "state.json").read_text()).get("shim_pid", 0)
                if pid > 0:
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass

    @staticmethod
    def _umount_below(d: Path):
        prefix = str(d.resolve())
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp == prefix or mp.startswith(prefix + "/"):
                    mounts.append(mp)
        for mp in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)

    # -- API ---------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def headers(self, token: str | None = "default") -> dict:
        if token == "default":
            token = self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def api(self, method: str, path: str, token: str | None = "default", timeout: float = 30, **kw):
        h = kw.pop("headers", {})
        h.update(self.headers(token))
        return requests.request(method, self.url(path), headers=h, timeout=timeout, **self.tls, **kw)

    def task(self, ref: str) -> dict:
        r = self.api("GET", f"/sw/api/v1/container/{ref}")
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def wait_status(self, ref: str, statuses: set[str], timeout: float = 120.0) -> dict:
        deadline = time.time() + timeout
        t = {}
        while time.time() < deadline:
            t = self.task(ref)
            if t["Status"] in statuses:
                return t
            time.sleep(0.2)
        raise AssertionError(f"task {ref} is {t.get('Status')}, not in {statuses}: {t.get('Events')}")

    def healthy(self) -> bool:
        try:
            return requests.get(self.url("/sw/api/v1/pub/health"), timeout=5, **self.tls).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tdx_info(self) -> dict:
        """`conker tdx info --json` against this instance's simulated TD (measurements, RTMR3 log)."""
        p = subprocess.run([CONKER, "tdx", "info", "--json", "--tee", "sim", "--sim-dir", str(self.sim_dir),
                            "--sim-state-dir", str(self.dir / "sim-state")], capture_output=True, text=True,
                           timeout=30)
        return json.loads(p.stdout)

    def conker(self, *args, input: str | None = None, check: bool = True, timeout: float = 180, pre=()):
        """`conker [pre...] args[0] --host … --token-file … args[1:]`; pre holds global options
        such as --attest POLICY."""
        scheme = "https" if self.tls else "http"
        argv = [CONKER, *pre, args[0], "--host", f"{scheme}://127.0.0.1:{self.port}", "--token-file",
                str(self.token_file), *args[1:]]
        p = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"conker {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p
