"""Celery workers sharing one Keepa account through Redis, deals in PostgreSQL (real services).

The workers are real ``celery worker`` subprocesses on a Redis broker of their
own (a unique key prefix in DB 15); the account is a :class:`KeepaEmulator` in
this process on the real clock, refilling fast (every half second) so that a
test takes seconds.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.deploy._workers import Worker, sender, workers


pytest.importorskip("celery", reason="Celery is not installed (tokenbudget[celery])")

from tokenbudget_keepa.testing import KeepaEmulator


pytestmark = [pytest.mark.redis, pytest.mark.heavy]

RATE = 6000  # tokens a minute: 50 every half second
STEP = 0.5
INGEST_RATE = 3000  # 25 tokens every half second: runs of 4 s are budget-limited
DEALS = {"deals_per_minute": 20, "history_minutes": 30, "reupdate_share": 0.0}


def mark(watermark):
    """A report's watermark as a comparable tuple (None: none yet)."""
    return None if watermark is None else (watermark["minute"], watermark["asin"])


def stored_asins(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT asin FROM deals").fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def celery_env(redis_server, redis_prefix):
    """The environment of the test app: broker, bucket and queues under this test's prefix."""
    return {
        "TB_CELERY_BROKER": redis_server,
        "TB_CELERY_PREFIX": redis_prefix,
        "TB_BUCKET_URL": redis_server,
        "TB_BUCKET_PREFIX": f"{redis_prefix}bucket:",
        "TB_RATE": str(RATE),
        "TB_STEP": str(STEP),
        "KEEPA_API_KEY": "test-key",
    }


class BalanceWatch:
    """Samples the emulator's balance in a thread: the lowest it ever was."""

    def __init__(self, emulator: KeepaEmulator) -> None:
        self.emulator = emulator
        self.lowest = emulator.stats().tokens_left
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.lowest = min(self.lowest, self.emulator.stats().tokens_left)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_four_workers_share_one_bucket(celery_env, tmp_path):
    """4 worker processes spending one account: no 429, no over-spend, >= 90 % of the refill used."""
    cost = 10  # tokens a request: 10 ASINs without offers
    window = 6.0
    with (
        KeepaEmulator(refill_per_min=RATE, refill_step=STEP, tokens=0) as emulator,
        workers() as ws,
    ):
        env = {**celery_env, "TB_KEEPA_URL": emulator.url}
        ws.append(
            Worker(env, f"{env['TB_CELERY_PREFIX']}spend", tmp_path / "w.log", pool="prefork",
                   concurrency=4)
        )  # fmt: skip
        ws[0].wait_ready()
        asins = emulator.catalog_asins(cost)
        with sender(env) as app:
            start = time.time() + 1.0
            until = start + window
            results = [
                app.send_task("tb_test.spend", args=(asins, start, until),
                              queue=f"{env['TB_CELERY_PREFIX']}spend")
                for _ in range(4)
            ]  # fmt: skip
            time.sleep(max(0.0, start - time.time()))
            before = emulator.stats()
            watch = BalanceWatch(emulator)
            time.sleep(max(0.0, until - time.time()))
            after = emulator.stats()
            outcomes = [r.get(timeout=30) for r in results]
            watch.stop()
            final = emulator.stats()
    assert len({o["pid"] for o in outcomes}) == 4, outcomes
    assert final.throttled == 0
    budget = before.tokens_left + (after.tokens_refilled - before.tokens_refilled)
    used = after.tokens_consumed - before.tokens_consumed
    assert watch.lowest >= -cost  # at most one request past zero: Keepa's deficit rule
    assert used <= budget + cost
    assert used >= 0.9 * budget, (used, budget)


@pytest.mark.postgres
def test_ingest_task_and_another_task_share_the_account(celery_env, postgres_url, tmp_path):
    """A Celery worker runs the ingest task while another task spends the account: every run
    advances, deals land in PostgreSQL, no 429."""
    with (
        KeepaEmulator(refill_per_min=INGEST_RATE, refill_step=STEP, tokens=0, **DEALS) as emulator,
        workers() as ws,
    ):
        env = {
            **celery_env, "TB_KEEPA_URL": emulator.url, "TB_RATE": str(INGEST_RATE),
            "TB_STORE": postgres_url, "TB_EVERY": "5",
        }  # fmt: skip
        prefix = env["TB_CELERY_PREFIX"]
        ws.append(Worker(env, f"{prefix}ingest", tmp_path / "ingest.log", name="ingest"))
        ws.append(Worker(env, f"{prefix}spend", tmp_path / "spend.log", name="spend"))
        for w in ws:
            w.wait_ready()
        with sender(env) as app:
            start = time.time()
            spender = app.send_task(
                "tb_test.spend",
                args=(emulator.catalog_asins(5), start, start + 14),
                queue=f"{prefix}spend",
            )
            reports = []
            for _ in range(3):
                result = app.send_task("tokenbudget_keepa.ingest", queue=f"{prefix}ingest")
                reports.append(result.get(timeout=60))
            spent = spender.get(timeout=60)
        stats = emulator.stats()
    assert stats.throttled == 0
    assert spent["requests"] > 0
    assert sum(r["accepted"] for r in reports) > 0, reports
    for report in reports:
        assert report["stopped"] in {"time_budget", "caught_up"}, report
        before = mark(report["watermark_before"])
        if report["stopped"] == "caught_up" and report["deals_seen"] == 0:
            # Nothing new since the run before (runs follow each other within seconds).
            assert before is None or mark(report["watermark_after"]) >= before, report
            continue
        assert report["accepted"] > 0, report
        assert before is None or mark(report["watermark_after"]) > before
    asins = stored_asins(postgres_url)
    assert len(asins) == len(set(asins)) == sum(r["accepted"] for r in reports)
