"""One client process of the shared-account test: spends one account through a Redis bucket.

KIND is ``account`` (a RedisAccountBucket: the account's bucket in Redis, adopting only
exact counts) or ``plain`` (a TokenBucket on a RedisBackend, keeping bookings in flight).

Run as ``python _shared_worker.py URL REDIS_URL PREFIX REQUESTS ASIN,ASIN,... KIND``; the key comes from
``KEEPA_API_KEY``. Prints one JSON line: what it did.
"""

from __future__ import annotations

import json
import math
import sys

import redis

from tokenbudget import BucketConfig, DeficitRule, MonotonicClock, Rate, TokenBucket
from tokenbudget.redis import RedisBackend
from tokenbudget_keepa import KeepaClient, KeepaError
from tokenbudget_keepa.redis import RedisAccountBucket


#: The emulator's account in the test: 3000 tokens a minute in steps of 0.2 s, 100 at most.
RATE_PER_MIN = 3000
STEP = 0.2
CAPACITY = 100


def shared_config(*, in_flight: float = 0.0) -> BucketConfig:
    """The bucket every process of the account uses (same key, same config)."""
    return BucketConfig(
        CAPACITY,
        Rate.per_minute(RATE_PER_MIN),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(math.inf),
        refill_step=STEP,
        in_flight=in_flight,
    )


def one_request(client: KeepaClient, i: int, asins: list[str]) -> bool:
    """A deal page or a product batch (5 tokens each); False on a Keepa error."""
    try:
        if i % 2:
            client.deals({"priceTypes": [1], "dateRange": 0})
        else:
            client.products(asins)
    except KeepaError as err:
        print(f"error: {err}", file=sys.stderr)
        return False
    return True


def main() -> None:
    url, redis_url, prefix, requests, asins, kind = sys.argv[1:7]
    client_redis = redis.Redis.from_url(redis_url)
    bucket: TokenBucket
    if kind == "account":
        account = RedisAccountBucket(
            shared_config(), client_redis, key="keepa:account", prefix=prefix
        )
        bucket, clock = account, account.client_clock()
    else:
        backend = RedisBackend(client_redis, prefix=prefix)
        bucket = TokenBucket(shared_config(in_flight=10.0), backend=backend, key="keepa:account")
        clock = MonotonicClock()
    with KeepaClient(base_url=url, bucket=bucket, clock=clock, timeout=5.0) as client:
        outcomes = [one_request(client, i, asins.split(",")) for i in range(int(requests))]
    client_redis.close()
    done = sum(outcomes)
    errors = len(outcomes) - done
    print(json.dumps({"done": done, "errors": errors}))


if __name__ == "__main__":
    main()
