"""A product's ``stats`` object (``/product`` with ``stats=DAYS``).

Keepa computes these figures per price type over fixed intervals (30, 90, 180,
365 days) and over the interval the request named (``stats=DAYS``: ``avg``,
``atIntervalStart``, ``minInInterval``, ``maxInInterval``,
``outOfStockPercentageInInterval``). Per-type values of ``-1`` (no offer, too
little data) and ``-2`` (unknown) read as ``None``; a ``min``/``max`` entry is
``null`` or ``[-1, -1]`` when there is no data, else ``[keepaMinute, value]``.
The buy box figures need ``offers`` or ``buybox``; their "none" is ``-1`` or
``-2`` (Keepa's documentation says ``-2``, real answers carry ``-1``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import attrs

from .json_read import (
    as_bool,
    as_int,
    as_str,
    item,
    non_negative,
    per_type,
    price_index,
    type_value,
)
from .keepa_time import keepa_minutes_to_datetime
from .offers import OfferCondition, offer_condition
from .price_type import PriceType


__all__ = ["Extreme", "ProductStats"]

#: ``days`` -> the key of the average over that many days (None: the request's interval).
_AVERAGES: Final = {None: "avg", 30: "avg30", 90: "avg90", 180: "avg180", 365: "avg365"}
_OUT_OF_STOCK: Final = {
    None: "outOfStockPercentageInInterval",
    30: "outOfStockPercentage30",
    90: "outOfStockPercentage90",
    180: "outOfStockPercentage180",
    365: "outOfStockPercentage365",
}
_DROPS: Final = (30, 90, 180, 365)


@attrs.frozen
class Extreme:
    """A lowest or highest value and when it was reached (an entry of ``stats.min``, …).

    Attributes:
        minute: When (Keepa minutes).
        value: The value, in its price type's unit.

    .. versionadded:: 0.1.0
    """

    minute: int
    value: int

    @property
    def time(self) -> dt.datetime:
        """:attr:`minute` as an aware UTC datetime."""
        return keepa_minutes_to_datetime(self.minute)


def _days(days: int | None, table: Mapping[int | None, str], what: str) -> str:
    if days not in table:
        choices = ", ".join(str(d) for d in table)
        raise ValueError(f"{what} days must be one of {choices}, got {days!r}")
    return table[days]


@attrs.frozen
class ProductStats:
    """The ``stats`` of a product: current, average, lowest and highest values per price type.

    Every per-type accessor takes a :class:`PriceType` (its int, or its name) and
    answers in that type's unit (:attr:`PriceType.unit`: cents, rank, count,
    rating times 10); ``None`` means no data (Keepa's ``-1`` or ``-2``, a missing
    field, or a type past the end of Keepa's array).

    Attributes:
        raw: The ``stats`` JSON object as Keepa sent it.

    .. versionadded:: 0.1.0
    """

    raw: Mapping[str, Any] = attrs.field(repr=False)

    def _type_value(self, key: str, price_type: object) -> int | None:
        i = price_index(price_type)
        return type_value(i, item(self.raw.get(key), i))

    def current(self, price_type: object) -> int | None:
        """The current value of *price_type* (``current``)."""
        return self._type_value("current", price_type)

    @property
    def currents(self) -> dict[PriceType, int]:
        """Every current value Keepa has, by price type (types without data left out)."""
        return per_type(self.raw.get("current"))

    def average(self, price_type: object, days: int | None = None) -> int | None:
        """The weighted mean of *price_type* over the last *days* (30, 90, 180 or 365).

        ``days=None``: over the interval of the request's ``stats=`` (``avg``).

        Raises:
            ValueError: *days* is not one of Keepa's intervals.
        """
        return self._type_value(_days(days, _AVERAGES, "average"), price_type)

    def at_interval_start(self, price_type: object) -> int | None:
        """The value at the start of the request's interval (``atIntervalStart``)."""
        return self._type_value("atIntervalStart", price_type)

    def _extreme(self, key: str, price_type: object) -> Extreme | None:
        entry = item(self.raw.get(key), price_index(price_type))
        if not isinstance(entry, list) or len(entry) != 2:
            return None
        minute, value = as_int(entry[0]), non_negative(entry[1])
        if minute is None or value is None or (minute == -1 and entry[1] == -1):
            return None
        return Extreme(minute, value)

    def minimum(self, price_type: object, *, in_interval: bool = False) -> Extreme | None:
        """The lowest value ever (``min``), or in the request's interval (``minInInterval``)."""
        return self._extreme("minInInterval" if in_interval else "min", price_type)

    def maximum(self, price_type: object, *, in_interval: bool = False) -> Extreme | None:
        """The highest value ever (``max``), or in the request's interval (``maxInInterval``)."""
        return self._extreme("maxInInterval" if in_interval else "max", price_type)

    def out_of_stock_percent(self, price_type: object, days: int | None = None) -> int | None:
        """How much of the last *days* (30, 90, 180, 365; None: the request's) had no offer.

        A percentage, 0 to 100; ``None`` for too little data or a type that is not a price.

        Raises:
            ValueError: *days* is not one of Keepa's intervals.
        """
        return self._type_value(_days(days, _OUT_OF_STOCK, "out-of-stock"), price_type)

    def is_lowest(self, price_type: object, *, days: int | None = None) -> bool | None:
        """Whether the current value is the lowest ever (``isLowest``) or of 90 days (``days=90``).

        Raises:
            ValueError: *days* is neither ``None`` nor ``90``.
        """
        key = _days(days, {None: "isLowest", 90: "isLowest90"}, "is_lowest")
        return as_bool(item(self.raw.get(key), price_index(price_type)))

    def sales_rank_drops(self, days: int) -> int | None:
        """How often the sales rank dropped in the last *days* (30, 90, 180, 365): a count.

        Keepa counts the drops that indicate a sale; ``None`` when it has no figure (``-1``).

        Raises:
            ValueError: *days* is not one of Keepa's intervals.
        """
        if days not in _DROPS:
            raise ValueError(f"sales_rank_drops days must be one of 30, 90, 180, 365, got {days!r}")
        return non_negative(self.raw.get(f"salesRankDrops{days}"))

    def _count(self, key: str) -> int | None:
        return non_negative(self.raw.get(key))

    @property
    def total_offer_count(self) -> int | None:
        """How many offers, all conditions (``totalOfferCount``); ``None``: unknown (``-2``)."""
        return self._count("totalOfferCount")

    @property
    def retrieved_offer_count(self) -> int | None:
        """How many offers Keepa fetched for this answer (``retrievedOfferCount``; ``offers``)."""
        return self._count("retrievedOfferCount")

    @property
    def offer_count_fba(self) -> int | None:
        """How many live offers fulfilled by Amazon were fetched (``offerCountFBA``)."""
        return self._count("offerCountFBA")

    @property
    def offer_count_fbm(self) -> int | None:
        """How many live merchant-fulfilled offers were fetched (``offerCountFBM``)."""
        return self._count("offerCountFBM")

    @property
    def stock_amazon(self) -> int | None:
        """Amazon's stock, at most 10 (``stockAmazon``); ``None`` without an Amazon offer."""
        return self._count("stockAmazon")

    @property
    def stock_buy_box(self) -> int | None:
        """The buy box offer's stock, at most 10 (``stockBuyBox``); ``None`` without one."""
        return self._count("stockBuyBox")

    @property
    def last_offers_update(self) -> int | None:
        """When Keepa last fetched the offers (Keepa minutes, ``lastOffersUpdate``)."""
        return _minute(self.raw.get("lastOffersUpdate"))

    @property
    def last_buy_box_update(self) -> int | None:
        """When Keepa last updated the buy box price (Keepa minutes, ``lastBuyBoxUpdate``)."""
        return _minute(self.raw.get("lastBuyBoxUpdate"))

    @property
    def buy_box_price(self) -> int | None:
        """The buy box price without shipping (cents, ``buyBoxPrice``); ``None`` without one."""
        return self._count("buyBoxPrice")

    @property
    def buy_box_shipping(self) -> int | None:
        """The buy box's shipping cost (cents, ``buyBoxShipping``); ``None`` without one."""
        return self._count("buyBoxShipping")

    @property
    def buy_box_seller_id(self) -> str | None:
        """The buy box seller's id (``buyBoxSellerId``); ``None`` without one (``"-2"``)."""
        seller = as_str(self.raw.get("buyBoxSellerId"))
        return None if seller in ("-1", "-2") else seller

    @property
    def buy_box_used_price(self) -> int | None:
        """The used buy box price without shipping (cents, ``buyBoxUsedPrice``)."""
        return self._count("buyBoxUsedPrice")

    @property
    def buy_box_used_shipping(self) -> int | None:
        """The used buy box's shipping cost (cents, ``buyBoxUsedShipping``)."""
        return self._count("buyBoxUsedShipping")

    @property
    def buy_box_used_seller_id(self) -> str | None:
        """The used buy box seller's id (``buyBoxUsedSellerId``), ``None`` without one."""
        return as_str(self.raw.get("buyBoxUsedSellerId"))

    @property
    def buy_box_used_condition(self) -> OfferCondition | None:
        """The used buy box offer's condition (``buyBoxUsedCondition``)."""
        return offer_condition(self.raw.get("buyBoxUsedCondition"))

    def flag(self, name: str) -> bool | None:
        """A boolean field by Keepa's name (``buyBoxIsFBA``, ``buyBoxIsAmazon``, …), else None."""
        return as_bool(self.raw.get(name))

    @property
    def lightning_deal(self) -> tuple[int, int | None] | None:
        """The latest lightning deal (``lightningDealInfo``): (start, end) in Keepa minutes.

        ``end`` is ``None`` for an upcoming deal; ``None`` when the product never had one.
        """
        info = self.raw.get("lightningDealInfo")
        if not isinstance(info, list) or len(info) != 2:
            return None
        start = _minute(info[0])
        if start is None:
            return None
        return start, _minute(info[1])


def _minute(value: object) -> int | None:
    """A Keepa time where ``-1`` and ``0`` mean none."""
    minute = as_int(value)
    return None if minute is None or minute in (-1, 0) else minute
