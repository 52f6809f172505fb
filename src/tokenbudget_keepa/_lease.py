"""Leases: one holder per job key at a time, and no holder that outlives its crash.

A lease has an *owner token* (returned by :meth:`Lease.acquire`, needed to
renew or release it) and a time to live: a holder that stops renewing it (it
crashed, hung, or lost its host) loses it when the ttl runs out, so a crashed
worker never blocks the next one for ever. Only the holder can renew or release
it; renewing works as long as nobody else has taken the lease, even after its
ttl ran out. The SQLite lease also records the holder's process (pid,
hostname, boot id and process start time): on the same host, a lease whose
holder process is gone is taken over at once, without waiting for the ttl (a
killed cron run must not block the next one for a whole expiry), and a reused
pid is not mistaken for the holder.
"""

from __future__ import annotations

import math
import secrets
import threading
from typing import Protocol, runtime_checkable

import attrs

from tokenbudget import Clock, MonotonicClock
from tokenbudget.exceptions import TokenBudgetError


__all__ = ["Lease", "LeaseHeld", "MemoryLease"]


class LeaseHeld(TokenBudgetError):  # noqa: N818 -- reads as the condition it reports
    """Another holder has the lease of this key (raised by callers that need it, not by leases).

    :meth:`Lease.acquire` returns ``None`` when the lease is held; an
    ingestor or a command that cannot go on without it raises this error,
    naming the holder.

    Attributes:
        key: The job key.
        holder: The holder's description from :meth:`Lease.holder`, or ``None``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, key: str, holder: str | None) -> None:
        self.key = key
        self.holder = holder
        who = holder if holder is not None else "another holder"
        super().__init__(f"the lease of {key!r} is held by {who}")

    def __reduce__(self) -> tuple[type[LeaseHeld], tuple[str, str | None]]:
        return (type(self), (self.key, self.holder))


@runtime_checkable
class Lease(Protocol):
    """One holder per key at a time, with expiry for holders that crashed.

    Implementations: :class:`MemoryLease`, :class:`SQLiteLease`, and the
    Redis and PostgreSQL leases of the deployment modules.

    .. versionadded:: 0.1.0
    """

    def acquire(self, key: str, *, ttl: float) -> str | None:
        """Take the lease of *key* for *ttl* seconds: the owner token, or ``None`` if it is held."""
        ...

    def renew(self, key: str, token: str, *, ttl: float) -> bool:
        """Extend the lease to *ttl* seconds from now; ``False`` if *token* no longer holds it."""
        ...

    def release(self, key: str, token: str) -> bool:
        """Give the lease up; ``False`` (and nothing changes) if *token* does not hold it."""
        ...

    def holder(self, key: str) -> str | None:
        """A description of the current holder of *key* (for messages), or ``None``."""
        ...


def check_ttl(ttl: object) -> float:
    """*ttl* as a float, or a ``TypeError``/``ValueError`` naming it."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl must be a number of seconds, got {ttl!r}")
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a finite number of seconds > 0, got {ttl!r}")
    return float(ttl)


def check_key(key: object) -> str:
    """*key* itself, or a ``ValueError`` naming it."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a lease key must be a non-empty str, got {key!r}")
    return key


def new_token() -> str:
    """A fresh, unguessable owner token."""
    return secrets.token_hex(16)


@attrs.frozen
class _Held:
    token: str
    expires: float


class MemoryLease:
    """Leases in a dict, for tests and the threads of one process.

    Time comes from *clock* (default :class:`tokenbudget.MonotonicClock`), so
    a :class:`tokenbudget.ManualClock` makes expiry testable without waiting.

    >>> from tokenbudget import ManualClock
    >>> from tokenbudget_keepa import MemoryLease
    >>> clock = ManualClock()
    >>> lease = MemoryLease(clock=clock)
    >>> token = lease.acquire("job", ttl=60)
    >>> lease.acquire("job", ttl=60) is None        # held
    True
    >>> clock.advance(61)                            # the holder stopped renewing
    >>> lease.acquire("job", ttl=60) is not None
    True
    >>> lease.renew("job", token, ttl=60)            # the old holder lost it
    False

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = MonotonicClock() if clock is None else clock
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryLease(clock={self._clock!r})"

    def acquire(self, key: str, *, ttl: float) -> str | None:
        """Take the lease of *key* for *ttl* seconds: the owner token, or ``None`` if it is held."""
        check_key(key)
        seconds = check_ttl(ttl)
        with self._lock:
            now = self._clock.now()
            held = self._held.get(key)
            if held is not None and held.expires > now:
                return None
            token = new_token()
            self._held[key] = _Held(token, now + seconds)
            return token

    def renew(self, key: str, token: str, *, ttl: float) -> bool:
        """Extend the lease to *ttl* seconds from now; ``False`` if *token* no longer holds it."""
        check_key(key)
        seconds = check_ttl(ttl)
        with self._lock:
            held = self._held.get(key)
            if held is None or held.token != token:
                return False
            self._held[key] = _Held(token, self._clock.now() + seconds)
            return True

    def release(self, key: str, token: str) -> bool:
        """Give the lease up; ``False`` if *token* does not hold it."""
        check_key(key)
        with self._lock:
            held = self._held.get(key)
            if held is None or held.token != token:
                return False
            del self._held[key]
            return True

    def holder(self, key: str) -> str | None:
        """``"token 1a2b… (expires in N s)"`` for a live lease, else ``None``."""
        check_key(key)
        with self._lock:
            held = self._held.get(key)
            now = self._clock.now()
            if held is None or held.expires <= now:
                return None
            return f"token {held.token[:8]}… (expires in {held.expires - now:.0f} s)"

    def close(self) -> None:
        """Nothing to release."""
