"""Three ingesting processes, one Keepa account, one Redis bucket, twelve refill-rate changes.

Issue 19: a day of ingestion on a shared Redis bucket with 3 processes and 12 refill-rate
changes: at most one 429 per change, and every run ends within its time budget.

Each process runs :class:`~tokenbudget_keepa.SmartIngestor` runs of its own job on a beat
(every 15 simulated minutes, a 10-minute time budget, as a Celery beat would start them),
spending from one :class:`~tokenbudget_keepa.redis.RedisAccountBucket` against one
emulator that streams deals. Keepa's refill rate changes twelve times through the day, up
and down (5 to 60 a minute); the account is the limit at the low rates.

Time is virtual (:mod:`._virtual_time`): it moves only while every process sleeps, so a
day takes as long as its requests (about 1,300), whatever the machine's load. A clock
compressed from real time (the other shared-account days) could not measure a time budget:
at 1800 times real time a process descheduled for half a second overran a 4-minute budget
by 15 simulated minutes. Requests take no virtual time, so several processes' requests
often share a millisecond of the server's timestamps, which real ones rarely do.

A run's time budget bounds its waits: no request of a run is sent past its budget, and no
run ends later than its budget and the documented grace (``REQUEST_GRACE``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tokenbudget_keepa._ingestor.ingestor import REQUEST_GRACE
from tokenbudget_keepa.testing import KeepaEmulator

from ._client_fixtures import SECRET
from ._ingest_day_worker import BUDGET, CAPACITY, EVERY, RATE_PER_MIN, STEP
from ._virtual_time import TimeKeeper
from .test_client_shared import shared_redis  # noqa: F401 -- the fixture


pytestmark = [pytest.mark.redis, pytest.mark.heavy]

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3
HOURS = 24.0
#: Deal updates a minute: three jobs enriching each (one token a deal) and paging.
DEALS_PER_MINUTE = 3
#: The refill rates of the day, in order (tokens a minute): up and down, 5 the lowest.
RATES = [5, 40, 10, 60, 5, 30, 8, 20, 5, 45, 12, 25]


def test_three_ingestors_share_one_account_through_twelve_rate_changes(shared_redis):  # noqa: F811
    """At most one 429 per rate change, every run within its budget, every job's deals go on."""
    redis_url, prefix = shared_redis
    control = redis.Redis.from_url(redis_url)
    keeper = TimeKeeper(control, prefix)
    names = [f"job-{job}" for job in range(PROCESSES)]
    keeper.expect("main", *names)
    main = keeper.clock("main")
    until = HOURS * 3600
    keepa = KeepaEmulator(
        api_key=SECRET,
        clock=keeper.clock(),
        refill_per_min=RATE_PER_MIN,
        refill_step=STEP,
        capacity=CAPACITY,
        tokens=30,
        history_minutes=60,
        deals_per_minute=DEALS_PER_MINUTE,
        seed=19,
    ).start()
    keeper.start()
    # 429s by window: [start, first change), then [change k, change k + 1).
    throttled_at: list[int] = []
    workers: list[subprocess.Popen[str]] = []
    late_runs: list[str] = []
    try:
        env = {
            **os.environ,
            "KEEPA_API_KEY": SECRET,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        }
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.tokenbudget_keepa._ingest_day_worker",
                    keepa.url,
                    redis_url,
                    prefix,
                    repr(until),
                    str(job),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            for job in range(PROCESSES)
        ]
        first_minute = keepa.now_minute()
        span = until / (len(RATES) + 1)
        for k, rate in enumerate(RATES, start=1):
            main.sleep(k * span - main.now())
            throttled_at.append(keepa.stats().throttled)
            keepa.refill_per_min = rate
        main.done()
        reports = []
        for worker in workers:
            out, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, err[-3000:]
            assert SECRET not in out + err
            reports.append(json.loads(out.strip().splitlines()[-1]))
            late_runs += [line for line in err.splitlines() if "past the budget" in line]
        throttled_at.append(keepa.stats().throttled)
        stats = keepa.stats()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
        keeper.stop()
        keepa.close()
        control.close()
    windows = [b - a for a, b in zip([0, *throttled_at], throttled_at, strict=False)]
    runs = [run for report in reports for run in report["runs"]]
    print(stats, windows, keeper.steps)
    print([(r["accepted"], r["stored"], r["mark"], len(r["runs"])) for r in reports])
    # Before the first change the bucket knows the rate: no 429. After each change at most
    # the one request booked at the old rate meets the drop (Keepa says so in its answers).
    assert windows[0] == 0, windows
    assert all(n <= 1 for n in windows[1:]), windows
    # No request is sent past its run's budget; no run ends past its budget and the grace.
    assert max(run["late_send"] for run in runs) <= 0, late_runs[:3]
    assert max(run["elapsed"] for run in runs) <= BUDGET + REQUEST_GRACE
    # Every job ran on every beat all day and ingested: deals stored, the watermark near
    # the end of the day (the rates of the last hours serve all three).
    for report in reports:
        assert not report["errors"], report["errors"][:3]
        assert len(report["runs"]) == until // EVERY, len(report["runs"])
        assert report["stored"] > 0
        assert report["mark"][0] > first_minute + HOURS * 60 - 60, (report["mark"], first_minute)
    assert stats.tokens_consumed > 0
