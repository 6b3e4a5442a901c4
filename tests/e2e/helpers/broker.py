"""Helpers for the broker's end-to-end tests: a simulated TD made by the test client, and a
conker-broker process on a free loopback port with its log, audit log and fingerprint."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

from .tdx_pcs import RouteServer

BUILD = os.environ.get("CONKER_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "..", "build"))
BROKER = os.path.join(BUILD, "src", "conker-broker", "conker-broker")
CLIENT = os.path.join(BUILD, "src", "conker-broker", "conker-broker-testclient")

IMAGE_ID = "sha256:" + "ab" * 32


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(directory, cn):
    """An ordinary self-signed P-256 certificate (no evidence) in directory: (cert, key, DER)."""
    key, crt = directory / f"{cn}.key", directory / f"{cn}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(crt), "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return crt, key, der


class SimTD:
    def __init__(self, base):
        self.dir = str(base / "sim")
        self.state = str(base / "sim-state")
        os.makedirs(self.state, exist_ok=True)
        subprocess.run([CLIENT, "sim-init", self.dir], check=True, capture_output=True)
        self.root = os.path.join(self.dir, "root-ca.pem")
        self.collateral = os.path.join(self.dir, "collateral.json")
        self.rtmr1 = self.run("rtmr1").stdout.strip()
        assert len(self.rtmr1) == 96
        self.mrtd = self.run("mrtd").stdout.strip()
        assert len(self.mrtd) == 96

    def args(self):
        return ["--sim-dir", self.dir, "--sim-state-dir", self.state]

    def run(self, cmd, *extra, check=True):
        return subprocess.run([CLIENT, cmd, *self.args(), *extra], capture_output=True, text=True,
                              check=check, timeout=60)

    def fetch(self, endpoint, app_id=IMAGE_ID, *extra):
        """Like conkerd: measures image-digest and task-config (deduplicated), sends the RTMR3 log
        and the task-config claim; extra flags (--no-log, --image-event ID, ...) leave parts out."""
        return subprocess.run([CLIENT, "fetch", *self.args(), "--app-id", app_id, *extra, endpoint],
                              capture_output=True, text=True, timeout=60)


class Broker:
    """conker-broker with the seed's flags (plus test-only paths), stopped with SIGTERM."""

    def __init__(self, base, args, name="broker", audit_path=None):
        self.port = free_port()
        self.log_path = str(base / f"{name}.log")
        self.audit_path = audit_path or str(base / f"{name}-audit.jsonl")
        self.fp_path = str(base / f"{name}.fingerprint")
        if "{port}" in args:
            listen = []
            args = [str(self.port) if a == "{port}" else a for a in args]
        else:
            listen = ["-i", "127.0.0.1", "-p", str(self.port)]
        self.cmd = [BROKER] + listen + args + ["-l", "debug", "--audit-log", self.audit_path,
                                               "--fingerprint-file", self.fp_path]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited with {self.proc.returncode}: {self.read_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("broker did not start listening")
        with open(self.fp_path) as f:
            self.fingerprint = f.read().strip()

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pinned(self):
        return f"127.0.0.1:{self.port}#{self.fingerprint}"

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def audit(self):
        if not os.path.exists(self.audit_path):
            return []
        with open(self.audit_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def refusals(self):
        """Stops the broker, which then writes the summary of the refusals of clients whose evidence
        did not verify, and returns those counts by reason (summed over every summary line)."""
        self.stop()
        counts = {}
        for e in self.audit():
            if e["decision"] == "refuse-summary":
                assert e["refusals"] == sum(e["reasons"].values()), e
                for reason, n in e["reasons"].items():
                    counts[reason] = counts.get(reason, 0) + n
        return counts

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class SimPccs(RouteServer):
    """A PCCS on 127.0.0.1 (HTTPS, throwaway certificate) serving a simulated TD's collateral the
    way PCS does: TCB Info and QE Identity bodies with URL-encoded issuer-chain headers, the PCK
    CRL in DER, the root CA CRL as hex."""

    def __init__(self, collateral_path, workdir):
        with open(collateral_path) as f:
            c = json.load(f)
        q = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
        tcb = ('{"tcbInfo":' + c["tcb_info"] + ',"signature":"' + c["tcb_info_signature"] + '"}').encode()
        qe = ('{"enclaveIdentity":' + c["qe_identity"] + ',"signature":"' + c["qe_identity_signature"] + '"}').encode()
        routes = {
            "/tdx/certification/v4/tcb": (tcb, {"TCB-Info-Issuer-Chain": q(c["tcb_info_issuer_chain"])}),
            "/tdx/certification/v4/qe/identity": (qe, {"SGX-Enclave-Identity-Issuer-Chain":
                                                       q(c["qe_identity_issuer_chain"])}),
            "/sgx/certification/v4/pckcrl": (bytes.fromhex(c["pck_crl"]),
                                             {"SGX-PCK-CRL-Issuer-Chain": q(c["pck_crl_issuer_chain"])}),
            "/sgx/certification/v4/rootcacrl": (c["root_ca_crl"].encode(), {}),
        }
        super().__init__(routes, workdir, "pccs")
