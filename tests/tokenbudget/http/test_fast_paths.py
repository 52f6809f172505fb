"""The transport's fast paths give what the general paths give (issue 20, performance)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tokenbudget._bucket import _check_number
from tokenbudget.http import Limit, QuotaReport
from tokenbudget.http._message import HeaderFields, _decode_json, finite
from tokenbudget.http._openai import _cached_duration, _summed_duration, go_duration


def _loads(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@pytest.mark.parametrize(
    "body",
    [
        b'{"usage": {"total_tokens": 31}}',
        b'{"a": "\xed\xa0\x80"}',  # an encoded lone surrogate: json.loads passes it
        b'{"a": "\xff"}',  # not UTF-8
        '{"a": 1}'.encode("utf-16-le"),  # "{" then NUL: detected as UTF-16
        b"\xef\xbb\xbf{}",  # a UTF-8 BOM
        b"{",
        b"{}",
        b"{} \n\t",  # whitespace after: as json.loads
        b"{}x",  # extra data
        b"{} {}",
        b'{"a": [1, 2.5e3, null, true], "b": {"c": "\\u00e9"}}',
        b'{"a": NaN, "b": Infinity}',
        b"{" * 100_000 + b"}" * 100_000,  # too deep
        b"[1, 2]",
    ],
)
def test_decode_json_as_json_loads(body: bytes) -> None:
    assert _decode_json(body) == _loads(body)


@given(st.binary(max_size=40).map(lambda tail: b"{" + tail))
def test_decode_json_as_json_loads_fuzzed(body: bytes) -> None:
    assert _decode_json(body) == _loads(body)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3,
        7.5,
        True,
        math.nan,
        math.inf,
        -math.inf,
        int(sys.float_info.max),
        int(sys.float_info.max) + 2**960,  # above the largest float, still rounds to it
        10**400,
        "1",
        None,
    ],
)
def test_finite_as_before(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = None
    else:
        try:
            number = float(value)
        except OverflowError:
            number = math.nan
        expected = number if math.isfinite(number) else None
    assert finite(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_number_refuses_what_is_not_finite(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        _check_number("tokens", value)


def test_check_number_keeps_its_minimum() -> None:
    assert _check_number("actual_cost", 0.0, minimum=0.0) == 0.0
    with pytest.raises(ValueError, match=">="):
        _check_number("actual_cost", -1.0, minimum=0.0)


def test_limit_checks_what_the_usual_case_skips() -> None:
    assert Limit(100.0, -math.inf, 1.0).remaining == -math.inf  # as before: any remaining
    with pytest.raises(ValueError):
        Limit(100.0, 5.0, 1.0, window=0.0)
    with pytest.raises(ValueError):
        Limit(math.nan, 5.0, 1.0)
    assert type(Limit(100, 5, 1, window=60).limit) is float


def test_empty_report_maps_are_frozen_and_none_is_refused() -> None:
    report = QuotaReport()
    with pytest.raises(TypeError):
        report.cost["x"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        QuotaReport(cost=None)  # type: ignore[arg-type]


def test_cached_durations_are_go_durations() -> None:
    for text in ("1\u00b5s", "6m0s", "12ms", "bad", "1m26.4s"):
        assert _cached_duration(text) == go_duration(text)


_DIGITS = st.text("0123456789", min_size=0, max_size=22)
#: Texts near the usual forms of a duration (``12ms``, ``1m26.4s``), and a few beside them.
_DURATION_TEXTS = st.one_of(
    st.tuples(
        st.sampled_from(["", "1m", "59m", "00m", "123456789012345678901m", "1h", "m", " "]),
        _DIGITS,
        st.sampled_from(["", ".", "."]).flatmap(lambda dot: _DIGITS.map(lambda f: dot + f)),
        st.sampled_from(["ms", "s", "m", "us", "ns", "\u00b5s", "h", "", "ms ", "s\n", "sm"]),
    ).map("".join),
    st.text(alphabet="0123456789.msuh \u00b5", max_size=12),
)


@given(_DURATION_TEXTS)
def test_usual_durations_are_read_as_summed(text: str) -> None:
    """The usual forms' shortcut reads every duration as the general reader does."""
    expected = _summed_duration(text)
    found = go_duration(text)
    assert found == expected
    assert type(found) is type(expected)


def test_header_names_read_from_the_cache_as_the_first_time() -> None:
    httpx = pytest.importorskip("httpx")
    headers = httpx.Headers([("X-RateLimit-Limit-Tokens", "10"), ("x-ratelimit-limit-tokens", "9")])
    first = HeaderFields(headers)
    again = HeaderFields(headers)
    assert first.get_all("x-ratelimit-limit-tokens") == ("10", "9")
    assert again.get_all("X-RATELIMIT-LIMIT-TOKENS") == ("10", "9")


# -- the transport's fused path against its general path, on the same answers -----------------

_FIELDS = ("limit", "remaining", "reset")


def _answer_headers(answer: dict[str, Any]) -> list[tuple[str, str]]:
    headers = [("content-type", answer.get("type", "application/json"))]
    if answer.get("date") is not None:
        headers.append(("date", answer["date"]))
    for name in ("requests", "tokens", "tokens_usage_based"):
        for field, value in zip(_FIELDS, answer.get(name) or (), strict=False):
            if value is not None:
                headers.append((f"x-ratelimit-{field}-{name}", value))
    headers.extend(answer.get("extra", ()))
    return headers


def _wire(headers: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """*headers* as an HTTP library sends them: bytes (httpx refuses str beyond ASCII)."""
    return [(name, value.encode()) for name, value in headers]


_DATES = [
    None,
    "Sun, 06 Dec 2026 17:00:00 GMT",
    "Sun, 06 Dec 2026 17:00:01 GMT",
    "Sun, 06 Dec 2026 16:59:59 GMT",  # older: a stale sync
    "Sun, 06 Dec 2026 17:00:01 GMT",
    "not a date",
]
_NUMBERS = st.one_of(
    st.sampled_from(["0", "1", "5000", "800000", "799970", "1.5", "007", "-3", "x", ""]),
    st.sampled_from(["1" * 20, "1" * 21, "1.25", "\u0661", "\u00b2", "1e3", " 5"]),
    st.integers(0, 10**12).map(str),
)
_RESETS = st.one_of(
    st.sampled_from(["0", "0s", "12ms", "1m26.4s", "6m0s", "172.799999ms", "soon", "1h"]),
    _DURATION_TEXTS,
)

#: An answer the fast path follows: each window's three fields, a Date, ``usage``.
_USUAL: dict[str, Any] = {
    "date": _DATES[1],
    "requests": ("5000", "4999", "12ms"),
    "tokens": ("800000", "799000", "77ms"),
    "body": json.dumps({"usage": {"total_tokens": 30}}).encode(),
    "status": 200,
}


@st.composite
def _answers(draw: st.DrawFn) -> dict[str, Any]:
    """One OpenAI-like answer: usual figures mostly, odd ones sometimes."""
    usual = draw(st.booleans())
    answer: dict[str, Any] = {"date": draw(st.sampled_from(_DATES))}
    for name in ("requests", "tokens", "tokens_usage_based"):
        if name == "tokens_usage_based" and draw(st.booleans()):
            continue
        if usual:
            limit = draw(st.sampled_from(["5000", "800000", "60", "1"]))
            left = draw(st.integers(0, 900000))
            answer[name] = (limit, str(left), draw(_RESETS))
        else:
            answer[name] = tuple(
                draw(st.one_of(st.none(), fields)) for fields in (_NUMBERS, _NUMBERS, _RESETS)
            )
    total = draw(
        st.one_of(
            st.integers(0, 5000),
            st.sampled_from([0.5, -1, 10**30, None, "12", True]),
        )
    )
    usage: dict[str, Any] = {"total_tokens": total}
    if draw(st.booleans()):
        usage = {"prompt_tokens": draw(st.integers(0, 99)), "completion_tokens": 3}
    body: Any = {"id": "chatcmpl-1", "usage": usage}
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.sampled_from([[1, 2], "text", {"usage": [1]}, None]))
    answer["body"] = json.dumps(body).encode()
    answer["status"] = draw(st.sampled_from([200] * 8 + [201, 429, 400, 500]))
    if answer["status"] == 429:
        answer["body"] = json.dumps(
            {"error": {"message": "Rate limit reached. Please try again in 20ms.", "code": "x"}}
        ).encode()
    if draw(st.integers(0, 7)) == 0:
        answer["extra"] = [draw(st.sampled_from([("retry-after", "0"), ("retry-after-ms", "5")]))]
    return answer


def _state(transport: Any) -> dict[str, Any]:
    """Every bucket's stored state and snapshot."""
    out = {}
    for name, bucket in transport._core.buckets.items():
        state = bucket._backend._states[bucket.key].to_dict()
        out[name] = (state, bucket._backend.observe(bucket.key, bucket.config, bucket.clock, 0.0))
    return out


def _run_sync(answers: list[dict[str, Any]], steps: list[float]) -> list[Any]:
    httpx = pytest.importorskip("httpx")
    from tokenbudget import ManualClock
    from tokenbudget.http.httpx import QuotaTransport

    script = iter(answers)

    def reply(request: Any) -> Any:
        answer = next(script)
        return httpx.Response(
            answer["status"], headers=_wire(_answer_headers(answer)), content=answer["body"]
        )

    clock = ManualClock(1000.0)
    transport = QuotaTransport(
        "openai", transport=httpx.MockTransport(reply), clock=clock, retries=0
    )
    seen: list[Any] = []
    with httpx.Client(transport=transport, base_url="https://api.openai.com") as client:
        for step in steps:
            clock.advance(step)
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}
            try:
                response = client.post("/v1/chat/completions", json=body)
                seen.append((response.status_code, response.content))
            except StopIteration:
                break
            seen.append(_state(transport))
            seen.append(dict(transport._core.limits))
    return seen


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the transport take its general path only.

    Bookings by ``reserve``, no fused settle-and-sync, every answer read into its
    report and followed by it.
    """
    from tokenbudget._bucket import _Shell
    from tokenbudget.http import _engine
    from tokenbudget.http._transport import TransportCore

    monkeypatch.setattr(_engine, "_settle_sync_together", lambda booking, follow, buckets: follow)
    monkeypatch.setattr(TransportCore, "follow_usual", lambda self, booking, usual, now: None)
    monkeypatch.setattr(_Shell, "_quiet_booking", lambda self, cost: None)


@given(st.lists(_answers(), min_size=1, max_size=8), st.data())
def test_transport_fast_path_decides_as_the_general_path(
    answers: list[dict[str, Any]], data: st.DataObject
) -> None:
    steps = data.draw(
        st.lists(st.sampled_from([0.0, 1e-9, 0.01, 1.0, 30.0]), min_size=len(answers))
    )
    fast = _run_sync(answers, steps)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _general(monkeypatch)
        general = _run_sync(answers, steps)
    assert fast == general


@given(_answers())
def test_usual_answer_is_what_parse_reports(answer: dict[str, Any]) -> None:
    """The dialect's usual answer, as a report, is parse()'s report of the same answer."""
    from tokenbudget.http import ResponseInfo, dialect

    for name in ("openai", "groq"):
        chosen = dialect(name)
        fields = HeaderFields(_answer_headers(answer))
        usual = chosen._usual_answer(fields._fields, answer["body"], answer["status"])  # type: ignore[attr-defined]
        if usual is None:
            continue
        figures, cost, as_of = usual
        limits = {
            n: Limit(limit, remaining, reset, window=window, unit=unit)
            for n, limit, remaining, reset, window, unit in figures
        }
        expected = chosen.parse(ResponseInfo(fields, answer["body"], status=answer["status"]))
        assert QuotaReport(limits=limits, cost=cost, as_of=as_of) == expected
        assert list(expected.limits) == list(limits)  # the same order: the syncs' order


def test_usual_answer_reads_the_windows_a_dialect_has_now() -> None:
    """Windows given to a dialect after its first usual answer are the ones read next."""
    from tokenbudget.http import OpenAIDialect

    chosen = OpenAIDialect()
    fields = HeaderFields(
        [
            (f"x-ratelimit-{field}-{name}", value)
            for name in ("requests", "tokens")
            for field, value in zip(_FIELDS, ("5", "5", "5s"), strict=True)
        ]
    )._fields
    first = chosen._usual_answer(fields, b'{"usage": {"total_tokens": 3}}', 200)
    chosen.windows = {"tokens": 30.0}
    again = chosen._usual_answer(fields, b'{"usage": {"total_tokens": 3}}', 200)
    assert first is not None
    assert again is not None
    assert [(name, window) for name, *_, window, _ in first[0]] == [
        ("requests", 60.0),
        ("tokens", 60.0),
    ]
    assert first[1] == {"tokens": 3.0, "tokens_usage_based": 3.0}
    assert [(name, window) for name, *_, window, _ in again[0]] == [("tokens", 30.0)]
    assert again[1] == {"tokens": 3.0}


def test_the_usual_answer_is_followed_without_its_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first answer, a usual one is never read into a QuotaReport."""
    from tokenbudget.http._transport import TransportCore

    usual = _USUAL
    reports: list[Any] = []
    parse = TransportCore.parse

    def counted(self: Any, *args: Any) -> Any:
        reports.append(args)
        return parse(self, *args)

    monkeypatch.setattr(TransportCore, "parse", counted)
    seen = _run_sync([usual] * 4, [0.0, 1.0, 1.0, 1.0])
    assert len(reports) == 1  # the first answer: it creates the buckets
    limits = seen[-1]
    assert isinstance(limits["tokens"], Limit)
    assert limits["tokens"].remaining == 799000.0


async def _run_async(answers: list[dict[str, Any]], delays: list[int]) -> list[Any]:
    httpx = pytest.importorskip("httpx")
    import asyncio

    from tokenbudget import ManualClock
    from tokenbudget.http.httpx import AsyncQuotaTransport

    script = iter(zip(answers, delays, strict=False))

    async def reply(request: Any) -> Any:
        answer, delay = next(script)
        for _ in range(delay):  # answers overtake each other
            await asyncio.sleep(0)
        return httpx.Response(
            answer["status"], headers=_wire(_answer_headers(answer)), content=answer["body"]
        )

    clock = ManualClock(1000.0)
    transport = AsyncQuotaTransport(
        "openai", transport=httpx.MockTransport(reply), clock=clock, retries=0
    )
    seen: list[Any] = []
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}
    async with httpx.AsyncClient(transport=transport, base_url="https://api.openai.com") as client:
        await client.post("/v1/chat/completions", json=body)  # the first answer: the buckets

        async def one() -> None:
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except (StopIteration, RuntimeError):
                return
            seen.append((response.status_code, response.content))
            seen.append(_state(transport))

        await asyncio.gather(*(one() for _ in range(len(answers) - 1)))
    seen.append(dict(transport._core.limits))
    return seen


@given(st.lists(_answers(), min_size=2, max_size=7), st.data())
def test_async_transport_fast_path_decides_as_the_general_path(
    answers: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Concurrent requests whose answers overtake each other: late bookings, older news."""
    import asyncio

    usual = _USUAL
    answers = [usual, *answers]
    delays = data.draw(st.lists(st.integers(0, 4), min_size=len(answers), max_size=len(answers)))
    fast = asyncio.run(_run_async(answers, delays))
    with pytest.MonkeyPatch.context() as monkeypatch:
        _general(monkeypatch)
        general = asyncio.run(_run_async(answers, delays))
    assert fast == general


def test_steady_costs_need_no_probe() -> None:
    """TransportCore.steady: True only where to_probe is empty whatever the time."""
    from tokenbudget import ManualClock, TokenBucket
    from tokenbudget.http._transport import Booking, TransportCore

    core: TransportCore[TokenBucket] = TransportCore(
        "openai", bucket_type=TokenBucket, clock=ManualClock()
    )
    costs = {"requests": 1.0, "tokens": 50.0}
    assert not core.steady(costs)  # no answer yet: the first request goes out alone
    assert core.to_probe(costs, 0.0)
    report = QuotaReport(
        limits={
            "requests": Limit(60.0, 59.0, 1.0, window=60.0),
            "tokens": Limit(1000.0, 900.0, 6.0, window=60.0, unit="tokens"),
            "daily": Limit(10.0, 9.0, 86400.0, window=86400.0, step=86400.0),
        }
    )
    booking: Booking[Any] = Booking(costs)
    core.sent(booking)
    core.follow(booking, report)
    assert core.steady(costs)
    assert not core.steady({**costs, "other": 1.0})  # no bucket, not known as unreported
    assert not core.steady({**costs, "daily": 1.0})  # a fixed window: probed when it passes
    for now in (0.0, 1.0, 1e6):
        assert not core.to_probe(costs, now)
        assert core.to_probe({**costs, "daily": 1.0}, now + 86400.0)
    core.probed(frozenset({"other"}), answered=True, now=0.0)  # an answer without it
    assert core.steady({**costs, "other": 1.0})
    assert not core.to_probe({**costs, "other": 1.0}, 5.0)


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["send", "send", "answer", "stream", "end", "abandon"]),
        st.integers(0, 50),
        st.integers(0, 90),
    ),
    max_size=60,
)


@given(_OPS)
@example([("send", 0, 10), ("send", 0, 5), ("stream", 0, 0), ("end", 0, 30), ("answer", 0, 0)])
def test_late_requests_by_running_totals_are_those_on_the_wire(ops: list[Any]) -> None:
    """TransportCore._late: what the running totals give is what the requests themselves spent.

    Requests sent, answered in any order (whole, or as streams whose true cost comes
    later), abandoned: at every answer, the totals' growth since its request left is
    what its requests then on the wire and answered by now spent (``_late_spent``).
    """
    from tokenbudget import ManualClock, TokenBucket
    from tokenbudget.http._transport import Booking, TransportCore, _late_spent

    checked: list[int] = []

    class Checked(TransportCore[TokenBucket]):
        def _late(self, booking: Booking[Any]) -> dict[str, float] | None:
            expected = _late_spent(booking.before)
            got = super()._late(booking)
            if booking.seq >= self._synced:  # else older news: it syncs nothing
                assert {k: v for k, v in (got or {}).items() if v} == {
                    k: v for k, v in (expected or {}).items() if v
                }
                checked.append(1)
            return got

    core = Checked("openai", bucket_type=TokenBucket, clock=ManualClock())
    out: list[Booking[Any]] = []  # sent, unanswered
    streams: list[Booking[Any]] = []  # answered by their headers, body to come
    for op, pick, cost in ops:
        if op == "send":
            booking: Booking[Any] = Booking({"requests": 1.0, "tokens": float(cost)})
            booking.reservations.update(requests=None, tokens=None)  # booked (settles name them)
            core.sent(booking)
            out.append(booking)
        elif op in {"answer", "stream"} and out:
            booking = out.pop(pick % len(out))
            report = QuotaReport(cost={} if op == "stream" else {"tokens": float(cost // 2)})
            core.follow(booking, report, final=op == "answer")
            if op == "stream":
                streams.append(booking)
        elif op == "end" and streams:
            booking = streams.pop(pick % len(streams))
            core.settle_stream(booking, QuotaReport(cost={"tokens": float(cost)}))
        elif op == "abandon" and out:
            core.abandoned(out.pop(pick % len(out)), reached=bool(cost % 2))
    assert len(checked) <= len(ops)  # an answer that syncs was checked


@pytest.mark.parametrize("body", [b'{"model": "m"}', b"", bytearray(b'{"a": 1}'), None, {"a": 1}])
def test_request_info_of_httpx_headers_as_of_their_fields(body: object) -> None:
    """A request with httpx's headers reads as the same request with their fields."""
    httpx = pytest.importorskip("httpx")
    from tokenbudget.http import RequestInfo

    headers = httpx.Headers([("Content-Type", "application/json"), ("X-A", "1"), ("x-a", "2")])
    quick = RequestInfo("post", "https://x/v1/chat/completions", headers, body)
    plain = RequestInfo("post", "https://x/v1/chat/completions", HeaderFields(headers), body)
    assert quick.headers.get_all("x-a") == plain.headers.get_all("x-a") == ("1", "2")
    assert dict(quick.headers) == dict(plain.headers)
    assert (quick.method, quick.url, quick.path) == (plain.method, plain.url, plain.path)
    assert (quick.body, quick.json()) == (plain.body, plain.json())


@pytest.mark.parametrize("url", ["https://x/v1/chat/completions?a=1", "http://h:8080/", "/p"])
def test_request_info_of_a_url_object_reads_as_its_text(url: str) -> None:
    """The transport hands httpx's URL over unmade: read, it is the URL's text."""
    httpx = pytest.importorskip("httpx")
    from tokenbudget.http import RequestInfo

    lazy, text = RequestInfo("GET", httpx.URL(url)), RequestInfo("GET", str(httpx.URL(url)))
    assert (lazy.url, lazy.path, repr(lazy)) == (text.url, text.path, repr(text))
    assert type(lazy.url) is str


@pytest.mark.parametrize("bad", [b"https://x/p", None, 5, ["https://x/p"]])
def test_request_info_refuses_a_url_that_is_neither_text_nor_a_url_object(bad: object) -> None:
    from tokenbudget.http import RequestInfo

    with pytest.raises(TypeError, match="url must be text or a URL object"):
        RequestInfo("GET", bad)
    info = RequestInfo("GET", "https://x/a")
    with pytest.raises(TypeError, match="url must be text or a URL object"):
        info.url = bad
    assert info.url == "https://x/a"


def test_request_info_url_may_be_set_again() -> None:
    httpx = pytest.importorskip("httpx")
    from tokenbudget.http import RequestInfo

    info = RequestInfo("GET", "https://x/a")
    info.url = httpx.URL("https://x/b?q=1")
    assert (info.url, info.path) == ("https://x/b?q=1", "/b")
    info.url = "https://x/c"
    assert (info.url, info.path) == ("https://x/c", "/c")


def test_a_parse_of_the_users_own_takes_no_fast_path() -> None:
    """A built-in dialect whose ``parse`` was replaced: every answer goes to that ``parse``,
    and the decoded body (which it may keep) is never handed to the client's ``json()``."""
    from tokenbudget import TokenBucket
    from tokenbudget.http import OpenAIDialect
    from tokenbudget.http._transport import TransportCore

    plain: TransportCore[TokenBucket] = TransportCore("openai", bucket_type=TokenBucket)
    assert plain.usual_answer is not None
    assert plain.builtin
    mine = OpenAIDialect()
    kept: list[Any] = []

    def parse(response: Any) -> Any:
        kept.append(response.json())
        return OpenAIDialect.parse(mine, response)

    mine.parse = parse  # type: ignore[method-assign]
    wrapped: TransportCore[TokenBucket] = TransportCore(mine, bucket_type=TokenBucket)
    assert wrapped.usual_answer is None
    assert not wrapped.builtin
