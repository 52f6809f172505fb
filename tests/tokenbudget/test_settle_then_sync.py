"""The quota transport's memory transitions decide exactly as the general ones (issue 20).

``_core.book`` is a reservation's booking (``Admit(cost, inf)``) without its request
and outcome objects; ``MemoryBackend.book`` and the bucket's ``_quiet_booking`` make
it in one call, and the reservation must hold what ``reserve`` gives.

``_core.settle_then_sync`` is what an HTTP answer asks of one bucket (settle its
booking, adopt its figure) in one transition without request or outcome objects;
``MemoryBackend.settle_sync`` applies it under one hold of the lock, and
``_quiet_settle_sync`` is the bucket's door to it while nobody listens. Each must
leave the state, and say "adopted", exactly as ``apply`` of the ``Settle`` and
then of the ``Sync`` at the same time does, over the whole configuration space:
bookings pending or in flight, absorbed by an earlier sync, settled up or down,
stale and fresh stamps, stepped refills, clocks that step back.
"""

from __future__ import annotations

import logging
import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import (
    as_of_stamps,
    clock_origins,
    clock_steps,
    configs,
    costs,
    starting_balances,
)
from tokenbudget import Event, ManualClock, MemoryBackend, Reservation, TokenBucket
from tokenbudget._core import (
    Admit,
    BucketState,
    Settle,
    Sync,
    apply,
    book,
    new_state,
    settle_then_sync,
)


def _copy(state: BucketState) -> BucketState:
    return BucketState.from_dict(state.to_dict())


def _odd_tokens(config_capacity: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, -1e9, config_capacity, 2 * config_capacity]),
        st.floats(-3 * config_capacity, 3 * config_capacity, allow_nan=False),
    )


@st.composite
def answered(draw: st.DrawFn):
    """A state with bookings, one of them to settle and sync, and the answer's figures."""
    config = draw(configs(steps=True, in_flight=True))
    now = draw(clock_origins())
    state = new_state(config, draw(starting_balances(config)), now)
    booked = []
    for _ in range(draw(st.integers(1, 5))):
        now += draw(st.sampled_from([0.0, 1e-10, 0.5, draw(st.floats(0.0, 100.0))]))
        cost = draw(costs(config))
        out = apply(config, state, now, Admit(cost, draw(st.sampled_from([0.0, math.inf]))))
        if out.ok:
            booked.append((out.booking_id, cost, out.spent))
        if draw(st.booleans()):  # a sync between bookings: older ones count as absorbed
            apply(config, state, now, Sync(draw(_odd_tokens(config.capacity)), None, None, None))
    if not booked:  # every admission was refused: one that waits as long as it takes
        cost = draw(costs(config))
        out = apply(config, state, now, Admit(cost, math.inf))
        booked.append((out.booking_id, cost, out.spent))
    booking_id, cost, spent = draw(st.sampled_from(booked))
    if draw(st.booleans()):  # an earlier sync stamped: this answer may be stale
        apply(config, state, now, Sync(config.capacity / 2, None, None, draw(as_of_stamps())))
    now += draw(st.one_of(st.sampled_from([0.0, 1e-10]), clock_steps(), st.floats(0.0, 100.0)))
    actual = draw(
        st.one_of(
            st.sampled_from([0.0, cost, cost / 2, cost * 2, 5e-324]),
            st.floats(0.0, 3 * config.capacity, allow_nan=False, allow_infinity=False),
        )
    )
    tokens = draw(_odd_tokens(config.capacity))
    refill_in = draw(st.one_of(st.none(), st.sampled_from([0.0, 0.001]), st.floats(0.0, 1e4)))
    as_of = draw(as_of_stamps())
    return config, state, now, (booking_id, cost, actual, spent), tokens, refill_in, as_of


@given(answered())
def test_settle_then_sync_is_settle_and_then_sync(case):
    config, state, now, booking, tokens, refill_in, as_of = case
    booking_id, cost, actual, spent = booking
    fused, ref = _copy(state), _copy(state)
    adopted = settle_then_sync(
        config, fused, now, booking_id, cost, actual, spent, tokens, refill_in, as_of
    )
    apply(config, ref, now, Settle(booking_id, 0.0, cost, actual, spent))
    expected = apply(config, ref, now, Sync(tokens, refill_in, None, as_of)).ok
    assert adopted == expected
    assert fused.to_dict() == ref.to_dict()


def _bucket(config, clock, events=None):
    return TokenBucket(
        config,
        clock=clock,
        backend=MemoryBackend(),
        on_event=None if events is None else events.append,
    )


@given(configs(steps=True, in_flight=True), st.data())
def test_quiet_settle_sync_is_settle_and_sync(config, data):
    """Through the bucket: the same state and the same adoption as the two public calls."""
    clock = ManualClock(data.draw(clock_origins()))
    fused, ref = _bucket(config, clock), _bucket(config, clock)
    for _ in range(data.draw(st.integers(1, 6))):
        cost = data.draw(costs(config))
        clock.advance(data.draw(st.sampled_from([0.0, 0.25, 10.0])))
        mine, theirs = fused.reserve(cost), ref.reserve(cost)
        clock.advance(data.draw(st.sampled_from([0.0, 1e-10, 0.5, 30.0])))
        actual = data.draw(st.sampled_from([0.0, cost, cost / 3, cost * 1.5]))
        tokens = data.draw(_odd_tokens(config.capacity))
        refill_in = data.draw(st.one_of(st.none(), st.floats(0.0, 100.0)))
        as_of = data.draw(as_of_stamps())
        adopted = fused._quiet_settle_sync(mine._state, actual, tokens, refill_in, as_of)
        theirs.settle(actual)
        snap = ref.sync(tokens, refill_in=refill_in, as_of=as_of)
        assert adopted == snap.adopted
        assert attrs.asdict(mine._state) == attrs.asdict(theirs._state)
        assert fused.snapshot() == ref.snapshot()
        key = fused.key
        assert (
            fused._backend._states[key].to_dict() == ref._backend._states[key].to_dict()  # type: ignore[attr-defined]
        )


def test_quiet_settle_sync_declines_what_needs_the_general_path(caplog):
    """A listener, DEBUG logging, an unusual figure or a cancelled booking: None, nothing done."""
    from tokenbudget import BucketConfig, Rate

    config = BucketConfig(100, Rate.per_second(1), in_flight=60.0)
    clock = ManualClock(1000.0)
    events: list[Event] = []
    heard = _bucket(config, clock, events)
    reservation = heard.reserve(10.0)
    before = heard.snapshot()
    assert heard._quiet_settle_sync(reservation._state, 5.0, 50.0, None, None) is None
    assert heard.snapshot() == before
    quiet = _bucket(config, clock)
    reservation = quiet.reserve(10.0)
    before = quiet.snapshot()
    for actual, tokens, refill_in, as_of in [
        (5, 50.0, None, None),  # an int
        (-1.0, 50.0, None, None),
        (math.inf, 50.0, None, None),
        (5.0, math.nan, None, None),
        (5.0, 50.0, -1.0, None),
        (5.0, 50.0, None, math.inf),
    ]:
        assert (
            quiet._quiet_settle_sync(reservation._state, actual, tokens, refill_in, as_of) is None
        )
        assert quiet.snapshot() == before
    with caplog.at_level(logging.DEBUG, logger="tokenbudget"):
        assert quiet._quiet_settle_sync(reservation._state, 5.0, 50.0, None, None) is None
    assert reservation.cancel()
    assert quiet._quiet_settle_sync(reservation._state, 5.0, 50.0, None, None) is None


@pytest.mark.parametrize("stepped", [False, True])
def test_settle_sync_through_the_backend(stepped):
    """MemoryBackend.settle_sync: the backend's clock, one lock hold, the fused transition."""
    from tokenbudget import BucketConfig, Rate

    config = BucketConfig(
        100, Rate.per_second(1), in_flight=60.0, refill_step=1.0 if stepped else None
    )
    clock = ManualClock(1000.0)
    fused, ref = _bucket(config, clock), _bucket(config, clock)
    a, b = fused.reserve(30.0), ref.reserve(30.0)
    b2 = ref.reserve(90.0)  # pending behind: the general operations decide
    a2 = fused.reserve(90.0)
    clock.advance(0.5)
    assert fused._quiet_settle_sync(a._state, 12.0, 40.0, 0.5, 1.0) is True
    b.settle(12.0)
    assert ref.sync(40.0, refill_in=0.5, as_of=1.0).adopted
    assert fused.snapshot() == ref.snapshot()
    assert fused._quiet_settle_sync(a2._state, 80.0, 40.0, None, 0.5) is False  # stale
    b2.settle(80.0)
    assert not ref.sync(40.0, as_of=0.5).adopted
    assert fused.snapshot() == ref.snapshot()


@st.composite
def booked(draw: st.DrawFn):
    """A state after some bookings, syncs and settles, and a time and cost to book at."""
    config = draw(configs(steps=True, in_flight=True))
    now = draw(clock_origins())
    state = new_state(config, draw(starting_balances(config)), now)
    for _ in range(draw(st.integers(0, 5))):
        now += draw(st.one_of(st.sampled_from([0.0, 1e-10, 0.5]), st.floats(0.0, 100.0)))
        cost = draw(costs(config))
        out = apply(config, state, now, Admit(cost, draw(st.sampled_from([0.0, math.inf]))))
        if draw(st.booleans()):
            apply(config, state, now, Sync(draw(_odd_tokens(config.capacity)), None, None, None))
        elif out.ok and draw(st.booleans()):
            apply(config, state, now, Settle(out.booking_id, 0.0, cost, cost / 2, out.spent))
    now += draw(st.one_of(st.sampled_from([0.0, 1e-10]), clock_steps(), st.floats(0.0, 100.0)))
    return config, state, now, draw(costs(config))


@given(booked())
def test_book_is_apply_of_an_admission_that_always_goes(case):
    config, state, now, cost = case
    fast, ref = _copy(state), _copy(state)
    out = apply(config, ref, now, Admit(cost, math.inf))
    assert book(config, fast, now, cost) == (out.delay, out.booking_id, out.spent, out.tokens)
    assert fast.to_dict() == ref.to_dict()


@given(configs(steps=True, in_flight=True), st.data())
def test_quiet_booking_is_what_reserve_books(config, data):
    clock = ManualClock(data.draw(clock_origins()))
    fast, ref = _bucket(config, clock), _bucket(config, clock)
    for _ in range(data.draw(st.integers(1, 6))):
        cost = data.draw(costs(config))
        clock.advance(data.draw(st.sampled_from([0.0, 1e-10, 0.5, 30.0])))
        state = fast._quiet_booking(cost)
        theirs = ref.reserve(cost)
        assert state is not None
        assert attrs.asdict(state) == attrs.asdict(theirs._state)
        assert fast.snapshot() == ref.snapshot()
        if data.draw(st.booleans()):
            actual = data.draw(st.sampled_from([0.0, cost, cost / 3]))
            Reservation(fast, state).settle(actual)
            theirs.settle(actual)


def test_quiet_booking_declines_what_needs_reserve(caplog):
    from tokenbudget import BucketConfig, Rate

    config = BucketConfig(100, Rate.per_second(1), in_flight=60.0)
    clock = ManualClock(1000.0)
    heard = _bucket(config, clock, [])
    assert heard._quiet_booking(1.0) is None
    quiet = _bucket(config, clock)
    before = quiet.snapshot()
    for cost in (1, 0.0, -1.0, math.nan, math.inf, 101.0):
        assert quiet._quiet_booking(cost) is None
    with caplog.at_level(logging.DEBUG, logger="tokenbudget"):
        assert quiet._quiet_booking(1.0) is None
    assert quiet.snapshot() == before
