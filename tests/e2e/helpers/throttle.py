"""TCP relays for tests: a throttling one for slow pulls (cancel, kill mid-pull), its one-way pipe,
and one that holds a TLS server's answer (kill mid-attestation)."""
import socket
import threading
import time


def pipe(src, dst, rate=None, stopping=lambda: False, forward=lambda data: True, shut=True):
    """Copies src to dst (at most `rate` bytes/s) until either end closes, then shuts both unless
    told not to. forward(data) sees each chunk first; the chunk is sent only when it returns true."""
    try:
        while not stopping():
            data = src.recv(4096)
            if not data:
                break
            if forward(data):
                dst.sendall(data)
            if rate:
                time.sleep(len(data) / rate)
    except OSError:
        pass
    finally:
        for s in (src, dst) if shut else ():
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Relay:
    """A TCP relay on 127.0.0.1 to an upstream port: each accepted client gets its own upstream
    connection, handed to serve(client, upstream)."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
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
            self.serve(c, socket.create_connection(("127.0.0.1", self.upstream)))

    def serve(self, c, u):
        raise NotImplementedError

    def close(self):
        self.stopping = True
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ThrottleProxy(_Relay):
    """A TCP relay on 127.0.0.1 that sends the upstream's answers at `rate` bytes/s."""

    def __init__(self, upstream_port: int, rate: int = 32 * 1024):
        self.rate = rate
        super().__init__(upstream_port)

    def serve(self, c, u):
        stopping = lambda: self.stopping  # noqa: E731
        threading.Thread(target=pipe, args=(c, u, None, stopping), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c, self.rate, stopping), daemon=True).start()


class AnswerHold(_Relay):
    """A TCP relay on 127.0.0.1 that lets a TLS handshake through and then holds the upstream's
    answer: whatever the upstream sends after the client's second flight (its certificate,
    Finished and request) is kept back, never forwarded. The client's second flight can only
    follow the server's whole first flight, so the split needs no timing. `held` is set once
    held bytes arrived; a closing client drops them."""

    def __init__(self, upstream_port: int):
        self.held = threading.Event()
        self.held_bytes = 0
        super().__init__(upstream_port)

    def serve(self, c, u):
        state = {"server_spoke": False, "second_flight": False}

        def up(data):
            if state["server_spoke"]:
                state["second_flight"] = True
            return True

        def down(data):
            if state["second_flight"]:
                self.held_bytes += len(data)
                self.held.set()
                return False
            # Set before the bytes leave: the client's answer to them then sees it.
            state["server_spoke"] = True
            return True

        threading.Thread(target=pipe, args=(c, u), kwargs={"forward": up}, daemon=True).start()
        # The upstream closing after its held answer must not end the client's wait.
        threading.Thread(target=pipe, args=(u, c), kwargs={"forward": down, "shut": False},
                         daemon=True).start()
