"""Two client processes sharing one Keepa account through a Redis-backed bucket: no 429.

The bucket is :class:`tokenbudget_keepa.redis.RedisAccountBucket`, which adopts a
reported count only when it is exact across processes. (A plain ``TokenBucket`` on a
``RedisBackend`` with ``in_flight`` is not enough: one process may sync an answer that
another process's newer answer has overtaken, and it then meets an occasional 429.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tokenbudget.conftest import _redis_problem, redis_required, redis_url

from ._client_fixtures import SECRET
from ._shared_worker import CAPACITY, RATE_PER_MIN, STEP


pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("no_key_in_logs")]

WORKER = Path(__file__).with_name("_shared_worker.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared_redis() -> Iterator[tuple[str, str]]:
    """A Redis URL and a key prefix of this test's own (deleted after); skip without Redis."""
    url = redis_url()
    problem = _redis_problem(url)
    if problem is not None:
        message = f"no Redis server answers ({problem}); set TOKENBUDGET_REDIS_URL"
        if redis_required():
            pytest.fail(f"{message} -- required because CI or TOKENBUDGET_REQUIRE_REDIS is set")
        pytest.skip(message)
    import redis

    prefix = f"tokenbudget-test:{uuid.uuid4().hex[:12]}:"
    yield url, prefix
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_two_processes_share_one_account_without_a_429(make_emulator, shared_redis):
    """Two processes, one account, one Redis bucket, real time: every request admitted, no 429."""
    keepa = make_emulator(
        api_key=SECRET,
        clock=None,
        refill_per_min=RATE_PER_MIN,
        refill_step=STEP,
        capacity=CAPACITY,
        tokens=20,
    )
    redis_server, redis_prefix = shared_redis
    env = {
        **os.environ,
        "KEEPA_API_KEY": SECRET,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    requests = 14
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                keepa.url,
                redis_server,
                redis_prefix,
                str(requests),
                ",".join(keepa.catalog_asins(5)),
                "account",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert SECRET not in out + err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results == [{"done": requests, "errors": 0}] * 2
    stats = keepa.stats()
    assert stats.throttled == 0
    assert stats.count("product", 200) + stats.count("deal", 200) == 2 * requests
    assert stats.tokens_consumed == 2 * requests * 5
