"""``timeout=`` is a deadline for each request, not for each read; a run's time budget too.

A server on a real socket trickles its answer (a few bytes at a time, each well within
the timeout): the request ends at the client's timeout, or at the ingestor's time budget,
instead of lasting as long as the server likes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest

from tokenbudget_keepa import (
    AsyncKeepaClient,
    KeepaClient,
    KeepaTransportError,
    MemoryDealSink,
    MemoryWatermarkStore,
    SmartIngestor,
)

from ._client_fixtures import SECRET


pytestmark = pytest.mark.usefixtures("no_key_in_logs")

SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}


def envelope() -> dict[str, Any]:
    """A Keepa envelope of now: 100 tokens, 5 a minute."""
    return {
        "timestamp": int(time.time() * 1000),
        "tokensLeft": 100,
        "refillIn": 30_000,
        "refillRate": 5,
        "tokenFlowReduction": 0.0,
        "tokensConsumed": 0,
        "processingTimeInMs": 1,
    }


class Trickle(BaseHTTPRequestHandler):
    """Answers /token and /deal; the paths in ``trickled`` two bytes every 50 ms."""

    protocol_version = "HTTP/1.1"
    trickled: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        body: dict[str, Any] = envelope()
        if path == "/deal":
            body["tokensConsumed"] = 5
            body["deals"] = {
                "dr": [], "drDateIndex": [], "categoryIds": [], "categoryNames": [],
                "categoryCount": [],
            }  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            if path not in self.trickled:
                self.wfile.write(data)
                return
            for i in range(0, len(data), 2):
                self.wfile.write(data[i : i + 2])
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:  # the client gave up and closed the connection
            return

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base's name
        pass


@pytest.fixture
def trickle() -> Iterator[str]:
    """The trickling server's URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        Trickle.trickled = set()
        server.shutdown()
        server.server_close()


def test_a_trickled_answer_ends_at_the_timeout(trickle: str) -> None:
    """Every two bytes arrive within the timeout, but the whole answer does not: a timeout."""
    Trickle.trickled = {"/token"}
    with (
        KeepaClient(SECRET, base_url=trickle, timeout=0.5, max_retries=0) as client,
        pytest.raises(KeepaTransportError, match="1 attempts"),
    ):
        client.token_status()


def test_an_async_trickled_answer_ends_at_the_timeout(trickle: str) -> None:
    """The async client: the same deadline."""
    Trickle.trickled = {"/token"}

    async def main() -> None:
        async with AsyncKeepaClient(SECRET, base_url=trickle, timeout=0.5, max_retries=0) as c:
            await c.token_status()

    with pytest.raises(KeepaTransportError, match="1 attempts"):
        asyncio.run(main())


def test_a_trickled_answer_ends_with_the_runs_time_budget(trickle: str) -> None:
    """A deal page trickled past the run's time budget ends the run (an error), not later."""
    Trickle.trickled = {"/deal"}
    with KeepaClient(SECRET, base_url=trickle, timeout=30) as client:
        ingestor = SmartIngestor(
            client, SELECTION, store=MemoryWatermarkStore(), sink=MemoryDealSink(), filters=()
        )
        report = ingestor.run_once(time_budget=1.0)
    assert report.pages == 0
    assert report.stopped == "error", report
    assert any("time is up" in e for e in report.errors), report.errors
