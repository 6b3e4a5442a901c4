"""A forged PCK certificate chain, as anyone can make one: a root, a "PCK Platform CA" and a
"PCK Certificate" of one's own, with Intel's names and a real-format SGX extension carrying any
FMSPC. Written over a simulated TD's pck-chain.pem (keeping its PCK key, so the quote is signed
consistently), it makes that TD present a chain no trusted root signed.
"""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SGX_EXT = "1.2.840.113741.1.13.1"


def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag, body):
    return bytes([tag]) + _der_len(len(body)) + body


def _oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    out = bytes([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        enc = [a & 0x7F]
        a >>= 7
        while a:
            enc.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(enc))
    return _tlv(0x06, out)


def _int(v):
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big"))


def _pair(oid, value):
    return _tlv(0x30, _oid(oid) + value)


def sgx_extension(fmspc):
    """The SGX extension's DER (PPID, TCB, PCE-ID, FMSPC, SGX type) with the given 6-byte FMSPC."""
    tcb = b"".join(_pair(f"{SGX_EXT}.2.{i + 1}", _int(1)) for i in range(16))
    tcb += _pair(f"{SGX_EXT}.2.17", _int(11)) + _pair(f"{SGX_EXT}.2.18", _tlv(0x04, bytes(16)))
    top = (_pair(f"{SGX_EXT}.1", _tlv(0x04, os.urandom(16))) + _pair(f"{SGX_EXT}.2", _tlv(0x30, tcb)) +
           _pair(f"{SGX_EXT}.3", _tlv(0x04, bytes(2))) + _pair(f"{SGX_EXT}.4", _tlv(0x04, fmspc)) +
           _pair(f"{SGX_EXT}.5", _tlv(0x0A, b"\x00")))
    return _tlv(0x30, top)


def _cert(cn, key, issuer_cn, issuer_key, ca, ext=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ext is not None:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXT), ext), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def forge_pck_chain(sim_dir, fmspc):
    """Replaces sim_dir/pck-chain.pem with a self-made chain for fmspc (6 bytes), keeping the PCK key."""
    with open(os.path.join(sim_dir, "pck-key.pem"), "rb") as f:
        pck_key = serialization.load_pem_private_key(f.read(), None)
    root_key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Intel SGX Root CA", root_key, "Intel SGX Root CA", root_key, True)
    ca = _cert("Intel SGX PCK Platform CA", ca_key, "Intel SGX Root CA", root_key, True)
    leaf = _cert("Intel SGX PCK Certificate", pck_key, "Intel SGX PCK Platform CA", ca_key, False,
                 sgx_extension(fmspc))
    with open(os.path.join(sim_dir, "pck-chain.pem"), "wb") as f:
        for c in (leaf, ca, root):
            f.write(c.public_bytes(serialization.Encoding.PEM))
