"""The Keepa clients: :class:`KeepaClient` and :class:`AsyncKeepaClient` over httpx.

Both spend from a :mod:`tokenbudget` bucket. Before a request is sent its cost
is estimated (:mod:`._cost`) and booked on the bucket; when the answer arrives
the booking is settled to ``tokensConsumed`` and the bucket is synced from the
envelope (:mod:`._envelope`), errors and HTTP 429 included. A request the
bucket admits now is sent at once, even while others are on the wire, unless
it takes the balance into debt (below the bucket's minimum threshold, where
Keepa refuses the next request): such a request is sent only once this
client's requests booked before it are answered, since sent at once it could
reach Keepa first and leave them to meet a 429 (the *send gate*). Into debt
counts what the requests on the wire may cost beyond their bookings (their
kind's most: an estimate is not a bound), and a request that waited for them
goes only if their answers left the account able to pay it (on a bucket of
this client's own), else it gives its booking back and waits. A request
that must wait first waits for this client's requests on the wire to be
answered (their envelopes make the bucket exact), then books again and sleeps
the bucket's delay on the client's clock. One request at a time waits:
the others queue behind it, first come, first served. The default bucket keeps
admitted bookings *in flight* until they are settled
(``BucketConfig.in_flight``), so that an answer's sync never erases a request
still on the wire; an envelope older than one already synced is not synced.

All of that is written once, in :class:`_Base`, as generators that yield their
I/O (:mod:`.steps`): :class:`KeepaClient` runs each step by calling it,
:class:`AsyncKeepaClient` by awaiting it. Each client keeps only its locks,
its sleeps and its HTTP call.

The API key travels only in the query string that the transport adds at the
last moment (:class:`_KeyTransport`): httpx's own request objects, its log
records and its errors never see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from functools import partial
from typing import Any, ClassVar, Final, Generic, Self, TypeVar
from urllib.parse import quote, urlencode

import attrs
import httpx

from tokenbudget import (
    AcquireTimeout,
    AsyncReservation,
    AsyncTokenBucket,
    BucketConfig,
    Clock,
    DeficitRule,
    Event,
    MemoryBackend,
    MonotonicClock,
    Rate,
    Reservation,
    TokenBucket,
)

from .cost import CostModel, RequestKind
from .deadline import (
    attempt_seconds,
    capped,
    end_attempt,
    past_wait_limit,
    start_attempt,
    with_deadlines,
)
from .endpoint_methods import AsyncEndpoints, Endpoints
from .endpoints import EndpointCall, _check_bool, _check_int
from .envelope import Envelope, ErrorInfo, decode_body, parse_envelope, parse_error
from .errors import (
    KeepaAuthError,
    KeepaError,
    KeepaProtocolError,
    KeepaRequestError,
    KeepaServerError,
    KeepaTokenError,
    KeepaTransportError,
)
from .exchange import BackOff, Done, Exchange, GiveUp, Resend
from .models.products import DOMAINS, Deal, DealPage, Product, TokenStatus
from .models.query import DealQuery
from .redaction import keep_key_out_of_logs
from .spending import count_spent
from .steps import Steps, arun, awaited, run, twins


__all__ = ["AsyncKeepaClient", "KeepaClient"]

EventHook = Callable[[Event], None]
T = TypeVar("T")
BucketT = TypeVar("BucketT", TokenBucket, AsyncTokenBucket)
TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)

log = logging.getLogger("tokenbudget_keepa")

ENV_KEY: Final = "KEEPA_API_KEY"
DEFAULT_BASE_URL: Final = "https://api.keepa.com"
#: The most ASINs in one ``/product`` request, without and with ``offers``.
MAX_ASINS: Final = 100
MAX_ASINS_WITH_OFFERS: Final = 50  # Keepa served 50 ASINs with offers=50 in one request
#: Keepa adds its refill once a minute.
REFILL_STEP: Final = 60.0
#: Without a configured capacity the bucket holds an hour of refill (Keepa's cap is uncertain).
CAPACITY_MINUTES: Final = 60.0
#: The longest a request waits for tokens (seconds); a longer wait raises KeepaTokenError.
MAX_WAIT: Final = 24 * 3600.0
_ASIN = re.compile(r"[A-Za-z0-9]{10}")
#: A query longer than this is given to httpx as text, to be checked against its URL limit.
_LONG_QUERY: Final = 8192


def _redact(text: str, key: str) -> str:
    return text.replace(key, "<redacted>") if key else text


# -- the transport that adds the key -----------------------------------------------------------


def _key_query(key: str) -> str:
    """``key=...`` as it goes into a query string (percent-encoded once, up front)."""
    return "key=" + quote(key, safe="")


def _keyed_url(url: httpx.URL, key_query: str) -> httpx.URL:
    """*url* with *key_query* (percent-encoded: nothing to check) at the end of its query.

    httpx keeps a parsed URL as a named tuple of its components: the copy
    replaces the query in it, without parsing the whole URL again (a scan of
    every character, on every request). An httpx that keeps it otherwise has
    the URL parsed anew.
    """
    parts: Any = getattr(url, "_uri_reference", None)
    if hasattr(parts, "_replace") and isinstance(getattr(parts, "query", None), str | None):
        query = parts.query
        keyed = httpx.URL.__new__(httpx.URL)
        keyed._uri_reference = parts._replace(  # noqa: SLF001 -- see above
            query=f"{query}&{key_query}" if query else key_query
        )
        return keyed
    text = str(url)  # pragma: no cover -- another httpx
    return httpx.URL(f"{text}&{key_query}" if "?" in text else f"{text}?{key_query}")


def _with_key(request: httpx.Request, key_query: str) -> httpx.Request:
    """A copy of *request* whose query string ends with *key_query*."""
    return httpx.Request(
        request.method,
        _keyed_url(request.url, key_query),
        headers=request.headers,
        stream=request.stream,
        extensions=request.extensions,
    )


class _KeyInQuery(Generic[TransportT]):
    """Holds the inner transport and the ``key=...`` to add; its repr hides the key."""

    def __init__(self, inner: TransportT, key: str) -> None:
        self._inner: TransportT = inner
        self._key = _key_query(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


class _KeyTransport(_KeyInQuery[httpx.BaseTransport], httpx.BaseTransport):
    """Adds ``key=`` to each request as it leaves, so httpx never logs or keeps it."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(_with_key(request, self._key))

    def close(self) -> None:
        self._inner.close()


class _AsyncKeyTransport(_KeyInQuery[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport):
    """The async :class:`_KeyTransport`."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(_with_key(request, self._key))

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- argument checks ---------------------------------------------------------------------------


#: Balances within which answers of one server millisecond are told apart (``server_order``).
_ORDER_SPAN = 1000


def server_order(envelope: Envelope) -> float:
    """The envelope's server time in seconds, answers of one millisecond ordered by balance.

    The ``as_of`` of a sync: a shared bucket ignores one older than the last it
    adopted. Within one millisecond only spending changes a balance (between two
    refill steps), so the lower balance is the later answer: it gets the later
    fraction of the millisecond (balances beyond +-``_ORDER_SPAN`` share the
    ends), as :meth:`Envelope.newer_than` orders them within one process.
    Without it, two processes' answers of one millisecond were both adopted, the
    higher balance last when it arrived last: the bucket then counted tokens the
    account had spent. A refill step inside the millisecond makes the later
    answer the higher one: taking the lower then only under-counts until the
    next answer.
    """
    tokens = min(max(envelope.tokens_left, -_ORDER_SPAN), _ORDER_SPAN)
    fraction = 0.99 * (_ORDER_SPAN - tokens) / (2 * _ORDER_SPAN)
    return (envelope.timestamp_ms + fraction) / 1000


def _check_seconds(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ValueError(
            f"{name} must be a finite number {'>' if positive else '>='} 0, got {value!r}"
        )
    return number


def _check_asins(asins: str | Iterable[str]) -> list[str]:
    items: Iterable[object] = [asins] if isinstance(asins, str) else asins
    if not isinstance(items, Iterable):
        raise TypeError(f"asins must be an ASIN or an iterable of ASINs, got {asins!r}")
    out: list[str] = []
    seen: set[str] = set()
    for i, asin in enumerate(items):
        if not isinstance(asin, str):
            raise TypeError(f"asins[{i}] must be a str, got {asin!r}")
        if not _ASIN.fullmatch(asin):
            raise ValueError(f"asins[{i}] must be 10 letters or digits, got {asin!r}")
        code = asin.upper()
        if code not in seen:
            seen.add(code)
            out.append(code)
    return out


def product_params(
    *,
    offers: int | None = None,
    stats: int | None = None,
    buybox: bool = False,
    history: bool = True,
    update: int | None = None,
    rating: bool = False,
    days: int | None = None,
    stock: bool = False,
    only_live_offers: bool = False,
) -> dict[str, str]:
    """The query parameters of ``products()``'s options, each checked (the ingestor's too).

    Raises:
        TypeError, ValueError: An option has the wrong type or range (named in the
            message); an unknown option is a :class:`TypeError` naming it.
    """
    params: dict[str, str] = {}
    if offers is not None:
        params["offers"] = str(_check_int("offers", offers, low=20, high=100))
    if stats is not None:
        params["stats"] = str(_check_int("stats", stats, low=1))
    params["buybox"] = "1" if _check_bool("buybox", buybox) else "0"
    params["history"] = "1" if _check_bool("history", history) else "0"
    if update is not None:
        params["update"] = str(_check_int("update", update, low=-1))
    params["rating"] = "1" if _check_bool("rating", rating) else "0"
    if days is not None:
        params["days"] = str(_check_int("days", days, low=1))
    # Sent only when asked for: an older server (or emulator) may not know them.
    if _check_bool("stock", stock):
        params["stock"] = "1"
    if _check_bool("only_live_offers", only_live_offers):
        params["only_live_offers"] = "1"
    return params


@attrs.frozen
class _Call:
    """One HTTP request to make: where, what, and how it is priced.

    A call of the rest of the API (:mod:`._endpoints`) has no learned *kind*: it
    is booked at its *bound* (Keepa's documented most), and settled to
    ``tokensConsumed`` or, without one, to *settle* of the answer's body.
    """

    path: str
    params: dict[str, str]
    kind: RequestKind | None
    units: int
    bound: float | None = None
    settle: Callable[[Mapping[str, Any]], float] | None = attrs.field(default=None, repr=False)


@attrs.frozen
class _Answer:
    """What came back: the HTTP status, the envelope (if readable and real) and the body.

    ``error`` is Keepa's ``error`` object, read even from a body without an envelope.
    """

    status: int
    envelope: Envelope | None
    body: Mapping[str, Any] | None
    problem: KeepaProtocolError | None
    error: ErrorInfo | None = None


# -- what both clients share -------------------------------------------------------------------


class _Base(Generic[BucketT]):
    """Arguments, request building, answer classification and bookkeeping (no I/O).

    Both clients take its arguments; each opens its own locks and HTTP client
    (:meth:`_open`) and checks that *bucket* is of its kind (:attr:`_BUCKET`).
    """

    _BUCKET: ClassVar[type[TokenBucket | AsyncTokenBucket]]

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        domain: int = 1,
        bucket: BucketT | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
        capacity: float | None = None,
        refill_step: float = REFILL_STEP,
        max_retries: int = 4,
        max_token_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        status_interval: float = 60.0,
        on_event: EventHook | None = None,
    ) -> None:
        _check_bucket(bucket, self._BUCKET)
        if api_key is None:
            api_key = os.environ.get(ENV_KEY)
            if not api_key:
                raise ValueError(f"no Keepa API key: pass api_key= or set {ENV_KEY}")
        if not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str, got a {type(api_key).__name__}")
        if not api_key:
            raise ValueError(
                f"api_key must not be empty: pass the key, or api_key=None to read {ENV_KEY}"
            )
        self._key = api_key
        keep_key_out_of_logs(api_key)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self._base_url = base_url.rstrip("/")
        _check_int("domain", domain)
        if domain not in DOMAINS:
            raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {domain!r}")
        self._domain = domain
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a tokenbudget Clock, got {clock!r}")
        self._clock: Clock = MonotonicClock() if clock is None else clock
        self._timeout = _check_seconds("timeout", timeout, positive=True)
        self._capacity = (
            None if capacity is None else _check_seconds("capacity", capacity, positive=True)
        )
        self._refill_step = _check_seconds("refill_step", refill_step, positive=True)
        self._max_retries = _check_int("max_retries", max_retries, low=0)
        self._max_token_retries = _check_int("max_token_retries", max_token_retries, low=0)
        self._backoff = _check_seconds("backoff", backoff)
        self._max_backoff = _check_seconds("max_backoff", max_backoff)
        self._status_interval = _check_seconds("status_interval", status_interval)
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, got {on_event!r}")
        self._on_event = on_event
        self._cost = CostModel()
        self._random = random.Random()  # noqa: S311 -- jitter, not cryptography
        self._newest: Envelope | None = None
        #: The client's clock when the newest envelope arrived.
        self._newest_at: float = -math.inf
        self._rate: float | None = None
        #: A changed refill rate passed with every sync until a sync is adopted (a shared
        #: bucket ignores a stale sync, and with it its rate).
        self._new_rate: Rate | None = None
        self._inflight = 0
        #: What this client's requests on the wire may cost beyond their bookings (their
        #: kind's list price above the estimate), by booking id, and in all.
        self._beyond: dict[int, float] = {}
        self._beyond_all = 0.0
        #: A request whose cost is not yet learned is on the wire: the others wait for it.
        self._alone = False
        self._bucket: BucketT | None = bucket
        #: The parsed URL of each path (httpx's components), or False: parse each URL anew.
        self._parsed: dict[str, Any] = {}
        self._open()

    def _open(self) -> None:  # pragma: no cover -- each client opens its own
        """Create the client's locks and HTTP client (called last by ``__init__``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, domain={self._domain!r}, "
            f"api_key=<redacted>)"
        )

    @property
    def domain(self) -> int:
        """The marketplace the client asks about (Keepa's domain id)."""
        return self._domain

    @property
    def base_url(self) -> str:
        """The API's address."""
        return self._base_url

    @property
    def clock(self) -> Clock:
        """The clock every wait of the client runs on."""
        return self._clock

    @property
    def cost_model(self) -> CostModel:
        """The cost model the client estimates with (learned from ``tokensConsumed``)."""
        return self._cost

    # -- requests ------------------------------------------------------------------------------

    def _product_calls(
        self,
        asins: str | Iterable[str],
        *,
        offers: int | None,
        stats: int | None,
        buybox: bool,
        history: bool,
        update: int | None,
        rating: bool,
        days: int | None,
        stock: bool,
        only_live_offers: bool,
    ) -> list[_Call]:
        codes = _check_asins(asins)
        params: dict[str, str] = {"domain": str(self._domain)}
        params.update(
            product_params(
                offers=offers,
                stats=stats,
                buybox=buybox,
                history=history,
                update=update,
                rating=rating,
                days=days,
                stock=stock,
                only_live_offers=only_live_offers,
            )
        )
        kind = RequestKind.product(
            offers=offers, buybox=buybox, rating=rating, stock=stock, update=update
        )
        size = MAX_ASINS if offers is None else MAX_ASINS_WITH_OFFERS
        calls = []
        for start in range(0, len(codes), size):
            chunk = codes[start : start + size]
            calls.append(_Call("/product", {**params, "asin": ",".join(chunk)}, kind, len(chunk)))
        return calls

    def _deal_call(self, selection: DealQuery | Mapping[str, Any], page: int) -> _Call:
        query = DealQuery.from_mapping(selection)
        _check_int("page", page, low=0)
        query = query.with_page(page)
        data = query.to_selection()
        data.setdefault("domainId", self._domain)
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        return _Call("/deal", {"selection": text}, RequestKind.deal(), 1)

    def _url(self, call: _Call) -> httpx.URL:
        """*call*'s whole URL, its query encoded as httpx encodes ``params=``.

        httpx parses a URL given as text by scanning each of its characters in
        Python; the client parses the URL of each path once and gives each
        request a copy of it with the request's query (encoded here: nothing in
        it for httpx to check or quote). A path and ``params=`` would have httpx
        parse it three times, on every request.
        """
        query = urlencode(call.params) if call.params else None
        parts: Any = self._parsed.get(call.path)
        if parts is None:
            # httpx's parsed components (private: an httpx without them parses each URL anew)
            parts = getattr(httpx.URL(self._base_url + call.path), "_uri_reference", None)
            if not hasattr(parts, "_replace"):  # pragma: no cover -- another httpx
                parts = False
            self._parsed[call.path] = parts
        if parts is False or (query is not None and len(query) > _LONG_QUERY):
            # Another httpx, or a query long enough for httpx's limit on a URL's length.
            return httpx.URL(self._base_url + call.path + ("" if query is None else "?" + query))
        url = httpx.URL.__new__(httpx.URL)
        url._uri_reference = parts._replace(query=query)  # noqa: SLF001 -- see above
        return url

    def _read(self, response: httpx.Response) -> _Answer:
        """Classify nothing yet: decode the body and its envelope, never raising."""
        problem: KeepaProtocolError | None = None
        envelope: Envelope | None = None
        body: Mapping[str, Any] | None = None
        decoded: object = None
        try:
            decoded = decode_body(response.content)
            envelope = parse_envelope(decoded)
            assert isinstance(decoded, Mapping)  # noqa: S101 -- parse_envelope checked it
            body = decoded
        except KeepaProtocolError as exc:
            problem = exc
        error = envelope.error if envelope is not None else parse_error(decoded)
        status = response.status_code
        if envelope is not None and status != 200 and not envelope.carries_token_figures:
            # A zeroed envelope (tokensLeft 0, refillRate 0) of an error answer reports no
            # account: it must not become the bucket's balance or the token status.
            log.debug("HTTP %d with a zeroed envelope: not adopted", status)
            envelope = None
        return _Answer(status, envelope, body, problem, error)

    # -- the bucket ----------------------------------------------------------------------------

    def _config_for(self, envelope: Envelope) -> BucketConfig:
        rate = envelope.refill_rate
        if rate <= 0:
            raise KeepaAuthError(
                "the account reports no token refill (refillRate 0): no plan on this key?",
                endpoint="/token",
                status=200,
            )
        capacity = self._capacity if self._capacity is not None else CAPACITY_MINUTES * rate
        return BucketConfig(
            capacity,
            Rate.per_minute(rate),
            burst_threshold=min(1.0, capacity),
            min_threshold=min(1.0, capacity),
            deficit=DeficitRule.while_positive(math.inf),
            refill_step=self._refill_step,
            # Admitted bookings count as on the wire until settled, for as long as a request
            # may take (connect + write + read, each up to the timeout): a sync subtracts them.
            in_flight=self._in_flight,
        )

    def _sync_args(self, answer: _Answer) -> _SyncArgs | None:
        """The arguments of ``bucket.sync`` for the answer's envelope, or None (none, or older).

        The last one is ``as_of``: the envelope's server time, in seconds, so
        that a bucket shared by processes ignores an answer overtaken by a
        newer one another process synced already.
        """
        envelope = answer.envelope
        if envelope is None:
            return None
        status = answer.status
        # An envelope stamped older than the newest one was overtaken on the way, unless it
        # arrives more than a request can take after that one was adopted: then the newest
        # one's stamp was wrong (far in the future), and it must not blind the client.
        overtaken = not envelope.newer_than(self._newest) and (
            self._clock.now() - self._newest_at <= self._wire_window
        )
        if not overtaken:
            self._newest = envelope
            self._newest_at = self._clock.now()
        elif status == 429:
            # A refusal means "not now" whatever its stamp: the balance is at most zero.
            log.debug("HTTP 429 stamped %d ms, older than the newest answer: synced all the same",
                      envelope.timestamp_ms)  # fmt: skip
        else:
            log.debug(
                "envelope of %d ms is older than one already synced (%d ms): not synced",
                envelope.timestamp_ms,
                self._newest.timestamp_ms if self._newest else 0,
            )
            return None
        tokens = envelope.tokens_left
        if status == 429 and tokens > 0:
            tokens = 0.0  # Keepa refuses only at zero or below: it has spent more since
        if envelope.refill_rate > 0:
            if self._rate is not None and envelope.refill_rate != self._rate:
                self._new_rate = Rate.per_minute(envelope.refill_rate)
            self._rate = envelope.refill_rate
        # A refusal is adopted whatever its stamp (no as_of): "not now" is true now, even
        # when another answer stamped later (of this process or another) was adopted.
        as_of = None if status == 429 else server_order(envelope)
        return tokens, envelope.refill_in, self._new_rate, as_of

    def _synced(self, adopted: bool | None) -> None:
        """After a sync: a changed rate, once adopted, is passed no more."""
        if adopted:
            self._new_rate = None

    def _shared(self, bucket: TokenBucket | AsyncTokenBucket) -> bool:
        """Whether *bucket* may be shared with other processes (its backend is not memory)."""
        return type(bucket._backend) is not MemoryBackend  # noqa: SLF001 -- same distribution

    @property
    def _wire_window(self) -> float:
        """How long an answer may be on its way: the bucket's ``in_flight``, at least ours.

        A bucket of the user's (shared through Redis, on a fast test clock) may say a
        request stays on the wire longer than three timeouts: an answer overtaken within
        that window is stale, never adopted.
        """
        bucket = self._bucket
        if bucket is None:
            return self._in_flight
        return max(self._in_flight, bucket.config.in_flight)

    @property
    def _in_flight(self) -> float:
        """The longest a request may take (connect, write, read): the bucket's ``in_flight``."""
        return 3 * self._timeout

    def _refusal_wait(self, answer: _Answer) -> float:
        """Seconds until the refill a 429 implies makes the balance positive again.

        From its envelope, whatever its stamp: ``refillIn`` to the next step, plus
        a step for every step's worth of debt. Without an envelope (or a rate), one step.
        """
        envelope = answer.envelope
        if envelope is None or envelope.refill_rate <= 0:
            return self._refill_step
        per_step = envelope.refill_rate * self._refill_step / 60.0
        steps = math.floor(max(0.0, -envelope.tokens_left) / per_step) + 1
        return max(0.0, envelope.refill_in) + (steps - 1) * self._refill_step

    def _status_is_fresh(self, max_age: float | None) -> bool:
        age = self._status_interval if max_age is None else max_age
        return self._newest is not None and self._clock.now() - self._newest_at < age

    def _projected_status(self) -> TokenStatus:
        """The newest envelope's status, projected to now on the client's clock.

        ``refill_in`` counts down and ``timestamp`` moves on; the refill steps
        passed since are added to ``tokens_left`` (up to the default bucket's
        capacity). Requests on the wire are not in it: they are in no envelope yet.
        """
        env = self._newest
        assert env is not None  # noqa: S101 -- called when fresh
        age = max(0.0, self._clock.now() - self._newest_at)
        tokens, refill_in = env.tokens_left, env.refill_in - age
        if refill_in <= 0:
            steps = 1 + math.floor(-refill_in / self._refill_step)
            refill_in = self._refill_step - (-refill_in % self._refill_step)
            cap = (
                self._capacity if self._capacity is not None else CAPACITY_MINUTES * env.refill_rate
            )
            added = steps * env.refill_rate * self._refill_step / 60.0
            tokens = max(tokens, min(cap, tokens + added))
        return attrs.evolve(
            env.status(),
            tokens_left=tokens,
            refill_in=refill_in,
            timestamp=env.timestamp + dt.timedelta(seconds=age),
        )

    def _backoff_delay(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter, for the *attempt*-th retry (from 1)."""
        ceiling = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    def _too_long(
        self, endpoint: str, cost: float, wait: float, *, limit: bool = False
    ) -> KeepaTokenError | None:
        """The error for a booked wait too long, or None if it is not.

        Too long: longer than :data:`MAX_WAIT`, or (*limit*) past the caller's wait limit.
        """
        if wait <= MAX_WAIT and not limit:
            return None
        env = self._newest
        tokens_left = None if env is None else env.tokens_left
        longest = "the caller's wait limit" if limit else f"MAX_WAIT ({MAX_WAIT:.0f} s)"
        return KeepaTokenError(
            f"{endpoint}: {cost:g} tokens would be there only in {wait:.0f} s, more than "
            f"{longest}; the account last reported tokensLeft={tokens_left}",
            endpoint=endpoint,
            status=None,
            attempts=0,
            tokens_left=tokens_left,
            refill_in=None if env is None else env.refill_in,
            wait=wait,
        )

    # -- answers -------------------------------------------------------------------------------

    def _estimate(self, call: _Call) -> float:
        """What *call* is booked at: its bound, or the cost model's estimate (0: free)."""
        if call.bound is not None:
            return call.bound
        return 0.0 if call.kind is None else self._cost.estimate(call.kind, call.units)

    def _consumed(
        self, answer: _Answer | None, estimate: float, call: _Call | None = None
    ) -> float:
        if answer is not None and answer.envelope is not None:
            consumed = answer.envelope.tokens_consumed
            if consumed is not None:
                return consumed
            if answer.status == 429:
                return 0.0
        settle = None if call is None else call.settle
        if settle is not None and answer is not None and answer.status == 200 and answer.body:
            return settle(answer.body)  # Keepa's documented cost of this answer
        return estimate

    def _endpoint_call(self, endpoint: EndpointCall[Any]) -> _Call:
        """The :class:`_Call` of an endpoint of the rest of the API."""
        return _Call(
            endpoint.path,
            dict(endpoint.params),
            None,
            0,
            bound=endpoint.bound,
            settle=endpoint.cost,
        )

    def _error_for(self, call: _Call, answer: _Answer, attempts: int) -> KeepaError:
        """The error to raise for a final, failed answer."""
        status = answer.status
        detail = ""
        error = answer.error
        if error is not None:
            detail = ": " + error.describe()
        elif answer.problem is not None:
            detail = f" ({answer.problem})"
        detail = _redact(detail, self._key)
        where = f"{call.path} answered HTTP {status}"
        kw: dict[str, Any] = {"endpoint": call.path, "status": status, "attempts": attempts}
        if error is not None:
            kw.update(
                error_type=_redact(error.type, self._key) or None,
                error_message=_redact(error.message, self._key) or None,
                error_details=_redact(error.details, self._key) or None,
            )
        if status in (401, 402, 403):
            return KeepaAuthError(f"{where}: the API key was refused{detail}", **kw)
        if status == 429:
            env = answer.envelope
            return KeepaTokenError(
                f"{where} (not enough tokens) {attempts} times{detail}",
                tokens_left=None if env is None else env.tokens_left,
                refill_in=None if env is None else env.refill_in,
                **kw,
            )
        if 300 <= status < 400:
            # Keepa does not redirect API calls; following one would send the key elsewhere
            # (an http:// base URL redirected to https:// included): never followed.
            return KeepaProtocolError(
                f"{where}, a redirect: Keepa does not redirect API calls, and following it "
                "would carry the key; not followed (check base_url: https://api.keepa.com)",
                **kw,
            )
        if status >= 500:
            return KeepaServerError(f"{where} {attempts} times{detail}", **kw)
        if 400 <= status < 500:
            return KeepaRequestError(f"{where}: the request was refused{detail}", **kw)
        return KeepaProtocolError(f"{where}: not an answer Keepa gives{detail}", **kw)

    def _payload(self, call: _Call, answer: _Answer, attempts: int) -> Mapping[str, Any]:
        if answer.problem is not None or answer.body is None:
            raise KeepaProtocolError(
                _redact(
                    f"{call.path} answered HTTP 200 with a bad body: {answer.problem}", self._key
                ),
                endpoint=call.path,
                status=answer.status,
                attempts=attempts,
            )
        return answer.body

    def _products_of(self, call: _Call, body: Mapping[str, Any]) -> list[Product]:
        raw = body.get("products")
        if not isinstance(raw, list):
            raise KeepaProtocolError(
                f"{call.path} answered without a 'products' list, got {type(raw).__name__}",
                endpoint=call.path,
                status=200,
            )
        try:
            return [Product.from_raw(item) for item in raw]
        except KeepaProtocolError as exc:
            exc.endpoint = call.path
            raise

    def _deal_page_of(self, call: _Call, body: Mapping[str, Any], page: int) -> DealPage:
        raw = body.get("deals")
        rows = raw.get("dr") if isinstance(raw, Mapping) else None
        if not isinstance(raw, Mapping) or not isinstance(rows, list):
            raise KeepaProtocolError(
                f"{call.path} answered without a 'deals' object holding a 'dr' list",
                endpoint=call.path,
                status=200,
            )
        try:
            deals = [Deal.from_raw(item) for item in rows]
        except KeepaProtocolError as exc:
            exc.endpoint = call.path
            raise
        ids = raw.get("categoryIds")
        category_ids = (
            tuple(i for i in ids if isinstance(i, int) and not isinstance(i, bool))
            if isinstance(ids, list)
            else ()
        )
        return DealPage(deals, page, category_ids, raw)

    def _learn(self, call: _Call, answer: _Answer, products: int | None = None) -> None:
        env = answer.envelope
        if call.kind is None or env is None or env.tokens_consumed is None:
            return
        units = call.units if products is None else products
        self._cost.observe(call.kind, units, env.tokens_consumed)

    # -- the retry loop's decisions (both clients; no I/O) -------------------------------------

    def _exchange(self, call: _Call) -> Exchange:
        """The retry state of one call: its booking, what it may cost beyond, its retry budgets."""
        estimate = self._estimate(call)
        kind = call.kind
        return Exchange(
            self._max_retries,
            self._max_token_retries,
            estimate=estimate,
            alone=kind is not None and not self._cost.is_known(kind),
            beyond=0.0 if kind is None else self._cost.most(kind, call.units) - estimate,
        )

    def _after_no_answer(
        self, exchange: Exchange, call: _Call, failure: str, waited: float
    ) -> BackOff:
        """Log a try that got no answer; the backoff before the next, or raise (retries spent)."""
        self._log(
            call,
            estimate=exchange.estimate,
            answer=None,
            waited=waited,
            attempt=exchange.attempt,
            note=failure,
        )
        decision = exchange.no_answer()
        if isinstance(decision, GiveUp) or capped():
            raise KeepaTransportError(
                f"{call.path}: no answer after {exchange.attempt} attempts ({failure})"
                + ("; the caller's time is up" if capped() else ""),
                endpoint=call.path,
                attempts=exchange.attempt,
            )
        return decision

    def _after_answer(
        self, exchange: Exchange, call: _Call, answer: _Answer, waited: float
    ) -> Done | Resend | BackOff:
        """Log an answer; what to do next, or raise the error of a final one."""
        self._log(
            call, estimate=exchange.estimate, answer=answer, waited=waited, attempt=exchange.attempt
        )
        decision = exchange.answered(answer.status, envelope=answer.envelope is not None)
        if isinstance(decision, GiveUp):
            raise self._error_for(call, answer, exchange.attempt)
        return decision

    def _log(
        self,
        call: _Call,
        *,
        estimate: float,
        answer: _Answer | None,
        waited: float,
        attempt: int,
        note: str = "",
    ) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        env = answer.envelope if answer is not None else None
        log.debug(
            "%s status=%s estimated=%g consumed=%s tokens_left=%s waited=%.3f attempt=%d%s",
            call.path,
            "-" if answer is None else answer.status,
            estimate,
            "-" if env is None or env.tokens_consumed is None else f"{env.tokens_consumed:g}",
            "-" if env is None else f"{env.tokens_left:g}",
            waited,
            attempt,
            f" {note}" if note else "",
        )

    # -- the request logic, written once (see :mod:`.steps`; each client runs its steps) -------

    def _send_steps(self, call: _Call) -> Steps[_Answer]:
        """Send *call* within the budget, retrying as :class:`Exchange` decides; a 200 answer."""
        exchange = self._exchange(call)
        while True:
            exchange.start()
            booking: Any = None
            waited = 0.0
            if exchange.estimate > 0:
                booking, waited = yield partial(
                    self._book,
                    exchange.estimate,
                    call.path,
                    alone=exchange.alone,
                    beyond=exchange.beyond,
                )
            try:
                response = yield partial(self._get, call)
            except BaseException:
                yield partial(self._finish_anyway, booking, exchange.estimate)
                raise
            if isinstance(response, _NoAnswer):
                sent = exchange.estimate if response.sent else 0.0
                yield from self._finish_steps(booking, None, sent)
                backoff = self._after_no_answer(exchange, call, response.failure, waited)
                yield partial(self._sleep_gated, self._backoff_delay(backoff.retry))
                continue
            answer = self._read(response)
            consumed = self._consumed(answer, exchange.estimate, call)
            yield from self._finish_steps(booking, answer, consumed)
            decision = self._after_answer(exchange, call, answer, waited)
            if isinstance(decision, Done):
                return answer
            if isinstance(decision, BackOff):
                # On the gate, like a booked wait: on a clock shared with the server (a
                # ManualClock) a sleep moves time for everyone, and must not move it past
                # requests still on the wire.
                yield partial(self._sleep_gated, self._backoff_delay(decision.retry))
                continue
            bucket = self._bucket
            if decision.unknown_balance and bucket is not None:
                yield partial(bucket.sync, 0.0)  # no envelope: the balance is at most zero
            if booking is None:  # nothing booked (/token): no booking waits for the refill
                wait = self._refusal_wait(answer)
                if wait > MAX_WAIT:
                    raise self._error_for(call, answer, exchange.attempt)
                yield partial(self._sleep_gated, wait)

    def _book_steps(self, cost: float, endpoint: str, *, alone: bool) -> Steps[_Booked]:
        """Book *cost*; wait (for the requests on the wire, then the bucket) if it must.

        Run by the client's ``_book``, on the gate. A request whose kind's cost is not
        learned yet goes *alone* (its true cost may be far above its estimate): it is
        booked once the requests on the wire are answered, and the requests after it
        wait for its answer before they book.
        """
        if alone or self._alone:
            yield self._wait_for_wire
        bucket = self._bucket
        if bucket is None:
            bucket = yield from self._ready_bucket_steps()
        # A bucket of yours may admit less at once than a request may cost: book the most
        # it admits (the answer settles the true cost), as Keepa runs it while positive.
        cost = min(cost, bucket.config.max_cost)
        try:
            booking = yield partial(bucket.reserve, cost, timeout=0.0)
        except AcquireTimeout:
            booking = None
        if booking is None:
            return (yield from self._wait_and_book_steps(bucket, cost, endpoint))
        # The send gate: a request that takes the account into debt goes only once the
        # requests booked before it are answered (Keepa charges in arrival order: sent at
        # once, it could overtake them and leave them to meet a refusal). Into debt also
        # when this client's requests on the wire may cost more than they were booked at
        # (an estimate is the highest of the last answers, not a bound): sent at once, it
        # could reach Keepa after them and find the account spent.
        if _into_debt(_balance_left(booking) - self._beyond_all, bucket.config):
            try:
                yield self._wait_for_wire
                yield from self._wait_for_others_steps(bucket, booking)
                payable = yield from self._payable_steps(bucket, booking)
            except BaseException:
                yield booking.cancel
                raise
            if not payable:
                # Their answers (true costs) left less than the booking was admitted at:
                # Keepa would refuse it now. Book it again, for when the refill pays it.
                yield from self._give_back_steps(booking)
                return (yield from self._wait_and_book_steps(bucket, cost, endpoint))
        return booking, 0.0

    def _payable_steps(self, bucket: BucketT, booking: Any) -> Steps[bool]:
        """Whether Keepa runs *booking*'s request now, by the bucket once the wire is answered.

        Called by the send gate once this client's requests booked before it are
        answered: their envelopes and true costs are in the bucket, which is then
        exact for a bucket of this client alone. The balance before the booking
        (net of every other booking) must be one at which Keepa runs a request.
        On a shared bucket other processes' bookings made after this one are in
        the balance too, and they may wait for this one: not checked there.
        """
        if self._shared(bucket):
            return True
        after = yield bucket.snapshot
        return not _into_debt(after.tokens + booking.cost, bucket.config)

    def _give_back_steps(self, booking: Any) -> Steps[None]:
        """Give *booking*'s cost back: cancelled, or (its time passed) settled to zero."""
        if not (yield booking.cancel):
            yield partial(booking.settle, 0.0)

    def _wait_and_book_steps(self, bucket: BucketT, cost: float, endpoint: str) -> Steps[_Booked]:
        """Book *cost* for later and sleep until its time (in :meth:`_book_steps`).

        On a shared bucket, a booking whose refill slowed down while it waited
        is booked again, and one that takes the account into debt waits for
        the requests booked before it by any process.
        """
        waited = 0.0
        while True:
            yield self._wait_for_wire
            if not self._status_is_fresh(None):
                yield from self._status_steps(0.0)  # reconcile before a long wait
            booking = yield partial(bucket.reserve, cost)
            delay: float = booking.delay
            too_long = self._too_long(endpoint, cost, delay, limit=past_wait_limit(delay))
            if too_long is not None:
                yield booking.cancel
                raise too_long from None
            shared = self._shared(bucket)
            rate = (yield bucket.snapshot).rate if shared else 0.0
            try:
                yield partial(self._sleep, delay)
                waited += delay
                if shared:
                    after = yield bucket.snapshot
                    if after.rate < rate:
                        # The account's refill slowed down while this booking waited
                        # (another process synced the new rate): its time was computed
                        # at the old rate. Give it back and book again.
                        if not (yield booking.cancel):  # due now: its cost comes back
                            yield partial(booking.settle, 0.0)
                        continue
                    if _into_debt(after.tokens, bucket.config):
                        yield from self._wait_for_others_steps(bucket, booking)
            except BaseException:
                yield booking.cancel
                raise
            return booking, waited

    def _wait_for_others_steps(self, bucket: BucketT, booking: Any) -> Steps[None]:
        """On a shared bucket, wait until no request booked before *booking* is on the wire.

        Other processes' requests count too: the bucket keeps every process's
        bookings in flight until they are settled (or their ``in_flight``
        window ends; a process that died never settles). Polled on real time.
        """
        if not self._shared(bucket):
            return
        deadline = time.monotonic() + _GATE_WAIT * self._timeout
        pause = _GATE_PAUSE
        while True:
            first = (yield bucket.snapshot).first_in_flight
            if first == 0 or first >= booking.booking_id or time.monotonic() > deadline:
                return
            yield partial(self._pause, pause)
            pause = min(2 * pause, _GATE_MAX_PAUSE)

    def _finish_steps(self, booking: Any, answer: _Answer | None, consumed: float) -> Steps[None]:
        """Settle the booking, sync the bucket from the envelope, then leave the wire."""
        if booking is not None:
            count_spent(consumed)  # spent on the server, whatever happens to the booking
        envelope = None if answer is None else answer.envelope
        if envelope is not None and self._bucket is None:
            try:
                yield partial(self._ensure_bucket, envelope)
            except BaseException:
                if booking is not None:
                    yield partial(self._leave_wire, booking)
                raise
        # One answer at a time: syncs in the order of the envelopes. The step leaves the
        # wire once it is done, or failed (one step: one hold of the client's state lock).
        yield partial(self._settle_and_leave, booking, answer, consumed)

    def _settlement(
        self, booking: Any, answer: _Answer | None, consumed: float
    ) -> tuple[Any, _SyncArgs | None, bool] | None:
        """How to settle *booking* to *consumed* and sync from *answer*, or None: nothing to do.

        The bucket, the sync's arguments and whether the sync goes first, for the
        bucket's ``_settle_and_sync`` (one backend call in memory). Called in
        answer order (by the client's ``_settle_and_leave``): it adopts the
        envelope as the newest.
        """
        args = None if answer is None else self._sync_args(answer)
        bucket = self._bucket
        if bucket is None:
            return None  # nothing was booked (a booking is the bucket's), nothing to sync
        # On a shared bucket the answer's sync goes first, while its booking is still on the
        # wire: settled first, the booking would leave the wire before the answer is adopted,
        # and another process's answer stamped earlier (which does not count it) could be
        # adopted in between. The sync subtracts the booking as on the wire although the
        # answer's count includes it: the count is given with its cost added back, and the
        # settle then charges the true cost.
        shared = self._shared(bucket)
        args = _own_request_back(args, booking, consumed, bucket, shared=shared)
        if booking is None and args is None:
            return None
        return bucket, args, shared

    def _ready_bucket_steps(self) -> Steps[BucketT]:
        """The bucket, built from a free ``/token`` call if need be."""
        if self._bucket is None:
            yield from self._status_steps(0.0)
        assert self._bucket is not None  # noqa: S101 -- built by the status call
        return self._bucket

    def _status_steps(self, max_age: float | None) -> Steps[TokenStatus]:
        if self._status_is_fresh(max_age) and self._bucket is not None:
            return self._projected_status()
        call = _Call("/token", {}, None, 0)
        answer = yield from self._send_steps(call)
        self._payload(call, answer, 1)
        assert answer.envelope is not None  # noqa: S101 -- _payload checked it
        return answer.envelope.status()

    def _product_steps(self, calls: list[_Call]) -> Steps[list[Product]]:
        products: list[Product] = []
        for call in calls:
            answer = yield from self._send_steps(call)
            found = self._products_of(call, self._payload(call, answer, 1))
            self._learn(call, answer, len(found))
            products.extend(found)
        return products

    def _deal_steps(self, call: _Call, page: int) -> Steps[DealPage]:
        answer = yield from self._send_steps(call)
        result = self._deal_page_of(call, self._payload(call, answer, 1), page)
        self._learn(call, answer)
        return result

    def _endpoint_steps(self, endpoint: EndpointCall[T]) -> Steps[T]:
        """A call of the rest of the API (:mod:`.endpoint_methods`); its typed result."""
        call = self._endpoint_call(endpoint)
        answer = yield from self._send_steps(call)
        return endpoint.read(self._payload(call, answer, 1))

    def _new_bucket(self, envelope: Envelope) -> tuple[BucketConfig, float]:
        """The default bucket's config and balance, from the first envelope."""
        config = self._config_for(envelope)
        return config, min(config.capacity, envelope.tokens_left)

    def _on_wire(self, booking: Any, *, alone: bool, beyond: float) -> None:
        """Count a request booked, to be sent (under the client's state lock).

        *beyond*: what it may cost beyond its booking, kept as room until it is answered.
        """
        self._inflight += 1
        self._alone = self._alone or alone
        if beyond > 0.0:
            self._beyond[booking.booking_id] = beyond
            self._beyond_all += beyond

    def _off_wire(self, booking: Any) -> bool:
        """Count *booking*'s request answered (under the client's state lock); whether none is left.

        Only then may a request waiting for the wire go (no need to wake it before).
        """
        self._inflight -= 1
        self._alone = self._alone and self._inflight > 0
        if self._beyond:
            self._beyond.pop(booking.booking_id, None)
            # Summed again rather than subtracted: no rounding left over once none is left.
            self._beyond_all = sum(self._beyond.values())
        return self._inflight == 0

    # -- the steps each client runs its own way (sync: called; async: awaited) -----------------
    # (declared here for the logic above; each client defines them)

    _book: Callable[..., Any]
    _get: Callable[[_Call], Any]
    _finish_anyway: Callable[[Any, float], Any]
    _sleep_gated: Callable[[float], Any]
    _sleep: Callable[[float], Any]
    _pause: Callable[[float], Any]
    _wait_for_wire: Callable[[], Any]
    _ensure_bucket: Callable[[Envelope], Any]
    _settle_and_leave: Callable[..., Any]
    _leave_wire: Callable[[Any], Any]


#: The longest a request into debt waits for other processes' requests booked before it, in
#: request timeouts (their in-flight window is three: connect, write, read).
_GATE_WAIT: Final = 3.0
#: The first and the longest pause between two looks at a shared bucket's requests in flight.
_GATE_PAUSE: Final = 0.001
_GATE_MAX_PAUSE: Final = 0.02


_SyncArgs = tuple[float, float, Rate | None, float | None]
#: A booking (a Reservation or an AsyncReservation) and the seconds it waited.
_Booked = tuple[Any, float]


def _own_request_back(
    args: _SyncArgs | None,
    booking: Reservation | AsyncReservation | None,
    consumed: float,
    bucket: TokenBucket | AsyncTokenBucket | None,
    *,
    shared: bool,
) -> _SyncArgs | None:
    """The sync of a shared bucket made before its booking is settled: the count plus its cost.

    The booking is still on the wire when the answer's count is synced (see
    ``_finish``), so the sync subtracts it at its booked cost; the count
    already includes what Keepa charged for it (*consumed*), which is added
    back. The settle that follows charges *consumed* against the booked cost.
    Only while the bucket keeps bookings in flight; otherwise unchanged.
    """
    if args is None or booking is None or bucket is None or not shared:
        return args
    if bucket.config.in_flight <= 0:
        return args
    return (args[0] + consumed, args[1], args[2], args[3])


def _check_bucket(bucket: object, kind: type) -> None:
    if bucket is not None and not isinstance(bucket, kind):
        raise TypeError(f"bucket must be a {kind.__name__}, got {bucket!r}")


def _into_debt(tokens: float, config: BucketConfig) -> bool:
    """Whether a balance of *tokens* (a booking made) is one at which Keepa refuses the next."""
    return tokens <= 0 or tokens < config.min_threshold


def _balance_left(booking: Reservation | AsyncReservation) -> float:
    """The balance *booking*'s admission left, net of every booking (no second look needed)."""
    return booking._state.tokens  # noqa: SLF001 -- same distribution


@attrs.frozen
class _NoAnswer:
    """Why no answer came (redacted), and whether the request may have reached Keepa."""

    failure: str
    sent: bool = True


def _no_answer(exc: httpx.RequestError, key: str) -> _NoAnswer:
    """What a transport error tells: only its text (redacted) leaves, never the error.

    The httpx error holds the request that carried the key, so it must not
    become the context of ours. A request that never connected was not sent.
    """
    return _NoAnswer(
        _redact(f"{type(exc).__name__}: {exc}", key),
        sent=not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)),
    )


# -- the sync client ---------------------------------------------------------------------------


class KeepaClient(Endpoints, _Base[TokenBucket]):
    """A Keepa API client that keeps the account's token budget (it never needs an HTTP 429).

    Every request is booked on :attr:`bucket` before it is sent, at its
    estimated cost; the answer settles the booking to ``tokensConsumed`` and
    syncs the bucket from the envelope (``tokensLeft``, ``refillIn``,
    ``refillRate``), errors and 429 included. Thread-safe.

    Args:
        api_key: The key; ``None`` reads ``KEEPA_API_KEY``. It never appears in
            a repr, a log record, an error or a logged URL.
        base_url: The API's address (in tests, the emulator's
            :attr:`~tokenbudget_keepa.testing.KeepaEmulator.url`).
        domain: The marketplace (1 ``.com``, 3 ``.de``, …).
        bucket: The :class:`~tokenbudget.TokenBucket` to spend from (any
            backend: processes sharing one account share one Redis-backed
            bucket). ``None``: built from the first envelope (a free
            ``/token`` call) to model the account exactly: Keepa's deficit
            rule (a request runs while the balance is positive, whatever it
            costs), *capacity*, and a refill once a minute aligned to
            ``refillIn``.
        clock: The :class:`~tokenbudget.Clock` of every wait (a
            :class:`~tokenbudget.ManualClock` shared with the emulator
            simulates hours in seconds).
        timeout: Seconds one request may take, whole: connecting, sending and
            reading the answer (a server that trickles its answer a few bytes at a
            time is cut off at this deadline too, not only a silent one).
        capacity: The default bucket's capacity; ``None``: an hour of refill,
            ``60 x refillRate`` (Keepa's exact cap is not documented).
        refill_step: Seconds between the account's refill steps in the default
            bucket (Keepa: once a minute, not documented, so configurable).
        max_retries: Retries after a 5xx answer or a transport error (capped
            exponential backoff with jitter on *clock*). A backoff starts once
            the client's requests on the wire are answered, and the client's
            other requests wait behind it, as behind a booked wait: on a clock
            shared with the server, a sleep must not move time past them.
        max_token_retries: Retries after a 429 (each one waits as the synced
            bucket says). A wait longer than ``MAX_WAIT`` (a day: a balance
            absurdly deep in debt) raises :class:`KeepaTokenError` with its
            ``wait`` instead.
        backoff: The first backoff, in seconds (doubling up to *max_backoff*).
        max_backoff: The longest backoff, in seconds.
        status_interval: :meth:`token_status` answers from the last envelope
            when it is younger than this (seconds on *clock*): routine status
            checks never poll Keepa more often.
        on_event: Called with every :class:`~tokenbudget.Event` of the default
            bucket (admissions, waits, settles, syncs), as the core's
            ``on_event``; a bucket you pass has its own.

    .. versionadded:: 0.1.0
    """

    _BUCKET = TokenBucket

    def _open(self) -> None:
        self._gate = threading.RLock()  # re-entered by the thread holding it
        self._state = threading.Condition()
        self._init_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self._base_url,
            timeout=self._timeout,
            follow_redirects=False,  # a redirect would carry the key: see _error_for
            transport=_KeyTransport(with_deadlines(httpx.HTTPTransport()), self._key),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    @property
    def bucket(self) -> TokenBucket:
        """The bucket the client spends from (built from a free ``/token`` call if need be)."""
        return run(self._ready_bucket_steps())

    # -- public API ----------------------------------------------------------------------------

    def token_status(self, *, max_age: float | None = None) -> TokenStatus:
        """The account's token status (free: ``/token`` costs nothing).

        Answers from the newest envelope when it is younger than *max_age*
        seconds (default: the client's ``status_interval``), so that routine
        checks never poll Keepa; ``max_age=0`` always asks. An answer from the
        envelope is projected to now: ``refill_in`` counts down, ``timestamp``
        moves on and the refill steps passed since are added to ``tokens_left``.
        """
        if max_age is not None:
            _check_seconds("max_age", max_age)
        return self._drive(self._status_steps(max_age))

    def products(
        self,
        asins: str | Iterable[str],
        *,
        offers: int | None = None,
        stats: int | None = None,
        buybox: bool = False,
        history: bool = True,
        update: int | None = None,
        rating: bool = False,
        days: int | None = None,
        stock: bool = False,
        only_live_offers: bool = False,
    ) -> list[Product]:
        """Products by ASIN, in as many requests as Keepa's limits need (100; 50 with offers).

        Args:
            asins: One ASIN or an iterable of them (duplicates asked once).
            offers: Offers to fetch per product (20 to 100), at 6 tokens a page of 10
                offers found (instead of 1 a product).
            stats: Days of statistics (``stats`` on each product; free).
            buybox: Buy box data (+2 tokens a product; ignored with offers).
            history: The price history (``csv``; free).
            update: Refresh products older than this many hours (0 always: +1 a
                product updated within the hour; -1 never).
            rating: Rating and review count history (+1 a product whose rating
                data is fresh).
            days: Limit the history to the last *days* days.
            stock: Stock of the offers (``stock=1``; +2 a product whose stock data
                is fresh).
            only_live_offers: Only the live offers (``only_live_offers=1``; free).

        The cost model (``cost_model``) books each request before it is sent
        and learns from ``tokensConsumed``; the Keepa reference page has its rules
        and how it compares with real costs.

        Raises:
            TypeError, ValueError: A parameter has the wrong type or range
                (named in the message), before anything is sent.
            KeepaError: A request failed (see the error tree).
        """
        calls = self._product_calls(
            asins,
            offers=offers,
            stats=stats,
            buybox=buybox,
            history=history,
            update=update,
            rating=rating,
            days=days,
            stock=stock,
            only_live_offers=only_live_offers,
        )
        return self._drive(self._product_steps(calls))

    def deals(self, selection: DealQuery | Mapping[str, Any], *, page: int = 0) -> DealPage:
        """One page of deals (5 tokens); *selection* a :class:`DealQuery` or a mapping of one.

        *page* (from 0) is the page asked for, whatever page the selection
        names; the selection's ``domainId`` defaults to the client's domain.
        A page with fewer than 150 deals is the last one
        (:attr:`DealPage.is_last`).

        Raises:
            TypeError, ValueError: The selection is malformed (named in the
                message), before anything is sent.
            KeepaError: The request failed.
        """
        call = self._deal_call(selection, page)
        return self._drive(self._deal_steps(call, page))

    # -- the steps, run by calling them (see :mod:`.steps`) ------------------------------------

    _drive = staticmethod(run)

    def _call(self, endpoint: EndpointCall[T]) -> T:
        """Send a call of the rest of the API (:mod:`.endpoint_methods`); its typed result."""
        return run(self._endpoint_steps(endpoint))

    def _status(self, *, max_age: float | None) -> TokenStatus:
        return run(self._status_steps(max_age))

    def _finish(self, booking: Reservation | None, answer: _Answer | None, consumed: float) -> None:
        """Settle the booking, sync the bucket from the envelope, then leave the wire."""
        run(self._finish_steps(booking, answer, consumed))

    def _finish_anyway(self, booking: Reservation | None, estimate: float) -> None:
        """:meth:`_finish` after an exception in the middle of a request (the booking's whole)."""
        self._finish(booking, None, estimate)

    def _get(self, call: _Call) -> httpx.Response | _NoAnswer:
        """Send *call*: its answer, or why none came."""
        deadline = start_attempt(self._timeout)  # for the whole exchange, not each read
        try:
            return self._http.get(self._url(call))
        except httpx.RequestError as exc:
            return _no_answer(exc, self._key)
        finally:
            end_attempt(deadline)

    def _ensure_bucket(self, envelope: Envelope) -> None:
        with self._init_lock:
            if self._bucket is None:
                config, tokens = self._new_bucket(envelope)
                self._bucket = TokenBucket(
                    config, clock=self._clock, tokens=tokens, on_event=self._on_event
                )

    def _gated(self) -> threading.RLock:
        """The gate (one waiting request at a time), re-entered freely by the thread holding it."""
        return self._gate

    def _book(
        self, cost: float, endpoint: str, *, alone: bool = False, beyond: float = 0.0
    ) -> _Booked:
        """Book *cost* on the gate (:meth:`_Base._book_steps`); the booking, the time waited."""
        with self._gated():
            booked = run(self._book_steps(cost, endpoint, alone=alone))
            with self._state:
                self._on_wire(booked[0], alone=alone, beyond=beyond)
            return booked

    def _sleep_gated(self, delay: float) -> None:
        """Sleep *delay* on the gate, once this client's requests on the wire are answered."""
        with self._gated():
            self._wait_for_wire()
            self._clock.sleep(delay)

    def _sleep(self, delay: float) -> None:
        self._clock.sleep(delay)

    def _pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def _wait_for_wire(self) -> None:
        """Wait until this client's requests on the wire are answered."""
        with self._state:
            self._state.wait_for(lambda: self._inflight == 0)

    def _settle_and_leave(
        self, booking: Reservation | None, answer: _Answer | None, consumed: float
    ) -> None:
        """Settle the booking and sync from the answer, in answer order; then leave the wire."""
        with self._state:
            try:
                settlement = self._settlement(booking, answer, consumed)
                if settlement is not None:
                    bucket, args, first = settlement
                    self._synced(bucket._settle_and_sync(booking, consumed, args, sync_first=first))  # noqa: SLF001
            finally:
                if booking is not None and self._off_wire(booking):
                    self._state.notify_all()

    def _leave_wire(self, booking: Reservation) -> None:
        with self._state:
            if self._off_wire(booking):
                self._state.notify_all()


# -- the async client --------------------------------------------------------------------------


@twins
class AsyncKeepaClient(AsyncEndpoints, _Base[AsyncTokenBucket]):
    """The :class:`KeepaClient` for asyncio: its methods are coroutines; none blocks the loop.

    Takes the same arguments; *bucket* is an :class:`~tokenbudget.AsyncTokenBucket`.
    Many requests may be in flight at once: those the bucket admits now are
    sent together; a request that must wait waits for the requests on the
    wire to be answered, then books again and sleeps on *clock*.

    .. versionadded:: 0.1.0
    """

    _BUCKET = AsyncTokenBucket

    def _open(self) -> None:
        # Created lazily, inside the event loop that uses them.
        self._gate_lock: asyncio.Lock | None = None
        self._gate_owner: asyncio.Task[Any] | None = None  # the task holding the gate
        self._state_cond: asyncio.Condition | None = None
        self._init: asyncio.Lock | None = None
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=self._timeout,
            follow_redirects=False,  # as in KeepaClient
            transport=_AsyncKeyTransport(httpx.AsyncHTTPTransport(), self._key),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    @property
    def bucket(self) -> AsyncTokenBucket:
        """The bucket the client spends from.

        Raises:
            RuntimeError: The default bucket is not built yet (it is built by
                the first request, or by :meth:`token_status`).
        """
        if self._bucket is None:
            raise RuntimeError(
                "the default bucket is built from the first answer: await token_status() first"
            )
        return self._bucket

    def _locks(self) -> tuple[asyncio.Lock, asyncio.Condition, asyncio.Lock]:
        if self._gate_lock is None or self._state_cond is None or self._init is None:
            self._gate_lock = asyncio.Lock()
            self._state_cond = asyncio.Condition()
            self._init = asyncio.Lock()
        return self._gate_lock, self._state_cond, self._init

    # -- public API: KeepaClient's, awaited ----------------------------------------------------

    token_status = awaited(KeepaClient.token_status)
    products = awaited(KeepaClient.products)
    deals = awaited(KeepaClient.deals)

    # -- the steps, run by awaiting them (see :mod:`.steps`) -----------------------------------

    _drive = staticmethod(arun)

    async def _call(self, endpoint: EndpointCall[T]) -> T:
        """Like :meth:`KeepaClient._call`."""
        return await arun(self._endpoint_steps(endpoint))

    async def _status(self, *, max_age: float | None) -> TokenStatus:
        return await arun(self._status_steps(max_age))

    async def _finish(
        self, booking: AsyncReservation | None, answer: _Answer | None, consumed: float
    ) -> None:
        await arun(self._finish_steps(booking, answer, consumed))

    async def _finish_anyway(self, booking: AsyncReservation | None, estimate: float) -> None:
        """Like :meth:`KeepaClient._finish_anyway`, to its end even if cancelled again."""
        await asyncio.shield(self._finish(booking, None, estimate))

    async def _get(self, call: _Call) -> httpx.Response | _NoAnswer:
        """Like :meth:`KeepaClient._get`."""
        try:
            # One deadline for the whole exchange (a server trickling its answer included).
            async with asyncio.timeout(attempt_seconds(self._timeout)):
                return await self._http.get(self._url(call))
        except httpx.RequestError as exc:
            return _no_answer(exc, self._key)
        except TimeoutError:
            return _NoAnswer(f"TimeoutError: no whole answer within {self._timeout:g} s")

    async def _ensure_bucket(self, envelope: Envelope) -> None:
        _, _, init = self._locks()
        async with init:
            if self._bucket is None:
                config, tokens = self._new_bucket(envelope)
                self._bucket = AsyncTokenBucket(
                    config, clock=self._clock, tokens=tokens, on_event=self._on_event
                )

    @contextlib.asynccontextmanager
    async def _gated(self) -> AsyncIterator[None]:
        """Like :meth:`KeepaClient._gated`, per task."""
        gate, _, _ = self._locks()
        me = asyncio.current_task()
        if me is not None and self._gate_owner is me:
            yield
            return
        async with gate:
            self._gate_owner = me
            try:
                yield
            finally:
                self._gate_owner = None

    async def _book(
        self, cost: float, endpoint: str, *, alone: bool = False, beyond: float = 0.0
    ) -> _Booked:
        """Like :meth:`KeepaClient._book` (:meth:`_gated` written out: on every request's path)."""
        gate, _, _ = self._locks()
        me = asyncio.current_task()
        held = me is not None and self._gate_owner is me
        if not held:
            await gate.acquire()
            self._gate_owner = me
        try:
            booked = await arun(self._book_steps(cost, endpoint, alone=alone))
            self._on_wire(booked[0], alone=alone, beyond=beyond)
            return booked
        finally:
            if not held:
                self._gate_owner = None
                gate.release()

    async def _sleep_gated(self, delay: float) -> None:
        """Like :meth:`KeepaClient._sleep_gated`."""
        async with self._gated():
            await self._wait_for_wire()
            await self._clock.asleep(delay)

    async def _sleep(self, delay: float) -> None:
        await self._clock.asleep(delay)

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _wait_for_wire(self) -> None:
        """Wait until this client's requests on the wire are answered."""
        _, state, _ = self._locks()
        async with state:
            await state.wait_for(lambda: self._inflight == 0)

    async def _settle_and_leave(
        self, booking: AsyncReservation | None, answer: _Answer | None, consumed: float
    ) -> None:
        """Like :meth:`KeepaClient._settle_and_leave`."""
        _, state, init = self._locks()
        try:
            async with init:
                settlement = self._settlement(booking, answer, consumed)
                if settlement is not None:
                    bucket, args, first = settlement
                    self._synced(
                        await bucket._settle_and_sync(booking, consumed, args, sync_first=first)  # noqa: SLF001
                    )
        finally:
            if booking is not None and self._off_wire(booking):
                async with state:
                    state.notify_all()

    async def _leave_wire(self, booking: AsyncReservation) -> None:
        _, state, _ = self._locks()
        if self._off_wire(booking):
            async with state:
                state.notify_all()
