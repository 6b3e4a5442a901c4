"""A throttling TCP relay for tests of slow pulls (cancel, kill mid-pull), and its one-way pipe."""
import socket
import threading
import time


def pipe(src, dst, rate=None, stopping=lambda: False):
    """Copies src to dst (at most `rate` bytes/s) until either end closes, then shuts both."""
    try:
        while not stopping():
            data = src.recv(4096)
            if not data:
                break
            dst.sendall(data)
            if rate:
                time.sleep(len(data) / rate)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ThrottleProxy:
    """A TCP relay on 127.0.0.1 that sends the upstream's answers at `rate` bytes/s."""

    def __init__(self, upstream_port: int, rate: int = 32 * 1024):
        self.upstream = upstream_port
        self.rate = rate
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(c, u, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, self.rate), daemon=True).start()

    def _pipe(self, src, dst, rate):
        pipe(src, dst, rate, lambda: self.stopping)

    def close(self):
        self.stopping = True
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
