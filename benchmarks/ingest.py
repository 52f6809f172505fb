"""The ingest simulation: items per hour as a share of the physical limit.

The physical limit of an account is refill / item cost items per hour. The
adaptive policy (``batch="auto"``, booking) is compared with the fixed batch
tiers of the seed incident (5, 20 and 50 items), run both with the incident's
loop (``poll`` on a 60 s scheduler tick) and with booking, on Keepa-like
accounts: capacity one hour of refill, burst threshold eight minutes of refill
(40 tokens at 5 tokens/min, the incident's account), min 1, strict deficit,
5 tokens an item, starting drained.
"""

from __future__ import annotations

import time

from peers import describe_error


RATES_PER_MIN = (5, 20, 60, 250, 1000)
ITEM_COST = 5
TIERS = (5, 20, 50)


def _config(rate_per_min: int):
    from tokenbudget import BucketConfig, Rate

    return BucketConfig(
        60 * rate_per_min,
        Rate.per_minute(rate_per_min),
        burst_threshold=8 * rate_per_min,
        min_threshold=1,
    )


def ingest(hours: float) -> dict:
    try:
        from tokenbudget.sim import (
            INCIDENT_CONFIG,
            Consumer,
            incident_workload,
            simulate,
        )
    except ImportError as exc:
        return {"error": f"tokenbudget.sim not available: {describe_error(exc)}"}
    rows = []
    started = time.perf_counter()
    slowest = 0.0
    for rate in RATES_PER_MIN:
        config = _config(rate)
        limit = rate * 60 / ITEM_COST
        row: dict = {"rate_per_min": rate, "limit_items_per_hour": limit}
        policies = [("auto", "book", "auto (book)")]
        policies += [(n, "poll", f"{n} (poll)") for n in TIERS]
        policies += [(n, "book", f"{n} (book)") for n in TIERS]
        for batch, strategy, label in policies:
            consumer = Consumer(
                item_cost=ITEM_COST,
                batch=batch,
                strategy=strategy,
                tick=60.0 if strategy == "poll" else None,
                name="ingestor",
            )
            t0 = time.perf_counter()
            try:
                report = simulate(config, consumer, hours=hours)
            except Exception as exc:
                row[label] = {"error": describe_error(exc)}
                continue
            slowest = max(slowest, (time.perf_counter() - t0) * 24 / hours)
            row[label] = {
                "share": report.items_per_hour / limit,
                "items_per_hour": report.items_per_hour,
                "longest_stall_s": report.longest_stall_s,
            }
        rows.append(row)
    incident = {}
    for label, batch, strategy in (("20 (poll)", 20, "poll"), ("auto (book)", "auto", "book")):
        report = simulate(
            INCIDENT_CONFIG, incident_workload(batch=batch, strategy=strategy), hours=hours
        )
        incident[label] = {
            "ingestor_items": report.consumer("ingestor").items,
            "small_items": report.consumer("small").items,
            "share": report.items_per_hour / (5 * 60 / ITEM_COST),
        }
    return {
        "hours": hours,
        "item_cost": ITEM_COST,
        "rows": rows,
        "incident": incident,
        "seconds": time.perf_counter() - started,
        "slowest_24h_seconds": slowest,
    }
