"""conker-broker end to end with a simulated TD: releases, every refusal the policy knows,
pinning, hot reload of the secret, the audit log, and that the secret never reaches the log."""
import json
import os
import subprocess
import time

import pytest

from helpers.broker import BROKER, CLIENT, IMAGE_ID, Broker, SimTD

pytestmark = pytest.mark.skipif(not (os.path.exists(BROKER) and os.path.exists(CLIENT)),
                                reason="conker-broker and its test client are not built (attest RA-TLS missing)")

MARKER = "s3cr3t-marker-7f1c"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return SimTD(tmp_path_factory.mktemp("broker-sim"))


@pytest.fixture
def secret(tmp_path):
    d = tmp_path / "secret"
    d.mkdir()
    p = d / "secret.json"
    p.write_text(json.dumps({"password": MARKER, "n": 1}))
    return p


@pytest.fixture
def brokers():
    started = []
    yield started
    for b in started:
        b.stop()


def start(brokers, tmp_path, args, name="broker"):
    b = Broker(tmp_path, args, name)
    brokers.append(b)
    return b


def seed_args(sim, secret, rtmr1=None, image=IMAGE_ID, trust=True):
    args = ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(secret), "-w", rtmr1 or sim.rtmr1,
            "-d", image]
    if trust:
        args += ["--trust-sim-root", sim.root]
    else:
        args += ["--collateral", sim.collateral]
    return args


def assert_refused(res, reason):
    assert res.returncode != 0, res.stdout
    assert f"refused: {reason}" in res.stderr, res.stderr
    assert MARKER not in res.stdout


def test_release_and_pin(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret, image=IMAGE_ID[7:].upper()))
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"password": MARKER, "n": 1}
    # Unpinned works too (the seed's behaviour), with a warning.
    res = sim.fetch(b.endpoint)
    assert res.returncode == 0, res.stderr
    assert "not authenticated" in res.stderr
    # A wrong pin stops the client before it sends anything.
    wrong = b.endpoint + "#sha256:" + "00" * 32
    res = sim.fetch(wrong)
    assert res.returncode != 0 and "pinned fingerprint" in res.stderr
    entries = b.audit()
    assert [e["decision"] for e in entries] == ["release", "release"]
    assert entries[0]["rtmr1"] == sim.rtmr1.lower()
    assert entries[0]["appId"] == IMAGE_ID and entries[0]["simulated"] is True
    assert entries[0]["secretId"] == "default"
    assert MARKER not in b.read_log()
    assert not any(MARKER in json.dumps(e) for e in entries)
    assert b.stop() == 0


def test_wrong_rtmr1(sim, secret, brokers, tmp_path):
    other = sim.rtmr1[:-1] + ("0" if sim.rtmr1[-1] != "0" else "1")
    b = start(brokers, tmp_path, seed_args(sim, secret, rtmr1=other))
    assert_refused(sim.fetch(b.pinned), "rtmr1_mismatch")
    assert [(e["decision"], e["reason"]) for e in b.audit()] == [("refuse", "rtmr1_mismatch")]


def test_wrong_image(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret))
    assert_refused(sim.fetch(b.pinned, "sha256:" + "cd" * 32), "image_mismatch")
    assert_refused(sim.fetch(b.pinned, "sha256:" + "ab" * 31), "image_mismatch")
    assert [e["reason"] for e in b.audit()] == ["image_mismatch", "image_mismatch"]


def test_untrusted_sim_root(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret, trust=False))
    assert_refused(sim.fetch(b.pinned), "quote_invalid")
    assert [e["reason"] for e in b.audit()] == ["quote_invalid"]


def test_mismatched_key(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret))
    assert_refused(sim.fetch(b.pinned, IMAGE_ID, "--mismatched-key"), "binding_invalid")
    assert [e["reason"] for e in b.audit()] == ["binding_invalid"]


def test_tcb_status_not_accepted(sim, secret, brokers, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID], "tcbStatuses": ["OutOfDate"], "allowSimulated": True}]}]}))
    b = start(brokers, tmp_path, ["--policy", str(policy), "--trust-sim-root", sim.root])
    assert_refused(sim.fetch(b.pinned), "tcb_status")
    # The same policy accepting UpToDate releases, under the policy's secret id.
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID], "allowSimulated": True}]}]}))
    b2 = start(brokers, tmp_path, ["--policy", str(policy), "--trust-sim-root", sim.root], name="b2")
    assert sim.fetch(b2.pinned).returncode == 0
    assert b2.audit()[0]["secretId"] == "db"


def test_simulated_td_needs_trust_in_policy(sim, secret, brokers, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID]}]}]}))
    b = start(brokers, tmp_path, ["--policy", str(policy), "--trust-sim-root", sim.root])
    assert_refused(sim.fetch(b.pinned), "simulated_td")


def test_hot_reload(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret))
    assert json.loads(sim.fetch(b.pinned).stdout)["n"] == 1
    # Rename-over, as an editor does.
    tmp = secret.parent / ".secret.json.new"
    tmp.write_text(json.dumps({"password": MARKER, "n": 2}))
    os.rename(tmp, secret)
    for _ in range(50):
        res = sim.fetch(b.pinned)
        if res.returncode == 0 and json.loads(res.stdout)["n"] == 2:
            break
        time.sleep(0.1)
    assert json.loads(res.stdout)["n"] == 2
    # A broken file keeps the last good secret, and the broker keeps serving.
    secret.write_text('{"password": "' + MARKER + '-broken", ')
    time.sleep(0.5)
    res = sim.fetch(b.pinned)
    assert res.returncode == 0 and json.loads(res.stdout)["n"] == 2
    log = b.read_log()
    assert "keeping the last good value" in log
    assert MARKER not in log
    assert len(b.audit()) == 3
    assert b.stop() == 0


def test_startup_errors(sim, secret, tmp_path):
    def run(args):
        return subprocess.run([BROKER, "-i", "127.0.0.1", "-p", "0", "--audit-log", str(tmp_path / "a.jsonl")]
                              + args, capture_output=True, text=True, timeout=30)

    res = run(seed_args(sim, secret, rtmr1=sim.rtmr1[:48]))
    assert res.returncode != 0 and "exactly 96 hex digits" in res.stderr and "got 48" in res.stderr
    res = run(seed_args(sim, secret, rtmr1=sim.rtmr1[:-2] + "zz"))
    assert res.returncode != 0 and "not a hex digit" in res.stderr
    res = run(seed_args(sim, secret, image="sha256:1234"))
    assert res.returncode != 0 and "-d" in res.stderr
    res = run(["-m", "-v", "other", "-a", "nullattester"])
    assert res.returncode == 2 and "tdx_ecdsa" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    res = run(seed_args(sim, bad))
    assert res.returncode != 0 and "not valid JSON" in res.stderr


def test_seed_command_line_verbatim(sim, secret, brokers, tmp_path):
    """The seed's flags exactly (listening on 0.0.0.0), reached over loopback."""
    b = start(brokers, tmp_path, ["-m", "-i", "0.0.0.0", "-p", "{port}", "-v", "tdx_ecdsa", "-a", "nullattester",
                                  "-s", str(secret), "-w", sim.rtmr1, "-d", IMAGE_ID[7:],
                                  "--trust-sim-root", sim.root])
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr
    assert b.stop() == 0
