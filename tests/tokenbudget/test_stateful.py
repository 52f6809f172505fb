"""A RuleBasedStateMachine drives a TokenBucket against a plain event-list model of SPEC §2.

The model is written from the SPEC alone (it does not import the transition
core): it keeps the balance and recharge mode of the last sync (or the start),
and a list of events since then — every booking's debit at its time, and every
settle correction at the time it was made. The balance at any time is the
replay of those events with the refill capped at the capacity; the recharge
mode is replayed with its hysteresis (enter on a debit below m, leave on
reaching B). A request queues behind the last booking: it is booked where the
replayed balance reaches max(B, R(c)) while recharging, else R(c).

Continuous and step refills: with ``refill_step`` the refill adds
``rate * step`` at every step time (steps anchored at the start, and at
``now + refill_in`` by a sync, which never adds a step before the server's
next one). The clock starts at 0, at a monotonic clock's magnitude (1e6-1e7 s)
or at a wall clock's (1.7e9-2e9 s); times compare within SPEC's 1e-9 s, widened
to eight units in the last place of the times compared.

The model is exact where the bucket must be: cancelling or settling any
booking replays the later ones with the refill capped, so the bucket never
credits more than a capped server would (guarantee 1, checked against this
capped replay rather than against ``initial + r*T``). With
``BucketConfig.in_flight`` a sync subtracts the bookings due within that window
and neither settled nor cancelled.

Clock steps: the clock steps back and forward (an NTP correction, a resumed VM;
also forward beyond the core's re-anchoring span). SPEC and Go's ``x/time/rate``:
a reading earlier than the bucket's latest counts as no time elapsed. The model
works in *virtual time*: it advances with the clock's forward movement from the
latest reading the bucket took in (every operation's; a read only when the clock
went back) and never moves back, so the model never sees a step. The bucket's own
absolute times (``Reservation.time``, its pending bookings') are on the stepped
clock and convert to virtual time by the shift between the two at its latest
reading. Tolerances stay at the clock's magnitudes.

Floats: balances agree within 1e-9 relative to the magnitudes involved (and
times within that balance tolerance divided by the rate, plus 1e-9 s). Where
the model's decision lies within that tolerance of a boundary (a wait within
tolerance of the timeout, a cancel within tolerance of the booking's time),
either outcome is correct and the model follows the bucket; everywhere else
they must agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from tests.strategies import (
    as_of_stamps,
    clock_origins,
    clock_steps,
    configs,
    starting_balances,
    step_clock,
)
from tokenbudget import (
    AcquireTimeout,
    BucketConfig,
    ManualClock,
    Rate,
    Reservation,
    ReservationError,
    TokenBucket,
)


TIME_EPS = 1e-9
REL = 1e-9


def ttol(t: float) -> float:
    """SPEC's 1e-9 s time tolerance, widened to 8 units in the last place of *t*."""
    return max(TIME_EPS, abs(t) * 2.0**-49)


@dataclass
class Booking:
    """One admitted request in the model."""

    time: float
    cost: float
    seq: int
    cancelled: bool = False
    #: Its cost was returned by a correction (cancelled when admitted at once).
    returned: bool = False
    #: Settled or cancelled: no longer in flight.
    ended: bool = False
    #: The balance it waited for (exactly reached at its time), if it waited.
    reached: float | None = None
    #: Everything spent (admissions and raising settles) up to its admission, itself included.
    spent: float = 0.0
    #: The bucket's id of the booking (reservations only).
    booking_id: int | None = None


@dataclass
class Correction:
    """A settle correction: *amount* more debited at *time* (negative: returned)."""

    time: float
    amount: float
    seq: int
    booking: Booking


@dataclass
class Model:
    """SPEC §2, as a replay of events; no transition core."""

    capacity: float
    burst: float
    minimum: float
    kind: str
    deficit: float
    rate: float
    origin_time: float
    origin_balance: float
    origin_recharging: bool
    step: float | None = None
    #: BucketConfig.in_flight: how long an admitted booking counts as in flight after its time.
    window: float = 0.0
    everything: list[Booking] = field(default_factory=list)
    anchor: float = 0.0
    bookings: list[Booking] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    seq: int = 0
    #: The server stamp of the last sync adopted with one, and when it was adopted.
    as_of: float | None = None
    as_of_time: float = 0.0
    #: Every admission's cost and every raising settle's difference, so far (never falls).
    spent: float = 0.0
    #: The bucket's time of a pending booking, by id: where the model's decision to move a
    #: booking after a sync is within its tolerance, it follows the bucket.
    peek: Callable[[int], float | None] | None = None
    #: The clock's magnitude (it may step far from the model's virtual time): the bucket's
    #: tolerances are at the magnitude of the clock it reads.
    clock: float = 0.0

    @classmethod
    def of(cls, config: BucketConfig, tokens: float, origin: float = 0.0) -> Model:
        kind = config.deficit.kind
        if kind == "none":
            deficit = 0.0
        elif config.deficit.max_deficit is None:
            deficit = config.capacity
        else:
            deficit = config.deficit.max_deficit
        return cls(
            capacity=config.capacity,
            burst=config.burst_threshold,
            minimum=config.min_threshold,
            kind=kind,
            deficit=deficit,
            rate=config.refill.tokens_per_second,
            origin_time=origin,
            anchor=origin,
            origin_balance=tokens,
            origin_recharging=tokens < config.min_threshold,
            step=config.refill_step,
            window=config.in_flight,
        )

    def ttol(self, t: float) -> float:
        """:func:`ttol` at *t*, or at the clock's magnitude if that is larger."""
        return ttol(max(abs(t), self.clock))

    def required(self, cost: float) -> float:
        if self.kind == "none":
            return cost + self.minimum
        if self.kind == "while_positive":
            return max(self.minimum, cost - self.deficit)
        return cost - self.deficit

    def tol(self, *values: float) -> float:
        """1e-9 relative to the magnitudes, plus the refill in the time tolerance (x4)."""
        finite = [abs(v) for v in values if math.isfinite(v)]
        return REL * max([1.0, self.capacity, *finite]) + self.rate * 4 * self.ttol(
            self.clock_scale
        )

    @property
    def clock_scale(self) -> float:
        return abs(self.origin_time) + abs(self.anchor)

    def snap(self, when: float, target: float) -> float:
        """How near a replayed balance must be to the one a booking waited for to be it.

        The refill within the time tolerance; with step refills none unless a step lies
        within it (at 1e8 tokens/s the tolerance's worth of a continuous refill is most of
        a token, and a booking a step refill cannot pay is not within rounding of it).
        """
        refill = self.rate * self.ttol(when)
        if self.step is not None:
            k = self.index(when)
            prev, nxt = self.anchor + k * self.step, self.anchor + (k + 1) * self.step
            if min(when - prev, nxt - when) > 4 * self.ttol(when):
                refill = 0.0
        return 4 * (refill + 1e-12 * max(1.0, abs(target)))

    def reach(self, balance: float, target: float) -> bool:
        """SPEC's "reached": within 1e-12 relative of *target* (rounding)."""
        return target - balance <= 1e-12 * max(1.0, abs(target))

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def absorbed(self, booking: Booking, now: float) -> bool:
        """Whether a sync took the booking into the server's figure (and it is not in flight)."""
        return booking not in self.bookings and booking not in self.flights(now)

    def flights(self, now: float) -> list[Booking]:
        """Bookings in flight: due, neither settled nor cancelled, within the window."""
        return [
            b
            for b in self.everything
            if not (b.ended or b.cancelled)
            and b.time <= now + self.ttol(now)
            and b.time + self.window > now
        ]

    def live(self) -> list[Booking]:
        return [b for b in self.bookings if not b.cancelled]

    def replay(self, until: float) -> tuple[float, bool]:
        """Balance and recharge mode at *until*, after every event at or before it."""
        return self._replay(until)

    def _replay(self, until: float) -> tuple[float, bool]:
        events: list[tuple[float, int, str, float]] = [
            (b.time, b.seq, "debit", b.cost) for b in self.live()
        ]
        events += [
            (c.time, c.seq, "correct", c.amount)
            for c in self.corrections
            if not c.booking.cancelled
        ]
        reached = {b.seq: b.reached for b in self.live()}
        events.sort()
        t, balance, recharging = self.origin_time, self.origin_balance, self.origin_recharging
        for when, seq, kind, amount in events:
            if when > until + self.ttol(until):
                break
            if when > t:
                balance, recharging = self._refill(balance, recharging, t, when)
                t = when
            target = reached.get(seq) if kind == "debit" else None
            if target is not None and 0 < target - balance <= self.snap(when, target):
                balance = target  # SPEC: at its time the balance is (at least) what it waited for
            if recharging and self.reach(balance, self.burst):
                recharging = False
            balance -= amount
            if kind != "debit":
                balance = min(self.capacity, balance)
                if balance >= self.burst:
                    recharging = False
            # A debit below m, beyond the rounding of m (and of the cost: R(c) - c is m).
            scale = amount if kind == "debit" else 0.0
            if self.minimum - balance > 1e-12 * max(1.0, abs(self.minimum), scale):
                recharging = True
        if until > t:
            balance, recharging = self._refill(balance, recharging, t, until)
        return balance, recharging

    def added(self, t0: float, t1: float) -> float:
        """Tokens the refill adds between *t0* and *t1*, before the cap."""
        if self.step is None:
            return self.rate * (t1 - t0)
        return (self.index(t1) - self.index(t0)) * self.rate * self.step

    def index(self, t: float) -> int:
        """The index of the last step at or before *t* (steps at anchor + k * step)."""
        assert self.step is not None
        return math.floor((t - self.anchor + self.ttol(abs(t) + abs(self.anchor))) / self.step)

    def _refill(self, balance: float, recharging: bool, t0: float, t1: float) -> tuple[float, bool]:
        balance = min(self.capacity, balance + self.added(t0, t1))
        if recharging and self.reach(balance, self.burst):
            recharging = False
        return balance, recharging

    def tail_time(self, now: float) -> float:
        return max([now, *(b.time for b in self.live())])

    def pending(self, now: float) -> list[Booking]:
        return [b for b in self.live() if b.time > now + self.ttol(now)]

    def booking_time(self, now: float, cost: float) -> tuple[float, float | None]:
        """When a request for *cost* made at *now* is admitted (first come, first served),
        and the balance it waits for (None if it does not wait)."""
        tail = self.tail_time(now)
        balance, recharging = self.replay(tail)
        target = min(self.required(cost), self.capacity)  # (a cost settled above max_cost)
        if recharging:
            target = max(target, self.burst)
        if balance >= target:
            return tail, None
        if self.reach(balance, target):
            return tail, target  # reached within tolerance: exactly the target then
        if self.step is None:
            return tail + (target - balance) / self.rate, target
        per_step = self.rate * self.step
        first = self.anchor + (self.index(tail) + 1) * self.step
        steps = max(1, math.ceil((target - balance) / per_step - 1e-12))  # within rounding
        return first + (steps - 1) * self.step, target

    def book(self, time: float, cost: float, reached: float | None = None) -> Booking:
        """Add an admission; guarantee 2: at its time it leaves at least -max_deficit."""
        self.spent += cost
        booking = Booking(time, cost, self._next_seq(), reached=reached, spent=self.spent)
        self.bookings.append(booking)
        if self.window > 0:
            self.everything.append(booking)
        # (at its time within the tolerance: a refill step due within it has come for the bucket)
        balance, _ = self.replay(time + 4 * self.ttol(time))
        assert balance >= -self.deficit - self.tol(balance, cost), (balance, -self.deficit)
        return booking

    def net_balance(self, now: float) -> float:
        """The balance now net of every booking: the tail minus the refill until it."""
        tail = self.tail_time(now)
        balance, _ = self.replay(tail)
        return balance - self.added(now, tail)

    def recharging_now(self, now: float) -> bool:
        return self.replay(now)[1]

    def cancel(self, booking: Booking, charged: float, now: float) -> None:
        """Return a booking's cost: a pending booking leaves the replay; one due now is credited.

        A pending booking's debit is removed and the later bookings replay
        without it, capped (exact). A booking admitted now is credited now, its
        recharge mode following the hysteresis from where it is (the bucket
        keeps no state from before a booking admitted at once).
        """
        if booking.time > now + self.ttol(now):
            booking.cancelled = True
        else:  # (after the booking's debit, were it due within rounding after now)
            when = max(now, booking.time)
            self.corrections.append(Correction(when, -charged, self._next_seq(), booking))
            booking.returned = True

    def settle(self, booking: Booking, charged: float, actual: float, now: float) -> None:
        """Correct a debit: a pending booking's own debit, else a correction now.

        A booking a sync took into the server's figure (no longer in the
        model's list) is not corrected: the server's figure has its true cost.
        A lower cost settled after the booking's time credits at most what a
        server that charged it then could still hold more: the capacity minus
        the highest balance since, which was at most the balance now plus
        everything spent since the admission.
        """
        delta = actual - charged
        spent_now = self.spent
        self.spent += max(delta, 0.0)
        if booking.time > now + self.ttol(now):
            booking.cost = actual  # still pending: its debit is corrected
        elif not self.absorbed(booking, now):
            if delta < 0:
                balance, _ = self.replay(now)
                peak = balance + max(0.0, spent_now - booking.spent)
                delta = -min(-delta, max(0.0, self.capacity - peak))
            when = max(now, booking.time)  # (after its debit, due within rounding after now)
            self.corrections.append(Correction(when, delta, self._next_seq(), booking))
        booking.ended = True

    def stale(self, now: float, as_of: float | None) -> bool:
        """Whether a sync stamped *as_of* is older than the last adopted one, within the
        in-flight window of its adoption (a later answer may have overtaken it)."""
        return (
            as_of is not None
            and self.as_of is not None
            and as_of < self.as_of
            and now - self.as_of_time <= self.window
        )

    def sync(  # noqa: C901 -- the model's sync, written out
        self,
        now: float,
        tokens: float,
        refill_in: float | None,
        rate: float | None,
        as_of: float | None = None,
    ) -> None:
        """Adopt the server's balance now; pending bookings are replayed from it.

        Recharge mode now: below m recharging, at or above B not; in between
        SPEC leaves it to the bucket, which cannot know it while bookings are
        pending and takes the mode after its last booking.
        """
        if as_of is not None:
            self.as_of, self.as_of_time = as_of, now
        _, recharging = self.replay(now)
        pending = self.pending(now)
        if rate is not None:
            self.rate = rate
        balance = tokens - sum(b.cost for b in self.flights(now))  # still to be spent
        if refill_in is not None:
            if self.step is None:
                balance -= self.rate * refill_in  # never run ahead of the server
            else:
                self.anchor = now + refill_in
        if self.step is not None:  # steps before the server's next one (the anchor): none
            early = -self.index(now) - 1
            balance -= max(0, early) * self.rate * self.step
        balance = min(self.capacity, balance)
        if balance < self.minimum:
            recharging = True
        elif balance >= self.burst:
            recharging = False
        self.origin_time, self.origin_balance, self.origin_recharging = now, balance, recharging
        # A pending booking keeps the balance it waited for: within rounding of it, the
        # replay from the synced balance is that balance (as the bucket's replay snaps).
        self.bookings = []
        self.corrections = []
        # A booking the synced balance cannot pay at its time moves to when it can (never
        # earlier), exactly as a new booking would be placed; later ones queue behind it.
        # A booking behind one that moved moves to it (first come, first served).
        last = now
        for booking in sorted(pending, key=lambda b: (b.time, b.seq)):
            if booking.time < last:
                booking.time, booking.reached = last, None
            balance, recharging = self.replay(booking.time)  # the earlier ones only
            target = min(self.required(booking.cost), self.capacity)
            if recharging:
                target = max(target, self.burst)
            short = target - balance
            if (
                0 < short <= self.snap(booking.time, target)
                and self.peek is not None
                and booking.booking_id is not None
            ):  # within tolerance: follow the bucket
                time = self.peek(booking.booking_id)
                if time is not None and time > booking.time:
                    short = math.inf
            if short > self.snap(booking.time, target):
                booking.time, booking.reached = self.booking_time(booking.time, booking.cost)
                if self.step is not None and self.peek is not None and booking.booking_id:
                    # The count of steps to a balance within rounding of a whole number of
                    # steps is a boundary: within one step, the model follows the bucket.
                    time = self.peek(booking.booking_id)
                    if time is not None and abs(time - booking.time) <= self.step * (1 + 1e-9):
                        booking.time = time
            last = booking.time
            self.bookings.append(booking)


@dataclass
class Handle:
    """A reservation and its model booking."""

    reservation: Reservation
    booking: Booking
    charged: float


class ReadClock(ManualClock):
    """A ManualClock that records every reading the bucket takes (``now()``)."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.reads: list[float] = []

    def now(self) -> float:
        reading = super().now()
        self.reads.append(reading)
        return reading


class BucketMachine(RuleBasedStateMachine):
    """Drives acquire/try_acquire/reserve/cancel/settle/sync/advance/step against the model."""

    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ReadClock(0.0)
        self.model: Model
        self.bucket: TokenBucket
        self.config: BucketConfig
        #: The clock's reading the bucket took in last, and the virtual time then.
        self.seen_clock = 0.0
        self.seen_virtual = 0.0
        #: The state's origin and latest offset after the last operation (see ``took``).
        self.core_clock = (0.0, 0.0)

    @initialize(data=st.data(), config=configs(steps=True, in_flight=True), origin=clock_origins())
    def start(self, data, config, origin):
        """Any valid config (continuous or stepped), any valid starting balance, any clock."""
        tokens = data.draw(starting_balances(config), label="tokens")
        self.config = config
        self.clock = ReadClock(origin)
        self.bucket = TokenBucket(config, clock=self.clock, tokens=tokens)
        self.seen_clock = self.seen_virtual = origin
        self.clock.reads.clear()
        self.core_clock = self.state_clock()
        self.model = Model.of(config, tokens, origin)
        self.model.peek = self.peek

    def peek(self, booking_id: int) -> float | None:
        """The bucket's time of the pending booking *booking_id* (None: not pending)."""
        state = self.bucket._backend._states[self.bucket.key]  # type: ignore[attr-defined]
        # (the state's times are offsets from its origin, which follows the clock's steps)
        at = next((e[1] for e in state.pending if e[0] == booking_id), None)
        # peek is called right after an operation: the state's latest reading is now
        return None if at is None else self.now + (at - state.seen)

    # -- time -----------------------------------------------------------------------------

    def virtual_at(self, reading: float) -> float:
        """The virtual time of the clock's *reading*: no time elapsed if it is earlier."""
        return self.seen_virtual + max(0.0, reading - self.seen_clock)

    def took(self, *, stored: bool = True) -> None:
        """The bucket read the clock: an operation keeps its reading (a read only an
        earlier one, as the state then follows the clock back).

        A reading earlier than the latest by at most ``in_flight`` is one that raced
        another (``tokenbudget._core.clock_in``): no time elapsed, and the latest reading stays
        the state's. Whether it is, is decided as the core decides it, from the
        state's origin and latest offset before the operation (the same doubles).
        """
        origin, seen = self.core_clock
        for reading in self.clock.reads:
            # (_core.stepped_back's and clock_in's test, on the same doubles)
            if reading < self.seen_clock and not seen - (reading - origin) > self.config.in_flight:
                continue  # raced: no time elapsed, the latest reading stays
            if stored or reading < self.seen_clock:
                self.seen_virtual = self.virtual_at(reading)
                self.seen_clock = reading
        self.clock.reads.clear()
        self.core_clock = self.state_clock()
        if hasattr(self, "model"):
            self.model.clock = max(abs(self.seen_clock), abs(self.clock._now))

    def state_clock(self) -> tuple[float, float]:
        """The state's origin and latest reading (its offset), or zeros before the bucket."""
        if not hasattr(self, "bucket"):
            return 0.0, 0.0
        state = self.bucket._backend._states[self.bucket.key]  # type: ignore[attr-defined]
        return state.origin, state.seen

    @property
    def now(self) -> float:
        return self.virtual_at(self.clock._now)

    # -- helpers ------------------------------------------------------------------------

    def cost(self, share: float) -> float:
        top = self.config.max_cost
        if not math.isfinite(top):
            top = self.config.capacity * 10
        return max(share * top, 1e-6)

    def time_tol(self, *values: float) -> float:
        return self.model.tol(*values) / self.model.rate + 4 * self.model.ttol(self.now)

    def expect(self, cost: float, max_wait: float) -> tuple[float, bool | None, float | None]:
        """The model's booking time, whether it is admitted (None: within tolerance), and
        the balance it waits for."""
        at, reached = self.model.booking_time(self.now, cost)
        delay = at - self.now
        tol = self.time_tol(cost, self.model.capacity + cost)
        if abs(delay - max_wait) <= tol or (max_wait == 0 and delay <= tol):
            return at, None, reached
        return at, delay <= max_wait, reached

    # -- rules --------------------------------------------------------------------------

    @rule(share=st.floats(0.0, 2.0))
    def advance(self, share):
        """Time passes: up to two full refills of the bucket."""
        self.clock.advance(share * self.config.capacity / self.model.rate)

    @rule(seconds=clock_steps())
    def step(self, seconds):
        """The clock steps back or forward (an NTP correction, a resumed VM)."""
        note(f"the clock steps {seconds!r} s from {self.clock._now!r}")
        step_clock(self.clock, seconds)

    @rule(share=st.floats(1e-4, 1.0))
    def try_acquire(self, share):
        """try_acquire admits exactly when the model books it now."""
        cost = self.cost(share)
        at, expected, reached = self.expect(cost, 0.0)
        ok = self.bucket.try_acquire(cost)
        self.took()
        note(f"try_acquire({cost!r}) -> {ok} (model at {at!r}, now {self.now!r})")
        if expected is not None:
            assert ok == expected
        if ok:  # at the tail (within the tolerance of now, where a reading rounds)
            self.model.book(max(self.now, at), cost, reached)

    @rule(share=st.floats(1e-4, 1.0), timeout=st.none() | st.floats(0.0, 3.0))
    def acquire(self, share, timeout):
        """acquire waits the model's delay, or times out at once booking nothing."""
        cost = self.cost(share)
        max_wait = math.inf if timeout is None else timeout * self.config.capacity / self.model.rate
        at, expected, reached = self.expect(cost, max_wait)
        start = self.now
        try:
            waited = self.bucket.acquire(cost, timeout=max_wait)
        except AcquireTimeout as error:
            self.took()
            note(f"acquire({cost!r}, timeout={max_wait!r}) timed out, delay {error.delay!r}")
            assert expected is not True
            assert self.now == start
            assert abs(error.delay - (at - start)) <= self.time_tol(cost, at)  # noqa: PT017
            return
        self.took()
        note(f"acquire({cost!r}) waited {waited!r} (model {at - start!r})")
        assert expected is not False
        assert abs(waited - (at - start)) <= self.time_tol(cost, at)
        self.model.book(start + waited, cost, reached)
        balance = self.bucket.snapshot()
        self.took(stored=False)
        if not self.model.pending(self.now):
            assert balance.tokens >= -self.model.deficit - self.model.tol(cost, balance.tokens)

    @rule(target=reservations, share=st.floats(1e-4, 1.0))
    def reserve(self, share):
        """reserve books at the model's time (first come, first served)."""
        cost = self.cost(share)
        at, _, reached = self.expect(cost, math.inf)
        reservation = self.bucket.reserve(cost)
        self.took()
        time = self.now + reservation.delay  # (reservation.time is on the stepped clock)
        note(f"reserve({cost!r}) -> delay {reservation.delay!r} (model {at - self.now!r})")
        assert abs(time - at) <= self.time_tol(cost, at)
        booking = self.model.book(time, cost, reached)
        booking.booking_id = reservation._state.booking_id
        return Handle(reservation, booking, cost)

    @rule(handle=reservations)
    def cancel(self, handle):
        """cancel returns the cost before the booking's time, once; never what a sync absorbed."""
        booking = handle.booking
        gone = booking.cancelled or booking.returned
        ok = handle.reservation.cancel()
        self.took()
        note(f"cancel(booking at {booking.time!r}, cost {booking.cost!r}) at {self.now!r} -> {ok}")
        absorbed = self.model.absorbed(booking, self.now)
        if ok:
            booking.ended = True  # a cancel that returns nothing changes nothing (defect 3)
        if gone or absorbed:
            assert ok is False
            return
        if abs(booking.time - self.now) > self.time_tol(booking.time):
            assert ok == (booking.time >= self.now)
        if ok:
            self.model.cancel(booking, handle.charged, self.now)

    @rule(handle=reservations, share=st.floats(0.0, 1.5))
    def settle(self, handle, share):
        """settle corrects the debit (the last settle wins); a cancelled one cannot be settled."""
        actual = share * handle.booking.cost
        if handle.booking.cancelled or handle.booking.returned:
            try:
                handle.reservation.settle(actual)
            except ReservationError:
                self.took()
                return
            raise AssertionError("settling a cancelled reservation must raise")
        note(f"settle({handle.charged!r} -> {actual!r}) at {self.now!r}")
        handle.reservation.settle(actual)
        self.took()
        self.model.settle(handle.booking, handle.charged, actual, self.now)
        handle.charged = actual

    @rule(handle=consumes(reservations))
    def forget(self, handle):
        """Stop tracking a reservation (keeps the bundle small)."""

    @rule(
        share=st.floats(-0.5, 1.0),
        # (not within the clock's tolerance of 0, up to 3.6e-6 s: a step due that soon has
        # come or not by the rounding of the clock's reading, which a step back changes)
        refill_in=st.none() | st.just(0.0) | st.floats(1e-4, 60.0),
        rate=st.none() | st.floats(0.1, 10.0),
        as_of=as_of_stamps(),
    )
    def sync(self, share, refill_in, rate, as_of):
        """sync adopts the server's balance, refill step and rate, unless its stamp is stale."""
        tokens = share * self.config.capacity
        new_rate = (
            None if rate is None else Rate.per_second(rate * self.config.refill.tokens_per_second)
        )
        note(
            f"sync({tokens!r}, refill_in={refill_in!r}, rate={new_rate!r}, as_of={as_of!r}) "
            f"at {self.now!r}"
        )
        snap = self.bucket.sync(tokens, refill_in=refill_in, rate=new_rate, as_of=as_of)
        self.took()  # (the sync's reading; its snapshot reads at the same time)
        stale = self.model.stale(self.now, as_of)
        last = self.model.as_of
        if (
            as_of is not None
            and last is not None
            and as_of < last
            and abs(self.now - self.model.as_of_time - self.model.window)
            <= 4 * self.model.ttol(self.now)
        ):  # at the end of the window, within the clock's rounding: either
            stale = not snap.adopted
        assert snap.adopted is not stale
        if stale:
            return
        self.model.sync(
            self.now,
            tokens,
            refill_in,
            None if new_rate is None else new_rate.tokens_per_second,
            as_of,
        )

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def balances_agree(self):
        """snapshot().tokens is the model's balance now, net of every booking."""
        if not hasattr(self, "model"):
            return
        snap = self.bucket.snapshot()
        self.took(stored=False)
        expected = self.model.net_balance(self.now)
        assert abs(snap.tokens - expected) <= self.model.tol(snap.tokens, expected), (
            snap.tokens,
            expected,
        )
        # A booking due within the tolerance of now is pending or not, either way: the model
        # keeps absolute times, rounded to the clock's spacing (2.4e-7 s at 1.7e9 s), while
        # the bucket keeps exact offsets and compares with the clock within its rounding.
        now = self.now
        near = any(abs(b.time - now) <= 4 * self.model.ttol(now) for b in self.model.live())
        # The same from the bucket's side: its last booking is due within the tolerance (the
        # model may have counted that booking as due at a sync, and so in the server's figure).
        near = near or 0 < snap.backlog <= 4 * self.model.ttol(now)
        if not near:
            assert snap.pending == len(self.model.pending(now))

    @invariant()
    def recharge_mode_agrees(self):
        """With nothing pending, snapshot().recharging is the model's recharge mode now."""
        if not hasattr(self, "model") or self.model.pending(self.now):
            return
        balance, recharging = self.model.replay(self.now)
        if abs(balance - self.model.burst) <= self.model.tol(balance) or abs(
            balance - self.model.minimum
        ) <= self.model.tol(balance):
            return  # on a threshold: either mode is within tolerance
        recharging_now = self.bucket.snapshot().recharging
        self.took(stored=False)
        assert recharging_now == recharging


_profile = settings()
BucketMachine.TestCase.settings = settings(_profile, stateful_step_count=50)
TestBucketMachine = BucketMachine.TestCase
