"""Fixtures of the Keepa tests: a :class:`KeepaEmulator` on a shared :class:`ManualClock`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests._log_audit import audit_fixture
from tokenbudget import ManualClock
from tokenbudget_keepa._client.redaction import keep_key_out_of_logs
from tokenbudget_keepa.testing import KeepaEmulator

from ._client_fixtures import (  # noqa: F401 -- the client tests' fixtures
    SECRET,
    client,
    keepa,
    make_client,
    no_key_in_logs,
)


@pytest.fixture
def api_keys() -> list[str]:
    """The keys of the emulators this test started (searched for in every log record)."""
    return []


@pytest.fixture(autouse=True)
def _every_logger_at_debug_and_no_key(api_keys: list[str]) -> Iterator[None]:
    """Every logger at DEBUG; no record may hold a key (see :mod:`tests._log_audit`).

    Every Keepa test runs as a user with DEBUG logging would (httpx, httpcore and
    below included), and no record of it may hold the key of an emulator it started
    or the client tests' key. ``TOKENBUDGET_LOG_AUDIT=0`` turns the audit off.
    """
    if os.environ.get("TOKENBUDGET_LOG_AUDIT", "1") == "0":
        yield
        return
    yield from audit_fixture(_Keys(api_keys))


class _Keys:
    """The client tests' key and those of the emulators started so far (read at each record)."""

    def __init__(self, api_keys: list[str]) -> None:
        self._api_keys = api_keys

    def __iter__(self) -> Iterator[str]:
        yield SECRET
        yield from self._api_keys

    def __len__(self) -> int:
        return 1 + len(self._api_keys)

    def __contains__(self, key: object) -> bool:
        return key == SECRET or key in self._api_keys


#: The key every :class:`KeepaEmulator` accepts unless told otherwise.
EMULATOR_KEY = "test-key"


@pytest.fixture
def emulator_key_out_of_httpx_logs() -> None:
    """For tests that send the emulator's key in plain httpx URLs of their own making.

    httpx logs each URL it sends at INFO, key included: the test's own doing, not a leak
    of the library's (a :class:`KeepaClient` adds the key as a request leaves, below
    httpx's log). Such a test gives httpx's loggers (httpcore's and below, asyncio's) the
    filter a client of that key would give them (``keep_key_out_of_logs``); set up after
    the key audit, which empties that filter, so that it does not depend on a client of
    an earlier test. Every other record (the emulator's, tokenbudget*'s, the root's) is
    still searched for the key.
    """
    keep_key_out_of_logs(EMULATOR_KEY)


@pytest.fixture
def manual_clock() -> ManualClock:
    """A manual clock at 0, shared by the emulator and the code under test."""
    return ManualClock()


@pytest.fixture
def make_emulator(
    manual_clock: ManualClock, api_keys: list[str]
) -> Iterator[Callable[..., KeepaEmulator]]:
    """Start emulators (on ``manual_clock`` unless told otherwise); all closed at teardown.

    The defaults keep tests fast: 5 tokens a minute (300 at most) and an hour of
    deal history; any :class:`KeepaEmulator` argument overrides them.
    """
    started: list[KeepaEmulator] = []

    def make(**kwargs: Any) -> KeepaEmulator:
        options: dict[str, Any] = {
            "refill_per_min": 5,
            "clock": manual_clock,
            "history_minutes": 60,
        }
        options.update(kwargs)
        emulator = KeepaEmulator(**options).start()
        started.append(emulator)
        api_keys.append(emulator.api_key)
        return emulator

    yield make
    for emulator in started:
        emulator.close()


@pytest.fixture
def emulator(make_emulator: Callable[..., KeepaEmulator]) -> KeepaEmulator:
    """A running emulator: 5 tokens a minute, a full account of 300, on ``manual_clock``."""
    return make_emulator()
