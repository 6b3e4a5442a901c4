"""The broker client (broker_fetch_secret_with(), what conkerd's Attesting step calls) against a
hostile broker: a plain Python TLS server on loopback that answers what the test tells it to. The
client must check the pin on every byte and refuse TLS 1.2 before it sends its evidence, and must
refuse an answer that is truncated, over-long, ambiguous, too large or not a JSON secret, and show
a refusal reason only when it is a short printable code."""
import hashlib
import json
import os
import socket
import ssl
import threading

import pytest

from helpers.broker import CLIENT, SimTD, self_signed

pytestmark = pytest.mark.skipif(not os.path.exists(CLIENT),
                                reason="the broker test client is not built (attest RA-TLS missing)")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return SimTD(tmp_path_factory.mktemp("client-sim"))


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    crt, key, der = self_signed(tmp_path_factory.mktemp("hostile-id"), "hostile")
    return str(crt), str(key), hashlib.sha256(der).hexdigest()


class HostileBroker:
    """Accepts connections on 127.0.0.1, reads one request (head and Content-Length body), records
    it and writes `answer` verbatim."""

    def __init__(self, identity, answer, tls12=False):
        crt, key, self.fp = identity
        self.answer = answer
        self.requests = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        if tls12:
            self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def endpoint(self, pin=None):
        return f"127.0.0.1:{self.port}#sha256:{pin or self.fp}"

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(10)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as t:
                    self.handle(t)
            except (ssl.SSLError, OSError):
                pass

    def handle(self, t):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = t.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = t.recv(65536)
            if not chunk:
                return
            body += chunk
        self.requests.append((head, body))
        t.sendall(self.answer)
        t.unwrap()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def hostile(identity):
    started = []

    def start(answer=b"", tls12=False):
        b = HostileBroker(identity, answer, tls12)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def http(status, body, headers=None):
    if headers is None:
        headers = [b"Content-Length: %d" % len(body)]
    return b"HTTP/1.1 %d X\r\n" % status + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def test_answer_from_pinned_server(sim, hostile):
    """The baseline the refusals below are measured against: a well-formed answer is a secret."""
    b = hostile(http(200, b'{"k": 1}'))
    res = sim.fetch(b.endpoint())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"k": 1}
    assert len(b.requests) == 1 and b.requests[0][0].startswith(b"POST /v1/secret HTTP/1.1\r\n")


def test_pin_checked_on_every_byte(sim, hostile):
    b = hostile(http(200, b'{"k": 1}'))
    for i in (0, 31):
        pin = bytearray.fromhex(b.fp)
        pin[i] ^= 1
        res = sim.fetch(b.endpoint(pin.hex()))
        assert res.returncode != 0 and "pinned fingerprint" in res.stderr, res.stderr
    assert b.requests == []


def test_tls12_refused_before_evidence(sim, hostile):
    b = hostile(http(200, b'{"k": 1}'), tls12=True)
    res = sim.fetch(b.endpoint())
    assert res.returncode != 0 and "TLS handshake failed" in res.stderr, res.stderr
    assert b.requests == [] and res.stdout == ""


@pytest.mark.parametrize("answer", [
    http(200, b'{"k": 1}', [b"Content-Length: 40"]),                          # truncated
    http(200, b'{"k": 1}{"k": 2}', [b"Content-Length: 8"]),                  # longer than announced
    http(200, b'{"k": 1}', [b"Content-Length: 8", b"Content-Length: 8"]),    # two lengths
    http(200, b'{"k": 1}', []),                                               # no length
    b"HTTP/1.0 200 X\r\nContent-Length: 8\r\n\r\n{\"k\": 1}",                  # not HTTP/1.1
], ids=["truncated", "overlong", "two-lengths", "no-length", "http10"])
def test_malformed_answer_refused(sim, hostile, answer):
    b = hostile(answer)
    res = sim.fetch(b.endpoint())
    assert res.returncode != 0 and "malformed or truncated HTTP response" in res.stderr, res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("body", [b"not json", b'"a string"', b'{"k": 1, "k": 2}'])
def test_secret_must_be_json(sim, hostile, body):
    b = hostile(http(200, body))
    res = sim.fetch(b.endpoint())
    assert res.returncode != 0 and ": secret" in res.stderr, res.stderr
    assert res.stdout == ""


def test_answer_larger_than_bound_refused(sim, hostile):
    body = b'{"k": "' + b"x" * (2 << 20) + b'"}'
    b = hostile(http(200, body))
    res = sim.fetch(b.endpoint())
    assert res.returncode != 0 and "response larger than 1048576 bytes" in res.stderr, res.stderr
    assert res.stdout == ""


def test_refusal_reason_shown_only_when_short_and_printable(sim, hostile):
    b = hostile(http(403, b'{"code": 403, "message": "evidence_malformed"}'))
    res = sim.fetch(b.endpoint())
    assert res.returncode != 0 and "refused: evidence_malformed" in res.stderr, res.stderr
    for msg in ["a" * 65, "fine\x1b[2Jspoofed", "line\nconker: secret released"]:
        b = hostile(http(403, json.dumps({"code": 403, "message": msg}).encode()))
        res = sim.fetch(b.endpoint())
        assert res.returncode != 0 and "HTTP status 403" in res.stderr, res.stderr
        assert "refused" not in res.stderr and "spoofed" not in res.stderr and "released" not in res.stderr
