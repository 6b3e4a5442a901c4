"""conker-broker end to end with a simulated TD: releases, every refusal the policy knows
(firmware, image and task-config from the RTMR3 log), pinning, hot reload and revocation of the
secret, the audit log, and that the secret never reaches the log."""
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from helpers.broker import BROKER, CLIENT, IMAGE_ID, Broker, SimPccs, SimTD, self_signed

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


def seed_args(sim, secret, rtmr1=None, image=IMAGE_ID, trust=True, mrtd=None):
    """The seed's line plus the one flag it needs, --mrtd (mrtd=False: the seed's line alone)."""
    args = ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(secret), "-w", rtmr1 or sim.rtmr1,
            "-d", image]
    if mrtd is not False:
        args += ["--mrtd", mrtd or sim.mrtd]
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
    # Unpinned is refused before connecting unless explicitly allowed (then with a warning).
    res = sim.fetch(b.endpoint)
    assert res.returncode != 0 and "kms-allow-unpinned = true" in res.stderr, res.stderr
    res = sim.fetch(b.endpoint, IMAGE_ID, "--allow-unpinned")
    assert res.returncode == 0, res.stderr
    assert "not authenticated" in res.stderr
    # A wrong pin stops the client before it sends anything.
    wrong = b.endpoint + "#sha256:" + "00" * 32
    res = sim.fetch(wrong)
    assert res.returncode != 0 and "pinned fingerprint" in res.stderr
    entries = b.audit()
    assert [e["decision"] for e in entries] == ["release", "release"]
    assert entries[0]["rtmr1"] == sim.rtmr1.lower()
    assert entries[0]["pinned"] == ["mrtd", "rtmr1", "image"]
    assert entries[0]["taskConfigDigest"].startswith("sha256:")
    assert entries[0]["appId"] == IMAGE_ID and entries[0]["simulated"] is True
    assert entries[0]["secretId"] == "default"
    assert MARKER not in b.read_log()
    assert not any(MARKER in json.dumps(e) for e in entries)
    assert b.stop() == 0


def test_no_release_without_audit_record(sim, secret, brokers, tmp_path):
    """A release whose audit record cannot be written is not made: /dev/full fails every write."""
    b = Broker(tmp_path, seed_args(sim, secret), audit_path="/dev/full")
    brokers.append(b)
    res = sim.fetch(b.pinned)
    assert res.returncode != 0
    assert MARKER not in res.stdout
    assert "audit_failed" in res.stderr, res.stderr
    assert "release of secret" in b.read_log()


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
    # Nothing verified: counted in the summary line written at stop, not a line of its own.
    assert b.refusals() == {"quote_invalid": 1}
    assert [e["decision"] for e in b.audit()] == ["refuse-summary"]


def test_mismatched_key(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret))
    assert_refused(sim.fetch(b.pinned, IMAGE_ID, "--mismatched-key"), "binding_invalid")
    assert [e["reason"] for e in b.audit()] == ["binding_invalid"]


def test_tcb_status_not_accepted(sim, secret, brokers, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"mrtd": sim.mrtd, "rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID], "tcbStatuses": ["OutOfDate"],
         "allowSimulated": True}]}]}))
    b = start(brokers, tmp_path, ["--policy", str(policy), "--trust-sim-root", sim.root])
    assert_refused(sim.fetch(b.pinned), "tcb_status")
    # The same policy accepting UpToDate releases, under the policy's secret id.
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"mrtd": sim.mrtd, "rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID], "allowSimulated": True}]}]}))
    b2 = start(brokers, tmp_path, ["--policy", str(policy), "--trust-sim-root", sim.root], name="b2")
    assert sim.fetch(b2.pinned).returncode == 0
    assert b2.audit()[0]["secretId"] == "db"


def test_simulated_td_needs_trust_in_policy(sim, secret, brokers, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"mrtd": sim.mrtd, "rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID]}]}]}))
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
    # Deleting the file revokes the secret at once (finding 8), without a restart.
    os.unlink(secret)
    for _ in range(50):
        res = sim.fetch(b.pinned)
        if res.returncode != 0:
            break
        time.sleep(0.1)
    assert res.returncode != 0 and "secret_revoked" in res.stderr, res.stderr
    assert MARKER not in res.stdout
    assert b.audit()[-1]["reason"] == "secret_revoked"
    assert "revoked" in b.read_log()
    # A valid file back releases again.
    secret.write_text(json.dumps({"password": MARKER, "n": 3}))
    for _ in range(50):
        res = sim.fetch(b.pinned)
        if res.returncode == 0:
            break
        time.sleep(0.1)
    assert json.loads(res.stdout)["n"] == 3
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
    # The seed's RTMR1-only line: one line naming the fix (finding 1).
    res = run(seed_args(sim, secret, mrtd=False))
    assert res.returncode == 2
    assert res.stderr.strip() == ("conker-broker: -w pins RTMR1 only, which a host-supplied firmware can forge: "
                                  "add --mrtd <MRTD hex> (or --firmware any to accept any firmware)")
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID]}]}]}))
    res = run(["--policy", str(policy)])
    assert res.returncode == 2 and "pins no MRTD" in res.stderr and "\"firmware\": \"any\"" in res.stderr
    res = run(seed_args(sim, secret, mrtd=False) + ["--firmware", "ovmf"])
    assert res.returncode == 2 and "--mrtd" in res.stderr
    res = run(["-m", "-v", "other", "-a", "nullattester"])
    assert res.returncode == 2 and "tdx_ecdsa" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    res = run(seed_args(sim, bad))
    assert res.returncode != 0 and "not valid JSON" in res.stderr


def test_flag_refusals(sim, secret, tmp_path):
    """Command lines the broker refuses before it listens: each with exit 2 and one line."""
    def run(args):
        return subprocess.run([BROKER, "-i", "127.0.0.1", "-p", "0", "--audit-log", str(tmp_path / "a.jsonl")]
                              + args, capture_output=True, text=True, timeout=30)

    ok = seed_args(sim, secret)
    res = run(ok + ["--cert", str(tmp_path / "c.pem")])
    assert res.returncode == 2 and "--cert and --key go together" in res.stderr, res.stderr
    res = run(ok + ["--key", str(tmp_path / "k.pem")])
    assert res.returncode == 2 and "--cert and --key go together" in res.stderr, res.stderr
    # --policy is the whole policy: a flag beside it that would pin (or open) something is refused,
    # not silently ignored.
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"mrtd": sim.mrtd, "rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID]}]}]}))
    for extra in (["-w", sim.rtmr1], ["--mrtd", sim.mrtd], ["--firmware", "any"], ["-d", IMAGE_ID],
                  ["-s", str(secret)], ["--image-allowlist", IMAGE_ID], ["--rtmr2", sim.rtmr1],
                  ["--reference-values", str(policy)]):
        res = run(["--policy", str(policy), "--trust-sim-root", sim.root] + extra)
        assert res.returncode == 2 and "--policy replaces" in res.stderr, (extra, res.stderr)
    # Numbers outside their range, below and above.
    for flag, bad in (("--workers", "0"), ("--workers", "1025"), ("--max-clients", "0"),
                      ("--handshake-timeout", "99"), ("--request-timeout", "600001"),
                      ("--max-secret-bytes", "1"), ("--audit-summary-interval", "0"), ("-p", "65536"),
                      ("--pcs-max-fetches", "65"), ("--cache-ttl", "-1")):
        res = run(ok + [flag, bad])
        assert res.returncode == 2 and "expected a number between" in res.stderr, (flag, bad, res.stderr)
    res = run(ok + ["stray"])
    assert res.returncode == 2 and 'unexpected argument "stray"' in res.stderr, res.stderr
    res = run(ok + ["--audit-fsync", "sometimes"])
    assert res.returncode == 2 and "expected always or never" in res.stderr, res.stderr
    res = run(ok + ["-a", "sim"])
    assert res.returncode != 0 and "--attester-sim-dir" in res.stderr, res.stderr


def test_seed_command_line_verbatim(sim, secret, brokers, tmp_path):
    """The seed's flags exactly (listening on 0.0.0.0) plus --mrtd, reached over loopback."""
    b = start(brokers, tmp_path, ["-m", "-i", "0.0.0.0", "-p", "{port}", "-v", "tdx_ecdsa", "-a", "nullattester",
                                  "-s", str(secret), "-w", sim.rtmr1, "-d", IMAGE_ID[7:], "--mrtd", sim.mrtd,
                                  "--trust-sim-root", sim.root])
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr
    assert b.stop() == 0


def test_seed_form_without_image(sim, secret, brokers, tmp_path):
    """The seed's form without -d starts with a warning and releases to the image in the log."""
    b = start(brokers, tmp_path, ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(secret), "-w", sim.rtmr1,
                                  "--mrtd", sim.mrtd, "--trust-sim-root", sim.root])
    assert "no -d" in b.read_log()
    other = "sha256:" + "ce" * 32
    res = sim.fetch(b.pinned, other)
    assert res.returncode == 0, res.stderr
    assert b.audit()[-1]["pinned"] == ["mrtd", "rtmr1"] and b.audit()[-1]["appId"] == other
    # Claiming an image the TD did not measure is refused even here (finding 2).
    assert_refused(sim.fetch(b.pinned, "sha256:" + "cf" * 32, "--image-event", IMAGE_ID), "image_not_in_log")


def test_wrong_mrtd(sim, secret, brokers, tmp_path):
    """Another firmware with the expected RTMR1 (finding 1)."""
    other = sim.mrtd[:-1] + ("0" if sim.mrtd[-1] != "0" else "1")
    b = start(brokers, tmp_path, seed_args(sim, secret, mrtd=other))
    assert_refused(sim.fetch(b.pinned), "mrtd_mismatch")
    assert [(e["decision"], e["reason"], e["pinned"]) for e in b.audit()] == [
        ("refuse", "mrtd_mismatch", ["mrtd", "rtmr1", "image"])]


def test_reference_values_file(sim, secret, brokers, tmp_path):
    rv = tmp_path / "td.refvalues.json"
    rv.write_text(json.dumps({"mrtd": sim.mrtd, "rtmr1": sim.rtmr1, "source": "test"}))
    b = start(brokers, tmp_path, ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(secret), "-d", IMAGE_ID,
                                  "--reference-values", str(rv), "--trust-sim-root", sim.root])
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr
    assert b.audit()[0]["pinned"] == ["mrtd", "rtmr1", "image"]


def test_rtmr3_log_required(sim, secret, brokers, tmp_path):
    """The image is taken from the log: no log, no secret (finding 2)."""
    b = start(brokers, tmp_path, seed_args(sim, secret))
    assert_refused(sim.fetch(b.pinned, IMAGE_ID, "--no-log"), "rtmr3_log_missing")
    assert_refused(sim.fetch(b.pinned, IMAGE_ID, "--no-task-config"), "task_config_missing")
    assert [e["reason"] for e in b.audit()] == ["rtmr3_log_missing", "task_config_missing"]


def test_task_config_outside_policy(sim, secret, brokers, tmp_path):
    """The host changes the task's Env: either the claim no longer matches the measured event, or
    the measured config is outside the policy's rules."""
    doc = json.dumps({"env": ["MODE=prod"], "image": "example.test/app:latest", "imageId": IMAGE_ID,
                      "kmsEndpoints": [], "mounts": [], "ports": [], "version": 1},
                     separators=(",", ":"), sort_keys=True)
    evil = doc.replace("MODE=prod", "LD_PRELOAD=/x.so")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"secrets": [{"id": "db", "file": str(secret), "rules": [
        {"mrtd": sim.mrtd, "rtmr1": sim.rtmr1, "imageIds": [IMAGE_ID], "allowSimulated": True,
         "taskConfig": {"envKeys": ["MODE"]}}]}]}))
    b = start(brokers, tmp_path, ["--policy", str(policy), "--trust-sim-root", sim.root])
    good_file, evil_file = tmp_path / "tc-good.json", tmp_path / "tc-evil.json"
    good_file.write_text(doc)
    evil_file.write_text(evil)
    res = sim.fetch(b.pinned, IMAGE_ID, "--task-config", str(good_file))
    assert res.returncode == 0, res.stderr
    # A claim that was never measured.
    assert_refused(sim.fetch(b.pinned, IMAGE_ID, "--task-config", str(evil_file), "--no-measure"),
                   "task_config_mismatch")
    # Measured, but outside the policy.
    assert_refused(sim.fetch(b.pinned, IMAGE_ID, "--task-config", str(evil_file)), "task_config_env_not_allowed")
    entries = b.audit()
    assert [e["decision"] for e in entries] == ["release", "refuse", "refuse"]
    assert entries[0]["taskConfigDigest"] == "sha256:" + hashlib.sha256(doc.encode()).hexdigest()
    assert entries[0]["pinned"] == ["mrtd", "rtmr1", "image", "taskConfig"]


def test_log_image_allowlist(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret) + ["--image-allowlist", IMAGE_ID])
    sim.fetch(b.pinned, "sha256:" + "d0" * 32)  # the TD runs another image too
    assert_refused(sim.fetch(b.pinned), "log_image_not_allowed")


def plain_client_context(tmp_path):
    """A TLS 1.3 client context with an ordinary self-signed certificate (no RA-TLS evidence)."""
    key, crt = tmp_path / "c.key", tmp_path / "c.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=plain"],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(crt), str(key))
    return ctx


def tls_request(ctx, port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            t.sendall(raw)
            data = b""
            while True:
                try:
                    chunk = t.recv(65536)
                except (ssl.SSLEOFError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_requests_and_certificates_without_evidence(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret))
    ctx = plain_client_context(tmp_path)
    status, body = tls_request(ctx, b.port, b"POST /v1/secret HTTP/1.1\r\n\r\n")
    assert status == 400
    status, body = tls_request(ctx, b.port, b"POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\n"
                                            b"Content-Length: 99999999\r\n\r\n")
    assert status == 413
    status, body = tls_request(ctx, b.port, b"POST /v1/secret HTTP/1.1\r\nContent-Type: application/cbor\r\n"
                                            b"Content-Length: 4\r\n\r\nnope")
    assert status == 403 and json.loads(body)["message"] == "evidence_malformed"
    status, body = tls_request(ctx, b.port, b"GET /v1/other HTTP/1.1\r\n\r\n")
    assert status == 400
    status, body = tls_request(ctx, b.port, b"GET /v1/secret HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n")
    assert status == 431
    status, body = tls_request(ctx, b.port, b"GET /v1/secret HTTP/1.1\r\nHost: b\r\n\r\n")
    assert status == 403 and json.loads(body) == {"code": 403, "message": "evidence_not_bound"}
    # Without a client certificate the handshake itself fails.
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.verify_mode = ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionResetError, IndexError, ValueError)):
        tls_request(bare, b.port, b"GET /v1/secret HTTP/1.1\r\n\r\n")
    # TLS 1.2 is refused.
    old = plain_client_context(tmp_path)
    old.minimum_version = ssl.TLSVersion.TLSv1_2
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        tls_request(old, b.port, b"GET /v1/secret HTTP/1.1\r\n\r\n")
    # Nothing verified: counted, and written as one summary line at stop.
    assert b.refusals() == {"evidence_malformed": 1, "evidence_not_bound": 1}


def pem_client_context(directory):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(directory / "cert.pem"), str(directory / "key.pem"))
    return ctx


def post_evidence(ctx, port, body):
    return tls_request(ctx, port, b"POST /v1/secret HTTP/1.1\r\nHost: b\r\nContent-Type: application/cbor\r\n"
                                  b"Content-Length: %d\r\n\r\n" % len(body) + body)


def test_replayed_evidence_refused(sim, secret, brokers, tmp_path):
    """Finding 3 (no freshness): a real exchange with the simulated TD is recorded (the client's
    key and certificate and the evidence body: everything a host that watched the TD could keep)
    and presented again on a new connection. The new session has another exporter value, so the
    evidence is refused, although its quote verifies, its key is the session's and it was cached."""
    b = start(brokers, tmp_path, seed_args(sim, secret))
    rec = tmp_path / "recorded"
    rec.mkdir()
    res = sim.fetch(b.pinned, IMAGE_ID, "--record", str(rec))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["password"] == MARKER
    body = (rec / "evidence.cbor").read_bytes()
    assert body[:3] == b"\xd9\xea\x60"  # CBOR tag 60000
    ctx = pem_client_context(rec)
    for _ in range(2):
        status, answer = post_evidence(ctx, b.port, body)
        assert status == 403 and json.loads(answer)["message"] == "exporter_mismatch", answer
        assert MARKER.encode() not in answer
    assert [e["reason"] if e["decision"] == "refuse" else "release" for e in b.audit()] == \
        ["release", "exporter_mismatch", "exporter_mismatch"]
    assert b.stop() == 0


def test_old_form_refused(sim, secret, brokers, tmp_path):
    """The old protocol (GET with the evidence in the client certificate, bound to its key only)
    is refused as not bound to the session, without verifying its quote."""
    b = start(brokers, tmp_path, seed_args(sim, secret))
    old = tmp_path / "old"
    old.mkdir()
    sim.run("legacy-identity", "--app-id", IMAGE_ID, str(old))
    status, answer = tls_request(pem_client_context(old), b.port, b"GET /v1/secret HTTP/1.1\r\nHost: b\r\n\r\n")
    assert status == 403 and json.loads(answer)["message"] == "evidence_not_bound"
    # Not verified, so only counted in the summary (which carries no measurement).
    assert b.refusals() == {"evidence_not_bound": 1}
    assert all("rtmr1" not in e for e in b.audit())
    assert b.proc.returncode == 0


def test_limits_and_timeouts(sim, secret, brokers, tmp_path):
    b = start(brokers, tmp_path, seed_args(sim, secret) + ["--handshake-timeout", "500", "--max-clients", "1",
                                                           "--workers", "1"])
    # A client that connects and says nothing holds the only slot until the handshake deadline.
    idle = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    time.sleep(0.1)
    # Over --max-clients: closed at once.
    extra = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    assert extra.recv(16) == b""
    extra.close()
    # The idle one is dropped at the deadline.
    t0 = time.time()
    assert idle.recv(16) == b""
    assert time.time() - t0 < 3
    idle.close()
    # And the broker still serves.
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr


def test_collateral_from_pccs(sim, secret, brokers, tmp_path):
    """--collateral URL: fetched for the quote's FMSPC on first use, then reused."""
    pccs = SimPccs(sim.collateral, str(tmp_path))
    try:
        args = ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(secret), "-w", sim.rtmr1, "-d", IMAGE_ID,
                "--mrtd", sim.mrtd, "--trust-sim-root", sim.root, "--collateral", pccs.url, "--pcs-ca", pccs.cert,
                "--pcs-cache-dir", str(tmp_path / "pcs-cache"), "--cache-ttl", "0"]
        b = start(brokers, tmp_path, args)
        for _ in range(2):
            res = sim.fetch(b.pinned)
            assert res.returncode == 0, res.stderr + b.read_log()
        tcb = [p for p in pccs.requests if p.startswith("/tdx/certification/v4/tcb?")]
        assert len(tcb) == 1 and "fmspc=" in tcb[0]
        # A PCCS whose certificate the broker does not trust gives no collateral, hence no secret.
        b2 = start(brokers, tmp_path, args[:-6] + ["--collateral", pccs.url], name="b2")
        assert_refused(sim.fetch(b2.pinned), "collateral_unavailable")
    finally:
        pccs.stop()


def test_broker_identity_from_files(sim, secret, brokers, tmp_path):
    """--cert/--key: the fingerprint conkerd pins is SHA-256 of that certificate's DER."""
    crt, key, der = self_signed(tmp_path, "broker")
    b = start(brokers, tmp_path, seed_args(sim, secret) + ["--cert", str(crt), "--key", str(key)])
    assert b.fingerprint == "sha256:" + hashlib.sha256(der).hexdigest()
    assert b.fingerprint in b.read_log()
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr
    # A key that does not match the certificate is a startup error.
    other = tmp_path / "o.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    str(other)], check=True, capture_output=True)
    res = subprocess.run([BROKER, "-i", "127.0.0.1", "-p", "0", "--audit-log", str(tmp_path / "x.jsonl"),
                          *seed_args(sim, secret), "--cert", str(crt), "--key", str(other)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0 and "does not match" in res.stderr


def test_sigterm_finishes_in_flight(sim, secret, brokers, tmp_path):
    """SIGTERM: stop accepting, answer the connection already accepted, exit 0."""
    b = start(brokers, tmp_path, seed_args(sim, secret))
    ctx = plain_client_context(tmp_path)
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            t.do_handshake()
            b.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", b.port), timeout=2).close()
            t.sendall(b"GET /v1/secret HTTP/1.1\r\n\r\n")
            data = b""
            while True:
                try:
                    chunk = t.recv(65536)
                except (ssl.SSLEOFError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 403 ")
    assert b.proc.wait(timeout=10) == 0


def test_large_secret(sim, tmp_path, brokers):
    """A secret of several hundred KiB crosses many TLS records and client buffer growths intact."""
    big = tmp_path / "big.json"
    value = {"blob": "x" * 300000, "password": MARKER}
    big.write_text(json.dumps(value))
    b = start(brokers, tmp_path, seed_args(sim, big))
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == value


def broker_td(tmp_path):
    """A simulated TD for a broker started with attester_args(): its dir, its profile and
    reference values that match it (MRTD, RTMR1)."""
    bsim = tmp_path / "broker-td"
    subprocess.run([CLIENT, "sim-init", str(bsim)], check=True, capture_output=True)
    (tmp_path / "broker-td-state").mkdir()
    prof = json.loads((bsim / "profile.json").read_text())
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"mrtd": prof["mr_td"], "rtmr1": prof["rtmr1"], "source": "test"}))
    return bsim, prof, good


def attester_args(tmp_path, bsim):
    return ["-a", "sim", "--attester-sim-dir", str(bsim), "--attester-sim-state-dir", str(tmp_path / "broker-td-state")]


def test_mutual_attestation(sim, secret, brokers, tmp_path):
    """Finding 4, second half: a broker in a TD (-a sim here) presents an RA-TLS server
    certificate, and the client checks its quote against reference values before it sends
    anything; that authenticates the broker without a pin. A broker that does not match, or
    presents an ordinary certificate, gets nothing."""
    bsim, prof, good = broker_td(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mrtd": "00" * 48}))
    attested = start(brokers, tmp_path, seed_args(sim, secret) + attester_args(tmp_path, bsim), name="attested")
    peer = ["--broker-collateral", str(bsim / "collateral.json"), "--broker-trust-root", str(bsim / "root-ca.pem")]

    res = sim.fetch(attested.endpoint, IMAGE_ID, "--broker-reference-values", str(good), *peer)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["password"] == MARKER
    assert "not authenticated" not in res.stderr

    res = sim.fetch(attested.endpoint, IMAGE_ID, "--broker-reference-values", str(bad), *peer)
    assert res.returncode != 0 and "the broker's attestation failed: mrtd_mismatch" in res.stderr, res.stderr
    # Without the simulated root the broker's quote does not verify.
    res = sim.fetch(attested.endpoint, IMAGE_ID, "--broker-reference-values", str(good),
                    "--broker-collateral", str(bsim / "collateral.json"))
    assert res.returncode != 0 and "the broker's attestation failed: quote_invalid" in res.stderr, res.stderr

    plain = start(brokers, tmp_path, seed_args(sim, secret), name="plain")
    res = sim.fetch(plain.endpoint, IMAGE_ID, "--broker-reference-values", str(good), *peer)
    assert res.returncode != 0 and "the broker's attestation failed: no_evidence" in res.stderr, res.stderr

    # Only the attested, matching exchange reached a broker's decision.
    assert [e["decision"] for e in attested.audit()] == ["release"]
    assert plain.audit() == []
    assert attested.stop() == 0


def test_long_rtmr3_log_attests(secret, brokers, tmp_path_factory, tmp_path):
    """Finding 6 (max_cert_list part): the RTMR3 log travels with the evidence. Carried in the
    client certificate it made the certificate list outgrow OpenSSL's default limit (100 KiB)
    after a few hundred tasks, and every handshake failed. In the request body it is bounded by
    the evidence maximum the broker announces, so a TD with a long log (here about 160 KiB)
    still attests, and the broker replays that log."""
    td = SimTD(tmp_path_factory.mktemp("long-log"))
    td.run("measure", "--count", "40")
    log = os.path.join(td.state, "rtmr3.log")
    assert os.path.getsize(log) > 150 * 1024
    b = start(brokers, tmp_path, seed_args(td, secret))
    res = td.fetch(b.pinned, IMAGE_ID, "--rtmr3-log")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["password"] == MARKER
    assert [e["decision"] for e in b.audit()] == ["release"]


@pytest.mark.parametrize("field,value,reason", [
    # TDATTRIBUTES byte 0 bit 0: DEBUG (the host can read and write the broker's TD).
    ("td_attributes", lambda v: "01" + v[2:], "debug_td"),
    # TEE_TCB_SVN[2] one below what sim-init wrote UpToDate for: the OutOfDate level.
    ("tee_tcb_svn", lambda v: v[:4] + "%02x" % (int(v[4:6], 16) - 1) + v[6:], "tcb_status"),
], ids=["debug", "out-of-date"])
def test_mutual_attestation_refuses_debug_or_outdated_broker(sim, secret, brokers, tmp_path, field, value, reason):
    """A broker whose TD matches the reference values but runs as a debug TD, or on a platform
    whose TCB is out of date, is not trusted with the request."""
    bsim, prof, good = broker_td(tmp_path)
    prof[field] = value(prof[field])
    (bsim / "profile.json").write_text(json.dumps(prof))
    b = start(brokers, tmp_path, seed_args(sim, secret) + attester_args(tmp_path, bsim))
    res = sim.fetch(b.endpoint, IMAGE_ID, "--broker-reference-values", str(good), "--broker-collateral",
                    str(bsim / "collateral.json"), "--broker-trust-root", str(bsim / "root-ca.pem"))
    assert res.returncode != 0 and f"the broker's attestation failed: {reason}" in res.stderr, res.stderr
    assert MARKER not in res.stdout
    assert b.audit() == []
