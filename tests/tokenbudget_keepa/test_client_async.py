"""AsyncKeepaClient over loopback HTTP: many requests in flight, no 429, never blocking the loop."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from tokenbudget import AsyncTokenBucket, BucketConfig, DeficitRule, ManualClock, Rate
from tokenbudget_keepa import (
    AsyncKeepaClient,
    DealQuery,
    KeepaAuthError,
    KeepaServerError,
    PriceType,
)
from tokenbudget_keepa.testing import Fault

from ._client_fixtures import SECRET, assert_no_key


pytestmark = pytest.mark.usefixtures("no_key_in_logs")

QUERY = DealQuery(price_types=PriceType.NEW, sort_type=1, date_range=0)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def client_of(keepa, clock, **kwargs) -> AsyncKeepaClient:  # type: ignore[no-untyped-def]
    return AsyncKeepaClient(SECRET, base_url=keepa.url, clock=clock, **kwargs)


def test_ten_in_flight_spend_the_refill_without_a_429(keepa, manual_clock):
    """A simulated day, 10 tasks of offers batches and deal pages: no 429, >= 95 % spent."""
    asins = keepa.catalog_asins(2000)
    hours = 24

    async def main() -> None:
        counter = itertools.count()
        async with client_of(keepa, manual_clock) as client:

            async def worker() -> None:
                while manual_clock.now() < hours * 3600:
                    i = next(counter)
                    if i % 4 == 0:
                        await client.deals(QUERY)
                    else:
                        start = (i * 20) % len(asins)
                        found = await client.products(asins[start : start + 20], offers=20)
                        assert len(found) == 20

            await asyncio.gather(*(worker() for _ in range(10)))

    run(main())
    stats = keepa.stats()
    assert stats.throttled == 0
    assert stats.tokens_refilled >= hours * 60 * 5 * 0.99
    assert stats.tokens_consumed >= 0.95 * stats.tokens_refilled


def test_requests_admitted_now_travel_together(make_emulator, manual_clock):
    """On a full account, requests the bucket admits now are on the wire at the same time."""
    keepa = make_emulator(api_key=SECRET, refill_per_min=1000)

    async def main() -> int:
        async with client_of(keepa, manual_clock) as client:
            await client.token_status()
            keepa.inject(*[Fault.slow(3.0)] * 5, endpoint="deal")
            tasks = [asyncio.create_task(client.deals(QUERY)) for _ in range(5)]
            # Every request arrives while no answer has left yet (each is held 3 s; the
            # loop gives a loaded machine 2.5 s for the five to arrive).
            loop = asyncio.get_running_loop()
            until = loop.time() + 2.5
            while (arrived := keepa.stats().count("deal")) < 5 and loop.time() < until:  # noqa: ASYNC110 -- polls a server in another thread
                await asyncio.sleep(0.05)
            assert not any(t.done() for t in tasks)
            await asyncio.gather(*tasks)
            return arrived

    assert run(main()) == 5
    assert manual_clock.now() == 0


def test_a_waiting_request_books_after_the_answers_on_the_wire(keepa, manual_clock):
    """A request that must wait books once the earlier answers settled: its wait is exact."""
    keepa.set_tokens(1)

    async def main() -> None:
        async with client_of(keepa, manual_clock) as client:
            await client.token_status()
            keepa.inject(Fault.slow(0.2), endpoint="product")
            first = asyncio.create_task(client.products(keepa.catalog_asins(20), offers=20))
            await asyncio.sleep(0)
            await client.deals(QUERY)
            await first

    run(main())
    stats = keepa.stats()
    assert stats.throttled == 0
    batch = stats.tokens_consumed - 5
    # The deal waited from 1 - batch tokens until the balance was >= 1 again: whole steps of 5.
    assert manual_clock.now() == pytest.approx(math.ceil(batch / 5) * 60)


def test_cancelled_waiting_request_returns_its_booking(make_emulator):
    """Cancelling a task while it waits for tokens (real time) leaves no booking behind."""
    keepa = make_emulator(api_key=SECRET, refill_per_min=600, refill_step=0.1, clock=None)
    keepa.set_tokens(-20)  # about 2 s of refill to wait for

    async def main() -> None:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, refill_step=0.1) as client:
            await client.token_status()
            task = asyncio.create_task(client.deals(QUERY))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            snap = await client.bucket.snapshot()
            assert snap.pending == 0
            assert snap.tokens >= -20  # the booking's 5 tokens came back

    run(main())
    assert keepa.stats().count("deal") == 0


def test_never_blocks_the_event_loop(make_emulator):
    """While the client waits for a refill (real time), other tasks keep running."""
    keepa = make_emulator(api_key=SECRET, refill_per_min=600, refill_step=0.1, clock=None)
    keepa.set_tokens(-5)  # four steps of 1 token: about 0.4 s

    async def main() -> int:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, refill_step=0.1) as client:
            await client.deals(QUERY)
        done = True
        await tick
        return ticks

    assert run(main()) >= 10
    assert keepa.stats().throttled <= 1


def test_async_wrong_key_is_an_auth_error(keepa, manual_clock):
    """HTTP 402 raises KeepaAuthError at once, without the key in it."""

    async def main() -> None:
        async with AsyncKeepaClient(
            "another-key-42", base_url=keepa.url, clock=manual_clock
        ) as client:
            with pytest.raises(KeepaAuthError) as excinfo:
                await client.deals(QUERY)
            assert "another-key-42" not in str(excinfo.value)
            assert_no_key(excinfo.value, client)

    run(main())
    assert keepa.stats().total_requests == 1


def test_async_server_errors_are_retried_then_raised(keepa, manual_clock):
    """5xx: bounded retries with backoff on the clock, then KeepaServerError."""

    async def main() -> None:
        async with client_of(keepa, manual_clock, max_retries=2) as client:
            await client.token_status()
            keepa.inject(*[Fault.server_error(500)] * 3, endpoint="deal")
            with pytest.raises(KeepaServerError) as excinfo:
                await client.deals(QUERY)
            assert excinfo.value.attempts == 3

    run(main())
    assert keepa.stats().count("deal", 500) == 3


def test_bucket_is_built_by_the_first_answer(keepa, manual_clock):
    """The default bucket does not exist before the first answer, then models the account."""

    async def main() -> None:
        async with client_of(keepa, manual_clock) as client:
            with pytest.raises(RuntimeError, match="token_status"):
                _ = client.bucket
            status = await client.token_status()
            assert status.tokens_left == 300
            assert client.bucket.config.capacity == 300
            assert client.bucket.config.deficit == DeficitRule.while_positive(math.inf)

    run(main())


def test_async_user_bucket_is_synced(keepa, manual_clock):
    """A user's AsyncTokenBucket is booked and synced from the envelopes."""
    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(math.inf),
        refill_step=60,
    )

    async def main() -> None:
        bucket = AsyncTokenBucket(config, clock=manual_clock)
        async with client_of(keepa, manual_clock, bucket=bucket) as client:
            keepa.spend(50)
            await client.products(keepa.catalog_asins(10))
            assert (await bucket.snapshot()).tokens == keepa.tokens_left == 240

    run(main())


def test_async_rejects_a_sync_bucket(keepa):
    """An AsyncKeepaClient needs an AsyncTokenBucket."""
    from tokenbudget import TokenBucket

    sync_bucket = TokenBucket(BucketConfig(10, Rate.per_second(1)), clock=ManualClock())
    with pytest.raises(TypeError, match="AsyncTokenBucket"):
        AsyncKeepaClient(SECRET, base_url=keepa.url, bucket=sync_bucket)  # type: ignore[arg-type]
