"""`conker tdx verify` on the real DCAP vectors of tests/data/tdx: exit codes, human and JSON
output, time-window rejections, trust-anchor options, and collateral fetched from a (fake,
local) PCCS over HTTPS with its on-disk cache."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers.tdx_pcs import FakePcs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TDX = os.path.join(HERE, "..", "data", "tdx")
BUILD = os.environ.get("CONKER_BUILD", os.path.join(HERE, "..", "..", "build"))
CONKER = os.path.join(BUILD, "src", "cli", "conker")

T_TDX = "1752919234"
T_SGX = "2025-07-19T10:01:17Z"
T_OUTDATED = "1774003274"
T_SPR = "1688173200"


def vec(*p):
    return os.path.join(TDX, *p)


def run(*args):
    if not os.path.exists(CONKER):
        pytest.skip(f"{CONKER} not built")
    if not os.path.isdir(TDX):
        pytest.skip(f"test vectors not found at {TDX}")
    return subprocess.run([CONKER, "tdx", "verify", *args], capture_output=True, text=True, timeout=60)


def test_tdx_quote_up_to_date_human():
    r = run(vec("dcap-qvl", "tdx_quote"), "--collateral", vec("dcap-qvl", "tdx_quote_collateral.json"),
            "--at", T_TDX)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "status:        UpToDate" in out
    assert "advisories:    none" in out
    assert "MRTD:          91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7" in out
    for label in ("RTMR0:", "RTMR1:", "RTMR2:", "RTMR3:", "MRSEAM:", "MRCONFIGID:", "MROWNER:", "MROWNERCONFIG:",
                  "REPORTDATA:", "TDATTRIBUTES:", "XFAM:"):
        assert label in out
    assert "SIMULATED" not in out


def test_tdx_quote_json():
    r = run(vec("dcap-qvl", "tdx_quote"), "--collateral", vec("dcap-qvl", "tdx_quote_collateral.json"),
            "--at", "2025-07-19T10:00:34Z", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["status"] == "UpToDate"
    assert j["advisory_ids"] == []
    assert j["simulated"] is False
    assert j["fmspc"] == "b0c06f000000"
    m = j["measurements"]
    assert m["mr_td"].startswith("91eb2b44d141d4ec")
    assert m["rtmr"][0].startswith("44c0197b39157fdd")
    assert m["report_data"].startswith("9a9d48e7f6799642")


def test_sgx_quote():
    r = run(vec("dcap-qvl", "sgx_quote"), "--collateral", vec("dcap-qvl", "sgx_quote_collateral.json"),
            "--at", T_SGX, "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["status"] == "ConfigurationAndSWHardeningNeeded"
    assert j["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]


def test_v5_sample_up_to_date():
    r = run(vec("go-tdx-guest", "quote_v5_sample.dat"), "--collateral",
            vec("dcap-qvl", "tdx_quote_outdated_collateral.json"), "--at", T_OUTDATED)
    assert r.returncode == 0, r.stderr
    assert "status:        UpToDate" in r.stdout
    assert "TEE_TCB_SVN2:" in r.stdout


def test_outdated_quote_not_supported():
    r = run(vec("dcap-qvl", "tdx_quote_outdated"), "--collateral",
            vec("dcap-qvl", "tdx_quote_outdated_collateral.json"), "--at", T_OUTDATED)
    assert r.returncode == 1
    assert "TCB level: no matching TCB level" in r.stderr
    r = run(vec("dcap-qvl", "tdx_quote_outdated"), "--collateral",
            vec("dcap-qvl", "tdx_quote_outdated_collateral.json"), "--at", T_OUTDATED, "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["status"] == "Invalid"


@pytest.mark.parametrize("at", ["1750320802", "2053-07-01T01:00:00Z"])
def test_rejected_times(at):
    r = run(vec("dcap-qvl", "tdx_quote"), "--collateral", vec("dcap-qvl", "tdx_quote_collateral.json"), "--at", at)
    assert r.returncode == 1
    assert "future" in r.stderr or "expired" in r.stderr or "not yet valid" in r.stderr


def test_trust_anchor_options(tmp_path):
    col = vec("dcap-qvl", "tdx_quote_collateral.json")
    r = run(vec("dcap-qvl", "tdx_quote"), "--collateral", col, "--at", T_TDX, "--root", vec("intel_sgx_root_ca.pem"))
    assert r.returncode == 0, r.stderr
    # Some other root: --root refuses it, --trust-sim-root uses it and the Intel-signed quote fails.
    key, cert = tmp_path / "k.pem", tmp_path / "root.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=Other Root"],
                   check=True, capture_output=True)
    r = run(vec("dcap-qvl", "tdx_quote"), "--collateral", col, "--at", T_TDX, "--root", str(cert))
    assert r.returncode == 1
    assert "not the Intel SGX Root CA" in r.stderr
    r = run(vec("dcap-qvl", "tdx_quote"), "--collateral", col, "--at", T_TDX, "--trust-sim-root", str(cert))
    assert r.returncode == 1
    assert "trusted root" in r.stderr


def test_usage_errors():
    assert run().returncode == 2
    assert run(vec("dcap-qvl", "tdx_quote")).returncode == 2
    r = run(vec("dcap-qvl", "tdx_quote"), "--collateral", "x", "--at", "yesterday")
    assert r.returncode == 2


def test_hex_quote_and_bad_files(tmp_path):
    bad = tmp_path / "bad.hex"
    bad.write_text("0x1234\n")
    r = run(str(bad), "--collateral", vec("dcap-qvl", "tdx_quote_collateral.json"), "--at", T_TDX)
    assert r.returncode == 1
    assert "quote:" in r.stderr
    r = run(vec("dcap-qvl", "tdx_quote"), "--collateral", str(bad), "--at", T_TDX)
    assert r.returncode == 1


def test_collateral_from_pccs(tmp_path):
    if not os.path.exists(CONKER):
        pytest.skip(f"{CONKER} not built")
    pcs = FakePcs(TDX, str(tmp_path))
    cache = tmp_path / "cache"
    quote = vec("go-tdx-guest", "tdx_prod_quote_SPR_E4.dat")
    try:
        # Without trusting the server's certificate the fetch fails.
        r = run(quote, "--collateral", pcs.url, "--at", T_SPR)
        assert r.returncode == 1
        assert "fetching" in r.stderr
        # Every signature, chain and CRL of the fetched collateral verifies; only the TCB level
        # matching fails (the documented outcome for this quote).
        r = run(quote, "--collateral", pcs.url, "--at", T_SPR, "--pcs-ca", pcs.cert, "--cache-dir", str(cache))
        assert r.returncode == 1
        assert "TCB level: no matching TCB level" in r.stderr, r.stderr
        assert any(p.startswith("/tdx/certification/v4/tcb?fmspc=50806f000000") for p in pcs.requests)
        assert "/sgx/certification/v4/pckcrl?ca=platform&encoding=der" in pcs.requests
        assert len(list(cache.iterdir())) == 1
    finally:
        pcs.stop()
    # Server gone: the cached copy is used while current...
    r = run(quote, "--collateral", pcs.url, "--at", T_SPR, "--pcs-ca", pcs.cert, "--cache-dir", str(cache))
    assert r.returncode == 1
    assert "TCB level: no matching TCB level" in r.stderr, r.stderr
    # ...and refused, with a clear error, once stale.
    r = run(quote, "--collateral", pcs.url, "--at", "2023-08-01T00:00:00Z", "--pcs-ca", pcs.cert,
            "--cache-dir", str(cache))
    assert r.returncode == 1
    assert "stale" in r.stderr


def test_collateral_from_an_older_pccs(tmp_path):
    """An older PCCS names the TCB info's chain SGX-TCB-Info-Issuer-Chain: the fetch takes it. A
    later step that fails is reported as itself, not as the header spelling tried first."""
    if not os.path.exists(CONKER):
        pytest.skip(f"{CONKER} not built")
    pcs = FakePcs(TDX, str(tmp_path), tcb_chain_header="SGX-TCB-Info-Issuer-Chain")
    quote = vec("go-tdx-guest", "tdx_prod_quote_SPR_E4.dat")
    try:
        r = run(quote, "--collateral", pcs.url, "--at", T_SPR, "--pcs-ca", pcs.cert)
        assert r.returncode == 1
        assert "TCB level: no matching TCB level" in r.stderr, r.stderr
        del pcs.routes["/sgx/certification/v4/pckcrl"]
        r = run(quote, "--collateral", pcs.url, "--at", T_SPR, "--pcs-ca", pcs.cert)
        assert r.returncode == 1
        assert "404" in r.stderr and "pckcrl" in r.stderr, r.stderr
        assert "Issuer-Chain" not in r.stderr, r.stderr
    finally:
        pcs.stop()
