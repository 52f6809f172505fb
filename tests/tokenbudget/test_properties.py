"""Hypothesis proofs of SPEC §3 guarantees 1-6 over the whole valid configuration space.

Configurations come from ``tests.strategies.configs()``; where a guarantee also
holds for step refills (``refill_step``), ``configs(steps=True)`` is used. With
step refills the bounded-wait bound of guarantee 3 gains one step period: a
wait ends on a refill step, which may come up to one period after the balance
would have been reached by a continuous refill.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, example, given, note
from hypothesis import strategies as st

from tests.strategies import (
    clock_origins,
    clock_steps,
    configs,
    costs,
    starting_balances,
    step_clock,
)
from tokenbudget import (
    AcquireTimeout,
    AdaptiveBatchSizer,
    BucketConfig,
    CostExceedsCapacity,
    DeficitRule,
    ManualClock,
    Rate,
    TokenBucket,
)
from tokenbudget._core import covers, time_tolerance


def _bucket(config: BucketConfig, tokens: float | None = None) -> TokenBucket:
    return TokenBucket(config, clock=ManualClock(), tokens=tokens)


def _tol(*values: float) -> float:
    """A tolerance on balances: relative to the magnitudes involved."""
    return 1e-9 * max(1.0, *(abs(v) for v in values if math.isfinite(v)))


def _target(config: BucketConfig, cost: float, recharging: bool) -> float:
    need = config.required_balance(cost)
    return max(config.burst_threshold, need) if recharging else need


#: One step of a workload: ("try"|"acquire"|"reserve", share of max cost) or ("wait", seconds share).
ops = st.lists(
    st.tuples(
        st.sampled_from(["try", "acquire", "reserve", "wait"]),
        st.floats(1e-3, 1.0),
    ),
    min_size=1,
    max_size=25,
)


def _cost(config: BucketConfig, share: float) -> float:
    top = config.max_cost if math.isfinite(config.max_cost) else config.capacity * 10
    return max(share * top, 1e-9)


def _run(config: BucketConfig, tokens: float, steps: list[tuple[str, float]]):
    """Run a workload; return the bucket and the (time, cost) of every admission."""
    bucket = _bucket(config, tokens)
    clock = bucket.clock
    assert isinstance(clock, ManualClock)
    admitted: list[tuple[float, float]] = []
    for kind, share in steps:
        if kind == "wait":
            clock.advance(share * config.capacity / config.refill.tokens_per_second)
            continue
        cost = _cost(config, share)
        if kind == "try":
            if bucket.try_acquire(cost):
                admitted.append((clock.now(), cost))
        elif kind == "acquire":
            bucket.acquire(cost)
            admitted.append((clock.now(), cost))
        else:
            reservation = bucket.reserve(cost)
            admitted.append((reservation.time, cost))
    return bucket, admitted


# -- 1. no over-spend ---------------------------------------------------------------------


@given(data=st.data(), config=configs(steps=True, infinite_deficit=False), steps=ops)
def test_no_over_spend(data, config, steps):
    """Over any [0, T], admitted cost <= initial balance + r*T + max_deficit."""
    tokens = data.draw(starting_balances(config))
    _, admitted = _run(config, tokens, steps)
    r = config.refill.tokens_per_second
    for t, _ in admitted:
        spent = sum(c for when, c in admitted if when <= t + 1e-9)
        budget = tokens + r * t + config.max_deficit
        early = r * time_tolerance(t)  # a wait within the time tolerance counts as none
        assert spent <= budget + early + _tol(spent, budget, config.capacity)


# -- 1b. no over-spend against a capped server ---------------------------------------------

#: One step of a history: ("try"|"reserve", cost share), ("cancel"|"settle", booking index,
#: share), ("wait", share of a full refill), ("sync", share of capacity, refill_in share),
#: ("step", seconds: the clock steps back or forward, as an NTP correction or a resumed VM).
history_ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["try", "reserve"]), st.floats(1e-3, 1.0)),
        st.tuples(st.sampled_from(["cancel", "settle"]), st.integers(0, 20), st.floats(0, 1.5)),
        st.tuples(st.just("wait"), st.floats(0.0, 1.5)),
        st.tuples(st.just("sync"), st.floats(-0.5, 1.0), st.none() | st.floats(0.0, 3.0)),
        st.tuples(st.just("step"), clock_steps()),
    ),
    min_size=1,
    max_size=30,
)


class CappedServer:
    """The server a bucket stands for: it holds at most C, refills at r (in steps if the
    config has them), and admits a request only when its balance covers R(c)."""

    def __init__(self, config: BucketConfig, balance: float, time: float) -> None:
        self.config = config
        self.balance = balance
        self.time = time
        self.anchor = time  # steps at anchor + k * step, k >= 0 after a sync
        self.first = -math.inf  # no step before this time (the server's next step)

    def _steps_to(self, t: float) -> int:
        step = self.config.refill_step
        assert step is not None

        def index(x: float) -> int:
            return math.floor((x - self.anchor + time_tolerance(abs(x) + abs(self.anchor))) / step)

        lo = max(index(self.time), index(self.first) - 1 if math.isfinite(self.first) else -1e18)
        return max(0, index(t) - lo)

    def refill_to(self, t: float) -> None:
        if t <= self.time:
            return
        r = self.config.refill.tokens_per_second
        if self.config.refill_step is None:
            added = r * (t - self.time)
        else:
            added = self._steps_to(t) * r * self.config.refill_step
        self.balance = min(self.config.capacity, self.balance + added)
        self.time = t

    def sync(self, t: float, tokens: float, refill_in: float | None) -> None:
        self.refill_to(t)
        self.balance = min(self.config.capacity, tokens)
        if refill_in is not None and self.config.refill_step is not None:
            self.anchor = self.first = t + refill_in


@given(
    config=configs(steps=True, infinite_deficit=False),
    start=st.floats(0.0, 1.0),
    origin=clock_origins(),
    steps=history_ops,
)
@example(  # issue 8, defect 2: cancelling an earlier booking credited past the cap
    config=BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.while_positive(),
    ),
    start=301 / 600,  # a balance of 1 (in [-300, 300])
    origin=0.0,
    steps=[("reserve", 1.0), ("reserve", 1.0), ("cancel", 0, 0.0), ("wait", 3.0), ("try", 1.0)],
)
def test_no_over_spend_against_a_capped_server(config, start, origin, steps):  # noqa: C901
    """Guarantee 1, exactly: a capped server refilling at r admits every admission at its time.

    Histories cancel and settle earlier (non-tail) bookings, late too, and sync
    in between; the server sees each admission's cost at its time (settled
    costs, cancels removed) and adopts each synced balance. Run at the clock
    magnitudes of real clocks, it finds defects 1, 2 and 6 of issue 8.

    The clock steps back and forward (issue 18, defect 1). A reading earlier
    than the bucket's latest is no time elapsed; the server lives in the same
    *virtual* time, which advances with the clock's forward movement from the
    bucket's latest reading only: a step back means at least no real time
    passed, so checking in virtual time is the conservative check.
    """
    low = -min(config.max_deficit, config.capacity * 3)
    tokens = low + start * (config.capacity - low)
    clock = ManualClock(origin)
    bucket = TokenBucket(config, clock=clock, tokens=tokens)
    bucket.snapshot()  # the bucket's state starts now
    r = config.refill.tokens_per_second
    # Each event: time, order decided, kind, debit, and the cost admitted (or the refill_in).
    events: list[list] = []
    handles: list[tuple[object, list]] = []
    raises: list[tuple[float, int]] = []  # (from when, order) of settles that raised a cost
    seen_clock = seen = origin  # the bucket's latest reading, and its virtual time
    for order, op in enumerate(steps):
        kind = op[0]
        reading = clock.now()
        now = seen + max(0.0, reading - seen_clock)  # virtual time: a step back is no time
        if kind in ("try", "reserve", "sync") or (kind in ("cancel", "settle") and handles):
            seen_clock, seen = reading, now  # the operation below reads the clock
        if kind == "wait":
            clock.advance(op[1] * config.capacity / r)
        elif kind == "step":
            step_clock(clock, op[1])
        elif kind == "try":
            cost = _cost(config, op[1])
            if bucket.try_acquire(cost):
                events.append([now, order, "admit", cost, cost])
        elif kind == "reserve":
            cost = _cost(config, op[1])
            reservation = bucket.reserve(cost)
            event = [now + reservation.delay, order, "admit", cost, cost]
            events.append(event)
            handles.append((reservation, event))
        elif kind == "cancel" and handles:
            reservation, event = handles[op[1] % len(handles)]
            if reservation.cancel():  # type: ignore[attr-defined]
                events.remove(event)
                handles.remove((reservation, event))
        elif kind == "settle" and handles:
            reservation, event = handles[op[1] % len(handles)]
            actual = op[2] * event[3]
            charged = reservation._state.charged  # type: ignore[attr-defined]
            synced_since = any(
                e[2] == "sync" and event[0] <= e[0] + time_tolerance(e[0]) for e in events
            )
            if actual > charged:  # a correction upward: later bookings keep their times (SPEC)
                raises.append((max(event[0], now), order))
            if event[0] > now + time_tolerance(now) or actual < charged:
                # Pending: its own debit is corrected. Lower: the server charged the true cost
                # at the booking's time (and held at most C since), so the bucket may credit
                # only what that server holds more now (issue 18, defect 2).
                event[3] = actual
            elif not synced_since:  # (a sync since took its true cost from the server)
                events.append([now, order, "correct", actual - charged])
            reservation.settle(actual)  # type: ignore[attr-defined]
        elif kind == "sync":
            refill_in = None if op[2] is None else op[2] * (config.refill_step or 1.0)
            amount = op[1] * config.capacity
            bucket.sync(amount, refill_in=refill_in)
            events.append([now, order, "sync", amount, refill_in])
    server = CappedServer(config, tokens, origin)
    syncs = [(e[0], e[1]) for e in events if e[2] == "sync"]
    for event in sorted(events, key=lambda e: (e[0], e[1])):
        when, decided, kind, amount = event[:4]
        server.refill_to(when)
        if kind == "sync":
            server.sync(when, amount, event[4])
            continue
        # A booking keeps its time through a later sync (SPEC), even one that shows the server
        # cannot pay it then; the check is on the admissions decided since the last sync.
        resynced = any(order > decided and at < when for at, order in syncs)
        # Likewise a settle that raised an earlier booking's cost after this one was decided.
        resynced = resynced or any(order > decided and at <= when for at, order in raises)
        if kind == "admit" and not resynced:  # on the cost admitted; its debit may be settled
            need = config.required_balance(event[4])
            slack = 4 * r * time_tolerance(when) + _tol(need, config.capacity, server.balance)
            note(f"admit {amount!r} at {when!r}: server holds {server.balance!r}, needs {need!r}")
            assert server.balance >= need - slack
        server.balance -= amount


@given(
    data=st.data(),
    config=configs(infinite_deficit=False),
    origin=clock_origins(),
    share=st.floats(1e-12, 1e-3),
)
def test_frozen_clock_admits_no_more_than_the_balance(data, config, origin, share):
    """Guarantee 1 on a frozen clock: repeated small admissions take at most b + max_deficit
    (+ the refill of one time tolerance), however high the rate."""
    tokens = data.draw(starting_balances(config))
    bucket = TokenBucket(config, clock=ManualClock(origin), tokens=tokens)
    cost = max(share * config.max_cost, 1e-9)
    admitted = 0.0
    for _ in range(200):
        if not bucket.try_acquire(cost):
            break
        admitted += cost
    r = config.refill.tokens_per_second
    budget = tokens + config.max_deficit + r * time_tolerance(origin)
    assert admitted <= budget + _tol(budget, config.capacity) + cost


# -- 2. bounded debt ----------------------------------------------------------------------


@given(data=st.data(), config=configs(steps=True), steps=ops)
def test_bounded_debt(data, config, steps):
    """After every admission, at its time, the balance is at least -max_deficit."""
    tokens = data.draw(starting_balances(config))
    bucket = _bucket(config, tokens)
    clock = bucket.clock
    assert isinstance(clock, ManualClock)
    for kind, share in steps:
        if kind == "wait":
            clock.advance(share * config.capacity / config.refill.tokens_per_second)
            continue
        cost = _cost(config, share)
        if kind == "reserve":
            reservation = bucket.reserve(cost)
            clock.advance(reservation.delay)  # to its time: nothing else is pending then
        elif kind == "try":
            if not bucket.try_acquire(cost):
                continue
        else:
            bucket.acquire(cost)
        balance = bucket.snapshot().tokens
        early = config.refill.tokens_per_second * time_tolerance(clock.now())
        assert balance >= -config.max_deficit - early - _tol(balance, cost, config.capacity)


# -- 3. bounded wait, no second wait ------------------------------------------------------


@given(data=st.data(), config=configs(steps=True))
def test_bounded_wait(data, config):
    """On an idle bucket a cost waits at most (max(B, R(c)) - b) / r (+ one step period)."""
    tokens = data.draw(starting_balances(config))
    cost = data.draw(costs(config))
    bucket = _bucket(config, tokens)
    recharging = bucket.snapshot().recharging
    r = config.refill.tokens_per_second
    delay = bucket.reserve(cost).delay
    bound = max(0.0, (_target(config, cost, recharging) - tokens) / r) + (config.refill_step or 0)
    worst = max(config.burst_threshold, config.required_balance(cost))
    assert 0.0 <= delay <= bound + _tol(bound) + _tol(worst, tokens) / r
    if config.refill_step is None:  # the continuous refill's wait is exact
        # (a wait within the time tolerance is reported as none)
        assert delay == pytest.approx(bound, rel=1e-9, abs=_tol(worst, tokens) / r + 1e-9)


@given(data=st.data(), config=configs(steps=True))
def test_no_second_wait(data, config):
    """After sleeping exactly the reported delay, try_acquire of the same cost is True."""
    tokens = data.draw(starting_balances(config))
    cost = data.draw(costs(config))
    bucket = _bucket(config, tokens)
    try:
        bucket.acquire(cost, timeout=0)
    except AcquireTimeout as timeout:
        note(f"delay {timeout.delay!r}")
        bucket.clock.sleep(timeout.delay)
        assert bucket.try_acquire(cost) is True
    else:
        assert bucket.snapshot().time == 0.0


@given(data=st.data(), config=configs(steps=True), steps=ops)
def test_acquire_after_any_history_never_waits_twice(data, config, steps):
    """After any history, acquire's delay, once slept, admits: a later try_acquire waits for the next."""
    tokens = data.draw(starting_balances(config))
    cost = data.draw(costs(config))
    bucket, _ = _run(config, tokens, steps)
    clock = bucket.clock
    backlog = bucket.snapshot().backlog
    clock.sleep(backlog)  # let every booking come due
    try:
        bucket.acquire(cost, timeout=0)
    except AcquireTimeout as timeout:
        clock.sleep(timeout.delay)
        assert bucket.try_acquire(cost) is True


# -- 4. fail fast -------------------------------------------------------------------------


@given(
    config=configs(steps=True),
    bad=st.one_of(
        st.floats(max_value=0.0, allow_nan=False),
        st.just(math.nan),
        st.just(math.inf),
    ),
    entry=st.sampled_from(["try", "acquire", "reserve"]),
)
def test_fail_fast_on_bad_costs(config, bad, entry):
    """A cost <= 0, NaN or infinite raises at once from every entry point; no time passes."""
    bucket = _bucket(config, 0.0 if config.max_deficit == 0 else None)
    before = bucket.snapshot()
    error = CostExceedsCapacity if bad == math.inf else ValueError
    with pytest.raises(error):
        {"try": bucket.try_acquire, "acquire": bucket.acquire, "reserve": bucket.reserve}[entry](
            bad
        )
    assert bucket.clock.now() == 0.0
    assert bucket.snapshot() == before


@given(
    config=configs(steps=True, infinite_deficit=False),
    factor=st.floats(1.0, 1e6, exclude_min=True),
    entry=st.sampled_from(["try", "acquire", "reserve"]),
)
def test_fail_fast_above_max_cost(config, factor, entry):
    """A cost above max_cost raises CostExceedsCapacity at once; no time passes."""
    cost = config.max_cost * factor
    assume(cost > config.max_cost)
    bucket = _bucket(config, 0.0 if config.max_deficit == 0 else None)
    before = bucket.snapshot()
    with pytest.raises(CostExceedsCapacity):
        {"try": bucket.try_acquire, "acquire": bucket.acquire, "reserve": bucket.reserve}[entry](
            cost
        )
    assert bucket.clock.now() == 0.0
    assert bucket.snapshot() == before


# -- 5. FIFO ------------------------------------------------------------------------------


@given(
    data=st.data(),
    config=configs(steps=True),
    shares=st.lists(st.tuples(st.floats(1e-3, 1.0), st.floats(0.0, 0.5)), min_size=2, max_size=20),
)
def test_fifo_under_contention(data, config, shares):
    """No request is admitted before one booked earlier; try_acquire fails while any is pending."""
    tokens = data.draw(starting_balances(config))
    bucket = _bucket(config, tokens)
    clock = bucket.clock
    assert isinstance(clock, ManualClock)
    r = config.refill.tokens_per_second
    last = -math.inf
    for share, pause in shares:
        cost = _cost(config, share)
        pending = bucket.snapshot().pending
        if pending:
            assert bucket.try_acquire(cost) is False
        reservation = bucket.reserve(cost)
        # (Reservation.time is the reading plus the delay, rounded at the clock's magnitude:
        # 3.7e-9 s apart at 2.5e7 s, where a bucket's offsets have been re-anchored)
        assert reservation.time >= last - time_tolerance(last)
        last = reservation.time
        clock.advance(pause * config.capacity / r)


# -- 6. adaptive batch sizing -------------------------------------------------------------


def _fits(config: BucketConfig, cost: float) -> bool:
    """Admitted at once at the burst threshold: the admission rule's own tolerance (covers)."""
    return cost <= config.max_cost and covers(config.burst_threshold, config.required_balance(cost))


@given(
    config=configs(infinite_deficit=False),
    share=st.floats(1e-4, 1.0),
    min_batch=st.integers(1, 3),
    max_batch=st.none() | st.integers(3, 500),
)
def test_sizer_largest_admissible_batch(config, share, min_batch, max_batch):
    """size() is the largest n <= max_batch with R(n*item) <= B, else min_batch."""
    item = share * config.max_cost / min_batch
    sizer = AdaptiveBatchSizer(item, min_batch=min_batch, max_batch=max_batch)
    assume(sizer.phase_costs(min_batch)[0] <= config.max_cost)  # min_batch * (x / min_batch) > x
    n = sizer.size(config)
    cost = sizer.phase_costs(n)[0]
    if not _fits(config, sizer.phase_costs(min_batch)[0]):
        assert n == min_batch
        return
    assert min_batch <= n
    assert max_batch is None or n <= max_batch
    assert _fits(config, cost)
    if max_batch is None or n < max_batch:
        bigger = sizer.phase_costs(n + 1)[0]
        assert not _fits(config, bigger)


@given(config=configs(infinite_deficit=False), share=st.floats(1e-4, 1.0))
@example(  # issue 8, defect 7: found by CI, where the sizer and the bucket disagreed
    config=BucketConfig(
        capacity=1.0,
        refill=Rate(0.5, 1.0),
        burst_threshold=0.25,
        min_threshold=1e-9,
        deficit=DeficitRule.none(),
    ),
    share=0.25,
)
def test_sized_batch_is_admitted_at_the_burst_threshold(config, share):
    """A bucket leaving recharge mode admits a sized batch at once (when one item fits)."""
    sizer = AdaptiveBatchSizer(share * config.max_cost)
    n = sizer.size(config)
    assume(_fits(config, sizer.phase_costs(1)[0]))
    bucket = _bucket(config, config.burst_threshold)
    assert bucket.try_acquire(sizer.phase_costs(n)[0]) is True


@given(config=configs(), factor=st.floats(1.0, 100.0, exclude_min=True))
def test_sizer_item_above_max_cost_raises(config, factor):
    """An item above max_cost raises CostExceedsCapacity."""
    assume(math.isfinite(config.max_cost))
    item = config.max_cost * factor
    assume(item > config.max_cost and math.isfinite(item))
    with pytest.raises(CostExceedsCapacity):
        AdaptiveBatchSizer(item).size(config)


@given(
    capacity=st.floats(1.0, 1e5),
    m_share=st.floats(1e-3, 1.0),
    item=st.floats(1e-3, 1e6),
    max_batch=st.integers(1, 500),
)
def test_sizer_needs_max_batch_when_deficit_unbounded(capacity, m_share, item, max_batch):
    """With an unbounded deficit the sizer needs max_batch; with one it stays within it."""
    config = BucketConfig(
        capacity,
        Rate.per_second(1),
        min_threshold=m_share * capacity,
        deficit=DeficitRule.while_positive(math.inf),
    )
    with pytest.raises(ValueError, match="max_batch"):
        AdaptiveBatchSizer(item).size(config)
    n = AdaptiveBatchSizer(item, max_batch=max_batch).size(config)
    assert n == max_batch  # R(c) = m <= B for every cost: the whole max_batch fits


@given(
    item=st.floats(0.01, 100.0),
    observations=st.lists(st.tuples(st.integers(1, 50), st.floats(0.0, 10_000.0)), max_size=20),
    recovery=st.floats(0.01, 1.0),
)
def test_sizer_rise_at_once_fall_gradual(item, observations, recovery):
    """After observing x per item the estimate is >= x; a fall is followed gradually, never below the floor."""
    sizer = AdaptiveBatchSizer(item, recovery=recovery)
    for items, tokens in observations:
        before = sizer.item_cost
        per_item = tokens / items
        sizer.observe(items, tokens)
        after = sizer.item_cost
        if per_item >= before:
            assert after >= per_item
        else:
            assert after <= before
            assert after >= max(item, per_item)
            if recovery <= 0.5 and before > item:
                assert after > per_item  # followed, not adopted


@given(
    config=configs(infinite_deficit=False),
    peek_share=st.floats(0.01, 1.0),
    commit_share=st.floats(1e-4, 0.5),
)
def test_multi_phase_unit_admitted_back_to_back_from_burst(config, peek_share, commit_share):
    """A unit sized by AdaptiveBatchSizer([peek, commit]) is admitted call after call from B."""
    commit = commit_share * config.max_cost
    peek = peek_share * commit
    sizer = AdaptiveBatchSizer([peek, commit])
    n = sizer.size(config)
    phases = sizer.phase_costs(n)
    assume(sizer._admits_at_burst(config, 1))
    bucket = _bucket(config, config.burst_threshold)
    for cost in phases:
        assert bucket.try_acquire(cost) is True


@given(
    data=st.data(), config=configs(steps=True, infinite_deficit=False), share=st.floats(1e-3, 1.0)
)
def test_sized_consumer_throughput(data, config, share):
    """A sized consumer (size(), acquire(n*cost), repeat) turns >= 99% of the refill into items.

    With step refills this holds when a step cannot overflow the bucket while the
    consumer waits (r * step <= capacity - max(B, R(batch))); a larger step is
    partly lost to the capacity cap whatever the consumer does.
    """
    r = config.refill.tokens_per_second
    item = share * config.max_cost
    sizer = AdaptiveBatchSizer(item)
    if config.refill_step is not None:
        target = max(config.burst_threshold, config.required_balance(sizer.size(config) * item))
        assume(r * config.refill_step <= config.capacity - target)
    tokens = data.draw(starting_balances(config))
    bucket = _bucket(config, tokens)
    clock = bucket.clock
    items = 0
    start = None
    for _ in range(200):
        n = sizer.size(config)
        waited = bucket.acquire(sizer.phase_costs(n)[0])
        if start is None:
            if waited > 0:  # from the first wait on, the consumer is refill-bound
                start = clock.now()
            continue
        items += n
    assume(start is not None and clock.now() > start)
    elapsed = clock.now() - start
    assert items * item >= 0.99 * r * elapsed - _tol(r * elapsed) - (config.refill_step or 0) * r
