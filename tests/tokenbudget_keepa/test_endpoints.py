"""The sans-I/O endpoint definitions: requests, bounds, typed results and settle figures.

The answer bodies are shaped as Keepa's documentation and the official Java
client's response classes show them; nothing here opens a socket.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget_keepa import (
    Category,
    FinderPage,
    FinderQuery,
    KeepaProtocolError,
    LightningDeal,
    Seller,
)
from tokenbudget_keepa._client.endpoints import (
    best_sellers_call,
    category_calls,
    category_search_call,
    finder_bound,
    finder_call,
    lightning_deals_call,
    search_call,
    seller_calls,
)


ENVELOPE = {"timestamp": 1_767_225_600_000, "tokensLeft": 100, "refillIn": 30_000}


def category_json(cat_id: int, name: str, parent: int, children: list[int]) -> dict[str, Any]:
    """A category object as the Java client's ``Category`` has it."""
    return {
        "domainId": 1,
        "catId": cat_id,
        "name": name,
        "contextFreeName": name,
        "children": children,
        "parent": parent,
        "highestRank": 6_984_155,
        "lowestRank": 1,
        "productCount": 6_417_325,
        "isBrowseNode": True,
    }


# -- product finder ----------------------------------------------------------------------------


def test_finder_sends_the_selection_with_paging_inside_and_the_domain_beside() -> None:
    """The selection JSON carries page and perPage; the domain is a query parameter."""
    call = finder_call(3, {"current_SALES_lte": 5000, "brand": "Canon"}, page=2, per_page=100)
    assert call.path == "/query"
    assert call.params["domain"] == "3"
    assert json.loads(call.params["selection"]) == {
        "current_SALES_lte": 5000,
        "brand": ["Canon"],
        "page": 2,
        "perPage": 100,
    }


def test_finder_is_booked_at_its_bound_for_the_page_size() -> None:
    """10 + 1 per started 100 of the page size: 11 for Keepa's default 50, 110 for 10,000."""
    assert finder_call(1, {"brand": ["x"]}).bound == 11
    assert finder_call(1, {"brand": ["x"]}, per_page=250).bound == 13
    assert finder_call(1, FinderQuery(brand=["x"], perPage=10_000)).bound == 110


@given(st.integers(min_value=0, max_value=10_000))
def test_finder_settles_to_ten_plus_one_per_started_hundred_returned(returned: int) -> None:
    """The documented cost of an answer never passes the bound of a page that holds it."""
    call = finder_call(1, {"brand": ["x"]}, per_page=max(50, returned))
    cost = call.cost({**ENVELOPE, "asinList": ["B000000001"] * returned, "totalResults": 1})
    assert cost == 10 + -(-returned // 100)
    assert cost <= call.bound


def test_finder_reads_the_asin_list_and_total_results() -> None:
    """asinList and totalResults, as Keepa documents the answer, become a FinderPage."""
    call = finder_call(1, {"rootCategory": [3167641]}, page=1)
    page = call.read({**ENVELOPE, "asinList": ["B000HRMAR2", "0578799790"], "totalResults": 52})
    assert page == FinderPage(["B000HRMAR2", "0578799790"], 52, 1, 50, page.raw)
    assert page.is_last


def test_finder_answer_without_asins_is_an_empty_page() -> None:
    """A query matching nothing answers no asinList: an empty last page."""
    page = finder_call(1, {"brand": ["nobody"]}).read({**ENVELOPE, "totalResults": 0})
    assert page.asins == []
    assert page.total_results == 0


@pytest.mark.parametrize(
    "body",
    [{"asinList": "B000HRMAR2"}, {"asinList": [1, 2]}, {"asinList": [], "totalResults": "many"}],
)
def test_finder_bad_answer_is_a_protocol_error(body: dict[str, Any]) -> None:
    """An answer that is not the documented shape is a KeepaProtocolError naming /query."""
    with pytest.raises(KeepaProtocolError, match="/query") as info:
        finder_call(1, {"brand": ["x"]}).read({**ENVELOPE, **body})
    assert info.value.endpoint == "/query"


def test_finder_bound_rounds_up_per_started_hundred() -> None:
    """101 ASINs start a second hundred."""
    assert (finder_bound(100), finder_bound(101)) == (11.0, 12.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"page": -1}, ValueError, "page"),
        ({"per_page": 49}, ValueError, "per_page"),
        ({"page": 100, "per_page": 100}, ValueError, "10000"),
        ({"page": "1"}, TypeError, "page"),
    ],
)
def test_finder_bad_paging_is_refused_before_sending(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Paging outside Keepa's limits is a typed error naming it."""
    with pytest.raises(error, match=name):
        finder_call(1, {"brand": ["x"]}, **kwargs)


def test_finder_refuses_brazil_for_nothing_but_serves_it() -> None:
    """The product finder serves domain 12; an unknown domain is refused by name."""
    assert finder_call(12, {"brand": ["x"]}).params["domain"] == "12"
    with pytest.raises(ValueError, match="domain"):
        finder_call(7, {"brand": ["x"]})


# -- best sellers ------------------------------------------------------------------------------


def test_best_sellers_sends_category_and_range_and_reads_the_list() -> None:
    """bestSellersList.asinList, best first, is the result; the list costs 50."""
    call = best_sellers_call(1, 562066, range=30)
    assert (call.path, call.bound) == ("/bestsellers", 50.0)
    assert call.params == {"domain": "1", "category": "562066", "range": "30"}
    body = {
        **ENVELOPE,
        "bestSellersList": {
            "domainId": 1,
            "lastUpdate": 7_800_000,
            "categoryId": 562066,
            "asinList": ["B0BF3P5XZS", "B08JQN5VDT"],
        },
    }
    assert call.read(body) == ["B0BF3P5XZS", "B08JQN5VDT"]
    assert call.cost(body) == 50


def test_best_sellers_without_a_list_is_empty_and_free() -> None:
    """No list for the category: an empty result, and Keepa charges nothing."""
    call = best_sellers_call(1, "Beauty")
    assert call.params["category"] == "Beauty"
    assert call.read(ENVELOPE) == []
    assert call.cost(ENVELOPE) == 0


def test_best_sellers_historical_month_and_sublist() -> None:
    """month and year go together instead of range; sublist and variations are flags."""
    call = best_sellers_call(3, 1055398, month=6, year=2024, variations=True)
    assert call.params == {
        "domain": "3",
        "category": "1055398",
        "month": "6",
        "year": "2024",
        "variations": "1",
    }
    assert best_sellers_call(1, 1, sublist=True).params["sublist"] == "1"


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"range": 7}, ValueError, "range"),
        ({"range": True}, TypeError, "range"),
        ({"month": 6}, ValueError, "month"),
        ({"month": 13, "year": 2024}, ValueError, "month"),
        ({"month": 6, "year": 2024, "range": 30}, ValueError, "range"),
        ({"sublist": True, "range": 90}, ValueError, "sublist"),
        ({"variations": 1}, TypeError, "variations"),
    ],
)
def test_best_sellers_bad_parameters(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Each bad parameter is refused by name, before anything is sent."""
    with pytest.raises(error, match=name):
        best_sellers_call(1, 562066, **kwargs)


@pytest.mark.parametrize("category", [-1, "", "a,b", 1.5])
def test_best_sellers_bad_category(category: Any) -> None:
    """A category is a node id or a product group name."""
    with pytest.raises((TypeError, ValueError), match="category"):
        best_sellers_call(1, category)


def test_best_sellers_not_for_brazil() -> None:
    """Keepa serves no best seller list for domain 12."""
    with pytest.raises(ValueError, match="domain"):
        best_sellers_call(12, 1)


# -- categories --------------------------------------------------------------------------------


def test_categories_chunk_ten_ids_a_request_at_one_token_each() -> None:
    """25 ids: three requests of at most 10, each booked at 1."""
    calls = category_calls(1, range(1, 26), parents=True)
    assert [len(c.params["category"].split(",")) for c in calls] == [10, 10, 5]
    assert {c.bound for c in calls} == {1.0}
    assert calls[0].params["parents"] == "1"


def test_categories_read_categories_and_their_parents_into_one_dict() -> None:
    """categories and categoryParents both land in the result, by id."""
    call = category_calls(1, 281052)[0]
    body = {
        **ENVELOPE,
        "categories": {"281052": category_json(281052, "Digital Cameras", 502394, [])},
        "categoryParents": {
            "502394": category_json(502394, "Camera & Photo", 172282, [281052]),
            "172282": category_json(172282, "Electronics", 0, [502394]),
        },
    }
    found = call.read(body)
    assert sorted(found) == [172282, 281052, 502394]
    assert found[281052].parent == 502394
    assert found[172282].parent is None
    assert found[172282].is_root
    assert found[502394].children == (281052,)
    assert found[281052].product_count == 6_417_325
    assert call.cost(body) == 1


def test_category_without_catid_is_a_protocol_error() -> None:
    """A category object needs its id."""
    with pytest.raises(KeepaProtocolError, match="catId"):
        category_calls(1, 1)[0].read({"categories": {"1": {"name": "x"}}})


@pytest.mark.parametrize(
    ("ids", "error"),
    [([], ValueError), ("5", TypeError), ([-1], ValueError), ([[1]], TypeError), (True, TypeError)],
)
def test_categories_bad_ids(ids: Any, error: type[Exception]) -> None:
    """ids are category ids (0: the roots), at least one."""
    with pytest.raises(error, match="ids"):
        category_calls(1, ids)


def test_category_search_needs_keywords_of_three_characters() -> None:
    """Keepa's minimum keyword length is 3: a shorter one is refused by name."""
    call = category_search_call(1, "  science  fiction ")
    assert call.params == {"domain": "1", "type": "category", "term": "science fiction"}
    assert call.bound == 1
    with pytest.raises(ValueError, match="term"):
        category_search_call(1, "sci fi")
    with pytest.raises(ValueError, match="term"):
        category_search_call(1, "   ")
    with pytest.raises(TypeError, match="term"):
        category_search_call(1, b"science")  # type: ignore[arg-type]


def test_category_search_reads_categories() -> None:
    """The search answers a categories map, read like the lookup's."""
    body = {**ENVELOPE, "categories": {"12805": category_json(12805, "Science & Religion", 1, [])}}
    assert category_search_call(1, "science").read(body)[12805].name == "Science & Religion"


# -- product search ----------------------------------------------------------------------------


def test_search_asks_one_page_for_ten_tokens() -> None:
    """A page of up to 10 products, booked at 10."""
    call = search_call(1, "digital camera", page=3)
    assert call.params == {
        "domain": "1",
        "type": "product",
        "term": "digital camera",
        "page": "3",
        "history": "1",
    }
    assert call.bound == 10
    body = {**ENVELOPE, "products": [{"asin": "B000000001", "title": "Camera"}]}
    products = call.read(body)
    assert [p.asin for p in products] == ["B000000001"]
    assert call.cost(body) == 10


def test_search_bound_covers_update_and_rating() -> None:
    """update=0 may cost 1 more a product (10), rating up to 5 more."""
    assert search_call(1, "x", update=0, rating=True).bound == 25
    assert search_call(1, "x", update=48).bound == 10


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"page": 10}, ValueError, "page"),
        ({"stats": 0}, ValueError, "stats"),
        ({"update": -1}, ValueError, "update"),
        ({"history": "yes"}, TypeError, "history"),
    ],
)
def test_search_bad_parameters(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    """Each bad parameter is refused by name."""
    with pytest.raises(error, match=name):
        search_call(1, "camera", **kwargs)


def test_search_product_without_asin_is_a_protocol_error() -> None:
    """A product object needs its ASIN; the error names /search."""
    with pytest.raises(KeepaProtocolError) as info:
        search_call(1, "x").read({"products": [{"title": "no asin"}]})
    assert info.value.endpoint == "/search"


# -- sellers -----------------------------------------------------------------------------------


def seller_json(seller_id: str, name: str, asins: list[str] | None = None) -> dict[str, Any]:
    """A seller object as the Java client's ``Seller`` has it."""
    out: dict[str, Any] = {
        "domainId": 1,
        "sellerId": seller_id,
        "sellerName": name,
        "trackedSince": 2_000_000,
        "hasFBA": True,
        "csv": [[7_800_000, 98], [7_800_000, 1200]],
    }
    if asins is not None:
        out["asinList"] = asins
        out["asinListLastSeen"] = [7_800_000] * len(asins)
    return out


def test_sellers_chunk_a_hundred_ids_booked_one_each() -> None:
    """150 ids: two requests booked at 100 and 50."""
    ids = [f"A{i:012d}" for i in range(150)]
    calls = seller_calls(1, ids)
    assert [c.bound for c in calls] == [100.0, 50.0]
    assert calls[0].params["seller"].count(",") == 99


def test_sellers_read_the_map_and_settle_per_seller_found() -> None:
    """One of two sellers found: one token; the map becomes Seller objects."""
    call = seller_calls(1, ["A2L77EE7U53NWQ", "A1NOTFOUND00"])[0]
    body = {**ENVELOPE, "sellers": {"A2L77EE7U53NWQ": seller_json("A2L77EE7U53NWQ", "Warehouse")}}
    found = call.read(body)
    assert found == {
        "A2L77EE7U53NWQ": Seller("A2L77EE7U53NWQ", "Warehouse", (), found["A2L77EE7U53NWQ"].raw)
    }
    assert found["A2L77EE7U53NWQ"].has_fba is True
    assert call.cost(body) == 1


def test_storefront_costs_nine_more_with_two_asins_or_more() -> None:
    """The storefront's ASINs come in Seller.asins; +9 when Keepa has at least two."""
    call = seller_calls(1, "A2L77EE7U53NWQ", storefront=True)[0]
    assert call.bound == 10
    assert call.params["storefront"] == "1"
    rich = {
        "sellers": {
            "A2L77EE7U53NWQ": seller_json("A2L77EE7U53NWQ", "W", ["B00M0QVG3W", "B00M4KCH2A"])
        }
    }
    poor = {"sellers": {"A2L77EE7U53NWQ": seller_json("A2L77EE7U53NWQ", "W", ["B00M0QVG3W"])}}
    assert call.read(rich)["A2L77EE7U53NWQ"].asins == ("B00M0QVG3W", "B00M4KCH2A")
    assert (call.cost(rich), call.cost(poor)) == (10, 1)
    assert seller_calls(1, "A2L77EE7U53NWQ", storefront=True, update=48)[0].bound == 50


@pytest.mark.parametrize(
    ("ids", "kwargs", "error", "name"),
    [
        (["A2L77EE7U53NWQ", "A1NOTFOUND00"], {"storefront": True}, ValueError, "storefront"),
        (["A2L77EE7U53NWQ"], {"update": 1}, ValueError, "update"),
        (["bad id!"], {}, ValueError, r"ids\[0\]"),
        ([5], {}, TypeError, r"ids\[0\]"),
        ([], {}, ValueError, "ids"),
    ],
)
def test_sellers_bad_parameters(
    ids: Any, kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Each bad parameter is refused by name, before anything is sent."""
    with pytest.raises(error, match=name):
        seller_calls(1, ids, **kwargs)


# -- lightning deals ---------------------------------------------------------------------------


def lightning_json(asin: str, state: str = "AVAILABLE") -> dict[str, Any]:
    """A lightning deal object as the Java client's ``LightningDeal`` has it."""
    return {
        "domainId": 1,
        "lastUpdate": 7_800_000,
        "asin": asin,
        "title": "Kettle",
        "sellerName": "Acme",
        "sellerId": "A2L77EE7U53NWQ",
        "dealId": "d1",
        "dealPrice": 1999 if state == "AVAILABLE" else -1,
        "currentPrice": 2999 if state == "AVAILABLE" else -1,
        "image": "x.jpg",
        "isPrimeEligible": True,
        "isFulfilledByAmazon": True,
        "isMAP": False,
        "rating": 45,
        "totalReviews": 120,
        "dealState": state,
        "startTime": 7_800_000,
        "endTime": 7_800_360,
        "percentClaimed": 40,
        "percentOff": 33,
    }


def test_lightning_deal_of_one_asin_costs_one() -> None:
    """One ASIN: booked and settled at 1."""
    call = lightning_deals_call(1, "b00u26v4vq")
    assert call.params == {"domain": "1", "asin": "B00U26V4VQ"}
    assert call.bound == 1
    body = {**ENVELOPE, "lightningDeals": [lightning_json("B00U26V4VQ")]}
    deal = call.read(body)[0]
    assert deal == LightningDeal("B00U26V4VQ", deal.raw)
    assert (deal.deal_price, deal.current_price, deal.state) == (1999, 2999, "AVAILABLE")
    assert (deal.start_time, deal.end_time, deal.percent_claimed) == (7_800_000, 7_800_360, 40)
    assert call.cost(body) == 1


def test_all_lightning_deals_cost_five_hundred() -> None:
    """The whole list: booked and settled at 500, filtered by state if asked."""
    call = lightning_deals_call(1, state="UPCOMING")
    assert (call.params, call.bound) == ({"domain": "1", "state": "UPCOMING"}, 500.0)
    upcoming = call.read({"lightningDeals": [lightning_json("B00U26V4VQ", "UPCOMING")]})[0]
    assert upcoming.deal_price is None


@pytest.mark.parametrize(
    ("asin", "state", "error", "name"),
    [
        ("B00", None, ValueError, "asin"),
        (None, "OPEN", ValueError, "state"),
        (5, None, TypeError, "asin"),
    ],
)
def test_lightning_deals_bad_parameters(
    asin: Any, state: Any, error: type[Exception], name: str
) -> None:
    """A malformed ASIN or an unknown state is refused by name."""
    with pytest.raises(error, match=name):
        lightning_deals_call(1, asin, state=state)


def test_category_model_reads_keepa_json() -> None:
    """Category.from_raw reads catId, name, parent (0: none) and children."""
    category = Category.from_raw(category_json(172282, "Electronics", 0, [502394, 0]))
    assert (category.id, category.name, category.parent, category.children) == (
        172282,
        "Electronics",
        None,
        (502394,),
    )
