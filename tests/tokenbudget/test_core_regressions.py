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
