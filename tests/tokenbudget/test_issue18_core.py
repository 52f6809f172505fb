"""Issue 18: the core's reproducers (defects 2, 3, 6, 7, and syncs that lower the balance).

Each runs on every backend the defect concerns (memory, SQLite, Redis with an
injected ManualClock), so that the Lua twin is held to the same rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tokenbudget import (
    BucketConfig,
    DeficitRule,
    ManualClock,
    MemoryBackend,
    Rate,
    SQLiteBackend,
    TokenBucket,
)


MakeBackend = Callable[[ManualClock], Any]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBackend]:
    """A factory of one backend kind, bound to a clock."""
    kind = request.param
    if kind == "memory":
        yield lambda _clock: MemoryBackend()
    elif kind == "sqlite":
        opened: list[SQLiteBackend] = []

        def sqlite(clock: ManualClock) -> SQLiteBackend:
            opened.append(SQLiteBackend(tmp_path / "b.db", clock=clock))
            return opened[-1]

        yield sqlite
        for backend in opened:
            backend.close()
    else:
        client = request.getfixturevalue("redis_client")
        prefix = request.getfixturevalue("redis_prefix")
        from tokenbudget.redis import RedisBackend

        yield lambda clock: RedisBackend(client, prefix=prefix, clock=clock)


def _bucket(
    make_backend: MakeBackend, config: BucketConfig, tokens: float, origin: float = 1.7e9
) -> tuple[TokenBucket, ManualClock]:
    clock = ManualClock(origin)
    backend = make_backend(clock)
    bucket = TokenBucket(config, clock=clock, tokens=tokens, backend=backend, key=uuid.uuid4().hex)
    return bucket, clock


# -- defect 3 ---------------------------------------------------------------------------------


def test_late_cancel_keeps_the_booking_in_flight(make_backend):
    """Defect 3: in_flight=30, reserve(60), 1 s later cancel() -> False; sync(100) gives 40."""
    config = BucketConfig(100, Rate.per_second(1e-6), in_flight=30)
    bucket, clock = _bucket(make_backend, config, 100)
    reservation = bucket.reserve(60)
    clock.advance(1)
    assert reservation.cancel() is False
    assert bucket.sync(100).tokens == pytest.approx(40.0, abs=1e-3)
    assert bucket.try_acquire(100) is False


# -- defect 2 ---------------------------------------------------------------------------------


def _keepa() -> BucketConfig:
    return BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.while_positive(),
    )


def test_late_settle_credits_only_what_a_capped_server_holds(make_backend):
    """Defect 2: estimate 100, true cost 1, settled 20 minutes later after a spend of 250.

    The server charged 1, sat at its capacity (300) meanwhile and then served
    the 250: it holds 50. Crediting the 99 would leave the bucket at 149.
    """
    bucket, clock = _bucket(make_backend, _keepa(), 300)
    reservation = bucket.reserve(100)  # admitted now: 200 left
    clock.advance(1200)  # +100: back at 300 (the server, at 299, capped too)
    assert bucket.try_acquire(250)
    reservation.settle(1)
    assert bucket.snapshot().tokens == pytest.approx(50.0)
    assert bucket.try_acquire(99) is True  # the server holds 50: 99 leaves -49, still admitted
    assert bucket.snapshot().tokens == pytest.approx(-49.0)


def test_late_settle_with_nothing_spent_since_is_credited_up_to_the_cap(make_backend):
    """Defect 2, the other side: no spend since the booking: the credit is capped only now."""
    bucket, clock = _bucket(make_backend, _keepa(), 300)
    reservation = bucket.reserve(100)  # 200
    clock.advance(600)  # 250 (the server: 299 + 50, capped at 300)
    reservation.settle(1)
    assert bucket.snapshot().tokens == pytest.approx(300.0)


def test_prompt_settle_credits_the_whole_difference(make_backend):
    """A settle at once (nothing spent since, room below the cap) credits all of it."""
    bucket, _ = _bucket(make_backend, _keepa(), 150)
    reservation = bucket.reserve(100)
    reservation.settle(1)
    assert bucket.snapshot().tokens == pytest.approx(149.0)


# -- syncs that lower the balance move pending bookings ------------------------------------------


def test_a_sync_that_lowers_the_balance_moves_pending_bookings(make_backend):
    """Issue 18, Also: none() bucket, reserve(100), sync(-50): the booking moves so that the
    balance at its time pays it (it would sit at -50 after its debit)."""
    config = BucketConfig(300, Rate.per_minute(5), deficit=DeficitRule.none())
    bucket, clock = _bucket(make_backend, config, 0)
    first = bucket.reserve(100)
    assert first.delay == pytest.approx(1200.0)
    snap = bucket.sync(-50)  # below m: recharge mode, the booking waits for B = 300
    assert snap.backlog == pytest.approx(4200.0)  # (300 + 50) / (5 / 60)
    clock.advance(snap.backlog)
    assert bucket.snapshot().tokens == pytest.approx(200.0)  # never below m = 0
    assert first.cancel() is False  # its (new) time has come


def test_a_sync_that_lowers_the_rate_moves_pending_bookings(make_backend):
    """A lower rate: the booking moves to when the slower refill pays it."""
    config = BucketConfig(300, Rate.per_minute(5), deficit=DeficitRule.none())
    bucket, _ = _bucket(make_backend, config, 0)
    assert bucket.reserve(100).delay == pytest.approx(1200.0)
    snap = bucket.sync(0, rate=Rate.per_minute(2.5))
    assert snap.backlog == pytest.approx(2400.0)


def test_a_sync_that_raises_the_balance_moves_nothing(make_backend):
    """Bookings never move earlier: a higher figure keeps their times."""
    config = BucketConfig(300, Rate.per_minute(5), deficit=DeficitRule.none())
    bucket, _ = _bucket(make_backend, config, 0)
    assert bucket.reserve(100).delay == pytest.approx(1200.0)
    assert bucket.sync(200).backlog == pytest.approx(1200.0)


def test_a_moved_booking_can_still_be_cancelled(make_backend):
    """A booking a sync moved later is found by its id: cancelling it before its new time works."""
    config = BucketConfig(300, Rate.per_minute(5), deficit=DeficitRule.none())
    bucket, clock = _bucket(make_backend, config, 0)
    reservation = bucket.reserve(100)
    bucket.sync(-50)
    clock.advance(1500)  # past its old time (1200), before its new one (4200)
    assert reservation.cancel() is True


# -- defect 7: booking ids never reused within a key -------------------------------------------


def test_ids_continue_after_sqlite_delete(tmp_path):
    """Defect 7: SQLiteBackend.delete() then the same key at the same instant: fresh ids."""
    clock = ManualClock(1.7e9)
    backend = SQLiteBackend(tmp_path / "b.db", clock=clock)
    config = BucketConfig(10, Rate.per_second(1))
    old = TokenBucket(config, clock=clock, backend=backend, key="k").reserve(5)
    assert backend.delete("k")
    new_bucket = TokenBucket(config, clock=clock, backend=backend, key="k", tokens=5)
    new = new_bucket.reserve(5)
    assert new._state.booking_id > old._state.booking_id
    old.settle(0)  # a late settle of the old booking rewrites nothing of the new one
    assert new_bucket.snapshot().pending == 0
    assert new_bucket.try_acquire(5) is False  # 5 - 5 = 0 left; no credit from the old one
    backend.close()


@pytest.mark.redis
def test_ids_continue_after_a_redis_key_expires(redis_client, redis_prefix):
    """Defect 7: a Redis key that expired (deleted here) and is created again: ids go on."""
    from tokenbudget.redis import RedisBackend

    clock = ManualClock(1.7e9)
    backend = RedisBackend(redis_client, prefix=redis_prefix, clock=clock)
    config = BucketConfig(10, Rate.per_second(1))
    bucket = TokenBucket(config, clock=clock, backend=backend, key="k", tokens=0)
    old = bucket.reserve(5)
    clock.advance(20)
    redis_client.delete(backend.redis_key("k"))  # what the idle expiry does
    new = bucket.reserve(15 - 5)  # a new bucket at 0: waits 10 s
    assert new._state.booking_id > old._state.booking_id
    old.settle(0)
    assert bucket.snapshot().pending == 1  # the new booking still waits, untouched
    assert bucket.snapshot().backlog == pytest.approx(10.0)


# -- defect 6: what a Redis key's expiry keeps --------------------------------------------------


@pytest.mark.redis
def test_redis_expiry_covers_the_in_flight_window(redis_client, redis_prefix):
    """Defect 6: a key never expires while a booking may still be in flight."""
    from tokenbudget.redis import RedisBackend

    backend = RedisBackend(redis_client, prefix=redis_prefix)  # the server's TIME
    config = BucketConfig(10, Rate.per_second(1), in_flight=30)
    bucket = TokenBucket(config, backend=backend, key="k")
    assert bucket.try_acquire(5)
    assert redis_client.pttl(backend.redis_key("k")) >= 30_000  # 5 s of refill + 30 s


@pytest.mark.redis
def test_redis_expiry_keeps_an_adopted_rate(redis_client, redis_prefix):
    """Defect 6: a key holding a rate adopted by sync(rate=) keeps it (never idles out)."""
    from tokenbudget._redis_lua import MAX_TTL_MS
    from tokenbudget.redis import RedisBackend

    backend = RedisBackend(redis_client, prefix=redis_prefix)
    config = BucketConfig(10, Rate.per_second(10))
    bucket = TokenBucket(config, backend=backend, key="k")
    bucket.sync(10, rate=Rate.per_second(1))
    assert redis_client.pttl(backend.redis_key("k")) > MAX_TTL_MS - 60_000
    assert bucket.try_acquire(5)  # the fast path keeps it too
    assert redis_client.pttl(backend.redis_key("k")) > MAX_TTL_MS - 60_000
    bucket.sync(10, rate=Rate.per_second(10))  # back to the config's: idles out again
    assert redis_client.pttl(backend.redis_key("k")) < 60_000


# -- defects 1 and 4: clocks that step back, wall-clock magnitudes -------------------------------


def _step(clock: ManualClock, seconds: float) -> None:
    clock._now += seconds  # a wall clock (SQLite) or Redis TIME stepping (NTP, a resumed VM)


def test_a_clock_stepping_back_neither_freezes_nor_over_admits(make_backend):
    """Defect 1: at 1.7e9, try_acquire(), the clock 3600 s back: 9 of 10 tokens, admitted now.

    A backward step counts as no time elapsed (Go's TestLimiterJumpBackwards).
    """
    config = BucketConfig(10, Rate.per_second(1))
    bucket, clock = _bucket(make_backend, config, 10)
    assert bucket.try_acquire(1)
    _step(clock, -3600)
    snap = bucket.snapshot()
    assert snap.tokens == pytest.approx(9.0)
    assert bucket.reserve(1).delay == 0.0
    assert bucket.try_acquire(8)
    assert bucket.try_acquire(1) is False  # no time elapsed: nothing refilled
    clock.advance(1.0)  # time goes on from the new reading
    assert bucket.snapshot().tokens == pytest.approx(1.0)


def test_a_reading_that_raced_another_moves_no_refill_step_earlier(make_backend):
    """A reading earlier than the latest by less than ``in_flight`` raced another: no step back.

    Processes sharing a bucket through a backend that takes their clock's reading (a
    test's fast clock on Redis) read it before their operation reaches the backend: one
    reads 59.0 s, another 59.5 s and is applied first. Taken as the clock stepping back,
    the origin moved back 0.5 s, the next reading (59.6 s) counted as 60.1 s, and the
    refill step of 60 s came before the server's: a Keepa client's request met a 429.
    """
    config = BucketConfig(
        10,
        Rate.per_minute(1),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(10),
        refill_step=60,
        in_flight=30,
    )
    bucket, clock = _bucket(make_backend, config, 0)
    bucket.snapshot()  # the bucket exists: its refill steps come every 60 s from now
    clock.advance(59.5)
    assert bucket.try_acquire(1) is False
    _step(clock, -0.5)  # the reading of a process that read the clock first
    assert bucket.try_acquire(1) is False
    clock.advance(0.6)
    assert bucket.try_acquire(1) is False  # 59.6 s: the step has not come
    clock.advance(0.4)
    assert bucket.try_acquire(1)  # 60 s


def test_a_clock_stepping_back_beyond_in_flight_still_neither_freezes(make_backend):
    """A step back longer than ``in_flight`` is the clock's own: the state follows it."""
    config = BucketConfig(10, Rate.per_second(1), in_flight=30)
    bucket, clock = _bucket(make_backend, config, 10)
    assert bucket.try_acquire(1)
    _step(clock, -3600)
    assert bucket.snapshot().tokens == pytest.approx(9.0)
    clock.advance(1.0)
    assert bucket.snapshot().tokens == pytest.approx(10.0)


def test_a_clock_stepping_back_keeps_the_waits_of_pending_bookings(make_backend):
    """Defect 1: a booking due in 5 s is still due in 5 s after the clock steps back an hour."""
    config = BucketConfig(10, Rate.per_second(1))
    bucket, clock = _bucket(make_backend, config, 0)
    assert bucket.reserve(5).delay == pytest.approx(5.0)
    _step(clock, -3600)
    snap = bucket.snapshot()
    assert (snap.pending, snap.backlog) == (1, pytest.approx(5.0))
    clock.advance(5.0)
    assert bucket.snapshot().pending == 0
    assert bucket.reserve(1).delay == pytest.approx(1.0)


def test_a_clock_stepping_forward_counts_as_time(make_backend):
    """A forward step is time elapsed (the refill it implies, capped at the capacity)."""
    config = BucketConfig(10, Rate.per_second(1))
    bucket, clock = _bucket(make_backend, config, 0)
    bucket.snapshot()  # the bucket exists (SQLite and Redis create it at its first operation)
    _step(clock, 3600)
    assert bucket.snapshot().tokens == pytest.approx(10.0)


@pytest.mark.parametrize(("origin", "age"), [(0.0, 0.0), (1.7e9, 0.0), (1.7e9, 3.2e8)])
def test_small_waits_are_not_shortened_at_wall_clock_time(origin, age):
    """Defect 4: origin 1.7e9, 1e6 tokens/s, acquire(1) back to back: never more than the refill.

    Booking times were absolute doubles, rounded to 2.4e-7 s at 1.7e9: each
    1e-6 s wait lost 4.9 % to rounding. Offsets from the bucket's origin keep
    them exact; and a state *age* old (ten years: a Redis key holding an
    adopted rate never idles out) re-anchors its origin, so its offsets stay
    small (without, they are 3.2e8 s, 6e-8 s apart, and the waits are rounded).
    """
    config = BucketConfig(10, Rate.per_second(1e6))
    clock = ManualClock(origin)
    bucket = TokenBucket(config, clock=clock, tokens=0)
    if age:
        clock.advance(age)
        assert bucket.try_acquire(10)  # full after all that time: empty it again
    start = clock.now()
    n = 20_000
    for _ in range(n):
        bucket.acquire(1)
    elapsed = clock.now() - start
    tolerance = _core_clock_tolerance(start)
    assert n <= 1e6 * (elapsed + tolerance) + 1  # the refill, plus one tolerance's worth
    assert n >= 1e6 * elapsed * 0.999  # and no wait lengthened either


def _core_clock_tolerance(origin: float) -> float:
    from tokenbudget._core import time_tolerance

    return time_tolerance(origin)


# -- found by the stateful model once it drew clock steps ------------------------------------


def test_a_booking_that_waited_for_r_of_c_leaves_m_and_does_not_recharge(make_backend):
    """With the ``none`` rule a booking that waits for R(c) = c + m leaves exactly m.

    Computed in doubles, (c + m) - c is m only within the rounding of c: a
    cost of 5e4 left 0.99999 - 4e-12, below m by more than the balance
    tolerance relative to m, and entered recharge mode by rounding alone; the
    next request then waited for B (1248 s) instead of R(c) (637 s). The
    debit's tolerance is relative to the cost too.
    """
    config = BucketConfig(99990, Rate.per_second(100), burst_threshold=74810, min_threshold=0.99999)
    bucket, clock = _bucket(make_backend, config, 0, origin=0.0)
    bucket.snapshot()
    clock.advance(499.95)
    cost = 49994.500005
    assert bucket.reserve(cost).delay == pytest.approx(248.15)
    assert bucket.reserve(cost).delay == pytest.approx(499.95)  # leaves m, not recharging
    # The next waits for R(c) from m, not for the burst threshold B.
    assert bucket.reserve(13721.150276031076).delay == pytest.approx(637.1615027603109)


def test_a_late_cancel_after_the_clock_stepped_back_returns_nothing(make_backend):
    """A booking admitted now, then the clock 2 s back and 2 s forward: 2 s passed, cancel is late.

    A reservation holds its time on the backend's absolute clock; after the
    step that time maps to an offset 2 s later, and once the clock had gone
    forward 2 s again the booking looked admitted now: cancel() returned its
    whole cost (5), 2 more than a capped server that never saw the request
    holds (10 at the cap, 2 s of refill cut by it, 7 spent: 3). Found by the
    stateful model once it drew clock steps.
    """
    config = BucketConfig(10, Rate.per_second(1))
    bucket, clock = _bucket(make_backend, config, 10)
    reservation = bucket.reserve(5)
    assert reservation.delay == 0.0
    _step(clock, -2.0)
    bucket.snapshot()  # the bucket reads the clock: it stepped back
    clock.advance(2.0)  # the clock reads the booking's time again; 2 s have passed
    assert bucket.try_acquire(7)
    assert reservation.cancel() is False
    reservation.settle(0.0)  # the request was not made: what a capped server holds more
    assert bucket.snapshot().tokens == pytest.approx(3.0)
    assert bucket.try_acquire(3.5) is False
