"""Type-checker-only usage of the public API (``mypy src tests/typing``); never run."""

from __future__ import annotations

import math
from typing import assert_type

import tokenbudget
from tokenbudget import (
    AcquireTimeout,
    AdaptiveBatchSizer,
    AsyncReservation,
    AsyncTokenBucket,
    BucketConfig,
    Clock,
    CostExceedsCapacity,
    DeficitRule,
    ManualClock,
    MemoryBackend,
    MonotonicClock,
    Rate,
    Reservation,
    Snapshot,
    TokenBucket,
    TokenBudgetError,
)


config = BucketConfig(
    300,
    Rate.per_minute(5),
    burst_threshold=40,
    min_threshold=1,
    deficit=DeficitRule.while_positive(math.inf),
    refill_step=60,
)
assert_type(config.max_cost, float)
assert_type(config.required_balance(25), float)
assert_type(Rate(300, per_seconds=3600).tokens_per_second, float)
assert_type(DeficitRule.bounded(10), DeficitRule)
assert_type(DeficitRule.none(), DeficitRule)

clock = ManualClock(start=0)
clock.advance(1.5)
assert_type(clock.now(), float)
monotonic: Clock = MonotonicClock()
manual: Clock = clock

bucket = TokenBucket(config, clock=clock, tokens=40, backend=MemoryBackend(), key="keepa")
assert_type(bucket.try_acquire(), bool)
assert_type(bucket.try_acquire(2.5), bool)
assert_type(bucket.acquire(10, timeout=60), float)
reservation = bucket.reserve(100)
assert_type(reservation, Reservation)
assert_type(reservation.delay, float)
assert_type(reservation.cancel(), bool)
assert_type(reservation.settle(90), None)
assert_type(bucket.sync(50, refill_in=30, rate=Rate.per_minute(20)), Snapshot)
snap = bucket.snapshot()
assert_type(snap.tokens, float)
assert_type(snap.recharging, bool)
assert_type(snap.utilization, float | None)

sizer = AdaptiveBatchSizer([1, 5], min_batch=1, max_batch=20)
assert_type(sizer.size(config), int)
assert_type(sizer.observe(items=7, tokens=56), None)
assert_type(sizer.item_cost, float)


async def use_async() -> None:
    """The async bucket: every method is a coroutine."""
    abucket = AsyncTokenBucket(config, clock=clock, tokens=40)
    assert_type(await abucket.try_acquire(1), bool)
    assert_type(await abucket.acquire(1, timeout=None), float)
    areservation = await abucket.reserve(3)
    assert_type(areservation, AsyncReservation)
    assert_type(await areservation.cancel(), bool)
    assert_type(await areservation.settle(2), None)
    assert_type(await abucket.sync(10), Snapshot)
    assert_type(await abucket.snapshot(), Snapshot)


def handle_errors() -> float:
    """The error tree: AcquireTimeout carries the delay; CostExceedsCapacity is a ValueError."""
    try:
        return bucket.acquire(1000, timeout=0)
    except AcquireTimeout as timeout:
        assert_type(timeout.delay, float)
        return timeout.delay
    except CostExceedsCapacity as error:
        takes_value_error(error)
        takes_base(error)
        return error.max_cost


def takes_value_error(error: ValueError) -> None:
    """CostExceedsCapacity is a ValueError."""


def takes_base(error: TokenBudgetError) -> None:
    """Every error is a TokenBudgetError."""


assert_type(tokenbudget.__version__, str)
