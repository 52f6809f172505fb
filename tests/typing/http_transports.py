"""Type-checker-only usage of the httpx and httpx2 transports (``mypy src tests/typing``); never run.

Both modules' classes come from one implementation, generic in the library's types:
each must still take and give its own library's objects, and refuse the other's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_type

import httpx
import httpx2

from tokenbudget import AsyncTokenBucket, TokenBucket
from tokenbudget.http import httpx as tb_httpx
from tokenbudget.http import httpx2 as tb_httpx2


sync1 = tb_httpx.QuotaTransport("github", transport=httpx.HTTPTransport(), retries=0)
sync2 = tb_httpx2.QuotaTransport("openai", transport=httpx2.HTTPTransport())
async1 = tb_httpx.AsyncQuotaTransport("ietf", transport=httpx.AsyncHTTPTransport())
async2 = tb_httpx2.AsyncQuotaTransport("anthropic", transport=httpx2.AsyncHTTPTransport())

client1 = httpx.Client(transport=sync1)
client2 = httpx2.Client(transport=sync2)
aclient1 = httpx.AsyncClient(transport=async1)
aclient2 = httpx2.AsyncClient(transport=async2)

assert_type(sync1.handle_request(httpx.Request("GET", "https://x")), httpx.Response)
assert_type(sync2.handle_request(httpx2.Request("GET", "https://x")), httpx2.Response)
assert_type(sync1.buckets, Mapping[str, TokenBucket])
assert_type(async2.buckets, Mapping[str, AsyncTokenBucket])
base1: httpx.BaseTransport = sync1
base2: httpx2.AsyncBaseTransport = async2
with tb_httpx.QuotaTransport("github") as entered:
    assert_type(entered, tb_httpx.QuotaTransport)


async def use() -> None:
    """The async transports' requests and context managers."""
    response = await async1.handle_async_request(httpx.Request("GET", "https://x"))
    assert_type(response, httpx.Response)
    async with tb_httpx2.AsyncQuotaTransport("openai") as aentered:
        assert_type(aentered, tb_httpx2.AsyncQuotaTransport)


# One library's objects are refused by the other's transports.
tb_httpx.QuotaTransport("github", transport=httpx2.HTTPTransport())  # type: ignore[arg-type]
tb_httpx2.AsyncQuotaTransport("openai", transport=httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
sync1.handle_request(httpx2.Request("GET", "https://x"))  # type: ignore[arg-type]
httpx2.Client(transport=sync1)  # type: ignore[arg-type]
tb_httpx.QuotaTransport("github", buckets={"core": AsyncTokenBucket.__new__(AsyncTokenBucket)})  # type: ignore[dict-item]
