"""Typed views of Keepa's JSON: products, deals and token status (deal queries: ``_query``).

Each result keeps the JSON object it came from as ``raw``; the accessors read
from it and return ``None`` where Keepa has no data (a missing field, or
Keepa's ``-1``), never raising. Prices are integers in the domain's smallest
unit (cents); times are Keepa minutes (see :func:`keepa_minutes_to_datetime`).

This module needs no HTTP library: the ingestor's filters import it alone.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from tokenbudget_keepa._client.errors import KeepaProtocolError

from .history import History
from .json_read import as_int as _int
from .json_read import as_str, per_type, positive, type_value
from .json_read import int_rows as _int_rows
from .json_read import ints as _ints
from .json_read import item as _index
from .json_read import mapping as _mapping
from .json_read import non_negative as _known
from .json_read import price_index as _price_index
from .keepa_time import keepa_minutes_to_datetime
from .offers import (
    BuyBoxHolder,
    Offer,
    OfferCondition,
    UsedBuyBoxHolder,
    buy_box_history,
    offer_condition,
    used_buy_box_history,
)
from .price_type import PriceType
from .query import DealQuery
from .stats import ProductStats


__all__ = [
    "Deal",
    "DealPage",
    "DealQuery",
    "PriceType",
    "Product",
    "TokenStatus",
]

#: Keepa's marketplaces: domain id -> host suffix.
DOMAINS: Final = {
    1: "com",
    2: "co.uk",
    3: "de",
    4: "fr",
    5: "co.jp",
    6: "ca",
    8: "it",
    9: "es",
    10: "in",
    11: "com.mx",
    12: "com.br",
}


# -- small readers that never raise ------------------------------------------------------------

#: Keepa's markers of "no root category known" (besides a missing field).
UNKNOWN_CATEGORIES: Final = frozenset({0, 2**63 - 1})


def _category(value: object) -> int | None:
    """A category id; None for Keepa's "unknown" markers (0, 2**63 - 1) and negatives."""
    category = _known(value)
    return None if category is None or category in UNKNOWN_CATEGORIES else category


def _date_range(date_range: object) -> int:
    """A deal's date range index (0 day … 3 ninety days; others have no row: ``None``)."""
    if isinstance(date_range, bool) or not isinstance(date_range, int):
        raise TypeError(f"date_range must be an int (0 day ... 3 ninety days), got {date_range!r}")
    return date_range


def _minute_time(minute: int | None) -> dt.datetime | None:
    return None if minute is None else keepa_minutes_to_datetime(minute)


def _object(raw: object, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise KeepaProtocolError(f"a {what} must be a JSON object, got {type(raw).__name__}")
    return raw


def _asin(raw: Mapping[str, Any], what: str) -> str:
    asin = raw.get("asin")
    if not isinstance(asin, str) or not asin:
        raise KeepaProtocolError(f"a {what} needs an 'asin' string, got {asin!r}")
    return asin


def _title(raw: Mapping[str, Any]) -> str | None:
    title = raw.get("title")
    return title if isinstance(title, str) else None


# -- token status ------------------------------------------------------------------------------


@attrs.frozen
class TokenStatus:
    """The account's token status, from the envelope of any answer (``/token`` is free).

    Attributes:
        tokens_left: The balance (negative while the account is in debt).
        refill_in: Seconds until the next refill step.
        refill_rate: Tokens added per minute.
        token_flow_reduction: Keepa's reduction of the refill for tracked products.
        timestamp: The server's time of the answer (aware, UTC).

    .. versionadded:: 0.1.0
    """

    tokens_left: float
    refill_in: float
    refill_rate: float
    token_flow_reduction: float
    timestamp: dt.datetime


# -- products ----------------------------------------------------------------------------------


@attrs.frozen
class Product:
    """One product of a ``/product`` answer, with typed accessors over Keepa's JSON.

    Each accessor says its unit and answers ``None`` where Keepa has no data (a
    missing field, ``null``, or the field's own "no data" marker, e.g. ``-1``),
    never a sentinel and never raising. Prices are integers in the marketplace's
    smallest currency unit (cents); times are Keepa minutes (each ``*_time``
    twin is an aware UTC datetime). :doc:`/keepa-data-reference` lists every
    field and its markers.

    >>> from tokenbudget_keepa import PriceType, Product
    >>> product = Product.from_raw({
    ...     "asin": "B000000001",
    ...     "stats": {"current": [-1, 2599, 1899, 4200], "avg30": [-1, 2799, -2, 5100]},
    ...     "csv": [None, None, [7_800_000, 2100, 7_800_600, 1899]],
    ... })
    >>> product.price(PriceType.USED), product.price("sales"), product.amazon_price
    (1899, 4200, None)
    >>> product.stats.average(PriceType.NEW, days=30)
    2799
    >>> [(p.minute, p.value) for p in product.history(PriceType.USED)]
    [(7800000, 2100), (7800600, 1899)]

    Attributes:
        asin: The product's ASIN.
        title: Its title, if Keepa has one.
        raw: The product's JSON object as Keepa sent it.

    .. versionadded:: 0.1.0
    """

    asin: str
    title: str | None
    raw: Mapping[str, Any] = attrs.field(repr=False)

    @classmethod
    def from_raw(cls, raw: object) -> Product:
        """Build a product from its JSON object.

        Raises:
            KeepaProtocolError: *raw* is not an object with an ``asin`` string.
        """
        obj = _object(raw, "product")
        return cls(_asin(obj, "product"), _title(obj), obj)

    @property
    def _stats(self) -> Mapping[str, Any]:
        return _mapping(self.raw.get("stats"))

    @property
    def stats(self) -> ProductStats | None:
        """The ``stats`` figures (needs ``stats=`` in the request), ``None`` without them."""
        stats = self.raw.get("stats")
        return ProductStats(stats) if isinstance(stats, Mapping) else None

    @property
    def domain_id(self) -> int | None:
        """The marketplace (``domainId``: 1 com, 2 co.uk, 3 de, …); ``None`` if absent."""
        return _known(self.raw.get("domainId"))

    @property
    def root_category(self) -> int | None:
        """The root category id (``rootCategory``); ``None`` when unknown (``0``)."""
        return _category(self.raw.get("rootCategory"))

    @property
    def categories(self) -> tuple[int, ...]:
        """The category ids (empty when unknown)."""
        return tuple(c for c in _ints(self.raw.get("categories")) if c >= 0)

    @property
    def brand(self) -> str | None:
        """The brand; ``None`` if absent or empty."""
        brand = self.raw.get("brand")
        return brand if isinstance(brand, str) and brand else None

    @property
    def last_update(self) -> int | None:
        """When Keepa last updated the product (Keepa minutes, ``lastUpdate``), else ``None``."""
        return _known(self.raw.get("lastUpdate"))

    @property
    def last_update_time(self) -> dt.datetime | None:
        """:attr:`last_update` as an aware UTC datetime."""
        return _minute_time(self.last_update)

    @property
    def last_price_change(self) -> int | None:
        """When Keepa last saw a price change (Keepa minutes, ``lastPriceChange``), or ``None``."""
        return _known(self.raw.get("lastPriceChange"))

    @property
    def tracking_since(self) -> int | None:
        """Since when Keepa tracks the product (Keepa minutes, ``trackingSince``), else ``None``."""
        return _known(self.raw.get("trackingSince"))

    @property
    def listed_since(self) -> int | None:
        """When the product was first listed (Keepa minutes, ``listedSince``; ``0``: unknown).

        Negative minutes are real dates before 2011 (Keepa's epoch), not markers.
        """
        minute = _int(self.raw.get("listedSince"))
        return None if minute in (None, 0, -1) else minute

    def price(self, price_type: PriceType | int | str) -> int | None:
        """The current value of *price_type* (``stats.current``; needs ``stats=``).

        In the type's unit (:attr:`PriceType.unit`: cents, rank, count, rating times 10);
        ``None`` for no data (``-1``, ``-2``) or a type past the end of the array.

        Args:
            price_type: A :class:`PriceType`, its index, or its name (``"USED"``).

        Raises:
            TypeError: *price_type* is neither an int nor a str.
            ValueError: A negative index or a name that is no price type.
        """
        i = _price_index(price_type)
        return type_value(i, _index(self._stats.get("current"), i))

    @property
    def prices(self) -> dict[PriceType, int]:
        """Every current value (``stats.current``) by price type; types without data left out."""
        return per_type(self._stats.get("current"))

    @property
    def new_price(self) -> int | None:
        """The current lowest new price (cents); ``None`` as for :meth:`price`."""
        return self.price(PriceType.NEW)

    @property
    def used_price(self) -> int | None:
        """The current lowest used price (cents, no shipping); ``None`` as for :meth:`price`."""
        return self.price(PriceType.USED)

    @property
    def amazon_price(self) -> int | None:
        """Amazon's own current price (cents); ``None`` as for :meth:`price` (no Amazon offer)."""
        return self.price(PriceType.AMAZON)

    @property
    def sales_rank(self) -> int | None:
        """The current sales rank in the root category (a rank, 1 the best seller), or ``None``."""
        return self.price(PriceType.SALES)

    @property
    def buybox_price(self) -> int | None:
        """The buy box price (cents, ``stats.buyBoxPrice``, without shipping).

        Without a buy box (``-1``, ``-2`` or no ``stats``), the lowest total (price
        plus shipping) of the live new offers; an offer whose shipping is ``-1``
        (not shippable) or ``-2`` (unknown) is left out, never counted as free.
        """
        price = _known(self._stats.get("buyBoxPrice"))
        if price is not None:
            return price
        return self._lowest_live_new_offer()

    def _lowest_live_new_offer(self) -> int | None:
        offers = self.raw.get("offers")
        order = self.raw.get("liveOffersOrder")
        if not isinstance(offers, list) or not isinstance(order, list):
            return None
        best: int | None = None
        for i in order:
            j = _int(i)
            offer = _index(offers, j) if j is not None else None
            if not isinstance(offer, Mapping) or _int(offer.get("condition")) not in (None, 1):
                continue
            total = Offer(offer).total
            if total is not None and (best is None or total < best):
                best = total
        return best

    @property
    def offer_count(self) -> int | None:
        """How many offers (``stats.totalOfferCount``, else the live offers listed), or ``None``."""
        count = _known(self._stats.get("totalOfferCount"))
        if count is not None:
            return count
        order = self.raw.get("liveOffersOrder")
        return len(order) if isinstance(order, list) else None

    @property
    def fba_fee(self) -> int | None:
        """The FBA pick-and-pack fee (cents); ``None`` until Keepa has collected it."""
        return _known(_mapping(self.raw.get("fbaFees")).get("pickAndPackFee"))

    @property
    def referral_fee_percent(self) -> float | None:
        """The referral fee, in percent of the price (e.g. ``15.0``); ``None`` if absent."""
        value = self.raw.get("referralFeePercentage")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        value = float(value)
        return value if math.isfinite(value) and value >= 0 else None

    @property
    def package_weight(self) -> int | None:
        """The package weight in grams; ``None`` when unknown (``0`` or ``-1``)."""
        weight = _known(self.raw.get("packageWeight"))
        return weight or None

    def history(self, price_type: PriceType | int | str) -> History:
        """The ``csv`` history of *price_type* (needs ``history=1``, the default).

        Pairs (time, value), or triplets (time, price, shipping) for the types
        :attr:`PriceType.with_shipping`; values in the type's unit, ``None`` where
        Keepa has ``-1`` (no offer, no rank) or ``-2``. Empty when Keepa sent none.

        Raises:
            TypeError: *price_type* is neither an int nor a str.
            ValueError: A negative index or a name that is no price type.
        """
        i = _price_index(price_type)
        values = _index(self.raw.get("csv"), i)
        if i >= len(PriceType):
            return History.from_csv(values)
        return History.of_type(PriceType(i), values)

    @property
    def histories(self) -> dict[PriceType, History]:
        """Every ``csv`` history Keepa sent, by price type (``null`` entries left out)."""
        csv = self.raw.get("csv")
        if not isinstance(csv, list):
            return {}
        return {
            PriceType(i): History.of_type(PriceType(i), values)
            for i, values in enumerate(csv[: len(PriceType)])
            if isinstance(values, list)
        }

    @property
    def sales_ranks(self) -> dict[int, History]:
        """The sales rank history per category id (``salesRanks``): ranks, ``None`` for none."""
        ranks = self.raw.get("salesRanks")
        if not isinstance(ranks, Mapping):
            return {}
        out: dict[int, History] = {}
        for key, values in ranks.items():
            try:
                category = int(key)
            except (TypeError, ValueError):
                continue
            out[category] = History.from_csv(values)
        return out

    @property
    def sales_rank_reference(self) -> int | None:
        """The category of the main sales rank (``salesRankReference``); ``None``: ``-1``."""
        return _category(self.raw.get("salesRankReference"))

    @property
    def buy_box_history(self) -> tuple[BuyBoxHolder, ...]:
        """Who held the buy box when (``buyBoxSellerIdHistory``; needs ``offers`` or ``buybox``)."""
        return buy_box_history(self.raw.get("buyBoxSellerIdHistory"))

    @property
    def used_buy_box_history(self) -> tuple[UsedBuyBoxHolder, ...]:
        """Who held the used buy box when (``buyBoxUsedHistory``)."""
        return used_buy_box_history(self.raw.get("buyBoxUsedHistory"))

    @property
    def offers(self) -> tuple[Offer, ...]:
        """Every offer Keepa keeps for the product (``offers``; past ones too)."""
        offers = self.raw.get("offers")
        if not isinstance(offers, list):
            return ()
        return tuple(Offer(o) for o in offers if isinstance(o, Mapping))

    @property
    def live_offers(self) -> tuple[Offer, ...]:
        """The offers listed now, in Amazon's order (``liveOffersOrder`` into ``offers``)."""
        offers = self.raw.get("offers")
        order = self.raw.get("liveOffersOrder")
        if not isinstance(offers, list) or not isinstance(order, list):
            return ()
        live = (_index(offers, j) for j in map(_int, order) if j is not None)
        return tuple(Offer(o) for o in live if isinstance(o, Mapping))


# -- deals -------------------------------------------------------------------------------------

#: Keepa's deal intervals (the first index of ``avg``, ``delta``, ``deltaPercent``).
DATE_RANGES: Final = {0: "day", 1: "week", 2: "month", 3: "90 days"}

#: Where a deal's image file lives (``Deal.image`` is its file name).
IMAGE_URL: Final = "https://m.media-amazon.com/images/I/"


@attrs.frozen
class Deal:
    """One deal of a ``/deal`` answer, with typed accessors over Keepa's JSON.

    The per-type arrays (``current``, ``avg``, ``delta``, …) are indexed by
    :class:`PriceType`; the interval rows (``avg``, ``delta``, ``deltaPercent``)
    by date range: 0 day, 1 week, 2 month, 3 ninety days. The accessors answer
    ``None`` for no data by each field's own marker (:doc:`/keepa-data-reference`),
    never a sentinel: a ``current`` of ``-1``/``-2`` is no data, a ``deltaPercent``
    of ``-1`` is a 1 % rise.

    >>> from tokenbudget_keepa import Deal, PriceType
    >>> deal = Deal.from_raw({
    ...     "asin": "B000000003", "lastUpdate": 7_900_000, "rootCat": 0,
    ...     "current": [-1, -1, 1990],
    ...     "avg": [[-2, -1, 1970]], "delta": [[0, 0, -20]], "deltaPercent": [[0, 0, -1]],
    ...     "image": [54, 49, 107, 51, 76, 46, 106, 112, 103],
    ... })
    >>> deal.price(PriceType.USED), deal.average(PriceType.USED, 0)
    (1990, 1970)
    >>> deal.drop_percent(PriceType.USED, 0), deal.drop_percent(PriceType.NEW, 0)
    (-1, None)
    >>> deal.root_category is None, deal.image
    (True, '61k3L.jpg')
    >>> deal.last_update_time.isoformat()
    '2026-01-08T02:40:00+00:00'

    Attributes:
        asin: The product's ASIN.
        title: Its title, if Keepa sent one.
        last_update: When Keepa last updated the deal (Keepa minutes).
        creation_date: When Keepa found the deal (Keepa minutes; the
            ``last_update`` when absent). Keepa sometimes sends it a few
            minutes *after* ``last_update``: it is kept as sent.
        current: ``current`` as sent: the value per price type, ``-1``/``-2``
            where none (:meth:`price` reads it without the markers).
        delta: ``delta`` as sent: per date range, per price type, the average
            minus the current value (positive: a drop; see :meth:`drop`).
        delta_percent: ``deltaPercent`` as sent: the same in percent of the
            average (see :meth:`drop_percent`).
        avg: ``avg`` as sent: the average per date range, per price type
            (see :meth:`average`).
        root_category: The root category id; ``None`` when Keepa does not know
            it (``0`` or ``2**63 - 1``).
        categories: The category ids.
        raw: The deal's JSON object as Keepa sent it.

    .. versionadded:: 0.1.0
    """

    asin: str
    title: str | None
    last_update: int
    creation_date: int
    current: tuple[int, ...] = attrs.field(repr=False)
    delta: tuple[tuple[int, ...], ...] = attrs.field(repr=False)
    delta_percent: tuple[tuple[int, ...], ...] = attrs.field(repr=False)
    avg: tuple[tuple[int, ...], ...] = attrs.field(repr=False)
    root_category: int | None = attrs.field(repr=False)
    categories: tuple[int, ...] = attrs.field(repr=False)
    raw: Mapping[str, Any] = attrs.field(repr=False)

    @classmethod
    def from_raw(cls, raw: object) -> Deal:
        """Build a deal from its JSON object.

        Raises:
            KeepaProtocolError: *raw* is not an object with an ``asin`` string
                and an integer ``lastUpdate``.
        """
        obj = _object(raw, "deal")
        asin = _asin(obj, "deal")
        last_update = _int(obj.get("lastUpdate"))
        if last_update is None:
            raise KeepaProtocolError(
                f"deal {asin} needs an integer 'lastUpdate', got {obj.get('lastUpdate')!r}"
            )
        creation = _int(obj.get("creationDate"))
        return cls(
            asin=asin,
            title=_title(obj),
            last_update=last_update,
            creation_date=last_update if creation is None else creation,
            current=_ints(obj.get("current")),
            delta=_int_rows(obj.get("delta")),
            delta_percent=_int_rows(obj.get("deltaPercent")),
            avg=_int_rows(obj.get("avg")),
            root_category=_category(obj.get("rootCat")),
            categories=tuple(c for c in _ints(obj.get("categories")) if c >= 0),
            raw=obj,
        )

    @property
    def last_update_time(self) -> dt.datetime:
        """:attr:`last_update` as an aware UTC datetime."""
        return keepa_minutes_to_datetime(self.last_update)

    @property
    def creation_time(self) -> dt.datetime:
        """:attr:`creation_date` as an aware UTC datetime."""
        return keepa_minutes_to_datetime(self.creation_date)

    def price(self, price_type: PriceType | int | str) -> int | None:
        """The current value of *price_type* (``current``), in the type's unit.

        Cents for prices, a rank for ``SALES``, a count for ``COUNT_*``, stars times 10
        for ``RATING``; ``None`` for no data (``-1``: none, ``-2``: unknown).

        Raises:
            TypeError: *price_type* is neither an int nor a str.
            ValueError: A negative index or a name that is no price type.
        """
        i = _price_index(price_type)
        return type_value(i, _index(self.current, i))

    @property
    def prices(self) -> dict[PriceType, int]:
        """Every current value by price type (types without data left out)."""
        return per_type(self.current)

    @property
    def sales_rank(self) -> int | None:
        """The current sales rank (a rank, 1 is the best seller), if any."""
        rank = _index(self.current, PriceType.SALES)
        return rank if isinstance(rank, int) and rank > 0 else None

    def current_since(self, price_type: PriceType | int | str) -> int | None:
        """Since when the current value of *price_type* holds (Keepa minutes, ``currentSince``).

        ``None`` for no data (``-1``).
        """
        i = _price_index(price_type)
        return _known(_index(self.raw.get("currentSince"), i))

    def average(self, price_type: PriceType | int | str, date_range: int) -> int | None:
        """The average of *price_type* over *date_range* (``avg``), in the type's unit.

        Keepa's "day" average covers the last 48 hours. ``None`` for no data
        (``-1``: no offer or too little data, ``-2``: unknown) or a date range
        outside 0..3.

        Raises:
            TypeError: *price_type* is neither an int nor a str, or *date_range* no int.
            ValueError: A negative index or a name that is no price type.
        """
        i = _price_index(price_type)
        return type_value(i, _index(_index(self.raw.get("avg"), _date_range(date_range)), i))

    def _change(
        self, rows: object, price_type: PriceType | int | str, date_range: int
    ) -> int | None:
        i = _price_index(price_type)
        value = _int(_index(_index(rows, _date_range(date_range)), i))
        if value is None:
            return None
        if i < len(self.current) and type_value(i, self.current[i]) is None:
            return None  # no current value: Keepa's difference is not data
        return value

    def drop(self, price_type: PriceType | int | str, date_range: int) -> int | None:
        """How far *price_type* lies below its *date_range* average (``delta``).

        The average minus the current value, in the type's unit: positive is a
        drop, negative a rise, ``0`` no change (or Keepa could not compute it).
        ``-1`` and ``-2`` are real differences, not markers. ``None`` when the
        deal has no current value of the type (its difference is not data) or
        no entry for it, or *date_range* lies outside 0..3.

        Raises:
            TypeError: *price_type* is neither an int nor a str, or *date_range* no int.
            ValueError: A negative index or a name that is no price type.
        """
        return self._change(self.raw.get("delta"), price_type, date_range)

    def drop_percent(self, price_type: PriceType | int | str, date_range: int) -> int | None:
        """:meth:`drop` in percent of the average (``deltaPercent``): positive is a drop.

        A ``-1`` is a 1 % rise, not missing data. ``None`` as for :meth:`drop`.

        Raises:
            TypeError: *price_type* is neither an int nor a str, or *date_range* no int.
            ValueError: A negative index or a name that is no price type.
        """
        return self._change(self.delta_percent, price_type, date_range)

    def last_change(self, price_type: PriceType | int | str) -> int | None:
        """The change of *price_type* at its last update (``deltaLast``): previous minus current.

        Positive is a drop, in the type's unit; ``0`` no change (or not computable).
        ``None`` as for :meth:`drop`.
        """
        i = _price_index(price_type)
        return self._change([self.raw.get("deltaLast")], i, 0)

    @property
    def back_in_stock(self) -> frozenset[PriceType]:
        """The price types back in stock (``backInStock`` entries that are true); empty if none."""
        flags = self.raw.get("backInStock")
        if not isinstance(flags, list):
            return frozenset()
        return frozenset(PriceType(i) for i, f in enumerate(flags[: len(PriceType)]) if f is True)

    def sales_rank_drops(self, days: int) -> int | None:
        """How often the sales rank dropped in the last *days* (30, 90, 180, 365): a count.

        ``None`` when Keepa has no figure (``-1``) or sent none.

        Raises:
            ValueError: *days* is not one of Keepa's intervals.
        """
        if days not in (30, 90, 180, 365):
            raise ValueError(f"sales_rank_drops days must be one of 30, 90, 180, 365, got {days!r}")
        return _known(self.raw.get(f"salesRankDrops{days}"))

    @property
    def warehouse_condition(self) -> OfferCondition | None:
        """The condition of the cheapest Amazon Warehouse offer; ``None``: none, unknown (``0``)."""
        return offer_condition(self.raw.get("warehouseCondition"))

    @property
    def warehouse_condition_comment(self) -> str | None:
        """The comment of the cheapest Amazon Warehouse offer, ``None`` without one."""
        return as_str(self.raw.get("warehouseConditionComment"))

    @property
    def lightning_start(self) -> int | None:
        """When the lightning deal starts (Keepa minutes); ``None`` for other deals (``0``)."""
        return positive(self.raw.get("lightningStart"))

    @property
    def lightning_end(self) -> int | None:
        """When the lightning deal ends (Keepa minutes); ``None`` for other deals (``0``)."""
        return positive(self.raw.get("lightningEnd"))

    @property
    def date_interval_index(self) -> int | None:
        """The deal's date range (0 day … 3 ninety days, ``dateIntervalIndex``), or ``None``."""
        return _known(self.raw.get("dateIntervalIndex"))

    @property
    def image(self) -> str | None:
        """The file name of the main image (``image``, sent as character codes).

        ``None`` when absent or not a list of character codes.
        """
        codes = self.raw.get("image")
        if isinstance(codes, str):
            return codes or None
        if not isinstance(codes, list) or not codes:
            return None
        chars = [_int(c) for c in codes]
        if any(c is None or not 0 < c < 0x110000 for c in chars):
            return None
        return "".join(chr(c) for c in chars if c is not None)

    @property
    def image_url(self) -> str | None:
        """The main image's address on Amazon's image server, ``None`` without an image."""
        image = self.image
        return None if image is None else IMAGE_URL + image

    @property
    def parent_asin(self) -> str | None:
        """The parent ASIN of a variation (``parentAsin``; Keepa almost never sends it)."""
        return as_str(self.raw.get("parentAsin"))

    @property
    def min_rating(self) -> int | None:
        """``minRating`` (stars times 10) where Keepa sends it (almost never); ``None``: ``-1``."""
        return _known(self.raw.get("minRating"))


@attrs.frozen
class DealPage:
    """One page of a ``/deal`` answer.

    Attributes:
        deals: The deals of the page, in Keepa's order.
        page: The page number asked for.
        category_ids: ``categoryIds`` of the answer.
        raw: The ``deals`` JSON object as Keepa sent it.

    .. versionadded:: 0.1.0
    """

    deals: list[Deal]
    page: int
    category_ids: tuple[int, ...] = attrs.field(default=(), repr=False)
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    #: The most deals Keepa puts on one page; a page with fewer is the last one.
    PAGE_SIZE: ClassVar[int] = 150

    @property
    def is_last(self) -> bool:
        """Whether this page holds fewer than :attr:`PAGE_SIZE` deals (no page follows)."""
        return len(self.deals) < self.PAGE_SIZE

    def _by_category(self, key: str) -> dict[int, object]:
        ids, values = self.raw.get("categoryIds"), self.raw.get(key)
        if not isinstance(ids, list) or not isinstance(values, list):
            return {}
        out: dict[int, object] = {}
        for raw_id, value in zip(ids, values, strict=False):
            category = _category(raw_id)
            if category is not None:
                out[category] = value
        return out

    @property
    def category_names(self) -> dict[int, str]:
        """The root categories of the selection's deals by id (``categoryIds``, ``categoryNames``).

        Keepa's "unknown" category (``2**63 - 1``, named ``"?"``) is left out.
        """
        return {k: v for k, v in self._by_category("categoryNames").items() if isinstance(v, str)}

    @property
    def category_counts(self) -> dict[int, int]:
        """How many of the selection's deals lie in each root category (``categoryCount``).

        A count per category id; Keepa's "unknown" category is left out.
        """
        return {
            k: v
            for k, v in self._by_category("categoryCount").items()
            if isinstance(v, int) and not isinstance(v, bool)
        }
