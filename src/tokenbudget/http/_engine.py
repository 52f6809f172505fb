"""The I/O half of the transports: carry out :mod:`._transport`'s decisions with httpx or httpx2.

httpx and httpx2 share their API but not their classes, so each engine takes
the HTTP module it works with (``httpx`` or ``httpx2``) and builds its answers
and streams from that module's classes. :mod:`tokenbudget.http.httpx` and
:mod:`tokenbudget.http.httpx2` wrap one engine each, sync and async, in their
module's transport base classes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import timedelta
from functools import cache
from time import perf_counter
from types import ModuleType
from typing import Any, Final

from tokenbudget._bucket import AsyncReservation, AsyncTokenBucket, Reservation, TokenBucket
from tokenbudget._clock import Clock, MonotonicClock
from tokenbudget.exceptions import CostExceedsCapacity, RequestTooLarge

from ._message import _UNSET, HeaderFields, ResponseInfo, _decode_json
from ._openai import UsualAnswer
from ._report import EMPTY, QuotaReport
from ._transport import _NOTHING, SHOULD_RETRY, Booking, Decision, Follow, SyncCall, TransportCore


__all__ = ["AsyncEngine", "SyncEngine"]

log = logging.getLogger("tokenbudget.http")

#: The most of a streamed body kept to read its true cost from (an LLM stream is far smaller).
_STREAM_CAP: Final = 8 * 1024 * 1024
#: Answers read whole before they are returned, to follow their body: JSON up to this size.
_READ_CAP: Final = 16 * 1024 * 1024
_DEFAULT_CLOCK: Final = MonotonicClock()
#: What ``_followed_usual`` gives for an answer it followed (else the body's JSON value).
_FOLLOWED: Final = object()
#: What a request goes out alone on when it goes out among the others (see ``_enter``).
_ALONE_ON_NOTHING: Final[frozenset[str]] = frozenset()


def _sync(bucket: TokenBucket, call: SyncCall) -> None:
    """``bucket.sync(...)`` without the snapshot it returns (one backend call fewer)."""
    req = bucket._sync_request(call.tokens, call.refill_in, call.rate, call.as_of)  # noqa: SLF001
    bucket._synced(req, bucket._apply(req))  # noqa: SLF001


async def _async_sync(bucket: AsyncTokenBucket, call: SyncCall) -> None:
    """``await bucket.sync(...)`` without the snapshot it returns."""
    req = bucket._sync_request(call.tokens, call.refill_in, call.rate, call.as_of)  # noqa: SLF001
    bucket._synced(req, await bucket._apply(req))  # noqa: SLF001


def _settle_sync_together(  # noqa: C901 -- the usual pairing first, then the general one
    booking: Booking[Any], follow: Follow, buckets: Mapping[str, Any]
) -> Follow:
    """Apply each settle with its bucket's sync as one memory transition where it can.

    A bucket's settle and then its sync (its booking settled before its figure is
    adopted, as :meth:`TransportCore.follow` orders them) in one call of the memory
    backend while nobody listens (``_quiet_settle_sync``); the buckets are
    independent of each other, so the order across buckets does not matter.
    Returns what is left to apply one call at a time (another backend, a listener,
    a settle or a sync without its twin).
    """
    settles, syncs = follow.settles, follow.syncs
    if not settles or not syncs:
        return follow
    reservations = booking.reservations
    if len(settles) == len(syncs):  # the usual answer: the same limits in the same order
        for (name, cost), call in zip(settles, syncs, strict=True):
            if (
                call[0] != name
                or call[3] is not None
                or buckets[name]._quiet_settle_sync(  # noqa: SLF001 -- the transport's own
                    reservations[name]._state,  # noqa: SLF001
                    cost,
                    call[1],
                    call[2],
                    call[4],
                )
                is None
            ):
                break  # this one and those after it: the general pairing below
            settles, syncs = settles[1:], syncs[1:]
        if not settles:
            return _NOTHING
    left_settles: list[tuple[str, float]] = []
    left_syncs = list(syncs)
    for name, cost in settles:
        for i, call in enumerate(left_syncs):
            if call.name == name:
                if (
                    call.rate is None
                    and buckets[name]._quiet_settle_sync(  # noqa: SLF001 -- the transport's own
                        reservations[name]._state,  # noqa: SLF001
                        cost,
                        call.tokens,
                        call.refill_in,
                        call.as_of,
                    )
                    is not None
                ):
                    del left_syncs[i]
                else:
                    left_settles.append((name, cost))
                break
        else:
            left_settles.append((name, cost))
    if not left_settles and not left_syncs:
        return _NOTHING
    return Follow(tuple(left_settles), tuple(left_syncs))


class _JsonOnce:
    """A response's ``json()`` whose first call without arguments gives the body decoded already.

    The transport decodes a JSON answer to follow it; the client (an SDK always)
    decodes it again. ``json.loads`` of the same bytes would make an equal but new
    value: the first call gets the transport's one, which nothing else holds, and
    any other call decodes as the library's own ``json()`` does (``json.loads`` of
    the body, with the call's arguments). Pickled as a ``json()`` that decodes.
    """

    __slots__ = ("_body", "_decoded")

    def __init__(self, body: bytes, decoded: list[object]) -> None:
        self._body = body
        self._decoded = decoded  # [the value] until the first call takes it

    def __call__(self, **kwargs: Any) -> Any:
        if not kwargs and self._decoded:
            try:
                return self._decoded.pop()
            except IndexError:  # another thread's call took it meanwhile
                pass
        return json.loads(self._body, **kwargs)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Callable[..., Any], bytes]]:
        # json.loads of the body: what the library's own json() does, unpickled without us.
        return functools.partial, (json.loads, self._body)


#: The largest body whose decoding the transport hands over: the value lives as long as
#: the answer, a few times the body's size, also for a caller that never calls ``json()``.
_HANDED_OVER: Final = 256 * 1024


def _json_once(response: Any, body: bytes, decoded: object) -> None:
    """Have *response*'s first ``json()`` give *decoded*, the JSON value of its *body*.

    Only where ``json()`` is the library's own (not a subclass's, nor patched onto
    the class), and for a body of at most :data:`_HANDED_OVER` bytes.
    """
    if (
        len(body) <= _HANDED_OVER
        and getattr(type(response).json, "__module__", None) in _LIBRARY_MODELS
    ):
        response.json = _JsonOnce(body, [decoded])


#: The modules of httpx's and httpx2's own ``Response.json``.
_LIBRARY_MODELS: Final = frozenset({"httpx._models", "httpx2._models"})


def _report(
    core: TransportCore[Any],
    response: Any,
    fields: HeaderFields,
    body: bytes | None,
    url: str,
    *,
    decoded: object = _UNSET,
) -> QuotaReport:
    """The dialect's report of *response*; the JSON a built-in one decoded goes to ``json()``.

    *decoded* is the body's JSON value where it was decoded already (by
    ``_Engine._usual``: not decoded twice), else ``_UNSET``.
    """
    info = ResponseInfo(fields, body, status=response.status_code, url=url)
    if decoded is not _UNSET:
        info._json = decoded  # noqa: SLF001 -- what its json() would decode the body to
    report = core.parse(info)
    if body and core.builtin:
        decoded = info._json  # noqa: SLF001 -- decoded if the dialect read it, else _UNSET
        if type(decoded) is dict or type(decoded) is list:
            _json_once(response, body, decoded)
    return report


def _request_body(request: Any) -> bytes | None:
    """The request's body when it is at hand (a built request's content), else None."""
    try:
        content = request.content
    except Exception:  # noqa: BLE001 -- a streaming request body: not read here
        return None
    return content if isinstance(content, bytes) and content else None


def _how_to_read(headers: HeaderFields) -> str:
    """How to follow an answer with these *headers*: ``"stream"``, ``"read"`` or ``"headers"``.

    Server-sent events are followed as they end; a JSON body (or a small one)
    is read whole first; any other body says nothing of the quota, or is too
    large to hold: its headers are all there is to follow.
    """
    kind = (headers.get("content-type") or "").lower()
    if "text/event-stream" in kind:
        return "stream"
    length = headers.get("content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            size = _READ_CAP + 1
        if size > _READ_CAP:
            return "headers"
        if "json" in kind or size <= 64 * 1024:
            return "read"
        return "headers"
    return "read" if "json" in kind else "headers"


def _decoded(module: ModuleType, headers: Any, raw: bytes, fields: HeaderFields) -> bytes | None:
    """The body as the client will see it (``Content-Encoding`` undone), or None if it fails."""
    if not raw or "content-encoding" not in fields:
        return raw
    try:
        return bytes(module.Response(200, headers=headers, content=raw).content)
    except Exception:  # noqa: BLE001 -- nothing to follow in it; the client's read raises
        return None


def _read_whole(
    module: ModuleType, response: Any, fields: HeaderFields, raw: bytes, started: float
) -> bytes:
    """Hand *response*, whose body *raw* was read whole, over read; the body as the client sees it.

    The client then reads nothing again: the answer is as read and closed as the
    client's own reading of its body leaves it (``content``, ``is_closed``,
    ``is_stream_consumed``, ``num_bytes_downloaded``), like an answer made with
    ``Response(content=...)``; reading it (``read``, ``iter_bytes``, ``json``)
    gives what it would have. A body that does not decode is handed over unread,
    as a stream of the bytes read, so that the client's reading raises its error.
    Its ``elapsed`` counts from *started* (``perf_counter``), when the transport
    was handed the request (the client counts from just before; httpx would set it
    only when it closes the stream, which a closed answer never does again).
    """
    # The bytes read, as its stream: the inner stream, read to its end and closed, must
    # never be read again (an outer transport that makes an answer of ``stream=`` reads
    # it: from the connection itself, idle in its pool by then, another request's answer).
    response.stream = module.ByteStream(raw)
    body = _decoded(module, response.headers, raw, fields)
    if body is None:
        return b""
    # What the client's read sets (httpx and httpx2 alike): its content, and the raw
    # bytes counted. Two private fields; tests pin the answer to the bare client's.
    response._content = body  # noqa: SLF001
    response._num_bytes_downloaded = len(raw)  # noqa: SLF001
    response.is_stream_consumed = True
    response.is_closed = True
    response.elapsed = timedelta(seconds=perf_counter() - started)
    return body


class _Tap:
    """What a followed stream shares: the bytes so far, and the one reading when it ends."""

    __slots__ = ("_done", "_on_end", "_parts", "_size")

    def __init__(self, on_end: Callable[[bytes], Follow]) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._done = False
        self._on_end = on_end

    def feed(self, chunk: bytes) -> None:
        if self._size <= _STREAM_CAP:
            self._parts.append(chunk)
            self._size += len(chunk)

    def end(self, *, complete: bool) -> Follow | None:
        """The settles due when the stream ended (*complete*) or was abandoned; once.

        An abandoned stream (closed before its end), or one too long to hold,
        stays settled at its booking: None.
        """
        if self._done:
            return None
        self._done = True
        body = b"".join(self._parts) if complete and self._size <= _STREAM_CAP else None
        self._parts = []
        if body is None:
            return None
        try:
            return self._on_end(body)
        except Exception:
            log.exception("tokenbudget.http: reading the end of a stream failed")
            return None


@cache
def _sync_stream(module: ModuleType) -> Any:
    """The module's followed byte stream (the client checks its base class)."""

    class FollowedStream(module.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, tap: _Tap, apply: Callable[[Follow], None]) -> None:
            self._inner = inner
            self._tap = tap
            self._apply = apply

        def _end(self, *, complete: bool) -> None:
            follow = self._tap.end(complete=complete)
            if follow is not None:
                self._apply(follow)

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                self._tap.feed(chunk)
                yield chunk
            self._end(complete=True)

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._end(complete=False)

    return FollowedStream


@cache
def _async_stream(module: ModuleType) -> Any:
    """The module's followed async byte stream (the client checks its base class)."""

    class AsyncFollowedStream(module.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(
            self, inner: Any, tap: _Tap, apply: Callable[[Follow], Awaitable[None]]
        ) -> None:
            self._inner = inner
            self._tap = tap
            self._apply = apply

        async def _end(self, *, complete: bool) -> None:
            follow = self._tap.end(complete=complete)
            if follow is not None:
                await self._apply(follow)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._inner:
                self._tap.feed(chunk)
                yield chunk
            await self._end(complete=True)

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                await self._end(complete=False)

    return AsyncFollowedStream


def _refusal(module: ModuleType, request: Any, error: RequestTooLarge, started: float) -> Any:
    """The answer an SDK gets for a request the buckets can never admit (``retries=0``).

    Made read and closed, with its ``elapsed`` (the client sets none on an answer
    that arrives closed: httpx, httpx2 before 2.17).
    """
    body = {"error": {"type": "request_too_large", "message": str(error)}}
    response = module.Response(
        429,
        headers={"content-type": "application/json", SHOULD_RETRY: "false"},
        content=json.dumps(body).encode(),
        request=request,
    )
    response.elapsed = timedelta(seconds=perf_counter() - started)
    return response


class _Engine:
    """What the sync and async engines share."""

    def __init__(self, module: ModuleType, core: TransportCore[Any], inner: Any) -> None:
        self.module = module
        self.core = core
        self.inner = inner
        self._connect_errors = (module.ConnectError, module.ConnectTimeout)
        #: Limits a request is out alone on (see TransportCore.to_probe).
        self._probing: set[str] = set()

    def _clock(self, booking: Booking[Any]) -> Clock:
        core = self.core
        if core.clock is not None:
            return core.clock
        for reservation in booking.reservations.values():
            clock: Clock = reservation._bucket.clock  # noqa: SLF001 -- the booking's bucket
            return clock
        return _DEFAULT_CLOCK

    def _now(self) -> float:
        """The transport's clock now (its buckets')."""
        core = self.core
        if core.clock is not None:
            return core.clock.now()
        for bucket in core.buckets.values():
            return float(bucket.clock.now())
        return _DEFAULT_CLOCK.now()

    def _estimate(self, request: Any) -> dict[str, float]:
        # The URL object: the estimate makes it text only if it reads it.
        return self.core.costs(
            request,
            request.method,
            request.url,
            request.headers,
            _request_body(request),
        )

    def _estimated_again(self, costs: dict[str, float], request: Any) -> dict[str, float]:
        """*costs*, or estimated again when an answer named the limits since (none before)."""
        if not costs and self.core.limits:
            return self._estimate(request)
        return costs

    def _tap(self, booking: Booking[Any], response: Any, fields: HeaderFields, url: str) -> _Tap:
        core = self.core
        status, headers = response.status_code, response.headers

        def on_end(body: bytes) -> Follow:
            decoded = _decoded(self.module, headers, body, fields) or b""
            report = core.report(status, fields, decoded, url)
            return core.settle_stream(booking, report)

        return _Tap(on_end)

    def _usual(
        self, fields: HeaderFields, body: bytes | None, status: int
    ) -> tuple[UsualAnswer | None, object]:
        """The dialect's usual answer read from *fields* and *body*, and the body it decoded.

        The answer is None when the dialect has no usual answer or this is not
        one. A body is decoded here, once, so that the client's ``json()`` can
        have it (``_json_once``), and the report, if the answer is not usual:
        its JSON value (None if it is not JSON), or ``_UNSET`` if not decoded.
        """
        usual = self.core.usual_answer
        if usual is None or status >= 400:  # (a refusal is never usual: no decoding for it)
            return None, _UNSET
        if not body:
            return usual(fields._fields, body, status), _UNSET
        decoded = _decode_json(body)
        if type(decoded) is not dict:
            return None, decoded  # not a JSON object: never a usual answer
        return usual(fields._fields, decoded, status), decoded

    @staticmethod
    def _finish(decision: Decision, response: Any) -> Any:
        if decision.mark:
            response.headers[SHOULD_RETRY] = "false"
        return response


class SyncEngine(_Engine):
    """The sync transports' engine (``httpx.BaseTransport``, ``httpx2.BaseTransport``)."""

    def __init__(self, module: ModuleType, core: TransportCore[TokenBucket], inner: Any) -> None:
        super().__init__(module, core, inner)
        self.core: TransportCore[TokenBucket] = core
        self._gate = threading.Condition()
        #: Held while an answer is followed: its settles and syncs are one step for the
        #: other threads (a settle between another answer's reading and its sync would
        #: escape both the bucket's in-flight records and the transport's own count).
        self._following = threading.RLock()
        #: The thread that settles answered bookings when their wait is over (shared backends).
        self._settler: threading.Thread | None = None
        self._settling = threading.Condition()
        self._closed = False

    def _enter(self, costs: dict[str, float]) -> frozenset[str]:
        """Wait while a request is out alone on a limit this one costs.

        Returns the limits this request goes out alone on (see ``TransportCore.to_probe``).
        """
        core = self.core
        if core.steady(costs) or not core.to_probe(costs, self._now()):
            return _ALONE_ON_NOTHING
        with self._gate:
            while (names := core.to_probe(costs, self._now())) & self._probing:
                self._gate.wait()
            self._probing |= names
            return names

    def _leave(self, names: frozenset[str], *, answered: bool) -> None:
        if names:
            with self._gate:
                self.core.probed(names, answered=answered, now=self._now())
                self._probing -= names
                self._gate.notify_all()

    def _book(self, booking: Booking[Reservation]) -> float:
        """Book each cost of *booking* on its bucket; the latest booking's delay (``delay``)."""
        delay = 0.0
        for name, bucket, cost in self.core.to_book(booking.costs):
            try:
                state = bucket._quiet_booking(cost)  # noqa: SLF001 -- reserve, in one memory call
                reservation = bucket.reserve(cost) if state is None else Reservation(bucket, state)
                booking.reservations[name] = reservation
                if reservation.delay > delay:
                    delay = reservation.delay
            except CostExceedsCapacity as exc:
                self._undo(booking)
                raise self.core.too_large(name, exc) from None
            except BaseException:
                self._undo(booking)
                raise
        return delay

    @staticmethod
    def _undo(booking: Booking[Reservation]) -> None:
        """Give back every booking of a request that will not be made."""
        for reservation in booking.reservations.values():
            if not reservation.cancel():
                reservation.settle(0.0)
        booking.reservations.clear()

    def _apply(self, booking: Booking[Reservation], follow: Follow) -> None:
        buckets = self.core.buckets
        with self._following:
            follow = _settle_sync_together(booking, follow, buckets)
            for name, cost in follow.settles:
                booking.reservations[name].settle(cost)
            for call in follow.syncs:
                _sync(buckets[call.name], call)

    def _settle_due(self, now: float | None = None) -> None:
        """Settle the answered bookings whose wait is over (see ``SETTLE_AFTER``)."""
        if not self.core.settle_after:
            return
        for booking, follow in self.core.due(self._now() if now is None else now):
            self._apply(booking, follow)

    def handle(self, request: Any) -> Any:  # noqa: C901 -- the retry loop and its shortcuts
        """Book, wait, send, follow, decide; retry a *wait* refusal (see :mod:`._transport`)."""
        started = perf_counter()  # the answer's elapsed, as the client counts it (roughly)
        core = self.core
        costs = self._estimate(request)
        attempt = 0
        while True:
            attempt += 1
            if core.settle_after:
                self._settle_due()
            # self._enter(costs) without its call where it would not wait (steady limits)
            probe = _ALONE_ON_NOTHING if core.steady(costs) else self._enter(costs)
            costs = self._estimated_again(costs, request)
            answered = False
            booking: Booking[Reservation] = Booking(costs)
            try:
                try:
                    delay = self._book(booking)
                except RequestTooLarge as exc:
                    if core.retries == 0:
                        return _refusal(self.module, request, exc, started)
                    raise
                if delay > 0:
                    try:
                        self._clock(booking).sleep(delay)
                    except BaseException:
                        self._undo(booking)
                        raise
                core.sent(booking)
                response, report = self._exchange(request, booking, started)
                answered = True
            finally:
                if probe:
                    self._leave(probe, answered=answered)
            if report.kind is None:
                return response  # core.decide: return it, unmarked
            if report.kind == "wait":  # whoever books next waits the server's time
                self._apply(booking, Follow(syncs=core.hold(booking, report)))
            decision = core.decide(report, attempt, response.status_code)
            if decision.action == "return":
                return self._finish(decision, response)
            response.close()
            if decision.action == "raise":
                assert decision.error is not None  # noqa: S101 -- decide() sets it
                raise decision.error

    def _exchange(
        self, request: Any, booking: Booking[Reservation], started: float
    ) -> tuple[Any, QuotaReport]:
        """Send once and follow the answer; the answer (to return or close) and its report."""
        core = self.core
        try:
            response = self.inner.handle_request(request)
        except self._connect_errors:
            core.abandoned(booking, reached=False)
            self._undo(booking)  # never reached the server
            raise
        except BaseException:
            core.abandoned(booking, reached=True)
            self._apply(booking, Follow(tuple((n, booking.costs[n]) for n in booking.reservations)))
            raise
        try:
            fields = HeaderFields(response.headers)
            how = _how_to_read(fields)
            if how != "headers" and response.is_stream_consumed:
                # Read already (an inner transport that reads, a mock's answer): its stream
                # may not be read again, and the client will not read it either.
                how, body = "read", response.content
            elif how == "read":
                stream = response.stream
                raw = b"".join(stream)
                stream.close()
                body = _read_whole(self.module, response, fields, raw, started)
            else:
                body = None
            # _FOLLOWED, or the body's JSON value once decoded (for the report)
            seen = (
                self._followed_usual(booking, fields, body, response) if how == "read" else _UNSET
            )
            if seen is _FOLLOWED:
                return response, EMPTY  # a report of no refusal: the answer is returned
            report = _report(core, response, fields, body, str(request.url), decoded=seen)
            now = self._now()
            with self._following:
                if core.settle_after:
                    self._settle_due(now)
                self._apply(booking, core.follow(booking, report, final=how != "stream", now=now))
            if core.settle_after:
                self._wake_settler()
            if how == "stream" and report.kind is None and booking.reservations:
                stream_type = _sync_stream(self.module)
                tap = self._tap(booking, response, fields, str(request.url))
                response.stream = stream_type(
                    response.stream, tap, lambda follow: self._apply(booking, follow)
                )
        except BaseException:
            response.close()
            raise
        return response, report

    def _followed_usual(
        self, booking: Booking[Reservation], fields: HeaderFields, body: bytes | None, response: Any
    ) -> object:
        """Follow the dialect's usual answer without its report: ``_FOLLOWED`` if it was one.

        See :meth:`TransportCore.follow_usual`: the same settles and syncs as the
        report's :meth:`TransportCore.follow` would ask for, none of the objects.
        Else the body's JSON value as decoded on the way, for the report (or
        ``_UNSET``: see :meth:`_usual`).
        """
        core = self.core
        answer, decoded = self._usual(fields, body, response.status_code)
        if answer is None:
            return decoded
        with self._following:
            follow = core.follow_usual(booking, answer, self._now())
            if follow is None:
                return decoded
            rest = _settle_sync_together(booking, follow, core.buckets)
            if rest is not _NOTHING:
                self._apply(booking, rest)
        if decoded is not _UNSET and body is not None:  # (a body decoded is there)
            _json_once(response, body, decoded)
        return _FOLLOWED

    def _wake_settler(self) -> None:
        """Make sure a thread settles the waiting bookings when due, even if no request comes."""
        with self._settling:
            if self._settler is None and not self._closed:
                self._settler = threading.Thread(
                    target=self._settle_loop, name="tokenbudget-http-settler", daemon=True
                )
                self._settler.start()
            self._settling.notify_all()

    def _settle_loop(self) -> None:
        while True:
            with self._settling:
                if self._closed:
                    return
                due = self.core.next_due()
                if due is None:
                    self._settling.wait()
                    continue
                wait = due - self._now()
                if wait > 0:
                    # Real seconds; the transport's clock may run otherwise (a test's): look again.
                    self._settling.wait(min(wait, 1.0))
                    continue
            try:
                self._settle_due()
            except Exception:
                log.exception("tokenbudget.http: settling answered bookings failed")

    def close(self) -> None:
        """Settle what waits, close the inner transport."""
        with self._settling:
            self._closed = True
            self._settling.notify_all()
        try:
            self._settle_due(math.inf)
        finally:
            self.inner.close()


class AsyncEngine(_Engine):
    """The async transports' engine (``AsyncBaseTransport`` of httpx or httpx2)."""

    def __init__(
        self, module: ModuleType, core: TransportCore[AsyncTokenBucket], inner: Any
    ) -> None:
        super().__init__(module, core, inner)
        self.core: TransportCore[AsyncTokenBucket] = core
        self._gate: asyncio.Condition | None = None
        self._following: asyncio.Lock | None = None

    def _lock(self) -> asyncio.Lock:
        """Held while an answer is followed (see :class:`SyncEngine`)."""
        if self._following is None:
            self._following = asyncio.Lock()
        return self._following

    def _condition(self) -> asyncio.Condition:
        if self._gate is None:
            self._gate = asyncio.Condition()
        return self._gate

    async def _enter(self, costs: dict[str, float]) -> frozenset[str]:
        core = self.core
        if core.steady(costs) or not core.to_probe(costs, self._now()):
            return _ALONE_ON_NOTHING
        gate = self._condition()
        async with gate:
            while (names := core.to_probe(costs, self._now())) & self._probing:
                await gate.wait()
            self._probing |= names
            return names

    async def _leave(self, names: frozenset[str], *, answered: bool) -> None:
        if names:
            gate = self._condition()
            async with gate:
                self.core.probed(names, answered=answered, now=self._now())
                self._probing -= names
                gate.notify_all()

    async def _book(self, booking: Booking[AsyncReservation]) -> float:
        """Like :meth:`SyncEngine._book`."""
        delay = 0.0
        for name, bucket, cost in self.core.to_book(booking.costs):
            try:
                state = bucket._quiet_booking(cost)  # noqa: SLF001 -- reserve, in one memory call
                reservation = (
                    await bucket.reserve(cost) if state is None else AsyncReservation(bucket, state)
                )
                booking.reservations[name] = reservation
                if reservation._state.delay > delay:  # noqa: SLF001 -- its delay
                    delay = reservation._state.delay  # noqa: SLF001
            except CostExceedsCapacity as exc:
                await self._undo(booking)
                raise self.core.too_large(name, exc) from None
            except BaseException:
                await self._undo(booking)
                raise
        return delay

    @staticmethod
    async def _undo(booking: Booking[AsyncReservation]) -> None:
        for reservation in booking.reservations.values():
            if not await reservation.cancel():
                await reservation.settle(0.0)
        booking.reservations.clear()

    async def _apply(self, booking: Booking[AsyncReservation], follow: Follow) -> None:
        buckets = self.core.buckets
        follow = _settle_sync_together(booking, follow, buckets)
        for name, cost in follow.settles:
            await booking.reservations[name].settle(cost)
        for call in follow.syncs:
            await _async_sync(buckets[call.name], call)

    async def _apply_locked(self, booking: Booking[AsyncReservation], follow: Follow) -> None:
        async with self._lock():
            await self._apply(booking, follow)

    async def _settle_due(self, now: float | None = None) -> None:
        """Like :meth:`SyncEngine._settle_due`."""
        if not self.core.settle_after:
            return
        for booking, follow in self.core.due(self._now() if now is None else now):
            await self._apply(booking, follow)

    async def handle(self, request: Any) -> Any:  # noqa: C901 -- like SyncEngine.handle
        """Like :meth:`SyncEngine.handle`, without blocking the loop."""
        started = perf_counter()  # the answer's elapsed, as the client counts it (roughly)
        core = self.core
        costs = self._estimate(request)
        attempt = 0
        while True:
            attempt += 1
            if core.settle_after:
                async with self._lock():
                    await self._settle_due()
            # self._enter(costs) without its coroutine where it would not wait (steady limits)
            probe = _ALONE_ON_NOTHING if core.steady(costs) else await self._enter(costs)
            costs = self._estimated_again(costs, request)
            answered = False
            booking: Booking[AsyncReservation] = Booking(costs)
            try:
                try:
                    delay = await self._book(booking)
                except RequestTooLarge as exc:
                    if core.retries == 0:
                        return _refusal(self.module, request, exc, started)
                    raise
                if delay > 0:
                    try:
                        await self._clock(booking).asleep(delay)
                    except BaseException:
                        await self._undo(booking)
                        raise
                core.sent(booking)
                response, report = await self._exchange(request, booking, started)
                answered = True
            finally:
                if probe:
                    await self._leave(probe, answered=answered)
            if report.kind is None:
                return response  # core.decide: return it, unmarked
            if report.kind == "wait":  # whoever books next waits the server's time
                async with self._lock():
                    await self._apply(booking, Follow(syncs=core.hold(booking, report)))
            decision = core.decide(report, attempt, response.status_code)
            if decision.action == "return":
                return self._finish(decision, response)
            await response.aclose()
            if decision.action == "raise":
                assert decision.error is not None  # noqa: S101 -- decide() sets it
                raise decision.error

    async def _exchange(
        self, request: Any, booking: Booking[AsyncReservation], started: float
    ) -> tuple[Any, QuotaReport]:
        core = self.core
        try:
            response = await self.inner.handle_async_request(request)
        except self._connect_errors:
            core.abandoned(booking, reached=False)
            await self._undo(booking)
            raise
        except BaseException:
            core.abandoned(booking, reached=True)
            await self._apply(
                booking, Follow(tuple((n, booking.costs[n]) for n in booking.reservations))
            )
            raise
        try:
            fields = HeaderFields(response.headers)
            how = _how_to_read(fields)
            if how != "headers" and response.is_stream_consumed:
                how, body = "read", response.content  # read already (see SyncEngine)
            elif how == "read":
                stream = response.stream
                raw = b"".join([chunk async for chunk in stream])
                await stream.aclose()
                body = _read_whole(self.module, response, fields, raw, started)
            else:
                body = None
            # _FOLLOWED, or the body's JSON value once decoded (for the report)
            seen = (
                await self._followed_usual(booking, fields, body, response)
                if how == "read"
                else _UNSET
            )
            if seen is _FOLLOWED:
                return response, EMPTY  # a report of no refusal: the answer is returned
            report = _report(core, response, fields, body, str(request.url), decoded=seen)
            now = self._now()
            async with self._lock():
                if core.settle_after:
                    await self._settle_due(now)
                follow = core.follow(booking, report, final=how != "stream", now=now)
                await self._apply(booking, follow)
            if core.settle_after:
                # Settled when due, even if no request comes (a task of this loop).
                asyncio.get_running_loop().call_later(core.settle_after, self._settle_later)
            if how == "stream" and report.kind is None and booking.reservations:
                stream_type = _async_stream(self.module)
                tap = self._tap(booking, response, fields, str(request.url))
                response.stream = stream_type(
                    response.stream, tap, lambda follow: self._apply_locked(booking, follow)
                )
        except BaseException:
            await response.aclose()
            raise
        return response, report

    async def _followed_usual(
        self,
        booking: Booking[AsyncReservation],
        fields: HeaderFields,
        body: bytes | None,
        response: Any,
    ) -> object:
        """Like :meth:`SyncEngine._followed_usual`."""
        answer, decoded = self._usual(fields, body, response.status_code)
        if answer is None:
            return decoded
        lock = self._lock()
        if not lock.locked():
            # Nobody follows an answer, and nothing below suspends: a usual answer is
            # followed only on memory buckets (no settle waits), whose coroutines never
            # do. No task can start to follow one meanwhile: the lock would change nothing.
            followed = await self._follow_usual(booking, answer)
        else:
            async with lock:
                followed = await self._follow_usual(booking, answer)
        if not followed:
            return decoded
        if decoded is not _UNSET and body is not None:  # (a body decoded is there)
            _json_once(response, body, decoded)
        return _FOLLOWED

    async def _follow_usual(self, booking: Booking[AsyncReservation], answer: UsualAnswer) -> bool:
        """Follow a usual *answer* (see :meth:`_followed_usual`); False if it is not followed."""
        core = self.core
        follow = core.follow_usual(booking, answer, self._now())
        if follow is None:
            return False
        rest = _settle_sync_together(booking, follow, core.buckets)
        if rest is not _NOTHING:
            await self._apply(booking, rest)
        return True

    def _settle_later(self) -> None:
        task = asyncio.ensure_future(self._settle_due_locked())
        _SETTLING.add(task)
        task.add_done_callback(_SETTLING.discard)

    async def _settle_due_locked(self) -> None:
        try:
            async with self._lock():
                await self._settle_due()
        except Exception:
            log.exception("tokenbudget.http: settling answered bookings failed")

    async def aclose(self) -> None:
        """Settle what waits, close the inner transport."""
        try:
            await self._settle_due(math.inf)
        finally:
            await self.inner.aclose()


#: Settle tasks started by timers, kept until done (the loop keeps only weak references).
_SETTLING: set[asyncio.Future[None]] = set()
