"""Helpers for the runtime end-to-end tests: a busybox rootfs, a private network namespace with
unique bridge/table/subnet names, and a wrapper around the runtime-driver binary that runs inside
that namespace. Everything made here is removed by RuntimeEnv.close(), also after failures."""

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time


def build_dir():
    return os.environ.get("CONKER_BUILD") or os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "build")


def runtimes():
    """The OCI runtimes to run the tests under: runc, and crun when installed (scripts/deps.sh
    installs both; CONKER_CRUN names a crun binary elsewhere, e.g. one unpacked from its package)."""
    found = []
    if shutil.which("runc"):
        found.append("runc")
    crun = os.environ.get("CONKER_CRUN") or shutil.which("crun")
    if crun:
        found.append(crun)
    return found


def skip_reason():
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("runc"):
        return "runc not installed"
    if not shutil.which("busybox"):
        return "busybox not installed"
    drv = os.path.join(build_dir(), "src", "runtime", "runtime-driver")
    if not os.path.exists(drv):
        return f"{drv} not built"
    return None


def make_rootfs(path):
    os.makedirs(os.path.join(path, "bin"))
    os.makedirs(os.path.join(path, "etc"))
    os.makedirs(os.path.join(path, "www"))
    shutil.copy2(shutil.which("busybox"), os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([os.path.join(path, "bin", "busybox"), "--list"], check=True,
                             capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(path, "bin", a))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    with open(os.path.join(path, "www", "index.html"), "w") as f:
        f.write("hello from conker\n")


class RuntimeEnv:
    def __init__(self, log_max_bytes=None, log_max_files=None, pids_limit=None, runtime=None):
        """runtime: a path or name for --runtime (None: the driver's default, runc)."""
        tag = "%06x" % random.randrange(1 << 24)
        self.runtime = runtime
        self.tag = tag
        self.tmp = tempfile.mkdtemp(prefix=f"ck-rt-{tag}-")
        self.netns = f"ckrt{tag}"
        self.bridge = f"ckb{tag}"
        self.table = f"ckt{tag}"
        self.subnet = f"10.{random.randrange(100, 250)}.{random.randrange(0, 255)}.0/24"
        self.netns_dir = os.path.join(self.tmp, "netns")
        self.prefix = f"t{tag}-"
        self.data = os.path.join(self.tmp, "data")
        self.run_dir = os.path.join(self.tmp, "run")
        self.rootfs = os.path.join(self.tmp, "rootfs")
        self.ids = []
        self.procs = []
        self.client_ns = None
        self.peer_ns = None
        self.log_max_bytes = log_max_bytes
        self.log_max_files = log_max_files
        self.pids_limit = pids_limit
        make_rootfs(self.rootfs)
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self.ns(["ip", "link", "set", "lo", "up"], check=True)

    def ns(self, argv, **kw):
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}"] + argv,
                              capture_output=True, text=True, **kw)

    def add_client(self):
        """A second namespace ("the outside"), linked to the test namespace (the host) by a veth,
        with routes to the host and, as an attacker would set, straight to the container subnet."""
        self.client_ns = f"ckcl{self.tag}"
        net = f"192.168.{random.randrange(0, 255)}"
        host_if, cl_if = f"ckh{self.tag}", f"ckc{self.tag}"
        subprocess.run(["ip", "netns", "add", self.client_ns], check=True)
        cmds = [
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", cl_if],
            ["ip", "link", "set", cl_if, "netns", self.client_ns],
            ["ip", "addr", "add", f"{net}.1/24", "dev", host_if],
            ["ip", "link", "set", host_if, "up"],
        ]
        for c in cmds:
            self.ns(c, check=True)
        for c in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", f"{net}.2/24", "dev", cl_if],
                  ["ip", "link", "set", cl_if, "up"], ["ip", "route", "add", self.subnet, "via", f"{net}.1"]):
            subprocess.run(["ip", "netns", "exec", self.client_ns] + c, check=True, capture_output=True)
        return f"{net}.1"

    def add_bridge_peer(self, last_octet=250):
        """A namespace plugged into the containers' bridge like a container, but with the powers a
        hostile container could get (a route of its own, or a raw socket, with CAP_NET_RAW): a
        route to 127.0.0.1 through the gateway, and loopback source addresses accepted on its
        side. Returns the namespace name; run commands in it with peer()."""
        self.peer_ns = f"ckpe{self.tag}"
        prefix = self.subnet.rsplit(".", 1)[0]
        host_if, peer_if = f"ckx{self.tag}", f"cky{self.tag}"
        subprocess.run(["ip", "netns", "add", self.peer_ns], check=True)
        for c in (["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if],
                  ["ip", "link", "set", peer_if, "netns", self.peer_ns],
                  ["ip", "link", "set", host_if, "master", self.bridge],
                  ["ip", "link", "set", host_if, "up"]):
            self.ns(c, check=True)
        for c in (["ip", "addr", "add", f"{prefix}.{last_octet}/{self.subnet.split('/')[1]}", "dev", peer_if],
                  ["ip", "link", "set", peer_if, "up"],
                  ["sysctl", "-qw", f"net.ipv4.conf.{peer_if}.route_localnet=1"],
                  ["ip", "route", "add", "127.0.0.1/32", "via", f"{prefix}.1"]):
            subprocess.run(["ip", "netns", "exec", self.peer_ns] + c, check=True, capture_output=True)
        return self.peer_ns

    def peer(self, argv, **kw):
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.peer_ns}"] + argv,
                              capture_output=True, text=True, **kw)

    def client(self, argv, **kw):
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.client_ns}"] + argv,
                              capture_output=True, text=True, **kw)

    def driver_argv(self, *args):
        b = build_dir()
        argv = ["nsenter", f"--net=/run/netns/{self.netns}",
                os.path.join(b, "src", "runtime", "runtime-driver"),
                "--data", self.data, "--run", self.run_dir, "--bridge", self.bridge,
                "--subnet", self.subnet, "--netns-dir", self.netns_dir,
                "--netns-prefix", self.prefix, "--nft-table", self.table,
                "--shim", os.path.join(b, "src", "conker-shim", "conker-shim")]
        if self.log_max_bytes:
            argv += ["--log-max-bytes", str(self.log_max_bytes)]
        if self.log_max_files:
            argv += ["--log-max-files", str(self.log_max_files)]
        if self.pids_limit:
            argv += ["--pids-limit", str(self.pids_limit)]
        if self.runtime:
            argv += ["--runtime", self.runtime]
        return argv + list(args)

    def driver(self, *args, check=True, timeout=120):
        p = subprocess.run(self.driver_argv(*args), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"runtime-driver {' '.join(args)} failed: {p.stderr}")
        return p

    def new_id(self):
        cid = "%012x" % random.randrange(1 << 48) + self.tag
        self.ids.append(cid)
        return cid

    def run(self, cid, cmd, *opts, check=True):
        return self.driver("run", cid, self.rootfs, *opts, "--", *cmd, check=check)

    def run_held(self, cid, cmd, *opts):
        """Runs through a driver process that stays alive (a conkerd) in its own process group."""
        p = subprocess.Popen(self.driver_argv("run", cid, self.rootfs, *opts, "--", *cmd),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        self.procs.append(p)
        line = p.stdout.readline()
        assert '"ok":true' in line, p.stderr.read() if p.poll() is not None else line
        return p

    def state(self, cid):
        return json.loads(self.driver("state", cid).stdout)

    def wait_state(self, cid, pred, timeout=30):
        end = time.time() + timeout
        st = None
        while time.time() < end:
            st = self.state(cid)
            if pred(st):
                return st
            time.sleep(0.1)
        raise AssertionError(f"state never matched: {st}")

    def log_path(self, cid):
        return self.driver("logpath", cid).stdout.strip()

    def log_lines(self, cid):
        p = self.log_path(cid)
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return [json.loads(l) for l in f if l.strip()]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        for cid in self.ids:
            self.driver("delete", cid, check=False)
        self.driver("teardown", check=False)
        # Anything a failed test left: unmount namespaces, drop the test netns (which takes the
        # bridge, veths and nft table with it), then the files.
        if os.path.isdir(self.netns_dir):
            for n in os.listdir(self.netns_dir):
                subprocess.run(["umount", "-l", os.path.join(self.netns_dir, n)], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        if self.client_ns:
            subprocess.run(["ip", "netns", "del", self.client_ns], capture_output=True)
        if self.peer_ns:
            subprocess.run(["ip", "netns", "del", self.peer_ns], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
