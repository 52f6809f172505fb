"""Hypothesis: random deal streams and random crash points never lose or duplicate a deal.

The streams are served by a client-level double (no HTTP: hypothesis runs
hundreds of examples) that pages like Keepa: newest first with a bounded local
disorder, 150 deals a page, ties in one minute, re-updates moving a deal to the
top, and new updates arriving while the ingestor pages and waits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenbudget import BucketConfig, DeficitRule, ManualClock, Rate, TokenBucket
from tokenbudget_keepa import (
    Deal,
    DealPage,
    MemoryDealSink,
    MemoryLease,
    MemoryWatermarkStore,
    Product,
    TokenStatus,
    Watermark,
)
from tokenbudget_keepa._ingestor.ingestor import SmartIngestor


START_MINUTE = 8_000_000  # Keepa minutes of the double's clock time 0
EPOCH_MS = 21_564_000 * 60_000
SELECTION = {"priceTypes": [1], "domainId": 1}


class Crash(BaseException):
    """A process dying at this point: nothing after it runs (not an Exception: uncaught)."""


@attrs.define
class CrashPoints:
    """Raises :class:`Crash` at the n-th instrumented call, once."""

    at: int | None
    calls: int = 0

    def tick(self) -> None:
        self.calls += 1
        if self.at is not None and self.calls == self.at:
            self.at = None
            raise Crash


@attrs.define
class StreamClient:
    """A Keepa client double over a scripted stream of ``(minute, asin)`` updates."""

    updates: Sequence[tuple[int, str]]
    jitter: Mapping[tuple[str, int], int]
    clock: ManualClock
    bucket: TokenBucket
    crash: CrashPoints
    domain: int = 1

    def minute(self) -> int:
        return START_MINUTE + int(self.clock.now() // 60)

    def state(self) -> dict[str, int]:
        """Each ASIN's latest update visible now."""
        now = self.minute()
        latest: dict[str, int] = {}
        for minute, asin in self.updates:
            if minute <= now and minute >= latest.get(asin, minute):
                latest[asin] = minute
        return latest

    def token_status(self, *, max_age: float | None = None) -> TokenStatus:
        stamp = dt.datetime.fromtimestamp(
            (self.minute() * 60_000 + EPOCH_MS + int(self.clock.now() % 60 * 1000)) / 1000,
            tz=dt.UTC,
        )
        snap = self.bucket.snapshot()
        return TokenStatus(snap.tokens, 60.0, 60.0, 0.0, stamp)

    def deals(self, selection: Any, *, page: int = 0) -> DealPage:
        self.crash.tick()
        self.bucket.acquire(5)
        self.crash.tick()
        order = sorted(
            self.state().items(),
            key=lambda item: (-(item[1] + self.jitter.get(item, 0)), item[0]),
        )
        chunk = order[page * 150 : (page + 1) * 150]
        deals = [
            Deal.from_raw({"asin": a, "lastUpdate": m, "current": [1000, 900]}) for a, m in chunk
        ]
        return DealPage(deals, page)

    def products(self, asins: Sequence[str], **_: Any) -> list[Product]:
        self.crash.tick()
        self.bucket.acquire(len(asins))
        return [Product.from_raw({"asin": a, "title": a}) for a in asins]


class CrashingSink(MemoryDealSink):
    """A memory sink that may crash before or after storing."""

    def __init__(self, crash: CrashPoints) -> None:
        super().__init__()
        self.crash = crash

    def upsert(self, deals: Sequence[Any]) -> None:
        self.crash.tick()
        MemoryDealSink.upsert(self, deals)
        self.crash.tick()


class AllFilter:
    """Accepts every deal but marks the product as needed, so deals are enriched."""

    name = "all"
    peek = False
    needs: ClassVar[Mapping[str, Any]] = {"stats": 1}

    def check_deal(self, deal: Deal) -> str | None:
        return None

    def check(self, deal: Deal, product: Product | None) -> str | None:
        return None


class OddRejector:
    """Rejects ASINs ending in an odd digit on the deal alone (a peek filter)."""

    name = "odd"
    peek = True
    needs: ClassVar[Mapping[str, Any]] = {}

    def check_deal(self, deal: Deal) -> str | None:
        return "peek:odd" if deal.asin[-1] in "13579" else None

    def check(self, deal: Deal, product: Product | None) -> str | None:
        return self.check_deal(deal)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[tuple[int, str]], dict[tuple[str, int], int]]:
    """Updates over three hours around the start: ties, re-updates, bursts of one minute."""
    asins = [f"B0{i:08d}" for i in range(draw(st.integers(1, 260)))]
    updates = []
    for asin in asins:
        first = draw(st.integers(START_MINUTE - 150, START_MINUTE + 120))
        updates.append((first, asin))
        later = st.integers(first, START_MINUTE + 180)  # re-updates
        updates.extend((draw(later), asin) for _ in range(draw(st.integers(0, 2))))
    # A burst: many deals sharing one minute.
    burst = draw(st.integers(START_MINUTE - 70, START_MINUTE + 100))
    updates += [(burst, f"B1{i:08d}") for i in range(draw(st.integers(0, 170)))]
    jitter = {}
    disorder = draw(st.integers(0, 12))  # the ingestor's bound is 5: beyond it, too
    rng = draw(st.randoms(use_true_random=False))
    for minute, asin in updates:
        jitter[(asin, minute)] = rng.randint(0, disorder)
    return updates, jitter


@settings(max_examples=100, deadline=None)
@given(
    stream=streams(),
    crashes=st.lists(st.integers(1, 40), max_size=6),
    beats=st.lists(st.integers(10, 900), min_size=1, max_size=12),
    peek=st.booleans(),
    seeded=st.booleans(),
)
def test_random_streams_and_crashes_lose_nothing(
    stream: tuple[list[tuple[int, str]], dict[tuple[str, int], int]],
    crashes: list[int],
    beats: list[int],
    peek: bool,
    seeded: bool,
) -> None:
    """Every deal updated between the first floor and the last horizon is stored, once, latest.

    Unseeded, the first run's own look-back is the first floor (paged over several runs).
    """
    updates, jitter = stream
    clock = ManualClock()
    config = BucketConfig(
        600, Rate.per_minute(50), min_threshold=1, deficit=DeficitRule.while_positive()
    )
    bucket = TokenBucket(config, clock=clock)
    crash = CrashPoints(None)
    client = StreamClient(updates, jitter, clock, bucket, crash)
    store = MemoryWatermarkStore()
    sink = CrashingSink(crash)
    lease = MemoryLease(clock=clock)
    filters = (OddRejector(), AllFilter()) if peek else (AllFilter(),)
    marks: list[Watermark] = []

    def ingestor() -> SmartIngestor:  # a fresh process: a new ingestor, the backlog lost
        return SmartIngestor(
            client,
            SELECTION,
            store=store,
            sink=sink,
            filters=filters,
            key="job",
            lease=lease,
            lease_ttl=30,
            settle_minutes=1,
            disorder_minutes=5,
            sweep_interval_minutes=1,
        )

    first_floor = START_MINUTE - 60
    if seeded:
        store.advance("job", Watermark(first_floor, ""))
    current = ingestor()
    runs = [*beats, 4000]  # a long last run catches up
    for i, seconds in enumerate(runs):
        crash.at = crashes[i] if i < len(crashes) else None
        crash.calls = 0
        try:
            current.run_once(time_budget=seconds)
        except Crash:
            current = ingestor()
            clock.advance(31)  # the crashed holder's lease expires
        mark = store.load("job")
        if mark is not None:
            marks.append(mark)
        clock.advance(seconds)
    crash.at = None
    clock.advance(600)  # a new sweep is due: the last run reads up to now - settle
    report = ingestor().run_once()
    assert report.stopped == "caught_up", report
    assert marks == sorted(marks), "the watermark went backwards"
    horizon = START_MINUTE + int(clock.now() // 60) - 1
    latest = client.state()
    wanted = {
        a
        for a, m in latest.items()
        if first_floor <= m <= horizon and not (peek and a[-1] in "13579")
    }
    stored = {d.asin: d.last_update for d in sink.deals()}
    missing = wanted - set(stored)
    assert not missing, f"lost: {sorted(missing)[:5]}"
    for asin in wanted:
        assert stored[asin] == latest[asin], f"{asin} stored at an old update"
    if peek:
        assert not any(a[-1] in "13579" for a in stored)
