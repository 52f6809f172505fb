"""Watermarks, accepted deals and leases in PostgreSQL.

Needs the ``postgres`` extra of tokenbudget (psycopg 3 and its connection
pool); importing ``tokenbudget_keepa`` never imports psycopg.

.. code-block:: python

    from tokenbudget_keepa.postgres import PostgresDatabase

    db = PostgresDatabase("postgresql://ingest@db.example/keepa", migrate=True)
    store, sink, lease = db.watermark_store(), db.deal_sink(), db.lease()

One :class:`PostgresDatabase` is one connection pool; the store, the sink and
the lease built from it share the pool, and the store writes a batch's deals
and its watermark in **one transaction** (:meth:`PostgresWatermarkStore.commit`),
so no crash can come between them.

The tables (``deals``, as in SQLite, and ``tokenbudget_keepa_watermarks``,
``tokenbudget_keepa_leases``, ``tokenbudget_keepa_backlog_v1`` and the version
table ``tokenbudget_keepa_schema``, one row per migration applied) are created
by an explicit, versioned migration, :meth:`PostgresDatabase.migrate` (or
``migrate=True``), never on every connect.
Processes migrating at once serialize on a transaction-scoped advisory lock;
a database at a schema version this release does not know is refused with
one line, before anything is written. To keep the tables in a schema of their
own, name it in the connection string
(``postgresql://host/db?options=-csearch_path%3Dkeepa``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final, Self

from ._ingestor.lease import HolderProcess, check_key, check_ttl, new_token
from ._ingestor.sinks import AcceptedDeal, _columns, _latest
from ._ingestor.watermark import SchemaMismatch, StoreError, Watermark


try:
    import psycopg
    import psycopg.conninfo
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover -- exercised without the extra installed
    from tokenbudget._install import install_hint

    raise ImportError(
        f"tokenbudget_keepa.postgres needs psycopg 3: {install_hint('postgres')}"
    ) from exc


__all__ = [
    "SCHEMA_VERSION",
    "PostgresBacklog",
    "PostgresDatabase",
    "PostgresDealSink",
    "PostgresError",
    "PostgresLease",
    "PostgresSchemaError",
    "PostgresUnavailableError",
    "PostgresWatermarkStore",
    "migrate",
    "open_storage",
]

#: The schema version this release writes and reads.
SCHEMA_VERSION: Final = 1

#: The key of the transaction-scoped advisory lock that serializes migrations ("tbkp").
_MIGRATION_LOCK: Final = 0x7462_6B70

_MIGRATIONS: Final[Mapping[int, tuple[str, ...]]] = {
    1: (
        """CREATE TABLE tokenbudget_keepa_schema (
            version integer NOT NULL,
            migrated_at timestamptz NOT NULL
        )""",
        """CREATE TABLE deals (
            asin text COLLATE "C" PRIMARY KEY,
            title text,
            last_update bigint NOT NULL,
            domain integer NOT NULL,
            price bigint,
            sales_rank bigint,
            profit bigint,
            roi double precision,
            deal_json jsonb NOT NULL,
            product_json jsonb,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        "CREATE INDEX deals_last_update ON deals (last_update)",
        """CREATE TABLE tokenbudget_keepa_watermarks (
            key text PRIMARY KEY,
            minute bigint NOT NULL,
            asin text COLLATE "C" NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE tokenbudget_keepa_backlog_v1 (
            key text PRIMARY KEY,
            sweep text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE tokenbudget_keepa_leases (
            key text PRIMARY KEY,
            token text NOT NULL,
            expires_at timestamptz NOT NULL,
            acquired_at timestamptz NOT NULL,
            pid integer NOT NULL,
            host text NOT NULL,
            boot_id text,
            started text
        )""",
    ),
}


#: The tables of tokenbudget_keepa's own names (``deals`` is the users' table).
_TABLES: Final = (
    "tokenbudget_keepa_backlog_v1",
    "tokenbudget_keepa_leases",
    "tokenbudget_keepa_schema",
    "tokenbudget_keepa_watermarks",
)


class PostgresError(StoreError):
    """PostgreSQL could not carry out a store, sink or lease operation.

    The message names the database (never its password) and PostgreSQL's own
    reason, on one line. Nothing was written by the failed operation.

    .. versionadded:: 0.1.0
    """


class PostgresUnavailableError(PostgresError, ConnectionError):
    """PostgreSQL cannot be reached (down, refused, timed out, wrong host).

    Transient: a job can retry later, nothing was written.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message, transient=transient)


class PostgresSchemaError(SchemaMismatch):
    """The database's tables are missing, not tokenbudget's, or at an unknown version.

    Raised when the database is opened, before anything is written.

    .. versionadded:: 0.1.0
    """


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def describe_conninfo(conninfo: str) -> str:
    """A connection string as messages show it: ``postgresql://user@host:port/db``, no password."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "postgresql://<invalid connection string>"
    user = str(parts.get("user") or "")
    host = str(parts.get("host") or "localhost")
    port = parts.get("port")
    db = str(parts.get("dbname") or user)
    where = f"{host}:{port}" if port else str(host)
    return f"postgresql://{user + '@' if user else ''}{where}/{db}"


def _jsonb(value: Mapping[str, Any] | None) -> Any:
    if value is None:
        return None
    # A mapping that is not a dict (a frozen view) goes through json.dumps once.
    return Jsonb(value if isinstance(value, dict) else json.loads(json.dumps(dict(value))))


class PostgresDatabase:
    """A connection pool on one PostgreSQL database holding the ``tokenbudget_keepa`` tables.

    Args:
        conninfo: A libpq connection string or URL
            (``postgresql://user:password@host:5432/dbname``).
        migrate: Apply the schema migration at start-up
            (:meth:`migrate`: idempotent, safe when several processes start
            at once). ``False`` (the default) only checks the version and
            raises :class:`PostgresSchemaError` when the tables are missing.
        min_size: Connections the pool keeps open.
        max_size: Connections the pool opens at most.
        connect_timeout: Seconds to wait for a connection.

    Raises:
        PostgresUnavailableError: PostgreSQL cannot be reached.
        PostgresSchemaError: The tables are missing (and *migrate* is false),
            or at a version this release does not know.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        conninfo: str,
        *,
        migrate: bool = False,
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout: float = 5.0,
    ) -> None:
        if not isinstance(conninfo, str):
            raise TypeError(f"conninfo must be a string, got {type(conninfo).__name__}")
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, got {connect_timeout!r}")
        self._conninfo = conninfo
        self._name = describe_conninfo(conninfo)
        self._timeout = float(connect_timeout)
        self._kwargs: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        # Start-up: one direct connection gives PostgreSQL's own reason when it fails.
        with self._direct() as conn:
            if migrate:
                self._migrate(conn)
            else:
                self._check(conn)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo,
            kwargs=self._kwargs,
            min_size=min_size,
            max_size=max_size,
            open=False,
            check=ConnectionPool.check_connection,
            timeout=self._timeout,
            name=f"tokenbudget_keepa {self._name}",
        )
        try:
            self._pool.open(wait=True, timeout=self._timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise self._unavailable(exc) from None

    def __repr__(self) -> str:
        return f"PostgresDatabase({self._name!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        """The database as messages show it (no password)."""
        return self._name

    @property
    def conninfo(self) -> str:
        """The connection string it was opened with, which may hold a password (never log it)."""
        return self._conninfo

    def close(self) -> None:
        """Close the pool's connections (idempotent)."""
        self._pool.close()

    # -- connections -------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> PostgresUnavailableError:
        return PostgresUnavailableError(
            f"PostgreSQL at {self._name} is unreachable: {_one_line(exc)}"
        )

    def _failed(self, exc: psycopg.Error) -> PostgresError:
        state = exc.sqlstate or ""
        if not state or state.startswith(("08", "57P")):  # connection lost, server shut down
            return self._unavailable(exc)
        # Deadlocks, serialization failures, lock timeouts: worth another try.
        transient = isinstance(exc, psycopg.OperationalError)
        return PostgresError(f"PostgreSQL at {self._name}: {_one_line(exc)}", transient=transient)

    @contextlib.contextmanager
    def _direct(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = psycopg.connect(self._conninfo, **self._kwargs)
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        try:
            with conn:  # commits on success, rolls back on error, closes
                yield conn
        except psycopg.Error as exc:
            raise self._failed(exc) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in one transaction: committed if the block succeeds.

        Errors of PostgreSQL become :class:`PostgresError`
        (:class:`PostgresUnavailableError` for connection failures).
        """
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise self._unavailable(exc) from None
        except psycopg.Error as exc:
            raise self._failed(exc) from None

    # -- schema ------------------------------------------------------------------------------

    @staticmethod
    def _version(conn: psycopg.Connection[Any]) -> int | None:
        row = conn.execute("SELECT to_regclass('tokenbudget_keepa_schema') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return None
        row = conn.execute("SELECT max(version) FROM tokenbudget_keepa_schema").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _unknown(self, version: int) -> PostgresSchemaError:
        return PostgresSchemaError(
            f"PostgreSQL at {self._name} has tokenbudget_keepa schema version {version}, "
            f"newer than the version {SCHEMA_VERSION} this release knows: upgrade tokenbudget"
        )

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        version = self._version(conn)
        if version is None:
            raise PostgresSchemaError(
                f"PostgreSQL at {self._name} has no tokenbudget_keepa tables: migrate it first "
                "(PostgresDatabase(..., migrate=True) or `tokenbudget-keepa ingest`)"
            )
        if version > SCHEMA_VERSION:
            raise self._unknown(version)
        if version < SCHEMA_VERSION:
            raise PostgresSchemaError(
                f"PostgreSQL at {self._name} has tokenbudget_keepa schema version {version}, "
                f"older than {SCHEMA_VERSION}: migrate it first"
            )

    def _migrate(self, conn: psycopg.Connection[Any]) -> int:
        # One transaction: the lock is held until it commits, so a second process
        # starting at the same time waits, then finds the schema current.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        current = self._version(conn)
        if current is not None and current > SCHEMA_VERSION:
            raise self._unknown(current)
        start = current or 0
        if start == 0:
            existing = conn.execute(
                "SELECT string_agg(name, ', ' ORDER BY name) FROM unnest(%s::text[]) AS name "
                "WHERE to_regclass(name) IS NOT NULL",
                (["deals", *_TABLES],),
            ).fetchone()
            if existing is not None and existing[0]:
                raise PostgresSchemaError(
                    f"PostgreSQL at {self._name} already has table(s) {existing[0]} that "
                    "tokenbudget_keepa did not create: use another database or schema"
                )
        for version in range(start + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement.encode())
            conn.execute(
                "INSERT INTO tokenbudget_keepa_schema (version, migrated_at) "
                "VALUES (%s, clock_timestamp())",
                (version,),
            )
        return SCHEMA_VERSION

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION` (idempotent; one transaction).

        Several processes may call it at once: they take turns on an
        advisory lock, and all but the first find nothing to do.

        Returns:
            The schema version now in the database.

        Raises:
            PostgresSchemaError: The database is at a newer, unknown version,
                or holds tables of the same names that it did not create.
        """
        with self.transaction() as conn:
            return self._migrate(conn)

    def schema_version(self) -> int | None:
        """The schema version in the database (``None`` before the first migration)."""
        with self.transaction() as conn:
            return self._version(conn)

    # -- the objects on this database --------------------------------------------------------

    def watermark_store(self) -> PostgresWatermarkStore:
        """A watermark store on this pool (closing it leaves the pool open)."""
        return PostgresWatermarkStore(self)

    def deal_sink(self) -> PostgresDealSink:
        """A deal sink on this pool (closing it leaves the pool open)."""
        return PostgresDealSink(self)

    def lease(self) -> PostgresLease:
        """A lease on this pool (no resources of its own)."""
        return PostgresLease(self)

    def backlog(self) -> PostgresBacklog:
        """The ingestor's backlog (fetched, unprocessed deal pages) on this pool."""
        return PostgresBacklog(self)


def migrate(conninfo: str, *, connect_timeout: float = 5.0) -> int:
    """Create or upgrade the ``tokenbudget_keepa`` tables in the database *conninfo*.

    Idempotent and safe to run from several processes at once.

    Returns:
        The schema version now in the database.

    Raises:
        PostgresUnavailableError: PostgreSQL cannot be reached.
        PostgresSchemaError: The database is at an unknown, newer version.

    .. versionadded:: 0.1.0
    """
    db = PostgresDatabase(conninfo, migrate=True, connect_timeout=connect_timeout, max_size=1)
    db.close()
    return SCHEMA_VERSION


def _database(database: PostgresDatabase | str, migrate: bool) -> tuple[PostgresDatabase, bool]:
    if isinstance(database, PostgresDatabase):
        if migrate:
            database.migrate()
        return database, False
    return PostgresDatabase(database, migrate=migrate), True


_UPSERT: Final = b"""
INSERT INTO deals AS d (asin, title, last_update, domain, price, sales_rank, profit, roi,
                        deal_json, product_json, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (asin) DO UPDATE SET
    title = excluded.title, last_update = excluded.last_update, domain = excluded.domain,
    price = excluded.price, sales_rank = excluded.sales_rank, profit = excluded.profit,
    roi = excluded.roi, deal_json = excluded.deal_json, product_json = excluded.product_json,
    updated_at = excluded.updated_at
WHERE d.last_update <= excluded.last_update
"""

_ADVANCE: Final = b"""
INSERT INTO tokenbudget_keepa_watermarks AS w (key, minute, asin, updated_at)
VALUES (%s, %s, %s, now())
ON CONFLICT (key) DO UPDATE SET
    minute = excluded.minute, asin = excluded.asin, updated_at = excluded.updated_at
WHERE (w.minute, w.asin) < (excluded.minute, excluded.asin)
RETURNING 1
"""


def _upsert(conn: psycopg.Connection[Any], deals: Sequence[AcceptedDeal]) -> None:
    # One row per ASIN: the latest update wins (a batch may carry one ASIN twice).
    latest = _latest(deals)
    if not latest:
        return
    rows = [
        (*_columns(d), _jsonb(d.deal), _jsonb(d.product))
        for d in sorted(latest.values(), key=lambda d: d.asin)  # one lock order: no deadlocks
    ]
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, rows)


def _advance(conn: psycopg.Connection[Any], key: str, watermark: Watermark) -> bool:
    return conn.execute(_ADVANCE, (key, watermark.minute, watermark.asin)).fetchone() is not None


class _OnDatabase:
    """What the store, the sink, the lease and the backlog share: their database and repr.

    *database* is a :class:`PostgresDatabase` to share or a connection string
    (then the object opens a pool of its own, which its ``close()`` closes).
    """

    def __init__(self, database: PostgresDatabase | str, *, migrate: bool = False) -> None:
        self._db, self._owned = _database(database, migrate)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._db.name!r})"


class PostgresWatermarkStore(_OnDatabase):
    """Watermarks in PostgreSQL: a compare-and-set that never moves one backwards.

    Args:
        database: A :class:`PostgresDatabase` to share (closing the store
            leaves it open), or a connection string (the store opens a pool
            of its own and closes it with :meth:`close`).
        migrate: Apply the schema migration first (see :class:`PostgresDatabase`).

    .. versionadded:: 0.1.0
    """

    @property
    def database(self) -> PostgresDatabase:
        """The database (and pool) it uses."""
        return self._db

    def load(self, key: str) -> Watermark | None:
        """The watermark of *key*, or ``None`` if none is stored."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT minute, asin FROM tokenbudget_keepa_watermarks WHERE key = %s", (key,)
            ).fetchone()
        return None if row is None else Watermark(int(row[0]), str(row[1]))

    def advance(self, key: str, watermark: Watermark) -> bool:
        """Store *watermark* iff it is past the stored one (or none is); ``True`` if it moved."""
        with self._db.transaction() as conn:
            return _advance(conn, key, watermark)

    def commit(self, key: str, deals: Sequence[AcceptedDeal], watermark: Watermark) -> bool:
        """Upsert *deals* and advance *key* to *watermark* in one transaction.

        Either both happen or neither does. Returns whether the watermark
        moved (the deals are upserted either way: upserts are idempotent).
        """
        with self._db.transaction() as conn:
            _upsert(conn, deals)
            return _advance(conn, key, watermark)

    def covers(self, sink: object) -> bool:
        """Whether *sink* writes to this store's database (so :meth:`commit` can replace it)."""
        if not isinstance(sink, PostgresDealSink):
            return False
        return sink.database is self._db or sink.database.conninfo == self._db.conninfo

    def reset(self, key: str) -> None:
        """Forget the watermark of *key* (the next run starts with its look-back)."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM tokenbudget_keepa_watermarks WHERE key = %s", (key,))

    def keys(self) -> list[str]:
        """Every key with a stored watermark, sorted."""
        with self._db.transaction() as conn:
            return [
                str(r[0])
                for r in conn.execute("SELECT key FROM tokenbudget_keepa_watermarks ORDER BY key")
            ]

    def close(self) -> None:
        """Close the pool if the store opened it (idempotent)."""
        if self._owned:
            self._db.close()


class PostgresDealSink(_OnDatabase):
    """Accepted deals in the PostgreSQL table ``deals``, one row per ASIN.

    The columns are those of the SQLite sink's table (``asin`` the primary
    key, ``title``, ``last_update``, ``domain``, ``price``, ``sales_rank``,
    ``profit``, ``roi``, ``deal_json``, ``product_json``, ``updated_at``),
    with the JSON columns as ``jsonb``. An upsert never replaces a row with an
    older update of the same ASIN.

    Args:
        database: A :class:`PostgresDatabase` to share, or a connection string.
        migrate: Apply the schema migration first.

    .. versionadded:: 0.1.0
    """

    @property
    def database(self) -> PostgresDatabase:
        """The database (and pool) it uses."""
        return self._db

    def upsert(self, deals: Sequence[AcceptedDeal]) -> None:
        """Insert or update *deals* by ASIN, all in one transaction (idempotent)."""
        with self._db.transaction() as conn:
            _upsert(conn, deals)

    def asins(self) -> frozenset[str]:
        """The ASINs of every stored deal."""
        with self._db.transaction() as conn:
            return frozenset(str(r[0]) for r in conn.execute("SELECT asin FROM deals"))

    def close(self) -> None:
        """Close the pool if the sink opened it (idempotent)."""
        if self._owned:
            self._db.close()


class PostgresLease(_OnDatabase):
    """One holder per key, in a table, with an expiry in the database's time.

    A holder must renew the lease before its *ttl* runs out; a crashed
    holder's lease expires and the next :meth:`acquire` takes it. On one host
    (same host name and PID namespace) a lease whose holding process is gone
    is taken over at once.

    Args:
        database: A :class:`PostgresDatabase` to share, or a connection string.
        migrate: Apply the schema migration first.

    .. versionadded:: 0.1.0
    """

    def _take(self, key: str, token: str, ttl: float, dead: str | None) -> bool:
        me = HolderProcess.current()
        with self._db.transaction() as conn:
            row = conn.execute(
                b"""
                INSERT INTO tokenbudget_keepa_leases AS l
                    (key, token, expires_at, acquired_at, pid, host, boot_id, started)
                VALUES (%s, %s, clock_timestamp() + %s, clock_timestamp(), %s, %s, %s, %s)
                ON CONFLICT (key) DO UPDATE SET
                    token = excluded.token, expires_at = excluded.expires_at,
                    acquired_at = excluded.acquired_at, pid = excluded.pid,
                    host = excluded.host, boot_id = excluded.boot_id, started = excluded.started
                WHERE l.expires_at <= clock_timestamp() OR l.token = %s
                RETURNING 1
                """,
                (
                    key,
                    token,
                    timedelta(seconds=ttl),
                    me.pid,
                    me.host,
                    me.boot_id,
                    me.started,
                    dead,
                ),
            ).fetchone()
        return row is not None

    def acquire(self, key: str, *, ttl: float) -> str | None:
        """Take the lease of *key* for *ttl* seconds: its owner token, or ``None`` if held."""
        check_key(key)
        check_ttl(ttl)
        token = new_token()
        if self._take(key, token, ttl, None):
            return token
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT token, pid, host, boot_id, started FROM tokenbudget_keepa_leases "
                "WHERE key = %s",
                (key,),
            ).fetchone()
        if row is not None and _holder(row).is_gone():
            return token if self._take(key, token, ttl, str(row[0])) else None
        return None

    def renew(self, key: str, token: str, *, ttl: float) -> bool:
        """Extend the lease to *ttl* seconds from now; ``False`` if *token* no longer holds it.

        A holder whose ttl ran out still renews it as long as nobody took it.
        """
        check_key(key)
        check_ttl(ttl)
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE tokenbudget_keepa_leases SET expires_at = clock_timestamp() + %s "
                "WHERE key = %s AND token = %s",
                (timedelta(seconds=ttl), key, token),
            )
            return cur.rowcount == 1

    def release(self, key: str, token: str) -> bool:
        """Give the lease back, only if *token* holds it; ``True`` if it did."""
        check_key(key)
        with self._db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM tokenbudget_keepa_leases WHERE key = %s AND token = %s", (key, token)
            )
            return cur.rowcount == 1

    def holder(self, key: str) -> str | None:
        """Who holds the lease of *key* (``pid 12 on host, 30 s left``), or ``None``."""
        check_key(key)
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT token, pid, host, boot_id, started, "
                "extract(epoch FROM expires_at - clock_timestamp()) "
                "FROM tokenbudget_keepa_leases WHERE key = %s AND expires_at > clock_timestamp()",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return f"{_holder(row).describe()}, {float(row[5]):.0f} s left"

    def close(self) -> None:
        """Close the pool if the lease opened it (idempotent)."""
        if self._owned:
            self._db.close()


def _holder(row: Sequence[Any]) -> HolderProcess:
    _token, pid, host, boot_id, started = row[:5]
    return HolderProcess(
        int(pid), str(host), None if boot_id is None else str(boot_id), started and str(started)
    )


class PostgresBacklog(_OnDatabase):
    """The ingestor's sweeps in progress (fetched deal pages), in PostgreSQL.

    A cache beside the watermark, so that a run on any worker continues the
    sweep the last run started instead of paying for its pages again (the
    table ``tokenbudget_keepa_backlog_v1``). Losing it costs tokens, never
    deals: the watermark is the truth.

    Args:
        database: A :class:`PostgresDatabase` to share, or a connection string.
        migrate: Apply the schema migration first.

    .. versionadded:: 0.1.0
    """

    def load(self, key: str) -> Any:
        """The sweep of *key* (a ``Sweep``), or ``None`` (also when it cannot be read)."""
        from ._ingestor.backlog import Sweep

        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT sweep FROM tokenbudget_keepa_backlog_v1 WHERE key = %s", (key,)
            ).fetchone()
        if row is None:
            return None
        try:
            return Sweep.from_json(str(row[0]))
        except (ValueError, KeyError, TypeError):
            return None  # a cache: an unreadable sweep only costs its pages again

    def save(self, key: str, sweep: Any) -> None:
        """Keep *sweep* as the sweep of *key*."""
        text = sweep.to_json()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO tokenbudget_keepa_backlog_v1 (key, sweep, updated_at) "
                "VALUES (%s, %s, now()) ON CONFLICT (key) DO UPDATE SET "
                "sweep = excluded.sweep, updated_at = excluded.updated_at",
                (key, text),
            )

    def clear(self, key: str) -> None:
        """Forget the sweep of *key*."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM tokenbudget_keepa_backlog_v1 WHERE key = %s", (key,))

    def close(self) -> None:
        """Close the pool if the backlog opened it (idempotent)."""
        if self._owned:
            self._db.close()


def open_storage(url: str) -> Any:
    """Open everything an ingestor keeps in the PostgreSQL database *url*, migrated.

    What ``tokenbudget-keepa ingest --store postgresql://...`` calls: one
    pool shared by the watermark store, the deal sink, the lease and the
    backlog; the schema is migrated first (idempotent, under a lock).

    Returns:
        A ``Storage`` whose ``close()`` closes the pool.

    Raises:
        PostgresUnavailableError: PostgreSQL cannot be reached.
        PostgresSchemaError: The database is at an unknown schema version.

    .. versionadded:: 0.1.0
    """
    from ._ingestor.storage import Storage

    db = PostgresDatabase(url, migrate=True)
    return Storage(
        store=db.watermark_store(),
        sink=db.deal_sink(),
        lease=db.lease(),
        backlog=db.backlog(),
        description=f"PostgreSQL database {db.name}",
        closers=[db.close],
    )
