"""Refusals of each kind over real sockets: *too large* and *terminal* raise at once."""

from __future__ import annotations

import httpx
import pytest

from tests.http_servers import AnthropicServer, OpenAIServer, ShopifyServer
from tokenbudget import ManualClock
from tokenbudget.http import QuotaExhausted, RequestTooLarge
from tokenbudget.http.httpx import QuotaTransport

from ._dialect_fixture import needs_dialect


EPOCH = 1_780_000_000.0
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


@needs_dialect("openai")
def test_openai_insufficient_quota_raises_quota_exhausted_without_retry():
    """OpenAI's insufficient_quota 429 is terminal: QuotaExhausted after one request."""
    clock = ManualClock()
    with (
        OpenAIServer(spend_cap=0, clock=clock, epoch=EPOCH) as server,
        httpx.Client(base_url=server.url, transport=QuotaTransport("openai", clock=clock)) as c,
        pytest.raises(QuotaExhausted, match="quota"),
    ):
        c.post("/v1/chat/completions", json=CHAT)
    assert server.requests == 1


@needs_dialect("anthropic")
def test_anthropic_spend_cap_raises_quota_exhausted_without_retry():
    """Anthropic's spend-limit 429 is terminal: QuotaExhausted after one request."""
    clock = ManualClock()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": CHAT["messages"]}
    with (
        AnthropicServer(spend_cap=0, clock=clock, epoch=EPOCH) as server,
        httpx.Client(base_url=server.url, transport=QuotaTransport("anthropic", clock=clock)) as c,
        pytest.raises(QuotaExhausted),
    ):
        c.post("/v1/messages", json=body)
    assert server.requests == 1


@needs_dialect("openai")
def test_openai_request_too_large_raises_at_once_then_never_leaves():
    """A request above the tokens-per-minute limit: RequestTooLarge from the server's answer;
    once the answer made the buckets, the next such request is refused before sending."""
    clock = ManualClock()
    big = {**CHAT, "max_tokens": 20_000}
    with (
        OpenAIServer(tpm=10_000, clock=clock, epoch=EPOCH) as server,
        httpx.Client(base_url=server.url, transport=QuotaTransport("openai", clock=clock)) as c,
    ):
        with pytest.raises(RequestTooLarge):
            c.post("/v1/chat/completions", json=big)
        assert server.requests == 1
        with pytest.raises(RequestTooLarge) as caught:
            c.post("/v1/chat/completions", json=big)
        assert server.requests == 1
        assert caught.value.limit == "tokens"
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert clock.now() == 0


@needs_dialect("shopify")
def test_shopify_max_cost_exceeded_raises_request_too_large():
    """Shopify's MAX_COST_EXCEEDED (HTTP 200) can never succeed: RequestTooLarge, one request."""
    clock = ManualClock()
    query = "{ products(first: 2000) { edges { node { id } } } }"
    with (
        ShopifyServer(clock=clock, epoch=EPOCH) as server,
        httpx.Client(base_url=server.url, transport=QuotaTransport("shopify", clock=clock)) as c,
        pytest.raises(RequestTooLarge),
    ):
        c.post("/admin/api/2025-01/graphql.json", json={"query": query})
    assert server.requests == 1
