"""tokenbudget.http's public surface: names, errors, header shapes, a light import."""

from __future__ import annotations

import pickle
import subprocess
import sys

import httpx
import httpx2
import pytest

import tokenbudget
import tokenbudget.http as http
from tokenbudget import exceptions
from tokenbudget.http import (
    HeaderFields,
    Limit,
    QuotaExhausted,
    QuotaReport,
    RateLimited,
    RequestInfo,
    RequestTooLarge,
    ResponseInfo,
    dialect,
    estimate,
    finish,
    parse,
)


def test_all_is_sorted_and_importable():
    """tokenbudget.http.__all__ is sorted (constants first, as ruff sorts) and every name resolves."""
    assert http.__all__ == sorted(http.__all__, key=lambda name: (not name.isupper(), name))
    for name in http.__all__:
        assert getattr(http, name) is not None


def test_errors_are_token_budget_errors_also_in_exceptions():
    """The three HTTP errors sit in the one tree and in tokenbudget.exceptions."""
    assert RequestTooLarge is exceptions.RequestTooLarge
    assert RateLimited is exceptions.RateLimited
    assert QuotaExhausted is exceptions.QuotaExhausted
    assert issubclass(RequestTooLarge, tokenbudget.CostExceedsCapacity)
    assert issubclass(RequestTooLarge, ValueError)
    for error in (RateLimited, QuotaExhausted):
        assert issubclass(error, tokenbudget.TokenBudgetError)


@pytest.mark.parametrize(
    "error",
    [
        RequestTooLarge(31538.0, 30000.0, limit="tokens", message="Request too large", status=429),
        RateLimited(9.816, status=429, attempts=4, message="Rate limit reached"),
        RateLimited(None),
        QuotaExhausted("You exceeded your current quota", code="insufficient_quota"),
    ],
    ids=type,
)
def test_http_errors_pickle(error):
    """Every HTTP error survives pickling with its message and attributes."""
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 -- our own data
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert vars(clone) == vars(error)


def test_rate_limited_carries_retry_after():
    """RateLimited.retry_after is the server's wait, named in the message."""
    error = RateLimited(2.5, attempts=3)
    assert error.retry_after == 2.5
    assert "2.5 s" in str(error)


def test_request_too_large_names_the_figures():
    """RequestTooLarge says the cost, the limit and the server's words."""
    error = RequestTooLarge(2003.0, 1000.0, limit="graphql", message="MAX_COST_EXCEEDED")
    assert (error.cost, error.max_cost, error.limit) == (2003.0, 1000.0, "graphql")
    assert "2003" in str(error)
    assert "MAX_COST_EXCEEDED" in str(error)


def test_import_is_light():
    """import tokenbudget and tokenbudget.http.parse import neither httpx nor httpx2."""
    code = (
        "import sys, tokenbudget, tokenbudget.http as h\n"
        "for d in h.DIALECTS: h.parse(d, {'retry-after': '1'}, b'{}', status=429)\n"
        "bad = [m for m in ('httpx', 'httpx2', 'tokenbudget_keepa') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "7"},
        [("retry-after", "7")],
        [(b"RETRY-AFTER", b"7")],
        httpx.Headers({"Retry-After": "7"}),
        httpx2.Headers({"Retry-After": "7"}),
        HeaderFields({"Retry-After": "7"}),
    ],
    ids=lambda h: type(h).__name__,
)
def test_headers_in_every_shape(headers):
    """A mapping, pairs, bytes, httpx and httpx2 Headers are read case-insensitively."""
    assert parse("ietf", headers, status=429).retry_after == 7.0


def test_repeated_fields_stay_apart_from_httpx_headers():
    """httpx's repeated fields reach the dialect one by one."""
    headers = httpx.Headers([("RateLimit-Policy", '"a";q=1'), ("ratelimit-policy", '"b";q=2')])
    assert HeaderFields(headers).get_all("ratelimit-policy") == ('"a";q=1', '"b";q=2')


@pytest.mark.parametrize("module", [httpx, httpx2])
def test_httpx_headers_read_as_pairs_would_be(module):
    """The quick read of httpx/httpx2 Headers gives what their (name, value) pairs give."""
    pairs = [
        ("RateLimit-Policy", '"a";q=1'),
        ("X-Odd", " padded "),
        ("ratelimit-policy", '"b";q=2'),
        ("Date", "Sun, 06 Dec 2026 09:00:00 GMT"),
        ("X-Latin", "caf\xe9".encode("latin-1")),
    ]
    quick = HeaderFields(module.Headers(pairs))
    general = HeaderFields(list(module.Headers(pairs).multi_items()))
    assert list(quick.items()) == list(general.items())
    assert quick.get_all("RATELIMIT-POLICY") == ('"a";q=1', '"b";q=2')


@pytest.mark.parametrize("headers", ["retry-after: 1", b"x", 42, [("a",)], [(1, "x")]])
def test_bad_headers_are_a_type_error(headers):
    """Headers that are no mapping or pairs of str/bytes raise TypeError naming them."""
    with pytest.raises(TypeError, match="header"):
        parse("openai", headers)


def test_unknown_dialect_lists_the_known_ones():
    """An unknown dialect name is a ValueError that lists the built-in ones."""
    with pytest.raises(ValueError, match=r"'nope'.*anthropic, github"):
        parse("nope", {})
    with pytest.raises(TypeError, match="dialect"):
        dialect(42)  # type: ignore[arg-type]


def test_bad_status_is_a_value_error():
    """A status outside 100..999 is refused, naming it."""
    with pytest.raises(ValueError, match="1000"):
        parse("openai", {}, status=1000)


class Widgets:
    name = "widgets"

    def parse(self, response: ResponseInfo) -> QuotaReport:
        left = response.headers.get("x-widgets-left")
        limits = {}
        if left is not None and left.isdigit():
            limits["calls"] = Limit(100, float(left), None, window=60)
        return finish(response, self.name, limits)

    def estimate(self, request: RequestInfo, limits):
        return {"calls": 2 if request.method == "POST" else 1}


def test_a_dialect_of_ones_own():
    """A user's object with name, parse and estimate is a Dialect, used like a built-in."""
    assert isinstance(Widgets(), http.Dialect)
    report = parse(Widgets(), {"X-Widgets-Left": "0", "Retry-After": "3"}, status=429)
    assert report.limits["calls"].remaining == 0
    assert (report.kind, report.retry_after) == ("wait", 3.0)
    assert estimate(Widgets(), "POST", "https://example.com/w") == {"calls": 2.0}


def test_estimate_refuses_a_bad_cost():
    """A dialect's negative or NaN estimate is a ValueError naming the limit."""

    class Bad(Widgets):
        def estimate(self, request, limits):
            return {"calls": float("nan")}

    with pytest.raises(ValueError, match="'calls'"):
        estimate(Bad(), "GET", "https://example.com/")


def test_retry_after_http_date_is_measured_against_date():
    """A Retry-After HTTP date counts from the answer's Date, not the local clock."""
    report = parse(
        "ietf",
        {"Date": "Mon, 05 Aug 2019 09:27:00 GMT", "Retry-After": "Mon, 05 Aug 2019 09:27:05 GMT"},
        status=429,
        received_at=2e9,
    )
    assert report.retry_after == 5.0
    assert report.as_of == 1564997220.0


def test_retry_after_ms_takes_precedence():
    """retry-after-ms wins over Retry-After."""
    report = parse("openai", {"retry-after-ms": "1500", "retry-after": "2"}, status=429)
    assert report.retry_after == 1.5


def test_limit_validates():
    """Limit refuses a negative limit or reset and a zero window, naming the field."""
    with pytest.raises(ValueError, match="limit"):
        Limit(-1, 0, None)
    with pytest.raises(ValueError, match="reset"):
        Limit(1, 0, -2)
    with pytest.raises(ValueError, match="window"):
        Limit(1, 0, 1, window=0)
    with pytest.raises(TypeError, match="remaining"):
        Limit(1, "0", 1)  # type: ignore[arg-type]


def test_limit_rounding_is_a_positive_number():
    """Limit.rounding is None or a number > 0; zero, negative and non-numbers are refused."""
    with pytest.raises(ValueError, match="rounding"):
        Limit(1000, 0, None, rounding=0)
    with pytest.raises(ValueError, match="rounding"):
        Limit(1000, 0, None, rounding=-1000)
    with pytest.raises(TypeError, match="rounding"):
        Limit(1000, 0, None, rounding="1000")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("remaining", "rounding", "least"),
    [
        (40000.0, 1000.0, 39500.0),
        (1000.0, 1000.0, 500.0),
        (0.0, 1000.0, 0.0),  # nothing left: nothing to take off
        (300.0, 1000.0, 0.0),  # never below zero for the rounding's sake
        (-50.0, 1000.0, -50.0),  # a debt is reported as it is
        (49.0, None, 49.0),
        (None, 1000.0, None),
    ],
)
def test_least_remaining_takes_off_half_the_rounding(remaining, rounding, least):
    """What a bucket may count on: remaining less half its rounding, not below zero for it."""
    assert Limit(50000, remaining, None, rounding=rounding).least_remaining == least


def test_report_is_immutable_and_compares_by_value():
    """QuotaReport is frozen, its mappings read-only, equal by value."""
    one = QuotaReport(limits={"a": Limit(1, 1, None)}, cost={"a": 1})
    two = QuotaReport(limits={"a": Limit(1, 1, None)}, cost={"a": 1})
    assert one == two
    assert hash(one) == hash(two)
    with pytest.raises(TypeError):
        one.cost["a"] = 2  # type: ignore[index]
    with pytest.raises(ValueError, match="kind"):
        QuotaReport(kind="later")  # type: ignore[arg-type]


def test_a_failing_builtin_dialect_reports_nothing_and_logs_an_error(monkeypatch, caplog):
    """Were a built-in dialect to fail, parse() reports no limit and logs the traceback."""
    broken = dialect("openai")

    def fail(response: ResponseInfo) -> QuotaReport:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(broken, "parse", fail)
    report = parse("openai", {"retry-after": "2"}, status=429)
    assert (report.limits, report.kind, report.retry_after) == ({}, "wait", 2.0)
    assert "a bug in tokenbudget" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_a_failing_dialect_of_ones_own_raises():
    """A user's dialect that fails raises its own error: it is theirs to see."""

    class Broken(Widgets):
        def parse(self, response: ResponseInfo) -> QuotaReport:
            raise ZeroDivisionError("theirs")

    with pytest.raises(ZeroDivisionError, match="theirs"):
        parse(Broken(), {})
