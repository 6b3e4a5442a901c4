"""conkerd's pull helper (conker-fetch, src/fetch/): one process per pull, started by conkerd.

- the registry password reaches the helper over its socket only: never its argv or environment;
- a helper killed mid-pull fails the task with a reason that says so, and leaves no helper behind;
- a cancel stops the pull (its helper, kept idle for the next pull, is ended after its idle
  time), and conkerd's own death ends a helper mid-pull;
- conkerd itself links neither libcurl nor libarchive (the point of the helper).

The pulls go through a throttling relay so that there is time to look at the helper."""
import json
import os
import signal
import subprocess
from pathlib import Path

from helpers.conkerd import BUILD, Conkerd, wait_for
from helpers.registry import Registry
from helpers.throttle import ThrottleProxy
from test_conkerd_flow import P, needs, push_example

REF_PATH = "reckey/conker-example-app:latest"


def helpers_of(pid: int) -> list[int]:
    """The conker-fetch children of pid."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == "conker-fetch" and ppid == pid:
            found.append(int(d.name))
    return found


def start_pull(d: Conkerd, name: str, ref: str, user=None, password=None):
    image = {"ImageName": ref}
    if user:
        image["RegisterAuthInfo"] = {"Username": user, "Password": password}
    r = d.api("POST", P, data=json.dumps({"Name": name, "ImageInfo": image}))
    assert r.status_code == 200, r.text
    return wait_for(lambda: helpers_of(d.proc.pid), 60, "the pull helper")[0]


def test_helper_killed_mid_pull_and_credentials(tmp_path):
    needs()
    with Registry(tmp_path / "registry", tls=True, auth=True) as reg:
        push_example(reg)
        with ThrottleProxy(reg.port, rate=8 * 1024) as proxy:
            host = f"127.0.0.1:{proxy.port}"
            with Conkerd(tmp_path, extra_args=["--registry-ca-file", str(reg.ca_file)]) as d:
                pid = start_pull(d, "victim", f"{host}/{REF_PATH}", reg.user, reg.password)
                # The password crosses the socket only.
                for f in ("cmdline", "environ"):
                    assert reg.password.encode() not in Path(f"/proc/{pid}/{f}").read_bytes(), f
                wait_for(lambda: d.task("victim").get("Progress", {}).get("Phase") == "downloading", 60,
                         "the download")
                os.kill(pid, signal.SIGKILL)
                t = d.wait_status("victim", {"Failed", "Running", "Cancelled"}, timeout=30)
                assert t["Status"] == "Failed", t["Events"]
                msg = t["Events"][-1]["Message"]
                assert "image pull helper" in msg and "killed by signal 9" in msg, msg
                assert reg.password not in d.log()
                assert helpers_of(d.proc.pid) == []
                # The next pull of the same image works (nothing half-made blocks it).
                proxy.rate = 10 * 1024 * 1024
                r = d.api("POST", P, data=json.dumps({"Name": "after", "ImageInfo": {
                    "ImageName": f"{host}/{REF_PATH}",
                    "RegisterAuthInfo": {"Username": reg.user, "Password": reg.password}}}))
                assert r.status_code == 200, r.text
                t = d.wait_status("after", {"Failed", "Running"}, timeout=120)
                assert t["Status"] == "Running", t["Events"]
                assert d.api("DELETE", f"{P}/after").status_code == 200


def test_cancel_and_conkerd_death_end_the_helper(tmp_path):
    needs()
    with Registry(tmp_path / "registry", tls=False, auth=False) as reg:
        push_example(reg)
        with ThrottleProxy(reg.port, rate=8 * 1024) as proxy:
            host = f"127.0.0.1:{proxy.port}"
            with Conkerd(tmp_path, extra_args=["--insecure-registry", host]) as d:
                pid = start_pull(d, "slow", f"{host}/{REF_PATH}")
                r = d.api("POST", f"{P}/slow/cancel")
                assert r.status_code == 200, r.text
                t = d.wait_status("slow", {"Cancelled", "Failed"}, timeout=30)
                assert t["Status"] == "Cancelled", t["Events"]
                # Kept idle for the next pull, then ended (5 s).
                wait_for(lambda: not Path(f"/proc/{pid}").exists() or helpers_of(d.proc.pid) == [], 30,
                         "the helper to exit after its idle time")

                # conkerd killed: the helper sees its socket close and stops on its own.
                pid = start_pull(d, "orphan", f"{host}/{REF_PATH}")
                d.kill9()
                wait_for(lambda: not Path(f"/proc/{pid}/stat").exists()
                         or Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z", 30,
                         "the orphaned helper to exit")


def test_conkerd_maps_no_pull_libraries():
    """What the helper is for: conkerd links neither libcurl nor libarchive (the helper does)."""
    conkerd = os.path.join(BUILD, "src", "conkerd", "conkerd")
    out = subprocess.run(["readelf", "-d", conkerd], capture_output=True, text=True, check=True).stdout
    needed = [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
    assert needed, out
    assert not [n for n in needed if n.startswith(("libcurl", "libarchive", "libisal", "libzstd"))], needed
    fetch = os.path.join(BUILD, "src", "conker-fetch", "conker-fetch")
    out = subprocess.run(["readelf", "-d", fetch], capture_output=True, text=True, check=True).stdout
    assert "libcurl" in out and "libarchive" in out


def test_helper_refuses_an_overlong_password(tmp_path):
    """conker-fetch itself bounds the password message (4096 bytes), whatever conkerd sends: over
    that it stops before the pull (no result, an error exit); at the bound it goes on to the pull,
    which then fails further on (here: a password without a user name), not on its length."""
    import socket
    import sys

    helper = os.path.join(BUILD, "src", "conker-fetch", "conker-fetch")
    if not os.access(helper, os.X_OK):
        import pytest
        pytest.skip(f"{helper} not built")
    req = {"ref": "127.0.0.1:1/none:latest", "data_dir": str(tmp_path / "data"), "layer_format": "dir",
           "max_blob_size": 1, "max_layer_unpacked": 1, "max_layer_entries": 1, "max_ratio": 1,
           "mirrors": [], "insecure": []}
    for size, refused in ((4097, True), (4096, False)):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        trampoline = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.close(int(sys.argv[1])); " \
                     "os.execv(sys.argv[2], sys.argv[2:])"
        p = subprocess.Popen([sys.executable, "-c", trampoline, str(b.fileno()), helper],
                             pass_fds=(b.fileno(),), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        b.close()
        result = None
        try:
            a.settimeout(60)
            a.send(b"R" + json.dumps(req).encode())
            a.send(b"P" + b"p" * size)
            while True:
                try:
                    m = a.recv(65536)
                except ConnectionResetError:
                    break
                if not m:
                    break
                if m[:1] == b"r":
                    result = json.loads(m[1:])
                    break
        finally:
            a.close()
            p.wait(timeout=30)
            err = p.stderr.read().decode()
            p.stderr.close()
        if refused:
            assert result is None and p.returncode != 0, (result, err)
            assert "password longer than 4096 bytes" in err, err
        else:
            assert result is not None and result["errno"] != 0, err
            assert "longer than" not in result["message"] and "longer than" not in err, (result, err)
