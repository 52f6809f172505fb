"""Keepa's price types: what each index of ``csv``, ``current``, ``avg``, ``delta``, … holds.

Keepa indexes every per-type array by the same 36 price types (the official Java
client's ``Product.CsvType``, 0 ``AMAZON`` … 35 ``COUNT_NEW_FBM``). Real answers
carry 34 entries today (up to ``PRIME_EXCL``), older ones fewer: readers of these
arrays take any length, and a type past the end has no data.

Besides its index, each type has a *unit* and a *layout*: prices are integers in
the marketplace's smallest currency unit (cents), ``SALES`` a rank, the ``COUNT_*``
types counts, ``RATING`` stars times ten (45 = 4.5 stars), ``EXTRA_INFO_UPDATES``
the number of offers fetched (negative: more existed than were fetched). The
types whose name ends in ``_SHIPPING`` (and ``BUY_BOX_SHIPPING``) include
shipping; in ``csv`` their history comes in triplets (time, price, shipping)
instead of pairs (time, value).
"""

from __future__ import annotations

import enum
from typing import Final, Literal


__all__ = ["PriceType", "PriceUnit"]

#: The unit of a price type's values.
PriceUnit = Literal["cents", "rank", "count", "rating", "offers"]


class PriceType(enum.IntEnum):
    """Keepa's price types: the index of a value in ``csv``, ``current``, ``avg``, ``delta``, ….

    The 36 types of Keepa's official Java client (``Product.CsvType``), in its
    order. :attr:`unit`, :attr:`is_price`, :attr:`with_shipping` and
    :attr:`is_extra_data` describe a type's values:

    >>> from tokenbudget_keepa import PriceType
    >>> PriceType.USED_GOOD_SHIPPING, PriceType.USED_GOOD_SHIPPING.with_shipping
    (<PriceType.USED_GOOD_SHIPPING: 21>, True)
    >>> PriceType["RATING"].unit, PriceType(3).unit
    ('rating', 'rank')
    >>> len(PriceType)
    36

    .. versionadded:: 0.1.0
    """

    #: Amazon's own price (cents).
    AMAZON = 0
    #: The lowest new price, Amazon included, shipping not included (cents).
    NEW = 1
    #: The lowest used price, shipping not included (cents).
    USED = 2
    #: The sales rank in the root category (rank; 1 is the best seller).
    SALES = 3
    #: The list price (cents).
    LISTPRICE = 4
    #: The lowest collectible price (cents).
    COLLECTIBLE = 5
    #: The lowest refurbished price (cents).
    REFURBISHED = 6
    #: The lowest new price of a merchant-fulfilled offer, shipping included (cents).
    NEW_FBM_SHIPPING = 7
    #: The lightning deal price (cents).
    LIGHTNING_DEAL = 8
    #: The lowest Amazon Warehouse price (cents).
    WAREHOUSE = 9
    #: The lowest new price of a third-party offer fulfilled by Amazon (cents).
    NEW_FBA = 10
    #: How many new offers (count).
    COUNT_NEW = 11
    #: How many used offers (count).
    COUNT_USED = 12
    #: How many refurbished offers (count).
    COUNT_REFURBISHED = 13
    #: How many collectible offers (count).
    COUNT_COLLECTIBLE = 14
    #: When Keepa fetched the offers, and how many (negative when more existed).
    EXTRA_INFO_UPDATES = 15
    #: The rating, stars times ten (45 = 4.5 stars).
    RATING = 16
    #: How many reviews (count).
    COUNT_REVIEWS = 17
    #: The buy box price, shipping included (cents).
    BUY_BOX_SHIPPING = 18
    #: The lowest "Used - Like New" price, shipping included (cents).
    USED_NEW_SHIPPING = 19
    #: The lowest "Used - Very Good" price, shipping included (cents).
    USED_VERY_GOOD_SHIPPING = 20
    #: The lowest "Used - Good" price, shipping included (cents).
    USED_GOOD_SHIPPING = 21
    #: The lowest "Used - Acceptable" price, shipping included (cents).
    USED_ACCEPTABLE_SHIPPING = 22
    #: The lowest "Collectible - Like New" price, shipping included (cents).
    COLLECTIBLE_NEW_SHIPPING = 23
    #: The lowest "Collectible - Very Good" price, shipping included (cents).
    COLLECTIBLE_VERY_GOOD_SHIPPING = 24
    #: The lowest "Collectible - Good" price, shipping included (cents).
    COLLECTIBLE_GOOD_SHIPPING = 25
    #: The lowest "Collectible - Acceptable" price, shipping included (cents).
    COLLECTIBLE_ACCEPTABLE_SHIPPING = 26
    #: The lowest refurbished price, shipping included (cents).
    REFURBISHED_SHIPPING = 27
    #: The lowest new price on the marketplace's eBay, shipping included (cents).
    EBAY_NEW_SHIPPING = 28
    #: The lowest used price on the marketplace's eBay, shipping included (cents).
    EBAY_USED_SHIPPING = 29
    #: Amazon's trade-in price (cents).
    TRADE_IN = 30
    #: The rental price (cents).
    RENT = 31
    #: The used buy box price (any sub-condition), shipping included (cents).
    BUY_BOX_USED_SHIPPING = 32
    #: The lowest Prime exclusive new price (cents).
    PRIME_EXCL = 33
    #: How many new offers fulfilled by Amazon, Amazon's own included (count).
    COUNT_NEW_FBA = 34
    #: How many new offers fulfilled by the merchant (count).
    COUNT_NEW_FBM = 35

    @property
    def unit(self) -> PriceUnit:
        """The unit of this type's values.

        ``"cents"`` (the marketplace's smallest currency unit: cents, pence, yen),
        ``"rank"``, ``"count"``, ``"rating"`` (stars times ten, 0 to 50) or
        ``"offers"`` (offers fetched, :attr:`EXTRA_INFO_UPDATES`).
        """
        return _UNITS.get(self, "cents")

    @property
    def is_price(self) -> bool:
        """Whether the values are money (``unit == "cents"``)."""
        return self.unit == "cents"

    @property
    def with_shipping(self) -> bool:
        """Whether the values include shipping (``csv`` holds time, price, shipping triplets)."""
        return self in _WITH_SHIPPING

    @property
    def is_extra_data(self) -> bool:
        """Whether Keepa sends this type only with the ``offers`` parameter of ``/product``."""
        return self in _EXTRA_DATA


_UNITS: Final[dict[PriceType, PriceUnit]] = {
    PriceType.SALES: "rank",
    PriceType.COUNT_NEW: "count",
    PriceType.COUNT_USED: "count",
    PriceType.COUNT_REFURBISHED: "count",
    PriceType.COUNT_COLLECTIBLE: "count",
    PriceType.EXTRA_INFO_UPDATES: "offers",
    PriceType.RATING: "rating",
    PriceType.COUNT_REVIEWS: "count",
    PriceType.COUNT_NEW_FBA: "count",
    PriceType.COUNT_NEW_FBM: "count",
}

#: The types whose ``csv`` history is (time, price, shipping) triplets (Java ``isWithShipping``).
_WITH_SHIPPING: Final = frozenset(
    {
        PriceType.NEW_FBM_SHIPPING,
        PriceType.BUY_BOX_SHIPPING,
        *(PriceType(i) for i in range(19, 30)),
        PriceType.BUY_BOX_USED_SHIPPING,
    }
)

#: The types sent only with ``offers`` (Java ``isExtraData``).
_EXTRA_DATA: Final = frozenset(
    {
        PriceType.NEW_FBM_SHIPPING,
        PriceType.WAREHOUSE,
        PriceType.NEW_FBA,
        PriceType.EXTRA_INFO_UPDATES,
        PriceType.RATING,
        PriceType.COUNT_REVIEWS,
        PriceType.BUY_BOX_SHIPPING,
        *(PriceType(i) for i in range(19, 28)),
        PriceType.RENT,
        PriceType.BUY_BOX_USED_SHIPPING,
        PriceType.PRIME_EXCL,
    }
)
