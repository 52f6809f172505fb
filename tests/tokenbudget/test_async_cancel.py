"""Cancelling an async acquire at any await point leaves no booking behind, on every backend."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tokenbudget import (
    AsyncTokenBucket,
    BucketConfig,
    ManualClock,
    MemoryBackend,
    Rate,
    SQLiteBackend,
    TokenBucket,
)


CONFIG = BucketConfig(100, Rate.per_second(1))
START = 20.0  # acquire(50) waits 30 s; acquire(10) is admitted at once
BACKENDS = ["memory", "sqlite", "redis"]


class SleepingClock:
    """A frozen clock whose ``asleep`` lasts until the task is cancelled."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.sleeping = asyncio.Event()

    def now(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        raise AssertionError("not used")

    async def asleep(self, seconds: float) -> None:
        self.sleeping.set()
        await asyncio.Event().wait()


class Interrupting:
    """A backend that cancels the acquiring task during or after its admission's round trip."""

    def __init__(self, inner: Any, when: str, *, advance: ManualClock | None = None) -> None:
        self.inner = inner
        self.when = when
        self.advance = advance
        self.target: asyncio.Task[Any] | None = None

    def apply(self, *args: Any) -> Any:
        return self.inner.apply(*args)

    def observe(self, *args: Any) -> Any:
        return self.inner.observe(*args)

    async def aobserve(self, *args: Any) -> Any:
        return await self.inner.aobserve(*args)

    async def aapply(self, *args: Any) -> Any:
        assert self.target is not None
        call = asyncio.ensure_future(self.inner.aapply(*args))
        when, self.when = self.when, "never"  # only the admission; the undo goes through
        if when == "during":
            await asyncio.sleep(0)
            self.target.cancel()  # the round trip is under way
        out = await call
        if self.advance is not None:
            self.advance.advance(1.0)  # the answer took a second: the admission is in the past
            self.advance = None
        if when == "after":
            self.target.cancel()  # the round trip is done, the caller has not resumed yet
        return out


@pytest.fixture
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """An async context manager factory of the parametrized backend, its time from *clock*."""
    kind = request.param
    if kind == "redis":
        url = request.getfixturevalue("redis_server")
        prefix = request.getfixturevalue("redis_prefix")

    @contextlib.asynccontextmanager
    async def make(clock: ManualClock) -> AsyncIterator[Any]:
        if kind == "memory":
            yield MemoryBackend()
        elif kind == "sqlite":
            with SQLiteBackend(tmp_path / "buckets.db", clock=clock) as backend:
                yield backend
        else:
            import redis.asyncio

            from tokenbudget.redis import RedisBackend

            client = redis.asyncio.Redis.from_url(url)
            try:
                yield RedisBackend(client, prefix=prefix, clock=clock)
            finally:
                await client.aclose()

    return make


async def settled(bucket: AsyncTokenBucket) -> None:
    """No booking pending and the starting balance, whole."""
    snap = await bucket.snapshot()
    assert snap.pending == 0
    assert snap.tokens == pytest.approx(START)
    assert snap.booked == pytest.approx(0.0)


async def cancelled(task: asyncio.Task[Any]) -> None:
    with pytest.raises(asyncio.CancelledError):
        await task


def run(coro: Any) -> None:
    asyncio.run(coro)


@pytest.mark.parametrize("make_backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("cost", [50, 10], ids=["waits", "at-once"])
def test_cancel_before_the_task_starts(make_backend, cost):
    """A task cancelled before it runs books nothing."""

    async def main() -> None:
        clock = ManualClock()
        async with make_backend(clock) as backend:
            bucket = AsyncTokenBucket(
                CONFIG, clock=SleepingClock(clock), tokens=START, backend=backend
            )
            task = asyncio.create_task(bucket.acquire(cost))
            task.cancel()
            await cancelled(task)
            await settled(bucket)

    run(main())


@pytest.mark.parametrize("make_backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("when", ["during", "after"])
@pytest.mark.parametrize("cost", [50, 10], ids=["waits", "at-once"])
def test_cancel_during_or_after_the_round_trip(make_backend, when, cost):
    """Cancelled during the backend call or just after it, the booking is undone."""

    async def main() -> None:
        clock = ManualClock()
        async with make_backend(clock) as inner:
            backend = Interrupting(inner, when)
            sleeper = SleepingClock(clock)
            bucket = AsyncTokenBucket(CONFIG, clock=sleeper, tokens=START, backend=backend)
            task = backend.target = asyncio.create_task(bucket.acquire(cost))
            await cancelled(task)
            assert not sleeper.sleeping.is_set()
            await settled(bucket)

    run(main())


@pytest.mark.parametrize("make_backend", BACKENDS, indirect=True)
def test_cancel_during_the_sleep(make_backend):
    """Cancelled while sleeping until its booking's time, the booking is cancelled."""

    async def main() -> None:
        clock = ManualClock()
        sleeper = SleepingClock(clock)
        async with make_backend(clock) as backend:
            bucket = AsyncTokenBucket(CONFIG, clock=sleeper, tokens=START, backend=backend)
            task = asyncio.create_task(bucket.acquire(50))
            await sleeper.sleeping.wait()
            assert (await bucket.snapshot()).pending == 1
            task.cancel()
            await cancelled(task)
            await settled(bucket)

    run(main())


@pytest.mark.parametrize("make_backend", ["sqlite", "redis"], indirect=True)
def test_cancel_after_any_number_of_loop_turns(make_backend):
    """Cancelled after 0, 1, 2, ... event-loop turns (real round trips), nothing is left behind."""

    async def main() -> None:
        clock = ManualClock()
        sleeper = SleepingClock(clock)
        async with make_backend(clock) as backend:
            bucket = AsyncTokenBucket(CONFIG, clock=sleeper, tokens=START, backend=backend)
            for turns in range(25):
                task = asyncio.create_task(bucket.acquire(50))
                for _ in range(turns):
                    await asyncio.sleep(0)
                task.cancel()
                await cancelled(task)
                await settled(bucket)

    run(main())


@pytest.mark.parametrize("make_backend", ["memory", "redis"], indirect=True)
def test_cancelled_admission_in_the_past_is_settled_back(make_backend):
    """An admission whose time passed before the undo (a slow answer) is settled to zero."""

    async def main() -> None:
        clock = ManualClock()
        async with make_backend(clock) as inner:
            backend = Interrupting(inner, "after", advance=clock)
            bucket = AsyncTokenBucket(CONFIG, clock=clock, tokens=START, backend=backend)
            task = backend.target = asyncio.create_task(bucket.acquire(10))
            await cancelled(task)
            snap = await bucket.snapshot()
        assert snap.pending == 0
        assert snap.tokens == pytest.approx(START + 1.0)  # one second of refill passed
        assert snap.booked == pytest.approx(0.0)

    run(main())


def test_cancel_requested_by_the_event_hook_undoes_the_booking():
    """A cancellation requested without a yield (an on_event hook) undoes; 3.11+ skips the sleep."""

    async def main() -> None:
        clock = ManualClock()
        sleeper = SleepingClock(clock)
        task: asyncio.Task[Any] | None = None

        def hook(event: Any) -> None:
            if event.kind == "waited":
                assert task is not None
                task.cancel()

        bucket = AsyncTokenBucket(CONFIG, clock=sleeper, tokens=START, on_event=hook)
        task = asyncio.create_task(bucket.acquire(50))
        await cancelled(task)
        assert not sleeper.sleeping.is_set()
        await settled(bucket)

    run(main())


class SlowUndo(Interrupting):
    """Cancels the task during its admission, then holds the undo until *gate* opens."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, "during")
        self.undoing = asyncio.Event()
        self.gate = asyncio.Event()

    async def aapply(self, *args: Any) -> Any:
        if self.when == "never":  # the admission went through: this is the undo
            self.undoing.set()
            await self.gate.wait()
        return await super().aapply(*args)


def test_second_cancel_lets_the_undo_finish():
    """Cancelled again while undoing, the task ends and the undo still completes."""

    async def main() -> None:
        clock = ManualClock()
        backend = SlowUndo(MemoryBackend())
        bucket = AsyncTokenBucket(CONFIG, clock=clock, tokens=START, backend=backend)
        task = backend.target = asyncio.create_task(bucket.acquire(50))
        await backend.undoing.wait()
        task.cancel()
        await cancelled(task)
        assert (await bucket.snapshot()).pending == 1  # the undo waits at the gate
        backend.gate.set()
        for _ in range(5):
            await asyncio.sleep(0)
        await settled(bucket)

    run(main())


class InterruptedClock(ManualClock):
    """A ManualClock whose sleep is interrupted by Ctrl-C."""

    def sleep(self, seconds: float) -> None:
        raise KeyboardInterrupt


def test_sync_acquire_interrupted_in_its_sleep_leaves_nothing():
    """KeyboardInterrupt from the clock's sleep cancels the booking of a sync acquire."""
    bucket = TokenBucket(CONFIG, clock=InterruptedClock(), tokens=START)
    with pytest.raises(KeyboardInterrupt):
        bucket.acquire(50)
    snap = bucket.snapshot()
    assert snap.pending == 0
    assert snap.tokens == START


class LateInterruptedClock(ManualClock):
    """A ManualClock whose sleep is interrupted at its very end, after the booking's time."""

    def sleep(self, seconds: float) -> None:
        self.advance(seconds + 1.0)
        raise KeyboardInterrupt


def test_sync_acquire_interrupted_after_its_time_settles_back():
    """Interrupted once its booking's time has passed, the cost is returned by a settle to zero."""
    bucket = TokenBucket(CONFIG, clock=LateInterruptedClock(), tokens=START)
    with pytest.raises(KeyboardInterrupt):
        bucket.acquire(50)
    snap = bucket.snapshot()
    assert snap.pending == 0
    assert snap.tokens == pytest.approx(START + 31.0)
