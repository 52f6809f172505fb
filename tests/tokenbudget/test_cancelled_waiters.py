"""When a waiting booking is cancelled, the ``acquire`` calls behind it may go earlier.

aiolimiter's ``test_task_cancelled``: a task waiting for its tokens gives up
(``asyncio.wait_for``); the next waiter goes when the tokens are there for it, not at
its old time. On a memory bucket with a real clock the waiting ``acquire`` calls of this
process are booked again, in their order, and woken; never when a booking is pending
whose holder sleeps its own delay (a reservation), which would not learn a new time.

On SQLite and Redis (shared with other processes) only the bucket's last booking
moves, when it is a waiting ``acquire`` of this process: one atomic operation
(``_core.Rebook``, and its Lua twin) cancels it and books its cost again, and keeps
the old booking when the new one would not be earlier. Nothing is behind it to be
hurt, and it admits exactly what a cancel and a new reservation would.

The waits are real (a second or so); the assertions read the booked waits that
``acquire`` returns, never a measured time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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
from tokenbudget._core import Rebook


CONFIG = BucketConfig(40, Rate.per_second(10))  # 30 tokens take 3 s, 10 take 1 s


def test_a_cancelled_task_lets_the_next_waiter_go_earlier():
    bucket = AsyncTokenBucket(CONFIG, tokens=0)

    async def main() -> float:
        first = asyncio.ensure_future(asyncio.wait_for(bucket.acquire(30), 0.05))  # due at 3 s
        while (await bucket.snapshot()).pending < 1:  # noqa: ASYNC110 -- until booked first
            await asyncio.sleep(0)
        waiter = asyncio.ensure_future(bucket.acquire(10))  # due at 4 s behind it
        with contextlib.suppress(TimeoutError):
            await first  # gives up
        return await waiter

    waited = asyncio.run(main())
    assert waited < 2.5  # booked again at about 1 s, not 4
    assert bucket._backend.observe("default", CONFIG, bucket.clock, 0.0).pending == 0


def _acquire_in_thread(bucket: TokenBucket, cost: float) -> tuple[threading.Thread, list[float]]:
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(bucket.acquire(cost)))
    thread.start()
    return thread, result


def _wait_until_pending(bucket: TokenBucket, n: int) -> None:
    while bucket.snapshot().pending < n:
        threading.Event().wait(0.001)


def test_a_cancelled_reservation_lets_a_waiting_thread_go_earlier():
    bucket = TokenBucket(CONFIG, tokens=0)
    ahead = bucket.reserve(30)
    thread, result = _acquire_in_thread(bucket, 10)  # due at 4 s
    _wait_until_pending(bucket, 2)
    assert ahead.cancel()
    thread.join(10)
    assert result
    assert result[0] < 2.5


def test_nothing_moves_while_a_reservation_holder_waits_behind():
    """A reservation's holder sleeps its own delay: moving the line would leave it behind."""
    bucket = TokenBucket(CONFIG, tokens=0)
    first = bucket.reserve(30)
    holder = bucket.reserve(5)  # due at 3.5 s
    thread, result = _acquire_in_thread(bucket, 10)  # due at 4.5 s
    _wait_until_pending(bucket, 3)
    before = bucket.snapshot()
    assert first.cancel()
    after = bucket.snapshot()
    # Every later booking kept its time: the tail is where it was.
    assert abs((after.time + after.backlog) - (before.time + before.backlog)) < 1e-6
    assert holder.cancel()  # now only waiting acquire calls are pending: they move up
    thread.join(10)
    assert result
    assert result[0] < 3.0


# -- every backend ---------------------------------------------------------------------------

#: A factory of one backend kind: (clock or None for the backend's own, asynchronous) -> backend.
MakeBackend = Callable[[ManualClock | None, bool], Any]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBackend]:
    kind = request.param
    closers: list[Callable[[], object]] = []
    if kind == "memory":
        yield lambda _clock, _asynchronous: MemoryBackend()
    elif kind == "sqlite":

        def sqlite(clock: ManualClock | None, _asynchronous: bool) -> SQLiteBackend:
            backend = SQLiteBackend(tmp_path / "b.db", clock=clock)
            closers.append(backend.close)
            return backend

        yield sqlite
    else:
        import redis
        import redis.asyncio

        from tokenbudget.redis import RedisBackend

        url = request.getfixturevalue("redis_server")
        prefix = request.getfixturevalue("redis_prefix")

        def on_redis(clock: ManualClock | None, asynchronous: bool) -> RedisBackend:
            if asynchronous:
                client: Any = redis.asyncio.Redis.from_url(url)
            else:
                client = redis.Redis.from_url(url)
                closers.append(client.close)
            return RedisBackend(client, prefix=prefix, clock=clock)

        yield on_redis
    for close in closers:
        close()


def _key() -> str:
    return uuid.uuid4().hex


def test_a_cancelled_task_lets_the_next_waiter_go_earlier_on_every_backend(make_backend):
    """aiolimiter's test_task_cancelled on memory, SQLite and Redis (asyncio)."""
    bucket = AsyncTokenBucket(CONFIG, tokens=0, backend=make_backend(None, True), key=_key())

    async def main() -> float:
        first = asyncio.ensure_future(asyncio.wait_for(bucket.acquire(30), 0.3))  # due at 3 s
        while (await bucket.snapshot()).pending < 1:  # noqa: ASYNC110 -- until booked first
            await asyncio.sleep(0.001)
        waiter = asyncio.ensure_future(bucket.acquire(10))  # due at 4 s behind it
        with contextlib.suppress(TimeoutError):
            await first  # gives up
        try:
            return await waiter
        finally:
            client = getattr(bucket._backend, "_client", None)
            if client is not None:  # an asyncio Redis client closes on its loop
                await client.aclose()

    waited = asyncio.run(main())
    assert waited < 2.5  # booked again at about 1.3 s, not 4


def test_a_cancelled_reservation_lets_the_last_waiting_thread_go_earlier(make_backend):
    """A thread's acquire, the bucket's last booking, goes at about 1 s, not 4 (sync)."""
    bucket = TokenBucket(CONFIG, tokens=0, backend=make_backend(None, False), key=_key())
    ahead = bucket.reserve(30)
    thread, result = _acquire_in_thread(bucket, 10)  # due at 4 s
    _wait_until_pending(bucket, 2)
    assert ahead.cancel()
    thread.join(10)
    assert result
    assert result[0] < 2.5


def test_a_waiter_with_a_booking_behind_it_keeps_its_time(make_backend):
    """Shared backends move only the last booking: one behind the waiter could be hurt."""
    fast = BucketConfig(40, Rate.per_second(100))  # 30 tokens take 0.3 s
    backend = make_backend(None, False)
    bucket = TokenBucket(fast, tokens=0, backend=backend, key=_key())
    ahead = bucket.reserve(30)  # due at 0.3 s
    thread, result = _acquire_in_thread(bucket, 10)  # due at 0.4 s
    _wait_until_pending(bucket, 2)
    behind = bucket.reserve(5)  # due at 0.45 s, its holder sleeps its own delay
    before = bucket.snapshot()
    assert ahead.cancel()
    after = bucket.snapshot()
    if not isinstance(backend, MemoryBackend):  # (memory moves nothing either: see above)
        assert abs((after.time + after.backlog) - (before.time + before.backlog)) < 1e-3
    thread.join(10)
    assert result
    # Its own time, about 0.4 s after the bucket was made (less the thread's start): not
    # moved to about 0.1 s after the cancel.
    assert result[0] > 0.25
    assert behind.delay > 0.3


# -- the operation ---------------------------------------------------------------------------


def _manual(make_backend: MakeBackend) -> TokenBucket:
    clock = ManualClock(1.7e9)
    return TokenBucket(
        CONFIG, clock=clock, tokens=0, backend=make_backend(clock, False), key=_key()
    )


def test_rebook_moves_the_last_booking_to_where_a_new_one_would_go(make_backend):
    bucket = _manual(make_backend)
    first = bucket.reserve(30)  # 3 s
    last = bucket.reserve(10)  # 4 s
    assert first.cancel()
    out = bucket._apply(Rebook(last.booking_id))
    assert out.ok
    assert out.delay == pytest.approx(1.0)
    assert out.booking_id > last.booking_id  # booked again: a new id
    snap = bucket.snapshot()
    assert (snap.pending, snap.backlog) == (1, pytest.approx(1.0))
    assert snap.booked == pytest.approx(10.0)  # booked once, not twice
    assert bucket.reserve(30).delay == pytest.approx(4.0)  # the queue goes on behind it


def test_rebook_moves_nothing_behind_which_a_booking_waits(make_backend):
    bucket = _manual(make_backend)
    first = bucket.reserve(30)  # 3 s
    middle = bucket.reserve(10)  # 4 s
    bucket.reserve(5)  # 4.5 s: its holder would not learn a new time
    assert first.cancel()
    before = bucket.snapshot()
    out = bucket._apply(Rebook(middle.booking_id))
    assert not out.ok
    after = bucket.snapshot()
    assert (after.pending, after.backlog, after.tokens) == (
        before.pending,
        before.backlog,
        before.tokens,
    )


def test_rebook_keeps_a_booking_a_new_one_would_not_better(make_backend):
    bucket = _manual(make_backend)
    last = bucket.reserve(10)  # 1 s, nothing ahead of it
    before = bucket.snapshot()
    out = bucket._apply(Rebook(last.booking_id))
    assert not out.ok
    after = bucket.snapshot()
    assert (after.pending, after.backlog, after.booked) == (
        before.pending,
        before.backlog,
        before.booked,
    )
    assert last.cancel()  # still the same booking, under its id


def test_a_cancel_between_a_waiters_booking_and_its_wait_still_moves_it_up(
    make_backend: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A booking ahead cancelled after a waiting acquire booked, before it waits.

    ``acquire`` books, then registers as a waiter: the cancel's look for waiters
    to move up does not find it, so once registered it looks for itself (a loaded
    machine opened this gap at random: the waiter went at its old time).
    """
    from tokenbudget import _bucket

    bucket = TokenBucket(CONFIG, tokens=0, backend=make_backend(None, False), key=_key())
    ahead = bucket.reserve(30)
    real = _bucket._sleeper

    def cancel_ahead_first(*args: Any) -> Any:
        assert ahead.cancel()  # after the booking, before the waiter registers
        return real(*args)

    monkeypatch.setattr(_bucket, "_sleeper", cancel_ahead_first)
    assert bucket.acquire(10) < 2.5  # booked again at about 1 s, not 4


def test_a_cancel_between_a_tasks_booking_and_its_wait_still_moves_it_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same gap for an asyncio task (the cancel by a thread's bucket on the same memory)."""
    from tokenbudget import _bucket

    backend, key = MemoryBackend(), _key()
    waiting = AsyncTokenBucket(CONFIG, tokens=0, backend=backend, key=key)
    ahead = TokenBucket(CONFIG, tokens=0, backend=backend, key=key).reserve(30)
    real = _bucket._sleeper

    def cancel_ahead_first(*args: Any) -> Any:
        assert ahead.cancel()
        return real(*args)

    monkeypatch.setattr(_bucket, "_sleeper", cancel_ahead_first)
    assert asyncio.run(waiting.acquire(10)) < 2.5


def test_a_waiter_booking_while_the_cancel_looks_for_waiters_does_not_hold_the_others_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second acquire books while the cancel's look at the waiters reads the bucket.

    Its booking is pending before it is a waiter: the look sees more pending
    bookings than waiters, which would keep everyone at their old times. The look
    counts again and looks once more (or the newcomer, registering after the
    count, looks for itself): the first waiter goes at about 1 s, not 2.
    """
    from tokenbudget import _bucket

    bucket = TokenBucket(BucketConfig(1.0, Rate(1.0, 1.0)), tokens=0.0)
    ahead = bucket.reserve(1.0)  # due at 1 s
    waited: dict[str, float] = {}

    def acquire(name: str) -> None:
        waited[name] = bucket.acquire(1.0)

    first = threading.Thread(target=acquire, args=("first",))
    first.start()  # due at 2 s
    while not _bucket._SLEEPERS.get((id(bucket._backend), bucket.key)):  # a waiter now
        time.sleep(0.001)
    booked = threading.Event()
    real_observe, real_apply = MemoryBackend.observe, MemoryBackend.apply
    looks = []

    def apply(self: MemoryBackend, *args: Any) -> Any:
        out = real_apply(self, *args)
        if threading.current_thread().name == "second":
            booked.set()
        return out

    def observe(self: MemoryBackend, *args: Any) -> Any:
        if threading.current_thread() is threading.main_thread() and not looks:
            looks.append(1)
            threading.Thread(target=acquire, args=("second",), name="second").start()
            booked.wait(10)  # the second books now, and registers when it will
        return real_observe(self, *args)

    monkeypatch.setattr(MemoryBackend, "observe", observe)
    monkeypatch.setattr(MemoryBackend, "apply", apply)
    assert ahead.cancel()
    monkeypatch.undo()
    first.join(10)
    assert waited["first"] < 1.5  # booked again at about 1 s, not 2
