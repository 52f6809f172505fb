"""Hypothesis strategies shared by the test suite: valid configurations and costs."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from tokenbudget import BucketConfig, DeficitRule, Rate


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


#: Step lengths that are not round numbers (they broke step counting at wall-clock times).
STEPS = (0.1, 0.3, 1 / 3, 1.0, 7.3, 60.0)


def rates() -> st.SearchStrategy[float]:
    """Refill rates from 1e-6 to 1e9 tokens per second, spread evenly over the decades."""
    return st.floats(-6.0, 9.0).map(lambda e: 10.0**e)


@st.composite
def configs(
    draw: st.DrawFn, *, steps: bool = False, infinite_deficit: bool = True, in_flight: bool = False
) -> BucketConfig:
    """Any valid BucketConfig: capacity 1..1e5, rates 1e-6..1e9/s, odd step lengths."""
    capacity = draw(_floats(1.0, 1e5))
    rate = Rate.per_second(draw(rates()))
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
    step = None
    if steps:
        step = draw(st.one_of(st.none(), st.sampled_from(STEPS), _floats(0.05, 100.0)))
    window = draw(st.sampled_from([0.0, 30.0])) if in_flight else 0.0
    return BucketConfig(
        capacity,
        rate,
        burst_threshold=burst,
        min_threshold=m,
        deficit=rule,
        refill_step=step,
        in_flight=window,
    )


def clock_origins() -> st.SearchStrategy[float]:
    """Where a clock starts: 0, a monotonic clock's magnitude, a wall clock's (Redis TIME)."""
    return st.one_of(st.just(0.0), _floats(1e6, 1e7), _floats(1.7e9, 2e9))


def costs(config: BucketConfig) -> st.SearchStrategy[float]:
    """Costs the config can admit: from tiny to its max_cost (or 10x capacity if unbounded)."""
    top = config.max_cost if math.isfinite(config.max_cost) else config.capacity * 10
    return _floats(min(1e-3, top), top).filter(lambda c: 0 < c <= top)


def starting_balances(config: BucketConfig) -> st.SearchStrategy[float]:
    """Valid starting balances: [-max_deficit, capacity] (clipped to 3x capacity of debt)."""
    low = -min(config.max_deficit, config.capacity * 3)
    return _floats(low, config.capacity)


def as_of_stamps() -> st.SearchStrategy[float | None]:
    """Server stamps for ``sync(as_of=)``: none, close ones (equal, older: stale), far-future."""
    return st.one_of(st.none(), st.sampled_from([0.0, 1.0, 1.5, 2.0, 1e12]), _floats(0.0, 3.0))


def clock_steps() -> st.SearchStrategy[float]:
    """How a real clock jumps (an NTP correction, a resumed VM): back or forward, small or large.

    1e6 s forward is beyond the core's re-anchoring span (``_core.REANCHOR``, 2**19 s).
    """
    magnitudes = st.sampled_from([1e-7, 1e-3, 0.5, 60.0, 3600.0, 1e6]) | _floats(0.0, 7200.0)
    return st.tuples(st.sampled_from([-1.0, 1.0]), magnitudes).map(lambda p: p[0] * p[1])


def step_clock(clock: object, seconds: float) -> None:
    """Move a ManualClock by *seconds*, backwards too (a clock that steps)."""
    clock._now += seconds  # type: ignore[attr-defined]
