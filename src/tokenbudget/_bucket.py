"""The buckets users hold: thin sync and async shells over the transition core."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import ClassVar, Final, Literal, TypeVar

import attrs

from ._backend import Backend, MemoryBackend
from ._clock import Clock, MonotonicClock, WallClock
from ._config import BucketConfig, Rate, real_number
from ._core import (
    Admit,
    Cancel,
    Observation,
    Outcome,
    Rebook,
    Request,
    SetRate,
    Settle,
    Sync,
    admits_now,
)
from .exceptions import AcquireTimeout, ReservationError


__all__ = [
    "AsyncReservation",
    "AsyncTokenBucket",
    "Event",
    "Reservation",
    "Snapshot",
    "TokenBucket",
]

log = logging.getLogger("tokenbudget")
#: Bound once: the hot path asks it on every call (the logger caches the answer).
_debug_enabled = log.isEnabledFor
_DEBUG = logging.DEBUG
#: The logger's own cache of ``isEnabledFor`` (level -> bool, emptied in place whenever a
#: level or ``logging.disable`` changes), read first by another backend's hot path (the
#: memory one reads it in the core's closure): a cached False saves it a Python call;
#: anything else (True, not cached, no such cache) asks ``isEnabledFor`` itself, so the
#: answer is always the logger's.
_debug_cached: Callable[[int], bool | None] = getattr(log, "_cache", {}).get

_INF = math.inf
_NEG_INF = -math.inf
# Where an operation reports its outcome it first asks, inline, whether anyone listens:
# ``self._on_event is not None or (_debug_cached(_DEBUG) is not False and
# _debug_enabled(_DEBUG))`` (the logger's cache first: a cached False needs no call).


R = TypeVar("R")

EventKind = Literal[
    "admitted",
    "waited",
    "refused",
    "recharge_entered",
    "recharge_left",
    "cancelled",
    "settled",
    "synced",
]


@attrs.frozen
class Event:
    """One decision of a bucket, passed to the ``on_event`` hook and logged.

    Every event is also logged at ``DEBUG`` on the ``tokenbudget`` logger.

    Attributes:
        kind: ``admitted`` (now), ``waited`` (booked for later; *delay* says
            how long), ``refused`` (``try_acquire`` False or an acquire
            timeout), ``recharge_entered``, ``recharge_left``, ``cancelled``,
            ``settled``, ``synced``.
        key: The bucket's key.
        cost: The cost concerned (the reported balance for ``synced``).
        delay: Seconds until the booking's time (``waited``, ``refused``).
        tokens: The balance now, net of every booking, after the decision.
        time: The backend time of the decision.

    .. versionadded:: 0.1.0
    """

    kind: EventKind
    key: str
    cost: float
    delay: float
    tokens: float
    time: float


EventHook = Callable[[Event], None]
#: The arguments of a sync: ``(tokens, refill_in, rate, as_of)``.
SyncArgs = tuple[float, float | None, Rate | None, float | None]


@attrs.frozen
class Snapshot:
    """An immutable view of a bucket at one moment.

    Attributes:
        tokens: The balance now, net of every booking (negative while bookings
            are pending or the bucket is in debt).
        recharging: Whether the bucket is in recharge mode now.
        time: The backend time of the snapshot.
        rate: The refill rate now, tokens per second (a sync may change it).
        capacity: The bucket's capacity.
        pending: How many bookings wait for their time.
        backlog: Seconds until the last booking's time: a new request waits at
            least this long (first come, first served).
        booked: Tokens booked since :attr:`since` (net of cancels and settles).
        since: When the bucket's state was created (backend time).
        adopted: False only in the snapshot a stale :meth:`TokenBucket.sync`
            returns (its *as_of* older than the last one adopted): the sync
            changed nothing, and the snapshot is the bucket as it stands.
        first_in_flight: The id (``Reservation.booking_id``) of the oldest
            booking in flight now — admitted, neither settled nor cancelled,
            within :attr:`BucketConfig.in_flight <tokenbudget.BucketConfig>` —
            by any process sharing the bucket; 0 when none is. A request that
            must not overtake earlier ones waits while it is below its own id.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.1.0
       The :attr:`adopted` attribute.
    """

    tokens: float
    recharging: bool
    time: float
    rate: float
    capacity: float
    pending: int
    backlog: float
    booked: float
    since: float
    adopted: bool = True
    first_in_flight: int = 0

    @property
    def demand(self) -> float | None:
        """Tokens booked per second since :attr:`since` (None before any time passed)."""
        elapsed = self.time - self.since
        return self.booked / elapsed if elapsed > 0 else None

    @property
    def utilization(self) -> float | None:
        """Demand versus refill, :attr:`demand` / :attr:`rate`.

        Near 1.0 (or above, while a backlog builds) one consumer takes the
        whole account; a second consumer on the same account will wait. It
        includes the starting balance, so it settles to its long-run value
        only after many refills.
        """
        demand = self.demand
        return None if demand is None else demand / self.rate

    @classmethod
    def _from(cls, obs: Observation, capacity: float) -> Snapshot:
        return cls(
            tokens=obs.tokens,
            recharging=obs.recharging,
            time=obs.time,
            rate=obs.rate,
            capacity=capacity,
            pending=obs.pending,
            backlog=obs.backlog,
            booked=obs.booked,
            since=obs.since,
            first_in_flight=obs.first_in_flight,
        )


def _check_number(name: str, value: object, *, minimum: float | None = None) -> float:
    if (
        type(value) is float
        and -math.inf < value < math.inf  # NaN fails
        and (minimum is None or value >= minimum)
    ):
        return value  # the usual case: nothing to convert or to refuse
    value = real_number(name, value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum!r}, got {value!r}")
    return value


def _check_timeout(timeout: float | None) -> float:
    if timeout is None or (isinstance(timeout, float) and timeout == math.inf):
        return math.inf
    return _check_number("timeout", timeout, minimum=0.0)


def _check_parts(
    clock: object, backend: object, on_event: object, *, sleep: str, apply: tuple[str, str]
) -> None:
    """Refuse, at construction, a clock, backend or hook that would fail at the first call.

    *sleep* and *apply* name the methods this kind of bucket calls (``sleep``
    or ``asleep``; ``apply``/``observe`` or their ``a`` twins).
    """
    if clock is not None and not all(callable(getattr(clock, m, None)) for m in ("now", sleep)):
        hint = ""
        if callable(clock):
            hint = " (a function such as time.monotonic is not a clock: pass MonotonicClock())"
        raise TypeError(
            f"clock must be a Clock with now() and {sleep}(): MonotonicClock(), "
            f"WallClock(), ManualClock() or your own; got {clock!r}{hint}"
        )
    if backend is not None and not all(callable(getattr(backend, m, None)) for m in apply):
        raise TypeError(
            f"backend must be a Backend with {apply[0]}() and {apply[1]}(): "
            "MemoryBackend(), SQLiteBackend(path) or tokenbudget.redis.RedisBackend(client); "
            f"got {backend!r}"
        )
    asynchronous = getattr(backend, "asynchronous", None)  # RedisBackend: its client's kind
    if asynchronous is True and sleep == "sleep":
        raise TypeError(
            f"TokenBucket needs a backend with a sync client, but {backend!r} holds a "
            "redis.asyncio one: use AsyncTokenBucket, or a RedisBackend of a redis.Redis"
        )
    if asynchronous is False and sleep == "asleep":
        raise TypeError(
            f"AsyncTokenBucket needs a backend with an asyncio client, but {backend!r} holds "
            "a sync redis.Redis: use TokenBucket, or a RedisBackend of a redis.asyncio.Redis"
        )
    if on_event is not None and not callable(on_event):
        raise TypeError(f"on_event must be a callable taking an Event, or None; got {on_event!r}")


class _Shell:
    """What the sync and async buckets share: validation, requests, events."""

    #: The clock's and the backend's methods this kind of bucket calls.
    _SLEEP: ClassVar[str] = "sleep"
    _APPLY: ClassVar[tuple[str, str]] = ("apply", "observe")

    __slots__ = (
        "_backend",
        "_clock",
        "_config",
        "_fast_admit",
        "_fast_max",
        "_fast_try",
        "_initial",
        "_key",
        "_on_event",
    )

    def __init__(
        self,
        config: BucketConfig,
        *,
        clock: Clock | None = None,
        tokens: float | None = None,
        backend: Backend | None = None,
        key: str | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        if not isinstance(config, BucketConfig):
            raise TypeError(f"config must be a BucketConfig, got {config!r}")
        if tokens is None:
            initial = config.capacity
        else:
            initial = _check_number("tokens", tokens)
            if not -config.max_deficit <= initial <= config.capacity:
                raise ValueError(
                    f"tokens must lie in [-max_deficit, capacity] = "
                    f"[{-config.max_deficit!r}, {config.capacity!r}], got {initial!r}"
                )
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        _check_parts(clock, backend, on_event, sleep=self._SLEEP, apply=self._APPLY)
        self._config = config
        self._clock: Clock = MonotonicClock() if clock is None else clock
        self._initial = initial
        self._backend: Backend = MemoryBackend() if backend is None else backend
        self._key = "default" if key is None else key
        self._on_event = on_event
        if isinstance(self._backend, MemoryBackend):
            # The starting balance counts from construction (no I/O: it is this process's
            # memory); SQLite and Redis create a missing key at its first operation.
            self._backend.observe(self._key, config, self._clock, initial)
        # The hot paths, while nobody listens for events (no hook; DEBUG is checked per
        # call). On the memory backend: the core's admission closure (see _fast_decision;
        # a TokenBucket's try_acquire is one of its own, see _bind_hot_path).
        memory = type(self._backend) is MemoryBackend
        self._fast_admit = self._admitter(_undecided) if memory and on_event is None else None
        # On another backend, try_acquire's: its own admitter for a sync bucket (RedisBackend:
        # the same single round trip without request or outcome objects), the cost checked
        # by try_acquire (up to _fast_max). Only try_acquire uses it: acquire must book in the
        # same round trip when it waits.
        self._fast_max = min(config.max_cost, sys.float_info.max)
        self._fast_try: Callable[[float], bool] | None = None
        if (
            not memory
            and on_event is None
            and self._APPLY[0] == "apply"
            and not isinstance(self._backend, MemoryBackend)  # a subclass may change apply
        ):
            admitter = getattr(self._backend, "admitter", None)
            if admitter is not None:
                self._fast_try = admitter(self._key, config, self._clock_reader(), initial)
        if self._fast_admit is not None:
            self._bind_hot_path()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._config!r}, key={self._key!r}, backend={self._backend!r})"
        )

    @property
    def config(self) -> BucketConfig:
        """The bucket's configuration."""
        return self._config

    @property
    def key(self) -> str:
        """The bucket's name in its backend."""
        return self._key

    @property
    def clock(self) -> Clock:
        """The clock the bucket sleeps with."""
        return self._clock

    def _admit_request(self, cost: float, max_wait: float) -> Admit:
        # A plain float or int in (0, max_cost] is what check_cost would return, as a float
        # (``cost + 0.0`` converts an int exactly as ``float(cost)`` does): no more checks.
        kind: object = type(cost)
        if kind is float:
            if 0.0 < cost <= self._fast_max:
                return Admit(cost, max_wait)
        elif kind is int and 0 < cost <= self._fast_max:
            return Admit(cost + 0.0, max_wait)
        return Admit(self._config.check_cost(cost), max_wait)

    def _admitter(self, fallback: Callable[[float], R]) -> Callable[[float], bool | R]:
        """The memory backend's admission closure for this bucket (see ``_core.admitter``).

        It reads the clock itself (``time.monotonic`` for the default clock: no
        method call) and decides a plain int or float cost in (0, max_cost]
        while DEBUG logging is off; a False changes nothing but the refill up to
        now. Any other call returns ``fallback(cost)``.
        """
        assert isinstance(self._backend, MemoryBackend)  # noqa: S101 -- only built for it
        return self._backend.admitter(
            self._key,
            self._config,
            self._clock_reader(),
            self._initial,
            fallback=fallback,
            logger=log,
        )

    def _clock_reader(self) -> Callable[[], float]:
        """The clock's ``now``; ``time.monotonic`` itself for the default clock (no method call)."""
        clock = self._clock
        return time.monotonic if type(clock) is MonotonicClock else clock.now

    def _bind_hot_path(self) -> None:
        """Give this bucket its own hot path for ``try_acquire`` (TokenBucket has one)."""

    def _fast_decision(self, cost: float) -> bool | None:
        """The hot path's decision on *cost*, or None when it does not decide.

        It decides only for a plain int or float in (0, max_cost] on the memory
        backend while nobody listens for events (no hook, DEBUG logging off);
        a False changes nothing but the refill up to now. None: take the full,
        checked path.
        """
        fast = self._fast_admit
        return None if fast is None else fast(cost)

    def _sync_request(
        self, tokens: float, refill_in: float | None, rate: Rate | None, as_of: float | None
    ) -> Sync:
        # _check_number's usual case (a finite float) is decided here, without its call.
        if not (type(tokens) is float and _NEG_INF < tokens < _INF):
            tokens = _check_number("tokens", tokens)
        if refill_in is not None and not (type(refill_in) is float and 0.0 <= refill_in < _INF):
            refill_in = _check_number("refill_in", refill_in, minimum=0.0)
        if rate is not None and not isinstance(rate, Rate):
            raise TypeError(f"rate must be a Rate, got {rate!r}")
        if as_of is not None and not (type(as_of) is float and _NEG_INF < as_of < _INF):
            as_of = _check_number("as_of", as_of)
        return Sync(tokens, refill_in, None if rate is None else rate.tokens_per_second, as_of)

    def _settle_sync_requests(
        self,
        state: _ReservationState | None,
        actual_cost: float,
        sync: SyncArgs | None,
        *,
        sync_first: bool,
    ) -> list[Request]:
        """The requests of :meth:`TokenBucket._settle_and_sync`, checked, in their order."""
        requests: list[Request] = []
        if state is not None:
            requests.append(_settle_request(state, actual_cost))
        if sync is not None:
            req = self._sync_request(*sync)
            if sync_first:
                requests.insert(0, req)
            else:
                requests.append(req)
        return requests

    def _memory_apply_many(self, requests: list[Request]) -> list[Outcome] | None:
        """On the memory backend, apply *requests* in order in one call (one hold of its lock).

        None on any other backend: the caller applies them one at a time, in order,
        and reports each once applied.
        """
        backend = self._backend
        if type(backend) is not MemoryBackend:
            return None
        return backend.apply_many(self._key, self._config, self._clock, self._initial, requests)

    def _quiet_booking(self, cost: float) -> _ReservationState | None:
        """:meth:`TokenBucket.reserve` of *cost* (no timeout) in one memory call: its booking.

        The booking :meth:`~TokenBucket.reserve` makes and its reservation holds,
        when nobody listens (no hook, DEBUG logging off: no event to report) and
        *cost* is a plain float in (0, max_cost]; the booking is made by
        ``MemoryBackend.book`` without request or outcome objects. None when it
        booked nothing (another backend, a listener, another cost): call ``reserve``.
        """
        backend = self._backend
        if (
            type(backend) is not MemoryBackend
            or self._on_event is not None
            or type(cost) is not float
            or not 0.0 < cost <= self._fast_max
            or (_debug_cached(_DEBUG) is not False and _debug_enabled(_DEBUG))
        ):
            return None
        now, delay, booking_id, spent, tokens = backend.book(
            self._key, self._config, self._clock, self._initial, cost
        )
        return _ReservationState(
            cost, delay, now + delay, booking_id, cost, spent=spent, tokens=tokens
        )

    def _quiet_settle_sync(
        self,
        state: _ReservationState,
        actual: float,
        tokens: float,
        refill_in: float | None,
        as_of: float | None,
    ) -> bool | None:
        """Settle the booking *state* to *actual* and sync the bucket in one memory transition.

        What :meth:`Reservation.settle` and then ``sync(tokens, refill_in=refill_in,
        as_of=as_of)`` do, in one call of the memory backend (``_core.settle_then_sync``),
        when nobody listens (no hook, DEBUG logging off: no event to report, no stale
        sync to log) and the figures are plain finite floats. Returns whether the sync
        was adopted; None when it did nothing (another backend, a listener, an unusual
        figure, a cancelled booking): the caller makes the two calls.
        """
        backend = self._backend
        if (
            type(backend) is not MemoryBackend
            or self._on_event is not None
            or not (type(actual) is float and 0.0 <= actual < _INF)
            or not (type(tokens) is float and _NEG_INF < tokens < _INF)
            or not (refill_in is None or (type(refill_in) is float and 0.0 <= refill_in < _INF))
            or not (as_of is None or (type(as_of) is float and _NEG_INF < as_of < _INF))
            or state.cancelled
            or (_debug_cached(_DEBUG) is not False and _debug_enabled(_DEBUG))
        ):
            return None
        adopted = backend.settle_sync(
            self._key,
            self._config,
            self._clock,
            self._initial,
            (state.booking_id, state.charged, actual, state.spent),
            tokens,
            refill_in,
            as_of,
        )
        state.charged = actual
        return adopted

    def _settled_synced(
        self, state: _ReservationState | None, req: Request, out: Outcome
    ) -> bool | None:
        """Report one outcome of :meth:`TokenBucket._settle_and_sync`; a sync's: whether adopted."""
        if type(req) is Settle:
            assert state is not None  # noqa: S101 -- a settle has its booking
            _settled(self, state, req, out)
            return None
        assert type(req) is Sync  # noqa: S101 -- only settles and syncs
        self._synced(req, out)
        return out.ok

    def _synced(self, req: Sync, out: Outcome) -> None:
        """Report an adopted sync; a stale one changed nothing and is only logged."""
        if out.ok:
            if self._on_event is not None or (
                _debug_cached(_DEBUG) is not False and _debug_enabled(_DEBUG)
            ):
                self._report("synced", out, req.tokens)
        elif _debug_enabled(_DEBUG):
            log.debug("stale sync key=%s tokens=%g as_of=%r", self._key, req.tokens, req.as_of)

    def _rate_request(self, rate: Rate) -> SetRate:
        if not isinstance(rate, Rate):
            raise TypeError(f"rate must be a Rate, got {rate!r}")
        return SetRate(rate.tokens_per_second)

    def _report(self, kind: EventKind, out: Outcome, cost: float) -> None:
        """Turn an outcome into events, only when someone listens."""
        hook = self._on_event
        if hook is None and not log.isEnabledFor(logging.DEBUG):
            return  # nobody listens: not even the call (on every operation's path)
        _report_events(hook, self._key, kind, out, cost)

    def _admit_kind(self, out: Outcome) -> EventKind:
        return _admit_kind(out)


def _report_events(
    hook: EventHook | None, key: str, kind: EventKind, out: Outcome, cost: float
) -> None:
    """Turn an outcome into events for *hook* and the DEBUG log, only when someone listens."""
    if hook is None and not log.isEnabledFor(logging.DEBUG):
        return
    events: list[Event] = []
    if out.left:
        events.append(Event("recharge_left", key, cost, 0.0, out.tokens, out.time))
    events.append(Event(kind, key, cost, out.delay, out.tokens, out.time))
    if out.entered:
        events.append(Event("recharge_entered", key, cost, 0.0, out.tokens, out.time))
    for event in events:
        log.debug(
            "%s key=%s cost=%g delay=%.6g tokens=%.6g",
            event.kind,
            event.key,
            event.cost,
            event.delay,
            event.tokens,
        )
        if hook is not None:
            hook(event)


def _admit_kind(out: Outcome) -> EventKind:
    if not out.ok:
        return "refused"
    return "admitted" if out.delay == 0.0 else "waited"


def _undecided(_cost: float) -> None:
    """The hot path's fallback where the caller goes on to its own checked path."""


@attrs.define(eq=False)
class _ReservationState:
    """A booking's identity and what has happened to it since."""

    cost: float
    delay: float
    time: float
    booking_id: int
    charged: float
    cancelled: bool = False
    #: The bucket's spent count at the admission (``Outcome.spent``), for a late settle.
    spent: float = 0.0
    #: The balance the admission left, net of every booking (``Outcome.tokens``).
    tokens: float = math.nan

    def check_actual(self, actual_cost: float) -> float:
        if self.cancelled:
            raise ReservationError(
                f"reservation {self.booking_id} was cancelled; nothing to settle"
            )
        return _check_number("actual_cost", actual_cost, minimum=0.0)


class Reservation:
    """A booking made by :meth:`TokenBucket.reserve`: its cost is debited at :attr:`time`.

    Compare :attr:`delay`, not :attr:`time`, with your own clock: :attr:`time`
    is on the backend's clock (Redis ``TIME``, the SQLite backend's wall
    clock), which is not the caller's monotonic clock.

    Attributes:
        cost: The cost booked.
        delay: Seconds from the booking until its time; sleep this long, then
            make the request. This is the value to use on the caller's side.
        time: The booking's time, on the backend's clock (for logs and for
            comparing with other times of the same backend only).

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_bucket", "_state")

    def __init__(self, bucket: TokenBucket, state: _ReservationState) -> None:
        self._bucket = bucket
        self._state = state

    def __repr__(self) -> str:
        s = self._state
        return (
            f"{type(self).__name__}(cost={s.cost!r}, delay={s.delay!r}, cancelled={s.cancelled!r})"
        )

    @property
    def cost(self) -> float:
        """The cost booked."""
        return self._state.cost

    @property
    def delay(self) -> float:
        """Seconds from the booking until its time: what a caller sleeps, on any clock."""
        return self._state.delay

    @property
    def time(self) -> float:
        """The booking's time on the backend's clock (not comparable with the caller's)."""
        return self._state.time

    @property
    def booking_id(self) -> int:
        """The booking's id in its bucket (compare with :attr:`Snapshot.first_in_flight`).

        .. versionadded:: 0.1.0
        """
        return self._state.booking_id

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` returned the cost."""
        return self._state.cancelled

    def cancel(self) -> bool:
        """Return the cost to the bucket if the booking's time has not passed.

        Bookings made after this one keep their times. After the booking's
        time, or a second time, it does nothing.

        Returns:
            Whether the cost was returned.
        """
        s = self._state
        if s.cancelled:
            return False
        req = Cancel(s.booking_id, s.time, s.charged)
        out = self._bucket._apply(req)  # noqa: SLF001 -- the reservation is part of its bucket
        if out.ok:
            s.cancelled = True
            self._bucket._report("cancelled", out, s.charged)  # noqa: SLF001
            _move_up(self._bucket, s.booking_id)
        return out.ok

    def settle(self, actual_cost: float) -> None:
        """Correct the debit to the true cost, once it is known (Keepa's ``tokensConsumed``).

        The difference is debited or returned now; later bookings keep their
        times. A correction may take the balance below ``-max_deficit`` and
        enters recharge mode when it leaves the balance below
        ``min_threshold``. Settling a second time is allowed and the last
        settle wins: it corrects relative to the cost settled before, so the
        bucket ends up charged exactly the last *actual_cost*.

        Raises:
            ReservationError: The reservation was cancelled.
            ValueError: *actual_cost* is negative, NaN or infinite.
        """
        # _settle_request and _settled, inlined (on every settle's path)
        s = self._state
        if type(actual_cost) is float and 0.0 <= actual_cost < _INF and not s.cancelled:
            actual = actual_cost  # what check_actual returns for it, without its calls
        else:
            actual = s.check_actual(actual_cost)
        bucket = self._bucket
        out = bucket._apply(Settle(s.booking_id, s.time, s.charged, actual, s.spent))  # noqa: SLF001
        s.charged = actual
        hook = bucket._on_event  # noqa: SLF001
        if hook is not None or (_debug_cached(_DEBUG) is not False and _debug_enabled(_DEBUG)):
            bucket._report("settled", out, actual)  # noqa: SLF001


class AsyncReservation:
    """A booking made by :meth:`AsyncTokenBucket.reserve`; see :class:`Reservation`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_bucket", "_state")

    def __init__(self, bucket: AsyncTokenBucket, state: _ReservationState) -> None:
        self._bucket = bucket
        self._state = state

    __repr__ = Reservation.__repr__
    cost = Reservation.cost
    delay = Reservation.delay
    time = Reservation.time
    cancelled = Reservation.cancelled

    @property
    def booking_id(self) -> int:
        """Like :attr:`Reservation.booking_id`.

        .. versionadded:: 0.1.0
        """
        return self._state.booking_id

    async def cancel(self) -> bool:
        """Like :meth:`Reservation.cancel`."""
        s = self._state
        if s.cancelled:
            return False
        out = await self._bucket._apply(Cancel(s.booking_id, s.time, s.charged))  # noqa: SLF001
        if out.ok:
            s.cancelled = True
            self._bucket._report("cancelled", out, s.charged)  # noqa: SLF001
            await _amove_up(self._bucket, s.booking_id)
        return out.ok

    async def settle(self, actual_cost: float) -> None:
        """Like :meth:`Reservation.settle`."""
        req = _settle_request(self._state, actual_cost)
        _settled(self._bucket, self._state, req, await self._bucket._apply(req))  # noqa: SLF001


def _booking(out: Outcome, cost: float) -> _ReservationState:
    return _ReservationState(
        cost,
        out.delay,
        out.time + out.delay,
        out.booking_id,
        cost,
        spent=out.spent,
        tokens=out.tokens,
    )


def _settle_request(state: _ReservationState, actual_cost: float) -> Settle:
    """The request that settles the booking *state* to *actual_cost* (checked)."""
    if type(actual_cost) is float and 0.0 <= actual_cost < _INF and not state.cancelled:
        actual = actual_cost  # what check_actual returns for it, without its calls
    else:
        actual = state.check_actual(actual_cost)
    return Settle(state.booking_id, state.time, state.charged, actual, state.spent)


def _settled(shell: _Shell, state: _ReservationState, req: Settle, out: Outcome) -> None:
    """A settle was applied: the booking is charged its true cost; report it."""
    state.charged = req.actual
    hook = shell._on_event  # noqa: SLF001
    if hook is not None or (_debug_cached(_DEBUG) is not False and _debug_enabled(_DEBUG)):
        shell._report("settled", out, req.actual)  # noqa: SLF001


class _Sleeper:
    """An ``acquire`` waiting with a real clock: it can be woken early.

    *deadline* is when it goes, on the bucket's clock: its booking's time on
    a memory bucket (whose time is that clock's); on a shared backend, whose
    clock is its own, the bucket clock's reading after the booking plus its
    delay (a little late, never early).
    """

    __slots__ = ("deadline", "state", "wake")

    def __init__(self, state: _ReservationState, wake: Callable[[], None], deadline: float) -> None:
        self.state = state
        self.wake = wake
        self.deadline = deadline


def _sleeper(shell: _Shell, out: Outcome, cost: float, wake: Callable[[], None]) -> _Sleeper:
    state = _booking(out, cost)
    if type(shell._backend) is MemoryBackend:  # noqa: SLF001
        return _Sleeper(state, wake, state.time)
    return _Sleeper(state, wake, shell._clock.now() + out.delay)  # noqa: SLF001


def _moved(shell: _Shell, sleeper: _Sleeper, out: Outcome) -> None:
    """*sleeper*'s booking was booked again (*out*): it sleeps until its new time."""
    sleeper.state = _booking(out, sleeper.state.cost)
    if type(shell._backend) is MemoryBackend:  # noqa: SLF001
        sleeper.deadline = sleeper.state.time
    else:
        sleeper.deadline = shell._clock.now() + out.delay  # noqa: SLF001
    sleeper.wake()


#: The waiting ``acquire`` calls of each bucket, by (id of the backend, key).
_SLEEPERS: dict[tuple[int, str], list[_Sleeper]] = {}
_SLEEPERS_LOCK = threading.Lock()
#: How many times waiters were looked for to move up (after a cancel), any bucket's,
#: written under ``_SLEEPERS_LOCK``: an ``acquire`` reads it before it books, and once
#: registered as a waiter looks for itself if it moved (a look between the two did not
#: find it). One count for all buckets keeps nothing per bucket; a look at another
#: bucket's waiters only makes a waiter look again, harmlessly.
_MOVES = [0]


def _wakeable(shell: _Shell) -> bool:
    """Whether the bucket's waits can be cut short: a real clock (any backend)."""
    return type(shell._clock) in (MonotonicClock, WallClock)  # noqa: SLF001


def _sleepers(shell: _Shell) -> list[_Sleeper]:
    where = (id(shell._backend), shell._key)  # noqa: SLF001
    return _SLEEPERS.setdefault(where, [])


def _forget_sleeper(shell: _Shell, sleeper: _Sleeper) -> None:
    where = (id(shell._backend), shell._key)  # noqa: SLF001
    with _SLEEPERS_LOCK:
        group = _SLEEPERS.get(where)
        if group is not None and sleeper in group:
            group.remove(sleeper)
            if not group:
                del _SLEEPERS[where]


def _move_up(shell: _Shell, cancelled: int) -> None:
    """After booking *cancelled* was given back, let the ``acquire`` calls behind it go earlier.

    Only with a real clock. On a memory bucket, only when every booking
    still pending is a waiting ``acquire`` of this process (a reservation's
    holder sleeps its own delay and would not learn of a new time): those
    behind the cancelled one are given back, last first, and booked again in
    their order, all under one hold of the backend's lock; each is woken to
    sleep until its new time, which is never later than its old one. On a
    shared backend (other processes book there too) only this process's
    waiter booked last is booked again (``_core.Rebook``: only while it is
    the bucket's last booking, only if that makes it earlier).
    """
    backend = shell._backend  # noqa: SLF001
    with _SLEEPERS_LOCK:
        _MOVES[0] += 1
        group = list(_sleepers(shell))
    if not group:
        return
    config, clock, key, initial = shell._config, shell._clock, shell._key, shell._initial  # noqa: SLF001
    if not isinstance(backend, MemoryBackend):
        last = _last_behind(group, cancelled)
        if last is not None:
            try:
                out = backend.apply(key, config, clock, initial, Rebook(last.state.booking_id))
            except Exception:  # it keeps its time: later than it could, never earlier
                log.debug("could not book a waiter on %s again", key, exc_info=True)
                return
            if out.ok:
                _moved(shell, last, out)
        return
    for _ in range(_MOVE_LOOKS):
        obs = backend.observe(key, config, clock, initial)
        waiting = [s for s in group if s.state.time > obs.time]
        behind = sorted((s for s in waiting if s.state.booking_id > cancelled), key=_booking_order)
        if behind and obs.pending == len(waiting):
            break
        # A waiter that booked after the look began may not be registered yet (then the
        # pending bookings outnumber the waiters): counted again, it looks for itself if
        # it registers from now on; registered meanwhile, the next look finds it.
        with _SLEEPERS_LOCK:
            _MOVES[0] += 1
            again = list(_sleepers(shell))
        if again == group:
            return
        group = again
    else:
        return
    requests: list[Request] = [
        Cancel(s.state.booking_id, s.state.time, s.state.charged) for s in reversed(behind)
    ]
    requests += [Admit(s.state.cost, math.inf) for s in behind]
    outs = backend.apply_many(key, config, clock, initial, requests)
    for sleeper, out in zip(behind, outs[len(behind) :], strict=True):
        _moved(shell, sleeper, out)


#: How many times :func:`_move_up` looks at a memory bucket's waiters while new ones register.
_MOVE_LOOKS: Final = 3


def _last_behind(group: list[_Sleeper], cancelled: int) -> _Sleeper | None:
    """The waiter of *group* booked last, if it was booked after *cancelled*."""
    behind = [s for s in group if s.state.booking_id > cancelled]
    return max(behind, key=_booking_order) if behind else None


async def _amove_up(shell: _Shell, cancelled: int) -> None:
    """:func:`_move_up` for :class:`AsyncTokenBucket` (a shared backend's call is awaited)."""
    backend = shell._backend  # noqa: SLF001
    if isinstance(backend, MemoryBackend):
        _move_up(shell, cancelled)
        return
    with _SLEEPERS_LOCK:
        _MOVES[0] += 1
        last = _last_behind(list(_sleepers(shell)), cancelled)
    if last is None:
        return
    config, clock, key, initial = shell._config, shell._clock, shell._key, shell._initial  # noqa: SLF001
    try:
        out = await backend.aapply(key, config, clock, initial, Rebook(last.state.booking_id))
    except Exception:  # it keeps its time: later than it could, never earlier
        log.debug("could not book a waiter on %s again", key, exc_info=True)
        return
    if out.ok:
        _moved(shell, last, out)


def _booking_order(sleeper: _Sleeper) -> int:
    return sleeper.state.booking_id


class TokenBucket(_Shell):
    """A thread-safe, cost-weighted token bucket with booking semantics.

    >>> from tokenbudget import BucketConfig, ManualClock, Rate, TokenBucket
    >>> config = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)
    >>> bucket = TokenBucket(config, clock=ManualClock(), tokens=40)
    >>> bucket.try_acquire(100)
    False
    >>> bucket.acquire(100)  # sleeps (101 - 40) / (5 / 60) seconds
    732.0

    Args:
        config: The bucket's :class:`BucketConfig`.
        clock: Where the bucket reads time and how it sleeps (default
            :class:`MonotonicClock`).
        tokens: The starting balance, in ``[-max_deficit, capacity]``
            (default: capacity). It applies when the bucket's key is created
            and is ignored for a key that exists: on a :class:`MemoryBackend`
            (the default) the key is created when the first bucket naming it
            is constructed, so the balance refills from construction; on
            :class:`SQLiteBackend` and :class:`~tokenbudget.redis.RedisBackend`
            by the first operation on the key (``snapshot()`` included), at
            that backend's time, and on Redis again after an idle key expired.
        backend: Where the state lives (default: a private :class:`MemoryBackend`).
        key: The bucket's name in a shared backend (default ``"default"``).
        on_event: Called with every :class:`Event` (decisions, recharge mode, syncs).

    .. versionadded:: 0.1.0
    """

    # An instance dict for one entry: the hot path of try_acquire (see _bind_hot_path).
    __slots__ = ("__dict__",)

    def _apply(self, request: Request) -> Outcome:
        return self._backend.apply(self._key, self._config, self._clock, self._initial, request)

    def _settle_and_sync(
        self,
        reservation: Reservation | None,
        actual_cost: float,
        sync: SyncArgs | None,
        *,
        sync_first: bool = False,
    ) -> bool | None:
        """Settle *reservation* and :meth:`sync` the bucket (*sync*: its arguments), at once.

        Both are applied with one backend call on the memory backend (one
        apply each, in order, on the others), the sync first if *sync_first*,
        and reported as :meth:`Reservation.settle` and :meth:`sync` report
        them. Returns whether the sync was adopted (None: no sync). For a
        client that settles and syncs from each answer (``tokenbudget_keepa``).
        """
        state = None if reservation is None else reservation._state  # noqa: SLF001
        requests = self._settle_sync_requests(state, actual_cost, sync, sync_first=sync_first)
        outs = self._memory_apply_many(requests)
        adopted = None
        for i, req in enumerate(requests):  # on another backend, each reported once applied
            done = self._settled_synced(state, req, self._apply(req) if outs is None else outs[i])
            adopted = done if type(req) is Sync else adopted
        return adopted

    def _bind_hot_path(self) -> None:
        """Make ``self.try_acquire`` the core's admission closure itself: one Python frame a call.

        An instance attribute comes before a method of the class (a function is
        a non-data descriptor), so on a memory bucket that nobody listens to
        ``bucket.try_acquire`` is the closure, and everywhere else the method
        below, which is also what the documentation, type checkers and
        ``TokenBucket.try_acquire(bucket, cost)`` see. The closure decides
        exactly as the method does (a test runs both); every call it does not
        decide (an unusual cost, DEBUG on) goes to the method's checked path,
        bound to the bucket's parts rather than to the bucket, so that the
        bucket and its closure do not refer to each other. A subclass that
        overrides ``try_acquire`` keeps its override.
        """
        if type(self).try_acquire is not TokenBucket.try_acquire:
            return
        checked = functools.partial(
            _try_acquire_checked, self._backend, self._key, self._config, self._clock, self._initial
        )
        hot = self._admitter(checked)
        hot.__name__, hot.__qualname__ = "try_acquire", TokenBucket.try_acquire.__qualname__
        hot.__doc__ = TokenBucket.try_acquire.__doc__
        self.__dict__["try_acquire"] = hot

    def try_acquire(self, cost: float = 1) -> bool:
        """Take *cost* now if it is admitted now; otherwise change nothing and return False.

        False also while earlier bookings are pending (first come, first served).

        Raises:
            ValueError: *cost* is not > 0.
            CostExceedsCapacity: *cost* can never be admitted.
        """
        hot = self._fast_admit
        if hot is not None:  # the memory backend's closure: it checks the cost and DEBUG itself
            decided = hot(cost)
            if decided is not None:
                return decided
        else:
            fast = self._fast_try
            if fast is not None and (_debug_cached(_DEBUG) is False or not _debug_enabled(_DEBUG)):
                # Another backend's admitter (RedisBackend: the same single round trip)
                # while nobody listens for the decision (no hook, DEBUG logging off): no
                # request or outcome objects. A plain int or float in (0, max_cost] needs
                # no more checks (NaN fails the comparison) and is passed on as a float,
                # as check_cost would (``cost + 0.0`` converts an int exactly as
                # ``float(cost)`` does); anything else takes the checked path below. An
                # int is compared before it is converted, so that one too large for a
                # float (10**400) takes the checked path too.
                kind: object = type(cost)
                if kind is int:
                    if 0 < cost <= self._fast_max:
                        return fast(cost + 0.0)
                elif kind is float and 0.0 < cost <= self._fast_max:
                    return fast(cost)
        out = self._apply(self._admit_request(cost, 0.0))
        self._report(self._admit_kind(out), out, cost)
        return out.ok

    def reserve(self, cost: float = 1, *, timeout: float | None = None) -> Reservation:
        """Book *cost* at once, first come, first served; the booking says when.

        Sleep :attr:`Reservation.delay` seconds (on the caller's own clock),
        make the request, then :meth:`Reservation.settle` it with its true
        cost or :meth:`Reservation.cancel` it if it is not made.

        Args:
            cost: The tokens the request costs.
            timeout: The longest wait accepted; when the booking's delay would
                be longer, raise at once and book nothing. ``0`` books only
                when admitted now. ``None`` (the default) always books.

        Raises:
            AcquireTimeout: The delay would exceed *timeout* (``.delay`` says
                how long it would have been); nothing was booked.
            ValueError: *cost* is not > 0, or *timeout* is negative or NaN.
            CostExceedsCapacity: *cost* can never be admitted.

        .. versionchanged:: 0.1.0
           The *timeout* argument.
        """
        max_wait = _INF if timeout is None else _check_timeout(timeout)
        if type(cost) is float and 0.0 < cost <= self._fast_max:  # _admit_request's usual case
            req = Admit(cost, max_wait)
        else:
            req = self._admit_request(cost, max_wait)
        out = self._backend.apply(self._key, self._config, self._clock, self._initial, req)
        if self._on_event is not None or (
            _debug_cached(_DEBUG) is not False and _debug_enabled(_DEBUG)
        ):
            self._report(_admit_kind(out), out, cost)
        if not out.ok:
            raise AcquireTimeout(float(cost), out.delay, max_wait)
        booked = float(cost)
        delay = out.delay  # _booking(out, booked), inlined
        return Reservation(
            self,
            _ReservationState(
                booked,
                delay,
                out.time + delay,
                out.booking_id,
                booked,
                spent=out.spent,
                tokens=out.tokens,
            ),
        )

    def acquire(self, cost: float = 1, *, timeout: float | None = None) -> float:
        """Book *cost* and sleep until its time; return the seconds waited.

        Args:
            cost: The tokens the request costs.
            timeout: The longest wait accepted; when the wait would be longer,
                raise at once and book nothing. ``0`` admits only now.

        Interrupted in its sleep (``KeyboardInterrupt``, an exception from the
        clock), it returns the booking's cost before the exception propagates.
        When that give-back fails (the backend is unreachable), the interrupt
        still propagates: the failure is logged at WARNING on the
        ``tokenbudget`` logger and chained to it as its ``__context__``.

        On a memory bucket with a real clock (:class:`MonotonicClock`,
        :class:`WallClock`), a waiting ``acquire`` goes earlier when a booking
        ahead of it is cancelled (an interrupted ``acquire``, a
        :meth:`Reservation.cancel`): the waiting calls behind it are booked
        again, in their order, at times never later than before — unless a
        booking is pending whose holder sleeps its own delay (a
        :meth:`reserve`), which would not learn a new time. On a shared
        backend (SQLite, Redis) only the bucket's last booking moves, when it
        is a waiting ``acquire`` of this process: one atomic operation
        cancels it and books its cost again, where a new booking would go,
        and keeps the old one if that is not earlier (nothing is behind it to
        be hurt). With another clock, or with any booking behind it, a waiter
        goes at its time, later than it could have, never earlier.

        .. versionchanged:: 0.1.0
           The last waiter moves up on SQLite and Redis too.

        Raises:
            AcquireTimeout: The wait would exceed *timeout* (``.delay`` says by how much).
            ValueError: *cost* is not > 0, or *timeout* is negative or NaN.
            CostExceedsCapacity: *cost* can never be admitted.
        """
        max_wait = _check_timeout(timeout)
        if self._fast_decision(cost):  # admitted now; a refusal takes the full path to book
            return 0.0
        moves = _MOVES[0]
        out = self._apply(self._admit_request(cost, max_wait))
        self._report(self._admit_kind(out), out, cost)
        if not out.ok:
            raise AcquireTimeout(float(cost), out.delay, max_wait)
        if out.delay > 0.0:
            if _wakeable(self):
                return self._wait(out, float(cost), moves)
            try:
                self._clock.sleep(out.delay)
            except BaseException as exc:  # KeyboardInterrupt, a failing clock: nobody will spend it
                try:
                    _undo(Reservation(self, _booking(out, float(cost))))
                except Exception as failure:  # noqa: BLE001 -- the interrupt goes on, not this
                    _undo_failed(exc, failure, self._key, float(cost))
                raise
        return out.delay

    def _wait(self, out: Outcome, cost: float, moves: int) -> float:
        """Sleep until the booking's time (a cancel of an earlier booking may bring it forward).

        *moves* is ``_MOVES`` before the booking: a cancel's look for waiters since
        then did not find this waiter, which then looks for itself.
        """
        event = threading.Event()
        sleeper = _sleeper(self, out, cost, event.set)
        with _SLEEPERS_LOCK:
            _sleepers(self).append(sleeper)
            missed = _MOVES[0] != moves
        try:
            if missed:
                _move_up(self, -1)  # every waiter behind nothing: booked again in order
            while True:
                remaining = sleeper.deadline - self._clock.now()
                if remaining <= 0.0:
                    break
                event.wait(remaining)
                event.clear()
        except BaseException as exc:  # KeyboardInterrupt: nobody will spend it
            _forget_sleeper(self, sleeper)
            try:
                _undo(Reservation(self, sleeper.state))
            except Exception as failure:  # noqa: BLE001 -- the interrupt goes on, not this
                _undo_failed(exc, failure, self._key, cost)
            raise
        _forget_sleeper(self, sleeper)
        return (
            out.delay
            if sleeper.state.time == out.time + out.delay
            else sleeper.state.time - out.time
        )

    def sync(
        self,
        tokens: float,
        *,
        refill_in: float | None = None,
        rate: Rate | None = None,
        as_of: float | None = None,
    ) -> Snapshot:
        """Adopt the balance a server reports as authoritative.

        Bookings whose time has not come keep their times and are subtracted
        from *tokens*; those whose time has come are assumed to be in it,
        except bookings still in flight (admitted within
        :attr:`BucketConfig.in_flight <tokenbudget.BucketConfig>` seconds and
        neither settled nor cancelled), by any process sharing the bucket,
        which are subtracted too. A balance below ``min_threshold`` enters
        recharge mode.

        With *as_of*, the server's timestamp of the answer, a sync older than
        the last one adopted is *stale* (an answer overtaken on the way by a
        later one, from this process or another): it changes nothing, and the
        returned snapshot says so (:attr:`Snapshot.adopted` is False). A
        stale-looking answer that arrives more than ``in_flight`` seconds
        after the last adoption cannot have been overtaken and is adopted
        (the server's clock went back), so one wrong stamp far in the future
        never blinds the bucket for longer. Sync an answer before settling
        its reservation.

        Args:
            tokens: The server's balance now (Keepa's ``tokensLeft``).
            refill_in: Seconds until the server's next refill step (Keepa's
                ``refillIn`` / 1000). With a stepped config it anchors the
                steps (a *refill_in* longer than one step adds no step before
                the server's next one); with a continuous one the balance is
                lowered by that much refill so the model never runs ahead of
                the server.
            rate: A changed refill rate (Keepa's ``refillRate`` per minute).
            as_of: The server's timestamp of the answer, in seconds (Keepa's
                ``timestamp`` / 1000, an HTTP ``Date``): any scale, as long as
                one server's answers use one.

        Returns:
            The bucket's snapshot after the sync (:attr:`Snapshot.adopted`:
            whether the sync was adopted).

        .. versionchanged:: 0.1.0
           The *as_of* argument.
        """
        req = self._sync_request(tokens, refill_in, rate, as_of)
        out = self._apply(req)
        self._synced(req, out)
        snap = self.snapshot()
        return snap if out.ok else attrs.evolve(snap, adopted=False)

    def would_admit(self, cost: float = 1) -> bool:
        """Whether :meth:`try_acquire` of *cost* would admit it now, without booking it.

        The answer is the bucket's state at the moment it is read: other
        threads, tasks or processes may book before you act on it, so a True
        is no promise (use :meth:`try_acquire` to take the tokens). Useful to
        skip work that would be refused, or to report readiness.

        Raises:
            ValueError: *cost* is not > 0.
            CostExceedsCapacity: *cost* can never be admitted.

        .. versionadded:: 0.1.0
        """
        cost = self._config.check_cost(cost)
        obs = self._backend.observe(self._key, self._config, self._clock, self._initial)
        return admits_now(self._config, obs, cost)

    def set_rate(self, rate: Rate) -> None:
        """Refill at *rate* from now on; the balance now is kept.

        The refill until now counts at the old rate. Bookings still waiting
        keep their times (as after a :meth:`sync` with a *rate*). On a shared
        backend the rate is the bucket's, for every process, until the next
        ``set_rate`` or ``sync(rate=...)``.

        Raises:
            TypeError: *rate* is not a :class:`Rate`.

        .. versionadded:: 0.1.0
        """
        self._apply(self._rate_request(rate))

    def __enter__(self) -> None:
        """``with bucket:`` acquires one token (waiting for it as :meth:`acquire` does).

        .. versionadded:: 0.1.0
        """
        self.acquire(1)

    def __exit__(self, *exc_info: object) -> None:
        """The token is spent: nothing to give back."""

    def snapshot(self) -> Snapshot:
        """The bucket now: balance net of bookings, recharge mode, backlog, utilization."""
        obs = self._backend.observe(self._key, self._config, self._clock, self._initial)
        return Snapshot._from(obs, self._config.capacity)  # noqa: SLF001


def _try_acquire_checked(  # noqa: PLR0917 -- functools.partial binds all but the cost
    backend: Backend, key: str, config: BucketConfig, clock: Clock, initial: float, cost: float
) -> bool:
    """:meth:`TokenBucket.try_acquire`'s checked path on a bucket's parts, with no hook."""
    out = backend.apply(key, config, clock, initial, Admit(config.check_cost(cost), 0.0))
    _report_events(None, key, _admit_kind(out), out, cost)
    return out.ok


def _undo_failed(exc: BaseException, failure: BaseException, key: str, cost: float) -> None:
    """The give-back of a booking failed while *exc* propagates: log it and chain it to *exc*.

    *exc* (a ``KeyboardInterrupt``, a ``CancelledError``) is what the caller
    must see; *failure* is logged at WARNING with its traceback and becomes
    *exc*'s ``__context__`` (when *exc* has none) so that a traceback shows
    both. The booking stays: the bucket counts tokens that nobody spends,
    which never over-spends the account.
    """
    log.warning(
        "could not give back a booking of %g tokens on %s after %s: %s: %s",
        cost,
        key,
        type(exc).__name__,
        type(failure).__name__,
        failure,
        exc_info=failure,
    )
    if exc.__context__ is None and failure is not exc:
        failure.__context__ = None  # it was raised while exc was handled: no cycle
        exc.__context__ = failure
    add_note = getattr(exc, "add_note", None)  # Python >= 3.11
    if add_note is not None:
        add_note(f"tokenbudget: giving back the booking failed: {type(failure).__name__}")


def _undo(reservation: Reservation) -> None:
    """Give back a booking whose request will never be made.

    Cancelled before its time; after it (an admission a moment ago, a sleep cut
    short at its very end) settled to zero, which returns the cost now.
    """
    if not reservation.cancel():  # a fresh reservation: its time has passed
        reservation.settle(0.0)


async def _aundo(reservation: AsyncReservation) -> None:
    """:func:`_undo` for an :class:`AsyncReservation`."""
    if not await reservation.cancel():
        await reservation.settle(0.0)


#: Undo tasks still running after the task they clean up for was cancelled a second time.
_UNDOING: set[asyncio.Future[None]] = set()


def _cancelling(task: asyncio.Task[object] | None) -> int:
    """How many cancellations of *task* are pending (0 before Python 3.11: not known)."""
    count = getattr(task, "cancelling", None)
    return 0 if count is None else int(count())


class AsyncTokenBucket(_Shell):
    """The :class:`TokenBucket` for asyncio: every method is a coroutine; none blocks the loop.

    >>> import asyncio
    >>> from tokenbudget import AsyncTokenBucket, BucketConfig, ManualClock, Rate
    >>> bucket = AsyncTokenBucket(BucketConfig(10, Rate.per_second(1)), clock=ManualClock())
    >>> asyncio.run(bucket.acquire(10)), asyncio.run(bucket.acquire(5))
    (0.0, 5.0)

    Takes the same arguments as :class:`TokenBucket`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()
    _SLEEP = "asleep"
    _APPLY = ("aapply", "aobserve")

    async def _apply(self, request: Request) -> Outcome:
        backend = self._backend
        if type(backend) is MemoryBackend:  # its aapply is its apply: called without the await
            return backend.apply(self._key, self._config, self._clock, self._initial, request)
        return await backend.aapply(self._key, self._config, self._clock, self._initial, request)

    async def _settle_and_sync(
        self,
        reservation: AsyncReservation | None,
        actual_cost: float,
        sync: SyncArgs | None,
        *,
        sync_first: bool = False,
    ) -> bool | None:
        """Like :meth:`TokenBucket._settle_and_sync`."""
        state = None if reservation is None else reservation._state  # noqa: SLF001
        requests = self._settle_sync_requests(state, actual_cost, sync, sync_first=sync_first)
        outs = self._memory_apply_many(requests)
        adopted = None
        for i, req in enumerate(requests):  # on another backend, each reported once applied
            out = await self._apply(req) if outs is None else outs[i]
            done = self._settled_synced(state, req, out)
            adopted = done if type(req) is Sync else adopted
        return adopted

    async def _book(self, request: Admit) -> Outcome:
        """Apply an admission so that cancelling the task never leaves its booking behind.

        On the memory backend the call never suspends, so nothing can cut it
        short. Any other backend's round trip runs shielded: cancelling the
        task lets it finish, undoes what it booked, and then raises
        ``asyncio.CancelledError`` (a second cancel lets the undo finish
        on its own).
        """
        backend = self._backend
        if type(backend) is MemoryBackend:  # its aapply is its apply: called without the await
            return backend.apply(self._key, self._config, self._clock, self._initial, request)
        call = asyncio.ensure_future(self._apply(request))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            undo = asyncio.ensure_future(self._undo_call(call, request.cost))
            _UNDOING.add(undo)
            undo.add_done_callback(_UNDOING.discard)
            with contextlib.suppress(BaseException):  # a second cancel, or the undo failed
                await asyncio.shield(undo)
            raise

    async def _undo_call(self, call: asyncio.Future[Outcome], cost: float) -> None:
        """Wait for an admission whose caller was cancelled, and undo what it booked."""
        try:
            out = await call
        except Exception:  # noqa: BLE001 -- the call failed: it booked nothing to undo
            return
        if out.ok:
            try:
                await _aundo(AsyncReservation(self, _booking(out, cost)))
            except Exception as failure:  # noqa: BLE001 -- the cancellation goes on
                _undo_failed(asyncio.CancelledError(), failure, self._key, cost)

    async def try_acquire(self, cost: float = 1) -> bool:
        """Like :meth:`TokenBucket.try_acquire`."""
        decided = self._fast_decision(cost)
        if decided is not None:
            return decided
        out = await self._book(self._admit_request(cost, 0.0))
        self._report(self._admit_kind(out), out, cost)
        return out.ok

    async def reserve(self, cost: float = 1, *, timeout: float | None = None) -> AsyncReservation:
        """Like :meth:`TokenBucket.reserve` (with its *timeout*)."""
        max_wait = _INF if timeout is None else _check_timeout(timeout)
        out = await self._book(self._admit_request(cost, max_wait))
        if self._on_event is not None or (
            _debug_cached(_DEBUG) is not False and _debug_enabled(_DEBUG)
        ):
            self._report(_admit_kind(out), out, cost)
        if not out.ok:
            raise AcquireTimeout(float(cost), out.delay, max_wait)
        return AsyncReservation(self, _booking(out, float(cost)))

    async def acquire(self, cost: float = 1, *, timeout: float | None = None) -> float:
        """Like :meth:`TokenBucket.acquire`; cancelling the task returns the booking's cost.

        Cancelled at any point — before, during or after the backend's round
        trip, or in the sleep — it leaves no booking behind: what it booked is
        cancelled (or, once its time has passed, settled to zero) before
        ``asyncio.CancelledError`` propagates (and ``asyncio.wait_for`` raises
        its ``TimeoutError``), also when that give-back fails: the failure is
        logged and chained, as in :meth:`TokenBucket.acquire`.
        """
        max_wait = _check_timeout(timeout)
        if self._fast_decision(cost):  # admitted now; a refusal takes the full path to book
            return 0.0
        task = asyncio.current_task()
        cancels = _cancelling(task)
        moves = _MOVES[0]
        out = await self._book(self._admit_request(cost, max_wait))
        self._report(self._admit_kind(out), out, cost)
        if not out.ok:
            raise AcquireTimeout(float(cost), out.delay, max_wait)
        if _cancelling(task) > cancels:
            # Cancelled meanwhile but not raised here (an on_event hook, a library that
            # swallowed it): do not sleep for a booking nobody will use.
            cancelled = asyncio.CancelledError()
            await self._give_back(out, float(cost), cancelled)
            raise cancelled
        if out.delay > 0.0:
            if _wakeable(self):
                return await self._wait(out, float(cost), moves)
            try:
                await self._clock.asleep(out.delay)
            except BaseException as exc:
                await self._give_back(out, float(cost), exc)
                raise
        return out.delay

    async def _wait(self, out: Outcome, cost: float, moves: int) -> float:
        """Like :meth:`TokenBucket._wait`, on the event loop."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(event.set)

        sleeper = _sleeper(self, out, cost, wake)
        with _SLEEPERS_LOCK:
            _sleepers(self).append(sleeper)
            missed = _MOVES[0] != moves
        try:
            if missed:
                await _amove_up(self, -1)  # every waiter behind nothing: booked again in order
            while True:
                remaining = sleeper.deadline - self._clock.now()
                if remaining <= 0.0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
                event.clear()
        except BaseException as exc:
            _forget_sleeper(self, sleeper)
            try:
                await _aundo(AsyncReservation(self, sleeper.state))
            except Exception as failure:  # noqa: BLE001 -- exc goes on, not this
                _undo_failed(exc, failure, self._key, cost)
            raise
        _forget_sleeper(self, sleeper)
        return (
            out.delay
            if sleeper.state.time == out.time + out.delay
            else sleeper.state.time - out.time
        )

    async def _give_back(self, out: Outcome, cost: float, exc: BaseException) -> None:
        """Undo a booking while *exc* propagates; a failure of the undo is logged and chained."""
        try:
            await _aundo(AsyncReservation(self, _booking(out, cost)))
        except Exception as failure:  # noqa: BLE001 -- exc goes on, not this
            _undo_failed(exc, failure, self._key, cost)

    async def sync(
        self,
        tokens: float,
        *,
        refill_in: float | None = None,
        rate: Rate | None = None,
        as_of: float | None = None,
    ) -> Snapshot:
        """Like :meth:`TokenBucket.sync` (with its *as_of*)."""
        req = self._sync_request(tokens, refill_in, rate, as_of)
        out = await self._apply(req)
        self._synced(req, out)
        snap = await self.snapshot()
        return snap if out.ok else attrs.evolve(snap, adopted=False)

    async def would_admit(self, cost: float = 1) -> bool:
        """Like :meth:`TokenBucket.would_admit` (the answer races other bookers).

        .. versionadded:: 0.1.0
        """
        cost = self._config.check_cost(cost)
        obs = await self._backend.aobserve(self._key, self._config, self._clock, self._initial)
        return admits_now(self._config, obs, cost)

    async def set_rate(self, rate: Rate) -> None:
        """Like :meth:`TokenBucket.set_rate`.

        .. versionadded:: 0.1.0
        """
        await self._apply(self._rate_request(rate))

    async def __aenter__(self) -> None:
        """``async with bucket:`` acquires one token, as ``await bucket.acquire(1)``.

        .. versionadded:: 0.1.0
        """
        await self.acquire(1)

    async def __aexit__(self, *exc_info: object) -> None:
        """The token is spent: nothing to give back."""

    async def snapshot(self) -> Snapshot:
        """Like :meth:`TokenBucket.snapshot`."""
        obs = await self._backend.aobserve(self._key, self._config, self._clock, self._initial)
        return Snapshot._from(obs, self._config.capacity)  # noqa: SLF001
