"""A 429 always means "not now": the client waits for the refill it implies, whatever its stamp.

Over real sockets: the emulator (``/token`` refused) and a replay server with Keepa's real
429 and real deal page, restamped (a refusal stamped behind the answers already adopted, an
answer stamped an hour ahead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.shared_data import realdata, realdata_names
from tokenbudget import ManualClock
from tokenbudget_keepa import AsyncKeepaClient, KeepaClient, KeepaTokenError
from tokenbudget_keepa.testing import Fault, KeepaEmulator

from ._client_fixtures import SECRET
from ._replay_server import ReplayServer


pytestmark = pytest.mark.usefixtures("no_key_in_logs")


def envelope_only(body: dict[str, Any]) -> dict[str, Any]:
    """A real envelope without the collector's note of the HTTP status."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


def test_token_refused_is_waited_out_not_retried_at_once(
    make_client: Callable[..., KeepaClient], keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """/token answering 429 twice: each retry waits for the refill step it implies."""
    keepa.inject(*[Fault.server_error(429)] * 2, endpoint="token")
    client = make_client()
    first_step = keepa.refill_in_ms() / 1000
    status = client.token_status()
    assert status.refill_rate == 5
    assert keepa.stats().count("token") == 3
    assert manual_clock.now() >= first_step + 60 - 1e-6  # the next step, then the one after


def test_token_refused_again_and_again_is_a_token_error_after_waiting(
    make_client: Callable[..., KeepaClient], keepa: KeepaEmulator, manual_clock: ManualClock
) -> None:
    """/token refused past the retries: KeepaTokenError, after a wait before every retry."""
    keepa.inject(*[Fault.server_error(429)] * 10, endpoint="token")
    client = make_client(max_token_retries=3)
    with pytest.raises(KeepaTokenError):
        client.token_status()
    assert keepa.stats().count("token") == 4
    assert manual_clock.now() >= 2 * 60  # three waits, each up to the next refill step


def test_async_token_refused_is_waited_out(keepa: KeepaEmulator, manual_clock: ManualClock) -> None:
    """The async client waits the same way (on its clock, without blocking the loop)."""
    keepa.inject(*[Fault.server_error(429)] * 2, endpoint="token")

    async def main() -> None:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url, clock=manual_clock) as client:
            await client.token_status()

    asyncio.run(main())
    assert keepa.stats().count("token") == 3
    assert manual_clock.now() >= 60


def _stale_429_script(server: ReplayServer) -> dict[str, Any]:
    """/token: an envelope stamped 1 s after Keepa's real 429; /deal: that 429, then a page."""
    body_429 = realdata(realdata_names("deal_429_*.json")[0])
    before = max(
        (e for e in realdata("deal_envelopes.json") if e["timestamp"] < body_429["timestamp"]),
        key=lambda e: e["timestamp"],
    )
    server.queue(
        "/token", 200, {**envelope_only(before), "timestamp": body_429["timestamp"] + 1000}
    )
    server.queue("/deal", 429, body_429)
    server.queue("/deal", 200, realdata("deal_page_full_1758046754175.json"))
    return body_429


def test_a_429_stamped_behind_the_adopted_answers_is_waited_out() -> None:
    """A 429 stamped older than the last adopted answer still means "not now": waited out."""
    clock = ManualClock(1_758_036_000.0)
    with ReplayServer() as server:
        body_429 = _stale_429_script(server)
        with KeepaClient(SECRET, base_url=server.url, clock=clock) as client:
            client.token_status()
            start = clock.now()
            page = client.deals(realdata("selection_logged_raw_query.json"))
            waited = clock.now() - start
        assert server.count("/deal") == 2
    assert len(page.deals) == 150
    # Its debt of 249 at 5 tokens a minute: refillIn, then 49 more steps.
    assert waited >= body_429["refillIn"] / 1000 + 49 * 60 - 1e-6


def test_an_answer_stamped_an_hour_ahead_does_not_blind_the_client() -> None:
    """After an answer stamped far in the future, answers arriving later are adopted again."""
    clock = ManualClock(1_758_036_000.0)
    envelopes = sorted(realdata("deal_envelopes.json"), key=lambda e: e["timestamp"])
    ahead, later = envelopes[0], envelopes[1]
    with ReplayServer() as server:
        server.queue(
            "/token", 200, {**envelope_only(ahead), "timestamp": ahead["timestamp"] + 3_600_000}
        )
        server.queue("/token", 200, {**envelope_only(later), "tokensLeft": 7})
        with KeepaClient(SECRET, base_url=server.url, clock=clock, timeout=10) as client:
            client.token_status()
            clock.advance(3 * 10 + 1)  # longer than a request can take: no answer overtook it
            client.token_status(max_age=0)
            assert client.bucket.snapshot().tokens == pytest.approx(7)
