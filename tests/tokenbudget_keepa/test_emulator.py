"""The Keepa emulator over real loopback HTTP: accounting, envelopes, data, faults, counters."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections import Counter

import httpx
import pytest

from tokenbudget import ManualClock
from tokenbudget_keepa import datetime_to_keepa_minutes
from tokenbudget_keepa.testing import DEFAULT_START, EmulatorStats, Fault, KeepaEmulator


KEY = "test-key"
ENVELOPE_TYPES = {
    "timestamp": int,
    "tokensLeft": int,
    "refillIn": int,
    "refillRate": int,
    "tokenFlowReduction": float,
    "tokensConsumed": int,
    "processingTimeInMs": int,
}
START_MINUTE = datetime_to_keepa_minutes(DEFAULT_START)


#: These tests send the key in plain httpx URLs of their own.
pytestmark = pytest.mark.usefixtures("emulator_key_out_of_httpx_logs")


@pytest.fixture(scope="module")
def http():
    """One client for the module (creating one costs tens of milliseconds)."""
    with httpx.Client(timeout=10) as client:
        yield client


def get(http, emulator, endpoint, **params):
    params.setdefault("key", KEY)
    return http.get(f"{emulator.url}/{endpoint}", params=params)


def product(http, emulator, asins, **params):
    return get(http, emulator, "product", asin=",".join(asins), domain=1, **params)


def deal(http, emulator, selection=None, **params):
    chosen = {"priceTypes": [1]} if selection is None else selection
    return get(http, emulator, "deal", selection=json.dumps(chosen), **params)


def all_deals(http, emulator, selection):
    """Every page of a deal query, concatenated."""
    found = []
    page = 0
    while True:
        body = deal(http, emulator, {**selection, "page": page}).json()
        found += body["deals"]["dr"]
        if len(body["deals"]["dr"]) < 150:
            return found
        page += 1


def assert_envelope(body):
    for name, kind in ENVELOPE_TYPES.items():
        assert isinstance(body[name], kind), (name, body.get(name))


def asin_where(emulator, predicate, *, skip=0):
    """The first catalog ASIN whose traits satisfy *predicate*."""
    for asin in emulator.catalog_asins(500, first=skip):
        if predicate(emulator._catalog.traits(asin)):
            return asin
    raise AssertionError("no such ASIN in the first 500")


# -- lifecycle ------------------------------------------------------------------------


def test_starts_and_stops_fast_with_an_open_connection(manual_clock, http):
    """Start, a keep-alive request, and close all take well under a second."""
    began = time.perf_counter()
    emulator = KeepaEmulator(clock=manual_clock).start()
    assert get(http, emulator, "token").status_code == 200
    emulator.close()
    assert time.perf_counter() - began < 0.5


def test_context_manager_serves_on_loopback(manual_clock):
    """As a context manager it serves on 127.0.0.1 and stops at exit."""
    with KeepaEmulator(clock=manual_clock) as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.url


def test_close_cuts_slow_faults_short(manual_clock):
    """close() stops in well under a second while slow faults are being answered."""
    emulator = KeepaEmulator(clock=manual_clock).start()
    emulator.inject(Fault.slow(10), Fault.slow(10), Fault.slow(10), endpoint="token")
    outcomes: list[object] = []

    def ask() -> None:
        with httpx.Client(timeout=20) as client:
            try:
                outcomes.append(get(client, emulator, "token").status_code)
            except httpx.HTTPError as exc:
                outcomes.append(type(exc))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: emulator.stats().count("token") == 3)
    began = time.perf_counter()
    emulator.close()
    assert time.perf_counter() - began < 0.5
    for thread in threads:
        thread.join(timeout=5)
    assert len(outcomes) == 3


def test_close_is_idempotent(emulator):
    """Closing twice is harmless."""
    emulator.close()
    emulator.close()


def test_repr_never_shows_the_key(manual_clock):
    """The repr names the URL and rate, never the key."""
    with KeepaEmulator(api_key="s3cret-key", clock=manual_clock) as emulator:
        assert "s3cret" not in repr(emulator)
        assert "refill_per_min=20" in repr(emulator)


# -- time -----------------------------------------------------------------------------


def test_timestamp_starts_at_start_on_a_manual_clock(emulator, http, manual_clock):
    """Clock time 0 maps to the start date; the timestamp follows the clock."""
    assert get(http, emulator, "token").json()["timestamp"] == 1_767_225_600_000
    manual_clock.advance(90.5)
    assert get(http, emulator, "token").json()["timestamp"] == 1_767_225_690_500
    assert emulator.now_minute() == START_MINUTE + 1


def test_start_is_configurable(make_emulator, http):
    """A custom start date moves the timestamp and Keepa minutes."""
    start = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
    emulator = make_emulator(start=start)
    assert get(http, emulator, "token").json()["timestamp"] == int(start.timestamp() * 1000)
    assert emulator.now() == start


def test_real_clock_by_default(http):
    """Without a clock the emulator runs on real time from the start date."""
    with KeepaEmulator() as emulator:
        body = get(http, emulator, "token").json()
    assert 0 <= body["timestamp"] - 1_767_225_600_000 < 5_000


# -- accounting -----------------------------------------------------------------------


def test_full_account_by_default(emulator, http):
    """The account starts full: 60 minutes of refill."""
    body = get(http, emulator, "token").json()
    assert (body["tokensLeft"], body["refillRate"], body["refillIn"]) == (300, 5, 60_000)


def test_refill_comes_in_steps(make_emulator, http, manual_clock):
    """Nothing is added between steps; a whole minute's refill at each step."""
    emulator = make_emulator(tokens=0)
    manual_clock.advance(59.999)
    assert get(http, emulator, "token").json()["tokensLeft"] == 0
    manual_clock.advance(0.001)
    assert get(http, emulator, "token").json()["tokensLeft"] == 5
    manual_clock.advance(120)
    assert get(http, emulator, "token").json()["tokensLeft"] == 15


def test_refill_in_counts_down_to_the_step(emulator, http, manual_clock):
    """refillIn is the milliseconds to the next step."""
    manual_clock.advance(15.25)
    assert get(http, emulator, "token").json()["refillIn"] == 44_750
    manual_clock.advance(44.75)
    assert get(http, emulator, "token").json()["refillIn"] == 60_000


def test_refill_in_reads_60001_after_a_step_at_a_fractional_millisecond(
    make_emulator, http, manual_clock
):
    """Steps at a fractional ms: right after one, refillIn reads 60001, never too soon."""
    emulator = make_emulator(tokens=0, first_refill_in=59.9995)
    manual_clock.advance(59.9995)
    body = get(http, emulator, "token").json()
    assert body["refillIn"] == 60_001
    assert body["tokensLeft"] == 5
    assert body["timestamp"] + body["refillIn"] >= 1_767_225_600_000 + 119_999.5


def test_steps_follow_the_clock_origin(make_emulator, http):
    """A clock that does not start at 0: the first step is a minute after construction."""
    clock = ManualClock(start=1234.5678)
    emulator = make_emulator(clock=clock, tokens=0)
    clock.advance(59.999)
    assert get(http, emulator, "token").json()["tokensLeft"] == 0
    clock.advance(0.001)
    assert get(http, emulator, "token").json()["tokensLeft"] == 5


def test_first_refill_in_is_configurable(make_emulator, http, manual_clock):
    """first_refill_in sets the phase of the steps."""
    emulator = make_emulator(tokens=0, first_refill_in=10)
    assert get(http, emulator, "token").json()["refillIn"] == 10_000
    manual_clock.advance(10)
    body = get(http, emulator, "token").json()
    assert (body["tokensLeft"], body["refillIn"]) == (5, 60_000)


def test_refill_stops_at_the_cap(make_emulator, http, manual_clock):
    """The balance never passes the cap, however long the account idles."""
    emulator = make_emulator(tokens=290)
    manual_clock.advance(3600 * 5)
    assert get(http, emulator, "token").json()["tokensLeft"] == 300
    assert emulator.stats().tokens_refilled == 10


def test_capacity_is_configurable(make_emulator, http, manual_clock):
    """capacity= overrides the 60-minute default cap."""
    emulator = make_emulator(capacity=42, tokens=0)
    manual_clock.advance(3600)
    assert get(http, emulator, "token").json()["tokensLeft"] == 42
    assert emulator.capacity == 42


def test_a_request_runs_while_positive_and_leaves_a_debt(make_emulator, http):
    """With 3 tokens a 5-token deal request runs and leaves -2."""
    emulator = make_emulator(tokens=3)
    body = deal(http, emulator).json()
    assert (body["tokensConsumed"], body["tokensLeft"]) == (5, -2)


def test_the_debt_is_not_bounded(make_emulator, http):
    """With 1 token, a 20-product offers request runs and leaves a deep debt."""
    emulator = make_emulator(tokens=1)
    response = product(http, emulator, emulator.catalog_asins(20), offers=100)
    body = response.json()
    assert response.status_code == 200
    assert body["tokensConsumed"] > 100
    assert body["tokensLeft"] == 1 - body["tokensConsumed"]


@pytest.mark.parametrize("balance", [0, -7])
def test_429_while_zero_or_below(make_emulator, http, balance):
    """At a balance of 0 or below, /product and /deal get 429, costing nothing."""
    emulator = make_emulator(tokens=balance)
    for response in (deal(http, emulator), product(http, emulator, emulator.catalog_asins(1))):
        body = response.json()
        assert response.status_code == 429
        assert (body["tokensLeft"], body["tokensConsumed"]) == (balance, 0)
        assert "error" not in body  # Keepa's real 429 is the envelope alone
    assert emulator.stats().throttled == 2


def test_debt_is_repaid_by_the_refill(make_emulator, http, manual_clock):
    """After a debt of -2 at 5 a minute, the first step admits again."""
    emulator = make_emulator(tokens=-2)
    assert deal(http, emulator).status_code == 429
    manual_clock.advance(60)
    response = deal(http, emulator)
    assert response.status_code == 200
    assert response.json()["tokensLeft"] == 3 - 5


def test_token_status_is_free_and_answered_in_debt(make_emulator, http):
    """/token costs nothing and answers even at a negative balance."""
    emulator = make_emulator(tokens=-50)
    response = get(http, emulator, "token")
    assert response.status_code == 200
    assert (response.json()["tokensConsumed"], response.json()["tokensLeft"]) == (0, -50)


def test_refill_rate_changes_at_run_time(make_emulator, http, manual_clock):
    """A new refill_per_min applies from the next step and is reported at once."""
    emulator = make_emulator(tokens=0)
    emulator.refill_per_min = 50
    body = get(http, emulator, "token").json()
    assert body["refillRate"] == 50
    manual_clock.advance(60)
    assert get(http, emulator, "token").json()["tokensLeft"] == 50
    assert emulator.capacity == 3000


def test_token_flow_reduction_is_reported(make_emulator, http):
    """tokenFlowReduction is reported as set, and can change at run time."""
    emulator = make_emulator(token_flow_reduction=0.25)
    assert get(http, emulator, "token").json()["tokenFlowReduction"] == 0.25
    emulator.token_flow_reduction = 1.5
    assert get(http, emulator, "token").json()["tokenFlowReduction"] == 1.5


def test_refill_step_is_configurable(make_emulator, http, manual_clock):
    """Steps every 30 s add half a minute's refill each, exactly on average."""
    emulator = make_emulator(tokens=0, refill_step=30.0)
    manual_clock.advance(30)
    assert get(http, emulator, "token").json()["tokensLeft"] == 2
    manual_clock.advance(30)
    assert get(http, emulator, "token").json()["tokensLeft"] == 5


# -- costs ----------------------------------------------------------------------------


def test_product_costs_one_per_product_found(emulator, http):
    """Three known ASINs and an unknown one cost 3; the unknown one is absent."""
    asins = emulator.catalog_asins(3)
    body = product(http, emulator, [*asins, "B000000000"]).json()
    assert body["tokensConsumed"] == 3
    assert [p["asin"] for p in body["products"]] == asins


def test_unknown_asins_cost_nothing(emulator, http):
    """A request for unknown ASINs only costs nothing and returns no products."""
    body = product(http, emulator, ["B000000000", "NOTANASIN1"]).json()
    assert (body["tokensConsumed"], body["products"]) == (0, [])
    assert body["tokensLeft"] == 300


def test_stats_history_days_cost_nothing_extra(emulator, http):
    """stats, history and days add no cost."""
    body = product(http, emulator, emulator.catalog_asins(2), stats=90, history=1, days=30).json()
    assert body["tokensConsumed"] == 2


def test_buybox_costs_two_more_per_product(emulator, http):
    """buybox=1 costs 1 + 2 per product."""
    body = product(http, emulator, emulator.catalog_asins(4), buybox=1).json()
    assert body["tokensConsumed"] == 12


def test_rating_costs_one_more_per_fresh_rated_product(make_emulator, http):
    """rating=1 adds 1 for a product with rating data less than 14 days old, else nothing."""
    emulator = make_emulator(rating_fresh_share=1.0)
    rated = asin_where(emulator, lambda t: t.rating is not None)
    unrated = asin_where(emulator, lambda t: t.rating is None)
    assert product(http, emulator, [rated], rating=1).json()["tokensConsumed"] == 2
    assert product(http, emulator, [unrated], rating=1).json()["tokensConsumed"] == 1
    stale = make_emulator(rating_fresh_share=0.0)
    assert product(http, stale, [rated], rating=1).json()["tokensConsumed"] == 1


def test_stock_costs_two_more_per_product_with_fresh_stock_data(make_emulator, http):
    """stock=1 adds 2 for a product whose stock data is less than 7 days old, else nothing."""
    asins = make_emulator().catalog_asins(4)
    fresh = make_emulator(stock_fresh_share=1.0)
    stale = make_emulator(stock_fresh_share=0.0)
    assert product(http, fresh, asins, stock=1).json()["tokensConsumed"] == 4 * 3
    assert product(http, stale, asins, stock=1).json()["tokensConsumed"] == 4


def test_update_zero_costs_one_more_per_product_updated_within_the_hour(emulator, http):
    """update=0 adds 1 for each product Keepa updated less than an hour ago."""
    asins = emulator.catalog_asins(40, first=100_000)  # not in the deal stream's last hour
    body = product(http, emulator, asins, update=0).json()
    now = emulator.now_minute()
    recent = sum(now - p["lastUpdate"] < 60 for p in body["products"])
    assert 0 < recent < 40
    assert body["tokensConsumed"] == 40 + recent
    assert product(http, emulator, asins, update=1).json()["tokensConsumed"] == 40


def test_historical_variations_cost_one_per_product_with_a_parent(emulator, http):
    """historical-variations=1 adds 1 for each product with a parent ASIN."""
    asins = emulator.catalog_asins(60)
    body = get(
        http, emulator, "product", asin=",".join(asins), domain=1, **{"historical-variations": 1}
    ).json()
    parents = sum(p["parentAsin"] is not None for p in body["products"])
    assert 0 < parents < 60
    assert body["tokensConsumed"] == 60 + parents


def offer_pages(body):
    """Started pages of 10 live offers found, per product."""
    return [math.ceil(len(p["liveOffersOrder"]) / 10) for p in body["products"]]


def offer_cost(body, page_cost=6):
    """6 (or 5) per page found, per product; the base 1 for a product with none."""
    return sum(page_cost * pages if pages else 1 for pages in offer_pages(body))


def test_offers_cost_six_per_page_of_offers_found(emulator, http):
    """offers=N costs 6 per started page of 10 live offers found, per product; 1 with none."""
    body = product(http, emulator, emulator.catalog_asins(40), offers=100).json()
    assert body["tokensConsumed"] == offer_cost(body)
    assert {0, 1, 2} <= set(offer_pages(body))


def test_offers_limit_the_offers_returned(emulator, http):
    """offers=20 returns at most 20 live offers per product."""
    many = asin_where(emulator, lambda t: t.offers_fba + t.offers_fbm > 30)
    body = product(http, emulator, [many], offers=20).json()
    assert len(body["products"][0]["liveOffersOrder"]) == 20
    assert body["tokensConsumed"] == 12


def test_fresh_offers_cost_five_per_page_with_update(make_emulator, http):
    """Fresh offer data costs 5 per page when ``update`` is given, 6 without."""
    emulator = make_emulator(fresh_offer_share=1.0)
    body = product(http, emulator, emulator.catalog_asins(5), offers=40, update=1).json()
    assert body["tokensConsumed"] == offer_cost(body, 5)
    body = product(http, emulator, emulator.catalog_asins(5), offers=40).json()
    assert body["tokensConsumed"] == offer_cost(body, 6)


def test_a_real_like_batch_costs_about_seven_a_product(make_emulator, http):
    """offers=50, rating, buybox, stock: about 7 a product, as real batches (330-372 for 50)."""
    emulator = make_emulator(refill_per_min=1000)
    params = {"offers": 50, "rating": 1, "buybox": 1, "stock": 1, "stats": 365}
    batches = [
        product(http, emulator, emulator.catalog_asins(50, first=50 * i), **params).json()
        for i in range(8)
    ]
    costs = [b["tokensConsumed"] for b in batches]
    assert all(280 <= cost <= 420 for cost in costs), costs
    assert 6.3 <= sum(costs) / 400 <= 7.7
    small = [
        product(http, emulator, emulator.catalog_asins(3, first=3 * i), **params).json()
        for i in range(20)
    ]
    assert sorted(b["tokensConsumed"] for b in small)[10] in range(12, 25)


def test_failed_offer_fetch_costs_one(make_emulator, http):
    """An offer fetch that fails costs 1 and says offersSuccessful false."""
    emulator = make_emulator(offer_failure_share=1.0)
    body = product(http, emulator, emulator.catalog_asins(3), offers=20).json()
    assert body["tokensConsumed"] == 3
    assert all(p["offersSuccessful"] is False and p["offers"] == [] for p in body["products"])


def test_buybox_is_ignored_with_offers(emulator, http):
    """buybox=1 adds nothing when offers are requested."""
    asins = emulator.catalog_asins(3)
    with_buybox = product(http, emulator, asins, offers=20, buybox=1).json()["tokensConsumed"]
    without = product(http, emulator, asins, offers=20).json()["tokensConsumed"]
    assert with_buybox == without


def test_a_deal_page_costs_five(emulator, http):
    """Every /deal request costs 5, whatever it returns."""
    assert deal(http, emulator).json()["tokensConsumed"] == 5
    assert deal(http, emulator, {"priceTypes": [1], "page": 99}).json()["tokensConsumed"] == 5


def test_tokens_consumed_add_up(emulator, http):
    """The counters' tokens consumed and balance match the envelopes."""
    spent = 0
    spent += product(http, emulator, emulator.catalog_asins(5), buybox=1).json()["tokensConsumed"]
    spent += deal(http, emulator).json()["tokensConsumed"]
    stats = emulator.stats()
    assert stats.tokens_consumed == spent == 20
    assert stats.tokens_left == emulator.tokens_left == 300 - spent


# -- request limits and validation ----------------------------------------------------


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"asin": ",".join(f"B0{i:08d}" for i in range(101))}, "too many ASINs"),
        ({"asin": ",".join(f"B0{i:08d}" for i in range(101)), "offers": 20}, "too many ASINs"),
        ({"offers": 19}, "offers"),
        ({"offers": 101}, "offers"),
        ({"buybox": "true"}, "buybox"),
        ({"stats": "4.5"}, "stats"),
        ({"history": 2}, "history"),
        ({"domain": 7}, "domain"),
        ({"domain": None}, "domain"),
        ({"asin": ""}, "asin"),
    ],
)
def test_malformed_product_requests_get_400(emulator, http, params, fragment):
    """Limits and parameter types are checked: 400 with the envelope, nothing charged."""
    query = {"key": KEY, "domain": 1, "asin": "B000000001", **params}
    query = {k: v for k, v in query.items() if v is not None}
    response = http.get(f"{emulator.url}/product", params=query)
    body = response.json()
    assert response.status_code == 400
    assert body["error"]["type"] == "invalidParameter"
    assert body["error"]["message"] == "You used an invalid parameter for this API call."
    assert fragment in body["error"]["details"]
    assert body["tokensConsumed"] == 0
    assert_envelope(body)


def test_a_hundred_asins_are_allowed_with_offers_too(make_emulator, http):
    """Exactly 100 ASINs are within the limit, with offers too (Keepa served 50 with offers)."""
    emulator = make_emulator(refill_per_min=1000)
    assert product(http, emulator, emulator.catalog_asins(100)).status_code == 200
    assert product(http, emulator, emulator.catalog_asins(50), offers=50).status_code == 200
    assert product(http, emulator, emulator.catalog_asins(100), offers=20).status_code == 200


@pytest.mark.parametrize(
    "selection",
    [
        {},
        {"priceTypes": []},
        {"priceTypes": [1, 2]},
        {"priceTypes": ["one"]},
        {"priceTypes": [4]},
        {"priceTypes": [34]},
        {"priceTypes": [1], "dateRange": "5"},
        {"priceTypes": [1], "dateRange": 5},
        {"priceTypes": [1], "dateRange": 1.5},
        {"priceTypes": [1], "page": -1},
        {"priceTypes": [1], "page": True},
        {"priceTypes": [1], "sortType": 5},
        {"priceTypes": [1], "deltaPercentRange": [10]},
        {"priceTypes": [1], "salesRankRange": ["1", "many"]},
        {"priceTypes": [1], "includeCategories": "172282"},
        {"priceTypes": [1], "isLowest": 1},
        {"priceTypes": [1], "titleSearch": 5},
        {"priceTypes": [1], "brand": "Acme"},
        {"priceTypes": [1], "domainId": 7},
        {"priceTypes": [1], "domainId": 12},
        {"priceTypes": [1], "domainId": "7"},
        [1],
    ],
)
def test_malformed_selections_get_400(emulator, http, selection):
    """A malformed selection is refused with 400 and the envelope, nothing charged."""
    response = deal(http, emulator, selection)
    assert response.status_code == 400
    assert response.json()["tokensConsumed"] == 0
    assert emulator.tokens_left == 300


def test_selection_that_is_not_json_gets_400(emulator, http):
    """A selection that is not JSON is refused with 400."""
    response = get(http, emulator, "deal", selection="{priceTypes: [1]")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["details"]


def test_missing_selection_gets_400(emulator, http):
    """A /deal request without a selection is refused with 400."""
    assert get(http, emulator, "deal").status_code == 400


# -- envelopes and errors -------------------------------------------------------------


def test_every_response_carries_the_envelope(make_emulator, http):
    """200, 400, 402, 404, 405, 429 and injected 5xx all carry the envelope's fields."""
    emulator = make_emulator(tokens=1)
    responses = [
        get(http, emulator, "token"),
        get(http, emulator, "deal", selection="[]"),
        get(http, emulator, "token", key="wrong"),
        get(http, emulator, "nowhere"),
        http.put(f"{emulator.url}/product", params={"key": KEY}),
        deal(http, emulator),
        deal(http, emulator),
    ]
    emulator.inject(Fault.server_error(500), Fault.server_error(503))
    responses += [get(http, emulator, "token"), get(http, emulator, "token")]
    assert [r.status_code for r in responses] == [200, 400, 402, 404, 405, 200, 429, 500, 503]
    for response in responses:
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert_envelope(body)
        if response.status_code not in (200, 429):
            assert set(body["error"]) == {"type", "message", "details"}
        if response.status_code == 400:  # zeroed, as Keepa's real 400
            assert (body["tokensLeft"], body["refillRate"], body["refillIn"]) == (0, 0, 0)
        else:
            assert body["refillRate"] == emulator.refill_per_min


@pytest.mark.parametrize("key", ["wrong-key", None, ""])
def test_wrong_or_missing_key_gets_402(emulator, http, key):
    """A wrong or missing key gets 402 with the envelope and costs nothing."""
    params = {"asin": emulator.catalog_asins(1)[0], "domain": 1}
    if key is not None:
        params["key"] = key
    response = http.get(f"{emulator.url}/product", params=params)
    assert response.status_code == 402
    assert response.json()["error"]["type"] == "paymentRequired"
    assert response.json()["tokensConsumed"] == 0
    assert emulator.tokens_left == 300


def test_custom_api_key(make_emulator, http, api_keys):
    """The emulator accepts exactly its api_key."""
    emulator = make_emulator(api_key="abc")
    api_keys.clear()  # this test puts the key in the URL itself (plain httpx logs it)
    assert emulator.api_key == "abc"
    assert get(http, emulator, "token", key="abc").status_code == 200
    assert get(http, emulator, "token").status_code == 402


def test_product_post_is_not_allowed(emulator, http):
    """/product only answers GET: POST gets 405."""
    response = http.post(f"{emulator.url}/product", params={"key": KEY})
    assert response.status_code == 405


# -- determinism ----------------------------------------------------------------------


def strip_time(body):
    body = dict(body)
    body.pop("processingTimeInMs")
    return body


def test_same_seed_same_data(make_emulator, http):
    """Two emulators with one seed serve identical products and deals."""
    first, second = make_emulator(seed=7), make_emulator(seed=7)
    for emulator_pair in [(first, second)]:
        a, b = emulator_pair
        asins = a.catalog_asins(5)
        assert asins == b.catalog_asins(5)
        assert strip_time(product(http, a, asins, stats=30, offers=20).json()) == strip_time(
            product(http, b, asins, stats=30, offers=20).json()
        )
        assert strip_time(deal(http, a).json()) == strip_time(deal(http, b).json())


def test_other_seed_other_data(make_emulator, http):
    """Another seed gives other ASINs and other deals."""
    first, second = make_emulator(seed=1), make_emulator(seed=2)
    assert first.catalog_asins(3) != second.catalog_asins(3)
    assert deal(http, first).json()["deals"] != deal(http, second).json()["deals"]


def test_data_does_not_depend_on_what_was_asked_before(make_emulator, http, manual_clock):
    """A deal page at a minute is the same whether or not earlier pages were read."""
    busy, idle = make_emulator(seed=3), make_emulator(seed=3)
    deal(http, busy)
    manual_clock.advance(600)
    assert strip_time(deal(http, busy).json()) == strip_time(deal(http, idle).json())


# -- products -------------------------------------------------------------------------


def test_products_have_the_fields_the_ingestor_needs(emulator, http):
    """Products carry prices, ranks, offer counts and fee fields (when not sparse)."""
    body = product(http, emulator, emulator.catalog_asins(50), stats=90, buybox=1).json()
    products = body["products"]
    assert len(products) == 50
    for item in products:
        assert item["domainId"] == 1
        assert isinstance(item["rootCategory"], int)
        assert len(item["stats"]["current"]) == 34
        assert isinstance(item["stats"]["totalOfferCount"], int)
        assert len(item["csv"]) == 34
    assert any(p["fbaFees"] and p["referralFeePercentage"] for p in products)
    assert any(p["stats"]["buyBoxPrice"] > 0 for p in products)
    assert any(p["stats"]["current"][3] > 0 for p in products)


def test_some_products_are_sparse(emulator, http):
    """As real data, some products have no fees, sales rank or buy box price (``null``/-1)."""
    products = product(http, emulator, emulator.catalog_asins(100), stats=90, buybox=1).json()[
        "products"
    ]
    assert all(isinstance(p["title"], str) for p in products)  # real titles never miss
    assert any(p["fbaFees"] is None for p in products)
    assert any(p["referralFeePercentage"] is None for p in products)
    assert any(p["brand"] is None for p in products)
    assert any(p["stats"]["current"][3] == -1 for p in products)
    assert any(p["stats"]["buyBoxPrice"] == -1 for p in products)


def test_stats_and_history_only_when_asked(emulator, http):
    """Without stats the stats object is null; with history=0 the csv is null (as Keepa's)."""
    item = product(http, emulator, emulator.catalog_asins(1), history=0).json()["products"][0]
    assert item["stats"] is None
    assert item["csv"] is None


def test_offers_are_well_formed(emulator, http):
    """Offers carry seller, FBA/Prime flags, condition and offerCSV; liveOffersOrder indexes them."""
    item = product(http, emulator, emulator.catalog_asins(1, first=2), offers=20).json()[
        "products"
    ][0]
    assert item["offersSuccessful"] is True
    for offer in item["offers"]:
        assert {"offerId", "sellerId", "isFBA", "isPrime", "isAmazon", "condition"} <= set(offer)
        assert len(offer["offerCSV"]) % 3 == 0
    live = item["liveOffersOrder"]
    assert len(set(live)) == len(live)
    assert all(0 <= i < len(item["offers"]) for i in live)
    assert all(item["offers"][i]["lastSeen"] == emulator.now_minute() for i in live)
    totals = [item["offers"][i]["offerCSV"][1] + item["offers"][i]["offerCSV"][2] for i in live]
    assert totals == sorted(totals)


def test_product_prices_follow_its_latest_deal(emulator, http):
    """A product's current prices are those of its latest deal update."""
    newest = deal(http, emulator).json()["deals"]["dr"][0]
    item = product(http, emulator, [newest["asin"]], stats=30).json()["products"][0]
    assert item["stats"]["current"][1] == newest["current"][1]


# -- the deal stream ------------------------------------------------------------------


def test_deals_carry_the_documented_fields(emulator, http):
    """A deal has the fields of Keepa's deal objects, with the documented shapes."""
    body = deal(http, emulator).json()["deals"]
    assert set(body) == {"dr", "drDateIndex", "categoryIds", "categoryNames", "categoryCount"}
    item = body["dr"][0]
    assert {
        "asin", "title", "rootCat", "categories", "current", "currentSince", "delta",
        "deltaPercent", "deltaLast", "avg", "creationDate", "lastUpdate", "image",
        "backInStock", "salesRankDrops30", "warehouseCondition", "lightningStart",
        "dateIntervalIndex",
    } <= set(item)  # fmt: skip
    assert "minRating" not in item
    assert "parentAsin" not in item
    assert len(item["current"]) == len(item["currentSince"]) == 34
    assert len(item["delta"]) == len(item["avg"]) == len(item["deltaPercent"]) == 4
    assert all(isinstance(code, int) for code in item["image"])


def test_last_update_advances_with_the_clock(emulator, http, manual_clock):
    """New deals keep appearing: the newest lastUpdate follows the clock."""
    first = max(d["lastUpdate"] for d in deal(http, emulator).json()["deals"]["dr"])
    manual_clock.advance(3600)
    later = max(d["lastUpdate"] for d in deal(http, emulator).json()["deals"]["dr"])
    assert first <= START_MINUTE
    assert START_MINUTE + 55 <= later <= START_MINUTE + 60


def test_one_entry_per_asin_across_pages(emulator, http, manual_clock):
    """Each ASIN appears once across all pages: its latest update."""
    manual_clock.advance(3600 * 3)
    found = all_deals(http, emulator, {"priceTypes": [1]})
    assert len(found) > 150
    assert len({d["asin"] for d in found}) == len(found)


def test_several_deals_share_a_minute(emulator, http):
    """Several deals share one lastUpdate minute."""
    minutes = Counter(d["lastUpdate"] for d in deal(http, emulator).json()["deals"]["dr"])
    assert max(minutes.values()) >= 2


def test_some_asins_are_re_updated(emulator, http, manual_clock):
    """Some deals were created before their last update (re-updated ASINs)."""
    manual_clock.advance(3600 * 3)
    found = all_deals(http, emulator, {"priceTypes": [1]})
    assert any(d["creationDate"] < d["lastUpdate"] for d in found)


def test_newest_first_pages_are_locally_disordered_within_the_bound(emulator, http):
    """sortType=1: never ahead of a deal more than disorder_minutes newer, but not sorted."""
    found = all_deals(http, emulator, {"priceTypes": [1], "sortType": 1})
    updates = [d["lastUpdate"] for d in found]
    assert updates != sorted(updates, reverse=True)
    for position, minute in enumerate(updates):
        assert all(minute + 3 >= later for later in updates[position + 1 :])


def test_no_disorder_when_asked(make_emulator, http):
    """disorder_minutes=0 gives pages sorted newest first exactly."""
    emulator = make_emulator(disorder_minutes=0)
    updates = [d["lastUpdate"] for d in all_deals(http, emulator, {"priceTypes": [1]})]
    assert updates == sorted(updates, reverse=True)


def test_pages_hold_150_and_the_last_is_shorter(emulator, http, manual_clock):
    """Full pages hold 150 deals; the last one fewer."""
    manual_clock.advance(3600 * 2)
    pages = []
    while not pages or len(pages[-1]) == 150:
        selection = {"priceTypes": [1], "page": len(pages)}
        pages.append(deal(http, emulator, selection).json()["deals"]["dr"])
    assert len(pages) >= 2
    assert all(len(page) == 150 for page in pages[:-1])
    assert len(pages[-1]) < 150


def test_date_range_bounds_the_age(make_emulator, http):
    """dateRange 0 serves only deals updated in the last 24 hours."""
    emulator = make_emulator(history_minutes=3 * 24 * 60, deals_per_minute=0.5)
    day = all_deals(http, emulator, {"priceTypes": [1], "dateRange": 0})
    week = all_deals(http, emulator, {"priceTypes": [1], "dateRange": 1})
    assert min(d["lastUpdate"] for d in day) >= START_MINUTE - 24 * 60
    assert min(d["lastUpdate"] for d in week) < START_MINUTE - 24 * 60


def test_delta_percent_range_filters(emulator, http):
    """deltaPercentRange keeps deals whose drop on the price type lies in the range."""
    found = all_deals(http, emulator, {"priceTypes": [1], "deltaPercentRange": [30, 50]})
    assert found
    assert all(30 <= d["deltaPercent"][0][1] <= 50 for d in found)


def test_sales_rank_range_filters(emulator, http):
    """salesRankRange keeps ranked deals within the range."""
    found = all_deals(http, emulator, {"priceTypes": [1], "salesRankRange": [1, 50_000]})
    assert found
    assert all(1 <= d["current"][3] <= 50_000 for d in found)


def test_categories_filter(emulator, http):
    """includeCategories and excludeCategories act on the root category."""
    included = all_deals(http, emulator, {"priceTypes": [1], "includeCategories": [172282]})
    excluded = all_deals(http, emulator, {"priceTypes": [1], "excludeCategories": [172282]})
    everything = all_deals(http, emulator, {"priceTypes": [1]})
    assert included
    assert {d["rootCat"] for d in included} == {172282}
    assert 172282 not in {d["rootCat"] for d in excluded}
    assert len(included) + len(excluded) == len(everything)


def test_title_search_filters(emulator, http):
    """titleSearch keeps titles containing the term, case-insensitively."""
    found = all_deals(http, emulator, {"priceTypes": [1], "titleSearch": "kettle"})
    assert found
    assert all("Kettle" in d["title"] for d in found)


def test_price_type_without_a_price_is_not_served(emulator, http):
    """A deal without a current price of the selected type is not in that query."""
    found = all_deals(http, emulator, {"priceTypes": [0]})
    assert all(d["current"][0] > 0 for d in found)


@pytest.mark.parametrize("sort_type", [2, 4, -4, 3])
def test_other_sort_types_are_exact(emulator, http, sort_type):
    """sortType 2 (delta), 3 (rank), 4 (percent) sort exactly; negative inverts."""
    found = all_deals(http, emulator, {"priceTypes": [1], "sortType": sort_type})

    def value(d):
        if abs(sort_type) == 2:
            return -d["delta"][0][1]
        if abs(sort_type) == 3:
            return d["current"][3] if d["current"][3] > 0 else math.inf
        return -d["deltaPercent"][0][1]

    values = [value(d) for d in found]
    assert values == sorted(values, reverse=sort_type < 0)


def test_post_and_get_agree(emulator, http):
    """POST /deal with a JSON body answers as GET with selection=."""
    selection = {"priceTypes": [1], "page": 0}
    posted = http.post(f"{emulator.url}/deal", params={"key": KEY}, json=selection)
    assert posted.status_code == 200
    assert posted.json()["deals"] == deal(http, emulator, selection).json()["deals"]


def test_unknown_fields_are_counted_as_ignored(emulator, http):
    """Unknown selection fields and query parameters are served and counted as ignored."""
    assert deal(http, emulator, {"priceTypes": [1], "fancyFilter": 3}).status_code == 200
    assert product(http, emulator, emulator.catalog_asins(1), colour="red").status_code == 200
    ignored = emulator.stats().ignored_parameters
    assert ignored == {"deal.selection.fancyFilter": 1, "product.colour": 1}


def test_deals_between_is_the_truth_the_pages_show(emulator, http, manual_clock):
    """deals_between lists exactly the deals the pages hold in a window, oldest first."""
    manual_clock.advance(1800)
    now = emulator.now_minute()
    truth = emulator.deals_between(now - 45, now)
    served = [
        d
        for d in all_deals(http, emulator, {"priceTypes": [1]})
        if now - 45 <= d["lastUpdate"] <= now
    ]
    assert truth == sorted(served, key=lambda d: (d["lastUpdate"], d["asin"]))
    assert [d["lastUpdate"] for d in truth] == sorted(d["lastUpdate"] for d in truth)


def test_deals_between_honours_the_selection(emulator):
    """deals_between applies the selection's filters."""
    truth = emulator.deals_between(
        START_MINUTE - 60, START_MINUTE, {"priceTypes": [1], "deltaPercentRange": [40, 100]}
    )
    assert truth
    assert all(d["deltaPercent"][0][1] >= 40 for d in truth)


def test_deals_per_minute_is_configurable(make_emulator):
    """More deals per minute, more deals in an hour."""
    few = make_emulator(deals_per_minute=1).deals_between(START_MINUTE - 60, START_MINUTE)
    many = make_emulator(deals_per_minute=6).deals_between(START_MINUTE - 60, START_MINUTE)
    assert len(few) < 100 < len(many)


# -- faults ---------------------------------------------------------------------------


def test_injected_error_answers_once_and_costs_nothing(emulator, http):
    """A queued 503 answers the next request with the envelope; then all is normal."""
    emulator.inject(Fault.server_error(503))
    failed = deal(http, emulator)
    assert failed.status_code == 503
    assert failed.json()["tokensConsumed"] == 0
    assert failed.json()["error"]["type"] == "serviceUnavailable"
    assert deal(http, emulator).status_code == 200
    assert emulator.stats().faults_injected == 1


def test_faults_for_one_endpoint_wait_for_it(emulator, http):
    """A fault queued for /deal leaves /token alone."""
    emulator.inject(Fault.server_error(500), endpoint="deal")
    assert get(http, emulator, "token").status_code == 200
    assert deal(http, emulator).status_code == 500


def test_faults_are_applied_in_order(emulator, http):
    """Queued faults apply one per request, in order."""
    emulator.inject(Fault.server_error(500), Fault.server_error(503), Fault.server_error(500))
    codes = [get(http, emulator, "token").status_code for _ in range(4)]
    assert codes == [500, 503, 500, 200]


def test_fault_share_is_seeded(make_emulator, http):
    """A share of faults is drawn from the seed: the same seed, the same failures."""
    runs = []
    for _ in range(2):
        emulator = make_emulator(seed=5, fault_share=0.3)
        runs.append([get(http, emulator, "token").status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert 0 < runs[0].count(500) < 30


def test_fault_share_draws_from_the_given_faults(emulator, http):
    """set_fault_share draws among the faults given; share 0 stops."""
    emulator.set_fault_share(1.0, [Fault.server_error(503)])
    assert {get(http, emulator, "token").status_code for _ in range(5)} == {503}
    emulator.set_fault_share(0.0)
    assert get(http, emulator, "token").status_code == 200


def test_clear_faults(emulator, http):
    """clear_faults drops the queue."""
    emulator.inject(Fault.server_error(500))
    emulator.clear_faults()
    assert get(http, emulator, "token").status_code == 200


def test_malformed_json_is_charged(emulator, http):
    """A malformed body is not JSON; the request was served and charged."""
    emulator.inject(Fault.malformed_json())
    response = deal(http, emulator)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert emulator.tokens_left == 295


def test_slow_response_takes_real_time(emulator, http):
    """A slow fault delays the answer by its seconds of real time."""
    emulator.inject(Fault.slow(0.2))
    began = time.perf_counter()
    response = get(http, emulator, "token")
    assert response.status_code == 200
    assert time.perf_counter() - began >= 0.2


def test_slow_response_is_charged_on_arrival(emulator, http):
    """A slow request is charged when it arrives: the balance drops before it answers."""
    emulator.inject(Fault.slow(0.3))
    thread = threading.Thread(target=deal, args=(http, emulator))
    thread.start()
    deadline = time.monotonic() + 2
    while emulator.tokens_left == 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emulator.tokens_left == 295
    thread.join()


def in_background(function, *args):
    """Run *function* in a thread; return a callable that joins it and gives its result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function(*args)))
    thread.start()

    def join():
        thread.join()
        return result[0]

    return join


def wait_for(condition):
    deadline = time.monotonic() + 2
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition()


def test_slow_answer_charged_on_arrival_comes_after_newer_envelopes(emulator):
    """charge="arrival": the slow answer's envelope is older than one served after it."""
    emulator.inject(Fault.slow(0.3), endpoint="deal")
    with httpx.Client(timeout=10) as first, httpx.Client(timeout=10) as second:
        slow = in_background(deal, first, emulator)
        wait_for(lambda: emulator.tokens_left == 295)
        fast = deal(second, emulator).json()
        late = slow().json()
    assert (late["tokensLeft"], fast["tokensLeft"]) == (295, 290)


def test_slow_answer_charged_on_answer_is_unseen_meanwhile(emulator):
    """charge="answer": requests served while it is in flight do not see its cost."""
    emulator.inject(Fault.slow(0.3, charge="answer"), endpoint="product")
    asins = emulator.catalog_asins(20)
    with httpx.Client(timeout=10) as first, httpx.Client(timeout=10) as second:
        slow = in_background(product, first, emulator, asins)
        wait_for(lambda: emulator.stats().count("product") == 1)
        fast = deal(second, emulator).json()
        late = slow().json()
    assert fast["tokensLeft"] == 295
    assert (late["tokensConsumed"], late["tokensLeft"]) == (20, 275)


def test_slow_answer_charged_on_answer_was_admitted_on_arrival(make_emulator, http):
    """charge="answer" admits at arrival: a request in flight is served even if the
    balance drops to 0 meanwhile."""
    emulator = make_emulator(tokens=5)
    emulator.inject(Fault.slow(0.2, charge="answer"), endpoint="product")
    with httpx.Client(timeout=10) as first:
        slow = in_background(product, first, emulator, emulator.catalog_asins(3))
        wait_for(lambda: emulator.stats().count("product") == 1)
        emulator.spend(5)
        answer = slow()
    assert answer.status_code == 200
    assert answer.json()["tokensLeft"] == -3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Fault.server_error(200), "http_status"),
        (lambda: Fault.slow(-1), "seconds"),
        (lambda: Fault.slow(math.nan), "seconds"),
        (lambda: Fault.slow(1, charge="later"), "charge"),
    ],
)
def test_bad_faults_are_refused(make, match):
    """Faults validate their arguments, naming the bad value."""
    with pytest.raises(ValueError, match=match):
        make()


def test_spend_drains_the_account(emulator, http):
    """spend(n) takes tokens as another program would; the envelope shows it."""
    assert emulator.spend(250)
    assert get(http, emulator, "token").json()["tokensLeft"] == 50
    assert emulator.stats().tokens_spent_by_others == 250


def test_spend_follows_keepas_rule(make_emulator):
    """A spend runs while the balance is positive (into debt) and is refused at 0."""
    emulator = make_emulator(tokens=10)
    assert emulator.spend(25)
    assert emulator.tokens_left == -15
    assert not emulator.spend(1)
    assert emulator.stats().tokens_spent_by_others == 25


def test_competing_spender_at_a_rate(make_emulator, http, manual_clock):
    """A background spender takes its rate from the clock, down to 0, never into debt."""
    emulator = make_emulator(tokens=100)
    emulator.set_competing_spender(30)
    manual_clock.advance(120)
    assert get(http, emulator, "token").json()["tokensLeft"] == 100 - 60 + 10
    manual_clock.advance(3600 - 30)
    stats = emulator.stats()
    assert stats.tokens_left == 0
    assert stats.tokens_spent_by_others == 100 + stats.tokens_refilled
    emulator.set_competing_spender(0)
    manual_clock.advance(60)
    assert emulator.tokens_left == 5
    assert stats.tokens_spent_by_others == 100 + stats.tokens_refilled


def test_competing_spender_causes_429s(make_emulator, http, manual_clock):
    """With a spender faster than the refill, requests meet 429s."""
    emulator = make_emulator(tokens=20)
    emulator.set_competing_spender(100)
    manual_clock.advance(30)
    assert deal(http, emulator).status_code == 429


# -- counters -------------------------------------------------------------------------


def test_counters_by_endpoint_and_status(make_emulator, http):
    """Requests are counted by endpoint and status."""
    emulator = make_emulator(tokens=6)
    get(http, emulator, "token")
    deal(http, emulator)
    deal(http, emulator)
    deal(http, emulator)
    get(http, emulator, "nowhere")
    stats = emulator.stats()
    assert isinstance(stats, EmulatorStats)
    assert stats.requests == {"token": {200: 1}, "deal": {200: 2, 429: 1}, "other": {404: 1}}
    assert stats.total_requests == 5
    assert stats.count("deal") == 3
    assert stats.count(status=429) == stats.throttled == 1
    assert stats.deals_served > 0


def test_products_served_counts_found_products(emulator, http):
    """products_served counts the products returned, not the ASINs asked."""
    product(http, emulator, [*emulator.catalog_asins(4), "B000000000"])
    assert emulator.stats().products_served == 4


def test_reset_stats(emulator, http):
    """reset_stats zeroes the counters but keeps the balance."""
    deal(http, emulator)
    emulator.reset_stats()
    stats = emulator.stats()
    assert (stats.total_requests, stats.tokens_consumed, stats.tokens_left) == (0, 0, 295)


def test_stats_is_a_frozen_snapshot(emulator, http):
    """A stats snapshot does not change after later requests."""
    before = emulator.stats()
    deal(http, emulator)
    assert before.total_requests == 0
    with pytest.raises(AttributeError):
        before.throttled = 3  # type: ignore[misc]


# -- concurrency ----------------------------------------------------------------------


def test_concurrent_requests_keep_the_books(make_emulator):
    """Requests from many threads at once: charges add up exactly."""
    emulator = make_emulator(refill_per_min=1000)
    consumed = []

    def worker():
        with httpx.Client(timeout=10) as client:
            consumed.extend(deal(client, emulator).json()["tokensConsumed"] for _ in range(10))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(consumed) == 300
    assert emulator.tokens_left == 60_000 - 300
    assert emulator.stats().count("deal", 200) == 60


# -- construction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"refill_per_min": 0}, ValueError, "refill_per_min"),
        ({"refill_per_min": 2.5}, TypeError, "refill_per_min"),
        ({"capacity": 0}, ValueError, "capacity"),
        ({"tokens": 1.5}, TypeError, "tokens"),
        ({"refill_step": 0}, ValueError, "refill_step"),
        ({"first_refill_in": 61}, ValueError, "first_refill_in"),
        ({"start": dt.datetime(2026, 1, 1)}, ValueError, "aware"),  # noqa: DTZ001
        ({"fault_share": 1.5}, ValueError, "fault_share"),
        ({"deals_per_minute": -1}, ValueError, "deals_per_minute"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    """Constructor arguments are validated, naming the bad one."""
    with pytest.raises(error, match=match):
        KeepaEmulator(**kwargs)


def test_start_twice_is_refused(emulator):
    """Starting a running emulator raises."""
    with pytest.raises(RuntimeError, match="already running"):
        emulator.start()


# -- robustness -----------------------------------------------------------------------


def test_an_emulator_bug_is_a_500_with_the_envelope(emulator, http, monkeypatch):
    """An exception inside the emulator answers 500 with the envelope and is counted."""

    def broken(*args):
        raise KeyError("boom")

    monkeypatch.setattr(emulator, "_deals", broken)
    response = deal(http, emulator)
    assert response.status_code == 500
    assert "KeyError" in response.json()["error"]["details"]
    assert_envelope(response.json())
    assert emulator.stats().internal_errors == 1
    assert deal(http, emulator).status_code == 500
    monkeypatch.undo()
    assert deal(http, emulator).status_code == 200


def test_invalid_content_length_gets_400(emulator):
    """A request whose Content-Length is not a number gets 400 with the envelope."""
    import socket

    host, port = emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /deal?key=test-key HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["details"] == "the Content-Length header is invalid"


def test_head_is_not_answered_with_a_body(emulator, http):
    """HEAD gets no JSON body (HTTP forbids one); the connection stays usable."""
    assert http.head(f"{emulator.url}/token").status_code == 501
    assert get(http, emulator, "token").status_code == 200


def test_deal_cache_serves_stale_pages_for_its_seconds(make_emulator, http, manual_clock):
    """deal_cache_seconds=120: the same page within two minutes is the cached one, charged."""
    emulator = make_emulator(deal_cache_seconds=120)
    first = deal(http, emulator).json()
    manual_clock.advance(110)
    again = deal(http, emulator).json()
    assert again["deals"] == first["deals"]
    assert again["tokensConsumed"] == 5
    manual_clock.advance(10)
    fresh = deal(http, emulator).json()
    assert max(d["lastUpdate"] for d in fresh["deals"]["dr"]) > max(
        d["lastUpdate"] for d in first["deals"]["dr"]
    )


def test_no_deal_cache_by_default(emulator, http, manual_clock):
    """Without a cache, a minute later the page shows the newer deals."""
    first = deal(http, emulator).json()
    manual_clock.advance(300)
    later = deal(http, emulator).json()
    assert later["deals"] != first["deals"]


def test_some_deals_have_an_unknown_root_category(make_emulator, http):
    """Keepa's "?" root (2**63 - 1) appears, listed first among the page's categories."""
    emulator = make_emulator(history_minutes=24 * 60)
    body = deal(http, emulator, {"priceTypes": [1], "dateRange": 0}).json()["deals"]
    unknown = 2**63 - 1
    assert body["categoryIds"][0] == unknown
    assert body["categoryNames"][0] == "?"
    truth = emulator.deals_between(0, emulator.now_minute(), {"priceTypes": [1]})
    share = sum(d["rootCat"] == unknown for d in truth) / len(truth)
    assert 0 < share < 0.02


def test_only_live_offers_leaves_out_the_offers_gone(emulator, http):
    """only-live-offers=1: offers holds the live ones only, liveOffersOrder indexes them all."""
    asins = emulator.catalog_asins(20)
    full = product(http, emulator, asins, offers=20).json()["products"]
    live = get(
        http, emulator, "product", asin=",".join(asins), domain=1, offers=20,
        **{"only-live-offers": 1},
    ).json()["products"]  # fmt: skip
    assert any(len(p["offers"]) > len(p["liveOffersOrder"]) for p in full)
    for before, after in zip(full, live, strict=True):
        assert after["offers"] == [before["offers"][i] for i in before["liveOffersOrder"]]
        assert after["liveOffersOrder"] == list(range(len(after["offers"])))


def test_a_dropped_deal_leaves_every_selection_until_its_next_update(
    http, make_emulator, manual_clock
):
    """drop_deal: the deal is on no page and not in deals_between; the next ones move up."""
    emulator = make_emulator(refill_per_min=300, deals_per_minute=5, reupdate_share=0.5)
    selection = {"priceTypes": [1], "sortType": 1}
    before = [d["asin"] for d in deal(http, emulator, selection).json()["deals"]["dr"]]
    emulator.drop_deal(before[3])
    after = [d["asin"] for d in deal(http, emulator, selection).json()["deals"]["dr"]]
    assert after[:149] == before[:3] + before[4:]
    now = emulator.now_minute()
    assert before[3] not in {d["asin"] for d in emulator.deals_between(now - 60, now)}
    with pytest.raises(KeyError, match="no deal in the stream"):
        emulator.drop_deal("B0NOTADEAL")
    for _ in range(600):  # re-updates bring it back at its new lastUpdate
        manual_clock.advance(60)
        now = emulator.now_minute()
        if before[3] in {d["asin"] for d in emulator.deals_between(now - 1, now)}:
            break
    else:
        pytest.fail("the dropped deal was never updated again")
