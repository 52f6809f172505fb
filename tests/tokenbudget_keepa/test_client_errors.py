"""Every error path of KeepaClient, and the failure classes it makes impossible (one test each)."""

from __future__ import annotations

import asyncio
import math
import socket

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenbudget import ManualClock
from tokenbudget_keepa import (
    AsyncKeepaClient,
    KeepaAuthError,
    KeepaClient,
    KeepaError,
    KeepaProtocolError,
    KeepaRequestError,
    KeepaServerError,
    KeepaTokenError,
    KeepaTransportError,
)
from tokenbudget_keepa._client.clients import MAX_WAIT, _Answer, _Call
from tokenbudget_keepa._client.envelope import Envelope
from tokenbudget_keepa.testing import Fault

from ._client_fixtures import SECRET, assert_no_key


pytestmark = pytest.mark.usefixtures("no_key_in_logs")

QUERY = {"priceTypes": [1], "sortType": 1, "dateRange": 0}


def raised(excinfo: pytest.ExceptionInfo[BaseException]) -> BaseException:
    """The error, checked for the key in its text, repr and cause."""
    err = excinfo.value
    assert_no_key(err, err.__cause__, err.__context__)
    return err


# -- errors that are never retried -------------------------------------------------------------


def test_wrong_key_is_an_auth_error_without_retry(make_client, keepa):
    """HTTP 402 raises KeepaAuthError at once; the wrong key shows nowhere either."""
    client = make_client(api_key="wrong-key-0123456789")
    with pytest.raises(KeepaAuthError, match="402") as excinfo:
        client.products(keepa.catalog_asins(1))
    err = raised(excinfo)
    assert "wrong-key-0123456789" not in str(err)
    assert keepa.stats().total_requests == 1


@pytest.mark.parametrize("status", [400, 404, 405])
def test_refused_request_is_a_request_error_without_retry(client, keepa, status):
    """HTTP 400/404/405 raise KeepaRequestError at once, with Keepa's error text."""
    client.token_status()
    keepa.inject(Fault.server_error(status), endpoint="deal")
    with pytest.raises(KeepaRequestError, match=str(status)) as excinfo:
        client.deals(QUERY)
    assert raised(excinfo).status == status
    assert "injected fault" in str(excinfo.value)
    assert keepa.stats().count("deal") == 1


def test_malformed_json_is_a_protocol_error(client, keepa):
    """A body cut short raises KeepaProtocolError (not retried: the request was charged)."""
    client.token_status()
    keepa.inject(Fault.malformed_json(), endpoint="product")
    with pytest.raises(KeepaProtocolError, match="not JSON") as excinfo:
        client.products(keepa.catalog_asins(2))
    raised(excinfo)
    assert keepa.stats().count("product") == 1


# -- errors retried a bounded number of times --------------------------------------------------


def test_server_error_is_retried_with_bounded_backoff(make_client, keepa, manual_clock):
    """5xx: retried max_retries times with capped exponential backoff on the clock, then raised."""
    client = make_client(max_retries=3, backoff=1.0, max_backoff=3.0)
    client.token_status()
    keepa.inject(*[Fault.server_error(503)] * 4, endpoint="deal")
    start = manual_clock.now()
    with pytest.raises(KeepaServerError, match="503") as excinfo:
        client.deals(QUERY)
    assert raised(excinfo).attempts == 4
    assert keepa.stats().count("deal", 503) == 4
    waited = manual_clock.now() - start
    assert 0.5 + 1.0 + 1.5 <= waited <= 1.0 + 2.0 + 3.0  # jittered in [ceiling/2, ceiling]


def test_one_server_error_is_retried_and_the_answer_returned(client, keepa):
    """A single 500 is retried and the real page returned."""
    client.token_status()
    keepa.inject(Fault.server_error(500), endpoint="deal")
    page = client.deals(QUERY)
    assert page.deals
    assert keepa.stats().count("deal") == 2


def test_unreachable_server_is_a_transport_error(manual_clock):
    """Nobody listening: KeepaTransportError after the bounded retries, no hang."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        KeepaClient(
            SECRET, base_url=f"http://127.0.0.1:{port}", clock=manual_clock, max_retries=2
        ) as client,
        pytest.raises(KeepaTransportError, match="ConnectError") as excinfo,
    ):
        client.token_status()
    err = raised(excinfo)
    assert err.attempts == 3
    assert isinstance(err, ConnectionError)
    assert err.__context__ is None  # httpx's error held the keyed request: not kept


def test_timeout_is_a_transport_error(make_client, keepa):
    """An answer slower than the timeout: retried, then KeepaTransportError."""
    client = make_client(timeout=0.3, max_retries=1)
    client.token_status()
    keepa.inject(Fault.slow(0.6), Fault.slow(0.6), endpoint="deal")
    with pytest.raises(KeepaTransportError, match="Timeout") as excinfo:
        client.deals(QUERY)
    assert raised(excinfo).attempts == 2


def test_persistent_429_is_a_token_error_after_bounded_retries(make_client, keepa, manual_clock):
    """429 on every try: synced, waited for by the bucket each time, then KeepaTokenError."""
    client = make_client(max_token_retries=2)
    client.token_status()
    keepa.inject(*[Fault.server_error(429)] * 3, endpoint="deal")
    with pytest.raises(KeepaTokenError, match="429") as excinfo:
        client.deals(QUERY)
    err = raised(excinfo)
    assert err.attempts == 3
    assert err.tokens_left is not None
    assert keepa.stats().count("deal") == 3
    assert manual_clock.now() >= 2 * 60 - 1e-6  # each retry waited for a refill step


def test_errors_pickle_without_losing_fields():
    """Keepa errors survive pickling (task queues send them across processes)."""
    import pickle

    err = KeepaTokenError("x", endpoint="/deal", attempts=3, tokens_left=-5, refill_in=12.0)
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 -- our own bytes
    assert (type(copy), str(copy), copy.attempts, copy.tokens_left) == (
        KeepaTokenError,
        "x",
        3,
        -5,
    )


# -- a competing spender ------------------------------------------------------------------------


def test_competing_spender_is_survived_without_busy_looping(make_client, keepa, manual_clock):
    """Another program spends the account: 429s arrive, are waited out, and requests stay few."""
    client = make_client(max_token_retries=50)
    keepa.set_competing_spender(2)
    useful = 0
    for i in range(20):
        if i % 3 == 0:
            keepa.spend(40)  # the other program's big request, behind the client's back
        client.deals(QUERY)
        useful += 1
    stats = keepa.stats()
    assert stats.throttled > 0
    assert stats.count("deal") <= 3 * useful
    assert manual_clock.now() < 24 * 3600


# -- the failure classes of the issue, one test each -------------------------------------------


def test_429_and_5xx_are_never_read_as_no_more_data(client, keepa):
    """A 429 or a 5xx is retried; the caller gets the real page, never an empty one."""
    client.token_status()
    keepa.inject(Fault.server_error(429), Fault.server_error(503), endpoint="deal")
    page = client.deals(QUERY)
    assert page.deals
    assert keepa.stats().count("deal", 200) == 1


def test_waits_are_decided_by_the_bucket_not_a_fixed_sleep(client, keepa, manual_clock):
    """After a 429 at -50 tokens the client waits exactly until the account is positive again."""
    client.token_status()
    keepa.set_tokens(-50)  # spent behind the client's back
    client.deals(QUERY)
    # Steps of 5 at 60, 120, ...: the balance is positive again after 11 steps, at 660 s.
    assert manual_clock.now() == pytest.approx(660)
    assert keepa.stats().count("deal") == 2


def test_drift_is_reconciled_from_every_envelope(client, keepa):
    """Tokens spent by another program show in the bucket after the next answer."""
    client.token_status()
    keepa.spend(120)
    client.deals(QUERY)
    assert client.bucket.snapshot().tokens == keepa.tokens_left == 300 - 120 - 5


def test_status_throttle_never_suppresses_the_reconciliation_before_a_long_wait(
    client, keepa, manual_clock
):
    """Before a long wait on an old balance the client asks /token, even under the status interval."""
    keepa.set_tokens(1)
    client.products(keepa.catalog_asins(20), offers=20)  # leaves the account deep in debt
    assert client.bucket.snapshot().tokens < -100
    keepa.set_tokens(300)  # the debt is gone (a plan change, tokens restored)
    manual_clock.advance(61)  # the last envelope is older than the status interval
    tokens_before = keepa.stats().count("token")
    start = manual_clock.now()
    client.deals(QUERY)
    assert keepa.stats().count("token") == tokens_before + 1
    assert manual_clock.now() - start < 1.0  # no wait for a debt that is gone


def test_projected_balance_moves_with_the_clock(client, keepa, manual_clock):
    """The bucket's balance follows the refill steps between answers: it never freezes."""
    client.token_status()
    keepa.set_tokens(-20)
    keepa.inject(Fault.server_error(404), endpoint="deal")
    with pytest.raises(KeepaRequestError):
        client.deals(QUERY)  # a 404 carries the full envelope: synced to -20
    assert client.bucket.snapshot().tokens == -20
    manual_clock.advance(60 * 5)
    assert keepa.tokens_left == 5
    assert client.bucket.snapshot().tokens == pytest.approx(5)


def _answer(status: int, ts: int, tokens: float, consumed: float = 0, rate: float = 5) -> _Answer:
    env = Envelope(
        timestamp_ms=ts,
        tokens_left=tokens,
        refill_in=30.0,
        refill_rate=rate,
        tokens_consumed=consumed,
    )
    return _Answer(status, env, {}, None)


def test_older_envelope_never_rolls_the_balance_back(client, manual_clock):
    """An answer overtaken by a newer one is settled but not synced."""
    client.token_status()
    newest = client._newest
    assert newest is not None
    client._finish(None, _answer(200, newest.timestamp_ms + 10, 100), 0)
    client._finish(None, _answer(200, newest.timestamp_ms + 5, 250), 0)
    assert client.bucket.snapshot().tokens == 100


def test_fractional_balances_sync_exactly(client, manual_clock):
    """A fractional balance and rate from an envelope are adopted without rounding trouble."""
    client.token_status()
    client._finish(None, _answer(200, 2**45, 12.5, rate=4.5), 0)
    snap = client.bucket.snapshot()
    assert snap.tokens == 12.5
    assert snap.rate == pytest.approx(4.5 / 60)
    assert client.bucket.try_acquire(3.25)
    assert client.bucket.snapshot().tokens == 9.25


def test_parameter_types_are_checked_before_sending(client, keepa):
    """ "4" for an int is refused naming the parameter, never sent to be silently ignored."""
    with pytest.raises(TypeError, match="offers"):
        client.products(keepa.catalog_asins(1), offers="40")
    with pytest.raises(TypeError, match="sort_type"):
        client.deals({"priceTypes": [1], "sortType": "newest"})
    assert keepa.stats().total_requests == 0


# -- fuzzed answers through the client's classification ----------------------------------------

bodies = st.one_of(
    st.binary(max_size=40),
    st.dictionaries(
        st.sampled_from(
            [
                "timestamp",
                "tokensLeft",
                "refillIn",
                "refillRate",
                "tokensConsumed",
                "error",
                "deals",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(10**6), 10**15),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=4),
            st.just({"dr": []}),
        ),
    ).map(lambda d: httpx.Response(200, json=d).content if _jsonable(d) else b"{}"),
)


def _jsonable(d: object) -> bool:
    try:
        httpx.Response(200, json=d)
    except ValueError:
        return False
    return True


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.sampled_from([200, 400, 402, 429, 500, 503]), content=bodies)
def test_fuzzed_answers_give_typed_errors_or_syncs(client, status, content):
    """Any body with any status gives a result, a KeepaError, or a sync: never another exception."""
    client.token_status()
    call = _Call("/deal", {}, None, 1)
    answer = client._read(httpx.Response(status, content=content))
    client._finish(None, answer, 0)
    tokens = client.bucket.snapshot().tokens
    assert math.isfinite(tokens)
    try:
        if status == 200:
            client._deal_page_of(call, client._payload(call, answer, 1), 0)
        else:
            raise client._error_for(call, answer, 1)
    except KeepaError as err:
        assert_no_key(err)


def test_fuzzed_clock_is_a_manual_clock(manual_clock):
    """The fuzz above runs on the shared manual clock (no real waiting)."""
    assert isinstance(manual_clock, ManualClock)


faults = st.sampled_from(
    [
        Fault.server_error(500),
        Fault.server_error(503),
        Fault.server_error(429),
        Fault.server_error(400),
        Fault.server_error(404),
        Fault.malformed_json(),
    ]
)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queued=st.lists(faults, max_size=4))
def test_fuzzed_faults_over_http_give_pages_or_typed_errors(client, keepa, queued):
    """Any run of faults over real HTTP ends in a page or a typed KeepaError, within bounds."""
    client.token_status()
    keepa.clear_faults()
    keepa.reset_stats()
    keepa.inject(*queued, endpoint="deal")
    try:
        page = client.deals(QUERY)
    except KeepaError as err:
        assert_no_key(err)
    else:
        assert page.deals
    assert keepa.stats().count("deal") <= len(queued) + 1


def test_reconciliation_keeps_bookings_made_meanwhile(client, keepa):
    """A booking another process admitted, whose answer is not back yet, survives a sync."""
    client.token_status()
    other = client.bucket.reserve(50)  # another process's request, on the wire
    client.deals(QUERY)  # its envelope does not count the other request yet
    assert keepa.tokens_left == 300 - 5
    assert client.bucket.snapshot().tokens == pytest.approx(300 - 5 - 50)
    keepa.spend(50)  # the other request reaches Keepa
    other.settle(50)
    client.deals(QUERY)
    assert client.bucket.snapshot().tokens == pytest.approx(keepa.tokens_left) == 300 - 5 - 50 - 5


@pytest.mark.parametrize("tokens", [-1_000_000_000, -(10**15)])
def test_absurd_debt_raises_a_token_error_not_a_sleep(keepa, tokens):
    """A balance too deep to wait out raises KeepaTokenError with the wait (real clock)."""
    keepa.set_tokens(tokens)
    # The real clock: time.sleep would raise OverflowError (async: sleep for ages).
    with (
        KeepaClient(SECRET, base_url=keepa.url) as client,
        pytest.raises(KeepaTokenError) as excinfo,
    ):
        client.deals(QUERY)
    err = raised(excinfo)
    assert isinstance(err, KeepaTokenError)
    assert err.wait is not None
    assert err.wait > MAX_WAIT
    assert err.tokens_left == tokens
    assert keepa.stats().count("deal") == 0


def test_async_absurd_debt_raises_a_token_error_not_a_hang(keepa):
    """The async client raises the same KeepaTokenError at once instead of sleeping for ages."""
    keepa.set_tokens(-1_000_000_000)

    async def main() -> None:
        async with AsyncKeepaClient(SECRET, base_url=keepa.url) as client:
            await asyncio.wait_for(client.deals(QUERY), timeout=10)

    with pytest.raises(KeepaTokenError) as excinfo:
        asyncio.run(main())
    err = raised(excinfo)
    assert isinstance(err, KeepaTokenError)
    assert err.wait is not None
    assert err.wait > MAX_WAIT
