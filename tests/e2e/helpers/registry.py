"""A real OCI registry for end-to-end tests, and tools to build and push images to it.

Reusable by every e2e test that needs images:

    with Registry(tmp_path / "reg") as reg:          # TLS + htpasswd by default
        img = ImageBuilder(tmp_path / "build").busybox("demo")
        img.add_tar_layer(tar_bytes)                  # a hand-made layer (tarfile)
        reg.push_layout(img.layout, img.tag, "demo/app:v1")
        ...  conker image pull --ca-file reg.ca_file --user reg.user --password-stdin
             f"{reg.host}/demo/app:v1"

* `Registry` runs Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with a free
  port, its own storage dir, optional htpasswd auth (bcrypt, `htpasswd -Bbn`) and optional TLS
  with a CA and server certificate made here with the openssl CLI. It always stops the
  process and removes its temp dirs (use it as a context manager or call `stop()`).
* `ImageBuilder` makes OCI image layouts with umoci, starting from a busybox-static rootfs,
  adding layers from directory changes (umoci computes whiteouts) or from raw tar files.
* `build_test_image()` makes the standard 4-layer test image (whiteouts, an opaque dir, hard
  links, symlinks, owners, setuid) whose expected rootfs is umoci's own unpack of it.
* `write_oci_layout()` writes an OCI layout by hand from raw layers (no tool in between).
* `Registry.push_layout()` pushes a layout with skopeo; `push_blob()`/`push_manifest()` use the
  registry API directly, for hand-crafted (hostile) images.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import requests

REGISTRY_BIN = "/usr/bin/docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run(cmd, **kw):
    """subprocess.run with check and captured output; failures show stderr."""
    kw.setdefault("capture_output", True)
    r = subprocess.run(cmd, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr!r}")
    return r


def make_ca_and_server_cert(d: Path, extra_ips=()) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost (and extra_ips) signed
    by it. Returns (ca.crt, server.crt, server.key)."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt, ext = d / "server.key", d / "server.csr", d / "server.crt", d / "server.ext"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=conker test CA"])
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    ext.write_text("subjectAltName=" + ",".join(f"IP:{ip}" for ip in ("127.0.0.1", *extra_ips)) +
                   ",DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext])
    return ca_crt, crt, key


class _VerifyingSession(requests.Session):
    def __init__(self, verify):
        super().__init__()
        self._ck_verify = verify

    def request(self, method, url, **kw):
        kw.setdefault("verify", self._ck_verify)
        return super().request(method, url, **kw)


class Registry:
    """docker-registry on 127.0.0.1:<free port>. tls/auth default on."""

    def __init__(self, workdir: Path | None = None, tls: bool = True, auth: bool = True,
                 user: str = "conker", password: str = "s3cret-Passw0rd", extra_ips=()):
        """extra_ips: more addresses in the server certificate (a VM reaches it through one)."""
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ck-registry-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls, self.auth = tls, auth
        self.extra_ips = tuple(extra_ips)
        self.user, self.password = (user, password) if auth else (None, None)
        self.storage = self.workdir / "storage"
        self.certs = self.workdir / "certs"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.ca_file: Path | None = None
        self._log = None

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def start(self, attempts: int = 5):
        self.storage.mkdir(parents=True, exist_ok=True)
        if self.tls:
            self.ca_file, crt, key = make_ca_and_server_cert(self.certs, self.extra_ips)
        if self.auth:
            r = run(["htpasswd", "-Bbn", self.user, self.password], text=True)
            (self.workdir / "htpasswd").write_text(r.stdout)
        # Another test may grab the port between our probe and the bind: retry a few times.
        for _ in range(attempts):
            self.port = free_port()
            self._write_config()
            self._log = open(self.workdir / "registry.log", "wb")
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.workdir / "config.yml")],
                                         stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            if self._wait_ready():
                return
            self._kill()
        raise RuntimeError("docker-registry did not start; see " + str(self.workdir / "registry.log"))

    def _write_config(self):
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: conker-e2e-not-a-secret",
        ]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.certs / 'server.crt'}",
                      f"    key: {self.certs / 'server.key'}"]
        if self.auth:
            lines += ["auth:", "  htpasswd:", "    realm: conker-e2e",
                      f"    path: {self.workdir / 'htpasswd'}"]
        (self.workdir / "config.yml").write_text("\n".join(lines) + "\n")

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = requests.get(self.url + "/v2/", verify=str(self.ca_file) if self.tls else False,
                                 timeout=1)
                if r.status_code in (200, 401):
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def stop(self):
        """Kills the registry and removes everything it had. Safe to call twice."""
        self._kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            shutil.rmtree(self.storage, ignore_errors=True)

    # -- client helpers --------------------------------------------------------------------
    def session(self) -> requests.Session:
        """A requests session that trusts the test CA and logs in. (verify is set per request
        too: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify.)"""
        s = _VerifyingSession(str(self.ca_file) if self.tls else False)
        if self.auth:
            s.auth = (self.user, self.password)
        return s

    def cert_dir(self) -> Path:
        """A directory in the layout skopeo/containers expect for --*-cert-dir (ca.crt)."""
        d = self.workdir / "skopeo-certs"
        d.mkdir(exist_ok=True)
        if self.ca_file:
            shutil.copy(self.ca_file, d / "ca.crt")
        return d

    def skopeo_dest_args(self) -> list[str]:
        args = [f"--dest-tls-verify={'true' if self.tls else 'false'}"]
        if self.tls:
            args.append(f"--dest-cert-dir={self.cert_dir()}")
        if self.auth:
            args.append(f"--dest-creds={self.user}:{self.password}")
        return args

    def skopeo_src_args(self) -> list[str]:
        args = [f"--src-tls-verify={'true' if self.tls else 'false'}"]
        if self.tls:
            args.append(f"--src-cert-dir={self.cert_dir()}")
        if self.auth:
            args.append(f"--src-creds={self.user}:{self.password}")
        return args

    def push_layout(self, layout: Path, tag: str, dest: str):
        """Pushes layout:tag to <registry>/<dest> ("repo/name:tag") with skopeo, blobs as-is."""
        run(["skopeo", "copy", "--quiet", "--preserve-digests", *self.skopeo_dest_args(),
             f"oci:{layout}:{tag}", f"docker://{self.host}/{dest}"])

    def push_blob(self, repo: str, data: bytes) -> str:
        """Monolithic blob upload through the registry API; returns the digest."""
        digest = sha256_digest(data)
        s = self.session()
        r = s.post(f"{self.url}/v2/{repo}/blobs/uploads/")
        r.raise_for_status()
        loc = r.headers["Location"]
        if loc.startswith("/"):
            loc = self.url + loc
        r = s.put(loc, params={"digest": digest}, data=data,
                  headers={"Content-Type": "application/octet-stream"})
        r.raise_for_status()
        return digest

    def push_manifest(self, repo: str, tag: str, manifest: dict, media_type: str = OCI_MANIFEST) -> str:
        body = json.dumps(manifest, separators=(",", ":")).encode()
        r = self.session().put(f"{self.url}/v2/{repo}/manifests/{tag}", data=body,
                               headers={"Content-Type": media_type})
        r.raise_for_status()
        return sha256_digest(body)

    def push_image(self, repo: str, tag: str, layers: list[tuple[bytes, bytes, str]],
                   config_extra: dict | None = None) -> dict:
        """Pushes an image made of raw layers [(blob, uncompressed_tar, media_type)] and returns
        {"manifest": digest, "config": digest, "layers": [digests], "diff_ids": [...]}."""
        diff_ids = [sha256_digest(plain) for _, plain, _ in layers]
        config = {"architecture": "amd64", "os": "linux",
                  "config": {"Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        config.update(config_extra or {})
        cfg = json.dumps(config, separators=(",", ":")).encode()
        cfg_digest = self.push_blob(repo, cfg)
        descs = []
        for blob, _, mt in layers:
            descs.append({"mediaType": mt, "digest": self.push_blob(repo, blob), "size": len(blob)})
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(cfg)},
                    "layers": descs}
        m = self.push_manifest(repo, tag, manifest)
        return {"manifest": m, "config": cfg_digest, "layers": [d["digest"] for d in descs],
                "diff_ids": diff_ids}

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob (for tampering tests)."""
        algo, hexd = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algo / hexd[:2] / hexd / "data"


class OciImage:
    """An OCI layout with one tag, built step by step with umoci."""

    def __init__(self, builder: "ImageBuilder", layout: Path, tag: str):
        self.builder, self.layout, self.tag = builder, layout, tag

    @property
    def ref(self) -> str:
        return f"{self.layout}:{self.tag}"

    def add_dir_layer(self, change):
        """Unpacks the image, calls change(rootfs_path) and repacks: umoci turns the
        difference into a layer (deleted files become whiteouts)."""
        bundle = Path(tempfile.mkdtemp(prefix="bundle-", dir=self.builder.workdir))
        shutil.rmtree(bundle)
        run(["umoci", "unpack", "--image", self.ref, str(bundle)])
        change(bundle / "rootfs")
        run(["umoci", "repack", "--image", self.ref, str(bundle)])
        shutil.rmtree(bundle, ignore_errors=True)
        return self

    def add_tar_layer(self, tar_bytes: bytes):
        """Appends a layer made from an uncompressed tar as it is (hand-made whiteouts,
        opaque markers and links survive unchanged)."""
        f = self.builder.workdir / f"layer-{hashlib.sha256(tar_bytes).hexdigest()[:12]}.tar"
        f.write_bytes(tar_bytes)
        run(["umoci", "raw", "add-layer", "--image", self.ref, str(f)])
        f.unlink()
        return self

    def config(self, *args: str):
        """umoci config options, e.g. config("--config.cmd=/bin/sh")."""
        run(["umoci", "config", "--image", self.ref, *args])
        return self

    def unpack_reference(self, dest: Path) -> Path:
        """umoci's own unpack of the image: an independent oracle for the rootfs. Returns the
        rootfs path."""
        run(["umoci", "unpack", "--image", self.ref, str(dest)])
        return dest / "rootfs"


class ImageBuilder:
    """Makes OCI layouts under workdir. Start from busybox() or empty()."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def empty(self, name: str, tag: str = "latest") -> OciImage:
        layout = self.workdir / name
        run(["umoci", "init", "--layout", str(layout)])
        run(["umoci", "new", "--image", f"{layout}:{tag}"])
        return OciImage(self, layout, tag)

    def busybox(self, name: str, tag: str = "latest") -> OciImage:
        """An image whose first layer is busybox-static with a few applet links."""
        img = self.empty(name, tag)

        def populate(root: Path):
            for d in ("bin", "etc", "tmp", "root", "usr/bin"):
                (root / d).mkdir(parents=True, exist_ok=True)
            os.chmod(root / "tmp", 0o1777)
            shutil.copy("/bin/busybox", root / "bin/busybox")
            for applet in ("sh", "ls", "cat", "echo", "id", "sleep", "wget", "true"):
                os.symlink("busybox", root / "bin" / applet)
            (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                             "nobody:x:65534:65534:nobody:/:/bin/false\n")
            (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")

        img.add_dir_layer(populate)
        img.config("--config.cmd=/bin/sh")
        return img


def write_oci_layout(layout: Path, tag: str, layers: list[tuple[bytes, bytes, str]],
                     config_extra: dict | None = None) -> dict:
    """Writes an OCI image layout by hand (no tool in between) from raw layers
    [(blob, uncompressed_tar, media_type)]; returns the digests like Registry.push_image()."""
    layout = Path(layout)
    blobs = layout / "blobs/sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = sha256_digest(data)
        (blobs / d.split(":")[1]).write_bytes(data)
        return d

    diff_ids = [sha256_digest(plain) for _, plain, _ in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config.update(config_extra or {})
    cfg = json.dumps(config, separators=(",", ":")).encode()
    descs = [{"mediaType": mt, "digest": put(blob), "size": len(blob)} for blob, _, mt in layers]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": put(cfg), "size": len(cfg)},
                           "layers": descs}, separators=(",", ":")).encode()
    m = put(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": m, "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return {"manifest": m, "config": sha256_digest(cfg), "layers": [d["digest"] for d in descs],
            "diff_ids": diff_ids}


# -- tar helpers shared with hostile.py and the tests ---------------------------------------
def tar_bytes(members: list[dict]) -> bytes:
    """An uncompressed pax tar from a list of member dicts:
    {"name", "type": "file"|"dir"|"symlink"|"hardlink"|"char"|"fifo", "data": bytes,
     "target": str, "mode": int, "uid": int, "gid": int, "mtime": int, "pax": {...}}"""
    bio = io.BytesIO()
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m in members:
            ti = tarfile.TarInfo(m["name"])
            ti.type = types[m.get("type", "file")]
            ti.mode = m.get("mode", 0o755 if ti.type == tarfile.DIRTYPE else 0o644)
            ti.uid, ti.gid = m.get("uid", 0), m.get("gid", 0)
            ti.mtime = m.get("mtime", 1700000000)
            if "target" in m:
                ti.linkname = m["target"]
            if "pax" in m:
                ti.pax_headers = m["pax"]
            data = m.get("data", b"") if ti.type == tarfile.REGTYPE else None
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return bio.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    import gzip
    return gzip.compress(data, compresslevel=6, mtime=0)


def _opaque_layer() -> bytes:
    # The opaque marker comes before its directory's entry: order must not matter.
    return tar_bytes([
        {"name": "opt/app/.wh..wh..opq"},
        {"name": "opt/app/", "type": "dir", "mode": 0o750, "uid": 1000, "gid": 1000},
        {"name": "opt/app/new.txt", "data": b"after the opaque marker\n", "mode": 0o600},
        {"name": "srv/", "type": "dir"},
        {"name": "srv/a", "data": b"linked\n", "uid": 33, "gid": 33},
        {"name": "srv/b", "type": "hardlink", "target": "srv/a"},
        {"name": "srv/link", "type": "symlink", "target": "a"},
        {"name": "srv/abs", "type": "symlink", "target": "/etc/passwd"},
        {"name": "bin/.wh.wget"},
        {"name": "srv/fifo", "type": "fifo", "mode": 0o600},
    ])


def build_test_image(builder: ImageBuilder, name: str, tag: str = "latest") -> OciImage:
    """The standard multi-layer test image (4 layers):
    1. busybox-static with applet symlinks, /etc/passwd, /tmp 1777;
    2. (umoci) /opt/app/{data.txt, old.txt, sub/keep} with a hard link hl -> data.txt,
       /etc/motd, setuid /usr/bin/su-like, /home/user/notes owned 1000:1000 mode 0640,
       symlink /usr/bin/hello -> /bin/busybox;
    3. (umoci) deletes /etc/motd and /opt/app/old.txt (whiteouts), rewrites data.txt;
    4. (hand-made tar) /opt/app opaque with only new.txt, /srv/{a, b (hard link), link, abs,
       fifo}, a whiteout of /bin/wget.
    The expected rootfs: img.unpack_reference(dir) (umoci's own unpack)."""
    img = builder.busybox(name, tag)

    def layer2(root: Path):
        app = root / "opt/app"
        (app / "sub").mkdir(parents=True)
        (app / "data.txt").write_text("v1\n")
        (app / "old.txt").write_text("to be deleted\n")
        (app / "sub/keep").write_text("hidden later by the opaque dir\n")
        os.link(app / "data.txt", app / "hl")
        (root / "etc/motd").write_text("hello\n")
        su = root / "usr/bin/su-like"
        su.write_bytes(b"#!/bin/sh\n")
        os.chmod(su, 0o4755)
        home = root / "home/user"
        home.mkdir(parents=True)
        (home / "notes").write_text("private\n")
        os.chown(home, 1000, 1000)
        os.chown(home / "notes", 1000, 1000)
        os.chmod(home / "notes", 0o640)
        os.symlink("/bin/busybox", root / "usr/bin/hello")

    def layer3(root: Path):
        (root / "etc/motd").unlink()
        (root / "opt/app/old.txt").unlink()
        (root / "opt/app/data.txt").write_text("v2\n")

    img.add_dir_layer(layer2)
    img.add_dir_layer(layer3)
    img.add_tar_layer(_opaque_layer())
    return img
