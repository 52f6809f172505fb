"""The clocks: ManualClock, MonotonicClock, WallClock."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from tokenbudget import Clock, ManualClock, MonotonicClock, WallClock


def test_manual_clock_starts_at_zero():
    """A ManualClock starts at 0.0 unless told otherwise."""
    assert ManualClock().now() == 0.0
    assert ManualClock(start=100).now() == 100.0


def test_manual_clock_advance():
    """advance moves the clock forward by exactly the seconds given."""
    clock = ManualClock()
    clock.advance(1.5)
    clock.advance(0)
    assert clock.now() == 1.5


@pytest.mark.parametrize("seconds", [-1, math.nan, math.inf])
def test_manual_clock_advance_rejects_bad_seconds(seconds):
    """advance rejects negative, NaN and infinite seconds, naming the value."""
    with pytest.raises(ValueError, match="seconds"):
        ManualClock().advance(seconds)


def test_manual_clock_sleep_advances_at_once():
    """sleep advances the clock at once and returns immediately."""
    clock = ManualClock()
    start = time.monotonic()
    clock.sleep(86_400)
    assert clock.now() == 86_400.0
    assert time.monotonic() - start < 1


def test_manual_clock_sleep_nonpositive_is_noop():
    """Sleeping zero or a negative time does not move the clock."""
    clock = ManualClock(start=5)
    clock.sleep(0)
    clock.sleep(-3)
    assert clock.now() == 5.0


def test_manual_clock_asleep_advances():
    """asleep advances the clock like sleep."""
    clock = ManualClock()
    asyncio.run(clock.asleep(30))
    assert clock.now() == 30.0


def test_manual_clock_concurrent_sleepers_do_not_add_up():
    """Tasks sleeping 10 s and 20 s at the same time end the clock at 20 s, not 30 s."""
    clock = ManualClock()

    async def main() -> None:
        await asyncio.gather(clock.asleep(10), clock.asleep(20), clock.asleep(5))

    asyncio.run(main())
    assert clock.now() == 20.0


def test_manual_clock_asleep_yields_to_the_loop():
    """asleep yields to the event loop, so other tasks run while one sleeps."""
    clock = ManualClock()
    order: list[str] = []

    async def sleeper() -> None:
        await clock.asleep(10)
        order.append("sleeper")

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        await asyncio.gather(sleeper(), other())

    asyncio.run(main())
    assert order == ["other", "sleeper"]


@pytest.mark.parametrize("clock", [ManualClock(), MonotonicClock(), WallClock()], ids=repr)
def test_clocks_satisfy_the_protocol(clock):
    """Every clock is a Clock."""
    assert isinstance(clock, Clock)


def test_monotonic_clock_now():
    """MonotonicClock reads time.monotonic."""
    before = time.monotonic()
    now = MonotonicClock().now()
    assert before <= now <= time.monotonic()


def test_monotonic_clock_sleeps():
    """MonotonicClock.sleep and asleep really wait; non-positive sleeps return at once."""
    clock = MonotonicClock()
    start = clock.now()
    clock.sleep(0.01)
    clock.sleep(-1)
    asyncio.run(clock.asleep(0.01))
    asyncio.run(clock.asleep(-1))
    assert clock.now() - start >= 0.02


def test_wall_clock_now():
    """WallClock reads time.time."""
    before = time.time()
    now = WallClock().now()
    assert before <= now <= time.time()


def test_clock_reprs():
    """The real clocks have readable reprs."""
    assert repr(MonotonicClock()) == "MonotonicClock()"
    assert repr(WallClock()) == "WallClock()"


def test_manual_clock_sleepers_wake_in_deadline_order_at_their_deadlines():
    """Concurrent sleepers wake in deadline order, each at its own deadline."""
    clock = ManualClock()
    woke: list[tuple[int, float]] = []

    async def sleeper(seconds: int) -> None:
        await clock.asleep(seconds)
        woke.append((seconds, clock.now()))

    async def main() -> None:
        await asyncio.gather(sleeper(20), sleeper(5), sleeper(10))

    asyncio.run(main())
    assert woke == [(5, 5.0), (10, 10.0), (20, 20.0)]


def test_manual_clock_cancelled_sleeper_does_not_block_others():
    """A cancelled asleep leaves the clock untouched and does not hold later sleepers back."""
    clock = ManualClock()

    async def main() -> None:
        early = asyncio.create_task(clock.asleep(5))
        await asyncio.sleep(0)
        early.cancel()
        await clock.asleep(10)
        with pytest.raises(asyncio.CancelledError):
            await early

    asyncio.run(main())
    assert clock.now() == 10.0


def test_threads_sleeping_on_one_manual_clock_lose_no_advance():
    """Eight threads sleeping at once on one ManualClock: every sleep counts (an advance lost
    to a race let a thread believe it had reached a booking's time that had not come)."""
    import sys
    import threading

    clock = ManualClock()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show at once
    try:
        threads = [
            threading.Thread(target=lambda: [clock.sleep(1.0) for _ in range(20_000)])
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert clock.now() == 8 * 20_000.0
