"""Regression replay of the seed incident: waiting for the burst threshold alone livelocks.

The incident's account: capacity 300, 5 tokens a minute, burst threshold 40,
minimum threshold 1, strict rule. Its task ran every minute: a cheap deal query
(10 tokens) and then a product batch of 20 items at 5 tokens (100 tokens). The
pre-fix token manager woke at the burst threshold, asked once, and on refusal
went back to recharging — to 40 again. R(100) = 101 is never aimed for, and the
cheap query spends every wake-up, so the batch is refused all day.

The poll loop is written here over TokenBucket and ManualClock, independently
of ``tokenbudget.sim``.
"""

from __future__ import annotations

import itertools

from tokenbudget import AdaptiveBatchSizer, BucketConfig, ManualClock, Rate, TokenBucket


CONFIG = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)
DAY = 24 * 3600.0
MINUTE = 60.0
RATE = CONFIG.refill.tokens_per_second


class PreFixPoller:
    """The incident's rule on a real bucket: wake at B, ask once, on refusal recharge to B again."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.recharging = False

    def request(self, cost: float) -> bool:
        if self.recharging:
            if self.bucket.snapshot().tokens < CONFIG.burst_threshold:
                return False  # still waiting for the burst threshold
            self.recharging = False
        if self.bucket.try_acquire(cost):
            return True
        self.recharging = True  # refused: back to recharging, to 40 again
        return False


def _next_minute(clock: ManualClock) -> None:
    now = clock.now()
    clock.advance((now // MINUTE + 1) * MINUTE - now)


def _max_gap(times: list[float]) -> float:
    return max(b - a for a, b in itertools.pairwise(times))


def test_pre_fix_poller_makes_no_progress_all_day():
    """The pre-fix rule runs every minute for a day and never admits the 100-token batch."""
    clock = ManualClock()
    poller = PreFixPoller(TokenBucket(CONFIG, clock=clock, tokens=40))
    deals = products = 0
    while clock.now() < DAY:
        deals += poller.request(10)
        products += 20 * poller.request(100)
        _next_minute(clock)
    assert products == 0
    assert deals == 720  # busy all day: the cheap call takes every other wake-up


def test_same_workload_through_acquire_progresses_every_cycle():
    """Through acquire, the same task admits a product batch every (11 + 101) / r seconds."""
    clock = ManualClock()
    bucket = TokenBucket(CONFIG, clock=clock, tokens=40)
    batches: list[float] = []
    while clock.now() < DAY:
        bucket.acquire(10)
        bucket.acquire(100)
        batches.append(clock.now())
    cycle = (CONFIG.required_balance(10) + CONFIG.required_balance(100)) / RATE
    assert batches[0] <= cycle
    assert _max_gap(batches) <= cycle + 1e-6
    assert len(batches) >= DAY // cycle


def test_sized_units_with_the_pre_fix_poller_progress_every_recharge_cycle():
    """Sizing the whole unit (peek + commit) with AdaptiveBatchSizer, even the pre-fix poller progresses every cycle."""
    clock = ManualClock()
    poller = PreFixPoller(TokenBucket(CONFIG, clock=clock, tokens=40))
    sizer = AdaptiveBatchSizer([0.5, 5])  # the deal query per item, then the product
    n = sizer.size(CONFIG)
    assert n == 7
    peek, commit = sizer.phase_costs(n)
    commits: list[float] = []
    while clock.now() < DAY:
        if poller.request(peek) and poller.request(commit):
            commits.append(clock.now())
        _next_minute(clock)
    recharge_cycle = CONFIG.burst_threshold / RATE + 2 * MINUTE  # refill to B, plus polling
    assert commits[0] == 0.0
    assert _max_gap(commits) <= recharge_cycle
    items = n * len(commits)
    assert items * 5 >= 0.8 * (DAY * RATE)  # most of the refill buys products


def test_sizer_proposes_seven_items_for_the_incident():
    """For the incident's account and 5 tokens per item the sizer proposes 7 (7 x 5 + 1 <= 40)."""
    assert AdaptiveBatchSizer(5).size(CONFIG) == 7


def test_sized_batches_through_acquire_never_wait_twice():
    """Sized batches through acquire are admitted on every exit from recharge mode at once."""
    clock = ManualClock()
    bucket = TokenBucket(CONFIG, clock=clock, tokens=0.5)
    n = AdaptiveBatchSizer(5).size(CONFIG)
    batches: list[float] = []
    while clock.now() < DAY:
        bucket.acquire(n * 5)
        batches.append(clock.now())
    assert _max_gap(batches) <= CONFIG.required_balance(n * 5) / RATE + 1e-6
    assert n * 5 * len(batches) >= 0.99 * DAY * RATE
