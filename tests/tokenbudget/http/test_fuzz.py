"""Fuzzed answers: every dialect reports or warns, never raises, never shows more than the field."""

from __future__ import annotations

import contextlib
import json
import math

import httpx
from hypothesis import given
from hypothesis import strategies as st

from tests.shared_data import quota_sections, sample_headers
from tokenbudget.http import DIALECTS, Limit, QuotaReport, ResponseInfo, dialect, estimate
from tokenbudget.http._github import query_points
from tokenbudget.http._openai import go_duration
from tokenbudget.http._sf import SFError, parse_dictionary, parse_list
from tokenbudget.http._shopify import query_cost


#: The quota fields every dialect reads, so that fuzzed headers hit them often.
FIELDS = [
    "date",
    "retry-after",
    "retry-after-ms",
    *(
        f"x-ratelimit-{p}-{n}"
        for p in ("limit", "remaining", "reset")
        for n in ("requests", "tokens")
    ),
    *(
        f"anthropic-ratelimit-{n}-{p}"
        for n in ("requests", "tokens", "input-tokens", "output-tokens")
        for p in ("limit", "remaining", "reset")
    ),
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-resource",
    "x-shopify-shop-api-call-limit",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimitbysize-limit",
    "ratelimitbysize-remaining",
    "ratelimitbysize-reset",
    "ratelimitbysize-query-cost",
    "x-ratelimitbysize-remaining-day",
    "x-ratelimit-limit-tokens-minute",
    "x-ratelimit-remaining-req-10-second",
    "x-ratelimit-tokens-query-cost",
]

numbers = st.one_of(
    st.integers(-(10**20), 10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
durations = st.lists(
    st.tuples(
        st.floats(0, 1e6, allow_nan=False).map(lambda f: f"{f:.6g}"),
        st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "d", ""]),
    ),
    max_size=4,
).map(lambda parts: "".join(a + b for a, b in parts))
instants = st.one_of(
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    st.integers(0, 2**40).map(str),
)
sf_values = st.lists(
    st.tuples(
        st.sampled_from(
            ['"a"', '"day"', "quota", "100", "-1", "?1", ":YQ==:", "(1 2)", '"x\\"', "%"]
        ),
        st.lists(
            st.tuples(
                st.sampled_from(["q", "w", "r", "t", "qu", "pk", "Q", "burst", "", "1"]),
                st.sampled_from(
                    ["=1", "=0", "=-5", "=1.5", '="requests"', "=:eA==:", "", "=x", "=?0"]
                ),
            ),
            max_size=4,
        ),
    ),
    max_size=4,
).map(lambda ms: ", ".join(v + "".join(f";{k}{w}" for k, w in ps) for v, ps in ms))
values = st.one_of(numbers, durations, instants, sf_values, st.text(max_size=30))
headers = st.lists(
    st.tuples(st.sampled_from(FIELDS) | st.text(max_size=10), values), max_size=12
).map(lambda pairs: [(n.strip().lower() or "x", v) for n, v in pairs])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "error",
                    "message",
                    "code",
                    "type",
                    "usage",
                    "total_tokens",
                    "input_tokens",
                    "output_tokens",
                    "data",
                    "rateLimit",
                    "remaining",
                    "limit",
                    "cost",
                    "resetAt",
                    "errors",
                    "extensions",
                    "throttleStatus",
                    "maximumAvailable",
                    "currentlyAvailable",
                    "restoreRate",
                    "requestedQueryCost",
                    "actualQueryCost",
                    "maxCost",
                    "timestamp",
                    "tokensLeft",
                    "refillIn",
                    "refillRate",
                    "tokensConsumed",
                    "details",
                    "error_code",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
bodies = st.one_of(
    st.none(),
    json_values,
    json_values.map(json.dumps),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    st.lists(json_values.map(json.dumps), max_size=3).map(
        lambda events: "".join(f"data: {e}\n\n" for e in events)
    ),
)
statuses = st.sampled_from([200, 201, 400, 402, 403, 404, 413, 429, 500, 503, 529])


def parse(name, headers, body=None, *, status=200, url=None, received_at=None) -> QuotaReport:
    """The built-in dialect's own parse, without parse()'s safety net: a bug here fails the test."""
    response = ResponseInfo(headers, body, status=status, url=url, received_at=received_at)
    return dialect(name).parse(response)


def check_report(report: QuotaReport) -> None:
    assert isinstance(report, QuotaReport)
    for name, limit in report.limits.items():
        assert isinstance(name, str)
        assert isinstance(limit, Limit)
        for value in (limit.limit, limit.reset, limit.window, limit.step):
            assert value is None or value >= 0
        assert limit.reset is None or math.isfinite(limit.reset)
    assert report.retry_after is None or (
        math.isfinite(report.retry_after) and report.retry_after >= 0
    )
    assert all(math.isfinite(cost) and cost >= 0 for cost in report.cost.values())
    assert report.kind in {None, "wait", "too_large", "terminal"}


@given(st.sampled_from(DIALECTS), headers, bodies, statuses, st.floats(0, 4e9))
def test_any_answer_gives_a_report(dialect, fields, body, status, received_at):
    """Whatever the headers, body and status, every dialect returns a valid report."""
    check_report(parse(dialect, fields, body, status=status, received_at=received_at))


@given(st.sampled_from(DIALECTS), headers, bodies, st.sampled_from(["GET", "POST"]))
def test_any_request_gives_an_estimate(dialect, fields, body, method):
    """Whatever the request, every dialect's estimate is finite costs >= 0."""
    for url in ("https://api.example.com/v1/chat/completions", "/admin/api/graphql.json", "/x"):
        costs = estimate(dialect, method, url, fields, body)
        assert all(math.isfinite(c) and c >= 0 for c in costs.values())


REMAINING_FIELDS = {
    "openai": {
        "x-ratelimit-remaining-tokens": "tokens",
        "x-ratelimit-remaining-requests": "requests",
    },
    "groq": {
        "x-ratelimit-remaining-tokens": "tokens",
        "x-ratelimit-remaining-requests": "requests",
    },
    "anthropic": {
        f"anthropic-ratelimit-{n}-remaining": n
        for n in ("requests", "tokens", "input-tokens", "output-tokens")
    },
    "github": {"x-ratelimit-remaining": "core"},
    "mistral": {
        "ratelimitbysize-remaining": "tokens-minute",
        "x-ratelimitbysize-remaining-minute": "tokens-minute",
        "x-ratelimit-remaining-tokens-minute": "tokens-minute",
    },
}


@given(
    st.sampled_from(sorted(REMAINING_FIELDS)),
    st.data(),
    st.lists(st.integers(0, 10**12) | numbers, min_size=1, max_size=3),
    headers,
    statuses,
)
def test_never_more_remaining_than_the_field_says(dialect, data, reported, noise, status):
    """A limit's remaining is never above any value its field carries (repeated fields too)."""
    field = data.draw(st.sampled_from(sorted(REMAINING_FIELDS[dialect])))
    fields = [pair for pair in noise if pair[0] != field and not pair[0].endswith("resource")]
    fields += [(field, str(value)) for value in reported]
    report = parse(dialect, fields, status=status, url="https://api.github.com/x")
    limit = report.limits.get(REMAINING_FIELDS[dialect][field])
    numeric = []
    for value in reported:
        with contextlib.suppress(ValueError):
            numeric.append(float(value))
    if limit is not None and limit.remaining is not None:
        assert all(limit.remaining <= float(v) for v in numeric if math.isfinite(float(v)))


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=3), headers)
def test_ietf_never_more_remaining_than_r(rs, noise):
    """The IETF r parameter, repeated for one policy, reports its lowest value."""
    fields = [pair for pair in noise if pair[0] != "ratelimit"]
    fields += [("RateLimit", f'"p";r={r};t=5') for r in rs]
    report = parse("ietf", fields)
    assert report.limits["p"].remaining == min(rs)


@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_shopify_rest_never_more_than_the_header(used, size):
    """used/size reports size - used left, never more."""
    report = parse("shopify", {"X-Shopify-Shop-Api-Call-Limit": f"{used}/{size}"})
    assert report.limits["rest"].remaining == size - used


@given(st.text(max_size=40) | durations)
def test_go_duration_never_raises(text):
    """Any text is a duration in seconds >= 0, or None."""
    value = go_duration(text)
    assert value is None or (math.isfinite(value) and value >= 0)


@given(st.text(max_size=60) | sf_values)
def test_structured_fields_raise_only_sf_errors(text):
    """The SF parser, strict, raises SFError or parses; lenient, never raises."""
    for parse_field in (parse_list, parse_dictionary):
        with contextlib.suppress(SFError):
            parse_field(text)
        parse_field(text, lenient=True)


@given(st.text(alphabet='{}()[]:$@.!first last x 0123456789"#\n', max_size=200))
def test_query_cost_never_raises(query):
    """Any query text has a cost >= 1, or None."""
    cost = query_cost(query, {"x": 5})
    assert cost is None or cost >= 1
    points = query_points(query, {"x": 5})
    assert points is None or points >= 1


def test_deep_query_is_not_read():
    """A query nested deeper than Shopify allows is not read (no RecursionError)."""
    assert query_cost("{a" * 5000 + "}" * 5000) is None
    assert query_points("{a" * 5000 + "}" * 5000) is None


SAMPLE_FILES = {
    "openai": "openai-chat-completions.txt",
    "groq": "groq-chat-completions.txt",
    "anthropic": "anthropic-messages.txt",
    "github": "github-rest-graphql.txt",
    "mistral": "mistral-chat-completions.txt",
}


@given(
    st.sampled_from(sorted(SAMPLE_FILES)),
    st.randoms(use_true_random=False),
    st.sampled_from(["pairs", "dict", "httpx", "bytes"]),
)
def test_real_samples_read_the_same_in_any_case_order_and_shape(dialect, rng, shape):
    """A real sample's headers in any letter case, order and container give the same report."""
    sections = quota_sections(SAMPLE_FILES[dialect])
    text = sections[rng.choice(sorted(sections))]
    pairs = sample_headers(text)
    expected = parse(dialect, pairs, received_at=1.7e9)
    rng.shuffle(pairs)
    recased = [("".join(rng.choice((c.upper(), c.lower())) for c in n), v) for n, v in pairs]
    given_headers: object = {
        "pairs": recased,
        "dict": dict(recased),
        "httpx": httpx.Headers(recased),
        "bytes": [(n.encode(), v.encode()) for n, v in recased],
    }[shape]
    assert parse(dialect, given_headers, received_at=1.7e9) == expected  # type: ignore[arg-type]


#: Real body shapes; the fuzzer replaces their leaves with anything JSON holds.
SHAPES = [
    {
        "error": {
            "message": "Rate limit reached. Please try again in 1.5s",
            "code": "x",
            "type": "t",
        }
    },
    {"error": {"message": "Request too large on tokens: Limit 5, Requested 9", "code": "x"}},
    {"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
    {"usage": {"input_tokens": 1, "cache_creation_input_tokens": 2, "output_tokens": 3}},
    {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "m", "details": {"error_code": "e"}},
    },
    {
        "data": {
            "rateLimit": {
                "limit": 5000,
                "remaining": 1,
                "cost": 1,
                "resetAt": "2024-09-18T08:52:47Z",
            }
        }
    },
    {"errors": [{"type": "RATE_LIMITED", "message": "m"}]},
    {
        "errors": [
            {"message": "m", "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 2, "maxCost": 1}}
        ],
        "extensions": {
            "cost": {
                "requestedQueryCost": 752,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": 1000,
                    "currentlyAvailable": 666,
                    "restoreRate": 50,
                },
            }
        },
    },
    {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]},
    {
        "timestamp": 1594177158252,
        "tokensLeft": -1,
        "refillIn": 38205,
        "refillRate": 20,
        "tokensConsumed": 1,
    },
    {"message": "You have exceeded a secondary rate limit"},
]


@st.composite
def shaped_bodies(draw: st.DrawFn) -> object:
    """A real body shape with some leaves replaced by any JSON value."""

    def mutate(value: object) -> object:
        if isinstance(value, dict):
            return {k: mutate(v) for k, v in value.items() if draw(st.integers(0, 7))}  # drop 1/8
        if isinstance(value, list):
            return [mutate(v) for v in value]
        return draw(json_values) if draw(st.integers(0, 3)) == 0 else value

    return mutate(draw(st.sampled_from(SHAPES)))


#: Real request shapes (chat, responses, messages with media, GraphQL) for the estimates.
REQUEST_SHAPES = [
    {
        "model": "gpt-4o",
        "max_tokens": 100,
        "n": 2,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
    },
    {"model": "gpt-4.1", "input": "Hello", "max_output_tokens": 50},
    {
        "model": "claude",
        "max_tokens": 1024,
        "system": "s",
        "messages": [{"role": "user", "content": [{"type": "image", "source": {"data": "x"}}]}],
    },
    {"query": "query($n: Int) { products(first: $n) { nodes { id } } }", "variables": {"n": 5}},
    {
        "query": "query($n: Int) { a(first: $n) { b(last: $n) { c(first: 7) { nodes { id } } } } }",
        "variables": {"n": 5},
    },
]


@st.composite
def shaped_requests(draw: st.DrawFn) -> object:
    """A real request shape with some leaves replaced by any JSON value."""

    def mutate(value: object) -> object:
        if isinstance(value, dict):
            return {k: mutate(v) for k, v in value.items() if draw(st.integers(0, 7))}
        if isinstance(value, list):
            return [mutate(v) for v in value]
        return draw(json_values) if draw(st.integers(0, 3)) == 0 else value

    return mutate(draw(st.sampled_from(REQUEST_SHAPES)))


@given(st.sampled_from(DIALECTS), shaped_requests(), st.booleans())
def test_real_shaped_requests_with_fuzzed_leaves(dialect, body, as_bytes):
    """Real request shapes with any value in any leaf give finite estimates >= 0."""
    payload = json.dumps(body).encode() if as_bytes else body
    for url in ("https://api.openai.com/v1/chat/completions", "https://s/admin/api/graphql.json"):
        costs = estimate(dialect, "POST", url, {}, payload)
        assert all(math.isfinite(c) and c >= 0 for c in costs.values())


@given(st.sampled_from(DIALECTS), shaped_bodies(), statuses, st.booleans())
def test_real_shaped_bodies_with_fuzzed_leaves(dialect, body, status, as_bytes):
    """Real body shapes with any value in any leaf give a valid report in every dialect."""
    payload = json.dumps(body).encode() if as_bytes else body
    check_report(parse(dialect, {"date": "Tue, 15 Oct 2024 14:56:10 GMT"}, payload, status=status))
