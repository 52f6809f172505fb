"""A TCP proxy on loopback that delays, drops and duplicates Redis commands (for the tests).

It reads each command (RESP) the client sends, forwards it, reads the server's
reply and forwards that, one command at a time per connection. Scripts
(``EVALSHA``/``EVAL``) meet a fault now and then, drawn from a seeded random
source:

``delay``
    The command runs; its reply is held past the client's socket timeout, so
    that the client gives up, reconnects and sends it again.
``cut``
    The command runs; half its reply is sent, then the connection is closed.
``lost``
    The connection is closed before the command reaches the server.
``twice``
    The command is sent to the server twice; the client sees the first reply.
``late``
    The command runs; a copy of it is sent again a little later on another
    connection (a straggler the client never waits for).

Other commands (the client's handshake) pass untouched.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping


FAULTS = ("delay", "cut", "lost", "twice", "late")


class _Reader:
    """Reads RESP values from a socket, as raw bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def value(self) -> bytes:
        """One RESP2 or RESP3 value (a command is an array of bulk strings), raw."""
        line = self._line()
        kind = line[:1]
        if kind in b"+-:_,#(":
            return line
        if kind in b"$!=":  # blob string, blob error, verbatim string
            n = int(line[1:-2])
            return line if n < 0 else line + self._exact(n + 2)
        if kind in b"*~>%|":  # array, set, push; map and attribute hold pairs
            n = int(line[1:-2])
            if kind in b"%|":
                n *= 2
            raw = line + b"".join(self.value() for _ in range(max(n, 0)))
            return raw + self.value() if kind == b"|" else raw  # an attribute precedes a value
        raise ValueError(f"not RESP: {line!r}")


def _command_name(raw: bytes) -> bytes:
    # *N\r\n$len\r\nNAME\r\n...
    parts = raw.split(b"\r\n", 3)
    return parts[2].upper() if len(parts) > 2 else b""


class FaultProxy:
    """Listens on 127.0.0.1 (an ephemeral port) and forwards to *upstream* with faults.

    Args:
        upstream: The Redis server's (host, port).
        rates: The chance of each fault per script command (see the module).
        delay: How long a delayed reply is held (longer than the client's socket timeout).
        seed: Seeds the draws.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        rates: Mapping[str, float],
        *,
        delay: float,
        seed: int = 0,
    ) -> None:
        self.upstream = upstream
        self.rates = dict(rates)
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._socks: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def __enter__(self) -> FaultProxy:  # noqa: PYI034 -- a test helper, never subclassed
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def _draw(self) -> str | None:
        with self._lock:
            x = self._rng.random()
        for fault in FAULTS:
            rate = self.rates.get(fault, 0.0)
            if x < rate:
                return fault
            x -= rate
        return None

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._socks.update(socks)

    def _drop(self, *socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
        with self._lock:
            self._socks.difference_update(socks)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _upstream(self) -> socket.socket:
        sock = socket.create_connection(self.upstream, timeout=30)
        self._track(sock)
        return sock

    def _straggler(self, command: bytes) -> None:
        time.sleep(self.delay / 3)
        try:
            sock = self._upstream()
        except OSError:
            return
        try:
            sock.sendall(command)
            _Reader(sock).value()  # its reply goes nowhere
        except (OSError, EOFError, ValueError):
            pass
        finally:
            self._drop(sock)

    def _serve(self, client: socket.socket) -> None:  # noqa: C901 -- one fault per branch
        self._track(client)
        try:
            server = self._upstream()
        except OSError:
            self._drop(client)
            return
        from_client, from_server = _Reader(client), _Reader(server)
        try:
            while not self._closed.is_set():
                command = from_client.value()
                fault = None
                if _command_name(command) in (b"EVALSHA", b"EVAL"):
                    fault = self._draw()
                if fault is not None:
                    with self._lock:
                        self.counts[fault] += 1
                if fault == "lost":
                    return
                server.sendall(command)
                reply = from_server.value()
                if fault == "twice":
                    server.sendall(command)
                    from_server.value()
                elif fault == "late":
                    threading.Thread(target=self._straggler, args=(command,), daemon=True).start()
                if fault == "delay":
                    time.sleep(self.delay)
                    with contextlib.suppress(OSError):
                        client.sendall(reply)  # the client has given up on it
                    return
                if fault == "cut":
                    client.sendall(reply[: len(reply) // 2])
                    return
                client.sendall(reply)
        except (OSError, EOFError, ValueError):
            pass
        finally:
            self._drop(client, server)
