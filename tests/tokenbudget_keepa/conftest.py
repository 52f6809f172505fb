"""Fixtures of the Keepa tests: a :class:`KeepaEmulator` on a shared :class:`ManualClock`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tokenbudget import ManualClock
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
def _every_logger_at_debug_and_no_key(
    caplog: pytest.LogCaptureFixture, api_keys: list[str]
) -> Iterator[None]:
    """With ``TOKENBUDGET_LOG_AUDIT=1``: every logger at DEBUG; no record may hold a key.

    Every Keepa test then runs as a user with DEBUG logging would (httpx, httpcore and
    below included), and no record of it may hold the key of an emulator it started
    or the client tests' key. Opt-in: DEBUG logging of every request slows the
    simulated days and the wall-clock-bounded tests (the client tests check the same
    on every run with ``no_key_in_logs``, and ``test_client_key_in_logs`` with every
    logger at DEBUG).
    """
    if not os.environ.get("TOKENBUDGET_LOG_AUDIT"):
        yield
        return
    caplog.set_level(logging.DEBUG)
    for name in list(logging.Logger.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    keys = {SECRET, *api_keys}
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.get_records("call") + caplog.get_records("setup"):
        text = formatter.format(record)
        for key in keys:
            assert key not in text, f"a log record holds an API key: {text[:300]}"


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
