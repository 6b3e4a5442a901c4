"""Pull policy `always` (the default, the seed's "always pull from remote register") against a
real docker-registry with htpasswd, seen through a counting proxy (helpers/registry_fetch.py):
a task gets a private image only with credentials the registry accepts, even when another task
already pulled it; a repeat pull of an unchanged tag transfers no blob, only the manifest is asked
again; DELETE of one task leaves another task that shares its image running. The other two
policies, missing and never, behave as documented."""

import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from helpers.conkerd import BUILD, Conkerd, free_published_port, skip_reason
from helpers.registry import Registry
from helpers.registry_fetch import FrontProxy

ROOT = Path(__file__).resolve().parents[2]
APP = os.path.join(BUILD, "src", "example-app", "conker-example-app")
P = "/sw/api/v1/container"
IMAGE = "reckey/conker-example-app:latest"


@contextlib.contextmanager
def start_env(tmp_path, policy_args=()):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if not os.path.exists(APP) or "statically linked" not in subprocess.run(
            ["file", APP], capture_output=True, text=True).stdout:
        pytest.skip("a static conker-example-app is needed (normal build)")
    with Registry(tmp_path / "registry", user="owner", password="owner-pw") as reg:
        subprocess.run(["bash", str(ROOT / "scripts" / "images.sh"), BUILD, reg.host, *reg.skopeo_dest_args()],
                       check=True, capture_output=True, timeout=180)
        with FrontProxy(reg, (reg.certs / "server.crt", reg.certs / "server.key")) as front:
            d = Conkerd(tmp_path, extra_args=["--registry-mirror", f"docker.io={front.host}",
                                              "--registry-ca-file", str(reg.ca_file), *policy_args])
            try:
                d.start()
                yield d, front
            finally:
                d.close()


@pytest.fixture
def env(tmp_path):
    # No --pull-policy: the default is under test.
    with start_env(tmp_path) as e:
        yield e


def create(d, name, auth):
    body = {"Name": name, "ImageInfo": {"ImageName": IMAGE},
            "Ports": [{"TargetPort": 8080, "PublishedPort": free_published_port()}]}
    if auth:
        body["ImageInfo"]["RegisterAuthInfo"] = {"Username": auth[0], "Password": auth[1]}
    r = d.api("POST", P, data=json.dumps(body))
    assert r.status_code == 200, r.text
    return r.json()["data"]["Id"], body["Ports"][0]["PublishedPort"]


def answers(port: int) -> bool:
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v1/getsecret", timeout=3)
            return True  # any HTTP answer: the app is up
        except requests.RequestException:
            time.sleep(0.3)
    return False


def blob_gets(front) -> list[dict]:
    return [r for r in front.matching("/blobs/") if r["method"] == "GET"]


def test_private_image_needs_own_credentials(env):
    d, front = env
    a, _ = create(d, "with-creds", ("owner", "owner-pw"))
    t = d.wait_status(a, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]

    # Same image, now in the store: without credentials, and with a wrong password, the task
    # fails at Pulling with the registry's refusal and never runs.
    for name, auth in (("no-creds", None), ("wrong-creds", ("owner", "not-the-password"))):
        tid, _ = create(d, name, auth)
        t = d.wait_status(tid, {"Running", "Failed"}, timeout=60)
        assert t["Status"] == "Failed", t["Events"]
        assert [e["Action"] for e in t["Events"]] == ["Pulling", "Failed"], t["Events"]
        msg = t["Events"][-1]["Message"]
        assert msg.startswith("Pulling failed: "), msg
        # The registry's 401, in words: "requires authentication" without credentials, "rejected
        # the credentials" with wrong ones.
        assert ("requires authentication" if auth is None else "credentials") in msg, msg
        assert t["ContainerInspect"]["State"]["Pid"] == 0 and t["ContainerInspect"]["Image"] == ""
        assert not (d.data / "containers" / tid / "rootfs").exists()
        assert d.api("DELETE", f"{P}/{tid}").status_code == 200
    assert d.task(a)["Status"] == "Running"
    assert d.api("DELETE", f"{P}/{a}", timeout=120).status_code == 200


def test_repeat_pull_transfers_no_blob_and_delete_keeps_the_sharer(env):
    d, front = env
    a, port_a = create(d, "first", ("owner", "owner-pw"))
    t = d.wait_status(a, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    first_blobs = len(blob_gets(front))
    assert first_blobs >= 2  # the config and at least one layer came through the proxy

    # The same tag again, unchanged: the registry is asked for the manifest (with this task's
    # credentials), and not one blob is transferred.
    seen_before = len(front.requests)
    b, port_b = create(d, "second", ("owner", "owner-pw"))
    t = d.wait_status(b, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    repeat = front.requests[seen_before:]
    # The registry ping (to learn the auth challenge) and one authenticated manifest GET; no blob
    # request of any kind.
    assert [r["path"] for r in repeat if "/manifests/" in r["path"]] == \
        ["/v2/reckey/conker-example-app/manifests/latest"], repeat
    assert all("authorization" in r["headers"] for r in repeat if "/manifests/" in r["path"]), repeat
    assert not [r for r in repeat if "/blobs/" in r["path"]], repeat
    assert d.task(a)["ContainerInspect"]["Image"] == t["ContainerInspect"]["Image"]

    # DELETE of the first task removes what only it had; the second, sharing the image, runs on.
    assert d.api("DELETE", f"{P}/{a}", timeout=120).status_code == 200
    assert d.task(b)["Status"] == "Running"
    assert answers(port_b)
    # And the image is still stored: a third task pulls no blob either.
    blobs_before = len(blob_gets(front))
    c, _ = create(d, "third", ("owner", "owner-pw"))
    t = d.wait_status(c, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    assert len(blob_gets(front)) == blobs_before
    for tid in (b, c):
        assert d.api("DELETE", f"{P}/{tid}", timeout=120).status_code == 200


def test_repeat_start_skips_the_ping_and_reuses_the_connection(env):
    """Within the helper's keep time (5 s) a second start of the unchanged image asks the registry
    one thing: the manifest, with this task's credentials, on a connection the first pull opened;
    no /v2/ ping, no token, no blob. The task runs the stored image."""
    d, front = env
    a, _ = create(d, "first", ("owner", "owner-pw"))
    t = d.wait_status(a, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    first = list(front.requests)
    assert [r["path"] for r in first if r["path"] == "/v2/"], first  # the first pull asked /v2/

    seen_before = len(front.requests)
    b, port_b = create(d, "second", ("owner", "owner-pw"))
    t = d.wait_status(b, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    repeat = front.requests[seen_before:]
    assert [r["path"] for r in repeat] == ["/v2/reckey/conker-example-app/manifests/latest"], repeat
    assert "authorization" in repeat[0]["headers"], repeat
    assert repeat[0]["peer"] in {r["peer"] for r in first}, (repeat, first)
    assert t["ContainerInspect"]["Image"] == d.task(a)["ContainerInspect"]["Image"]
    assert answers(port_b)
    for tid in (a, b):
        assert d.api("DELETE", f"{P}/{tid}", timeout=120).status_code == 200


def test_repeat_start_with_a_wrong_password_still_fails(env):
    """Two starts in a row with the right password both run, the second without the /v2/ ping;
    a third with a wrong password (the Basic scheme is known by then) is refused by the registry
    and fails cleanly at Pulling, and the next right one runs again."""
    d, front = env
    ids = []
    for name in ("one", "two"):
        seen_before = len(front.requests)
        tid, _ = create(d, name, ("owner", "owner-pw"))
        t = d.wait_status(tid, {"Running", "Failed"}, timeout=120)
        assert t["Status"] == "Running", t["Events"]
        ids.append(tid)
    assert "/v2/" not in [r["path"] for r in front.requests[seen_before:]], front.requests[seen_before:]

    tid, _ = create(d, "wrong", ("owner", "not-the-password"))
    t = d.wait_status(tid, {"Running", "Failed"}, timeout=60)
    assert t["Status"] == "Failed", t["Events"]
    assert [e["Action"] for e in t["Events"]] == ["Pulling", "Failed"], t["Events"]
    msg = t["Events"][-1]["Message"]
    assert msg.startswith("Pulling failed: ") and "rejected the credentials for user owner" in msg, msg
    assert "not-the-password" not in d.log()
    assert t["ContainerInspect"]["State"]["Pid"] == 0
    assert not (d.data / "containers" / tid).exists() or not mounted(str(d.data / "containers" / tid / "rootfs"))
    assert d.api("DELETE", f"{P}/{tid}").status_code == 200

    tid, _ = create(d, "right-again", ("owner", "owner-pw"))
    t = d.wait_status(tid, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    for x in (*ids, tid):
        assert d.api("DELETE", f"{P}/{x}", timeout=120).status_code == 200


@pytest.mark.parametrize("policy", ["missing", "never"])
def test_other_policies(tmp_path, policy):
    """missing: a stored image is used without asking the registry (so a task without credentials
    runs what another pulled, as documented); never: only the store, so the first task fails."""
    with start_env(tmp_path, ["--pull-policy", policy]) as (d, front):
        a, _ = create(d, "first", ("owner", "owner-pw"))
        t = d.wait_status(a, {"Running", "Failed"}, timeout=120)
        if policy == "never":
            assert t["Status"] == "Failed", t["Events"]
            assert "not in the store and pull-policy is never" in t["Events"][-1]["Message"], t["Events"]
            assert front.requests == []
        else:
            assert t["Status"] == "Running", t["Events"]
            seen_before = len(front.requests)
            b, _ = create(d, "no-creds", None)
            t = d.wait_status(b, {"Running", "Failed"}, timeout=120)
            assert t["Status"] == "Running", t["Events"]
            assert front.requests[seen_before:] == []
            assert d.api("DELETE", f"{P}/{b}", timeout=120).status_code == 200
        assert d.api("DELETE", f"{P}/{a}", timeout=120).status_code == 200


def test_tag_moved_discards_the_rootfs_mounted_ahead(env, tmp_path):
    """The start mounts the rootfs of the image stored under the reference while the pull asks the
    registry; when the tag has moved meanwhile, that rootfs is dropped and the task runs the
    image the registry named (its config, its ID measured and shown), never the stored one."""
    d, front = env
    a, port_a = create(d, "before", ("owner", "owner-pw"))
    t = d.wait_status(a, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    old_id = t["ContainerInspect"]["Image"]

    # A new image under the same tag: same layer, another config (one more variable).
    layout = tmp_path / "moved"
    subprocess.run(["cp", "-a", os.path.join(BUILD, "images", "conker-example-app"), str(layout)], check=True)
    subprocess.run(["umoci", "config", "--image", f"{layout}:latest", "--config.env", "MOVED=yes"],
                   check=True, capture_output=True)
    reg = front.upstream
    subprocess.run(["skopeo", "copy", "--quiet", *reg.skopeo_dest_args(), f"oci:{layout}:latest",
                    f"docker://{reg.host}/{IMAGE}"], check=True, capture_output=True, timeout=120)

    b, port_b = create(d, "after", ("owner", "owner-pw"))
    t = d.wait_status(b, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]
    new_id = t["ContainerInspect"]["Image"]
    assert new_id != old_id
    assert "MOVED=yes" in t["ContainerInspect"]["Config"]["Env"], t["ContainerInspect"]["Config"]
    log = d.log()
    assert f"is image {new_id} now, not {old_id}: the rootfs mounted ahead is discarded" in log, log[-3000:]
    # The running container is the new image's: its process sees the new variable.
    pid = t["ContainerInspect"]["State"]["Pid"]
    with open(f"/proc/{pid}/environ", "rb") as f:
        assert b"MOVED=yes" in f.read().split(b"\0")
    assert answers(port_b)
    assert d.task(a)["Status"] == "Running"
    for tid in (a, b):
        assert d.api("DELETE", f"{P}/{tid}", timeout=120).status_code == 200


def test_cancel_while_the_manifest_is_asked_removes_the_early_rootfs(env):
    """A cancel while the registry has not answered the manifest yet, with the rootfs of the
    stored image already mounted for the task: the task ends Cancelled, nothing ran, and its
    rootfs mount and directory are gone; the task that shares the image runs on."""
    d, front = env
    a, _ = create(d, "sharer", ("owner", "owner-pw"))
    t = d.wait_status(a, {"Running", "Failed"}, timeout=120)
    assert t["Status"] == "Running", t["Events"]

    asked, release = threading.Event(), threading.Event()

    def stall_manifest(path, body):
        if "/manifests/" in path:
            asked.set()
            release.wait(30)
        return body

    front.mutate = stall_manifest
    try:
        b, _ = create(d, "cancelled", ("owner", "owner-pw"))
        assert asked.wait(30), "the manifest was never asked for"
        rootfs = str(d.data / "containers" / b / "rootfs")
        deadline = time.time() + 20
        while time.time() < deadline and not mounted(rootfs):
            time.sleep(0.01)
        assert mounted(rootfs), "the rootfs was not mounted during the pull"
        assert d.task(b)["Status"] == "Pulling"
        assert d.api("POST", f"{P}/{b}/cancel").status_code == 200
        t = d.wait_status(b, {"Cancelled", "Failed", "Running"}, timeout=60)
    finally:
        release.set()
        front.mutate = None
    assert t["Status"] == "Cancelled", t["Events"]
    assert [e["Action"] for e in t["Events"]] == ["Pulling", "Cancelled"], t["Events"]
    assert t["ContainerInspect"]["State"]["Pid"] == 0
    assert not mounted(rootfs)
    assert not (d.data / "containers" / b).exists()
    assert d.task(a)["Status"] == "Running"
    for tid in (a, b):
        assert d.api("DELETE", f"{P}/{tid}", timeout=120).status_code == 200


def mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)
