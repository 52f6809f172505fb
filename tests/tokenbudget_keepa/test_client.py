"""KeepaClient over real loopback HTTP against the emulator: budgeting, requests, results."""

from __future__ import annotations

import itertools
import logging
import math

import pytest

from tokenbudget import (
    BucketConfig,
    DeficitRule,
    ManualClock,
    Rate,
    TokenBucket,
)
from tokenbudget_keepa import (
    AsyncKeepaClient,
    DealPage,
    DealQuery,
    KeepaClient,
    PriceType,
    Product,
    TokenStatus,
)

from ._client_fixtures import SECRET, assert_no_key


pytestmark = pytest.mark.usefixtures("no_key_in_logs")


def run_mixed_day(client: KeepaClient, keepa, clock: ManualClock, hours: float) -> int:
    """Mixed deal pages and offers=20 product batches until *hours* of clock time passed."""
    asins = keepa.catalog_asins(2000)
    query = DealQuery(price_types=PriceType.NEW, sort_type=1, date_range=0)
    requests = 0
    for i in itertools.count():
        if clock.now() >= hours * 3600:
            break
        if i % 4 == 0:
            assert isinstance(client.deals(query), DealPage)
        else:
            start = (i * 20) % len(asins)
            found = client.products(asins[start : start + 20], offers=20)
            assert len(found) == 20
        requests += 1
    return requests


def test_simulated_day_spends_the_refill_without_a_429(client, keepa, manual_clock):
    """24 simulated hours of offers batches and deal pages on 5 tokens a minute: no 429, >= 95 % spent."""
    run_mixed_day(client, keepa, manual_clock, hours=24)
    stats = keepa.stats()
    assert stats.throttled == 0
    assert stats.tokens_refilled >= 24 * 60 * 5 * 0.99
    assert stats.tokens_consumed >= 0.95 * stats.tokens_refilled


def test_token_status_is_free_and_typed(client, keepa):
    """token_status reads the envelope of the free /token call."""
    status = client.token_status()
    assert isinstance(status, TokenStatus)
    assert (status.tokens_left, status.refill_in, status.refill_rate) == (300, 60.0, 5)
    assert status.timestamp.tzinfo is not None
    assert keepa.stats().tokens_consumed == 0


def test_routine_status_checks_share_a_minimum_interval(client, keepa, manual_clock):
    """Status checks within status_interval answer from the newest envelope, without polling."""
    client.token_status()
    for _ in range(10):
        client.token_status()
        manual_clock.advance(5)
    assert keepa.stats().count("token") == 1
    manual_clock.advance(20)
    client.token_status()
    assert keepa.stats().count("token") == 2


def test_status_from_the_newest_envelope_is_projected_to_now(client, keepa, manual_clock):
    """A status answered without polling counts refill_in down and adds the refill steps passed."""
    manual_clock.advance(45)
    keepa.set_tokens(100)
    first = client.token_status()
    assert first.refill_in == 15
    manual_clock.advance(5)
    later = client.token_status()
    assert (later.tokens_left, later.refill_in) == (100, 10)
    assert (later.timestamp - first.timestamp).total_seconds() == 5
    manual_clock.advance(15)  # one step passed, 5 s into the next minute
    stepped = client.token_status()
    assert (stepped.tokens_left, stepped.refill_in) == (105, 55)
    assert keepa.stats().count("token") == 1
    assert keepa.tokens_left == 105


def test_default_bucket_models_the_account(client):
    """The default bucket: Keepa's deficit rule without a bound, an hour of refill, minute steps."""
    config = client.bucket.config
    assert config.capacity == 300
    assert config.refill.tokens_per_second == pytest.approx(5 / 60)
    assert config.deficit == DeficitRule.while_positive(math.inf)
    assert config.min_threshold == config.burst_threshold == 1
    assert config.refill_step == 60
    assert config.max_cost == math.inf
    assert config.in_flight == 3 * 30.0  # bookings on the wire survive syncs: 3 x the timeout


def test_capacity_is_configurable(make_client):
    """Keepa's cap is not documented: the default bucket's capacity can be set."""
    assert make_client(capacity=120).bucket.config.capacity == 120


def test_request_above_the_capacity_runs_as_keepa_would(client, keepa):
    """An offers=100 batch estimated far above the capacity is sent while the balance is positive."""
    products = client.products(keepa.catalog_asins(20), offers=100)
    assert len(products) == 20
    assert keepa.stats().count("product", 200) == 1


def test_products_are_chunked_to_keepas_limits(make_client, make_emulator):
    """250 ASINs take 3 requests (100 each); 110 with offers take 3 (50, 50, 10)."""
    big = make_emulator(api_key=SECRET, refill_per_min=10_000)
    client = make_client(base_url=big.url)
    assert len(client.products(big.catalog_asins(250))) == 250
    assert big.stats().count("product") == 3
    assert len(client.products(big.catalog_asins(110), offers=20)) == 110
    assert big.stats().count("product") == 6


def test_products_are_typed(client, keepa):
    """Products come back as Product with their ASIN and raw JSON."""
    asins = keepa.catalog_asins(3)
    products = client.products(asins, stats=30)
    assert [p.asin for p in products] == asins
    assert all(isinstance(p, Product) and p.raw["asin"] == p.asin for p in products)


def test_duplicate_asins_are_asked_once(client, keepa):
    """An ASIN listed twice is asked (and paid) once."""
    asin = keepa.catalog_asins(1)[0]
    assert len(client.products([asin, asin.lower()])) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"offers": "20"}, TypeError, "offers"),
        ({"offers": 5}, ValueError, "offers"),
        ({"stats": "4"}, TypeError, "stats"),
        ({"days": 4.0}, TypeError, "days"),
        ({"update": True}, TypeError, "update"),
        ({"buybox": 1}, TypeError, "buybox"),
        ({"history": "0"}, TypeError, "history"),
        ({"rating": None}, TypeError, "rating"),
    ],
)
def test_parameter_of_wrong_type_is_refused_before_sending(client, keepa, kwargs, error, named):
    """A parameter of the wrong type ("4" for an int) raises naming it; nothing is sent."""
    with pytest.raises(error, match=named):
        client.products(keepa.catalog_asins(1), **kwargs)
    assert keepa.stats().count("product") == 0


@pytest.mark.parametrize("asins", [[5], ["B0"], ["B0000000001,B0"], "B000"])
def test_malformed_asins_are_refused_before_sending(client, keepa, asins):
    """ASINs that are not 10 letters or digits raise before anything is sent."""
    with pytest.raises((TypeError, ValueError), match="asins"):
        client.products(asins)
    assert keepa.stats().count("product") == 0


def test_booleans_and_ints_reach_keepa_as_it_expects(client, keepa):
    """Flags are sent as 1/0 and numbers as ints: the emulator ignores no parameter."""
    client.products(
        keepa.catalog_asins(2),
        buybox=True,
        rating=True,
        history=False,
        stats=90,
        days=30,
        update=-1,
    )
    client.deals({"priceTypes": [PriceType.AMAZON], "isLowest": True, "salesRankRange": [1, 9999]})
    stats = keepa.stats()
    assert stats.ignored_parameters == {}
    assert stats.count(status=400) == 0


def test_deals_take_a_query_or_a_mapping(client):
    """deals() takes a DealQuery or a mapping of Keepa's fields, and returns a typed page."""
    page = client.deals({"priceTypes": [1], "sortType": 1, "dateRange": 0})
    assert isinstance(page, DealPage)
    assert page.page == 0
    assert page.deals
    assert all(d.asin and d.last_update > 0 for d in page.deals)
    same = client.deals(DealQuery(price_types=1, sort_type=1, date_range=0))
    assert [d.asin for d in same.deals] == [d.asin for d in page.deals]


def test_deal_page_argument_wins(client, keepa):
    """The page argument selects the page (and is validated)."""
    assert client.deals({"priceTypes": [1], "dateRange": 3}, page=1).page == 1
    with pytest.raises(TypeError, match="page"):
        client.deals({"priceTypes": [1]}, page="1")  # type: ignore[arg-type]
    assert keepa.stats().count("deal") == 1


def test_malformed_selection_is_refused_before_sending(client, keepa):
    """A selection with "week" for an int raises naming the field; nothing is sent."""
    with pytest.raises(TypeError, match="date_range"):
        client.deals({"priceTypes": [1], "dateRange": "week"})
    assert keepa.stats().count("deal") == 0


def test_api_key_comes_from_the_environment(monkeypatch, keepa, manual_clock):
    """api_key=None reads KEEPA_API_KEY."""
    monkeypatch.setenv("KEEPA_API_KEY", SECRET)
    with KeepaClient(base_url=keepa.url, clock=manual_clock) as client:
        assert client.token_status().tokens_left == 300


def test_missing_api_key_names_the_variable(monkeypatch):
    """Neither api_key nor KEEPA_API_KEY: a ValueError naming the variable."""
    monkeypatch.delenv("KEEPA_API_KEY", raising=False)
    with pytest.raises(ValueError, match="KEEPA_API_KEY"):
        KeepaClient()


@pytest.mark.parametrize("cls", [KeepaClient, AsyncKeepaClient])
def test_empty_api_key_is_a_value_error(cls):
    """api_key="" is a ValueError naming the argument and KEEPA_API_KEY."""
    with pytest.raises(ValueError, match=r"api_key.*KEEPA_API_KEY"):
        cls("")


def test_api_key_of_another_type_is_a_type_error():
    """A key that is not a str is a TypeError naming its type (never its value)."""
    with pytest.raises(TypeError, match="api_key must be a str, got a bytes"):
        KeepaClient(SECRET.encode())  # type: ignore[arg-type]


def test_repr_hides_the_key(client):
    """The client's repr names its URL and domain, never the key."""
    assert "<redacted>" in repr(client)
    assert_no_key(client, client._http, client._http._transport)


def test_every_request_is_logged_at_debug(client, keepa, caplog):
    """Each request is logged under tokenbudget_keepa with its costs, balance and wait."""
    client.products(keepa.catalog_asins(5))
    records = [r for r in caplog.records if r.name == "tokenbudget_keepa"]
    message = records[-1].getMessage()
    for part in (
        "/product",
        "status=200",
        "estimated=5",
        "consumed=5",
        "tokens_left=295",
        "waited=",
    ):
        assert part in message


def test_httpx_logs_urls_without_the_key(client, caplog):
    """httpx's INFO line carries the request URL, and the URL carries no key."""
    client.token_status()
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/token" in line for line in lines)


def test_user_bucket_is_used_and_synced(make_client, keepa, manual_clock):
    """A bucket given by the user is booked and synced from the envelopes."""
    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(math.inf),
        refill_step=60,
    )
    bucket = TokenBucket(config, clock=manual_clock)
    client = make_client(bucket=bucket)
    assert client.bucket is bucket
    keepa.spend(100)
    client.products(keepa.catalog_asins(10))
    assert bucket.snapshot().tokens == keepa.tokens_left == 190
    assert keepa.stats().count("token") == 0


def test_wrong_bucket_kind_is_refused(keepa):
    """A KeepaClient needs a TokenBucket (an AsyncTokenBucket is for AsyncKeepaClient)."""
    with pytest.raises(TypeError, match="bucket"):
        KeepaClient(SECRET, base_url=keepa.url, bucket="bucket")  # type: ignore[arg-type]


def test_logging_can_be_silenced(client, keepa, caplog):
    """With DEBUG off nothing is logged by the client."""
    caplog.set_level(logging.WARNING)
    client.products(keepa.catalog_asins(1))
    assert not [r for r in caplog.records if r.name == "tokenbudget_keepa"]


def test_bucket_events_reach_the_hook(make_client, keepa):
    """on_event receives the default bucket's events (admissions, settles, syncs)."""
    events = []
    client = make_client(on_event=events.append)
    client.products(keepa.catalog_asins(3))
    kinds = {e.kind for e in events}
    assert {"synced", "admitted", "settled"} <= kinds


def test_threads_share_one_client_without_a_429(client, keepa, manual_clock):
    """Four threads spending through one client on the shared clock: no 429, every answer real."""
    import threading

    asins = keepa.catalog_asins(400)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(6):
                start = ((n * 6 + i) * 20) % 400
                assert len(client.products(asins[start : start + 20], offers=20)) == 20
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert keepa.stats().throttled == 0
    assert keepa.stats().count("product", 200) == 24


def test_estimate_above_a_strict_user_bucket_is_booked_at_its_most(
    make_client, keepa, manual_clock
):
    """A user bucket that admits at most 100 at once still sends a batch estimated far above it."""
    strict = TokenBucket(
        BucketConfig(300, Rate.per_minute(5), min_threshold=1, refill_step=60),
        clock=manual_clock,
        tokens=300,
    )
    client = make_client(bucket=strict)
    assert strict.config.max_cost == 299
    assert len(client.products(keepa.catalog_asins(20), offers=100)) == 20
    assert keepa.stats().throttled == 0
