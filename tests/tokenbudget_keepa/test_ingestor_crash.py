"""Crash safety: ``tokenbudget-keepa ingest`` killed with SIGKILL at random points, again and again.

The emulator runs in its own process on a clock that never moves, so every run
sees the same deals. Most runs are forked from the test process (the command's
``main()``, without the interpreter's start-up time) and a few are the real
``python -m tokenbudget_keepa`` process; each is killed after a random delay.
At the end the ``deals`` table must hold exactly the ASINs of one
uninterrupted run, and the watermark must never have moved backwards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

# Imported here, before any fork, so that a forked run starts working at once.
from tokenbudget_keepa import _cli  # noqa: F401
from tokenbudget_keepa._cli import main
from tokenbudget_keepa._ingestor import ingestor, storage  # noqa: F401


HERE = Path(__file__).parent
KILLS = 50
QUERY = {
    "selection": {"domainId": 1, "priceTypes": [1], "dateRange": 0},
    "enrich": {"stats": 1},
    "filters": {},
}


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """The URL of a frozen emulator in its own process."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "_frozen_emulator.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)
        process.stdout.close()


def _argv(store: Path, query: Path, url: str) -> list[str]:
    return ["ingest", "--query", str(query), "--store", str(store), "--base-url", url, "--json"]


class _Steps(logging.Handler):
    """In a forked run: signals the lease taken on *fd*; SIGKILLs itself at its *die_at*-th step."""

    def __init__(self, fd: int, die_at: int | None) -> None:
        super().__init__()
        self.fd = fd
        self.die_at = die_at
        self.steps = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().endswith("lease taken"):
            with contextlib.suppress(OSError):  # nobody listens (the reference run)
                os.write(self.fd, b"!")
        self.steps += 1
        if self.steps == self.die_at:
            os.kill(os.getpid(), signal.SIGKILL)


def _fork_run(argv: list[str], *, die_at: int | None = None) -> tuple[int, int]:
    """Fork a child that runs the command's main() with *argv*: its pid, and a pipe's read end.

    The pipe gets one byte when the run has started working (its lease taken),
    and closes when the child ends. With *die_at*, the child kills itself with
    SIGKILL right after its *die_at*-th logged step (a page read, a batch
    enriched but not yet stored, a commit...).
    """
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns when it forks a process that runs threads (another test's
        # leftover, say); the child only runs main() and exits, it needs none of them.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child
        code = 1
        try:
            os.close(read)
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115, PTH123
            logger = logging.getLogger("tokenbudget_keepa.ingestor")
            logger.handlers[:] = [_Steps(write, die_at)]
            logger.setLevel(logging.INFO)
            logger.propagate = False
            code = main(argv)
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def _kill_after(pid: int, read: int, delay: float) -> bool:
    """SIGKILL *pid* *delay* seconds after it started working, unless it ended before.

    Returns whether the run died of SIGKILL (rather than ending by itself).
    """
    with os.fdopen(read, "rb") as started:
        started.read(1)  # the run took its lease (or ended: EOF)
        ended, _, _ = select.select([started], [], [], delay)  # EOF when the child ends
        if not ended:
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _watermark(store: Path) -> tuple[int, str] | None:
    if not store.exists():
        return None
    with sqlite3.connect(store) as conn:
        try:
            row = conn.execute("SELECT minute, asin FROM tokenbudget_keepa_watermarks").fetchone()
        except sqlite3.OperationalError:
            row = None
    conn.close()
    return None if row is None else (int(row[0]), str(row[1]))


def _asins(store: Path) -> set[str]:
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT asin FROM deals").fetchall()
    conn.close()
    return {str(r[0]) for r in rows}


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    emulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At least 50 runs killed at random points, then one to the end: one clean run's deals."""
    monkeypatch.setenv("KEEPA_API_KEY", "test-key")
    query = tmp_path / "query.json"
    query.write_text(json.dumps(QUERY))
    reference = tmp_path / "reference.db"
    pid, read = _fork_run(_argv(reference, query, emulator_url))
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    expected = _asins(reference)
    assert len(expected) > 250

    store = tmp_path / "killed.db"
    rng = random.Random(1234)
    marks: list[tuple[int, str]] = []
    killed = 0
    for i in range(3 * KILLS):
        if killed == KILLS:
            break
        if i % 25 == 24:  # now and then the real command, interpreter start-up included
            process = subprocess.Popen(
                [sys.executable, "-m", "tokenbudget_keepa", *_argv(store, query, emulator_url)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.2, 1.5))
            process.send_signal(signal.SIGKILL)
            killed += process.wait() == -signal.SIGKILL
        elif i % 2:  # killed from outside: inside a request or a transaction, wherever it is
            pid, read = _fork_run(_argv(store, query, emulator_url))
            killed += _kill_after(pid, read, rng.uniform(0, 0.15))
        else:  # killed between two steps, e.g. products fetched but not yet stored
            pid, read = _fork_run(_argv(store, query, emulator_url), die_at=rng.randint(1, 6))
            killed += _kill_after(pid, read, 5.0)
        mark = _watermark(store)
        if mark is not None:
            marks.append(mark)
    pid, read = _fork_run(_argv(store, query, emulator_url))
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    final = _watermark(store)
    assert final is not None
    marks.append(final)
    assert marks == sorted(marks), "the watermark moved backwards"
    assert _asins(store) == expected
    assert killed >= KILLS, f"only {killed} runs died of SIGKILL"
    assert len(set(marks)) > 2, "the kills never landed between commits"
