"""One ingesting process of the shared-account ingestion day: Smart Ingestor runs on a beat.

Run as ``python -m tests.tokenbudget_keepa._ingest_day_worker URL REDIS_URL PREFIX UNTIL
JOB`` (the key from ``KEEPA_API_KEY``). Every :data:`EVERY` simulated seconds,
as a Celery beat would start it, one :meth:`SmartIngestor.run_once` with a time budget of
:data:`BUDGET` seconds ingests the job's deals (enriched, one token a product) spending from
the account's :class:`~tokenbudget_keepa.redis.RedisAccountBucket`, shared with the other
processes. Time is virtual (:mod:`._virtual_time`): it moves only while every process
sleeps, until the virtual time UNTIL. The bucket's events say when each request was sent.
Prints one JSON line.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from tokenbudget import BucketConfig, DeficitRule, Event, Rate

from ._virtual_time import VirtualClock


#: The account at the start: tokens a minute (the emulator's too), added once a minute.
RATE_PER_MIN = 20
STEP = 60.0
CAPACITY = 300
#: Simulated seconds between two runs of a job, and each run's time budget.
EVERY = 900.0
BUDGET = 600.0
SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}


def config() -> BucketConfig:
    """Every process's bucket: Keepa's model; a request counts as on the wire for 15 s."""
    return BucketConfig(
        CAPACITY,
        Rate.per_minute(RATE_PER_MIN),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(math.inf),
        refill_step=STEP,
        in_flight=15.0,
    )


class Sends:
    """The bucket's events of this process: when each request was sent."""

    def __init__(self) -> None:
        self.sent: list[float] = []  # the time each booking was due (sent then)

    def __call__(self, event: Event) -> None:
        if event.kind in {"admitted", "waited"}:
            self.sent.append(event.time + event.delay)
        elif event.kind == "cancelled" and self.sent:
            self.sent.pop()  # booked and cancelled at once (a probe): never sent


def ingest_day(url: str, bucket: Any, clock: VirtualClock, store: Any, sink: Any, job: str,
               end: float) -> tuple[list[dict[str, object]], int, list[str], int | None]:  # fmt: skip
    """The job's runs on the beat until *end*: what each did, deals accepted, errors."""
    from tokenbudget_keepa import KeepaClient, SmartIngestor

    sends: Sends = bucket._on_event
    runs: list[dict[str, object]] = []
    first_mark: int | None = None
    accepted = 0
    errors: list[str] = []
    with KeepaClient(base_url=url, bucket=bucket, clock=clock, timeout=15.0) as client:
        ingestor = SmartIngestor(
            client,
            SELECTION,
            store=store,
            sink=sink,
            filters=(),
            enrich={"stats": 1, "history": False},
            key=f"job-{job}",
        )
        beat = clock.now()
        while beat < end:
            clock.sleep(beat - clock.now())
            sends.sent.clear()
            start = clock.now()
            report = ingestor.run_once(time_budget=BUDGET)
            late = max((t - (start + BUDGET) for t in sends.sent), default=0.0)
            if late > 0:
                print(f"sent {late:g} s past the budget: {report}", file=sys.stderr)
            runs.append(
                {
                    "start": start,
                    "elapsed": report.elapsed,
                    "late_send": late,
                    "stopped": report.stopped,
                }
            )
            accepted += report.accepted
            errors.extend(report.errors)
            if report.watermark_after is not None and first_mark is None:
                first_mark = report.watermark_after.minute
            beat = max(beat + EVERY, clock.now())
    return runs, accepted, errors, first_mark


def main() -> None:
    import redis

    from tokenbudget_keepa import MemoryDealSink, MemoryWatermarkStore
    from tokenbudget_keepa.redis import RedisAccountBucket

    url, redis_url, prefix, until, job = sys.argv[1:6]
    end = float(until)
    client_redis = redis.Redis.from_url(redis_url)
    clock = VirtualClock(client_redis, prefix, f"job-{job}")
    sends = Sends()
    bucket = RedisAccountBucket(
        config(), client_redis, key="keepa:ingest-day", prefix=prefix, clock=clock
    )
    bucket._on_event = sends
    store, sink = MemoryWatermarkStore(), MemoryDealSink()
    try:
        runs, accepted, errors, first_mark = ingest_day(url, bucket, clock, store, sink, job, end)
    finally:
        clock.done()  # holds time no more, also when it failed
    mark = store.load(f"job-{job}")
    client_redis.close()
    print(
        json.dumps(
            {
                "runs": runs,
                "accepted": accepted,
                "stored": len(sink.deals()),
                "distinct": len(sink.asins()),
                "first_mark": first_mark,
                "mark": None if mark is None else [mark.minute, mark.asin],
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
