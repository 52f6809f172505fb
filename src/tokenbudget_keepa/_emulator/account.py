"""The emulator's model of one Keepa account's tokens (no I/O, no locking).

Keepa keeps an integer balance per account. Once a *step* (a minute, by
default) it adds ``refillRate`` tokens, but never beyond the cap (about an
hour of refill). A request runs whenever the balance is positive, whatever it
costs, and may leave the balance negative, without bound; while the balance is
zero or below every request is refused with HTTP 429, which costs nothing.

This module is written on its own, without :mod:`tokenbudget`'s bucket: the
emulator is the oracle the client's bucket is tested against, so it must not
share that bucket's code (or its bugs).

Times are the seconds of the emulator's clock *relative to its start*, so that
step times are exact multiples of the step on a clock that starts at 0.
"""

from __future__ import annotations

import math
from fractions import Fraction

import attrs


__all__ = ["Account"]


@attrs.define
class Account:
    """One account's balance, stepped forward lazily to the time of each access.

    Steps happen at ``first_step + k * step`` (``k = 0, 1, ...``) seconds after
    the start. Step ``k`` counted from the last rate change (``base``) adds
    ``floor(k * rate * step / 60) - floor((k - 1) * rate * step / 60)`` tokens, so
    the balance stays an integer and the long-run refill is exactly ``rate``
    tokens a minute whatever the step.
    """

    rate: int
    capacity: int | None
    balance: int
    step: float = 60.0
    first_step: float = 60.0
    #: Tokens per minute spent by a background competitor while the balance is positive.
    spender_rate: float = 0.0
    #: The time the balance was last brought up to date.
    time: float = 0.0
    #: Steps applied so far (the next one is at ``first_step + steps * step``).
    steps: int = 0
    #: The step count at the last rate change: refills are counted from there.
    base: int = 0
    spender_carry: float = 0.0
    spent_by_others: int = 0
    #: Tokens added by refills (what reached the balance, after the cap).
    refilled: int = 0

    @property
    def cap(self) -> int:
        """The most tokens a refill leaves: ``capacity``, else 60 minutes of refill."""
        return self.capacity if self.capacity is not None else 60 * self.rate

    def next_step_time(self) -> float:
        """The relative time of the next step."""
        return self.first_step + self.steps * self.step

    def _step_amount(self, k: int) -> int:
        per_step = Fraction(self.rate) * Fraction(self.step) / 60
        return math.floor(k * per_step) - math.floor((k - 1) * per_step)

    def _refill(self, amount: int) -> None:
        cap = self.cap
        if self.balance < cap:
            new = min(cap, self.balance + amount)
            self.refilled += new - self.balance
            self.balance = new

    def _spend_background(self, seconds: float) -> None:
        if self.spender_rate <= 0 or seconds <= 0:
            return
        accrued = self.spender_carry + self.spender_rate * seconds / 60
        wanted = math.floor(accrued)
        self.spender_carry = accrued - wanted
        spent = min(wanted, max(self.balance, 0))
        self.balance -= spent
        self.spent_by_others += spent

    def advance(self, now: float) -> None:
        """Apply the steps (and the background spender) up to the relative time *now*."""
        if now <= self.time:
            return
        if self.spender_rate <= 0:
            # Without a spender the steps compose: min(cap, b + sum) == iterated min.
            due = self._steps_due(now)
            if due:
                per_step = Fraction(self.rate) * Fraction(self.step) / 60
                k0 = self.steps - self.base
                amount = math.floor((k0 + due) * per_step) - math.floor(k0 * per_step)
                self._refill(amount)
                self.steps += due
            self.time = now
            return
        while True:
            step_at = self.next_step_time()
            end = min(step_at, now)
            self._spend_background(end - self.time)
            self.time = max(self.time, end)
            if step_at > now:
                break
            self.steps += 1
            self._refill(self._step_amount(self.steps - self.base))

    def _steps_due(self, now: float) -> int:
        if now < self.next_step_time():
            return 0
        due = math.floor((now - self.first_step) / self.step) + 1 - self.steps
        # Guard against float rounding at exact step times.
        while due > 0 and self.first_step + (self.steps + due - 1) * self.step > now:
            due -= 1
        while self.first_step + (self.steps + due) * self.step <= now:
            due += 1
        return due

    def refill_in_ms(self, now: float) -> int:
        """Milliseconds from the (whole-millisecond) server time to the next step.

        The server reads its time in whole milliseconds (rounded down) and the
        next step's time rounded up, so ``timestamp + refillIn`` is never before
        the step: right after a step at a fractional millisecond this reads
        60001 (with one-minute steps).
        """
        return math.ceil(self.next_step_time() * 1000) - math.floor(now * 1000)

    def set_rate(self, rate: int) -> None:
        """Change the refill rate from the next step on (call :meth:`advance` first)."""
        self.rate = rate
        self.base = self.steps

    def try_spend(self, cost: int) -> bool:
        """Keepa's admission: spend *cost* if the balance is positive, else refuse."""
        if self.balance <= 0:
            return False
        self.balance -= cost
        return True
