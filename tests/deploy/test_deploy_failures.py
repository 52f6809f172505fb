"""The deployment under failure: a worker killed mid-batch, Redis restarted mid-run,
PostgreSQL unreachable or at an unknown schema version; and the command on PostgreSQL and Redis.

Real services: PostgreSQL (a schema of the test's own), Redis (the shared server for the
broker, a ``redis-server`` of the test's own on a free port for the restart).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.deploy._workers import ROOT, Worker, sender, workers


pytest.importorskip("celery", reason="Celery is not installed (tokenbudget[celery])")
psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (tokenbudget[postgres])")

from tokenbudget import BackendError, BucketConfig, DeficitRule, Rate  # noqa: E402
from tokenbudget_keepa import SchemaMismatch  # noqa: E402
from tokenbudget_keepa.testing import KeepaEmulator  # noqa: E402


pytestmark = [pytest.mark.redis, pytest.mark.postgres]

RATE = 3000
STEP = 0.5
SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}
DEALS = {"deals_per_minute": 20, "history_minutes": 30, "reupdate_share": 0.0}


def account_config():
    return BucketConfig(
        60 * RATE,
        Rate.per_minute(RATE),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(math.inf),
        refill_step=STEP,
    )


def make_task(bucket_url, prefix, emulator, store, *, every=5.0, api_key="test-key"):
    """The ingest task on an app of its own, called in this process (as a worker would)."""
    from celery import Celery

    from tokenbudget_keepa.celery import KeepaAccount, register_ingest

    account = KeepaAccount(
        bucket_url,
        name="acct",
        api_key=api_key,
        base_url=emulator.url,
        prefix=prefix,
        config=account_config(),
        redis_timeout=0.5,
        client_options={"max_retries": 1, "backoff": 0.05, "max_backoff": 0.2},
    )
    app = Celery("tokenbudget_test_inproc", set_as_current=False)
    task = register_ingest(
        app,
        account,
        SELECTION,
        store=store,
        every=every,
        filters=(),
        enrich={"stats": 1, "history": False},
        schedule=False,
        lease_ttl=5,
        retry_delay=0.2,
        retries=2,
        settle_minutes=0,
        sweep_interval_minutes=0,
    )
    return account, app, task


def stored(postgres_url):
    """The deals table: ASIN to last update (empty before the first run migrated)."""
    with psycopg.connect(postgres_url) as conn:
        if conn.execute("SELECT to_regclass('deals')").fetchone() == (None,):
            return {}
        rows = conn.execute("SELECT asin, last_update FROM deals").fetchall()
    return dict(rows)


def watermark(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        if conn.execute("SELECT to_regclass('tokenbudget_keepa_watermarks')").fetchone() == (None,):
            return None
        row = conn.execute("SELECT minute, asin FROM tokenbudget_keepa_watermarks").fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def expected_asins(emulator, first_minute, mark):
    """Every deal the emulator served after the first run's start, up to the watermark."""
    deals = emulator.deals_between(first_minute, mark[0], SELECTION)
    return {d["asin"] for d in deals if (d["lastUpdate"], d["asin"]) <= mark}


def assert_exactly_the_covered_deals(postgres_url, emulator, first_minute):
    """PostgreSQL holds each deal up to the watermark once, and none past it."""
    mark = watermark(postgres_url)
    assert mark is not None
    rows = stored(postgres_url)
    assert all((minute, asin) <= mark for asin, minute in rows.items())
    covered = {a for a, m in rows.items() if m > first_minute + 1}
    assert covered == set(expected_asins(emulator, first_minute + 2, mark))


#: The Keepa client's request timeout in the killed-worker test (seconds; the default is 30).
#: The killed worker's booking may hold the next worker's first request into debt for three
#: of them: a shorter timeout keeps the test short, the emulator answers in milliseconds.
TIMEOUT = 5


@pytest.mark.heavy
def test_a_worker_killed_mid_batch_loses_nothing(
    redis_server, redis_prefix, postgres_url, tmp_path
):
    """SIGKILL a worker mid-run: the next worker takes the lease over and continues from the
    watermark; PostgreSQL holds every accepted deal exactly once."""
    with (
        KeepaEmulator(refill_per_min=RATE, refill_step=STEP, tokens=0, **DEALS) as emulator,
        workers() as ws,
    ):
        env = {
            "TB_CELERY_BROKER": redis_server, "TB_CELERY_PREFIX": redis_prefix,
            "TB_BUCKET_URL": redis_server, "TB_BUCKET_PREFIX": f"{redis_prefix}bucket:",
            "TB_RATE": str(RATE), "TB_STEP": str(STEP), "TB_KEEPA_URL": emulator.url,
            "TB_STORE": postgres_url, "TB_EVERY": "20", "TB_LEASE_TTL": "30",
            "TB_TIMEOUT": str(TIMEOUT), "KEEPA_API_KEY": "test-key",
        }  # fmt: skip
        queue = f"{redis_prefix}ingest"
        first_minute = emulator.now_minute() - 60
        ws.append(Worker(env, queue, tmp_path / "first.log", name="first"))
        ws[0].wait_ready()
        with sender(env) as app:
            app.send_task("tokenbudget_keepa.ingest", queue=queue)
            deadline = time.monotonic() + 30
            while len(stored(postgres_url)) < 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            killed_at = watermark(postgres_url)
            assert killed_at is not None, ws[0].text()
            ws[0].kill()  # mid-run: its lease (30 s) is still held, its next batch unsaved
            env = {**env, "TB_EVERY": "5"}
            ws.append(Worker(env, queue, tmp_path / "second.log", name="second"))
            ws[1].wait_ready()
            # The killed worker's booking may count as on the wire (it never settles): the
            # next worker's client waits for it at most 3 request timeouts, then goes on.
            report = app.send_task("tokenbudget_keepa.ingest", queue=queue).get(
                timeout=3 * TIMEOUT + 60
            )
        assert report["stopped"] in {"time_budget", "caught_up"}, report
        assert report["watermark_before"] is not None
        assert (
            report["watermark_before"]["minute"],
            report["watermark_before"]["asin"],
        ) >= killed_at
        assert report["accepted"] > 0
        assert_exactly_the_covered_deals(postgres_url, emulator, first_minute)
        assert emulator.stats().throttled == 0


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A redis-server of the test's own on a free port, which the test stops and restarts."""

    def __init__(self, tmp_path):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed: the restart test starts its own")
        self.binary = binary
        self.port = _free_port()
        self.dir = tmp_path
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            for _ in range(100):
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                time.sleep(0.05)
            pytest.fail("the test's own redis-server did not start")
        finally:
            client.close()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.mark.heavy
def test_redis_restarted_mid_run(postgres_url, tmp_path):
    """Redis (the bucket's) goes down mid-run: typed errors, no spend, no 429, no deal lost;
    the next run continues once it is back."""
    server = OwnRedis(tmp_path)
    server.start()
    try:
        with KeepaEmulator(refill_per_min=RATE, refill_step=STEP, tokens=0, **DEALS) as emulator:
            first_minute = emulator.now_minute() - 60
            account, app, task = make_task(server.url, "restart:", emulator, postgres_url, every=6)
            outcome = {}

            def run():
                try:
                    outcome["report"] = task()
                except Exception as exc:
                    outcome["error"] = exc

            thread = threading.Thread(target=run)
            thread.start()
            deadline = time.monotonic() + 30
            while len(stored(postgres_url)) < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            server.stop()
            down_at = emulator.stats().tokens_consumed
            # While Redis is down: a typed error at once, nothing spent.
            with pytest.raises(BackendError), account.client() as client:
                client.products(emulator.catalog_asins(3), history=False)
            thread.join(timeout=60)
            assert (
                emulator.stats().tokens_consumed <= down_at + 100
            )  # at most the batch on the wire
            assert "error" in outcome or outcome["report"]["errors"], outcome
            server.start()  # empty: the bucket starts again from the server's count
            report = task()
            assert report["accepted"] > 0
            assert emulator.stats().throttled == 0
            assert_exactly_the_covered_deals(postgres_url, emulator, first_minute)
            task.close_storage()
            account.close()
            app.close()
    finally:
        server.stop()


def test_postgres_unreachable_is_a_typed_error_and_spends_nothing(redis_server, redis_prefix):
    """PostgreSQL down at start-up: the task raises PostgresUnavailableError, nothing is spent."""
    from tokenbudget_keepa.postgres import PostgresUnavailableError

    with KeepaEmulator(refill_per_min=RATE, refill_step=STEP, **DEALS) as emulator:
        account, app, task = make_task(
            redis_server, redis_prefix, emulator, "postgresql://postgres@127.0.0.1:1/nowhere"
        )
        with pytest.raises(PostgresUnavailableError) as info:
            task()
        assert "127.0.0.1:1/nowhere" in str(info.value)
        assert "\n" not in str(info.value)
        assert emulator.stats().tokens_consumed == 0
        task.close_storage()
        account.close()
        app.close()


@pytest.mark.heavy
def test_unknown_schema_version_fails_every_run_without_losing_work(
    redis_server, redis_prefix, postgres_url
):
    """A database at an unknown version: each run fails at start-up in one line, writing and
    spending nothing; once fixed, the next run continues from the watermark."""
    with KeepaEmulator(refill_per_min=RATE, refill_step=STEP, tokens=0, **DEALS) as emulator:
        # A budget of 9 s (every=10): the first answer may be slow to come on a loaded machine
        # (the heavy tests run two at a time), and a run that catches up returns earlier.
        account, app, task = make_task(
            redis_server, redis_prefix, emulator, postgres_url, every=10.0
        )
        first = task()
        assert first["accepted"] > 0
        with psycopg.connect(postgres_url) as conn:
            conn.execute("INSERT INTO tokenbudget_keepa_schema VALUES (99, now())")
        account2, app2, task2 = make_task(
            redis_server, redis_prefix, emulator, postgres_url, every=10.0
        )
        spent = emulator.stats().tokens_consumed
        for _ in range(2):
            with pytest.raises(SchemaMismatch) as info:
                task2()
            assert "version 99" in str(info.value)
            assert "\n" not in str(info.value)
        assert emulator.stats().tokens_consumed == spent
        with psycopg.connect(postgres_url) as conn:
            conn.execute("DELETE FROM tokenbudget_keepa_schema WHERE version = 99")
        again = task2()
        assert again["watermark_before"] == first["watermark_after"]
        # New work, unless the first run caught up with every deal there was.
        assert again["accepted"] > 0 or first["stopped"] == "caught_up", (first, again)
        for a, p, t in ((account, app, task), (account2, app2, task2)):
            t.close_storage()
            a.close()
            p.close()


@pytest.mark.heavy  # a time budget on the wall clock (the run returns once caught up)
def test_the_command_ingests_into_postgres_on_a_shared_bucket(
    redis_server, redis_prefix, postgres_url, tmp_path
):
    """tokenbudget-keepa ingest --store postgresql://... --bucket redis://...: a report, deals in
    PostgreSQL, the account's bucket in Redis."""
    import redis

    query = tmp_path / "query.json"
    query.write_text(json.dumps({"selection": SELECTION, "filters": {}, "enrich": {"stats": 1}}))
    with KeepaEmulator(refill_per_min=RATE, **DEALS) as emulator:
        command = [
            sys.executable, "-m", "tokenbudget_keepa", "ingest", "--query", str(query),
            "--store", postgres_url, "--bucket", redis_server, "--base-url", emulator.url,
            "--time-budget", "8", "--json",
        ]  # fmt: skip
        env = {**os.environ, "KEEPA_API_KEY": "test-key"}
        done = subprocess.run(
            command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["accepted"] > 0
        assert len(stored(postgres_url)) == report["accepted"]
        from tokenbudget_keepa.redis import account_name

        client = redis.Redis.from_url(redis_server)
        try:
            key = f"tokenbudget:keepa:{account_name('test-key')}"
            assert client.exists(key)
            client.delete(*client.keys(f"{key}*"))
        finally:
            client.close()


def test_a_refused_key_fails_the_task_without_a_retry(redis_server, redis_prefix, postgres_url):
    """Keepa refuses the key: the run stops on a fatal error, the task fails (no retry), the
    watermark does not move."""
    from tokenbudget_keepa.celery import IngestRunError

    with KeepaEmulator(refill_per_min=RATE, refill_step=STEP, **DEALS) as emulator:
        account, app, task = make_task(
            redis_server, redis_prefix, emulator, postgres_url, api_key="wrong-key"
        )
        with pytest.raises(IngestRunError) as info:
            task()
        assert not info.value.transient
        assert info.value.report["stopped"] == "fatal_error"
        assert "wrong-key" not in str(info.value)
        assert watermark(postgres_url) is None
        task.close_storage()
        account.close()
        app.close()
