"""TokenBucket: SPEC §2 worked numbers, booking, reservations, sync, snapshots, events."""

from __future__ import annotations

import logging
import math
import threading

import pytest

from tokenbudget import (
    AcquireTimeout,
    BucketConfig,
    CostExceedsCapacity,
    DeficitRule,
    Event,
    ManualClock,
    MemoryBackend,
    MonotonicClock,
    Rate,
    ReservationError,
    TokenBucket,
)


KEEPA = Rate.per_minute(5)  # 1/12 token per second


def incident(rule: DeficitRule | None = None, **kwargs: object) -> BucketConfig:
    """The incident's account: capacity 300, 5/min, burst 40, min 1."""
    return BucketConfig(
        300,
        KEEPA,
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.none() if rule is None else rule,
        **kwargs,  # type: ignore[arg-type]
    )


def simple(capacity: float = 10, rate: float = 1, **kwargs: object) -> BucketConfig:
    """A small bucket refilling *rate* tokens per second."""
    return BucketConfig(capacity, Rate.per_second(rate), **kwargs)  # type: ignore[arg-type]


def bucket_of(config: BucketConfig, tokens: float | None = None, **kwargs: object) -> TokenBucket:
    return TokenBucket(config, clock=ManualClock(), tokens=tokens, **kwargs)  # type: ignore[arg-type]


def tokens_of(bucket: TokenBucket) -> float:
    return bucket.snapshot().tokens


# -- SPEC §2 worked numbers ---------------------------------------------------------------


def test_strict_try_acquire_100_refused_at_40():
    """none(): try_acquire(100) at balance 40 is False and changes nothing."""
    bucket = bucket_of(incident(), tokens=40)
    assert bucket.try_acquire(100) is False
    assert tokens_of(bucket) == 40.0


def test_strict_acquire_100_waits_732_s():
    """none(): acquire(100) at balance 40 waits (101 - 40) / (5/60) = 732 s, leaving 1."""
    bucket = bucket_of(incident(), tokens=40)
    assert bucket.acquire(100) == pytest.approx(732.0, abs=1e-9)
    assert bucket.clock.now() == pytest.approx(732.0, abs=1e-9)
    snap = bucket.snapshot()
    assert snap.tokens == pytest.approx(1.0, abs=1e-9)
    assert snap.recharging is False


def test_strict_try_acquire_25_leaves_15():
    """none(): try_acquire(25) at balance 40 is True and leaves 15."""
    bucket = bucket_of(incident(), tokens=40)
    assert bucket.try_acquire(25) is True
    assert tokens_of(bucket) == 15.0


def test_while_positive_try_acquire_100_leaves_minus_60_recharging():
    """while_positive(): try_acquire(100) at 40 is True and leaves -60 in recharge mode."""
    bucket = bucket_of(incident(DeficitRule.while_positive()), tokens=40)
    assert bucket.try_acquire(100) is True
    snap = bucket.snapshot()
    assert snap.tokens == -60.0
    assert snap.recharging is True


def test_while_positive_next_request_waits_1200_s():
    """while_positive(): after going to -60, the next request waits (40 + 60) / (5/60) = 1200 s."""
    bucket = bucket_of(incident(DeficitRule.while_positive()), tokens=40)
    bucket.try_acquire(100)
    assert bucket.try_acquire(1) is False
    assert bucket.acquire(1) == pytest.approx(1200.0, abs=1e-9)


def test_bounded_rule_spends_below_min_threshold():
    """bounded(d): m does not limit spending; the balance may go down to -d."""
    bucket = bucket_of(incident(DeficitRule.bounded(50)), tokens=40)
    assert bucket.try_acquire(90) is True
    assert tokens_of(bucket) == -50.0
    assert bucket.try_acquire(0.001) is False


# -- try_acquire / acquire / reserve / timeout --------------------------------------------


def test_try_acquire_changes_nothing_when_refused():
    """A refused try_acquire leaves the balance, the clock and the backlog alone."""
    bucket = bucket_of(simple(), tokens=3)
    assert bucket.try_acquire(5) is False
    snap = bucket.snapshot()
    assert (snap.tokens, snap.pending, snap.backlog, bucket.clock.now()) == (3.0, 0, 0.0, 0.0)


def test_acquire_now_returns_zero():
    """acquire admitted at once returns 0.0 and does not sleep."""
    bucket = bucket_of(simple())
    assert bucket.acquire(4) == 0.0
    assert bucket.clock.now() == 0.0


def test_acquire_sleeps_the_delay():
    """acquire sleeps exactly the booked delay and returns it."""
    bucket = bucket_of(simple(), tokens=0)
    assert bucket.acquire(4) == pytest.approx(4.0)
    assert bucket.clock.now() == pytest.approx(4.0)
    assert tokens_of(bucket) == pytest.approx(0.0, abs=1e-9)


def test_acquire_timeout_raises_with_delay_and_books_nothing():
    """acquire(timeout=) raises AcquireTimeout at once, carrying the delay, booking nothing."""
    bucket = bucket_of(incident(), tokens=40)
    with pytest.raises(AcquireTimeout) as info:
        bucket.acquire(100, timeout=60)
    assert info.value.delay == pytest.approx(732.0)
    assert (info.value.cost, info.value.timeout) == (100.0, 60.0)
    assert bucket.clock.now() == 0.0
    snap = bucket.snapshot()
    assert (snap.tokens, snap.pending, snap.booked) == (40.0, 0, 0.0)


def test_acquire_timeout_delay_is_exact():
    """Coming back after the timeout's reported delay, the request is admitted at once."""
    bucket = bucket_of(incident(), tokens=40)
    with pytest.raises(AcquireTimeout) as info:
        bucket.acquire(100, timeout=0)
    bucket.clock.advance(info.value.delay)
    assert bucket.try_acquire(100) is True


def test_acquire_within_timeout():
    """acquire with a timeout at least the delay books and sleeps."""
    bucket = bucket_of(incident(), tokens=40)
    assert bucket.acquire(100, timeout=732) == pytest.approx(732.0)


def test_acquire_timeout_zero_admits_only_now():
    """timeout=0 admits a request only when it is admitted now."""
    bucket = bucket_of(simple(), tokens=5)
    assert bucket.acquire(5, timeout=0) == 0.0
    with pytest.raises(AcquireTimeout):
        bucket.acquire(1, timeout=0)


def test_acquire_timeout_infinite_means_no_timeout():
    """timeout=math.inf waits as long as needed, like None."""
    bucket = bucket_of(simple(), tokens=0)
    assert bucket.acquire(3, timeout=math.inf) == pytest.approx(3.0)


@pytest.mark.parametrize("timeout", [-1, math.nan])
def test_acquire_bad_timeout(timeout):
    """A negative or NaN timeout raises ValueError naming it, before any booking."""
    bucket = bucket_of(simple())
    with pytest.raises(ValueError, match="timeout"):
        bucket.acquire(1, timeout=timeout)
    assert tokens_of(bucket) == 10.0


def test_reserve_books_at_once():
    """reserve books at once and reports the delay; the balance goes negative meanwhile."""
    bucket = bucket_of(simple(), tokens=2)
    reservation = bucket.reserve(6)
    assert reservation.delay == pytest.approx(4.0)
    assert reservation.time == pytest.approx(4.0)
    assert reservation.cost == 6.0
    assert bucket.clock.now() == 0.0
    snap = bucket.snapshot()
    assert snap.tokens == pytest.approx(-4.0)
    assert snap.pending == 1


def test_reserve_now_has_zero_delay():
    """A reservation admitted now has delay 0 and nothing pending."""
    bucket = bucket_of(simple())
    reservation = bucket.reserve(3)
    assert reservation.delay == 0.0
    assert bucket.snapshot().pending == 0


def test_sleeping_exactly_the_delay_admits():
    """After sleeping exactly a reported delay, try_acquire of the same cost is True."""
    bucket = bucket_of(incident(), tokens=0.3)
    reservation = bucket.reserve(37.7)
    reservation.cancel()
    bucket.clock.sleep(reservation.delay)
    assert bucket.try_acquire(37.7) is True


# -- cancel -------------------------------------------------------------------------------


def test_cancel_before_its_time_returns_the_cost():
    """cancel before the booking's time returns the cost and is True."""
    bucket = bucket_of(simple(), tokens=0)
    reservation = bucket.reserve(5)
    bucket.clock.advance(2)
    assert reservation.cancel() is True
    assert reservation.cancelled is True
    snap = bucket.snapshot()
    assert snap.tokens == pytest.approx(2.0)
    assert snap.pending == 0


def test_cancel_twice_does_nothing():
    """A second cancel returns False and returns nothing."""
    bucket = bucket_of(simple(), tokens=0)
    reservation = bucket.reserve(5)
    assert reservation.cancel() is True
    assert reservation.cancel() is False
    assert tokens_of(bucket) == 0.0


def test_cancel_after_its_time_does_nothing():
    """cancel after the booking's time is False and changes nothing."""
    bucket = bucket_of(simple(), tokens=0)
    reservation = bucket.reserve(5)
    bucket.clock.advance(6)
    assert reservation.cancel() is False
    assert tokens_of(bucket) == pytest.approx(1.0)


def test_cancel_keeps_later_bookings_times():
    """Cancelling a booking keeps later bookings at their times; new ones queue behind them."""
    bucket = bucket_of(simple(capacity=20), tokens=0)
    first = bucket.reserve(5)
    second = bucket.reserve(5)
    assert (first.delay, second.delay) == (5.0, 10.0)
    first.cancel()
    third = bucket.reserve(5)
    assert third.delay == pytest.approx(10.0)
    assert tokens_of(bucket) == pytest.approx(-10.0)


def test_cancelled_last_booking_does_not_hold_later_requests():
    """Cancelling the last booking gives its place back: later requests do not queue behind it."""
    bucket = bucket_of(simple(), tokens=0)
    bucket.reserve(5).cancel()
    bucket.clock.advance(1)
    snap = bucket.snapshot()
    assert (snap.tokens, snap.backlog, snap.pending) == (1.0, 0.0, 0)
    assert bucket.try_acquire(1) is True


def test_cancel_of_a_booking_waiting_in_recharge_mode_stays_in_recharge_mode():
    """Cancelling a booking that waited for the burst threshold keeps the bucket recharging."""
    bucket = bucket_of(incident(), tokens=0.5)
    bucket.reserve(10).cancel()
    snap = bucket.snapshot()
    assert (snap.tokens, snap.recharging) == (0.5, True)
    assert bucket.reserve(1).delay == pytest.approx(39.5 * 12)


def test_cancel_repr():
    """A reservation's repr shows its cost, delay and whether it was cancelled."""
    reservation = bucket_of(simple(), tokens=0).reserve(2)
    reservation.cancel()
    assert repr(reservation) == "Reservation(cost=2.0, delay=2.0, cancelled=True)"


def test_reserve_with_timeout_books_when_the_delay_fits():
    """reserve(timeout=) books as reserve does when the delay is within the timeout."""
    bucket = bucket_of(incident(), tokens=40)
    reservation = bucket.reserve(100, timeout=732)
    assert reservation.delay == pytest.approx(732.0)
    assert bucket.snapshot().pending == 1


def test_reserve_over_its_timeout_raises_and_books_nothing():
    """reserve(timeout=) raises AcquireTimeout carrying the delay, and books nothing."""
    bucket = bucket_of(incident(), tokens=40)
    with pytest.raises(AcquireTimeout) as info:
        bucket.reserve(100, timeout=731)
    assert info.value.delay == pytest.approx(732.0)
    snap = bucket.snapshot()
    assert (snap.tokens, snap.pending, snap.booked) == (40.0, 0, 0.0)


def test_reserve_timeout_must_not_be_negative():
    """A negative reserve timeout is a ValueError naming it."""
    with pytest.raises(ValueError, match="timeout"):
        bucket_of(simple()).reserve(1, timeout=-1)


# -- settle -------------------------------------------------------------------------------


def test_settle_up_debits_the_difference():
    """settle to a higher actual cost debits the difference."""
    bucket = bucket_of(simple(capacity=100))
    bucket.reserve(10).settle(30)
    assert tokens_of(bucket) == 70.0


def test_settle_down_returns_the_difference():
    """settle to a lower actual cost returns the difference."""
    bucket = bucket_of(simple(capacity=100))
    bucket.reserve(10).settle(4)
    assert tokens_of(bucket) == 96.0


def test_settle_twice_is_relative_to_the_last_settle():
    """A second settle is allowed and the last one wins: the bucket is charged its actual cost."""
    bucket = bucket_of(simple(capacity=100))
    reservation = bucket.reserve(10)
    reservation.settle(30)
    reservation.settle(20)
    assert tokens_of(bucket) == 80.0
    assert bucket.snapshot().booked == 20.0


def test_settle_may_go_below_max_deficit():
    """A settle may take the balance below -max_deficit."""
    config = simple(capacity=100, deficit=DeficitRule.bounded(10), burst_threshold=50)
    bucket = bucket_of(config, tokens=0)
    bucket.reserve(10).settle(60)
    assert tokens_of(bucket) == -60.0


def test_settle_enters_recharge_mode():
    """A settle that leaves the balance below min_threshold enters recharge mode."""
    config = simple(capacity=100, burst_threshold=50, min_threshold=5)
    bucket = bucket_of(config, tokens=20)
    reservation = bucket.reserve(10)
    assert bucket.snapshot().recharging is False
    reservation.settle(18)
    snap = bucket.snapshot()
    assert (snap.tokens, snap.recharging) == (2.0, True)


def test_settle_never_moves_later_bookings():
    """Settling a booking leaves the times of later bookings alone."""
    bucket = bucket_of(simple(capacity=100), tokens=0)
    first = bucket.reserve(5)
    second = bucket.reserve(5)
    first.settle(1)
    assert second.delay == 10.0
    third = bucket.reserve(4)
    assert third.delay == pytest.approx(10.0)


def test_settle_cancelled_raises():
    """Settling a cancelled reservation raises ReservationError."""
    reservation = bucket_of(simple(), tokens=0).reserve(5)
    reservation.cancel()
    with pytest.raises(ReservationError):
        reservation.settle(5)


@pytest.mark.parametrize("actual", [-1, math.nan, math.inf])
def test_settle_bad_actual(actual):
    """A negative, NaN or infinite actual cost raises ValueError naming it."""
    bucket = bucket_of(simple())
    with pytest.raises(ValueError, match="actual_cost"):
        bucket.reserve(1).settle(actual)


# -- sync ---------------------------------------------------------------------------------


def test_sync_adopts_the_balance():
    """sync adopts the server's balance as authoritative."""
    bucket = bucket_of(incident(), tokens=40)
    snap = bucket.sync(123)
    assert snap.tokens == 123.0
    assert tokens_of(bucket) == 123.0


def test_sync_subtracts_pending_bookings_which_keep_their_times():
    """Pending bookings are subtracted from the synced balance and keep their times."""
    bucket = bucket_of(simple(capacity=100), tokens=0)
    reservation = bucket.reserve(10)
    snap = bucket.sync(50)
    assert snap.tokens == 40.0
    assert snap.pending == 1
    assert reservation.time == 10.0
    assert bucket.reserve(1).delay == pytest.approx(10.0)


def test_sync_replays_pending_bookings_with_the_capacity_cap():
    """A booking after the bucket would fill up sees the capped balance, as the server will."""
    bucket = bucket_of(simple(capacity=10), tokens=0)
    reservation = bucket.reserve(10)  # at t=10
    bucket.sync(10)  # full now: the next 10 s of refill are lost to the cap
    assert reservation.time == 10.0
    assert tokens_of(bucket) == pytest.approx(-10.0)  # 0 at t=10, net of the refill until then
    assert bucket.reserve(10).delay == pytest.approx(20.0)


def test_sync_moves_a_booking_that_no_longer_reaches_b():
    """Issue 18: a sync below min_threshold moves a booking that no longer reaches B to when it
    does (the server would refuse it earlier); the next request queues behind it."""
    bucket = bucket_of(incident(), tokens=0)
    assert bucket.reserve(10).delay == pytest.approx(480.0)  # waits for B = 40
    snap = bucket.sync(-25)  # at t=480 the balance would be 15: moved to (40 + 25) * 12
    assert snap.backlog == pytest.approx(780.0)
    assert bucket.reserve(1).delay == pytest.approx(780.0)  # 30 left: no more recharge mode


def test_sync_assumes_past_bookings_are_in_the_figure():
    """Bookings whose time has come are assumed to be in the server's figure."""
    bucket = bucket_of(simple(capacity=100), tokens=0)
    bucket.reserve(10)
    bucket.clock.advance(10)
    assert bucket.sync(7).tokens == 7.0


def test_sync_below_min_threshold_enters_recharge_mode():
    """A synced balance below min_threshold enters recharge mode."""
    bucket = bucket_of(incident(), tokens=40)
    snap = bucket.sync(0.5)
    assert snap.recharging is True
    assert bucket.try_acquire(1) is False
    assert bucket.acquire(1) == pytest.approx((40 - 0.5) * 12)


def test_sync_refill_in_continuous_lowers_by_the_refill_until_the_step():
    """With a continuous rule, sync(refill_in=s) sets the balance to tokens - r*s."""
    bucket = bucket_of(incident(), tokens=40)
    assert bucket.sync(50, refill_in=30).tokens == pytest.approx(47.5)


def test_sync_refill_in_anchors_steps():
    """With refill_step, sync(refill_in=s) puts the next step s seconds from now."""
    bucket = bucket_of(incident(refill_step=60), tokens=40)
    bucket.sync(10, refill_in=20)
    bucket.clock.advance(19.9)
    assert tokens_of(bucket) == 10.0
    bucket.clock.advance(0.1)
    assert tokens_of(bucket) == pytest.approx(15.0)
    bucket.clock.advance(60)
    assert tokens_of(bucket) == pytest.approx(20.0)


def test_step_refill_wait_lands_on_a_step():
    """With refill_step, a wait ends on a refill step, where the request is admitted."""
    bucket = bucket_of(incident(refill_step=60), tokens=40)
    bucket.sync(10, refill_in=20)
    assert bucket.acquire(15) == pytest.approx(80.0)
    assert tokens_of(bucket) == pytest.approx(5.0)


def test_sync_rate_adopts_a_changed_rate():
    """sync(rate=) adopts a new refill rate."""
    bucket = bucket_of(simple(capacity=100), tokens=0)
    snap = bucket.sync(0, rate=Rate.per_second(2))
    assert snap.rate == 2.0
    bucket.clock.advance(5)
    assert tokens_of(bucket) == pytest.approx(10.0)


def test_sync_caps_at_capacity():
    """A synced balance above capacity is capped."""
    assert bucket_of(simple()).sync(50).tokens == 10.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tokens": math.nan}, "tokens"),
        ({"tokens": 1, "refill_in": -1}, "refill_in"),
        ({"tokens": 1, "refill_in": math.inf}, "refill_in"),
    ],
)
def test_sync_rejects_bad_numbers(kwargs, match):
    """sync rejects NaN balances and bad refill_in, naming the argument."""
    with pytest.raises(ValueError, match=match):
        bucket_of(simple()).sync(**kwargs)


def test_sync_rate_must_be_a_rate():
    """sync(rate=) takes a Rate."""
    with pytest.raises(TypeError, match="rate"):
        bucket_of(simple()).sync(1, rate=2)  # type: ignore[arg-type]


# -- snapshot -----------------------------------------------------------------------------


def test_snapshot_fields():
    """snapshot reports balance net of bookings, recharge mode, backlog, pending, capacity."""
    bucket = bucket_of(incident(DeficitRule.while_positive()), tokens=40)
    bucket.try_acquire(100)
    assert bucket.snapshot().recharging is True
    bucket.reserve(10)
    snap = bucket.snapshot()
    assert snap.tokens == pytest.approx(-70.0)
    assert snap.pending == 1
    assert snap.backlog == pytest.approx(1200.0)
    assert snap.capacity == 300.0
    assert snap.rate == pytest.approx(5 / 60)
    assert snap.time == 0.0


def test_snapshot_recharging_ends_at_burst_threshold():
    """The snapshot leaves recharge mode once the balance reaches the burst threshold."""
    bucket = bucket_of(incident(), tokens=0)
    assert bucket.snapshot().recharging is True
    bucket.clock.advance(39.9 * 12)
    assert bucket.snapshot().recharging is True
    bucket.clock.advance(0.2 * 12)
    assert bucket.snapshot().recharging is False


def test_snapshot_is_immutable():
    """A Snapshot cannot be changed."""
    snap = bucket_of(simple()).snapshot()
    with pytest.raises(AttributeError):
        snap.tokens = 3  # type: ignore[misc]


def test_snapshot_demand_and_utilization():
    """demand is tokens booked per second since the start; utilization is demand / rate."""
    bucket = bucket_of(simple(capacity=100, rate=2))
    assert bucket.snapshot().demand is None
    assert bucket.snapshot().utilization is None
    bucket.acquire(100)
    bucket.acquire(100)  # waits 50 s
    snap = bucket.snapshot()
    assert snap.booked == 200.0
    assert snap.demand == pytest.approx(4.0)
    assert snap.utilization == pytest.approx(2.0)


def test_utilization_of_a_saturating_consumer_approaches_one():
    """A consumer that takes everything shows a utilization near 1.0."""
    bucket = bucket_of(incident(), tokens=0)
    for _ in range(500):
        bucket.acquire(35)
    utilization = bucket.snapshot().utilization
    assert utilization is not None
    assert 0.99 < utilization <= 1.0 + 1e-9


# -- events and logging -------------------------------------------------------------------


def _recording(config: BucketConfig, tokens: float) -> tuple[TokenBucket, list[Event]]:
    events: list[Event] = []
    bucket = TokenBucket(config, clock=ManualClock(), tokens=tokens, on_event=events.append)
    return bucket, events


def test_events_admitted_and_refused():
    """try_acquire reports admitted or refused, with the balance after it."""
    bucket, events = _recording(incident(), 40)
    bucket.try_acquire(25)
    bucket.try_acquire(100)
    assert [(e.kind, e.cost, e.tokens) for e in events] == [
        ("admitted", 25, 15.0),
        ("refused", 100, 15.0),
    ]
    assert events[1].delay == pytest.approx((101 - 15) * 12)
    assert events[0].key == "default"


def test_events_waited():
    """A booking for later reports waited with its delay."""
    bucket, events = _recording(incident(), 40)
    bucket.acquire(100)
    assert [e.kind for e in events] == ["waited"]
    assert events[0].delay == pytest.approx(732.0)


def test_events_recharge_entered_and_left():
    """Entering and leaving recharge mode are reported around the decision causing them."""
    bucket, events = _recording(incident(DeficitRule.while_positive()), 40)
    bucket.try_acquire(100)
    bucket.acquire(1)
    kinds = [e.kind for e in events]
    assert kinds == ["admitted", "recharge_entered", "recharge_left", "waited"]


def test_events_cancel_settle_sync():
    """cancel, settle and sync are reported."""
    bucket, events = _recording(simple(), 5)
    bucket.reserve(1).cancel()
    bucket.reserve(1).settle(2)
    bucket.sync(5)
    kinds = [e.kind for e in events]
    assert kinds == ["admitted", "cancelled", "admitted", "settled", "synced"]
    assert events[-1].cost == 5.0


def test_events_are_logged(caplog):
    """Every decision is logged at DEBUG under the tokenbudget logger."""
    bucket = bucket_of(incident(), tokens=40)
    with caplog.at_level(logging.DEBUG, logger="tokenbudget"):
        bucket.try_acquire(25)
        bucket.try_acquire(100)
    messages = [r.getMessage() for r in caplog.records if r.name == "tokenbudget"]
    assert len(messages) == 2
    assert messages[0].startswith("admitted key=default cost=25")
    assert messages[1].startswith("refused key=default cost=100")


def test_no_logging_without_debug(caplog):
    """Nothing is logged when DEBUG is off for the tokenbudget logger."""
    bucket = bucket_of(simple())
    with caplog.at_level(logging.INFO, logger="tokenbudget"):
        bucket.try_acquire(1)
    assert not [r for r in caplog.records if r.name == "tokenbudget"]


# -- fail fast ----------------------------------------------------------------------------

ENTRY_POINTS = {
    "try_acquire": lambda bucket, cost: bucket.try_acquire(cost),
    "acquire": lambda bucket, cost: bucket.acquire(cost),
    "acquire_timeout": lambda bucket, cost: bucket.acquire(cost, timeout=5),
    "reserve": lambda bucket, cost: bucket.reserve(cost),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
@pytest.mark.parametrize("cost", [0, -1, math.nan])
def test_non_positive_cost_raises_value_error(entry, cost):
    """A cost <= 0 or NaN raises ValueError from every entry point; no time passes."""
    bucket = bucket_of(incident(), tokens=0)
    with pytest.raises(ValueError, match="cost") as info:
        entry(bucket, cost)
    assert not isinstance(info.value, CostExceedsCapacity)
    assert bucket.clock.now() == 0.0
    assert bucket.snapshot().booked == 0.0


@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
@pytest.mark.parametrize("cost", [299.0001, 1e9, math.inf])
def test_impossible_cost_raises_cost_exceeds_capacity(entry, cost):
    """A cost above max_cost or infinite raises CostExceedsCapacity at once from every entry point."""
    bucket = bucket_of(incident(), tokens=0)
    with pytest.raises(CostExceedsCapacity):
        entry(bucket, cost)
    assert bucket.clock.now() == 0.0
    assert bucket.snapshot().booked == 0.0


@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
def test_non_number_cost_raises_type_error(entry):
    """A cost that is not a number raises TypeError."""
    with pytest.raises(TypeError, match="cost"):
        entry(bucket_of(simple()), "1")


def test_max_cost_itself_is_admitted():
    """A cost of exactly max_cost is admitted (after a wait)."""
    bucket = bucket_of(incident(), tokens=0)
    assert bucket.acquire(299) == pytest.approx(300 * 12)


# -- starting balance ---------------------------------------------------------------------


@pytest.mark.parametrize("tokens", [300.5, -0.5, math.nan, math.inf])
def test_starting_balance_outside_range(tokens):
    """A starting balance outside [-max_deficit, capacity] (or NaN) raises ValueError."""
    with pytest.raises(ValueError, match="tokens"):
        TokenBucket(incident(), clock=ManualClock(), tokens=tokens)


def test_starting_debt_within_deficit():
    """With a deficit rule the starting balance may be as low as -max_deficit."""
    bucket = bucket_of(incident(DeficitRule.while_positive()), tokens=-300)
    assert tokens_of(bucket) == -300.0
    with pytest.raises(ValueError, match="tokens"):
        bucket_of(incident(DeficitRule.while_positive()), tokens=-300.5)


def test_starting_below_min_threshold_recharges():
    """A bucket starting below min_threshold starts in recharge mode."""
    bucket = bucket_of(incident(), tokens=0.5)
    assert bucket.snapshot().recharging is True
    assert bucket.acquire(1) == pytest.approx(39.5 * 12)


def test_starting_balance_defaults_to_capacity():
    """Without tokens=, a bucket starts full."""
    assert tokens_of(TokenBucket(incident(), clock=ManualClock())) == 300.0


def test_bad_config_and_key():
    """The constructor checks its config and key."""
    with pytest.raises(TypeError, match="config"):
        TokenBucket(300)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        TokenBucket(simple(), key="")


def test_default_clock_is_monotonic():
    """The default clock is a MonotonicClock."""
    assert isinstance(TokenBucket(simple()).clock, MonotonicClock)


# -- FIFO ---------------------------------------------------------------------------------


def test_large_request_not_overtaken_by_small_ones():
    """A 60-token request booked first is not overtaken by a stream of 1-token requests."""
    bucket = bucket_of(simple(capacity=100), tokens=0)
    big = bucket.reserve(60)
    small = [bucket.reserve(1) for _ in range(20)]
    assert big.delay == pytest.approx(60.0)
    assert all(r.time >= big.time for r in small)
    assert [r.delay for r in small] == pytest.approx([61.0 + i for i in range(20)])


def test_try_acquire_false_while_bookings_pending():
    """try_acquire is False while earlier bookings are pending, even for a tiny cost."""
    bucket = bucket_of(simple(capacity=100), tokens=10)
    bucket.reserve(60)
    bucket.clock.advance(49.9)
    assert bucket.try_acquire(0.001) is False
    bucket.clock.advance(0.1)
    assert bucket.try_acquire(0.001) is False  # the 60 took everything at t=50
    bucket.clock.advance(0.001)
    assert bucket.try_acquire(0.001) is True


def test_threads_book_first_come_first_served_without_over_admission():
    """Threads sharing one MemoryBackend key get bookings in booking order, never over-admitted."""
    backend = MemoryBackend()
    clock = ManualClock()
    config = simple(capacity=10, rate=2)
    reservations = []
    lock = threading.Lock()

    def worker(cost: float) -> None:
        bucket = TokenBucket(config, clock=clock, tokens=10, backend=backend, key="shared")
        for _ in range(50):
            reservation = bucket.reserve(cost)
            with lock:
                reservations.append(reservation)

    threads = [threading.Thread(target=worker, args=(c,)) for c in (1, 2, 3, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    booked = sorted(reservations, key=lambda r: r._state.booking_id)
    times = [r.time for r in booked]
    assert times == sorted(times)
    spent = 0.0
    for r in booked:
        spent += r.cost
        assert spent <= 10 + 2 * r.time + 1e-6


def test_threads_acquire_with_real_clock():
    """Threads acquiring from one key with the real clock admit no more than the refill allows."""
    backend = MemoryBackend()
    clock = MonotonicClock()
    config = simple(capacity=5, rate=2000)
    admitted: list[float] = []
    lock = threading.Lock()
    start = clock.now()

    def worker() -> None:
        bucket = TokenBucket(config, clock=clock, tokens=5, backend=backend, key="shared")
        for _ in range(25):
            bucket.acquire(1)
            with lock:
                admitted.append(clock.now())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = clock.now() - start
    assert len(admitted) == 100
    assert elapsed >= (100 - 5) / 2000 - 1e-3


def test_shared_key_shares_state():
    """Two buckets on one backend key share one balance; other keys are separate."""
    backend = MemoryBackend()
    clock = ManualClock()
    a = TokenBucket(simple(), clock=clock, backend=backend, key="k")
    b = TokenBucket(simple(), clock=clock, backend=backend, key="k")
    c = TokenBucket(simple(), clock=clock, backend=backend, key="other")
    assert a.try_acquire(10) is True
    assert b.try_acquire(1) is False
    assert c.try_acquire(10) is True


# -- interrupted sleep --------------------------------------------------------------------


class InterruptedClock(ManualClock):
    """A manual clock whose sleep is interrupted halfway."""

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds / 2)
        raise KeyboardInterrupt


def test_interrupted_acquire_returns_the_cost():
    """An acquire whose sleep is interrupted returns its booking's cost to the bucket."""
    bucket = TokenBucket(simple(capacity=100), clock=InterruptedClock(), tokens=0)
    with pytest.raises(KeyboardInterrupt):
        bucket.acquire(10)
    snap = bucket.snapshot()
    assert snap.tokens == pytest.approx(5.0)
    assert snap.pending == 0
    assert snap.booked == 0.0
