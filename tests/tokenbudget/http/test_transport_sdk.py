"""The real OpenAI and Anthropic SDKs through the quota transport, against the loopback servers.

Both SDKs send with ``httpx2`` (their installed versions import it): the transport is plugged
in as ``http_client=httpx2.Client(transport=QuotaTransport(dialect, retries=0))``, the SDKs
keeping their own retries (``max_retries=2``, their default). Alone on the key, no request
is refused, and no request is a retry of the SDK's (each carries
``x-stainless-retry-count: 0``). The SDKs and the servers share a ManualClock through the
transport's buckets: a burst larger than the quota waits at once.
"""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from tests.http_servers import AnthropicServer, FastClock, OpenAIServer
from tokenbudget import ManualClock
from tokenbudget.http.httpx2 import AsyncQuotaTransport, QuotaTransport

from ._dialect_fixture import dialect_classifies, needs_dialect


openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
pytestmark = pytest.mark.heavy

EPOCH = 1_780_000_000.0
INSUFFICIENT_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def test_the_sdks_use_httpx2():
    """The installed SDK versions send with httpx2: the transport tested is httpx2's."""
    assert isinstance(openai.OpenAI(api_key="sk-test")._client, httpx2.Client)
    assert isinstance(anthropic.Anthropic(api_key="sk-ant-test")._client, httpx2.Client)


def test_openai_sdk_alone_on_the_key_meets_no_refusal_and_never_retries():
    """60 chat completions (some streamed) at 10 a minute: no 429, no SDK retry."""
    clock = ManualClock()
    with OpenAIServer(rpm=10, tpm=5_000, clock=clock, epoch=EPOCH) as server:
        transport = QuotaTransport("openai", retries=0, clock=clock)
        client = openai.OpenAI(
            api_key="sk-test",
            base_url=f"{server.url}/v1",
            http_client=httpx2.Client(transport=transport),
            max_retries=2,
        )
        for i in range(60):
            messages = [{"role": "user", "content": "How many tokens is this? " * (i % 7 + 1)}]
            if i % 4 == 0:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    max_tokens=200,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                chunks = list(stream)
                assert chunks[-1].usage is not None
            else:
                completion = client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, max_tokens=200
                )
                assert completion.usage.total_tokens > 0
        client.close()
    assert server.statuses == {200: 60}, server.refusals
    assert server.sdk_retries == {"0": 60}
    assert clock.now() >= 5 * 60  # 60 requests at 10 a minute: the transport waited


@needs_dialect("anthropic")
def test_anthropic_sdk_alone_on_the_key_meets_no_refusal_and_never_retries():
    """40 messages (some streamed) at 8 a minute: no 429, no SDK retry."""
    clock = ManualClock()
    with AnthropicServer(rpm=8, itpm=4_000, otpm=2_000, clock=clock, epoch=EPOCH) as server:
        transport = QuotaTransport("anthropic", retries=0, clock=clock)
        client = anthropic.Anthropic(
            api_key="sk-ant-test",
            base_url=server.url,
            http_client=httpx2.Client(transport=transport),
            max_retries=2,
        )
        for i in range(40):
            messages = [{"role": "user", "content": "Count my tokens. " * (i % 5 + 1)}]
            if i % 4 == 0:
                with client.messages.stream(
                    model="claude-sonnet-4-5", max_tokens=150, messages=messages
                ) as stream:
                    final = stream.get_final_message()
                assert final.usage.output_tokens > 0
            else:
                message = client.messages.create(
                    model="claude-sonnet-4-5", max_tokens=150, messages=messages
                )
                assert message.usage.input_tokens > 0
        client.close()
    assert server.statuses == {200: 40}, server.refusals
    assert server.sdk_retries == {"0": 40}


def test_async_openai_sdk_with_concurrent_tasks_meets_no_refusal():
    """AsyncOpenAI, 8 tasks at once, 48 completions at 24 a minute: no 429, no SDK retry.

    The clock runs 40 times faster than real time (a ManualClock would let one task's
    sleep move time past another task's request still on the wire).
    """
    clock = FastClock(40)

    async def main(url: str) -> None:
        transport = AsyncQuotaTransport("openai", retries=0, clock=clock)
        client = openai.AsyncOpenAI(
            api_key="sk-test",
            base_url=f"{url}/v1",
            http_client=httpx2.AsyncClient(transport=transport),
        )

        async def ask(i: int) -> None:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"question {i}"}],
                max_tokens=100,
            )

        for start in range(0, 48, 8):
            await asyncio.gather(*(ask(i) for i in range(start, start + 8)))
        await client.close()

    with OpenAIServer(rpm=24, tpm=20_000, clock=clock, epoch=EPOCH) as server:
        asyncio.run(main(server.url))
    assert server.statuses == {200: 48}, server.refusals
    assert server.sdk_retries == {"0": 48}


@pytest.mark.skipif(
    not dialect_classifies("openai", INSUFFICIENT_QUOTA, "terminal"),
    reason="the openai dialect does not classify insufficient_quota yet",
)
def test_under_the_sdk_a_terminal_refusal_is_not_retried():
    """A spend cap's 429 goes back to the SDK marked x-should-retry: false: one request."""
    clock = ManualClock()
    with OpenAIServer(spend_cap=0, clock=clock, epoch=EPOCH) as server:
        client = openai.OpenAI(
            api_key="sk-test",
            base_url=f"{server.url}/v1",
            http_client=httpx2.Client(transport=QuotaTransport("openai", retries=0, clock=clock)),
            max_retries=2,
        )
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
        client.close()
    assert server.requests == 1


@needs_dialect("anthropic")
def test_under_the_anthropic_sdk_a_spend_cap_is_not_retried():
    """The spend cap's 429 goes back to the Anthropic SDK marked not to retry: one request.

    The SDK retries exceptions raised inside its transport: the transport must answer.
    """
    clock = ManualClock()
    with AnthropicServer(spend_cap=0, clock=clock, epoch=EPOCH) as server:
        transport = QuotaTransport("anthropic", retries=0, clock=clock)
        client = anthropic.Anthropic(
            api_key="sk-ant-test",
            base_url=server.url,
            http_client=httpx2.Client(transport=transport),
            max_retries=2,
        )
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=5,
                messages=[{"role": "user", "content": "hi"}],
            )
        client.close()
    assert server.requests == 1
