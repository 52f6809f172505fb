"""Every real quota sample in ../shared/quota-header-samples parses to the figures its source shows."""

from __future__ import annotations

import ast
import json

import pytest

from tests.shared_data import (
    quota_sample,
    quota_sections,
    sample_headers,
    sample_json,
    sample_status,
)
from tokenbudget.http import Limit, parse


def section(name: str, prefix: str) -> str:
    """The one section of a sample file whose title starts with *prefix*."""
    found = [text for title, text in quota_sections(name).items() if title.startswith(prefix)]
    assert len(found) == 1, (name, prefix)
    return found[0]


def figures(limit: Limit) -> tuple[float | None, float | None, float | None]:
    return (limit.limit, limit.remaining, limit.reset)


# -- OpenAI ------------------------------------------------------------------------------------

OPENAI = {
    "2024-10-15": ((5000, 4999, 0.012), (800000, 798962, 0.077)),
    "2024-11-18": ((5000, 4999, 0.012), (800000, 799970, 0.002)),
    "2025-11-16": ((5000, 4999, 0.012), (800000, 799986, 0.001)),
    "2025-05-26": ((5000, 4999, 0.012), (160000, 159976, 0.009)),
    "DOC EXAMPLE": ((60, 59, 1.0), (150000, 149984, 360.0)),
}


@pytest.mark.parametrize("prefix", OPENAI)
def test_openai_chat_completions(prefix):
    """OpenAI's captures: limits, remaining and Go-style resets (12ms, 6m0s) in seconds."""
    text = section("openai-chat-completions.txt", prefix)
    report = parse("openai", sample_headers(text))
    requests, tokens = OPENAI[prefix]
    assert figures(report.limits["requests"]) == requests
    assert figures(report.limits["tokens"]) == tokens
    assert report.limits["tokens"].window == 60.0
    assert report.kind is None
    assert report.retry_after is None


def test_openai_usage_based_variant():
    """The *_usage_based headers are their own limit, with their own figures."""
    text = section("openai-chat-completions.txt", "2025-05-26")
    report = parse("openai", sample_headers(text))
    assert figures(report.limits["tokens_usage_based"]) == (160000, 159976, 0.009)


def test_openai_answer_settles_its_usage():
    """The body's usage (prompt 21 + completion 9) is the cost, not the header delta (1038)."""
    text = section("openai-chat-completions.txt", "2024-10-15")
    body = {"usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}}
    report = parse("openai", sample_headers(text), json.dumps(body))
    assert report.cost["tokens"] == 30
    assert report.as_of == 1729004170.0  # Tue, 15 Oct 2024 14:56:10 GMT


def _openai_429_bodies() -> dict[str, object]:
    """The three kinds of OpenAI 429 body, as the API sends them (JSON)."""
    text = quota_sample("openai-429-bodies.txt")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    waits = [line for line in lines if "Rate limit reached" in line]
    dicts = [ast.literal_eval(line) for line in lines if line.startswith("{'error'")]
    bodies: dict[str, object] = {}
    for i, line in enumerate(waits):
        message = line[line.index("Rate limit reached") :]
        error = {"message": message, "type": "tokens", "param": None, "code": "rate_limit_exceeded"}
        bodies[f"wait{i}"] = {"error": error}
    bodies["too_large"], bodies["terminal"] = dicts
    return bodies


@pytest.mark.parametrize(
    ("key", "retry_after", "requested"),
    [("wait0", 9.816, 3082.0), ("wait1", 0.644, 385.0), ("wait2", 18.642, 24754.0)],
)
def test_openai_429_rate_limit_reached_is_a_wait(key, retry_after, requested):
    """'Rate limit reached ... try again in 9.816s' is a wait of that many seconds."""
    report = parse("openai", {}, json.dumps(_openai_429_bodies()[key]), status=429)
    assert report.kind == "wait"
    assert report.retry_after == pytest.approx(retry_after, abs=1e-12)
    assert report.requested == {"tokens": requested}


def test_openai_429_request_too_large():
    """'Request too large ... Limit 30000, Requested 31538' can never fit."""
    report = parse("openai", {}, json.dumps(_openai_429_bodies()["too_large"]), status=429)
    assert report.kind == "too_large"
    assert report.requested == {"tokens": 31538.0}
    assert report.allowed == {"tokens": 30000.0}
    assert report.message.startswith("Request too large for gpt-4o")


def test_openai_429_insufficient_quota_is_terminal():
    """insufficient_quota is billing: terminal, no wait."""
    report = parse("openai", {}, json.dumps(_openai_429_bodies()["terminal"]), status=429)
    assert report.kind == "terminal"
    assert report.retry_after is None


def test_openai_header_retry_after_beats_the_message():
    """A retry-after header takes precedence over the wait the message names."""
    body = json.dumps(_openai_429_bodies()["wait0"])
    report = parse("openai", {"retry-after": "20"}, body, status=429)
    assert report.retry_after == 20.0


# -- Groq --------------------------------------------------------------------------------------

GROQ = {
    "2024-10-15": ((7000, 6999, 12.342857142), (7000, 6992, 0.068571428)),
    "2024-10-25": ((7000, 6999, 12.342857142), (7000, 6992, 0.068571428)),
    "2025-03-03": ((1000, 999, 86.4), (6000, 5992, 0.08)),
    "2025-08-21": ((500000, 499999, 0.172799999), (300000, 299991, 0.0018)),
    "2025-11-16": ((500000, 499999, 0.172799999), (250000, 249969, 0.00744)),
    "DOC EXAMPLE": ((14400, 14370, 179.56), (18000, 17997, 7.66)),
}


@pytest.mark.parametrize("prefix", GROQ)
def test_groq_chat_completions(prefix):
    """Groq's captures: requests per day, tokens per minute, fractional multi-unit durations."""
    text = section("groq-chat-completions.txt", prefix)
    report = parse("groq", sample_headers(text))
    (req_limit, req_left, req_reset), (tok_limit, tok_left, tok_reset) = GROQ[prefix]
    requests, tokens = report.limits["requests"], report.limits["tokens"]
    assert (requests.limit, requests.remaining) == (req_limit, req_left)
    assert (tokens.limit, tokens.remaining) == (tok_limit, tok_left)
    assert (requests.reset, tokens.reset) == (req_reset, tok_reset)
    assert (requests.window, tokens.window) == (86400.0, 60.0)


def test_groq_doc_example_retry_after():
    """Groq's documented retry-after (2) is the report's wait."""
    text = section("groq-chat-completions.txt", "DOC EXAMPLE")
    report = parse("groq", sample_headers(text), status=429)
    assert (report.kind, report.retry_after) == ("wait", 2.0)


# -- Anthropic ---------------------------------------------------------------------------------

ANTHROPIC = {
    "2024-10-15": {"requests": (50, 49, 47.0), "tokens": (40000, 40000, 0.0)},
    "2024-11-14": {"requests": (1000, 999, 0.0), "tokens": (80000, 80000, 0.0)},
    "2025-03-21": {
        "requests": (1000, 999, 0.0),
        "input-tokens": (80000, 80000, 0.0),
        "output-tokens": (16000, 16000, 0.0),
        "tokens": (96000, 96000, 0.0),
    },
    "2025-08-21": {
        "requests": (1000, 999, 0.0),
        "input-tokens": (80000, 80000, 0.0),
        "output-tokens": (16000, 16000, 0.0),
        "tokens": (96000, 96000, 0.0),
    },
}


@pytest.mark.parametrize("prefix", ANTHROPIC)
def test_anthropic_messages(prefix):
    """Anthropic's captures: RFC 3339 resets against Date; those before Date mean now."""
    text = section("anthropic-messages.txt", prefix)
    report = parse("anthropic", sample_headers(text))
    assert {name: figures(limit) for name, limit in report.limits.items()} == ANTHROPIC[prefix]
    assert all(limit.window == 60.0 for limit in report.limits.values())


@pytest.mark.parametrize("prefix", ANTHROPIC)
def test_anthropic_token_figures_count_their_rounding(prefix):
    """Token figures are rounded to the nearest thousand: their least is 500 below; requests exact."""
    text = section("anthropic-messages.txt", prefix)
    report = parse("anthropic", sample_headers(text))
    for name, limit in report.limits.items():
        if name == "requests":
            assert limit.rounding is None
            assert limit.least_remaining == limit.remaining
        else:
            assert limit.rounding == 1000.0
            assert limit.least_remaining == ANTHROPIC[prefix][name][1] - 500


def test_anthropic_figure_off_the_thousands_is_exact():
    """A token figure that is no multiple of a thousand was not rounded: it counts whole."""
    text = section("anthropic-messages.txt", "2024-10-15").replace(
        "tokens-remaining: 40000", "tokens-remaining: 39123"
    )
    tokens = parse("anthropic", sample_headers(text)).limits["tokens"]
    assert (tokens.remaining, tokens.rounding, tokens.least_remaining) == (39123, None, 39123)


def test_anthropic_usage_with_cache_fields():
    """usage with cache fields settles input (16 + 0 created), output 24, tokens 40."""
    text = section("anthropic-messages.txt", "2025-08-21")
    body = {
        "usage": {
            "input_tokens": 16,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 24,
        }
    }
    report = parse("anthropic", sample_headers(text), body)
    assert report.cost == {"input-tokens": 16.0, "output-tokens": 24.0, "tokens": 40.0}


def test_anthropic_spend_cap_is_terminal():
    """The spend-cap 429 (rate_limit_error, enforced_spend_limit_reached) is terminal."""
    text = section("anthropic-errors.txt", "DOC EXAMPLE")
    report = parse("anthropic", {}, json.dumps(sample_json(text)), status=429)
    assert report.kind == "terminal"
    assert report.retry_after is None
    assert "monthly API usage threshold" in report.message


def test_anthropic_itpm_429_is_a_wait():
    """The real input-tokens-per-minute 429 message, as Anthropic sends it, is a wait."""
    text = section("anthropic-errors.txt", "Real ITPM 429")
    line = next(line for line in text.splitlines() if line.startswith("Error code: 429"))
    relayed = ast.literal_eval(line.split(" - ", 1)[1])
    body = {"type": "error", "error": {"type": "rate_limit_error", **relayed["error"]}}
    del body["error"]["code"]
    report = parse("anthropic", {"retry-after": "11"}, json.dumps(body), status=429)
    assert (report.kind, report.retry_after) == ("wait", 11.0)
    assert "20,000 input tokens per minute" in report.message


# -- GitHub ------------------------------------------------------------------------------------

GITHUB = {
    "2013-05-17": ("https://api.github.com/users/jacquev6", "core", (60, 0, None)),
    "2018-10-23": ("https://api.github.com/search/code?q=jacquev6", "code_search", (30, 25, 53.0)),
    "2022-10-13": ("https://api.github.com/repos/lexa/PyGithub", "core", (5000, 4986, 2581.0)),
    "2024-09-18": ("https://api.github.com/graphql", "graphql", (5000, 4985, 1217.0)),
    "2025-01-07": ("https://api.github.com/search/commits?q=hash", "search", (30, 29, 60.0)),
}


@pytest.mark.parametrize("prefix", GITHUB)
def test_github_rest(prefix):
    """GitHub's captures: epoch resets measured against Date, named by resource (or path)."""
    text = section("github-rest-graphql.txt", prefix)
    url, resource, expected = GITHUB[prefix]
    report = parse("github", sample_headers(text), status=sample_status(text), url=url)
    assert list(report.limits) == [resource]
    assert figures(report.limits[resource]) == expected
    assert report.kind is None  # a 200 is no refusal, even at remaining 0


def test_github_reset_ignores_the_local_clock():
    """The reset is the same whatever the local clock says: Date is the reference."""
    text = section("github-rest-graphql.txt", "2022-10-13")
    for received_at in (0.0, 1.7e9, 2.5e9):
        report = parse("github", sample_headers(text), received_at=received_at)
        assert report.limits["core"].reset == 2581.0


def test_github_windows_are_fixed():
    """core is an hourly fixed window, search a minute's."""
    core = parse("github", sample_headers(section("github-rest-graphql.txt", "2022-10-13")))
    search = parse("github", sample_headers(section("github-rest-graphql.txt", "2025-01-07")))
    assert (core.limits["core"].window, core.limits["core"].step) == (3600.0, 3600.0)
    assert (search.limits["search"].window, search.limits["search"].step) == (60.0, 60.0)


def _github_messages() -> list[str]:
    text = section("github-rest-graphql.txt", "Secondary-rate-limit")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("index", [1, 2, 3])
def test_github_secondary_limit_messages_wait_a_minute(index):
    """A 403 with a secondary-limit message and no retry-after waits GitHub's advised minute."""
    message = _github_messages()[index]
    report = parse("github", {}, json.dumps({"message": message}), status=403)
    assert (report.kind, report.retry_after) == ("wait", 60.0)


def test_github_primary_limit_message_waits_for_the_reset():
    """A 403 'API rate limit exceeded' at remaining 0 waits for the reset, against Date."""
    message = _github_messages()[0]
    headers = {
        "Date": "Thu, 13 Oct 2022 11:21:25 GMT",
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1665662666",
        "X-RateLimit-Resource": "core",
    }
    report = parse("github", headers, json.dumps({"message": message}), status=403)
    assert (report.kind, report.retry_after) == ("wait", 2581.0)


def test_github_secondary_retry_after_wins():
    """A secondary limit's retry-after is the wait."""
    message = _github_messages()[2]
    report = parse("github", {"retry-after": "30"}, json.dumps({"message": message}), status=403)
    assert (report.kind, report.retry_after) == ("wait", 30.0)


def test_github_graphql_rate_limit_object():
    """GraphQL data.rateLimit reports the graphql limit and settles its cost."""
    headers = sample_headers(section("github-rest-graphql.txt", "2024-09-18"))
    body = {
        "data": {
            "rateLimit": {
                "limit": 5000,
                "remaining": 4984,
                "cost": 1,
                "resetAt": "2024-09-18T08:52:47Z",
            }
        }
    }
    report = parse("github", headers, json.dumps(body))
    assert figures(report.limits["graphql"]) == (5000, 4984, 1217.0)
    assert report.cost == {"graphql": 1.0}


# -- Shopify -----------------------------------------------------------------------------------


def test_shopify_throttled():
    """The real THROTTLED answer: a wait for 752 - 666 points at 50 a second."""
    text = section("shopify.txt", "REAL capture: THROTTLED")
    report = parse("shopify", {}, json.dumps(sample_json(text)))
    graphql = report.limits["graphql"]
    assert (graphql.limit, graphql.remaining, graphql.window) == (1000.0, 666.0, 20.0)
    assert graphql.reset == pytest.approx(334 / 50)
    assert report.kind == "wait"
    assert report.retry_after == pytest.approx((752 - 666) / 50)
    assert report.requested == {"graphql": 752.0}
    assert report.cost == {}  # actualQueryCost null: nothing ran


def test_shopify_success_refund():
    """The documented success: requested 101, actual 46 (the refund), 954 of 1000 left."""
    text = section("shopify.txt", "DOC EXAMPLE: successful")
    body = json.loads("{" + text[text.index('"extensions"') :] + "}")
    report = parse("shopify", {}, json.dumps(body))
    assert figures(report.limits["graphql"])[:2] == (1000.0, 954.0)
    assert report.cost == {"graphql": 46.0}
    assert report.requested == {"graphql": 101.0}
    assert report.kind is None


def test_shopify_max_cost_exceeded_is_too_large():
    """MAX_COST_EXCEEDED (HTTP 200) can never fit: requested 2003, allowed 1000."""
    text = section("shopify.txt", "DOC EXAMPLE: single-query")
    report = parse("shopify", {}, json.dumps(sample_json(text)))
    assert report.kind == "too_large"
    assert (report.requested, report.allowed) == ({"graphql": 2003.0}, {"graphql": 1000.0})


def test_shopify_rest_call_limit():
    """X-Shopify-Shop-Api-Call-Limit: 1/40 is 39 of 40 calls left."""
    text = section("shopify.txt", "REAL capture: REST")
    report = parse("shopify", sample_headers(text))
    assert figures(report.limits["rest"]) == (40.0, 39.0, 0.5)
    assert report.limits["rest"].window == 20.0


# -- Mistral -----------------------------------------------------------------------------------


def test_mistral_ratelimitbysize_2024():
    """The 2024 generation: tokens per minute and per day; the charged query cost 1027."""
    text = section("mistral-chat-completions.txt", "2024-10-15")
    report = parse("mistral", sample_headers(text))
    assert figures(report.limits["tokens-minute"]) == (500000, 498973, 42.0)
    assert figures(report.limits["tokens-day"]) == (150000000, 149659285, None)
    assert report.limits["tokens-day"].window == 86400.0
    assert report.cost == {"tokens-minute": 1027.0, "tokens-day": 1027.0}


def test_mistral_ratelimitbysize_2024_later():
    """The second 2024 capture: reset 22, a day's remaining of 149994462."""
    text = section("mistral-chat-completions.txt", "2024-10-25")
    report = parse("mistral", sample_headers(text))
    assert figures(report.limits["tokens-minute"]) == (500000, 498973, 22.0)
    assert report.limits["tokens-day"].remaining == 149994462


def test_mistral_2025():
    """The 2025 generation: tokens a minute and a month, requests per 10 s; cost 68."""
    text = section("mistral-chat-completions.txt", "2025-08-21")
    report = parse("mistral", sample_headers(text))
    assert figures(report.limits["tokens-minute"]) == (2000000, 1999932, None)
    assert figures(report.limits["tokens-month"]) == (10000000000, 9999999932, None)
    assert figures(report.limits["requests-10-second"]) == (60, 59, None)
    assert report.limits["requests-10-second"].window == 10.0
    assert report.cost == {"tokens-minute": 68.0, "tokens-month": 68.0}


# -- Keepa -------------------------------------------------------------------------------------


def test_keepa_envelope():
    """Keepa's real empty-balance answer: 0 left, next refill in 38.205 s, 20 a minute."""
    text = quota_sample("keepa-envelope.txt")
    body = text[text.index("{") :]
    report = parse("keepa", {}, body, status=429)
    tokens = report.limits["tokens"]
    assert figures(tokens) == (1200.0, 0.0, 38.205)
    assert (tokens.window, tokens.step) == (3600.0, 60.0)
    assert report.cost == {"tokens": 0.0}
    assert report.as_of == 1594177158.252
    assert (report.kind, report.retry_after) == ("wait", 38.205)


# -- IETF --------------------------------------------------------------------------------------


def _ietf_lines() -> list[str]:
    return quota_sample("ietf-ratelimit-examples.txt").splitlines()


IETF_CURRENT = [
    (
        'RateLimit-Policy: "burst";q=100;w=60,"daily";q=1000;w=86400',
        {
            "burst": (100, None, None, 60, "requests"),
            "daily": (1000, None, None, 86400, "requests"),
        },
    ),
    ('RateLimit-Policy: "default";q=100;w=10', {"default": (100, None, None, 10, "requests")}),
    (
        'RateLimit-Policy: "permin";q=50;w=60,"perhr";q=1000;w=3600',
        {"permin": (50, None, None, 60, "requests"), "perhr": (1000, None, None, 3600, "requests")},
    ),
    (
        'RateLimit-Policy: "peruser";q=100;w=60;pk=:cHsdsRa894==:',
        {"peruser": (100, None, None, 60, "requests")},
    ),
    (
        'RateLimit-Policy: "peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:',
        {"peruser": (65535, None, None, 10, "content-bytes")},
    ),
    ('RateLimit: "default";r=50;t=30', {"default": (None, 50, 30, None, "requests")}),
    (
        'RateLimit: "default";r=999;pk=:dHJpYWwxMjEzMjM=:',
        {"default": (None, 999, None, None, "requests")},
    ),
    (
        'RateLimit: "default";r=300000000;t=60;pk=:QXBwLTk5OQ==:',
        {"default": (None, 300000000, 60, None, "requests")},
    ),
    (
        'RateLimit-Policy: "sliding";q=100;w=60;burst=1000',
        {"sliding": (100, None, None, 60, "requests")},
    ),
    ("RateLimit-Policy: quota;q=100;w=1", {"quota": (100, None, None, 1, "requests")}),
    ("RateLimit: quota;t=1", {"quota": (None, None, 1, None, "requests")}),
]


def as_tuple(limit: Limit) -> tuple[object, ...]:
    return (limit.limit, limit.remaining, limit.reset, limit.window, limit.unit)


@pytest.mark.parametrize(("line", "expected"), IETF_CURRENT, ids=[c[0] for c in IETF_CURRENT])
def test_ietf_current_draft_lines(line, expected):
    """Every line of the draft -10 examples, alone, parses to its figures."""
    assert line in _ietf_lines()
    name, value = line.split(": ", 1)
    report = parse("ietf", [(name, value)])
    assert {n: as_tuple(limit) for n, limit in report.limits.items()} == expected


def test_ietf_two_policies_one_reported():
    """Two policies, only the one closest to exhaustion (day) reported."""
    lines = _ietf_lines()
    i = lines.index('RateLimit-Policy: "hour";q=1000;w=3600, "day";q=5000;w=86400')
    report = parse("ietf", sample_headers("\n".join(lines[i : i + 2])))
    assert as_tuple(report.limits["hour"]) == (1000, None, None, 3600, "requests")
    assert as_tuple(report.limits["day"]) == (5000, 100, 36000, 86400, "requests")


def test_ietf_throttled_retry_after_http_date_takes_precedence():
    """The 429 with an HTTP-date Retry-After: 5 s after Date, over the policy's t=5."""
    text = quota_sample("ietf-ratelimit-examples.txt")
    start = text.index("HTTP/1.1 429 Too Many Requests\nDate:")
    block = text[start : text.index("\n#", start)]
    report = parse("ietf", sample_headers(block), status=sample_status(block))
    assert (report.kind, report.retry_after) == ("wait", 5.0)
    assert as_tuple(report.limits["default"]) == (None, 0, 5, None, "requests")


def test_ietf_throttled_retry_after_seconds_with_quota_left():
    """The 429 with Retry-After: 20 while 15 of 100 remain: wait 20, figures kept."""
    text = quota_sample("ietf-ratelimit-examples.txt")
    start = text.index("HTTP/1.1 429 Too Many Requests\nRetry-After: 20")
    block = text[start : text.index("\n#", start)]
    report = parse("ietf", sample_headers(block), status=sample_status(block))
    assert (report.kind, report.retry_after) == ("wait", 20.0)
    assert as_tuple(report.limits["dynamic"]) == (100, 15, 40, 60, "requests")


def test_ietf_draft_07():
    """Draft -07: a Dictionary RateLimit named by the policy whose quota it shows."""
    report = parse(
        "ietf",
        [("RateLimit-Policy", "100;w=10"), ("RateLimit", "limit=100, remaining=50, reset=5")],
    )
    assert as_tuple(report.limits["100;w=10"]) == (100, 50, 5, 10, "requests")


def test_ietf_draft_07_policy_list():
    """Draft -07's list of unnamed policies, each named as written."""
    report = parse("ietf", [("RateLimit-Policy", "10;w=1, 50;w=60, 1000;w=3600, 5000;w=86400")])
    assert list(report.limits) == ["10;w=1", "50;w=60", "1000;w=3600", "5000;w=86400"]
    assert as_tuple(report.limits["50;w=60"]) == (50, None, None, 60, "requests")


def test_ietf_draft_06_three_fields():
    """Draft -06: RateLimit-Limit/-Remaining/-Reset with the policy list."""
    headers = sample_headers(
        "RateLimit-Limit: 10\nRateLimit-Remaining: 1\nRateLimit-Reset: 7\n"
        "RateLimit-Policy: 10;w=1, 50;w=60, 1000;w=3600, 5000;w=86400"
    )
    assert all(f"{name}: {value}" in _ietf_lines() for name, value in headers)
    report = parse("ietf", headers)
    assert as_tuple(report.limits["10;w=1"]) == (10, 1, 7, 1, "requests")
    assert as_tuple(report.limits["5000;w=86400"]) == (5000, None, None, 86400, "requests")


def test_ietf_draft_03_policies_in_limit_field():
    """Drafts -01 to -03: the policies follow the current limit in RateLimit-Limit."""
    line = "RateLimit-Limit: 10, 10;w=1, 50;w=60, 1000;w=3600, 5000;w=86400"
    assert line in _ietf_lines()
    report = parse("ietf", [tuple(line.split(": ", 1))])
    assert as_tuple(report.limits["10;w=1"]) == (10, None, None, 1, "requests")
    assert as_tuple(report.limits["1000;w=3600"]) == (1000, None, None, 3600, "requests")


def test_cloudflare_fields():
    """Cloudflare's documented pair: a "burst" policy and the "default" state."""
    report = parse("ietf", sample_headers(quota_sample("cloudflare-api.txt")))
    assert as_tuple(report.limits["burst"]) == (100, None, None, 60, "requests")
    assert as_tuple(report.limits["default"]) == (None, 50, 30, None, "requests")
