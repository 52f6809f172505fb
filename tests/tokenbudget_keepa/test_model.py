"""The typed views of Keepa's JSON: products and deals (deal queries: test_query.py)."""

from __future__ import annotations

import pytest

from tokenbudget_keepa import Deal, DealPage, KeepaProtocolError, PriceType, Product


FULL_PRODUCT = {
    "asin": "B000000001",
    "domainId": 1,
    "title": "A kettle",
    "rootCategory": 1055398,
    "categories": [1, 2],
    "stats": {
        "current": [1999, 1899, -1, 1234],
        "buyBoxPrice": 1950,
        "totalOfferCount": 7,
    },
    "fbaFees": {"pickAndPackFee": 322},
    "referralFeePercentage": 15.0,
    "packageWeight": 800,
}

OFFERS_PRODUCT = {
    "asin": "B000000002",
    "offers": [
        {"condition": 1, "offerCSV": [100, 2500, 0]},
        {"condition": 2, "offerCSV": [100, 900, 0]},
        {"condition": 1, "offerCSV": [100, 2000, 499]},
        {"condition": 1, "offerCSV": [100, 1000, 0]},
    ],
    "liveOffersOrder": [0, 1, 2],
}

DEAL = {
    "asin": "B000000003",
    "title": "A lamp",
    "rootCat": 5,
    "categories": [5, 6],
    "current": [-1, 2999, -1, 4200],
    "delta": [[0, -500, 0, 0]] * 4,
    "deltaPercent": [[0, -14, 0, 0], [0, -20, 0, 0], [-1, -1, -1, -1], [0, 0, 0, 0]],
    "avg": [[0, 3499, 0, 0]] * 4,
    "creationDate": 7_000_000,
    "lastUpdate": 7_000_100,
}


def test_product_accessors_read_stats_and_fees():
    """A complete product answers every accessor from stats and fees."""
    p = Product.from_raw(FULL_PRODUCT)
    assert (p.asin, p.title, p.root_category, p.categories) == (
        "B000000001",
        "A kettle",
        1055398,
        (1, 2),
    )
    assert (p.amazon_price, p.new_price, p.sales_rank, p.buybox_price) == (1999, 1899, 1234, 1950)
    assert (p.offer_count, p.fba_fee, p.referral_fee_percent) == (7, 322, 15.0)
    assert p.price(PriceType.USED) is None
    assert p.raw is FULL_PRODUCT


def test_sparse_product_answers_none_everywhere():
    """A product with only an ASIN answers None (or empty) from every accessor, never raising."""
    p = Product.from_raw({"asin": "B0"})
    assert p.title is None
    assert p.categories == ()
    for name in (
        "root_category",
        "new_price",
        "amazon_price",
        "sales_rank",
        "buybox_price",
        "offer_count",
        "fba_fee",
        "referral_fee_percent",
        "package_weight",
        "domain_id",
        "brand",
        "last_update",
    ):
        assert getattr(p, name) is None, name


def test_mistyped_product_fields_read_as_missing():
    """Fields of the wrong JSON type read as missing, not as errors."""
    p = Product.from_raw(
        {
            "asin": "B0",
            "stats": [],
            "fbaFees": "x",
            "categories": "1",
            "referralFeePercentage": "15",
        }
    )
    assert (p.new_price, p.fba_fee, p.categories, p.referral_fee_percent) == (None, None, (), None)


def test_buybox_falls_back_to_lowest_live_new_offer():
    """Without stats the buy box price is the lowest live new offer, shipping included."""
    p = Product.from_raw(OFFERS_PRODUCT)
    assert p.buybox_price == 2499
    assert p.offer_count == 3


@pytest.mark.parametrize("raw", [None, [], "B0", {"title": "x"}, {"asin": 5}, {"asin": ""}])
def test_product_without_asin_is_a_protocol_error(raw):
    """Something that is not a product object with an ASIN is a KeepaProtocolError."""
    with pytest.raises(KeepaProtocolError):
        Product.from_raw(raw)


def test_deal_fields_and_helpers():
    """A deal exposes its times, prices, drops and sales rank."""
    d = Deal.from_raw(DEAL)
    assert (d.asin, d.title, d.last_update, d.creation_date) == (
        "B000000003",
        "A lamp",
        7_000_100,
        7_000_000,
    )
    assert d.price(PriceType.NEW) == 2999
    assert d.price(PriceType.AMAZON) is None
    assert d.sales_rank == 4200
    assert d.drop_percent(PriceType.NEW, 1) == -20
    assert d.drop_percent(PriceType.NEW, 2) == -1  # a 1 % rise, not missing data
    assert d.drop_percent(PriceType.NEW, 7) is None
    assert (d.root_category, d.categories) == (5, (5, 6))


def test_deal_without_last_update_is_a_protocol_error():
    """A deal needs an integer lastUpdate: the watermark is built from it."""
    with pytest.raises(KeepaProtocolError, match="lastUpdate"):
        Deal.from_raw({"asin": "B0", "lastUpdate": "soon"})


def test_deal_page_is_last_when_short():
    """A page with fewer than 150 deals is the last one."""
    assert DealPage([Deal.from_raw(DEAL)], page=0).is_last
    assert not DealPage([Deal.from_raw(DEAL)] * 150, page=0).is_last


def test_deal_page_size_is_a_constant_not_a_field():
    """PAGE_SIZE is Keepa's page size on the class; a page is built from deals and page alone."""
    page = DealPage([], page=3)
    assert DealPage.PAGE_SIZE == 150
    assert repr(page) == "DealPage(deals=[], page=3)"
