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

import math
from collections.abc import Callable
from typing import Final, NamedTuple, Protocol

import attrs

from ._config import BOUNDED, NONE, WHILE_POSITIVE, BucketConfig


#: Times closer than this (seconds) are equal: "admitted now" survives float rounding.
TIME_TOLERANCE: Final = 1e-9
#: Relative tolerance on balances, for the same reason.
TOKEN_TOLERANCE: Final = 1e-12


@attrs.define(slots=True)
class BucketState:
    """The mutable state of one bucket, as every backend stores it.

    Attributes:
        tokens: Balance at :attr:`time`, after every booking (may be negative).
        time: Time of :attr:`tokens`; later than now while bookings are pending.
        recharging: Whether the bucket is in recharge mode at :attr:`time`.
        rate: Refill rate in tokens per second (``sync(rate=...)`` changes it).
        anchor: A time at which a refill step happens (step refill only).
        next_id: The id the next booking gets.
        booked: Total cost booked since :attr:`since` (net of cancels and settles).
        since: When the state was created.
        pending: ``(booking_id, time, cost, waited_recharging)`` of bookings
            whose time may not have come yet, in booking (and so time) order;
            *waited_recharging* (1.0 or 0.0) says whether the booking waited in
            recharge mode, so that the mode *now* is known while it is pending.
    """

    tokens: float
    time: float
    recharging: bool
    rate: float
    anchor: float
    next_id: int = 1
    booked: float = 0.0
    since: float = 0.0
    pending: list[tuple[int, float, float, float]] = attrs.Factory(list)

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
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> BucketState:
        """Inverse of :meth:`to_dict`."""
        pending = data.get("pending") or []
        assert isinstance(pending, list)  # noqa: S101 -- internal storage format
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
                (int(e[0]), float(e[1]), float(e[2]), float(e[3]) if len(e) > 3 else 0.0)
                for e in pending
            ],
        )


def new_state(config: BucketConfig, tokens: float, now: float) -> BucketState:
    """The state of a new bucket holding *tokens* at *now*.

    A starting balance below ``min_threshold`` starts in recharge mode,
    exactly as after a sync.
    """
    return BucketState(
        tokens=tokens,
        time=now,
        recharging=tokens < config.min_threshold,
        rate=config.refill.tokens_per_second,
        anchor=now,
        since=now,
    )


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
    """Correct the booking *booking_id*, debited *cost*, to its true cost *actual*."""

    booking_id: int
    time: float
    cost: float
    actual: float


class Sync(NamedTuple):
    """Adopt a balance reported by the server (see :meth:`tokenbudget.TokenBucket.sync`)."""

    tokens: float
    refill_in: float | None
    rate: float | None


Request = Admit | Cancel | Settle | Sync


class Outcome(NamedTuple):
    """What an operation decided.

    Attributes:
        ok: Admitted (``Admit``), cancelled (``Cancel``); always true otherwise.
        delay: Seconds from now until the booking's time (``Admit``; also the
            wait a refused request would have had).
        booking_id: The new booking's id (``Admit``), else 0.
        time: The time the operation ran at (the backend's clock).
        tokens: The balance now, net of every booking, after the operation.
        recharging: Whether the bucket is in recharge mode after the operation.
        entered: The operation started recharge mode.
        left: Recharge mode ended before or during the operation.
    """

    ok: bool
    delay: float
    booking_id: int
    time: float
    tokens: float
    recharging: bool
    entered: bool
    left: bool


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


# -- refill ---------------------------------------------------------------------------------


def refill_between(config: BucketConfig, state: BucketState, t0: float, t1: float) -> float:
    """Tokens the refill adds between *t0* and *t1* (``t0 <= t1``), before the capacity cap."""
    step = config.refill_step
    if step is None:
        return state.rate * (t1 - t0)
    a = state.anchor
    steps = math.floor((t1 - a + TIME_TOLERANCE) / step) - math.floor(
        (t0 - a + TIME_TOLERANCE) / step
    )
    return steps * state.rate * step


def _time_to_reach(
    config: BucketConfig, state: BucketState, balance: float, t0: float, target: float
) -> tuple[float, float]:
    """The first time at or after *t0* the balance reaches *target*, and the balance then."""
    step = config.refill_step
    if step is None:
        return t0 + (target - balance) / state.rate, target
    per_step = state.rate * step
    needed = max(1, math.ceil((target - balance) / per_step - TOKEN_TOLERANCE))
    a = state.anchor
    first = a + (math.floor((t0 - a + TIME_TOLERANCE) / step) + 1) * step
    reached = min(config.capacity, balance + needed * per_step)
    return first + (needed - 1) * step, max(reached, target)


def _advance(config: BucketConfig, state: BucketState, now: float) -> bool:
    """Bring a state whose tail is in the past up to *now*; True if recharge mode ended."""
    left = False
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
            left = True
    pending = state.pending
    if pending and pending[0][1] <= now + TIME_TOLERANCE:
        limit = now + TIME_TOLERANCE
        i = 0
        while i < len(pending) and pending[i][1] <= limit:
            i += 1
        del pending[:i]
    return left


def net_tokens(config: BucketConfig, state: BucketState, now: float) -> float:
    """The balance at *now*, net of every booking (state already advanced to *now*)."""
    if state.time > now:
        return state.tokens - refill_between(config, state, now, state.time)
    return state.tokens


def _reached(balance: float, target: float, rate: float) -> bool:
    return target - balance <= rate * TIME_TOLERANCE + TOKEN_TOLERANCE * max(1.0, abs(target))


# -- operations -----------------------------------------------------------------------------


def admit(config: BucketConfig, state: BucketState, now: float, request: Admit) -> Outcome:
    """Book ``request.cost`` first come, first served, if its wait fits ``request.max_wait``.

    The cost must already be checked (:meth:`BucketConfig.check_cost`).
    """
    left = _advance(config, state, now)
    cost = request.cost
    t0 = state.time  # >= now: the tail, behind every earlier booking
    balance = state.tokens
    target = config.required_balance(cost)
    rech = state.recharging
    if rech and target < config.burst_threshold:
        target = config.burst_threshold
    if _reached(balance, target, state.rate):
        at = t0
        if balance < target:
            balance = target
    else:
        at, balance = _time_to_reach(config, state, balance, t0, target)
    delay = at - now
    if delay <= TIME_TOLERANCE:
        delay = 0.0
    if delay > request.max_wait + TIME_TOLERANCE:
        return Outcome(False, delay, 0, now, net_tokens(config, state, now), rech, False, left)
    balance -= cost
    state.tokens = balance
    state.time = at if at > t0 else t0
    entered = balance < config.min_threshold
    left = left or rech  # an admission while recharging waited for the burst threshold
    state.recharging = entered
    state.booked += cost
    booking_id = state.next_id
    state.next_id = booking_id + 1
    if delay > 0.0:
        state.pending.append((booking_id, state.time, cost, 1.0 if rech else 0.0))
    tokens = balance if delay == 0.0 and t0 <= now else net_tokens(config, state, now)
    return Outcome(True, delay, booking_id, now, tokens, entered, entered, left)


class Lock(Protocol):
    """What :func:`admitter` needs of a lock (:class:`threading.Lock` has it)."""

    def acquire(self) -> bool:
        """Wait for the lock and take it."""

    def release(self) -> None:
        """Give the lock back."""


def admitter(  # noqa: C901, PLR0915 -- the hot path is one function on purpose
    config: BucketConfig,
    *,
    state_of: Callable[[float], BucketState],
    now: Callable[[], float],
    lock: Lock,
) -> Callable[[float], bool]:
    """``cost -> bool``: ``admit(config, state, now(), Admit(cost, 0.0)).ok``, faster.

    The hot path of ``try_acquire`` when nobody listens for events: no request
    or outcome is built, the config's numbers are read once, here, and the
    whole call is one Python frame. Each call holds the backend's *lock* while
    it reads the time with *now* and decides; the first call gets the state
    from ``state_of(time)`` (which creates it if need be) and keeps it, so a
    backend must never replace a key's state object.

    The common case (not recharging, no booking pending, the tail not in the
    future) is decided inline with exactly :func:`admit`'s arithmetic and the
    same change to the state, ``R(cost)`` being
    :meth:`BucketConfig.required_balance` written as ``max(floor, cost +
    shift)``; every other case, and the rounding corner where a wait within
    the tolerance counts as none, is left to :func:`admit` itself. A test pins
    it to :func:`admit`. The cost must already be checked
    (:meth:`BucketConfig.check_cost`).
    """
    acquire = lock.acquire
    release = lock.release
    state: BucketState | None = None

    if config.refill_step is not None:

        def admit_stepped(cost: float) -> bool:
            nonlocal state
            acquire()
            try:
                t = now()
                if state is None:
                    state = state_of(t)
                return admit(config, state, t, Admit(cost, 0.0)).ok
            finally:
                release()

        return admit_stepped

    cap = config.capacity
    m = config.min_threshold
    code = config.deficit_code
    shift = m if code == NONE else -config.max_deficit
    floor = m if code == WHILE_POSITIVE else -math.inf
    tolerance = TIME_TOLERANCE
    # |R(cost)| <= capacity (or max_deficit, bounded rule) for every admissible cost, so a
    # shortfall above rate * TIME_TOLERANCE + far is surely not _reached (far: twice that
    # bound's token tolerance, room for rounding); nearer ones ask _reached itself.
    far = 2 * TOKEN_TOLERANCE * max(1.0, cap, config.max_deficit if code == BOUNDED else 0.0)

    def admit_now(cost: float) -> bool:
        nonlocal state
        acquire()
        try:
            t = now()
            if state is None:
                state = state_of(t)
            t0 = state.time
            if state.recharging or t0 > t or state.pending:
                return admit(config, state, t, Admit(cost, 0.0)).ok
            balance = state.tokens
            rate = state.rate
            if t > t0:  # _advance, continuous refill
                balance = balance + rate * (t - t0)
                if balance >= cap:
                    balance = cap
            target = cost + shift
            if target < floor:
                target = floor
            if balance < target:
                if target - balance > rate * tolerance + far or not _reached(balance, target, rate):
                    state.tokens = balance  # like admit: the refill up to now is applied anyway
                    state.time = t
                    if t + (target - balance) / rate - t > tolerance:
                        return False
                    return admit(config, state, t, Admit(cost, 0.0)).ok  # a wait within tolerance
                balance = target
            balance -= cost
            state.tokens = balance
            state.time = t
            if balance < m:
                state.recharging = True
            state.booked += cost
            state.next_id += 1
            return True
        finally:
            release()

    return admit_now


def _set_tail(config: BucketConfig, state: BucketState, tokens: float) -> tuple[bool, bool]:
    """Set the tail balance (capped) and the recharge mode it implies; (entered, left)."""
    state.tokens = min(config.capacity, tokens)
    was = state.recharging
    if state.tokens < config.min_threshold:
        state.recharging = True
    elif state.tokens >= config.burst_threshold:
        state.recharging = False
    return (state.recharging and not was, was and not state.recharging)


def cancel(config: BucketConfig, state: BucketState, now: float, request: Cancel) -> Outcome:
    """Return a booking's cost if its time has not passed; later bookings keep their times."""
    left = _advance(config, state, now)
    if request.time < now - TIME_TOLERANCE:
        return _outcome(config, state, now, ok=False, left=left)
    pending = state.pending
    for i, entry in enumerate(pending):
        if entry[0] == request.booking_id:
            del pending[i]
            break
    else:
        if request.time > now + TIME_TOLERANCE:  # pending, yet not found: cancelled already
            return _outcome(config, state, now, ok=False, left=left)
    state.booked -= request.cost
    if request.time >= state.time - TIME_TOLERANCE:
        # The tail's own booking: the tail goes back to the booking before it (or now),
        # so that a cancelled booking never holds later requests back.
        dropped_left = _drop_tail(config, state, now, request.cost)  # always undo the booking
        return _outcome(config, state, now, ok=True, left=left or dropped_left)
    _, left2 = _set_tail(config, state, state.tokens + request.cost)
    return _outcome(config, state, now, ok=True, left=left or left2)


def _drop_tail(config: BucketConfig, state: BucketState, now: float, cost: float) -> bool:
    """Undo the tail's booking of *cost*: the tail returns to the previous booking or *now*.

    The balance there is the balance before the booking minus the refill in
    between. The recharge mode there is implied by that balance (below
    ``min_threshold``: recharging; at or above ``burst_threshold``: not), and
    in between by the booking's wait: a booking that waited until a balance of
    at least ``burst_threshold`` is taken to have waited in recharge mode (when
    its own required balance was that high too, either is possible; recharge
    mode is the cautious choice). Returns whether recharge mode ended.
    """
    pending = state.pending
    back = pending[-1][1] if pending else now
    if back < now:
        back = now
    before = state.tokens + cost  # the balance at the booking's time, before its debit
    balance = before - refill_between(config, state, back, state.time)
    waited = state.time > back + TIME_TOLERANCE
    was = state.recharging
    # The balance there is reconstructed: compare it with the thresholds within rounding.
    rate = state.rate
    if balance < config.min_threshold and not _reached(balance, config.min_threshold, rate):
        recharging = True
    elif _reached(balance, config.burst_threshold, rate):
        recharging = False
    else:
        recharging = waited and _reached(before, config.burst_threshold, rate)
    state.tokens = balance if balance < config.capacity else config.capacity
    state.time = back
    state.recharging = recharging
    return was and not recharging


def settle(config: BucketConfig, state: BucketState, now: float, request: Settle) -> Outcome:
    """Correct a booking's debit to its true cost; never moves later bookings."""
    left = _advance(config, state, now)
    delta = request.actual - request.cost
    pending = state.pending
    for i, entry in enumerate(pending):
        if entry[0] == request.booking_id:
            pending[i] = (entry[0], entry[1], request.actual, entry[3])
            break
    state.booked += delta
    entered, left2 = _set_tail(config, state, state.tokens - delta)
    return _outcome(config, state, now, ok=True, entered=entered, left=left or left2)


def sync(config: BucketConfig, state: BucketState, now: float, request: Sync) -> Outcome:
    """Adopt the server's balance; pending bookings keep their times and are subtracted."""
    left = _advance(config, state, now)
    if request.rate is not None:
        state.rate = request.rate
    balance = request.tokens
    if request.refill_in is not None:
        if config.refill_step is None:
            # The server adds its refill in steps we do not model: never run ahead of it.
            balance -= state.rate * request.refill_in
        else:
            state.anchor = now + request.refill_in
    # Replay the pending bookings (all later than now) from the server's balance, the
    # refill capped at the capacity on the way and recharge mode with its hysteresis,
    # as the server will see them. Between the thresholds the mode now is not known
    # (bookings are pending): the mode after the last booking stands in for it.
    cap = config.capacity
    low = config.min_threshold
    high = config.burst_threshold
    was = state.recharging
    t = now
    balance = min(cap, balance)
    recharging = True if balance < low else False if balance >= high else was
    rate = state.rate
    for entry in state.pending:
        balance = min(cap, balance + refill_between(config, state, t, entry[1]))
        if recharging and _reached(balance, high, rate):
            recharging = False
        balance -= entry[2]
        if balance < low:
            recharging = True
        t = entry[1]
    tail = state.time if state.time > now else now
    balance = min(cap, balance + refill_between(config, state, t, tail))
    if recharging and _reached(balance, high, rate):
        recharging = False
    state.time = tail
    state.tokens = balance
    state.recharging = recharging
    entered = recharging and not was
    return _outcome(
        config, state, now, ok=True, entered=entered, left=left or (was and not recharging)
    )


def apply(config: BucketConfig, state: BucketState, now: float, request: Request) -> Outcome:
    """Apply any request to *state* at *now*."""
    if type(request) is Admit:
        return admit(config, state, now, request)
    if type(request) is Cancel:
        return cancel(config, state, now, request)
    if type(request) is Settle:
        return settle(config, state, now, request)
    if type(request) is Sync:
        return sync(config, state, now, request)
    raise TypeError(f"unknown request {request!r}")  # pragma: no cover


def observe(config: BucketConfig, state: BucketState, now: float) -> Observation:
    """Read the state at *now* without changing it."""
    tail = state.time
    if now >= tail:
        b = min(config.capacity, state.tokens + refill_between(config, state, tail, now))
        recharging = state.recharging and b < config.burst_threshold
        backlog = 0.0
    else:
        b = state.tokens - refill_between(config, state, now, tail)
        recharging = state.recharging
        backlog = tail - now
    limit = now + TIME_TOLERANCE
    waiting = [entry for entry in state.pending if entry[1] > limit]
    pending = len(waiting)
    if waiting:
        # The mode now is the one the first pending booking waits in: recharge mode
        # until the balance before the pending debits reaches the burst threshold.
        before = b
        for entry in waiting:
            before += entry[2]
        recharging = waiting[0][3] != 0.0 and not _reached(
            before, config.burst_threshold, state.rate
        )
    return Observation(now, b, recharging, state.rate, pending, backlog, state.booked, state.since)


def _outcome(
    config: BucketConfig,
    state: BucketState,
    now: float,
    *,
    ok: bool,
    entered: bool = False,
    left: bool = False,
) -> Outcome:
    return Outcome(ok, 0.0, 0, now, net_tokens(config, state, now), state.recharging, entered, left)
