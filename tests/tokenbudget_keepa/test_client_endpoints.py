"""The rest of Keepa's API in both clients, over loopback against the emulator.

Each endpoint makes a round trip in :class:`KeepaClient` and :class:`AsyncKeepaClient`,
booked at its bound and settled to what the emulator charged; bad parameters
are typed errors naming the parameter before anything is sent; the page
iterators stop early without paying for pages not read; and a day of mixed
traffic on a 20-tokens-a-minute account meets no 429 and spends the refill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tokenbudget import ManualClock
from tokenbudget_keepa import (
    AsyncKeepaClient,
    Category,
    FinderPage,
    FinderQuery,
    KeepaClient,
    KeepaProtocolError,
    LightningDeal,
    Product,
    Seller,
)
from tokenbudget_keepa._client.clients import _Answer
from tokenbudget_keepa._client.endpoints import finder_call
from tokenbudget_keepa.testing import Fault, KeepaEmulator

from ._client_fixtures import SECRET


pytestmark = pytest.mark.usefixtures("no_key_in_logs")

#: How each endpoint is called (the same arguments in both clients).
CALLS: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    "finder": ("product_finder", ({"current_SALES_gte": 1},), {"per_page": 120}),
    "best_sellers": ("best_sellers", (172282,), {"range": 90}),
    "categories": ("categories", ([1722821, 283155],), {"parents": True}),
    "category_search": ("category_search", ("electronics",), {}),
    "search": ("search", ("lamp",), {"page": 0}),
    "sellers": ("sellers", (["A2L77EE7U53NWQ", "UNKNOWN0001"],), {}),
    "lightning_deals": ("lightning_deals", (), {"state": "AVAILABLE"}),
}


def run(
    keepa: KeepaEmulator, clock: ManualClock, flavour: str, method: str, *args: Any, **kwargs: Any
) -> Any:
    """Call *method* in a fresh client of *flavour* (``sync`` or ``async``) on the emulator."""
    options: dict[str, Any] = {"api_key": SECRET, "base_url": keepa.url, "clock": clock}
    if flavour == "sync":
        with KeepaClient(**options) as client:
            return getattr(client, method)(*args, **kwargs)

    async def main() -> Any:
        async with AsyncKeepaClient(**options) as client:
            return await getattr(client, method)(*args, **kwargs)

    return asyncio.run(main())


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    """Each test runs in both clients."""
    return str(request.param)


def check_result(name: str, result: Any, keepa: KeepaEmulator) -> None:
    """What each endpoint's typed result must hold on the emulator's data."""
    catalog = keepa._catalog  # the emulator's seeded truth
    if name == "finder":
        assert isinstance(result, FinderPage)
        assert len(result.asins) == 120
        assert result.total_results >= 120
        assert (result.page, result.page_size) == (0, 120)
    elif name == "best_sellers":
        assert result
        ranks = [catalog.traits(a).sales_rank for a in result]
        assert ranks == sorted(ranks)
    elif name == "categories":
        assert set(result) == {1722821, 283155, 172282}
        assert all(isinstance(c, Category) for c in result.values())
        assert result[1722821].parent == 172282
    elif name == "category_search":
        assert result[172282].name == "Electronics"
    elif name == "search":
        assert 0 < len(result) <= 10
        assert all(isinstance(p, Product) and "lamp" in (p.title or "").lower() for p in result)
    elif name == "sellers":
        assert list(result) == ["A2L77EE7U53NWQ"]
        assert isinstance(result["A2L77EE7U53NWQ"], Seller)
    else:
        assert result
        assert all(isinstance(d, LightningDeal) and d.state == "AVAILABLE" for d in result)


EXPECTED_COST = {
    "finder": 12,
    "best_sellers": 50,
    "categories": 1,
    "category_search": 1,
    "search": 10,
    "sellers": 1,
    "lightning_deals": 500,
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_endpoint_round_trips_and_settles_what_keepa_charged(
    make_emulator: Callable[..., KeepaEmulator],
    manual_clock: ManualClock,
    flavour: str,
    name: str,
) -> None:
    """A round trip over loopback; the emulator charges the documented cost, never a 429."""
    keepa = make_emulator(api_key=SECRET, refill_per_min=20)
    method, args, kwargs = CALLS[name]
    result = run(keepa, manual_clock, flavour, method, *args, **kwargs)
    check_result(name, result, keepa)
    stats = keepa.stats()
    assert stats.tokens_consumed == EXPECTED_COST[name]
    assert stats.throttled == 0


def test_the_booking_is_settled_to_tokens_consumed(
    keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """After a finder page booked at 12 that cost 11, the bucket holds what Keepa says."""
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
        client.token_status()
        page = client.product_finder({"brand": ["acme"], "title": "lamp"}, per_page=150)
        assert len(page.asins) < 100  # a dearer bound (12) than the cost (11)
        assert keepa.stats().tokens_consumed == 11
        assert client.bucket.snapshot().tokens == pytest.approx(keepa.tokens_left, abs=1e-6)


def test_without_tokens_consumed_the_documented_cost_settles(
    keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """The settle figure of an answer without tokensConsumed is Keepa's documented cost."""
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
        call = client._endpoint_call(finder_call(1, {"brand": ["x"]}, per_page=500))
        body = {"asinList": ["B000000001"] * 101, "totalResults": 101}
        answer = _Answer(200, None, body, None)
        assert call.bound == 15
        assert client._consumed(answer, call.bound, call) == 12


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "error", "name"),
    [
        ("product_finder", ({"current_NEW_gte": "cheap"},), {}, TypeError, "current_NEW_gte"),
        ("product_finder", ({"brand": ["x"]},), {"per_page": 20}, ValueError, "per_page"),
        ("product_finder", ({},), {}, ValueError, "filter"),
        ("best_sellers", (172282,), {"range": 7}, ValueError, "range"),
        ("categories", ([],), {}, ValueError, "ids"),
        ("category_search", ("tv",), {}, ValueError, "term"),
        ("search", ("lamp",), {"page": 10}, ValueError, "page"),
        ("sellers", (["A1", "A2"],), {}, ValueError, r"ids\[0\]"),
        (
            "sellers",
            (["A2L77EE7U53NWQ", "A1NOTFOUND00"],),
            {"storefront": True},
            ValueError,
            "storefront",
        ),
        ("lightning_deals", ("B00",), {}, ValueError, "asin"),
        ("iter_product_finder", ({"brand": ["x"]},), {"first_page": -1}, ValueError, "page"),
        ("iter_search", ("lamp",), {"first_page": 10}, ValueError, "page"),
    ],
)
def test_bad_parameters_are_typed_errors_before_anything_is_sent(
    keepa: KeepaEmulator,
    manual_clock: ManualClock,
    flavour: str,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    name: str,
) -> None:
    """The error names the parameter, and the emulator saw no request at all."""
    options: dict[str, Any] = {"api_key": SECRET, "base_url": keepa.url, "clock": manual_clock}
    if flavour == "sync":
        with KeepaClient(**options) as client, pytest.raises(error, match=name):
            getattr(client, method)(*args, **kwargs)
    else:

        async def main() -> None:
            async with AsyncKeepaClient(**options) as client:
                with pytest.raises(error, match=name):
                    await call_maybe_async(getattr(client, method), *args, **kwargs)

        asyncio.run(main())
    assert keepa.stats().total_requests == 0


async def call_maybe_async(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await what *method* returns if it is a coroutine (iterators are built at once)."""
    outcome = method(*args, **kwargs)
    return (await outcome) if asyncio.iscoroutine(outcome) else outcome


def test_a_domain_keepa_does_not_serve_is_refused_by_name(
    keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """Best sellers are not served for Brazil (12): refused before sending."""
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock, domain=12) as client:
        with pytest.raises(ValueError, match="domain"):
            client.best_sellers(172282)
        assert client.product_finder({"brand": ["acme"]}).page == 0  # the finder serves 12
    assert keepa.stats().count("bestsellers") == 0


def test_iter_product_finder_pays_only_for_pages_read(
    keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """Breaking after two pages sends two finder requests, and pays for two."""
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
        pages = client.iter_product_finder(FinderQuery(current_SALES_gte=1), per_page=100)
        assert keepa.stats().count("query") == 0  # nothing asked before the loop wants it
        seen = []
        for page in pages:
            seen.append(page)
            if len(seen) == 2:
                break
        assert [p.page for p in seen] == [0, 1]
        assert keepa.stats().count("query") == 2
        assert keepa.stats().tokens_consumed == 22


def test_iter_product_finder_stops_after_the_last_page(
    keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """The iteration ends after the first page holding fewer ASINs than a page can."""
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
        pages = list(client.iter_product_finder({"brand": ["acme"], "title": "lamp"}))
    total = pages[0].total_results
    assert 50 < total < 100
    assert [len(p.asins) for p in pages] == [50, total - 50]
    assert pages[-1].is_last
    assert keepa.stats().count("query") == 2


def test_async_iter_search_stops_early_and_at_the_end(
    keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """async for over search pages: one page read, one paid; all pages end on a short one."""

    async def main() -> tuple[int, int]:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
            async for first in client.iter_search("lamp"):
                assert len(first) == 10
                break
            asked = keepa.stats().count("search")
            pages = [page async for page in client.iter_search("kettle")]
            assert len(pages[-1]) < 10 or len(pages) == 10
            return asked, len(pages)

    asked, count = asyncio.run(main())
    assert asked == 1
    assert keepa.stats().count("search") == 1 + count


def test_async_iter_product_finder(keepa: KeepaEmulator, manual_clock: ManualClock) -> None:
    """async for over finder pages pays per page read."""

    async def main() -> list[FinderPage]:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
            out = []
            async for page in client.iter_product_finder({"current_SALES_gte": 1}):
                out.append(page)
                if len(out) == 3:
                    break
            return out

    pages = asyncio.run(main())
    assert [len(p.asins) for p in pages] == [50, 50, 50]
    assert keepa.stats().tokens_consumed == 33


def test_a_bad_answer_is_a_protocol_error(keepa: KeepaEmulator, manual_clock: ManualClock) -> None:
    """A malformed answer to a finder request is a KeepaProtocolError, after bounded retries."""
    keepa.inject(Fault.malformed_json(), endpoint="query")
    with (
        KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock, max_retries=0) as client,
        pytest.raises(KeepaProtocolError),
    ):
        client.product_finder({"brand": ["acme"]})


def test_a_429_is_waited_out_for_the_new_endpoints(
    make_emulator: Callable[..., KeepaEmulator], manual_clock: ManualClock
) -> None:
    """Another spender empties the account behind the client's back: one 429, then the answer."""
    keepa = make_emulator(api_key=SECRET, refill_per_min=20)
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
        client.token_status()
        keepa.set_tokens(0)
        assert client.best_sellers(172282)
    assert keepa.stats().tokens_consumed == 50


# -- a day of mixed traffic --------------------------------------------------------------------

CATEGORY_CYCLE = (172282, 1055398, 165793011, 283155)


def mixed_day(client: KeepaClient, keepa: KeepaEmulator, clock: ManualClock) -> None:
    """A deal page, an offers batch, a finder page and a best seller list, round after round.

    Few requests (a few hundred) spend the day's 28,800 tokens: the test runs in seconds.
    """
    end = clock.now() + 24 * 3600
    asins = keepa.catalog_asins(2000)
    step = 0
    while clock.now() < end:
        client.deals({"priceTypes": [1], "dateRange": 0}, page=0)
        start = (step * 20) % 1980
        client.products(asins[start : start + 20], offers=20)
        client.product_finder({"current_SALES_gte": 1}, page=step % 10, per_page=1000)
        client.best_sellers(CATEGORY_CYCLE[step % len(CATEGORY_CYCLE)])
        step += 1


@pytest.mark.heavy
def test_a_day_of_mixed_traffic_meets_no_429_and_spends_the_refill(
    make_emulator: Callable[..., KeepaEmulator], manual_clock: ManualClock
) -> None:
    """24 simulated hours on 20 tokens a minute: zero 429s, at least 95 % of the refill spent."""
    keepa = make_emulator(api_key=SECRET, refill_per_min=20, history_minutes=60)
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
        mixed_day(client, keepa, manual_clock)
    stats = keepa.stats()
    assert stats.throttled == 0
    assert stats.count("bestsellers") > 0
    assert stats.count("query") > 0
    assert stats.tokens_consumed >= 0.95 * stats.tokens_refilled, stats


def test_an_async_burst_of_mixed_requests_meets_no_429(
    make_emulator: Callable[..., KeepaEmulator], manual_clock: ManualClock
) -> None:
    """Concurrent finder pages, best sellers and deals in one event loop: zero 429s."""
    keepa = make_emulator(api_key=SECRET, refill_per_min=20)

    async def main() -> None:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
            jobs: list[Coroutine[Any, Any, Any]] = []
            for i in range(12):
                jobs.append(client.product_finder({"current_SALES_gte": 1}, page=i, per_page=200))
                jobs.append(client.best_sellers(CATEGORY_CYCLE[i % 4]))
                jobs.append(client.deals({"priceTypes": [1]}))
            await asyncio.gather(*jobs)

    asyncio.run(main())
    stats = keepa.stats()
    assert stats.throttled == 0
    assert stats.tokens_consumed == 12 * 12 + 12 * 50 + 12 * 5
