"""The try_acquire hot path decides exactly as the reference transition does."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import weakref

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import configs, costs, starting_balances
from tokenbudget import (
    AsyncTokenBucket,
    BucketConfig,
    CostExceedsCapacity,
    DeficitRule,
    ManualClock,
    Rate,
    TokenBucket,
)
from tokenbudget._core import Admit, BucketState, admitter, apply, new_state


def _copy(state: BucketState) -> BucketState:
    return BucketState.from_dict(state.to_dict())


def _undecided(cost: float) -> None:
    raise AssertionError(f"the admitter did not decide {cost!r}")


def _admitter(config: BucketConfig, state: BucketState, clock: ManualClock):
    return admitter(
        config,
        state=state,
        now=clock.now,
        lock=threading.Lock(),
        fallback=_undecided,
    )


@st.composite
def histories(
    draw: st.DrawFn,
) -> tuple[BucketConfig, BucketState, float, list[tuple[float, float]]]:
    """A config, a state after some bookings, and then (time step, cost) pairs to try."""
    config = draw(configs(steps=True))
    now = draw(st.floats(0.0, 1e4))
    state = new_state(config, draw(starting_balances(config)), now)
    for _ in range(draw(st.integers(0, 4))):
        now += draw(st.sampled_from([0.0, 1e-10, draw(st.floats(0.0, 1e3))]))
        apply(
            config, state, now, Admit(draw(costs(config)), draw(st.sampled_from([0.0, math.inf])))
        )
    steps = draw(
        st.lists(
            st.tuples(st.sampled_from([0.0, 1e-10, draw(st.floats(0.0, 1e3))]), costs(config)),
            min_size=1,
            max_size=8,
        )
    )
    return config, state, now, steps


@given(histories())
def test_admitter_matches_admit(history):
    """admitter(config, ...) admits, refuses and changes the state exactly as admit(max_wait=0)."""
    config, state, now, steps = history
    fast_state, ref_state = _copy(state), _copy(state)
    clock = ManualClock(now)
    decide = _admitter(config, fast_state, clock)
    for step, cost in steps:
        clock.advance(step)
        now = clock.now()
        assert decide(cost) == apply(config, ref_state, now, Admit(cost, 0.0)).ok
        assert fast_state.to_dict() == ref_state.to_dict()


@given(configs(steps=True), st.data())
def test_try_acquire_same_with_and_without_listener(config, data):
    """try_acquire decides the same whether or not an event hook forces the full path."""
    clock_fast, clock_full = ManualClock(), ManualClock()
    fast = TokenBucket(config, clock=clock_fast)
    full = TokenBucket(config, clock=clock_full, on_event=lambda _event: None)
    for _ in range(data.draw(st.integers(1, 10))):
        cost = data.draw(costs(config))
        assert fast.try_acquire(cost) == full.try_acquire(cost)
        assert fast.snapshot() == full.snapshot()
        step = data.draw(st.floats(0.0, 100.0))
        clock_fast.advance(step)
        clock_full.advance(step)


class _Tokens(float):
    """A float subclass (as numpy's float64 is)."""


def test_try_acquire_checks_unusual_costs():
    """Costs the hot path does not take are still checked and admitted as before."""
    config = BucketConfig(
        10, Rate.per_second(1), min_threshold=1, deficit=DeficitRule.while_positive(math.inf)
    )
    bucket = TokenBucket(config, clock=ManualClock())
    assert bucket.try_acquire(_Tokens(2.0))
    with pytest.raises(TypeError):
        bucket.try_acquire(True)
    with pytest.raises(CostExceedsCapacity):
        bucket.try_acquire(math.inf)
    with pytest.raises(ValueError, match="> 0"):
        bucket.try_acquire(math.nan)
    with pytest.raises(ValueError, match="> 0"):
        bucket.try_acquire(0)
    assert bucket.snapshot().tokens == 8.0


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_debug_logging_switched_on_after_the_hot_path_ran_is_seen_at_once():
    """The hot path reads the logger's cached answer first: a level set later counts at once.

    With DEBUG off the first calls take the hot path (the logger then caches
    False for DEBUG); DEBUG switched on (which empties the cache), the next
    call of either bucket is logged; switched off again, nothing is. (Levels
    are set by hand: pytest's caplog asks the logger itself, filling its cache.)
    """
    config = BucketConfig(10, Rate.per_second(1))
    bucket = TokenBucket(config, clock=ManualClock())
    abucket = AsyncTokenBucket(config, clock=ManualClock())
    logger = logging.getLogger("tokenbudget")
    records = _Records()
    level = logger.level
    logger.addHandler(records)
    try:
        logger.setLevel(logging.INFO)
        assert bucket.try_acquire(1)
        assert asyncio.run(abucket.try_acquire(1))
        logger.setLevel(logging.DEBUG)
        assert bucket.try_acquire(2)
        assert asyncio.run(abucket.try_acquire(2.0))
        logger.setLevel(logging.INFO)
        assert bucket.try_acquire(3)
        assert asyncio.run(abucket.try_acquire(3))
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    assert [m.split(" ")[:2] for m in records.messages] == [["admitted", "key=default"]] * 2
    assert all(" cost=2 " in m for m in records.messages)
    assert bucket.snapshot().tokens == asyncio.run(abucket.snapshot()).tokens == 4.0


@pytest.mark.parametrize("shortfall", [0.0, 1e-13, 1e-10, 2e-9, 5e-8, 1e-7, 3e-7, 1e-6])
@pytest.mark.parametrize(
    ("capacity", "rate", "rule"),
    [
        (10, 1.0, DeficitRule.none()),
        (1e5, 1e-3, DeficitRule.none()),
        (1e5, 1e-3, DeficitRule.bounded(3e5)),
        (1e5, 1e3, DeficitRule.while_positive()),
    ],
)
def test_admitter_matches_admit_at_the_tolerance(shortfall, capacity, rate, rule):
    """Balances a hair below the required one decide as the reference does."""
    config = BucketConfig(capacity, Rate.per_second(rate), min_threshold=1, deficit=rule)
    cost = config.max_cost / 2
    start = config.required_balance(cost) - shortfall
    fast_state = new_state(config, start, 0.0)
    ref_state = new_state(config, start, 0.0)
    decide = _admitter(config, fast_state, ManualClock())
    assert decide(cost) == apply(config, ref_state, 0.0, Admit(cost, 0.0)).ok
    assert fast_state.to_dict() == ref_state.to_dict()


@given(configs(steps=True), st.data())
def test_acquire_same_with_and_without_listener(config, data):
    """acquire waits and books the same whether or not an event hook forces the full path."""
    fast = TokenBucket(config, clock=ManualClock())
    full = TokenBucket(config, clock=ManualClock(), on_event=lambda _event: None)
    for _ in range(data.draw(st.integers(1, 6))):
        cost = data.draw(costs(config))
        assert fast.acquire(cost) == full.acquire(cost)
        assert fast.snapshot() == full.snapshot()


@given(configs(steps=True), st.data())
def test_async_bucket_same_with_and_without_listener(config, data):
    """AsyncTokenBucket's try_acquire and acquire decide as with a listener."""
    fast = AsyncTokenBucket(config, clock=ManualClock())
    full = AsyncTokenBucket(config, clock=ManualClock(), on_event=lambda _event: None)
    calls = data.draw(st.lists(st.tuples(st.booleans(), costs(config)), min_size=1, max_size=6))

    async def run(bucket: AsyncTokenBucket) -> list[object]:
        results: list[object] = []
        for is_try, cost in calls:
            results.append(await (bucket.try_acquire(cost) if is_try else bucket.acquire(cost)))
            results.append(await bucket.snapshot())
        return results

    assert asyncio.run(run(fast)) == asyncio.run(run(full))


@given(configs(steps=True), st.data())
def test_admitter_takes_exactly_the_int_costs_check_cost_accepts(config, data):
    """An int cost in (0, max_cost] is decided as its float; any other goes to the fallback."""
    top = math.ceil(min(config.max_cost, config.capacity * 10))
    cost = data.draw(st.integers(-2, top + 2) | st.sampled_from([10**400, -(10**400)]))
    state = new_state(config, data.draw(starting_balances(config)), 0.0)
    ref_state = _copy(state)
    handed: list[float] = []

    def fallback(cost: float) -> str:
        handed.append(cost)
        return "fallback"

    clock = ManualClock()
    decide = admitter(
        config,
        state=state,
        now=clock.now,
        lock=threading.Lock(),
        fallback=fallback,
    )
    decision = decide(cost)
    try:
        checked = config.check_cost(cost)
    except (ValueError, TypeError):
        assert decision == "fallback"
        assert handed == [cost]
    else:
        assert decision == apply(config, ref_state, 0.0, Admit(checked, 0.0)).ok
        assert handed == []
    assert state.to_dict() == ref_state.to_dict()


def test_the_hot_path_is_the_bucket_s_own_try_acquire():
    """On a memory bucket nobody listens to, bucket.try_acquire is one function, not a method."""
    bucket = TokenBucket(BucketConfig(10, Rate.per_second(1)), clock=ManualClock())
    listened = TokenBucket(
        BucketConfig(10, Rate.per_second(1)), clock=ManualClock(), on_event=lambda _event: None
    )
    assert type(bucket.try_acquire).__name__ == "function"
    assert bucket.try_acquire.__name__ == "try_acquire"
    assert bucket.try_acquire.__doc__ == TokenBucket.try_acquire.__doc__
    assert type(listened.try_acquire).__name__ == "method"


def test_the_hot_path_takes_the_default_cost():
    """bucket.try_acquire() takes one token, on the hot path as on the method."""
    bucket = TokenBucket(BucketConfig(10, Rate.per_second(1)), clock=ManualClock())
    assert bucket.try_acquire()
    assert TokenBucket.try_acquire(bucket)
    assert bucket.snapshot().tokens == 8.0


@given(configs(steps=True), st.data())
def test_the_hot_path_decides_as_the_method(config, data):
    """bucket.try_acquire (the closure) and TokenBucket.try_acquire (the method) agree."""
    clock_hot, clock_method = ManualClock(), ManualClock()
    hot = TokenBucket(config, clock=clock_hot)
    method = TokenBucket(config, clock=clock_method)
    largest_int = math.floor(min(config.max_cost, 3.0))
    drawn = costs(config) if largest_int < 1 else costs(config) | st.integers(1, largest_int)
    for _ in range(data.draw(st.integers(1, 10))):
        cost = data.draw(drawn)
        assert hot.try_acquire(cost) == TokenBucket.try_acquire(method, cost)
        assert hot.snapshot() == method.snapshot()
        step = data.draw(st.floats(0.0, 100.0))
        clock_hot.advance(step)
        clock_method.advance(step)


def test_a_subclass_override_of_try_acquire_is_kept():
    """A subclass that overrides try_acquire gets its override, not the hot path."""
    calls: list[float] = []

    class Counting(TokenBucket):
        def try_acquire(self, cost: float = 1) -> bool:
            calls.append(cost)
            return super().try_acquire(cost)

    bucket = Counting(BucketConfig(10, Rate.per_second(1)), clock=ManualClock())
    assert bucket.try_acquire(3)
    assert calls == [3]
    assert bucket.snapshot().tokens == 7.0


def test_the_hot_path_keeps_no_reference_to_its_bucket():
    """A bucket is freed as soon as it is dropped: its hot path does not refer back to it."""

    class Referable(TokenBucket):  # no __slots__: weakly referable
        pass

    bucket = Referable(BucketConfig(10, Rate.per_second(1)), clock=ManualClock())
    hot = bucket.try_acquire
    assert type(hot).__name__ == "function"
    ref = weakref.ref(bucket)
    gc.disable()
    try:
        del bucket
        assert ref() is None
    finally:
        gc.enable()
    assert hot(2)  # the closure still works on the bucket's state
