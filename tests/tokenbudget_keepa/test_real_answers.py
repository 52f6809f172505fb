"""Real Keepa answers (``../shared/realdata``) through the envelope code and the clients.

Every real ``/deal``, ``/token`` and HTTP 429 body parses with its own figures; over real
sockets (a loopback server replaying real bodies, :mod:`._replay_server`) the real 429 is
waited out and retried once, and Keepa's error objects reach the user in the typed exception
while a zeroed envelope of an error answer is never adopted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx
import pytest

from tests.shared_data import realdata, realdata_files, realdata_names
from tokenbudget import ManualClock
from tokenbudget_keepa import (
    AsyncKeepaClient,
    KeepaClient,
    KeepaRequestError,
    KeepaTokenError,
    TokenStatus,
)
from tokenbudget_keepa._client.clients import _Call
from tokenbudget_keepa._client.envelope import Envelope, parse_envelope

from ._client_fixtures import SECRET, assert_no_key
from ._replay_server import ReplayServer


pytestmark = pytest.mark.usefixtures("no_key_in_logs")

#: The server times of the real answers: September 2025.
SEPTEMBER_2025 = (dt.datetime(2025, 9, 1, tzinfo=dt.UTC), dt.datetime(2025, 10, 1, tzinfo=dt.UTC))


def assert_figures(env: Envelope, body: dict[str, Any]) -> None:
    """*env* holds exactly the token figures of the real *body*."""
    assert env.timestamp_ms == body["timestamp"]
    assert env.tokens_left == body["tokensLeft"]
    assert env.refill_in == body["refillIn"] / 1000
    assert env.refill_rate == body["refillRate"]
    assert env.token_flow_reduction == body["tokenFlowReduction"]
    assert env.tokens_consumed == body["tokensConsumed"]
    assert env.error is None
    assert env.carries_token_figures
    assert SEPTEMBER_2025[0] <= env.timestamp < SEPTEMBER_2025[1]


def envelope_only(body: dict[str, Any]) -> dict[str, Any]:
    """A real envelope without the collector's note of the HTTP status."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


# -- every real body parses with its figures ---------------------------------------------------


def test_every_real_token_body_parses():
    """The 51 real /token answers: each envelope read with its own figures."""
    bodies = realdata("token_bodies.json")
    assert len(bodies) == 51
    for body in bodies:
        assert_figures(parse_envelope(body), body)


def test_every_real_deal_envelope_parses():
    """The 49 real /deal envelopes (the 429 among them): each read with its own figures."""
    bodies = realdata("deal_envelopes.json")
    assert len(bodies) == 49
    for body in bodies:
        env = parse_envelope(envelope_only(body))
        assert_figures(env, body)
        assert (env.tokens_left < 0) == (body["_http_status"] == 429)


@pytest.mark.parametrize("name", realdata_names("deal_429_*.json"))
def test_the_real_429_body_parses(name):
    """Keepa's 429: an envelope with a negative balance, nothing consumed, no error object."""
    body = realdata(name)
    env = parse_envelope(body)
    assert_figures(env, body)
    assert env.tokens_left == -249
    assert env.tokens_consumed == 0


@pytest.mark.parametrize("name", realdata_names("deal_page_*.json"))
def test_every_real_deal_page_parses_through_the_client(name):
    """A whole real /deal answer: its envelope, and a page of every deal it holds."""
    body = realdata(name)
    raw = (realdata_files(name)[0]).read_bytes()
    with KeepaClient(SECRET, base_url="http://127.0.0.1:9") as client:
        answer = client._read(httpx.Response(200, content=raw))
        assert answer.envelope is not None
        assert_figures(answer.envelope, body)
        call = _Call("/deal", {}, None, 1)
        page = client._deal_page_of(call, client._payload(call, answer, 1), 0)
    assert len(page.deals) == len(body["deals"]["dr"])
    assert [d.asin for d in page.deals] == [d["asin"] for d in body["deals"]["dr"]]
    assert page.is_last == (len(page.deals) < 150)
    assert answer.envelope.tokens_consumed == 5


# -- over real sockets -------------------------------------------------------------------------


def _deal_script(server: ReplayServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """/token: the last real envelope before the real 429; /deal: the 429, then a real page."""
    body_429 = realdata(realdata_names("deal_429_*.json")[0])
    before = max(
        (e for e in realdata("deal_envelopes.json") if e["timestamp"] < body_429["timestamp"]),
        key=lambda e: e["timestamp"],
    )
    page = realdata("deal_page_full_1758046754175.json")
    server.queue("/token", 200, envelope_only(before))
    server.queue("/deal", 429, body_429)
    server.queue("/deal", 200, page)
    return body_429, page


def _check_waited_out(
    server: ReplayServer, body_429: dict[str, Any], waited: float, selection: dict[str, Any]
) -> None:
    # The debt of 249 at 5 tokens a minute: the first step at refillIn, then 49 more minutes,
    # until the balance is positive again (Keepa runs a request while it is).
    least = body_429["refillIn"] / 1000 + 49 * 60
    assert least - 1e-6 <= waited <= least + 60
    assert server.count("/deal") == 2  # retried once
    assert server.count("/token") == 1
    sent = [json.loads(q["selection"]) for p, q in server.requests if p == "/deal"]
    assert sent[0] == sent[1] == selection


def test_the_real_429_is_waited_out_and_retried_once():
    """Sync client: Keepa's real 429 (-249 tokens) is synced, waited for, retried once."""
    clock = ManualClock(1_758_036_000.0)
    real_selection = realdata("selection_logged_raw_query.json")
    with ReplayServer() as server:
        body_429, page = _deal_script(server)
        with KeepaClient(SECRET, base_url=server.url, clock=clock) as client:
            client.token_status()
            start = clock.now()
            result = client.deals(real_selection)
            waited = clock.now() - start
            status = client.token_status()
        assert len(result.deals) == len(page["deals"]["dr"]) == 150
        assert status.tokens_left == page["tokensLeft"]
        _check_waited_out(
            server, body_429, waited, {**real_selection, "domainId": 1, "dateRange": 3}
        )


def test_the_real_429_is_waited_out_and_retried_once_async():
    """Async client: the same, without blocking the loop."""
    clock = ManualClock(1_758_036_000.0)
    real_selection = realdata("selection_logged_raw_query.json")

    async def main(url: str) -> tuple[int, float]:
        async with AsyncKeepaClient(SECRET, base_url=url, clock=clock) as client:
            await client.token_status()
            start = clock.now()
            result = await client.deals(real_selection)
            return len(result.deals), clock.now() - start

    with ReplayServer() as server:
        body_429, _ = _deal_script(server)
        found, waited = asyncio.run(main(server.url))
        assert found == 150
        _check_waited_out(
            server, body_429, waited, {**real_selection, "domainId": 1, "dateRange": 3}
        )


def test_a_429_that_persists_is_a_token_error_with_the_real_figures():
    """The real 429 body on every try: KeepaTokenError after the bounded retries, its figures."""
    clock = ManualClock(1_758_036_000.0)
    with ReplayServer() as server:
        body_429, _ = _deal_script(server)
        server._answers["/deal"].clear()
        for _ in range(3):
            server.queue("/deal", 429, body_429)
        with (
            KeepaClient(SECRET, base_url=server.url, clock=clock, max_token_retries=2) as client,
            pytest.raises(KeepaTokenError, match="429") as excinfo,
        ):
            client.deals({"priceTypes": [2]})
    assert_no_key(excinfo.value)
    assert excinfo.value.tokens_left == -249
    assert excinfo.value.attempts == 3


# -- errors ------------------------------------------------------------------------------------

INVALID = {
    "type": "invalidParameter",
    "message": "Invalid parameter: selection",
    "details": "dateRange out of range",
}


def _token_body(timestamp: int, tokens: int = 120) -> dict[str, Any]:
    body = dict(realdata("token_bodies.json")[0])
    return {**body, "timestamp": timestamp, "tokensLeft": tokens}


@pytest.mark.parametrize("sync", [True, False])
def test_a_400_with_only_an_error_object_keeps_keepas_message(sync):
    """HTTP 400 whose body is only {"error": ...}: Keepa's type and message reach the user."""
    with ReplayServer() as server:
        server.queue("/token", 200, _token_body(1_758_325_044_347))
        server.queue("/deal", 400, {"error": INVALID})
        err, _ = _deal_error(server, sync=sync)
    assert isinstance(err, KeepaRequestError)
    assert err.status == 400
    assert (err.error_type, err.error_message, err.error_details) == (
        "invalidParameter",
        "Invalid parameter: selection",
        "dateRange out of range",
    )
    assert "invalidParameter: Invalid parameter: selection" in str(err)
    assert "timestamp" not in str(err)
    assert server.count("/deal") == 1  # never retried


@pytest.mark.parametrize("sync", [True, False])
def test_a_zeroed_envelope_of_an_error_answer_is_never_adopted(sync):
    """HTTP 400 with tokensLeft 0 and refillRate 0: raised, but neither synced nor reported."""
    stamp = 1_758_325_044_347
    zeroed = {
        "timestamp": stamp + 5_000,
        "tokensLeft": 0,
        "refillIn": 0,
        "refillRate": 0,
        "tokenFlowReduction": 0.0,
        "tokensConsumed": 0,
        "processingTimeInMs": 0,
        "error": INVALID,
    }
    with ReplayServer() as server:
        server.queue("/token", 200, _token_body(stamp, tokens=120))
        server.queue("/deal", 400, zeroed)
        err, (status, tokens) = _deal_error(server, sync=sync)
    assert isinstance(err, KeepaRequestError)
    assert err.error_type == "invalidParameter"
    assert status.refill_rate == 5
    assert status.timestamp.timestamp() * 1000 >= stamp
    assert tokens > 100  # the booking of the refused request is not the balance: 120 - 5


def _deal_error(
    server: ReplayServer, *, sync: bool
) -> tuple[KeepaRequestError, tuple[TokenStatus, float]]:
    """The error deals() raises against *server*, and the token status and balance after it."""
    clock = ManualClock(1_758_325_000.0)
    if sync:
        with KeepaClient(SECRET, base_url=server.url, clock=clock) as client:
            client.token_status()
            with pytest.raises(KeepaRequestError) as excinfo:
                client.deals({"priceTypes": [2]})
            after = (client.token_status(), client.bucket.snapshot().tokens)
    else:

        async def main() -> tuple[
            pytest.ExceptionInfo[KeepaRequestError], tuple[TokenStatus, float]
        ]:
            async with AsyncKeepaClient(SECRET, base_url=server.url, clock=clock) as client:
                await client.token_status()
                with pytest.raises(KeepaRequestError) as excinfo:
                    await client.deals({"priceTypes": [2]})
                return excinfo, (
                    await client.token_status(),
                    (await client.bucket.snapshot()).tokens,
                )

        excinfo, after = asyncio.run(main())
    assert_no_key(excinfo.value)
    return excinfo.value, after
