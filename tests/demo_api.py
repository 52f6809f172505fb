"""A small rate-limited HTTP API on loopback, for the tutorial and its tests.

:class:`DemoAPI` serves a search over a fixed catalogue of fruit from a token
bucket of its own (not tokenbudget's: it plays the server that a client must
keep up with). The bucket holds at most ``capacity`` tokens and refills
continuously at ``refill_per_second``. Every response reports the quota:

- ``RateLimit-Limit``: the capacity;
- ``RateLimit-Remaining``: the whole tokens left after this request (rounded down);
- on ``429 Too Many Requests``, ``Retry-After``: whole seconds (rounded up)
  until the request would be admitted.

Endpoints (``GET``):

- ``/quota``: free; ``{"limit", "remaining", "refill_per_second"}``;
- ``/search?q=TEXT&limit=N``: admitted when the balance covers ``N`` (the most
  it can cost); answers ``{"query", "results", "cost"}`` and charges one token
  per result returned, at least one.

Time comes from ``clock`` (anything with ``now()``, default
:class:`tokenbudget.MonotonicClock`): a test that shares a
:class:`tokenbudget.ManualClock` between the API and a bucket runs without
waiting. The docs' tutorial starts one on a free port in its ``testsetup``.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import parse_qs, urlsplit

from tokenbudget import MonotonicClock


CATALOGUE = (
    "apple", "apricot", "avocado", "banana", "bilberry", "blackberry", "blackcurrant",
    "blueberry", "boysenberry", "cantaloupe", "cherry", "cloudberry", "coconut", "cranberry",
    "damson", "date", "dragonfruit", "durian", "elderberry", "feijoa", "fig", "gooseberry",
    "grape", "grapefruit", "guava", "honeydew", "huckleberry", "jackfruit", "jujube",
    "kiwano", "kiwi", "kumquat", "lemon", "lime", "lingonberry", "loquat", "lychee",
    "mandarin", "mango", "mangosteen", "mulberry", "nectarine", "olive", "orange", "papaya",
    "passionfruit", "peach", "pear", "persimmon", "pineapple", "plum", "pomegranate",
    "pomelo", "quince", "raspberry", "redcurrant", "salak", "satsuma", "soursop",
    "strawberry", "tamarind", "tangerine", "watermelon", "yuzu",
)  # fmt: skip

#: Tokens the API forgives for float rounding when it compares a balance with a cost.
TOLERANCE = 1e-6


class _Clock(Protocol):
    def now(self) -> float: ...


def search_catalogue(query: str, limit: int) -> list[str]:
    """The first *limit* fruit whose name contains *query* (case-insensitive)."""
    needle = query.lower()
    return [name for name in CATALOGUE if needle in name][:limit]


class DemoAPI:
    """A rate-limited search API on ``127.0.0.1`` and a free port; a context manager."""

    def __init__(
        self,
        *,
        capacity: float = 20,
        refill_per_second: float = 100.0,
        tokens: float | None = None,
        clock: _Clock | None = None,
    ) -> None:
        self.capacity = float(capacity)
        self.refill_per_second = float(refill_per_second)
        self._clock = clock if clock is not None else MonotonicClock()
        self._balance = self.capacity if tokens is None else float(tokens)
        self._time = self._clock.now()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: Requests answered, requests refused with 429, and tokens charged.
        self.requests = 0
        self.refused = 0
        self.charged = 0.0

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("the demo API is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve on a free loopback port in a background thread."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wait for the connections' threads, release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def balance(self) -> float:
        """The balance now (refilled up to now)."""
        with self._lock:
            return self._refill()

    def _refill(self) -> float:
        now = self._clock.now()
        if now > self._time:
            self._balance = min(
                self.capacity, self._balance + (now - self._time) * self.refill_per_second
            )
            self._time = now
        return self._balance

    def _headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": f"{self.capacity:g}",
            "RateLimit-Remaining": str(max(0, math.floor(self._balance + TOLERANCE))),
        }

    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], object]:
        """Answer one request: status, headers and a JSON-able body."""
        with self._lock:
            self.requests += 1
            balance = self._refill()
            if path == "/quota":
                body = {
                    "limit": int(self.capacity) if self.capacity.is_integer() else self.capacity,
                    "remaining": math.floor(balance + TOLERANCE),
                    "refill_per_second": self.refill_per_second,
                }
                return 200, self._headers(), body
            if path != "/search":
                return 404, {}, {"error": f"no such endpoint: {path}"}
            text = query.get("q", [""])[0]
            try:
                limit = int(query.get("limit", ["10"])[0])
            except ValueError:
                limit = 0
            if limit < 1:
                return 400, {}, {"error": "limit must be a whole number >= 1"}
            if balance + TOLERANCE < limit:
                self.refused += 1
                wait = (limit - balance) / self.refill_per_second
                headers = {**self._headers(), "Retry-After": str(max(1, math.ceil(wait)))}
                return 429, headers, {"error": f"over budget: {limit} tokens needed"}
            results = search_catalogue(text, limit)
            cost = max(1, len(results))
            self._balance -= cost
            self.charged += cost
            return 200, self._headers(), {"query": text, "results": results, "cost": cost}


class _Server(ThreadingHTTPServer):
    # Join the connections' threads on close, so that no socket outlives stop().
    daemon_threads = False
    block_on_close = True
    api: DemoAPI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs and httpx's clients use
    timeout = 2  # an idle keep-alive connection is closed after this (seconds)
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status, headers, body = self.server.api.handle(parts.path, parse_qs(parts.query))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 -- the base's name
        """Quiet: the tests and the docs read the counters instead."""
