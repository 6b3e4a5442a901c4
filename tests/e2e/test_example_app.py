"""The demo app (conker-example-app): serves $SECRET_DIR/$userId.json JSON-escaped on
GET /api/v1/getsecret, bounded request handling, clean exit on SIGTERM."""
import json
import os
import socket
import subprocess
import time

import pytest

BUILD = os.environ.get("CONKER_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
APP = os.path.join(BUILD, "src", "example-app", "conker-example-app")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, raw, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, body


@pytest.fixture
def app(tmp_path):
    if not os.path.exists(APP):
        pytest.skip("conker-example-app not built")
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    port = free_port()
    env = {"PORT": str(port), "SECRET_DIR": str(secret_dir), "userId": "secret-127.0.0.1:3333"}
    proc = subprocess.Popen([APP], env=env, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, secret_dir, proc
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_static_binary():
    if not os.path.exists(APP):
        pytest.skip("conker-example-app not built")
    out = subprocess.run(["file", APP], capture_output=True, text=True).stdout
    if "sanitize" in BUILD or "asan" in BUILD:
        pytest.skip("sanitizer builds are not static")
    assert "statically linked" in out


def test_getsecret(app):
    port, secret_dir, _ = app
    content = '{"password": "p\\"w\\n", "tab":"\t"}\n'
    (secret_dir / "secret-127.0.0.1:3333.json").write_text(content)
    status, body = request(port, b"GET /api/v1/getsecret HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    doc = json.loads(body)
    assert doc == {"code": 200, "message": "get secret successful", "data": content}


def test_missing_secret_and_unknown_path(app):
    port, _, _ = app
    status, body = request(port, b"GET /api/v1/getsecret HTTP/1.1\r\n\r\n")
    assert status == 404 and json.loads(body)["code"] == 404
    status, body = request(port, b"GET /nope HTTP/1.1\r\n\r\n")
    assert status == 404
    status, _ = request(port, b"POST /api/v1/getsecret HTTP/1.1\r\n\r\n")
    assert status == 405
    status, _ = request(port, b"garbage\r\n\r\n")
    assert status == 400


def test_oversized_request_is_bounded(app):
    port, secret_dir, _ = app
    (secret_dir / "secret-127.0.0.1:3333.json").write_text("{}")
    # A head larger than the 8 KiB cap is cut off: the app answers from what it read (the
    # request line) or refuses, and keeps serving.
    try:
        request(port, b"GET /api/v1/getsecret HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
    except (ConnectionResetError, BrokenPipeError):
        pass
    status, _ = request(port, b"GET /api/v1/getsecret HTTP/1.1\r\n\r\n")
    assert status == 200


def test_sigterm_exits_cleanly(app):
    _, _, proc = app
    proc.terminate()
    assert proc.wait(timeout=5) == 0


def test_make_images_and_push(registry):
    """scripts/images.sh builds conker-example-app:latest and pushes it as reckey/conker-example-app."""
    if not os.path.exists(APP) or "statically linked" not in subprocess.run(["file", APP], capture_output=True,
                                                                          text=True).stdout:
        pytest.skip("a static conker-example-app is needed")
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    subprocess.run(["bash", os.path.join(root, "scripts", "images.sh"), BUILD, registry.host,
                    *registry.skopeo_dest_args()], check=True, capture_output=True, timeout=120)
    s = registry.session()
    r = s.get(f"{registry.url}/v2/reckey/conker-example-app/manifests/latest",
              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 200, r.text
    manifest = r.json()
    assert len(manifest["layers"]) == 1
    config = s.get(f"{registry.url}/v2/reckey/conker-example-app/blobs/{manifest['config']['digest']}").json()
    assert config["config"]["Entrypoint"] == ["/conker-example-app"]
    assert "8080/tcp" in config["config"]["ExposedPorts"]
