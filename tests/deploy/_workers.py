"""Celery workers in subprocesses for the deployment tests, and a client app to send them tasks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest


ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """One ``celery worker`` subprocess on the test app, its log in a file."""

    def __init__(
        self,
        env: Mapping[str, str],
        queue: str,
        log: Path,
        *,
        pool: str = "solo",
        concurrency: int = 1,
        name: str = "w",
    ) -> None:
        self.log = log
        self._out = log.open("wb")
        command = [
            sys.executable, "-m", "celery", "-A", "tests.deploy.celery_app", "worker",
            f"--pool={pool}", f"--concurrency={concurrency}", "-Q", queue, "-n", f"{name}@%h",
            "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the worker consumes from its queue (or fail with its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log.read_bytes():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"the Celery worker did not start:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        """The pids of the worker's pool processes (prefork)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = stat.read_text()
                if int(text[text.rindex(")") + 2 :].split()[1]) == self.process.pid:
                    found.append(int(stat.parent.name))
        return found

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes (a crash: nothing is cleaned up)."""
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(timeout=10)
        self._out.close()


@contextlib.contextmanager
def workers() -> Iterator[list[Worker]]:
    """Workers started in the block, all killed at its end."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.kill()
            else:
                worker._out.close()


@contextlib.contextmanager
def sender(env: Mapping[str, str]) -> Iterator[Any]:
    """A Celery app in this process that sends tasks to the workers and reads results."""
    from celery import Celery

    broker = env["TB_CELERY_BROKER"]
    app = Celery("tokenbudget_test_sender", broker=broker, backend=broker, set_as_current=False)
    prefix = env["TB_CELERY_PREFIX"]
    app.conf.update(
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        broker_connection_retry_on_startup=True,
    )
    try:
        yield app
    finally:
        with contextlib.suppress(Exception):
            app.backend.result_consumer.stop()  # its pubsub connection
        with contextlib.suppress(Exception):
            app.backend.client.connection_pool.disconnect()
        app.close()
