"""A settle and a sync applied together (``_settle_and_sync``) do what the two calls do.

The Keepa client settles each request's booking and syncs the bucket from its
answer in one call of the bucket: on the memory backend both are applied under
one hold of its lock (``MemoryBackend.apply_many``), on the other backends one
after the other. The bucket, its events and the sync's adoption must be those
of ``Reservation.settle`` and ``sync`` called in the same order. A booking also
keeps the balance its admission left, the balance a snapshot taken right after
it reads.
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
    Event,
    ManualClock,
    MemoryBackend,
    Rate,
    SQLiteBackend,
    TokenBucket,
)


START = 1.7e9
CONFIG = BucketConfig(
    600, Rate.per_minute(60), burst_threshold=1, min_threshold=1, refill_step=60.0, in_flight=90.0
)
# (settle to, sync's tokens, refill_in, rate, as_of, sync first): adopted, stale, a new
# rate, the settle before or after the sync, a settle of more than booked.
CASES = [
    (3.0, 250.0, 20.0, None, START + 10, False),
    (3.0, 250.0, 20.0, None, START + 10, True),
    (12.0, 40.0, 5.0, Rate.per_minute(30), START + 11, False),
    (0.0, -5.0, None, None, START + 12, True),
    (5.0, 100.0, 30.0, None, START - 100, False),  # stale: older than the first sync
]


def _buckets(kind: str, tmp_path: Path, redis_parts: Any) -> list[tuple[TokenBucket, list[Event]]]:
    """Two identical buckets, each in a backend of *kind* of its own, with their events."""
    made = []
    for i in range(2):
        clock = ManualClock(START)
        backend: Any
        if kind == "memory":
            backend = MemoryBackend()
        elif kind == "sqlite":
            backend = SQLiteBackend(tmp_path / f"b{i}.db", clock=clock)
        else:
            from tokenbudget.redis import RedisBackend

            client, prefix = redis_parts
            backend = RedisBackend(client, prefix=f"{prefix}{i}:", clock=clock)
        events: list[Event] = []
        bucket = TokenBucket(
            CONFIG, clock=clock, tokens=300, backend=backend, on_event=events.append
        )
        made.append((bucket, events))
    return made


@pytest.fixture(params=["memory", "sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_parts(kind: str, request: pytest.FixtureRequest) -> Any:
    if kind != "redis":
        return None
    return request.getfixturevalue("redis_client"), request.getfixturevalue("redis_prefix")


def _view(bucket: TokenBucket) -> tuple[Any, ...]:
    snap = bucket.snapshot()
    return (round(snap.tokens, 9), snap.recharging, snap.rate, snap.pending, snap.booked,
            snap.first_in_flight)  # fmt: skip


@pytest.mark.parametrize(("actual", "tokens", "refill_in", "rate", "as_of", "sync_first"), CASES)
def test_settle_and_sync_is_a_settle_and_a_sync(
    kind, redis_parts, tmp_path, actual, tokens, refill_in, rate, as_of, sync_first
):
    """The same bucket, events and adoption as the two calls in the same order."""
    (one, one_events), (both, both_events) = _buckets(kind, tmp_path, redis_parts)
    for bucket in (one, both):
        bucket.sync(280, refill_in=30.0, as_of=START)
        bucket.clock.advance(1.5)  # type: ignore[attr-defined]
    first, second = one.reserve(5, timeout=0), both.reserve(5, timeout=0)
    other = one.reserve(2, timeout=0), both.reserve(2, timeout=0)  # still on the wire after
    for bucket in (one, both):
        bucket.clock.advance(0.25)  # type: ignore[attr-defined]
    if sync_first:
        adopted = one.sync(tokens, refill_in=refill_in, rate=rate, as_of=as_of).adopted
        first.settle(actual)
    else:
        first.settle(actual)
        adopted = one.sync(tokens, refill_in=refill_in, rate=rate, as_of=as_of).adopted
    got = both._settle_and_sync(
        second, actual, (tokens, refill_in, rate, as_of), sync_first=sync_first
    )
    assert got is adopted
    assert _view(both) == _view(one)
    assert [(e.kind, e.cost, round(e.tokens, 9)) for e in both_events] == [
        (e.kind, e.cost, round(e.tokens, 9)) for e in one_events
    ]
    second.settle(actual + 1)  # the booking knows what it was charged: a second settle corrects
    first.settle(actual + 1)
    assert _view(both) == _view(one)
    assert both.snapshot().booked == pytest.approx(2 + actual + 1)  # each charged its last
    assert other[0].booking_id == other[1].booking_id


def test_only_a_settle_or_only_a_sync(kind, redis_parts, tmp_path):
    """Without a sync the result is None; without a booking only the sync is applied."""
    (one, _), (both, _) = _buckets(kind, tmp_path, redis_parts)
    first, second = one.reserve(5, timeout=0), both.reserve(5, timeout=0)
    first.settle(2.0)
    assert both._settle_and_sync(second, 2.0, None) is None
    assert _view(both) == _view(one)
    assert both._settle_and_sync(None, 0.0, (120.0, 10.0, None, START + 5)) is True
    one.sync(120.0, refill_in=10.0, as_of=START + 5)
    assert _view(both) == _view(one)
    assert both._settle_and_sync(None, 0.0, (99.0, 10.0, None, START + 1)) is False  # stale


def test_a_cancelled_booking_is_refused_before_anything_is_applied(kind, redis_parts, tmp_path):
    """A settle of a cancelled booking raises, as Reservation.settle does; the sync is not made."""
    from tokenbudget import ReservationError

    (bucket, _), _ = _buckets(kind, tmp_path, redis_parts)
    booking = bucket.reserve(5, timeout=0)
    booking.cancel()
    before = _view(bucket)
    with pytest.raises(ReservationError):
        bucket._settle_and_sync(booking, 1.0, (10.0, None, None, None), sync_first=True)
    assert _view(bucket) == before


def test_a_booking_keeps_the_balance_its_admission_left(kind, redis_parts, tmp_path):
    """``_ReservationState.tokens`` is the balance a snapshot right after the booking reads."""
    (bucket, _), _ = _buckets(kind, tmp_path, redis_parts)
    for cost in (5, 250, 40, 10):  # the last ones take the balance into debt
        booking = bucket.reserve(cost, timeout=0) if cost != 10 else bucket.reserve(cost)
        assert booking._state.tokens == pytest.approx(bucket.snapshot().tokens, abs=1e-6)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize(("actual", "tokens", "refill_in", "rate", "as_of", "sync_first"), CASES)
def test_async_settle_and_sync_is_a_settle_and_a_sync(
    backend, tmp_path, actual, tokens, refill_in, rate, as_of, sync_first
):
    """:class:`AsyncTokenBucket`'s is the same."""

    def make(i: int) -> tuple[AsyncTokenBucket, list[Event]]:
        clock = ManualClock(START)
        store: Any = (
            MemoryBackend() if backend == "memory" else SQLiteBackend(tmp_path / f"a{i}.db",
                                                                      clock=clock)
        )  # fmt: skip
        events: list[Event] = []
        bucket = AsyncTokenBucket(
            CONFIG, clock=clock, tokens=300, backend=store, on_event=events.append
        )
        return bucket, events

    async def scenario() -> None:
        (one, one_events), (both, both_events) = make(0), make(1)
        first, second = await one.reserve(5, timeout=0), await both.reserve(5, timeout=0)
        steps: list[Callable[[], Any]] = [
            lambda: one.sync(tokens, refill_in=refill_in, rate=rate, as_of=as_of),
            lambda: first.settle(actual),
        ]
        results = [await step() for step in (steps if sync_first else steps[::-1])]
        adopted = next(r for r in results if r is not None).adopted
        got = await both._settle_and_sync(
            second, actual, (tokens, refill_in, rate, as_of), sync_first=sync_first
        )
        assert got is adopted
        snaps = await one.snapshot(), await both.snapshot()
        assert snaps[0].tokens == pytest.approx(snaps[1].tokens, abs=1e-9)
        assert (snaps[0].rate, snaps[0].booked, snaps[0].first_in_flight) == (
            snaps[1].rate,
            snaps[1].booked,
            snaps[1].first_in_flight,
        )
        assert [e.kind for e in both_events] == [e.kind for e in one_events]
        assert not math.isnan(second._state.tokens)

    asyncio.run(scenario())
