"""The typed views of Keepa's JSON: products, deals, deal queries."""

from __future__ import annotations

import pytest

from tokenbudget_keepa import Deal, DealPage, DealQuery, KeepaProtocolError, PriceType, Product


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


def test_deal_query_writes_keepa_camel_case():
    """A query is sent as Keepa's camelCase JSON, ints as ints and flags as booleans."""
    q = DealQuery.from_mapping(
        {
            "priceTypes": [1],
            "domainId": 1,
            "dateRange": 1,
            "sortType": -1,
            "salesRankRange": [1, 50000],
            "includeCategories": [5],
            "isLowest": True,
            "titleSearch": "lamp",
        }
    )
    assert q.to_selection() == {
        "priceTypes": [1],
        "domainId": 1,
        "dateRange": 1,
        "sortType": -1,
        "salesRankRange": [1, 50000],
        "includeCategories": [5],
        "isLowest": True,
        "titleSearch": "lamp",
        "page": 0,
    }


def test_deal_query_accepts_snake_case_and_extra():
    """Snake-case names work too, and 'extra' passes untyped fields through."""
    q = DealQuery.from_mapping(
        {"price_types": PriceType.AMAZON, "page": 2, "extra": {"mustHaveAmazonOffer": True}}
    )
    assert q.to_selection() == {"priceTypes": [0], "page": 2, "mustHaveAmazonOffer": True}
    assert q.with_page(3).page == 3


def test_deal_query_extra_keeps_json_types():
    """'extra' takes ints, bools, strs and lists of ints or strs, sent as such."""
    extra = {"minOffers": 4, "isPrimeExclusive": False, "brand": ("acme",), "conds": [1, 2]}
    q = DealQuery(price_types=PriceType.NEW, extra=extra)
    selection = q.to_selection()
    assert selection["minOffers"] == 4
    assert selection["isPrimeExclusive"] is False
    assert selection["brand"] == ["acme"]
    assert selection["conds"] == [1, 2]


@pytest.mark.parametrize(
    ("selection", "error", "named"),
    [
        ({"priceTypes": ["4"]}, TypeError, "price_types"),
        ({"priceTypes": [1, 2]}, ValueError, "price_types"),
        ({"priceTypes": []}, ValueError, "price_types"),
        ({"priceTypes": [99]}, ValueError, "price_types"),
        ({}, ValueError, "priceTypes"),
        ({"priceTypes": [1], "page": "4"}, TypeError, "page"),
        ({"priceTypes": [1], "page": -1}, ValueError, "page"),
        ({"priceTypes": [1], "dateRange": 4}, ValueError, "date_range"),
        ({"priceTypes": [1], "dateRange": True}, TypeError, "date_range"),
        ({"priceTypes": [1], "sortType": 0}, ValueError, "sort_type"),
        ({"priceTypes": [1], "salesRankRange": [5, 1]}, ValueError, "sales_rank_range"),
        ({"priceTypes": [1], "salesRankRange": ["1", 5]}, TypeError, "sales_rank_range"),
        ({"priceTypes": [1], "isLowest": 1}, TypeError, "is_lowest"),
        ({"priceTypes": [1], "domainId": 7}, ValueError, "domain_id"),
        ({"priceTypes": [1], "includeCategories": [1.5]}, TypeError, "include_categories"),
        ({"priceTypes": [1], "colour": "red"}, ValueError, "colour"),
        ({"priceTypes": [1], "extra": {"page": 1}}, ValueError, "page"),
        ({"priceTypes": [1], "extra": {"minOffers": "4"}}, TypeError, "minOffers"),
        ({"priceTypes": [1], "extra": {"minOffers": 4.0}}, TypeError, "minOffers"),
        ({"priceTypes": [1], "extra": {"minOffers": None}}, TypeError, "minOffers"),
        ({"priceTypes": [1], "extra": {"warehouseConditions": [1, "2"]}}, TypeError, "warehouse"),
        ({"priceTypes": [1], "extra": {"brand": ["acme", "7"]}}, TypeError, r"brand'\]\[1\]"),
        ({"priceTypes": [1], "extra": {"x": {"a": 1}}}, TypeError, "'x'"),
    ],
)
def test_malformed_selection_is_refused_naming_the_field(selection, error, named):
    """A malformed selection raises before sending, naming the field."""
    with pytest.raises(error, match=named):
        DealQuery.from_mapping(selection)


def test_deal_page_size_is_a_constant_not_a_field():
    """PAGE_SIZE is Keepa's page size on the class; a page is built from deals and page alone."""
    page = DealPage([], page=3)
    assert DealPage.PAGE_SIZE == 150
    assert repr(page) == "DealPage(deals=[], page=3)"
