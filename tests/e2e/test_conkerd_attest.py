"""The API in clear (finding 5) and the attested API, against the real daemon and the real CLI:

- conkerd refuses to listen on a non-loopback address over plain HTTP, naming --insecure-http;
  with --insecure-http (or TLS) it starts;
- with --tee sim and --tls-cert auto it serves an RA-TLS certificate and fresh, nonce-bound
  evidence; `conker --attest good.json ps` works, and `conker --attest bad.json ps` (one MRTD
  byte changed) refuses before it sends the token: conkerd's log shows that only the
  credential-free /pub/attest request arrived."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from helpers.conkerd import CONKER, CONKERD, Conkerd, skip_reason

# The tests' own probes (requests, verify=False) do not check the RA-TLS certificate; conker does.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    d = Conkerd(tmp_path_factory.mktemp("conkerd-attest"), extra_args=["--tls-cert", "auto"],
                tls={"verify": False})
    d.start()
    yield d
    d.close()
    assert d.exit_code == 0, f"conkerd did not exit cleanly ({d.exit_code}):\n{d.final_log[-4000:]}"


def policy(daemon, tmp_path, name, flip_mrtd_byte=False):
    m = daemon.tdx_info()["measurements"]
    mrtd = bytearray.fromhex(m["mr_td"])
    if flip_mrtd_byte:
        mrtd[7] ^= 0x01
    rv = {"mrtd": mrtd.hex(), "rtmr0": m["rtmr"][0], "rtmr1": m["rtmr"][1], "rtmr2": m["rtmr"][2],
          "source": "e2e"}
    p = tmp_path / name
    p.write_text(json.dumps(rv))
    return p, rv


def attest_args(daemon, pol):
    return ["--attest", str(pol), "--trust-sim-root", str(daemon.sim_root),
            "--collateral", str(daemon.sim_dir / "collateral.json")]


def requests_since(daemon, mark):
    return re.findall(r"API request: (\w+ \S+) \((with|no) Authorization\)", daemon.log()[mark:])


def test_attest_good_policy(daemon, tmp_path):
    pol, _ = policy(daemon, tmp_path, "good.json")
    mark = len(daemon.log())
    p = daemon.conker("ps", pre=attest_args(daemon, pol), check=False)
    assert p.returncode == 0, p.stderr
    seen = requests_since(daemon, mark)
    assert seen[0] == ("GET /sw/api/v1/pub/attest", "no")
    assert ("GET /sw/api/v1/containers", "with") in seen


def test_attest_bad_mrtd_refused_before_token(daemon, tmp_path):
    pol, rv = policy(daemon, tmp_path, "bad.json", flip_mrtd_byte=True)
    mark = len(daemon.log())
    p = daemon.conker("ps", pre=attest_args(daemon, pol), check=False)
    assert p.returncode != 0
    assert "mrtd_mismatch" in p.stderr, p.stderr
    assert f"conkerd's MRTD is" in p.stderr
    assert rv["mrtd"] in p.stderr  # the pinned value, so the operator sees what differs
    assert "refusing to send anything" in p.stderr
    # Only the credential-free attestation request reached conkerd: no token was sent.
    seen = requests_since(daemon, mark)
    assert seen == [("GET /sw/api/v1/pub/attest", "no")], seen


def test_attest_without_sim_root_refused(daemon, tmp_path):
    """A simulated TD's quote does not chain to Intel's root: without --trust-sim-root it fails."""
    pol, _ = policy(daemon, tmp_path, "good.json")
    mark = len(daemon.log())
    p = daemon.conker("ps", pre=["--attest", str(pol), "--collateral", str(daemon.sim_dir / "collateral.json")],
                      check=False)
    assert p.returncode != 0
    assert "server certificate: quote" in p.stderr, p.stderr
    assert all(auth == "no" for _, auth in requests_since(daemon, mark))


def test_attest_needs_https(daemon, tmp_path):
    pol, _ = policy(daemon, tmp_path, "good.json")
    p = subprocess.run([CONKER, *attest_args(daemon, pol), "ps", "--host",
                        f"http://127.0.0.1:{daemon.port}"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "--attest needs an https://" in p.stderr


def test_pub_attest_route(daemon):
    """The route answers without a token, bounds the nonce, and gives evidence, as
    docs/openapi.yaml says."""
    from helpers.openapi import OpenApi
    api = OpenApi()
    path = "/sw/api/v1/pub/attest?nonce=" + "ab" * 32
    r = daemon.api("GET", path, token=None)
    assert r.status_code == 200, r.text
    api.validate("GET", path, r)
    data = r.json()["data"]
    assert data["Ctx"] == "conker/api/v1"
    assert data["ExporterLabel"] == "EXPORTER-conker-api-v1"
    assert len(bytes.fromhex(data["Evidence"])) > 1000
    for bad in ("", "?nonce=ab", "?nonce=" + "ab" * 65, "?nonce=" + "zz" * 32):
        r = daemon.api("GET", "/sw/api/v1/pub/attest" + bad, token=None)
        assert r.status_code == 400, (bad, r.text)
        api.validate("GET", "/sw/api/v1/pub/attest" + bad, r)


def test_plain_client_cannot_verify_auto_cert(daemon):
    """Without --attest, conker verifies the certificate against CAs as before: an RA-TLS
    certificate is self-signed, so it is refused (nothing is sent either)."""
    p = daemon.conker("ps", check=False)
    assert p.returncode != 0
    assert "cannot reach conkerd" in p.stderr


def run_conkerd_until(argv, log_file, pattern, timeout=30):
    """Runs argv with its output in log_file until pattern appears in it (then stops it with
    SIGTERM) or it exits. Returns (exit status, or None when pattern appeared; output)."""
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    out = ""
    while time.time() < deadline:
        out = log_file.read_text(errors="replace")
        if re.search(pattern, out):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            return None, out
        if proc.poll() is not None:
            return proc.returncode, log_file.read_text(errors="replace")
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    return None, out


def test_plain_http_off_loopback_refused(tmp_path):
    if not os.access(CONKERD, os.X_OK):
        pytest.skip(f"{CONKERD} not built")
    conf = tmp_path / "none.conf"
    conf.write_text("")
    # Nothing is bound: the check runs before the TEE or the listener are opened.
    for listen in ("0.0.0.0:18383", "[::]:18383", "10.1.2.3:18383"):
        p = subprocess.run([CONKERD, "--config", str(conf), "--listen", listen, "--tee", "sim"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (listen, p.stderr)
        assert "--insecure-http" in p.stderr, p.stderr
        assert "tls-cert = auto" in p.stderr, p.stderr
    # The seed's default (0.0.0.0:8383, plain HTTP) fails closed too.
    p = subprocess.run([CONKERD, "--config", str(conf), "--tee", "sim"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "listen = 0.0.0.0:8383" in p.stderr, p.stderr


@pytest.fixture
def netns():
    """A network namespace of our own (only lo), so that 0.0.0.0 exposes nothing on the host."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    name = f"ckattest{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.parametrize("flags", [["--insecure-http"], ["--tls-cert", "auto"]], ids=["insecure-http", "tls-auto"])
def test_off_loopback_starts_when_told(tmp_path, netns, flags):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    d = Conkerd(tmp_path, extra_args=flags, listen_host="0.0.0.0", wrap=["ip", "netns", "exec", netns])
    try:
        d.port = 18383
        rc, out = run_conkerd_until(d.argv(), d.log_file, r"conkerd \S+ ready")
        assert rc is None, out
        assert "API listening on 0.0.0.0" in out, out
        if flags == ["--tls-cert", "auto"]:
            assert "attested certificate" in out
    finally:
        d.close()


def test_attest_command_prints_pin(daemon, tmp_path):
    """`conker --attest P attest --pin` prints the attested key as curl's --pinnedpubkey value,
    and it is the key the server presents; no credential is sent."""
    pol, _ = policy(daemon, tmp_path, "good.json")
    mark = len(daemon.log())
    p = subprocess.run([CONKER, *attest_args(daemon, pol), "attest", "--pin", "--host",
                        f"https://127.0.0.1:{daemon.port}"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    pin = p.stdout.strip()
    assert pin.startswith("sha256//")
    cert = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{daemon.port}", "-tls1_3"],
                          input="", capture_output=True, text=True, timeout=30).stdout
    spki = subprocess.run("openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 "
                          "-binary | openssl base64", shell=True, input=cert, capture_output=True, text=True,
                          timeout=30).stdout.strip()
    assert pin == "sha256//" + spki
    assert all(auth == "no" for _, auth in requests_since(daemon, mark))


def test_impostor_gets_no_token(tmp_path):
    """A server that is not an attested conkerd (here a TLS server with an ordinary self-signed
    certificate that answers the attestation request) sees one credential-free request and
    nothing else; conker names why it refused."""
    import http.server
    import ssl
    import threading

    if not os.access(CONKER, os.X_OK):
        pytest.skip(f"{CONKER} not built")
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=impostor"],
                   check=True, capture_output=True)
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append((self.path.split("?")[0], self.headers.get("Authorization")))
            body = json.dumps({"code": 200, "message": "ok", "data": {"Evidence": "d9ea60" + "00" * 64}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    token = tmp_path / "token"
    token.write_text("impostor-must-never-see-this\n")
    token.chmod(0o600)
    rv = tmp_path / "rv.json"
    rv.write_text(json.dumps({"mrtd": "00" * 48}))
    try:
        p = subprocess.run([CONKER, "--attest", str(rv), "--collateral", str(tmp_path / "none.json"), "ps", "--host",
                            f"https://127.0.0.1:{srv.server_address[1]}", "--token-file", str(token)],
                           capture_output=True, text=True, timeout=60)
    finally:
        srv.shutdown()
    assert p.returncode != 0
    assert "no attestation evidence" in p.stderr, p.stderr
    assert seen == [("/sw/api/v1/pub/attest", None)], seen


def test_attest_once_per_process_then_pinned(daemon, tmp_path):
    """`conker --attest P run` makes several requests (create, then the task polled until it
    ends): conkerd is attested on the first connection, and the later connections of the same
    process are held to the attested key."""
    pol, _ = policy(daemon, tmp_path, "good.json")
    mark = len(daemon.log())
    p = daemon.conker("run", "--name", "attest-once", "127.0.0.1:1/nothing:latest", pre=attest_args(daemon, pol),
                      check=False)
    assert p.returncode != 0  # the pull cannot succeed; the task ends Failed
    assert "task Failed" in p.stderr, p.stderr
    seen = requests_since(daemon, mark)
    assert seen[0] == ("GET /sw/api/v1/pub/attest", "no"), seen
    assert seen.count(("GET /sw/api/v1/pub/attest", "no")) == 1, seen
    assert ("POST /sw/api/v1/container", "with") in seen
    assert len([s for s in seen if s[1] == "with"]) >= 2, seen
    daemon.api("DELETE", "/sw/api/v1/container/attest-once")


def test_attest_tcb_statuses(daemon, tmp_path):
    """--attest-tcb: the simulated TD is UpToDate; a list without it refuses, a list with it
    works, and Revoked is never acceptable."""
    pol, _ = policy(daemon, tmp_path, "good.json")
    p = daemon.conker("ps", pre=attest_args(daemon, pol) + ["--attest-tcb", "UpToDate,SWHardeningNeeded"],
                      check=False)
    assert p.returncode == 0, p.stderr
    mark = len(daemon.log())
    p = daemon.conker("ps", pre=attest_args(daemon, pol) + ["--attest-tcb", "OutOfDate"], check=False)
    assert p.returncode != 0 and "tcb_status: the platform's TCB is UpToDate" in p.stderr, p.stderr
    assert all(auth == "no" for _, auth in requests_since(daemon, mark))
    p = daemon.conker("ps", pre=attest_args(daemon, pol) + ["--attest-tcb", "Revoked"], check=False)
    assert p.returncode != 0 and "not an acceptable TCB status" in p.stderr, p.stderr


def test_attest_debug_td_refused(tmp_path):
    """A conkerd in a debug TD (TDATTRIBUTES.DEBUG: the host can read and write its memory) is
    refused even when every measurement matches the policy, before the token is sent."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    d = Conkerd(tmp_path, extra_args=["--tls-cert", "auto"], tls={"verify": False})
    prof_path = d.sim_dir / "profile.json"
    prof = json.loads(prof_path.read_text())
    prof["td_attributes"] = "01" + prof["td_attributes"][2:]
    prof_path.write_text(json.dumps(prof))
    d.start()
    try:
        pol, _ = policy(d, tmp_path, "good.json")
        mark = len(d.log())
        p = d.conker("ps", pre=attest_args(d, pol), check=False)
        assert p.returncode != 0 and "debug_td: conkerd runs in a debug TD" in p.stderr, p.stderr
        assert all(auth == "no" for _, auth in requests_since(d, mark))
    finally:
        d.close()


def test_later_connection_to_another_key_gets_no_token(daemon, tmp_path):
    """The attested key is pinned for the rest of the process: `conker run` attests conkerd on
    its first connection, and its next connection (the task poll) reaches, through the same
    address, a TLS server with another key. That handshake fails; the server sees no request and
    no token."""
    import socket
    import ssl
    import threading

    from helpers.broker import self_signed
    from helpers.throttle import pipe

    crt, key, _ = self_signed(tmp_path, "swapped")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(0.2)
    port = lsock.getsockname()[1]
    seen, stop = [], threading.Event()

    def serve():
        first = True
        while not stop.is_set():
            try:
                c, _ = lsock.accept()
            except (socket.timeout, OSError):
                continue
            if first:  # the attesting connection goes to conkerd, byte for byte
                first = False
                up = socket.create_connection(("127.0.0.1", daemon.port))
                threading.Thread(target=pipe, args=(c, up), daemon=True).start()
                threading.Thread(target=pipe, args=(up, c), daemon=True).start()
                continue
            c.settimeout(10)
            try:
                with ctx.wrap_socket(c, server_side=True) as t:
                    data = t.recv(65536)
                    seen.append(data)
                    t.sendall(b"HTTP/1.1 500 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except (ssl.SSLError, OSError):
                pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    pol, _ = policy(daemon, tmp_path, "good.json")
    try:
        p = subprocess.run([CONKER, *attest_args(daemon, pol), "run", "--name", "attest-swap", "--host",
                            f"https://127.0.0.1:{port}", "--token-file", str(daemon.token_file),
                            "127.0.0.1:1/nothing:latest"], capture_output=True, text=True, timeout=120)
    finally:
        stop.set()
        th.join(timeout=10)
        lsock.close()
        daemon.api("DELETE", "/sw/api/v1/container/attest-swap")
    assert p.returncode != 0
    assert "presented another key than the one attested" in p.stderr, p.stderr
    assert seen == [], seen
