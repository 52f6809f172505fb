"""Real Keepa deals and products (``../shared/realdata``) read back with the right values.

Every value asserted here was read by hand from the raw JSON of the named file.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from tests.shared_data import realdata
from tokenbudget_keepa import (
    Deal,
    DealPage,
    MinDrop,
    PriceType,
    Product,
    datetime_to_keepa_minutes,
    keepa_minutes_to_datetime,
)
from tokenbudget_keepa._client.models.offers import BuyBoxHolder, OfferCondition, UsedBuyBoxHolder
from tokenbudget_keepa._client.models.stats import Extreme


UTC = dt.UTC


def real_deals():
    """Every distinct real deal with the timestamp (Unix ms) of the envelope it came in."""
    return [
        (entry["deal"], entry["envelope_timestamp"]) for entry in realdata("deals_unique.json.gz")
    ]


def real_deal(asin, last_update):
    """The real deal of *asin* last updated at *last_update*, and its envelope timestamp."""
    (found,) = [
        (d, t) for d, t in real_deals() if (d["asin"], d["lastUpdate"]) == (asin, last_update)
    ]
    return Deal.from_raw(found[0]), found[1]


def product(asin):
    return Product.from_raw(realdata(f"product_{asin}.json"))


# -- every real object ------------------------------------------------------------------------


def test_every_real_deal_parses_and_no_marker_leaks():
    """All 4,435 real deals parse; no accessor answers a -1/-2 marker as a value."""
    deals = real_deals()
    assert len(deals) == 4435
    for raw, _ in deals:
        deal = Deal.from_raw(raw)
        assert deal.asin == raw["asin"]
        assert deal.root_category == 283155
        assert len(deal.current) == 34
        for price_type in PriceType:
            signed = price_type is PriceType.EXTRA_INFO_UPDATES  # its sign is data
            price, since = deal.price(price_type), deal.current_since(price_type)
            assert signed or price is None or price >= 0
            assert since is None or since > 0
            for date_range in range(4):
                average = deal.average(price_type, date_range)
                assert signed or average is None or average >= 0
                assert price is not None or deal.drop_percent(price_type, date_range) is None
        assert deal.image is not None
        assert deal.image.endswith((".jpg", ".gif"))
        for days in (30, 90, 180, 365):
            assert deal.sales_rank_drops(days) is not None


def test_keepa_time_against_the_envelopes():
    """Each deal's lastUpdate lies at most a minute after its envelope's time; both ways agree."""
    for raw, envelope_ms in real_deals():
        deal = Deal.from_raw(raw)
        envelope = dt.datetime.fromtimestamp(envelope_ms / 1000, UTC)
        envelope_minute = datetime_to_keepa_minutes(envelope)
        assert envelope_minute == envelope_ms // 60_000 - 21_564_000
        assert keepa_minutes_to_datetime(envelope_minute) <= envelope
        assert -1 <= envelope_minute - deal.last_update <= 24 * 60
        assert datetime_to_keepa_minutes(deal.last_update_time) == deal.last_update


def test_real_deal_page_categories():
    """A real page's categories by id, Keepa's unknown one ("?", 2**63 - 1) left out."""
    body = realdata("deal_page_full_1757970404177.json")
    page = DealPage([], page=0, raw=body["deals"])
    assert body["deals"]["categoryIds"][0] == 2**63 - 1
    assert page.category_names[283155] == "Books"
    assert page.category_counts[283155] == 792
    assert page.category_counts[165796011] == 1
    assert 2**63 - 1 not in page.category_names
    assert len(page.category_names) == len(page.category_counts) == 23


def test_every_deal_page_parses():
    """Every real /deal body's deals parse, and the page's shape reads back."""
    for name in ("full_1757970404177", "short_1758047059355", "empty_1758047120056"):
        body = realdata(f"deal_page_{name}.json")
        deals = [Deal.from_raw(raw) for raw in body["deals"]["dr"]]
        page = DealPage(deals, page=0)
        assert page.is_last is (len(deals) < 150)


# -- one real deal, by hand --------------------------------------------------------------------


def test_a_real_deal_reads_back_by_hand():
    """0824802063 at 7736724: prices, averages, drops, times, image and counts as in the JSON."""
    deal, envelope_ms = real_deal("0824802063", 7736724)
    assert envelope_ms == 1758046754175
    assert deal.last_update_time == dt.datetime(2025, 9, 16, 17, 24, tzinfo=UTC)
    assert datetime_to_keepa_minutes(dt.datetime.fromtimestamp(envelope_ms / 1000, UTC)) == 7736779
    assert (deal.creation_date, deal.current_since(PriceType.USED)) == (7732608, 7732608)
    assert deal.price(PriceType.USED) == 2339
    assert deal.price("sales") == deal.sales_rank == 1377686
    assert (deal.price(PriceType.RATING), deal.price(PriceType.COUNT_REVIEWS)) == (48, 27)
    assert deal.price(PriceType.NEW) is None  # -1
    assert deal.price(PriceType.USED_GOOD_SHIPPING) == 2339
    assert deal.average(PriceType.USED, 1) == 1683
    assert deal.average(PriceType.AMAZON, 0) is None  # -2
    assert deal.drop(PriceType.USED, 1) == -656  # 1683 - 2339: a rise
    assert deal.drop_percent(PriceType.USED, 1) == -39
    assert deal.drop_percent(PriceType.USED, 3) == 78
    assert deal.last_change(PriceType.SALES) == -526
    assert deal.image == "5100hXt8PRL.jpg"
    assert deal.image_url == "https://m.media-amazon.com/images/I/5100hXt8PRL.jpg"
    assert (deal.root_category, deal.categories) == (283155, (1000,))
    drops = [deal.sales_rank_drops(days) for days in (30, 90, 180, 365)]
    assert drops == [2, 2, 5, 6]
    assert deal.warehouse_condition is None  # 0
    assert (deal.lightning_start, deal.lightning_end) == (None, None)  # 0, 0
    assert deal.date_interval_index == 0
    assert deal.back_in_stock == frozenset()
    assert deal.parent_asin is None
    assert deal.prices[PriceType.USED] == 2339
    assert PriceType.NEW not in deal.prices


def test_real_minus_one_delta_percent_is_a_one_percent_rise():
    """1589813669: USED week 3192 against an average of 3171 is deltaPercent -1, a rise."""
    deal, _ = real_deal("1589813669", 7736632)
    assert (deal.price(PriceType.USED), deal.average(PriceType.USED, 1)) == (3192, 3171)
    assert deal.drop(PriceType.USED, 1) == -21
    assert deal.drop_percent(PriceType.USED, 1) == -1
    flt = MinDrop(0, price_type=PriceType.USED, date_range=1)
    assert flt.check(deal, None) == "drop"
    assert flt.check_deal(deal) == "peek:drop"


def test_real_minus_one_delta_percents_counted():
    """Of the 9,504 real -1s, the 3,748 with a current value are 1 % rises; none reads as None."""
    raw_minus_one = rises = 0
    for raw, _ in real_deals():
        deal = Deal.from_raw(raw)
        for date_range, row in enumerate(raw["deltaPercent"]):
            for i, value in enumerate(row):
                if value == -1:
                    raw_minus_one += 1
                    rises += deal.drop_percent(i, date_range) == -1
    assert (raw_minus_one, rises) == (9504, 3748)


def test_a_difference_without_a_current_value_is_not_data():
    """1413903614: WAREHOUSE has no current value (-1), so its deltaPercent -1 reads as None."""
    deal, _ = real_deal("1413903614", 7736722)
    assert deal.raw["deltaPercent"][0][PriceType.WAREHOUSE] == -1
    assert deal.price(PriceType.WAREHOUSE) is None
    assert deal.drop_percent(PriceType.WAREHOUSE, 0) is None
    assert deal.drop(PriceType.WAREHOUSE, 0) is None


def test_creation_after_last_update_is_kept():
    """1589813669 was created at 7736634, two minutes after its lastUpdate: kept as sent."""
    deal, _ = real_deal("1589813669", 7736632)
    assert (deal.creation_date, deal.last_update) == (7736634, 7736632)
    assert deal.creation_time - deal.last_update_time == dt.timedelta(minutes=2)


def test_real_lightning_warehouse_and_parent_fields():
    """Lightning times, a warehouse condition with its comment, a parent ASIN, as sent."""
    lightning, _ = real_deal("1576907503", 7736724)
    assert (lightning.lightning_start, lightning.lightning_end) == (3082424, 3082784)
    warehouse, _ = real_deal("1098139186", 7736744)
    assert warehouse.warehouse_condition is OfferCondition.USED_NEW
    assert warehouse.warehouse_condition_comment.startswith("Little to no damage on cover")
    assert warehouse.price(PriceType.WAREHOUSE) == 2534
    (parent,) = [Deal.from_raw(d) for d, _ in real_deals() if "parentAsin" in d]
    assert (parent.asin, parent.parent_asin) == ("1424556848", "B07KP74NZR")


@pytest.mark.parametrize("marker", [0, 2**63 - 1])
def test_unknown_root_category_markers_read_as_none(marker):
    """Keepa's unknown root category markers (0, 2**63 - 1) read as None."""
    raw, _ = real_deals()[0]
    deal = Deal.from_raw({**raw, "rootCat": marker})
    assert deal.root_category is None
    assert Product.from_raw({"asin": "B0", "rootCategory": marker}).root_category is None


# -- the real products ------------------------------------------------------------------------


def test_real_product_current_values_and_stats():
    """055299068X: stats.current, the averages, extremes and buy box figures as in the JSON."""
    p = product("055299068X")
    assert (p.used_price, p.new_price, p.sales_rank, p.amazon_price) == (2100, 46101, 1297709, None)
    assert p.price(PriceType.USED_GOOD_SHIPPING) == p.price("buy_box_used_shipping") == 2499
    assert (p.price(PriceType.RATING), p.price(PriceType.COUNT_REVIEWS)) == (47, 35)
    stats = p.stats
    assert stats is not None
    assert stats.average(PriceType.NEW, days=30) == 46323
    assert [stats.average(PriceType.USED, d) for d in (None, 90, 180, 365)] == [
        8582,
        6049,
        9391,
        8582,
    ]
    assert stats.average(PriceType.AMAZON) is None  # -1
    assert stats.at_interval_start(PriceType.USED) == 6988
    assert stats.minimum(PriceType.USED) == Extreme(2580426, 78)
    assert stats.maximum(PriceType.SALES) == Extreme(5662852, 11985907)
    assert stats.minimum(PriceType.USED, in_interval=True) == Extreme(7595074, 799)
    assert stats.minimum(PriceType.COLLECTIBLE, in_interval=True) is None  # [-1, -1]
    assert stats.maximum(PriceType.AMAZON) is None  # null
    assert stats.out_of_stock_percent(PriceType.NEW, 30) == 96
    assert stats.out_of_stock_percent(PriceType.SALES) is None  # -1: not a price
    assert stats.is_lowest(PriceType.NEW_FBM_SHIPPING) is True
    assert stats.is_lowest(PriceType.RATING, days=90) is True
    assert [stats.sales_rank_drops(d) for d in (30, 90, 180, 365)] == [1, 1, 12, 13]
    assert (stats.total_offer_count, stats.retrieved_offer_count) == (2, 2)
    assert (stats.offer_count_fba, stats.offer_count_fbm) == (0, 1)
    assert (stats.buy_box_price, stats.buy_box_shipping) == (None, None)  # -1, -1
    assert (stats.buy_box_used_price, stats.buy_box_used_shipping) == (2100, 399)
    assert stats.buy_box_used_seller_id == "A66REUIM3OMP6"
    assert stats.buy_box_used_condition is OfferCondition.USED_GOOD
    assert stats.last_offers_update == 7831654
    assert stats.flag("buyBoxIsUsed") is True
    assert stats.lightning_deal is None


def test_real_product_histories():
    """055299068X: csv pairs and triplets, sales ranks; the newest values match stats.current."""
    p = product("055299068X")
    used = p.history(PriceType.USED)
    assert len(used) == 2956 // 2
    assert (used[0].minute, used[0].value) == (2580426, 78)
    assert (used.latest.minute, used.latest.value) == (7825626, 2100)
    assert used.latest.time == keepa_minutes_to_datetime(7825626)
    fbm = p.history("NEW_FBM_SHIPPING")
    assert fbm.with_shipping
    assert [(q.minute, q.value, q.shipping) for q in fbm] == [
        (7738556, 149624, 0),
        (7738768, None, None),
        (7829700, 46554, 0),
        (7831500, 46101, 0),
    ]
    good = p.history(PriceType.USED_GOOD_SHIPPING)
    assert (good.latest.value, good.latest.shipping, good.latest.total) == (2100, 399, 2499)
    assert good.latest.total == p.price(PriceType.USED_GOOD_SHIPPING)
    assert [(q.minute, q.value) for q in p.history(PriceType.AMAZON)] == [(2580426, None)]
    assert p.history(PriceType.PRIME_EXCL) == p.history(35)  # null and past the end: empty
    assert not p.history(PriceType.PRIME_EXCL)
    assert used.at(7825626).value == 2100
    assert used.at(2580425) is None
    assert set(p.histories) == {PriceType(i) for i, h in enumerate(p.raw["csv"]) if h is not None}
    ranks = p.sales_ranks
    assert set(ranks) == {10129, 283155, 916520}
    assert (ranks[283155].latest.minute, ranks[283155].latest.value) == (7831654, 1297709)
    assert ranks[283155].latest.value == p.sales_rank
    assert ranks[916520].latest.value is None  # -1
    assert p.sales_rank_reference == 283155


def test_real_product_buy_box_histories():
    """055299068X: "-1" is no qualified offer, "-2" an unknown seller; used holders in fours."""
    p = product("055299068X")
    assert p.buy_box_history[:3] == (
        BuyBoxHolder(3805348, None, qualified=False),
        BuyBoxHolder(5024114, "AWDPHUOMROO69"),
        BuyBoxHolder(5029324, None, qualified=False),
    )
    assert p.buy_box_history[3] == BuyBoxHolder(5885300, None, qualified=True)  # "-2"
    assert p.used_buy_box_history[0] == UsedBuyBoxHolder(
        6421676, "A242BDZWH3O9ZO", OfferCondition.USED_VERY_GOOD, False
    )
    assert p.used_buy_box_history[3] == UsedBuyBoxHolder(6735540, None, None, None)  # "", "", ""
    assert product("1886940606").buy_box_history == ()  # null


def test_real_product_offers():
    """055299068X: 34 offers, two live (used, then new); the buy box falls back to the new one."""
    p = product("055299068X")
    assert len(p.offers) == 34
    used, new = p.live_offers
    assert (used.seller_id, used.condition, used.price, used.shipping) == (
        "A66REUIM3OMP6",
        OfferCondition.USED_GOOD,
        2100,
        399,
    )
    assert (new.seller_id, new.condition, new.total, new.last_seen) == (
        "A2LAZA9IUFPA4W",
        OfferCondition.NEW,
        46101,
        7831654,
    )
    assert (new.offer_id, new.is_fba, new.is_shippable, new.min_order_quantity) == (
        34,
        False,
        True,
        1,
    )
    assert new.history.latest.total == 46101
    assert p.buybox_price == 46101  # buyBoxPrice -1: the lowest live new offer


def test_real_not_shippable_offer_never_counts_as_free_shipping():
    """1886940606's offer 69 has shipping -1 (not shippable): no total, never price + 0."""
    raw = copy.deepcopy(realdata("product_1886940606.json"))
    p = Product.from_raw(raw)
    offer = p.offers[69]
    assert (offer.price, offer.shipping, offer.ships, offer.total) == (1168, None, False, None)
    assert p.offers[38].ships is True
    for i in (38, 69):  # both live, both new: the buy box falls back to them
        raw["offers"][i]["condition"] = 1
    raw["liveOffersOrder"] = [38, 69]
    assert Product.from_raw(raw).buybox_price == 2243  # not 1168 + 0


def test_real_product_without_csv():
    """1886940606 came without csv: no histories; its stats and ranks still read back."""
    p = product("1886940606")
    assert (p.histories, len(p.history(PriceType.USED))) == ({}, 0)
    assert (p.used_price, p.sales_rank, p.price(PriceType.LISTPRICE)) == (2243, 287187, 800)
    assert p.price(PriceType.EBAY_USED_SHIPPING) == 4303
    assert p.sales_ranks[45].latest.value is None
    assert p.sales_ranks[12676].latest.value == 822
    assert (p.tracking_since, p.listed_since, p.last_update) == (119880, -912280, 7833124)
    assert len(p.offers) == 121
    assert [o.seller_id for o in p.live_offers] == ["A2LAZA9IUFPA4W"]


def test_real_product_dates_and_sizes():
    """055299068X: Keepa times (a listing before 2011 is a negative minute), weight, fees."""
    p = product("055299068X")
    assert p.last_update_time == keepa_minutes_to_datetime(7831654)
    assert p.listed_since == -1643350
    assert keepa_minutes_to_datetime(p.listed_since) == dt.datetime(
        2007, 11, 16, 18, 50, tzinfo=UTC
    )
    assert (p.root_category, p.categories, p.domain_id) == (283155, (10129,), 1)
    assert (p.package_weight, p.fba_fee, p.referral_fee_percent) == (136, 344, 15.0)
