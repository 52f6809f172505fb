"""The emulator's rest of the API over loopback HTTP: Keepa's costs, answer shapes and errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tokenbudget_keepa.testing import KeepaEmulator


KEY = "test-key"

#: These tests send the key in plain httpx URLs of their own.
pytestmark = pytest.mark.usefixtures("emulator_key_out_of_httpx_logs")


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module."""
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def keepa(make_emulator: Callable[..., KeepaEmulator]) -> KeepaEmulator:
    """An emulator with a full account of 300 tokens."""
    return make_emulator()


def get(http: httpx.Client, keepa: KeepaEmulator, path: str, **params: Any) -> httpx.Response:
    params.setdefault("key", KEY)
    params.setdefault("domain", 1)
    return http.get(f"{keepa.url}/{path}", params=params)


def spent(keepa: KeepaEmulator, before: int) -> int:
    return keepa.stats().tokens_consumed - before


def test_finder_answers_asins_and_total_and_costs_ten_plus_one_per_hundred(
    http: httpx.Client, keepa: KeepaEmulator
) -> None:
    """A page of 150 ASINs costs 12 (10 + 2 started hundreds), the envelope says so."""
    selection = {"current_SALES_gte": 1, "perPage": 150}
    answer = get(http, keepa, "query", selection=json.dumps(selection)).json()
    assert len(answer["asinList"]) == 150
    assert answer["totalResults"] >= 150
    assert answer["tokensConsumed"] == 12
    second = get(http, keepa, "query", selection=json.dumps({**selection, "page": 1})).json()
    assert not set(second["asinList"]) & set(answer["asinList"])


def test_finder_filters_and_sorts_by_sales_rank(http: httpx.Client, keepa: KeepaEmulator) -> None:
    """rootCategory and a sales rank range filter; the list runs best rank first."""
    selection = {"rootCategory": [172282], "current_SALES_lte": 100_000}
    answer = get(http, keepa, "query", selection=json.dumps(selection)).json()
    ranks = [keepa._catalog.traits(a).sales_rank for a in answer["asinList"]]
    assert ranks == sorted(ranks)
    assert all(r is not None and r <= 100_000 for r in ranks)
    assert all(keepa._catalog.traits(a).root_category == 172282 for a in answer["asinList"])


def test_finder_takes_a_post_body(http: httpx.Client, keepa: KeepaEmulator) -> None:
    """As Keepa documents, the selection may be the POST body."""
    answer = http.post(
        f"{keepa.url}/query",
        params={"key": KEY, "domain": 1},
        content=json.dumps({"brand": ["acme"]}),
    )
    assert answer.status_code == 200
    assert answer.json()["tokensConsumed"] >= 10


@pytest.mark.parametrize(
    "selection",
    ['{"perPage": 10}', '{"page": 200}', "not json", "[1]"],
)
def test_finder_bad_selection_is_400_and_free(
    http: httpx.Client, keepa: KeepaEmulator, selection: str
) -> None:
    """Paging past Keepa's limits or a broken selection: HTTP 400 with the envelope, no charge."""
    before = keepa.stats().tokens_consumed
    answer = get(http, keepa, "query", selection=selection)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"]
    assert spent(keepa, before) == 0


def test_best_sellers_cost_fifty_and_list_best_first(
    http: httpx.Client, keepa: KeepaEmulator
) -> None:
    """A root category's list, best rank first, 50 tokens; an unknown category: empty, free."""
    answer = get(http, keepa, "bestsellers", category=1055398, range=30).json()
    asins = answer["bestSellersList"]["asinList"]
    ranks = [keepa._catalog.traits(a).sales_rank for a in asins]
    assert asins
    assert ranks == sorted(ranks)
    assert answer["tokensConsumed"] == 50
    by_group = get(http, keepa, "bestsellers", category="Books").json()
    assert by_group["bestSellersList"]["categoryId"] == 283155
    none = get(http, keepa, "bestsellers", category=999).json()
    assert "bestSellersList" not in none
    assert none["tokensConsumed"] == 0
    assert get(http, keepa, "bestsellers", category=1, range=7).status_code == 400
    assert get(http, keepa, "bestsellers", category=1, domain=12).status_code == 400


def test_categories_lookup_with_parents_costs_one(http: httpx.Client, keepa: KeepaEmulator) -> None:
    """A sub-category and its root (with parents=1), one token; 0 lists the roots."""
    answer = get(http, keepa, "category", category="1722821", parents=1).json()
    assert answer["categories"]["1722821"]["parent"] == 172282
    assert answer["categoryParents"]["172282"]["name"] == "Electronics"
    assert answer["tokensConsumed"] == 1
    roots = get(http, keepa, "category", category=0).json()["categories"]
    assert all(c["parent"] == 0 for c in roots.values())
    too_many = ",".join(str(i) for i in range(11))
    assert get(http, keepa, "category", category=too_many).status_code == 400


def test_category_search_and_product_search(http: httpx.Client, keepa: KeepaEmulator) -> None:
    """Category search costs 1; a product search page of up to 10 products costs 10."""
    found = get(http, keepa, "search", type="category", term="home kitchen").json()
    assert next(iter(found["categories"].values()))["name"].startswith("Home & Kitchen")
    assert found["tokensConsumed"] == 1
    assert get(http, keepa, "search", type="category", term="tv").status_code == 400
    page = get(http, keepa, "search", type="product", term="lamp", page=0).json()
    assert 0 < len(page["products"]) <= 10
    assert all("lamp" in p["title"].lower() for p in page["products"])
    assert page["tokensConsumed"] == 10
    assert get(http, keepa, "search", type="product", term="lamp", page=10).status_code == 400


def test_sellers_cost_one_per_seller_found_and_nine_for_a_storefront(
    http: httpx.Client, keepa: KeepaEmulator
) -> None:
    """Two ids, one unknown: one token; a storefront of two ASINs or more: 9 more."""
    answer = get(http, keepa, "seller", seller="A2L77EE7U53NWQ,UNKNOWN0001").json()
    assert list(answer["sellers"]) == ["A2L77EE7U53NWQ"]
    assert answer["tokensConsumed"] == 1
    store = get(http, keepa, "seller", seller="A2L77EE7U53NWQ", storefront=1).json()
    listed = store["sellers"]["A2L77EE7U53NWQ"]["asinList"]
    assert store["tokensConsumed"] == (10 if len(listed) >= 2 else 1)
    assert get(http, keepa, "seller", seller="A1,A2", storefront=1).status_code == 400
    too_many = ",".join(f"A{i:012d}" for i in range(101))
    assert get(http, keepa, "seller", seller=too_many).status_code == 400


def test_lightning_deals_cost_one_or_five_hundred(
    http: httpx.Client, make_emulator: Callable[..., KeepaEmulator]
) -> None:
    """The whole list costs 500 (the account goes into debt, as Keepa runs it); one ASIN 1."""
    keepa = make_emulator(refill_per_min=5)  # 300 at most: the list leaves a debt
    everything = get(http, keepa, "lightningdeal").json()
    assert everything["tokensConsumed"] == 500
    assert everything["tokensLeft"] < 0
    deal = everything["lightningDeals"][0]
    assert {"asin", "dealState", "startTime", "endTime", "dealPrice"} <= set(deal)
    refused = get(http, keepa, "lightningdeal", asin=deal["asin"])
    assert refused.status_code == 429  # in debt: refused, free


def test_one_lightning_deal(http: httpx.Client, keepa: KeepaEmulator) -> None:
    """One ASIN's deal costs 1; a malformed ASIN or state is a 400."""
    asin = keepa._catalog.asin(0)
    answer = get(http, keepa, "lightningdeal", asin=asin).json()
    assert [d["asin"] for d in answer["lightningDeals"]] == [asin]
    assert answer["tokensConsumed"] == 1
    assert get(http, keepa, "lightningdeal", asin="short").status_code == 400
    assert get(http, keepa, "lightningdeal", state="OPEN").status_code == 400


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("query", {"selection": "{}"}),
        ("bestsellers", {"category": 172282}),
        ("category", {"category": 172282}),
        ("search", {"type": "product", "term": "lamp"}),
        ("seller", {"seller": "A2L77EE7U53NWQ"}),
        ("lightningdeal", {"asin": "B000000000"}),
    ],
)
def test_every_endpoint_refuses_at_zero_and_wants_the_key(
    http: httpx.Client, keepa: KeepaEmulator, path: str, params: dict[str, Any]
) -> None:
    """A balance of zero: 429 with the envelope, free; a wrong key: 402."""
    keepa.set_tokens(0)
    refused = get(http, keepa, path, **params)
    assert refused.status_code == 429
    assert refused.json()["tokensLeft"] == 0
    assert get(http, keepa, path, key="wrong", **params).status_code == 402
    assert keepa.stats().tokens_consumed == 0
