"""The pure transition core: one bucket's state and every operation on it.

Everything a bucket decides is decided here, as a function of
``(config, state, now, request)`` with no I/O. Every backend applies these
functions atomically: the memory backend under a lock, SQLite inside
``BEGIN IMMEDIATE``; the Redis backend runs a Lua twin of this module
(``_redis_lua.py``), pinned to it by a differential test.

The state is the bucket's *tail*: the balance after every booking made so far,
at the time of the latest booking. While bookings are pending that time lies in
the future; the balance *now*, net of the pending bookings, is the tail balance
minus the refill between now and the tail. New requests queue behind the tail,
which is what makes admission first come, first served.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Mapping
from typing import Final, NamedTuple, Protocol, TypeVar

import attrs

from ._config import NONE, WHILE_POSITIVE, BucketConfig


#: Times closer than this (seconds) are equal: "admitted now" survives float rounding.
#: It is the floor of :func:`time_tolerance`, which widens it at large clock values.
TIME_TOLERANCE: Final = 1e-9
#: :func:`time_tolerance` at time *t* is at least ``|t| * TIME_ULPS``: eight units in the
#: last place of a double near *t* (2.4e-7 s is one unit at 1.7e9 s, a wall clock's time).
TIME_ULPS: Final = 2.0**-49
#: Relative tolerance on balances, for the same reason.
TOKEN_TOLERANCE: Final = 1e-12
#: One unit in the last place of a double, relative (moves a tail forward by at least that).
_EPS: Final = 2.0**-52


def time_tolerance(t: float) -> float:
    """The tolerance for comparing times near *t*: ``max(1e-9, |t| * 2**-49)``.

    A fixed 1e-9 s is below the spacing of doubles beyond about 4e6 s (a
    monotonic clock after some weeks of uptime, any wall clock or Redis
    ``TIME``), so times computed from one another (a booking's time, a refill
    step's) would compare unequal by rounding alone. Eight units in the last
    place of *t* cover the few roundings of those computations.
    """
    x = t * TIME_ULPS
    if x < 0.0:
        x = -x
    return x if x > TIME_TOLERANCE else TIME_TOLERANCE


def covers(balance: float, need: float) -> bool:
    """Whether *balance* pays for a required balance *need*, within rounding.

    The one token tolerance of the library: admission (now, without a wait)
    and :class:`~tokenbudget.AdaptiveBatchSizer` both decide with it, so a
    batch the sizer sizes for the burst threshold is admitted there.
    """
    return need - balance <= TOKEN_TOLERANCE * max(1.0, abs(need))


def debited_below(balance: float, low: float, cost: float) -> bool:
    """Whether a debit of *cost* left *balance* below *low* (``min_threshold``) beyond rounding.

    The balance after a booking is the balance it waited for (or was
    admitted at) minus *cost*: with the ``none`` rule ``R(c) - c`` is exactly
    ``m``, but computed in doubles it is ``m`` only within the rounding of
    *cost*, which :func:`covers` (relative to *low*) does not allow for: a
    cost of 5e4 left 2 - 4e-12 and entered recharge mode by rounding alone.
    The tolerance is relative to the larger of the two.
    """
    scale = -low if low < 0.0 else low
    if cost > scale:
        scale = cost
    if scale < 1.0:
        scale = 1.0
    return low - balance > TOKEN_TOLERANCE * scale


@attrs.define(slots=True)
class BucketState:
    """The mutable state of one bucket, as every backend stores it.

    The state is a *base* (the balance settled before the first pending
    booking) and the pending bookings on top of it, whose replay gives the
    *tail*; the tail is kept too, so that admission reads it directly.

    Attributes:
        tokens: Balance at :attr:`time`, after every booking (may be negative).
        time: Time of :attr:`tokens`; later than now while bookings are pending.
        recharging: Whether the bucket is in recharge mode at :attr:`time`.
        rate: Refill rate in tokens per second (``sync(rate=...)`` changes it).
        anchor: A time at which a refill step happens (step refill only).
        next_id: The id the next booking gets.
        booked: Total cost booked since :attr:`since` (net of cancels and settles).
        since: When the state was created.
        pending: ``(booking_id, time, cost, settled, before)`` of bookings
            whose time may not have come yet, in booking (and so time) order;
            *settled* (1.0 or 0.0) says whether it was settled before its time
            (it is then not in flight after it); *before* is the balance the
            booking was admitted at (just before its debit), which a replay
            that arrives within rounding of it adopts.
        base_tokens: The balance before the first pending booking, at
            :attr:`base_time` (meaningful only while bookings are pending).
        base_time: The time of :attr:`base_tokens`.
        base_recharging: The recharge mode at :attr:`base_time`.
        flight: ``(booking_id, time, cost)`` of bookings whose time has come
            but which are neither settled nor cancelled, for
            ``BucketConfig.in_flight`` seconds after their time.
        synced_id: :attr:`next_id` at the last sync: a booking with a smaller
            id, neither pending nor in flight then, is in the server's figure.
        as_of: The server's timestamp of the last sync adopted with one
            (``sync(as_of=...)``), or None.
        as_of_time: When that sync was adopted (this state's clock).
        returned: Total cost returned by cancels and by settles that lowered
            a cost: :attr:`booked` plus this only grows (everything ever spent).
        origin: The backend time (absolute) of offset 0: every other time of
            the state (:attr:`time`, :attr:`anchor`, :attr:`since`, the
            bookings', :attr:`seen`) is an offset from it (see ``clock_in``).
        seen: The offset of the latest clock reading.
        stepped_id: :attr:`next_id` when the clock last stepped back: a
            booking with a smaller id holds an absolute time of the clock
            before the step, which no longer maps to its offset (see
            ``cancel``).
    """

    tokens: float
    time: float
    recharging: bool
    rate: float
    anchor: float
    next_id: int = 1
    booked: float = 0.0
    since: float = 0.0
    pending: list[tuple[int, float, float, float, float]] = attrs.Factory(list)
    base_tokens: float = 0.0
    base_time: float = 0.0
    base_recharging: bool = False
    flight: list[tuple[int, float, float]] = attrs.Factory(list)
    synced_id: int = 0
    as_of: float | None = None
    as_of_time: float = 0.0
    returned: float = 0.0
    origin: float = 0.0
    seen: float = 0.0
    stepped_id: int = 0

    def to_dict(self) -> dict[str, object]:
        """Plain data for storage (JSON-compatible)."""
        return {
            "tokens": self.tokens,
            "time": self.time,
            "recharging": self.recharging,
            "rate": self.rate,
            "anchor": self.anchor,
            "next_id": self.next_id,
            "booked": self.booked,
            "since": self.since,
            "pending": [list(p) for p in self.pending],
            "base": [self.base_tokens, self.base_time, self.base_recharging],
            "flight": [list(f) for f in self.flight],
            "synced_id": self.synced_id,
            "as_of": None if self.as_of is None else [self.as_of, self.as_of_time],
            "returned": self.returned,
            "origin": self.origin,
            "seen": self.seen,
            "stepped_id": self.stepped_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> BucketState:
        """Inverse of :meth:`to_dict`."""
        pending = data.get("pending") or []
        flight = data.get("flight") or []
        base = data.get("base") or [data["tokens"], data["time"], data["recharging"]]
        assert isinstance(pending, list)  # noqa: S101 -- internal storage format
        assert isinstance(flight, list)  # noqa: S101
        assert isinstance(base, list)  # noqa: S101
        as_of = data.get("as_of")
        assert as_of is None or isinstance(as_of, list)  # noqa: S101
        return cls(
            tokens=float(data["tokens"]),  # type: ignore[arg-type]
            time=float(data["time"]),  # type: ignore[arg-type]
            recharging=bool(data["recharging"]),
            rate=float(data["rate"]),  # type: ignore[arg-type]
            anchor=float(data["anchor"]),  # type: ignore[arg-type]
            next_id=int(data["next_id"]),  # type: ignore[call-overload]
            booked=float(data["booked"]),  # type: ignore[arg-type]
            since=float(data["since"]),  # type: ignore[arg-type]
            pending=[
                (int(e[0]), float(e[1]), float(e[2]), float(e[3]), float(e[4])) for e in pending
            ],
            base_tokens=float(base[0]),
            base_time=float(base[1]),
            base_recharging=bool(base[2]),
            flight=[(int(e[0]), float(e[1]), float(e[2])) for e in flight],
            synced_id=int(data.get("synced_id", 0)),  # type: ignore[call-overload]
            as_of=None if as_of is None else float(as_of[0]),
            as_of_time=0.0 if as_of is None else float(as_of[1]),
            returned=float(data.get("returned", 0.0)),  # type: ignore[arg-type]
            origin=float(data.get("origin", 0.0)),  # type: ignore[arg-type]
            seen=float(data.get("seen", 0.0)),  # type: ignore[arg-type]
            stepped_id=int(data.get("stepped_id", 0)),  # type: ignore[call-overload]
        )


def new_state(config: BucketConfig, tokens: float, now: float) -> BucketState:
    """The state of a new bucket holding *tokens* at *now*.

    A starting balance below ``min_threshold`` starts in recharge mode,
    exactly as after a sync. Its booking ids start at ``first_id(now)``; a
    booking with a smaller id (of a bucket this key held before) counts as in
    the starting balance, as bookings before a sync count as in its figure.
    """
    first = first_id(now)
    return BucketState(
        tokens=tokens,
        time=0.0,
        recharging=tokens < config.min_threshold,
        rate=config.refill.tokens_per_second,
        anchor=0.0,
        since=0.0,
        next_id=first,
        synced_id=first,
        origin=now,
    )


#: Offsets beyond this (about six days) move the origin forward (see ``clock_in``).
REANCHOR: Final = 2.0**19


def clock_in(state: BucketState, now: float, window: float = 0.0) -> float:
    """The offset of the clock reading *now* (absolute) in *state*; the state's times follow it.

    Times are kept as offsets from the bucket's own origin, so the rules work
    with numbers near zero whatever the clock's magnitude (a wall clock reads
    1.7e9 s, where doubles are 2.4e-7 s apart): a booking's time, a wait, a
    step keep the precision the rules need, and the time tolerance stays
    1e-9 s. Two things move the origin:

    * a clock that steps back (an NTP correction, a resumed VM; the SQLite
      backend's wall clock and Redis ``TIME`` both do): a reading earlier
      than the latest one counts as no time elapsed, as Go's ``x/time/rate``
      does, and the origin moves back with the clock, so the state never lies
      in the future of the clock that reads it (it neither freezes nor
      admits more);
    * offsets beyond :data:`REANCHOR`: the origin moves forward to now and
      every time of the state moves back by as much.

    The bookings made so far are remembered (``stepped_id``): the absolute
    times their reservations hold no longer map to their offsets.

    A reading earlier than the latest by at most *window* seconds (the
    bucket's ``in_flight``) is one that raced another: processes sharing a
    bucket through a backend that takes their clock's reading (an injected
    clock) read it before their operation reaches the backend, so a reading
    taken first may arrive last. It too counts as no time elapsed, but the
    origin stays: moved back, it would count the time between the two
    readings once more at the next one, and the state would run ahead of the
    clock by every race (a refill step added before the server's). A real
    step back that short only keeps the refill waiting for that long.
    """
    t = now - state.origin
    if t < state.seen:  # the clock stepped back, or the reading raced another: no time elapsed
        if state.seen - t > window:  # a step back: the origin follows the clock
            state.origin = now - state.seen
            state.stepped_id = state.next_id
        t = state.seen
    elif t > REANCHOR:
        _reanchor(state, t)
        t = state.seen
    state.seen = t
    return t


def clock_tolerance(state: BucketState, t: float) -> float:
    """The tolerance comparing the clock's reading (offset *t*) with the state's times.

    Times the state computes (bookings, steps, waits) are offsets, exact to
    1e-9 s; but the clock is read as an absolute double, which at 1.7e9 s
    (a wall clock, Redis ``TIME``) cannot tell apart instants 2.4e-7 s apart.
    Comparing a reading with a booking's time (has it come?) allows for that
    rounding: :func:`time_tolerance` of the reading's magnitude. It never
    accumulates: what is decided is recorded at its exact offset.
    """
    return time_tolerance(abs(state.origin) + abs(t))


def _reanchor(state: BucketState, t: float) -> None:
    """Move the origin forward to about *now* (offset *t*); every time moves back by as much."""
    origin = state.origin + t
    shift = origin - state.origin
    state.origin = origin
    state.time -= shift
    state.anchor -= shift
    state.since -= shift
    state.base_time -= shift
    state.as_of_time -= shift
    state.seen = t - shift
    state.pending = [(e[0], e[1] - shift, e[2], e[3], e[4]) for e in state.pending]
    state.flight = [(f[0], f[1] - shift, f[2]) for f in state.flight]


def stepped_back(state: BucketState, now: float, window: float = 0.0) -> bool:
    """Whether *now* (absolute) moves the origin back: before the latest reading by > *window*.

    See ``clock_in`` (*window*: the bucket's ``in_flight``).
    """
    return state.seen - (now - state.origin) > window


def reading(state: BucketState, now: float) -> float:
    """``clock_in`` without changing the state (for a read)."""
    t = now - state.origin
    return t if t >= state.seen else state.seen


#: Booking ids are exact integers in a double (Lua) below this.
_ID_LIMIT: Final = 2.0**52


def first_id(now: float) -> int:
    """The first booking id of a bucket created at *now*: its time in microseconds, plus one.

    A bucket's key can be forgotten and created again (an idle Redis key
    expires, ``SQLiteBackend.delete``); a reservation of the earlier bucket
    must never name a booking of the new one. Ids count up from the time the
    state was created, so a new state's ids lie above every id of an earlier
    one (unless that one booked more than once per microsecond of its life).
    A time outside (0, 2**52 µs) starts at 1.
    """
    micros = now * 1e6
    if 0.0 < micros < _ID_LIMIT:
        return math.floor(micros) + 1
    return 1


class Admit(NamedTuple):
    """Book *cost* if its wait is at most *max_wait* seconds (0: only now; inf: always)."""

    cost: float
    max_wait: float


class Cancel(NamedTuple):
    """Return the cost of the booking *booking_id* made for *time*, if its time has not passed."""

    booking_id: int
    time: float
    cost: float


class Settle(NamedTuple):
    """Correct the booking *booking_id*, debited *cost*, to its true cost *actual*.

    *spent* is ``Outcome.spent`` of the booking's admission (0: unknown,
    then a late credit is bounded as if everything ever spent came after it).
    """

    booking_id: int
    time: float
    cost: float
    actual: float
    spent: float = 0.0


class Sync(NamedTuple):
    """Adopt a balance reported by the server (see :meth:`tokenbudget.TokenBucket.sync`).

    *as_of* is the server's timestamp of the balance: a sync older than the
    last one adopted is stale and changes nothing (see ``_core.sync``).
    """

    tokens: float
    refill_in: float | None
    rate: float | None
    as_of: float | None = None


class SetRate(NamedTuple):
    """Refill at *rate* tokens a second from now on (:meth:`~tokenbudget.TokenBucket.set_rate`)."""

    rate: float


class Rebook(NamedTuple):
    """Book the bucket's last booking *booking_id* again, if that makes it earlier.

    A waiting ``acquire`` moves up this way when a booking ahead of it was
    cancelled. Only while it is the bucket's last booking, and pending: it
    is cancelled and its cost booked again in one step, exactly as a cancel
    and a new reservation made at once; if the new booking is not earlier,
    nothing changes and the outcome is not ok. The outcome of a move is the
    new booking's (a new id and delay), which its holder must adopt.
    """

    booking_id: int


Request = Admit | Cancel | Settle | Sync | SetRate | Rebook


class Outcome(NamedTuple):
    """What an operation decided.

    Attributes:
        ok: Admitted (``Admit``), cancelled (``Cancel``), adopted (``Sync``:
            false when stale); always true otherwise.
        delay: Seconds from now until the booking's time (``Admit``; also the
            wait a refused request would have had).
        booking_id: The new booking's id (``Admit``), else 0.
        time: The time the operation ran at (the backend's clock).
        tokens: The balance now, net of every booking, after the operation.
        recharging: Whether the bucket is in recharge mode after the operation.
        entered: The operation started recharge mode.
        left: Recharge mode ended before or during the operation.
        spent: Everything ever spent (booked plus returned) after the
            operation (a reservation keeps the figure of its admission, for a
            late :class:`Settle`).
    """

    ok: bool
    delay: float
    booking_id: int
    time: float
    tokens: float
    recharging: bool
    entered: bool
    left: bool
    spent: float = 0.0


_new_tuple = tuple.__new__


class Observation(NamedTuple):
    """A read-only view of a state at a time; :class:`~tokenbudget.Snapshot` is built from it."""

    time: float
    tokens: float
    recharging: bool
    rate: float
    pending: int
    backlog: float
    booked: float
    since: float
    #: The smallest id of a booking in flight now (``BucketConfig.in_flight``), 0 if none.
    first_in_flight: int = 0


# -- refill ---------------------------------------------------------------------------------


def _step_index(state: BucketState, step: float, t: float) -> int:
    """The index of the last refill step at or before *t* (steps are ``anchor + k * step``)."""
    a = state.anchor
    # Within the clock's rounding (clock_tolerance) of a step, the step has come.
    return math.floor((t - a + time_tolerance(abs(state.origin) + abs(t) + abs(a))) / step)


def refill_between(config: BucketConfig, state: BucketState, t0: float, t1: float) -> float:
    """Tokens the refill adds between *t0* and *t1* (``t0 <= t1``), before the capacity cap."""
    step = config.refill_step
    if step is None:
        return state.rate * (t1 - t0)
    steps = _step_index(state, step, t1) - _step_index(state, step, t0)
    return steps * (state.rate * step)


def _time_to_reach(
    config: BucketConfig, state: BucketState, balance: float, t0: float, target: float
) -> tuple[float, float]:
    """The first time after *t0* the balance reaches *target*, and the balance then.

    A step's time is computed from its integer index relative to the anchor,
    so that counting the steps up to it again gives the same index.
    """
    step = config.refill_step
    if step is None:
        at = t0 + (target - balance) / state.rate
        if at <= t0:  # the wait is below the spacing of doubles at t0: move by one unit
            at = t0 + abs(t0) * _EPS
        return at, target
    per_step = state.rate * step
    needed = max(1, math.ceil((target - balance) / per_step - TOKEN_TOLERANCE))
    at = state.anchor + (_step_index(state, step, t0) + needed) * step
    reached = min(config.capacity, balance + needed * per_step)
    return at, max(reached, target)  # within rounding of the target: the target (time moved)


def _refill_to(config: BucketConfig, state: BucketState, now: float) -> bool:
    """Bring the tail, if it is in the past, up to *now* (capped); True if recharge mode ended."""
    t0 = state.time
    if now > t0:
        if config.refill_step is None:  # refill_between, inlined for the common case
            b = state.tokens + state.rate * (now - t0)
        else:
            b = state.tokens + refill_between(config, state, t0, now)
        cap = config.capacity
        state.tokens = b if b < cap else cap
        state.time = now
        if state.recharging and state.tokens >= config.burst_threshold:
            state.recharging = False
            return True
    return False


def _run(
    config: BucketConfig,
    state: BucketState,
    start: tuple[float, float, bool],
    entries: list[tuple[int, float, float, float, float]],
) -> tuple[float, float, bool]:
    """Replay *entries* from *start* (balance, time, recharge mode): a capped server after each.

    The refill is capped at the capacity on the way; recharge mode ends when
    the balance reaches the burst threshold and starts when a debit leaves it
    below the minimum threshold. Bookings keep their times. Every change of
    the past (sync, cancel, settle, a booking's time passing) goes through it.
    A balance within rounding of the one the booking was admitted at (the
    refill over its wait, recomputed from times, is exact only to the time
    tolerance) is that balance, so that replaying changes nothing by itself.
    """
    balance, t, recharging = start
    cap = config.capacity
    low = config.min_threshold
    high = config.burst_threshold
    rate = state.rate
    for entry in entries:
        at = entry[1]
        if at > t:
            balance = balance + refill_between(config, state, t, at)
            if balance > cap:
                balance = cap
            t = at
        before = entry[4]
        off = balance - before
        if off < 0.0:
            off = -off
        if off <= rate * time_tolerance(at) + TOKEN_TOLERANCE * max(1.0, abs(before)):
            balance = before
        if recharging and covers(balance, high):
            recharging = False
        balance -= entry[2]
        if debited_below(balance, low, entry[2]):  # a debit below m, beyond rounding
            recharging = True
    return balance, t, recharging


def _rebook(config: BucketConfig, state: BucketState) -> None:  # noqa: C901 -- mirrors _run
    """Move pending bookings the base can no longer pay at their times later (after a sync).

    Each pending booking is admitted again, in order, from the base: where
    the balance at its time (within rounding of the one it was admitted at,
    as in :func:`_run`) does not cover what it needs, it moves to the time
    the balance does, exactly as a new booking would; later ones queue
    behind it (a booking before which an earlier one moved moves to it too,
    first come, first served). A booking never moves earlier.
    """
    balance, t, recharging = state.base_tokens, state.base_time, state.base_recharging
    cap = config.capacity
    low = config.min_threshold
    high = config.burst_threshold
    rate = state.rate
    pending = state.pending
    for i, entry in enumerate(pending):
        at = entry[1]
        moved = at < t
        if moved:
            at = t
        elif at > t:
            balance = balance + refill_between(config, state, t, at)
            if balance > cap:
                balance = cap
            t = at
        before = entry[4]
        off = balance - before
        if off < 0.0:
            off = -off
        if not moved and off <= rate * time_tolerance(at) + TOKEN_TOLERANCE * max(1.0, abs(before)):
            balance = before
        target = config.required_balance(entry[2])
        if target > cap:  # a cost settled above max_cost: what the bucket can hold
            target = cap
        if recharging and target < high:
            target = high
        if not covers(balance, target):
            at, balance = _time_to_reach(config, state, balance, t, target)
            t = at
            moved = True
        if moved:
            pending[i] = (entry[0], at, entry[2], entry[3], balance)
        balance -= entry[2]
        recharging = debited_below(balance, low, entry[2])


def _replay(config: BucketConfig, state: BucketState, now: float) -> bool:
    """Recompute the tail from the base and the pending bookings; True if recharge mode ended.

    With nothing pending the base, brought up to *now*, is the tail.
    """
    was = state.recharging
    pending = state.pending
    if pending:
        state.tokens, state.time, state.recharging = _run(
            config, state, (state.base_tokens, state.base_time, state.base_recharging), pending
        )
        return was and not state.recharging
    state.tokens = state.base_tokens
    state.time = state.base_time
    state.recharging = state.base_recharging
    left = _refill_to(config, state, now)
    return left or (was and not state.recharging)


def _advance(config: BucketConfig, state: BucketState, now: float) -> bool:  # noqa: C901 -- inlined
    """Bring a state up to *now*: bookings whose time came leave the pending list.

    They go in flight (``BucketConfig.in_flight``) unless settled before their
    time; flights older than that window are forgotten. Returns True if
    recharge mode ended.
    """
    pending = state.pending
    if pending:
        x = (abs(state.origin) + abs(now)) * TIME_ULPS  # clock_tolerance(state, now), inlined
        limit = now + (x if x > TIME_TOLERANCE else TIME_TOLERANCE)
        if pending[0][1] <= limit:
            i = 0
            while i < len(pending) and pending[i][1] <= limit:
                i += 1
            done = pending[:i]
            del pending[:i]
            if config.in_flight > 0.0:
                state.flight.extend((e[0], e[1], e[2]) for e in done if e[3] == 0.0)
            if pending:  # the base moves past the bookings whose time came
                state.base_tokens, state.base_time, state.base_recharging = _run(
                    config, state, (state.base_tokens, state.base_time, state.base_recharging), done
                )
    flight = state.flight
    if flight:
        window = config.in_flight
        for f in flight:
            if not f[1] + window > now:  # one is over: a new list without those
                state.flight = [f for f in flight if f[1] + window > now]
                break
    # _refill_to(config, state, now), inlined (on every operation's path)
    t0 = state.time
    if now > t0:
        if config.refill_step is None:
            b = state.tokens + state.rate * (now - t0)
        else:
            b = state.tokens + refill_between(config, state, t0, now)
        cap = config.capacity
        state.tokens = b if b < cap else cap
        state.time = now
        if state.recharging and state.tokens >= config.burst_threshold:
            state.recharging = False
            return True
    return False


def net_tokens(config: BucketConfig, state: BucketState, now: float) -> float:
    """The balance at *now*, net of every booking (state already advanced to *now*)."""
    if state.time > now:
        return state.tokens - refill_between(config, state, now, state.time)
    return state.tokens


def _base_now(config: BucketConfig, state: BucketState, now: float) -> tuple[float, bool]:
    """The balance and recharge mode at *now* before the pending bookings (some are pending)."""
    b = state.base_tokens + refill_between(config, state, state.base_time, now)
    if b > config.capacity:
        b = config.capacity
    return b, state.base_recharging and b < config.burst_threshold


# -- operations -----------------------------------------------------------------------------


def admit(  # noqa: C901, PLR0912, PLR0915 -- the helpers on its path are inlined
    config: BucketConfig, state: BucketState, now: float, request: Admit
) -> Outcome:
    """Book ``request.cost`` first come, first served, if its wait fits ``request.max_wait``.

    A shortfall within rounding of the balance (:func:`covers`) is admitted
    at the tail; any other shortfall waits for the refill, and a wait within
    the time tolerance counts as none (delay 0) but still moves the tail
    forward by it, so that the shortfall is never forgiven. The cost must
    already be checked (:meth:`BucketConfig.check_cost`).
    """
    left = _advance(config, state, now)
    cost = request.cost
    t0 = state.time  # >= now: the tail, behind every earlier booking
    start = state.tokens
    balance = start
    if config.deficit_code == NONE:  # config.required_balance(cost), inlined
        target = cost + config.min_threshold
    else:
        target = config.required_balance(cost)
    rech = state.recharging
    if rech and target < config.burst_threshold:
        target = config.burst_threshold
    scale = abs(target)  # covers(balance, target), inlined (on every booking's path)
    if target - balance <= TOKEN_TOLERANCE * (scale if scale > 1.0 else 1.0):
        at = t0
        if balance < target:
            balance = target
    else:
        at, balance = _time_to_reach(config, state, balance, t0, target)
    x = (abs(state.origin) + abs(now)) * TIME_ULPS  # clock_tolerance(state, now), inlined
    tol = x if x > TIME_TOLERANCE else TIME_TOLERANCE
    delay = at - now
    if delay <= tol:
        delay = 0.0
    if delay > request.max_wait + tol:
        return Outcome(
            False,
            delay,
            0,
            now,
            net_tokens(config, state, now),
            rech,
            False,
            left,
            state.booked + state.returned,
        )
    pending = state.pending
    booking_id = state.next_id
    if delay > 0.0:
        if not pending:  # the base: the tail before the first pending booking
            state.base_tokens = start
            state.base_time = t0
            state.base_recharging = rech
        pending.append((booking_id, at, cost, 0.0, balance))
    elif config.in_flight > 0.0:
        state.flight.append((booking_id, now, cost))
    balance -= cost
    state.tokens = balance
    state.time = at if at > t0 else t0
    low = (
        config.min_threshold
    )  # debited_below(balance, low, cost), inlined: below m beyond rounding
    scale = -low if low < 0.0 else low
    if cost > scale:
        scale = cost
    if scale < 1.0:
        scale = 1.0
    entered = low - balance > TOKEN_TOLERANCE * scale
    left = left or rech  # an admission while recharging waited for the burst threshold
    state.recharging = entered
    state.booked += cost
    state.next_id = booking_id + 1
    tokens = balance if state.time <= now else net_tokens(config, state, now)
    spent = state.booked + state.returned
    return Outcome(True, delay, booking_id, now, tokens, entered, entered, left, spent)


_DEBUG: Final = logging.DEBUG

#: What :func:`admitter`'s *fallback* returns (the checked path's answer, or None: undecided).
R = TypeVar("R")


class Lock(Protocol):
    """What :func:`admitter` needs of a lock (:class:`threading.Lock` has it)."""

    def acquire(self) -> bool:
        """Wait for the lock and take it."""

    def release(self) -> None:
        """Give the lock back."""


def admitter(  # noqa: C901, PLR0915 -- the hot path is one function on purpose
    config: BucketConfig,
    *,
    state: BucketState,
    now: Callable[[], float],
    lock: Lock,
    fallback: Callable[[float], R],
    logger: logging.Logger | None = None,
) -> Callable[[float], bool | R]:
    """``cost -> bool``: ``admit(config, state, now(), Admit(cost, 0.0)).ok``, faster.

    The hot path of ``try_acquire`` when nobody listens for events: no request
    or outcome is built, the config's numbers are read once, here, and the
    whole call is one Python frame, the cost's checks included. It decides
    only a plain int or float in (0, ``max_cost``] (NaN fails the comparison;
    an int is compared as an int, so ``10**400`` too, and then converted as
    ``float(cost)`` would, by ``cost + 0.0``), and only while *logger* (if
    any) has DEBUG off; any other call returns ``fallback(cost)``, the
    caller's checked path, which logs. Whether DEBUG is on is read from the
    logger's own cache of ``isEnabledFor`` (``logging`` empties it whenever a
    level changes, so a level set at any time counts from the next call);
    only a level not cached asks ``isEnabledFor``.

    Each call holds the backend's *lock* while it reads the time with *now*
    and decides on *state*, the bucket's state object, which the backend
    must therefore never replace. The closure's own variables are the few
    the common case reads (each one costs every call a little); the core's
    constants are read as globals.

    The common case (not recharging, no booking pending, the tail not in the
    future) is decided inline with exactly :func:`admit`'s arithmetic and the
    same change to the state, ``R(cost)`` being
    :meth:`BucketConfig.required_balance` written as ``max(floor, cost +
    shift)``; every other case, and the rounding corner where a wait within
    the tolerance counts as none, is left to :func:`admit` itself. A test pins
    it to :func:`admit`.
    """
    acquire = lock.acquire
    release = lock.release
    # DEBUG on? The logger's cache (a level -> bool dict, emptied in place) answers first.
    debug_cached: Mapping[int, bool] = (
        {_DEBUG: False} if logger is None else getattr(logger, "_cache", {})
    )
    debug_enabled: Callable[[int], bool] = (
        (lambda _level: False) if logger is None else logger.isEnabledFor
    )
    float_max = min(config.max_cost, sys.float_info.max)  # finite: inf takes the fallback
    int_max = math.floor(float_max)

    if config.refill_step is not None or config.in_flight > 0.0:

        def admit_general(cost: float = 1) -> bool | R:
            try:
                loud = debug_cached[_DEBUG]
            except KeyError:
                loud = debug_enabled(_DEBUG)
            kind: object = type(cost)
            if kind is int:
                if loud or not 0 < cost <= int_max:
                    return fallback(cost)
                cost = cost + 0.0
            elif loud or kind is not float or not 0.0 < cost <= float_max:
                return fallback(cost)
            acquire()
            try:
                return apply(config, state, now(), Admit(cost, 0.0)).ok
            finally:
                release()

        return admit_general

    cap = config.capacity
    m = config.min_threshold
    code = config.deficit_code
    shift = m if code == NONE else -config.max_deficit
    floor = m if code == WHILE_POSITIVE else -math.inf
    m_tol = TOKEN_TOLERANCE * max(1.0, abs(m))  # covers(balance, m), inlined

    def admit_now(cost: float = 1) -> bool | R:  # noqa: C901, PLR0912 -- one frame on purpose
        try:
            loud = debug_cached[_DEBUG]
        except KeyError:
            loud = debug_enabled(_DEBUG)
        kind: object = type(cost)
        if kind is int:
            if loud or not 0 < cost <= int_max:
                return fallback(cost)
            cost = cost + 0.0
        elif loud or kind is not float or not 0.0 < cost <= float_max:
            return fallback(cost)
        acquire()
        try:
            clock = now()
            origin = state.origin
            t = clock - origin  # clock_in: the offset (a step back goes to apply)
            t0 = state.time  # >= state.seen: t >= t0 is no step back
            if state.recharging or t0 > t or state.pending or t > REANCHOR:
                return apply(config, state, clock, Admit(cost, 0.0)).ok
            state.seen = t
            balance = state.tokens
            if t > t0:  # _advance, continuous refill
                balance = balance + state.rate * (t - t0)
                if balance >= cap:
                    balance = cap
            target = cost + shift
            if target < floor:
                target = floor
            if balance < target:
                scale = target if target > 0.0 else -target  # covers(balance, target), inlined
                if scale < 1.0:
                    scale = 1.0
                if target - balance > TOKEN_TOLERANCE * scale:
                    state.tokens = balance  # like admit: the refill up to now is applied anyway
                    state.time = t
                    tol = (abs(origin) + abs(t)) * TIME_ULPS  # clock_tolerance(state, t), inlined
                    if tol < TIME_TOLERANCE:
                        tol = TIME_TOLERANCE
                    if t + (target - balance) / state.rate - t > tol:
                        return False
                    return admit(config, state, t, Admit(cost, 0.0)).ok  # a wait within tolerance
                balance = target
            balance -= cost
            state.tokens = balance
            state.time = t
            # debited_below, inlined; a balance >= m is never below it (m - balance <= 0).
            if balance < m and m - balance > m_tol and m - balance > TOKEN_TOLERANCE * cost:
                state.recharging = True
            state.booked += cost
            state.next_id += 1
            return True
        finally:
            release()

    return admit_now


def book(  # noqa: C901, PLR0912 -- one frame on purpose
    config: BucketConfig, state: BucketState, now: float, cost: float
) -> tuple[float, int, float, float]:
    """``apply(config, state, now, Admit(cost, math.inf))``, without request and outcome objects.

    A booking that always goes (first come, first served), as a reservation
    without a timeout makes it: ``(delay, booking_id, spent, tokens)`` of its
    outcome (its time is *now* plus the delay). The usual case (not recharging,
    nothing pending, a continuous refill, the balance covering the cost now) is
    decided inline with exactly :func:`admit`'s arithmetic and the same change to
    the state; anything else is :func:`apply` itself. The cost must be checked.
    A test pins it to :func:`apply`.
    """
    t = now - state.origin
    t0 = state.time
    if (
        state.recharging
        or t0 > t
        or state.pending
        or t < state.seen
        or t > REANCHOR
        or config.refill_step is not None
    ):
        out = apply(config, state, now, Admit(cost, math.inf))
        return out.delay, out.booking_id, out.spent, out.tokens
    state.seen = t
    # _advance, nothing pending, a continuous refill, not recharging
    flight = state.flight
    if flight:
        window = config.in_flight
        for f in flight:
            if not f[1] + window > t:  # one is over: a new list without those
                flight = state.flight = [f for f in flight if f[1] + window > t]
                break
    balance = state.tokens
    if t > t0:
        balance = balance + state.rate * (t - t0)
        cap = config.capacity
        if balance >= cap:
            balance = cap
        state.tokens = balance
        state.time = t
    if config.deficit_code == NONE:  # config.required_balance(cost), inlined
        target = cost + config.min_threshold
    else:
        target = config.required_balance(cost)
    scale = abs(target)  # covers(balance, target), inlined
    if target - balance > TOKEN_TOLERANCE * (scale if scale > 1.0 else 1.0):
        out = admit(config, state, t, Admit(cost, math.inf))  # a wait: the state is at t already
        return out.delay, out.booking_id, out.spent, out.tokens
    if balance < target:
        balance = target
    booking_id = state.next_id
    if config.in_flight > 0.0:
        flight.append((booking_id, t, cost))
    balance -= cost
    state.tokens = balance
    low = config.min_threshold  # debited_below(balance, low, cost), inlined
    scale = -low if low < 0.0 else low
    if cost > scale:
        scale = cost
    if scale < 1.0:
        scale = 1.0
    state.recharging = low - balance > TOKEN_TOLERANCE * scale
    state.booked += cost
    state.next_id = booking_id + 1
    return 0.0, booking_id, state.booked + state.returned, balance


def _absorbed(state: BucketState, booking_id: int) -> bool:
    """Whether a sync took the booking (neither pending nor in flight) as in the server's figure."""
    if booking_id >= state.synced_id:
        return False
    for f in state.flight:  # noqa: SIM110 -- a loop, not all() over a generator: on every settle's path
        if f[0] == booking_id:
            return False
    return True


def _end_flight(state: BucketState, booking_id: int) -> None:
    flight = state.flight
    for i, f in enumerate(flight):
        if f[0] == booking_id:
            del flight[i]
            return


def _correct_now(config: BucketConfig, state: BucketState, now: float, credit: float) -> bool:
    """Credit (or, negative, debit) *credit* at *now*, before the pending bookings.

    The balance is capped at the capacity; with bookings pending they are
    replayed on top of the corrected base. Returns True if recharge mode ended.
    """
    cap = config.capacity
    if state.pending:
        b, rech = _base_now(config, state, now)
        b += credit
        if b > cap:
            b = cap
        if not covers(b, config.min_threshold):
            rech = True
        elif b >= config.burst_threshold:
            rech = False
        state.base_tokens, state.base_time, state.base_recharging = b, now, rech
        return _replay(config, state, now)
    b = state.tokens + credit
    state.tokens = b if b < cap else cap
    was = state.recharging
    low = config.min_threshold
    scale = abs(low)  # not covers(state.tokens, low), inlined
    if low - state.tokens > TOKEN_TOLERANCE * (scale if scale > 1.0 else 1.0):
        state.recharging = True
    elif state.tokens >= config.burst_threshold:
        state.recharging = False
    return was and not state.recharging


def cancel(config: BucketConfig, state: BucketState, now: float, request: Cancel) -> Outcome:
    """Return a booking's cost if its time has not passed; later bookings keep their times.

    The later bookings are replayed as a capped server would see them without
    the cancelled one, so nothing is credited that the capacity would have
    cut. A booking a sync took as in the server's figure returns nothing.
    A pending booking is found by its id (a sync may have moved it later).
    A cancel that returns nothing changes nothing: the booking stands, and
    stays in flight (its request may be on the wire).

    Any other booking is recognised as admitted now by its time, which its
    reservation holds on the backend's absolute clock. A booking made before
    the clock last stepped back is never: after the step its absolute time
    maps to an offset later by the step, and once the clock has gone forward
    as much again it would look admitted now though that much time has
    passed since (its cost would return in full, more than a capped server
    holds; ``settle(0)`` credits what it does).
    """
    left = _advance(config, state, now)
    booking_id = request.booking_id
    pending = state.pending
    for i, entry in enumerate(pending):
        if entry[0] == booking_id:
            del pending[i]
            state.booked -= entry[2]
            state.returned += entry[2]
            left2 = _replay(config, state, now)
            return _outcome(config, state, now, ok=True, left=left or left2)
    tol = clock_tolerance(state, now)
    if (
        request.time < now - tol
        or request.time > now + tol
        or _absorbed(state, booking_id)
        or booking_id < state.stepped_id
    ):
        # Its time has passed, it was cancelled already, it is in the server's figure, or
        # its time is on the clock from before a step back.
        return _outcome(config, state, now, ok=False, left=left)
    _end_flight(state, booking_id)
    state.booked -= request.cost  # a booking admitted now: its cost returns now
    state.returned += request.cost
    left2 = _correct_now(config, state, now, request.cost)
    return _outcome(config, state, now, ok=True, left=left or left2)


def settle(config: BucketConfig, state: BucketState, now: float, request: Settle) -> Outcome:
    """Correct a booking's debit to its true cost; never moves later bookings.

    A pending booking is corrected at its time and the later ones replayed; a
    booking whose time has come is corrected now (before the pending ones),
    unless a sync took it as in the server's figure: then only the count of
    booked tokens changes. The booking stops being in flight.

    A lower cost settled after the booking's time credits only what a server
    that charged the true cost then, and held at most the capacity since,
    could still hold more: the balance since then was at most the balance now
    plus everything spent since the admission (``request.spent``), so the
    credit is at most the capacity minus that (see ``_late_credit``).
    """
    left = _advance(config, state, now)
    booking_id = request.booking_id
    delta = request.actual - request.cost
    spent_now = state.booked + state.returned
    state.booked += delta
    if delta < 0.0:
        state.returned -= delta
    # _absorbed and _end_flight in one pass over the flights (on every settle's path)
    absorbed = booking_id < state.synced_id
    flight = state.flight
    for i, f in enumerate(flight):
        if f[0] == booking_id:
            del flight[i]
            absorbed = False
            break
    was = state.recharging
    pending = state.pending
    for i, entry in enumerate(pending):
        if entry[0] == booking_id:
            pending[i] = (booking_id, entry[1], request.actual, 1.0, entry[4])
            left2 = _replay(config, state, now)
            break
    else:
        if absorbed:
            left2 = False
        else:
            credit = -delta
            if credit > 0.0:
                credit = _late_credit(config, state, now, credit, spent_now - request.spent)
            left2 = _correct_now(config, state, now, credit)
    entered = state.recharging and not was
    return _outcome(config, state, now, ok=True, entered=entered, left=left or left2)


def settle_then_sync(  # noqa: C901, PLR0912, PLR0915, PLR0917 -- one transition on purpose
    config: BucketConfig,
    state: BucketState,
    now: float,
    booking_id: int,
    cost: float,
    actual: float,
    spent: float,
    tokens: float,
    refill_in: float | None,
    as_of: float | None,
) -> bool:
    """:func:`settle` of a booking, then :func:`sync`, at the backend time *now* (absolute).

    Exactly ``apply`` of ``Settle(booking_id, ..., cost, actual, spent)`` and then
    of ``Sync(tokens, refill_in, None, as_of)`` at one time, without their request
    and outcome objects: what an answer asks of one bucket (settle its booking,
    sync its figure). Returns whether the sync was adopted (not stale). The usual
    case (nothing pending, a continuous refill) is decided inline with the two
    operations' arithmetic; with bookings pending or a stepped refill it calls
    :func:`settle` and :func:`sync` themselves, and after a clock step (or a move
    of the origin) :func:`apply` of each. A test pins it to the two.
    """
    t = now - state.origin
    if not state.seen <= t <= REANCHOR:
        # The clock stepped back, or the origin moves: each apply follows the clock itself
        # (the second one's offset may differ from the first's by rounding).
        apply(config, state, now, Settle(booking_id, 0.0, cost, actual, spent))
        return apply(config, state, now, Sync(tokens, refill_in, None, as_of)).ok
    state.seen = t  # clock_in's usual case, inlined (as apply does): the same t for both
    # Both operations bring the state up to t first; the second time changes nothing.
    _advance(config, state, t)
    if state.pending or config.refill_step is not None:
        settle(config, state, t, Settle(booking_id, 0.0, cost, actual, spent))
        return sync(config, state, t, Sync(tokens, refill_in, None, as_of)).ok
    # settle, with nothing pending: the booking's time has come, it is corrected now.
    delta = actual - cost
    spent_now = state.booked + state.returned
    state.booked += delta
    if delta < 0.0:
        state.returned -= delta
    absorbed = booking_id < state.synced_id
    flight = state.flight
    for i, f in enumerate(flight):
        if f[0] == booking_id:
            del flight[i]
            absorbed = False
            break
    cap = config.capacity
    low = config.min_threshold
    if not absorbed:
        credit = -delta
        if credit > 0.0:  # _late_credit, nothing pending
            b = state.tokens
            since = spent_now - spent
            if since > 0.0:
                b += since
            room = cap - b
            if room < credit:
                credit = room if room > 0.0 else 0.0
        b = state.tokens + credit  # _correct_now, nothing pending
        state.tokens = b if b < cap else cap
        scale = -low if low < 0.0 else low
        if low - state.tokens > TOKEN_TOLERANCE * (scale if scale > 1.0 else 1.0):
            state.recharging = True
        elif state.tokens >= config.burst_threshold:
            state.recharging = False
    # sync, with nothing pending and a continuous refill.
    if as_of is not None:
        last = state.as_of
        if last is not None and as_of < last and t <= state.as_of_time + config.in_flight:
            return False  # stale: changes nothing
        state.as_of = as_of
        state.as_of_time = t
    balance = tokens
    for f in flight:
        balance -= f[2]
    if refill_in is not None:
        balance = balance - state.rate * refill_in
    if balance > cap:
        balance = cap
    if balance < low:
        recharging = True
    elif balance >= config.burst_threshold:
        recharging = False
    else:
        recharging = state.recharging
    state.base_tokens, state.base_time, state.base_recharging = balance, t, recharging
    state.synced_id = state.next_id
    state.tokens, state.time, state.recharging = balance, t, recharging
    return True


def _late_credit(
    config: BucketConfig, state: BucketState, now: float, credit: float, since: float
) -> float:
    """What of *credit* a capped server still holds, *since* tokens spent after the booking.

    A server that charged less at the booking's time held that much more
    since, until the capacity cut it: it holds min(credit, C - peak) more
    now, peak being the highest balance since. Between operations the
    balance only rises (refill, credits), so it was at most the balance now
    plus what was spent since (*since*): that bound of the peak makes the
    credit never more than the server holds.
    """
    b = _base_now(config, state, now)[0] if state.pending else state.tokens
    if since > 0.0:
        b += since
    room = config.capacity - b
    if room < credit:
        return room if room > 0.0 else 0.0
    return credit


def _before_refill(
    config: BucketConfig, state: BucketState, now: float, balance: float, refill_in: float | None
) -> float:
    """*balance* as the model holds it when the server's next refill is *refill_in* away.

    With a step refill the anchor is the server's next step: the steps it
    implies before it (between now and the anchor) are not the server's, and
    are taken off, also by a sync without *refill_in* while the anchor a
    previous one set still lies ahead.
    """
    step = config.refill_step
    if step is None:
        if refill_in is None:
            return balance
        # The server adds its refill in steps we do not model: never run ahead of it.
        return balance - state.rate * refill_in
    if refill_in is not None:
        state.anchor = now + refill_in
    early = -_step_index(state, step, now) - 1  # steps the anchor implies before it
    if early > 0:
        balance -= early * (state.rate * step)
    return balance


def sync(  # noqa: C901, PLR0912 -- the helpers on its path are inlined
    config: BucketConfig, state: BucketState, now: float, request: Sync
) -> Outcome:
    """Adopt the server's balance; pending and in-flight bookings are subtracted.

    Pending bookings keep their times and are replayed on top of the server's
    balance; bookings in flight (``BucketConfig.in_flight``) are subtracted
    as if still to be spent. With a step refill, *refill_in* anchors the
    steps; a *refill_in* longer than a step never adds a step before the
    server's next one (the steps the anchor implies in between are taken off).

    With ``as_of`` (the server's timestamp of the balance), a sync older than
    the last one adopted is *stale*: an answer overtaken by a later one,
    whose figure misses what the later one counted. It changes nothing and
    its outcome is not ok. A stale-looking sync that arrives more than
    ``BucketConfig.in_flight`` seconds after the last adoption cannot have
    been overtaken (no request takes that long): the server's clock went
    back, or the last stamp was wrong; it is adopted, so that one stamp far
    in the future never blinds the bucket for longer than that window.
    """
    left = _advance(config, state, now)
    as_of = request.as_of
    if as_of is not None:
        # Stale: older than the last adopted, within in_flight of its adoption. Else it
        # becomes the last adopted.
        last = state.as_of
        if last is not None and as_of < last and now <= state.as_of_time + config.in_flight:
            return _outcome(config, state, now, ok=False, left=left)
        state.as_of = as_of
        state.as_of_time = now
    if state.pending:
        _, was = _base_now(config, state, now)
    else:
        was = state.recharging
    before = state.recharging
    if request.rate is not None:
        state.rate = request.rate
    balance = request.tokens
    for f in state.flight:
        balance -= f[2]
    if config.refill_step is None:  # _before_refill's continuous case, inlined
        if request.refill_in is not None:
            balance = balance - state.rate * request.refill_in
    else:
        balance = _before_refill(config, state, now, balance, request.refill_in)
    cap = config.capacity
    if balance > cap:
        balance = cap
    if balance < config.min_threshold:
        recharging = True
    elif balance >= config.burst_threshold:
        recharging = False
    else:
        recharging = was
    state.base_tokens, state.base_time, state.base_recharging = balance, now, recharging
    # Bookings before the first pending one and not in flight are in the server's figure.
    if state.pending:
        state.synced_id = state.pending[0][0]
        _rebook(config, state)
        _replay(config, state, now)
    else:  # what _replay does with nothing pending (the base is at now: no refill)
        state.synced_id = state.next_id
        state.tokens, state.time, state.recharging = balance, now, recharging
    after = state.recharging
    return _outcome(
        config,
        state,
        now,
        ok=True,
        entered=after and not before,
        left=left or (before and not after),
    )


def set_rate(config: BucketConfig, state: BucketState, now: float, request: SetRate) -> Outcome:
    """Refill at ``request.rate`` from now on; the balance now is kept.

    The refill up to now counts at the old rate. Pending bookings keep their
    times and are replayed on top of the balance now at the new rate, as
    after a sync that changes the rate.
    """
    left = _advance(config, state, now)
    before = state.recharging
    if state.pending:
        b, rech = _base_now(config, state, now)
        state.base_tokens, state.base_time, state.base_recharging = b, now, rech
        state.rate = request.rate
        _replay(config, state, now)
    else:
        state.rate = request.rate
    after = state.recharging
    return _outcome(
        config,
        state,
        now,
        ok=True,
        entered=after and not before,
        left=left or (before and not after),
    )


def rebook_last(config: BucketConfig, state: BucketState, now: float, request: Rebook) -> Outcome:
    """Book the bucket's last booking again, earlier, if a new booking of its cost would be.

    A waiting ``acquire`` whose booking an earlier one's cancel left later
    than it need be goes earlier this way. Only the bucket's last booking,
    still pending, moves, so that no booking behind it can be hurt: it is
    cancelled and its cost booked again in one step, exactly as a cancel and
    a new reservation made at once would be (the cancel replays the
    bookings before it with the capacity cap, the new booking queues behind
    them), so it never admits more than those two operations. When the new
    time is not earlier, nothing changes (but the advance to now) and the
    outcome is not ok. Its holder must learn the new time (the new id and
    delay of the outcome): only this process's waiting ``acquire`` calls use it.
    """
    left = _advance(config, state, now)
    pending = state.pending
    if not pending or pending[-1][0] != request.booking_id:
        return _outcome(config, state, now, ok=False, left=left)
    old = pending[-1]
    saved = attrs.evolve(state, pending=list(pending), flight=list(state.flight))
    del pending[-1]
    state.booked -= old[2]
    _replay(config, state, now)
    out = admit(config, state, now, Admit(old[2], math.inf))
    if state.time < old[1]:
        return out
    for field in attrs.fields(BucketState):
        setattr(state, field.name, getattr(saved, field.name))
    return _outcome(config, state, now, ok=False, left=left)


def apply(config: BucketConfig, state: BucketState, now: float, request: Request) -> Outcome:
    """Apply any request to *state* at the backend time *now* (absolute; see ``clock_in``).

    The operations below take the offset; the outcome's time is *now*.
    """
    t = now - state.origin
    if state.seen <= t <= REANCHOR:  # clock_in's usual case, inlined: the clock went forward
        state.seen = t
    else:
        t = clock_in(state, now, config.in_flight)
    if type(request) is Admit:
        out = admit(config, state, t, request)
    elif type(request) is Cancel:
        out = cancel(config, state, t, request._replace(time=request.time - state.origin))
    elif type(request) is Settle:
        out = settle(config, state, t, request)
    elif type(request) is Sync:
        out = sync(config, state, t, request)
    elif type(request) is SetRate:
        out = set_rate(config, state, t, request)
    elif type(request) is Rebook:
        out = rebook_last(config, state, t, request)
    else:  # pragma: no cover
        raise TypeError(f"unknown request {request!r}")
    # out._replace(time=now), without its generic machinery (on every operation's path).
    return _new_tuple(
        Outcome, (out[0], out[1], out[2], now, out[4], out[5], out[6], out[7], out[8])
    )


def observe(config: BucketConfig, state: BucketState, now: float) -> Observation:
    """Read the state at the backend time *now* (absolute) without changing it.

    Except after the clock stepped back: then the state follows the clock
    first (``clock_in``), and the backend stores it, so that the reads
    that follow see time pass again.
    """
    clock = now
    window = config.in_flight
    now = clock_in(state, now, window) if stepped_back(state, now, window) else reading(state, now)
    tail = state.time
    if now >= tail:
        b = min(config.capacity, state.tokens + refill_between(config, state, tail, now))
        recharging = state.recharging and b < config.burst_threshold
        backlog = 0.0
    else:
        b = state.tokens - refill_between(config, state, now, tail)
        recharging = state.recharging
        backlog = tail - now
    limit = now + clock_tolerance(state, now)
    pending = state.pending
    done = [entry for entry in pending if entry[1] <= limit]
    waiting = len(pending) - len(done)
    if waiting:
        # The mode now is the base's, after the bookings whose time came, brought up to now.
        base, t, rech = state.base_tokens, state.base_time, state.base_recharging
        if done:
            base, t, rech = _run(config, state, (base, t, rech), done)
        if now > t:
            base = min(config.capacity, base + refill_between(config, state, t, now))
        recharging = rech and base < config.burst_threshold
    first = _first_in_flight(config, state, now, done)
    since = state.origin + state.since
    return Observation(
        clock, b, recharging, state.rate, waiting, backlog, state.booked, since, first
    )


def _first_in_flight(
    config: BucketConfig,
    state: BucketState,
    now: float,
    done: list[tuple[int, float, float, float, float]],
) -> int:
    """The smallest id of a booking in flight at *now* (0: none), as :func:`_advance` keeps them.

    In flight: the flights within the window, and the pending bookings whose
    time has come (*done*) that were not settled before it.
    """
    window = config.in_flight
    first = 0
    if window > 0.0:
        for f in state.flight:
            if f[1] + window > now and (first == 0 or f[0] < first):
                first = f[0]
        for e in done:
            if e[3] == 0.0 and e[1] + window > now and (first == 0 or e[0] < first):
                first = e[0]
    return first


def admits_now(config: BucketConfig, obs: Observation, cost: float) -> bool:
    """Whether :func:`admit` of *cost* (checked) with no wait allowed would admit, from *obs*.

    The rule of :func:`admit` read off an observation: no booking pending
    beyond the time tolerance, and the balance now covers the required
    balance (the burst threshold too while recharging), or a continuous
    refill reaches it within the time tolerance.
    """
    tol = time_tolerance(obs.time)
    if obs.backlog > tol:
        return False
    target = config.required_balance(cost)
    if obs.recharging and target < config.burst_threshold:
        target = config.burst_threshold
    if covers(obs.tokens, target):
        return True
    return config.refill_step is None and (target - obs.tokens) / obs.rate <= tol


def _outcome(
    config: BucketConfig,
    state: BucketState,
    now: float,
    *,
    ok: bool,
    entered: bool = False,
    left: bool = False,
) -> Outcome:
    tokens = state.tokens
    if state.time > now:  # net_tokens(config, state, now), inlined
        tokens -= refill_between(config, state, now, state.time)
    return Outcome(
        ok, 0.0, 0, now, tokens, state.recharging, entered, left, state.booked + state.returned
    )
