"""``tokenbudget-keepa demo``: the ingestor against a local emulator, nothing to configure.

The emulator runs on a low-refill account with a :class:`tokenbudget.ManualClock`
shared with the client, so a scheduler's beat once a minute for hours of
simulated time takes seconds. Accepted deals go to a local SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ._ingestor.beats import BeatRun, run_beats
from ._ingestor.filters import Filter, MinDrop, SalesRank
from ._ingestor.report import IngestReport
from ._ingestor.storage import Storage


__all__ = ["DEMO_ENRICH", "DEMO_KEY", "DEMO_SELECTION", "DemoResult", "demo_filters", "run_demo"]

DEMO_KEY = "demo"
#: New-price drops of the last day, on amazon.com.
DEMO_SELECTION: dict[str, Any] = {"domainId": 1, "priceTypes": [1], "dateRange": 0}
#: Products with the buy box: 3 tokens each, so the account's refill sets the pace.
DEMO_ENRICH: dict[str, Any] = {"stats": 90, "buybox": True}


def demo_filters() -> tuple[Filter, ...]:
    """The demo's filters: a sales rank of at most 500 000 and a drop of at least 30 %."""
    return (SalesRank(max_rank=500_000), MinDrop(30))


@attrs.frozen
class DemoResult:
    """What the demo did: the combined report, the beats, and the emulator's counters."""

    report: IngestReport
    beats: BeatRun
    hours: float
    rate_per_min: int
    start_tokens: int
    requests: int
    throttled: int
    tokens_consumed: int


def run_demo(
    storage: Storage,
    *,
    hours: float,
    rate_per_min: int,
    seed: int = 0,
    on_report: Callable[[IngestReport, float], None] | None = None,
) -> DemoResult:
    """Run the demo into *storage*: the ingestor once a simulated minute for *hours*."""
    from tokenbudget import ManualClock

    from ._client.clients import KeepaClient
    from ._ingestor.ingestor import SmartIngestor, stop_on_signals
    from .testing import KeepaEmulator

    clock = ManualClock()
    storage.store.reset(DEMO_KEY)
    storage.backlog.clear(DEMO_KEY)
    with (
        KeepaEmulator(refill_per_min=rate_per_min, clock=clock, seed=seed) as emulator,
        KeepaClient(emulator.api_key, base_url=emulator.url, clock=clock) as client,
    ):
        start_tokens = emulator.tokens_left
        ingestor = SmartIngestor(
            client,
            DEMO_SELECTION,
            store=storage.store,
            sink=storage.sink,
            filters=demo_filters(),
            enrich=DEMO_ENRICH,
            key=DEMO_KEY,
            lease=storage.lease,
            backlog=storage.backlog,
        )

        def report(r: IngestReport, now: float) -> bool:
            if on_report is not None:
                on_report(r, now)
            return False

        with stop_on_signals(ingestor):
            beats = run_beats(ingestor, clock, seconds=hours * 3600, on_report=report)
        stats = emulator.stats()
    return DemoResult(
        report=beats.combined(),
        beats=beats,
        hours=hours,
        rate_per_min=rate_per_min,
        start_tokens=start_tokens,
        requests=stats.total_requests,
        throttled=stats.throttled,
        tokens_consumed=stats.tokens_consumed,
    )
