"""The seed story end to end (docs/design.md §1), with the real programs: a local docker-registry
holding reckey/conker-example-app:latest (pulled through `--registry-mirror docker.io=...`),
conkerd on a simulated TD, and conker-broker started with the seed's flags plus the one flag our
safety rule requires, --mrtd (plus --trust-sim-root and an audit log). The seed's JSON body is used verbatim except that the
endpoint and the published port point at this test's free ports (consistently, also in Env).

Covered: the released secret reaches the app byte for byte; the event sequence; the secret
tmpfs (0700, nosuid, nodev, noexec) and its file (0400, pin not in the name); DELETE leaves no
secret in memory mounts or on disk; one refusing endpoint of two releases nothing, not even the
other's secret; refusals fail the task closed with the endpoint and the reason and release nothing (wrong
MRTD, wrong RTMR1, wrong image, task-config outside policy, untrusted simulator root, TCB status
outside policy; a prefix of RTMR1, or the seed's RTMR1-only line, stops the broker at start);
the broker judges the image and the task-config from the RTMR3 log; hot reload of secret.json; one audit entry per decision; certificate
pins; no secret, token or password in any log or API response. A certificate whose key does
not match its claims is refused by the broker: test_broker.py::test_mismatched_key."""

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from helpers.broker import BROKER, CLIENT, Broker
from helpers.conkerd import BUILD, Conkerd, free_published_port, skip_reason
from helpers.leftovers import grep_tree
from helpers.openapi import OpenApi
from helpers.registry import Registry
from helpers.seedshape import mismatches

ROOT = Path(__file__).resolve().parents[2]
APP = os.path.join(BUILD, "src", "example-app", "conker-example-app")
P = "/sw/api/v1/container"
SEED = ('{"Name":"conker-example-app","ImageInfo":{"ImageName":"reckey/conker-example-app:latest",'
        '"RegisterAuthInfo":{"Username":"user","Password":"pass"}},"Ports":[{"TargetPort":8080,'
        '"PublishedPort":30080}],"Env":["userId=secret-127.0.0.1:3333"],"Mounts":[{"Type":"volume",'
        '"Target":"/data","Source":"data","RW":true}],"KmsEndpoints":["127.0.0.1:3333"]}')
SEED_DATA = ROOT / "tests" / "data" / "seed"
MARKER = "seed-secret-marker-" + os.urandom(6).hex()
PIPELINE = ["Pulling", "Pulled", "Attesting", "Attested", "Creating", "Created", "Starting", "Running"]


def needs():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if not os.path.exists(BROKER):
        pytest.skip("conker-broker is not built")
    if not os.path.exists(APP) or "statically linked" not in subprocess.run(
            ["file", APP], capture_output=True, text=True).stdout:
        pytest.skip("a static conker-example-app is needed (normal build)")


class Seed:
    """Everything of the module: registry, conkerd, the image ID and the TD's RTMR1, and every
    API response text seen (for the leak check)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.reg = Registry(tmp / "registry", user="user", password="pass")
        self.reg.start()
        subprocess.run(["bash", str(ROOT / "scripts" / "images.sh"), BUILD, self.reg.host,
                        *self.reg.skopeo_dest_args()], check=True, capture_output=True, timeout=180)
        self.image_id = self._image_id()
        self.d = Conkerd(tmp, extra_args=["--registry-mirror", f"docker.io={self.reg.host}",
                                          "--registry-ca-file", str(self.reg.ca_file)])
        self.d.start()
        info = self.d.tdx_info()
        self.rtmr1 = info["measurements"]["rtmr"][1]
        assert re.fullmatch("[0-9a-f]{96}", self.rtmr1)
        self.mrtd = info["measurements"]["mr_td"]
        assert re.fullmatch("[0-9a-f]{96}", self.mrtd)
        self.responses: list[str] = []
        self.brokers: list[Broker] = []

    def _image_id(self) -> str:
        s = self.reg.session()
        r = s.get(f"{self.reg.url}/v2/reckey/conker-example-app/manifests/latest", headers={"Accept": ", ".join([
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json"])})
        r.raise_for_status()
        return r.json()["config"]["digest"]

    def close(self):
        for b in self.brokers:
            b.stop()
        self.d.close()
        self.reg.stop()

    def api(self, method, path, **kw):
        r = self.d.api(method, path, **kw)
        self.responses.append(r.text)
        return r

    def secret_file(self, name="secret.json", value=None) -> Path:
        p = self.tmp / "owner" / name
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(value if value is not None else {"password": MARKER, "n": 1}))
        return p

    def broker(self, args, name="broker") -> Broker:
        # Each broker its own log and audit log (the names are paths under tmp).
        b = Broker(self.tmp, args, f"{name}{len(self.brokers)}")
        self.brokers.append(b)
        return b

    def seed_broker(self, secret: Path, rtmr1=None, image=None, trust=True, name="broker", extra=(),
                    mrtd=None) -> Broker:
        # The seed's command line: -m -v tdx_ecdsa -a nullattester -s -w <RTMR1 hex> -d <image hex>,
        # plus --mrtd (an RTMR1 pin alone is refused: the host supplies the firmware).
        args = ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(secret), "-w", rtmr1 or self.rtmr1,
                "-d", (image or self.image_id).removeprefix("sha256:"), "--mrtd", mrtd or self.mrtd]
        args += ["--trust-sim-root", str(self.d.sim_root)] if trust else \
            ["--collateral", str(self.d.sim_dir / "collateral.json")]
        return self.broker(args + list(extra), name)

    def body(self, endpoint: str, port: int) -> str:
        """The seed body verbatim, pointed at this test's broker and published port."""
        host_port = endpoint.split("#")[0]
        return (SEED.replace("127.0.0.1:3333", host_port, 1).replace("127.0.0.1:3333", endpoint)
                .replace('"PublishedPort":30080', f'"PublishedPort":{port}'))

    def run(self, endpoint: str, statuses=("Running", "Failed")) -> tuple[str, dict, int]:
        port = free_published_port()
        r = self.api("POST", P, data=self.body(endpoint, port))
        assert r.status_code == 200, r.text
        tid = r.json()["data"]["Id"]
        t = self.d.wait_status(tid, set(statuses), timeout=180)
        self.responses.append(json.dumps(t))
        return tid, t, port

    def delete(self, tid: str):
        r = self.api("DELETE", f"{P}/{tid}", timeout=120)
        assert r.status_code == 200, r.text

    def secret_dir(self, tid: str) -> Path:
        return self.d.run_dir / "tasks" / tid / "secret"


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    needs()
    s = Seed(tmp_path_factory.mktemp("seed"))
    try:
        yield s
    finally:
        s.close()


def http_get(port: int, path: str, timeout: float = 20.0):
    import requests
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            return requests.get(f"http://127.0.0.1:{port}{path}", timeout=3)
        except requests.RequestException as e:
            last = e
            time.sleep(0.3)
    raise AssertionError(f"127.0.0.1:{port} does not answer: {last}")


def getsecret(port: int) -> str:
    r = http_get(port, "/api/v1/getsecret")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["code"] == 200 and j["message"] == "get secret successful", j
    return j["data"]


def mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def assert_failed_closed(seed: Seed, tid: str, t: dict, endpoint: str, reason: str):
    assert t["Status"] == "Failed", t["Events"]
    assert [e["Action"] for e in t["Events"]] == ["Pulling", "Pulled", "Attesting", "Failed"], t["Events"]
    msg = t["Events"][-1]["Message"]
    assert f"KMS {endpoint} refused the attestation: {reason}" in msg, msg
    assert not seed.secret_dir(tid).exists()
    assert t["ContainerInspect"]["State"]["Pid"] in (0, None)
    seed.delete(tid)


def test_seed_flow(seed):
    secret = seed.secret_file()
    b = seed.seed_broker(secret)
    tid, t, port = seed.run(b.pinned)
    assert t["Status"] == "Running", t["Events"]
    types = [e["Action"] for e in t["Events"]]
    assert types == PIPELINE, t["Events"]
    msgs = {e["Action"]: e["Message"] for e in t["Events"]}
    assert re.fullmatch(r"attested to 1 KMS endpoint in \d+ ms", msgs["Attested"]), msgs
    assert "1 secret" in msgs["Created"]

    # The app answers with exactly the broker's secret.json.
    assert getsecret(port) == secret.read_text()

    # The secret lives in a tmpfs of the task, 0400, named after host:port.
    sdir = seed.secret_dir(tid)
    assert mounted(sdir)
    # Only its owner may enter it, and nothing in it runs or is a device.
    assert (os.stat(sdir).st_mode & 0o777) == 0o700
    with open("/proc/self/mountinfo") as mi:
        opts = next(line.split()[5] for line in mi if line.split()[4] == str(sdir)).split(",")
    assert {"nosuid", "nodev", "noexec"} <= set(opts), opts
    f = sdir / f"secret-{b.endpoint}.json"
    assert f.read_text() == secret.read_text()
    assert (os.stat(f).st_mode & 0o777) == 0o400
    assert [e["decision"] for e in b.audit()] == ["release"]
    entry = b.audit()[0]
    assert entry["rtmr1"] == seed.rtmr1 and entry["mrtd"] == seed.mrtd
    assert entry["pinned"] == ["mrtd", "rtmr1", "image"]

    # The image and the task-config were measured into RTMR3, the log replays, and the broker
    # released for the config it was measured with.
    info = seed.d.tdx_info()
    assert info["rtmr3_log"]["replays"] is True and info["rtmr3_log"]["events"] >= 1
    log = Path(info["rtmr3_log"]["path"]).read_text().splitlines()
    # The image, then the task's configuration (docs/rtmr3-event-log.md), each once.
    events = [json.loads(l) for l in log]
    assert [e["name"] for e in events[-2:]] == ["image-digest", "task-config"], events
    assert events[-2]["payload"] == seed.image_id
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", events[-1]["payload"])
    assert events[-1]["payload"] == entry["taskConfigDigest"]

    # DELETE: the tmpfs is gone, and no file of conkerd holds the secret.
    seed.delete(tid)
    assert not mounted(sdir) and not sdir.exists()
    assert grep_tree(seed.d.dir, MARKER.encode()) == []


def test_wrong_rtmr1(seed):
    other = seed.rtmr1[:-1] + ("0" if seed.rtmr1[-1] != "0" else "1")
    b = seed.seed_broker(seed.secret_file(), rtmr1=other)
    tid, t, _ = seed.run(b.pinned)
    assert_failed_closed(seed, tid, t, b.pinned, "rtmr1_mismatch")
    assert [(e["decision"], e["reason"]) for e in b.audit()] == [("refuse", "rtmr1_mismatch")]


def test_wrong_mrtd(seed):
    """Finding 1: a firmware other than the pinned one (with the expected RTMR1) gets nothing."""
    other = seed.mrtd[:-1] + ("0" if seed.mrtd[-1] != "0" else "1")
    b = seed.seed_broker(seed.secret_file(), mrtd=other, name="mrtd")
    tid, t, _ = seed.run(b.pinned)
    assert_failed_closed(seed, tid, t, b.pinned, "mrtd_mismatch")
    assert [(e["decision"], e["reason"]) for e in b.audit()] == [("refuse", "mrtd_mismatch")]


def test_one_refusal_releases_nothing(seed):
    """Two KMS endpoints, the first releases and the second refuses: the task fails closed and
    not even the first endpoint's secret is written (nothing is released unless every endpoint
    released)."""
    good = seed.seed_broker(seed.secret_file(), name="both-good")
    other = seed.mrtd[:-1] + ("0" if seed.mrtd[-1] != "0" else "1")
    bad = seed.seed_broker(seed.secret_file(), mrtd=other, name="both-bad")
    body = json.loads(seed.body(good.pinned, free_published_port()))
    body["KmsEndpoints"] = [good.pinned, bad.pinned]
    r = seed.api("POST", P, data=json.dumps(body))
    assert r.status_code == 200, r.text
    tid = r.json()["data"]["Id"]
    t = seed.d.wait_status(tid, {"Running", "Failed"}, timeout=180)
    seed.responses.append(json.dumps(t))
    assert t["Status"] == "Failed", t["Events"]
    assert [e["Action"] for e in t["Events"]] == ["Pulling", "Pulled", "Attesting", "Failed"], t["Events"]
    msg = t["Events"][-1]["Message"]
    assert f"KMS {bad.pinned} refused the attestation: mrtd_mismatch" in msg, msg
    assert [e["decision"] for e in good.audit()] == ["release"]
    assert not seed.secret_dir(tid).exists()
    seed.delete(tid)
    assert grep_tree(seed.d.dir, MARKER.encode()) == []


def test_seed_rtmr1_only_line_stops_the_broker(seed):
    """The seed's example line verbatim names the one flag to add."""
    res = subprocess.run([BROKER, "-m", "-i", "127.0.0.1", "-p", "0", "-v", "tdx_ecdsa", "-a", "nullattester",
                          "-s", str(seed.secret_file()), "-w", seed.rtmr1, "-d", seed.image_id[7:],
                          "--audit-log", str(seed.tmp / "rtmr1-only-audit.jsonl")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip() == ("conker-broker: -w pins RTMR1 only, which a host-supplied firmware can forge: "
                                  "add --mrtd <MRTD hex> (or --firmware any to accept any firmware)")


def test_task_config_outside_policy(seed):
    """The task's Env is measured (task-config event); a policy that allows other Env keys only
    refuses this task, which fails closed."""
    secret = seed.secret_file()
    policy = seed.tmp / "policy-env.json"
    policy.write_text(json.dumps({"secrets": [{"id": "app", "file": str(secret), "rules": [
        {"mrtd": seed.mrtd, "rtmr1": seed.rtmr1, "imageIds": [seed.image_id], "allowSimulated": True,
         "taskConfig": {"envKeys": ["LOG_LEVEL"]}}]}]}))
    b = seed.broker(["--policy", str(policy), "--trust-sim-root", str(seed.d.sim_root)], name="env")
    tid, t, _ = seed.run(b.pinned)
    assert_failed_closed(seed, tid, t, b.pinned, "task_config_env_not_allowed")
    entries = b.audit()
    assert [e["reason"] for e in entries] == ["task_config_env_not_allowed"]
    assert entries[0]["taskConfigDigest"].startswith("sha256:")


def test_wrong_image(seed):
    b = seed.seed_broker(seed.secret_file(), image="sha256:" + hashlib.sha256(b"another image").hexdigest())
    tid, t, _ = seed.run(b.pinned)
    assert_failed_closed(seed, tid, t, b.pinned, "image_mismatch")
    assert [e["reason"] for e in b.audit()] == ["image_mismatch"]


def test_rtmr1_prefix_stops_the_broker(seed):
    res = subprocess.run([BROKER, "-m", "-i", "127.0.0.1", "-p", "0", "-v", "tdx_ecdsa", "-a", "nullattester",
                          "-s", str(seed.secret_file()), "-w", seed.rtmr1[:48], "-d", seed.image_id[7:],
                          "--trust-sim-root", str(seed.d.sim_root),
                          "--audit-log", str(seed.tmp / "prefix-audit.jsonl")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert "exactly 96 hex digits" in res.stderr and "got 48" in res.stderr, res.stderr


def test_untrusted_sim_root(seed):
    b = seed.seed_broker(seed.secret_file(), trust=False)
    tid, t, _ = seed.run(b.pinned)
    assert_failed_closed(seed, tid, t, b.pinned, "quote_invalid")
    assert b.refusals() == {"quote_invalid": 1}


def test_tcb_status_outside_policy(seed):
    secret = seed.secret_file()
    policy = seed.tmp / "policy-tcb.json"
    policy.write_text(json.dumps({"secrets": [{"id": "app", "file": str(secret), "rules": [
        {"mrtd": seed.mrtd, "rtmr1": seed.rtmr1, "imageIds": [seed.image_id], "tcbStatuses": ["OutOfDate"],
         "allowSimulated": True}]}]}))
    b = seed.broker(["--policy", str(policy), "--trust-sim-root", str(seed.d.sim_root)], name="tcb")
    tid, t, _ = seed.run(b.pinned)
    assert_failed_closed(seed, tid, t, b.pinned, "tcb_status")
    assert [e["reason"] for e in b.audit()] == ["tcb_status"]


def test_hot_reload(seed):
    secret = seed.secret_file("reload.json", {"password": MARKER, "n": 1})
    b = seed.seed_broker(secret, name="reload")
    tid, t, port = seed.run(b.pinned)
    assert t["Status"] == "Running", t["Events"]
    assert json.loads(getsecret(port))["n"] == 1
    seed.delete(tid)

    # Rename-over, as an editor saves; the next container gets the new value.
    tmp = secret.parent / ".reload.json.new"
    tmp.write_text(json.dumps({"password": MARKER, "n": 2}))
    os.rename(tmp, secret)
    time.sleep(0.5)
    tid, t, port = seed.run(b.pinned)
    assert t["Status"] == "Running", t["Events"]
    assert getsecret(port) == secret.read_text()
    seed.delete(tid)

    # A broken file keeps the broker up with the last good secret.
    secret.write_text('{"password": "' + MARKER + '", ')
    time.sleep(0.5)
    assert b.proc.poll() is None
    tid, t, port = seed.run(b.pinned)
    assert t["Status"] == "Running", t["Events"]
    assert json.loads(getsecret(port))["n"] == 2
    seed.delete(tid)
    assert "keeping the last good value" in b.read_log()
    assert [e["decision"] for e in b.audit()] == ["release"] * 3


def test_pins(seed):
    b = seed.seed_broker(seed.secret_file(), name="pin")
    # The right pin: released, and the file is named without the pin.
    tid, t, port = seed.run(b.pinned)
    assert t["Status"] == "Running", t["Events"]
    assert (seed.secret_dir(tid) / f"secret-{b.endpoint}.json").exists()
    assert json.loads(getsecret(port))["password"] == MARKER
    seed.delete(tid)
    # A wrong pin: the client drops the connection before sending anything; nothing released.
    wrong = b.endpoint + "#sha256:" + "00" * 32
    tid, t, _ = seed.run(wrong)
    assert t["Status"] == "Failed", t["Events"]
    assert [e["Action"] for e in t["Events"]] == ["Pulling", "Pulled", "Attesting", "Failed"]
    assert f"KMS {wrong}" in t["Events"][-1]["Message"]
    assert "pinned fingerprint" in t["Events"][-1]["Message"]
    assert not seed.secret_dir(tid).exists()
    seed.delete(tid)
    assert [e["decision"] for e in b.audit()] == ["release"]


def test_unpinned_broker_refused(seed):
    """Finding 4: without a pin the broker is not authenticated (the host could answer in its
    place and feed the container its own secret), so the task fails closed before anything is
    measured or sent, and the Failed event names the config key that would allow it."""
    b = seed.seed_broker(seed.secret_file(), name="unpinned")
    before = seed.d.tdx_info()["rtmr3_log"]["events"]
    tid, t, _ = seed.run(b.endpoint)
    assert t["Status"] == "Failed", t["Events"]
    assert [e["Action"] for e in t["Events"]] == ["Pulling", "Pulled", "Attesting", "Failed"]
    msg = t["Events"][-1]["Message"]
    assert f"KMS {b.endpoint}: no certificate pin" in msg and "kms-allow-unpinned = true" in msg, msg
    assert seed.d.tdx_info()["rtmr3_log"]["events"] == before
    assert b.audit() == []
    seed.delete(tid)


def test_mutual_attestation(seed):
    """Finding 4, second half: conkerd configured with kms-broker-reference-values accepts an
    unpinned broker only when the broker's RA-TLS certificate (conker-broker -a sim, a broker in
    a simulated TD) carries a quote that matches them; an ordinary broker certificate fails the
    task closed before any evidence is sent."""
    bsim = seed.tmp / "broker-td"
    subprocess.run([CLIENT, "sim-init", str(bsim)], check=True, capture_output=True)
    (seed.tmp / "broker-td-state").mkdir()
    prof = json.loads((bsim / "profile.json").read_text())
    rv = seed.tmp / "broker-reference-values.json"
    rv.write_text(json.dumps({"mrtd": prof["mr_td"], "rtmr0": prof["rtmr0"], "rtmr1": prof["rtmr1"],
                              "rtmr2": prof["rtmr2"]}))
    d = Conkerd(extra_args=["--registry-mirror", f"docker.io={seed.reg.host}", "--registry-ca-file",
                            str(seed.reg.ca_file), "--kms-broker-reference-values", str(rv),
                            "--kms-broker-collateral", str(bsim / "collateral.json"),
                            "--kms-broker-trust-root", str(bsim / "root-ca.pem")])
    try:
        d.start()
        secret = seed.secret_file("mutual.json")
        measurements = d.tdx_info()["measurements"]
        common = ["-m", "-v", "tdx_ecdsa", "-s", str(secret), "-w", measurements["rtmr"][1], "-d",
                  seed.image_id[7:], "--mrtd", measurements["mr_td"], "--trust-sim-root", str(d.sim_root)]
        attested = seed.broker(common + ["-a", "sim", "--attester-sim-dir", str(bsim),
                                         "--attester-sim-state-dir", str(seed.tmp / "broker-td-state")],
                               name="attested")
        plain = seed.broker(common + ["-a", "nullattester"], name="plain")
        for b, ok in ((attested, True), (plain, False)):
            port = free_published_port()
            r = d.api("POST", P, data=seed.body(b.endpoint, port))
            assert r.status_code == 200, r.text
            tid = r.json()["data"]["Id"]
            t = d.wait_status(tid, {"Running", "Failed"}, timeout=180)
            if ok:
                assert t["Status"] == "Running", t["Events"]
                assert getsecret(port) == secret.read_text()
            else:
                assert t["Status"] == "Failed", t["Events"]
                msg = t["Events"][-1]["Message"]
                assert "the broker's attestation failed: no_evidence" in msg, msg
            assert d.api("DELETE", f"{P}/{tid}", timeout=120).status_code == 200
        assert [e["decision"] for e in attested.audit()] == ["release"]
        assert plain.audit() == []
    finally:
        d.close()


def test_seed_document(seed):
    """The seed README's own request (tests/data/seed/container-request.json) with its addresses
    swapped for local ones (the KMS endpoint, the Env entry naming it, the published port) and the
    local registry's credentials filled in. The task document that GET returns, on every route that
    returns it, has every key of the seed's example answer (tests/data/seed/task-document.json)
    with the seed's JSON type, validates against docs/openapi.yaml, and carries the values the
    seed's fields mean. The CLI reads the same names."""
    fixture = json.loads((SEED_DATA / "task-document.json").read_text())
    secret = seed.secret_file()
    b = seed.seed_broker(secret, name="seeddoc")
    body = json.loads((SEED_DATA / "container-request.json").read_text())
    port = free_published_port()
    body["ImageInfo"]["RegisterAuthInfo"] = {"Username": "user", "Password": "pass"}
    body["Ports"][0]["PublishedPort"] = port
    body["Env"] = [f"userId=secret-{b.endpoint}"]
    body["KmsEndpoints"] = [b.pinned]
    r = seed.api("POST", P, data=json.dumps(body))
    assert r.status_code == 200, r.text
    tid = r.json()["data"]["Id"]
    t = seed.d.wait_status(tid, {"Running", "Failed"}, timeout=180)
    assert t["Status"] == "Running", t["Events"]
    api = OpenApi()
    docs = []
    for path in (P, f"{P}/{tid}", "/sw/api/v1/containers"):
        r = seed.api("GET", path)
        api.validate("GET", path, r)
        data = r.json()["data"]
        docs += data if isinstance(data, list) else [data]
    for doc in docs:
        assert mismatches(fixture, doc) == [], mismatches(fixture, doc)

    doc = docs[1]
    conf = doc["ContainerConf"]
    assert conf["Name"] == body["Name"] and conf["Env"] == body["Env"] and conf["Ports"] == body["Ports"]
    assert conf["KmsEndpoints"] == body["KmsEndpoints"]
    assert conf["ImageInfo"] == {"ImageName": body["ImageInfo"]["ImageName"],
                                 "RegisterAuthInfo": {"Username": "user", "Password": "******"}}
    assert [(m["Type"], m["Source"], m["Target"], m["RW"], m["ReadOnly"]) for m in conf["Mounts"]] == \
        [("volume", "test-api", "/inner1", True, False), ("volume", "test-v", "/inner2", True, False)]
    assert doc["Status"] == "Running" and doc["IsCancel"] is False
    assert [e["Action"] for e in doc["Events"]] == PIPELINE
    for e in doc["Events"]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["Time"]), e
    ci = doc["ContainerInspect"]
    assert ci["Image"] == seed.image_id
    assert ci["State"]["Status"] == "running" and ci["State"]["Running"] is True and ci["State"]["Pid"] > 0
    assert ci["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert ci["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert ci["HostConfig"]["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert [(m["Source"], m["Target"]) for m in ci["HostConfig"]["Mounts"]] == \
        [("test-api", "/inner1"), ("test-v", "/inner2")]
    assert ci["Config"]["Image"] == body["ImageInfo"]["ImageName"]
    assert ci["Config"]["Volumes"] is None
    assert f"userId=secret-{b.endpoint}" in ci["Config"]["Env"]
    assert "8080/tcp" in ci["Config"]["ExposedPorts"]
    assert getsecret(port) == secret.read_text()

    # The CLI on the seed's names.
    ps = seed.d.conker("ps").stdout
    line = [x for x in ps.splitlines() if x.startswith(tid[:12])]
    assert line and "reckey/conker-example-app:latest" in line[0] and "Running" in line[0], ps
    assert f"{port}->8080/tcp" in line[0], ps
    events = seed.d.conker("events", tid).stdout.splitlines()
    assert [x.split()[1] for x in events] == PIPELINE, events
    inspected = json.loads(seed.d.conker("inspect", tid).stdout)
    assert inspected["ContainerConf"]["ImageInfo"]["RegisterAuthInfo"]["Password"] == "******"
    assert "pass" not in json.dumps(inspected["ContainerConf"]["ImageInfo"])
    seed.delete(tid)


def test_concurrent_tasks_share_the_td(seed):
    """Three tasks attesting at once: each measures its image and its configuration into the one
    RTMR3 and quotes with a log that replays (the broker replays it), and each gets the secret.
    The image is in the log once however many tasks run it; each configuration (here: another
    port) is one task-config event."""
    secret = seed.secret_file()
    b = seed.seed_broker(secret, name="concurrent")
    before = seed.d.tdx_info()["rtmr3_log"]["events"]
    tids = []
    for i in range(3):
        body = json.loads(seed.body(b.pinned, free_published_port()))
        body["Name"] = f"conker-example-app-{i}"
        r = seed.api("POST", P, data=json.dumps(body))
        assert r.status_code == 200, r.text
        tids.append((r.json()["data"]["Id"], body["Ports"][0]["PublishedPort"]))
    for tid, port in tids:
        t = seed.d.wait_status(tid, {"Running", "Failed"}, timeout=180)
        assert t["Status"] == "Running", t["Events"]
        assert getsecret(port) == secret.read_text()
    info = seed.d.tdx_info()
    assert info["rtmr3_log"]["replays"] is True
    events = [json.loads(l) for l in Path(info["rtmr3_log"]["path"]).read_text().splitlines()]
    assert [e["payload"] for e in events if e["name"] == "image-digest"].count(seed.image_id) == 1
    new = events[before:]
    assert sum(e["name"] == "task-config" for e in new) == 3, new
    assert len(new) in (3, 4), new  # plus the image-digest when no earlier test measured it
    assert [e["decision"] for e in b.audit()] == ["release"] * 3
    for tid, _ in tids:
        seed.delete(tid)


def test_no_secret_in_logs_or_responses(seed):
    """Runs last (file order): everything the module produced is searched."""
    secret = seed.secret_file()
    b = seed.seed_broker(secret, name="leak")
    tid, t, _ = seed.run(b.pinned)
    assert t["Status"] == "Running", t["Events"]
    seed.api("GET", P)
    seed.api("GET", "/sw/api/v1/containers")
    seed.api("GET", f"{P}/{tid}/logs?tail=100")
    seed.delete(tid)

    token = seed.d.token
    basic = "dXNlcjpwYXNz"  # base64("user:pass"), as an Authorization header would carry it
    texts = {"API responses": "\n".join(seed.responses), "conkerd log": seed.d.log()}
    for br in seed.brokers:
        texts[f"{br.log_path}"] = br.read_log()
        if os.path.exists(br.audit_path):
            texts[br.audit_path] = Path(br.audit_path).read_text()
    for name, text in texts.items():
        assert MARKER not in text, name
        assert token not in text, name
        assert basic not in text, name
        assert '"Password":"pass"' not in text.replace(" ", ""), name
        assert ":pass@" not in text, name
    # Nothing under conkerd's data or run dirs holds the secret once the tasks are gone.
    assert grep_tree(seed.d.dir, MARKER.encode()) == []


def test_conkerd_opens_its_tee_at_start(tmp_path):
    """auto without TDX refuses to start and names --tee sim; a missing simulated TD is a start
    error too (never a task that later fails)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from helpers.conkerd import CONKERD
    if os.path.exists("/sys/kernel/config/tsm/report") or os.path.exists("/sys/class/misc/tdx_guest"):
        pytest.skip("this host is a TDX guest: auto would pick tdx")
    base = [CONKERD, "--config", str(tmp_path / "none.conf"), "--listen", "127.0.0.1:1",
            "--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
            "--token-file", str(tmp_path / "token")]
    (tmp_path / "none.conf").write_text("")
    p = subprocess.run(base + ["--tee", "auto"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "--tee sim" in p.stderr, p.stderr
    p = subprocess.run(base + ["--tee", "sim", "--sim-dir", str(tmp_path / "missing"), "--sim-state-dir",
                               str(tmp_path / "state")], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "cannot open the TEE (--tee sim)" in p.stderr, p.stderr
    assert not (tmp_path / "data").exists()


def test_conkerd_refuses_incomplete_broker_attestation(tmp_path):
    """kms-broker-reference-values makes every broker attest; without the collateral to verify
    their quotes, or with a file that does not parse, conkerd stops at start (before it creates
    its data dir) instead of starting with brokers it cannot check."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from helpers.conkerd import CONKER, CONKERD
    sim = tmp_path / "sim"
    subprocess.run([CONKER, "tdx-sim", "init", str(sim)], check=True, capture_output=True)
    (tmp_path / "none.conf").write_text("")
    rv = tmp_path / "rv.json"
    rv.write_text(json.dumps({"mrtd": "00" * 48}))
    junk = tmp_path / "junk"
    junk.write_text("{nope")
    base = [CONKERD, "--config", str(tmp_path / "none.conf"), "--listen", "127.0.0.1:1",
            "--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
            "--token-file", str(tmp_path / "token"), "--tee", "sim", "--sim-dir", str(sim),
            "--sim-state-dir", str(tmp_path / "state"),
            # A fence: a conkerd that got past these checks stops when it opens its runtime, before
            # it makes a bridge or touches anything outside tmp_path.
            "--netns-dir", str(tmp_path / "net ns"), "--bridge", "ckrefuse0", "--nft-table", "ckrefuse0"]
    cases = [
        (["--kms-broker-reference-values", str(rv)], "needs kms-broker-collateral"),
        (["--kms-broker-reference-values", str(junk), "--kms-broker-collateral", str(sim / "collateral.json")],
         "kms-broker-reference-values"),
        (["--kms-broker-reference-values", str(rv), "--kms-broker-collateral", str(junk)],
         "kms-broker-collateral"),
        (["--kms-broker-reference-values", str(rv), "--kms-broker-collateral", str(sim / "collateral.json"),
          "--kms-broker-trust-root", str(junk)], "kms-broker-trust-root"),
    ]
    for extra, want in cases:
        p = subprocess.run(base + extra, capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and want in p.stderr, (extra, p.stderr)
        assert not (tmp_path / "data").exists(), extra
