"""A Keepa API emulator for tests: :class:`KeepaEmulator`.

The emulator is a real HTTP server on a free loopback port that answers
``/token``, ``/product`` and ``/deal`` the way Keepa does: the same response
envelope on every answer (errors and HTTP 429 included), Keepa's token
accounting on an injectable clock, deterministic seeded products and a deal
stream that moves with the clock. The rest of Keepa's API (``/query``,
``/bestsellers``, ``/category``, ``/search``, ``/seller``, ``/lightningdeal``) is
answered with Keepa's documented costs and shapes over the same catalog (see
``_emulator_endpoints``). Point your code (or
``tokenbudget_keepa.KeepaClient``) at :attr:`KeepaEmulator.url` and
read what happened from :meth:`KeepaEmulator.stats`.

A :class:`tokenbudget.ManualClock` shared between the emulator and the code
under test simulates hours of traffic in seconds: the emulator reads the time
from the clock, so whatever the code sleeps on that clock refills the account.

Its token accounting is written independently of :mod:`tokenbudget`'s
buckets: it is the oracle the client's bucket is tested against.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import selectors
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

import attrs

from tokenbudget import Clock, MonotonicClock

from ._client.models.keepa_time import KEEPA_EPOCH_UNIX_MINUTES, datetime_to_keepa_minutes
from ._emulator.account import Account
from ._emulator.data import (
    CATEGORIES,
    DOMAINS,
    UNKNOWN_CATEGORY,
    Catalog,
    DealStream,
    Selection,
    SelectionError,
    freshness,
    parse_selection,
    product_json,
)
from ._emulator.endpoints import ENDPOINTS as _MORE_ENDPOINTS
from ._emulator.endpoints import KNOWN_PARAMETERS as _MORE_PARAMETERS
from ._emulator.endpoints import POST_ENDPOINTS as _MORE_POST
from ._emulator.endpoints import EndpointRefusal, serve_endpoint
from ._emulator.recordings import Recordings


__all__ = ["DEFAULT_START", "EmulatorStats", "Fault", "KeepaEmulator", "Recordings"]

#: The wall-clock time an emulator's clock time 0 maps to, unless told otherwise.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

#: Deals on one ``/deal`` page.
DEALS_PER_PAGE = 150
#: ASINs in one ``/product`` request, with or without ``offers`` (Keepa served 50 ASINs
#: with ``offers=50`` in one request; its limit is 100).
MAX_ASINS = 100
_ENDPOINTS = ("token", "product", "deal", *_MORE_ENDPOINTS)
_KNOWN_PARAMETERS = {
    "token": frozenset({"key"}),
    "product": frozenset(
        {
            "key",
            "domain",
            "asin",
            "offers",
            "stats",
            "buybox",
            "history",
            "update",
            "rating",
            "days",
            "stock",
            "historical-variations",
            "only-live-offers",
            "code",
            "rental",
            "videos",
            "aplus",
            "offers-since",
        }
    ),
    "deal": frozenset({"key", "selection"}),
    **_MORE_PARAMETERS,
}
#: ``error.type`` by HTTP status. ``invalidParameter`` is the type of Keepa's real 400s;
#: the others are not seen in real answers (named in the same style).
_ERROR_TYPES = {
    400: "invalidParameter",
    402: "paymentRequired",
    404: "notFound",
    405: "methodNotAllowed",
    500: "internalServerError",
    503: "serviceUnavailable",
}
#: The message of Keepa's real 400s; the emulator's ``error.details`` says what was wrong.
_INVALID_PARAMETER = "You used an invalid parameter for this API call."
#: Statuses whose real bodies carry a zeroed envelope (no token figures): Keepa's real 400s.
_ZEROED = frozenset({400})


@attrs.frozen
class Fault:
    """A fault the emulator injects into one response.

    Build one with :meth:`server_error`, :meth:`malformed_json` or :meth:`slow`
    and queue it with :meth:`KeepaEmulator.inject`.

    Attributes:
        kind: ``"status"`` (an error status instead of the answer: nothing is
            charged), ``"malformed"`` (the request is served and charged, but the
            body is not valid JSON) or ``"slow"`` (the request is admitted when it
            arrives; the answer leaves *seconds* later, in real time).
        http_status: The status of a ``"status"`` fault.
        seconds: The real delay of a ``"slow"`` fault.
        charge: When a ``"slow"`` request is charged: ``"arrival"`` (its envelope
            is the state at arrival, so it can reach the client after newer ones)
            or ``"answer"`` (charged, and its envelope made, when it leaves:
            requests served meanwhile do not see its cost).

    .. versionadded:: 0.1.0
    """

    kind: Literal["status", "malformed", "slow"]
    http_status: int = 500
    seconds: float = 0.0
    charge: Literal["arrival", "answer"] = "arrival"

    @classmethod
    def server_error(cls, http_status: int = 500) -> Fault:
        """An error answer with *http_status* (500 or 503 are Keepa's) and the full envelope."""
        if not 400 <= http_status <= 599:
            raise ValueError(f"http_status must be an error status 400..599, got {http_status!r}")
        return cls("status", http_status=http_status)

    @classmethod
    def malformed_json(cls) -> Fault:
        """An answer whose body is cut short: not valid JSON."""
        return cls("malformed")

    @classmethod
    def slow(cls, seconds: float, *, charge: Literal["arrival", "answer"] = "arrival") -> Fault:
        """An answer delayed by *seconds* of real time (keep it small: tests wait for it).

        The request is admitted (balance above zero) when it arrives. With
        ``charge="arrival"`` it is charged then, and its envelope shows the
        account at that moment, so it may reach the client after the envelopes
        of requests served later (out of order). With ``charge="answer"`` it is
        charged, and its envelope made, when the answer leaves, so the requests
        served in between do not see its cost, as with a request Keepa is still
        processing.
        """
        if not (math.isfinite(seconds) and 0 <= seconds <= 30):
            raise ValueError(f"seconds must be a delay between 0 and 30, got {seconds!r}")
        if charge not in ("arrival", "answer"):
            raise ValueError(f"charge must be 'arrival' or 'answer', got {charge!r}")
        return cls("slow", seconds=float(seconds), charge=charge)


@attrs.frozen
class EmulatorStats:
    """What an emulator has seen, at one instant (see :meth:`KeepaEmulator.stats`).

    Attributes:
        requests: Requests by endpoint (``"token"``, ``"product"``, ``"deal"``, or
            ``"other"`` for unknown paths), then by HTTP status.
        throttled: Requests refused with HTTP 429.
        tokens_consumed: Tokens charged to requests over HTTP.
        tokens_spent_by_others: Tokens the competing spender took
            (:meth:`KeepaEmulator.spend` and the background spender).
        tokens_refilled: Tokens the refill steps added (after the cap).
        tokens_left: The account's balance now (may be negative).
        ignored_parameters: Parameters the emulator does not know, by name
            (``"product.foo"`` for a query parameter, ``"deal.selection.foo"`` for a
            selection field), with how often they were sent.
        products_served: Products returned by ``/product``.
        deals_served: Deals returned by ``/deal``.
        faults_injected: Faults applied (queued or drawn).
        internal_errors: Requests the emulator itself failed on (a bug: it answered
            500 with the exception in ``error.details``); a test can assert it is 0.

    .. versionadded:: 0.1.0
    """

    requests: Mapping[str, Mapping[int, int]]
    throttled: int
    tokens_consumed: int
    tokens_spent_by_others: int
    tokens_refilled: int
    tokens_left: int
    ignored_parameters: Mapping[str, int]
    products_served: int
    deals_served: int
    faults_injected: int
    internal_errors: int = 0

    @property
    def total_requests(self) -> int:
        """Every request answered, whatever its endpoint and status."""
        return sum(sum(by_status.values()) for by_status in self.requests.values())

    def count(self, endpoint: str | None = None, status: int | None = None) -> int:
        """Requests to *endpoint* (any if ``None``) answered with *status* (any if ``None``)."""
        return sum(
            n
            for name, by_status in self.requests.items()
            if endpoint is None or name == endpoint
            for code, n in by_status.items()
            if status is None or code == status
        )


class _Reply(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised inside request handling to answer at once with an error envelope."""

    def __init__(self, status: int, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def _int_parameter(
    query: Mapping[str, str], name: str, *, low: int, high: int, default: int | None = None
) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not (text.lstrip("-").isdigit() and text.isascii()):
        raise _Reply(400, f"parameter {name} must be an integer, got {raw!r}")
    value = int(text)
    if not low <= value <= high:
        raise _Reply(400, f"parameter {name} must be in {low}..{high}, got {value}")
    return value


def _stats_parameter(query: Mapping[str, str]) -> int:
    """``stats``: days, or Keepa's date range ``FROM,TO`` (``yyyy-mm-dd`` or Unix ms), in days."""
    raw = query.get("stats")
    if raw is None or "," not in raw:
        value = _int_parameter(query, "stats", low=1, high=100_000, default=0)
        assert value is not None  # noqa: S101 (a default is given)
        return value
    ends: list[datetime] = []
    for part in raw.split(","):
        text = part.strip()
        try:
            if text.isascii() and text.isdigit():
                ends.append(datetime.fromtimestamp(int(text) / 1000, tz=UTC))
            else:
                ends.append(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC))
        except (ValueError, OverflowError, OSError):
            raise _Reply(
                400, f"parameter stats must be days or a date range, got {raw!r}"
            ) from None
    if len(ends) != 2 or ends[0] > ends[1]:
        raise _Reply(400, f"parameter stats must be days or FROM,TO with FROM <= TO, got {raw!r}")
    return max(1, math.ceil((ends[1] - ends[0]) / timedelta(days=1)))


class KeepaEmulator:
    """A Keepa API server on ``127.0.0.1`` for tests, with Keepa's token accounting.

    >>> import httpx
    >>> from tokenbudget import ManualClock
    >>> from tokenbudget_keepa.testing import KeepaEmulator
    >>> clock = ManualClock()
    >>> with KeepaEmulator(refill_per_min=5, clock=clock) as keepa:
    ...     envelope = httpx.get(f"{keepa.url}/token", params={"key": "test-key"}).json()
    >>> envelope["tokensLeft"], envelope["refillRate"], envelope["refillIn"]
    (300, 5, 60000)

    *Accounting.* The account starts with *tokens* (default: full). Every
    *refill_step* seconds of the clock (the first step *first_refill_in*
    seconds after the start) it gains ``refill_per_min`` tokens per minute of
    step, up to *capacity*. A ``/product`` or ``/deal`` request is admitted
    whenever the balance is above zero and charged its whole cost, which may
    leave the balance negative, without bound; while the balance is zero or
    below it is refused with HTTP 429, which costs nothing. ``/token`` is free
    and always answered. Costs, as Keepa documents them: a ``/product`` request
    costs 1 per product found (unknown ASINs cost nothing), +2 per product with
    ``buybox=1`` (ignored with ``offers``); with ``offers`` the base cost is
    instead *offer_page_cost* per started page of 10 live offers found (the base
    1 for a product with none), *fresh_offer_page_cost* when ``update`` is given
    and the product's offers are fresh, 1 when the offer fetch failed;
    ``rating=1`` adds 1 for a product whose rating data is less than 14 days old,
    ``stock=1`` 2 for one whose stock data is less than 7 days old, ``update=0``
    1 for one updated within the last hour, ``historical-variations=1`` 1 for one
    with a parent; ``stats``, ``history`` and ``days`` cost nothing. Which data is
    fresh is drawn per product and hour (*rating_fresh_share*,
    *stock_fresh_share*, *fresh_offer_share*). A ``/deal`` page costs *deal_cost*.
    Most catalog products have fewer than 10 live offers, so a batch like real
    ones (``offers=50, rating=1, buybox=1, stock=1``) costs about 7 a product, as
    those did.

    *Checks, in order.* Unknown path: 404. A queued or drawn
    :class:`Fault` of kind ``"status"``: that status. Wrong or missing ``key``:
    402. A method other than ``GET`` (and ``POST`` on ``/deal``): 405. Malformed
    parameters or selection: 400. Balance zero or below: 429. None costs
    anything. A 429 is the envelope alone (no ``error``), as Keepa's real one; a
    400 is Keepa's real one: ``error: {type: "invalidParameter", message, details}``
    (``details`` says what was wrong) with a zeroed envelope (``tokensLeft``,
    ``refillIn`` and ``refillRate`` 0); the others carry ``error`` and the full
    envelope.

    *Product requests.* ``asin`` (comma-separated, at most 100, with ``offers``
    too) and ``domain`` are required; ``offers`` must be 20..100, ``buybox``,
    ``history`` (default 1), ``rating``, ``stock``, ``historical-variations`` and
    ``only-live-offers`` 0 or 1, ``stats`` and ``days`` a positive integer (``stats``
    also Keepa's date range ``FROM,TO``, dates ``yyyy-mm-dd`` or Unix milliseconds,
    read as its number of days), ``update`` an
    integer >= -1; anything else is a 400. Products of the catalog are answered
    in the order asked, unknown ones left out, shaped as Keepa's product objects:
    every key of a real one, ``null`` where there is no data (``stats`` without
    ``stats``, ``csv`` with ``history=0``, ``offers`` without ``offers``); with
    ``only-live-offers=1``, ``offers`` holds the live offers only. Their
    current prices follow their latest deal update; ``stats.buyBoxPrice`` is -1
    but with ``buybox=1`` or ``offers``, as Keepa's.

    *Time.* The clock's time at construction maps to *start* (a wall-clock
    datetime): ``timestamp`` and the Keepa minutes in the data follow
    ``start + (clock.now() - clock time at construction)``, so a
    :class:`~tokenbudget.ManualClock` at 0 still yields realistic dates.

    *Deal stream.* Minute ``m`` brings between 0 and ``floor(2 *
    deals_per_minute)`` updates (uniform, seeded by the seed and ``m``); each is
    a re-update of an ASIN already in the stream with probability
    *reupdate_share*, else a new catalog product. A deal's ``lastUpdate`` is its
    latest update's minute (one entry per ASIN), its ``creationDate`` the first.
    The stream starts *history_minutes* before *start*; the updates of a minute
    are visible from its first instant. Pages of ``sortType=1`` are ordered by
    ``lastUpdate + j`` descending (ties by ASIN), where ``j`` is drawn per deal
    from ``0..disorder_minutes``: a deal can come after deals up to
    *disorder_minutes* older than itself, never more. Other sort types are exact
    (ties by ASIN). A page holds 150 deals; a shorter page is the last one.

    *Deals.* Shaped as Keepa's: 34 entries per price-type row (``current``,
    ``currentSince``, ``deltaLast``, ``backInStock``; ``avg``, ``delta`` and
    ``deltaPercent`` one row per interval), ``image`` a list of character codes,
    the sales-rank drops, warehouse condition, lightning times and
    ``dateIntervalIndex``. ``delta`` (``avg - current``) and ``deltaPercent`` are
    positive for a price drop and 0 where data is missing; a few deals are
    created two minutes after their ``lastUpdate``, and a few have Keepa's
    unknown root category (``rootCat`` 2**63 - 1), as real ones.

    *Selection.* Read as Keepa reads it: ``null`` is an absent field, integers
    may be written as strings (``"domainId": "1"``), a range's upper bound -1 is
    open. Refused (400): a missing or multiple ``priceTypes``, a price type deals
    are not found on (Keepa's deal types: 0-3, 5-10, 18-27, 32, 33), a
    ``domainId`` without deals (7, 12), a wrong type (``1.5`` or ``"x"`` for an
    integer, ``1`` for a boolean), ``page < 0``, out-of-range enums. Applied:
    ``priceTypes``, ``dateRange`` (the deal's ``lastUpdate`` is within the last
    day, week, 31 or 90 days; 4, seen in exports of Keepa's deal finder, as 3),
    ``sortType``, ``page``, ``deltaPercentRange``, ``deltaRange``,
    ``deltaLastRange`` and ``currentRange`` (on the price type),
    ``salesRankRange``, ``includeCategories``/``excludeCategories`` (root or sub
    category), ``minRating``, ``hasReviews``, ``warehouseConditions`` (with the
    WAREHOUSE price type), ``titleSearch`` (case-insensitive; every word must
    match). Validated but not applied: ``domainId``, the other boolean flags
    (``isLowest``, ``isOutOfStock``, ``singleVariation``, ...) and the
    string-array attribute filters (``brand``, ``color``, ...). Unknown fields
    are ignored, as Keepa does, and counted in
    :attr:`EmulatorStats.ignored_parameters`.

    The emulator is safe to use from several threads: the server's threads and
    the test's share its state under one lock.

    Args:
        api_key: The key the server accepts; any other gets HTTP 402.
        refill_per_min: Tokens added per minute (Keepa's ``refillRate``; default 20,
            or the earliest recorded ``/token`` body's).
        capacity: The cap of the balance. Default: ``60 * refill_per_min`` (Keepa
            lets unused tokens expire after an hour; the exact cap is not
            documented by Keepa, so it is configurable).
        tokens: The starting balance (default: *capacity*, or the earliest recorded
            ``/token`` body's ``tokensLeft``).
        clock: Where the emulator reads the time (default: a
            :class:`~tokenbudget.MonotonicClock`).
        seed: Seeds every generated product, deal and drawn fault.
        start: The wall-clock datetime of the clock's time at construction
            (aware; default :data:`DEFAULT_START`, 2026-01-01T00:00Z, or the
            earliest recorded ``timestamp``).
        refill_step: Seconds between refill steps (Keepa: once a minute; not
            documented by Keepa, so configurable).
        first_refill_in: Seconds from the start to the first step (default
            *refill_step*). At a fractional millisecond (such as ``59.9995``) the
            steps make ``refillIn`` read 60001 right after each one, as Keepa's can.
        token_flow_reduction: The ``tokenFlowReduction`` reported (it does not
            change the refill: set *refill_per_min* for that; default 0.0, or the
            earliest recorded ``/token`` body's).
        deal_cost: Tokens per ``/deal`` request.
        offer_page_cost: Tokens per page of 10 offers found.
        fresh_offer_page_cost: Tokens per page when the offers are fresh.
        fresh_offer_share: The share of products whose offers are fresh (drawn
            per ASIN and hour): with ``update`` given, their pages cost
            *fresh_offer_page_cost*.
        offer_failure_share: The share of products whose offer fetch fails
            (``offersSuccessful: false``, cost 1).
        rating_fresh_share: The share of products whose rating data is less than
            14 days old (``rating=1`` costs 1 for those only), per hour.
        stock_fresh_share: The share of products whose stock data is less than
            7 days old (``stock=1`` costs 2 for those only), per hour.
        deals_per_minute: The mean number of deal updates per minute.
        reupdate_share: The share of updates that re-update a known ASIN.
        history_minutes: How far before *start* the deal stream begins.
        disorder_minutes: The local disorder of ``sortType=1`` pages.
        catalog_size: Products in the catalog (ASINs outside it are unknown).
        sparse_share: The share of products missing each optional field.
        fault_share: The probability that a request is answered by a drawn fault
            (seeded): see :meth:`set_fault_share`.
        deal_cache_seconds: Keepa caches deal results for about two minutes: with
            a value above 0, a ``/deal`` page asked again within that many seconds
            of the clock is the page computed then (still charged; ``dealsCached``
            true). Default 0: every request sees the stream as it is now.
        recordings: A folder of recorded Keepa answers (or loaded
            :class:`Recordings`) to serve instead of the seeded data: recorded
            deal pages one per ``/deal`` request, recorded products by ASIN (see
            :class:`Recordings` for the layout). The accounting stays the
            emulator's.

    .. versionchanged:: 0.1.0
       Bodies shaped as Keepa's real ones, its documented costs, *recordings*.

    .. versionadded:: 0.1.0
    """

    def __init__(  # noqa: PLR0915 (one validation per argument)
        self,
        *,
        api_key: str = "test-key",
        refill_per_min: int | None = None,
        capacity: int | None = None,
        tokens: int | None = None,
        clock: Clock | None = None,
        seed: int = 0,
        start: datetime | None = None,
        refill_step: float = 60.0,
        first_refill_in: float | None = None,
        token_flow_reduction: float | None = None,
        deal_cost: int = 5,
        offer_page_cost: int = 6,
        fresh_offer_page_cost: int = 5,
        fresh_offer_share: float = 0.0,
        offer_failure_share: float = 0.0,
        rating_fresh_share: float = 0.2,
        stock_fresh_share: float = 0.1,
        deals_per_minute: float = 3.0,
        reupdate_share: float = 0.2,
        history_minutes: int = 24 * 60,
        disorder_minutes: int = 3,
        catalog_size: int = 1_000_000,
        sparse_share: float = 0.15,
        fault_share: float = 0.0,
        deal_cache_seconds: float = 0.0,
        recordings: str | os.PathLike[str] | Recordings | None = None,
    ) -> None:
        recorded = (
            recordings
            if isinstance(recordings, Recordings) or recordings is None
            else Recordings.load(recordings)
        )
        refill_per_min, tokens, token_flow_reduction, start = _account_defaults(
            recorded, refill_per_min, tokens, token_flow_reduction, start
        )
        _check_int("refill_per_min", refill_per_min, low=1)
        if capacity is not None:
            _check_int("capacity", capacity, low=1)
        if tokens is not None:
            _check_int("tokens", tokens)
        if not (math.isfinite(refill_step) and refill_step > 0):
            raise ValueError(f"refill_step must be a number of seconds > 0, got {refill_step!r}")
        first = refill_step if first_refill_in is None else first_refill_in
        if not (math.isfinite(first) and 0 < first <= refill_step):
            raise ValueError(
                f"first_refill_in must be in (0, refill_step={refill_step}], got {first!r}"
            )
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"start must be an aware datetime, got the naive {start!r}")
        for name, share in (
            ("fresh_offer_share", fresh_offer_share),
            ("offer_failure_share", offer_failure_share),
            ("rating_fresh_share", rating_fresh_share),
            ("stock_fresh_share", stock_fresh_share),
            ("reupdate_share", reupdate_share),
            ("sparse_share", sparse_share),
            ("fault_share", fault_share),
        ):
            _check_share(name, share)
        for name, cost in (
            ("deal_cost", deal_cost),
            ("offer_page_cost", offer_page_cost),
            ("fresh_offer_page_cost", fresh_offer_page_cost),
        ):
            _check_int(name, cost, low=0)
        _check_int("history_minutes", history_minutes, low=0)
        _check_int("disorder_minutes", disorder_minutes, low=0)
        _check_int("catalog_size", catalog_size, low=1)
        if not (math.isfinite(deal_cache_seconds) and deal_cache_seconds >= 0):
            raise ValueError(f"deal_cache_seconds must be >= 0, got {deal_cache_seconds!r}")
        if not (math.isfinite(deals_per_minute) and deals_per_minute >= 0):
            raise ValueError(f"deals_per_minute must be >= 0, got {deals_per_minute!r}")

        self._api_key = api_key
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._origin = self._clock.now()
        self._start_ms = _unix_ms(start)
        self._seed = seed
        self._lock = threading.RLock()
        cap = capacity if capacity is not None else 60 * refill_per_min
        self._account = Account(
            rate=refill_per_min,
            capacity=capacity,
            balance=cap if tokens is None else tokens,
            step=float(refill_step),
            first_step=float(first),
        )
        self._token_flow_reduction = float(token_flow_reduction)
        self._deal_cost = deal_cost
        self._offer_page_cost = offer_page_cost
        self._fresh_offer_page_cost = fresh_offer_page_cost
        self._fresh_offer_share = fresh_offer_share
        self._offer_failure_share = offer_failure_share
        self._rating_fresh_share = rating_fresh_share
        self._stock_fresh_share = stock_fresh_share
        self._catalog = Catalog(seed=seed, size=catalog_size, sparse_share=sparse_share)
        self._stream = DealStream(
            catalog=self._catalog,
            seed=seed,
            deals_per_minute=deals_per_minute,
            reupdate_share=reupdate_share,
            first_minute=datetime_to_keepa_minutes(start) - history_minutes,
            disorder_minutes=disorder_minutes,
        )
        self._faults: deque[tuple[Fault, str | None]] = deque()
        self._fault_share = fault_share
        self._deal_cache_seconds = float(deal_cache_seconds)
        self._recordings = recorded
        self._recorded_next = 0
        self._deal_cache: dict[tuple[object, ...], tuple[float, dict[str, Any]]] = {}
        self._fault_choices: tuple[Fault, ...] = (Fault.server_error(500), Fault.server_error(503))
        self._fault_rng = random.Random(f"faults:{seed}")
        self._reset_counters()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: Set by :meth:`close`: a slow fault's sleep ends at once.
        self._closing = threading.Event()

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self._server is not None else "stopped"
        return f"<KeepaEmulator {state} refill_per_min={self._account.rate} seed={self._seed}>"

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on a free port of ``127.0.0.1`` (in a background thread); return self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._closing.clear()
        thread = threading.Thread(
            target=server.serve_until_stopped,
            name=f"KeepaEmulator:{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def close(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._closing.set()  # slow faults stop sleeping: their answers go out now
        server.stop()
        thread.join()
        server.close_connections()
        server.server_close()

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The base URL to send requests to, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError(
                "the emulator is not running: use it as a context manager or start()"
            )
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_key(self) -> str:
        """The key the emulator accepts (give it to the client under test)."""
        return self._api_key

    @property
    def clock(self) -> Clock:
        """The clock the emulator reads its time from."""
        return self._clock

    # -- time -------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return max(0.0, self._clock.now() - self._origin)

    def timestamp_ms(self) -> int:
        """The server's time now, in Unix milliseconds (the envelope's ``timestamp``)."""
        return self._start_ms + math.floor(self._elapsed() * 1000)

    def now_minute(self) -> int:
        """The server's time now, in Keepa minutes."""
        return self.timestamp_ms() // 60_000 - KEEPA_EPOCH_UNIX_MINUTES

    def now(self) -> datetime:
        """The server's time now, an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp_ms() / 1000, tz=UTC)

    # -- the account ------------------------------------------------------------------

    def _advance(self) -> float:
        elapsed = self._elapsed()
        self._account.advance(elapsed)
        return elapsed

    @property
    def tokens_left(self) -> int:
        """The balance now (may be negative)."""
        with self._lock:
            self._advance()
            return self._account.balance

    def set_tokens(self, tokens: int) -> None:
        """Set the balance now (e.g. to start a test in debt)."""
        _check_int("tokens", tokens)
        with self._lock:
            self._advance()
            self._account.balance = tokens

    @property
    def refill_per_min(self) -> int:
        """Tokens added per minute; assign to change the plan from the next step on."""
        return self._account.rate

    @refill_per_min.setter
    def refill_per_min(self, value: int) -> None:
        _check_int("refill_per_min", value, low=1)
        with self._lock:
            self._advance()
            self._account.set_rate(value)

    @property
    def capacity(self) -> int:
        """The cap of the balance (``60 * refill_per_min`` unless set)."""
        return self._account.cap

    @property
    def token_flow_reduction(self) -> float:
        """The ``tokenFlowReduction`` every envelope reports; assignable."""
        return self._token_flow_reduction

    @token_flow_reduction.setter
    def token_flow_reduction(self, value: float) -> None:
        self._token_flow_reduction = float(value)

    def refill_in_ms(self) -> int:
        """Milliseconds from :meth:`timestamp_ms` to the next refill step (``refillIn``)."""
        with self._lock:
            return self._account.refill_in_ms(self._advance())

    def spend(self, tokens: int) -> bool:
        """Spend *tokens* now as another program on the same account would.

        Keepa's rule applies: the spend happens (and may leave a debt) if the
        balance is above zero, and is refused otherwise. Returns whether it happened.
        """
        _check_int("tokens", tokens, low=0)
        with self._lock:
            self._advance()
            if not self._account.try_spend(tokens):
                return False
            self._account.spent_by_others += tokens
            return True

    def set_competing_spender(self, tokens_per_minute: float) -> None:
        """Run a background spender at *tokens_per_minute* on the clock (0 stops it).

        It spends one token at a time while the balance is above zero, so it
        drains the account down to 0 but never into debt; what it cannot spend
        (refused, as with a 429) is lost.
        """
        if not (math.isfinite(tokens_per_minute) and tokens_per_minute >= 0):
            raise ValueError(f"tokens_per_minute must be >= 0, got {tokens_per_minute!r}")
        with self._lock:
            self._advance()
            self._account.spender_rate = float(tokens_per_minute)
            self._account.spender_carry = 0.0

    # -- faults -----------------------------------------------------------------------

    def inject(self, *faults: Fault, endpoint: str | None = None) -> None:
        """Queue *faults*: each applies to the next request (to *endpoint*, if given)."""
        if endpoint is not None and endpoint not in _ENDPOINTS:
            raise ValueError(f"endpoint must be one of {_ENDPOINTS}, got {endpoint!r}")
        with self._lock:
            self._faults.extend((fault, endpoint) for fault in faults)

    def set_fault_share(
        self, share: float, faults: Iterable[Fault] = (Fault(kind="status", http_status=500),)
    ) -> None:
        """Answer a seeded random *share* of requests with one of *faults* (drawn uniformly).

        The default fault is a 500; pass e.g. ``[Fault.server_error(503),
        Fault.malformed_json()]`` for others. ``share=0`` stops drawing faults.
        """
        _check_share("share", share)
        choices = tuple(faults)
        if share > 0 and not choices:
            raise ValueError("faults must name at least one Fault when share > 0")
        with self._lock:
            self._fault_share = share
            self._fault_choices = choices

    def clear_faults(self) -> None:
        """Drop the queued faults and stop drawing random ones."""
        with self._lock:
            self._faults.clear()
            self._fault_share = 0.0

    def _take_fault(self, endpoint: str) -> Fault | None:
        for position, (fault, wanted) in enumerate(self._faults):
            if wanted is None or wanted == endpoint:
                del self._faults[position]
                self._faults_injected += 1
                return fault
        if self._fault_share > 0 and self._fault_rng.random() < self._fault_share:
            self._faults_injected += 1
            return self._fault_rng.choice(self._fault_choices)
        return None

    # -- data -------------------------------------------------------------------------

    def catalog_asins(self, count: int, *, first: int = 0) -> list[str]:
        """*count* ASINs of known catalog products (the deal stream brings them in order)."""
        _check_int("count", count, low=0)
        return [self._catalog.asin(i) for i in range(first, first + count)]

    def deals_between(
        self, minute_from: int, minute_to: int, selection: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The true deals whose ``lastUpdate`` lies in ``[minute_from, minute_to]``, as of now.

        This is what an ingestor that saw everything should hold: each ASIN once,
        with its latest update (a deal re-updated after *minute_to* is not in the
        window any more). *selection* (Keepa's fields, as sent to ``/deal``)
        filters as the server does; ``page``, ``sortType`` and ``dateRange``'s
        age limit do not apply. The result is ordered by ``(lastUpdate, asin)``.
        """
        raw = dict(selection) if selection is not None else {"priceTypes": [1]}
        raw.setdefault("priceTypes", [1])
        parsed = parse_selection(raw)
        with self._lock:
            deals = self._stream.select(
                parsed, now_minute=self.now_minute(), window=(minute_from, minute_to)
            )
            self._stream.complete(deals)
            return sorted(
                (json.loads(json.dumps(d)) for d in deals),
                key=lambda d: (d["lastUpdate"], d["asin"]),
            )

    def drop_deal(self, asin: str) -> None:
        """Take *asin*'s deal out of every selection (Keepa drops a deal whose price rose again).

        The deals after it on a selection's pages move up by one. It is back,
        at its new ``lastUpdate``, when the stream next updates it; until then
        :meth:`deals_between` leaves it out too.

        Raises:
            KeyError: When *asin* has no deal in the stream yet.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            self._advance()
            self._stream.extend(self.now_minute())
            if asin not in self._stream.latest:
                raise KeyError(f"drop_deal: {asin!r} has no deal in the stream yet")
            self._stream.drop(asin)

    # -- counters ---------------------------------------------------------------------

    def _reset_counters(self) -> None:
        self._requests: dict[str, Counter[int]] = {}
        self._tokens_consumed = 0
        self._ignored: Counter[str] = Counter()
        self._products_served = 0
        self._deals_served = 0
        self._faults_injected = 0
        self._internal_errors = 0
        self._others_base = self._account.spent_by_others
        self._refilled_base = self._account.refilled

    def reset_stats(self) -> None:
        """Zero the counters (the balance and the data stay as they are)."""
        with self._lock:
            self._reset_counters()

    def stats(self) -> EmulatorStats:
        """A snapshot of the counters and the balance now."""
        with self._lock:
            self._advance()
            requests = {name: dict(by_status) for name, by_status in self._requests.items()}
            return EmulatorStats(
                requests=requests,
                throttled=sum(by_status.get(429, 0) for by_status in requests.values()),
                tokens_consumed=self._tokens_consumed,
                tokens_spent_by_others=self._account.spent_by_others - self._others_base,
                tokens_refilled=self._account.refilled - self._refilled_base,
                tokens_left=self._account.balance,
                ignored_parameters=dict(self._ignored),
                products_served=self._products_served,
                deals_served=self._deals_served,
                faults_injected=self._faults_injected,
                internal_errors=self._internal_errors,
            )

    # -- request handling (server threads) ---------------------------------------------

    def _envelope(self, elapsed: float, consumed: int, began: float) -> dict[str, Any]:
        return {
            "timestamp": self._start_ms + math.floor(elapsed * 1000),
            "tokensLeft": self._account.balance,
            "refillIn": self._account.refill_in_ms(elapsed),
            "refillRate": self._account.rate,
            "tokenFlowReduction": self._token_flow_reduction,
            "tokensConsumed": consumed,
            "processingTimeInMs": round((time.perf_counter() - began) * 1000),
        }

    def _handle(
        self, method: str, target: str, body: bytes, *, rejected: str | None = None
    ) -> tuple[int, bytes]:
        """Answer one request (status, body); a slow fault sleeps here, in the handler thread."""
        began = time.perf_counter()
        parts = urlsplit(target)
        endpoint = parts.path.strip("/")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        payload: dict[str, Any] = {}
        cost = 0
        with self._lock:
            elapsed = self._advance()
            name = endpoint if endpoint in _ENDPOINTS else "other"
            fault = self._take_fault(endpoint) if name != "other" else None
            deferred = fault is not None and fault.kind == "slow" and fault.charge == "answer"
            try:
                self._check(method, parts.path, query, fault, rejected)
                payload, cost = self._serve_safely(endpoint, query, body)
            except _Reply as reply:
                status = reply.status
                envelope = self._error_body(reply, elapsed, began)
                deferred = False
            else:
                status = 200
                if not deferred:
                    envelope = self._charge(cost, payload, elapsed, began)
            self._requests.setdefault(name, Counter())[status] += 1
        if fault is not None and fault.kind == "slow":
            self._closing.wait(fault.seconds)  # close() cuts it short
        if deferred:
            with self._lock:
                envelope = self._charge(cost, payload, self._advance(), began)
        data = json.dumps(envelope, separators=(",", ":")).encode()
        if fault is not None and fault.kind == "malformed":
            data = data[: max(1, len(data) // 2)]
        return status, data

    def _error_body(self, reply: _Reply, elapsed: float, began: float) -> dict[str, Any]:
        """The body of an error answer, shaped as Keepa's (lock held).

        A 429 is the envelope alone, as Keepa's real one (the balance, zero or
        negative; no ``error``). A 400 is Keepa's real one: ``error`` with type
        ``invalidParameter`` and its message (``details`` says what was wrong)
        beside a zeroed envelope (``tokensLeft``, ``refillIn``, ``refillRate`` 0):
        it carries no token figures. The others (402, 404, 405, a 5xx fault), of
        which no real body is known, carry the full envelope.
        """
        envelope = self._envelope(elapsed, 0, began)
        if reply.status == 429:
            return envelope
        if reply.status in _ZEROED:
            envelope.update(tokensLeft=0, refillIn=0, refillRate=0, tokenFlowReduction=0.0)
        message = _INVALID_PARAMETER if reply.status == 400 else reply.message
        details = reply.details
        if reply.status == 400:
            details = f"{reply.message}: {details}" if details else reply.message
        return {
            "error": {
                "details": details,
                "message": message,
                "type": _ERROR_TYPES.get(reply.status, "error"),
            },
            **envelope,
        }

    def _charge(
        self, cost: int, payload: Mapping[str, Any], elapsed: float, began: float
    ) -> dict[str, Any]:
        """Debit a served request's cost (lock held); return its envelope with the payload."""
        self._account.balance -= cost
        self._tokens_consumed += cost
        envelope = self._envelope(elapsed, cost, began)
        envelope.update(payload)
        return envelope

    def _check(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        fault: Fault | None,
        rejected: str | None,
    ) -> None:
        """The checks before any endpoint's own: framing, path, injected status, key, method."""
        if rejected is not None:
            raise _Reply(400, rejected)
        endpoint = path.strip("/")
        if endpoint not in _ENDPOINTS:
            raise _Reply(404, f"unknown path {path!r}")
        if fault is not None and fault.kind == "status":
            raise _Reply(fault.http_status, "injected fault", "KeepaEmulator.inject")
        if query.get("key") != self._api_key:
            raise _Reply(402, "the key is missing or has no access")
        allowed = ("GET", "POST") if endpoint == "deal" or endpoint in _MORE_POST else ("GET",)
        if method not in allowed:
            raise _Reply(405, f"method {method} is not allowed on /{endpoint}")
        for parameter in query:
            if parameter not in _KNOWN_PARAMETERS[endpoint]:
                self._ignored[f"{endpoint}.{parameter}"] += 1

    def _serve_safely(
        self, endpoint: str, query: Mapping[str, str], body: bytes
    ) -> tuple[dict[str, Any], int]:
        """:meth:`_serve`, turning a bug of the emulator into a 500 with the envelope."""
        try:
            return self._serve(endpoint, query, body)
        except _Reply:
            raise
        except Exception as exc:  # noqa: BLE001 (reported to the caller and counted)
            self._internal_errors += 1
            raise _Reply(500, "the emulator failed", f"{type(exc).__name__}: {exc}") from None

    def _serve(
        self, endpoint: str, query: Mapping[str, str], body: bytes
    ) -> tuple[dict[str, Any], int]:
        """Validate, admit, charge and build the payload (with the lock held)."""
        if endpoint == "token":
            return {}, 0
        if endpoint == "product":
            options, asins = self._product_options(query)
            self._admit()
            return self._products(asins, options)
        if endpoint in _MORE_ENDPOINTS:  # the rest of the API: _emulator_endpoints
            try:
                return serve_endpoint(
                    endpoint,
                    query,
                    body,
                    catalog=self._catalog,
                    minute=self.now_minute(),
                    admit=self._admit,
                    product=self._search_product,
                )
            except EndpointRefusal as refusal:
                raise _Reply(refusal.status, refusal.message, refusal.details) from None
        selection = self._selection(query, body)
        self._admit()
        return self._deals(selection)

    def _search_product(self, asin: str, *, history: bool, stats: int) -> dict[str, Any]:
        """A product as ``/search`` serves it: as ``/product`` would, without offers."""
        options = {"domain": 1, "history": int(history), "stats": stats, "buybox": 0, "rating": 0}
        return product_json(
            self._catalog,
            self._stream,
            asin,
            minute=self.now_minute(),
            options=options,
            offers_failed=False,
        )[0]

    def _admit(self) -> None:
        if self._account.balance <= 0:
            raise _Reply(
                429,
                f"not enough tokens: {self._account.balance} left",
                f"refill in {self._account.refill_in_ms(self._elapsed())} ms",
            )

    def _product_options(self, query: Mapping[str, str]) -> tuple[dict[str, int], list[str]]:
        raw = query.get("asin", "")
        asins = list(dict.fromkeys(a.strip().upper() for a in raw.split(",") if a.strip()))
        if not asins:
            raise _Reply(400, "parameter asin is missing or empty")
        domain = _int_parameter(query, "domain", low=0, high=99)
        if domain not in DOMAINS:
            raise _Reply(400, f"parameter domain must be a Keepa domain id, got {domain!r}")
        options: dict[str, int] = {"domain": domain}
        offers = _int_parameter(query, "offers", low=20, high=100)
        options["stats"] = _stats_parameter(query)
        for name, low, high, default in (
            ("buybox", 0, 1, 0),
            ("history", 0, 1, 1),
            ("rating", 0, 1, 0),
            ("update", -1, 100_000, -1),
            ("days", 1, 100_000, 0),
            ("stock", 0, 1, 0),
            ("historical-variations", 0, 1, 0),
            ("only-live-offers", 0, 1, 0),
        ):
            value = _int_parameter(query, name, low=low, high=high, default=default)
            assert value is not None  # noqa: S101 (a default is given)
            options[name] = value
        if len(asins) > MAX_ASINS:
            raise _Reply(400, f"too many ASINs: {len(asins)} > {MAX_ASINS}")
        if offers:
            options["offers"] = offers
            options["buybox"] = 0  # ignored with offers, as Keepa does
        return options, asins

    def _products(self, asins: list[str], options: Mapping[str, int]) -> tuple[dict[str, Any], int]:
        minute = self.now_minute()
        self._stream.extend(minute)
        products = []
        cost = 0
        recorded = self._recordings.products if self._recordings is not None else {}
        for asin in asins:
            if asin in recorded:
                product = json.loads(json.dumps(recorded[asin]))
                product_cost = _recorded_product_cost(product, options, self._offer_page_cost)
            elif self._catalog.index(asin) is None:
                continue
            else:
                product, product_cost = self._product(asin, options, minute)
            cost += product_cost
            products.append(product)
        self._products_served += len(products)
        return {"products": products}, cost

    def _product(
        self, asin: str, options: Mapping[str, int], minute: int
    ) -> tuple[dict[str, Any], int]:
        """One catalog product and what Keepa charges for it (see the class docs' table)."""
        traits = self._catalog.traits(asin)
        draw = random.Random(f"offer-state:{self._seed}:{asin}:{minute}")
        failed = draw.random() < self._offer_failure_share
        fresh = freshness(
            self._catalog,
            asin,
            minute,
            rating_share=self._rating_fresh_share,
            stock_share=self._stock_fresh_share,
            offers_share=self._fresh_offer_share,
        )
        product, live = product_json(
            self._catalog,
            self._stream,
            asin,
            minute=minute,
            options=options,
            offers_failed=failed,
            fresh=fresh,
        )
        if options.get("offers"):
            pages = math.ceil(live / 10)
            page_cost = (
                self._fresh_offer_page_cost
                if fresh.offers and options["update"] >= 0
                else self._offer_page_cost
            )
            cost = 1 if failed or not pages else page_cost * pages
        else:
            cost = 1 + (2 if options["buybox"] else 0)
        if options["rating"] and traits.rating is not None and fresh.rating:
            cost += 1
        if options["stock"] and fresh.stock:
            cost += 2
        if options["update"] == 0 and minute - product["lastUpdate"] < 60:
            cost += 1
        if options["historical-variations"] and traits.parent_asin is not None:
            cost += 1
        return product, cost

    def _selection(self, query: Mapping[str, str], body: bytes) -> Selection:
        text = body.decode("utf-8", "replace") if body.strip() else query.get("selection")
        if text is None:
            raise _Reply(400, "the selection is missing (selection=<json> or a JSON body)")
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise _Reply(400, "the selection is not valid JSON", str(exc)) from None
        try:
            selection = parse_selection(raw)
        except SelectionError as exc:
            raise _Reply(400, str(exc)) from None
        for name in selection.ignored:
            self._ignored[f"deal.selection.{name}"] += 1
        return selection

    def _deals(self, selection: Selection) -> tuple[dict[str, Any], int]:
        if self._recordings is not None and self._recordings.deal_pages:
            return self._recorded_deals()
        elapsed = self._elapsed()
        key = (selection.key(), selection.page)
        cached = self._deal_cache.get(key)
        if cached is not None and elapsed - cached[0] < self._deal_cache_seconds:
            page_payload = cached[1]
            from_cache = True
        else:
            deals = self._stream.select(selection, now_minute=self.now_minute())
            first = selection.page * DEALS_PER_PAGE
            roots = Counter(deal["rootCat"] for deal in deals)
            # Keepa lists the root categories of the whole result, "?" (unknown) first.
            order = sorted(roots, key=lambda c: (c != UNKNOWN_CATEGORY, c))
            page = deals[first : first + DEALS_PER_PAGE]
            self._stream.complete(page)
            page_payload = {
                "categoryCount": [roots[c] for c in order],
                "categoryIds": order,
                "categoryNames": [_category_name(c) for c in order],
                "dr": page,
                "drDateIndex": [],
            }
            from_cache = False
            if self._deal_cache_seconds > 0:
                self._deal_cache[key] = (elapsed, page_payload)
        self._deals_served += len(page_payload["dr"])
        return {"deals": page_payload, "dealsCached": from_cache}, self._deal_cost

    def _recorded_deals(self) -> tuple[dict[str, Any], int]:
        """The next recorded page, charged its recorded cost; an empty page after the last."""
        assert self._recordings is not None  # noqa: S101 (checked by the caller)
        pages = self._recordings.deal_pages
        if self._recorded_next >= len(pages):
            empty: dict[str, list[Any]] = {
                "categoryCount": [],
                "categoryIds": [],
                "categoryNames": [],
                "dr": [],
                "drDateIndex": [],
            }
            return {"deals": empty, "dealsCached": False}, self._deal_cost
        recorded = pages[self._recorded_next]
        self._recorded_next += 1
        wrapper = json.loads(json.dumps(recorded["deals"]))  # a copy the caller may keep
        self._deals_served += len(wrapper["dr"])
        cost = recorded.get("tokensConsumed")
        cost = cost if isinstance(cost, int) and cost >= 0 else self._deal_cost
        return {"deals": wrapper, "dealsCached": bool(recorded.get("dealsCached", False))}, cost


_CATEGORY_NAMES = {**dict(CATEGORIES), UNKNOWN_CATEGORY: "?"}


def _account_defaults(
    recorded: Recordings | None,
    refill_per_min: int | None,
    tokens: int | None,
    token_flow_reduction: float | None,
    start: datetime | None,
) -> tuple[int, int | None, float, datetime]:
    """The account's start where not given: the earliest recorded ``/token`` body, or defaults."""
    first: Mapping[str, Any] = (
        recorded.token_bodies[0] if recorded is not None and recorded.token_bodies else {}
    )
    if refill_per_min is None:
        rate = first.get("refillRate")
        refill_per_min = rate if isinstance(rate, int) and rate > 0 else 20
    if tokens is None and isinstance(first.get("tokensLeft"), int):
        tokens = first["tokensLeft"]
    if token_flow_reduction is None:
        reduction = first.get("tokenFlowReduction", 0.0)
        token_flow_reduction = float(reduction) if isinstance(reduction, (int, float)) else 0.0
    if start is None:
        stamp = recorded.first_timestamp() if recorded is not None else None
        start = DEFAULT_START if stamp is None else datetime.fromtimestamp(stamp // 1000, tz=UTC)
    return refill_per_min, tokens, token_flow_reduction, start


def _recorded_product_cost(
    product: Mapping[str, Any], options: Mapping[str, int], page_cost: int
) -> int:
    """What Keepa's rules charge for a recorded product object.

    Offers: *page_cost* per started page of 10 live offers (``liveOffersOrder``,
    at most ``offers``), the base 1 for none or a failed fetch; ``buybox`` 2
    without offers; ``rating`` 1 when its ``lastRatingUpdate`` is less than 14
    days before its ``lastUpdate``; ``stock`` 2 when a live offer has a
    ``stockCSV``; ``historical-variations`` 1 with a ``parentAsin``.
    """
    offers = options.get("offers", 0)
    if offers:
        live = product.get("liveOffersOrder")
        found = min(len(live), offers) if isinstance(live, list) else 0
        pages = math.ceil(found / 10)
        failed = product.get("offersSuccessful") is False
        cost = 1 if failed or not pages else page_cost * pages
    else:
        cost = 1 + (2 if options.get("buybox") else 0)
    updated, rated = product.get("lastUpdate"), product.get("lastRatingUpdate")
    if (
        options.get("rating")
        and isinstance(updated, int)
        and isinstance(rated, int)
        and 0 <= updated - rated < 14 * 24 * 60
    ):
        cost += 1
    listed = product.get("offers")
    if (
        options.get("stock")
        and isinstance(listed, list)
        and any(isinstance(o, Mapping) and o.get("stockCSV") for o in listed)
    ):
        cost += 2
    if options.get("historical-variations") and product.get("parentAsin"):
        cost += 1
    return cost


def _category_name(category: int) -> str:
    return _CATEGORY_NAMES.get(category, str(category))


def _unix_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _check_int(name: str, value: object, *, low: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")


def _check_share(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


class _Server(ThreadingHTTPServer):
    """The HTTP server: it remembers its connections so that closing ends them."""

    daemon_threads = True
    allow_reuse_address = False
    emulator: KeepaEmulator

    #: ``handle_request`` is only called once the socket is readable: never wait in it.
    timeout = 0

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._handlers: set[threading.Thread] = set()
        self._stopping = False
        # Writing to one end wakes the serving thread at once (no polling interval).
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, handler)

    def serve_until_stopped(self) -> None:
        """Accept connections until :meth:`stop` (the serving thread's loop)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._stopping:
                for key, _events in selector.select():
                    if key.fileobj is self.socket and not self._stopping:
                        self.handle_request()

    def stop(self) -> None:
        """Make :meth:`serve_until_stopped` return (from any thread)."""
        self._stopping = True
        self._wake_writer.send(b"x")

    def server_close(self) -> None:
        """Close the listening socket and the wake-up pair."""
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self._connections_lock:
            self._connections.add(request)
            self._handlers.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 (a broken connection ends only that connection)
            self.handle_error(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
                self._handlers.discard(threading.current_thread())
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: a client that hangs up is no news in tests."""

    def close_connections(self) -> None:
        """End every open connection and wait (briefly) for their threads."""
        with self._connections_lock:
            connections = list(self._connections)
            handlers = list(self._handlers)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for handler in handlers:
            handler.join(timeout=2.0)


class _Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 keep-alive, every answer JSON with a length."""

    protocol_version = "HTTP/1.1"
    #: Headers and body leave in two writes: without this, Nagle's algorithm and the
    #: client's delayed ACK would add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Stay quiet (and never log a URL: it carries the key)."""

    def _answer(self) -> None:
        emulator = self.server.emulator
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            # No body can be read reliably: answer 400 and close the connection.
            self.close_connection = True
            status, data = emulator._handle(  # noqa: SLF001
                self.command, self.path, b"", rejected="the Content-Length header is invalid"
            )
        else:
            body = self.rfile.read(length) if length > 0 else b""
            status, data = emulator._handle(self.command, self.path, body)  # noqa: SLF001
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer  # noqa: N815
    do_POST = _answer  # noqa: N815
    do_PUT = _answer  # noqa: N815
    do_DELETE = _answer  # noqa: N815
    do_PATCH = _answer  # noqa: N815
