"""Type-checker-only usage of the Keepa client API (``mypy src tests/typing``); never run."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, assert_type

from tokenbudget import AsyncTokenBucket, ManualClock, TokenBucket, TokenBudgetError
from tokenbudget_keepa import (
    AsyncKeepaClient,
    Category,
    Deal,
    DealPage,
    DealQuery,
    FinderPage,
    FinderQuery,
    KeepaAuthError,
    KeepaClient,
    KeepaError,
    KeepaProtocolError,
    KeepaRequestError,
    KeepaServerError,
    KeepaTokenError,
    KeepaTransportError,
    LightningDeal,
    PriceType,
    Product,
    Seller,
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


def sync_rest_of_the_api(client: KeepaClient) -> None:
    finder = client.product_finder(FinderQuery(current_SALES_lte=5000), page=1, per_page=100)
    assert_type(finder, FinderPage)
    assert_type(finder.asins, list[str])
    assert_type(finder.total_results, int)
    assert_type(client.product_finder({"brand": ["x"]}), FinderPage)
    assert_type(client.iter_product_finder({"brand": ["x"]}), Iterator[FinderPage])
    assert_type(client.best_sellers(172282, range=30), list[str])
    assert_type(client.best_sellers("Beauty"), list[str])
    categories = client.categories([1, 2], parents=True)
    assert_type(categories, dict[int, Category])
    assert_type(categories[1].parent, int | None)
    assert_type(client.category_search("science"), dict[int, Category])
    assert_type(client.search("lamp", page=2), list[Product])
    assert_type(client.iter_search("lamp"), Iterator[list[Product]])
    sellers = client.sellers("A2L77EE7U53NWQ", storefront=True)
    assert_type(sellers, dict[str, Seller])
    assert_type(sellers["A2L77EE7U53NWQ"].asins, tuple[str, ...])
    deals = client.lightning_deals()
    assert_type(deals, list[LightningDeal])
    assert_type(deals[0].deal_price, int | None)


async def async_usage(bucket: AsyncTokenBucket) -> None:
    async with AsyncKeepaClient(bucket=bucket) as client:
        assert_type(client.bucket, AsyncTokenBucket)
        assert_type(await client.token_status(), TokenStatus)
        assert_type(await client.products("B000000001"), list[Product])
        assert_type(await client.deals({"priceTypes": [1]}), DealPage)
        assert_type(await client.product_finder({"brand": ["x"]}), FinderPage)
        pages = client.iter_product_finder({"brand": ["x"]})
        assert_type(pages, AsyncIterator[FinderPage])
        assert_type(await client.best_sellers(1), list[str])
        assert_type(await client.categories(0), dict[int, Category])
        assert_type(await client.category_search("kitchen"), dict[int, Category])
        assert_type(await client.search("lamp"), list[Product])
        assert_type(client.iter_search("lamp"), AsyncIterator[list[Product]])
        assert_type(await client.sellers(["A2L77EE7U53NWQ"]), dict[str, Seller])
        assert_type(await client.lightning_deals("B000000001"), list[LightningDeal])


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
