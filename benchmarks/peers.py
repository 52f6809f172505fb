"""Each library under test, driven through its own documented API.

Each attempt is called as directly as the API allows (a bound method, or
:func:`functools.partial` for a fixed key), so that no library pays for a
wrapper another does not; a lambda only where the API needs a keyword or its
result needs reading (limits, throttled-py).

A :class:`Peer` says what a library offers (weighted costs, asyncio, Redis)
and builds one limiter for a capacity C and a refill rate r (tokens per
second). Libraries that count in windows get a window of C / r seconds holding
C units, the closest equivalent of a bucket of capacity C refilled at r.

Every factory imports its library when called, so a library that failed to
install is reported as such instead of stopping the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata


Attempt = Callable[[int], object]
AsyncAttempt = Callable[[int], Awaitable[object]]


@dataclass
class Handle:
    """One limiter: ``attempt(cost)`` returns whether *cost* was admitted; ``close()`` frees it."""

    attempt: Attempt
    close: Callable[[], None] = lambda: None


@dataclass
class AsyncHandle:
    attempt: AsyncAttempt
    close: Callable[[], None] = lambda: None


@dataclass
class Peer:
    """A library (one algorithm of it) and how to build its limiters."""

    name: str
    dist: str
    weighted: bool
    ours: bool = False
    #: Non-blocking attempt, in memory: ``make(capacity, rate) -> Handle``.
    memory: Callable[[int, float], Handle] | None = None
    #: Blocking acquire, in memory (for the behaviour probe): returns the call to make.
    blocking: Callable[[int, float], Handle] | None = None
    #: asyncio acquire (waits when needed): ``make(capacity, rate) -> AsyncHandle``.
    aio: Callable[[int, float], AsyncHandle] | None = None
    aio_blocks: bool = True
    #: Non-blocking attempt on Redis: ``make(url, key, capacity, rate) -> Handle``.
    redis: Callable[[str, str, int, float], Handle] | None = None
    #: In the contention runs (one algorithm per library: its most accurate one).
    contention: bool = True
    #: A non-blocking call for the behaviour probe when there is no ``memory`` one.
    check: Callable[[int, float], Handle] | None = None
    notes: list[str] = field(default_factory=list)

    def version(self) -> str | None:
        try:
            return metadata.version(self.dist)
        except metadata.PackageNotFoundError:
            return None


def _window_seconds(capacity: int, rate: float) -> int:
    return max(1, round(capacity / rate))


# -- tokenbudget ----------------------------------------------------------------------------


def _tb_config(capacity: int, rate: float):
    from tokenbudget import BucketConfig, Rate

    return BucketConfig(capacity, Rate.per_second(rate))


def tb_memory(capacity: int, rate: float) -> Handle:
    from tokenbudget import TokenBucket

    return Handle(TokenBucket(_tb_config(capacity, rate)).try_acquire)


def tb_blocking(capacity: int, rate: float) -> Handle:
    from tokenbudget import TokenBucket

    return Handle(TokenBucket(_tb_config(capacity, rate)).acquire)


def tb_aio(capacity: int, rate: float) -> AsyncHandle:
    from tokenbudget import AsyncTokenBucket

    return AsyncHandle(AsyncTokenBucket(_tb_config(capacity, rate)).acquire)


def tb_redis(url: str, key: str, capacity: int, rate: float) -> Handle:
    import redis

    from tokenbudget import TokenBucket
    from tokenbudget.redis import RedisBackend

    client = redis.Redis.from_url(url)
    backend = RedisBackend(client, prefix="tbbench:")
    bucket = TokenBucket(_tb_config(capacity, rate), backend=backend, key=key)
    return Handle(bucket.try_acquire, client.close)


# -- token-bucket ---------------------------------------------------------------------------


def token_bucket_memory(capacity: int, rate: float) -> Handle:
    import token_bucket

    limiter = token_bucket.Limiter(rate, capacity, token_bucket.MemoryStorage())
    return Handle(functools.partial(limiter.consume, "acct"))


# -- limits ---------------------------------------------------------------------------------


def _limits_item(capacity: int, rate: float):
    from limits import RateLimitItemPerSecond

    return RateLimitItemPerSecond(capacity, _window_seconds(capacity, rate))


def _limits_memory(strategy: str) -> Callable[[int, float], Handle]:
    def make(capacity: int, rate: float) -> Handle:
        from limits import storage, strategies

        limiter = getattr(strategies, strategy)(storage.MemoryStorage())
        item = _limits_item(capacity, rate)
        return Handle(lambda cost: limiter.hit(item, "acct", cost=cost))

    return make


def limits_aio(capacity: int, rate: float) -> AsyncHandle:
    from limits.aio import storage, strategies

    limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    item = _limits_item(capacity, rate)
    return AsyncHandle(lambda cost: limiter.hit(item, "acct", cost=cost))


def limits_redis(url: str, key: str, capacity: int, rate: float) -> Handle:
    from limits import storage, strategies

    store = storage.storage_from_string(url)
    limiter = strategies.MovingWindowRateLimiter(store)
    item = _limits_item(capacity, rate)
    return Handle(lambda cost: limiter.hit(item, key, cost=cost))


# -- pyrate-limiter -------------------------------------------------------------------------


def _pyrate_limiter(capacity: int, rate: float, *, state: bool, store=None):
    import pyrate_limiter as pl

    if state:
        # Its token bucket: `limit` per `interval` ms, holding at most `burst`.
        rates = [pl.Rate(max(1, round(rate)), pl.Duration.SECOND, burst=capacity)]
        bucket = pl.StateBucket(rates, algorithm=pl.TokenBucket(), store=store)
    else:
        # The default: a sliding-window log of `capacity` units per window.
        bucket = pl.InMemoryBucket([pl.Rate(capacity, _window_seconds(capacity, rate) * 1000)])
    return pl.Limiter(bucket)


def _pyrate_memory(*, state: bool) -> Callable[[int, float], Handle]:
    def make(capacity: int, rate: float) -> Handle:
        limiter = _pyrate_limiter(capacity, rate, state=state)
        return Handle(functools.partial(limiter.try_acquire, "acct", blocking=False), limiter.close)

    return make


def pyrate_blocking(capacity: int, rate: float) -> Handle:
    limiter = _pyrate_limiter(capacity, rate, state=True)
    return Handle(lambda cost: limiter.try_acquire("acct", cost), limiter.close)


def pyrate_aio(capacity: int, rate: float) -> AsyncHandle:
    limiter = _pyrate_limiter(capacity, rate, state=True)
    return AsyncHandle(lambda cost: limiter.try_acquire_async("acct", cost), limiter.close)


def pyrate_redis(url: str, key: str, capacity: int, rate: float) -> Handle:
    import pyrate_limiter as pl
    import redis

    client = redis.Redis.from_url(url)
    limiter = _pyrate_limiter(capacity, rate, state=True, store=pl.RedisStateStore(client, key))

    def close() -> None:
        limiter.close()
        client.close()

    return Handle(functools.partial(limiter.try_acquire, "acct", blocking=False), close)


# -- throttled-py ---------------------------------------------------------------------------


def _throttled(module: str, capacity: int, rate: float, *, using: str, store=None):
    import importlib

    lib = importlib.import_module(module)
    quota = lib.rate_limiter.per_sec(max(1, round(rate)), burst=capacity)
    return lib.Throttled(key="acct", using=using, quota=quota, store=store or lib.MemoryStore())


def _throttled_memory(using: str) -> Callable[[int, float], Handle]:
    def make(capacity: int, rate: float) -> Handle:
        limiter = _throttled("throttled", capacity, rate, using=using)
        return Handle(lambda cost: not limiter.limit(cost=cost).limited)

    return make


def throttled_blocking(capacity: int, rate: float) -> Handle:
    limiter = _throttled("throttled", capacity, rate, using="token_bucket")
    return Handle(lambda cost: not limiter.limit(cost=cost, timeout=3600).limited)


def throttled_aio(capacity: int, rate: float) -> AsyncHandle:
    limiter = _throttled("throttled.asyncio", capacity, rate, using="token_bucket")

    async def attempt(cost: int) -> bool:
        return not (await limiter.limit(cost=cost, timeout=60)).limited

    return AsyncHandle(attempt)


def throttled_redis(url: str, key: str, capacity: int, rate: float) -> Handle:
    from throttled import RedisStore

    limiter = _throttled(
        "throttled", capacity, rate, using="token_bucket", store=RedisStore(server=url)
    )
    return Handle(lambda cost: not limiter.limit(key, cost=cost).limited)


# -- aiolimiter -----------------------------------------------------------------------------


def aiolimiter_aio(capacity: int, rate: float) -> AsyncHandle:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(capacity, capacity / rate)
    return AsyncHandle(limiter.acquire)


def aiolimiter_probe(capacity: int, rate: float) -> Handle:
    """aiolimiter is asyncio only: its acquire, run to completion on a private loop."""
    from aiolimiter import AsyncLimiter

    async def acquire(cost: int) -> bool:
        await AsyncLimiter(capacity, capacity / rate).acquire(cost)
        return True

    return Handle(lambda cost: asyncio.run(acquire(cost)))


def aiolimiter_nonblocking(capacity: int, rate: float) -> Handle:
    """Its documented non-blocking check (``has_capacity``, which takes nothing), in a loop."""
    from aiolimiter import AsyncLimiter

    async def check(cost: int) -> bool:
        return AsyncLimiter(capacity, capacity / rate).has_capacity(cost)

    return Handle(lambda cost: asyncio.run(check(cost)))


PEERS: list[Peer] = [
    Peer(
        "tokenbudget",
        "tokenbudget",
        weighted=True,
        ours=True,
        memory=tb_memory,
        blocking=tb_blocking,
        aio=tb_aio,
        redis=tb_redis,
    ),
    Peer(
        "token-bucket",
        "token-bucket",
        weighted=True,
        memory=token_bucket_memory,
        notes=["no lock: its docs say races are mitigated, not eliminated; no asyncio, no Redis"],
    ),
    Peer(
        "limits (moving window)",
        "limits",
        weighted=True,
        memory=_limits_memory("MovingWindowRateLimiter"),
        aio=limits_aio,
        aio_blocks=False,
        redis=limits_redis,
        notes=[
            (
                "windows, not a bucket: C units per C/r-second window, in whole seconds (so 10 per "
                "second where the asyncio run asks for C = 10, r = 200/s); no blocking acquire"
            )
        ],
    ),
    Peer(
        "limits (fixed window)",
        "limits",
        weighted=True,
        memory=_limits_memory("FixedWindowRateLimiter"),
        contention=False,
    ),
    Peer(
        "limits (sliding window counter)",
        "limits",
        weighted=True,
        memory=_limits_memory("SlidingWindowCounterRateLimiter"),
        contention=False,
    ),
    Peer(
        "pyrate-limiter (token bucket)",
        "pyrate-limiter",
        weighted=True,
        memory=_pyrate_memory(state=True),
        blocking=pyrate_blocking,
        aio=pyrate_aio,
        redis=pyrate_redis,
    ),
    Peer(
        "pyrate-limiter (sliding log, default)",
        "pyrate-limiter",
        weighted=True,
        memory=_pyrate_memory(state=False),
        contention=False,
    ),
    Peer(
        "throttled-py (token bucket)",
        "throttled-py",
        weighted=True,
        memory=_throttled_memory("token_bucket"),
        blocking=throttled_blocking,
        aio=throttled_aio,
        redis=throttled_redis,
        notes=[
            (
                "its token bucket counts time in whole seconds (int(time.time()), Redis TIME "
                "seconds): a second's refill arrives at once at each second boundary, so a run "
                "that crosses one can admit more than C + r x elapsed"
            ),
            (
                "its blocking and asyncio waits retry every 0.2-0.5 s, hence its low admitted "
                "count with 8 waiting tasks; blocking calls get timeout=3600 (asyncio: 60)"
            ),
        ],
    ),
    Peer(
        "throttled-py (gcra)",
        "throttled-py",
        weighted=True,
        memory=_throttled_memory("gcra"),
        contention=False,
    ),
    Peer(
        "aiolimiter",
        "aiolimiter",
        weighted=True,
        memory=None,
        blocking=aiolimiter_probe,
        check=aiolimiter_nonblocking,
        aio=aiolimiter_aio,
        notes=[
            (
                "asyncio only: no synchronous non-blocking acquire; its non-blocking probe is "
                "has_capacity(), its blocking one acquire() on a private event loop"
            )
        ],
    ),
]


# -- the floor: one round trip that does no work -------------------------------------------


def ping_redis(url: str, _key: str, _capacity: int, _rate: float) -> Handle:
    """``PING`` through the same client: the round trip every Redis limiter pays, and nothing more.

    The key, capacity and rate are unused: no key is read or written.
    """
    import redis

    client = redis.Redis.from_url(url)
    ping = client.ping

    def attempt(_cost: int) -> bool:
        return ping()

    return Handle(attempt, client.close)


#: Not a library: the Redis section's floor (see ``measure.redis_section``).
PING_FLOOR = Peer("PING (the floor)", "redis", weighted=False, redis=ping_redis)


def close_quietly(handle: Handle | AsyncHandle) -> None:
    with contextlib.suppress(Exception):
        handle.close()


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 90 else text[:87] + "..."


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def monotonic() -> float:
    return time.perf_counter()
