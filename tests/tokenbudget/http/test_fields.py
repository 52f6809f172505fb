"""Structured fields, durations, dates, leniency: the readings the dialects share."""

from __future__ import annotations

import json
import logging
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget.http import Limit, estimate, parse
from tokenbudget.http._message import http_date, rfc3339
from tokenbudget.http._openai import go_duration
from tokenbudget.http._sf import (
    InnerList,
    Item,
    Malformed,
    SFError,
    Token,
    parse_dictionary,
    parse_list,
)


def test_sf_list_of_items_with_parameters():
    """RFC 9651 List: strings, tokens, numbers, byte sequences, booleans with parameters."""
    got = parse_list('"a";q=1;w=1.5, tok;x, :cHJldGVuZA==:, ?0, (1 2);p')
    assert got == [
        Item("a", {"q": 1, "w": 1.5}),
        Item(Token("tok"), {"x": True}),
        Item(b"pretend", {}),
        Item(False, {}),
        InnerList((Item(1, {}), Item(2, {})), {"p": True}),
    ]


def test_sf_dictionary():
    """RFC 9651 Dictionary: a bare key is ?1, a later key wins."""
    assert parse_dictionary("a=1, b, a=2") == {"a": Item(2, {}), "b": Item(True, {})}


@pytest.mark.parametrize(
    "bad", ['"unterminated', "a,", "1.2345", "a;Q=1", "@x", "1234567890123456"]
)
def test_sf_strict_errors(bad):
    """Invalid fields raise SFError in strict mode."""
    with pytest.raises(SFError):
        parse_list(bad)


def test_sf_lenient_keeps_the_good_members():
    """Lenient parsing drops a bad member and keeps its neighbours; keys in any case."""
    bad = []
    got = parse_list(
        '"a";Q=1, "b";q==2, "c" ; q = 3, "d" "e"',
        lenient=True,
        on_error=lambda m, e: bad.append(m),
    )
    assert got == [Item("a", {"q": 1}), Item("b", {"q": Malformed("=2")}), Item("c", {"q": 3})]
    assert bad == ['"d" "e"']


@pytest.mark.parametrize(
    "extension",
    ["x=1.12345", "x=1234567890123456", 'x="\u00fc;y"', "x=(1 2)", "pk=:ab c:", "x=1e3", "x="],
)
def test_ietf_a_bad_parameter_value_loses_only_that_parameter(extension):
    """An extension parameter whose value is no SF value keeps its policy and state."""
    report = parse(
        "ietf",
        [
            ("RateLimit-Policy", f'"a";q=10;{extension};w=60, "b";q=5;w=1'),
            ("RateLimit", f'"a";r=3;{extension};t=7'),
        ],
    )
    assert report.limits["a"] == Limit(10, 3, 7, window=60)
    assert report.limits["b"] == Limit(5, None, None, window=1)


def test_ietf_a_malformed_known_parameter_is_ignored_with_a_warning(caplog):
    """t=2.5000 (four decimals) is no SF Decimal: t is dropped with a warning, r kept."""
    with caplog.at_level(logging.WARNING, logger="tokenbudget.http"):
        report = parse("ietf", {"RateLimit": '"a";r=3;t=2.5000'})
    assert report.limits["a"] == Limit(None, 3, None)
    assert "RateLimit parameter t" in caplog.text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("172.799999ms", 0.172799999),
        ("1m26.4s", 86.4),
        ("1h2m3s", 3723.0),
        ("1.8ms", 0.0018),
        ("500us", 0.0005),
        ("0", 0.0),
    ],
)
def test_go_durations(text, seconds):
    """Go-style durations, as OpenAI and Groq write them."""
    assert go_duration(text) == seconds


def go_string(ns: int) -> str:
    """*ns* nanoseconds as Go's ``time.Duration.String`` writes them (what OpenAI and Groq send)."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        unit, size = next(
            (u, s) for u, s in (("ms", 10**6), ("\u00b5s", 10**3), ("ns", 1)) if ns >= s
        )
        whole, rest = divmod(ns, size)
        digits = len(str(size)) - 1
        fraction = str(rest).rjust(digits, "0").rstrip("0") if rest else ""
        return f"{whole}{'.' + fraction if fraction else ''}{unit}"
    seconds, rest = divmod(ns, 10**9)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    fraction = str(rest).rjust(9, "0").rstrip("0") if rest else ""
    head = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{head}{seconds}{'.' + fraction if fraction else ''}s"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("167.523205ms", 0.167523205),
        ("989.416\u00b5s", 0.000989416),
        ("2h35m55.691208792s", 9355.691208792),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
    ],
)
def test_go_durations_are_read_exactly(text, seconds):
    """A duration is the float nearest its exact value, not a rounding or two off it."""
    assert go_duration(text) == seconds


@given(st.integers(0, 10**15) | st.integers(0, 10**9))
def test_every_go_duration_is_read_exactly(ns):
    """Whatever Go writes for a duration, it reads back as the float nearest its seconds."""
    assert go_duration(go_string(ns)) == float(Fraction(ns, 10**9))


@pytest.mark.parametrize("text", ["", "12", "1d", "ms", "-1s", "1.2.3s", "1 s", ".s", "1..s"])
def test_bad_go_durations(text):
    """Not durations: None."""
    assert go_duration(text) is None


def test_dates():
    """HTTP dates and RFC 3339 instants in Unix seconds; garbage is None."""
    assert http_date("Mon, 05 Aug 2019 09:27:05 GMT") == 1564997225.0
    assert rfc3339("2019-08-05T09:27:05Z") == 1564997225.0
    assert rfc3339("2019-08-05T11:27:05.5+02:00") == 1564997225.5
    assert http_date("yesterday") is None
    assert rfc3339("2019-13-05T09:27:05Z") is None


def test_malformed_field_is_ignored_with_a_warning(caplog):
    """A malformed field is left out and logged on tokenbudget.http, the rest kept."""
    headers = {
        "x-ratelimit-limit-tokens": "lots",
        "x-ratelimit-remaining-tokens": "5",
        "x-ratelimit-reset-tokens": "soon",
    }
    with caplog.at_level(logging.WARNING, logger="tokenbudget.http"):
        report = parse("openai", headers)
    tokens = report.limits["tokens"]
    assert (tokens.limit, tokens.remaining, tokens.reset) == (None, 5.0, None)
    assert "x-ratelimit-limit-tokens 'lots'" in caplog.text
    assert "x-ratelimit-reset-tokens 'soon'" in caplog.text


def test_anthropic_reset_after_date_counts_from_date():
    """An Anthropic reset after Date is that many seconds; before it, zero."""
    headers = {
        "date": "Tue, 15 Oct 2024 09:48:23 GMT",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2024-10-15T09:48:33Z",
        "anthropic-ratelimit-tokens-remaining": "10",
        "anthropic-ratelimit-tokens-reset": "2024-10-15T09:48:13Z",
    }
    report = parse("anthropic", headers, status=429, received_at=0.0)
    assert report.limits["requests"].reset == 10.0
    assert report.limits["tokens"].reset == 0.0
    assert (report.kind, report.retry_after) == ("wait", 10.0)  # the exhausted limit's reset


def test_anthropic_stream_usage():
    """A streamed answer settles from its message_start and message_delta events."""
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1}}},
        {"type": "content_block_delta"},
        {"type": "message_delta", "usage": {"output_tokens": 15}},
    ]
    body = "".join(f"event: x\ndata: {json.dumps(e)}\n\n" for e in events)
    report = parse("anthropic", {}, body)
    assert report.cost == {"input-tokens": 25.0, "output-tokens": 15.0, "tokens": 40.0}


def test_openai_stream_usage():
    """A streamed OpenAI answer with include_usage settles from its last chunk."""
    chunks = [{"choices": [{"delta": {"content": "hi"}}], "usage": None}]
    chunks.append({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}})
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    assert parse("openai", {}, body.encode()).cost["tokens"] == 12.0


def test_github_graphql_rate_limited_error():
    """A GraphQL RATE_LIMITED error (HTTP 200) is a wait until the graphql reset."""
    headers = {
        "Date": "Wed, 18 Sep 2024 08:32:30 GMT",
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1726649567",
        "X-RateLimit-Resource": "graphql",
    }
    body = {"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]}
    report = parse("github", headers, body)
    assert (report.kind, report.retry_after) == ("wait", 1217.0)


def test_github_permission_403_is_no_quota_answer():
    """A 403 that is no rate limit (a permission) is not a refusal of the quota."""
    report = parse("github", {}, {"message": "Resource not accessible by integration"}, status=403)
    assert report.kind is None


def test_keepa_402_is_terminal():
    """Keepa's 402 (the key has no access) is terminal."""
    assert parse("keepa", {}, b"", status=402).kind == "terminal"


def test_keepa_deep_debt_waits_for_enough_steps():
    """A 429 at -45 tokens with 20 a minute waits for three steps: refillIn + 2 minutes."""
    body = {"timestamp": 1, "tokensLeft": -45, "refillIn": 10000, "refillRate": 20}
    assert parse("keepa", {}, body, status=429).retry_after == 130.0


def test_keepa_zeroed_error_envelope_reports_no_limit():
    """A 400 with a zeroed envelope (refillRate 0) reports Keepa's error, no limit."""
    body = {
        "timestamp": 1594177158252,
        "tokensLeft": 0,
        "refillIn": 0,
        "refillRate": 0,
        "error": {"type": "invalidParameter", "message": "bad asin"},
    }
    report = parse("keepa", {}, body, status=400)
    assert report.limits == {}
    assert report.message == "invalidParameter: bad asin"


def test_keepa_error_without_envelope_keeps_the_message():
    """A 400 whose body has only an error object still reports Keepa's words."""
    report = parse("keepa", {}, {"error": {"type": "invalidParameter", "message": "m"}}, status=400)
    assert (report.limits, report.message) == ({}, "invalidParameter: m")


def test_mistral_flat_error_body():
    """Mistral's flat 429 body (message at the top) is read for its words."""
    body = {"object": "error", "message": "Requests rate limit exceeded", "type": "rate_limited"}
    report = parse("mistral", {"retry-after": "3"}, body, status=429)
    assert (report.kind, report.retry_after, report.message) == (
        "wait",
        3.0,
        "Requests rate limit exceeded",
    )


def test_unhashable_error_code_is_no_crash():
    """Regression: an error_code that is a list (unhashable) is read as no code."""
    body = {"type": "error", "error": {"type": None, "message": "m", "details": {"error_code": []}}}
    assert parse("anthropic", {}, body, status=400).kind is None


def test_unhashable_part_type_is_no_crash():
    """Regression: a message part whose type is a list is counted as text, not a crash."""
    body = {"messages": [{"role": "user", "content": [{"type": ["image"], "text": "hi"}]}]}
    assert estimate("openai", "POST", "https://api.openai.com/v1/chat/completions", {}, body)


def test_huge_page_sizes_are_capped():
    """Regression: first: 1e300 counts as Shopify's cap of 250 (no OverflowError)."""
    query = "query($n: Int) { a(first: $n) { b(first: $n) { c(first: $n) { nodes { id } } } } }"
    body = {"query": query, "variables": {"n": 1e300}}
    costs = estimate("shopify", "POST", "https://s/admin/api/graphql.json", {}, body)
    assert costs["graphql"] == 2 + 250 * (2 + 250 * (2 + 250 * 1))


def test_ietf_intermediate_l_parameter_and_malformed_member():
    """An intermediate draft's l= stands for q=; a member broken by a comma is dropped."""
    report = parse(
        "ietf",
        [("RateLimit-Policy", "default;l=100;w=10"), ("RateLimit", "default;r=0, t=10")],
    )
    limit = report.limits["default"]
    assert (limit.limit, limit.remaining, limit.reset, limit.window) == (100, 0, None, 10)


@pytest.mark.parametrize(
    "fields",
    [
        [
            ("RateLimit", "limit=100, remaining=50, reset=5"),
            ("RateLimit-Limit", "100"),
            ("RateLimit-Remaining", "10"),
            ("RateLimit-Reset", "3"),
        ],
        [
            ("RateLimit", "limit=100, remaining=10, reset=3"),
            ("RateLimit", "limit=100, remaining=50, reset=5"),
        ],
    ],
)
def test_ietf_older_drafts_twice_report_the_lower_remaining(fields):
    """Two current states of the older drafts (-07 and -06, or -07 twice): never the higher one."""
    limit = parse("ietf", fields).limits["default"]
    assert (limit.limit, limit.remaining, limit.reset) == (100, 10, 5)


def test_mistral_2024_minute_is_a_fixed_window():
    """ratelimitbysize-reset counts down a fixed minute: the limit comes back in one step.

    The real capture (1,027 of 500,000 tokens spent, reset 42 s) is no continuous
    refill, which would be whole again in 0.12 s: read as one, a bucket would run
    ahead of the server.
    """
    report = parse(
        "mistral",
        {
            "ratelimitbysize-limit": "500000",
            "ratelimitbysize-remaining": "498973",
            "ratelimitbysize-reset": "42",
        },
    )
    assert report.limits["tokens-minute"] == Limit(
        500000, 498973, 42, window=60, step=60, unit="tokens"
    )


def test_mistral_a_bad_remaining_field_leaves_the_figure_unknown_beside_a_good_one():
    """A malformed alias ("-1.0") may have been the lowest: the other's "0" is not taken."""
    report = parse(
        "mistral",
        [("x-ratelimit-remaining-tokens-minute", "-1.0"), ("ratelimitbysize-remaining", "0")],
    )
    assert report.limits["tokens-minute"].remaining is None
    report = parse(
        "mistral",
        [("ratelimitbysize-remaining", "0"), ("x-ratelimit-remaining-tokens-minute", "soon")],
    )
    assert report.limits["tokens-minute"].remaining is None
