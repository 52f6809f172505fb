"""Type-checker-only usage of Keepa's typed products and deals (``mypy tests/typing``); never run."""

from __future__ import annotations

import datetime as dt
from typing import assert_type

from tokenbudget_keepa import (
    BuyBoxHolder,
    Deal,
    Extreme,
    History,
    HistoryPoint,
    Offer,
    OfferCondition,
    PriceType,
    PriceUnit,
    Product,
    ProductStats,
)


def product_usage(product: Product) -> None:
    assert_type(product.price("USED"), int | None)
    assert_type(product.prices, dict[PriceType, int])
    assert_type(product.history(PriceType.USED), History)
    assert_type(product.history(2).latest, HistoryPoint | None)
    assert_type(product.histories, dict[PriceType, History])
    assert_type(product.sales_ranks, dict[int, History])
    assert_type(product.buy_box_history, tuple[BuyBoxHolder, ...])
    assert_type(product.live_offers, tuple[Offer, ...])
    assert_type(product.stats, ProductStats | None)
    if product.stats is not None:
        assert_type(product.stats.average(PriceType.NEW, 90), int | None)
        assert_type(product.stats.minimum(PriceType.NEW), Extreme | None)
    for point in product.history(PriceType.NEW_FBM_SHIPPING):
        assert_type(point.total, int | None)
        assert_type(point.time, dt.datetime)
    for offer in product.offers:
        assert_type(offer.condition, OfferCondition | None)
        assert_type(offer.total, int | None)
    assert_type(PriceType.RATING.unit, PriceUnit)


def deal_usage(deal: Deal) -> None:
    assert_type(deal.drop(PriceType.USED, 1), int | None)
    assert_type(deal.average("USED", 3), int | None)
    assert_type(deal.back_in_stock, frozenset[PriceType])
    assert_type(deal.image, str | None)
    assert_type(deal.last_update_time, dt.datetime)
    assert_type(deal.root_category, int | None)
