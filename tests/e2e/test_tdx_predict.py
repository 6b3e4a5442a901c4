"""`conker tdx predict` on the public vectors of tests/data/tdx-predict: the RTMR0 of the two
tdx-measure fixtures from their ACPI tables, the Debian 12 OVMF.fd MRTD in both page orders, a
direct kernel boot and a UKI (event log, -w value), and the usage errors."""
import hashlib
import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "tdx-predict")
BUILD = os.environ.get("CONKER_BUILD", os.path.join(HERE, "..", "..", "build"))
CONKER = os.path.join(BUILD, "src", "cli", "conker")
OVMF = "/usr/share/ovmf/OVMF.fd"
OVMF_SHA256 = "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773"
# osslsigncode 2.9's Authenticode SHA-384 of pe/bz.patched.efi (QEMU's edits applied by genpe.py).
DIGEST_BZ_PATCHED = ("c1c38c2d295e5464ebfa225bfc9865cb45a02285a9736f045b7ce904a5386a81"
                     "19f3845467967f19f8243ec4832727c4")


def data(*p):
    return os.path.join(DATA, *p)


def predict(*args):
    if not os.path.exists(CONKER):
        pytest.skip(f"{CONKER} not built")
    return subprocess.run([CONKER, "tdx", "predict", *args], capture_output=True, text=True, timeout=120)


def vectors():
    with open(data("derived", "vectors.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("name", ["canonical-defaults", "q35-with-hpet"])
@pytest.mark.parametrize("cfv", ["vars", "digest"])
def test_virtee_rtmr0(tmp_path, name, cfv):
    fx = vectors()["virtee_rtmr0_breakdown"][name]
    rsdp = tmp_path / "rsdp"
    rsdp.write_bytes(bytes.fromhex(fx["rsdp_bytes_hex"]))
    args = ["--tdvf-layout", "b", "--memory", f"{fx['memory_mib']}M",
            "--acpi-tables", data("virtee-tdx-measure", name, "acpi_tables.bin"), "--acpi-rsdp", str(rsdp)]
    if cfv == "vars":
        args += ["--vars", data("debian-ovmf", "OVMF_VARS_4M.fd")]
    else:
        args += ["--cfv-digest", fx["events"]["cfv"]]
    r = predict(*args)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    with open(data("virtee-tdx-measure", name, "expected.json")) as f:
        want = json.load(f)
    assert out == {"rtmr0": want["rtmr0"], "source": "conker tdx predict"}
    # The loader rebuilt from the tables gives the fixture's digest; giving it changes nothing.
    r2 = predict(*args, "--acpi-loader-digest", fx["table_loader_sha384"])
    assert r2.returncode == 0 and json.loads(r2.stdout) == out


def test_debian_ovmf_mrtd(tmp_path):
    if not os.path.exists(OVMF):
        pytest.skip(f"{OVMF} is not installed (Debian package ovmf)")
    with open(OVMF, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != OVMF_SHA256:
            pytest.skip(f"{OVMF} is not ovmf 2022.11-6+deb12u2")
    v = vectors()["debian_bookworm_ovmf_2M"]
    r = predict("--firmware", OVMF)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["mrtd"] == v["mrtd_single_pass"]
    out = tmp_path / "rv.json"
    r = predict("--firmware", OVMF, "--mrtd-order", "two-pass", "-o", str(out))
    assert r.returncode == 0 and r.stdout == ""
    assert json.loads(out.read_text())["mrtd"] == v["mrtd_two_pass"]


def test_direct_boot(tmp_path):
    initrd = tmp_path / "initrd"
    initrd.write_bytes(bytes((i * 13) & 0xff for i in range(4096)))
    events = tmp_path / "events.json"
    args = ["--kernel", data("pe", "bz.efi"), "--initrd", str(initrd), "--cmdline", "console=ttyS0",
            "--memory", "2G"]
    r = predict(*args, "--events", str(events))
    assert r.returncode == 0, r.stderr
    rv = json.loads(r.stdout)
    assert set(rv) == {"rtmr1", "rtmr2", "source"}
    assert f"-w {rv['rtmr1']}" in r.stderr
    ev = json.loads(events.read_text())
    assert [(e["rtmr"], e["what"]) for e in ev] == [
        (1, "kernel"), (1, "Calling EFI Application from Boot Option"), (1, "separator"), (2, "cmdline"),
        (2, "initrd"), (1, "Exit Boot Services Invocation"), (1, "Exit Boot Services Returned with Success")]
    assert ev[0]["digest"] == DIGEST_BZ_PATCHED
    assert ev[3]["digest"] == hashlib.sha384("console=ttyS0 initrd=initrd".encode("utf-16-le") + b"\0\0").hexdigest()
    assert ev[4]["digest"] == hashlib.sha384(initrd.read_bytes()).hexdigest()
    # Replaying the printed events gives the printed registers.
    regs = {1: bytes(48), 2: bytes(48)}
    for e in ev:
        regs[e["rtmr"]] = hashlib.sha384(regs[e["rtmr"]] + bytes.fromhex(e["digest"])).digest()
    assert regs[1].hex() == rv["rtmr1"] and regs[2].hex() == rv["rtmr2"]
    w = predict(*args, "--print-w")
    assert w.returncode == 0 and w.stdout == rv["rtmr1"] + "\n"
    # The initrd address depends on the low-memory size: 1 GiB moves it, 8 GiB does not.
    assert predict(*args[:-1], "1G", "--print-w").stdout != w.stdout
    assert predict(*args[:-1], "8G", "--print-w").stdout == w.stdout


def test_uki(tmp_path):
    r = predict("--uki", data("pe", "uki.efi"), "--events", "-")
    assert r.returncode == 0, r.stderr
    r2 = predict("--uki", data("pe", "uki.efi"), "--no-stub-sections")
    assert r2.returncode == 0, r2.stderr
    a, b = json.loads(r2.stdout), json.loads(r.stdout.split("\n[")[0])
    assert a["rtmr1"] == b["rtmr1"] and a["rtmr2"] != b["rtmr2"]


@pytest.mark.parametrize("args,code,msg", [
    ([], 1, "nothing to predict"),
    (["--memory", "2X"], 1, "--memory"),
    (["--mrtd-order", "three-pass"], 1, "--mrtd-order"),
    (["--bogus"], 2, "usage"),
    (["--cfv-digest", "00"], 1, "96 hex digits"),
    (["--uki", "/nonexistent"], 1, "/nonexistent"),
    (["--kernel", data("pe", "bz.efi"), "--initrd", data("pe", "a.efi")], 1, "memory size"),
    (["--uki", data("pe", "uki.efi"), "--cmdline", "quiet"], 1, "own command line"),
    (["--acpi-tables", data("pe", "a.efi")], 1, "--acpi-rsdp"),
])
def test_usage_errors(args, code, msg):
    r = predict(*args)
    assert r.returncode == code
    assert msg in r.stderr
    assert r.stdout == ""


def test_check_ccel():
    log = data("dstack", "cc-eventlog-samples-ccel.bin")
    r = predict("--check-ccel", log, "--tdvf-layout", "b", "--memory", "1G")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["events"], out["rederived"], out["opaque"], out["td_hob_checked"]) == (18, 13, 5, True)
    assert out["rtmr2"] == "00" * 48
    # The TD HOB of another memory size does not explain the log.
    r = predict("--check-ccel", log, "--tdvf-layout", "b", "--memory", "2G")
    assert r.returncode == 1 and "type 0x8000000b" in r.stderr
    # A predicted register that the log does not reach.
    r = predict("--check-ccel", log, "--kernel", data("pe", "bz.efi"))
    assert r.returncode == 1 and "RTMR1 differs" in r.stderr
    # COS-113: replay equals its quote.
    r = predict("--check-ccel", data("go-eventlog", "cos-113-intel-tdx-dupe-separator-unpadded.bin"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rtmr2"].startswith("4969684dc87381fc") and out["rederived"] == 31
