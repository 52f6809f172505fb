"""An answer the transport read whole reaches the client as the client's own reading leaves it.

The transport reads a JSON answer's body before it returns the answer (its
``usage`` is the true cost), and hands the answer over read and closed, so the
client does not read it a second time. These tests pin what the caller sees to
what the same client without the transport gives, over a loopback server, for
httpx and httpx2, sync and asyncio: the content (decoded when the server
compressed it), its text and JSON, ``is_closed``, ``is_stream_consumed``,
``num_bytes_downloaded``, ``elapsed``; and a body that does not decode raises
the client's own error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import pickle
import re
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

import tokenbudget.http.httpx as tb_httpx
import tokenbudget.http.httpx2 as tb_httpx2
from tests.http_servers import OpenAIServer, Reply
from tests.shared_data import quota_sections, sample_headers
from tokenbudget import ManualClock
from tokenbudget.http import _engine, _message, _openai


FLAVOURS = [
    pytest.param((httpx, tb_httpx), id="httpx"),
    pytest.param((httpx2, tb_httpx2), id="httpx2"),
]
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


class _EncodingServer(OpenAIServer):
    """The OpenAI-like server, its JSON answers gzipped (or claimed to be, ``broken``)."""

    def __init__(self, encoding: str | None) -> None:
        super().__init__(rpm=10**6, tpm=10**9)
        self.encoding = encoding

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        reply = super().answer(method, path, headers, body)
        if self.encoding is None or not isinstance(reply.body, bytes):
            return reply
        data = gzip.compress(reply.body) if self.encoding == "gzip" else b"\x00 not gzip"
        return Reply(
            reply.status,
            {**reply.headers, "Content-Encoding": "gzip"},
            data,
            reply.content_type,
        )


@pytest.fixture(params=[None, "gzip"], ids=["plain", "gzip"])
def server(request: pytest.FixtureRequest) -> Iterator[_EncodingServer]:
    with _EncodingServer(request.param) as running:
        yield running


def _seen(response: Any, chunks: bytes) -> dict[str, Any]:
    """What a caller reads of an answer (its elapsed: that it is there); *chunks* iterated."""
    return {
        "status": response.status_code,
        "content": response.content,
        "text": response.text,
        "json": response.json(),
        "closed": response.is_closed,
        "consumed": response.is_stream_consumed,
        "downloaded": response.num_bytes_downloaded,
        "elapsed": isinstance(response.elapsed, dt.timedelta),
        "chunks": chunks,
    }


def _same(bare: dict[str, Any], ours: dict[str, Any]) -> None:
    # Two answers of the server differ in their figures: the same shape, the same keys.
    assert bare["json"].keys() == ours["json"].keys()
    for key in ("status", "closed", "consumed", "elapsed"):
        assert bare[key] == ours[key], key
    for seen in (bare, ours):
        assert seen["content"] == seen["text"].encode() == seen["chunks"]
        assert seen["downloaded"] > 0
    # What went over the wire: the body itself, or fewer bytes where it was compressed.
    assert (bare["downloaded"] == len(bare["content"])) == (
        ours["downloaded"] == len(ours["content"])
    )


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_read_answer_is_what_the_bare_client_gives(server, flavour):
    http, adapter = flavour
    path = "/v1/chat/completions"
    with (
        http.Client(base_url=server.url) as plain,
        http.Client(base_url=server.url, transport=adapter.QuotaTransport("openai")) as quota,
    ):
        seen = [plain.post(path, json=BODY), quota.post(path, json=BODY)]
        _same(*[_seen(r, b"".join(r.iter_bytes())) for r in seen])
        with plain.stream("POST", path, json=BODY) as b, quota.stream("POST", path, json=BODY) as o:
            b.read()
            o.read()
            _same(*[_seen(r, b"".join(r.iter_bytes())) for r in (b, o)])
        # Its raw stream is gone, as after the client's own read (the documented difference).
        with quota.stream("POST", path, json=BODY) as o, pytest.raises(http.StreamConsumed):
            next(o.iter_raw())
    assert server.refused.total() == 0


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_an_async_read_answer_is_what_the_bare_client_gives(server, flavour):
    http, adapter = flavour
    path = "/v1/chat/completions"

    async def seen(response: Any) -> dict[str, Any]:
        return _seen(response, b"".join([chunk async for chunk in response.aiter_bytes()]))

    async def main() -> None:
        async with (
            http.AsyncClient(base_url=server.url) as plain,
            http.AsyncClient(
                base_url=server.url, transport=adapter.AsyncQuotaTransport("openai")
            ) as quota,
        ):
            bare, ours = await plain.post(path, json=BODY), await quota.post(path, json=BODY)
            _same(await seen(bare), await seen(ours))
            async with (
                plain.stream("POST", path, json=BODY) as b,
                quota.stream("POST", path, json=BODY) as o,
            ):
                await b.aread()
                await o.aread()
                _same(await seen(b), await seen(o))

    asyncio.run(main())
    assert server.refused.total() == 0


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_body_that_does_not_decode_raises_the_clients_own_error(flavour):
    http, adapter = flavour
    with (
        _EncodingServer("broken") as server,
        http.Client(base_url=server.url) as plain,
        http.Client(base_url=server.url, transport=adapter.QuotaTransport("openai")) as quota,
    ):
        with pytest.raises(http.DecodingError):
            plain.post("/v1/chat/completions", json=BODY)
        with pytest.raises(http.DecodingError):
            quota.post("/v1/chat/completions", json=BODY)


def test_the_private_fields_handed_over_are_those_the_clients_read_sets() -> None:
    # Reading a streamed answer sets them, in both libraries (a rename would fail here).
    for module in (httpx, httpx2):
        response: Any = module.Response(200, stream=module.ByteStream(b"{}"))
        response.read()
        assert response._content == b"{}"
        assert response._num_bytes_downloaded == 2
        assert response.is_closed
        assert response.is_stream_consumed


def _rewrapping(http: ModuleType, inner: Any) -> Any:
    """An outer transport of the usual kind: the inner answer remade with its ``stream=``."""

    class Rewrap(http.BaseTransport):  # type: ignore[misc,name-defined]
        def handle_request(self, request: Any) -> Any:
            answer = inner.handle_request(request)
            headers = http.Headers(answer.headers)
            headers["x-seen"] = "1"
            return http.Response(
                answer.status_code,
                headers=headers,
                stream=answer.stream,
                extensions=answer.extensions,
            )

        def close(self) -> None:
            inner.close()

    return Rewrap()


def _arewrapping(http: ModuleType, inner: Any) -> Any:
    """:func:`_rewrapping` for asyncio."""

    class Rewrap(http.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        async def handle_async_request(self, request: Any) -> Any:
            answer = await inner.handle_async_request(request)
            return http.Response(
                answer.status_code,
                headers=answer.headers,
                stream=answer.stream,
                extensions=answer.extensions,
            )

        async def aclose(self) -> None:
            await inner.aclose()

    return Rewrap()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_an_outer_transport_remaking_the_answer_of_its_stream_reads_the_body(server, flavour):
    """The answer's stream gives the bytes read: never the inner stream, read and closed
    (read again, it would read the idle connection: a hang, or another request's answer)."""
    http, adapter = flavour
    path = "/v1/chat/completions"
    transport = _rewrapping(http, adapter.QuotaTransport("openai"))
    with http.Client(base_url=server.url, transport=transport, timeout=5.0) as quota:
        for _ in range(3):  # one keep-alive connection, reused
            response = quota.post(path, json=BODY)
            assert response.headers["x-seen"] == "1"
            assert response.json()["object"] == "chat.completion"

    async def main() -> None:
        transport = _arewrapping(http, adapter.AsyncQuotaTransport("openai"))
        async with http.AsyncClient(base_url=server.url, transport=transport, timeout=5.0) as aq:
            for _ in range(3):
                response = await aq.post(path, json=BODY)
                assert response.json()["object"] == "chat.completion"

    asyncio.run(main())
    assert server.refused.total() == 0


def _json_calls(response: Any) -> None:
    """``json()`` as the bare client's: equal values, new ones, arguments, after pickling."""
    expected = json.loads(response.content)
    first = response.json()
    assert first == expected
    first["usage"] = None  # the caller's own value: no later call sees it
    second = response.json()
    assert second == expected
    assert second is not first
    assert response.json(parse_int=str) == json.loads(response.content, parse_int=str)
    assert pickle.loads(pickle.dumps(response)).json() == expected  # noqa: S301 -- our own bytes


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_json_gives_the_transports_decoding_once_then_decodes(flavour):
    """The transport decodes an answer's JSON to follow it; the first ``json()`` has it.

    Equal to what ``json.loads`` of the content makes, and the caller's alone: later
    calls (and calls with arguments, and a pickled copy's) decode again.
    """
    http, adapter = flavour
    path = "/v1/chat/completions"
    with (
        OpenAIServer(rpm=10**6, tpm=10**9) as server,
        http.Client(base_url=server.url, transport=adapter.QuotaTransport("openai")) as quota,
    ):
        # The first answer creates the buckets (the general path), the second is usual.
        for response in (quota.post(path, json=BODY), quota.post(path, json=BODY)):
            assert isinstance(vars(response)["json"], _engine._JsonOnce)  # the decoded one
            _json_calls(response)

        async def main() -> None:
            async with http.AsyncClient(
                base_url=server.url, transport=adapter.AsyncQuotaTransport("openai")
            ) as aquota:
                for _ in range(2):
                    answer = await aquota.post(path, json=BODY)
                    assert isinstance(vars(answer)["json"], _engine._JsonOnce)
                    _json_calls(answer)

        asyncio.run(main())
    assert server.refused.total() == 0


#: An OpenAI answer's header fields: each window's three, the last one left out when irregular.
_FIELDS = {
    "date": "Mon, 07 Dec 2026 10:00:00 GMT",
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-limit-tokens": "800000",
    "x-ratelimit-remaining-tokens": "799000",
    "x-ratelimit-reset-tokens": "77ms",
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("regular", [True, False], ids=["regular", "irregular"])
def test_an_answers_body_is_decoded_once_whichever_path_follows_it(flavour, regular, monkeypatch):
    """The JSON the usual reader decoded is the report's when the answer is not usual.

    The first answer (it creates the buckets) and an irregular one (a window
    without its reset) go on to the general path after the usual reader decoded
    their body: the dialect's report reads that value instead of decoding the body
    again, and the first ``json()`` gets it. Sync and asyncio.
    """
    http, adapter = flavour
    body = json.dumps({"id": "x", "usage": {"total_tokens": 30}}).encode()
    fields = dict(_FIELDS)
    if not regular:
        del fields["x-ratelimit-reset-tokens"]
    decoded: list[object] = []
    real = _message._decode_json

    def counted(data: bytes | str) -> object:
        if data == body:
            decoded.append(data)
        return real(data)

    for module in (_message, _engine, _openai):  # every module's own name for it
        monkeypatch.setattr(module, "_decode_json", counted)

    def answer(request: Any) -> Any:
        return http.Response(200, headers=fields, content=body)

    def check(response: Any) -> None:
        assert len(decoded) == 1, "the answer's body was decoded more than once"
        assert isinstance(vars(response)["json"], _engine._JsonOnce)
        assert response.json() == json.loads(body)
        decoded.clear()

    quota = adapter.QuotaTransport("openai", transport=http.MockTransport(answer))
    with http.Client(base_url="http://api.test", transport=quota) as client:
        for _ in range(3):
            check(client.post("/v1/chat/completions", json=BODY))
    assert quota.buckets["tokens"].snapshot().tokens < 800000  # followed: the buckets exist

    async def main() -> None:
        aquota = adapter.AsyncQuotaTransport("openai", transport=http.MockTransport(answer))
        async with http.AsyncClient(base_url="http://api.test", transport=aquota) as client:
            for _ in range(3):
                check(await client.post("/v1/chat/completions", json=BODY))
        assert (await aquota.buckets["tokens"].snapshot()).tokens < 800000

    asyncio.run(main())


def test_json_of_a_response_whose_first_json_was_taken_elsewhere_decodes() -> None:
    """Two callers racing for the first ``json()``: one gets the value, the other decodes."""
    body = b'{"usage": {"total_tokens": 3}}'
    once = _engine._JsonOnce(body, [json.loads(body)])
    taken = once._decoded.pop()  # what a racing thread's call took meanwhile
    assert once() == taken
    assert once() is not taken


class _OwnJson(httpx.Response):
    """A response class whose ``json()`` is its own."""

    def json(self, **kwargs: Any) -> Any:
        return {"own": super().json(**kwargs)}


def _mocked(answer: Any) -> tb_httpx.QuotaTransport:
    return tb_httpx.QuotaTransport("openai", transport=httpx.MockTransport(answer))


def test_json_of_a_response_class_of_its_own_is_its_own() -> None:
    """A subclass's ``json()`` (an inner transport's answer) is never hidden."""
    with httpx.Client(transport=_mocked(lambda _: _OwnJson(200, json={"a": 1}))) as client:
        for _ in range(2):  # the general path, then the usual one
            response = client.post("https://api.openai.com/v1/chat/completions", json=BODY)
            assert "json" not in vars(response)
            assert response.json() == {"own": {"a": 1}}


def test_json_patched_onto_the_class_is_never_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``json`` patched onto the library's class (another decoder, a test's mock) is called."""
    monkeypatch.setattr(httpx.Response, "json", lambda self, **kw: "patched")
    with httpx.Client(transport=_mocked(lambda _: httpx.Response(200, json={"a": 1}))) as client:
        for _ in range(2):
            response = client.post("https://api.openai.com/v1/chat/completions", json=BODY)
            assert response.json() == "patched"


def test_a_large_bodys_decoding_is_not_kept() -> None:
    """Above 256 KiB the decoding is not kept for ``json()`` (it would outlive the answer's use)."""
    big = {"data": ["x" * 1024] * 300}
    with httpx.Client(transport=_mocked(lambda _: httpx.Response(200, json=big))) as client:
        response = client.post("https://api.openai.com/v1/embeddings", json={"input": "hi"})
        assert len(response.content) > 256 * 1024
        assert "json" not in vars(response)
        assert response.json() == big


def test_a_pickled_answer_needs_no_tokenbudget() -> None:
    """A pickled answer's ``json()`` is ``json.loads`` of its body: unpickled without us."""
    with httpx.Client(transport=_mocked(lambda _: httpx.Response(200, json={"a": 1}))) as client:
        response = client.post("https://api.openai.com/v1/chat/completions", json=BODY)
    assert isinstance(vars(response)["json"], _engine._JsonOnce)
    assert b"tokenbudget" not in pickle.dumps(response)


#: The real captures of OpenAI-style answers (``../shared/quota-header-samples``), by dialect.
_CAPTURES = {"openai": "openai-chat-completions.txt", "groq": "groq-chat-completions.txt"}
_USAGE = re.compile(r"prompt_tokens (\d+), completion_tokens (\d+), total_tokens (\d+)")


def _captures() -> list[tuple[str, str, list[tuple[str, str]], dict[str, Any]]]:
    """(dialect, title, header fields, body) of every real capture (not the docs' examples).

    The body carries the usage the capture's comment records (captures kept only
    their headers), or a usage of its own where the comment names none.
    """
    out = []
    for dialect, name in _CAPTURES.items():
        for title, text in quota_sections(name).items():
            if title.startswith("DOC EXAMPLE"):
                continue
            found = _USAGE.search(text)
            prompt, completion, total = map(int, found.groups()) if found else (20, 10, 30)
            usage = {"prompt_tokens": prompt, "completion_tokens": completion}
            body = {"id": "chatcmpl-1", "usage": {**usage, "total_tokens": total}}
            out.append((dialect, title, sample_headers(text), body))
    return out


def _answered_twice(
    flavour: tuple[ModuleType, ModuleType],
    dialect: str,
    headers: list[tuple[str, str]],
    body: dict[str, Any],
    *,
    usual: bool,
) -> tuple[dict[str, Any], list[object], Any]:
    """The buckets' snapshots, the usual path's readings and the last answer of two requests.

    Answered by *headers* and *body*, the transport's usual path on or off.
    """
    http, adapter = flavour
    content = json.dumps(body).encode()
    transport = adapter.QuotaTransport(
        dialect,
        transport=http.MockTransport(
            lambda _: http.Response(200, headers=headers, content=content)
        ),
        clock=ManualClock(1.7e9),
    )
    core = transport._core
    read = core.usual_answer if usual else None
    readings: list[object] = []

    def counted(*args: Any) -> Any:
        readings.append(read(*args))  # type: ignore[misc]
        return readings[-1]

    core.usual_answer = counted if read is not None else None
    with http.Client(transport=transport, base_url="https://api.example") as client:
        for _ in range(2):
            response = client.post("/v1/chat/completions", json=BODY)
            assert response.json() == body
    return {n: b.snapshot() for n, b in transport.buckets.items()}, readings, response


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_real_answers_follow_the_usual_path_as_the_general_one(flavour):
    """Each real OpenAI and Groq capture, answered twice through the transport.

    Once the first answer made the buckets, the second takes the usual path:
    the buckets end as the general path leaves them (the same transport with
    its usual path off), and ``json()`` gives the body, the transport's decoding.
    """
    captures = _captures()
    assert len(captures) >= 8  # three OpenAI captures and more of Groq's
    for dialect, title, headers, body in captures:
        fast, readings, response = _answered_twice(flavour, dialect, headers, body, usual=True)
        general, _, _ = _answered_twice(flavour, dialect, headers, body, usual=False)
        assert readings, title
        assert readings[-1] is not None, (title, "not taken as a usual answer")
        assert isinstance(vars(response)["json"], _engine._JsonOnce), title
        assert fast == general, (dialect, title)
