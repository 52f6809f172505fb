"""Four processes on one API key share one budget through Redis: no request is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.deploy._workers import ROOT
from tests.http_servers import OpenAIServer


PROCESSES = 4
EACH = 16


@pytest.mark.heavy
@pytest.mark.redis
def test_four_processes_on_one_key_through_redis_meet_no_refusal(redis_server, redis_prefix):
    """64 requests against 60 a minute from 4 processes: the last ones wait, none is refused.

    Each process creates its buckets from its first answer (on the shared Redis keys), books
    every other request on them, and syncs them from every answer; the server enforces its
    quota in real time.
    """
    with OpenAIServer(rpm=60, tpm=10**7) as server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        command = [sys.executable, "-m", "tests.tokenbudget.http._shared_worker"]
        workers = [
            subprocess.Popen(
                [*command, server.url, redis_server, redis_prefix, str(EACH)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=env,
            )
            for _ in range(PROCESSES)
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None
                assert worker.stdout.readline().strip() == "ready"
            start = time.monotonic()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
            took = time.monotonic() - start
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
    assert all(result == {"200": EACH} for result in results), (results, server.refusals)
    assert server.refused == {}, server.refusals
    # 4 requests beyond the minute's 60, at 60 a minute: the transport waited for them.
    assert took >= 4 * 60 / 60 * 0.5
