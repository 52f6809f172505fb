"""Type-checker-only usage of the Keepa client API (``mypy src tests/typing``); never run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, assert_type

from tokenbudget import AsyncTokenBucket, ManualClock, TokenBucket, TokenBudgetError
from tokenbudget_keepa import (
    AsyncKeepaClient,
    Deal,
    DealPage,
    DealQuery,
    KeepaAuthError,
    KeepaClient,
    KeepaError,
    KeepaProtocolError,
    KeepaRequestError,
    KeepaServerError,
    KeepaTokenError,
    KeepaTransportError,
    PriceType,
    Product,
    TokenStatus,
)


def sync_usage() -> None:
    with KeepaClient("key", base_url="http://127.0.0.1:1", clock=ManualClock()) as client:
        assert_type(client.bucket, TokenBucket)
        status = client.token_status(max_age=0)
        assert_type(status, TokenStatus)
        assert_type(status.tokens_left, float)
        assert_type(status.timestamp, dt.datetime)
        products = client.products(["B000000001"], offers=20, stats=90, buybox=True)
        assert_type(products, list[Product])
        product = products[0]
        assert_type(product.asin, str)
        assert_type(product.title, str | None)
        assert_type(product.raw, Mapping[str, Any])
        assert_type(product.buybox_price, int | None)
        assert_type(product.referral_fee_percent, float | None)
        assert_type(product.price(PriceType.NEW), int | None)
        page = client.deals(DealQuery(price_types=PriceType.NEW, sort_type=1), page=2)
        assert_type(page, DealPage)
        assert_type(client.deals({"priceTypes": [1]}), DealPage)
        deal = page.deals[0]
        assert_type(deal, Deal)
        assert_type(deal.last_update, int)
        assert_type(deal.drop_percent(PriceType.NEW, 1), int | None)
        assert_type(page.is_last, bool)


async def async_usage(bucket: AsyncTokenBucket) -> None:
    async with AsyncKeepaClient(bucket=bucket) as client:
        assert_type(client.bucket, AsyncTokenBucket)
        assert_type(await client.token_status(), TokenStatus)
        assert_type(await client.products("B000000001"), list[Product])
        assert_type(await client.deals({"priceTypes": [1]}), DealPage)


def errors(err: KeepaError) -> None:
    base: TokenBudgetError = err
    kinds: tuple[type[KeepaError], ...] = (
        KeepaAuthError,
        KeepaRequestError,
        KeepaTokenError,
        KeepaServerError,
        KeepaTransportError,
        KeepaProtocolError,
    )
    assert_type(err.status, int | None)
    assert_type(err.attempts, int)
    conn: ConnectionError = KeepaTransportError("x")
    del base, kinds, conn
