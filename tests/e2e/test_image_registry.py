"""End to end: the registry client and image_pull() against real registries that misbehave.

docker-registry (Debian, distribution 2.8) on loopback with TLS from a CA made per run, with
htpasswd (Basic), without auth, on plain HTTP, and with `auth: token` trusting a token server
made here (Bearer, ES256 JWTs). In front of it, Python servers that redirect blobs to another
port and record headers, answer 429/503 first, or throttle. The pulls go through
build/src/image/pull-driver, a thin CLI over image_pull() that also takes mirrors and raises
the cancel flag after N bytes.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers.registry import OCI_LAYER_GZIP, OCI_LAYER_TAR, REGISTRY_BIN, ImageBuilder, Registry, gzip_bytes, tar_bytes
from helpers.registry_fetch import BlobServer, FrontProxy, TokenRegistry, TokenServer

pytestmark = pytest.mark.skipif(not os.path.exists(REGISTRY_BIN), reason="docker-registry is not installed")

ECANCELED, EACCES, ENOENT = 125, 13, 2


def driver_bin() -> str:
    build = os.environ.get("CONKER_BUILD", str(Path(__file__).resolve().parents[2] / "build"))
    path = Path(build) / "src/image/pull-driver"
    if not path.exists():
        pytest.skip(f"{path} not built")
    return str(path)


def pull(data: Path, ref: str, ca=None, user=None, password=None, mirrors=(), insecure=(),
         cancel_after=None, timeout=120) -> dict:
    cmd = [driver_bin(), "--data-dir", str(data)]
    if ca:
        cmd += ["--ca-file", str(ca)]
    if user:
        cmd += ["--user", user, "--password-stdin"]
    for domain, endpoint in mirrors:
        cmd += ["--mirror", f"{domain}={endpoint}"]
    for host in insecure:
        cmd += ["--insecure", host]
    if cancel_after:
        cmd += ["--cancel-after", str(cancel_after)]
    cmd.append(ref)
    started = time.monotonic()
    p = subprocess.run(cmd, input=(password + "\n") if password is not None else None,
                       capture_output=True, text=True, timeout=timeout)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["rc"], out["stderr"], out["seconds"] = p.returncode, p.stderr, time.monotonic() - started
    assert (p.returncode == 0) == out["ok"], out
    return out


def store_files(data: Path) -> dict:
    def names(sub):
        d = data / sub
        return sorted(p.name for p in d.iterdir()) if d.exists() else []
    return {"blobs": names("blobs/sha256"), "layers": names("layers"), "ingest": names("ingest")}


def small_layers(n: int, tag: str) -> list:
    layers = []
    for i in range(n):
        plain = tar_bytes([{"name": f"file-{tag}-{i}", "data": os.urandom(2048) + tag.encode()}])
        layers.append((gzip_bytes(plain), plain, OCI_LAYER_GZIP))
    return layers


# -- registries shared by the module --------------------------------------------------------
@pytest.fixture(scope="module")
def basic_reg(tmp_path_factory):
    """TLS + htpasswd, with demo/app:v1 (5 layers)."""
    with Registry(tmp_path_factory.mktemp("basic")) as reg:
        reg.image = reg.push_image("demo/app", "v1", small_layers(5, "basic"))
        yield reg


@pytest.fixture(scope="module")
def anon_reg(tmp_path_factory):
    """TLS, no auth: demo/app:v1, and library/busybox + conker/app for the docker.io mirror."""
    with Registry(tmp_path_factory.mktemp("anon"), auth=False) as reg:
        reg.image = reg.push_image("demo/app", "v1", small_layers(3, "anon"))
        reg.push_image("library/busybox", "latest", small_layers(1, "busybox"))
        reg.push_image("conker/app", "v1", small_layers(2, "conker"))
        yield reg


@pytest.fixture(scope="module")
def token_reg(tmp_path_factory):
    """TLS + `auth: token`, with demo/app:v1 pushed through the token flow by skopeo."""
    work = tmp_path_factory.mktemp("token")
    ts = TokenServer(work / "tokens", users={"conker": "t0ken-Passw0rd"})
    with TokenRegistry(work / "reg", ts, "conker", "t0ken-Passw0rd") as reg:
        try:
            img = ImageBuilder(work / "build").busybox("app")
        except Exception as e:  # umoci missing or unusable here
            pytest.skip(f"cannot build a test image: {e}")
        reg.push_layout(img.layout, img.tag, "demo/app:v1")
        yield reg


@pytest.fixture
def tokens(token_reg):
    """The token server, with its knobs reset and its request log cleared after the test."""
    ts = token_reg.token_server
    ts.requests.clear()
    yield ts
    ts.allow_anonymous, ts.audience, ts.token_field = False, TokenServer.SERVICE, "token"
    ts.requests.clear()


# -- TLS, plain HTTP, anonymous ----------------------------------------------------------------
def test_anonymous_pull_over_tls(anon_reg, tmp_path):
    r = pull(tmp_path / "data", f"{anon_reg.host}/demo/app:v1", ca=anon_reg.ca_file)
    assert r["ok"], r
    assert r["name"] == f"{anon_reg.host}/demo/app:v1"
    assert r["id"] == anon_reg.image["config"]
    assert r["manifest_digest"] == anon_reg.image["manifest"]
    assert r["layers"] == 3 and r["progress_calls"] > 0
    files = store_files(tmp_path / "data")
    for d in anon_reg.image["layers"] + [anon_reg.image["config"]]:
        assert d.split(":")[1] in files["blobs"]
    assert len(files["layers"]) == 3 and files["ingest"] == []


def test_tls_is_verified(anon_reg, tmp_path):
    r = pull(tmp_path / "data", f"{anon_reg.host}/demo/app:v1")  # no CA file: system store only
    assert not r["ok"]
    assert "certificate" in r["error"].lower() or "ssl" in r["error"].lower(), r["error"]
    assert store_files(tmp_path / "data")["blobs"] == []


def test_plain_http_only_for_insecure_registries(tmp_path):
    with Registry(tmp_path / "plain", tls=False, auth=False) as reg:
        img = reg.push_image("demo/plain", "v1", small_layers(1, "plain"))
        r = pull(tmp_path / "d1", f"{reg.host}/demo/plain:v1")
        assert not r["ok"], "spoke HTTPS to a plain-HTTP registry and succeeded?"
        r = pull(tmp_path / "d2", f"{reg.host}/demo/plain:v1", insecure=[reg.host])
        assert r["ok"], r
        assert r["id"] == img["config"]


# -- Basic auth --------------------------------------------------------------------------------
def test_basic_auth_pull(basic_reg, tmp_path):
    r = pull(tmp_path / "data", f"{basic_reg.host}/demo/app:v1", ca=basic_reg.ca_file,
             user=basic_reg.user, password=basic_reg.password)
    assert r["ok"], r
    assert r["layers"] == 5 and r["id"] == basic_reg.image["config"]
    # Pulling again finds everything in the store.
    r = pull(tmp_path / "data", f"{basic_reg.host}/demo/app:v1", ca=basic_reg.ca_file,
             user=basic_reg.user, password=basic_reg.password)
    assert r["ok"], r


def test_basic_auth_required(basic_reg, tmp_path):
    r = pull(tmp_path / "data", f"{basic_reg.host}/demo/app:v1", ca=basic_reg.ca_file)
    assert not r["ok"] and r["code"] == -EACCES
    assert "requires authentication" in r["error"], r["error"]


def test_wrong_password_is_a_clear_auth_error(basic_reg, tmp_path):
    r = pull(tmp_path / "data", f"{basic_reg.host}/demo/app:v1", ca=basic_reg.ca_file,
             user=basic_reg.user, password="Wr0ng-pass")
    assert not r["ok"] and r["code"] == -EACCES
    assert f"registry {basic_reg.host} rejected the credentials for user {basic_reg.user}" in r["error"]
    assert "Wr0ng-pass" not in r["error"] + r["stderr"]
    assert store_files(tmp_path / "data")["blobs"] == []


def test_unknown_tag_and_repo_are_not_found(basic_reg, tmp_path):
    r = pull(tmp_path / "data", f"{basic_reg.host}/demo/app:nope", ca=basic_reg.ca_file,
             user=basic_reg.user, password=basic_reg.password)
    assert not r["ok"] and r["code"] == -ENOENT
    assert "manifest unknown: demo/app:nope" in r["error"], r["error"]
    r = pull(tmp_path / "data", f"{basic_reg.host}/demo/nothing-here:v1", ca=basic_reg.ca_file,
             user=basic_reg.user, password=basic_reg.password)
    assert not r["ok"] and r["code"] == -ENOENT
    assert "demo/nothing-here" in r["error"], r["error"]
    # A digest that does not exist.
    r = pull(tmp_path / "data", f"{basic_reg.host}/demo/app@sha256:" + "0" * 64, ca=basic_reg.ca_file,
             user=basic_reg.user, password=basic_reg.password)
    assert not r["ok"] and r["code"] == -ENOENT, r


def test_pull_by_digest(basic_reg, tmp_path):
    ref = f"{basic_reg.host}/demo/app@{basic_reg.image['manifest']}"
    r = pull(tmp_path / "data", ref, ca=basic_reg.ca_file, user=basic_reg.user, password=basic_reg.password)
    assert r["ok"], r
    assert r["name"] == ref and r["manifest_digest"] == basic_reg.image["manifest"]


# -- redirects -----------------------------------------------------------------------------------
def test_redirect_does_not_leak_authorization(basic_reg, tmp_path):
    cert = (basic_reg.certs / "server.crt", basic_reg.certs / "server.key")
    with BlobServer(lambda d: basic_reg.blob_data_path(d).read_bytes(), cert) as cdn, \
            FrontProxy(basic_reg, cert, redirect_blobs=cdn) as front:
        r = pull(tmp_path / "data", f"{front.host}/demo/app:v1", ca=basic_reg.ca_file,
                 user=basic_reg.user, password=basic_reg.password)
        assert r["ok"], r
        # Credentials were used with the registry...
        manifests = front.matching("/manifests/")
        assert manifests and all(m["headers"].get("authorization", "").startswith("Basic ")
                                 for m in manifests)
        assert len(front.matching("/blobs/")) == 6  # config + 5 layers, each redirected
        # ...and never reached the other host:port.
        assert len(cdn.requests) == 6
        for req in cdn.requests:
            assert "authorization" not in req["headers"], req


def test_redirect_to_plain_http_is_refused(basic_reg, tmp_path):
    cert = (basic_reg.certs / "server.crt", basic_reg.certs / "server.key")
    with BlobServer(lambda d: basic_reg.blob_data_path(d).read_bytes(), None) as cdn, \
            FrontProxy(basic_reg, cert, redirect_blobs=cdn) as front:
        r = pull(tmp_path / "data", f"{front.host}/demo/app:v1", ca=basic_reg.ca_file,
                 user=basic_reg.user, password=basic_reg.password)
        assert not r["ok"]
        assert "non-HTTPS" in r["error"], r["error"]
        assert cdn.requests == []
        files = store_files(tmp_path / "data")
        assert files["blobs"] == [] and files["ingest"] == []


# -- retries -------------------------------------------------------------------------------------
def test_429_retry_after_then_success(basic_reg, tmp_path):
    cert = (basic_reg.certs / "server.crt", basic_reg.certs / "server.key")
    fail = [["/manifests/", 429, {"Retry-After": "1"}, 1], ["/blobs/", 503, {}, 2]]
    with FrontProxy(basic_reg, cert, fail=fail) as front:
        r = pull(tmp_path / "data", f"{front.host}/demo/app:v1", ca=basic_reg.ca_file,
                 user=basic_reg.user, password=basic_reg.password)
        assert r["ok"], r
        manifests = front.matching("/manifests/")
        assert len(manifests) == 2
        assert manifests[1]["t"] - manifests[0]["t"] >= 0.95  # Retry-After honoured
        assert len(front.matching("/blobs/")) == 6 + 2


def test_429_forever_gives_up(basic_reg, tmp_path):
    cert = (basic_reg.certs / "server.crt", basic_reg.certs / "server.key")
    with FrontProxy(basic_reg, cert, fail=[["/manifests/", 429, {"Retry-After": "0"}, 100]]) as front:
        r = pull(tmp_path / "data", f"{front.host}/demo/app:v1", ca=basic_reg.ca_file,
                 user=basic_reg.user, password=basic_reg.password)
        assert not r["ok"]
        assert "rate limiting" in r["error"], r["error"]
        assert len(front.matching("/manifests/")) == 5  # 1 + 4 retries, then stop


# -- cancel ----------------------------------------------------------------------------------------
def test_cancel_during_slow_transfer(basic_reg, tmp_path):
    big = tar_bytes([{"name": "big", "data": os.urandom(4 << 20)}])
    info = basic_reg.push_image("demo/big", "v1", [(big, big, OCI_LAYER_TAR)])
    cert = (basic_reg.certs / "server.crt", basic_reg.certs / "server.key")
    data = tmp_path / "data"
    with FrontProxy(basic_reg, cert, throttle=512 << 10) as front:
        r = pull(data, f"{front.host}/demo/big:v1", ca=basic_reg.ca_file, user=basic_reg.user,
                 password=basic_reg.password, cancel_after=600_000)
    assert not r["ok"] and r["code"] == -ECANCELED, r
    assert r["cancel_latency_ms"] < 1000, r
    assert "cancel" in r["error"]
    files = store_files(data)
    assert info["layers"][0].split(":")[1] not in files["blobs"]
    assert files["layers"] == [] and files["ingest"] == []
    # A clean re-pull afterwards.
    r = pull(data, f"{basic_reg.host}/demo/big:v1", ca=basic_reg.ca_file, user=basic_reg.user,
             password=basic_reg.password)
    assert r["ok"], r
    assert store_files(data)["ingest"] == []


# -- mirrors --------------------------------------------------------------------------------------
def test_docker_io_mirror(anon_reg, tmp_path):
    mirrors = [("docker.io", anon_reg.host)]
    r = pull(tmp_path / "data", "busybox", ca=anon_reg.ca_file, mirrors=mirrors)
    assert r["ok"], r
    assert r["name"] == "docker.io/library/busybox:latest"
    r = pull(tmp_path / "data", "conker/app:v1", ca=anon_reg.ca_file, mirrors=mirrors)
    assert r["ok"], r
    assert r["name"] == "docker.io/conker/app:v1" and r["layers"] == 2
    # A mirror only stands in for its own domain.
    r = pull(tmp_path / "data", f"{anon_reg.host}/demo/app:v1", ca=anon_reg.ca_file,
             mirrors=[("quay.io", "127.0.0.1:1")])
    assert r["ok"], r


# -- Bearer tokens ---------------------------------------------------------------------------------
def test_bearer_pull_with_credentials(token_reg, tokens, tmp_path):
    r = pull(tmp_path / "data", f"{token_reg.host}/demo/app:v1", ca=token_reg.ca_file,
             user="conker", password="t0ken-Passw0rd")
    assert r["ok"], r
    # One token for the whole pull (manifest, config and layers, three threads): the cache works.
    assert len(tokens.requests) == 1, tokens.requests
    q = tokens.requests[0]["query"]
    assert q["service"] == [TokenServer.SERVICE] and q["scope"] == ["repository:demo/app:pull"]
    assert tokens.requests[0]["headers"]["authorization"].startswith("Basic ")


def test_bearer_anonymous_with_access_token_field(token_reg, tokens, tmp_path):
    tokens.allow_anonymous, tokens.token_field = True, "access_token"
    r = pull(tmp_path / "data", f"{token_reg.host}/demo/app:v1", ca=token_reg.ca_file)
    assert r["ok"], r
    assert len(tokens.requests) == 1
    assert "authorization" not in tokens.requests[0]["headers"]


def test_bearer_anonymous_refused(token_reg, tokens, tmp_path):
    r = pull(tmp_path / "data", f"{token_reg.host}/demo/app:v1", ca=token_reg.ca_file)
    assert not r["ok"] and r["code"] == -EACCES, r


def test_bearer_wrong_password(token_reg, tokens, tmp_path):
    r = pull(tmp_path / "data", f"{token_reg.host}/demo/app:v1", ca=token_reg.ca_file,
             user="conker", password="n0t-it")
    assert not r["ok"] and r["code"] == -EACCES
    assert f"registry {token_reg.host} rejected the credentials for user conker" in r["error"], r["error"]
    assert "n0t-it" not in r["error"] + r["stderr"]


def test_bearer_rejected_token_no_401_loop(token_reg, tokens, tmp_path):
    tokens.audience = "someone-else"  # the registry refuses every token minted now
    r = pull(tmp_path / "data", f"{token_reg.host}/demo/app:v1", ca=token_reg.ca_file,
             user="conker", password="t0ken-Passw0rd")
    assert not r["ok"] and r["code"] == -EACCES, r
    assert len(tokens.requests) == 2  # the first token, one fresh retry, then stop
