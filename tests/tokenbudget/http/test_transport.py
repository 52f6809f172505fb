"""The transports' decisions, driven through a mock inner transport: book, follow, retry, raise."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

import tokenbudget.http.httpx as tb_httpx
import tokenbudget.http.httpx2 as tb_httpx2
from tests.shared_data import quota_sections, sample_headers
from tokenbudget import (
    AsyncTokenBucket,
    BucketConfig,
    ManualClock,
    Rate,
    SQLiteBackend,
    TokenBucket,
)
from tokenbudget.http import QuotaExhausted, QuotaReport, RateLimited, RequestTooLarge
from tokenbudget.http._transport import Booking, TransportCore

from ._dialect_fixture import LoopbackDialect, body, quota_headers


FLAVOURS = [
    pytest.param((httpx, tb_httpx), id="httpx"),
    pytest.param((httpx2, tb_httpx2), id="httpx2"),
]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> tuple[ModuleType, ModuleType]:
    return request.param  # type: ignore[no-any-return]


class Calls:
    """A mock API: answers from a function, counting the requests it saw."""

    def __init__(self, answer: Callable[[int, Any], tuple[int, dict[str, str], bytes]]) -> None:
        self.answer = answer
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, request: Any) -> Any:
        with self.lock:
            self.count += 1
            n = self.count
        status, headers, content = self.answer(n, request)
        return self.module.Response(status, headers=headers, content=content)


def client(
    flavour: tuple[ModuleType, ModuleType], calls: Calls, **options: Any
) -> tuple[Any, Any, ManualClock]:
    http, adapter = flavour
    calls.module = http  # type: ignore[attr-defined]
    clock = options.pop("clock", None) or ManualClock()
    transport = adapter.QuotaTransport(
        LoopbackDialect(), transport=http.MockTransport(calls), clock=clock, **options
    )
    return http.Client(transport=transport, base_url="http://api.test"), transport, clock


def ok(n: int, request: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, quota_headers(requests=(60, 60 - n)), body(n=n)


def test_the_first_answer_creates_a_bucket_per_limit(flavour):
    """Before any answer there is no bucket; the first answer's limits each get one."""
    http_client, transport, _ = client(flavour, Calls(ok))
    assert dict(transport.buckets) == {}
    assert http_client.get("/").json() == {"n": 1}
    assert sorted(transport.buckets) == ["requests"]
    assert transport.buckets["requests"].snapshot().tokens == 59
    assert transport.buckets["requests"].config.capacity == 60


def test_a_request_waits_for_its_booking(flavour):
    """With nothing left, the next request waits for one request's refill (60 a minute)."""
    calls = Calls(lambda n, r: (200, quota_headers(requests=(60, 0)), b"{}"))
    http_client, _, clock = client(flavour, calls)
    http_client.get("/")
    assert clock.now() == 0
    http_client.get("/")
    assert clock.now() == pytest.approx(1.0)
    assert calls.count == 2


def test_the_true_cost_is_settled_from_the_body(flavour):
    """A booking of 100 tokens whose answer reports 40 leaves 960 of 1,000 (no sync)."""
    clock = ManualClock()
    tokens = TokenBucket(BucketConfig(1000, Rate.per_minute(1000)), clock=clock)
    calls = Calls(lambda n, r: (200, {}, body(cost={"tokens": 40})))
    http_client, _, _ = client(flavour, calls, buckets={"tokens": tokens}, clock=clock)
    http_client.get("/", headers={"x-cost-tokens": "100"})
    assert tokens.snapshot().tokens == 960


def test_an_answer_syncs_after_settling(flavour):
    """The server's remaining figure is adopted as is: the settled booking is in it."""
    clock = ManualClock()
    tokens = TokenBucket(BucketConfig(1000, Rate.per_minute(1000), in_flight=600), clock=clock)
    answer = (200, quota_headers(tokens=(1000, 700)), body(cost={"tokens": 40}))
    http_client, _, _ = client(flavour, Calls(lambda n, r: answer), buckets={"tokens": tokens})
    http_client.get("/", headers={"x-cost-tokens": "100"})
    assert tokens.snapshot().tokens == 700


def _sse(events: list[bytes], http: ModuleType) -> Any:
    class Events(http.SyncByteStream):  # type: ignore[misc,name-defined]
        def __iter__(self) -> Iterator[bytes]:
            yield from events

    return Events()


@pytest.mark.parametrize("consume", [True, False])
def test_a_stream_settles_when_it_ends_or_stays_booked_when_abandoned(flavour, consume):
    """A streamed answer settles its true cost at its end; abandoned, it keeps its booking."""
    http, _ = flavour
    clock = ManualClock()
    tokens = TokenBucket(BucketConfig(1000, Rate.per_minute(1000)), clock=clock)
    events = [b'{"cost": ', b'{"tokens": 30}}']

    def stream(request: Any) -> Any:
        return http.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_sse(events, http)
        )

    _, adapter = flavour
    transport = adapter.QuotaTransport(
        LoopbackDialect(), transport=http.MockTransport(stream), buckets={"tokens": tokens}
    )
    with (
        http.Client(transport=transport) as http_client,
        http_client.stream("GET", "http://api.test/", headers={"x-cost-tokens": "100"}) as response,
    ):
        assert tokens.snapshot().tokens == 900
        if consume:
            response.read()
    assert tokens.snapshot().tokens == (970 if consume else 900)


def refuse_then_ok(kind: str, times: int, retry_after: str = "5") -> Calls:
    def answer(n: int, request: Any) -> tuple[int, dict[str, str], bytes]:
        if n <= times:
            headers = {
                **quota_headers(requests=(60, 0)),
                "x-kind": kind,
                "retry-after": retry_after,
            }
            return 429, headers, body(message=f"{kind} refusal")
        return ok(n, request)

    return Calls(answer)


def test_a_wait_refusal_is_retried_after_the_servers_wait(flavour):
    """A *wait* 429 with Retry-After 5 is sent again 5 s later, through the bucket."""
    calls = refuse_then_ok("wait", 1)
    http_client, _, clock = client(flavour, calls)
    response = http_client.get("/")
    assert response.status_code == 200
    assert calls.count == 2
    assert clock.now() == pytest.approx(5.0)


def test_a_held_bucket_makes_every_request_wait(flavour):
    """After a *wait* refusal, a request booked by anyone waits the server's time too."""
    clock = ManualClock()
    config = BucketConfig(60, Rate.per_minute(60), burst_threshold=1, in_flight=600)
    requests = TokenBucket(config, clock=clock)
    calls = refuse_then_ok("wait", 1, retry_after="20")
    http_client, _, _ = client(
        flavour, calls, buckets={"requests": requests}, clock=clock, retries=0
    )
    assert http_client.get("/").status_code == 429
    assert requests.reserve(1).delay == pytest.approx(20.0)


def test_wait_refusals_beyond_the_retries_raise_rate_limited(flavour):
    """Still refused after *retries* retries: RateLimited with the server's wait."""
    calls = refuse_then_ok("wait", 10, retry_after="7")
    http_client, _, _ = client(flavour, calls, retries=2)
    with pytest.raises(RateLimited) as caught:
        http_client.get("/")
    assert calls.count == 3
    assert caught.value.retry_after == 7
    assert caught.value.attempts == 3


@pytest.mark.parametrize(
    ("kind", "error"), [("too_large", RequestTooLarge), ("terminal", QuotaExhausted)]
)
def test_too_large_and_terminal_refusals_raise_at_once(flavour, kind, error):
    """*Too large* and *terminal* are never retried: their error, after one request."""
    calls = refuse_then_ok(kind, 10)
    http_client, _, clock = client(flavour, calls)
    with pytest.raises(error, match=f"{kind} refusal"):
        http_client.get("/")
    assert calls.count == 1
    assert clock.now() == 0


@pytest.mark.parametrize(
    ("kind", "marked"), [("wait", False), ("too_large", True), ("terminal", True)]
)
def test_with_no_retries_every_refusal_is_returned(flavour, kind, marked):
    """retries=0 (an SDK retries): the 429 comes back; the final kinds say x-should-retry: false."""
    calls = refuse_then_ok(kind, 10)
    http_client, _, _ = client(flavour, calls, retries=0)
    response = http_client.get("/")
    assert response.status_code == 429
    assert calls.count == 1
    assert (response.headers.get("x-should-retry") == "false") is marked


def test_a_cost_above_a_buckets_capacity_is_refused_before_sending(flavour):
    """A request its bucket can never admit raises RequestTooLarge and is never sent."""
    clock = ManualClock()
    tokens = TokenBucket(BucketConfig(50, Rate.per_minute(50)), clock=clock)
    calls = Calls(ok)
    http_client, _, _ = client(flavour, calls, buckets={"tokens": tokens}, clock=clock)
    with pytest.raises(RequestTooLarge) as caught:
        http_client.get("/", headers={"x-cost-tokens": "80"})
    assert caught.value.limit == "tokens"
    assert calls.count == 0
    assert tokens.snapshot().tokens == 50


def test_with_no_retries_a_cost_above_capacity_is_a_final_answer(flavour):
    """Under an SDK (retries=0) the never-fitting request is a 429 marked not to retry."""
    tokens = TokenBucket(BucketConfig(50, Rate.per_minute(50)), clock=ManualClock())
    calls = Calls(ok)
    http_client, _, _ = client(flavour, calls, buckets={"tokens": tokens}, retries=0)
    response = http_client.get("/", headers={"x-cost-tokens": "80"})
    assert (response.status_code, response.headers["x-should-retry"]) == (429, "false")
    assert calls.count == 0
    assert response.is_closed  # read, and timed as the client's own answers are
    assert response.elapsed.total_seconds() >= 0


def test_a_request_that_never_reached_the_server_gives_its_booking_back(flavour):
    """A connection error returns the booking; the bucket is as before."""
    http, _ = flavour
    clock = ManualClock()
    tokens = TokenBucket(BucketConfig(100, Rate.per_minute(100)), clock=clock)

    def refuse(request: Any) -> Any:
        raise http.ConnectError("refused", request=request)

    calls = Calls(ok)
    http_client, _, _ = client(flavour, calls, buckets={"tokens": tokens})
    http_client._transport._engine.inner = http.MockTransport(refuse)
    with pytest.raises(http.ConnectError):
        http_client.get("/", headers={"x-cost-tokens": "30"})
    assert tokens.snapshot().tokens == 100


def test_concurrent_first_requests_wait_for_the_first_answer(flavour):
    """While the first request is out unbooked, no other request goes out."""
    first_out = threading.Event()
    release = threading.Event()
    on_the_wire = []
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def answer(n: int, request: Any) -> tuple[int, dict[str, str], bytes]:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        if n == 1:
            first_out.set()
            release.wait(5)
        with lock:
            state["now"] -= 1
        on_the_wire.append(n)
        return ok(n, request)

    calls = Calls(answer)
    http_client, _, _ = client(flavour, calls)
    threads = [threading.Thread(target=http_client.get, args=("/",)) for _ in range(4)]
    threads[0].start()
    assert first_out.wait(5)
    for thread in threads[1:]:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls.count == 4
    assert on_the_wire[0] == 1


def test_an_older_answer_settles_but_does_not_sync(flavour):
    """An answer to a request sent before the latest synced one is older news: no sync."""
    http, adapter = flavour
    clock = ManualClock()
    requests = TokenBucket(BucketConfig(10, Rate.per_minute(1e-6), in_flight=600), clock=clock)
    release = threading.Event()

    def answer(request: Any) -> Any:
        if request.url.path == "/slow":
            release.wait(5)
            return http.Response(200, headers=quota_headers(requests=(10, 8)))
        return http.Response(200, headers=quota_headers(requests=(10, 5)))

    transport = adapter.QuotaTransport(
        LoopbackDialect(), transport=http.MockTransport(answer), buckets={"requests": requests}
    )
    with http.Client(transport=transport, base_url="http://api.test") as http_client:
        slow = threading.Thread(target=http_client.get, args=("/slow",))
        slow.start()
        while requests.snapshot().tokens > 9:  # the slow request is booked and out
            threading.Event().wait(0.001)
        http_client.get("/fast")
        release.set()
        slow.join(5)
    # The fast answer's 5, less the slow request then still on the wire; never the stale 8.
    assert requests.snapshot().tokens == pytest.approx(4)


def test_buckets_on_a_shared_backend_are_one_budget(flavour, tmp_path):
    """Two transports naming one SQLite backend and key spend from the same buckets."""
    backend = SQLiteBackend(tmp_path / "budget.db")
    clock = ManualClock()
    first, t1, _ = client(flavour, Calls(ok), backend=backend, key="acct", clock=clock)
    second, t2, _ = client(flavour, Calls(ok), backend=backend, key="acct", clock=clock)
    first.get("/")
    second.get("/")
    t1.buckets["requests"].reserve(5)
    assert t2.buckets["requests"].snapshot().tokens == pytest.approx(59 - 5, abs=0.5)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": 1.5}, ValueError, "retries"),
        ({"key": ""}, ValueError, "key"),
        ({"buckets": {"requests": "bucket"}}, TypeError, "buckets"),
        ({"buckets": {}}, TypeError, "buckets"),
        ({"cost": 3}, TypeError, "cost"),
    ],
)
def test_bad_arguments_are_typed_errors_naming_the_value(flavour, options, error, match):
    """Bad constructor arguments raise at once, naming the argument."""
    _, adapter = flavour
    with pytest.raises(error, match=match):
        adapter.QuotaTransport("openai", **options)


def test_an_unknown_dialect_is_refused(flavour):
    """An unknown dialect name raises ValueError listing the known ones."""
    _, adapter = flavour
    with pytest.raises(ValueError, match="openai"):
        adapter.QuotaTransport("nonesuch")


def test_async_buckets_are_refused_by_the_sync_transport(flavour):
    """The sync transport takes TokenBucket objects, the async one AsyncTokenBucket."""
    _, adapter = flavour
    config = BucketConfig(10, Rate.per_minute(10))
    with pytest.raises(TypeError, match="TokenBucket"):
        adapter.QuotaTransport("openai", buckets={"requests": AsyncTokenBucket(config)})
    with pytest.raises(TypeError, match="AsyncTokenBucket"):
        adapter.AsyncQuotaTransport("openai", buckets={"requests": TokenBucket(config)})


# -- async ------------------------------------------------------------------------------


def test_async_transport_books_waits_retries_and_settles_streams(flavour):
    """The async transport: waits on the bucket, retries a wait refusal, settles a stream."""
    http, adapter = flavour
    clock = ManualClock()
    tokens = AsyncTokenBucket(BucketConfig(1000, Rate.per_minute(1000)), clock=clock)
    config = BucketConfig(60, Rate.per_minute(60), burst_threshold=1, in_flight=600)
    requests = AsyncTokenBucket(config, clock=clock)
    seen = []

    class Events(http.AsyncByteStream):  # type: ignore[misc,name-defined]
        async def __aiter__(self) -> Any:
            yield b'{"cost": '
            yield b'{"tokens": 25}}'

    async def answer(request: Any) -> Any:
        seen.append(request.url.path)
        if request.url.path == "/refused" and seen.count("/refused") == 1:
            headers = {**quota_headers(requests=(60, 0)), "x-kind": "wait", "retry-after": "3"}
            return http.Response(429, headers=headers, content=b"{}")
        if request.url.path == "/stream":
            return http.Response(
                200, headers={"content-type": "text/event-stream"}, stream=Events()
            )
        return http.Response(200, headers=quota_headers(requests=(60, 0)), content=b"{}")

    transport = adapter.AsyncQuotaTransport(
        LoopbackDialect(),
        transport=http.MockTransport(answer),
        buckets={"tokens": tokens, "requests": requests},
        clock=clock,
    )

    async def main() -> None:
        async with http.AsyncClient(transport=transport, base_url="http://api.test") as c:
            await c.get("/")
            await c.get("/")  # nothing left: one request's refill, 1 s
            assert clock.now() == pytest.approx(1.0)
            assert (await c.get("/refused")).status_code == 200  # 1 s for its turn, then 3
            assert clock.now() == pytest.approx(5.0)
            async with c.stream("GET", "/stream", headers={"x-cost-tokens": "100"}) as response:
                booked = (await tokens.snapshot()).tokens  # 100 booked (after 1 s of refill)
                assert booked == pytest.approx(900 + 1000 / 60)
                await response.aread()
            assert (await tokens.snapshot()).tokens == pytest.approx(booked + 75)

    asyncio.run(main())
    assert seen.count("/refused") == 2


def test_async_concurrent_first_requests_wait_for_the_first_answer(flavour):
    """Tasks sending at once: one goes out first, the others once its answer made the buckets."""
    http, adapter = flavour
    wire = {"now": 0, "max": 0, "first_done": False, "before_first": 0}

    async def answer(request: Any) -> Any:
        wire["now"] += 1
        wire["max"] = max(wire["max"], wire["now"])
        if not wire["first_done"]:
            wire["before_first"] += 1
        await asyncio.sleep(0.01)
        wire["now"] -= 1
        wire["first_done"] = True
        return http.Response(200, headers=quota_headers(requests=(60, 50)), content=b"{}")

    transport = adapter.AsyncQuotaTransport(
        LoopbackDialect(), transport=http.MockTransport(answer), clock=ManualClock()
    )

    async def main() -> None:
        async with http.AsyncClient(transport=transport, base_url="http://api.test") as c:
            await asyncio.gather(*(c.get("/") for _ in range(5)))

    asyncio.run(main())
    assert wire["before_first"] == 1


def test_an_answer_lacking_a_request_answered_before_it_does_not_grant_it_twice(flavour):
    """Sent A then B; the server counts B first; A's answer syncs first: B's later answer
    (which lacks A) must not give A back (regression: a 429 in the simulated day)."""
    http, adapter = flavour
    clock = ManualClock()
    requests = TokenBucket(BucketConfig(10, Rate.per_minute(1e-6), in_flight=600), clock=clock)
    a_may_answer, b_may_answer = threading.Event(), threading.Event()

    def answer(request: Any) -> Any:
        if request.url.path == "/a":
            a_may_answer.wait(5)  # the server counts A after B: 8 left
            return http.Response(200, headers=quota_headers(requests=(10, 8)))
        a_may_answer.set()  # B is counted first: 9 left, but its answer is late
        b_may_answer.wait(5)
        return http.Response(200, headers=quota_headers(requests=(10, 9)))

    transport = adapter.QuotaTransport(
        LoopbackDialect(), transport=http.MockTransport(answer), buckets={"requests": requests}
    )
    with http.Client(transport=transport, base_url="http://api.test") as http_client:
        first = threading.Thread(target=http_client.get, args=("/a",))
        first.start()
        while requests.snapshot().tokens > 9:  # A is booked and out
            threading.Event().wait(0.001)
        second = threading.Thread(target=http_client.get, args=("/b",))
        second.start()
        first.join(5)  # A's answer is followed
        b_may_answer.set()
        second.join(5)
    assert requests.snapshot().tokens == pytest.approx(8)


def test_on_a_shared_backend_an_answer_stays_in_flight_a_while(flavour, tmp_path):
    """Two processes' transports on one key: an answer computed before the other's request
    reached the server, and followed after that request was answered, does not give it back
    (the answered request stays in flight for SETTLE_AFTER seconds; regression: a 429 with
    four processes on Redis)."""
    http, adapter = flavour
    backend = SQLiteBackend(tmp_path / "budget.db")
    config = BucketConfig(10, Rate.per_minute(1e-6), in_flight=600)
    clock = ManualClock()  # the transports' clock: SETTLE_AFTER never passes here
    a_counted, a_may_answer = threading.Event(), threading.Event()

    def answer_a(request: Any) -> Any:
        a_counted.set()  # the server counted A alone: 9 left...
        a_may_answer.wait(5)  # ...but the answer comes late
        return http.Response(200, headers=quota_headers(requests=(10, 9)))

    def answer_b(request: Any) -> Any:
        return http.Response(200, headers=quota_headers(requests=(10, 8)))  # A and B counted

    def transport(answer: Callable[[Any], Any]) -> Any:
        bucket = TokenBucket(config, backend=backend, key="acct:requests")
        return adapter.QuotaTransport(
            LoopbackDialect(),
            transport=http.MockTransport(answer),
            buckets={"requests": bucket},
            clock=clock,
        )

    one, two = transport(answer_a), transport(answer_b)
    with http.Client(transport=one) as first, http.Client(transport=two) as second:
        late = threading.Thread(target=first.get, args=("http://api.test/a",))
        late.start()
        assert a_counted.wait(5)
        second.get("http://api.test/b")
        a_may_answer.set()
        late.join(5)
        # The server has 8 left: never more (A's own booking still counts for a second: 7).
        assert one.buckets["requests"].snapshot().tokens <= 8 + 0.01


def test_answered_bookings_are_not_kept_alive_by_later_ones():
    """Each booking remembers the requests out when it left only until its answer: under
    steady overlapping traffic, old bookings are freed (regression: an unbounded chain)."""
    core = TransportCore(LoopbackDialect(), bucket_type=TokenBucket)
    freed: list[weakref.ref[Booking[Any]]] = []
    previous: Booking[Any] = Booking({"requests": 1.0})
    core.sent(previous)
    for _ in range(50):
        booking: Booking[Any] = Booking({"requests": 1.0})
        core.sent(booking)  # the previous request is still out: it is in booking.before
        core.follow(previous, QuotaReport())
        freed.append(weakref.ref(previous))
        previous = booking
    del booking
    gc.collect()
    assert sum(ref() is not None for ref in freed) <= 1


@pytest.mark.parametrize("prefix", ["2024-10-15", "2025-08-21"])
def test_anthropic_rounded_token_figures_never_put_a_bucket_ahead_of_the_server(flavour, prefix):
    """Anthropic rounds its token figures to thousands: the buckets count 500 fewer, requests exact.

    The real captured headers, answered twice (the first answer creates the buckets, the
    second syncs them): a token bucket never holds more than the figure less 500, the
    least the server may truly have left.
    """
    text = next(
        text
        for title, text in quota_sections("anthropic-messages.txt").items()
        if title.startswith(prefix)
    )
    headers = dict(sample_headers(text))
    usage = {"usage": {"input_tokens": 16, "output_tokens": 24}}
    calls = Calls(lambda n, r: (200, headers, json.dumps(usage).encode()))
    http, adapter = flavour
    calls.module = http  # type: ignore[attr-defined]
    clock = ManualClock()  # no refill between the answer and the check
    transport = adapter.QuotaTransport(
        "anthropic", transport=http.MockTransport(calls), clock=clock
    )
    with http.Client(transport=transport, base_url="https://api.anthropic.com") as http_client:
        for _ in range(2):
            body_sent = {
                "model": "claude",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "hi"}],
            }
            assert http_client.post("/v1/messages", json=body_sent).status_code == 200
            for name, bucket in transport.buckets.items():
                figure = float(headers[f"anthropic-ratelimit-{name}-remaining"])
                least = figure if name == "requests" else figure - 500
                assert bucket.snapshot().tokens <= least, (name, figure)
    assert transport.buckets["requests"].snapshot().tokens == float(
        headers["anthropic-ratelimit-requests-remaining"]
    )


class _OneShot:
    """A response body that may be read once, as a socket's is."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.reads = 0

    def __iter__(self) -> Iterator[bytes]:
        self.reads += 1
        if self.reads > 1:
            raise AssertionError("the body was read twice")
        yield self.content

    def close(self) -> None:
        pass


def test_an_answer_the_inner_transport_read_already_is_followed_without_reading_it_again(
    flavour,
):
    """An inner transport that reads the answer (a middleware): its true cost settles, and
    its body, which a socket gives once, is not read again (that would hang)."""
    http, adapter = flavour
    stream_type = type("OneShot", (_OneShot, http.SyncByteStream), {})

    class Reading(http.BaseTransport):  # type: ignore[name-defined,misc]
        def handle_request(self, request: Any) -> Any:
            stream = stream_type(body(cost={"tokens": 40}))
            response = http.Response(
                200, headers={"content-type": "application/json"}, stream=stream
            )
            response.read()
            return response

    clock = ManualClock()
    tokens = TokenBucket(BucketConfig(1000, Rate.per_minute(1000)), clock=clock)
    transport = adapter.QuotaTransport(
        LoopbackDialect(), transport=Reading(), clock=clock, buckets={"tokens": tokens}
    )
    with http.Client(transport=transport, base_url="http://api.test") as http_client:
        response = http_client.get("/", headers={"x-cost-tokens": "100"})
        assert response.json() == {"cost": {"tokens": 40}}
    assert tokens.snapshot().tokens == 960


def test_first_requests_that_cost_no_known_limit_wait_for_the_first_answer(flavour):
    """The ietf estimate names no limit before an answer does: the first request goes out
    alone, the others wait for its answer, then book on the limits it named."""
    http, adapter = flavour
    first_out = threading.Event()
    release = threading.Event()
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def answer(n: int, request: Any) -> tuple[int, dict[str, str], bytes]:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        if n == 1:
            first_out.set()
            release.wait(5)
        with lock:
            state["now"] -= 1
        headers = {"RateLimit-Policy": '"minute";q=8;w=60', "RateLimit": f'"minute";r={8 - n};t=60'}
        return 200, headers, b"{}"

    calls = Calls(answer)
    calls.module = http  # type: ignore[attr-defined]
    transport = adapter.QuotaTransport(
        "ietf", transport=http.MockTransport(calls), clock=ManualClock()
    )
    http_client = http.Client(transport=transport, base_url="http://api.test")
    threads = [threading.Thread(target=http_client.get, args=("/",)) for _ in range(4)]
    threads[0].start()
    assert first_out.wait(5)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.2)  # time for the others to go out, were they not held back
    assert calls.count == 1
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls.count == 4
    # The three that waited were booked on the minute the first answer named.
    assert transport.buckets["minute"].snapshot().booked == 3
