"""``sync(..., as_of=)``: answers overtaken on the way change nothing (issue 18).

A server's answer carries its timestamp (Keepa's ``timestamp``, an HTTP
``Date``). An answer older than the last one adopted misses what the later one
counted: adopting it would credit requests the server already charged. The
record of the last adoption lives in the bucket's state, so every process on a
shared backend (memory, SQLite, Redis) sees it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
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


SLOW = Rate.per_second(1e-9)  # refill negligible: balances are the synced figures


def _config(in_flight: float = 30.0) -> BucketConfig:
    return BucketConfig(300, SLOW, in_flight=in_flight)


def _bucket(in_flight: float = 30.0, **kw: Any) -> tuple[TokenBucket, ManualClock]:
    clock = ManualClock(1.7e9)
    return TokenBucket(_config(in_flight), clock=clock, tokens=100, **kw), clock


def test_a_sync_older_than_the_last_adopted_changes_nothing():
    """The later answer is adopted; the overtaken one is stale and says so."""
    bucket, clock = _bucket()
    snap = bucket.sync(50, as_of=1_700_000_101.0)
    assert (snap.tokens, snap.adopted) == (pytest.approx(50.0, abs=1e-6), True)
    clock.advance(0.2)
    stale = bucket.sync(90, as_of=1_700_000_100.5)
    assert stale.adopted is False
    assert stale.tokens == pytest.approx(50.0, abs=1e-6)
    assert bucket.snapshot().adopted is True  # a plain snapshot is not a sync


def test_equal_and_later_stamps_are_adopted():
    """Only an older stamp is stale: the same stamp (two answers in one millisecond) is not."""
    bucket, clock = _bucket()
    assert bucket.sync(50, as_of=10.0).adopted
    clock.advance(0.1)
    assert bucket.sync(40, as_of=10.0).tokens == pytest.approx(40.0, abs=1e-6)
    assert bucket.sync(60, as_of=10.001).tokens == pytest.approx(60.0, abs=1e-6)


def test_a_sync_without_as_of_is_always_adopted_and_keeps_the_record():
    """No stamp: adopted as before; the last stamp still rules out older stamped answers."""
    bucket, _ = _bucket()
    assert bucket.sync(50, as_of=10.0).adopted
    assert bucket.sync(70).tokens == pytest.approx(70.0, abs=1e-6)
    assert bucket.sync(90, as_of=9.0).adopted is False
    assert bucket.snapshot().tokens == pytest.approx(70.0, abs=1e-6)


def test_a_far_future_stamp_blinds_the_bucket_no_longer_than_the_in_flight_window():
    """One wrong stamp far ahead: stale-looking answers are refused only within in_flight."""
    bucket, clock = _bucket(in_flight=30.0)
    assert bucket.sync(50, as_of=1e12).adopted  # a server whose clock was far ahead, once
    clock.advance(30.0)
    assert bucket.sync(80, as_of=100.0).adopted is False  # could still have been overtaken
    clock.advance(0.001)
    snap = bucket.sync(80, as_of=100.0)  # no request takes longer than in_flight: adopted
    assert (snap.adopted, snap.tokens) == (True, pytest.approx(80.0, abs=1e-6))
    clock.advance(1.0)
    assert bucket.sync(70, as_of=99.0).adopted is False  # the record is the new stamp
    assert bucket.sync(70, as_of=101.0).adopted is True


def test_without_in_flight_only_a_sync_at_the_same_instant_can_be_stale():
    """in_flight=0: answers are never on the wire, so only a simultaneous one is overtaken."""
    bucket, clock = _bucket(in_flight=0.0)
    assert bucket.sync(50, as_of=10.0).adopted
    assert bucket.sync(80, as_of=9.0).adopted is False
    clock.advance(1e-3)
    assert bucket.sync(80, as_of=9.0).adopted is True


def test_a_stale_sync_keeps_bookings_and_recharge_mode():
    """A stale sync to a low figure neither enters recharge mode nor moves anything."""
    config = BucketConfig(300, Rate.per_minute(5), min_threshold=10, in_flight=30)
    clock = ManualClock(5e6)
    bucket = TokenBucket(config, clock=clock, tokens=100)
    bucket.sync(100, as_of=2.0)
    reservation = bucket.reserve(150)
    before = bucket.snapshot()
    snap = bucket.sync(-50, as_of=1.0)
    assert snap.adopted is False
    assert (snap.tokens, snap.recharging, snap.pending) == (
        before.tokens,
        before.recharging,
        before.pending,
    )
    assert reservation.delay == before.backlog


@pytest.mark.parametrize("bad", [math.nan, math.inf, "10"])
def test_as_of_must_be_a_finite_number(bad):
    """A NaN, infinite or non-numeric stamp is refused, naming the value."""
    bucket, _ = _bucket()
    with pytest.raises((TypeError, ValueError), match="as_of"):
        bucket.sync(10, as_of=bad)


def test_async_bucket_sync_as_of():
    """AsyncTokenBucket.sync takes as_of too."""

    async def main() -> tuple[bool, bool]:
        bucket = AsyncTokenBucket(_config(), clock=ManualClock(), tokens=100)
        first = await bucket.sync(50, as_of=5.0)
        second = await bucket.sync(60, as_of=4.0)
        return first.adopted, second.adopted

    assert asyncio.run(main()) == (True, False)


def _shared_backends(tmp_path: Path) -> dict[str, Callable[[ManualClock], Any]]:
    return {
        "memory": lambda _clock: MemoryBackend(),
        "sqlite": lambda clock: SQLiteBackend(tmp_path / "b.db", clock=clock),
    }


def _two_processes(backend: Any, clock: ManualClock) -> tuple[TokenBucket, TokenBucket]:
    config = _config()
    return (
        TokenBucket(config, clock=clock, tokens=100, backend=backend, key="acct"),
        TokenBucket(config, clock=clock, tokens=100, backend=backend, key="acct"),
    )


def _check_shared(one: TokenBucket, two: TokenBucket, clock: ManualClock) -> None:
    """One process's later answer makes the other's older one stale; in-flight stays out."""
    a = one.reserve(30)  # both on the wire
    b = two.reserve(20)
    assert a.delay == b.delay == 0.0
    # two's answer (stamp 101) counted both requests: 100 - 30 - 20 = 50; both still in flight.
    assert two.sync(50, as_of=101.0).tokens == pytest.approx(0.0, abs=1e-6)
    b.settle(20)  # two got its answer
    clock.advance(0.05)
    # one's answer (stamp 100, overtaken) counted only its own request: stale everywhere.
    assert one.sync(70, as_of=100.0).adopted is False
    assert one.snapshot().tokens == pytest.approx(
        0.0, abs=1e-6
    )  # unchanged (conservative until synced)
    a.settle(30)
    assert two.sync(50, as_of=102.0).tokens == pytest.approx(50.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_record_is_shared_by_every_process(kind, tmp_path):
    """Two buckets on one key (two processes): the record lives in the shared state."""
    clock = ManualClock(1.7e9)
    backend = _shared_backends(tmp_path)[kind](clock)
    one, two = _two_processes(backend, clock)
    _check_shared(one, two, clock)


@pytest.mark.redis
def test_the_record_is_shared_on_redis(redis_client, redis_prefix):
    """The same on Redis: the last adoption is a field of the bucket's hash."""
    from tokenbudget.redis import RedisBackend

    clock = ManualClock(1.7e9)
    backend = RedisBackend(redis_client, prefix=redis_prefix, clock=clock)
    one, two = _two_processes(backend, clock)
    _check_shared(one, two, clock)
