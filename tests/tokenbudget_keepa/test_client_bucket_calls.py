"""How many times a request goes to the default bucket's backend (issue 17, performance).

A request admitted now is booked (one ``apply``: the booking carries the
balance it left, so the send gate needs no snapshot) and settled and synced
from its answer in one ``apply_many`` (one hold of the memory backend's lock).
The same in both clients.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tokenbudget import MemoryBackend
from tokenbudget_keepa import AsyncKeepaClient

from ._client_fixtures import SECRET


@pytest.fixture
def backend_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The memory backends' calls by method (and the requests each ``apply_many`` applied)."""
    calls: Counter[str] = Counter()
    for name in ("apply", "apply_many", "observe"):
        original: Callable[..., Any] = getattr(MemoryBackend, name)

        def counted(self: MemoryBackend, *args: Any, _name: str = name, _f: Any = original) -> Any:
            calls[_name] += 1
            if _name == "apply_many":
                calls["applied together"] += len(args[-1])
            return _f(self, *args)

        monkeypatch.setattr(MemoryBackend, name, counted)
    return calls


def test_a_request_is_one_booking_and_one_settle_and_sync(make_client, keepa, backend_calls):
    """Per request: one apply (the booking), one apply_many (settle and sync), no observe."""
    client = make_client()
    asins = keepa.catalog_asins(3)
    client.products(asins[0])  # the first builds the bucket (a /token call) and learns the cost
    backend_calls.clear()
    for asin in asins[1:]:
        client.products(asin)
    assert backend_calls == {"apply": 2, "apply_many": 2, "applied together": 4}


def test_an_async_request_is_one_booking_and_one_settle_and_sync(keepa, backend_calls):
    """The same in the async client."""

    async def scenario() -> None:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=keepa.clock) as client:
            asins = keepa.catalog_asins(3)
            await client.products(asins[0])
            backend_calls.clear()
            for asin in asins[1:]:
                await client.products(asin)

    asyncio.run(scenario())
    assert backend_calls == {"apply": 2, "apply_many": 2, "applied together": 4}
