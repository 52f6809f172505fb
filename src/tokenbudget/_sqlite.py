"""Bucket state in an SQLite file, shared by every process and thread on one host."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import threading
import weakref
from typing import Self

from . import _core
from ._clock import Clock, WallClock
from ._config import BucketConfig
from ._core import BucketState, Observation, Outcome, Request
from .exceptions import BackendError


__all__ = ["SQLiteBackend"]

_BACKEND = "sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokenbudget_buckets (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL
) WITHOUT ROWID
"""
#: The next booking id of every deleted bucket: a bucket created again under its key
#: continues from there, so that no id is ever used twice within a key.
_IDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokenbudget_booking_ids (
    key TEXT PRIMARY KEY,
    next_id INTEGER NOT NULL
) WITHOUT ROWID
"""
_SELECT_IDS = "SELECT next_id FROM tokenbudget_booking_ids WHERE key = ?"
_UPSERT_IDS = (
    "INSERT INTO tokenbudget_booking_ids (key, next_id) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET next_id = max(next_id, excluded.next_id)"
)
_SELECT = "SELECT state FROM tokenbudget_buckets WHERE key = ?"
_UPSERT = (
    "INSERT INTO tokenbudget_buckets (key, state) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET state = excluded.state"
)


def _dumps(state: BucketState) -> str:
    # repr() of a float round-trips exactly, and json writes floats with repr().
    return json.dumps(state.to_dict(), separators=(",", ":"), allow_nan=False)


def _loads(text: str) -> BucketState:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(type(data).__name__)  # noqa: TRY301 -- reported below
        return BucketState.from_dict(data)
    except (ValueError, TypeError, KeyError, AssertionError) as exc:
        raise BackendError(_BACKEND, f"corrupt bucket state {text[:80]!r} ({exc!r})") from None


def _close_own(connections: list[tuple[int, sqlite3.Connection]], lock: threading.Lock) -> None:
    """Close (and forget) the connections this process opened; fork()'s inherited ones stay."""
    pid = os.getpid()
    with lock:
        conns = list(connections)
        connections.clear()
    for owner, conn in conns:
        if owner == pid:  # a connection inherited through fork() is the parent's
            conn.close()


class SQLiteBackend:
    """Bucket state in one SQLite file, shared by every process on the host.

    Each bucket is one row, keyed by the bucket's ``key=``; many buckets share
    one file. Every operation is one ``BEGIN IMMEDIATE`` transaction that
    reads the row, applies the same transition as :class:`MemoryBackend` and
    writes it back, so processes and threads take turns and bookings stay
    first come, first served across all of them. The database runs in WAL
    mode, so :meth:`TokenBucket.snapshot` of an existing bucket never waits
    for a writer.

    Time comes from *clock* (default :class:`WallClock`, the same in every
    process on the host and across restarts), not from the bucket's clock: the
    bucket only sleeps with its own. Each thread (and each process, after a
    fork) opens its own connection.

    >>> import tempfile, pathlib
    >>> from tokenbudget import BucketConfig, ManualClock, Rate, SQLiteBackend, TokenBucket
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "buckets.db"
    >>> clock = ManualClock()
    >>> backend = SQLiteBackend(path, clock=clock)
    >>> bucket = TokenBucket(BucketConfig(10, Rate.per_second(1)), backend=backend, key="api")
    >>> bucket.try_acquire(8), bucket.try_acquire(8)
    (True, False)
    >>> backend.close()

    Args:
        path: The database file (created if missing). ``":memory:"`` works
            but is private to one connection, so only for one thread.
        clock: Where the backend reads the time (default :class:`WallClock`).
        timeout: Seconds an operation waits for another process's
            transaction before it raises :class:`BackendError`.

    Raises:
        BackendError: From any operation, when the database stays locked
            longer than *timeout* or cannot be read or written.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("__weakref__", "_clock", "_connections", "_local", "_lock", "_path", "_timeout")

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Clock | None = None, timeout: float = 5.0
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number, got {timeout!r}")
        if not math.isfinite(timeout) or timeout < 0:
            raise ValueError(f"timeout must be a finite number >= 0, got {timeout!r}")
        self._path = os.fspath(path)
        self._clock: Clock = WallClock() if clock is None else clock
        self._timeout = float(timeout)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        # Connections of a backend that is garbage-collected unclosed are closed, not leaked.
        weakref.finalize(self, _close_own, self._connections, self._lock)
        # Create the file, the table and WAL mode now, so a bad path fails here.
        self._connection()

    def __repr__(self) -> str:
        return f"SQLiteBackend({self._path!r}, clock={self._clock!r}, timeout={self._timeout!r})"

    def __reduce__(self) -> tuple[object, tuple[str, Clock, float]]:
        # Picklable (for multiprocessing): each process opens its own connections.
        return (_reopen, (self._path, self._clock, self._timeout))

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def clock(self) -> Clock:
        """Where the backend reads the time."""
        return self._clock

    # -- connections ------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.pid == pid:
            return conn
        # A connection inherited through fork() belongs to the parent: never touch it.
        try:
            conn = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "cannot open the database") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if self._path != ":memory:" and str(mode[0]).lower() != "wal":  # pragma: no cover
                raise BackendError(_BACKEND, f"{self._path!r} cannot use WAL mode (got {mode[0]})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
            conn.execute(_IDS_SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "cannot prepare the database") from exc
        local.conn = conn
        local.pid = pid
        with self._lock:
            self._connections.append((pid, conn))
        return conn

    def close(self) -> None:
        """Close every connection this backend opened in this process.

        Any later operation opens a new one.
        """
        with self._lock:
            self._local = threading.local()
        _close_own(self._connections, self._lock)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _error(self, exc: sqlite3.Error, doing: str) -> BackendError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return BackendError(
                _BACKEND,
                f"{doing}: {self._path!r} stayed locked by another connection for more than "
                f"the timeout of {self._timeout!r} s ({text})",
            )
        return BackendError(_BACKEND, f"{doing}: {self._path!r}: {type(exc).__name__}: {text}")

    # -- operations -------------------------------------------------------------------------

    def _transact(
        self, key: str, config: BucketConfig, initial: float, request: Request | None
    ) -> Outcome | Observation:
        conn = self._connection()
        try:
            if request is None:
                # A read of an existing bucket needs no write lock (WAL readers never wait).
                row = conn.execute(_SELECT, (key,)).fetchone()
                if row is not None:
                    state, now = _loads(row[0]), self._clock.now()
                    if not _core.stepped_back(state, now, config.in_flight):  # (else stored moved)
                        return _core.observe(config, state, now)
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = self._clock.now()
                row = conn.execute(_SELECT, (key,)).fetchone()
                if row is None:
                    state = _core.new_state(config, initial, now)
                    ids = conn.execute(_SELECT_IDS, (key,)).fetchone()
                    if ids is not None and int(ids[0]) > state.next_id:
                        # Deleted before: ids go on from there; older ones are not this bucket's.
                        state.next_id = state.synced_id = int(ids[0])
                else:
                    state = _loads(row[0])
                result: Outcome | Observation
                if request is None:
                    result = _core.observe(config, state, now)
                else:
                    result = _core.apply(config, state, now, request)
                conn.execute(_UPSERT, (key, _dumps(state)))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc, f"bucket {key!r}") from exc
        return result

    def apply(
        self,
        key: str,
        config: BucketConfig,
        clock: Clock,  # noqa: ARG002 -- the backend has its own clock
        initial: float,
        request: Request,
    ) -> Outcome:
        """Apply *request* to the bucket *key* in one ``BEGIN IMMEDIATE`` transaction."""
        out = self._transact(key, config, initial, request)
        assert isinstance(out, Outcome)  # noqa: S101
        return out

    def observe(
        self,
        key: str,
        config: BucketConfig,
        clock: Clock,  # noqa: ARG002 -- the backend has its own clock
        initial: float,
    ) -> Observation:
        """Read the bucket *key* (creating it if missing)."""
        obs = self._transact(key, config, initial, None)
        assert isinstance(obs, Observation)  # noqa: S101
        return obs

    async def aapply(
        self,
        key: str,
        config: BucketConfig,
        clock: Clock,
        initial: float,
        request: Request,
    ) -> Outcome:
        """:meth:`apply` in a worker thread: waiting for the file lock never blocks the loop."""
        return await asyncio.to_thread(self.apply, key, config, clock, initial, request)

    async def aobserve(
        self, key: str, config: BucketConfig, clock: Clock, initial: float
    ) -> Observation:
        """:meth:`observe` in a worker thread."""
        return await asyncio.to_thread(self.observe, key, config, clock, initial)

    def keys(self) -> list[str]:
        """The keys of every bucket stored in the file, sorted."""
        conn = self._connection()
        try:
            rows = conn.execute("SELECT key FROM tokenbudget_buckets ORDER BY key").fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "listing buckets") from exc
        return [str(r[0]) for r in rows]

    def delete(self, key: str) -> bool:
        """Forget the bucket *key*; it starts afresh on next use. Return whether it existed.

        Only its booking ids are remembered: the bucket created again under
        *key* numbers its bookings after the deleted one's, so a reservation
        of the deleted bucket never names a booking of the new one.
        """
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(_SELECT, (key,)).fetchone()
                if row is not None:
                    conn.execute(_UPSERT_IDS, (key, _loads(row[0]).next_id))
                    conn.execute("DELETE FROM tokenbudget_buckets WHERE key = ?", (key,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc, f"bucket {key!r}") from exc
        return row is not None


def _reopen(path: str, clock: Clock, timeout: float) -> SQLiteBackend:
    return SQLiteBackend(path, clock=clock, timeout=timeout)
