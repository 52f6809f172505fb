"""Processes that spend one Redis bucket through a faulty proxy (spawned; keep imports light).

Each worker runs two sequences of operations at once (two threads on one sync
client, or two tasks on one asyncio client) and reports what it was told:
the admissions (with their booking times), settles and cancels. The test
compares that with what Redis holds and with a capped model server.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

from tokenbudget import (
    AcquireTimeout,
    AsyncTokenBucket,
    BucketConfig,
    DeficitRule,
    Event,
    Rate,
    TokenBucket,
)


CONFIG = BucketConfig(20, Rate.per_second(100), deficit=DeficitRule.bounded(5))
INITIAL = 10.0
SOCKET_TIMEOUT = 0.1
#: Longer than the socket timeout: the client gives up and sends the command again.
PROXY_DELAY = 0.15
COSTS = (1, 2, 3, 4)


class Log:
    """What one sequence of operations was told."""

    def __init__(self) -> None:
        self.admissions: list[tuple[float, float, int]] = []  # (time, cost, booking id or 0)
        self.settles: list[tuple[float, float]] = []  # (time, extra cost)
        self.cancelled: list[int] = []  # booking ids given back
        self.booked = 0.0  # net tokens booked, as the replies said
        self.operations = 0
        self.errors: list[str] = []
        self.last: tuple[str, float, float] = ("", 0.0, 0.0)  # the last event's kind, time, delay

    def hook(self, event: Event) -> None:
        self.last = (event.kind, event.time, event.delay)


def _client(kind: str, port: int) -> Any:
    from redis.backoff import ConstantBackoff

    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "db": 15,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": 5.0,
    }
    if kind == "sync":
        import redis
        from redis.retry import Retry

        return redis.Redis(retry=Retry(ConstantBackoff(0.002), 40), **options)
    import redis.asyncio
    from redis.asyncio.retry import Retry as AsyncRetry

    return redis.asyncio.Redis(retry=AsyncRetry(ConstantBackoff(0.002), 40), **options)


def _choose(rng: random.Random) -> tuple[str, int, str]:
    x = rng.random()
    op = "try" if x < 0.35 else "reserve" if x < 0.8 else "acquire"
    then = rng.choice(("settle", "settle", "cancel", "keep"))
    return op, rng.choice(COSTS), then


def _sync_run(bucket: TokenBucket, log: Log, rng: random.Random, ops: int, until: float) -> None:
    while log.operations < ops and time.monotonic() < until:
        op, cost, then = _choose(rng)
        log.operations += 1
        try:
            if op == "try":
                if bucket.try_acquire(cost):
                    log.admissions.append((log.last[1], cost, 0))
                    log.booked += cost
            elif op == "acquire":
                bucket.acquire(cost, timeout=0.03)
                _, at, delay = log.last
                log.admissions.append((at + delay, cost, 0))
                log.booked += cost
            else:
                r = bucket.reserve(cost, timeout=0.03)
                log.admissions.append((r.time, cost, r._state.booking_id))
                log.booked += cost
                if then == "settle":
                    time.sleep(r.delay)
                    extra = rng.choice((0, 1))
                    r.settle(cost + extra)
                    log.settles.append((log.last[1], extra))
                    log.booked += extra
                elif then == "cancel" and r.cancel():
                    log.cancelled.append(r._state.booking_id)
                    log.booked -= cost
        except AcquireTimeout:
            pass
        except Exception as exc:
            log.errors.append(f"{type(exc).__name__}: {exc}")


async def _async_run(
    bucket: AsyncTokenBucket, log: Log, rng: random.Random, ops: int, until: float
) -> None:
    while log.operations < ops and time.monotonic() < until:
        op, cost, then = _choose(rng)
        log.operations += 1
        try:
            if op == "try":
                if await bucket.try_acquire(cost):
                    log.admissions.append((log.last[1], cost, 0))
                    log.booked += cost
            elif op == "acquire":
                await bucket.acquire(cost, timeout=0.03)
                _, at, delay = log.last
                log.admissions.append((at + delay, cost, 0))
                log.booked += cost
            else:
                r = await bucket.reserve(cost, timeout=0.03)
                log.admissions.append((r.time, cost, r._state.booking_id))
                log.booked += cost
                if then == "settle":
                    await asyncio.sleep(r.delay)
                    extra = rng.choice((0, 1))
                    await r.settle(cost + extra)
                    log.settles.append((log.last[1], extra))
                    log.booked += extra
                elif then == "cancel" and await r.cancel():
                    log.cancelled.append(r._state.booking_id)
                    log.booked -= cost
        except AcquireTimeout:
            pass
        except Exception as exc:
            log.errors.append(f"{type(exc).__name__}: {exc}")


def run(kind: str, port: int, prefix: str, key: str, seed: int, ops: int, seconds: float) -> Any:
    """Run two sequences on one client through the proxy at *port*; return their logs."""
    from tokenbudget.redis import RedisBackend

    client = _client(kind, port)
    logs = [Log(), Log()]
    until = time.monotonic() + seconds
    if kind == "sync":
        # One backend for both threads: one uses its own connection, the other the pool.
        shared = RedisBackend(client, prefix=prefix)
        buckets = [
            TokenBucket(CONFIG, tokens=INITIAL, backend=shared, key=key, on_event=log.hook)
            for log in logs
        ]
        threads = [
            threading.Thread(
                target=_sync_run, args=(b, log, random.Random(seed * 10 + i), ops // 2, until)
            )
            for i, (b, log) in enumerate(zip(buckets, logs, strict=True))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.close()
    else:

        async def main() -> None:
            shared = RedisBackend(client, prefix=prefix)
            buckets = [
                AsyncTokenBucket(CONFIG, tokens=INITIAL, backend=shared, key=key, on_event=log.hook)
                for log in logs
            ]
            await asyncio.gather(
                *(
                    _async_run(b, log, random.Random(seed * 10 + i), ops // 2, until)
                    for i, (b, log) in enumerate(zip(buckets, logs, strict=True))
                )
            )
            await client.aclose()

        asyncio.run(main())
    return [
        (log.admissions, log.settles, log.cancelled, log.booked, log.operations, log.errors)
        for log in logs
    ]


def worker(args: tuple[Any, ...], ready: Any, start: Any, results: Any) -> None:
    """A spawned process: wait for the start, run, report."""
    ready.put(args[4])
    start.wait()
    try:
        results.put(run(*args))
    except BaseException as exc:
        results.put([([], [], [], 0.0, 0, [f"{type(exc).__name__}: {exc}"])])
