"""A product's marketplace offers (``/product`` with ``offers=N``) and the buy box history.

An offer's ``offerCSV`` is a history of triplets (time, price, shipping). Its
sentinels are its own: a price or shipping of ``-2`` is unknown; a shipping of
``-1`` means the offer is not shippable or its shipping is unspecified (never
free shipping, which is ``0``). The ``offers`` array also holds offers Keepa no
longer sees; ``liveOffersOrder`` lists the live ones, in Amazon's order.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import attrs

from .history import History
from .json_read import as_bool, as_int, as_str, non_negative, positive
from .keepa_time import keepa_minutes_to_datetime


__all__ = ["BuyBoxHolder", "Offer", "OfferCondition", "UsedBuyBoxHolder"]


class OfferCondition(enum.IntEnum):
    """An offer's condition (Keepa's ``condition``, ``warehouseCondition``, …).

    Keepa's ``0`` ("unknown") is not a member: the accessors answer ``None`` for it.

    .. versionadded:: 0.1.0
    """

    NEW = 1
    USED_NEW = 2
    USED_VERY_GOOD = 3
    USED_GOOD = 4
    USED_ACCEPTABLE = 5
    REFURBISHED = 6
    COLLECTIBLE_NEW = 7
    COLLECTIBLE_VERY_GOOD = 8
    COLLECTIBLE_GOOD = 9
    COLLECTIBLE_ACCEPTABLE = 10


def offer_condition(value: object) -> OfferCondition | None:
    """The condition of a Keepa condition code; ``None`` for ``0`` (unknown) or anything else."""
    code = as_int(value)
    return OfferCondition(code) if code is not None and 1 <= code <= 10 else None


@attrs.frozen
class Offer:
    """One marketplace offer of a product (an element of the product's ``offers``).

    Attributes:
        raw: The offer's JSON object as Keepa sent it.

    .. versionadded:: 0.1.0
    """

    raw: Mapping[str, Any] = attrs.field(repr=False)

    def __repr__(self) -> str:
        return (
            f"Offer(seller_id={self.seller_id!r}, condition={self.condition!r}, "
            f"price={self.price!r}, shipping={self.shipping!r})"
        )

    @property
    def offer_id(self) -> int | None:
        """Keepa's id of the offer within the product (``offerId``), stable across requests."""
        return non_negative(self.raw.get("offerId"))

    @property
    def seller_id(self) -> str | None:
        """The merchant's seller id (``sellerId``), ``None`` if absent."""
        return as_str(self.raw.get("sellerId"))

    @property
    def condition(self) -> OfferCondition | None:
        """The condition; ``None`` when Keepa could not tell (``0``) or sent none."""
        return offer_condition(self.raw.get("condition"))

    @property
    def condition_comment(self) -> str | None:
        """The seller's text about the condition, ``None`` if absent."""
        return as_str(self.raw.get("conditionComment"))

    @property
    def last_seen(self) -> int | None:
        """When Keepa last saw the offer (Keepa minutes); ``None`` if absent (``0``)."""
        return positive(self.raw.get("lastSeen"))

    @property
    def last_seen_time(self) -> dt.datetime | None:
        """:attr:`last_seen` as an aware UTC datetime."""
        minute = self.last_seen
        return None if minute is None else keepa_minutes_to_datetime(minute)

    @property
    def history(self) -> History:
        """The price history (``offerCSV``): triplets (time, price, shipping), cents."""
        return History.from_csv(self.raw.get("offerCSV"), with_shipping=True)

    def _latest(self, offset: int) -> int | None:
        csv = self.raw.get("offerCSV")
        if not isinstance(csv, list) or len(csv) < 3:
            return None
        return as_int(csv[offset])

    @property
    def price(self) -> int | None:
        """The latest price without shipping (cents); ``None`` when unknown (``-2``)."""
        return non_negative(self._latest(-2))

    @property
    def shipping(self) -> int | None:
        """The latest shipping cost (cents; ``0`` is free shipping).

        ``None`` when unknown (``-2``) or when the offer is not shippable or its
        shipping is unspecified (``-1``; see :attr:`ships`).
        """
        return non_negative(self._latest(-1))

    @property
    def ships(self) -> bool | None:
        """Whether the offer has a shipping cost (``False`` for Keepa's ``-1``).

        ``-1`` means not shippable or shipping unspecified; ``None`` when unknown
        (``-2``, or no ``offerCSV``).
        """
        shipping = self._latest(-1)
        if shipping is None or shipping == -2:
            return None
        return shipping != -1

    @property
    def total(self) -> int | None:
        """Price plus shipping (cents); ``None`` when either is missing or not shippable."""
        price, shipping = self.price, self.shipping
        return None if price is None or shipping is None else price + shipping

    @property
    def stock(self) -> int | None:
        """The latest stock count (``stockCSV``; needs ``stock=1``), ``None`` if absent."""
        latest = self.stock_history.latest
        return None if latest is None else latest.value

    @property
    def stock_history(self) -> History:
        """The stock history (``stockCSV``): pairs (time, count)."""
        return History.from_csv(self.raw.get("stockCSV"))

    @property
    def min_order_quantity(self) -> int | None:
        """The minimum order quantity (``minOrderQty``); ``None`` when unknown (``0``)."""
        return positive(self.raw.get("minOrderQty"))

    def flag(self, name: str) -> bool | None:
        """A boolean field of the offer by Keepa's name (``isFBA``, …), ``None`` if absent."""
        return as_bool(self.raw.get(name))

    @property
    def is_fba(self) -> bool | None:
        """Whether Amazon fulfils the offer (``isFBA``)."""
        return self.flag("isFBA")

    @property
    def is_prime(self) -> bool | None:
        """Whether the offer ships with Prime (``isPrime``)."""
        return self.flag("isPrime")

    @property
    def is_amazon(self) -> bool | None:
        """Whether Amazon itself sells it (``isAmazon``; not its Warehouse account)."""
        return self.flag("isAmazon")

    @property
    def is_shippable(self) -> bool | None:
        """Whether the offer is currently shippable (``isShippable``; else e.g. out of stock)."""
        return self.flag("isShippable")

    @property
    def is_preorder(self) -> bool | None:
        """Whether the offer is a pre-order (``isPreorder``)."""
        return self.flag("isPreorder")

    @property
    def is_map(self) -> bool | None:
        """Whether Amazon hides the price for a minimum advertised price (``isMAP``)."""
        return self.flag("isMAP")

    @property
    def is_warehouse_deal(self) -> bool | None:
        """Whether the offer is an Amazon Warehouse deal (``isWarehouseDeal``)."""
        return self.flag("isWarehouseDeal")

    @property
    def is_prime_exclusive(self) -> bool | None:
        """Whether the offer has a Prime exclusive price (``isPrimeExcl``)."""
        return self.flag("isPrimeExcl")


@attrs.frozen
class BuyBoxHolder:
    """Who held the buy box from :attr:`minute` on (``buyBoxSellerIdHistory``).

    Attributes:
        minute: From when (Keepa minutes).
        seller_id: The holder's seller id; ``None`` when no offer qualified (Keepa's
            ``"-1"``) or the holder was a seller Keepa did not know (``"-2"``).
        qualified: ``False`` when no offer qualified for the buy box (``"-1"``).

    .. versionadded:: 0.1.0
    """

    minute: int
    seller_id: str | None
    qualified: bool = True

    @property
    def time(self) -> dt.datetime:
        """:attr:`minute` as an aware UTC datetime."""
        return keepa_minutes_to_datetime(self.minute)


@attrs.frozen
class UsedBuyBoxHolder:
    """Who held the used buy box from :attr:`minute` on (``buyBoxUsedHistory``).

    Attributes:
        minute: From when (Keepa minutes).
        seller_id: The holder's seller id; ``None`` when no offer qualified (``""``).
        condition: The offer's used sub-condition, ``None`` if unknown.
        is_fba: Whether Amazon fulfils it, ``None`` if unknown.

    .. versionadded:: 0.1.0
    """

    minute: int
    seller_id: str | None
    condition: OfferCondition | None = None
    is_fba: bool | None = None

    @property
    def time(self) -> dt.datetime:
        """:attr:`minute` as an aware UTC datetime."""
        return keepa_minutes_to_datetime(self.minute)


def _str_minute(value: object) -> int | None:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return as_int(value)


def buy_box_history(values: object) -> tuple[BuyBoxHolder, ...]:
    """Read ``buyBoxSellerIdHistory`` (``["minute", "sellerId", …]``, all strings)."""
    if not isinstance(values, list):
        return ()
    out = []
    for i in range(0, len(values) - 1, 2):
        minute = _str_minute(values[i])
        seller = values[i + 1]
        if minute is None or not isinstance(seller, str):
            continue
        if seller == "-1":
            out.append(BuyBoxHolder(minute, None, qualified=False))
        else:
            out.append(BuyBoxHolder(minute, None if seller in ("-2", "") else seller))
    return tuple(out)


def used_buy_box_history(values: object) -> tuple[UsedBuyBoxHolder, ...]:
    """Read ``buyBoxUsedHistory`` (``["minute", "sellerId", "condition", "isFBA", …]``)."""
    if not isinstance(values, list):
        return ()
    out = []
    for i in range(0, len(values) - 3, 4):
        minute = _str_minute(values[i])
        if minute is None:
            continue
        seller, condition, fba = values[i + 1], values[i + 2], values[i + 3]
        out.append(
            UsedBuyBoxHolder(
                minute,
                seller if isinstance(seller, str) and seller else None,
                offer_condition(_str_minute(condition)),
                {"1": True, "0": False}.get(fba) if isinstance(fba, str) else None,
            )
        )
    return tuple(out)
