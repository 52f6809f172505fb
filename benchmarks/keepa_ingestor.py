"""The Smart Ingestor's throughput against the account's physical limit.

The ingestor runs once a simulated minute (a beat, each run with the minute as
its time budget) against a KeepaEmulator on a ManualClock, on accounts of 5,
20 and 250 tokens a minute that start drained, with every deal enriched with
``offers=20`` (about 6 to 7 tokens a product, as real batches) and more deals arriving than any of
these accounts can enrich, so the refill is the only limit. The physical limit
is ``(refill - paging) / item cost`` items an hour, with the paging and the
per-item cost the emulator really charged; the share is the ingestor's items
an hour over that limit.
"""

from __future__ import annotations

import time

from peers import describe_error


RATES_PER_MIN = (5, 20, 250)
#: Simulated hours per rate at full length (the fast accounts need fewer to settle).
HOURS = {5: 24.0, 20: 12.0, 250: 2.0}
SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}


def _one(rate: int, hours: float) -> dict:
    from tokenbudget import ManualClock
    from tokenbudget_keepa import KeepaClient, MemoryDealSink, MemoryWatermarkStore, SmartIngestor
    from tokenbudget_keepa._ingestor.beats import run_beats
    from tokenbudget_keepa.testing import KeepaEmulator

    clock = ManualClock()
    with (
        KeepaEmulator(
            refill_per_min=rate,
            tokens=0,
            clock=clock,
            deals_per_minute=max(3.0, rate / 6),
            history_minutes=120,
        ) as emulator,
        KeepaClient(emulator.api_key, base_url=emulator.url, clock=clock) as client,
    ):
        ingestor = SmartIngestor(
            client,
            SELECTION,
            store=MemoryWatermarkStore(),
            sink=MemoryDealSink(),
            filters=(),
            enrich={"offers": 20},
            key="bench",
        )
        started = time.perf_counter()
        beats = run_beats(ingestor, clock, seconds=hours * 3600)
        wall = time.perf_counter() - started
        stats = emulator.stats()
    total = beats.combined()
    paging = 5.0 * total.pages
    items = total.accepted
    item_cost = (stats.tokens_consumed - paging) / items if items else None
    refill = rate * 60 * hours
    limit = (refill - paging) / item_cost / hours if item_cost else None
    per_hour = items / hours
    return {
        "rate_per_min": rate,
        "hours": hours,
        "items": items,
        "items_per_hour": per_hour,
        "item_cost": item_cost,
        "paging_tokens_per_hour": paging / hours,
        "limit_items_per_hour": limit,
        "share": per_hour / limit if limit else None,
        "batches": len(total.batches),
        "throttled": stats.throttled,
        "tokens_left_at_end": stats.tokens_left,
        "errors": len(total.errors),
        "wall_seconds": wall,
    }


def keepa_ingestor(scale: float = 1.0) -> dict:
    """Each account's row; *scale* shortens the simulated hours (0.25 for a quick run)."""
    return {"rows": [_safe_one(rate, HOURS[rate] * scale) for rate in RATES_PER_MIN]}


def _safe_one(rate: int, hours: float) -> dict:
    try:
        return _one(rate, hours)
    except Exception as exc:
        return {"rate_per_min": rate, "error": describe_error(exc)}


def markdown(result: dict) -> list[str]:
    out = ["### Smart Ingestor: items an hour against the physical limit", ""]
    out += [
        (
            "| tokens/min | simulated h | items/h | tokens/item | paging tokens/h "
            "| limit items/h | share | balance at the end | HTTP 429 |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        if "error" in row:
            out.append(f"| {row['rate_per_min']} | {row['error']} | | | | | | | |")
            continue
        out.append(
            f"| {row['rate_per_min']} | {row['hours']:g} | {row['items_per_hour']:.1f} | "
            f"{row['item_cost']:.2f} | {row['paging_tokens_per_hour']:.1f} | "
            f"{row['limit_items_per_hour']:.1f} | {row['share']:.1%} | "
            f"{row['tokens_left_at_end']} | {row['throttled']} |"
        )
    out += [
        "",
        (
            "A beat every simulated minute against the KeepaEmulator, every deal enriched with "
            "offers=20, accounts starting drained; the limit is (refill - paging) / the tokens "
            "an item really cost. A share above 100 % is the debt the account ends in (Keepa "
            "runs a request whenever the balance is positive, so the last batch borrows)."
        ),
        "",
    ]
    return out


if __name__ == "__main__":
    print("\n".join(markdown(keepa_ingestor(0.25))))
