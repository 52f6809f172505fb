"""Requests in flight at once: a request that takes the account into debt never overtakes earlier ones.

Both clients, over loopback HTTP against the emulator on a shared ``ManualClock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time

import pytest

from tokenbudget import ManualClock
from tokenbudget_keepa import AsyncKeepaClient, DealQuery, KeepaClient, KeepaServerError, PriceType
from tokenbudget_keepa.testing import Fault, KeepaEmulator

from ._client_fixtures import SECRET


pytestmark = pytest.mark.usefixtures("no_key_in_logs")

QUERY = DealQuery(price_types=PriceType.NEW, sort_type=1, date_range=0)
#: Simulated hours per mixed run; a run stops after WALL real seconds once it has sent at
#: least ENOUGH requests and spent the account once (the clock moves only when a request
#: waits for the refill), and after MAX_WALL real seconds in any case (a loaded machine).
HOURS = 6
WALL = 1.5
ENOUGH = 25
MAX_WALL = 60.0


def _keep_going(clock: ManualClock, keepa: KeepaEmulator, began: float) -> bool:
    """Whether a mixed run goes on: simulated time left, and real time, too few requests or
    an account not yet spent (the first exhaustion, with ten requests on the wire, is where
    an estimate below a true cost would meet a 429: a slow machine must get there too)."""
    if clock.now() >= HOURS * 3600:
        return False
    spent = time.monotonic() - began
    if spent >= MAX_WALL:
        return False
    return spent < WALL or clock.now() == 0.0 or keepa.stats().total_requests <= ENOUGH


def test_async_debt_request_waits_for_earlier_answers(make_emulator, manual_clock):
    """Async: a batch that takes the balance into debt is sent only after the deal before it."""
    keepa = make_emulator(api_key=SECRET, tokens=10)

    async def main() -> tuple[int, int]:
        async with AsyncKeepaClient(
            SECRET, base_url=keepa.url, clock=manual_clock, max_token_retries=0
        ) as client:
            await client.token_status()
            keepa.inject(Fault.slow(0.3), endpoint="deal")
            deal = asyncio.create_task(client.deals(QUERY))
            await asyncio.sleep(0.05)  # the deal is on the wire, charged, not answered
            batch = asyncio.create_task(client.products(keepa.catalog_asins(20), offers=20))
            await asyncio.sleep(0.15)
            seen = keepa.stats().count("product"), keepa.stats().count("deal")
            await asyncio.gather(deal, batch)
            return seen

    assert asyncio.run(main()) == (0, 1)
    assert keepa.stats().throttled == 0


def test_sync_debt_request_waits_for_earlier_answers(make_emulator, manual_clock):
    """Threads: a batch that takes the balance into debt is sent only after the deal before it."""
    keepa = make_emulator(api_key=SECRET, tokens=10)
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock, max_token_retries=0) as client:
        client.token_status()
        keepa.inject(Fault.slow(0.3), endpoint="deal")
        deal = threading.Thread(target=client.deals, args=(QUERY,))
        deal.start()
        time.sleep(0.05)
        batch = threading.Thread(
            target=client.products, args=(keepa.catalog_asins(20),), kwargs={"offers": 20}
        )
        batch.start()
        time.sleep(0.15)
        seen = keepa.stats().count("product"), keepa.stats().count("deal")
        deal.join()
        batch.join()
    assert seen == (0, 1)
    assert keepa.stats().throttled == 0


def _mixed(client_call, asins, counter):  # type: ignore[no-untyped-def]
    """The i-th request of a mixed run: a deal page every fourth, else an offers=20 batch."""
    i = next(counter)
    if i % 4 == 0:
        return client_call("deals", QUERY)
    start = (i * 20) % len(asins)
    return client_call("products", asins[start : start + 20], offers=20)


@pytest.mark.parametrize("rate", [20, 50, 100])
def test_async_many_tasks_never_meet_a_429(rate):
    """10 tasks of offers batches and deal pages, simulated hours: no 429 at any rate."""
    clock = ManualClock()
    with KeepaEmulator(api_key=SECRET, refill_per_min=rate, clock=clock) as keepa:
        asins = keepa.catalog_asins(1000)
        began = time.monotonic()

        async def main() -> None:
            counter = itertools.count()
            async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=clock) as client:

                async def call(name, *args, **kwargs):  # type: ignore[no-untyped-def]
                    return await getattr(client, name)(*args, **kwargs)

                async def worker() -> None:
                    while _keep_going(clock, keepa, began):
                        await _mixed(call, asins, counter)

                await asyncio.gather(*(worker() for _ in range(10)))

        asyncio.run(main())
        stats = keepa.stats()
    assert stats.total_requests > 20
    assert clock.now() > 0  # the account was spent once: requests waited for the refill
    assert stats.throttled == 0


@pytest.mark.parametrize("rate", [20, 50, 100])
def test_threads_sharing_a_client_never_meet_a_429(rate):
    """8 threads on one KeepaClient, offers batches and deal pages: no 429 at any rate."""
    clock = ManualClock()
    with (
        KeepaEmulator(api_key=SECRET, refill_per_min=rate, clock=clock) as keepa,
        KeepaClient(SECRET, base_url=keepa.url, clock=clock) as client,
    ):
        asins = keepa.catalog_asins(1000)
        counter = itertools.count()
        began = time.monotonic()

        def call(name, *args, **kwargs):  # type: ignore[no-untyped-def]
            return getattr(client, name)(*args, **kwargs)

        def worker() -> None:
            while _keep_going(clock, keepa, began):
                _mixed(call, asins, counter)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = keepa.stats()
    assert stats.total_requests > 20
    assert clock.now() > 0  # the account was spent once: requests waited for the refill
    assert stats.throttled == 0


@pytest.mark.parametrize("seed", [1])
def test_backoffs_wait_for_the_wire_on_a_shared_clock(seed):
    """Tasks backing off from 500s never move a shared clock past requests on the wire."""
    clock = ManualClock()
    with KeepaEmulator(
        api_key=SECRET, refill_per_min=5, clock=clock, history_minutes=60, seed=seed
    ) as keepa:
        keepa.set_fault_share(0.2)

        async def main() -> None:
            async with AsyncKeepaClient(
                SECRET, base_url=keepa.url, clock=clock, timeout=1, backoff=5, max_backoff=5
            ) as client:

                async def worker() -> None:
                    while clock.now() < 3600:
                        with contextlib.suppress(KeepaServerError):
                            await client.deals(QUERY)

                await asyncio.gather(*(worker() for _ in range(10)))

        asyncio.run(main())
        stats = keepa.stats()
    assert stats.faults_injected > 0
    assert stats.throttled == 0


#: Catalog ASINs of the default emulator with offers=20: the first costs 6, the fourth 12.
CHEAP, DEAR = 0, 3


def _offer_costs(keepa: KeepaEmulator) -> tuple[str, str]:
    """The cheap and the dear ASIN, their costs checked on the emulator itself."""
    asins = keepa.catalog_asins(DEAR + 1)
    return asins[CHEAP], asins[DEAR]


def test_async_debt_request_rechecks_the_balance_once_the_wire_is_answered(
    make_emulator, manual_clock
):
    """A request into debt waits for the wire, then goes only if the account can still pay.

    The product on the wire was booked at the cost learned (6) but costs 12: its answer
    shows the account at -3. The deal booked meanwhile (3 left in the bucket, -2 after it:
    into debt) must not be sent then (Keepa refuses at zero): it waits for the refill.
    """
    keepa = make_emulator(api_key=SECRET, tokens=15)
    cheap, dear = _offer_costs(keepa)

    async def main() -> None:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
            await client.products(cheap, offers=20)  # 6 a product learned; 9 left
            assert keepa.tokens_left == 9
            keepa.inject(Fault.slow(0.3), endpoint="product")
            batch = asyncio.create_task(client.products(dear, offers=20))  # booked 6, costs 12
            await asyncio.sleep(0.1)  # charged on arrival (-3), not answered
            assert keepa.tokens_left == -3
            deal = asyncio.create_task(client.deals(QUERY))  # the bucket's 3 - 5: into debt
            await asyncio.gather(batch, deal)

    asyncio.run(main())
    stats = keepa.stats()
    assert stats.count("deal", 200) == 1
    assert stats.throttled == 0


def test_sync_debt_request_rechecks_the_balance_once_the_wire_is_answered(
    make_emulator, manual_clock
):
    """Threads: as the async test above."""
    keepa = make_emulator(api_key=SECRET, tokens=15)
    cheap, dear = _offer_costs(keepa)
    with KeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
        client.products(cheap, offers=20)
        assert keepa.tokens_left == 9
        keepa.inject(Fault.slow(0.3), endpoint="product")
        batch = threading.Thread(target=client.products, args=(dear,), kwargs={"offers": 20})
        batch.start()
        time.sleep(0.1)
        assert keepa.tokens_left == -3
        deal = threading.Thread(target=client.deals, args=(QUERY,))
        deal.start()
        batch.join()
        deal.join()
    stats = keepa.stats()
    assert stats.count("deal", 200) == 1
    assert stats.throttled == 0


def test_async_request_leaves_room_for_what_requests_on_the_wire_may_cost(
    make_emulator, manual_clock
):
    """A request is sent at once only if the account can pay it whatever those on the wire cost.

    The product on the wire is booked at the cost learned (6) but may cost up to 12 (two
    pages of offers): it does, and leaves the account at 0. The deal after it would leave
    the bucket at 1 if the batch cost 6: sent at once it arrives after the batch and meets
    a refusal. It waits for the batch's answer, then for the refill.
    """
    keepa = make_emulator(api_key=SECRET, tokens=18)
    cheap, dear = _offer_costs(keepa)

    async def main() -> None:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
            await client.products(cheap, offers=20)  # 12 left
            keepa.inject(Fault.slow(0.3), endpoint="product")
            batch = asyncio.create_task(client.products(dear, offers=20))
            await asyncio.sleep(0.1)
            assert keepa.tokens_left == 0
            deal = asyncio.create_task(client.deals(QUERY))  # the bucket's 6 - 5 = 1
            await asyncio.gather(batch, deal)

    asyncio.run(main())
    stats = keepa.stats()
    assert stats.count("deal", 200) == 1
    assert stats.throttled == 0
