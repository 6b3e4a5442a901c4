"""A fake Intel PCS / PCCS for `conker tdx verify --collateral https://...` tests.

Serves the go-tdx-guest collateral parts (tests/data/tdx/go-tdx-guest) over HTTPS on 127.0.0.1 with
a throwaway self-signed certificate, with the issuer chains in URL-encoded response headers the
way PCS sends them, and the root CA CRL as hex the way a PCCS serves /rootcacrl.
"""
import http.server
import os
import ssl
import subprocess
import threading
import urllib.parse


class RouteServer:
    """HTTPS on 127.0.0.1 with a throwaway self-signed certificate (self.cert), answering GETs from
    a table {path: (body, headers)} and recording every request path in self.requests. Setting
    self.fail_status makes every request fail with that status (a PCS that is down)."""

    def __init__(self, routes, workdir, name):
        self.requests = []
        self.fail_status = None
        self.cert = os.path.join(workdir, f"{name}-cert.pem")
        key = os.path.join(workdir, f"{name}-key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", self.cert, "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                server.requests.append(self.path)
                if server.fail_status is not None:
                    self.send_error(server.fail_status)
                    return
                route = routes.get(urllib.parse.urlparse(self.path).path)
                if route is None:
                    self.send_error(404)
                    return
                body, headers = route
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path):
        """Requests so far for path (without the query)."""
        return sum(1 for p in self.requests if urllib.parse.urlparse(p).path == path)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakePcs(RouteServer):
    """tcb_chain_header: the header naming the TCB info's issuer chain (older PCCS versions say
    SGX-TCB-Info-Issuer-Chain). self.routes may be edited while the server runs."""

    def __init__(self, tdx_dir, workdir, tcb_chain_header="TCB-Info-Issuer-Chain"):
        self.dir = os.path.join(tdx_dir, "go-tdx-guest")
        self.workdir = workdir

        def read(name, mode="rb"):
            with open(os.path.join(self.dir, name), mode) as f:
                return f.read()

        tcb_chain = urllib.parse.quote(read("tcb_signing_chain.pem", "r"), safe="")
        pck_chain = urllib.parse.quote(read("pck_crl_issuer_chain.pem", "r"), safe="")
        routes = {
            "/tdx/certification/v4/tcb": (read("sample_tcbInfo_response"), {tcb_chain_header: tcb_chain}),
            "/tdx/certification/v4/qe/identity": (read("sample_qeIdentity_response"),
                                                  {"SGX-Enclave-Identity-Issuer-Chain": tcb_chain}),
            "/sgx/certification/v4/pckcrl": (read("pckcrl"), {"SGX-PCK-CRL-Issuer-Chain": pck_chain}),
            "/sgx/certification/v4/rootcacrl": (read("rootcrl.der").hex().encode(), {}),
        }
        self.routes = routes
        super().__init__(routes, workdir, "pcs")
