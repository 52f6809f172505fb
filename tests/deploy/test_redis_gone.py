"""Redis gone mid-run: the run returns a report with the error, it does not raise.

The account's bucket is a :class:`~tokenbudget_keepa.redis.RedisAccountBucket` on
the real Redis server; "gone" is its client pointed at a port where nothing
listens (connections refused), at a chosen step of the run.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tokenbudget import ManualClock
from tokenbudget_keepa import (
    IngestEvent,
    KeepaClient,
    MemoryDealSink,
    MemoryWatermarkStore,
    SmartIngestor,
)
from tokenbudget_keepa.testing import KeepaEmulator


redis = pytest.importorskip("redis", reason="redis-py is not installed (tokenbudget[redis])")

from tokenbudget_keepa import redis as keepa_redis  # noqa: E402


pytestmark = pytest.mark.redis

SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}
EMULATOR = {"refill_per_min": 100, "deals_per_minute": 10, "history_minutes": 90}


def dead_port() -> int:
    """A loopback port where nothing listens (a connection is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _repoint(client: Any, port: int) -> None:
    """Every connection of *client*'s pool (checked out ones too) to *port*, reconnecting."""
    pool = client.connection_pool
    pool.connection_kwargs["port"] = port
    connections = [*pool._available_connections, *pool._in_use_connections]
    for connection in connections:
        connection.disconnect()
        connection.port = port


def cut(client: Any) -> Callable[[], None]:
    """Point *client* (redis-py) at a dead port and drop its connections; return the undo."""
    port = client.connection_pool.connection_kwargs["port"]
    _repoint(client, dead_port())
    return lambda: _repoint(client, port)


@pytest.fixture
def api_key(redis_server: str, api_keys: list[str]) -> Iterator[str]:
    """A key of this test's own: its account's bucket keys are its own (deleted after)."""
    key = f"redis-gone-{uuid.uuid4().hex[:12]}"
    api_keys.append(key)  # searched for in every log record
    yield key
    name = keepa_redis.account_name(key)
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=f"*{name}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_redis_gone_mid_run_is_a_report_and_the_next_run_goes_on(
    redis_server: str, api_key: str
) -> None:
    """Redis refuses connections after the first page: run_once reports the error; later
    (Redis back) the next run catches up."""
    clock = ManualClock()
    with KeepaEmulator(api_key=api_key, clock=clock, **EMULATOR) as emulator:
        bucket = keepa_redis.bucket_from_url(
            redis_server, clock=clock, api_key=api_key, base_url=emulator.url
        )
        cuts: list[Callable[[], None]] = []

        def on_event(event: IngestEvent) -> None:
            if event.kind == "page" and not cuts:
                cuts.append(cut(bucket._redis))

        store = MemoryWatermarkStore()
        with KeepaClient(
            api_key, base_url=emulator.url, bucket=bucket, clock=bucket.client_clock(clock)
        ) as client:
            ingestor = SmartIngestor(
                client, SELECTION, store=store, sink=MemoryDealSink(), filters=(), key="job",
                on_event=on_event,
            )  # fmt: skip
            report = ingestor.run_once()
            assert report.stopped == "error", report
            assert any("BackendError" in e for e in report.errors), report.errors
            assert report.watermark_after == store.load("job")
            cuts[0]()  # Redis is back
            later = ingestor.run_once()
            assert later.stopped == "caught_up", later.errors
            assert later.deals_seen > 0
        bucket.close()
        assert emulator.stats().throttled == 0


def test_ingest_json_prints_the_report_when_redis_goes(
    redis_server: str,
    api_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ingest --json --bucket: Redis gone mid-run is status 1, the report on stdout, one line
    on stderr."""
    from tokenbudget_keepa._cli import main

    clients: list[Any] = []
    opened = keepa_redis.redis_client

    def redis_client(url: str, **kwargs: Any) -> Any:
        client = opened(url, **kwargs)
        clients.append(client)
        return client

    emit = SmartIngestor._emit

    def emit_and_cut(self: SmartIngestor, kind: Any, message: str, **fields: Any) -> None:
        emit(self, kind, message, **fields)
        if kind == "page" and clients:
            cut(clients.pop())

    monkeypatch.setattr(keepa_redis, "redis_client", redis_client)
    monkeypatch.setattr(SmartIngestor, "_emit", emit_and_cut)
    monkeypatch.setenv("KEEPA_API_KEY", api_key)
    query = tmp_path / "query.json"
    query.write_text(json.dumps({"selection": SELECTION, "filters": {}}))
    with KeepaEmulator(api_key=api_key, clock=ManualClock(), **EMULATOR) as emulator:
        argv = [
            "ingest", "--query", str(query), "--store", str(tmp_path / "i.db"),
            "--base-url", emulator.url, "--bucket", redis_server, "--json", "--time-budget", "2.5",
        ]  # fmt: skip
        status = main(argv)
    out, err = capsys.readouterr()
    assert status == 1, err
    report = json.loads(out)
    assert report["stopped"] == "error"
    assert any("BackendError" in e for e in report["errors"])
    assert len(err.strip().splitlines()) == 1, err
