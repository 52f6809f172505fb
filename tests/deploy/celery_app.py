"""The Celery app the deployment tests start workers on (configured by environment variables).

``TB_CELERY_BROKER`` (a Redis URL: broker and result backend), ``TB_CELERY_PREFIX``
(every broker key and queue name starts with it), ``TB_KEEPA_URL`` (the
emulator), ``TB_BUCKET_URL``/``TB_BUCKET_PREFIX`` (the account's bucket),
``TB_TIMEOUT`` (the Keepa client's request timeout, seconds),
``TB_RATE``/``TB_STEP`` (the account's refill per minute and step, as the
emulator's), ``TB_STORE`` (PostgreSQL), ``TB_EVERY`` (the beat interval) and
``TB_LEASE_TTL``.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from celery import Celery

from tokenbudget import BucketConfig, DeficitRule, Rate
from tokenbudget_keepa.celery import KeepaAccount, register_ingest


env = os.environ
PREFIX = env.get("TB_CELERY_PREFIX", "tokenbudget-test:")
BROKER = env.get("TB_CELERY_BROKER", "redis://127.0.0.1:6379/15")
INGEST_QUEUE = f"{PREFIX}ingest"
SPEND_QUEUE = f"{PREFIX}spend"
SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}


def account_config(rate: int, step: float) -> BucketConfig:
    """The client's model of a Keepa account, with the emulator's refill step."""
    return BucketConfig(
        60 * rate,
        Rate.per_minute(rate),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(math.inf),
        refill_step=step,
    )


app = Celery("tokenbudget_test", broker=BROKER, backend=BROKER)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    broker_connection_retry_on_startup=True,
    task_default_queue=INGEST_QUEUE,
    task_routes={"tb_test.spend": {"queue": SPEND_QUEUE}},
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    result_expires=600,
)

account = KeepaAccount(
    env.get("TB_BUCKET_URL", BROKER),
    name="acct",
    api_key="test-key",
    base_url=env.get("TB_KEEPA_URL", "http://127.0.0.1:1"),
    prefix=env.get("TB_BUCKET_PREFIX", PREFIX),
    config=account_config(int(env.get("TB_RATE", "600")), float(env.get("TB_STEP", "1"))),
    client_options={
        "max_retries": 2,
        "backoff": 0.1,
        "max_backoff": 1.0,
        "timeout": float(env.get("TB_TIMEOUT", "30")),
    },
)

ingest = register_ingest(
    app,
    account,
    SELECTION,
    store=env.get("TB_STORE", "postgresql://postgres@127.0.0.1:1/none"),
    every=float(env.get("TB_EVERY", "3")),
    filters=(),
    enrich={"stats": 1, "history": False},
    schedule=False,
    lease_ttl=float(env.get("TB_LEASE_TTL", "5")),
    retry_delay=0.5,
    settle_minutes=0,
    sweep_interval_minutes=0,
)


@app.task(name="tb_test.spend")
def spend(asins: list[str], start: float, until: float) -> dict[str, Any]:
    """Another task spending the same account: product requests from *start* to *until*."""
    requests = 0
    with account.client() as keepa:
        keepa.token_status()
        time.sleep(max(0.0, start - time.time()))
        while time.time() < until:
            keepa.products(asins, history=False)
            requests += 1
    return {"requests": requests, "pid": os.getpid()}
