"""The pure envelope parser: typed errors or correct values, nothing else (costs: test_cost.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget import BucketConfig, ManualClock, Rate, TokenBucket
from tokenbudget_keepa import KeepaProtocolError
from tokenbudget_keepa._client.clients import server_order
from tokenbudget_keepa._client.envelope import Envelope, decode_body, parse_envelope, parse_error


GOOD = {
    "timestamp": 1_767_225_600_000,
    "tokensLeft": -60,
    "refillIn": 59_999,
    "refillRate": 5,
    "tokenFlowReduction": 0.0,
    "tokensConsumed": 100,
    "processingTimeInMs": 3,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.integers(-(10**20), 10**20) | st.floats(allow_nan=True, allow_infinity=True)
field_values = numbers | st.none() | st.booleans() | st.text(max_size=5) | st.lists(st.integers())


def test_good_envelope_is_read_with_seconds_and_utc():
    """A complete envelope is read: refillIn in seconds, the timestamp as aware UTC."""
    env = parse_envelope(GOOD)
    assert (env.tokens_left, env.refill_in, env.refill_rate, env.tokens_consumed) == (
        -60.0,
        59.999,
        5.0,
        100.0,
    )
    assert env.timestamp == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert env.error is None


def test_error_object_is_described():
    """The error object of a failed answer is kept and described."""
    env = parse_envelope({**GOOD, "error": {"type": "NOT_ENOUGH_TOKEN", "message": "m"}})
    assert env.error is not None
    assert env.error.describe() == "NOT_ENOUGH_TOKEN: m"


def test_error_object_is_read_without_an_envelope():
    """A body with only 'error' (a real HTTP 400) still yields Keepa's type and message."""
    body = {"error": {"type": "invalidParameter", "message": "Invalid parameter", "details": 7}}
    error = parse_error(body)
    assert error is not None
    assert (error.type, error.message, error.details) == (
        "invalidParameter",
        "Invalid parameter",
        "7",
    )
    assert parse_error({"error": "plain text"}).message == "plain text"  # type: ignore[union-attr]
    for nothing in ({}, {"error": None}, {"error": 5}, [1], None, "x"):
        assert parse_error(nothing) is None


@given(json_values)
def test_parse_error_never_raises(body):
    """Whatever the body, parse_error gives an ErrorInfo or None."""
    parse_error(body)
    parse_error({"error": body})


def test_zeroed_envelope_carries_no_token_figures():
    """tokensLeft 0 and refillRate 0 (an HTTP 400's envelope) report no account."""
    zeroed = parse_envelope({**GOOD, "tokensLeft": 0, "refillRate": 0, "refillIn": 0})
    assert not zeroed.carries_token_figures
    assert not parse_envelope({**GOOD, "timestamp": 0}).carries_token_figures
    assert parse_envelope(GOOD).carries_token_figures
    assert parse_envelope({**GOOD, "tokensLeft": 0}).carries_token_figures  # an empty account


def test_fractional_balances_are_kept_exactly():
    """Fractional balances and rates (a proxy's) are numbers like any other."""
    env = parse_envelope({**GOOD, "tokensLeft": 12.5, "refillRate": 4.5, "tokensConsumed": 0.5})
    assert (env.tokens_left, env.refill_rate, env.tokens_consumed) == (12.5, 4.5, 0.5)


@pytest.mark.parametrize("missing", ["timestamp", "tokensLeft", "refillIn", "refillRate"])
def test_missing_required_field_is_a_protocol_error(missing):
    """An envelope without one of the fields a sync needs is a KeepaProtocolError naming it."""
    body = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(KeepaProtocolError, match=missing):
        parse_envelope(body)


def test_missing_timestamp_never_defaults_to_zero():
    """A missing timestamp is refused, not read as time 0 (which would freeze the ordering)."""
    with pytest.raises(KeepaProtocolError, match="timestamp"):
        parse_envelope({**GOOD, "timestamp": None})


def test_optional_fields_default():
    """tokensConsumed and tokenFlowReduction are optional."""
    env = parse_envelope(
        {k: GOOD[k] for k in ("timestamp", "tokensLeft", "refillIn", "refillRate")}
    )
    assert (env.tokens_consumed, env.token_flow_reduction) == (None, 0.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tokensLeft", "300"),
        ("tokensLeft", True),
        ("tokensLeft", math.nan),
        ("refillIn", -1),
        ("refillIn", 10**12),
        ("refillRate", -5),
        ("timestamp", 10**30),
        ("tokensConsumed", -3),
        ("tokenFlowReduction", [1]),
    ],
)
def test_mistyped_field_is_a_protocol_error(field, value):
    """A field of the wrong type or out of range is a KeepaProtocolError naming it."""
    with pytest.raises(KeepaProtocolError, match=field):
        parse_envelope({**GOOD, field: value})


def test_body_that_is_not_json_is_a_protocol_error():
    """A body cut short is a KeepaProtocolError quoting its start."""
    with pytest.raises(KeepaProtocolError, match="not JSON"):
        decode_body(b'{"tokensLeft": 3')


def _env(ts: int, tokens: float) -> Envelope:
    return Envelope(timestamp_ms=ts, tokens_left=tokens, refill_in=1.0, refill_rate=5)


def test_older_envelope_is_not_newer():
    """An envelope with an older timestamp never counts as newer."""
    assert not _env(1000, 50).newer_than(_env(2000, 10))
    assert _env(2000, 50).newer_than(_env(1000, 10))
    assert _env(1000, 50).newer_than(None)


def test_same_millisecond_lower_balance_is_newer():
    """Within one millisecond only spending changes the balance: the lower one is newer."""
    assert _env(1000, 10).newer_than(_env(1000, 50))
    assert not _env(1000, 50).newer_than(_env(1000, 10))


@given(st.dictionaries(st.sampled_from(sorted(GOOD)), field_values, max_size=8))
def test_fuzzed_envelope_is_read_or_refused(body):
    """Any mix of envelope fields gives an Envelope of finite numbers or a KeepaProtocolError."""
    try:
        env = parse_envelope(body)
    except KeepaProtocolError:
        return
    assert all(math.isfinite(x) for x in (env.tokens_left, env.refill_in, env.refill_rate))
    assert env.refill_in >= 0
    assert env.refill_rate >= 0


@given(json_values)
def test_fuzzed_json_is_read_or_refused(value):
    """Arbitrary JSON gives an Envelope or a KeepaProtocolError, never another exception."""
    with contextlib.suppress(KeepaProtocolError):
        parse_envelope(value)


@given(st.binary(max_size=64))
def test_fuzzed_bytes_are_read_or_refused(content):
    """Arbitrary bytes give JSON or a KeepaProtocolError, never another exception."""
    with contextlib.suppress(KeepaProtocolError):
        parse_envelope(decode_body(content))


@given(st.dictionaries(st.sampled_from(sorted(GOOD)), field_values, max_size=8))
def test_fuzzed_envelope_round_trips_through_json(body):
    """What parses from a dict parses the same from its JSON text."""
    try:
        text = json.dumps(body).encode()
    except (ValueError, OverflowError):
        return
    try:
        direct = parse_envelope(body)
    except KeepaProtocolError:
        direct = None
    try:
        decoded = parse_envelope(decode_body(text))
    except KeepaProtocolError:
        decoded = None
    if direct is not None and decoded is not None:
        assert direct.tokens_left == decoded.tokens_left


def test_same_millisecond_refill_step_is_newer():
    """A step inside one millisecond: the envelope after it (longer refillIn) is the newer one."""
    before = Envelope(timestamp_ms=1000, tokens_left=0, refill_in=0.001, refill_rate=5)
    after = Envelope(timestamp_ms=1000, tokens_left=5, refill_in=60.0, refill_rate=5)
    assert after.newer_than(before)
    assert not before.newer_than(after)


def _stamped(ms: int, tokens: int) -> Envelope:
    return parse_envelope({**GOOD, "timestamp": ms, "tokensLeft": tokens})


def test_answers_of_one_millisecond_from_two_processes_never_raise_a_shared_balance():
    """Same server millisecond: the higher balance (the earlier answer) arriving last is stale.

    Two processes' requests answered within one millisecond: the one answered first
    left 60, the second 10. When the first answer arrives last at the shared bucket,
    its ``as_of`` is older, so the bucket keeps 10 (it took 60 before: 50 tokens the
    account had spent, a 429 at the next step).
    """
    config = BucketConfig(300, Rate.per_minute(5), refill_step=60, in_flight=60)
    bucket = TokenBucket(config, clock=ManualClock(), tokens=0)
    later, earlier = _stamped(GOOD["timestamp"], 10), _stamped(GOOD["timestamp"], 60)
    assert bucket.sync(10, as_of=server_order(later)).adopted
    assert not bucket.sync(60, as_of=server_order(earlier)).adopted
    assert bucket.snapshot().tokens == 10


@given(st.integers(0, 4 * 10**12), st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_server_order_is_time_first_then_lower_balance_later(ms, tokens, other):
    """A later millisecond is always later; within one, a lower balance is never earlier."""
    assert server_order(_stamped(ms + 1, 10**6)) > server_order(_stamped(ms, -(10**6)))
    if tokens < other:
        assert server_order(_stamped(ms, tokens)) >= server_order(_stamped(ms, other))
