"""One process of the shared-budget test: requests through a QuotaTransport on Redis.

Run as ``python -m tests.tokenbudget.http._shared_worker API_URL REDIS_URL PREFIX N``:
it builds its transport, prints ``ready``, waits for a line on stdin (the start
signal), sends N chat completions and prints their statuses as JSON.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import httpx
import redis

from tokenbudget.http.httpx import QuotaTransport
from tokenbudget.redis import RedisBackend


def main() -> None:
    api_url, redis_url, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    backend = RedisBackend(redis.Redis.from_url(redis_url), prefix=prefix)
    transport = QuotaTransport("openai", backend=backend, key="account", retries=0)
    statuses: Counter[int] = Counter()
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Share the budget."}],
        "max_tokens": 20,
    }
    with httpx.Client(base_url=api_url, transport=transport, timeout=30) as client:
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(count):
            statuses[client.post("/v1/chat/completions", json=body).status_code] += 1
    print(json.dumps(statuses), flush=True)


if __name__ == "__main__":
    main()
