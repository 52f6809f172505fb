"""The transport's fast paths give what the general paths give (issue 20, performance)."""

from __future__ import annotations

import json
import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget._bucket import _check_number
from tokenbudget.http import Limit, QuotaReport
from tokenbudget.http._message import HeaderFields, _decode_json, finite
from tokenbudget.http._openai import _cached_duration, go_duration


def _loads(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@pytest.mark.parametrize(
    "body",
    [
        b'{"usage": {"total_tokens": 31}}',
        b'{"a": "\xed\xa0\x80"}',  # an encoded lone surrogate: json.loads passes it
        b'{"a": "\xff"}',  # not UTF-8
        '{"a": 1}'.encode("utf-16-le"),  # "{" then NUL: detected as UTF-16
        b"\xef\xbb\xbf{}",  # a UTF-8 BOM
        b"{",
        b"{}",
        b"[1, 2]",
    ],
)
def test_decode_json_as_json_loads(body: bytes) -> None:
    assert _decode_json(body) == _loads(body)


@given(st.binary(max_size=40).map(lambda tail: b"{" + tail))
def test_decode_json_as_json_loads_fuzzed(body: bytes) -> None:
    assert _decode_json(body) == _loads(body)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3,
        7.5,
        True,
        math.nan,
        math.inf,
        -math.inf,
        int(sys.float_info.max),
        int(sys.float_info.max) + 2**960,  # above the largest float, still rounds to it
        10**400,
        "1",
        None,
    ],
)
def test_finite_as_before(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = None
    else:
        try:
            number = float(value)
        except OverflowError:
            number = math.nan
        expected = number if math.isfinite(number) else None
    assert finite(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_number_refuses_what_is_not_finite(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        _check_number("tokens", value)


def test_check_number_keeps_its_minimum() -> None:
    assert _check_number("actual_cost", 0.0, minimum=0.0) == 0.0
    with pytest.raises(ValueError, match=">="):
        _check_number("actual_cost", -1.0, minimum=0.0)


def test_limit_checks_what_the_usual_case_skips() -> None:
    assert Limit(100.0, -math.inf, 1.0).remaining == -math.inf  # as before: any remaining
    with pytest.raises(ValueError):
        Limit(100.0, 5.0, 1.0, window=0.0)
    with pytest.raises(ValueError):
        Limit(math.nan, 5.0, 1.0)
    assert type(Limit(100, 5, 1, window=60).limit) is float


def test_empty_report_maps_are_frozen_and_none_is_refused() -> None:
    report = QuotaReport()
    with pytest.raises(TypeError):
        report.cost["x"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        QuotaReport(cost=None)  # type: ignore[arg-type]


def test_cached_durations_are_go_durations() -> None:
    for text in ("1\u00b5s", "6m0s", "12ms", "bad", "1m26.4s"):
        assert _cached_duration(text) == go_duration(text)


def test_header_names_read_from_the_cache_as_the_first_time() -> None:
    httpx = pytest.importorskip("httpx")
    headers = httpx.Headers([("X-RateLimit-Limit-Tokens", "10"), ("x-ratelimit-limit-tokens", "9")])
    first = HeaderFields(headers)
    again = HeaderFields(headers)
    assert first.get_all("x-ratelimit-limit-tokens") == ("10", "9")
    assert again.get_all("X-RATELIMIT-LIMIT-TOKENS") == ("10", "9")
