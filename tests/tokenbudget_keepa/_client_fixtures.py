"""What the client tests share: a secret key that must never show, and clients on the emulator.

The fixtures are imported by ``conftest.py``; the client test modules use
``no_key_in_logs`` on every test (``pytestmark``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tokenbudget import ManualClock
from tokenbudget_keepa import KeepaClient
from tokenbudget_keepa.testing import KeepaEmulator


#: The key of every client test: searched for in every log record, repr and error text.
SECRET = "sEcReT-kEy-0123456789abcdef"  # noqa: S105 -- a test key, searched for


def assert_no_key(*things: object) -> None:
    """Neither the str nor the repr of any of *things* holds the key."""
    for thing in things:
        assert SECRET not in str(thing), thing
        assert SECRET not in repr(thing), thing


@pytest.fixture
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every logger at DEBUG (httpx, httpcore, tokenbudget*, ...); no record may hold the key.

    The records of the test's setup, call and teardown so far are searched (``caplog.records``
    alone holds the current phase's: the teardown's, here).
    """
    caplog.set_level(logging.DEBUG)
    for name in list(logging.Logger.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    for record in records:
        assert SECRET not in formatter.format(record), record  # the traceback included
        assert SECRET not in repr(record.args), record
        if record.exc_info:
            assert SECRET not in repr(record.exc_info[1]), record


@pytest.fixture
def keepa(make_emulator: Callable[..., KeepaEmulator]) -> KeepaEmulator:
    """The emulator with the secret key: 5 tokens a minute, 300 at most, on ``manual_clock``."""
    return make_emulator(api_key=SECRET)


@pytest.fixture
def make_client(
    keepa: KeepaEmulator, manual_clock: ManualClock
) -> Iterator[Callable[..., KeepaClient]]:
    """Clients of ``keepa`` on ``manual_clock`` (closed at teardown); arguments override."""
    made: list[KeepaClient] = []

    def make(**kwargs: Any) -> KeepaClient:
        options: dict[str, Any] = {
            "api_key": SECRET,
            "base_url": keepa.url,
            "clock": manual_clock,
        }
        options.update(kwargs)
        client = KeepaClient(**options)
        made.append(client)
        assert_no_key(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., KeepaClient]) -> KeepaClient:
    """A client of ``keepa`` with the default bucket, on ``manual_clock``."""
    return make_client()
