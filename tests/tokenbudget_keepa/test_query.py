"""DealQuery: every field of Keepa's deal request typed, unknown ones passed through, real selections.

The real selections are read from ``../shared/realdata`` (tests/shared_data.py): each is
accepted, and what the client sends is the selection as Keepa received it, modulo the
normalisation the reference page documents (numbers written as strings become numbers,
``null`` fields are left out, ``page`` is the page asked for, ``domainId`` defaults to the
client's domain).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.shared_data import realdata, realdata_names
from tokenbudget_keepa import DealQuery, KeepaClient, PriceType
from tokenbudget_keepa._client.models.query import DEAL_DOMAINS, DEAL_PRICE_TYPES


#: Every field of Keepa's deal request: the official Java client's ``DealRequest`` (all of
#: its public fields) and Keepa's deal documentation (``isHighest``, ``isRisers``).
KEEPA_DEAL_FIELDS = [
    "page",
    "domainId",
    "priceTypes",
    "isLowest",
    "isLowest90",
    "isLowestOffer",
    "dateRange",
    "deltaRange",
    "excludeCategories",
    "includeCategories",
    "deltaPercentRange",
    "currentRange",
    "titleSearch",
    "isBackInStock",
    "isOutOfStock",
    "isRangeEnabled",
    "filterErotic",
    "sortType",
    "salesRankRange",
    "isFilterEnabled",
    "deltaLastRange",
    "hasReviews",
    "isPrimeExclusive",
    "mustHaveAmazonOffer",
    "mustNotHaveAmazonOffer",
    "minRating",
    "warehouseConditions",
    "singleVariation",
    "material",
    "type",
    "manufacturer",
    "brand",
    "productGroup",
    "model",
    "color",
    "size",
    "unitType",
    "scent",
    "itemForm",
    "pattern",
    "style",
    "itemTypeKeyword",
    "targetAudienceKeyword",
    "edition",
    "format",
    "author",
    "binding",
    "languages",
    "brandStoreName",
    "brandStoreUrlName",
    "websiteDisplayGroup",
    "websiteDisplayGroupName",
    "salesRankDisplayGroup",
    "categorySearch",
    "isHighest",
    "isRisers",
]
INT_FIELDS = {"page", "domainId", "dateRange", "sortType", "minRating"}
INT_LIST_FIELDS = {
    "priceTypes",
    "includeCategories",
    "excludeCategories",
    "warehouseConditions",
    "deltaRange",
    "deltaPercentRange",
    "deltaLastRange",
    "salesRankRange",
    "currentRange",
}


def normalised(
    selection: dict[str, Any], *, page: int = 0, domain: int | None = 1
) -> dict[str, Any]:
    """*selection* as the client sends it: the normalisation documented on the reference page."""

    def number(value: Any) -> Any:
        return int(value) if isinstance(value, str) else value

    out: dict[str, Any] = {}
    for key, value in selection.items():
        if value is None:
            continue
        if key in INT_FIELDS:
            out[key] = number(value)
        elif key in INT_LIST_FIELDS:
            out[key] = [number(v) for v in value]
        else:
            out[key] = value
    out["page"] = page
    if domain is not None:
        out.setdefault("domainId", domain)
    return out


def sent_selection(query: DealQuery | dict[str, Any], *, page: int = 0) -> dict[str, Any]:
    """The selection JSON the client puts on the wire for *query* (built, not sent)."""
    with KeepaClient("k" * 64, base_url="http://127.0.0.1:9") as client:
        call = client._deal_call(query, page)
    return json.loads(call.params["selection"])


# -- real selections ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", realdata_names("selection_*.json"))
@pytest.mark.parametrize("page", [0, 3])
def test_every_real_selection_is_sent_as_keepa_received_it(name, page):
    """Each real selection (answered by Keepa, logged, documented) is accepted and sent as is."""
    real = realdata(name)
    assert sent_selection(real, page=page) == normalised(real, page=page)
    query = DealQuery.from_mapping(real)
    assert not query.extra, f"untyped fields of a real selection: {sorted(query.extra)}"


def test_real_selections_are_there():
    """The three real selections of the issue are found (skips without ../shared)."""
    assert len(realdata_names("selection_*.json")) >= 3 or realdata("selection_keepa_query.json")


def test_every_field_of_keepas_deal_request_is_typed():
    """No field of Keepa's deal request lands in 'extra': each has a typed attribute."""
    from tokenbudget_keepa._client.models.query import _CAMEL_TO_FIELD

    assert set(KEEPA_DEAL_FIELDS) <= set(_CAMEL_TO_FIELD)
    for field in KEEPA_DEAL_FIELDS[3:]:  # after page, domainId, priceTypes
        assert field not in DealQuery.from_mapping({"priceTypes": [0], field: None}).extra
        assert (
            field not in DealQuery.from_mapping({"priceTypes": [0], "extra": {field: None}}).extra
        )
    selection = DealQuery(price_types=0, is_highest=True, is_risers=False, brand=["acme"])
    assert selection.to_selection() == {
        "priceTypes": [0],
        "page": 0,
        "isHighest": True,
        "isRisers": False,
        "brand": ["acme"],
    }


def test_category_search_of_the_java_deal_request_is_typed():
    """``categorySearch`` (a str in the official Java ``DealRequest``) is typed, checked, sent."""
    query = DealQuery.from_mapping({"priceTypes": [0], "categorySearch": "toys"})
    assert (query.category_search, query.extra) == ("toys", {})
    assert query.to_selection() == {"priceTypes": [0], "page": 0, "categorySearch": "toys"}
    assert (
        "categorySearch"
        not in DealQuery.from_mapping({"priceTypes": [0], "categorySearch": None}).to_selection()
    )
    with pytest.raises(TypeError, match="category_search"):
        DealQuery.from_mapping({"priceTypes": [0], "categorySearch": 5})


# -- the normalisation -------------------------------------------------------------------------


def test_open_upper_bound_is_accepted_and_sent_as_is():
    """salesRankRange [5000, -1] is Keepa's documented '5000 and above'."""
    q = DealQuery.from_mapping({"priceTypes": [3], "salesRankRange": [5000, -1]})
    assert q.sales_rank_range == (5000, -1)
    assert q.to_selection()["salesRankRange"] == [5000, -1]
    for field in ("deltaRange", "currentRange", "deltaPercentRange", "deltaLastRange"):
        assert DealQuery.from_mapping({"priceTypes": [1], field: [10, -1]}).to_selection()[
            field
        ] == [10, -1]


def test_numbers_written_as_strings_are_numbers():
    """'domainId': '1', 'dateRange': '3', strings inside lists: read as Keepa reads them."""
    q = DealQuery.from_mapping(
        {
            "priceTypes": ["2"],
            "domainId": "1",
            "dateRange": "3",
            "page": " 2 ",
            "currentRange": ["100", 200],
            "includeCategories": ["283155"],
        }
    )
    assert (q.price_types, q.domain_id, q.date_range, q.page) == ((2,), 1, 3, 2)
    assert q.current_range == (100, 200)
    assert q.include_categories == (283155,)


def test_null_means_absent_everywhere():
    """A None/null field, typed or not, is left out of what is sent."""
    q = DealQuery.from_mapping(
        {"priceTypes": [0], "deltaLastRange": None, "titleSearch": None, "futureField": None}
    )
    assert q.to_selection() == {"priceTypes": [0], "page": 0}
    assert DealQuery(price_types=0, extra={"x": None}).to_selection() == {
        "priceTypes": [0],
        "page": 0,
    }


def test_unknown_fields_pass_through_unchanged_logged_once(caplog):
    """A field Keepa adds tomorrow is sent as given (any JSON value), logged once at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="tokenbudget_keepa")
    value = {"nested": [1, "2", 3.5, None, True]}
    for _ in range(3):
        q = DealQuery.from_mapping({"priceTypes": [1], "zzFieldOfTomorrow": value, "zzN": "4"})
        assert q.to_selection()["zzFieldOfTomorrow"] == value
        assert q.to_selection()["zzN"] == "4"  # unchanged: not a typed field
    records = [r for r in caplog.records if "zzFieldOfTomorrow" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG


@pytest.mark.parametrize("price_type", sorted(DEAL_PRICE_TYPES))
def test_deal_price_types_are_accepted(price_type):
    """0-3, 5-10, 18-22, 32, 33 (Keepa's deal docs) and 23-27 (Java isDealRelevant)."""
    assert DealQuery(price_types=price_type).price_types == (price_type,)


def test_deal_price_types_are_keepas():
    """The documented deal price types are all accepted; the non-deal ones refused."""
    assert {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 18, 19, 20, 21, 22, 32, 33} <= DEAL_PRICE_TYPES
    for refused in (4, 11, 12, 13, 14, 15, 16, 17, 28, 29, 30, 31, 34, 35, 36, -1):
        with pytest.raises(ValueError, match=rf"got {refused}\b"):
            DealQuery(price_types=refused)


def test_deal_domains_are_keepas():
    """Deals exist for domains 1-6 and 8-11: 7 and 12 are refused."""
    assert frozenset({1, 2, 3, 4, 5, 6, 8, 9, 10, 11}) == DEAL_DOMAINS
    for domain in sorted(DEAL_DOMAINS):
        assert DealQuery(price_types=1, domain_id=domain).domain_id == domain
    for domain in (0, 7, 12):
        with pytest.raises(ValueError, match="domain_id"):
            DealQuery(price_types=1, domain_id=domain)


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
    """Snake-case names work too; a typed field given in 'extra' is moved to its field."""
    q = DealQuery.from_mapping(
        {"price_types": PriceType.AMAZON, "page": 2, "extra": {"mustHaveAmazonOffer": True}}
    )
    assert q.must_have_amazon_offer is True
    assert not q.extra
    assert q.to_selection() == {"priceTypes": [0], "page": 2, "mustHaveAmazonOffer": True}
    assert q.with_page(3).page == 3
    direct = DealQuery(price_types=0, page=2, extra={"mustHaveAmazonOffer": True})
    assert direct == q


def test_deal_query_extra_keeps_json_types():
    """'extra' takes any JSON value, sent as such."""
    extra = {"minOffers": 4, "zzFlag": False, "zzNames": ("acme",), "conds": [1, 2]}
    q = DealQuery(price_types=PriceType.NEW, extra=extra)
    selection = q.to_selection()
    assert selection["minOffers"] == 4
    assert selection["zzFlag"] is False
    assert selection["zzNames"] == ["acme"]
    assert selection["conds"] == [1, 2]


def test_repr_shows_the_fields_that_are_set():
    """The repr names the set fields only (a query has over fifty)."""
    q = DealQuery(price_types=1, sort_type=1, extra={"zz": 1})
    assert repr(q) == "DealQuery(price_types=(1,), sort_type=1, page=0, extra={'zz': 1})"


@pytest.mark.parametrize(
    ("selection", "error", "named"),
    [
        ({"priceTypes": ["x"]}, TypeError, "price_types"),
        ({"priceTypes": ["1.5"]}, TypeError, "price_types"),
        ({"priceTypes": [1, 2]}, ValueError, "price_types"),
        ({"priceTypes": []}, ValueError, "price_types"),
        ({"priceTypes": [99]}, ValueError, "price_types"),
        ({}, ValueError, "priceTypes"),
        ({"priceTypes": None}, ValueError, "priceTypes"),
        ({"priceTypes": [1], "page": "four"}, TypeError, "page"),
        ({"priceTypes": [1], "page": -1}, ValueError, "page"),
        ({"priceTypes": [1], "dateRange": 5}, ValueError, "date_range"),
        ({"priceTypes": [1], "dateRange": True}, TypeError, "date_range"),
        ({"priceTypes": [1], "sortType": 0}, ValueError, "sort_type"),
        ({"priceTypes": [1], "salesRankRange": [5, 1]}, ValueError, "sales_rank_range"),
        ({"priceTypes": [1], "salesRankRange": [5, -2]}, ValueError, "sales_rank_range"),
        ({"priceTypes": [1], "salesRankRange": [1, 2**31]}, ValueError, r"sales_rank_range\[1\]"),
        ({"priceTypes": [1], "salesRankRange": ["a", 5]}, TypeError, "sales_rank_range"),
        ({"priceTypes": [1], "salesRankRange": [1, 2, 3]}, TypeError, "sales_rank_range"),
        ({"priceTypes": [1], "isLowest": 1}, TypeError, "is_lowest"),
        ({"priceTypes": [1], "isLowest90": "true"}, TypeError, "is_lowest90"),
        ({"priceTypes": [1], "domainId": 7}, ValueError, "domain_id"),
        ({"priceTypes": [1], "minRating": 51}, ValueError, "min_rating"),
        ({"priceTypes": [1], "includeCategories": [1.5]}, TypeError, "include_categories"),
        ({"priceTypes": [1], "warehouseConditions": [1, 300]}, ValueError, "warehouse"),
        ({"priceTypes": [1], "brand": "acme"}, TypeError, "brand"),
        ({"priceTypes": [1], "brand": ["acme", 7]}, TypeError, r"brand\[1\]"),
        ({"priceTypes": [1], "titleSearch": 5}, TypeError, "title_search"),
        ({"priceTypes": [1], "isLowest": True, "is_lowest": False}, ValueError, "twice"),
        ({"priceTypes": [1], "extra": {"isLowest": True}, "isLowest": True}, ValueError, "twice"),
        ({"priceTypes": [1], "extra": {"x": float("nan")}}, TypeError, "'x'"),
        ({"priceTypes": [1], "extra": {"x": {1: 2}}}, TypeError, "'x'"),
        ({"priceTypes": [1], "extra": {"x": object()}}, TypeError, "'x'"),
        ({"priceTypes": [1], "extra": [1]}, TypeError, "extra"),
    ],
)
def test_malformed_selection_is_refused_naming_the_field(selection, error, named):
    """A malformed selection raises before sending, naming the field."""
    with pytest.raises(error, match=named):
        DealQuery.from_mapping(selection)


# -- properties --------------------------------------------------------------------------------

ints = st.integers(0, 2**31 - 1)
number_or_text = st.one_of(ints, ints.map(str))
typed_values = {
    "priceTypes": st.sampled_from(sorted(DEAL_PRICE_TYPES)).map(lambda p: [p]),
    "domainId": st.sampled_from(sorted(DEAL_DOMAINS)) | st.sampled_from(["1", "3"]),
    "dateRange": st.integers(0, 4) | st.sampled_from(["0", "3"]),
    "sortType": st.sampled_from([1, 2, 3, 4, -2, -3, -4, "4"]),
    "salesRankRange": st.tuples(ints, ints).map(sorted) | ints.map(lambda lo: [lo, -1]),
    "deltaLastRange": st.none() | st.tuples(number_or_text, st.just(-1)).map(list),
    "includeCategories": st.lists(number_or_text, max_size=3),
    "minRating": st.integers(-1, 50),
    "isLowest90": st.booleans() | st.none(),
    "mustNotHaveAmazonOffer": st.booleans(),
    "warehouseConditions": st.lists(st.integers(1, 5), max_size=4),
    "titleSearch": st.text(max_size=5) | st.none(),
    "brand": st.lists(st.text(max_size=4), max_size=2),
    "page": st.integers(0, 50),
}
selections = st.fixed_dictionaries(
    {"priceTypes": typed_values["priceTypes"]},
    optional={k: v for k, v in typed_values.items() if k != "priceTypes"}
    | {
        "zzUnknown": st.integers() | st.text(max_size=3) | st.lists(st.booleans(), max_size=2),
        "zzNull": st.none(),
    },
)


@given(selections)
def test_drawn_selections_are_sent_normalised_and_round_trip(selection):
    """Any valid selection is sent as normalised; reading back what is sent gives the same query."""
    query = DealQuery.from_mapping(selection)
    assert query.to_selection() == normalised(selection, page=query.page, domain=None)
    assert DealQuery.from_mapping(query.to_selection()) == query


@pytest.mark.parametrize("name", realdata_names("selection_*.json"))
def test_every_real_selection_drives_the_smart_ingestor(name):
    """The ingestor takes each real selection as it is: its domain is the client's, its key
    does not depend on how the numbers were written, and it owns page and sortType."""
    from tokenbudget_keepa import MemoryDealSink, MemoryWatermarkStore, SmartIngestor
    from tokenbudget_keepa._ingestor.ingestor import default_key

    real = realdata(name)
    with KeepaClient("k" * 64, base_url="http://127.0.0.1:9") as client:
        ingestor = SmartIngestor(
            client, real, store=MemoryWatermarkStore(), sink=MemoryDealSink(), filters=()
        )
    written = DealQuery.from_mapping(normalised(real, domain=None))
    assert ingestor.key == default_key(written, 1)
    assert ingestor._query.sort_type == 1
    assert ingestor._query.page == 0
