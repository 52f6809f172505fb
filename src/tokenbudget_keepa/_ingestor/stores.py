"""Watermark stores: memory and SQLite (see :mod:`tokenbudget_keepa._ingestor.watermark`)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

from .sinks import AcceptedDeal, SQLiteDealSink, upsert_rows
from .sqlite_db import SQLiteFile, utc_now_text
from .watermark import Watermark


__all__ = ["MemoryWatermarkStore", "SQLiteWatermarkStore"]


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a watermark key must be a non-empty str, got {key!r}")
    return key


class MemoryWatermarkStore:
    """Watermarks in a dict, for tests and one-off runs (thread-safe).

    >>> from tokenbudget_keepa import MemoryWatermarkStore, Watermark
    >>> store = MemoryWatermarkStore()
    >>> store.advance("job", Watermark(7_000_000, "B000000002"))
    True
    >>> store.advance("job", Watermark(7_000_000, "B000000001"))   # never backwards
    False
    >>> store.load("job")
    Watermark(minute=7000000, asin='B000000002')

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._watermarks: dict[str, Watermark] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryWatermarkStore(<{len(self._watermarks)} keys>)"

    def load(self, key: str) -> Watermark | None:
        """The stored watermark of *key*, or ``None``."""
        with self._lock:
            return self._watermarks.get(_check_key(key))

    def advance(self, key: str, watermark: Watermark) -> bool:
        """Store *watermark* iff it is greater than the stored one; ``True`` if it moved."""
        _check_key(key)
        if not isinstance(watermark, Watermark):
            raise TypeError(f"advance() takes a Watermark, got {watermark!r}")
        with self._lock:
            old = self._watermarks.get(key)
            if old is not None and watermark <= old:
                return False
            self._watermarks[key] = watermark
            return True

    def reset(self, key: str) -> None:
        """Forget the watermark of *key*."""
        with self._lock:
            self._watermarks.pop(_check_key(key), None)

    def keys(self) -> list[str]:
        """Every key with a stored watermark, sorted."""
        with self._lock:
            return sorted(self._watermarks)

    def close(self) -> None:
        """Nothing to release."""


_ADVANCE = (
    "INSERT INTO tokenbudget_keepa_watermarks (key, minute, asin, updated_at)"
    " VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET minute = excluded.minute, asin = excluded.asin,"
    " updated_at = excluded.updated_at"
    " WHERE (excluded.minute, excluded.asin)"
    " > (tokenbudget_keepa_watermarks.minute, tokenbudget_keepa_watermarks.asin)"
)


def _advance_row(conn: sqlite3.Connection, key: str, watermark: Watermark) -> bool:
    cursor = conn.execute(_ADVANCE, (key, watermark.minute, watermark.asin, utc_now_text()))
    return cursor.rowcount > 0


class SQLiteWatermarkStore(SQLiteFile):
    """Watermarks in the table ``tokenbudget_keepa_watermarks`` of an SQLite file.

    :meth:`advance` is one statement that writes only a greater watermark, so
    it never moves backwards, whichever process writes. The file may also hold
    the deals (:class:`SQLiteDealSink`) and the lease (:class:`SQLiteLease`);
    then :meth:`commit` stores a batch of deals and advances the watermark in
    one transaction.

    >>> import pathlib, tempfile
    >>> from tokenbudget_keepa import SQLiteWatermarkStore, Watermark
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ingest.db"
    >>> with SQLiteWatermarkStore(path) as store:
    ...     store.advance("job", Watermark(7_000_000, "B000000002"))
    ...     store.advance("job", Watermark(6_999_999, "B000000009"))
    ...     store.load("job")
    True
    False
    Watermark(minute=7000000, asin='B000000002')

    Args:
        path: The database file (created with the current schema if new).
        timeout: Seconds to wait for another process's transaction before
            raising a transient :exc:`StoreError`.

    Raises:
        SchemaMismatch: At construction, when the file's schema is not this
            library's.
        StoreError: From any operation, when the database stays locked longer
            than *timeout* or cannot be read or written.

    .. versionadded:: 0.1.0
    """

    def load(self, key: str) -> Watermark | None:
        """The stored watermark of *key*, or ``None``."""
        _check_key(key)
        with self._db.read("cannot read the watermark") as conn:
            row = conn.execute(
                "SELECT minute, asin FROM tokenbudget_keepa_watermarks WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else Watermark(int(row[0]), str(row[1]))

    def advance(self, key: str, watermark: Watermark) -> bool:
        """Store *watermark* iff it is greater than the stored one; ``True`` if it moved."""
        _check_key(key)
        if not isinstance(watermark, Watermark):
            raise TypeError(f"advance() takes a Watermark, got {watermark!r}")
        with self._db.write("cannot advance the watermark") as conn:
            return _advance_row(conn, key, watermark)

    def reset(self, key: str) -> None:
        """Forget the watermark of *key*."""
        _check_key(key)
        with self._db.write("cannot reset the watermark") as conn:
            conn.execute("DELETE FROM tokenbudget_keepa_watermarks WHERE key = ?", (key,))

    def keys(self) -> list[str]:
        """Every key with a stored watermark, sorted."""
        with self._db.read("cannot read the watermarks") as conn:
            rows = conn.execute("SELECT key FROM tokenbudget_keepa_watermarks ORDER BY key")
            return [str(row[0]) for row in rows]

    def covers(self, sink: object) -> bool:
        """Whether *sink* is an SQLiteDealSink of the same file (then :meth:`commit` works)."""
        return isinstance(sink, SQLiteDealSink) and self._db.same_file(sink._db)  # noqa: SLF001

    def commit(self, key: str, deals: Sequence[AcceptedDeal], watermark: Watermark) -> bool:
        """Upsert *deals* into this file's ``deals`` table and advance *key*, in one transaction.

        Either both happen or neither does. Returns whether the watermark
        moved (the deals are stored either way).
        """
        _check_key(key)
        if not isinstance(watermark, Watermark):
            raise TypeError(f"commit() takes a Watermark, got {watermark!r}")
        deals = list(deals)
        with self._db.write("cannot store deals and advance the watermark") as conn:
            upsert_rows(conn, deals)
            return _advance_row(conn, key, watermark)
