"""Hypothesis strategies shared by the test suite: valid configurations and costs."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from tokenbudget import BucketConfig, DeficitRule, Rate


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def configs(draw: st.DrawFn, *, steps: bool = False, infinite_deficit: bool = True) -> BucketConfig:
    """Any valid BucketConfig, over realistic magnitudes (rates 1e-3..1e3/s, capacity 1..1e5)."""
    capacity = draw(_floats(1.0, 1e5))
    rate = Rate.per_second(draw(_floats(1e-3, 1e3)))
    burst = draw(_floats(capacity * 1e-3, capacity))
    kind = draw(st.sampled_from(["none", "while_positive", "bounded"]))
    if kind == "while_positive":
        m = draw(_floats(min(1e-3, burst), burst))
        choices = [None, draw(_floats(0.0, capacity * 3))]
        if infinite_deficit:
            choices.append(math.inf)
        rule = DeficitRule.while_positive(draw(st.sampled_from(choices)))
    elif kind == "bounded":
        m = draw(_floats(0.0, burst))
        rule = DeficitRule.bounded(draw(_floats(0.0, capacity * 3)))
    else:
        m = draw(_floats(0.0, burst * 0.999))
        rule = DeficitRule.none()
    step = draw(st.sampled_from([None, 1.0, 60.0])) if steps else None
    return BucketConfig(
        capacity, rate, burst_threshold=burst, min_threshold=m, deficit=rule, refill_step=step
    )


def costs(config: BucketConfig) -> st.SearchStrategy[float]:
    """Costs the config can admit: from tiny to its max_cost (or 10x capacity if unbounded)."""
    top = config.max_cost if math.isfinite(config.max_cost) else config.capacity * 10
    return _floats(min(1e-3, top), top).filter(lambda c: 0 < c <= top)


def starting_balances(config: BucketConfig) -> st.SearchStrategy[float]:
    """Valid starting balances: [-max_deficit, capacity] (clipped to 3x capacity of debt)."""
    low = -min(config.max_deficit, config.capacity * 3)
    return _floats(low, config.capacity)
