"""AsyncTokenBucket under asyncio: booking, never blocking the loop, cancellation."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from tokenbudget import (
    AcquireTimeout,
    AsyncReservation,
    AsyncTokenBucket,
    BucketConfig,
    CostExceedsCapacity,
    DeficitRule,
    ManualClock,
    MonotonicClock,
    Rate,
    ReservationError,
)


INCIDENT = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_worked_numbers_async():
    """The async bucket gives SPEC §2's worked numbers: 732 s for 100 tokens from 40."""

    async def main() -> None:
        bucket = AsyncTokenBucket(INCIDENT, clock=ManualClock(), tokens=40)
        assert await bucket.try_acquire(100) is False
        assert await bucket.acquire(100) == pytest.approx(732.0)
        assert bucket.clock.now() == pytest.approx(732.0)
        assert (await bucket.snapshot()).tokens == pytest.approx(1.0)

    run(main())


def test_async_while_positive():
    """while_positive(): 100 from 40 is admitted now, the next request waits 1200 s."""
    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.while_positive(),
    )

    async def main() -> None:
        bucket = AsyncTokenBucket(config, clock=ManualClock(), tokens=40)
        assert await bucket.try_acquire(100) is True
        assert await bucket.acquire(1) == pytest.approx(1200.0)

    run(main())


def test_async_timeout_books_nothing():
    """An async acquire over its timeout raises AcquireTimeout with the delay, booking nothing."""

    async def main() -> None:
        bucket = AsyncTokenBucket(INCIDENT, clock=ManualClock(), tokens=40)
        with pytest.raises(AcquireTimeout) as info:
            await bucket.acquire(100, timeout=1)
        assert info.value.delay == pytest.approx(732.0)
        snap = await bucket.snapshot()
        assert (snap.tokens, snap.pending, bucket.clock.now()) == (40.0, 0, 0.0)

    run(main())


def test_async_reserve_over_its_timeout_books_nothing():
    """An async reserve over its timeout raises AcquireTimeout with the delay, booking nothing."""

    async def main() -> None:
        bucket = AsyncTokenBucket(INCIDENT, clock=ManualClock(), tokens=40)
        with pytest.raises(AcquireTimeout) as info:
            await bucket.reserve(100, timeout=1)
        assert info.value.delay == pytest.approx(732.0)
        snap = await bucket.snapshot()
        assert (snap.tokens, snap.pending) == (40.0, 0)
        reservation = await bucket.reserve(100, timeout=732)
        assert reservation.delay == pytest.approx(732.0)

    run(main())


@pytest.mark.parametrize(
    ("cost", "error"),
    [
        (0, ValueError),
        (math.nan, ValueError),
        (300, CostExceedsCapacity),
        (math.inf, CostExceedsCapacity),
    ],
)
def test_async_fail_fast(cost, error):
    """Impossible costs raise at once from every async entry point; no time passes."""

    async def main() -> None:
        bucket = AsyncTokenBucket(INCIDENT, clock=ManualClock(), tokens=0)
        for call in (bucket.try_acquire, bucket.acquire, bucket.reserve):
            with pytest.raises(error):
                await call(cost)
        assert bucket.clock.now() == 0.0
        assert (await bucket.snapshot()).booked == 0.0

    run(main())


def test_async_fifo_across_tasks():
    """Tasks acquiring concurrently are admitted in call order, a large request first."""
    config = BucketConfig(100, Rate.per_second(1))

    async def main() -> list[tuple[str, float]]:
        clock = ManualClock()
        bucket = AsyncTokenBucket(config, clock=clock, tokens=0)
        done: list[tuple[str, float]] = []

        async def take(name: str, cost: float) -> None:
            await bucket.acquire(cost)
            done.append((name, clock.now()))

        await asyncio.gather(take("big", 60), *(take(f"small{i}", 1) for i in range(3)))
        return done

    done = run(main())
    assert done == [("big", 60.0), ("small0", 61.0), ("small1", 62.0), ("small2", 63.0)]


def test_async_real_clock_tiny_delays():
    """With the real MonotonicClock, tiny waits really elapse and are admitted."""
    config = BucketConfig(5, Rate.per_second(1000))

    async def main() -> float:
        bucket = AsyncTokenBucket(config, clock=MonotonicClock(), tokens=0)
        start = time.monotonic()
        for _ in range(10):
            await bucket.acquire(2)
        return time.monotonic() - start

    assert run(main()) >= 0.02 - 1e-3


def test_async_never_blocks_the_event_loop():
    """While one task waits for tokens, another task keeps running on the same loop."""
    config = BucketConfig(1, Rate.per_second(10))

    async def main() -> int:
        bucket = AsyncTokenBucket(config, clock=MonotonicClock(), tokens=0)
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        await bucket.acquire(1)  # waits about 0.1 s
        stop.set()
        await task
        return ticks

    assert run(main()) >= 5


def test_async_task_cancellation_returns_the_cost():
    """Cancelling a task waiting in acquire returns its booking's cost."""
    config = BucketConfig(100, Rate.per_second(1))

    async def main() -> None:
        bucket = AsyncTokenBucket(config, clock=MonotonicClock(), tokens=0)
        task = asyncio.create_task(bucket.acquire(50))
        await asyncio.sleep(0.01)
        assert (await bucket.snapshot()).pending == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        snap = await bucket.snapshot()
        assert snap.pending == 0
        assert snap.booked == 0.0
        assert 0.0 <= snap.tokens < 1.0

    run(main())


def test_async_reservation_cancel():
    """AsyncReservation.cancel returns the cost once, before the booking's time."""

    async def main() -> None:
        bucket = AsyncTokenBucket(INCIDENT, clock=ManualClock(), tokens=40)
        reservation = await bucket.reserve(100)
        assert isinstance(reservation, AsyncReservation)
        assert reservation.delay == pytest.approx(732.0)
        assert (await bucket.snapshot()).tokens == pytest.approx(-60.0)
        assert await reservation.cancel() is True
        assert reservation.cancelled is True
        assert await reservation.cancel() is False
        assert (await bucket.snapshot()).tokens == 40.0

    run(main())


def test_async_reservation_cancel_after_its_time():
    """AsyncReservation.cancel after the booking's time does nothing."""

    async def main() -> None:
        bucket = AsyncTokenBucket(INCIDENT, clock=ManualClock(), tokens=40)
        reservation = await bucket.reserve(10)
        assert await reservation.cancel() is True
        reservation = await bucket.reserve(100)
        bucket.clock.advance(800)
        assert await reservation.cancel() is False

    run(main())


def test_async_reservation_settle():
    """AsyncReservation.settle debits or returns the difference; settling a cancelled one raises."""

    async def main() -> None:
        bucket = AsyncTokenBucket(INCIDENT, clock=ManualClock(), tokens=100)
        reservation = await bucket.reserve(10)
        await reservation.settle(30)
        assert (await bucket.snapshot()).tokens == 70.0
        await reservation.settle(5)
        assert (await bucket.snapshot()).tokens == 95.0
        other = await bucket.reserve(1)
        await other.cancel()
        with pytest.raises(ReservationError):
            await other.settle(1)

    run(main())


def test_async_sync():
    """The async sync adopts the balance, subtracting pending bookings."""

    async def main() -> None:
        bucket = AsyncTokenBucket(INCIDENT, clock=ManualClock(), tokens=40)
        await bucket.reserve(100)
        snap = await bucket.sync(150, rate=Rate.per_minute(10))
        assert snap.tokens == pytest.approx(50.0)
        assert snap.rate == pytest.approx(10 / 60)

    run(main())
