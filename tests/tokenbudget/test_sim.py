"""The simulator: the incident's numbers, the metrics, and livelock freedom of the adaptive policy."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import configs, costs, starting_balances
from tokenbudget import AdaptiveBatchSizer, BucketConfig, DeficitRule, Rate
from tokenbudget.sim import (
    INCIDENT_CONFIG,
    Consumer,
    ItemCost,
    SimulationReport,
    incident_workload,
    simulate,
)


DAY = 86400.0
#: The whole account's physics: 5 tokens a minute / 5 tokens an item.
ITEMS_PER_HOUR = 5 * 60 / 5


def within(value: float, expected: float, rel: float = 0.02) -> bool:
    return abs(value - expected) <= rel * expected


def pending_cost(report: SimulationReport) -> float:
    """Tokens booked but not yet due at the end, by conservation of tokens.

    What became available was spent, is still in the bucket (net of bookings),
    is booked for later, or was lost at capacity.
    """
    return (
        report.tokens_available - report.tokens_spent - report.final_tokens - report.tokens_wasted
    )


# -- the seed incident -----------------------------------------------------------------------


def test_incident_poll_batch_20_starves_the_ingestor_for_a_day():
    """The pre-fix poll loop with 20-item batches processes nothing for 24 simulated hours."""
    report = simulate(INCIDENT_CONFIG, incident_workload(batch=20, strategy="poll"), hours=24)

    ingestor = report.consumer("ingestor")
    assert ingestor.items == 0
    assert ingestor.first_progress_s is None
    assert ingestor.longest_stall_s == DAY
    assert ingestor.idle_wakeups == ingestor.wakeups == 24 * 60 + 1


def test_incident_small_poll_consumer_takes_the_whole_refill():
    """Meanwhile the small consumer spends every token the refill brings: the account is busy."""
    report = simulate(INCIDENT_CONFIG, incident_workload(batch=20, strategy="poll"))

    small = report.consumer("small")
    assert within(small.items_per_hour, ITEMS_PER_HOUR)
    assert report.utilization > 0.98


@pytest.mark.parametrize("batch", [20, "auto"])
def test_incident_book_progresses_every_cycle_for_every_consumer(batch):
    """Booking the same workload serves both consumers every cycle, at the refill's rate."""
    report = simulate(INCIDENT_CONFIG, incident_workload(batch=batch, strategy="book"))

    # A cycle: the ingestor's batch plus one small item, refilled at 5 tokens a minute.
    cycle_tokens = (20 if batch == 20 else 7) * 5 + 5 + 1
    cycle = cycle_tokens / INCIDENT_CONFIG.refill.tokens_per_second
    for consumer in report.consumers:
        assert consumer.items > 0
        assert consumer.longest_stall_s <= cycle + 1e-6
        assert consumer.idle_wakeups == 0
    assert within(report.items_per_hour, ITEMS_PER_HOUR)


def test_incident_poll_auto_sizing_unblocks_the_ingestor():
    """With sized batches (7 x 5 + 1 <= 40) the poll loop's ingestor gets the refill's rate."""
    report = simulate(INCIDENT_CONFIG, incident_workload(batch="auto", strategy="poll"))

    ingestor = report.consumer("ingestor")
    assert ingestor.mean_batch == 7
    assert within(ingestor.items_per_hour, ITEMS_PER_HOUR)
    assert ingestor.longest_stall_s <= 8 * 60 + 1e-6


@pytest.mark.parametrize("batch", [5, 20])
def test_book_fixed_batches_get_the_refill_rate(batch):
    """Under booking, batches of 5 and of 20 both get 60 items an hour: the refill sets it."""
    report = simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch=batch))

    assert within(report.consumers[0].items_per_hour, ITEMS_PER_HOUR)
    assert report.utilization > 0.98


def test_book_batch_20_stalls_longer_than_batch_5():
    """Larger batches only make the waits longer: 20 items wait (101 - 0) / (5/60) s first."""
    five = simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch=5)).consumers[0]
    twenty = simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch=20)).consumers[0]

    assert twenty.first_progress_s == pytest.approx(101 / (5 / 60))
    assert twenty.longest_stall_s > 2 * five.longest_stall_s


def test_book_on_a_scheduler_tick_still_gets_the_refill_rate():
    """A booking task run by a 60 s beat books at each tick; the refill still sets the rate."""
    consumer = Consumer(item_cost=5, batch=7, strategy="book", tick=60)
    report = simulate(INCIDENT_CONFIG, consumer)

    row = report.consumers[0]
    assert within(row.items_per_hour, ITEMS_PER_HOUR)
    assert row.idle_wakeups == 0
    assert row.longest_stall_s <= 8 * 60


def test_keepa_rule_admits_the_incident_batch():
    """Under Keepa's own while-positive rule the 100-token batch runs at 40 and leaves a debt."""
    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.while_positive(),
    )
    report = simulate(config, incident_workload(batch=20, strategy="poll"))

    assert report.consumer("ingestor").items > 0


# -- metrics ---------------------------------------------------------------------------------


def test_tokens_wasted_at_capacity():
    """A full bucket with a slow consumer loses the refill it cannot hold, and says so."""
    hourly = Consumer(item_cost=5, batch=1, strategy="poll", tick=3600)
    report = simulate(INCIDENT_CONFIG, hourly, tokens=300, hours=24)

    assert report.consumers[0].items == 25  # at 0 h, 1 h, ..., 24 h
    assert report.tokens_available == pytest.approx(300 + 24 * 300)
    # Every hour the bucket is back at capacity a minute after a 5-token take: 295 lost.
    assert report.tokens_wasted == pytest.approx(24 * 295, rel=1e-9)
    assert report.final_tokens == pytest.approx(295, rel=1e-9)


def test_no_waste_when_the_refill_is_spent():
    """A booking consumer from a drained account wastes nothing."""
    report = simulate(INCIDENT_CONFIG, Consumer(item_cost=5))

    assert report.tokens_wasted == 0.0
    # One batch (auto: 7 items) is booked beyond the end.
    assert pending_cost(report) == pytest.approx(35)


def test_utilization_counts_only_processed_batches():
    """Utilization is tokens of processed batches over starting balance plus refill."""
    report = simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch=20), hours=1, tokens=100)

    row = report.consumers[0]
    assert row.tokens_spent == row.items * 5
    assert report.utilization == pytest.approx(row.tokens_spent / (100 + 300))


def test_poll_without_tick_sleeps_until_the_burst_threshold():
    """A poll loop without a scheduler wakes when the balance should reach the threshold."""
    consumer = Consumer(item_cost=5, batch=7, strategy="poll")
    report = simulate(INCIDENT_CONFIG, consumer, hours=24)

    row = report.consumers[0]
    assert within(row.items_per_hour, ITEMS_PER_HOUR)
    assert report.events < 5 * 24 * 60 / 7 * 3  # no busy waiting


def test_overall_longest_stall_is_the_longest_time_nobody_progressed():
    """The account's stall merges the consumers: the starved ingestor does not count alone."""
    report = simulate(INCIDENT_CONFIG, incident_workload(batch=20, strategy="poll"))

    assert report.longest_stall_s == report.consumer("small").longest_stall_s < DAY


def test_same_seed_same_report_with_drawn_costs():
    """Drawn costs are seeded: the same seed repeats the run, another seed changes it."""
    workload = [
        Consumer(item_cost=ItemCost.uniform(3, 8), batch="auto", name="a"),
        Consumer(item_cost=ItemCost.uniform(1, 10), batch=4, strategy="poll", tick=60, name="b"),
    ]
    first = simulate(INCIDENT_CONFIG, workload, seed=7)

    assert simulate(INCIDENT_CONFIG, workload, seed=7) == first
    assert simulate(INCIDENT_CONFIG, workload, seed=8) != first
    assert 0 <= pending_cost(first) <= 300


def test_adaptive_sizer_learns_drawn_costs():
    """With drawn costs the sized batches vary as observe() learns, and progress never stops."""
    consumer = Consumer(item_cost=ItemCost.uniform(2, 8), batch="auto")
    report = simulate(INCIDENT_CONFIG, consumer, seed=1)

    row = report.consumers[0]
    assert row.mean_batch is not None
    assert row.mean_batch != int(row.mean_batch)  # not one fixed size
    assert row.longest_stall_s < 3600
    assert report.utilization > 0.95


def test_large_batches_of_drawn_costs_stay_in_bounds():
    """Thousands of drawn items per batch cost between n x low and n x high."""
    cost = ItemCost.uniform(0.01, 0.03)
    config = BucketConfig(1e5, Rate.per_second(100), burst_threshold=5e4)
    report = simulate(config, Consumer(item_cost=cost, batch=2000), hours=1)

    row = report.consumers[0]
    assert 0.01 * row.items <= row.tokens_spent <= 0.03 * row.items


def test_progress_is_reported_up_to_one():
    """The progress callback sees growing shares of simulated time, ending at 1."""
    seen: list[float] = []
    simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch=1), progress=seen.append)

    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert 50 <= len(seen) <= 102


def test_timeline_follows_the_account_balance():
    """timeline=True records the balance the server would show: booked 20-item batches need 101."""
    report = simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch=20), timeline=True)

    times = [t for t, _ in report.timeline]
    balances = [b for _, b in report.timeline]
    assert times == sorted(times)
    assert report.timeline[0] == (0.0, 0.0)
    assert times[-1] == DAY
    assert max(balances) == pytest.approx(101)
    assert min(balances[2:]) >= 1 - 1e-9  # after the start, never spent below min
    assert simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch=20)).timeline == ()


def test_consumers_at_equal_times_act_in_the_order_given():
    """At equal times consumers act in the order given: the first one takes the tokens."""
    a = Consumer(item_cost=40, batch=1, strategy="poll", tick=60, name="a")
    b = Consumer(item_cost=39, batch=1, strategy="poll", tick=60, name="b")
    report = simulate(INCIDENT_CONFIG, [a, b], tokens=41, hours=0.001)

    assert report.consumer("a").items == 1
    assert report.consumer("b").items == 0


def test_report_to_dict_is_plain_data():
    """to_dict() gives the numbers and every consumer's row."""
    data = simulate(INCIDENT_CONFIG, incident_workload(batch=20, strategy="book")).to_dict()

    assert data["config"]["burst_threshold"] == 40  # type: ignore[index]
    assert [c["name"] for c in data["consumers"]] == ["ingestor", "small"]  # type: ignore[attr-defined]


# -- validation ------------------------------------------------------------------------------


def test_item_above_max_cost_is_refused_naming_the_consumer():
    """An item the account can never admit fails before simulating, naming the consumer."""
    with pytest.raises(ValueError, match=r"consumer 'big'.*300"):
        simulate(INCIDENT_CONFIG, Consumer(item_cost=300, batch=1, name="big"))


def test_fixed_batch_above_max_cost_is_refused():
    """A fixed batch whose cost can never be admitted fails before simulating."""
    with pytest.raises(ValueError, match="batch of 60 items"):
        simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch=60))


def test_auto_batch_with_unbounded_deficit_needs_max_batch():
    """An unbounded debt leaves auto sizing without a limit: max_batch is required."""
    config = BucketConfig(
        300, Rate.per_minute(5), min_threshold=1, deficit=DeficitRule.while_positive(math.inf)
    )
    with pytest.raises(ValueError, match="max_batch"):
        simulate(config, Consumer(item_cost=5))
    assert simulate(config, Consumer(item_cost=5, max_batch=10)).items > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hours": 0}, "hours"),
        ({"tokens": 301}, "tokens"),
        ({"consumers": []}, "at least one"),
        ({"consumers": [Consumer(item_cost=5, name="x")] * 2}, "unique"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    """Bad hours, starting balance, or consumers fail with a message that names them."""
    args = {"consumers": Consumer(item_cost=5), **kwargs}
    with pytest.raises(ValueError, match=match):
        simulate(INCIDENT_CONFIG, **args)


@pytest.mark.parametrize(
    "kwargs",
    [{"batch": 0}, {"batch": "big"}, {"strategy": "wait"}, {"tick": 0}, {"item_cost": -1}],
)
def test_bad_consumers_raise_value_error(kwargs):
    """A consumer is validated when it is built."""
    with pytest.raises(ValueError):
        Consumer(**{"item_cost": 5, **kwargs})


def test_item_cost_parse():
    """The command line's item costs: N or LOW..HIGH."""
    assert ItemCost.parse("5") == ItemCost.fixed(5)
    assert ItemCost.parse("3..8") == ItemCost.uniform(3, 8)
    with pytest.raises(ValueError, match=r"LOW\.\.HIGH"):
        ItemCost.parse("8..3")


# -- livelock freedom of the adaptive policy (hypothesis) ------------------------------------


def _adaptive_case(config: BucketConfig, item_cost: float, tokens: float):
    """The sized batch's cost k, a starting balance bounded in batches, and the longest wait W."""
    max_batch = None if math.isfinite(config.max_cost) else 1000
    limit = max_batch or max(1, math.floor(config.max_cost / item_cost))
    k = AdaptiveBatchSizer(item_cost, max_batch=limit).size(config) * item_cost
    need = config.required_balance(k)
    # Keep the first burst of batches short: at most 50 batches' worth of balance above R(k).
    tokens = min(tokens, need + 50 * k)
    lowest = min(tokens, need - k)  # after a batch the balance is at least R(k) - k
    rate = config.refill.tokens_per_second
    wait = (max(config.burst_threshold, need) - lowest) / rate
    return max_batch, k, tokens, wait


@st.composite
def adaptive_cases(draw: st.DrawFn):
    config = draw(configs())
    item_cost = draw(costs(config))
    tokens = draw(starting_balances(config))
    return config, item_cost, tokens


@given(adaptive_cases())
def test_adaptive_booking_never_stalls_longer_than_one_refill(case):
    """Sized batches under booking never wait longer than one refill to max(B, R(k)): no livelock.

    When that refill fits in a day, no simulated day passes without progress.
    """
    config, item_cost, tokens = case
    max_batch, k, tokens, wait = _adaptive_case(config, item_cost, tokens)
    rate = config.refill.tokens_per_second
    horizon = min(2 * DAY, wait + 50 * k / rate)
    consumer = Consumer(item_cost=item_cost, batch="auto", max_batch=max_batch)

    report = simulate(config, consumer, hours=horizon / 3600, tokens=tokens)

    row = report.consumers[0]
    assert row.longest_stall_s <= wait * (1 + 1e-6) + 1e-6
    if wait <= DAY:
        assert row.longest_stall_s <= DAY
    if wait * (1 + 1e-6) + 1e-6 < horizon:
        assert row.items > 0


@given(adaptive_cases())
def test_adaptive_poll_on_a_tick_never_livelocks(case):
    """Even the pre-fix poll loop makes progress once its batches are sized: wait + one tick."""
    config, item_cost, tokens = case
    max_batch, k, tokens, wait = _adaptive_case(config, item_cost, tokens)
    tick = 60.0
    rate = config.refill.tokens_per_second
    horizon = min(2 * DAY, wait + tick + 50 * max(tick, k / rate))
    consumer = Consumer(
        item_cost=item_cost, batch="auto", strategy="poll", tick=tick, max_batch=max_batch
    )

    report = simulate(config, consumer, hours=horizon / 3600, tokens=tokens)

    row = report.consumers[0]
    assert row.longest_stall_s <= wait * (1 + 1e-6) + tick + 1e-6
