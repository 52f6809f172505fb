"""Keepa's product finder selection (the ``selection`` of ``/query``), typed field by field.

Keepa's product finder takes well over a thousand fields, most of them in
families: ``current_NEW_gte`` (the current New price at least), ``avg90_SALES_lte``,
``deltaPercent30_AMAZON_gte``, ``isLowest_USED``, … one per price type and
interval. :class:`FinderQuery` knows every field Keepa's documentation and the
official Java client's ``ProductFinderRequest`` name, by Keepa's own name, with
its type; it checks each value before anything is sent and passes any other
field through unchanged (Keepa adds fields over time). Its rules, as for
:class:`~tokenbudget_keepa.DealQuery`:

- ``null`` (``None``) means absent: it is left out of what is sent;
- a whole number written as a string (``"current_SALES_lte": "5000"``) is read as the
  number, as Keepa reads it;
- an array field given one value (``"rootCategory": 562066``, as Keepa's own
  example writes it) is sent as a list of one;
- ``X_gte`` above ``X_lte`` is refused (no product could match);
- ``page`` and ``perPage`` travel inside the selection: ``perPage`` from 50 (Keepa's
  default and minimum) to 10,000, and ``(page + 1) * perPage`` at most 10,000.

This module needs no HTTP library.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

from .query import _check_json


__all__ = [
    "FINDER_MAX_RESULTS",
    "FINDER_PAGE_SIZE",
    "FINDER_PRICE_TYPES",
    "FinderQuery",
    "finder_field_kind",
]

#: Keepa's default (and least) product finder page size.
FINDER_PAGE_SIZE: Final = 50
#: The most ASINs one product finder query reaches through paging.
FINDER_MAX_RESULTS: Final = 10_000

#: The price types of the finder's per-type fields (``current_<TYPE>_gte``, …), as Keepa names them.
FINDER_PRICE_TYPES: Final = (
    "AMAZON",
    "NEW",
    "USED",
    "SALES",
    "LISTPRICE",
    "COLLECTIBLE",
    "REFURBISHED",
    "NEW_FBM_SHIPPING",
    "LIGHTNING_DEAL",
    "WAREHOUSE",
    "NEW_FBA",
    "COUNT_NEW",
    "COUNT_USED",
    "COUNT_REFURBISHED",
    "COUNT_COLLECTIBLE",
    "RATING",
    "COUNT_REVIEWS",
    "BUY_BOX_SHIPPING",
    "USED_NEW_SHIPPING",
    "USED_VERY_GOOD_SHIPPING",
    "USED_GOOD_SHIPPING",
    "USED_ACCEPTABLE_SHIPPING",
    "REFURBISHED_SHIPPING",
    "EBAY_NEW_SHIPPING",
    "EBAY_USED_SHIPPING",
    "TRADE_IN",
    "RENT",
    "BUY_BOX_USED_SHIPPING",
    "PRIME_EXCL",
)

_INT8: Final = (-(2**7), 2**7 - 1)
_INT16: Final = (-(2**15), 2**15 - 1)
_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)

# -- the fields, by kind (Keepa's names; ``_lte``/``_gte`` pairs by their stem) -----------------

#: Integer filters that come as ``<stem>_lte`` / ``<stem>_gte`` pairs (32-bit).
_RANGED_INT32: Final = (
    "availabilityAmazonMinDelayInDays",
    "buyBoxStandardDeviation30",
    "buyBoxStandardDeviation90",
    "buyBoxStandardDeviation365",
    *(
        f"buyBoxStats{kind}{days}"
        for kind in ("Amazon", "TopSeller", "SellerCount")
        for days in (30, 90, 180, 365)
    ),
    "couponOneTimeAbsolute",
    "couponOneTimePercent",
    "couponSNSPercent",
    "deltaPercent90_monthlySold",
    "fbaFees",
    "imageCount",
    "itemDimension",
    "itemHeight",
    "itemLength",
    "itemWeight",
    "itemWidth",
    "lastBusinessDiscountUpdate",
    "lastOffersUpdate",
    "lastPriceChange",
    "lastRatingUpdate",
    "lastUpdate",
    "lightningEnd",
    "lightningStart",
    "listedSince",
    "monthlySold",
    "nextUpdate",
    "numberOfItems",
    "numberOfPages",
    "numberOfTrackings",
    "offerCountFBA",
    "offerCountFBM",
    "outOfStockCountAmazon30",
    "outOfStockCountAmazon90",
    "outOfStockPercentage90",
    "outOfStockPercentage90_BB",
    "outOfStockPercentage90_BB_USED",
    "outOfStockPercentage90_NEW",
    "outOfStockPercentage90_USED",
    "outOfStockPercentageInInterval",
    "packageDimension",
    "packageHeight",
    "packageLength",
    "packageQuantity",
    "packageWeight",
    "packageWidth",
    "publicationDate",
    "releaseDate",
    "salesRankDrops30",
    "salesRankDrops90",
    "salesRankDrops180",
    "salesRankDrops365",
    "totalOfferCount",
    "trackingSince",
    "variationCount",
    "variationRatingCount",
    "variationReviewCount",
    # the per-price-type families
    *(
        f"{family}_{ptype}"
        for family in ("current", "deltaLast", "lastPriceChange")
        for ptype in FINDER_PRICE_TYPES
    ),
    *(f"avg{days}_{ptype}" for days in (1, 7, 30, 90, 180, 365) for ptype in FINDER_PRICE_TYPES),
    *(
        f"{family}{days}_{ptype}"
        for family in ("delta", "deltaPercent")
        for days in (1, 7, 30, 90)
        for ptype in FINDER_PRICE_TYPES
    ),
    # sales rank averages per (sub)category level and interval
    *(f"srAvg{level}{interval:02d}" for level in range(3) for interval in range(12)),
)
#: 8-bit (Java ``Byte``) and 16-bit (``Short``) integer pairs.
_RANGED_INT8: Final = (
    "businessDiscount",
    "flipability30",
    "flipability90",
    "flipability365",
    "salesRankTopPct",
    "videoCount",
)
_RANGED_INT16: Final = tuple(
    f"buyBoxEligibleOfferCounts{condition}{channel}"
    for condition in ("New", "Used")
    for channel in ("FBA", "FBM")
)
_RANGED_NUMBER: Final = ("unitValue",)
_FLAGS: Final = (
    "batteriesIncluded",
    "batteriesRequired",
    "buyBoxIsAmazon",
    "buyBoxIsBackorder",
    "buyBoxIsFBA",
    "buyBoxIsPreorder",
    "buyBoxIsPrimeEligible",
    "buyBoxIsPrimeExclusive",
    "buyBoxIsUnqualified",
    "buyBoxUsedIsFBA",
    "hasAPlus",
    "hasAPlusFromManufacturer",
    "hasMainVideo",
    "hasParentASIN",
    "hasReviews",
    "isAdultProduct",
    "isDeal",
    "isEligibleForSuperSaverShipping",
    "isEligibleForTradeIn",
    "isHazMat",
    "isHeatSensitive",
    "isHighestOffer",
    "isLowestOffer",
    "isMerchOnDemand",
    "isPrimeExclusive",
    "isSNS",
    "launchpad",
    "newPriceIsMAP",
    "singleVariation",
    *(
        f"{family}_{ptype}"
        for family in ("isLowest", "isLowest90", "backInStock")
        for ptype in FINDER_PRICE_TYPES
    ),
)
_TEXTS: Final = ("buyBoxUsedSellerId", "historicalParentASIN", "title", "title_flag")
#: Java ``String``, documented as string arrays: either is sent as given.
_TEXT_OR_TEXTS: Final = ("material", "pattern", "scent", "style", "unitType")
_TEXT_LISTS: Final = (
    "activeIngredients",
    "author",
    "binding",
    "brand",
    "brandStoreName",
    "brandStoreUrlName",
    "buyBoxSellerId",
    "buyBoxShippingCountry",
    *(f"buyBoxStatsTopSellerId{days}" for days in (30, 90, 180, 365)),
    "color",
    "dealType",
    "edition",
    "format",
    "frequentlyBoughtTogether",
    "genre",
    "historicalSellerIds",
    "itemForm",
    "itemTypeKeyword",
    "label",
    "languages",
    "manufacturer",
    "model",
    "partNumber",
    "platform",
    "productGroup",
    "publisher",
    "sellerIds",
    "sellerIdsFBA",
    "sellerIdsFBM",
    "sellerIdsLowestFBA",
    "sellerIdsLowestFBM",
    "size",
    "specialIngredients",
    "studio",
    "targetAudienceKeyword",
    "type",
    "websiteDisplayGroup",
    "websiteDisplayGroupName",
)
#: Integer arrays, with the bounds of each element.
_INT_LISTS: Final = {
    "availabilityAmazon": (-1, 4),
    "productType": (0, 5),
    "returnRate": (1, 2),
    "warehouseCondition": _INT8,
    "blackList": _INT32,
    "buyBoxUsedCondition": (0, 11),
    "rootCategory": _INT64,
    "categories_include": _INT64,
    "categories_exclude": _INT64,
}
_INTS: Final = {"salesRankReference": _INT64}

#: The kind of each typed field: ``("int", low, high)``, ``("number",)``, ``("flag",)``,
#: ``("text",)``, ``("text_or_texts",)``, ``("texts",)``, ``("ints", low, high)``,
#: ``("sort",)``, ``("min_match",)``.
_KINDS: Final[dict[str, tuple[Any, ...]]] = {}
for _bounds, _stems in ((_INT32, _RANGED_INT32), (_INT8, _RANGED_INT8), (_INT16, _RANGED_INT16)):
    for _stem in _stems:
        _KINDS[f"{_stem}_lte"] = _KINDS[f"{_stem}_gte"] = ("int", *_bounds)
for _stem in _RANGED_NUMBER:
    _KINDS[f"{_stem}_lte"] = _KINDS[f"{_stem}_gte"] = ("number",)
_KINDS.update((name, ("flag",)) for name in _FLAGS)
_KINDS.update((name, ("text",)) for name in _TEXTS)
_KINDS.update((name, ("text_or_texts",)) for name in _TEXT_OR_TEXTS)
_KINDS.update((name, ("texts",)) for name in _TEXT_LISTS)
_KINDS.update((name, ("ints", *bounds)) for name, bounds in _INT_LISTS.items())
_KINDS.update((name, ("int", *bounds)) for name, bounds in _INTS.items())
_KINDS["sort"] = ("sort",)
_KINDS["minMatch"] = ("min_match",)

#: A whole number written as a string, as Keepa accepts it.
_INT_TEXT = re.compile(r"\s*[-+]?\d{1,19}\s*")
_SORT_DIRECTIONS: Final = frozenset({"asc", "desc"})
_MAX_SORT_KEYS: Final = 3


def finder_field_kind(name: str) -> str | None:
    """The kind of a product finder field Keepa names (``"int"``, ``"flag"``, …), or None.

    >>> finder_field_kind("current_NEW_gte"), finder_field_kind("brand"), finder_field_kind("x")
    ('int', 'texts', None)
    """
    kind = _KINDS.get(name)
    return None if kind is None else str(kind[0])


# -- checks (each raises TypeError or ValueError naming the field) ------------------------------


def _as_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (or one written as a string), got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return int(value)


def _as_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {value!r}")
    return value


def _as_list(value: object) -> list[object]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]  # one value for an array field: a list of one


def _as_texts(name: str, value: object) -> list[str]:
    return [_as_text(f"{name}[{i}]", v) for i, v in enumerate(_as_list(value))]


def _as_sort(name: str, value: object) -> list[list[str]]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of [field, 'asc'|'desc'] pairs, got {value!r}")
    pairs = list(value)
    if pairs and isinstance(pairs[0], str):
        pairs = [pairs]  # one pair written flat: ["current_SALES", "asc"]
    if len(pairs) > _MAX_SORT_KEYS:
        raise ValueError(f"{name} takes at most {_MAX_SORT_KEYS} criteria, got {len(pairs)}")
    out: list[list[str]] = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"{name}[{i}] must be a [field, 'asc'|'desc'] pair, got {pair!r}")
        field, direction = pair
        _as_text(f"{name}[{i}][0]", field)
        _as_text(f"{name}[{i}][1]", direction)
        if field.endswith(("_lte", "_gte")):
            raise ValueError(f"{name}[{i}][0] names a field without _lte/_gte, got {field!r}")
        if direction not in _SORT_DIRECTIONS:
            raise ValueError(f"{name}[{i}][1] must be 'asc' or 'desc', got {direction!r}")
        out.append([field, direction])
    return out


def _typed(name: str, value: object) -> object:  # noqa: C901, PLR0911, PLR0912 -- one branch a kind
    """*value* of the typed field *name*, checked and normalised."""
    kind = _KINDS[name]
    tag = kind[0]
    if tag == "int":
        return _as_int(name, value, kind[1], kind[2])
    if tag == "number":
        if isinstance(value, str) and _INT_TEXT.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return value
    if tag == "flag":
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool (true or false), got {value!r}")
        return value
    if tag == "text":
        return _as_text(name, value)
    if tag == "text_or_texts":
        return value if isinstance(value, str) else _as_texts(name, value)
    if tag == "texts":
        return _as_texts(name, value)
    if tag == "ints":
        items = _as_list(value)
        return [_as_int(f"{name}[{i}]", v, kind[1], kind[2]) for i, v in enumerate(items)]
    if tag == "sort":
        return _as_sort(name, value)
    # the rest: min_match, a mapping of field names to counts
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of field names to counts, got {value!r}")
    return {
        _as_text(f"{name} key", key): _as_int(f"{name}[{key!r}]", count, 0, _INT32[1])
        for key, count in value.items()
    }


def _check_pairs(fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        if not name.endswith("_gte"):
            continue
        upper = name[:-4] + "_lte"
        if upper in fields and value > fields[upper]:
            raise ValueError(
                f"{name} ({value!r}) is above {upper} ({fields[upper]!r}): no product can match"
            )


def _check_paging(page: int, per_page: int | None) -> None:
    size = FINDER_PAGE_SIZE if per_page is None else per_page
    if (page + 1) * size > FINDER_MAX_RESULTS:
        raise ValueError(
            f"page {page} of {size} ASINs reaches result {(page + 1) * size}: Keepa serves "
            f"the first {FINDER_MAX_RESULTS} only ((page + 1) * perPage <= {FINDER_MAX_RESULTS})"
        )


@attrs.frozen(init=False, repr=False)
class FinderQuery:
    """A product finder selection for ``/query``: every field Keepa documents, typed.

    Fields go by Keepa's own names (they are Python identifiers), as keyword
    arguments or in a mapping: ``FinderQuery(current_SALES_lte=5000, brand=["Canon"])``
    or ``FinderQuery({"current_SALES_lte": 5000, "brand": ["Canon"]})``. Each
    known field is checked and normalised; any other one is kept in
    :attr:`extra` and sent unchanged. ``page`` and ``perPage`` (``per_page``
    too) are the paging, sent inside the selection. At least one filter is
    needed, as Keepa requires.

    >>> from tokenbudget_keepa import FinderQuery
    >>> finder = FinderQuery(rootCategory=562066, current_SALES_lte="5000", perPage=100)
    >>> finder.to_selection()
    {'rootCategory': [562066], 'current_SALES_lte': 5000, 'page': 0, 'perPage': 100}
    >>> finder.with_page(2).page, finder.page_size
    (2, 100)

    Attributes:
        fields: The typed fields, by Keepa's name (normalised values).
        extra: The fields it does not type, sent unchanged.
        page: The page asked for, from 0.
        per_page: ``perPage``, or ``None`` for Keepa's default (50).

    Raises:
        TypeError: A field has the wrong type (named in the message).
        ValueError: A field is out of range, a ``_gte`` lies above its ``_lte``,
            the paging passes Keepa's 10,000 results, or there is no filter.

    .. versionadded:: 0.1.0
    """

    fields: Mapping[str, Any]
    extra: Mapping[str, Any]
    page: int
    per_page: int | None

    def __init__(self, selection: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        if selection is not None and not isinstance(selection, Mapping):
            raise TypeError(f"a finder selection must be a mapping, got {selection!r}")
        given: dict[str, Any] = {}
        items: Iterable[tuple[object, Any]] = [*(selection or {}).items(), *more.items()]
        for key, value in items:
            if not isinstance(key, str):
                raise TypeError(f"finder selection keys must be str, got {key!r}")
            name = "perPage" if key == "per_page" else key
            if name in given:
                raise ValueError(f"finder selection field {key!r} given twice")
            given[name] = value
        page_value = given.pop("page", None)
        page = 0 if page_value is None else _as_int("page", page_value, 0, FINDER_MAX_RESULTS)
        size_value = given.pop("perPage", None)
        per_page = (
            None
            if size_value is None
            else _as_int("perPage", size_value, FINDER_PAGE_SIZE, FINDER_MAX_RESULTS)
        )
        _check_paging(page, per_page)
        fields: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in given.items():
            if value is None:
                continue  # null: absent
            if name in _KINDS:
                fields[name] = _typed(name, value)
            else:
                _check_json(name, value)
                extra[name] = list(value) if isinstance(value, tuple) else value
        if not fields and not extra:
            raise ValueError(
                "a finder selection needs at least one filter (Keepa refuses an empty query)"
            )
        _check_pairs(fields)
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "extra", extra)
        object.__setattr__(self, "page", page)
        object.__setattr__(self, "per_page", per_page)

    def __repr__(self) -> str:
        parts = [f"{name}={value!r}" for name, value in self.fields.items()]
        if self.extra:
            parts.append(f"extra={dict(self.extra)!r}")
        parts.append(f"page={self.page!r}")
        if self.per_page is not None:
            parts.append(f"per_page={self.per_page!r}")
        return f"FinderQuery({', '.join(parts)})"

    def __iter__(self) -> Iterator[str]:
        """The names of the fields set (typed and passed through)."""
        yield from self.fields
        yield from self.extra

    @property
    def page_size(self) -> int:
        """The most ASINs a page holds (``perPage``, or Keepa's default of 50)."""
        return FINDER_PAGE_SIZE if self.per_page is None else self.per_page

    @classmethod
    def from_mapping(cls, selection: FinderQuery | Mapping[str, Any]) -> FinderQuery:
        """A query from a mapping of Keepa's fields (a :class:`FinderQuery` is returned as is)."""
        if isinstance(selection, FinderQuery):
            return selection
        if not isinstance(selection, Mapping):
            raise TypeError(
                f"a finder selection must be a mapping or a FinderQuery, got {selection!r}"
            )
        return cls(selection)

    def to_selection(self) -> dict[str, Any]:
        """The selection as Keepa's JSON object (``None`` fields left out; paging included)."""
        out: dict[str, Any] = {**self.fields, **self.extra, "page": self.page}
        if self.per_page is not None:
            out["perPage"] = self.per_page
        return out

    def with_page(self, page: int, per_page: int | None = None) -> FinderQuery:
        """A copy asking for *page* (and *per_page* ASINs a page, if given).

        Raises:
            TypeError, ValueError: *page* or *per_page* is out of range, or together
                they pass Keepa's 10,000 results.
        """
        page = _as_int("page", page, 0, FINDER_MAX_RESULTS)
        size = (
            self.per_page
            if per_page is None
            else _as_int("per_page", per_page, FINDER_PAGE_SIZE, FINDER_MAX_RESULTS)
        )
        _check_paging(page, size)
        copy = object.__new__(FinderQuery)
        object.__setattr__(copy, "fields", self.fields)
        object.__setattr__(copy, "extra", self.extra)
        object.__setattr__(copy, "page", page)
        object.__setattr__(copy, "per_page", size)
        return copy
