"""conkerd's API against its OpenAPI 3.1 document (docs/openapi.yaml): the document itself, the
seed's example task document (tests/data/seed/task-document.json) as a fixture, and the real
answers of every documented operation, success and error envelopes, from a conkerd running the
example app out of a local registry. Every operation of the document must be exercised."""

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from helpers.conkerd import BUILD, Conkerd, free_published_port, skip_reason
from helpers.openapi import OpenApi
from helpers.registry import Registry
from helpers.seedshape import mismatches

ROOT = Path(__file__).resolve().parents[2]
APP = os.path.join(BUILD, "src", "example-app", "conker-example-app")
SEED_DOC = ROOT / "tests" / "data" / "seed" / "task-document.json"
P = "/sw/api/v1/container"


def test_document_is_valid_openapi_31():
    OpenApi().check_document()


def test_seed_example_validates():
    """The seed README's example answer is a valid task document of our schema (so a client
    written against the seed reads ours), and the schema is not vacuous: breaking a seed field
    fails validation."""
    api = OpenApi()
    doc = json.loads(SEED_DOC.read_text())
    api.validate_component("Task", doc)
    for breakage in (lambda d: d.pop("IsCancel"), lambda d: d["Events"][0].pop("Action"),
                     lambda d: d["ContainerInspect"]["State"].__setitem__("Pid", "1"),
                     lambda d: d["ContainerInspect"]["Config"].__setitem__("Cmd", "x"),
                     lambda d: d["ContainerConf"]["ImageInfo"].pop("RegisterAuthInfo")):
        broken = json.loads(SEED_DOC.read_text())
        breakage(broken)
        with pytest.raises(Exception):
            api.validate_component("Task", broken)
        assert mismatches(doc, broken)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if not os.path.exists(APP) or "statically linked" not in subprocess.run(
            ["file", APP], capture_output=True, text=True).stdout:
        pytest.skip("a static conker-example-app is needed (normal build)")
    tmp = tmp_path_factory.mktemp("schema")
    with Registry(tmp / "registry", user="user", password="pass") as reg:
        subprocess.run(["bash", str(ROOT / "scripts" / "images.sh"), BUILD, reg.host, *reg.skopeo_dest_args()],
                       check=True, capture_output=True, timeout=180)
        d = Conkerd(tmp, extra_args=["--registry-mirror", f"docker.io={reg.host}",
                                     "--registry-ca-file", str(reg.ca_file)])
        try:
            d.start()
            yield d
        finally:
            d.close()


def test_every_route(daemon):
    d, api = daemon, OpenApi()

    def call(method, path, token="default", **kw):
        r = d.api(method, path, token=token, **kw)
        api.validate(method, path, r)
        return r

    # Open health; an empty list; the newest task when there is none.
    assert call("GET", "/sw/api/v1/pub/health", token=None).status_code == 200
    # No attested identity on this plain-HTTP daemon (test_conkerd_attest.py checks the 200).
    assert call("GET", "/sw/api/v1/pub/attest?nonce=" + "00" * 32, token=None).status_code == 404
    assert call("GET", "/metrics").status_code == 200
    assert call("GET", "/metrics", token=None).status_code == 401
    assert call("GET", "/sw/api/v1/containers").json()["data"] == []
    assert call("GET", P).status_code == 404
    # Bad input: each a 4xx with the envelope.
    assert call("POST", P, data="{not json").status_code == 400
    assert call("POST", P, data=json.dumps({"ImageInfo": {"ImageName": "busybox"}, "Extra": 1})).status_code == 400
    assert call("POST", P, token=None, data="{}").status_code == 401
    assert call("POST", "/sw/api/v1/containers").status_code == 405
    for route in ("", "/events", "/logs", "/cancel"):
        method = "POST" if route == "/cancel" else "GET"
        assert call(method, f"{P}/ffffffffffffffffffffffffffffffff{route}").status_code == 404
    assert call("DELETE", f"{P}/nope").status_code == 404

    # A task that runs (the seed's request without KMS endpoints).
    port = free_published_port()
    body = {"Name": "schema-app",
            "ImageInfo": {"ImageName": "reckey/conker-example-app:latest",
                          "RegisterAuthInfo": {"Username": "user", "Password": "pass"}},
            "Ports": [{"TargetPort": 8080, "PublishedPort": port}], "Env": ["A=b"],
            "Mounts": [], "KmsEndpoints": []}
    r = call("POST", P, data=json.dumps(body))
    assert r.status_code == 200, r.text
    tid = r.json()["data"]["Id"]
    t = d.wait_status(tid, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    assert t["IsCancel"] is False
    for path in (P, f"{P}/{tid}", f"{P}/{tid[:12]}", f"{P}/schema-app"):
        assert call("GET", path).json()["data"]["Id"] == tid
    listing = call("GET", "/sw/api/v1/containers").json()["data"]
    assert [x["Id"] for x in listing] == [tid]
    events = call("GET", f"{P}/{tid}/events").json()["data"]
    assert [e["Action"] for e in events] == ["Pulling", "Pulled", "Creating", "Created", "Starting", "Running"]
    r = call("GET", f"{P}/{tid}/logs", params={"tail": "10"}, stream=True, timeout=10)
    assert r.status_code == 200
    r.close()
    # Cancel of a running task: 409, both forms.
    assert call("POST", f"{P}/{tid}/cancel").status_code == 409
    assert call("POST", f"{P}/cancel").status_code == 409

    # A task whose pull hangs (a registry that accepts connections and never answers): cancel
    # of the newest task, then DELETE of the newest task.
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        ref = f"127.0.0.1:{hang.getsockname()[1]}/hang/app:1"
        r = call("POST", P, data=json.dumps({"ImageInfo": {"ImageName": ref}}))
        assert r.status_code == 200, r.text
        hung = r.json()["data"]["Id"]
        assert call("GET", P).json()["data"]["Status"] == "Pulling"
        assert call("POST", f"{P}/cancel").status_code == 200
        t = d.wait_status(hung, {"Cancelled", "Failed"}, timeout=30)
        assert t["Status"] == "Cancelled" and t["IsCancel"] is True, t["Events"]
        api.validate_component("Task", t)
        assert call("DELETE", P).json()["data"]["Id"] == hung

    # Another hung task, cancelled by ID.
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        r = call("POST", P, data=json.dumps({"ImageInfo": {"ImageName": f"127.0.0.1:{hang.getsockname()[1]}/h:1"}}))
        hung = r.json()["data"]["Id"]
        assert call("POST", f"{P}/{hung}/cancel").status_code == 200
        d.wait_status(hung, {"Cancelled"}, timeout=30)
        assert call("DELETE", f"{P}/{hung}").status_code == 200

    assert call("DELETE", f"{P}/{tid}", timeout=120).status_code == 200
    assert call("GET", "/sw/api/v1/containers").json()["data"] == []
    assert api.seen == api.operations(), f"not exercised: {api.operations() - api.seen}"
