"""Contention between OS processes on one shared bucket (spawned; keep imports light)."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Callable
from typing import Any

from tokenbudget import AcquireTimeout, BucketConfig, DeficitRule, Rate, TokenBucket


#: Small enough to run out many times a second, so the processes really contend.
CONFIG = BucketConfig(50, Rate.per_second(200), deficit=DeficitRule.bounded(5))
INITIAL = 10.0
WORKERS = 4
DURATION = 1.0


def _backend(spec: tuple[str, Any]) -> Any:
    kind, arg = spec
    if kind == "sqlite":
        return arg  # a pickled SQLiteBackend reopens its file in this process
    import redis

    from tokenbudget.redis import RedisBackend

    url, prefix = arg
    return RedisBackend(redis.Redis.from_url(url), prefix=prefix)


def worker(
    spec: tuple[str, Any], key: str, seed: int, ready: Any, start: Any, results: Any
) -> None:
    """Spend as fast as possible for DURATION seconds; report the cost admitted."""
    bucket = TokenBucket(CONFIG, tokens=INITIAL, backend=_backend(spec), key=key)
    rng = random.Random(seed)
    ready.put(seed)
    start.wait()
    deadline = time.monotonic() + DURATION
    admitted = 0.0
    calls = 0
    while time.monotonic() < deadline:
        cost = rng.choice((1.0, 2.0, 3.0, 7.5))
        calls += 1
        if rng.random() < 0.75:
            if bucket.try_acquire(cost):
                admitted += cost
        else:
            try:
                bucket.acquire(cost, timeout=0.02)  # books, then sleeps its delay
            except AcquireTimeout:
                pass
            else:
                admitted += cost
    # The backend's time after this process's last admission.
    results.put((admitted, calls, bucket.snapshot().time))


def contend(spec: tuple[str, Any], key: str, now: Callable[[], float]) -> tuple[float, float, int]:
    """Run WORKERS processes on one bucket; return (admitted cost, budget, calls).

    The budget is what the bucket may admit over the whole run, measured on
    the backend's own clock: the starting balance, plus the refill from just
    before the bucket existed (read here) until the last admission (each
    process reads the backend's time after its last call), plus the allowed
    deficit.
    """
    ctx = multiprocessing.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=worker, args=(spec, key, seed, ready, start, results))
        for seed in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=60)
        t_start = now()
        # Create the bucket now, at the start of the measured interval.
        TokenBucket(CONFIG, tokens=INITIAL, backend=_backend(spec), key=key).snapshot()
        start.set()
        reports = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():  # pragma: no cover -- only when a worker hangs
                p.kill()
    admitted = sum(r[0] for r in reports)
    calls = sum(r[1] for r in reports)
    t_end = max(r[2] for r in reports)
    rate = CONFIG.refill.tokens_per_second
    budget = INITIAL + rate * (t_end - t_start) + CONFIG.max_deficit
    return admitted, budget, calls


def admitted_by_threads(backend: Any, clock: Any, *, threads: int = 8, tries: int = 40) -> int:
    """Cost admitted when *threads* threads each try cost 1 *tries* times on a still clock.

    The bucket holds 100 tokens and the clock does not move, so exactly 100 must be admitted.
    """
    import threading

    config = BucketConfig(100, Rate.per_second(1))
    admitted: list[int] = []

    def spend() -> None:
        bucket = TokenBucket(config, clock=clock, backend=backend, key="shared")
        admitted.extend(1 for _ in range(tries) if bucket.try_acquire(1))

    workers = [threading.Thread(target=spend) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return len(admitted)
