"""conker-broker under attack by clients it has not authenticated: forged PCK chains that would
make it contact the PCS, a PCS that is down, slow clients, and floods of refusals.

Each test states the attack and the mechanism that stops it (docs/threat-model.md names them)."""
import json
import os
import socket
import ssl
import subprocess
import time

import pytest

from helpers.broker import BROKER, CLIENT, IMAGE_ID, Broker, SimPccs, SimTD
from helpers.forge import forge_pck_chain

pytestmark = pytest.mark.skipif(not (os.path.exists(BROKER) and os.path.exists(CLIENT)),
                                reason="conker-broker and its test client are not built (attest RA-TLS missing)")

MARKER = "s3cr3t-dos-4b1d"
TCB_PATH = "/tdx/certification/v4/tcb"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return SimTD(tmp_path_factory.mktemp("dos-sim"))


@pytest.fixture
def attacker(tmp_path):
    """A simulated TD of the attacker's own: its PKI ends at a root nobody trusts."""
    return SimTD(tmp_path / "attacker")


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "secret.json"
    p.write_text(json.dumps({"password": MARKER}))
    return p


@pytest.fixture
def brokers():
    started = []
    yield started
    for b in started:
        b.stop()


@pytest.fixture
def pccs(sim, tmp_path):
    p = SimPccs(sim.collateral, str(tmp_path))
    yield p
    p.stop()


def start(brokers, tmp_path, args, name="broker"):
    b = Broker(tmp_path, args, name)
    brokers.append(b)
    return b


def base_args(sim, secret):
    return ["-m", "-v", "tdx_ecdsa", "-a", "nullattester", "-s", str(secret), "-w", sim.rtmr1, "-d", IMAGE_ID,
            "--mrtd", sim.mrtd, "--trust-sim-root", sim.root]


def pccs_args(sim, secret, pccs, tmp_path):
    # --cache-ttl 0: every connection is verified afresh, so nothing hides a fetch.
    return base_args(sim, secret) + ["--collateral", pccs.url, "--pcs-ca", pccs.cert, "--pcs-cache-dir",
                                     str(tmp_path / "pcs-cache"), "--cache-ttl", "0"]


def assert_refused(res, reason):
    assert res.returncode != 0, res.stdout
    assert f"refused: {reason}" in res.stderr, res.stderr
    assert MARKER not in res.stdout


def test_forged_pck_chain_fetches_nothing(sim, attacker, secret, brokers, pccs, tmp_path):
    """Attack: a self-made PCK chain with a fresh FMSPC on every connection, to make the broker
    fetch collateral from the PCS for each one. Mechanism: the PCK chain is verified to the
    trusted root before any fetch."""
    b = start(brokers, tmp_path, pccs_args(sim, secret, pccs, tmp_path))
    for _ in range(4):
        forge_pck_chain(attacker.dir, os.urandom(6))
        assert_refused(attacker.fetch(b.pinned), "quote_invalid")
    assert pccs.requests == []
    assert "PCK chain" in b.read_log()
    # The PCCS does answer: a genuine TD's first connection fetches its collateral.
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr + b.read_log()
    assert MARKER in res.stdout
    assert pccs.count(TCB_PATH) == 1


def test_failed_fetch_is_cached(sim, secret, brokers, pccs, tmp_path):
    """Attack: connections that each make the broker try a PCS that is down (or slow) again.
    Mechanism: a failed fetch is remembered per FMSPC for --pcs-failure-ttl seconds."""
    pccs.fail_status = 503
    b = start(brokers, tmp_path, pccs_args(sim, secret, pccs, tmp_path))
    assert_refused(sim.fetch(b.pinned), "collateral_unavailable")
    assert pccs.count(TCB_PATH) == 1
    for _ in range(3):
        assert_refused(sim.fetch(b.pinned), "collateral_unavailable")
    assert pccs.count(TCB_PATH) == 1
    assert "the last fetch failed" in b.read_log()

    # After the TTL the fetch is tried again, and a PCS that is back serves the release.
    b2 = start(brokers, tmp_path, pccs_args(sim, secret, pccs, tmp_path) + ["--pcs-failure-ttl", "1"], name="b2")
    assert_refused(sim.fetch(b2.pinned), "collateral_unavailable")
    before = pccs.count(TCB_PATH)
    pccs.fail_status = None
    for _ in range(20):
        res = sim.fetch(b2.pinned)
        if res.returncode == 0:
            break
        time.sleep(0.25)
    assert res.returncode == 0, res.stderr + b2.read_log()
    assert pccs.count(TCB_PATH) == before + 1


def plain_client_context(tmp_path):
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


def test_slow_clients_do_not_block_release(sim, secret, brokers, tmp_path):
    """Attack: 64 clients that connect and then trickle or hold (mid-handshake and mid-request),
    against 8 workers, with generous deadlines. Mechanism: handshakes and requests are read on
    event loops; a worker only sees a complete request."""
    b = start(brokers, tmp_path, base_args(sim, secret) + ["--workers", "8", "--handshake-timeout", "120000",
                                                           "--request-timeout", "120000"])
    held = []
    try:
        # 32 that send the first bytes of a TLS record and hold.
        for _ in range(32):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            s.sendall(b"\x16\x03\x01")
            held.append(s)
        res = sim.fetch(b.pinned, IMAGE_ID, "--timeout", "15000")
        assert res.returncode == 0, res.stderr + b.read_log()
        assert MARKER in res.stdout
        # 32 that complete the handshake and send part of a request head.
        ctx = plain_client_context(tmp_path)
        for _ in range(32):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            t = ctx.wrap_socket(s)
            t.sendall(b"POST /v1/secret HTTP/1.1\r\nContent-Len")
            held.append(t)
        res = sim.fetch(b.pinned, IMAGE_ID, "--timeout", "15000")
        assert res.returncode == 0, res.stderr + b.read_log()
        assert MARKER in res.stdout
        # The slow ones are still connected: the broker waited for them, it did not drop them.
        for s in held:
            s.setblocking(False)
            with pytest.raises((BlockingIOError, ssl.SSLWantReadError)):
                s.recv(1)
    finally:
        for s in held:
            s.close()


def test_unauthenticated_refusals_are_summarised(sim, attacker, secret, brokers, tmp_path):
    """Attack: a flood of connections whose evidence does not verify, each costing an audit line
    and an fsync. Mechanism: such refusals are counted and written as one summary line per
    interval; authenticated decisions stay one line each."""
    b = start(brokers, tmp_path, base_args(sim, secret))
    for _ in range(6):
        assert_refused(attacker.fetch(b.pinned), "quote_invalid")
    assert_refused(sim.fetch(b.pinned, "sha256:" + "cd" * 32), "image_mismatch")
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr
    # The authenticated decisions, one line each; the rest only in summaries (one, at stop,
    # unless the default interval of a minute passed meanwhile).
    decisions = [(e["decision"], e.get("reason")) for e in b.audit() if e["decision"] != "refuse-summary"]
    assert decisions == [("refuse", "image_mismatch"), ("release", None)]
    assert b.refusals() == {"quote_invalid": 6}
    summaries = [e for e in b.audit() if e["decision"] == "refuse-summary"]
    assert 1 <= len(summaries) <= 2
    assert all(e["from"] <= e["to"] <= e["time"] for e in summaries)

    # The summary is also written every interval while the broker runs.
    b2 = start(brokers, tmp_path, base_args(sim, secret) + ["--audit-summary-interval", "1"], name="b2")
    for _ in range(2):
        assert_refused(attacker.fetch(b2.pinned), "quote_invalid")
    for _ in range(40):
        lines = b2.audit()
        if lines:
            break
        time.sleep(0.25)
    assert [(e["decision"], e["reasons"]) for e in lines] == [("refuse-summary", {"quote_invalid": 2})]


def test_trickling_client_dropped_at_deadline(sim, secret, brokers, tmp_path):
    """A client that keeps sending a byte at a time never completes its request: the request
    deadline runs from the end of the handshake and is not extended by progress."""
    b = start(brokers, tmp_path, base_args(sim, secret) + ["--request-timeout", "500"])
    ctx = plain_client_context(tmp_path)
    s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    t = ctx.wrap_socket(s)
    closed = False
    try:
        for byte in (b"POST /v1/secret HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 100)[:100]:
            try:
                t.sendall(bytes([byte]))
                t.setblocking(False)
                try:
                    closed = t.recv(1) == b""
                except (ssl.SSLWantReadError, BlockingIOError):
                    pass
                t.setblocking(True)
            except (ssl.SSLError, OSError):
                closed = True
            if closed:
                break
            time.sleep(0.1)
    finally:
        t.close()
    assert closed, "the broker kept a trickling client past its request deadline"
    assert "request timed out" in b.read_log()
    # And it still serves.
    res = sim.fetch(b.pinned)
    assert res.returncode == 0, res.stderr
