"""The incident, end to end: a beat every minute for a simulated day on a 5-token account.

The account of the incident refills 5 tokens a minute; its bucket has a burst
threshold of 40 (a drained bucket recharges to 40 before spending again), and
each deal is enriched with ``offers=20`` (about 6 to 12 tokens a product). The
ingestor runs once a minute, as a Celery beat would, each run with the minute
as its time budget, against the emulator over loopback, for 24 simulated hours.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tokenbudget import BucketConfig, DeficitRule, ManualClock, Rate, TokenBucket
from tokenbudget_keepa import KeepaClient, MemoryDealSink, MemoryWatermarkStore, SmartIngestor
from tokenbudget_keepa._ingestor.beats import BeatRun, run_beats
from tokenbudget_keepa.testing import KeepaEmulator


SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}
HOURS = 24


@pytest.fixture(scope="module")
def day() -> tuple[BeatRun, dict[str, float], list[tuple[bool, float]]]:
    """One simulated day of beats (run once for the module's tests)."""
    clock = ManualClock()
    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.while_positive(),
        refill_step=60,
    )
    starts: list[tuple[bool, float]] = []
    with (
        KeepaEmulator(refill_per_min=5, tokens=40, clock=clock, history_minutes=120) as emu,
        KeepaClient(
            emu.api_key,
            base_url=emu.url,
            clock=clock,
            bucket=TokenBucket(config, clock=clock, tokens=40),
        ) as client,
    ):
        ingestor = SmartIngestor(
            client,
            SELECTION,
            store=MemoryWatermarkStore(),
            sink=MemoryDealSink(),
            filters=(),
            enrich={"offers": 20},
            key="incident",
        )
        bucket = client.bucket

        def before_next(_report: object, _now: float) -> None:
            snap = bucket.snapshot()
            starts.append((snap.recharging, snap.tokens))

        snap = bucket.snapshot()
        starts.append((snap.recharging, snap.tokens))
        beats = run_beats(ingestor, clock, seconds=HOURS * 3600, on_report=before_next)
        stats = emu.stats()
    counters = {
        "refilled": float(stats.tokens_refilled),
        "consumed": float(stats.tokens_consumed),
        "throttled": float(stats.throttled),
    }
    return beats, counters, starts


def test_no_request_is_ever_refused(day: tuple[BeatRun, dict[str, float], Callable]) -> None:
    """Zero HTTP 429 answers in the whole day."""
    _, counters, _ = day
    assert counters["throttled"] == 0


def test_the_refill_is_turned_into_work(day: tuple[BeatRun, dict[str, float], Callable]) -> None:
    """At least 95 % of the day's refill (and the starting 40) is spent on pages and products."""
    _, counters, _ = day
    assert counters["consumed"] >= 0.95 * (counters["refilled"] + 40)


def test_every_cycle_with_tokens_for_a_batch_advances(
    day: tuple[BeatRun, dict[str, float], list[tuple[bool, float]]],
) -> None:
    """A beat that starts with the bucket out of recharge mode moves the watermark or pages."""
    beats, _, starts = day
    for i, (report, moved) in enumerate(zip(beats.reports, beats.progressed(), strict=True)):
        recharging, tokens = starts[i]
        if not recharging and tokens >= 1:
            assert moved or report.pages > 0, (i, report)


def test_no_idle_wake_ups(day: tuple[BeatRun, dict[str, float], Callable]) -> None:
    """No beat spends tokens or waits without moving the watermark or reading a page."""
    beats, _, _ = day
    assert beats.longest_idle_stretch() == 0


def test_beats_that_cannot_work_return_at_once(
    day: tuple[BeatRun, dict[str, float], Callable],
) -> None:
    """A beat in recharge mode spends nothing and returns within its minute."""
    beats, _, _ = day
    for report in beats.reports:
        assert report.elapsed <= 60
        if report.stopped == "time_budget" and not report.batches and not report.pages:
            assert report.tokens_spent == 0


def test_the_day_ends_with_the_watermark_far_ahead(
    day: tuple[BeatRun, dict[str, float], Callable],
) -> None:
    """Deals kept being stored all day: no stretch of an hour without progress."""
    beats, _, _ = day
    total = beats.combined()
    assert total.accepted > 0
    gap = 0
    for moved in beats.progressed():
        gap = 0 if moved else gap + 1
        assert gap < 60
    assert total.errors == ()
