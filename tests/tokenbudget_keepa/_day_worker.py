"""One client process of the shared-account day: spends one Keepa account through Redis.

Run as ``python -m tests.tokenbudget_keepa._day_worker URL REDIS_URL PREFIX KIND ORIGIN FACTOR
UNTIL SEED`` (the key from ``KEEPA_API_KEY``). KIND is ``sync`` (a KeepaClient on a
TokenBucket) or ``async`` (an AsyncKeepaClient on an AsyncTokenBucket, two tasks): either
way a plain bucket on a RedisBackend with bookings in flight, as every process builds it.
Time is simulated: a clock FACTOR times faster than real time, from the monotonic time
ORIGIN shared by every process and the emulator, until the simulated time UNTIL. Prints one
JSON line: what it did.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time

from tokenbudget import AsyncTokenBucket, BucketConfig, DeficitRule, Rate, TokenBucket


#: The account at the start: tokens a minute (the emulator's too), added once a minute.
RATE_PER_MIN = 1
STEP = 60.0
CAPACITY = 300
KEY = "keepa:day"


class SharedFastClock:
    """A clock *factor* times faster than real time, counted from a monotonic *origin*.

    ``time.monotonic`` is one clock for every process of a host, so processes
    built with the same origin and factor read the same simulated time.
    """

    def __init__(self, origin: float, factor: float) -> None:
        self.origin = origin
        self.factor = factor

    def __repr__(self) -> str:
        return f"SharedFastClock({self.factor!r})"

    def now(self) -> float:
        return (time.monotonic() - self.origin) * self.factor

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)

    async def asleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds / self.factor)


def config(factor: float) -> BucketConfig:
    """Every process's bucket: Keepa's model; a request counts as on the wire for 15 real s."""
    return BucketConfig(
        CAPACITY,
        Rate.per_minute(RATE_PER_MIN),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(math.inf),
        refill_step=STEP,
        in_flight=15.0 * factor,
    )


def _request(rng: random.Random, asins: list[str]) -> tuple[str, object]:
    if rng.random() < 0.3:
        return "deals", {"priceTypes": [1], "dateRange": 0}
    start = rng.randrange(0, len(asins) - 10)
    return "products", asins[start : start + rng.choice((3, 8, 12))]


def run_sync(url: str, redis_url: str, prefix: str, clock: SharedFastClock, until: float,
             seed: int, asins: list[str]) -> dict[str, int]:  # fmt: skip
    import redis

    from tokenbudget.redis import RedisBackend
    from tokenbudget_keepa import KeepaClient, KeepaError

    client_redis = redis.Redis.from_url(redis_url)
    backend = RedisBackend(client_redis, prefix=prefix, clock=clock)
    bucket = TokenBucket(config(clock.factor), clock=clock, backend=backend, key=KEY, tokens=0)
    rng = random.Random(seed)
    done = errors = 0
    with KeepaClient(base_url=url, bucket=bucket, clock=clock, timeout=5.0) as client:
        while clock.now() < until:
            name, arg = _request(rng, asins)
            try:
                getattr(client, name)(arg)
                done += 1
            except KeepaError as err:
                print(f"error: {err}", file=sys.stderr)
                errors += 1
    client_redis.close()
    return {"done": done, "errors": errors}


async def run_async(url: str, redis_url: str, prefix: str, clock: SharedFastClock, until: float,
                    seed: int, asins: list[str]) -> dict[str, int]:  # fmt: skip
    import redis.asyncio

    from tokenbudget.redis import RedisBackend
    from tokenbudget_keepa import AsyncKeepaClient, KeepaError

    client_redis = redis.asyncio.Redis.from_url(redis_url)
    backend = RedisBackend(client_redis, prefix=prefix, clock=clock)
    bucket = AsyncTokenBucket(config(clock.factor), clock=clock, backend=backend, key=KEY, tokens=0)
    counts = {"done": 0, "errors": 0}
    async with AsyncKeepaClient(base_url=url, bucket=bucket, clock=clock, timeout=5.0) as client:
        await client.token_status()  # builds nothing (the bucket is given); one answer

        async def task(rng: random.Random) -> None:
            while clock.now() < until:
                name, arg = _request(rng, asins)
                try:
                    await getattr(client, name)(arg)
                    counts["done"] += 1
                except KeepaError as err:
                    print(f"error: {err}", file=sys.stderr)
                    counts["errors"] += 1

        await asyncio.gather(task(random.Random(seed)), task(random.Random(seed + 100)))
    await client_redis.aclose()
    return counts


def main() -> None:
    url, redis_url, prefix, kind, origin, factor, until, seed, asins = sys.argv[1:10]
    clock = SharedFastClock(float(origin), float(factor))
    args = (url, redis_url, prefix, clock, float(until), int(seed), asins.split(","))
    if kind == "sync":
        result = run_sync(*args)
    else:
        result = asyncio.run(run_async(*args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
