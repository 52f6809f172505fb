"""When ``tokens=`` applies: at construction in memory, at a shared key's first operation."""

from __future__ import annotations

import asyncio
from pathlib import Path

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


CONFIG = BucketConfig(300, Rate.per_minute(5))
TEN_HOURS = 10 * 3600.0


def test_private_memory_balance_counts_from_construction():
    """``tokens=0``, ten hours after construction the private bucket is full, not recharging."""
    clock = ManualClock()
    bucket = TokenBucket(CONFIG, clock=clock, tokens=0)
    clock.advance(TEN_HOURS)
    snap = bucket.snapshot()
    assert snap.tokens == 300.0
    assert not snap.recharging
    assert snap.since == 0.0


def test_private_memory_balance_counts_from_construction_async():
    """The same for AsyncTokenBucket."""
    clock = ManualClock()
    bucket = AsyncTokenBucket(CONFIG, clock=clock, tokens=0)
    clock.advance(TEN_HOURS)
    assert asyncio.run(bucket.snapshot()).tokens == 300.0


def test_private_memory_partial_refill_from_construction():
    """One minute after construction at ``tokens=0`` the balance is one minute's refill."""
    clock = ManualClock(1.7e9)
    bucket = TokenBucket(CONFIG, clock=clock, tokens=0)
    clock.advance(60)
    assert bucket.try_acquire(5)
    assert not bucket.try_acquire(1)


def test_shared_memory_backend_key_created_by_the_first_bucket():
    """On a shared MemoryBackend, the first bucket constructed on a key sets its balance."""
    clock = ManualClock()
    backend = MemoryBackend()
    first = TokenBucket(CONFIG, clock=clock, tokens=0, backend=backend, key="k")
    clock.advance(60)
    second = TokenBucket(CONFIG, clock=clock, tokens=300, backend=backend, key="k")
    assert second.snapshot().tokens == pytest.approx(5.0)
    assert first.snapshot().tokens == pytest.approx(5.0)


def test_sqlite_key_created_at_its_first_operation(tmp_path: Path):
    """On SQLite, ``tokens=`` applies at the key's first operation, at the backend's time."""
    clock = ManualClock()
    with SQLiteBackend(tmp_path / "b.db", clock=clock) as backend:
        bucket = TokenBucket(CONFIG, tokens=0, backend=backend, key="k")
        clock.advance(TEN_HOURS)
        assert backend.keys() == []  # construction does no I/O
        assert bucket.snapshot().tokens == 0.0  # created now, empty
        clock.advance(60)
        assert bucket.snapshot().tokens == pytest.approx(5.0)


def test_sqlite_existing_key_ignores_tokens(tmp_path: Path):
    """On SQLite, a bucket on a key that exists keeps its state whatever its ``tokens=``."""
    clock = ManualClock()
    with SQLiteBackend(tmp_path / "b.db", clock=clock) as backend:
        TokenBucket(CONFIG, tokens=10, backend=backend, key="k").snapshot()
        other = TokenBucket(CONFIG, tokens=300, backend=backend, key="k")
        assert other.snapshot().tokens == 10.0


@pytest.mark.redis
def test_redis_key_created_at_its_first_operation(redis_client, redis_prefix):
    """On Redis, ``tokens=`` applies at the key's first operation; an existing key ignores it."""
    from tokenbudget.redis import RedisBackend

    clock = ManualClock()
    backend = RedisBackend(redis_client, prefix=redis_prefix, clock=clock)
    bucket = TokenBucket(CONFIG, tokens=0, backend=backend, key="k")
    clock.advance(TEN_HOURS)
    assert not redis_client.exists(backend.redis_key("k"))  # construction does no I/O
    assert bucket.snapshot().tokens == 0.0
    clock.advance(60)
    other = TokenBucket(CONFIG, tokens=300, backend=backend, key="k")
    assert other.snapshot().tokens == pytest.approx(5.0)
