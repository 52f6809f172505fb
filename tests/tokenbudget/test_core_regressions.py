"""Regressions found in review of the transition core (each mirrored in the Lua twin)."""

from __future__ import annotations

from tokenbudget import BucketConfig, DeficitRule, Rate
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


def _keepa_bucket():
    from tokenbudget import ManualClock, TokenBucket

    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.while_positive(),
    )
    clock = ManualClock()
    return TokenBucket(config, clock=clock, tokens=40), clock


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
