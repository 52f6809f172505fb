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

import functools
import math
import os
import pathlib
import secrets
import socket
import sys
import threading
from typing import Any, Protocol, runtime_checkable

import attrs

from tokenbudget import Clock, MonotonicClock, WallClock
from tokenbudget.exceptions import TokenBudgetError

from .sqlite_db import SQLiteFile


__all__ = ["HolderProcess", "Lease", "LeaseHeld", "MemoryLease", "SQLiteLease"]


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


# -- who holds a lease, and whether that process is gone ------------------------------------


def _read(path: str) -> str | None:
    try:
        return pathlib.Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


@functools.cache
def _boot_id() -> str | None:
    text = _read("/proc/sys/kernel/random/boot_id")
    return text.strip() or None if text is not None else None


def _this_host() -> str:
    """The host name and PID namespace: the scope in which a pid names one process."""
    try:
        namespace = str(pathlib.Path("/proc/self/ns/pid").readlink())
    except (OSError, AttributeError):  # not Linux
        namespace = ""
    host = socket.gethostname()
    return f"{host}/{namespace}" if namespace else host


def _stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time in clock ticks since boot)`` of *pid* from /proc, if readable."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


@attrs.frozen
class HolderProcess:
    """The process that holds a lease: enough to tell, on its host, whether it is gone.

    Attributes:
        pid: Its process id.
        host: Its host name and PID namespace (pids mean one process only there).
        boot_id: The host's boot id when it took the lease (Linux), else ``None``.
        started: Its start time in clock ticks since boot (Linux), else ``None``:
            a reused pid has another start time.

    .. versionadded:: 0.1.0
    """

    pid: int
    host: str
    boot_id: str | None = None
    started: str | None = None

    @classmethod
    def current(cls) -> HolderProcess:
        """The calling process."""
        pid = os.getpid()
        stat = _stat(pid)
        return cls(pid, _this_host(), _boot_id(), None if stat is None else stat[1])

    def is_gone(self) -> bool:
        """``True`` only when this process surely no longer runs (same host, and dead or reused).

        On another host (or a platform without ``os.kill(pid, 0)``) nothing can
        be told: ``False``, and the lease waits for its ttl.
        """
        if sys.platform == "win32" or self.host != _this_host():
            return False
        boot = _boot_id()
        if self.boot_id is not None and boot is not None and boot != self.boot_id:
            return True  # the host rebooted since
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # it exists, under another user
        except OSError:  # pragma: no cover -- nothing to conclude
            return False
        stat = _stat(self.pid)
        if stat is None:
            return False
        state, started = stat
        return state == "Z" or (self.started is not None and started != self.started)

    def describe(self) -> str:
        """``"pid 123 on host h"``."""
        return f"pid {self.pid} on {self.host.split('/', 1)[0]}"


class SQLiteLease(SQLiteFile):
    """Leases in the table ``tokenbudget_keepa_leases`` of an SQLite file, for every process.

    Each acquire, renew and release is one ``BEGIN IMMEDIATE`` transaction.
    The row records the holder's process (:class:`HolderProcess`); an
    unexpired lease whose holder process is gone on this host (killed,
    crashed, or the host rebooted) is taken over at once. Time comes from
    *clock* (default :class:`tokenbudget.WallClock`, the same in every process).

    >>> import pathlib, tempfile
    >>> from tokenbudget_keepa import SQLiteLease
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ingest.db"
    >>> with SQLiteLease(path) as lease:
    ...     token = lease.acquire("job", ttl=60)
    ...     print(lease.acquire("job", ttl=60))     # held by this (live) process
    ...     print(lease.holder("job").startswith("pid "))
    ...     print(lease.release("job", token))
    None
    True
    True

    Args:
        path: The database file (created with the current schema if new); may
            be the file of a :class:`SQLiteWatermarkStore` and a
            :class:`SQLiteDealSink`.
        timeout: Seconds to wait for another process's transaction before
            raising a transient :exc:`StoreError`.
        clock: Where expiry times are read (default :class:`tokenbudget.WallClock`).

    Raises:
        SchemaMismatch: At construction, when the file's schema is not this
            library's.
        StoreError: From any operation, when the database stays locked longer
            than *timeout* or cannot be read or written.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 5.0, clock: Clock | None = None
    ) -> None:
        super().__init__(path, timeout=timeout)
        self._clock: Clock = WallClock() if clock is None else clock

    def _init_kwargs(self) -> dict[str, Any]:
        return {"timeout": self._db.timeout, "clock": self._clock}

    def acquire(self, key: str, *, ttl: float) -> str | None:
        """Take the lease of *key* for *ttl* seconds: the owner token, or ``None`` if it is held.

        A lease is free when there is none, when it expired, or when its
        holder process is gone on this host.
        """
        check_key(key)
        seconds = check_ttl(ttl)
        me = HolderProcess.current()
        with self._db.write("cannot take the lease") as conn:
            now = self._clock.now()
            row = conn.execute(_SELECT_LEASE, (key,)).fetchone()
            if row is not None and row[1] > now and not _holder_of(row).is_gone():
                return None
            token = new_token()
            conn.execute(
                "INSERT OR REPLACE INTO tokenbudget_keepa_leases"
                " (key, token, expires_at, acquired_at, pid, host, boot_id, started)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, token, now + seconds, now, me.pid, me.host, me.boot_id, me.started),
            )
            return token

    def renew(self, key: str, token: str, *, ttl: float) -> bool:
        """Extend the lease to *ttl* seconds from now; ``False`` if *token* no longer holds it."""
        check_key(key)
        seconds = check_ttl(ttl)
        with self._db.write("cannot renew the lease") as conn:
            cursor = conn.execute(
                "UPDATE tokenbudget_keepa_leases SET expires_at = ? WHERE key = ? AND token = ?",
                (self._clock.now() + seconds, key, token),
            )
            return cursor.rowcount > 0

    def release(self, key: str, token: str) -> bool:
        """Give the lease up; ``False`` (and nothing changes) if *token* does not hold it."""
        check_key(key)
        with self._db.write("cannot release the lease") as conn:
            cursor = conn.execute(
                "DELETE FROM tokenbudget_keepa_leases WHERE key = ? AND token = ?", (key, token)
            )
            return cursor.rowcount > 0

    def holder(self, key: str) -> str | None:
        """``"pid 123 on host h, expires in 42 s"`` for a live lease; ``None`` when it is free."""
        check_key(key)
        with self._db.read("cannot read the lease") as conn:
            row = conn.execute(_SELECT_LEASE, (key,)).fetchone()
        now = self._clock.now()
        if row is None or row[1] <= now:
            return None
        process = _holder_of(row)
        if process.is_gone():
            return None
        return f"{process.describe()}, expires in {row[1] - now:.0f} s"


_SELECT_LEASE = (
    "SELECT token, expires_at, pid, host, boot_id, started FROM tokenbudget_keepa_leases"
    " WHERE key = ?"
)


def _holder_of(row: tuple[object, ...]) -> HolderProcess:
    _token, _expires, pid, host, boot_id, started = row
    return HolderProcess(
        pid if isinstance(pid, int) else -1,
        str(host or ""),
        None if boot_id is None else str(boot_id),
        None if started is None else str(started),
    )
