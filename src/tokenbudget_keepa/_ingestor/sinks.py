"""Deal sinks: where accepted deals are stored, one record per ASIN, idempotently.

A sink's :meth:`DealSink.upsert` may be called again with deals it already
holds (an ingestor that crashed between storing and advancing its watermark
replays the batch): it keeps one record per ASIN, and a record is replaced only
by one of the same or a later ``last_update`` (a replay never rolls a
re-updated deal back).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from .sqlite_db import SQLiteFile, utc_now_text


__all__ = ["AcceptedDeal", "DealSink", "MemoryDealSink", "SQLiteDealSink"]


def _check_asin(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise ValueError(f"AcceptedDeal.{attribute.name} must be a non-empty ASIN, got {value!r}")


def _check_int(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"AcceptedDeal.{attribute.name} must be an int, got {value!r}")


def _check_optional_int(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_int(_instance, attribute, value)


def _check_optional_number(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TypeError(f"AcceptedDeal.{attribute.name} must be a number or None, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"AcceptedDeal.{attribute.name} must be finite, got {value!r}")


def _check_optional_str(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"AcceptedDeal.{attribute.name} must be a str or None, got {value!r}")


def _check_mapping(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"AcceptedDeal.{attribute.name} must be a mapping, got {value!r}")


def _check_optional_mapping(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None:
        _check_mapping(_instance, attribute, value)


def _float_or_none(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@attrs.frozen
class AcceptedDeal:
    """One accepted deal as a sink stores it: one record per ASIN.

    >>> from tokenbudget_keepa import AcceptedDeal
    >>> deal = AcceptedDeal(
    ...     asin="B000000001", title="Kettle", last_update=7_000_000, domain=1,
    ...     price=1999, sales_rank=1500, profit=420, roi=0.35,
    ...     deal={"asin": "B000000001"}, product=None,
    ... )
    >>> deal.price, deal.roi
    (1999, 0.35)

    Attributes:
        asin: The deal's ASIN (the sink's key).
        title: The deal's (or product's) title, if known.
        last_update: The deal's ``lastUpdate`` in Keepa minutes.
        domain: The Keepa domain id (1 = amazon.com).
        price: The price the filters judged, in the domain's smallest unit (cents).
        sales_rank: The sales rank, if known.
        profit: The profit model's estimate in cents (``None`` if not computed).
        roi: Profit divided by purchase cost (``None`` if not computed).
        deal: The deal's raw JSON object.
        product: The enriched product's raw JSON object (``None`` if not enriched).

    .. versionadded:: 0.1.0
    """

    asin: str = attrs.field(validator=_check_asin)
    title: str | None = attrs.field(validator=_check_optional_str)
    last_update: int = attrs.field(validator=_check_int)
    domain: int = attrs.field(validator=_check_int)
    price: int | None = attrs.field(default=None, validator=_check_optional_int)
    sales_rank: int | None = attrs.field(default=None, validator=_check_optional_int)
    profit: int | None = attrs.field(default=None, validator=_check_optional_int)
    roi: float | None = attrs.field(
        default=None, converter=_float_or_none, validator=_check_optional_number
    )
    deal: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_mapping, eq=False)
    product: Mapping[str, Any] | None = attrs.field(
        default=None, validator=_check_optional_mapping, eq=False
    )

    def deal_json(self) -> str:
        """The deal's raw JSON as compact text (what the SQLite sink stores)."""
        return json.dumps(self.deal, separators=(",", ":"), sort_keys=True)

    def product_json(self) -> str | None:
        """The product's raw JSON as compact text, or ``None``."""
        if self.product is None:
            return None
        return json.dumps(self.product, separators=(",", ":"), sort_keys=True)


@runtime_checkable
class DealSink(Protocol):
    """Where an ingestor stores accepted deals: idempotent upsert by ASIN.

    Implementations: :class:`MemoryDealSink`, :class:`SQLiteDealSink`,
    ``tokenbudget_keepa.postgres.PostgresDealSink``. Errors of the underlying
    database surface as :exc:`StoreError`.

    .. versionadded:: 0.1.0
    """

    def upsert(self, deals: Sequence[AcceptedDeal]) -> None:
        """Store *deals* (all or none), one record per ASIN; storing a deal again is harmless."""
        ...

    def asins(self) -> frozenset[str]:
        """The ASINs of every stored deal."""
        ...

    def close(self) -> None:
        """Release the sink's connections."""
        ...


def _latest(deals: Sequence[AcceptedDeal]) -> dict[str, AcceptedDeal]:
    """One deal per ASIN: the one of the latest ``last_update`` (the last given on ties)."""
    latest: dict[str, AcceptedDeal] = {}
    for deal in deals:
        if not isinstance(deal, AcceptedDeal):
            raise TypeError(f"a sink stores AcceptedDeal values, got {deal!r}")
        old = latest.get(deal.asin)
        if old is None or deal.last_update >= old.last_update:
            latest[deal.asin] = deal
    return latest


class MemoryDealSink:
    """Accepted deals in a dict, for tests and one-off runs (thread-safe).

    >>> from tokenbudget_keepa import AcceptedDeal, MemoryDealSink
    >>> sink = MemoryDealSink()
    >>> deal = AcceptedDeal(asin="B000000001", title=None, last_update=7_000_000, domain=1)
    >>> sink.upsert([deal]); sink.upsert([deal])
    >>> sink.asins()
    frozenset({'B000000001'})

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._deals: dict[str, AcceptedDeal] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryDealSink(<{len(self._deals)} deals>)"

    def upsert(self, deals: Sequence[AcceptedDeal]) -> None:
        """Store *deals*; a stored deal is replaced only by one with the same or later update."""
        latest = _latest(deals)
        with self._lock:
            for asin, deal in latest.items():
                old = self._deals.get(asin)
                if old is None or deal.last_update >= old.last_update:
                    self._deals[asin] = deal

    def asins(self) -> frozenset[str]:
        """The ASINs of every stored deal."""
        with self._lock:
            return frozenset(self._deals)

    def get(self, asin: str) -> AcceptedDeal | None:
        """The stored deal of *asin*, or ``None``."""
        with self._lock:
            return self._deals.get(asin)

    def deals(self) -> list[AcceptedDeal]:
        """Every stored deal, sorted by ASIN."""
        with self._lock:
            return [self._deals[asin] for asin in sorted(self._deals)]

    def __len__(self) -> int:
        return len(self._deals)

    def close(self) -> None:
        """Nothing to release."""


_UPSERT = (
    "INSERT INTO deals (asin, title, last_update, domain, price, sales_rank, profit, roi,"
    " deal_json, product_json, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (asin) DO UPDATE SET title = excluded.title,"
    " last_update = excluded.last_update, domain = excluded.domain, price = excluded.price,"
    " sales_rank = excluded.sales_rank, profit = excluded.profit, roi = excluded.roi,"
    " deal_json = excluded.deal_json, product_json = excluded.product_json,"
    " updated_at = excluded.updated_at"
    " WHERE excluded.last_update >= deals.last_update"
)
_SELECT = (
    "SELECT asin, title, last_update, domain, price, sales_rank, profit, roi, deal_json,"
    " product_json FROM deals"
)


def _columns(d: AcceptedDeal) -> tuple[Any, ...]:
    """The scalar columns of *d*'s row in ``deals``, in order (the JSON columns follow)."""
    return (d.asin, d.title, d.last_update, d.domain, d.price, d.sales_rank, d.profit, d.roi)


def upsert_rows(conn: sqlite3.Connection, deals: Sequence[AcceptedDeal]) -> None:
    """Upsert *deals* into the ``deals`` table inside the caller's transaction."""
    now = utc_now_text()
    conn.executemany(
        _UPSERT,
        [(*_columns(d), d.deal_json(), d.product_json(), now) for d in _latest(deals).values()],
    )


def _row_to_deal(row: tuple[Any, ...]) -> AcceptedDeal:
    asin, title, last_update, domain, price, sales_rank, profit, roi, deal_json, product_json = row
    return AcceptedDeal(
        asin=asin,
        title=title,
        last_update=last_update,
        domain=domain,
        price=price,
        sales_rank=sales_rank,
        profit=profit,
        roi=roi,
        deal=json.loads(deal_json),
        product=None if product_json is None else json.loads(product_json),
    )


class SQLiteDealSink(SQLiteFile):
    """Accepted deals in the table ``deals`` of an SQLite file, one row per ASIN.

    The table is readable with any SQLite tool (``sqlite3 ingest.db 'SELECT
    asin, title, price, profit FROM deals'``); its columns are the fields of
    :class:`AcceptedDeal`, the raw JSON in ``deal_json`` and ``product_json``,
    and ``updated_at`` (UTC, ISO 8601). The file may also hold a
    :class:`SQLiteWatermarkStore` and a :class:`SQLiteLease`; several
    processes may use it at once (WAL mode, ``BEGIN IMMEDIATE`` writes).

    >>> import pathlib, tempfile
    >>> from tokenbudget_keepa import AcceptedDeal, SQLiteDealSink
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ingest.db"
    >>> with SQLiteDealSink(path) as sink:
    ...     deal = AcceptedDeal(asin="B000000001", title="Kettle", last_update=7_000_000,
    ...                         domain=1, price=1999)
    ...     sink.upsert([deal]); sink.upsert([deal])
    ...     sink.asins()
    frozenset({'B000000001'})

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

    def upsert(self, deals: Sequence[AcceptedDeal]) -> None:
        """Store *deals* in one transaction; a row is replaced only by one as new or newer."""
        deals = list(deals)
        _latest(deals)  # type-checks them before the transaction
        with self._db.write("cannot store deals") as conn:
            upsert_rows(conn, deals)

    def asins(self) -> frozenset[str]:
        """The ASINs of every stored deal."""
        with self._db.read("cannot read deals") as conn:
            return frozenset(str(row[0]) for row in conn.execute("SELECT asin FROM deals"))

    def get(self, asin: str) -> AcceptedDeal | None:
        """The stored deal of *asin*, or ``None``."""
        with self._db.read("cannot read deals") as conn:
            row = conn.execute(_SELECT + " WHERE asin = ?", (asin,)).fetchone()
        return None if row is None else _row_to_deal(row)

    def deals(self) -> list[AcceptedDeal]:
        """Every stored deal, sorted by ASIN."""
        with self._db.read("cannot read deals") as conn:
            rows = conn.execute(_SELECT + " ORDER BY asin").fetchall()
        return [_row_to_deal(row) for row in rows]

    def __len__(self) -> int:
        with self._db.read("cannot read deals") as conn:
            return int(conn.execute("SELECT count(*) FROM deals").fetchone()[0])
