"""FinderQuery: every documented product finder field typed, unknown ones passed through."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget_keepa import FinderQuery
from tokenbudget_keepa._client.models.finder import FINDER_PRICE_TYPES, finder_field_kind


def test_keepa_documentation_example_round_trips() -> None:
    """The example query of Keepa's documentation is sent as Keepa writes it (array fields as lists)."""
    query = FinderQuery(
        {
            "rootCategory": 3167641,
            "current_AMAZON_lte": 5000,
            "current_AMAZON_gte": 1000,
            "perPage": 100,
            "page": 0,
        }
    )
    assert query.to_selection() == {
        "rootCategory": [3167641],
        "current_AMAZON_lte": 5000,
        "current_AMAZON_gte": 1000,
        "page": 0,
        "perPage": 100,
    }
    assert (query.page, query.per_page, query.page_size) == (0, 100, 100)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("current_NEW_gte", "int"),
        ("avg365_BUY_BOX_USED_SHIPPING_lte", "int"),
        ("deltaPercent90_monthlySold_gte", "int"),
        ("srAvg211_lte", "int"),
        ("isLowest90_WAREHOUSE", "flag"),
        ("backInStock_COUNT_REVIEWS", "flag"),
        ("buyBoxEligibleOfferCountsUsedFBM_gte", "int"),
        ("unitValue_lte", "number"),
        ("categories_include", "ints"),
        ("sellerIdsLowestFBA", "texts"),
        ("scent", "text_or_texts"),
        ("title", "text"),
        ("sort", "sort"),
        ("minMatch", "min_match"),
        ("current_NEW", None),
    ],
)
def test_field_kinds(name: str, kind: str | None) -> None:
    """Every family of Keepa's fields is typed (a stem without _lte/_gte is not a field)."""
    assert finder_field_kind(name) == kind


def test_every_price_type_has_its_family_fields() -> None:
    """29 price types x (current, deltaLast, lastPriceChange, 6 avg, 4 delta, 4 deltaPercent)."""
    assert len(FINDER_PRICE_TYPES) == 29
    for ptype in FINDER_PRICE_TYPES:
        for stem in ("current", "deltaLast", "avg1", "avg365", "delta7", "deltaPercent30"):
            assert finder_field_kind(f"{stem}_{ptype}_gte") == "int"
        assert finder_field_kind(f"isLowest_{ptype}") == "flag"


def test_numbers_as_strings_and_none_as_absent() -> None:
    """Keepa reads "5000" as 5000; null leaves the field out."""
    query = FinderQuery(current_SALES_lte="5000", brand=None, productType=["0", 5])
    assert query.to_selection() == {"current_SALES_lte": 5000, "productType": [0, 5], "page": 0}


def test_unknown_fields_pass_through_unchanged() -> None:
    """A field Keepa adds tomorrow is sent as given."""
    query = FinderQuery({"brand": ["Canon"], "newField_gte": 3, "nested": {"a": [1, 2]}})
    assert query.extra == {"newField_gte": 3, "nested": {"a": [1, 2]}}
    assert query.to_selection()["nested"] == {"a": [1, 2]}


def test_sort_accepts_pairs_and_one_flat_pair() -> None:
    """sort is up to three [field, direction] pairs; one pair may be written flat."""
    assert FinderQuery(brand=["x"], sort=["current_SALES", "asc"]).fields["sort"] == [
        ["current_SALES", "asc"]
    ]
    with pytest.raises(ValueError, match=r"sort\[0\]\[1\]"):
        FinderQuery(brand=["x"], sort=[["current_SALES", "up"]])
    with pytest.raises(ValueError, match=r"sort\[0\]\[0\]"):
        FinderQuery(brand=["x"], sort=[["current_SALES_lte", "asc"]])
    with pytest.raises(ValueError, match="at most 3"):
        FinderQuery(brand=["x"], sort=[["a", "asc"]] * 4)


@pytest.mark.parametrize(
    ("fields", "error", "name"),
    [
        ({"current_NEW_gte": 1.5}, TypeError, "current_NEW_gte"),
        ({"current_NEW_gte": 2**31}, ValueError, "current_NEW_gte"),
        ({"flipability30_gte": 200}, ValueError, "flipability30_gte"),
        ({"isLowest_NEW": 1}, TypeError, "isLowest_NEW"),
        ({"title": ["a"]}, TypeError, "title"),
        ({"brand": ["a", 3]}, TypeError, r"brand\[1\]"),
        ({"productType": [9]}, ValueError, r"productType\[0\]"),
        ({"unitValue_gte": float("nan")}, ValueError, "unitValue_gte"),
        ({"minMatch": {"brand": -1}}, ValueError, "minMatch"),
        ({"current_NEW_gte": 5000, "current_NEW_lte": 1000}, ValueError, "current_NEW_gte"),
        ({"perPage": 10}, ValueError, "perPage"),
        ({"page": 200, "perPage": 50}, ValueError, "10000"),
        ({}, ValueError, "at least one filter"),
        ({"extra_thing": object()}, TypeError, "extra_thing"),
    ],
)
def test_bad_fields_are_refused_by_name(
    fields: dict[str, Any], error: type[Exception], name: str
) -> None:
    """A field of the wrong type or range is a typed error naming the field."""
    with pytest.raises(error, match=name):
        FinderQuery(fields)


def test_per_page_alias_and_twice_given() -> None:
    """per_page is perPage; a field given twice is refused."""
    assert FinderQuery(brand=["x"], per_page=200).per_page == 200
    with pytest.raises(ValueError, match="twice"):
        FinderQuery({"perPage": 100}, per_page=200)


def test_with_page_keeps_the_fields_and_checks_the_paging() -> None:
    """with_page changes page (and per_page) only, within Keepa's 10,000 results."""
    query = FinderQuery(brand=["x"], perPage=1000)
    assert query.with_page(9).to_selection() == {
        "brand": ["x"],
        "page": 9,
        "perPage": 1000,
    }
    with pytest.raises(ValueError, match="10000"):
        query.with_page(10)
    assert query.with_page(0, 10_000).page_size == 10_000


def test_from_mapping_returns_a_query_as_is() -> None:
    """A FinderQuery passes through; anything but a mapping is a TypeError."""
    query = FinderQuery(brand=["x"])
    assert FinderQuery.from_mapping(query) is query
    with pytest.raises(TypeError, match="mapping"):
        FinderQuery.from_mapping(["brand"])  # type: ignore[arg-type]


@given(
    low=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    high=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    ptype=st.sampled_from(FINDER_PRICE_TYPES),
)
def test_ranges_accepted_exactly_when_ordered(low: int, high: int, ptype: str) -> None:
    """A _gte/_lte pair is accepted exactly when gte <= lte, and sent as given."""
    fields = {f"current_{ptype}_gte": low, f"current_{ptype}_lte": high}
    if low <= high:
        assert FinderQuery(fields).fields == fields
    else:
        with pytest.raises(ValueError, match=f"current_{ptype}_gte"):
            FinderQuery(fields)


def test_repr_names_the_fields_set() -> None:
    """The repr shows the fields set, the extra ones and the paging."""
    assert repr(FinderQuery(brand=["x"], other=1, perPage=100)) == (
        "FinderQuery(brand=['x'], extra={'other': 1}, page=0, per_page=100)"
    )
    assert list(FinderQuery(brand=["x"], other=1)) == ["brand", "other"]


def test_a_selection_that_is_not_a_mapping_is_a_type_error() -> None:
    """A list of pairs is not a selection: a TypeError saying what is wanted."""
    with pytest.raises(TypeError, match="mapping"):
        FinderQuery([("brand", ["x"])])  # type: ignore[arg-type]


@given(
    st.dictionaries(
        st.sampled_from(
            ["current_SALES_lte", "avg90_NEW_gte", "monthlySold_gte", "packageWeight_lte"]
        ),
        st.integers(min_value=0, max_value=2**31 - 1),
        min_size=1,
    ),
    st.integers(min_value=0, max_value=9),
    st.sampled_from([None, 50, 100, 1000]),
)
def test_to_selection_round_trips(fields: dict[str, int], page: int, per_page: int | None) -> None:
    """What a query sends reads back as the same query (Keepa's JSON is its own input)."""
    query = FinderQuery(fields, page=page, perPage=per_page)
    assert FinderQuery(query.to_selection()) == query
