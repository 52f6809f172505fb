"""No log record of any library the client uses holds the key: every logger at DEBUG.

Every logger (root, httpx, httpcore and below, asyncio, tokenbudget*) is set to
DEBUG and every record is collected, while the clients (sync and async) run the
client tests' kinds of traffic over real sockets: every endpoint, refusals and
retries (429, 5xx, malformed answers, a read timeout, a refused connection), and
redirects whose ``Location`` echoes the query string, key included (an
``http://`` base URL redirected to ``https://``). Each record is formatted in
full (message, arguments, exception and traceback) and searched for the key.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest

from tokenbudget import ManualClock
from tokenbudget_keepa import (
    AsyncKeepaClient,
    KeepaClient,
    KeepaError,
    KeepaProtocolError,
    KeepaTransportError,
)
from tokenbudget_keepa.testing import Fault, KeepaEmulator

from ._client_fixtures import SECRET, assert_no_key


FORMS = (SECRET, quote(SECRET, safe=""))
QUERY = {"domainId": 1, "priceTypes": [1], "sortType": 1, "dateRange": 0}


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every logger at DEBUG (enabled), every record collected; all restored after."""
    collected: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append(record)

    handler = Collect(logging.DEBUG)
    root = logging.getLogger()
    loggers = [root] + [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if lg is root or not lg.propagate:
            lg.addHandler(handler)
    try:
        yield collected
    finally:
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled
            lg.removeHandler(handler)


def assert_no_key_in(records: list[logging.LogRecord]) -> None:
    """No record, formatted in full (its exception and traceback too), holds the key."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert any(r.name.startswith("httpcore") for r in records), "httpcore logged nothing"
    for record in records:
        text = formatter.format(record) + repr(record.args) + repr(record.__dict__)
        for form in FORMS:
            assert form not in text, text


class Redirect(BaseHTTPRequestHandler):
    """Answers every request with a redirect whose Location echoes the path and query."""

    status = 301
    prefix = "https://127.0.0.1"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Location", f"{self.prefix}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base's name
        pass


@pytest.fixture
def redirect_url() -> Iterator[str]:
    """A loopback server that redirects every request (Location keeps the query)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("status", "prefix"),
    [(301, "https://127.0.0.1"), (302, ""), (307, ""), (308, "https://api.keepa.com")],
)
def test_a_redirect_is_refused_and_logs_no_key(
    records: list[logging.LogRecord], redirect_url: str, status: int, prefix: str
) -> None:
    """A redirect (Location echoing key=...) is not followed: a typed error, no key anywhere."""
    Redirect.status, Redirect.prefix = status, prefix
    with KeepaClient(SECRET, base_url=redirect_url, clock=ManualClock()) as client:
        with pytest.raises(KeepaProtocolError, match="redirect") as info:
            client.token_status()
        with pytest.raises(KeepaProtocolError, match="redirect"):
            client.deals(QUERY)
    assert info.value.status == status
    assert_no_key(info.value, info.value.__cause__, info.value.__context__)
    assert_no_key_in(records)


def test_async_redirect_is_refused_and_logs_no_key(
    records: list[logging.LogRecord], redirect_url: str
) -> None:
    """The async client refuses a redirect the same way."""
    Redirect.status, Redirect.prefix = 301, "https://127.0.0.1"

    async def main() -> KeepaError:
        async with AsyncKeepaClient(SECRET, base_url=redirect_url, clock=ManualClock()) as client:
            try:
                await client.token_status()
            except KeepaProtocolError as e:
                return e
        raise AssertionError("no error")  # pragma: no cover

    error = asyncio.run(main())
    assert "redirect" in str(error)
    assert_no_key(error)
    assert_no_key_in(records)


def test_the_client_traffic_logs_no_key(
    records: list[logging.LogRecord], keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """Every endpoint, 429s, 5xx, malformed answers, a timeout and a dead server: no key."""
    asins = keepa.catalog_asins(30)
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock, timeout=0.5) as client:
        client.token_status()
        client.products(asins[:5], stats=90, buybox=True)
        client.products(asins[5:7], offers=20, rating=True)
        client.deals(QUERY)
        keepa.inject(Fault.server_error(429), Fault.server_error(503), endpoint="product")
        client.products(asins[7:9])
        keepa.inject(Fault.server_error(500), Fault.server_error(429), endpoint="token")
        client.token_status(max_age=0)
        keepa.inject(Fault.malformed_json(), endpoint="deal")
        with pytest.raises(KeepaProtocolError) as malformed:
            client.deals(QUERY)
        keepa.inject(Fault.server_error(400), endpoint="product")
        with pytest.raises(KeepaError) as refused:
            client.products(asins[9:10])
        keepa.inject(*[Fault.slow(1.0)] * 6, endpoint="token")
        with pytest.raises(KeepaTransportError) as slow:
            client.token_status(max_age=0)
        keepa.clear_faults()
    with (
        KeepaClient(SECRET, base_url=dead_url(), clock=manual_clock, max_retries=1) as dead,
        pytest.raises(KeepaTransportError) as unreachable,
    ):
        dead.token_status()

    async def main() -> None:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
            await client.token_status()
            await client.products(asins[10:14], stats=30)
            keepa.inject(Fault.server_error(503), endpoint="deal")
            await client.deals(QUERY)

    asyncio.run(main())
    for info in (malformed, refused, slow, unreachable):
        assert_no_key(info.value, info.value.__cause__, info.value.__context__)
    assert_no_key_in(records)
