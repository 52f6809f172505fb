"""PriceType: Keepa's 36 price types, in the order and with the layouts of Keepa's Java client."""

from __future__ import annotations

import pytest

from tokenbudget_keepa import PriceType


#: Keepa's ``Product.CsvType`` (official Java client), index by index.
KEEPA_CSV_TYPES = [
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
    "EXTRA_INFO_UPDATES",
    "RATING",
    "COUNT_REVIEWS",
    "BUY_BOX_SHIPPING",
    "USED_NEW_SHIPPING",
    "USED_VERY_GOOD_SHIPPING",
    "USED_GOOD_SHIPPING",
    "USED_ACCEPTABLE_SHIPPING",
    "COLLECTIBLE_NEW_SHIPPING",
    "COLLECTIBLE_VERY_GOOD_SHIPPING",
    "COLLECTIBLE_GOOD_SHIPPING",
    "COLLECTIBLE_ACCEPTABLE_SHIPPING",
    "REFURBISHED_SHIPPING",
    "EBAY_NEW_SHIPPING",
    "EBAY_USED_SHIPPING",
    "TRADE_IN",
    "RENT",
    "BUY_BOX_USED_SHIPPING",
    "PRIME_EXCL",
    "COUNT_NEW_FBA",
    "COUNT_NEW_FBM",
]


def test_all_36_types_in_keepa_order():
    """Every one of Keepa's 36 types has its Java name at its Java index."""
    assert [(t.value, t.name) for t in PriceType] == list(enumerate(KEEPA_CSV_TYPES))


def test_triplet_types_are_the_java_with_shipping_ones():
    """Exactly Java's isWithShipping types have (time, price, shipping) triplets in csv."""
    triplets = {t.value for t in PriceType if t.with_shipping}
    assert triplets == {7, 18, *range(19, 30), 32}


@pytest.mark.parametrize(
    ("price_type", "unit"),
    [
        (PriceType.AMAZON, "cents"),
        (PriceType.SALES, "rank"),
        (PriceType.COUNT_NEW, "count"),
        (PriceType.COUNT_REVIEWS, "count"),
        (PriceType.RATING, "rating"),
        (PriceType.EXTRA_INFO_UPDATES, "offers"),
        (PriceType.BUY_BOX_USED_SHIPPING, "cents"),
        (PriceType.COUNT_NEW_FBM, "count"),
    ],
)
def test_units(price_type, unit):
    """Each type says its unit; is_price is exactly the money types."""
    assert price_type.unit == unit
    assert price_type.is_price is (unit == "cents")


def test_extra_data_types_follow_java():
    """is_extra_data marks the types Keepa sends only with offers (Java isExtraData)."""
    extra = {t.value for t in PriceType if t.is_extra_data}
    assert extra == {7, 9, 10, 15, 16, 17, 18, *range(19, 28), 31, 32, 33}
