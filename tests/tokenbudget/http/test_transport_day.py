"""A simulated day per dialect, over real sockets: the transport alone on a key meets no refusal.

Each test runs a loopback server of ``tests/http_servers.py`` that enforces its quota the
way its API does, and a client through the quota transport; both read one
:class:`~tokenbudget.ManualClock`, so that the transport's waits pass at once and a day
of hourly bursts, each larger than the quota, runs in about a second. With a competitor
spending from the same quota outside the transport's buckets, refusals happen; each is
retried (or raised as its kind says), and there are few of them.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.http_servers import (
    AnthropicServer,
    GitHubServer,
    GroqServer,
    IETFServer,
    MistralServer,
    OpenAIServer,
    QuotaServer,
    ShopifyServer,
    shopify_requested_cost,
)
from tokenbudget import ManualClock
from tokenbudget.http import RateLimited
from tokenbudget.http.httpx import QuotaTransport

from ._dialect_fixture import needs_dialect


HOUR = 3600.0
BURSTS = 24
PER_BURST = 12
EPOCH = 1_780_000_000.0


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join("quota" for _ in range(rng.randint(low, high)))


def openai_request(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": _words(rng, 10, 150)},
        ],
        "max_tokens": rng.randint(20, 400),
    }
    if rng.random() < 0.3:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return {"method": "POST", "url": "/v1/chat/completions", "json": body}


def mistral_request(rng: random.Random) -> dict[str, Any]:
    body = {**openai_request(rng)["json"], "model": "mistral-small-latest"}
    body.pop("stream", None)
    body.pop("stream_options", None)
    return {"method": "POST", "url": "/v1/chat/completions", "json": body}


def anthropic_request(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": rng.randint(20, 300),
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": _words(rng, 10, 150)}],
    }
    if rng.random() < 0.3:
        body["stream"] = True
    return {"method": "POST", "url": "/v1/messages", "json": body}


def anthropic_large_request(rng: random.Random) -> dict[str, Any]:
    """A prompt of thousands of tokens (counted in full, as booked), a short answer."""
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": rng.randint(20, 200),
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": _words(rng, 1_000, 4_000)}],
    }
    if rng.random() < 0.3:
        body["stream"] = True
    return {"method": "POST", "url": "/v1/messages", "json": body}


def github_request(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.1:
        return {"method": "GET", "url": "/search/issues", "params": {"q": "quota"}}
    if roll < 0.2:
        query = "query { viewer { repositories(first: 50) { nodes { name } } } rateLimit { cost remaining resetAt } }"
        return {"method": "POST", "url": "/graphql", "json": {"query": query}}
    return {"method": "GET", "url": f"/repos/octo/repo{rng.randint(1, 99)}"}


def shopify_request(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.2:
        return {"method": "GET", "url": "/admin/api/2025-01/products.json"}
    query = f"{{ products(first: {rng.randint(5, 200)}) {{ edges {{ node {{ id title }} }} }} }}"
    return {"method": "POST", "url": "/admin/api/2025-01/graphql.json", "json": {"query": query}}


def shopify_cost(request: httpx.Request) -> dict[str, float]:
    """Shopify's requested cost of a GraphQL query (the server's own count), or one REST call."""
    if request.url.path.endswith("/graphql.json"):
        return {"graphql": float(shopify_requested_cost(json.loads(request.content)["query"]))}
    return {"rest": 1.0}


def ietf_request(rng: random.Random) -> dict[str, Any]:
    return {"method": "GET", "url": f"/items/{rng.randint(1, 999)}"}


def _send(http_client: httpx.Client, spec: dict[str, Any]) -> int:
    """Send one request; a stream is read to its end (or, one in five, abandoned)."""
    body = spec.get("json") or {}
    if body.get("stream"):
        with http_client.stream(spec["method"], spec["url"], json=body) as response:
            if random.random() < 0.8:
                response.read()
            return response.status_code
    response = http_client.request(
        spec["method"], spec["url"], json=spec.get("json"), params=spec.get("params")
    )
    response.read()
    return response.status_code


def run_day(
    server: QuotaServer,
    clock: ManualClock,
    dialect: str,
    make_request: Callable[[random.Random], dict[str, Any]],
    *,
    bursts: int = BURSTS,
    per_burst: int = PER_BURST,
    threads: int = 3,
    competitor: Callable[[random.Random], None] | None = None,
    retries: int = 3,
    cost: Callable[[httpx.Request], dict[str, float]] | None = None,
) -> dict[str, int]:
    """Hourly bursts of requests from *threads* threads; the outcomes counted by kind."""
    rng = random.Random(1)
    outcomes: dict[str, int] = {"ok": 0, "rate_limited": 0, "other": 0}
    lock = threading.Lock()
    transport = QuotaTransport(dialect, clock=clock, retries=retries, cost=cost)
    with httpx.Client(base_url=server.url, transport=transport, timeout=10) as http_client:
        for burst in range(bursts):
            if clock.now() < burst * HOUR:
                clock.advance(burst * HOUR - clock.now())
            if competitor is not None:
                competitor(rng)
            specs = [make_request(rng) for _ in range(per_burst)]

            def work(mine: list[dict[str, Any]]) -> None:
                for spec in mine:
                    try:
                        status = _send(http_client, spec)
                    except RateLimited:
                        kind = "rate_limited"
                    else:
                        kind = "ok" if status < 400 else "other"
                    with lock:
                        outcomes[kind] += 1

            workers = [
                threading.Thread(target=work, args=(specs[i::threads],)) for i in range(threads)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(30)
    return outcomes


DAYS = [
    pytest.param(
        lambda clock: OpenAIServer(rpm=12, tpm=6_000, clock=clock, epoch=EPOCH),
        "openai",
        openai_request,
        None,
        3,
        id="openai",
        marks=needs_dialect("openai"),
    ),
    pytest.param(
        lambda clock: GroqServer(rpm=200, tpm=6_000, clock=clock, epoch=EPOCH),
        "groq",
        openai_request,
        None,
        3,
        id="groq",
        marks=needs_dialect("openai"),
    ),
    pytest.param(
        lambda clock: MistralServer(
            tokens_per_minute=6_000, requests_per_10s=2, clock=clock, epoch=EPOCH
        ),
        "mistral",
        mistral_request,
        None,
        1,
        id="mistral",
        marks=needs_dialect("openai"),
    ),
    pytest.param(
        lambda clock: AnthropicServer(rpm=10, itpm=2_000, otpm=1_500, clock=clock, epoch=EPOCH),
        "anthropic",
        anthropic_request,
        None,
        3,
        id="anthropic",
        marks=needs_dialect("anthropic"),
    ),
    pytest.param(
        # The real API's token figures: rounded to the nearest thousand, up to 500 above the
        # truth; Anthropic's smallest tier's limits; prompts of thousands of tokens, so that
        # the input limit binds. One thread: a bucket following the figures as sent meets
        # 429s in every run (9 with this seed), not only in some.
        lambda clock: AnthropicServer(
            rpm=50, itpm=20_000, otpm=8_000, nearest_to=1_000, clock=clock, epoch=EPOCH
        ),
        "anthropic",
        anthropic_large_request,
        None,
        1,
        id="anthropic-rounded",
        marks=needs_dialect("anthropic"),
    ),
    pytest.param(
        lambda clock: GitHubServer(core=8, search=2, graphql=40, clock=clock, epoch=EPOCH),
        "github",
        github_request,
        None,
        1,
        id="github",
        marks=needs_dialect("github"),
    ),
    pytest.param(
        lambda clock: ShopifyServer(maximum=400, restore_rate=20, clock=clock, epoch=EPOCH),
        "shopify",
        shopify_request,
        shopify_cost,
        1,
        id="shopify",
        marks=needs_dialect("shopify"),
    ),
    pytest.param(
        lambda clock: IETFServer(
            policies={"minute": (8, 60), "day": (400, 86400)}, clock=clock, epoch=EPOCH
        ),
        "ietf",
        ietf_request,
        None,
        1,
        id="ietf",
        marks=needs_dialect("ietf"),
    ),
]


@pytest.mark.heavy
@pytest.mark.parametrize(("make_server", "dialect", "make_request", "cost", "threads"), DAYS)
def test_a_day_alone_on_the_key_meets_no_refusal(make_server, dialect, make_request, cost, threads):
    """Hourly bursts larger than the quota: every request answered, no 429.

    Three threads for the LLM servers; one for the fixed windows and Shopify's bucket,
    whose exact figures leave no slack for a test artifact: with threads sleeping on
    one manual clock, a request may take simulated seconds to reach the server (another
    thread's sleep moves time while it is on the wire), so that the server counts it in
    a later window, or after its bucket overflowed, than the transport did.
    """
    clock = ManualClock()
    with make_server(clock) as server:
        outcomes = run_day(server, clock, dialect, make_request, cost=cost, threads=threads)
    assert outcomes == {"ok": BURSTS * PER_BURST, "rate_limited": 0, "other": 0}
    assert sum(server.refused.values()) == 0, server.refusals
    assert server.requests == BURSTS * PER_BURST
    assert clock.now() >= 23 * HOUR


def _competitor(server: QuotaServer, **costs: float) -> Callable[[random.Random], None]:
    def spend(rng: random.Random) -> None:
        if rng.random() < 0.5:
            server.spend(**costs)

    return spend


COMPETED = [
    pytest.param(
        lambda clock: OpenAIServer(rpm=12, tpm=6_000, clock=clock, epoch=EPOCH),
        "openai",
        openai_request,
        None,
        {"requests": 6, "tokens": 3_000},
        id="openai",
        marks=needs_dialect("openai"),
    ),
    pytest.param(
        lambda clock: GroqServer(rpm=200, tpm=6_000, clock=clock, epoch=EPOCH),
        "groq",
        openai_request,
        None,
        {"requests": 2, "tokens": 6_000},
        id="groq",
        marks=needs_dialect("openai"),
    ),
    pytest.param(
        lambda clock: MistralServer(
            tokens_per_minute=6_000, requests_per_10s=2, clock=clock, epoch=EPOCH
        ),
        "mistral",
        mistral_request,
        None,
        {"req-10-second": 1, "tokens-minute": 6_000},
        id="mistral",
        marks=needs_dialect("openai"),
    ),
    pytest.param(
        lambda clock: GitHubServer(core=8, search=2, graphql=40, clock=clock, epoch=EPOCH),
        "github",
        github_request,
        None,
        {"core": 4},
        id="github",
        marks=needs_dialect("github"),
    ),
    pytest.param(
        lambda clock: ShopifyServer(maximum=400, restore_rate=20, clock=clock, epoch=EPOCH),
        "shopify",
        shopify_request,
        shopify_cost,
        {"graphql": 300},
        id="shopify",
        marks=needs_dialect("shopify"),
    ),
    pytest.param(
        lambda clock: IETFServer(
            policies={"minute": (8, 60), "day": (400, 86400)}, clock=clock, epoch=EPOCH
        ),
        "ietf",
        ietf_request,
        None,
        {"minute": 5},
        id="ietf",
        marks=needs_dialect("ietf"),
    ),
]


@pytest.mark.heavy
@pytest.mark.parametrize(("make_server", "dialect", "make_request", "cost", "spent"), COMPETED)
def test_a_competitor_on_the_key_costs_few_refusals_each_retried(
    make_server, dialect, make_request, cost, spent
):
    """Another client spends outside the buckets: few 429s, each retried through the buckets."""
    clock = ManualClock()
    with make_server(clock) as server:
        outcomes = run_day(
            server,
            clock,
            dialect,
            make_request,
            cost=cost,
            threads=1,
            competitor=_competitor(server, **spent),
        )
    refusals = sum(server.refused.values())
    assert set(server.refused) <= {"wait"}
    assert outcomes["other"] == 0
    # Every refusal was sent again, but the last of a request that raised RateLimited.
    assert server.requests == BURSTS * PER_BURST + refusals - outcomes["rate_limited"]
    # At most a few per competing burst (12 of the 24 bursts compete, on average).
    assert refusals <= 3 * 24, server.refused
    assert outcomes["ok"] + outcomes["rate_limited"] == BURSTS * PER_BURST
