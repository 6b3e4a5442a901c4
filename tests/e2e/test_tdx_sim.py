"""End to end: the simulated TD's quotes go through the real `conker` binary and the same DCAP
verifier as hardware quotes. Trusted only with the sim root given explicitly."""
import json
import os
import subprocess

import pytest

BUILD = os.environ.get("CONKER_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
CONKER = os.path.join(BUILD, "src", "cli", "conker")


def conker(*args, check=True):
    p = subprocess.run([CONKER, *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"conker {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


@pytest.fixture
def sim(tmp_path):
    if not os.access(CONKER, os.X_OK):
        pytest.skip(f"{CONKER} not built")
    simdir = tmp_path / "sim"
    conker("tdx-sim", "init", str(simdir), "--days", "30")
    # A private state dir: several tests (and helpers) may run at once.
    return {"dir": simdir, "state": tmp_path / "state",
            "tee": ["--tee", "sim", "--sim-dir", str(simdir), "--sim-state-dir", str(tmp_path / "state")]}


def test_sim_init_layout(sim):
    d = sim["dir"]
    for name in ("root-ca.pem", "collateral.json", "pck-chain.pem", "pck-key.pem", "qe-ak-key.pem", "profile.json"):
        assert (d / name).is_file(), name
    assert (d / "pck-key.pem").stat().st_mode & 0o777 == 0o600
    assert (d / "qe-ak-key.pem").stat().st_mode & 0o777 == 0o600
    col = json.loads((d / "collateral.json").read_text())
    assert json.loads(col["tcb_info"])["id"] == "TDX"
    assert json.loads(col["qe_identity"])["id"] == "TD_QE"
    prof = json.loads((d / "profile.json").read_text())
    assert prof["simulated"] is True
    assert prof["td_attributes"] == "0000001000000000"


def test_sim_quote_verifies_only_with_sim_root(sim, tmp_path):
    quote = tmp_path / "quote.bin"
    rd = "c0ffee" + "00" * 61
    conker("tdx", "quote", "--report-data", rd, *sim["tee"], "-o", str(quote))
    assert quote.stat().st_size > 1000

    ok = conker("tdx", "verify", str(quote), "--collateral", str(sim["dir"] / "collateral.json"),
                "--trust-sim-root", str(sim["dir"] / "root-ca.pem"), "--json")
    result = json.loads(ok.stdout)
    assert result["status"] == "UpToDate"
    assert result["simulated"] is True
    dumped = json.dumps(result)
    assert rd in dumped  # REPORTDATA came through

    # Without the sim root the pinned Intel root is the anchor: rejected.
    bad = conker("tdx", "verify", str(quote), "--collateral", str(sim["dir"] / "collateral.json"), check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip()

    # A corrupted quote is rejected even with the sim root.
    data = bytearray(quote.read_bytes())
    data[48 + 136] ^= 1  # MRTD
    quote.write_bytes(bytes(data))
    bad = conker("tdx", "verify", str(quote), "--collateral", str(sim["dir"] / "collateral.json"),
                 "--trust-sim-root", str(sim["dir"] / "root-ca.pem"), check=False)
    assert bad.returncode == 1


def test_measure_extends_rtmr3_and_quote_carries_it(sim, tmp_path):
    out = conker("tdx", "measure", "--name", "image-digest", "--payload", "sha256:" + "ab" * 32, *sim["tee"])
    rtmr3 = out.stdout.split()[-1]
    assert len(rtmr3) == 96 and rtmr3 != "0" * 96

    info = conker("tdx", "info", *sim["tee"])
    assert "replays to RTMR3" in info.stdout
    assert rtmr3 in info.stdout
    info = json.loads(conker("tdx", "info", "--json", *sim["tee"]).stdout)
    assert info["simulated"] is True
    assert info["measurements"]["rtmr"][3] == rtmr3
    assert info["rtmr3_log"] == {"path": str(sim["state"] / "rtmr3.log"), "events": 1, "replays": True}

    # The state survives a new process; the quote carries the new RTMR3.
    quote = tmp_path / "q.bin"
    conker("tdx", "quote", "--report-data", "00", *sim["tee"], "-o", str(quote))
    ok = conker("tdx", "verify", str(quote), "--collateral", str(sim["dir"] / "collateral.json"),
                "--trust-sim-root", str(sim["dir"] / "root-ca.pem"), "--json")
    assert rtmr3 in ok.stdout

    bad = conker("tdx", "measure", "--name", "Not Valid", "--payload", "x", *sim["tee"], check=False)
    assert bad.returncode == 1


def test_auto_never_picks_the_simulator(sim):
    if os.path.exists("/sys/kernel/config/tsm/report"):
        pytest.skip("this host has configfs-tsm; auto may legitimately pick TDX")
    p = conker("tdx", "quote", "--report-data", "00", check=False)
    assert p.returncode == 1
    assert "--tee sim" in p.stderr
    p = conker("tdx", "quote", "--report-data", "00", "--sim-dir", str(sim["dir"]), check=False)
    assert p.returncode == 2


def test_sim_keys_checked_at_open_parsed_at_quote(sim, tmp_path):
    """The simulated TD parses its keys only at the first quote (an idle conkerd does not start
    OpenSSL), but a missing key still refuses the open, in conkerd before anything else happens,
    and a key that does not parse fails the quote naming the file."""
    ak = sim["dir"] / "qe-ak-key.pem"
    good = ak.read_bytes()
    ak.unlink()
    p = conker("tdx", "info", *sim["tee"], check=False)
    assert p.returncode != 0 and "qe-ak-key.pem" in p.stderr, p.stderr

    from helpers.conkerd import CONKERD
    (tmp_path / "none.conf").write_text("")
    p = subprocess.run([CONKERD, "--config", str(tmp_path / "none.conf"), "--listen", "127.0.0.1:1",
                        "--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
                        "--token-file", str(tmp_path / "token"), *sim["tee"]],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "qe-ak-key.pem" in p.stderr, p.stderr
    assert not (tmp_path / "data").exists()

    ak.write_text("not a key\n")
    ak.chmod(0o600)
    conker("tdx", "info", *sim["tee"])  # measurements need no key
    p = conker("tdx", "quote", "--report-data", "00" * 64, *sim["tee"], "-o", str(tmp_path / "q"), check=False)
    assert p.returncode != 0 and "qe-ak-key.pem" in p.stderr, p.stderr
    assert not (tmp_path / "q").exists() or (tmp_path / "q").stat().st_size == 0

    ak.write_bytes(good)
    conker("tdx", "quote", "--report-data", "00" * 64, *sim["tee"], "-o", str(tmp_path / "q"))
    assert (tmp_path / "q").stat().st_size > 1000
