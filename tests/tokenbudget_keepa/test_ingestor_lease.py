"""Two ingestors on one key: one works, the other reports the lease held; a dead holder frees it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tokenbudget import ManualClock
from tokenbudget_keepa import (
    IngestEvent,
    IngestReport,
    KeepaClient,
    MemoryDealSink,
    MemoryLease,
    MemoryWatermarkStore,
    SmartIngestor,
    SQLiteDealSink,
    SQLiteLease,
    SQLiteWatermarkStore,
)
from tokenbudget_keepa.testing import KeepaEmulator


SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}
HOLD = """
import sys
from tokenbudget_keepa import SQLiteLease
lease = SQLiteLease(sys.argv[1])
print(lease.acquire("job", ttl=3600), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def client(make_emulator: Callable[..., KeepaEmulator], manual_clock: ManualClock) -> Iterator[Any]:
    """A client on an emulator with tokens to spare."""
    emulator = make_emulator(refill_per_min=100)
    with KeepaClient(emulator.api_key, base_url=emulator.url, clock=manual_clock) as client:
        yield client


def _ingestor(client: Any, path: Path, lease: Any, **kwargs: Any) -> SmartIngestor:
    return SmartIngestor(
        client,
        SELECTION,
        store=SQLiteWatermarkStore(path),
        sink=SQLiteDealSink(path),
        filters=(),
        key="job",
        lease=lease,
        **kwargs,
    )


def test_the_second_ingestor_reports_the_lease_held(client: Any, tmp_path: Path) -> None:
    """While one ingestor runs, another on the same key does nothing and names the holder."""
    path = tmp_path / "ingest.db"
    second: list[IngestReport] = []
    other = _ingestor(client, path, SQLiteLease(path))

    def meanwhile(event: IngestEvent) -> None:
        if event.kind == "page" and not second:
            second.append(other.run_once())

    first = _ingestor(client, path, SQLiteLease(path), on_event=meanwhile).run_once()
    assert first.stopped == "caught_up"
    assert first.accepted > 0
    assert second[0].stopped == "lease_held"
    assert second[0].lease_holder is not None
    assert "pid" in second[0].lease_holder
    assert second[0].deals_seen == 0


def test_a_killed_holder_on_this_host_frees_the_lease_at_once(client: Any, tmp_path: Path) -> None:
    """A holder killed with SIGKILL blocks nobody: the next run takes the lease over at once."""
    path = tmp_path / "ingest.db"
    SQLiteLease(path).close()  # create the file's schema before the holder starts
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() not in {"", "None"}
        ingestor = _ingestor(client, path, SQLiteLease(path))
        blocked = ingestor.run_once()
        assert blocked.stopped == "lease_held"
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        after = ingestor.run_once()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.stdout is not None
        holder.stdout.close()
    assert after.stopped == "caught_up"
    assert after.accepted > 0


def test_a_holder_that_stops_renewing_loses_the_lease_when_it_expires(
    client: Any, manual_clock: ManualClock
) -> None:
    """A holder elsewhere that stopped renewing blocks the job until its ttl runs out, no longer."""
    lease = MemoryLease(clock=manual_clock)
    assert lease.acquire("job", ttl=120) is not None  # then it crashed: no renewal
    ingestor = SmartIngestor(
        client,
        SELECTION,
        store=MemoryWatermarkStore(),
        sink=MemoryDealSink(),
        filters=(),
        key="job",
        lease=lease,
    )
    assert ingestor.run_once().stopped == "lease_held"
    manual_clock.advance(121)
    report = ingestor.run_once()
    assert report.stopped == "caught_up"
    assert report.accepted > 0


class RivalClock(ManualClock):
    """A manual clock after whose every sleep a rival ingestor tries to take the lease."""

    def __init__(self, lease: MemoryLease) -> None:
        super().__init__()
        self.lease = lease
        self.rival_got_it = False

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.lease.acquire("job", ttl=60) is not None:
            self.rival_got_it = True


def test_the_lease_is_renewed_across_long_waits(
    make_emulator: Callable[..., KeepaEmulator],
) -> None:
    """A run that waits far longer than the lease's ttl for tokens keeps its lease all along."""
    lease = MemoryLease()
    clock = RivalClock(lease)
    lease._clock = clock  # the lease expires on the simulated clock
    emulator = make_emulator(refill_per_min=5, tokens=-40, clock=clock)
    with KeepaClient(emulator.api_key, base_url=emulator.url, clock=clock) as client:
        ingestor = SmartIngestor(
            client,
            SELECTION,
            store=MemoryWatermarkStore(),
            sink=MemoryDealSink(),
            filters=(),
            key="job",
            lease=lease,
            lease_ttl=30,
        )
        report = ingestor.run_once()
    assert report.stopped == "caught_up"
    assert report.waited > 300
    assert not clock.rival_got_it
