"""The SQLite backend: one file, many buckets, many processes."""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
import threading
import time

import pytest

from tests.tokenbudget import _contention
from tokenbudget import (
    AsyncTokenBucket,
    Backend,
    BackendError,
    BucketConfig,
    DeficitRule,
    ManualClock,
    Rate,
    SQLiteBackend,
    TokenBucket,
    WallClock,
)


CONFIG = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "buckets.db"


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def backend(path, clock):
    with SQLiteBackend(path, clock=clock) as backend:
        yield backend


def test_is_a_backend(backend):
    """SQLiteBackend implements the Backend protocol and defaults to the wall clock."""
    assert isinstance(backend, Backend)
    assert isinstance(SQLiteBackend(backend.path).clock, WallClock)
    assert "SQLiteBackend(" in repr(backend)


def test_incident_numbers(backend, clock):
    """The worked numbers of SPEC §2 hold on SQLite."""
    bucket = TokenBucket(CONFIG, clock=clock, tokens=40, backend=backend, key="keepa")
    assert bucket.try_acquire(100) is False
    assert bucket.acquire(100) == pytest.approx(732.0, abs=1e-9)
    assert bucket.snapshot().tokens == pytest.approx(1.0)


def test_many_keys_in_one_file(backend, clock):
    """Each key is its own bucket, all in one file."""
    a = TokenBucket(CONFIG, clock=clock, backend=backend, key="account-a")
    b = TokenBucket(CONFIG, clock=clock, backend=backend, key="account-b")
    assert a.try_acquire(250)
    assert not a.try_acquire(250)
    assert b.try_acquire(250)
    assert backend.keys() == ["account-a", "account-b"]
    assert backend.delete("account-a") is True
    assert backend.delete("account-a") is False
    assert backend.keys() == ["account-b"]


def test_wal_mode(backend, path):
    """The database file is in WAL mode."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_state_survives_reopening(path, clock):
    """A bucket's balance, bookings and statistics are still there in a new backend."""
    config = BucketConfig(10, Rate.per_second(1), min_threshold=1, deficit=DeficitRule.bounded(5))
    with SQLiteBackend(path, clock=clock) as first:
        bucket = TokenBucket(config, clock=clock, backend=first, key="k")
        assert bucket.try_acquire(12)
        reservation = bucket.reserve(3)
        before = bucket.snapshot()
    with SQLiteBackend(path, clock=clock) as second:
        again = TokenBucket(config, clock=clock, backend=second, key="k")
        after = again.snapshot()
        assert after == before
        assert after.tokens == pytest.approx(-5.0)
        assert after.pending == 1
        assert after.booked == 15.0
        assert reservation.delay == pytest.approx(12.0)  # waits for the burst threshold
        assert again.reserve(1).delay == pytest.approx(12.0)  # queues behind it


def test_backend_pickles_for_other_processes(backend, clock):
    """A pickled backend reopens the same file with the same clock and timeout."""
    clone = pickle.loads(pickle.dumps(backend))  # noqa: S301 -- our own bytes
    assert clone.path == backend.path
    bucket = TokenBucket(CONFIG, clock=clock, backend=backend, key="k")
    assert bucket.try_acquire(100)
    assert TokenBucket(CONFIG, clock=clock, backend=clone, key="k").snapshot().tokens == 200.0
    clone.close()


def test_busy_database_raises_backend_error(path):
    """A lock held past the timeout raises BackendError naming sqlite, after about the timeout."""
    backend = SQLiteBackend(path, clock=ManualClock(), timeout=0.2)
    bucket = TokenBucket(CONFIG, clock=ManualClock(), backend=backend, key="k")
    bucket.snapshot()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(BackendError) as info:
            bucket.try_acquire(1)
        waited = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert info.value.backend == "sqlite"
    assert "locked" in str(info.value)
    assert isinstance(info.value, ConnectionError)
    assert 0.15 <= waited < 5.0
    assert bucket.try_acquire(1)  # and it works again once the lock is gone
    assert bucket.snapshot().tokens == 299.0  # the failed call changed nothing
    backend.close()


def test_brief_lock_is_waited_for(path):
    """A lock released within the timeout only delays the operation."""
    backend = SQLiteBackend(path, clock=ManualClock(), timeout=5.0)
    bucket = TokenBucket(CONFIG, clock=ManualClock(), backend=backend, key="k")
    bucket.snapshot()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.2, lambda: other.execute("ROLLBACK"))
    release.start()
    try:
        assert bucket.try_acquire(1)
    finally:
        release.join()
        other.close()
    backend.close()


def test_corrupt_row_raises_backend_error(backend, path, clock):
    """A row that is not a bucket state raises BackendError, not a stray JSON error."""
    bucket = TokenBucket(CONFIG, clock=clock, backend=backend, key="k")
    bucket.snapshot()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE tokenbudget_buckets SET state = '[1, 2]' WHERE key = 'k'")
    conn.close()
    with pytest.raises(BackendError, match="corrupt bucket state"):
        bucket.try_acquire(1)


def test_unopenable_path_raises_backend_error(tmp_path):
    """A path that cannot be a database raises BackendError at construction."""
    with pytest.raises(BackendError, match="sqlite backend"):
        SQLiteBackend(tmp_path / "missing-dir" / "x.db")


def test_invalid_timeout():
    """A negative or non-numeric timeout is rejected."""
    with pytest.raises(ValueError, match="timeout"):
        SQLiteBackend(":memory:", timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        SQLiteBackend(":memory:", timeout="1")  # type: ignore[arg-type]


def test_threads_share_one_bucket(backend, clock):
    """Eight threads, one connection each, admit exactly the capacity on a still clock."""
    assert _contention.admitted_by_threads(backend, clock) == 100


def test_async_bucket_on_sqlite(backend, clock):
    """AsyncTokenBucket works on SQLite, with reservations, settle, sync and snapshot."""

    async def main() -> None:
        bucket = AsyncTokenBucket(CONFIG, clock=clock, tokens=40, backend=backend, key="a")
        assert await bucket.try_acquire(100) is False
        assert await bucket.acquire(100) == pytest.approx(732.0)
        reservation = await bucket.reserve(10)
        assert reservation.delay == pytest.approx(120.0)
        assert await reservation.cancel()
        first = await bucket.reserve(5)
        await first.settle(2)
        snap = await bucket.sync(30)
        assert snap.tokens == pytest.approx(28.0)  # the pending booking, settled to 2, is net

    asyncio.run(main())


def test_async_operations_do_not_block_the_loop(path):
    """While the file is locked, an async operation waits in a thread and the loop runs on."""
    backend = SQLiteBackend(path, clock=ManualClock(), timeout=5.0)
    bucket = AsyncTokenBucket(CONFIG, clock=ManualClock(), backend=backend, key="k")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def main() -> int:
        await bucket.snapshot()
        other.execute("BEGIN IMMEDIATE")
        ticks = 0
        task = asyncio.create_task(bucket.try_acquire(1))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
            if ticks == 20:
                other.execute("ROLLBACK")
        assert task.result() is True
        return ticks

    try:
        assert asyncio.run(main()) >= 20
    finally:
        other.close()
        backend.close()


def test_four_processes_never_over_admit(path):
    """4 spawned processes on one bucket admit no more than balance + refill + deficit."""
    admitted, budget, calls = _contention.contend(
        ("sqlite", SQLiteBackend(path, timeout=30.0)), "contended", WallClock().now
    )
    assert calls > 100  # they really contended
    assert admitted <= budget + 1e-6
    assert admitted >= 0.25 * budget  # and the bucket did admit most of what it could
