"""kill -9 of conkerd in the middle of a task's pipeline, after the pull (Pulling is
test_conkerd_flow.py::test_restart_mid_pull_and_delete_while_pulling): "nothing lost, nothing
left" (docs/conkerd.md, recovery at start).

- Attesting: a relay in front of a real conker-broker (seed flags) lets the TLS handshake
  through and holds the broker's answer (helpers/throttle.py AnswerHold); conkerd is killed once
  the broker has released and its answer sits in the relay.
- Starting: the runtime is a wrapper of runc that stops before `runc run` until the test lets it
  go; conkerd is killed while it waits. The secret is then in the task's tmpfs and the volume
  made. The wrapper is let go either before the restart (the orphaned shim starts the container
  while conkerd is down) or after the restart's cleanup.

After the restart: the task is Failed with "conkerd restarted during <step>" and stays so
across another restart; the secret's marker is in no file under conkerd's dirs nor in any tmpfs,
the task's secret tmpfs is unmounted; no mount, network, runc container or shim of the task
remains; the task's volume is crypto-erased (volumes belong to their task: docs/design.md §6);
the image is still stored (a new task runs with the registry stopped, pull-policy missing); a
new task with the same Name, volume name and published port runs, gets the secret, and its
volume is fresh and writable."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from helpers.broker import Broker
from helpers.conkerd import BUILD, Conkerd, free_published_port, wait_for
from helpers.leftovers import grep_tree, network_of
from helpers.registry import Registry
from helpers.throttle import AnswerHold
from test_seed_story import needs

ROOT = Path(__file__).resolve().parents[2]
APP = os.path.join(BUILD, "src", "example-app", "conker-example-app")
P = "/sw/api/v1/container"
IMAGE = "reckey/conker-example-app:latest"
BEFORE = {"Attesting": ["Pulling", "Pulled", "Attesting"],
          "Starting": ["Pulling", "Pulled", "Attesting", "Attested", "Creating", "Created", "Starting"]}
PIPELINE = BEFORE["Starting"] + ["Running"]


class Gate:
    """The runtime: runc behind a script that, for `run`, says it got there and waits for `go`,
    then runs runc and says it is done."""

    def __init__(self, base: Path):
        self.dir = base / "gate"
        self.dir.mkdir()
        self.path = self.dir / "runc-gate"
        self.path.write_text(f"""#!/bin/sh
for a in "$@"; do
    if [ "$a" = run ]; then
        : > {self.dir}/reached
        i=0
        while [ ! -e {self.dir}/go ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i + 1)); done
        {shutil.which("runc")} "$@"
        rc=$?
        : > {self.dir}/done
        exit $rc
    fi
done
exec {shutil.which("runc")} "$@"
""")
        self.path.chmod(0o755)
        (self.dir / "go").touch()  # open until a test closes it

    def close(self):
        (self.dir / "go").unlink()

    def open(self):
        (self.dir / "go").touch()

    def reached(self) -> bool:
        return (self.dir / "reached").exists()

    def done(self) -> bool:
        return (self.dir / "done").exists()


class Env:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.marker = "crash-secret-marker-" + os.urandom(8).hex()
        self.reg = Registry(tmp / "registry", user="user", password="pass")
        self.reg.start()
        subprocess.run(["bash", str(ROOT / "scripts" / "images.sh"), BUILD, self.reg.host,
                        *self.reg.skopeo_dest_args()], check=True, capture_output=True, timeout=180)
        self.gate = Gate(tmp)
        # pull-policy missing: a task of a stored image does not ask the registry, so a task that
        # runs with the registry stopped proves the image survived.
        self.d = Conkerd(tmp, extra_args=["--registry-mirror", f"docker.io={self.reg.host}",
                                          "--registry-ca-file", str(self.reg.ca_file), "--pull-policy", "missing",
                                          "--runtime", str(self.gate.path)])
        self.d.start()
        m = self.d.tdx_info()["measurements"]
        self.secret = tmp / "owner" / "secret.json"
        self.secret.parent.mkdir()
        self.secret.write_text(json.dumps({"password": self.marker}))
        image_id = self._image_id()
        self.broker = Broker(tmp, ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(self.secret),
                                   "-w", m["rtmr"][1], "-d", image_id.removeprefix("sha256:"), "--mrtd", m["mr_td"],
                                   "--trust-sim-root", str(self.d.sim_root)])

    def _image_id(self) -> str:
        r = self.reg.session().get(f"{self.reg.url}/v2/reckey/conker-example-app/manifests/latest", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
                      "application/vnd.docker.distribution.manifest.v2+json"})
        r.raise_for_status()
        return r.json()["config"]["digest"]

    def close(self):
        self.broker.stop()
        self.gate.open()
        self.d.close()
        self.reg.stop()

    def body(self, endpoint: str, port: int) -> str:
        """The seed's request: same Name, a volume, the published port, the broker pinned."""
        return json.dumps({"Name": "crash-app", "ImageInfo": {"ImageName": IMAGE, "RegisterAuthInfo": {
            "Username": "user", "Password": "pass"}}, "Ports": [{"TargetPort": 8080, "PublishedPort": port}],
            "Env": [f"userId=secret-{self.broker.endpoint}"],
            "Mounts": [{"Type": "volume", "Target": "/data", "Source": "data", "RW": True}],
            "KmsEndpoints": [endpoint]})

    def create(self, endpoint: str, port: int) -> str:
        r = self.d.api("POST", P, data=self.body(endpoint, port))
        assert r.status_code == 200, r.text
        return r.json()["data"]["Id"]


@pytest.fixture
def env(tmp_path):
    needs()
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.close()
    assert e.d.exit_code == 0, f"conkerd did not exit cleanly ({e.d.exit_code}):\n{e.d.final_log[-4000:]}"


def tmpfs_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[l.split().index("-") + 1] == "tmpfs"]


def assert_failed_after_restart(d: Conkerd, tid: str, step: str) -> dict:
    t = d.task(tid)
    assert t["Status"] == "Failed", t["Events"]
    assert [e["Action"] for e in t["Events"]] == BEFORE[step] + ["Failed"], t["Events"]
    assert t["Events"][-1]["Message"] == f"conkerd restarted during {step}", t["Events"]
    return t


def assert_nothing_left(e: Env, tid: str, port: int):
    d = e.d
    # No secret byte: not in a file under conkerd's data and run dirs, not in any tmpfs.
    assert grep_tree(d.dir, e.marker.encode()) == []
    for mp in tmpfs_mounts():
        if not mp.startswith(("/proc", "/sys")):
            # The owner's own secret file is under the test's directory (on a host whose /tmp is
            # a tmpfs it is found there).
            hits = [h for h in grep_tree(Path(mp), e.marker.encode()) if not h.startswith(str(e.tmp) + "/")]
            assert hits == [], mp
    secret_dir = d.run_dir / "tasks" / tid / "secret"
    assert str(secret_dir) not in tmpfs_mounts()
    assert not (d.run_dir / "tasks" / tid).exists()
    # No mount, network, container or shim of the task.
    with open("/proc/self/mountinfo") as f:
        assert tid not in f.read()
    assert network_of(d, port) == []
    assert not (d.run_dir / "runc" / tid).exists()
    listed = subprocess.run(["runc", "--root", str(d.run_dir / "runc"), "list", "-q"], capture_output=True,
                            text=True).stdout.split()
    assert tid not in listed
    assert not (d.run_dir / "shims" / tid).exists()
    assert not (d.data / "containers" / tid).exists()
    # (Bounded: the test's runtime wrapper may still be exiting after it said it is done.)
    ps = lambda: subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout  # noqa: E731
    wait_for(lambda: tid not in ps(), 10, "no process of the task")
    # The task's volume went with it (crypto-erased: its directory and key are gone).
    assert not (d.data / "volumes" / tid).exists()


def assert_survivors(e: Env, failed: str, port: int):
    """The image is still stored and the Name, volume name and port are free: a new task of the
    same request runs with the registry stopped and gets the secret."""
    d = e.d
    e.reg.stop()
    tid = e.create(e.broker.pinned, port)
    t = d.wait_status(tid, {"Running", "Failed"}, timeout=180)
    assert t["Status"] == "Running", t["Events"]
    assert [x["Action"] for x in t["Events"]] == PIPELINE, t["Events"]
    r = None
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            r = requests.get(f"http://127.0.0.1:{port}/api/v1/getsecret", timeout=3)
            break
        except requests.RequestException:
            time.sleep(0.3)
    assert r is not None and r.status_code == 200, r
    assert r.json()["data"] == e.secret.read_text()
    # A fresh volume, writable, under the same name.
    vol = d.data / "volumes" / tid / "data"
    assert vol.is_dir() and list(vol.iterdir()) == []
    (vol / "after").write_text("ok")
    assert (vol / "after").read_text() == "ok"
    # The failed task stays Failed, also across a clean restart.
    before = d.task(failed)["Events"]
    assert d.stop() == 0
    d.start()
    assert d.task(failed)["Status"] == "Failed"
    assert d.task(failed)["Events"] == before
    assert d.wait_status(tid, {"Running"}, timeout=30)["Status"] == "Running"
    assert d.api("DELETE", f"{P}/{tid}", timeout=120).status_code == 200
    assert d.api("DELETE", f"{P}/{failed}", timeout=120).status_code == 200
    assert grep_tree(d.dir, e.marker.encode()) == []


def released(broker: Broker) -> bool:
    try:
        return [a["decision"] for a in broker.audit()] == ["release"]
    except ValueError:  # a line being written
        return False


def test_kill_during_attesting(env):
    """conkerd dies while the broker's answer (the released secret) is held in the relay."""
    e, d = env, env.d
    port = free_published_port()
    with AnswerHold(e.broker.port) as relay:
        tid = e.create(f"127.0.0.1:{relay.port}#{e.broker.fingerprint}", port)
        wait_for(lambda: relay.held.is_set() and released(e.broker), 120,
                 "the broker released and its answer is held")
        assert d.task(tid)["Status"] == "Attesting"
        d.kill9()
    d.start()
    assert_failed_after_restart(d, tid, "Attesting")
    # The answer never reached conkerd (it logs each release it receives).
    assert not [l for l in d.log().splitlines() if tid in l and "released a secret" in l]
    assert_nothing_left(e, tid, port)
    assert_survivors(e, tid, port)


@pytest.mark.parametrize("release", ["before-restart", "after-restart"])
def test_kill_during_starting(env, release):
    """conkerd dies while the runtime is about to run the container: the secret is in the task's
    tmpfs, the volume made and written. The runtime then goes on while conkerd is down (the
    orphaned shim starts the container), or only after the restart cleaned up."""
    e, d = env, env.d
    port = free_published_port()
    e.gate.close()
    tid = e.create(e.broker.pinned, port)
    wait_for(e.gate.reached, 180, "the runtime waits before runc run")
    t = d.task(tid)
    assert t["Status"] == "Starting", t["Events"]
    secret_dir = d.run_dir / "tasks" / tid / "secret"
    assert grep_tree(secret_dir, e.marker.encode()) != []
    vol = d.data / "volumes" / tid / "data"
    (vol / "before").write_text("written before the kill")
    d.kill9()
    if release == "before-restart":
        e.gate.open()
        wait_for(e.gate.done, 60, "the runtime finished")
    # A shim still inside `runc run` does not answer the restart's delete request; conkerd kills
    # it after that request's 20 s timeout, before it listens: a generous bound.
    d.start(timeout=120)
    if release == "after-restart":
        e.gate.open()
        wait_for(e.gate.done, 60, "the runtime finished")
    assert_failed_after_restart(d, tid, "Starting")
    assert_nothing_left(e, tid, port)
    assert_survivors(e, tid, port)
