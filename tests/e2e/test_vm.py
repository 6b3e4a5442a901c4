"""`make vm-test`: the seed story inside the TD image, booted under QEMU TCG (issue 10, item 6).

The test variant of the image (scripts/td-image/test-variant.sh: the production UKI's kernel
and initrd plus a test-only cpio, its own measurements) runs conkerd on a simulated TD whose
MRTD/RTMR1/RTMR2 the host predicted from the very UKI it boots (helpers/vm.py). A registry and a
broker run on the host's loopback; the broker pins the predicted reference values (MRTD, RTMR1,
RTMR2) and the image. In order (one module, one shared state disk):
- test_seed_story: POST the seed's body, events to Running, the app returns the secret, the
  broker's audit says release with the three pins; the secret, a volume file's plaintext and the
  registry password are nowhere on the state disk; DELETE.
- test_tampered_disk: a second task; the host flips bytes across the state disk while the guest
  runs; every file the guest reads back is either unchanged or an I/O error; the app, killed,
  is not started again: conkerd fails the task ("the state disk failed its integrity check")
  and refuses new ones.
- test_restart_one_byte_refused: the VM restarts on the same state disk with the UKI whose
  command line differs by one byte (its own predicted profile): conkerd starts clean, the old
  state is unreadable, and the same broker refuses it.
Runs with CONKER_VM_TEST=1 (`make vm-test` and `make test` set it after building the image and
the variant); skips, saying why, without QEMU, socat, root or the variant."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from helpers.broker import BROKER, Broker
from helpers.conkerd import BUILD, CONKER
from helpers.registry import Registry
from helpers.vm import BROKER_ADDR, REGISTRY_ADDR, UKI, UKI_ALT, APP_PORT, Vm, predict, sim_for, skip_reason
from test_seed_story import http_get

ROOT = Path(__file__).resolve().parents[2]
P = "/sw/api/v1/container"
DISK_SIZE = 1 << 30
HEADER_SKIP = 1 << 20  # dm-integrity's superblock and the first journal-free sectors
# api() does not verify conkerd's certificate (an RA-TLS one); conker --attest does, once per boot.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
PIPELINE = ["Pulling", "Pulled", "Attesting", "Attested", "Creating", "Created", "Starting", "Running"]


def needs():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if not os.path.exists(BROKER):
        pytest.skip("conker-broker is not built")
    if os.environ.get("CONKER_VM_TEST") != "1":
        pytest.skip("boots the TD image under TCG for minutes: `make vm-test` (or make test) sets CONKER_VM_TEST=1")


class World:
    """The host side: registry, broker, the simulated TD's PKI, the state disk, the VM."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.password = "reg-pass-" + os.urandom(8).hex()
        self.secret_marker = "vm-secret-" + os.urandom(8).hex()
        self.volume_marker = "vm-volume-" + os.urandom(8).hex()
        self.reg = Registry(tmp / "registry", user="user", password=self.password,
                            extra_ips=[REGISTRY_ADDR.split(":")[0]])
        self.reg.start()
        subprocess.run(["bash", str(ROOT / "scripts" / "images.sh"), BUILD, self.reg.host,
                        *self.reg.skopeo_dest_args()], check=True, capture_output=True, timeout=180)
        self.image_id = self.reg.session().get(
            f"{self.reg.url}/v2/reckey/conker-example-app/manifests/latest",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).json()["config"]["digest"]
        self.secret = tmp / "secret.json"
        self.secret.write_text(json.dumps({"password": self.secret_marker}))
        self.base_sim = tmp / "sim-base"
        subprocess.run([CONKER, "tdx-sim", "init", str(self.base_sim)], check=True, capture_output=True)
        self.ref = predict(UKI, tmp / "reference-values.json")
        self.broker = Broker(tmp, ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(self.secret),
                                   "--reference-values", str(tmp / "reference-values.json"),
                                   "-d", self.image_id.removeprefix("sha256:"),
                                   "--trust-sim-root", str(self.base_sim / "root-ca.pem")])
        self.disk = tmp / "state.img"
        with open(self.disk, "wb") as f:
            f.truncate(DISK_SIZE)
        self.token = os.urandom(24).hex()
        self.vm: Vm | None = None
        self.timings: dict[str, float] = {}

    def boot(self, uki: Path, name: str, ref: dict) -> Vm:
        sim_tar = sim_for(self.base_sim, ref, self.tmp / f"sim-{name}")
        self.vm = Vm(self.tmp / name, uki, self.disk, sim_tar, self.token, self.reg.ca_file,
                     self.reg.port, self.broker.port)
        self.timings[f"{name}: conkerd ready"] = self.vm.wait_conkerd()
        return self.vm

    def body(self, name: str) -> str:
        return json.dumps({
            "Name": name,
            "ImageInfo": {"ImageName": "reckey/conker-example-app:latest",
                          "RegisterAuthInfo": {"Username": "user", "Password": self.password}},
            "Ports": [{"TargetPort": 8080, "PublishedPort": APP_PORT}],
            "Env": [f"userId=secret-{BROKER_ADDR}"],
            "Mounts": [{"Type": "volume", "Target": "/data", "Source": "data", "RW": True}],
            "KmsEndpoints": [f"{BROKER_ADDR}#{self.broker.fingerprint}"]})

    def post(self, name: str, statuses=("Running", "Failed")) -> tuple[str, dict]:
        t0 = time.monotonic()
        r = self.vm.api("POST", P, data=self.body(name))
        assert r.status_code == 200, r.text
        tid = r.json()["data"]["Id"]
        t = self.vm.wait_status(tid, set(statuses), timeout=600)
        self.timings[f"POST {name} to {t['Status']}"] = time.monotonic() - t0
        return tid, t

    def close(self):
        if self.vm:
            self.vm.stop()
        self.broker.stop()
        self.reg.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    needs()
    w = World(tmp_path_factory.mktemp("vm"))
    t0 = time.monotonic()
    try:
        yield w
    finally:
        w.close()
        w.timings["module total"] = time.monotonic() - t0
        print("\nvm-test timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in w.timings.items()))


def disk_has(disk: Path, needle: bytes) -> bool:
    with open(disk, "rb") as f:
        prev = b""
        while chunk := f.read(16 << 20):
            if needle in prev[-len(needle):] + chunk:
                return True
            prev = chunk
    return False


def digests(vm: Vm) -> tuple[dict[str, str], dict[str, str]]:
    """The agent's read-back of every file under /var/lib/conker: (path -> sha256, path -> error)."""
    rc, lines = vm.agent("digests")
    assert rc == 0, lines
    ok, bad = {}, {}
    for line in lines:
        if line.startswith("error "):
            path, _, msg = line[6:].partition(" ")
            bad[path] = msg
        elif re.fullmatch(r"[0-9a-f]{64} /.*", line):
            ok[line[65:]] = line[:64]
    return ok, bad


def test_seed_story(world):
    vm = world.boot(UKI, "boot1", world.ref)
    rc, storage = vm.agent("storage")
    assert rc == 0, storage
    # The data dir is on the state disk the image made (LUKS2 with integrity, docs/td-image.md §8).
    assert any(line.split()[:2] == ["/dev/mapper/conker-state", "ext4"] for line in storage), storage
    # The host checks that it talks to the TD it booted: conkerd's RA-TLS certificate against
    # the values predicted from the UKI.
    p = vm.conker_attested(world.tmp / "reference-values.json", world.base_sim, "ps")
    assert p.returncode == 0, p.stderr
    # Layers are EROFS images on the state disk (the image loads erofs and overlay at boot), and
    # conkerd watches the kernel log for the state disk's integrity failures.
    journal = vm.journal()
    assert "image layers: erofs" in journal, journal
    assert "state disk: watching the kernel log for integrity failures" in journal, journal

    tid, t = world.post("conker-example-app")
    assert t["Status"] == "Running", t["Events"]
    assert [e["Action"] for e in t["Events"]] == PIPELINE, t["Events"]
    r = http_get(vm.app_port, "/api/v1/getsecret", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == world.secret.read_text()
    audit = world.broker.audit()
    assert [e["decision"] for e in audit] == ["release"], audit
    assert audit[0]["mrtd"] == world.ref["mrtd"] and audit[0]["rtmr1"] == world.ref["rtmr1"]
    assert set(audit[0]["pinned"]) >= {"mrtd", "rtmr1", "rtmr2", "image"}, audit[0]

    # A file in the task's volume, then everything on the disk: no plaintext there.
    pid = t["ContainerInspect"]["State"]["Pid"]
    rc, out = vm.agent(f"volume-put {pid} {world.volume_marker}")
    assert rc == 0, out
    assert vm.agent("drop-caches")[0] == 0
    assert disk_has(world.disk, b"integrt")  # the disk is in use (dm-integrity's superblock)
    for needle in (world.secret_marker, world.volume_marker, world.password):
        assert not disk_has(world.disk, needle.encode()), f"{needle} is readable on the state disk"

    r = vm.api("DELETE", f"{P}/{tid}", timeout=300)
    assert r.status_code == 200, r.text
    assert vm.api("GET", "/sw/api/v1/containers").json()["data"] == []


def flip_bytes(disk: Path, every: int) -> int:
    """Flips one byte in every `every`-th written 4 KiB block past the first MiB (never-written
    blocks stay zero: nothing reads them). Returns how many."""
    n = 0
    with open(disk, "r+b") as f:
        for off in range(HEADER_SKIP, DISK_SIZE, 4096):
            f.seek(off)
            block = f.read(4096)
            if not block.strip(b"\0"):
                continue
            n += 1
            if n % every:
                continue
            pos = off + 2048
            f.seek(pos)
            b = f.read(1)
            f.seek(pos)
            f.write(bytes([b[0] ^ 0x5A]))
        f.flush()
        os.fsync(f.fileno())
    return n // every


def test_tampered_disk(world):
    vm = world.vm
    tid, t = world.post("tampered")
    assert t["Status"] == "Running", t["Events"]
    assert http_get(vm.app_port, "/api/v1/getsecret", timeout=60).status_code == 200
    pid = t["ContainerInspect"]["State"]["Pid"]
    assert vm.agent(f"volume-put {pid} {world.volume_marker}")[0] == 0
    assert vm.agent("drop-caches")[0] == 0
    before, bad = digests(vm)
    assert bad == {} and before, bad
    world.boot1_files = before

    flipped = flip_bytes(world.disk, 16)
    assert flipped > 0
    assert vm.agent("drop-caches")[0] == 0
    after, errors = digests(vm)
    # Never altered bytes: a file reads back as it was, or not at all.
    changed = {p for p in after if p in before and after[p] != before[p]}
    assert changed == set(), changed
    assert errors, "flipped blocks were read back without an error"
    assert all("Input/output error" in m for m in errors.values()), errors
    print(f"\n{flipped} bytes flipped; {len(after)} files read back unchanged, {len(errors)} I/O errors")

    # The app, killed with the caches dropped before its restart, must not run from altered
    # bytes: the reads above made dm-crypt report the altered sectors, so conkerd fails the task
    # when its container exits (removing the container, so its shim restarts nothing) instead of
    # letting the restart policy run it again; new tasks are refused for the same reason.
    rc, out = vm.agent(f"kill {pid}")
    assert rc == 0, out
    try:
        t = vm.wait_status(tid, {"Failed"}, timeout=120)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{vm.journal()}") from None
    failed = [e for e in t["Events"] if e["Action"] == "Failed"]
    assert failed, t["Events"]
    reason = failed[0]["Message"]
    assert re.fullmatch(r"the state disk failed its integrity check \(\d+ failed sector reads\): "
                        r"the host altered it; not restarting", reason), t["Events"]
    events = vm.api("GET", f"{P}/{tid}/events").json()["data"]
    assert {"Action": "Failed", "Message": reason} in [
        {"Action": e["Action"], "Message": e["Message"]} for e in events], events
    print(f"\nafter the kill: {[e['Message'] for e in t['Events'][-3:]]}")
    # It stays failed: no restart, the app never answers again, and a new task is refused.
    time.sleep(10)
    t2 = vm.task(tid)
    assert t2["Status"] == "Failed" and t2["Events"] == t["Events"], t2["Events"][len(t["Events"]):]
    try:
        r = requests.get(f"http://127.0.0.1:{vm.app_port}/api/v1/getsecret", timeout=5)
        assert r.status_code != 200, "the app answered from the tampered disk"
    except requests.RequestException:
        pass
    rc, ps = vm.agent("procs")
    assert rc == 0 and not [p for p in ps if "conker-example-app" in p], ps
    r = vm.api("POST", P, data=world.body("after-tamper"))
    assert r.status_code == 503 and "the state disk failed its integrity check" in r.text, r.text


def test_restart_one_byte_refused(world):
    """The same state disk, the UKI with one byte of command line changed: conkerd starts clean
    (a fresh key: the old state is unreadable), and the broker refuses this TD."""
    if world.vm:
        world.vm.stop()
    ref_alt = predict(UKI_ALT, world.tmp / "reference-values-alt.json")
    assert ref_alt["mrtd"] == world.ref["mrtd"]
    assert ref_alt["rtmr2"] != world.ref["rtmr2"]
    vm = world.boot(UKI_ALT, "boot2", ref_alt)
    r = vm.api("GET", "/sw/api/v1/containers")
    assert r.status_code == 200 and r.json()["data"] == [], r.text
    ok, bad = digests(vm)
    assert bad == {}, bad
    # None of the first boot's blobs, layers, containers or volumes is there (a fresh key and
    # filesystem; the first boot's files were listed while its second task ran).
    task_state = [p for p in world.boot1_files
                  if re.match(r"/var/lib/conker/(blobs|layers|containers|volumes)/", p)]
    assert task_state, world.boot1_files
    assert [p for p in task_state if p in ok] == [], ok
    # Its certificate does not pass for the first UKI's values; it does for its own.
    p = vm.conker_attested(world.tmp / "reference-values.json", world.base_sim, "ps")
    assert p.returncode != 0 and "rtmr" in p.stderr, p.stderr
    p = vm.conker_attested(world.tmp / "reference-values-alt.json", world.base_sim, "ps")
    assert p.returncode == 0, p.stderr

    n_before = len(world.broker.audit())
    tid, t = world.post("refused", statuses=("Failed",))
    msg = t["Events"][-1]["Message"]
    assert "refused the attestation" in msg, t["Events"]
    audit = world.broker.audit()[n_before:]
    assert [e["decision"] for e in audit] == ["refuse"], audit
    assert audit[0]["reason"] in ("rtmr1_mismatch", "rtmr2_mismatch"), audit
    print(f"\nthe one-byte UKI: refused, {audit[0]['reason']}")
    assert not disk_has(world.disk, world.secret_marker.encode())
