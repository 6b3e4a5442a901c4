"""End-to-end tests of the container runtime (runc, and crun where installed, through conker-shim),
driven through runtime-driver inside a network namespace each test creates. Needs root, runc and
busybox; the tests taking `env` run once per runtime."""

import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers.runtime import RuntimeEnv, build_dir, runtimes, skip_reason  # noqa: E402

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


RUNTIMES = runtimes()
CRUN = next((r for r in RUNTIMES if os.path.basename(r) == "crun"), None)


def runtime_id(r):
    return os.path.basename(r)


@pytest.fixture(params=RUNTIMES, ids=runtime_id)
def env(request):
    e = RuntimeEnv(runtime=request.param)
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def runc_env():
    e = RuntimeEnv()
    try:
        yield e
    finally:
        e.close()


def leftovers(env, cid):
    """What a deleted container must not leave behind."""
    found = []
    links = env.ns(["ip", "-o", "link"]).stdout
    if "ck" + cid[:12] in links:
        found.append("veth")
    if os.path.isdir(env.netns_dir) and os.listdir(env.netns_dir):
        found.append("netns " + ",".join(os.listdir(env.netns_dir)))
    with open("/proc/self/mountinfo") as f:
        if any(env.tmp in l for l in f):
            found.append("mount")
    rules = env.ns(["nft", "list", "ruleset"]).stdout
    if env.table in rules:
        found.append("nft table")
    if os.path.exists(os.path.join(env.run_dir, "shims", cid)):
        found.append("shim dir")
    if os.path.exists(os.path.join(env.data, "containers", cid)):
        found.append("bundle")
    if os.path.isdir(os.path.join(env.run_dir, "runc")) and os.listdir(os.path.join(env.run_dir, "runc")):
        found.append("runc state")
    leases = os.path.join(env.run_dir, "net", "leases")
    if os.path.isdir(leases) and os.listdir(leases):
        found.append("lease")
    return found


def test_http_on_published_port_and_clean_delete(env):
    cid = env.new_id()
    env.run(cid, ["httpd", "-f", "-p", "80", "-h", "/www"], "--port", "30080:80")
    st = env.state(cid)
    assert st["status"] == "running" and st["pid"] > 0 and st["ip"].startswith(env.subnet.rsplit(".", 1)[0])
    out = None
    for _ in range(50):
        p = env.ns(["curl", "-s", "-m", "2", "http://127.0.0.1:30080/index.html"])
        if p.returncode == 0:
            out = p.stdout
            break
        time.sleep(0.1)
    assert out == "hello from conker\n"
    rules = env.ns(["nft", "list", "table", "inet", env.table]).stdout
    assert "dport 30080 dnat ip to %s:80" % st["ip"] in rules

    st = json.loads(env.driver("stop", cid, "1").stdout)
    assert st["status"] == "exited"
    assert env.ns(["curl", "-s", "-m", "2", "http://127.0.0.1:30080/"]).returncode != 0
    env.driver("delete", cid)
    assert leftovers(env, cid) == []
    # Idempotent.
    env.driver("delete", cid)


def test_run_failure_reports_runc_error_and_cleans_up(env):
    cid = env.new_id()
    p = env.run(cid, ["/no/such/binary"], check=False)
    assert p.returncode != 0
    assert "no such file" in p.stderr.lower() or "not found" in p.stderr.lower(), p.stderr
    assert leftovers(env, cid) == []


def _gone(pid, within_s):
    """True once pid is gone or a zombie (it is nobody's child here), waiting up to within_s."""
    end = time.monotonic() + within_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)


def test_start_timeout_ends_a_start_whose_shim_never_reports(runc_env):
    """A shim that neither reports nor exits (here one that only sleeps, holding the ready pipe)
    must not hold the start for ever: after start-timeout the run fails and leaves nothing, the
    shim included (left running, it could start the container after the start was cleaned up)."""
    env = runc_env
    pidfile = os.path.join(env.tmp, "hung-shim.pid")
    fake = os.path.join(env.tmp, "hung-shim")
    with open(fake, "w") as f:
        f.write(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 600\n")
    os.chmod(fake, 0o755)
    cid = env.new_id()
    argv = env.driver_argv("run", cid, env.rootfs, "--", "true")
    at = argv.index("run")
    argv[at:at] = ["--shim", fake, "--start-timeout", "1"]
    shim_gone = False
    try:
        # The subprocess timeout only turns a start that never ends into a failure.
        p = subprocess.run(argv, capture_output=True, text=True, timeout=90)
        with open(pidfile) as f:
            pid = int(f.read())
        shim_gone = _gone(pid, 10)
    finally:
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                try:
                    os.kill(int(f.read()), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert p.returncode != 0
    assert f"container {cid} did not start within 1 s" in p.stderr, p.stderr
    assert shim_gone, "the shim that never reported is still running"
    assert leftovers(env, cid) == []


def test_engine_killed_shim_survives_and_is_adopted(env):
    cid = env.new_id()
    drv = env.run_held(cid, ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"],
                       "--restart", "always")
    env.wait_state(cid, lambda s: s["status"] == "running")
    time.sleep(0.6)
    before = len(env.log_lines(cid))
    assert before >= 1
    # kill -9 the whole process group of the "engine".
    os.killpg(drv.pid, signal.SIGKILL)
    drv.wait()
    time.sleep(1.0)
    listed = env.driver("list").stdout.split()
    assert cid in listed
    st = env.state(cid)
    assert st["status"] == "running" and st["restart_count"] == 0
    after = env.log_lines(cid)
    assert len(after) > before + 2
    assert all(l["stream"] == "stdout" and l["log"].startswith("tick ") for l in after)
    nums = [int(l["log"].split()[1]) for l in after]
    assert nums == list(range(len(nums)))  # continuous: no restart, nothing lost
    env.driver("delete", cid)
    assert leftovers(env, cid) == []


def test_restart_always_backoff_and_stop_suppresses(env):
    cid = env.new_id()
    env.run(cid, ["sh", "-c", "echo start; exit 3"], "--restart", "always")
    st = env.wait_state(cid, lambda s: s["restart_count"] >= 4, timeout=30)
    assert st["exit_code"] == 3
    starts = [l["ts"] for l in env.log_lines(cid) if l["log"] == "start\n"]
    assert len(starts) >= 5

    def ns(ts):
        # 2026-11-29T12:30:53.370437181Z
        base, frac = ts.rstrip("Z").split(".")
        return time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1e9

    gaps = [ns(b) - ns(a) for a, b in zip(starts, starts[1:])]
    # 100, 200, 400, 800 ms (+ runc time): each wait at least the backoff, and growing.
    for i, g in enumerate(gaps[:4]):
        assert g >= 0.1 * (2 ** i) * 0.9, gaps
    assert gaps[3] > gaps[0]

    # Stop while it waits out a backoff: no more restarts.
    env.wait_state(cid, lambda s: s["status"] == "restarting")
    st = json.loads(env.driver("stop", cid, "1").stdout)
    assert st["status"] == "exited"
    count = st["restart_count"]
    time.sleep(3)
    st = env.state(cid)
    assert st["status"] == "exited" and st["restart_count"] == count
    with open(os.path.join(env.run_dir, "shims", cid, "exit.json")) as f:
        ex = json.load(f)
    assert ex["exit_code"] == 3 and ex["finished_at"] > 0
    env.driver("delete", cid)


def test_stop_of_running_restart_always_container_does_not_restart(env):
    """restart=always: a stop while the container runs (not during a backoff) ends it for good;
    the exit the stop signal causes is not one the policy restarts."""
    cid = env.new_id()
    env.run(cid, ["sleep", "1000"], "--restart", "always")
    assert env.state(cid)["status"] == "running"
    # The shim's control socket (stop, delete) is for root alone.
    sock = os.stat(os.path.join(env.run_dir, "shims", cid, "shim.sock"))
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600 and sock.st_uid == 0
    st = json.loads(env.driver("stop", cid, "1").stdout)
    assert st["status"] == "exited" and st["restart_count"] == 0
    # A restart would come after the first backoff (100 ms); give it ten times that.
    time.sleep(1)
    st = env.state(cid)
    assert st["status"] == "exited" and st["restart_count"] == 0, st
    env.driver("delete", cid)


def test_exit_recorded_while_nobody_listens(env):
    cid = env.new_id()
    drv = env.run_held(cid, ["sh", "-c", "sleep 1; exit 7"])
    os.killpg(drv.pid, signal.SIGKILL)
    drv.wait()
    time.sleep(2)
    st = env.state(cid)
    assert st["status"] == "exited" and st["exit_code"] == 7 and st["finished_at"] > st["started_at"]
    env.driver("delete", cid)


def test_log_rotation_bounds_disk_use():
    e = RuntimeEnv(log_max_bytes=65536, log_max_files=3)
    try:
        cid = e.new_id()
        # ~2 MB of output.
        e.run(cid, ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo done"])
        e.wait_state(cid, lambda s: s["status"] == "exited", timeout=120)
        base = e.log_path(cid)
        d = os.path.dirname(base)
        files = sorted(os.listdir(d))
        assert files == ["container.log", "container.log.1", "container.log.2"], files
        total = sum(os.path.getsize(os.path.join(d, f)) for f in files)
        assert total <= 3 * 65536
        last = e.log_lines(cid)[-1]
        assert last["log"] == "done\n"
        e.driver("delete", cid)
    finally:
        e.close()


def test_secret_readonly_and_security_defaults(env):
    secret = os.path.join(env.tmp, "secret")
    os.makedirs(secret)
    # A mount below the secret directory must be read-only in the container too.
    os.makedirs(os.path.join(secret, "sub"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", os.path.join(secret, "sub")], check=True)
    try:
        check_secret_and_defaults(env, secret)
    finally:
        subprocess.run(["umount", "-l", os.path.join(secret, "sub")])


@pytest.mark.skipif(CRUN is None, reason="crun is not installed (scripts/deps.sh installs it)")
def test_crun_seccomp_filter_kept_and_reused():
    """crun compiles the profile for the first container; its filter is kept under the run dir and
    handed to the next container with the same profile, which then has the same defaults in force
    (seccomp mode 2, `unshare -U` refused, caps, devices, masked paths)."""
    e = RuntimeEnv(runtime=CRUN)
    try:
        secret = os.path.join(e.tmp, "secret")
        os.makedirs(secret)
        cache = os.path.join(e.run_dir, "seccomp")
        first = e.new_id()
        e.run(first, ["sleep", "1000"])
        with open(os.path.join(e.data, "containers", first, "bundle", "config.json")) as f:
            assert "run.oci.seccomp_bpf_data" not in json.load(f).get("annotations", {})
        kept = os.listdir(cache)
        assert len(kept) == 1 and kept[0].endswith(".bpf"), kept
        with open(os.path.join(cache, kept[0]), "rb") as f:
            filt = f.read()
        with open(os.path.join(e.run_dir, "runc", first, "seccomp.bpf"), "rb") as f:
            assert f.read() == filt  # the bytes crun compiled
        assert len(filt) % 8 == 0 and len(filt) > 8
        e.driver("delete", first)

        # The second start carries the filter instead of compiling it, and the defaults hold.
        orig = e.driver

        def driver_keep_config(*args, **kw):
            cfg = os.path.join(e.data, "containers", args[1] if len(args) > 1 else "", "bundle", "config.json")
            if args and args[0] == "delete" and os.path.exists(cfg):
                with open(cfg) as f:
                    e.last_config = json.load(f)
            return orig(*args, **kw)

        e.driver = driver_keep_config
        check_secret_and_defaults(e, secret)
        ann = e.last_config["annotations"]["run.oci.seccomp_bpf_data"]
        assert base64.b64decode(ann) == filt
        assert os.listdir(cache) == kept
    finally:
        e.close()


def test_secret_readable_by_non_root_user(env):
    """conkerd writes secrets 0400 in a 0700 directory; an image running as a user must still read its own."""
    secret = os.path.join(env.tmp, "secret-nobody")
    os.makedirs(secret, mode=0o700)
    path = os.path.join(secret, "secret-kms.json")
    with open(path, "w") as f:
        f.write('{"k":"v"}')
    os.chmod(path, 0o400)
    cid = env.new_id()
    env.run(cid, ["sh", "-c", "id; cat /secret/secret-kms.json; echo; echo cat=$?"],
            "--secret", secret, "--user", "nobody", "--name", "secuser")
    env.wait_state(cid, lambda s: s["status"] == "exited")
    out = "".join(l["log"] for l in env.log_lines(cid))
    assert "uid=65534(nobody)" in out
    assert '{"k":"v"}' in out, out
    env.driver("delete", cid)


def check_secret_and_defaults(env, secret):
    cid = env.new_id()
    with open(os.path.join(secret, "secret-kms.json"), "w") as f:
        f.write('{"k":"v"}')
    script = ("cat /secret/secret-kms.json; echo; "
              "echo x > /secret/new 2>/dev/null; echo topwrite=$?; "
              "mount -o remount,rw /secret 2>/dev/null; echo remount=$?; "
              "echo x > /secret/sub/new 2>/dev/null; echo subwrite=$?; "
              "grep CapInh /proc/self/status; grep CapAmb /proc/self/status; grep CapBnd /proc/self/status; "
              "mknod /tmp/blk b 8 0 && cat /tmp/blk >/dev/null 2>&1; echo blk=$?; "
              "unshare -U true 2>/dev/null; echo unshare=$?; grep Seccomp: /proc/self/status; "
              "cat /proc/kcore >/dev/null 2>&1; echo kcore=$?; "
              "echo 1 > /proc/sys/kernel/domainname 2>/dev/null; echo procsys=$?; "
              "ulimit -n; hostname; id")
    env.run(cid, ["sh", "-c", script], "--secret", secret, "--name", "sectest")
    env.wait_state(cid, lambda s: s["status"] == "exited")
    out = "".join(l["log"] for l in env.log_lines(cid))
    assert '{"k":"v"}' in out
    assert "topwrite=0" not in out and "topwrite=" in out
    assert "remount=0" not in out and "remount=" in out
    assert "subwrite=0" not in out and "subwrite=" in out
    assert "CapInh:\t0000000000000000" in out
    assert "CapAmb:\t0000000000000000" in out
    assert "CapBnd:\t00000000a80425fb" in out  # the 14 default capabilities
    assert "blk=0" not in out
    assert "unshare=0" not in out
    assert "Seccomp:\t2\n" in out
    assert "kcore=0" not in out
    assert "procsys=0" not in out
    assert "\n1024\n" in out
    assert "sectest\n" in out
    assert "uid=0(root) gid=0(root)" in out
    assert not os.path.exists(os.path.join(secret, "new"))
    env.driver("delete", cid)
    return cid


def test_runtime_version_floor(runc_env):
    env = runc_env
    fake = os.path.join(env.tmp, "old-runc")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\necho 'runc version 1.0.3'\necho 'spec: 1.0.2-dev'\n")
    os.chmod(fake, 0o755)
    # --runtime is a global option: it goes before the command.
    argv = env.driver_argv("list")
    argv.insert(argv.index("list"), fake)
    argv.insert(argv.index(fake), "--runtime")
    p = subprocess.run(argv, capture_output=True, text=True)
    assert p.returncode != 0 and "older than the supported 1.1" in p.stderr, p.stderr
    # The real one (>= 1.1) is accepted; below 1.1.12 with a warning about CVE-2024-21626.
    p = env.driver("list")
    out = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout
    if out.startswith("runc version 1.1.") and int(out.split()[2].split(".")[2].split("+")[0]) < 12:
        assert "CVE-2024-21626" in p.stderr


def test_oom_kill_recorded(env):
    cid = env.new_id()
    env.run(cid, ["sh", "-c", "sleep 2; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"])
    # No memory limit in the request API yet: set one on the container's cgroup directly.
    for path in (f"/sys/fs/cgroup/memory/conker/{cid}/memory.limit_in_bytes",
                 f"/sys/fs/cgroup/conker/{cid}/memory.max"):
        if os.path.exists(path):
            with open(path, "w") as f:
                f.write("20000000")
            break
    else:
        pytest.skip("no memory cgroup for the container found")
    st = env.wait_state(cid, lambda s: s["status"] == "exited", timeout=60)
    assert st["oom_killed"] is True and st["exit_code"] == 137
    assert "survived\n" not in [l["log"] for l in env.log_lines(cid)]
    env.driver("delete", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/memory/conker/{cid}")


@pytest.mark.parametrize("runtime", RUNTIMES, ids=runtime_id)
def test_fork_bomb_stops_at_the_pids_limit(runtime):
    """Issue 9, finding 10: a container that forks without end stops at its pids limit (conkerd's
    container-pids-limit) instead of exhausting the TD. Bounded: 200 attempts, limit 40."""
    e = RuntimeEnv(pids_limit=40, runtime=runtime)
    try:
        cid = e.new_id()
        # The bomb runs in a child shell, which dies at its first failed fork; the parent then
        # counts the processes with builtins only (no fork left to spare) and stays.
        e.run(cid, ["sh", "-c", "sh -c 'i=0; while [ $i -lt 200 ]; do sleep 1000 & i=$((i+1)); done'; "
                                "set -- /proc/[0-9]*; echo started $#; exec sleep 1000"])
        lines = []
        for _ in range(100):
            lines = [l["log"] for l in e.log_lines(cid) if l["log"].startswith("started")]
            if lines:
                break
            time.sleep(0.1)
        assert lines, e.log_lines(cid)
        for path in (f"/sys/fs/cgroup/pids/conker/{cid}/pids.current", f"/sys/fs/cgroup/conker/{cid}/pids.current"):
            if os.path.exists(path):
                with open(path) as f:
                    assert int(f.read()) <= 40
                break
        else:
            pytest.fail("no pids cgroup for the container found")
        # The shell saw at most the limit's worth of processes, and forks beyond it failed.
        assert 2 <= int(lines[0].split()[1]) <= 40, lines
        assert any("fork" in l["log"].lower() or "resource" in l["log"].lower() for l in e.log_lines(cid))
        e.driver("delete", cid)
    finally:
        e.close()


def test_published_port_from_outside_and_direct_traffic_dropped(env):
    host_ip = env.add_client()
    cid = env.new_id()
    env.run(cid, ["httpd", "-f", "-p", "80", "-h", "/www"], "--port", "30081:80")
    ip = env.state(cid)["ip"]
    ok = None
    for _ in range(50):
        p = env.client(["curl", "-s", "-m", "2", f"http://{host_ip}:30081/index.html"])
        if p.returncode == 0:
            ok = p.stdout
            break
        time.sleep(0.1)
    assert ok == "hello from conker\n"
    # The container does serve on its own address (reachable from the host itself) ...
    assert env.ns(["curl", "-s", "-m", "2", f"http://{ip}:80/index.html"]).stdout == "hello from conker\n"
    # ... but routed there from outside, not through DNAT: dropped.
    p = env.client(["curl", "-s", "-m", "2", f"http://{ip}:80/index.html"])
    assert p.returncode != 0 and "hello" not in p.stdout
    env.driver("delete", cid)
    # After delete the published port is gone.
    p = env.client(["curl", "-s", "-m", "2", f"http://{host_ip}:30081/index.html"])
    assert p.returncode != 0


def test_bridge_cannot_reach_host_loopback(env):
    """Issue 9, finding 9 (CVE-2020-8558 class): route_localnet on the bridge let a container that
    routes 127.0.0.1 through the gateway reach what the TD binds to loopback. Our DNAT to
    published ports must keep working, from the host's 127.0.0.1 and through the gateway."""
    cid = env.new_id()
    env.run(cid, ["httpd", "-f", "-p", "80", "-h", "/www"], "--port", "30084:80")
    www = os.path.join(env.tmp, "host-www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("loopback only\n")
    port = 31000 + int(env.tag, 16) % 1000
    srv = subprocess.Popen(["nsenter", f"--net=/run/netns/{env.netns}", "busybox", "httpd", "-f",
                            "-p", f"127.0.0.1:{port}", "-h", www], start_new_session=True)
    env.procs.append(srv)
    url = f"http://127.0.0.1:{port}/index.html"
    ok = None
    for _ in range(50):
        p = env.ns(["curl", "-s", "-m", "2", url])
        if p.returncode == 0:
            ok = p.stdout
            break
        time.sleep(0.1)
    assert ok == "loopback only\n"  # the host service is up
    env.add_bridge_peer()
    gw = env.subnet.rsplit(".", 1)[0] + ".1"
    pub = None
    for _ in range(50):
        p = env.peer(["curl", "-s", "-m", "2", f"http://{gw}:30084/index.html"])
        if p.returncode == 0:
            pub = p.stdout
            break
        time.sleep(0.1)
    assert pub == "hello from conker\n"  # the peer is on the bridge and routes through it
    p = env.peer(["curl", "-s", "-m", "2", url])
    assert p.returncode != 0 and "loopback only" not in p.stdout
    # Published ports still work on the host's 127.0.0.1.
    assert env.ns(["curl", "-s", "-m", "2", "http://127.0.0.1:30084/index.html"]).stdout == "hello from conker\n"
    rules = env.ns(["nft", "list", "table", "inet", env.table]).stdout
    assert f'iifname "{env.bridge}" ip daddr 127.0.0.0/8 drop' in rules


def test_conflicts_leave_the_running_container_alone(env):
    a = env.new_id()
    env.run(a, ["httpd", "-f", "-p", "80", "-h", "/www"], "--port", "30082:80")
    b = env.new_id()
    p = env.run(b, ["httpd", "-f", "-p", "80"], "--port", "30082:80", check=False)
    assert p.returncode != 0 and "already published" in p.stderr
    same_prefix = a[:12] + "zz0000"
    env.ids.append(same_prefix)
    p = env.run(same_prefix, ["true"], check=False)
    assert p.returncode != 0 and "first 12 characters" in p.stderr
    p = env.run(a, ["true"], check=False)
    assert p.returncode != 0 and "already exists" in p.stderr
    assert env.state(a)["status"] == "running"
    assert "ck" + a[:12] in env.ns(["ip", "-o", "link"]).stdout
    out = None
    for _ in range(50):
        r = env.ns(["curl", "-s", "-m", "2", "http://127.0.0.1:30082/index.html"])
        if r.returncode == 0:
            out = r.stdout
            break
        time.sleep(0.1)
    assert out == "hello from conker\n"
    env.driver("delete", a)
    assert leftovers(env, a) == []


def test_dead_shim_is_reported_and_delete_still_cleans_up(env):
    cid = env.new_id()
    env.run(cid, ["sleep", "1000"])
    st = env.state(cid)
    with open(os.path.join(env.run_dir, "shims", cid, "state.json")) as f:
        shim_pid = json.load(f)["shim_pid"]
    os.kill(shim_pid, signal.SIGKILL)
    time.sleep(0.5)
    assert env.state(cid)["status"] == "unknown"
    assert cid not in env.driver("list").stdout.split()
    # stop still works: the orphaned container is killed through runc.
    env.driver("stop", cid, "1")
    for _ in range(50):
        if not os.path.exists(f"/proc/{st['pid']}") or open(f"/proc/{st['pid']}/stat").read().split(") ")[1][0] == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("container init still alive after stop")
    env.driver("delete", cid)
    assert leftovers(env, cid) == []
    # The container's init is gone too (runc delete --force).
    assert not os.path.exists(f"/proc/{st['pid']}") or "sleep" not in open(f"/proc/{st['pid']}/cmdline").read()


def test_stop_uses_the_stop_signal_then_kills(env):
    graceful = env.new_id()
    env.run(graceful, ["sh", "-c", "trap 'echo got-usr1; exit 0' USR1; echo ready; while true; do sleep 0.1; done"],
            "--stop-signal", "SIGUSR1", "--restart", "always")
    env.wait_state(graceful, lambda s: s["status"] == "running")
    for _ in range(50):
        if any(l["log"] == "ready\n" for l in env.log_lines(graceful)):
            break
        time.sleep(0.1)
    st = json.loads(env.driver("stop", graceful, "10").stdout)
    assert st["status"] == "exited" and st["exit_code"] == 0 and st["restart_count"] == 0
    assert "got-usr1\n" in [l["log"] for l in env.log_lines(graceful)]

    stubborn = env.new_id()
    env.run(stubborn, ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    t = time.time()
    st = json.loads(env.driver("stop", stubborn, "1").stdout)
    assert st["status"] == "exited" and st["exit_code"] == 137
    assert 0.9 <= time.time() - t < 10
    env.driver("delete", graceful)
    env.driver("delete", stubborn)


def test_user_workdir_env_and_etc_files(env):
    cid = env.new_id()
    env.run(cid, ["sh", "-c", "id; pwd; echo HOME=$HOME; echo MODE=$MODE; echo PATH=$PATH; "
                              "cat /etc/hostname; grep -c nameserver /etc/resolv.conf; grep 127.0.0 /etc/resolv.conf; "
                              "grep web /etc/hosts"],
            "--user", "nobody", "--workdir", "/www", "--env", "MODE=request", "--name", "web")
    env.wait_state(cid, lambda s: s["status"] == "exited")
    out = "".join(l["log"] for l in env.log_lines(cid))
    ip = env.state(cid)["ip"]
    assert "uid=65534(nobody) gid=65534(nogroup)" in out
    assert "\n/www\n" in out
    assert "HOME=/\n" in out and "MODE=request\n" in out
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" in out
    assert "web\n" in out and f"{ip}\tweb\n" in out
    assert "nameserver 127." not in out
    env.driver("delete", cid)

    bad = env.new_id()
    p = env.run(bad, ["true"], "--user", "ghost", check=False)
    assert p.returncode != 0 and "ghost" in p.stderr
    p = env.run(bad, ["true"], "--workdir", "/proc/self/fd/7", check=False)
    assert p.returncode != 0 and "WorkingDir" in p.stderr
    assert leftovers(env, bad) == []


def test_resolv_conf_drops_loopback_resolvers(env):
    fake = os.path.join(env.tmp, "resolv.conf")
    with open(fake, "w") as f:
        f.write("nameserver 127.0.0.53\nnameserver 10.1.2.3\nsearch corp.example\n")
    cid = env.new_id()
    argv = env.driver_argv("run", cid, env.rootfs, "--", "cat", "/etc/resolv.conf")
    argv.insert(argv.index("run"), fake)
    argv.insert(argv.index(fake), "--resolv")
    subprocess.run(argv, check=True, capture_output=True)
    env.wait_state(cid, lambda s: s["status"] == "exited")
    out = "".join(l["log"] for l in env.log_lines(cid))
    assert out == "nameserver 10.1.2.3\nsearch corp.example\n"
    env.driver("delete", cid)


def auto_argv(env, bindir):
    """runtime-driver `list` with `--runtime auto` and PATH = bindir only (nsenter by its path)."""
    argv = env.driver_argv("list")
    argv[0] = shutil.which("nsenter")
    argv.insert(argv.index("list"), "auto")
    argv.insert(argv.index("auto"), "--runtime")
    return argv, dict(os.environ, PATH=bindir)


def test_runtime_auto_falls_back_to_runc(runc_env):
    env = runc_env
    bindir = os.path.join(env.tmp, "bin")
    os.makedirs(bindir)
    os.symlink(shutil.which("runc"), os.path.join(bindir, "runc"))
    argv, penv = auto_argv(env, bindir)
    # No crun in PATH: runc, and the log says why.
    p = subprocess.run(argv, capture_output=True, text=True, env=penv)
    assert p.returncode == 0, p.stderr
    assert "crun is not in PATH; using runc" in p.stderr, p.stderr
    assert "container runtime: runc version" in p.stderr, p.stderr
    # A crun below the floor (1.8) is passed over with a warning, not used.
    with open(os.path.join(bindir, "crun"), "w") as f:
        f.write("#!/bin/sh\necho 'crun version 1.4.5'\necho 'commit: 0'\n")
    os.chmod(os.path.join(bindir, "crun"), 0o755)
    p = subprocess.run(argv, capture_output=True, text=True, env=penv)
    assert p.returncode == 0, p.stderr
    assert "crun is not usable (crun 1.4 is older than 1.8); using runc" in p.stderr, p.stderr
    assert "container runtime: runc version" in p.stderr, p.stderr
    # Named explicitly, the same old crun is refused: conkerd would not start.
    argv2 = [a if a != "auto" else os.path.join(bindir, "crun") for a in argv]
    p = subprocess.run(argv2, capture_output=True, text=True, env=penv)
    assert p.returncode != 0 and "crun 1.4 is older than 1.8" in p.stderr, p.stderr


@pytest.mark.skipif(CRUN is None, reason="crun is not installed (scripts/deps.sh installs it)")
def test_runtime_auto_prefers_crun(runc_env):
    env = runc_env
    bindir = os.path.join(env.tmp, "bin")
    os.makedirs(bindir)
    os.symlink(shutil.which("runc"), os.path.join(bindir, "runc"))
    os.symlink(shutil.which(CRUN) or CRUN, os.path.join(bindir, "crun"))
    argv, penv = auto_argv(env, bindir)
    p = subprocess.run(argv, capture_output=True, text=True, env=penv)
    assert p.returncode == 0, p.stderr
    assert "container runtime: crun version" in p.stderr and "chosen by runtime = auto" in p.stderr, p.stderr
    # And a container started under auto runs (crun's state under the driver's runtime root).
    argv = env.driver_argv("--runtime", "auto", "run", env.new_id(), env.rootfs, "--", "true")
    argv[0] = shutil.which("nsenter")
    p = subprocess.run(argv, capture_output=True, text=True, env=penv, timeout=120)
    assert p.returncode == 0 and '"ok":true' in p.stdout, p.stderr
    with open(os.path.join(env.run_dir, "shims", env.ids[-1], "state.json")) as f:
        pid = json.load(f)["shim_pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        shim_argv = f.read().split(b"\0")
    assert shim_argv[shim_argv.index(b"--runtime") + 1] == os.path.join(bindir, "crun").encode(), shim_argv


def test_shim_refuses_paths_too_long_for_its_buffers(tmp_path):
    """The shim makes runc.log and the rotated log.N from its --state-dir and --log: a path too
    long for its 4 KiB buffers is refused at the command line (exit 2, usage) instead of being cut
    short, which would rotate or write files under another name."""
    shim = os.path.join(build_dir(), "src", "conker-shim", "conker-shim")
    if not os.path.exists(shim):
        pytest.skip("conker-shim is not built")

    def run(log: str) -> subprocess.CompletedProcess:
        return subprocess.run([shim, "--id", "x", "--bundle", str(tmp_path / "b"), "--state-dir",
                               str(tmp_path / "missing"), "--runtime", "/bin/false", "--runtime-root",
                               str(tmp_path / "root"), "--log", log],
                              capture_output=True, text=True, timeout=30)

    long = run(str(tmp_path / ("l" * 4000)))
    assert long.returncode == 2 and "usage:" in long.stderr, long
    # The same command with a short log path gets past the command line and fails later, on the
    # missing state dir.
    short = run(str(tmp_path / "log"))
    assert short.returncode == 1 and "usage:" not in short.stderr, short
