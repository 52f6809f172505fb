"""The discrete-event simulator behind :mod:`tokenbudget.sim`.

Every consumer is a small state machine woken by an event queue keyed by
time (:mod:`heapq`). All of them share one real :class:`~tokenbudget.TokenBucket` on one
:class:`~tokenbudget.ManualClock`: the simulator moves the clock to each event's time and
lets the consumer call the bucket, so every decision is the library's own.
A booking consumer does what :meth:`~tokenbudget.TokenBucket.acquire` does (book, then
sleep the delay) with the sleep turned into an event, so that the other
consumers run in between in time order.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable
from typing import Final, Literal

import attrs

from . import _core
from ._bucket import TokenBucket
from ._clock import ManualClock
from ._config import BucketConfig, DeficitRule, Rate
from ._sizer import AdaptiveBatchSizer


__all__ = [
    "INCIDENT_CONFIG",
    "BatchPolicy",
    "Consumer",
    "ConsumerReport",
    "ItemCost",
    "SimulationReport",
    "Strategy",
    "incident_workload",
    "simulate",
]

#: ``"book"``: the library's booking (``reserve``/``acquire``); ``"poll"``: the pre-fix loop.
Strategy = Literal["book", "poll"]
#: A fixed number of items per batch, or ``"auto"`` for an :class:`~tokenbudget.AdaptiveBatchSizer`.
BatchPolicy = int | Literal["auto"]

#: Times closer than this (seconds) are equal.
_TIME_TOLERANCE: Final = 1e-9
#: A poll consumer without a scheduler tick never sleeps less than this (seconds).
MIN_POLL_INTERVAL: Final = 1.0
#: Above this many items a batch's drawn cost uses a normal approximation of the sum.
_EXACT_DRAWS: Final = 256

#: The account of the seed incident: 5 tokens a minute, capacity 300, burst 40, min 1, strict.
INCIDENT_CONFIG: Final = BucketConfig(
    300,
    Rate.per_minute(5),
    burst_threshold=40,
    min_threshold=1,
    deficit=DeficitRule.none(),
)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


@attrs.frozen
class ItemCost:
    """What one item costs: a fixed number of tokens, or a uniform draw in ``[low, high]``.

    >>> import random
    >>> ItemCost.fixed(5).draw(random.Random(0), items=20)
    100.0
    >>> str(ItemCost.uniform(3, 8))
    '3..8'

    Draws come from the consumer's own seeded :class:`random.Random`, so a
    simulation with the same seed is the same simulation.

    .. versionadded:: 0.1.0
    """

    low: float = attrs.field()
    high: float = attrs.field()

    def __attrs_post_init__(self) -> None:
        low = _positive("ItemCost.low", self.low)
        high = _positive("ItemCost.high", self.high)
        if high < low:
            raise ValueError(f"ItemCost.high {high!r} must be >= low {low!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @classmethod
    def fixed(cls, cost: float) -> ItemCost:
        """Every item costs *cost* tokens."""
        return cls(cost, cost)

    @classmethod
    def uniform(cls, low: float, high: float) -> ItemCost:
        """Each item costs a uniform draw in ``[low, high]`` tokens."""
        return cls(low, high)

    @classmethod
    def parse(cls, text: str) -> ItemCost:
        """``"5"`` (fixed) or ``"3..8"`` (uniform), as the command line writes them."""
        low, sep, high = text.partition("..")
        try:
            return cls(float(low), float(high if sep else low))
        except (TypeError, ValueError) as e:
            raise ValueError(f"item cost must be N or LOW..HIGH with 0 < LOW <= HIGH: {e}") from e

    def __str__(self) -> str:
        if self.low == self.high:
            return f"{self.low:g}"
        return f"{self.low:g}..{self.high:g}"

    @property
    def is_fixed(self) -> bool:
        """Whether every item costs the same."""
        return self.low == self.high

    @property
    def mean(self) -> float:
        """The expected cost of one item."""
        return (self.low + self.high) / 2

    def draw(self, rng: random.Random, items: int) -> float:
        """The cost of a batch of *items* items."""
        if self.low == self.high:
            return items * self.low
        if items <= _EXACT_DRAWS:
            return math.fsum(rng.uniform(self.low, self.high) for _ in range(items))
        spread = (self.high - self.low) * math.sqrt(items / 12)
        total = rng.gauss(items * self.mean, spread)
        return min(items * self.high, max(items * self.low, total))


def _to_item_cost(value: float | ItemCost) -> ItemCost:
    if isinstance(value, ItemCost):
        return value
    return ItemCost.fixed(value)


def _check_batch(_: object, __: attrs.Attribute[BatchPolicy], value: object) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"batch must be an integer >= 1 or 'auto', got {value!r}")


def _check_tick(_: object, __: attrs.Attribute[float | None], value: object) -> None:
    if value is not None:
        _positive("tick", value)


def _check_max_batch(_: object, __: attrs.Attribute[int | None], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_batch must be an integer >= 1 or None, got {value!r}")


@attrs.frozen(kw_only=True)
class Consumer:
    """One consumer of the shared account: what it processes and how it asks for tokens.

    >>> Consumer(item_cost=5, batch=20, strategy="poll", tick=60).item_cost
    ItemCost(low=5.0, high=5.0)

    Args:
        item_cost: Tokens per item: a number, or an :class:`ItemCost`. A
            batch asks the bucket for its drawn cost (the true cost, known up
            front here); ``"auto"`` learns it afterwards through ``observe``.
        batch: Items per batch, or ``"auto"``: an :class:`~tokenbudget.AdaptiveBatchSizer`
            sizes each batch (its estimate starts at the mean item cost and
            learns each batch's cost through ``observe``).
        strategy: ``"book"`` books each batch first come, first served and
            processes it at its booking's time (:meth:`~tokenbudget.TokenBucket.reserve`,
            what :meth:`~tokenbudget.TokenBucket.acquire` does). ``"poll"`` is the loop of
            the seed incident: wait until the balance reaches the burst
            threshold, try the whole batch once (:meth:`~tokenbudget.TokenBucket.try_acquire`),
            and on refusal enter its own recharge mode and wait again.
        tick: A scheduler period in seconds (a Celery beat: ``60``): the
            consumer wakes only at multiples of it, one batch per wake-up.
            Without one, a booking consumer books its next batch as soon as
            one is done, and a polling one sleeps until the balance should
            reach the burst threshold (at least :data:`MIN_POLL_INTERVAL`).
        name: The consumer's name in reports (default ``"c1"``, ``"c2"``, …
            by position).
        max_batch: The largest batch ``"auto"`` proposes (needed when the
            bucket's deficit is unbounded).

    .. versionadded:: 0.1.0
    """

    item_cost: ItemCost = attrs.field(converter=_to_item_cost)
    batch: BatchPolicy = attrs.field(default="auto", validator=_check_batch)
    strategy: Strategy = attrs.field(
        default="book", validator=attrs.validators.in_(("book", "poll"))
    )
    tick: float | None = attrs.field(default=None, validator=_check_tick)
    name: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    max_batch: int | None = attrs.field(default=None, validator=_check_max_batch)


@attrs.frozen(kw_only=True)
class ConsumerReport:
    """What one consumer achieved in a simulation.

    Attributes:
        name: The consumer's name.
        strategy: ``"book"`` or ``"poll"``.
        batch: Its batch policy (a number or ``"auto"``).
        item_cost: Its item cost.
        items: Items processed.
        batches: Batches processed.
        tokens_spent: Tokens its processed batches cost.
        items_per_hour: :attr:`items` per simulated hour.
        utilization: Its share of the refill budget: :attr:`tokens_spent`
            over the tokens that became available (starting balance plus refill).
        longest_stall_s: The longest time without a batch processed, counting
            from the start and up to the end of the simulation.
        first_progress_s: When its first batch was processed (None: never).
        wakeups: Times it woke up: a processed batch for ``book``; every
            check of the balance for ``poll``.
        idle_wakeups: Wake-ups that processed nothing.

    .. versionadded:: 0.1.0
    """

    name: str
    strategy: Strategy
    batch: BatchPolicy
    item_cost: ItemCost
    items: int
    batches: int
    tokens_spent: float
    items_per_hour: float
    utilization: float
    longest_stall_s: float
    first_progress_s: float | None
    wakeups: int
    idle_wakeups: int

    @property
    def mean_batch(self) -> float | None:
        """Items per processed batch (None before any)."""
        return self.items / self.batches if self.batches else None

    def to_dict(self) -> dict[str, object]:
        """Plain, JSON-ready data."""
        return {
            "name": self.name,
            "strategy": self.strategy,
            "batch": self.batch,
            "item_cost": str(self.item_cost),
            "items": self.items,
            "batches": self.batches,
            "mean_batch": self.mean_batch,
            "tokens_spent": self.tokens_spent,
            "items_per_hour": self.items_per_hour,
            "utilization": self.utilization,
            "longest_stall_s": self.longest_stall_s,
            "first_progress_s": self.first_progress_s,
            "wakeups": self.wakeups,
            "idle_wakeups": self.idle_wakeups,
        }


@attrs.frozen(kw_only=True)
class SimulationReport:
    """The outcome of :func:`simulate`: the account as a whole and each consumer.

    Attributes:
        config: The bucket's configuration.
        hours: Simulated hours.
        tokens: The starting balance.
        seed: The seed of the cost draws.
        consumers: One :class:`ConsumerReport` per consumer, in the order given.
        items: Items processed by all consumers.
        items_per_hour: :attr:`items` per simulated hour.
        tokens_available: Tokens that became available: the starting balance
            plus the refill over the simulated time (before the capacity cap).
        tokens_spent: Tokens the processed batches cost.
        tokens_wasted: Refill lost because the bucket sat at capacity.
        utilization: :attr:`tokens_spent` / :attr:`tokens_available`.
        longest_stall_s: The longest time in which no consumer processed anything.
        idle_wakeups: Wake-ups of all consumers that processed nothing.
        final_tokens: The balance at the end, net of bookings not yet due.
        events: Events the simulator handled (a measure of its work).
        timeline: With ``simulate(timeline=True)``, ``(time, tokens)`` points
            of the account's balance (what the server would report: bookings
            not processed yet are not spent yet) just before and just
            after every event, in time order; between two points it changes
            only by the refill. Empty otherwise.

    .. versionadded:: 0.1.0
    """

    config: BucketConfig
    hours: float
    tokens: float
    seed: int
    consumers: tuple[ConsumerReport, ...]
    items: int
    items_per_hour: float
    tokens_available: float
    tokens_spent: float
    tokens_wasted: float
    utilization: float
    longest_stall_s: float
    idle_wakeups: int
    final_tokens: float
    events: int
    timeline: tuple[tuple[float, float], ...] = attrs.field(default=(), repr=False, eq=False)

    def consumer(self, name: str) -> ConsumerReport:
        """The report of the consumer called *name*.

        Raises:
            KeyError: No consumer has that name.
        """
        for row in self.consumers:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        """Plain, JSON-ready data (the config's numbers, the totals, the consumers)."""
        cfg = self.config
        return {
            "config": {
                "capacity": cfg.capacity,
                "rate_per_min": cfg.refill.tokens_per_second * 60,
                "burst_threshold": cfg.burst_threshold,
                "min_threshold": cfg.min_threshold,
                "deficit": cfg.deficit.kind,
                "max_deficit": cfg.max_deficit,
            },
            "hours": self.hours,
            "tokens": self.tokens,
            "seed": self.seed,
            "items": self.items,
            "items_per_hour": self.items_per_hour,
            "tokens_available": self.tokens_available,
            "tokens_spent": self.tokens_spent,
            "tokens_wasted": self.tokens_wasted,
            "utilization": self.utilization,
            "longest_stall_s": self.longest_stall_s,
            "idle_wakeups": self.idle_wakeups,
            "final_tokens": self.final_tokens,
            "events": self.events,
            "consumers": [row.to_dict() for row in self.consumers],
        }


def incident_workload(
    *, batch: BatchPolicy = 20, strategy: Strategy = "poll", tick: float = 60.0
) -> tuple[Consumer, Consumer]:
    """The seed incident's workload, for :data:`INCIDENT_CONFIG`.

    An ``"ingestor"`` of 5-token items in batches of *batch*, and a
    ``"small"`` consumer taking one 5-token item at a time, both with
    *strategy*. Poll consumers run on a scheduler *tick* (a Celery beat);
    booking consumers are workers that book their next batch when one is
    done.

    .. versionadded:: 0.1.0
    """
    poll_tick = tick if strategy == "poll" else None
    return (
        Consumer(item_cost=5, batch=batch, strategy=strategy, tick=poll_tick, name="ingestor"),
        Consumer(item_cost=5, batch=1, strategy=strategy, tick=poll_tick, name="small"),
    )


# -- the engine -----------------------------------------------------------------------------


def _next_tick(now: float, tick: float, *, after: bool) -> float:
    """The first multiple of *tick* at or after *now* (strictly after if *after*)."""
    k = now / tick
    n = math.floor(k + _TIME_TOLERANCE) + 1 if after else math.ceil(k - _TIME_TOLERANCE)
    return n * tick


@attrs.define
class _Runner:
    """One consumer's state during a run."""

    spec: Consumer
    name: str
    config: BucketConfig
    rng: random.Random
    sizer: AdaptiveBatchSizer | None
    items: int = 0
    batches: int = 0
    spent: float = 0.0
    wakeups: int = 0
    idle: int = 0
    last_progress: float = 0.0
    longest_stall: float = 0.0
    first_progress: float | None = None
    #: The poll loop's own recharge mode (the pre-fix token manager's).
    recharging: bool = False
    #: A batch drawn and not yet admitted or processed: (items, cost).
    held: tuple[int, float] | None = None
    #: Whether :attr:`held` is booked (``book``: processed at its booking's time).
    booked: bool = False

    def unspent(self) -> float:
        """The cost of this consumer's booking not processed yet (else 0)."""
        if self.booked and self.held is not None:
            return self.held[1]
        return 0.0

    def _draw(self) -> tuple[int, float]:
        if self.held is None:
            sizer = self.sizer
            items = sizer.size(self.config) if sizer is not None else int(self.spec.batch)
            cost = self.spec.item_cost.draw(self.rng, items)
            self.held = (items, min(cost, self.config.max_cost))
        return self.held

    def _processed(self, now: float) -> None:
        assert self.held is not None  # noqa: S101 -- only called with a batch in hand
        items, cost = self.held
        self.held = None
        self.items += items
        self.batches += 1
        self.spent += cost
        self.wakeups += 1
        stall = now - self.last_progress
        if stall > self.longest_stall:
            self.longest_stall = stall
        self.last_progress = now
        if self.first_progress is None:
            self.first_progress = now
        if self.sizer is not None:
            self.sizer.observe(items, cost)

    def wake(self, now: float, bucket: TokenBucket) -> tuple[float, bool]:
        """Act at *now*; return the time of the next wake-up and whether a batch was processed."""
        if self.spec.strategy == "book":
            return self._book(now, bucket)
        return self._poll(now, bucket)

    def _book(self, now: float, bucket: TokenBucket) -> tuple[float, bool]:
        tick = self.spec.tick
        done = False
        if self.booked:  # the booking's time has come: acquire() would return now
            self.booked = False
            self._processed(now)
            done = True
            if tick is not None:
                at = _next_tick(now, tick, after=False)
                if at > now + _TIME_TOLERANCE:
                    return at, done
        _, cost = self._draw()
        reservation = bucket.reserve(cost)
        self.booked = True
        return max(now, reservation.time), done

    def _poll(self, now: float, bucket: TokenBucket) -> tuple[float, bool]:
        burst = self.config.burst_threshold
        reached = burst - _core.TOKEN_TOLERANCE * max(1.0, burst)
        snap = bucket.snapshot()
        done = False
        if not self.recharging or snap.tokens >= reached:
            self.recharging = False
            _, cost = self._draw()
            if bucket.try_acquire(cost):
                self._processed(now)
                done = True
            else:
                self.recharging = True
        if not done:
            self.wakeups += 1
            self.idle += 1
        tick = self.spec.tick
        if tick is not None:
            return _next_tick(now, tick, after=True), done
        if done:
            return now, done
        tokens = bucket.snapshot().tokens
        wait = (burst - tokens) / snap.rate
        return now + max(wait, MIN_POLL_INTERVAL), done

    def report(self, end: float, hours: float, available: float) -> ConsumerReport:
        stall = max(self.longest_stall, end - self.last_progress)
        return ConsumerReport(
            name=self.name,
            strategy=self.spec.strategy,
            batch=self.spec.batch,
            item_cost=self.spec.item_cost,
            items=self.items,
            batches=self.batches,
            tokens_spent=self.spent,
            items_per_hour=self.items / hours,
            utilization=self.spent / available if available > 0 else 0.0,
            longest_stall_s=stall,
            first_progress_s=self.first_progress,
            wakeups=self.wakeups,
            idle_wakeups=self.idle,
        )


def _sizer_for(spec: Consumer, config: BucketConfig, label: str) -> AdaptiveBatchSizer | None:
    """Check that the consumer's batches can ever be admitted; build its sizer."""
    worst = spec.item_cost.high
    if worst > config.max_cost:
        raise ValueError(
            f"{label}: an item may cost {worst:g} tokens, more than the largest cost "
            f"the bucket can ever admit ({config.max_cost:g})"
        )
    if spec.batch != "auto":
        if spec.batch * worst > config.max_cost:
            raise ValueError(
                f"{label}: a batch of {spec.batch} items may cost {spec.batch * worst:g} tokens, "
                f"more than the largest cost the bucket can ever admit ({config.max_cost:g})"
            )
        return None
    limit = spec.max_batch
    if math.isfinite(config.max_cost):
        fits = max(1, math.floor(config.max_cost / worst))
        limit = fits if limit is None else min(limit, fits)
    elif limit is None:
        raise ValueError(
            f"{label}: batch='auto' needs a max_batch when the bucket's deficit is unbounded"
        )
    return AdaptiveBatchSizer(spec.item_cost.mean, max_batch=limit)


def _runners(specs: tuple[Consumer, ...], config: BucketConfig, seed: int) -> list[_Runner]:
    runners: list[_Runner] = []
    names: set[str] = set()
    for i, spec in enumerate(specs):
        name = spec.name or f"c{i + 1}"
        if name in names:
            raise ValueError(f"consumer names must be unique, got {name!r} twice")
        names.add(name)
        sizer = _sizer_for(spec, config, f"consumer {name!r}")
        rng = random.Random(f"{seed}:{i}")  # noqa: S311 -- reproducible draws, not secrets
        runners.append(_Runner(spec, name, config, rng, sizer))
    return runners


def _sampler(
    bucket: TokenBucket, runners: list[_Runner], timeline: list[tuple[float, float]] | None
) -> Callable[[float], None]:
    """A function recording the account's balance at a time into *timeline* (or a no-op).

    The account's balance is what the server would report: the bucket's
    balance plus the bookings not processed yet (not spent yet).
    """
    if timeline is None:
        return lambda _: None
    snapshot = bucket.snapshot
    append = timeline.append

    def sample(now: float) -> None:
        pending = math.fsum(r.unspent() for r in runners)
        append((now, snapshot().tokens + pending))

    return sample


def _reporter(progress: Callable[[float], None] | None, end: float) -> Callable[[float], None]:
    """A function passing the share of simulated time done to *progress*, every 1 %."""
    if progress is None:
        return lambda _: None
    step = end / 100
    due = [step]

    def report(now: float) -> None:
        if now >= due[0]:
            progress(min(1.0, now / end))
            due[0] = (math.floor(now / step) + 1) * step

    return report


def _run(
    runners: list[_Runner],
    bucket: TokenBucket,
    clock: ManualClock,
    end: float,
    *,
    progress: Callable[[float], None] | None,
    timeline: list[tuple[float, float]] | None,
) -> tuple[int, float]:
    """Run the event loop up to *end*; return the events handled and the longest stall.

    With a *timeline* list, append the balance before and after every event.
    """
    queue: list[tuple[float, int, int]] = [(0.0, i, i) for i in range(len(runners))]
    seq = len(runners)
    events = 0
    last_progress = 0.0
    longest_stall = 0.0
    sample = _sampler(bucket, runners, timeline)
    report = _reporter(progress, end)
    push = heapq.heappush
    pop = heapq.heappop
    while queue and queue[0][0] <= end + _TIME_TOLERANCE:
        at, _, i = pop(queue)
        now = clock.now()
        if at > now:
            clock.advance(at - now)
            now = clock.now()
        sample(now)
        nxt, done = runners[i].wake(now, bucket)
        sample(now)
        events += 1
        if done:
            longest_stall = max(longest_stall, now - last_progress)
            last_progress = now
        push(queue, (nxt, seq, i))
        seq += 1
        report(now)
    if end > clock.now():
        clock.advance(end - clock.now())
    sample(clock.now())
    if progress is not None:
        progress(1.0)
    return events, max(longest_stall, end - last_progress)


def simulate(
    config: BucketConfig,
    consumers: Consumer | Iterable[Consumer],
    *,
    hours: float = 24.0,
    tokens: float = 0.0,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    timeline: bool = False,
) -> SimulationReport:
    """Run *consumers* against one real :class:`~tokenbudget.TokenBucket` of *config* for *hours*.

    Deterministic: the same arguments give the same report. Time is a
    :class:`~tokenbudget.ManualClock`; nothing sleeps for real.

    >>> from tokenbudget.sim import INCIDENT_CONFIG, incident_workload, simulate
    >>> report = simulate(INCIDENT_CONFIG, incident_workload(batch=20, strategy="poll"))
    >>> report.consumer("ingestor").items, report.consumer("small").items
    (0, 1433)

    Args:
        config: The shared account.
        consumers: One :class:`Consumer` or several; at equal times they act
            in the order in which they scheduled their wake-ups (first: the
            order given).
        hours: Simulated hours (> 0).
        tokens: The starting balance, in ``[-max_deficit, capacity]``
            (default 0: a drained account, the steady state of a busy one).
        seed: Seeds the cost draws of every consumer.
        progress: Called now and then with the share of simulated time done (0..1).
        timeline: Record the balance over time in :attr:`SimulationReport.timeline`
            (for plots; costs two snapshots per event).

    Raises:
        ValueError: No consumers, bad *hours* or *tokens*, or a consumer whose
            batches can never be admitted (the message names it).

    .. versionadded:: 0.1.0
    """
    specs = (consumers,) if isinstance(consumers, Consumer) else tuple(consumers)
    if not specs:
        raise ValueError("simulate needs at least one consumer")
    for spec in specs:
        if not isinstance(spec, Consumer):
            raise TypeError(f"consumers must be Consumer objects, got {spec!r}")
    hours = _positive("hours", hours)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    end = hours * 3600.0
    clock = ManualClock()
    bucket = TokenBucket(config, clock=clock, tokens=tokens)  # validates tokens
    start = bucket.snapshot()  # creates the state at time 0
    runners = _runners(specs, config, seed)
    points: list[tuple[float, float]] | None = [] if timeline else None
    events, longest_stall = _run(runners, bucket, clock, end, progress=progress, timeline=points)
    final = bucket.snapshot()
    refill = _core.refill_between(config, _core.new_state(config, start.tokens, 0.0), 0.0, end)
    available = start.tokens + refill
    spent = math.fsum(r.spent for r in runners)
    # What became available was booked, is still in the bucket, or was lost at capacity.
    wasted = available - final.booked - final.tokens
    if abs(wasted) <= 1e-9 * max(1.0, available):
        wasted = 0.0
    rows = tuple(r.report(end, hours, available) for r in runners)
    items = sum(r.items for r in rows)
    return SimulationReport(
        config=config,
        hours=hours,
        tokens=start.tokens,
        seed=seed,
        consumers=rows,
        items=items,
        items_per_hour=items / hours,
        tokens_available=available,
        tokens_spent=spent,
        tokens_wasted=wasted,
        utilization=spent / available if available > 0 else 0.0,
        longest_stall_s=longest_stall,
        idle_wakeups=sum(r.idle_wakeups for r in rows),
        final_tokens=final.tokens,
        events=events,
        timeline=tuple(points) if points is not None else (),
    )
