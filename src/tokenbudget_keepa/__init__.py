"""tokenbudget_keepa: the Keepa API on top of tokenbudget.

A Keepa client that keeps the account's token budget for you (it never needs
an HTTP 429), typed results, and an emulator of the API to test against.

- Keepa time: :func:`keepa_minutes_to_datetime` and
  :func:`datetime_to_keepa_minutes` (Keepa minutes count from 2011-01-01T00:00Z).
- :mod:`tokenbudget_keepa.testing`: :class:`~tokenbudget_keepa.testing.KeepaEmulator`,
  a local Keepa API server with Keepa's token accounting, seeded data and
  fault injection, to test your code (and ours) without the real API.
"""

from __future__ import annotations

from ._errors import (
    KeepaAuthError,
    KeepaError,
    KeepaProtocolError,
    KeepaRequestError,
    KeepaServerError,
    KeepaTokenError,
    KeepaTransportError,
)
from ._lease import HolderProcess, Lease, LeaseHeld, MemoryLease, SQLiteLease
from ._model import Deal, DealPage, DealQuery, PriceType, Product, TokenStatus
from ._sinks import AcceptedDeal, DealSink, MemoryDealSink, SQLiteDealSink
from ._sqlite_db import SCHEMA_VERSION, migrate_sqlite
from ._stores import MemoryWatermarkStore, SQLiteWatermarkStore
from ._time import KEEPA_EPOCH, datetime_to_keepa_minutes, keepa_minutes_to_datetime
from ._watermark import (
    DEFAULT_FUTURE_TOLERANCE_MINUTES,
    DEFAULT_LOOKBACK_MINUTES,
    SchemaMismatch,
    StoreError,
    Watermark,
    WatermarkStore,
    clamp_watermark,
    first_watermark,
)


__all__ = [
    "DEFAULT_FUTURE_TOLERANCE_MINUTES",
    "DEFAULT_LOOKBACK_MINUTES",
    "KEEPA_EPOCH",
    "SCHEMA_VERSION",
    "AcceptedDeal",
    "Deal",
    "DealPage",
    "DealQuery",
    "DealSink",
    "HolderProcess",
    "KeepaAuthError",
    "KeepaError",
    "KeepaProtocolError",
    "KeepaRequestError",
    "KeepaServerError",
    "KeepaTokenError",
    "KeepaTransportError",
    "Lease",
    "LeaseHeld",
    "MemoryDealSink",
    "MemoryLease",
    "MemoryWatermarkStore",
    "PriceType",
    "Product",
    "SQLiteDealSink",
    "SQLiteLease",
    "SQLiteWatermarkStore",
    "SchemaMismatch",
    "StoreError",
    "TokenStatus",
    "Watermark",
    "WatermarkStore",
    "clamp_watermark",
    "datetime_to_keepa_minutes",
    "first_watermark",
    "keepa_minutes_to_datetime",
    "migrate_sqlite",
]
