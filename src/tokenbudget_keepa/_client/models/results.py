"""Typed results of the rest of Keepa's API: finder pages, categories, sellers, lightning deals.

Like :class:`~tokenbudget_keepa.Product`, each keeps the JSON object it came
from as ``raw`` and reads it without raising: a field Keepa left out, or sent
as ``null``, is ``None`` (or empty). Times are Keepa minutes.

This module needs no HTTP library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from tokenbudget_keepa._client.errors import KeepaProtocolError

from .json_read import as_bool, as_int, as_str, ints, non_negative


__all__ = ["LIGHTNING_DEAL_STATES", "Category", "FinderPage", "LightningDeal", "Seller"]

#: The states of a lightning deal, as Keepa names them (``state=`` filters by one).
LIGHTNING_DEAL_STATES: Final = frozenset(
    {"AVAILABLE", "UPCOMING", "WAITLIST", "SOLDOUT", "WAITLISTFULL", "EXPIRED", "SUPPRESSED"}
)


def _object(raw: object, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise KeepaProtocolError(f"a {what} must be a JSON object, got {type(raw).__name__}")
    return raw


def _text_list(values: object) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(v for v in values if isinstance(v, str))


@attrs.frozen
class FinderPage:
    """One page of a product finder query (``/query``).

    Attributes:
        asins: The ASINs found on this page, in Keepa's order.
        total_results: Keepa's estimate of all the products the query matches.
        page: The page (from 0).
        page_size: The ASINs a page holds at most (``perPage``): a page with
            fewer is the last one.
        raw: The answer's JSON object (``asinList``, ``totalResults``, …).

    .. versionadded:: 0.1.0
    """

    asins: list[str]
    total_results: int
    page: int
    page_size: int = 50
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def is_last(self) -> bool:
        """Whether no page follows (this one holds fewer ASINs than a page can)."""
        return len(self.asins) < self.page_size


@attrs.frozen
class Category:
    """An Amazon category (browse node), as ``/category`` and the category search answer it.

    Attributes:
        id: The category node id (``catId``).
        name: Its name.
        parent: The parent's id; ``None`` for a root category (Keepa's ``0``).
        children: The ids of its sub-categories (empty if none).
        raw: The category object as Keepa sent it (``productCount``,
            ``highestRank``, ``contextFreeName``, …).

    .. versionadded:: 0.1.0
    """

    id: int
    name: str | None
    parent: int | None
    children: tuple[int, ...]
    raw: Mapping[str, Any] = attrs.field(repr=False)

    @classmethod
    def from_raw(cls, raw: object) -> Category:
        """Build a category from its JSON object.

        Raises:
            KeepaProtocolError: *raw* is not an object with an integer ``catId``.
        """
        obj = _object(raw, "category")
        cat_id = non_negative(obj.get("catId"))
        if cat_id is None:
            raise KeepaProtocolError(
                f"a category needs an integer 'catId', got {obj.get('catId')!r}"
            )
        parent = non_negative(obj.get("parent"))
        return cls(
            id=cat_id,
            name=as_str(obj.get("name")),
            parent=parent or None,
            children=tuple(c for c in ints(obj.get("children")) if c > 0),
            raw=obj,
        )

    @property
    def product_count(self) -> int | None:
        """Keepa's estimate of the products listed in it (``productCount``)."""
        return non_negative(self.raw.get("productCount"))

    @property
    def is_root(self) -> bool:
        """Whether it has no parent (a root category)."""
        return self.parent is None


@attrs.frozen
class Seller:
    """An Amazon marketplace seller, as ``/seller`` answers it.

    Attributes:
        id: The seller id (``sellerId``).
        name: The seller's name (``sellerName``).
        asins: The storefront's ASINs (``asinList``), freshest first; empty
            unless the storefront was asked for (and Keepa had it).
        raw: The seller object as Keepa sent it (ratings, ``csv``, …).

    .. versionadded:: 0.1.0
    """

    id: str
    name: str | None
    asins: tuple[str, ...] = attrs.field(repr=False)
    raw: Mapping[str, Any] = attrs.field(repr=False)

    @classmethod
    def from_raw(cls, raw: object, *, seller_id: str | None = None) -> Seller:
        """Build a seller from its JSON object (*seller_id*: its key in Keepa's map).

        Raises:
            KeepaProtocolError: *raw* is not an object, or has no seller id.
        """
        obj = _object(raw, "seller")
        found = as_str(obj.get("sellerId")) or seller_id
        if not found:
            raise KeepaProtocolError("a seller needs a 'sellerId'")
        return cls(found, as_str(obj.get("sellerName")), _text_list(obj.get("asinList")), obj)

    @property
    def has_fba(self) -> bool | None:
        """Whether the seller has FBA listings (``hasFBA``), if Keepa says."""
        return as_bool(self.raw.get("hasFBA"))


@attrs.frozen
class LightningDeal:
    """A lightning deal, as ``/lightningdeal`` answers it.

    Attributes:
        asin: The product's ASIN.
        raw: The lightning deal object as Keepa sent it.

    .. versionadded:: 0.1.0
    """

    asin: str
    raw: Mapping[str, Any] = attrs.field(repr=False)

    @classmethod
    def from_raw(cls, raw: object) -> LightningDeal:
        """Build a lightning deal from its JSON object.

        Raises:
            KeepaProtocolError: *raw* is not an object with an ``asin`` string.
        """
        obj = _object(raw, "lightning deal")
        asin = obj.get("asin")
        if not isinstance(asin, str) or not asin:
            raise KeepaProtocolError(f"a lightning deal needs an 'asin' string, got {asin!r}")
        return cls(asin, obj)

    @property
    def title(self) -> str | None:
        """The product's title."""
        return as_str(self.raw.get("title"))

    @property
    def state(self) -> str | None:
        """The deal's state (``dealState``: ``AVAILABLE``, ``UPCOMING``, ``SOLDOUT``, …)."""
        return as_str(self.raw.get("dealState"))

    @property
    def deal_price(self) -> int | None:
        """The deal's price (cents); ``None`` while it is upcoming (Keepa's ``-1``)."""
        return non_negative(self.raw.get("dealPrice"))

    @property
    def current_price(self) -> int | None:
        """The product's regular price (cents); ``None`` while the deal is upcoming."""
        return non_negative(self.raw.get("currentPrice"))

    @property
    def percent_claimed(self) -> int | None:
        """The share of the deal's stock claimed, in percent."""
        return non_negative(self.raw.get("percentClaimed"))

    @property
    def start_time(self) -> int | None:
        """When the deal starts (Keepa minutes)."""
        return as_int(self.raw.get("startTime"))

    @property
    def end_time(self) -> int | None:
        """When the deal ends (Keepa minutes)."""
        return as_int(self.raw.get("endTime"))
