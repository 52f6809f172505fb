"""tokenbudget_keepa: the Keepa API on top of tokenbudget.

A Keepa client that keeps the account's token budget for you (it never needs
an HTTP 429), typed results, and an emulator of the API to test against.
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
    "first_watermark",
    "migrate_sqlite",
]
