"""The tutorial's demo API over loopback, and the tutorial's loop against it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.demo_api import DemoAPI
from tokenbudget import BucketConfig, ManualClock, Rate, TokenBucket


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def api(clock: ManualClock) -> Iterator[DemoAPI]:
    with DemoAPI(capacity=60, refill_per_second=1, clock=clock) as running:
        yield running


@pytest.fixture
def client(api: DemoAPI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url) as http:
        yield http


def search(client, bucket, query, *, limit=10, attempts=3):
    """The tutorial's loop body (docs/tutorial.md): book, call, settle, sync; 429: wait, retry."""
    for _ in range(attempts):
        reservation = bucket.reserve(limit)
        bucket.clock.sleep(reservation.delay)
        response = client.get("/search", params={"q": query, "limit": limit})
        if response.status_code == 429:
            reservation.settle(0)
            bucket.sync(int(response.headers["RateLimit-Remaining"]))
            bucket.clock.sleep(float(response.headers["Retry-After"]))
            continue
        response.raise_for_status()
        body = response.json()
        reservation.settle(body["cost"])
        bucket.sync(int(response.headers["RateLimit-Remaining"]))
        return body["results"]
    raise RuntimeError(f"{query!r} still refused after {attempts} attempts")


def test_quota_is_free_and_reports_the_budget(api, client):
    """GET /quota answers the budget and charges nothing."""
    for _ in range(3):
        response = client.get("/quota")
    assert response.json() == {"limit": 60, "remaining": 60, "refill_per_second": 1.0}
    assert response.headers["RateLimit-Remaining"] == "60"
    assert api.charged == 0


def test_search_charges_one_token_per_result(api, client):
    """A search costs the number of results it returns, and the header shows what is left."""
    response = client.get("/search", params={"q": "berry", "limit": 20})
    assert response.json()["cost"] == len(response.json()["results"]) == 13
    assert response.headers["RateLimit-Remaining"] == "47"
    assert response.headers["RateLimit-Limit"] == "60"


def test_search_without_results_costs_one_token(api, client):
    """A search that finds nothing still costs one token."""
    response = client.get("/search", params={"q": "xyz", "limit": 5})
    assert response.json() == {"query": "xyz", "results": [], "cost": 1}
    assert api.charged == 1


def test_over_budget_is_429_with_retry_after(api, client):
    """A limit above the balance is refused with 429, the balance and whole seconds to wait."""
    client.get("/search", params={"q": "e", "limit": 39})
    response = client.get("/search", params={"q": "a", "limit": 30})
    assert response.status_code == 429
    assert response.headers["RateLimit-Remaining"] == "21"
    assert response.headers["Retry-After"] == "9"
    assert api.refused == 1
    assert api.charged == 39


def test_budget_refills_on_the_api_clock(api, client, clock):
    """The API's balance refills at its rate, on the clock it was given, up to its capacity."""
    client.get("/search", params={"q": "e", "limit": 39})
    clock.advance(10)
    assert client.get("/quota").json()["remaining"] == 31
    clock.advance(3600)
    assert client.get("/quota").json()["remaining"] == 60


def test_bad_requests_are_refused_without_charge(api, client):
    """An unknown path is 404 and a bad limit 400; neither costs a token."""
    assert client.get("/nope").status_code == 404
    assert client.get("/search", params={"q": "a", "limit": "many"}).status_code == 400
    assert client.get("/search", params={"q": "a", "limit": 0}).status_code == 400
    assert api.charged == 0


def test_url_needs_a_running_api():
    """Asking a stopped API for its URL says to start it."""
    with pytest.raises(RuntimeError, match="start"):
        _ = DemoAPI().url


def test_loop_recovers_from_a_429_after_retry_after(api, client, clock):
    """Spent behind the bucket's back, the loop is refused once, waits Retry-After and succeeds."""
    bucket = TokenBucket(BucketConfig(60, Rate.per_minute(60)), clock=clock, tokens=0)
    bucket.sync(client.get("/quota").json()["remaining"])
    client.get("/search", params={"q": "e", "limit": 39})
    assert len(search(client, bucket, "berry", limit=30)) == 13
    assert (api.refused, clock.now()) == (1, 9.0)
    assert bucket.snapshot().tokens == 17.0


def test_loop_gives_up_after_its_attempts(api, client, clock):
    """A loop refused on every attempt raises instead of retrying forever."""
    bucket = TokenBucket(BucketConfig(60, Rate.per_minute(60)), clock=clock, tokens=60)
    client.get("/search", params={"q": "e", "limit": 39})
    with pytest.raises(RuntimeError, match="still refused after 1 attempts"):
        search(client, bucket, "berry", limit=30, attempts=1)


def test_loop_in_real_time_is_never_refused():
    """In real time, a bucket synced from the headers keeps a fast loop free of 429s."""
    with (
        DemoAPI(capacity=20, refill_per_second=200) as api,
        httpx.Client(base_url=api.url) as client,
    ):
        bucket = TokenBucket(BucketConfig(20, Rate.per_second(200)), tokens=0)
        bucket.sync(client.get("/quota").json()["remaining"])
        found = [len(search(client, bucket, q)) for q in ["berry", "an", "ap", "ch", "q"] * 4]
    assert found == [10, 10, 6, 3, 3] * 4
    assert api.refused == 0
    assert api.charged == 32 * 4
