"""Fixtures of the Keepa tests: a :class:`KeepaEmulator` on a shared :class:`ManualClock`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tokenbudget import ManualClock
from tokenbudget_keepa.testing import KeepaEmulator

from ._client_fixtures import (  # noqa: F401 -- the client tests' fixtures
    client,
    keepa,
    make_client,
    no_key_in_logs,
)


@pytest.fixture
def manual_clock() -> ManualClock:
    """A manual clock at 0, shared by the emulator and the code under test."""
    return ManualClock()


@pytest.fixture
def make_emulator(manual_clock: ManualClock) -> Iterator[Callable[..., KeepaEmulator]]:
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
        return emulator

    yield make
    for emulator in started:
        emulator.close()


@pytest.fixture
def emulator(make_emulator: Callable[..., KeepaEmulator]) -> KeepaEmulator:
    """A running emulator: 5 tokens a minute, a full account of 300, on ``manual_clock``."""
    return make_emulator()
