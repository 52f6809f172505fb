"""Histories, stats, offers and deal fields: units, "no data" markers and any array length."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget_keepa import Deal, History, PriceType, Product
from tokenbudget_keepa._client.models.offers import Offer, OfferCondition
from tokenbudget_keepa._client.models.stats import ProductStats


UTC = dt.UTC

#: JSON values as Keepa's fields might hold them, wrong types included.
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**63), st.floats(allow_nan=True), st.text(max_size=3)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=40), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=60,
)


def test_history_pairs_with_markers():
    """Pairs: -1 and -2 read as None; the point in effect at a time, as a minute or a datetime."""
    history = History.from_csv([100, 5, 200, -1, 300, -2, 400, 7])
    assert [(p.minute, p.value) for p in history] == [(100, 5), (200, None), (300, None), (400, 7)]
    assert history.at(250) == history[1]
    assert history.at(99) is None
    assert history.at(dt.datetime(2011, 1, 1, 7, 0, tzinfo=UTC)).value == 7  # minute 420
    assert history.latest.time == dt.datetime(2011, 1, 1, 6, 40, tzinfo=UTC)
    with pytest.raises(TypeError, match="when"):
        history.at("soon")


def test_history_triplets_total_needs_both():
    """Triplets: total is price plus shipping, None when either is missing."""
    history = History.from_csv(
        [1, 1000, 0, 2, 1000, -1, 3, -1, -1, 4, 900, 250], with_shipping=True
    )
    assert [p.total for p in history] == [1000, None, None, 1150]
    assert history[1].shipping is None


@pytest.mark.parametrize(
    ("values", "with_shipping", "minutes"),
    [
        (None, False, []),
        ("1,2", False, []),
        ([1, 2, 3], False, [1]),  # incomplete last pair skipped
        ([1, 2, 3, 4, 5], True, [1]),
        (["x", 2, 3, 4], False, [3]),  # a time that is not an int is skipped
        ([1.0, 2], False, [1]),
    ],
)
def test_malformed_histories_never_raise(values, with_shipping, minutes):
    """Malformed arrays read as what can be read, never raising."""
    history = History.from_csv(values, with_shipping=with_shipping)
    assert [p.minute for p in history] == minutes


def test_extra_info_updates_keeps_its_sign():
    """EXTRA_INFO_UPDATES: a negative count is data (more offers existed), not a marker."""
    p = Product.from_raw(
        {
            "asin": "B0",
            "csv": [None] * 15 + [[10, -8, 20, 3]],
            "stats": {"current": [-1] * 15 + [-8]},
        }
    )
    assert [q.value for q in p.history(PriceType.EXTRA_INFO_UPDATES)] == [-8, 3]
    assert p.price(PriceType.EXTRA_INFO_UPDATES) == -8


@pytest.mark.parametrize("length", [0, 4, 19, 34, 36, 40])
def test_any_array_length(length):
    """Arrays of any length: types past the end have no data; future types are ignored."""
    row = list(range(100, 100 + length))
    deal = Deal.from_raw(
        {"asin": "B0", "lastUpdate": 1, "current": row, "avg": [row], "deltaPercent": [row]}
    )
    product = Product.from_raw(
        {"asin": "B0", "stats": {"current": row}, "csv": [[1, v] for v in row]}
    )
    for price_type in PriceType:
        expected = 100 + price_type if price_type < length else None
        assert deal.price(price_type) == product.price(price_type) == expected
        assert deal.average(price_type, 0) == expected
        assert product.history(price_type).latest == (
            None if expected is None else product.history(price_type).latest
        )
    assert len(deal.prices) == len(product.prices) == min(length, 36)
    assert len(product.histories) == min(length, 36)
    assert product.price(40) == (140 if length > 40 else None)


def test_price_type_by_name_or_index_and_bad_ones():
    """A price type is a PriceType, its index or its name; a bad one is a clear error."""
    p = Product.from_raw({"asin": "B0", "stats": {"current": [1, 2, 3]}})
    assert p.price("used") == p.price(2) == p.price(PriceType.USED) == 3
    with pytest.raises(ValueError, match="'cheapest'"):
        p.price("cheapest")
    with pytest.raises(ValueError, match="-1"):
        p.price(-1)
    with pytest.raises(TypeError, match="True"):
        p.price(True)


def test_offer_sentinels():
    """An offer's price -2 is unknown; shipping -1 is not shippable, -2 unknown, 0 free."""
    free = Offer({"offerCSV": [1, 1000, 0], "condition": 1, "lastSeen": 5})
    assert (free.price, free.shipping, free.ships, free.total) == (1000, 0, True, 1000)
    assert (free.condition, free.last_seen_time) == (
        OfferCondition.NEW,
        dt.datetime(2011, 1, 1, 0, 5, tzinfo=UTC),
    )
    not_shippable = Offer({"offerCSV": [1, 1000, -1]})
    assert (not_shippable.shipping, not_shippable.ships, not_shippable.total) == (None, False, None)
    unknown = Offer({"offerCSV": [1, -2, -2], "condition": 0, "minOrderQty": 0})
    assert (unknown.price, unknown.ships, unknown.condition, unknown.min_order_quantity) == (
        None,
        None,
        None,
        None,
    )
    assert Offer({}).history == History((), with_shipping=True)
    assert "price=1000" in repr(free)


def test_buybox_fallback_skips_unknown_shipping():
    """The buy box fallback leaves out offers whose shipping is -1 or -2, and non-new ones."""
    offers = [
        {"condition": 1, "offerCSV": [1, 500, -1]},
        {"condition": 1, "offerCSV": [1, 600, -2]},
        {"condition": 2, "offerCSV": [1, 700, 0]},
        {"condition": 1, "offerCSV": [1, 900, 100]},
    ]
    p = Product.from_raw({"asin": "B0", "offers": offers, "liveOffersOrder": [0, 1, 2, 3]})
    assert p.buybox_price == 1000
    assert [o.price for o in p.live_offers] == [500, 600, 700, 900]


def test_stats_intervals_are_checked():
    """Averages, out-of-stock shares and rank drops take only Keepa's intervals."""
    stats = ProductStats({"avg30": [5], "salesRankDrops30": -1, "outOfStockPercentage90": [40]})
    assert stats.average(0, 30) == 5
    assert stats.out_of_stock_percent(0, 90) == 40
    assert stats.sales_rank_drops(30) is None  # -1
    with pytest.raises(ValueError, match="45"):
        stats.average(0, 45)
    with pytest.raises(ValueError, match="7"):
        stats.sales_rank_drops(7)
    with pytest.raises(ValueError, match="30"):
        stats.is_lowest(0, days=30)


def test_stats_none_markers():
    """Buy box "none" is -1 or -2; a lightning deal to come has no end (-1)."""
    stats = ProductStats(
        {
            "buyBoxPrice": -2,
            "buyBoxShipping": -1,
            "buyBoxSellerId": "-2",
            "totalOfferCount": -2,
            "lightningDealInfo": [7_000_000, -1],
        }
    )
    assert (stats.buy_box_price, stats.buy_box_shipping, stats.buy_box_seller_id) == (None,) * 3
    assert stats.total_offer_count is None
    assert stats.lightning_deal == (7_000_000, None)
    assert Product.from_raw({"asin": "B0"}).stats is None


def test_product_zero_weight_and_unknown_listing_are_none():
    """packageWeight 0 and listedSince 0 mean unknown."""
    p = Product.from_raw({"asin": "B0", "packageWeight": 0, "listedSince": 0})
    assert (p.package_weight, p.listed_since) == (None, None)


def test_deal_image_decoding():
    """image is a list of character codes; anything else reads as None (a str as itself)."""

    def image(value):
        return Deal.from_raw({"asin": "B0", "lastUpdate": 1, "image": value}).image

    assert (
        image([54, 49, 107, 51, 76, 97, 121, 55, 74, 85, 76, 46, 106, 112, 103])
        == "61k3Lay7JUL.jpg"
    )
    assert image("61k3Lay7JUL.jpg") == "61k3Lay7JUL.jpg"
    assert image([]) is image(None) is image([54, -1]) is image([54, "a"]) is None


def test_deal_markers_field_by_field():
    """Each deal field's own "no data": 0 for lightning and warehouse, -1 for counts and times."""
    deal = Deal.from_raw(
        {
            "asin": "B0",
            "lastUpdate": 10,
            "lightningStart": 0,
            "lightningEnd": 0,
            "warehouseCondition": 0,
            "salesRankDrops90": -1,
            "currentSince": [-1, 7],
            "minRating": -1,
            "backInStock": [False, True, "yes", True],
        }
    )
    assert (deal.lightning_start, deal.lightning_end, deal.warehouse_condition) == (None,) * 3
    assert (deal.sales_rank_drops(90), deal.min_rating) == (None, None)
    assert (deal.current_since(0), deal.current_since(1)) == (None, 7)
    assert deal.back_in_stock == {PriceType.NEW, PriceType.SALES}
    assert deal.image_url is None


def test_deal_change_without_current_is_none_but_with_is_signed():
    """A difference counts only where the deal has a current value; -1 and -2 are real."""
    deal = Deal.from_raw(
        {
            "asin": "B0",
            "lastUpdate": 1,
            "current": [-1, 1000, -2],
            "delta": [[-1, -2, -1]],
            "deltaPercent": [[-1, -1, -1]],
            "deltaLast": [5, -2, 5],
        }
    )
    assert [deal.drop(i, 0) for i in range(3)] == [None, -2, None]
    assert [deal.drop_percent(i, 0) for i in range(3)] == [None, -1, None]
    assert [deal.last_change(i) for i in range(3)] == [None, -2, None]
    assert deal.drop(PriceType.NEW, 4) is None


@given(json_values)
def test_arbitrary_json_never_raises_nor_leaks_markers(raw_value):
    """Whatever a field holds, the accessors answer a value or None, never raising."""
    for key in ("current", "avg", "delta", "deltaPercent", "image", "backInStock", "rootCat"):
        deal = Deal.from_raw({"asin": "B0", "lastUpdate": 1, key: raw_value})
        for i in (0, 2, 15, 33, 35):
            assert deal.price(i) is None or i == 15 or deal.price(i) >= 0
            deal.average(i, 0), deal.drop(i, 1), deal.drop_percent(i, 2), deal.current_since(i)
        deal.prices, deal.back_in_stock, deal.image, deal.root_category  # noqa: B018
    for key in (
        "csv",
        "stats",
        "offers",
        "salesRanks",
        "buyBoxSellerIdHistory",
        "buyBoxUsedHistory",
    ):
        p = Product.from_raw({"asin": "B0", key: raw_value, "liveOffersOrder": [0, 1]})
        for i in (0, 7, 15, 32):
            p.price(i), p.history(i)
            if p.stats is not None:
                p.stats.average(i), p.stats.minimum(i), p.stats.maximum(i, in_interval=True)
        p.histories, p.sales_ranks, p.buy_box_history, p.used_buy_box_history  # noqa: B018
        for offer in p.offers:
            offer.total, offer.history, offer.stock, offer.ships  # noqa: B018
        assert p.buybox_price is None or p.buybox_price >= 0


@pytest.mark.parametrize("date_range", ["1", 1.0, True, None])
def test_deal_date_range_must_be_an_int(date_range):
    """A date range that is not an int is a TypeError naming it (one past 0..3 has no row)."""
    deal = Deal.from_raw({"asin": "B0", "lastUpdate": 1, "current": [5], "avg": [[5]]})
    assert deal.average(0, 9) is None
    for read in (deal.average, deal.drop, deal.drop_percent):
        with pytest.raises(TypeError, match="date_range"):
            read(0, date_range)
