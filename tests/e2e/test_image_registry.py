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

ECANCELED, EACCES, ENOENT, EBADMSG, EMSGSIZE = 125, 13, 2, 74, 90


def driver_bin() -> str:
    build = os.environ.get("CONKER_BUILD", str(Path(__file__).resolve().parents[2] / "build"))
    path = Path(build) / "src/image/pull-driver"
    if not path.exists():
        pytest.skip(f"{path} not built")
    return str(path)


def pull(data: Path, ref: str, ca=None, user=None, password=None, mirrors=(), insecure=(),
         cancel_after=None, cancel_after_ms=None, timeout=120) -> dict:
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
    if cancel_after_ms:
        cmd += ["--cancel-after-ms", str(cancel_after_ms)]
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


def images(data: Path) -> list:
    """The image records of a store, through `conker image ls --json`."""
    conker = Path(driver_bin()).parents[1] / "cli/conker"
    if not (data / "conker.db").exists() and not data.exists():
        return []
    p = subprocess.run([str(conker), "image", "ls", "--json", "--data-dir", str(data)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def assert_nothing_partial(data: Path, bad_digest: str):
    """After a failed pull: no image record, the bad blob absent, no temp files. Verified blobs
    and layers fetched before the failure stay as cache for the next pull."""
    files = store_files(data)
    assert bad_digest.split(":")[1] not in files["blobs"]
    assert files["ingest"] == []
    assert not any(n.endswith(".tmp") for n in files["layers"])
    assert images(data) == []


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


# -- multi-platform indexes ---------------------------------------------------------------------
def manifest_desc(reg, repo, digest, platform=None, annotations=None) -> dict:
    r = reg.session().get(f"{reg.url}/v2/{repo}/manifests/{digest}",
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    r.raise_for_status()
    d = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": len(r.content)}
    if platform:
        d["platform"] = platform
    if annotations:
        d["annotations"] = annotations
    return d


def test_index_selects_linux_amd64(basic_reg, tmp_path):
    repo = "demo/multiarch"
    arm = basic_reg.push_image(repo, "arm", small_layers(1, "arm"), {"architecture": "arm64"})
    amd = basic_reg.push_image(repo, "amd", small_layers(2, "amd"))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        manifest_desc(basic_reg, repo, arm["manifest"], {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        manifest_desc(basic_reg, repo, arm["manifest"], {"os": "unknown", "architecture": "unknown"},
                      {"vnd.docker.reference.type": "attestation-manifest"}),
        manifest_desc(basic_reg, repo, amd["manifest"], {"os": "linux", "architecture": "amd64"}),
    ]}
    index_digest = basic_reg.push_manifest(repo, "v1", index, "application/vnd.oci.image.index.v1+json")

    r = pull(tmp_path / "data", f"{basic_reg.host}/{repo}:v1", ca=basic_reg.ca_file, user=basic_reg.user,
             password=basic_reg.password)
    assert r["ok"], r
    assert r["id"] == amd["config"] and r["layers"] == 2
    assert r["manifest_digest"] == index_digest  # what the tag points to
    blobs = store_files(tmp_path / "data")["blobs"]
    assert not any(d.split(":")[1] in blobs for d in arm["layers"])

    # The arm64 image alone, by its own tag: refused rather than run on the wrong CPU.
    r = pull(tmp_path / "data", f"{basic_reg.host}/{repo}:arm", ca=basic_reg.ca_file, user=basic_reg.user,
             password=basic_reg.password)
    assert not r["ok"] and "not linux/amd64" in r["error"], r

    # An index without amd64 names what it has.
    only_arm = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": index["manifests"][:1]}
    basic_reg.push_manifest(repo, "armonly", only_arm, "application/vnd.oci.image.index.v1+json")
    r = pull(tmp_path / "data", f"{basic_reg.host}/{repo}:armonly", ca=basic_reg.ca_file, user=basic_reg.user,
             password=basic_reg.password)
    assert not r["ok"] and r["code"] == -ENOENT
    assert "no linux/amd64" in r["error"] and "linux/arm64/v8" in r["error"], r["error"]


def test_index_nesting_is_bounded(basic_reg, tmp_path):
    """Indexes may nest (an entry without a platform that is itself an index), but only
    IMAGE_INDEX_DEPTH_MAX (3) deep: a longer chain is refused instead of followed."""
    repo = "demo/nested"
    amd = basic_reg.push_image(repo, "amd", small_layers(1, "nest"))
    desc = manifest_desc(basic_reg, repo, amd["manifest"], {"os": "linux", "architecture": "amd64"})
    for level in range(1, 5):
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]}
        body = json.dumps(index, separators=(",", ":")).encode()
        digest = basic_reg.push_manifest(repo, f"n{level}", index, "application/vnd.oci.image.index.v1+json")
        desc = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": len(body)}

    # Three indexes above the manifest: followed.
    r = pull(tmp_path / "data", f"{basic_reg.host}/{repo}:n3", ca=basic_reg.ca_file, user=basic_reg.user,
             password=basic_reg.password)
    assert r["ok"], r
    assert r["id"] == amd["config"]
    # Four: refused.
    r = pull(tmp_path / "data4", f"{basic_reg.host}/{repo}:n4", ca=basic_reg.ca_file, user=basic_reg.user,
             password=basic_reg.password)
    assert not r["ok"] and r["code"] == -40, r  # ELOOP
    assert "nested deeper than 3" in r["error"], r["error"]


# -- registries that lie ---------------------------------------------------------------------------
def lying_pull(reg, tmp_path, mutate, ref):
    cert = (reg.certs / "server.crt", reg.certs / "server.key")
    with FrontProxy(reg, cert, mutate=mutate) as front:
        return pull(tmp_path / "data", f"{front.host}/{ref}", ca=reg.ca_file, user=reg.user,
                    password=reg.password)


def test_manifest_by_digest_is_verified(basic_reg, tmp_path):
    r = lying_pull(basic_reg, tmp_path, lambda path, body: body + b" " if "/manifests/" in path else body,
                   f"demo/app@{basic_reg.image['manifest']}")
    assert not r["ok"] and r["code"] == -EBADMSG
    assert "digest mismatch" in r["error"], r["error"]
    assert store_files(tmp_path / "data")["blobs"] == []


def test_manifest_size_cap(basic_reg, tmp_path):
    r = lying_pull(basic_reg, tmp_path,
                   lambda path, body: body + b" " * (5 << 20) if "/manifests/" in path else body, "demo/app:v1")
    assert not r["ok"] and r["code"] == -EMSGSIZE
    assert "larger than allowed" in r["error"], r["error"]


def test_blob_longer_than_its_descriptor(basic_reg, tmp_path):
    layer = basic_reg.image["layers"][2]
    r = lying_pull(basic_reg, tmp_path, lambda path, body: body + b"x" if path.endswith(layer) else body,
                   "demo/app:v1")
    assert not r["ok"] and r["code"] == -EMSGSIZE
    assert f"layer 3/5 {layer}" in r["error"], r["error"]
    assert_nothing_partial(tmp_path / "data", layer)


def test_blob_with_flipped_byte(basic_reg, tmp_path):
    layer = basic_reg.image["layers"][0]

    def flip(path, body):
        return bytes([body[0] ^ 1]) + body[1:] if path.endswith(layer) else body

    r = lying_pull(basic_reg, tmp_path, flip, "demo/app:v1")
    assert not r["ok"]
    assert f"layer 1/5 {layer}" in r["error"] and "mismatch" in r["error"], r["error"]
    assert_nothing_partial(tmp_path / "data", layer)
    assert store_files(tmp_path / "data")["layers"] == []  # layer 1 failed: nothing unpacked


def test_failed_pull_leaves_the_store_as_before(basic_reg, tmp_path):
    """Layer 3 of 4 lies: the pull fails and discards what it fetched (config, layers 1, 2 and
    4 as far as they got, and their unpacked dirs), but not the layer it shares with an image
    already in the store."""
    shared = small_layers(1, "shared")
    basic_reg.push_image("demo/base", "v1", shared)
    four = basic_reg.push_image("demo/four", "v1", shared + small_layers(3, "four"))
    data = tmp_path / "data"
    r = pull(data, f"{basic_reg.host}/demo/base:v1", ca=basic_reg.ca_file, user=basic_reg.user,
             password=basic_reg.password)
    assert r["ok"], r
    before, images_before = store_files(data), images(data)
    assert len(before["blobs"]) == 2 and len(before["layers"]) == 1 and len(images_before) == 1

    bad = four["layers"][2]
    r = lying_pull(basic_reg, tmp_path, lambda path, body: body + b"x" if path.endswith(bad) else body,
                   "demo/four:v1")
    assert not r["ok"] and r["code"] == -EMSGSIZE
    assert f"layer 3/4 {bad}" in r["error"], r["error"]
    assert store_files(data) == before
    assert images(data) == images_before


def test_certificate_for_another_name_is_refused(basic_reg, tmp_path):
    """A certificate the trusted CA issued for another name does not authenticate this
    registry: the pull fails at the handshake, before any request."""
    d = tmp_path / "other-name"
    d.mkdir()
    key, csr, crt, ext = d / "k.pem", d / "r.csr", d / "c.pem", d / "ext"
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=other.example"], check=True, capture_output=True)
    ext.write_text("subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", basic_reg.certs / "ca.crt",
                    "-CAkey", basic_reg.certs / "ca.key", "-CAcreateserial", "-out", crt, "-days", "2",
                    "-extfile", ext], check=True, capture_output=True)
    with FrontProxy(basic_reg, (crt, key)) as front:
        r = pull(tmp_path / "data", f"{front.host}/demo/app:v1", ca=basic_reg.ca_file,
                 user=basic_reg.user, password=basic_reg.password)
        assert not r["ok"], r
        assert front.requests == []


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


# -- interrupted transfers ---------------------------------------------------------------------
@pytest.mark.parametrize("ignore_range", [False, True], ids=["range-206", "range-ignored-200"])
def test_interrupted_blob_resumes(basic_reg, tmp_path, ignore_range):
    big = tar_bytes([{"name": "resume", "data": os.urandom(1 << 20)}])
    info = basic_reg.push_image("demo/resume", "v1", [(big, big, OCI_LAYER_TAR)])
    cert = (basic_reg.certs / "server.crt", basic_reg.certs / "server.key")
    with FrontProxy(basic_reg, cert, drop_blobs=1, ignore_range=ignore_range) as front:
        r = pull(tmp_path / "data", f"{front.host}/demo/resume:v1", ca=basic_reg.ca_file,
                 user=basic_reg.user, password=basic_reg.password)
        assert r["ok"], r
        assert r["id"] == info["config"]
        blob_reqs = front.matching("/blobs/")
        ranged = [b for b in blob_reqs if "range" in b["headers"]]
        assert len(ranged) == 1, blob_reqs  # exactly one resume...
        assert ranged[0]["headers"]["range"].startswith("bytes=") and not ranged[0]["headers"]["range"].startswith(
            "bytes=0-")  # ...from where the first attempt stopped


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
    print(f"cancel latency {r['cancel_latency_ms']} ms")
    assert "cancel" in r["error"]
    assert_nothing_partial(data, info["layers"][0])
    assert store_files(data)["layers"] == []
    # A clean re-pull afterwards.
    r = pull(data, f"{basic_reg.host}/demo/big:v1", ca=basic_reg.ca_file, user=basic_reg.user,
             password=basic_reg.password)
    assert r["ok"], r
    assert store_files(data)["ingest"] == []


def test_cancel_during_stalled_transfer(basic_reg, tmp_path):
    cert = (basic_reg.certs / "server.crt", basic_reg.certs / "server.key")
    data = tmp_path / "data"
    with FrontProxy(basic_reg, cert, stall_blobs=True) as front:
        r = pull(data, f"{front.host}/demo/app:v1", ca=basic_reg.ca_file, user=basic_reg.user,
                 password=basic_reg.password, cancel_after_ms=1500)
    assert not r["ok"] and r["code"] == -ECANCELED, r
    assert r["cancel_latency_ms"] < 1000, r
    print(f"cancel latency {r['cancel_latency_ms']} ms")
    assert store_files(data)["ingest"] == [] and images(data) == []


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
