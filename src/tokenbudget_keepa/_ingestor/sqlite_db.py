"""One SQLite file for the watermark store, the deal sink and the lease: schema, connections.

The schema is versioned: the table ``tokenbudget_keepa_schema`` holds one row
per migration applied (``version``, ``migrated_at``); the database's version is
the largest. :func:`migrate_sqlite` is the one step that creates or upgrades
the tables, in one ``BEGIN IMMEDIATE`` transaction, and is idempotent. Stores
check the version when they open the file and refuse, with
:exc:`SchemaMismatch`, a database whose version is unknown, newer or older than
this library's, or that has a table of the same name (``deals``) that
tokenbudget_keepa did not create. Nothing is ever dropped or recreated.

Version 1::

    tokenbudget_keepa_schema     (version INTEGER, migrated_at TEXT)
    tokenbudget_keepa_watermarks (key TEXT PRIMARY KEY, minute INTEGER, asin TEXT,
                                  updated_at TEXT)
    tokenbudget_keepa_leases     (key TEXT PRIMARY KEY, token TEXT, expires_at REAL,
                                  acquired_at REAL, pid INTEGER, host TEXT, boot_id TEXT,
                                  started TEXT)
    deals                        (asin TEXT PRIMARY KEY, title TEXT, last_update INTEGER,
                                  domain INTEGER, price INTEGER, sales_rank INTEGER,
                                  profit INTEGER, roi REAL, deal_json TEXT, product_json TEXT,
                                  updated_at TEXT)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
import os
import pathlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Self

from .watermark import SchemaMismatch, StoreError


__all__ = ["SCHEMA_VERSION", "migrate_sqlite"]

SCHEMA_VERSION = 1
"""The schema version this library reads and writes.

.. versionadded:: 0.1.0
"""

SCHEMA_TABLE = "tokenbudget_keepa_schema"

# version -> the statements that bring a database from version - 1 to it.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        f"CREATE TABLE {SCHEMA_TABLE} (version INTEGER NOT NULL, migrated_at TEXT NOT NULL)",
        (
            "CREATE TABLE tokenbudget_keepa_watermarks ("
            " key TEXT PRIMARY KEY, minute INTEGER NOT NULL, asin TEXT NOT NULL,"
            " updated_at TEXT NOT NULL) WITHOUT ROWID"
        ),
        (
            "CREATE TABLE tokenbudget_keepa_leases ("
            " key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at REAL NOT NULL,"
            " acquired_at REAL NOT NULL, pid INTEGER, host TEXT, boot_id TEXT, started TEXT)"
            " WITHOUT ROWID"
        ),
        (
            "CREATE TABLE deals ("
            " asin TEXT PRIMARY KEY, title TEXT, last_update INTEGER NOT NULL,"
            " domain INTEGER NOT NULL, price INTEGER, sales_rank INTEGER, profit INTEGER,"
            " roi REAL, deal_json TEXT NOT NULL, product_json TEXT, updated_at TEXT NOT NULL)"
        ),
        "CREATE INDEX deals_last_update ON deals (last_update)",
    ),
}

# The columns each table of the current version must have (checked at open).
_TABLES: dict[str, tuple[str, ...]] = {
    "tokenbudget_keepa_watermarks": ("key", "minute", "asin", "updated_at"),
    "tokenbudget_keepa_leases": (
        "key",
        "token",
        "expires_at",
        "acquired_at",
        "pid",
        "host",
        "boot_id",
        "started",
    ),
    "deals": (
        "asin",
        "title",
        "last_update",
        "domain",
        "price",
        "sales_rank",
        "profit",
        "roi",
        "deal_json",
        "product_json",
        "updated_at",
    ),
}


def utc_now_text() -> str:
    """The current UTC time as ISO 8601 text (what ``updated_at`` columns hold)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def store_error(exc: sqlite3.Error, path: str, doing: str, timeout: float) -> StoreError:
    """The :exc:`StoreError` for an SQLite error, transient when the file was locked or busy."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(
            f"{doing}: {path!r} stayed locked by another connection for more than the "
            f"timeout of {timeout!r} s ({text})",
            transient=True,
        )
    return StoreError(f"{doing}: {path!r}: {type(exc).__name__}: {text}")


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(row[0]) for row in rows}


def _version(conn: sqlite3.Connection, path: str) -> int | None:
    """The database's schema version, ``None`` for a database without our tables."""
    tables = _tables(conn)
    if SCHEMA_TABLE not in tables:
        clashing = sorted(tables & set(_TABLES))
        if clashing:
            raise SchemaMismatch(
                f"{path!r} has the table(s) {', '.join(clashing)} but no {SCHEMA_TABLE} "
                "table: they were not created by tokenbudget_keepa; use another file"
            )
        return None
    try:
        row = conn.execute(f"SELECT max(version) FROM {SCHEMA_TABLE}").fetchone()  # noqa: S608
    except sqlite3.DatabaseError as exc:
        raise SchemaMismatch(f"{path!r}: unreadable {SCHEMA_TABLE} table ({exc})") from None
    version = row[0] if row else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SchemaMismatch(f"{path!r}: unknown schema version {version!r} in {SCHEMA_TABLE}")
    return version


def _check_current(conn: sqlite3.Connection, path: str, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"{path!r} has schema version {version}, newer than the {SCHEMA_VERSION} this "
            "version of tokenbudget_keepa knows: upgrade tokenbudget"
        )
    if version < SCHEMA_VERSION:
        raise SchemaMismatch(
            f"{path!r} has schema version {version}, older than {SCHEMA_VERSION}: run "
            f"tokenbudget_keepa.migrate_sqlite({path!r}) once to upgrade it"
        )
    for table, columns in _TABLES.items():
        present = {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in columns if c not in present]
        if missing:
            raise SchemaMismatch(
                f"{path!r}: table {table} of schema version {version} lacks the column(s) "
                f"{', '.join(missing)}"
            )


def _migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the database to :data:`SCHEMA_VERSION` in one transaction; the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn, path) or 0
        if version > SCHEMA_VERSION:
            _check_current(conn, path, version)  # raises
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO {SCHEMA_TABLE} (version, migrated_at) VALUES (?, ?)",  # noqa: S608
                (step, utc_now_text()),
            )
        _check_current(conn, path, SCHEMA_VERSION)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return SCHEMA_VERSION


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not math.isfinite(timeout) or timeout < 0:
        raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
    return float(timeout)


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise store_error(exc, path, "cannot open the database", timeout) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if path != ":memory:" and str(mode[0]).lower() != "wal":  # pragma: no cover
            raise StoreError(f"{path!r} cannot use WAL mode (got {mode[0]})")  # noqa: TRY301
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(exc, path, "cannot prepare the database", timeout) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def migrate_sqlite(path: str | os.PathLike[str], *, timeout: float = 5.0) -> int:
    """Create or upgrade the tokenbudget_keepa tables in an SQLite file; the schema version.

    The explicit, idempotent migration step: running it on a database that is
    already current changes nothing. It never drops or recreates a table.
    Stores, sinks and leases create the tables themselves in a new, empty
    file; a file of an older version must be migrated with this function.

    >>> import pathlib, tempfile
    >>> from tokenbudget_keepa import migrate_sqlite
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ingest.db"
    >>> migrate_sqlite(path), migrate_sqlite(path)
    (1, 1)

    Raises:
        SchemaMismatch: When the file's schema is newer than this library's,
            unknown, or clashes with tables that tokenbudget_keepa did not create.
        StoreError: When the file cannot be opened or stays locked past *timeout*.

    .. versionadded:: 0.1.0
    """
    name = os.fspath(path)
    seconds = _check_timeout(timeout)
    conn = _connect(name, seconds)
    try:
        return _migrate(conn, name)
    except sqlite3.Error as exc:
        raise store_error(exc, name, "cannot migrate the database", seconds) from exc
    finally:
        conn.close()


def _close_all(connections: dict[int, sqlite3.Connection], lock: threading.RLock) -> None:
    pid = os.getpid()
    with lock:
        # A connection inherited through fork() is the parent's: never touched here.
        conn = connections.pop(pid, None)
    if conn is not None:
        conn.close()


class Database:
    """One connection to a tokenbudget_keepa SQLite file per process, shared by its threads.

    Opening checks (and, in a new empty file, creates) the schema, so a
    mismatch surfaces at once. Every operation holds the object's lock; writes
    run in ``BEGIN IMMEDIATE`` transactions, so processes take turns.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        self.timeout = _check_timeout(timeout)
        self._lock = threading.RLock()
        self._connections: dict[int, sqlite3.Connection] = {}
        weakref.finalize(self, _close_all, self._connections, self._lock)
        with self._lock:
            self._open()

    def _open(self) -> sqlite3.Connection:
        pid = os.getpid()
        conn = self._connections.get(pid)
        if conn is not None:
            return conn
        conn = _connect(self.path, self.timeout)
        try:
            version = _version(conn, self.path)
            if version is None:
                _migrate(conn, self.path)
            else:
                _check_current(conn, self.path, version)
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(exc, self.path, "cannot read the schema", self.timeout) from exc
        except BaseException:
            conn.close()
            raise
        self._connections[pid] = conn
        return conn

    def same_file(self, other: Database) -> bool:
        """Whether *other* opens the same file (and so can share a transaction)."""
        if self.path == ":memory:" or other.path == ":memory:":
            return False
        try:
            return pathlib.Path(self.path).samefile(other.path)
        except OSError:
            return False

    @contextlib.contextmanager
    def read(self, doing: str) -> Iterator[sqlite3.Connection]:
        """The connection for reads outside a transaction; SQLite errors become StoreError."""
        with self._lock:
            conn = self._open()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise store_error(exc, self.path, doing, self.timeout) from exc

    @contextlib.contextmanager
    def write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction, committed at the end, rolled back on an error."""
        with self._lock:
            conn = self._open()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise store_error(exc, self.path, doing, self.timeout) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise store_error(exc, self.path, doing, self.timeout) from exc
                raise

    def close(self) -> None:
        """Close this process's connection; a later operation opens a new one."""
        _close_all(self._connections, self._lock)


class SQLiteFile:
    """What the SQLite store, sink and lease share: a :class:`Database`, a repr, pickling, closing.

    ``repr()`` names the class and the file; a pickle holds the path and the
    keyword arguments of :meth:`_init_kwargs`, so each process opens its own
    connection (multiprocessing, Celery).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self._db = Database(path, timeout=timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._db.path!r})"

    def _init_kwargs(self) -> dict[str, Any]:
        return {"timeout": self._db.timeout}

    def __reduce__(self) -> tuple[Any, ...]:
        return (functools.partial(type(self), **self._init_kwargs()), (self._db.path,))

    @property
    def path(self) -> str:
        """The database file."""
        return self._db.path

    def close(self) -> None:
        """Close this process's connection (a later operation reopens it)."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
