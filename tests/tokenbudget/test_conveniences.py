"""``with bucket:``, ``async with bucket:``, ``would_admit(cost)`` and ``set_rate(rate)``."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import clock_origins, configs, costs, starting_balances
from tokenbudget import (
    AsyncTokenBucket,
    BucketConfig,
    CostExceedsCapacity,
    ManualClock,
    Rate,
    SQLiteBackend,
    TokenBucket,
)


CONFIG = BucketConfig(10, Rate.per_second(1))


def test_with_bucket_acquires_one_token():
    clock = ManualClock(1.7e9)
    bucket = TokenBucket(CONFIG, clock=clock, tokens=1)
    with bucket:
        pass
    assert clock.now() == 1.7e9
    with bucket as entered:  # waits one second for the token
        assert entered is None
    assert clock.now() == 1.7e9 + 1
    assert bucket.snapshot().tokens == 0


def test_async_with_bucket_acquires_one_token_per_task():
    clock = ManualClock(0.0)
    bucket = AsyncTokenBucket(CONFIG, clock=clock, tokens=0)
    done: list[float] = []

    async def one() -> None:
        async with bucket:
            done.append(clock.now())

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(3)))

    asyncio.run(main())
    assert sorted(done) == [1.0, 2.0, 3.0]


def test_would_admit_books_nothing():
    clock = ManualClock(0.0)
    bucket = TokenBucket(CONFIG, clock=clock, tokens=5)
    assert bucket.would_admit(5)
    assert not bucket.would_admit(6)
    assert bucket.snapshot().tokens == 5
    assert bucket.snapshot().booked == 0
    bucket.reserve(6)  # waits: a later request queues behind it
    clock.advance(0.5)
    assert not bucket.would_admit(1e-3)
    with pytest.raises(CostExceedsCapacity):
        bucket.would_admit(11)
    with pytest.raises(ValueError, match="> 0"):
        bucket.would_admit(0)


def test_would_admit_async():
    bucket = AsyncTokenBucket(CONFIG, clock=ManualClock(), tokens=3)
    assert asyncio.run(bucket.would_admit(3))
    assert not asyncio.run(bucket.would_admit(4))


@given(
    config=configs(steps=True, in_flight=True),
    origin=clock_origins(),
    data=st.data(),
)
def test_would_admit_says_what_try_acquire_does(config, origin, data):
    """Asked just before each try_acquire on one still clock, would_admit gives its answer."""
    clock = ManualClock(origin)
    bucket = TokenBucket(config, clock=clock, tokens=data.draw(starting_balances(config)))
    span = config.capacity / config.refill.tokens_per_second
    reservations = []
    for _ in range(data.draw(st.integers(1, 12))):
        kind = data.draw(st.sampled_from(["try", "try", "reserve", "advance", "cancel", "settle"]))
        if kind == "try":
            cost = data.draw(costs(config))
            assert bucket.would_admit(cost) == bucket.try_acquire(cost)
        elif kind == "reserve":
            reservations.append(bucket.reserve(data.draw(costs(config))))
        elif kind == "advance":
            clock.advance(data.draw(st.sampled_from([0.0, 1e-10, span / 7, span, 3 * span])))
        elif reservations:
            r = reservations.pop(data.draw(st.integers(0, len(reservations) - 1)))
            if kind == "cancel":
                r.cancel()
            elif not r.cancelled:
                r.settle(data.draw(st.floats(0.0, config.capacity)))


def test_set_rate_refills_at_the_new_rate_from_now():
    clock = ManualClock(1.7e9)
    bucket = TokenBucket(CONFIG, clock=clock, tokens=0)
    clock.advance(2)  # 2 tokens at the old rate
    bucket.set_rate(Rate.per_second(4))
    assert bucket.snapshot().rate == 4
    clock.advance(1)
    assert bucket.snapshot().tokens == pytest.approx(6)
    with pytest.raises(TypeError, match="must be a Rate"):
        bucket.set_rate(5)  # type: ignore[arg-type]


def test_set_rate_keeps_the_times_of_pending_bookings():
    clock = ManualClock(0.0)
    bucket = TokenBucket(CONFIG, clock=clock, tokens=0)
    r = bucket.reserve(4)  # due at 4 s at 1/s
    bucket.set_rate(Rate.per_second(2))
    assert r.delay == 4
    assert bucket.snapshot().backlog == 4
    clock.advance(4)  # 8 tokens at 2/s, 4 spent at 4 s
    assert bucket.snapshot().tokens == pytest.approx(4)
    assert bucket.acquire(4) == 0


def test_set_rate_on_a_shared_backend_holds_for_every_bucket(tmp_path):
    clock = ManualClock(100.0)
    backend = SQLiteBackend(tmp_path / "b.db", clock=clock)
    one = TokenBucket(CONFIG, clock=clock, backend=backend, key="k", tokens=0)
    two = TokenBucket(CONFIG, clock=clock, backend=backend, key="k", tokens=0)
    one.snapshot()
    one.set_rate(Rate.per_minute(60 * 3))
    clock.advance(1)
    assert two.snapshot().rate == 3
    assert two.snapshot().tokens == pytest.approx(3)
    assert math.isclose(asyncio.run(_async_rate(backend, clock)), 3)


async def _async_rate(backend: SQLiteBackend, clock: ManualClock) -> float:
    bucket = AsyncTokenBucket(CONFIG, clock=clock, backend=backend, key="k")
    return (await bucket.snapshot()).rate
