"""Network misbehaviour around a real registry, for the registry-client tests
(tests/e2e/test_image_registry.py). Everything listens on 127.0.0.1 with a port chosen by the
kernel and is stopped by its context manager.

* `FrontProxy`: an HTTPS (or HTTP) reverse proxy in front of a `Registry` that records every
  request (with its headers), can answer scripted failures first (429 + Retry-After, 503),
  can redirect blob GETs to a `BlobServer` on another port, and can throttle blob bodies.
* `BlobServer`: serves blobs by digest (a CDN stand-in) and records the headers it received,
  so a test can check that no Authorization header followed a redirect.
* `TokenServer` + `TokenRegistry`: docker-registry configured with `auth: token`, and a token
  server issuing ES256 JWTs signed by a key whose CA is the registry's rootcertbundle — the
  Bearer flow Docker Hub uses, end to end. The token server records its requests and can be
  told to mint tokens the registry will refuse (wrong audience).
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

import requests

from helpers.registry import Registry

HOP_HEADERS = ("Content-Type", "Content-Length", "Docker-Content-Digest", "WWW-Authenticate",
               "Content-Range", "Location", "Retry-After", "Docker-Distribution-Api-Version")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        try:
            self.server.owner.handle(self)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    do_HEAD = do_GET


class _Server:
    """A threaded HTTP(S) server on 127.0.0.1:<free port> calling self.handle(handler)."""

    def __init__(self, cert: tuple[Path, Path] | None, tls: bool = False):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.tls = tls or cert is not None
        if cert:
            self.set_cert(cert)
        self.port = self.httpd.server_address[1]
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def set_cert(self, cert: tuple[Path, Path]):
        """Serves TLS with (certificate, key); before the server starts."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.tls = True

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if hasattr(self, "stopping"):
            self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def record(self, h) -> dict:
        entry = {"t": time.monotonic(), "method": h.command, "path": h.path,
                 "headers": {k.lower(): v for k, v in h.headers.items()},
                 "peer": h.client_address[1]}  # the client's port: one per connection
        with self.lock:
            self.requests.append(entry)
        return entry

    def matching(self, part: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if part in r["path"]]

    @staticmethod
    def reply(h, status: int, body: bytes = b"", headers: dict | None = None):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)


class BlobServer(_Server):
    """GET /blobs/<digest>: the blob, read with provider(digest) -> bytes."""

    def __init__(self, provider, cert=None):
        super().__init__(cert)
        self.provider = provider

    def handle(self, h):
        self.record(h)
        digest = h.path.split("?")[0].rsplit("/", 1)[-1]
        try:
            data = self.provider(digest)
        except OSError:
            return self.reply(h, 404)
        self.reply(h, 200, data, {"Content-Type": "application/octet-stream"})


class FrontProxy(_Server):
    """Reverse proxy to upstream (a Registry). Knobs, all optional:
    fail: list of [path_part, status, headers, count] answered before forwarding;
    redirect_blobs: a BlobServer; blob GETs get a 307 there;
    throttle: bytes per second for blob bodies;
    mutate: f(path, body) -> body, to play a registry that lies;
    drop_blobs: the first N blob replies stop half-way (connection closed);
    ignore_range: Range headers are not forwarded (the registry answers 200, not 206);
    stall_blobs: blob replies send their headers and then nothing, until the proxy stops."""

    def __init__(self, upstream: Registry, cert=None, fail=None, redirect_blobs=None,
                 throttle: int | None = None, mutate=None, drop_blobs: int = 0,
                 ignore_range: bool = False, stall_blobs: bool = False):
        super().__init__(cert)
        self.upstream = upstream
        self.mutate = mutate
        self.drop_blobs, self.ignore_range, self.stall_blobs = drop_blobs, ignore_range, stall_blobs
        self.stopping = threading.Event()
        self.fail = [list(f) for f in (fail or [])]
        self.redirect_blobs = redirect_blobs
        self.throttle = throttle

    def handle(self, h):
        self.record(h)
        with self.lock:
            for rule in self.fail:
                if rule[0] in h.path and rule[3] > 0:
                    rule[3] -= 1
                    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS" if rule[1] == 429 else
                                                   "UNAVAILABLE", "message": "try again"}]}).encode()
                    return self.reply(h, rule[1], body, {"Content-Type": "application/json", **rule[2]})
        if self.redirect_blobs and "/blobs/" in h.path and h.command == "GET":
            digest = h.path.rsplit("/", 1)[-1]
            return self.reply(h, 307, b"", {"Location": f"{self.redirect_blobs.url}/blobs/{digest}?sig=x"})

        forwarded = ("authorization", "accept") if self.ignore_range else ("authorization", "accept", "range")
        fwd = {k: v for k, v in h.headers.items() if k.lower() in forwarded}
        up = requests.request(h.command, self.upstream.url + h.path, headers=fwd, stream=True,
                              allow_redirects=False,
                              verify=str(self.upstream.ca_file) if self.upstream.tls else False)
        body = up.raw.read(decode_content=False) if h.command != "HEAD" else b""
        if self.mutate and up.status_code == 200:
            body = self.mutate(h.path, body)
        h.send_response(up.status_code)
        for k in HOP_HEADERS:
            if k in up.headers and k != "Content-Length":
                h.send_header(k, up.headers[k])
        h.send_header("Content-Length", str(len(body) if h.command != "HEAD" else
                                            up.headers.get("Content-Length", "0")))
        h.end_headers()
        if h.command == "HEAD":
            return
        is_blob = "/blobs/" in h.path and up.status_code in (200, 206)
        if is_blob and self.stall_blobs:
            h.wfile.flush()
            self.stopping.wait(60)
            h.close_connection = True
            return
        drop = False
        with self.lock:
            if is_blob and self.drop_blobs > 0 and len(body) > 1:
                self.drop_blobs -= 1
                drop = True
        if drop:
            h.wfile.write(body[:len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        if self.throttle and "/blobs/" in h.path:
            step = 16 << 10
            for i in range(0, len(body), step):
                h.wfile.write(body[i:i + step])
                h.wfile.flush()
                time.sleep(step / self.throttle)
        else:
            h.wfile.write(body)


# -- Bearer tokens: a token server and a registry that trusts it ---------------------------
def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenServer(_Server):
    """GET /token?service=S&scope=repository:NAME:ACTIONS -> {"token": <ES256 JWT>, ...}.
    users: {name: password}; anonymous pulls allowed when allow_anonymous."""

    ISSUER = "conker-e2e-issuer"
    SERVICE = "conker-e2e-registry"

    def __init__(self, workdir: Path, users: dict[str, str], allow_anonymous=False,
                 token_field="token", audience=None, expires_in=300):
        # TLS is set up later with the registry's certificate (set_cert), once it exists.
        super().__init__(None, tls=True)
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users, self.allow_anonymous = users, allow_anonymous
        self.token_field, self.expires_in = token_field, expires_in
        self.audience = audience or self.SERVICE
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conker e2e token CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
        self.key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conker e2e token signer")]))
                .issuer_name(ca_name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(ca_key, hashes.SHA256()))
        self.leaf_der = leaf.public_bytes(serialization.Encoding.DER)
        workdir.mkdir(parents=True, exist_ok=True)
        self.bundle = workdir / "token-ca.crt"
        self.bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def mint(self, sub: str, access: list[dict]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.leaf_der).decode()]}
        now = int(time.time())
        claims = {"iss": self.ISSUER, "sub": sub, "aud": self.audience, "exp": now + self.expires_in,
                  "nbf": now - 10, "iat": now, "jti": _b64url(os.urandom(12)), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def handle(self, h):
        entry = self.record(h)
        url = urllib.parse.urlparse(h.path)
        q = urllib.parse.parse_qs(url.query)
        entry["query"] = q
        if url.path != "/token":
            return self.reply(h, 404)
        user = None
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(name) != pw:
                return self.reply(h, 401, json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                                                  "message": "bad credentials"}]}).encode(),
                                  {"Content-Type": "application/json"})
            user = name
        elif not self.allow_anonymous:
            return self.reply(h, 401, b'{"details":"login required"}', {"Content-Type": "application/json"})
        access = []
        for scope in q.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            want = actions.split(",")
            granted = want if user else [a for a in want if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        body = {self.token_field: self.mint(user or "", access), "expires_in": self.expires_in}
        self.reply(h, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})


class TokenRegistry(Registry):
    """docker-registry with `auth: token` trusting token_server. Pushes (skopeo) log in to the
    token server with user/password. start() also starts the token server, with the
    registry's TLS certificate (so one CA file serves both)."""

    def __init__(self, workdir: Path, token_server: TokenServer, user: str, password: str):
        super().__init__(workdir, tls=True, auth=False)
        self.token_server = token_server
        self.user, self.password = user, password

    def _write_config(self):
        super()._write_config()
        ts = self.token_server
        with open(self.workdir / "config.yml", "a") as f:
            f.write("auth:\n  token:\n"
                    f"    realm: {ts.url}/token\n"
                    f"    service: {TokenServer.SERVICE}\n"
                    f"    issuer: {TokenServer.ISSUER}\n"
                    f"    rootcertbundle: {ts.bundle}\n")

    def start(self, attempts: int = 5):
        super().start(attempts)
        self.token_server.set_cert((self.certs / "server.crt", self.certs / "server.key"))
        self.token_server.__enter__()

    def stop(self):
        if self.token_server.thread.is_alive():
            self.token_server.__exit__(None, None, None)
        super().stop()

    def skopeo_dest_args(self) -> list[str]:
        return [*super().skopeo_dest_args(), f"--dest-creds={self.user}:{self.password}"]
