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

from ._errors import KeepaProtocolError
from ._price_type import PriceType
from ._query import DealQuery


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


def _int(value: object) -> int | None:
    """An int from JSON (an integral float too), else None; bools are not ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _known(value: object) -> int | None:
    """A Keepa number that is not "no data" (-1 or less), else None."""
    v = _int(value)
    return v if v is not None and v >= 0 else None


def _index(values: object, i: int) -> object:
    if isinstance(values, list) and 0 <= i < len(values):
        return values[i]
    return None


def _ints(values: object) -> tuple[int, ...]:
    """A tuple of ints from a JSON list; entries that are not ints read as -1."""
    if not isinstance(values, list):
        return ()
    out = []
    for v in values:
        i = _int(v)
        out.append(-1 if i is None else i)
    return tuple(out)


def _int_rows(values: object) -> tuple[tuple[int, ...], ...]:
    if not isinstance(values, list):
        return ()
    return tuple(_ints(row) for row in values)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _price_index(price_type: int) -> int:
    if isinstance(price_type, bool) or not isinstance(price_type, int):
        raise TypeError(f"price_type must be an int or a PriceType, got {price_type!r}")
    return int(price_type)


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
    """One product of a ``/product`` answer, with the accessors the filters use.

    Every accessor returns ``None`` when the data is missing or ``-1``.

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
    def domain_id(self) -> int | None:
        """The marketplace (``domainId``)."""
        return _known(self.raw.get("domainId"))

    @property
    def root_category(self) -> int | None:
        """The root category id."""
        return _known(self.raw.get("rootCategory"))

    @property
    def categories(self) -> tuple[int, ...]:
        """The category ids (empty when unknown)."""
        return tuple(c for c in _ints(self.raw.get("categories")) if c >= 0)

    @property
    def brand(self) -> str | None:
        """The brand, if known."""
        brand = self.raw.get("brand")
        return brand if isinstance(brand, str) and brand else None

    @property
    def last_update(self) -> int | None:
        """When Keepa last updated the product (Keepa minutes)."""
        return _known(self.raw.get("lastUpdate"))

    def price(self, price_type: int) -> int | None:
        """The current value of *price_type* (``stats.current[i]``; needs ``stats``)."""
        return _known(_index(self._stats.get("current"), _price_index(price_type)))

    @property
    def new_price(self) -> int | None:
        """The current lowest new price."""
        return self.price(PriceType.NEW)

    @property
    def amazon_price(self) -> int | None:
        """Amazon's own current price."""
        return self.price(PriceType.AMAZON)

    @property
    def sales_rank(self) -> int | None:
        """The current sales rank."""
        return self.price(PriceType.SALES)

    @property
    def buybox_price(self) -> int | None:
        """The buy box price; without it, the lowest live new offer (price plus shipping)."""
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
            csv = offer.get("offerCSV")
            if not isinstance(csv, list) or len(csv) < 3:
                continue
            price, shipping = _known(csv[-2]), _known(csv[-1])
            if price is None:
                continue
            total = price + (shipping or 0)
            if best is None or total < best:
                best = total
        return best

    @property
    def offer_count(self) -> int | None:
        """How many offers (``stats.totalOfferCount``; else the live offers listed)."""
        count = _known(self._stats.get("totalOfferCount"))
        if count is not None:
            return count
        order = self.raw.get("liveOffersOrder")
        return len(order) if isinstance(order, list) else None

    @property
    def fba_fee(self) -> int | None:
        """The FBA pick-and-pack fee."""
        return _known(_mapping(self.raw.get("fbaFees")).get("pickAndPackFee"))

    @property
    def referral_fee_percent(self) -> float | None:
        """The referral fee, in percent of the price (e.g. ``15.0``)."""
        value = self.raw.get("referralFeePercentage")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        value = float(value)
        return value if math.isfinite(value) and value >= 0 else None

    @property
    def package_weight(self) -> int | None:
        """The package weight in grams."""
        return _known(self.raw.get("packageWeight"))


# -- deals -------------------------------------------------------------------------------------


@attrs.frozen
class Deal:
    """One deal of a ``/deal`` answer.

    Attributes:
        asin: The product's ASIN.
        title: Its title, if Keepa sent one.
        last_update: When the deal was last updated (Keepa minutes).
        creation_date: When the deal was found (Keepa minutes).
        current: The current value per price type (``-1``: none).
        delta: The change per date range (0 day … 3 ninety days), per price type.
        delta_percent: The same, in percent.
        avg: The average per date range, per price type.
        root_category: The root category id.
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
            root_category=_known(obj.get("rootCat")),
            categories=tuple(c for c in _ints(obj.get("categories")) if c >= 0),
            raw=obj,
        )

    def price(self, price_type: int) -> int | None:
        """The current value of *price_type*, if any."""
        return _known(_index(list(self.current), _price_index(price_type)))

    @property
    def sales_rank(self) -> int | None:
        """The current sales rank, if any."""
        rank = _index(list(self.current), PriceType.SALES)
        return rank if isinstance(rank, int) and rank > 0 else None

    def drop_percent(self, price_type: int, date_range: int) -> int | None:
        """The change of *price_type* over *date_range* in percent (``deltaPercent``)."""
        row = _index(list(self.delta_percent), date_range)
        if not isinstance(row, tuple) or not 0 <= _price_index(price_type) < len(row):
            return None
        value = row[price_type]
        return None if value == -1 else value


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
