"""Regressions found in review of the transition core (each mirrored in the Lua twin)."""

from __future__ import annotations

import pytest

from tokenbudget import (
    BucketConfig,
    DeficitRule,
    ManualClock,
    MemoryBackend,
    Rate,
    TokenBucket,
    _core,
)
from tokenbudget._core import Admit, Cancel, admit, cancel, new_state


def test_cancel_returns_cost_when_recharge_ended_in_the_same_call():
    """Cancelling the tail booking gives its cost back even when the refill just ended recharge mode."""
    config = BucketConfig(
        10, Rate.per_second(2e9), burst_threshold=5, min_threshold=5, deficit=DeficitRule.bounded(5)
    )
    state = new_state(config, 10.0, 0.0)
    booked = admit(config, state, 0.0, Admit(6.0, 0.0))
    assert booked.ok
    assert state.recharging  # 10 - 6 = 4 < min_threshold
    out = cancel(config, state, 7e-10, Cancel(booked.booking_id, 0.0, 6.0))
    assert out.ok
    assert out.tokens == 10.0  # 4 + 1.4 refilled + 6 returned, capped at capacity


def _keepa_bucket(tokens: float = 40, refill_step: float | None = None):
    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.while_positive(),
        refill_step=refill_step,
    )
    clock = ManualClock()
    return TokenBucket(config, clock=clock, tokens=tokens), clock


def test_snapshot_is_recharging_while_a_booking_waits_for_the_burst_threshold():
    """A booking that waits in recharge mode leaves the bucket in recharge mode until its time."""
    bucket, clock = _keepa_bucket()
    assert bucket.try_acquire(100)  # 40 - 100 = -60: recharge mode
    reservation = bucket.reserve(1)  # waits until the balance is back at 40, leaves 39
    assert reservation.delay == 1200.0
    snap = bucket.snapshot()
    assert (snap.recharging, snap.pending) == (True, 1)
    clock.advance(600)
    assert bucket.snapshot().recharging is True
    clock.advance(600)
    snap = bucket.snapshot()
    assert (snap.recharging, snap.pending, snap.tokens) == (False, 0, 39.0)


def test_snapshot_is_not_recharging_while_a_booking_waits_outside_recharge_mode():
    """A booking that waits only for its own required balance does not make the bucket recharge."""
    bucket, _ = _keepa_bucket()
    assert bucket.try_acquire(30)  # 40 - 30 = 10, above min_threshold
    reservation = bucket.reserve(350)  # needs 50 (350 - 300 of deficit): waits, no recharge mode
    assert reservation.delay > 0
    assert bucket.snapshot().recharging is False


# -- issue 8: the reproducers, one test each ------------------------------------------------


def test_stepped_refill_is_not_credited_twice_at_wall_clock_time():
    """Defect 1: at clock 1.7e9 with 0.1 s steps, acquire(15) x 10,000 admits no more than the refill."""
    config = BucketConfig(300, Rate.per_second(50), refill_step=0.1)
    clock = ManualClock(1.7e9)
    bucket = TokenBucket(config, clock=clock, tokens=0)
    start = clock.now()
    for _ in range(10_000):
        bucket.acquire(15)
    refill = 50 * (clock.now() - start) + 5  # the refill of the elapsed steps (+ one step)
    assert refill >= 150_000


def test_stepped_booking_time_is_one_step_at_wall_clock_time():
    """Defect 1: a booked step is counted once: 0.05 s after a reserve(15)'s time the balance is 0."""
    config = BucketConfig(300, Rate.per_second(50), refill_step=0.1)
    clock = ManualClock(1.7e9)
    bucket = TokenBucket(config, clock=clock, tokens=0)
    reservation = bucket.reserve(15)
    clock.advance(reservation.delay + 0.05)
    assert bucket.snapshot().tokens == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("step", [0.1, 0.3, 1 / 3, 7.3, 60.0])
@pytest.mark.parametrize("origin", [0.0, 1e7, 1.7e9, 2e9])
def test_step_times_are_counted_exactly_at_any_clock_magnitude(step, origin):
    """Defect 1: every booked step time counts as exactly its step, whatever the clock's magnitude."""
    config = BucketConfig(10, Rate(1, step), refill_step=step)
    clock = ManualClock(origin)
    bucket = TokenBucket(config, clock=clock, tokens=0)
    for _ in range(50):
        reservation = bucket.reserve(1)
        clock.advance(reservation.delay)
        assert bucket.snapshot().tokens == pytest.approx(0.0, abs=1e-9)


def test_cancelling_an_earlier_booking_credits_no_more_than_a_capped_server():
    """Defect 2: reserve(600) twice, cancel the first: at the second's time the bucket is at -300."""
    bucket, clock = _keepa_bucket(tokens=1)
    a = bucket.reserve(600)
    b = bucket.reserve(600)
    assert a.cancel()
    clock.advance(b.delay)
    assert bucket.snapshot().tokens == pytest.approx(-300.0)
    assert bucket.try_acquire(600) is False


@pytest.mark.parametrize(
    "rule", [DeficitRule.none(), DeficitRule.while_positive(), DeficitRule.bounded(300)]
)
def test_cancel_cycles_never_admit_what_a_capped_server_refuses(rule):
    """Defect 2, all three rules: reserve twice, cancel the first; at the second's time the
    bucket refuses max_cost, as a capped server that saw only the second would (every cycle)."""
    config = BucketConfig(
        300, Rate.per_minute(5), burst_threshold=40, min_threshold=1, deficit=rule
    )
    clock = ManualClock()
    bucket = TokenBucket(config, clock=clock, tokens=1)
    cost = config.max_cost
    for _ in range(10):
        first = bucket.reserve(cost)
        second = bucket.reserve(cost)
        assert first.cancel()
        clock.advance(second.delay)
        assert bucket.try_acquire(cost) is False


def test_settling_an_earlier_booking_lower_credits_no_more_than_a_capped_server():
    """Defect 2: settling an earlier booking to 0 credits only what the capacity leaves room for."""
    bucket, clock = _keepa_bucket(tokens=1)
    a = bucket.reserve(600)
    b = bucket.reserve(600)
    a.settle(0)
    clock.advance(b.delay)
    assert bucket.snapshot().tokens == pytest.approx(-300.0)


@pytest.mark.parametrize("origin", [0.0, 1.7e9])
def test_tiny_costs_at_a_high_rate_are_not_free(origin):
    """Defect 3: try_acquire(1) on a frozen clock at 1e9 tokens/s admits at most the refill of the tolerance."""
    config = BucketConfig(1e9, Rate.per_second(1e9))
    clock = ManualClock(origin)
    bucket = TokenBucket(config, clock=clock, tokens=0)
    admitted = sum(bucket.try_acquire(1) for _ in range(20_000))
    assert admitted <= 1e9 * _core.time_tolerance(origin) + 1
    assert bucket.snapshot().tokens <= 0.0


def test_tiny_reservations_at_a_high_rate_move_the_tail():
    """Defect 3: reserve(1) on a frozen clock at 1e9 tokens/s books later and later (the slow path too)."""
    config = BucketConfig(1e9, Rate.per_second(1e9))
    bucket = TokenBucket(config, clock=ManualClock(), tokens=0, on_event=lambda _e: None)
    delays = [bucket.reserve(1).delay for _ in range(100)]
    assert delays[-1] == pytest.approx(100e-9)


def test_stepped_cancel_at_the_cap_returns_the_balance_before():
    """Defect 6: a stepped reserve(300) then cancel at 298 tokens leaves 298 (no double cap cut)."""
    config = BucketConfig(300, Rate.per_minute(5), refill_step=60)
    bucket = TokenBucket(config, clock=ManualClock(), tokens=298)
    assert bucket.reserve(300).cancel()
    assert bucket.snapshot().tokens == 298.0


def test_cancel_with_a_step_larger_than_the_capacity():
    """Defect 6: with a step of 1000 tokens into a capacity of 100, a cancel leaves 0, not -900."""
    config = BucketConfig(100, Rate.per_second(1000), refill_step=1)
    bucket = TokenBucket(config, clock=ManualClock(), tokens=0)
    assert bucket.reserve(100).cancel()
    snap = bucket.snapshot()
    assert (snap.tokens, snap.recharging) == (0.0, False)


def test_cancel_after_a_sync_does_not_credit_what_the_server_counted():
    """Defect 6: sync(0) then cancel() of a booking admitted before it credits nothing."""
    bucket = TokenBucket(BucketConfig(10, Rate.per_second(1)), clock=ManualClock())
    reservation = bucket.reserve(5)
    bucket.sync(0)
    assert reservation.cancel() is False
    assert bucket.snapshot().tokens == 0.0


def test_sync_refill_in_beyond_a_step_never_runs_ahead_of_the_server():
    """Defect 6: sync(10, refill_in=90) with 60 s steps: 31 s later the bucket shows 10, not 15."""
    config = BucketConfig(300, Rate.per_minute(5), refill_step=60)
    clock = ManualClock()
    bucket = TokenBucket(config, clock=clock, tokens=0)
    bucket.sync(10, refill_in=90)
    clock.advance(31)
    assert bucket.snapshot().tokens <= 10.0
    clock.advance(59)
    assert bucket.snapshot().tokens == 15.0


def test_keepa_refill_in_just_over_a_step_invents_no_step():
    """Defect 6: sync(-3, refill_in=60.001) right after a step: no step 1 ms later."""
    bucket, clock = _keepa_bucket(tokens=0, refill_step=60)
    clock.advance(12.3456)
    bucket.sync(-3, refill_in=60.001)
    clock.advance(0.002)
    assert bucket.snapshot().tokens <= -3.0
    assert bucket.reserve(5).delay >= 59.9


def test_in_flight_bookings_are_subtracted_by_sync():
    """Defect 8a: a sync subtracts bookings admitted but not answered; settle ends that."""
    config = BucketConfig(300, Rate.per_minute(5), in_flight=30)
    clock = ManualClock()
    bucket = TokenBucket(config, clock=clock, tokens=100)
    reservation = bucket.reserve(50)  # admitted now, its answer still on the way
    assert bucket.sync(100).tokens == 50.0  # the server has not counted it yet
    reservation.settle(50)  # answered: the next sync's figure has it
    assert bucket.sync(50).tokens == 50.0


def test_in_flight_window_ends():
    """Defect 8a: after the in-flight window a booking is taken as counted by the server."""
    config = BucketConfig(300, Rate.per_second(1e-9), in_flight=30)
    clock = ManualClock()
    bucket = TokenBucket(config, clock=clock, tokens=100)
    assert bucket.try_acquire(50)
    clock.advance(29)
    assert bucket.sync(100).tokens == pytest.approx(50.0)
    clock.advance(2)
    assert bucket.sync(100).tokens == pytest.approx(100.0)


def test_in_flight_bookings_of_other_processes_are_subtracted():
    """Defect 8a: two buckets on one key: a sync by one subtracts what the other has in flight."""
    config = BucketConfig(300, Rate.per_minute(5), in_flight=60)
    clock = ManualClock()
    backend = MemoryBackend()
    one = TokenBucket(config, clock=clock, tokens=100, backend=backend, key="acct")
    two = TokenBucket(config, clock=clock, tokens=100, backend=backend, key="acct")
    assert one.try_acquire(30)
    assert two.try_acquire(30)
    assert one.sync(70).tokens == pytest.approx(10.0)  # the server counted one request of two


def test_a_late_cancel_keeps_the_booking_in_flight():
    """Issue 18, defect 3: a cancel after the booking's time returns nothing and changes nothing:
    the booking stands, and a sync still subtracts it while it may be on the wire."""
    config = BucketConfig(300, Rate.per_second(1e-9), in_flight=60)
    clock = ManualClock()
    bucket = TokenBucket(config, clock=clock, tokens=100)
    reservation = bucket.reserve(50)
    clock.advance(1)
    assert reservation.cancel() is False
    assert bucket.sync(100).tokens == pytest.approx(50.0)
