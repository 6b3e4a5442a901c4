"""conkerd's REST API against the real daemon: the bad-input table (every case gets the right
status, the envelope and a clear message, and the daemon keeps serving), auth, pull failures
reported as events, and the registry password never appearing in a response or in the log."""

import json
import socket
import subprocess

import pytest

from helpers.conkerd import CONKER, Conkerd, skip_reason
from helpers.openapi import OpenApi
from helpers.registry import Registry

PASSWORD = "Zq9-unique-registry-pass"
BODY_MAX = 64 * 1024


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    d = Conkerd(tmp_path_factory.mktemp("conkerd-api"), extra_args=["--max-body-size", str(BODY_MAX)])
    d.start()
    yield d
    d.close()
    log = d.final_log
    assert PASSWORD not in log, "the registry password reached the daemon's log"
    assert d.exit_code == 0, f"conkerd did not exit cleanly ({d.exit_code}):\n{log[-4000:]}"


def body(**over):
    b = {"Name": "t", "ImageInfo": {"ImageName": "127.0.0.1:1/x:latest",
                                    "RegisterAuthInfo": {"Username": "user", "Password": PASSWORD}}}
    b.update(over)
    return b


def mounts(target, source="data", typ="volume"):
    return [{"Type": typ, "Target": target, "Source": source, "RW": True}]


P = "/sw/api/v1/container"

# (id, method, path, body: dict | str | bytes | None, token ("default" | None | str), status, message part)
CASES = [
    ("malformed-json", "POST", P, "{", "default", 400, "malformed JSON"),
    ("empty-body", "POST", P, "", "default", 400, "malformed JSON"),
    ("not-an-object", "POST", P, "[1,2]", "default", 400, "must be a JSON object"),
    ("trailing-garbage", "POST", P, '{"ImageInfo":{"ImageName":"a"}} x', "default", 400, "malformed JSON"),
    ("duplicate-key", "POST", P, '{"Name":"a","Name":"b","ImageInfo":{"ImageName":"a"}}', "default", 400,
     "duplicate"),
    ("missing-imageinfo", "POST", P, {"Name": "a"}, "default", 400, "ImageInfo is required"),
    ("imagename-wrong-type", "POST", P, {"ImageInfo": {"ImageName": 7}}, "default", 400, "must be a string"),
    ("imagename-empty", "POST", P, {"ImageInfo": {"ImageName": ""}}, "default", 400, "ImageName is required"),
    ("imagename-invalid", "POST", P, {"ImageInfo": {"ImageName": "UPPER/Case:x"}}, "default", 400,
     "ImageInfo.ImageName"),
    ("unknown-field", "POST", P, body(Cmd=["sh"]), "default", 400, 'unknown field "Cmd"'),
    ("bad-name", "POST", P, body(Name="-bad/name"), "default", 400, "Name must match"),
    ("ports-not-array", "POST", P, body(Ports={"TargetPort": 80}), "default", 400, "Ports must be an array"),
    ("port-wrong-type", "POST", P, body(Ports=[{"TargetPort": "80", "PublishedPort": 30080}]), "default", 400,
     "must be an integer"),
    ("port-missing", "POST", P, body(Ports=[{"TargetPort": 80}]), "default", 400, "PublishedPort is required"),
    ("published-below-range", "POST", P, body(Ports=[{"TargetPort": 80, "PublishedPort": 80}]), "default", 400,
     "outside the allowed range 30000-65534"),
    ("published-above-range", "POST", P, body(Ports=[{"TargetPort": 80, "PublishedPort": 65535}]), "default", 400,
     "outside the allowed range"),
    ("target-zero", "POST", P, body(Ports=[{"TargetPort": 0, "PublishedPort": 30080}]), "default", 400,
     "TargetPort"),
    ("duplicate-published", "POST", P, body(Ports=[{"TargetPort": 80, "PublishedPort": 30080},
                                                   {"TargetPort": 81, "PublishedPort": 30080}]), "default", 400,
     "published twice"),
    ("env-no-equals", "POST", P, body(Env=["NOVALUE"]), "default", 400, "KEY=VALUE"),
    ("env-newline", "POST", P, body(Env=["A=1\nB=2"]), "default", 400, "newline"),
    ("env-wrong-type", "POST", P, body(Env="A=1"), "default", 400, "Env must be an array"),
    ("mount-bind", "POST", P, body(Mounts=mounts("/d", "/etc", "bind")), "default", 400,
     'Type must be "volume"'),
    ("mount-relative", "POST", P, body(Mounts=mounts("data")), "default", 400, "absolute"),
    ("mount-secret", "POST", P, body(Mounts=mounts("/secret")), "default", 400, "/secret is reserved"),
    ("mount-under-secret", "POST", P, body(Mounts=mounts("/secret/x")), "default", 400, "/secret is reserved"),
    ("mount-dotdot", "POST", P, body(Mounts=mounts("/a/../secret")), "default", 400, "clean path"),
    ("mount-bad-source", "POST", P, body(Mounts=mounts("/d", "../../etc")), "default", 400,
     "Source must be a volume name"),
    ("mount-duplicate", "POST", P, body(Mounts=mounts("/d", "a") + mounts("/d", "b")), "default", 400,
     "mounted twice"),
    ("kms-bad", "POST", P, body(KmsEndpoints=["no-port"]), "default", 400, "host:port"),
    ("kms-bad-pin", "POST", P, body(KmsEndpoints=["k:1#sha256:zz"]), "default", 400, "certificate pin"),
    ("oversized", "POST", P, "{" + " " * (BODY_MAX + 10) + "}", "default", 413, "max-body-size"),
    ("no-token", "GET", "/sw/api/v1/containers", None, None, 401, "API token"),
    ("wrong-token", "GET", "/sw/api/v1/containers", None, "0" * 64, 401, "API token"),
    ("no-token-post", "POST", P, body(), None, 401, "API token"),
    ("unknown-route", "GET", "/sw/api/v1/nothing", None, "default", 404, "no such route"),
    ("unknown-api-version", "GET", "/sw/api/v2/container", None, "default", 404, "no such route"),
    ("wrong-method", "PUT", P, None, "default", 405, "not allowed"),
    ("wrong-method-cancel", "GET", P + "/cancel", None, "default", 405, "not allowed"),
    ("wrong-method-list", "POST", "/sw/api/v1/containers", None, "default", 405, "not allowed"),
    ("unknown-task", "GET", P + "/ffffffffffffffffffffffffffffffff", None, "default", 404, "no such task"),
    ("delete-unknown", "DELETE", P + "/nope", None, "default", 404, "no such task"),
    ("events-unknown", "GET", P + "/nope/events", None, "default", 404, "no such task"),
    ("logs-unknown", "GET", P + "/nope/logs", None, "default", 404, "no such task"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(daemon, case):
    _, method, path, b, token, status, msg = case
    kw = {}
    if isinstance(b, dict):
        kw["data"] = json.dumps(b)
    elif b is not None:
        kw["data"] = b
    r = daemon.api(method, path, token=token, **kw)
    assert r.status_code == status, r.text
    env = r.json()
    assert env["code"] == status
    assert "data" in env
    assert msg in env["message"], env["message"]
    assert PASSWORD not in r.text
    OpenApi().validate(method, path, r)
    assert daemon.healthy()


def test_far_oversized_body_is_refused(daemon):
    """Past 4x max-body-size libevent refuses the body before reading it (its own 413 page)."""
    r = daemon.api("POST", P, data=b"x" * (BODY_MAX * 5))
    assert r.status_code == 413
    assert daemon.healthy()


def test_health_needs_no_token(daemon):
    r = daemon.api("GET", "/sw/api/v1/pub/health", token=None)
    assert r.status_code == 200
    assert r.json() == {"code": 200, "message": "ok", "data": {"Status": "healthy", "Version": "0.1.0"}}


def test_port_in_use_on_host(daemon):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for port in range(30500, 31000):
            try:
                s.bind(("0.0.0.0", port))
                break
            except OSError:
                continue
        s.listen()
        r = daemon.api("POST", P, data=json.dumps(body(Name="busy", Ports=[{"TargetPort": 80,
                                                                            "PublishedPort": port}])))
    assert r.status_code == 409, r.text
    assert f"PublishedPort {port} is in use on the host" in r.json()["message"]


def test_nothing_to_cancel(daemon):
    r = daemon.api("POST", P + "/cancel")
    assert r.status_code in (404, 409)
    assert r.json()["code"] == r.status_code


@pytest.fixture
def reg(tmp_path):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with Registry(tmp_path / "registry", user="conker", password=PASSWORD) as r:
        yield r


def test_pull_failures_are_clear_events(tmp_path, reg):
    with Conkerd(tmp_path, extra_args=["--registry-ca-file", str(reg.ca_file)]) as d:
        # An image that does not exist.
        r = d.api("POST", P, data=json.dumps({
            "Name": "unknown-image",
            "ImageInfo": {"ImageName": f"{reg.host}/nope/missing:latest",
                          "RegisterAuthInfo": {"Username": reg.user, "Password": PASSWORD}}}))
        assert r.status_code == 200, r.text
        assert PASSWORD not in r.text
        t = d.wait_status("unknown-image", {"Failed"}, timeout=60)
        last = t["Events"][-1]["Message"]
        assert last.startswith("Pulling failed: "), last
        assert PASSWORD not in json.dumps(t)

        # Wrong registry password.
        r = d.api("POST", P, data=json.dumps({
            "Name": "bad-password",
            "ImageInfo": {"ImageName": f"{reg.host}/nope/missing:latest",
                          "RegisterAuthInfo": {"Username": reg.user, "Password": PASSWORD + "-wrong"}}}))
        assert r.status_code == 200, r.text
        t = d.wait_status("bad-password", {"Failed"}, timeout=60)
        last = t["Events"][-1]["Message"]
        assert last.startswith("Pulling failed: "), last
        assert "credential" in last.lower() or "auth" in last.lower() or "401" in last, last
        assert PASSWORD not in json.dumps(t)

        # ContainerConf shows the user but never the password.
        cfg = d.task("bad-password")["ContainerConf"]["ImageInfo"]
        assert cfg["RegisterAuthInfo"]["Username"] == reg.user
        assert cfg["RegisterAuthInfo"]["Password"] == "******"

        listing = d.api("GET", "/sw/api/v1/containers")
        assert PASSWORD not in listing.text
        for name in ("unknown-image", "bad-password"):
            assert d.api("DELETE", f"{P}/{name}").status_code == 200
        assert d.api("GET", "/sw/api/v1/containers").json()["data"] == []
        assert d.healthy()
        log = d.log()
    assert PASSWORD not in log


def test_connection_limit(tmp_path):
    """Connections are counted from their first request; one over max-connections gets 503
    with the envelope and is closed, and the daemon serves again once others close."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    import requests
    with Conkerd(tmp_path, extra_args=["--max-connections", "2"]) as d:
        sessions = [requests.Session() for _ in range(3)]
        try:
            codes = [s.get(d.url("/sw/api/v1/pub/health"), timeout=5).status_code for s in sessions]
            assert codes[:2] == [200, 200]
            assert codes[2] == 503
            r = sessions[2].get(d.url("/sw/api/v1/pub/health"), timeout=5)
            assert r.status_code == 503 and r.json()["code"] == 503
        finally:
            for s in sessions:
                s.close()
        import time
        deadline = time.time() + 5
        while time.time() < deadline and not d.healthy():
            time.sleep(0.1)
        assert d.healthy()


def _client_cert(d, ca_crt, ca_key, name):
    from helpers.registry import run
    key, csr, crt, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
         "-out", csr, "-subj", f"/CN={name}"])
    ext.write_text("extendedKeyUsage=clientAuth\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
         "-days", "2", "-extfile", ext])
    return crt, key


def test_tls_with_client_certificates(tmp_path):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    import requests
    from helpers.registry import make_ca_and_server_cert
    certs = tmp_path / "certs"
    ca, crt, key = make_ca_and_server_cert(certs)
    client = _client_cert(certs, ca, certs / "ca.key", "operator")
    other_ca, _, _ = make_ca_and_server_cert(tmp_path / "other")
    stranger = _client_cert(tmp_path / "other", other_ca, tmp_path / "other" / "ca.key", "stranger")

    d = Conkerd(tmp_path, extra_args=["--tls-cert", str(crt), "--tls-key", str(key), "--tls-client-ca", str(ca)],
                tls={"verify": str(ca), "cert": (str(client[0]), str(client[1]))})
    d.start()
    try:
        base = f"https://127.0.0.1:{d.port}/sw/api/v1"
        # A verified client certificate authenticates: no token needed.
        r = requests.get(f"{base}/containers", verify=str(ca), cert=client, timeout=10)
        assert r.status_code == 200 and r.json()["code"] == 200
        # No certificate, or one from another CA: the handshake fails.
        for cert in (None, stranger):
            with pytest.raises(requests.exceptions.RequestException):
                requests.get(f"{base}/pub/health", verify=str(ca), cert=cert, timeout=10)
        # Plain HTTP on the TLS port gets nowhere.
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(f"http://127.0.0.1:{d.port}/sw/api/v1/pub/health", timeout=5)
        # Through the helper (which presents the certificate) the API works end to end.
        assert d.api("GET", "/sw/api/v1/containers", token=None).json()["data"] == []
    finally:
        d.close()


def test_full_rtmr3_log_refuses_tasks_with_kms_at_post(tmp_path):
    """Issue 9, finding 6: a full RTMR3 event log is an error that says so before any task is
    accepted: POST answers 503 naming the cause (the TD must reboot) instead of accepting a task
    that would fail at Attesting. A task-config too large to attest is refused the same way (413).
    Tasks without KmsEndpoints measure nothing and are still accepted."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    d = Conkerd(tmp_path)
    d.start()
    try:
        kms = body(Name="needs-kms", KmsEndpoints=["127.0.0.1:3333"])
        # A task-config document over 64 KiB (Env within the request's own limits).
        big = body(Name="big", KmsEndpoints=["127.0.0.1:3333"], Env=["K%d=%s" % (i, "x" * 30000) for i in range(3)])
        r = d.api("POST", P, data=json.dumps(big))
        assert r.status_code == 413 and "can be attested" in r.json()["message"], r.text

        # Fill the simulated TD's log (1 MiB) with events that replay, as ~250 distinct large
        # measurements would, leaving less room than one task's two events need.
        tee = ["--tee", "sim", "--sim-dir", str(d.sim_dir), "--sim-state-dir", str(d.dir / "sim-state")]
        log = d.dir / "sim-state" / "rtmr3.log"
        filled = False
        for i in range(400):  # bounded: 1 MiB / ~4.2 KiB per event is ~250
            size = log.stat().st_size if log.exists() else 0
            room = (1 << 20) - size
            if room < 600:
                filled = True
                break
            payload_len = min(4096, room - 400)
            payload = ("%08d" % i + "p" * 4096)[:payload_len]
            p = subprocess.run([CONKER, "tdx", "measure", "--name", "filler", "--payload", payload, *tee],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stderr
        assert filled

        r = d.api("POST", P, data=json.dumps(kms))
        assert r.status_code == 503, r.text
        msg = r.json()["message"]
        assert "RTMR3 event log" in msg and "is full" in msg and "until it reboots" in msg, msg
        assert d.api("GET", "/sw/api/v1/containers").json()["data"] == []  # nothing was accepted

        # A task without KmsEndpoints measures nothing: still accepted.
        r = d.api("POST", P, data=json.dumps(body(Name="no-kms")))
        assert r.status_code == 200, r.text
    finally:
        d.close()
