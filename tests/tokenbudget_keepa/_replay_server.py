"""A tiny loopback HTTP server that answers with given bodies, in order, per path.

The client tests use it to put real Keepa answers (from ``../shared/realdata``) on a real
socket: what the client reads is byte for byte what Keepa sent. Each request is recorded
(path and query, the ``key`` left out) so a test can check what the client sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


class ReplayServer:
    """Serves queued ``(status, body)`` answers per path on ``127.0.0.1`` (a free port).

    A path with nothing queued answers 500 with a body that is not Keepa's, so a test that
    sends more than it expects fails loudly.
    """

    def __init__(self) -> None:
        self._answers: dict[str, deque[tuple[int, bytes]]] = {}
        self._lock = threading.Lock()
        #: The requests received: ``(path, {name: value})``, ``key`` left out.
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: Seconds each answer to a path is held before it is written (default none).
        self.hold: dict[str, float] = {}
        #: The most requests that were being answered at once.
        self.max_active = 0
        self._active = 0
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items() if k != "key"}
                with replay._lock:
                    replay.requests.append((parts.path, query))
                    queue = replay._answers.get(parts.path)
                    status, body = queue.popleft() if queue else (500, b"nothing queued")
                    replay._active += 1
                    replay.max_active = max(replay.max_active, replay._active)
                    hold = replay.hold.get(parts.path, 0.0)
                try:
                    time.sleep(hold)
                    self._head(status, body)
                finally:
                    # No longer active once its body is going out: the client can send its
                    # next request as soon as the body is written, before this thread runs
                    # again (a loaded machine), and that next one must not count as sent
                    # while this one was being answered.
                    with replay._lock:
                        replay._active -= 1
                self.wfile.write(body)

            def _head(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base's name
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, path: str, status: int, body: object) -> None:
        """Answer the next request to *path* with *status* and *body* (bytes, or JSON)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._lock:
            self._answers.setdefault(path, deque()).append((status, data))

    def count(self, path: str) -> int:
        """How many requests *path* received."""
        return sum(1 for p, _ in self.requests if p == path)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
