"""Filters: reasons, missing data, peek never rejecting what the full check accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget_keepa import (
    AcceptedDeal,
    Categories,
    Deal,
    Filter,
    FunctionFilter,
    MinDrop,
    OfferCount,
    PriceRange,
    PriceType,
    Product,
    ProfitEstimate,
    ProfitModel,
    SalesRank,
    TitleTerms,
    accepted_deal,
    check_all,
    default_filters,
    enrich_for,
    filters_from_mapping,
    order_filters,
    peek_all,
)


MISSING = object()
WORDS = ["lego", "duplo", "city", "used", "kettle", "Lego", "LEGOLAS", "red-kettle"]


def _put(raw, key, value):
    if value is not MISSING:
        raw[key] = value
    return raw


def maybe(strategy):
    """The value, None, or the key left out."""
    return st.one_of(st.just(MISSING), st.none(), strategy)


prices = st.one_of(st.just(-1), st.integers(0, 20_000))
price_rows = st.lists(prices, min_size=0, max_size=19)
titles = st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)
category_lists = st.lists(st.integers(-1, 6), max_size=4)


@st.composite
def deals(draw):
    raw = {"asin": "B000000001", "lastUpdate": draw(st.integers(0, 10**7))}
    _put(raw, "title", draw(maybe(titles)))
    _put(raw, "current", draw(maybe(price_rows)))
    _put(raw, "deltaPercent", draw(maybe(st.lists(st.lists(st.integers(-100, 100)), max_size=4))))
    _put(raw, "categories", draw(maybe(category_lists)))
    _put(raw, "rootCat", draw(maybe(st.integers(-1, 6))))
    return Deal.from_raw(raw)


@st.composite
def products(draw):
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    raw = {"asin": "B000000001"}
    _put(raw, "title", draw(maybe(titles)))
    _put(raw, "categories", draw(maybe(category_lists)))
    _put(raw, "rootCategory", draw(maybe(st.integers(-1, 6))))
    stats = draw(
        maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "current": st.one_of(price_rows, st.text(max_size=3)),
                    "buyBoxPrice": st.one_of(prices, st.none(), st.text(max_size=2)),
                    "totalOfferCount": st.one_of(st.integers(-1, 50), st.none()),
                },
            )
            | st.lists(st.integers(), max_size=2)
        )
    )
    _put(raw, "stats", stats)
    _put(
        raw,
        "fbaFees",
        draw(maybe(st.fixed_dictionaries({}, optional={"pickAndPackFee": prices}))),
    )
    _put(
        raw,
        "referralFeePercentage",
        draw(maybe(st.one_of(st.floats(0, 40), st.just(-1), st.just("15")))),
    )
    offers = draw(
        maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"condition": st.sampled_from([1, 2]), "offerCSV": st.lists(prices, max_size=6)}
                ),
                max_size=3,
            )
        )
    )
    _put(raw, "offers", offers)
    _put(raw, "liveOffersOrder", draw(maybe(st.lists(st.integers(-1, 4), max_size=4))))
    return Product.from_raw(raw)


bounds = st.one_of(st.none(), st.integers(0, 20_000))


@st.composite
def ranges(draw):
    lo, hi = draw(bounds), draw(bounds)
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return lo, hi


price_types = st.sampled_from([PriceType.AMAZON, PriceType.NEW, PriceType.USED, PriceType.NEW_FBA])
built_in_filters = st.one_of(
    st.builds(lambda r, pt: PriceRange(*r, price_type=pt), ranges(), price_types),
    st.builds(lambda r: SalesRank(min_rank=r[0], max_rank=r[1]), ranges()),
    st.builds(Categories, category_lists.map(lambda c: [x for x in c if x >= 0]), category_lists),
    st.builds(
        lambda p, pt, dr: MinDrop(p, price_type=pt, date_range=dr),
        st.integers(-50, 100),
        price_types,
        st.integers(0, 3),
    ),
    st.builds(
        TitleTerms,
        st.lists(st.sampled_from(["lego", "city", "red kettle"]), max_size=2),
        st.lists(st.sampled_from(["duplo", "used"]), max_size=2),
    ),
    st.builds(lambda r: OfferCount(*r), ranges()),
    st.builds(
        lambda mp, mr, sp, fee, fba, pt: ProfitModel(
            min_profit=mp,
            min_roi=mr,
            sale_price=sp,
            referral_fee_percent=fee,
            fba_fee=fba,
            price_type=pt,
        ),
        st.one_of(st.none(), st.integers(-1000, 5000)),
        st.one_of(st.none(), st.floats(-1, 2)),
        st.sampled_from(["buybox", "new"]),
        st.one_of(st.none(), st.floats(0, 30)),
        st.one_of(st.none(), st.integers(0, 1000)),
        price_types,
    ),
)


@given(built_in_filters, deals(), products())
def test_peek_never_rejects_what_full_check_accepts(flt, deal, product):
    """For every built-in filter, a peek rejection implies a full rejection."""
    if flt.peek and flt.check_deal(deal) is not None:
        assert flt.check(deal, product) is not None


@given(built_in_filters, deals(), products())
def test_filters_never_crash_on_sparse_data(flt, deal, product):
    """Sparse or malformed data gives None or a reason string, never an exception."""
    peeked = flt.check_deal(deal)
    full = flt.check(deal, product)
    assert peeked is None or (isinstance(peeked, str) and peeked.startswith("peek:"))
    assert full is None or (isinstance(full, str) and not full.startswith("peek:"))


@given(deals(), products())
def test_default_filters_peek_subset_of_full(deal, product):
    """The default filters, run together, keep peek ⊆ full too."""
    filters = order_filters(default_filters())
    if peek_all(filters, deal) is not None:
        assert check_all(filters, deal, product) is not None


def test_built_ins_are_filters():
    """Every built-in satisfies the Filter protocol."""
    for flt in [
        PriceRange(),
        SalesRank(10),
        Categories(),
        MinDrop(10),
        TitleTerms(),
        OfferCount(),
        ProfitModel(),
        FunctionFilter(lambda d, p: True, name="x"),
    ]:
        assert isinstance(flt, Filter)


def deal_of(**raw):
    return Deal.from_raw({"asin": "B0", "lastUpdate": 7_000_000, **raw})


def product_of(**raw):
    return Product.from_raw({"asin": "B0", **raw})


def current(**prices):
    row = [-1] * 19
    for name, value in prices.items():
        row[PriceType[name.upper()]] = value
    return row


# -- one filter at a time ---------------------------------------------------------------------


def test_price_range_reasons():
    """PriceRange: peek and full reject out of range, missing data has its reason."""
    flt = PriceRange(1000, 2000)
    assert flt.check_deal(deal_of(current=current(new=500))) == "peek:price"
    assert flt.check(deal_of(current=current(new=500)), None) == "price"
    assert flt.check_deal(deal_of()) is None
    assert flt.check(deal_of(), None) == "missing:price"
    product = product_of(stats={"current": current(new=1500)})
    assert flt.check(deal_of(), product) is None
    assert flt.check(deal_of(current=current(new=1500)), product_of()) is None


def test_price_range_checks_the_product_too():
    """A deal price in range but a product price outside is rejected."""
    flt = PriceRange(max_price=2000)
    product = product_of(stats={"current": current(new=2500)})
    assert flt.check(deal_of(current=current(new=1500)), product) == "price"


def test_price_range_refuses_crossed_bounds():
    """min_price above max_price raises ValueError naming both."""
    with pytest.raises(ValueError, match="min_price"):
        PriceRange(5, 1)


def test_price_type_by_name():
    """price_type accepts a PriceType name or number."""
    assert PriceRange(price_type="amazon").price_type is PriceType.AMAZON
    assert PriceRange(price_type=10).price_type is PriceType.NEW_FBA
    with pytest.raises(ValueError, match="price_type"):
        PriceRange(price_type="cheapest")


def test_sales_rank_reasons():
    """SalesRank: rank above the maximum, and a missing rank."""
    flt = SalesRank(1000)
    assert flt.check_deal(deal_of(current=current(sales=5000))) == "peek:sales_rank"
    assert flt.check(deal_of(current=current(sales=500)), None) is None
    assert flt.check(deal_of(), product_of()) == "missing:sales_rank"
    product = product_of(stats={"current": current(sales=999)})
    assert flt.check(deal_of(), product) is None


def test_categories_include_and_exclude():
    """Categories: a deal needs an included category and no excluded one."""
    flt = Categories(include=[1, 2], exclude=[9])
    assert flt.check_deal(deal_of(rootCat=3, categories=[4])) == "peek:categories"
    assert flt.check_deal(deal_of(rootCat=1, categories=[9])) == "peek:categories"
    assert flt.check(deal_of(rootCat=1, categories=[4]), None) is None
    assert flt.check(deal_of(), None) == "missing:categories"
    assert flt.check(deal_of(), product_of(rootCategory=2)) is None


def test_min_drop_decides_on_the_deal():
    """MinDrop: the peek rejects a small drop and a missing one (deal data only)."""
    flt = MinDrop(20, date_range=1)
    rows = [current(new=50), current(new=10)]
    assert flt.check_deal(deal_of(deltaPercent=rows)) == "peek:drop"
    assert flt.check(deal_of(deltaPercent=rows), None) == "drop"
    assert flt.check_deal(deal_of()) == "peek:missing:drop_percent"
    assert MinDrop(20).check(deal_of(deltaPercent=rows), None) is None


def test_min_drop_reads_a_minus_one_as_a_rise():
    """MinDrop: a deltaPercent of -1 is a 1 % rise (reason drop), not missing data."""
    flt = MinDrop(0)
    deal = deal_of(current=current(new=1010), deltaPercent=[current(new=-1)])
    assert flt.check(deal, None) == "drop"
    assert flt.check_deal(deal) == "peek:drop"
    no_price = deal_of(current=current(), deltaPercent=[current(new=-1)])
    assert flt.check(no_price, None) == "missing:drop_percent"


def test_min_drop_needs_a_percent():
    """MinDrop(None) raises TypeError naming percent."""
    with pytest.raises(TypeError, match="percent"):
        MinDrop(None)


def test_function_filters_hash_by_identity():
    """A FunctionFilter (holding a function and a needs dict) is hashable, equal only to itself."""
    a = FunctionFilter(lambda d, p: True, name="a", needs={"stats": 30})
    b = FunctionFilter(lambda d, p: True, name="a", needs={"stats": 30})
    assert len({a, b, a}) == 2


def test_min_drop_refuses_bad_date_range():
    """A date range outside 0..3 raises ValueError naming it."""
    with pytest.raises(ValueError, match="date_range"):
        MinDrop(10, date_range=4)


def test_title_terms_match_whole_words():
    """TitleTerms matches whole words, ignoring case."""
    flt = TitleTerms(include=["lego"], exclude=["duplo", "red kettle"])
    assert flt.matches("LEGO City")
    assert not flt.matches("Legolas figure")
    assert not flt.matches("Lego Duplo")
    assert not flt.matches("lego RED  kettle")
    assert flt.check_deal(deal_of(title="Legolas")) == "peek:title"
    assert flt.check(deal_of(), product_of(title="lego set")) is None
    assert flt.check(deal_of(), None) == "missing:title"


def test_title_terms_refuse_empty_terms():
    """An empty term raises TypeError."""
    with pytest.raises(TypeError, match="include"):
        TitleTerms(include=[""])


def test_offer_count_needs_the_product():
    """OfferCount has no peek; it reads the product's offer count."""
    flt = OfferCount(min_offers=2, max_offers=10)
    assert not flt.peek
    assert flt.check(deal_of(), None) == "missing:offer_count"
    assert flt.check(deal_of(), product_of(stats={"totalOfferCount": 1})) == "offers"
    assert flt.check(deal_of(), product_of(stats={"totalOfferCount": 5})) is None
    assert flt.check(deal_of(), product_of(liveOffersOrder=[0, 1, 2])) is None


PROFITABLE = {
    "stats": {"buyBoxPrice": 3000, "current": current(new=2800)},
    "referralFeePercentage": 15.0,
    "fbaFees": {"pickAndPackFee": 350},
}


def test_profit_arithmetic():
    """profit = sale - referral - fba - fixed - shipping - cost; roi = profit / cost."""
    model = ProfitModel(fixed_fees=50, shipping=100)
    est = model.estimate(deal_of(current=current(new=1000)), product_of(**PROFITABLE))
    assert est == ProfitEstimate(
        sale_price=3000,
        referral_fee=450,
        fba_fee=350,
        fixed_fees=50,
        shipping=100,
        purchase_cost=1000,
        profit=1050,
        roi=1.05,
    )


def test_profit_evaluate_is_estimate_or_none():
    """evaluate() gives the estimate, or None where estimate() gives a missing reason."""
    model = ProfitModel()
    deal = deal_of(current=current(new=1000))
    assert model.evaluate(deal, product_of(**PROFITABLE)) == model.estimate(
        deal, product_of(**PROFITABLE)
    )
    assert model.evaluate(deal, None) is None


def test_profit_and_roi_minimums():
    """Below min_profit rejects as 'profit', below min_roi as 'roi'."""
    deal, product = deal_of(current=current(new=1000)), product_of(**PROFITABLE)
    assert ProfitModel(min_profit=1201).check(deal, product) == "profit"
    assert ProfitModel(min_profit=1200).check(deal, product) is None
    assert ProfitModel(min_roi=1.3).check(deal, product) == "roi"


def test_profit_sale_price_from_new():
    """sale_price='new' uses the product's new price."""
    model = ProfitModel(sale_price="new")
    est = model.estimate(deal_of(current=current(new=1000)), product_of(**PROFITABLE))
    assert est.sale_price == 2800


@pytest.mark.parametrize(
    ("product", "deal", "reason"),
    [
        (None, {"current": current(new=1000)}, "missing:buybox_price"),
        ({}, {"current": current(new=1000)}, "missing:buybox_price"),
        (
            {"stats": {"buyBoxPrice": 3000}},
            {"current": current(new=1000)},
            "missing:referral_fee_percent",
        ),
        (
            {"stats": {"buyBoxPrice": 3000}, "referralFeePercentage": 15.0},
            {"current": current(new=1000)},
            "missing:fba_fee",
        ),
        (PROFITABLE, {}, "missing:purchase_cost"),
        (PROFITABLE, {"current": current(new=0)}, "missing:purchase_cost"),
    ],
)
def test_profit_missing_reasons(product, deal, reason):
    """Each missing input of the profit model has its own reason."""
    prod = None if product is None else product_of(**product)
    assert ProfitModel(min_profit=0).check(deal_of(**deal), prod) == reason


def test_profit_overrides_and_purchase_function():
    """Fixed fee overrides replace missing product data; purchase_cost may be a function."""
    model = ProfitModel(
        referral_fee_percent=10.0, fba_fee=0, purchase_cost=lambda deal, product: 500
    )
    est = model.estimate(deal_of(), product_of(stats={"buyBoxPrice": 2000}))
    assert (est.referral_fee, est.purchase_cost, est.profit) == (200, 500, 1300)


def test_profit_buybox_from_live_offers():
    """Without stats.buyBoxPrice the lowest live new offer (price plus shipping) is the sale price."""
    product = product_of(
        offers=[
            {"condition": 1, "offerCSV": [1, 2000, 100]},
            {"condition": 1, "offerCSV": [1, 1900, 0]},
        ],
        liveOffersOrder=[0, 1],
        referralFeePercentage=15.0,
        fbaFees={"pickAndPackFee": 300},
    )
    est = ProfitModel().estimate(deal_of(current=current(new=1000)), product)
    assert est.sale_price == 1900


def test_profit_model_validates():
    """Bad options raise, naming them."""
    with pytest.raises(ValueError, match="sale_price"):
        ProfitModel(sale_price="median")
    with pytest.raises(ValueError, match="referral_fee_percent"):
        ProfitModel(referral_fee_percent=150)
    with pytest.raises(ValueError, match="offers"):
        ProfitModel(offers=5)
    with pytest.raises(TypeError, match="purchase_cost"):
        ProfitModel(purchase_cost=5)


def test_function_filter_verdicts():
    """A function's True keeps, False rejects with the name, a string is the reason."""
    flt = FunctionFilter(
        lambda deal, product: True if product is None else "too_heavy", name="weight"
    )
    assert flt.check_deal(deal_of()) is None  # not a peek filter
    assert flt.check(deal_of(), product_of()) == "too_heavy"
    no = FunctionFilter(lambda deal, product: False, name="never", peek=True)
    assert no.check_deal(deal_of()) == "peek:never"
    assert no.check(deal_of(), product_of()) == "never"


def test_function_filter_peek_is_repeated_in_full_check():
    """A peek function filter's full check repeats the deal-alone verdict first."""
    flt = FunctionFilter(lambda deal, product: product is not None, name="x", peek=True)
    assert flt.check_deal(deal_of()) == "peek:x"
    assert flt.check(deal_of(), product_of()) == "x"


def test_function_filter_none_keeps_the_deal():
    """A function returning None keeps the deal, as True does (Filter.check's convention)."""
    flt = FunctionFilter(lambda deal, product: None, name="quiet", peek=True)
    assert flt.check_deal(deal_of()) is None
    assert flt.check(deal_of(), product_of()) is None


@pytest.mark.parametrize("verdict", [0, "", 1.5, ["reason"]])
def test_function_filter_refuses_other_results(verdict):
    """A function returning anything but a bool, None or a non-empty str: TypeError naming it."""
    flt = FunctionFilter(lambda deal, product: verdict, name="sloppy")
    with pytest.raises(TypeError, match="sloppy"):
        flt.check(deal_of(), None)


# -- running, ordering, enrichment, configuration ----------------------------------------------


def test_order_filters_cheapest_first():
    """Peek filters first, then by cost; ties keep their order."""
    user = FunctionFilter(lambda d, p: True, name="user", peek=True, cost=0)
    ordered = order_filters([ProfitModel(), TitleTerms(), SalesRank(5), OfferCount(), user])
    assert [f.name for f in ordered] == ["user", "sales_rank", "title", "offers", "profit"]


def test_peek_all_and_check_all_return_the_first_reason():
    """peek_all/check_all give the first rejection, or None."""
    filters = [SalesRank(10), PriceRange(max_price=5)]
    deal = deal_of(current=current(new=100, sales=50))
    assert peek_all(filters, deal) == "peek:sales_rank"
    assert check_all(filters, deal, None) == "sales_rank"
    assert peek_all([], deal) is None
    assert check_all([], deal, None) is None


def test_enrich_for_merges_needs():
    """enrich_for or-s booleans, takes the largest number, drops buybox with offers."""
    assert enrich_for([]) == {}
    assert enrich_for([MinDrop(10), TitleTerms()]) == {}
    assert enrich_for(default_filters()) == {"stats": 90, "buybox": True}
    assert enrich_for([ProfitModel(offers=40), ProfitModel(offers=20), SalesRank(5)]) == {
        "stats": 90,
        "offers": 40,
    }


def test_enrich_for_refuses_conflicts():
    """Two filters needing different non-numeric values raise ValueError naming the key."""
    a = FunctionFilter(lambda d, p: True, name="a", needs={"update": "x"})
    b = FunctionFilter(lambda d, p: True, name="b", needs={"update": "y"})
    with pytest.raises(ValueError, match="'update'"):
        enrich_for([a, b])


def test_filters_from_mapping_builds_every_filter():
    """Every documented key builds its filter, cheapest first."""
    filters = filters_from_mapping(
        {
            "profit": {"min_profit": 500, "min_roi": 0.2, "shipping": 100, "price_type": "NEW"},
            "offers": {"max": 20},
            "title": {"exclude": ["used"]},
            "min_drop": {"percent": 25, "date_range": 1},
            "categories": {"include": [1]},
            "sales_rank": {"max": 100000},
            "price": {"min": 1000, "price_type": "AMAZON"},
        }
    )
    assert [f.name for f in filters] == [
        "drop",
        "sales_rank",
        "price",
        "categories",
        "title",
        "offers",
        "profit",
    ]
    assert filters_from_mapping({}) == ()


@pytest.mark.parametrize(
    ("mapping", "named"),
    [
        ({"rank": {"max": 5}}, "filters.rank"),
        ({"price": {"maximum": 5}}, "filters.price.maximum"),
        ({"price": 5}, "filters.price"),
        ({"price": {"min": "cheap"}}, "filters.price"),
        ({"profit": {"sale_price": "avg"}}, "filters.profit"),
        ({"min_drop": {}}, "filters.min_drop"),
    ],
)
def test_filters_from_mapping_names_bad_input(mapping, named):
    """Bad input raises ValueError naming the key."""
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        filters_from_mapping(mapping)


def test_accepted_deal_from_filters():
    """accepted_deal carries the judged price, rank, profit and raw JSON."""
    deal = deal_of(title="Kettle", current=current(new=1000, sales=77))
    product = product_of(**PROFITABLE)
    stored = accepted_deal(deal, product, domain=1, filters=[SalesRank(100), ProfitModel()])
    assert isinstance(stored, AcceptedDeal)
    assert (stored.asin, stored.title, stored.price, stored.sales_rank) == (
        "B0",
        "Kettle",
        1000,
        77,
    )
    assert (stored.profit, stored.roi) == (1200, 1.2)
    assert stored.product["asin"] == "B0"
    bare = accepted_deal(deal, None, domain=1)
    assert (bare.profit, bare.product) == (None, None)
