"""The transports' one sans-I/O core: what to book, what to settle and sync, what to do next.

A transport (:mod:`tokenbudget.http.httpx`, :mod:`tokenbudget.http.httpx2`, sync
and async each) sends a request in four moves, and this module decides each one
without doing any I/O; the adapters only carry the decisions out:

1. **Book.** ``TransportCore.costs`` is the request's cost per limit name
   (the user's ``cost`` callable, else the dialect's estimate). Each cost is
   booked on the bucket of its limit; the request waits for the latest
   booking's time. Before any answer has reported a limit, the transport has
   no bucket for it: the first request costing it goes out alone and the
   others costing it wait for its answer (``TransportCore.to_probe``), so
   that none goes out unbooked alongside it; the same for a fixed window that
   no answer synced for a whole window (its phase may have moved).
2. **Send**, through the inner transport.
3. **Follow.** ``TransportCore.report`` reads the answer in the dialect
   (:func:`tokenbudget.http.parse`); ``TransportCore.follow`` lists the
   settles (each booking to the true cost the answer reports, or to its
   booked cost, or to zero for a refusal, which used nothing) and then the
   syncs (each bucket to the remaining figure of its limit, ``as_of`` the
   answer's ``Date``). Settling first marks the bookings as counted by the
   server, so that the sync does not subtract them as still in flight. A
   bucket is created for a limit the first time an answer reports it (unless
   the user gave the buckets): refilled continuously, or in one step per window
   when the limit comes back later than a continuous refill would bring it
   back (a fixed window). Answers overtake each other; within one transport
   the send order sorts them out: an answer to a request sent before the
   request of the latest answer synced is older news (it settles, but does not
   sync), and a sync takes off the requests that were still out when its own
   request left and are answered by now (the server may have counted them
   after it). Across processes the core's ``as_of`` orders answers of
   different ``Date`` seconds; within one second, an answered request stays in
   flight for ``SETTLE_AFTER`` seconds on a shared backend before it is
   settled, so that another process's older answer does not give it back.
   A streamed answer follows its headers when they arrive (settling each
   booking at its booked cost) and settles the true cost when the stream ends;
   an abandoned stream stays settled at its booking.
4. **Decide** (``TransportCore.decide``): return the answer; or, for a
   *wait* refusal, hold the buckets for the server's wait
   (``TransportCore.hold``: a request booked now waits that long, and all
   others queue behind it) and retry, at most ``retries`` times, then raise
   :class:`~tokenbudget.http.RateLimited`; for *too large* raise
   :class:`~tokenbudget.http.RequestTooLarge`, for *terminal*
   :class:`~tokenbudget.http.QuotaExhausted`, at once. With ``retries=0`` (an
   SDK that retries itself) every refusal is returned, the *too large* and
   *terminal* ones marked ``x-should-retry: false``, which the SDKs honour.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final, Generic, Literal, NamedTuple, TypeVar

import attrs

from tokenbudget._backend import Backend, MemoryBackend
from tokenbudget._bucket import AsyncReservation, AsyncTokenBucket, Reservation, TokenBucket
from tokenbudget._clock import Clock
from tokenbudget._config import BucketConfig, Rate
from tokenbudget.exceptions import (
    CostExceedsCapacity,
    QuotaExhausted,
    RateLimited,
    RequestTooLarge,
)

from ._dialect import Dialect
from ._dialect import dialect as resolve_dialect
from ._message import HeadersLike, RequestInfo, ResponseInfo, _decode_json
from ._openai import GroqDialect, OpenAIDialect, UsualAnswer, UsualLimit
from ._report import Limit, QuotaReport


__all__ = [
    "IN_FLIGHT",
    "Booking",
    "CostFunction",
    "Decision",
    "Follow",
    "TransportCore",
    "bucket_config",
]

#: Seconds a booking of a bucket the transport creates counts as on the wire until its answer
#: settles it (:attr:`tokenbudget.BucketConfig.in_flight`): longer than any request takes.
IN_FLIGHT: Final = 600.0

#: Seconds an answered booking stays in flight before it is settled, on a shared backend: an
#: answer that another process's request overtook (computed before that request reached the
#: server, arriving after it was answered) carries the same ``Date`` second, so the core's
#: ``as_of`` cannot tell it stale; while that request still counts as in flight, every sync
#: takes it off. Within one process the transport knows the send order and needs no delay.
SETTLE_AFTER: Final = 1.0

#: What a request that costs no known limit goes out alone on before the first answer.
FIRST_ANSWER: Final = "(first answer)"
_FIRST: Final = frozenset({FIRST_ANSWER})

#: The header that tells the OpenAI and Anthropic SDKs not to retry an answer.
SHOULD_RETRY: Final = "x-should-retry"

#: ``cost(request) -> {limit name: cost}``: the request is the HTTP library's own object.
CostFunction = Callable[[Any], Mapping[str, float]]

B = TypeVar("B", TokenBucket, AsyncTokenBucket)
R = TypeVar("R", Reservation, AsyncReservation)


#: The running totals' mark of a request sent alone (see ``TransportCore._late``).
_NO_MARK: Final[Mapping[str, float]] = MappingProxyType({})

#: Seconds of rounding a reset may carry (whole-second ``Date`` and RFC 3339 resets).
RESET_SLACK: Final = 2.0


def slower_than_continuous(limit: Limit) -> bool:
    """Whether *limit* comes back later than a continuous refill would bring it back.

    A continuous refill of ``limit`` per ``window`` makes the limit whole
    ``(limit - remaining) / rate`` seconds from now at the latest (*remaining* at
    its least: :attr:`~tokenbudget.http.Limit.least_remaining`); a reset later than that
    (beyond :data:`RESET_SLACK`) is a fixed window's, or a refill the answer
    does not describe: the bucket must not count on any refill before it.
    """
    remaining = limit.least_remaining
    if limit.limit is None or remaining is None or limit.reset is None:
        return False
    if limit.window is None or not limit.limit > 0:
        return False
    whole_in = max(limit.limit - remaining, 0.0) / (limit.limit / limit.window)
    return limit.reset > whole_in + RESET_SLACK


def bucket_config(limit: Limit) -> BucketConfig | None:
    """The bucket that mirrors *limit*, or None when the answer does not say enough.

    Capacity the limit, refilled by the whole limit per window: continuously
    (LLM APIs), or in one step per window when the dialect says so or when the
    limit comes back later than a continuous refill would bring it back
    (:func:`slower_than_continuous`: fixed windows, such as most servers of the
    IETF fields). A balance below zero (a correction, a hold) enters recharge
    mode, which ends as soon as one unit is back, so that a request waits only
    for what it needs. Bookings count as in flight for :data:`IN_FLIGHT`
    seconds until their answer settles them.

    >>> from tokenbudget.http import Limit
    >>> config = bucket_config(Limit(5000, 4986, 2400, window=3600, step=3600))
    >>> config.capacity, config.refill.tokens_per_second * 3600, config.refill_step
    (5000.0, 5000.0, 3600.0)

    .. versionadded:: 0.1.0
    """
    if limit.limit is None or limit.window is None:
        return None
    if not (math.isfinite(limit.limit) and limit.limit > 0):
        return None
    step = limit.step
    if step is None and slower_than_continuous(limit):
        step = limit.window
    return BucketConfig(
        limit.limit,
        Rate(limit.limit, limit.window),
        burst_threshold=min(limit.limit, 1.0),
        refill_step=step,
        in_flight=IN_FLIGHT,
    )


@attrs.define(eq=False)
class Booking(Generic[R]):
    """One attempt of a request: what it booked on which limit, and when it was sent.

    Attributes:
        costs: The cost per limit name (every limit the request costs, booked or not).
        reservations: The reservation per limit name (the limits with a bucket).
        seq: The send order of the attempt (0 until sent).
        before: The attempts still unanswered when this one was sent.
        charged: Once answered, what it is settled at per limit name (0 if refused).
        done: Whether its bookings are settled (no longer in flight for the buckets).
        answered: Its place in the order of answers (-1 until answered).
        sent_after: How many answers had been followed when it was sent.
        spent_mark: What the answered requests had spent per limit when it was sent
            (``TransportCore``'s running totals, taken when others were on the wire).
        restated_mark: How many answered requests' charges had changed by then.
    """

    costs: Mapping[str, float]
    reservations: dict[str, R] = attrs.field(factory=dict)
    seq: int = 0
    before: tuple[Booking[Any], ...] = ()
    charged: dict[str, float] | None = None
    done: bool = False
    answered: int = -1
    sent_after: int = 0
    spent_mark: Mapping[str, float] = _NO_MARK
    restated_mark: int = 0

    def spent(self, name: str) -> float:
        """What this attempt spends of limit *name* (its booking until it is answered)."""
        if self.charged is not None and name in self.charged:
            return self.charged[name]
        return self.costs.get(name, 0.0)

    @property
    def delay(self) -> float:
        """Seconds until the latest booking's time."""
        # AsyncReservation.delay is Reservation's property, which mypy cannot see through.
        delays: list[float] = [r.delay for r in self.reservations.values()]  # type: ignore[misc]
        return max(delays, default=0.0)


class SyncCall(NamedTuple):
    """One ``bucket.sync(tokens, refill_in=..., rate=..., as_of=...)`` to make.

    A named tuple rather than an attrs class: one or two are made per answer.
    """

    name: str
    tokens: float
    refill_in: float | None = None
    rate: Rate | None = None
    as_of: float | None = None


class Follow(NamedTuple):
    """What an answer asks of the buckets, in order: settle these bookings, then sync these."""

    settles: tuple[tuple[str, float], ...] = ()
    syncs: tuple[SyncCall, ...] = ()


_NOTHING: Final = Follow()
#: Builds a named tuple from all its fields without the frame of its generated ``__new__``.
_new_tuple = tuple.__new__


@attrs.frozen
class Decision:
    """What to do with an answer.

    Attributes:
        action: ``"return"`` the answer, ``"retry"`` the request, ``"raise"`` *error*.
        error: The error to raise (``"raise"``).
        mark: Whether the returned answer gets ``x-should-retry: false``.
    """

    action: Literal["return", "retry", "raise"]
    error: Exception | None = None
    mark: bool = False


_RETURN: Final = Decision("return")
#: The dialects whose usual answer :meth:`TransportCore.follow_usual` follows (not a subclass:
#: it may parse otherwise).
_USUAL_DIALECTS: Final = (OpenAIDialect, GroqDialect)
_RETRY: Final = Decision("retry")


def _ours(dialect: object, name: str) -> bool:
    """Whether *dialect*'s method *name* is tokenbudget's own: not the user's, nor patched on.

    Read when a transport is made: the fast paths that stand for a built-in
    dialect's ``parse`` or ``estimate`` are taken only while they would give
    what that method gives.
    """
    function = getattr(getattr(dialect, name, None), "__func__", None)
    return str(getattr(function, "__module__", "")).startswith("tokenbudget.http.")


class _UsualLimits(Mapping[str, Limit]):
    """The limits of a usual answer (``UsualLimit`` figures), as :class:`Limit` objects when read.

    What :attr:`TransportCore.limits` holds after an answer the fast path followed:
    the same mapping the answer's report would give, built only if somebody reads it.
    """

    __slots__ = ("_built", "_figures")

    def __init__(self, figures: tuple[UsualLimit, ...]) -> None:
        self._figures = figures
        self._built: dict[str, Limit] | None = None

    def _limits(self) -> dict[str, Limit]:
        built = self._built
        if built is None:
            built = self._built = {
                name: Limit(limit, remaining, reset, window=window, unit=unit)
                for name, limit, remaining, reset, window, unit in self._figures
            }
        return built

    def __getitem__(self, name: str) -> Limit:
        return self._limits()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._limits())

    def __len__(self) -> int:
        return len(self._figures)

    def __repr__(self) -> str:
        return repr(self._limits())


def _charged(costs: Mapping[str, float], report: QuotaReport, *, final: bool) -> dict[str, float]:
    """What an answered request is settled at per limit: nothing if refused, else its true cost.

    The true cost where the answer reports it (*final*: not the headers of a stream whose
    body is still to come), else its booking.
    """
    if report.kind is not None:
        return dict.fromkeys(costs, 0.0)
    if final and report.cost:
        true_cost = report.cost
        return {name: true_cost.get(name, cost) for name, cost in costs.items()}
    return dict(costs)


def _late_spent(before: tuple[Booking[Any], ...]) -> dict[str, float] | None:
    """What the requests of *before* answered by now spent, per limit; None if none is.

    The requests a sync takes off (see :meth:`TransportCore.follow`): each
    answered one's :meth:`Booking.spent` of every limit, summed in one pass
    (with many requests on the wire, *before* is long and every answer reads it).
    """
    late: dict[str, float] | None = None
    for other in before:
        if not other.done:
            continue
        if late is None:
            late = {}
        for name in other.costs:
            late[name] = late.get(name, 0.0) + other.spent(name)
    return late


def _check_retries(retries: object) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
    return retries


class TransportCore(Generic[B]):
    """The state and the decisions of one transport; no I/O (see the module docstring).

    Args:
        dialect: A dialect name or :class:`~tokenbudget.http.Dialect` object.
        bucket_type: :class:`~tokenbudget.TokenBucket` or :class:`~tokenbudget.AsyncTokenBucket`:
            the kind of bucket the transport creates.
        backend: Where the created buckets live (default: one memory backend per transport).
        key: The prefix of the created buckets' names (default ``"tokenbudget.http:DIALECT"``);
            the bucket of limit ``L`` is ``KEY:L``.
        buckets: Limit name to a bucket the user built; then no bucket is created.
        cost: ``(request) -> {limit name: cost}``, or None for the dialect's estimate.
        retries: How many times a *wait* refusal is retried (0: returned).
        clock: The clock of the created buckets (default: the monotonic clock).
    """

    def __init__(
        self,
        dialect: str | Dialect,
        *,
        bucket_type: type[B],
        backend: Backend | None = None,
        key: str | None = None,
        buckets: Mapping[str, B] | None = None,
        cost: CostFunction | None = None,
        retries: int = 3,
        clock: Clock | None = None,
    ) -> None:
        self.dialect = resolve_dialect(dialect)
        self.retries = _check_retries(retries)
        if cost is not None and not callable(cost):
            raise TypeError(f"cost must be a callable (request) -> {{limit: cost}}, got {cost!r}")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self._bucket_type: type[B] = bucket_type
        self.buckets: dict[str, B] = {}
        if buckets is not None:
            if not isinstance(buckets, Mapping) or not buckets:
                raise TypeError(
                    f"buckets must map limit names to {bucket_type.__name__}s, got {buckets!r}"
                )
            for name, bucket in buckets.items():
                if not isinstance(bucket, bucket_type):
                    raise TypeError(
                        f"buckets[{name!r}] must be a {bucket_type.__name__}, got {bucket!r}"
                    )
                self.buckets[str(name)] = bucket
        self.own_buckets = buckets is None
        self.backend = backend
        self.key = f"tokenbudget.http:{self.dialect.name}" if key is None else key
        self.clock = clock
        self.cost = cost
        #: The limits of the latest answer (the dialect's estimate may use them).
        self.limits: Mapping[str, Limit] = {}
        self._sent = 0
        self._synced = -1
        #: Attempts sent and not yet answered, by send order.
        self._outstanding: dict[int, Booking[Any]] = {}
        self._lock = threading.Lock()
        #: Limits a request costs but an answer did not report (no bucket, no waiting for one).
        self.unreported: set[str] = set()
        #: When each limit's bucket was last synced (the transport's clock).
        self._synced_at: dict[str, float] = {}
        #: Answers followed so far.
        self._answers = 0
        #: What the answered requests spent per limit, summed as each was answered, and
        #: how many times an answered request's charge changed since it was summed (a
        #: stream's true cost): see :meth:`_late`. Kept without settles that wait
        #: (``settle_after`` 0); a request sent while others are on the wire keeps a copy.
        self._spent_totals: dict[str, float] = {}
        self._restated = 0
        #: The limits :meth:`to_probe` never names once an answer came (None: to be read again).
        self._steady: frozenset[str] | None = None
        #: Answered bookings whose settles wait (see SETTLE_AFTER): (due time, booking, settles).
        self._deferred: list[tuple[float, Booking[Any], tuple[tuple[str, float], ...]]] = []
        shared = (backend is not None and type(backend) is not MemoryBackend) or any(
            type(bucket._backend) is not MemoryBackend  # noqa: SLF001 -- where it lives
            for bucket in self.buckets.values()
        )
        #: Seconds an answered booking stays in flight before it is settled.
        self.settle_after = SETTLE_AFTER if shared else 0.0
        #: Whether the dialect's ``parse`` is a built-in one's: it only reads an answer's
        #: decoded body, which the client's ``json()`` may then have (a user's may keep it).
        self.builtin = _ours(self.dialect, "parse")
        usual = type(self.dialect) in _USUAL_DIALECTS
        #: The dialect's estimate of a chat request's decoded body, for :meth:`costs` (the
        #: built-in OpenAI-style dialects, exactly, their own estimate), else None.
        self._usual_estimate: Callable[[dict[str, object]], dict[str, float] | None] | None = (
            self.dialect._usual_estimate  # type: ignore[attr-defined]  # noqa: SLF001
            if usual and _ours(self.dialect, "estimate")
            else None
        )
        #: The dialect's reader of its usual answer, for :meth:`follow_usual` (the built-in
        #: OpenAI-style dialects, exactly, their own parse, while no settle waits), else None.
        self.usual_answer: (
            Callable[
                [Mapping[str, list[str]], bytes | dict[str, object] | None, int],
                UsualAnswer | None,
            ]
            | None
        ) = (
            self.dialect._usual_answer  # type: ignore[attr-defined]  # noqa: SLF001
            if usual and self.builtin and not self.settle_after
            else None
        )

    # -- 1. book -----------------------------------------------------------------------

    def to_probe(self, costs: Mapping[str, float], now: float) -> frozenset[str]:
        """The limits a request costs that no answer has reported yet, or not lately.

        The first request costing such a limit goes out alone on it (the others
        costing it wait for its answer, which creates the limit's bucket), so that
        none goes out unbooked beside it. The same for a fixed window (a stepped
        bucket) that no answer has synced for a whole window: the server's next
        window may start with this request, and until its answer tells when it
        ends, the bucket's steps may not fall where the server's do. Empty when the
        user gave the buckets, and for limits an answer already failed to report.

        A request that costs no limit before any answer came (a dialect that
        estimates from the limits an answer names, as ``ietf`` does) goes out alone
        on :data:`FIRST_ANSWER`: the others wait for its answer, then estimate again.
        """
        if not self.own_buckets:
            return frozenset()
        if self._answers == 0 and not any(cost > 0 for cost in costs.values()):
            return _FIRST
        names: set[str] = set()
        for name, cost in costs.items():
            if cost <= 0 or name in self.unreported:
                continue
            bucket = self.buckets.get(name)
            if bucket is None:
                names.add(name)
                continue
            step = bucket.config.refill_step
            if step is not None and now - self._synced_at.get(name, -math.inf) >= step:
                names.add(name)
        return frozenset(names)

    def probed(self, names: frozenset[str], *, answered: bool, now: float) -> None:
        """Record the answer to a request sent alone on *names*: those it did not report."""
        if answered:
            with self._lock:
                self.unreported |= {name for name in names if name not in self.buckets}
                for name in names:  # a fixed window is not probed again before it passes
                    self._synced_at.setdefault(name, now)
                self._steady = None

    def steady(self, costs: Mapping[str, float]) -> bool:
        """Whether :meth:`to_probe` of *costs* is empty at any time, known without reading it.

        True once an answer came when every limit *costs* names has a continuously
        refilled bucket or went unreported (or when the user gave the buckets); False
        says nothing: ask :meth:`to_probe`.
        """
        if not self.own_buckets:
            return True
        steady = self._steady
        if steady is None:
            with self._lock:
                steady = self._steady = frozenset(
                    [
                        name
                        for name, bucket in self.buckets.items()
                        if bucket.config.refill_step is None
                    ]
                ) | frozenset(self.unreported)
        return self._answers > 0 and costs.keys() <= steady

    def costs(
        self, request: object, method: str, url: object, headers: HeadersLike, body: object
    ) -> dict[str, float]:
        """The request's cost per limit name: the user's ``cost``, else the dialect's estimate.

        Raises:
            ValueError: A cost that is not a finite number >= 0.
            TypeError: ``cost`` returned no mapping.
        """
        if self.cost is None:
            if self._usual_estimate is not None and type(body) is bytes and body[:1] == b"{":
                # A JSON object decoded once: a chat's body straight to the dialect's fast
                # path (figures that need no checking), any other decoded to its estimate.
                decoded = _decode_json(body)
                if type(decoded) is dict:
                    if "messages" in decoded:
                        usual = self._usual_estimate(decoded)
                        if usual is not None:
                            return usual
                    body = decoded
            # The dialect's own method, resolved once (estimate() would resolve it per call).
            costs = self.dialect.estimate(RequestInfo(method, url, headers, body), self.limits)
        else:
            costs = self.cost(request)
        if type(costs) is not dict and not isinstance(costs, Mapping):
            raise TypeError(
                f"{self._who()} must give a mapping of limit name to cost, got {costs!r}"
            )
        out: dict[str, float] = {}
        for name, value in costs.items():
            if type(value) is float and 0.0 <= value < math.inf and type(name) is str:
                out[name] = value  # the usual estimate: nothing to convert or to refuse
                continue
            number = float(value)
            if not (math.isfinite(number) and number >= 0):
                raise ValueError(
                    f"{self._who()} gave {value!r} for limit {name!r}: not a number >= 0"
                )
            out[str(name)] = number
        return out

    def _who(self) -> str:
        """Who estimates the costs, for an error's message."""
        return "cost(request)" if self.cost is not None else f"dialect {self.dialect.name!r}"

    def to_book(self, costs: Mapping[str, float]) -> list[tuple[str, B, float]]:
        """The bookings to make: ``(limit, bucket, cost)`` for each positive cost with a bucket."""
        return [
            (name, bucket, cost)
            for name, cost in costs.items()
            if cost > 0 and (bucket := self.buckets.get(name)) is not None
        ]

    def too_large(self, name: str, error: CostExceedsCapacity) -> RequestTooLarge:
        """The error for a cost that the bucket of limit *name* can never admit."""
        return RequestTooLarge(
            error.cost,
            error.max_cost,
            limit=name,
            message=f"the {self.dialect.name} quota's limit {name!r} never admits it",
        )

    def sent(self, booking: Booking[Any]) -> None:
        """Record that *booking*'s request is being sent.

        Its place in the send order, and the requests still unanswered then.
        """
        with self._lock:
            self._sent += 1
            booking.seq = self._sent
            booking.before = tuple(self._outstanding.values())
            booking.sent_after = self._answers
            if booking.before:  # only then may any request be late for it
                booking.spent_mark = dict(self._spent_totals)
                booking.restated_mark = self._restated
            elif self._spent_totals:  # no mark is alive: the totals start again (no drift)
                self._spent_totals.clear()
            self._outstanding[booking.seq] = booking

    def abandoned(self, booking: Booking[Any], *, reached: bool) -> None:
        """Record that *booking*'s request got no answer (it *reached* the server or not)."""
        with self._lock:
            self._outstanding.pop(booking.seq, None)
            booking.before = ()
            booking.charged = {
                name: (booking.costs[name] if reached else 0.0) for name in booking.costs
            }

    # -- 3. follow ---------------------------------------------------------------------

    def report(
        self, status: int, headers: HeadersLike, body: bytes | None, url: str
    ) -> QuotaReport:
        """What the answer says about the quota (the dialect's :func:`~tokenbudget.http.parse`)."""
        return self.parse(ResponseInfo(headers, body, status=status, url=url))

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """The dialect's reading of *response* (see :meth:`report`)."""
        report = self.dialect.parse(response)
        if not isinstance(report, QuotaReport):
            raise TypeError(f"dialect {self.dialect.name!r} returned {report!r}, not a QuotaReport")
        return report

    def create(self, report: QuotaReport) -> list[str]:
        """Create the buckets of limits reported for the first time; their names.

        Only when the user gave no buckets. The bucket of limit ``L`` is named
        ``KEY:L`` on the backend; it starts from the reported remaining units
        (ignored when the name already exists on a shared backend).
        """
        created: list[str] = []
        if not self.own_buckets:
            return created
        for name, limit in report.limits.items():
            if name in self.buckets:
                continue
            config = bucket_config(limit)
            if config is None:
                continue
            remaining = limit.least_remaining
            tokens = (
                config.capacity if remaining is None else min(max(remaining, 0.0), config.capacity)
            )
            self.buckets[name] = self._bucket_type(
                config,
                clock=self.clock,
                tokens=tokens,
                backend=self.backend,
                key=f"{self.key}:{name}",
            )
            created.append(name)
            self._steady = None
        return created

    def follow(
        self, booking: Booking[Any], report: QuotaReport, *, final: bool = True, now: float = 0.0
    ) -> Follow:
        """The settles and syncs an answer asks for.

        On a shared backend the settles of an answered request wait
        :data:`SETTLE_AFTER` seconds (:meth:`due` gives them back): until then
        the request counts as in flight for every process's syncs.

        Args:
            booking: The attempt the answer answers.
            report: What the answer says.
            final: False for the headers of a streamed answer (its body, and the
                true cost, come later: see :meth:`settle_stream`).
            now: The transport's clock now.
        """
        with self._lock:
            limits = report.limits
            if limits:
                self.limits = limits
                if self.own_buckets and not limits.keys() <= self.buckets.keys():
                    self.create(report)
            refused = report.kind is not None
            booking.charged = charged = _charged(booking.costs, report, final=final)
            booking.answered = self._answers
            self._answers += 1
            self._outstanding.pop(booking.seq, None)
            settles = tuple([(name, charged[name]) for name in booking.reservations])
            if self.settle_after > 0 and not refused and settles:
                self._deferred.append((now + self.settle_after, booking, settles))
                settles = ()
            else:
                booking.done = True
            # Requests that were on the wire when this one left and are answered (settled)
            # by now may have reached the server after it: its figure may lack them, and the
            # bucket no longer counts them as in flight. Take them off (at worst twice).
            late = self._late(booking)
            if booking.seq < self._synced:
                booking.before = ()
                return Follow(settles)  # older news than an answer already synced
            self._synced = booking.seq
            # This process's answered requests whose settles wait (SETTLE_AFTER) still count
            # as in flight for the bucket; this one and those answered before it left are in
            # the server's figure for sure (it counted them before it counted this one).
            counted = (
                [
                    other
                    for _, other, _ in self._deferred
                    if not other.done
                    and (other is booking or 0 <= other.answered < booking.sent_after)
                ]
                if self._deferred
                else []
            )
            booking.before = ()  # needed no more: no chain of old bookings is kept alive
            if not limits:
                return Follow(settles)
            return Follow(settles, self._syncs(report, late, counted, now))

    def _late(self, booking: Booking[Any]) -> dict[str, float] | None:
        """What the requests an answer's sync takes off spent per limit (None: none).

        Those still unanswered when *booking* was sent and answered by now
        (``booking.before`` that are ``done``); the caller holds the lock and has
        just marked *booking* done. Without settles that wait, a request is done
        when it is answered, and those are exactly the requests answered since
        *booking* was sent (a request sent after it and answered first makes its
        answer older news, which syncs nothing): what they spent is the running
        totals' growth since then, read in one step however many requests are on
        the wire, unless one of their charges changed since (a stream that ended),
        which only the requests themselves know. Adds *booking*'s own charge to the
        totals.
        """
        before = booking.before
        if self.settle_after:
            return _late_spent(before)
        totals = self._spent_totals
        if not before:
            late = None  # nothing was on the wire when it left
        elif booking.restated_mark == self._restated:
            mark = booking.spent_mark
            late = {name: total - mark.get(name, 0.0) for name, total in totals.items()}
        else:
            late = _late_spent(before)
        charged = booking.charged
        if charged:
            for name, cost in charged.items():
                totals[name] = totals.get(name, 0.0) + cost
        return late

    def follow_usual(self, booking: Booking[Any], usual: UsualAnswer, now: float) -> Follow | None:
        """:meth:`follow` of an answer the dialect's ``_usual_answer`` read, without its report.

        The same settles and syncs, and the same records, as :meth:`follow` of the
        report :meth:`report` would give for that answer (a final one: not a
        stream), which is never built. None, changing nothing, when the answer
        reports a limit that has no bucket yet (:meth:`follow` creates it).
        """
        figures, true_cost, as_of = usual
        with self._lock:
            buckets = self.buckets
            if figures:
                if self.own_buckets:
                    for figure in figures:
                        if figure[0] not in buckets:
                            return None
                self.limits = _UsualLimits(figures)
            # _charged(): the true cost where the answer reports it, else the booking
            charged = dict(booking.costs)
            for name, cost in true_cost.items():
                if name in charged:
                    charged[name] = cost
            booking.charged = charged
            booking.answered = self._answers
            self._answers += 1
            self._outstanding.pop(booking.seq, None)
            settled = []  # loops rather than comprehensions: no frame of their own
            for name in booking.reservations:
                settled.append((name, charged[name]))  # noqa: PERF401 -- no frame
            settles = tuple(settled)
            booking.done = True
            late = self._late(booking)
            booking.before = ()
            if booking.seq < self._synced:
                return Follow(settles)  # older news than an answer already synced
            self._synced = booking.seq
            if not figures:
                return Follow(settles)
            return _new_tuple(Follow, (settles, self._usual_syncs(figures, late, as_of, now)))

    def _usual_syncs(
        self,
        figures: tuple[UsualLimit, ...],
        late: dict[str, float] | None,
        as_of: float | None,
        now: float,
    ) -> tuple[SyncCall, ...]:
        """:meth:`_syncs` of a usual answer's figures; the caller holds the lock.

        *late* is what the requests taken off spent per limit (:meth:`_late`).
        """
        syncs: list[SyncCall] = []
        buckets = self.buckets
        for name, limit, remaining, reset, window, _ in figures:
            bucket = buckets.get(name)
            if bucket is None:
                continue
            # slower_than_continuous(limit), on the figures
            if bucket._config.refill_step is not None or (  # noqa: SLF001 -- its config
                limit > 0 and reset > max(limit - remaining, 0.0) / (limit / window) + RESET_SLACK
            ):
                refill_in: float | None = reset
            else:
                refill_in = None
            tokens = remaining if late is None else remaining - late.get(name, 0.0)
            # SyncCall(name, tokens, refill_in, None, as_of), without its __new__'s frame
            syncs.append(_new_tuple(SyncCall, (name, tokens, refill_in, None, as_of)))
            self._synced_at[name] = now
        return tuple(syncs)

    def _syncs(
        self,
        report: QuotaReport,
        late: dict[str, float] | None,
        counted: list[Booking[Any]],
        now: float,
    ) -> tuple[SyncCall, ...]:
        """The syncs of an answer (see :meth:`follow`); the caller holds the lock.

        *late* is what the requests taken off spent per limit (:meth:`_late`).
        """
        syncs: list[SyncCall] = []
        buckets = self.buckets
        as_of = report.as_of
        for name, limit in report.limits.items():
            bucket = buckets.get(name)
            remaining = limit.least_remaining  # a rounded figure counts its least
            if bucket is None or remaining is None:
                continue
            # A stepped bucket anchors its steps at the reset; a continuous one counts
            # on no refill before a reset later than its own refill would make it whole.
            if bucket.config.refill_step is not None or slower_than_continuous(limit):
                refill_in = limit.reset
            else:
                refill_in = None
            tokens = remaining if late is None else remaining - late.get(name, 0.0)
            if counted:
                tokens += sum(other.spent(name) for other in counted if name in other.reservations)
            # SyncCall(name, tokens, refill_in, None, as_of), without its __new__'s frame
            syncs.append(_new_tuple(SyncCall, (name, tokens, refill_in, None, as_of)))
            self._synced_at[name] = now
        return tuple(syncs)

    def settle_stream(self, booking: Booking[Any], report: QuotaReport) -> Follow:
        """The settles when a streamed answer ends: the true costs it reported.

        A settle still waiting (:meth:`due`) is replaced by these.
        """
        with self._lock:
            waiting = [entry for entry in self._deferred if entry[1] is booking]
            for entry in waiting:
                self._deferred.remove(entry)
            settles = dict(waiting[0][2]) if waiting else {}
            settles.update((n, report.cost[n]) for n in booking.reservations if n in report.cost)
            charged = booking.charged
            if charged is not None:
                if booking.done and any(charged.get(n) != cost for n, cost in settles.items()):
                    self._restated += 1  # the running totals summed its earlier charge
                charged.update(settles)
            booking.done = True
            return Follow(tuple(settles.items()))

    def next_due(self) -> float | None:
        """When the earliest waiting settle is due (the transport's clock), or None."""
        with self._lock:
            return min((entry[0] for entry in self._deferred), default=None)

    def due(self, now: float) -> list[tuple[Booking[Any], Follow]]:
        """The waiting settles due at *now* (all of them with ``now=math.inf``)."""
        if not self._deferred:
            return []
        with self._lock:
            ready = [entry for entry in self._deferred if entry[0] <= now]
            if not ready:
                return []
            self._deferred = [entry for entry in self._deferred if entry[0] > now]
            for _, booking, _ in ready:
                booking.done = True
            return [(booking, Follow(settles)) for _, booking, settles in ready]

    # -- 4. decide ---------------------------------------------------------------------

    def decide(self, report: QuotaReport, attempt: int, status: int) -> Decision:  # noqa: PLR0911
        """Return, retry or raise after attempt number *attempt* (1 for the first send)."""
        kind = report.kind
        if kind is None:
            return _RETURN
        if kind == "wait":
            if attempt <= self.retries:
                return _RETRY
            if self.retries == 0:
                return _RETURN
            return Decision(
                "raise",
                RateLimited(
                    report.retry_after, status=status, attempts=attempt, message=report.message
                ),
            )
        if self.retries == 0:
            return Decision("return", mark=True)
        if kind == "too_large":
            name, cost = next(iter(report.requested.items()), (None, math.nan))
            limit = report.limits.get(name) if name is not None else None
            max_cost = math.nan if limit is None or limit.limit is None else limit.limit
            return Decision(
                "raise",
                RequestTooLarge(cost, max_cost, limit=name, message=report.message, status=status),
            )
        return Decision("raise", QuotaExhausted(report.message, status=status))

    def hold(self, booking: Booking[Any], report: QuotaReport) -> tuple[SyncCall, ...]:
        """Syncs that make every request booked from now on wait out a *wait* refusal.

        The limits the refusal names as short (exhausted, or fewer units left
        than this request booked) are held, else every limit it booked. A
        continuously refilled bucket is set to hold this request's cost
        ``retry_after`` seconds from now (the server's word: it fits then); a
        stepped one to nothing until the server's next step.
        """
        wait = report.retry_after
        if wait is None:
            resets = [lim.reset for lim in report.limits.values() if lim.reset is not None]
            wait = max(resets, default=1.0)
        short = [
            name
            for name in booking.costs
            if name in self.buckets
            and (limit := report.limits.get(name)) is not None
            and (least := limit.least_remaining) is not None
            and least < booking.costs[name]
        ]
        names = short or [name for name in booking.costs if name in self.buckets]
        calls: list[SyncCall] = []
        for name in names:
            bucket = self.buckets[name]
            cost = booking.costs[name]
            if bucket.config.refill_step is None:
                calls.append(SyncCall(name, min(cost, bucket.config.capacity), wait))
            else:
                limit = report.limits.get(name)
                left = (
                    0.0 if limit is None or limit.remaining is None else min(limit.remaining, 0.0)
                )
                calls.append(SyncCall(name, left, wait))
        return tuple(calls)
