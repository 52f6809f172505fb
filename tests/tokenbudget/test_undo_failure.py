"""A give-back that fails never hides the interrupt it cleans up after (issue 18, defect 8)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tokenbudget import (
    AsyncTokenBucket,
    BackendError,
    BucketConfig,
    ManualClock,
    MemoryBackend,
    Rate,
    TokenBucket,
)
from tokenbudget._core import Admit


CONFIG = BucketConfig(100, Rate.per_second(1))


class FailingUndo(MemoryBackend):
    """A memory backend whose give-backs (cancel, settle) fail; an admission may take its time."""

    def __init__(self, admit_delay: float = 0.0) -> None:
        super().__init__()
        self.admit_delay = admit_delay

    def apply(self, key: str, config: Any, clock: Any, initial: float, request: Any) -> Any:
        if type(request) is not Admit:
            raise BackendError("test", "the give-back failed")
        return super().apply(key, config, clock, initial, request)

    async def aapply(self, key: str, config: Any, clock: Any, initial: float, request: Any) -> Any:
        if type(request) is Admit and self.admit_delay:
            await asyncio.sleep(self.admit_delay)  # a round trip the caller gives up during
        return self.apply(key, config, clock, initial, request)


class InterruptedClock(ManualClock):
    """Its sleep is interrupted (Ctrl-C); its asleep lasts until the task is cancelled."""

    def sleep(self, seconds: float) -> None:
        raise KeyboardInterrupt

    async def asleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


def _undo_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        r.levelno == logging.WARNING and "could not give back" in r.getMessage()
        for r in caplog.records
    )


def test_a_keyboard_interrupt_survives_a_failed_give_back(caplog):
    bucket = TokenBucket(CONFIG, clock=InterruptedClock(), tokens=0, backend=FailingUndo())
    with (
        caplog.at_level(logging.WARNING, logger="tokenbudget"),
        pytest.raises(KeyboardInterrupt) as info,
    ):
        bucket.acquire(5)
    assert isinstance(info.value.__context__, BackendError)  # chained
    assert _undo_logged(caplog)


def test_wait_for_times_out_when_the_give_back_after_the_sleep_fails(caplog):
    bucket = AsyncTokenBucket(CONFIG, clock=InterruptedClock(), tokens=0, backend=FailingUndo())

    async def main() -> None:
        await asyncio.wait_for(bucket.acquire(5), 0.01)

    with (
        caplog.at_level(logging.WARNING, logger="tokenbudget"),
        pytest.raises(asyncio.TimeoutError),
    ):
        asyncio.run(main())
    assert _undo_logged(caplog)


def test_wait_for_times_out_when_the_give_back_after_the_round_trip_fails(caplog):
    backend = FailingUndo(admit_delay=0.05)
    bucket = AsyncTokenBucket(CONFIG, clock=InterruptedClock(), tokens=0, backend=backend)

    async def main() -> None:
        await asyncio.wait_for(bucket.acquire(5), 0.01)

    with (
        caplog.at_level(logging.WARNING, logger="tokenbudget"),
        pytest.raises(asyncio.TimeoutError),
    ):
        asyncio.run(main())
    assert _undo_logged(caplog)


def test_cancel_seen_after_the_round_trip_survives_a_failed_give_back(caplog):
    clock = InterruptedClock()
    bucket = AsyncTokenBucket(CONFIG, clock=clock, tokens=0, backend=FailingUndo())

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        # A hook that asks for the task's cancellation during the admission, and swallows it.
        bucket._on_event = lambda _event: task.cancel()
        bucket._fast_admit = None
        await bucket.acquire(5)

    with (
        caplog.at_level(logging.WARNING, logger="tokenbudget"),
        pytest.raises(asyncio.CancelledError),
    ):
        asyncio.run(main())
    assert _undo_logged(caplog)
