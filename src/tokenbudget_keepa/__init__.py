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

from ._client.clients import AsyncKeepaClient, KeepaClient
from ._client.errors import (
    KeepaAuthError,
    KeepaError,
    KeepaProtocolError,
    KeepaRequestError,
    KeepaServerError,
    KeepaTokenError,
    KeepaTransportError,
)
from ._client.models.finder import FinderQuery
from ._client.models.history import History, HistoryPoint
from ._client.models.keepa_time import (
    KEEPA_EPOCH,
    datetime_to_keepa_minutes,
    keepa_minutes_to_datetime,
)
from ._client.models.offers import BuyBoxHolder, Offer, OfferCondition, UsedBuyBoxHolder
from ._client.models.price_type import PriceType, PriceUnit
from ._client.models.products import Deal, DealPage, Product, TokenStatus
from ._client.models.query import DealQuery
from ._client.models.results import Category, FinderPage, LightningDeal, Seller
from ._client.models.stats import Extreme, ProductStats
from ._ingestor.filters import (
    DEFAULT_STATS_DAYS,
    Categories,
    Filter,
    FunctionFilter,
    MinDrop,
    OfferCount,
    PriceRange,
    ProfitEstimate,
    ProfitModel,
    SalesRank,
    TitleTerms,
    accepted_deal,
    check_all,
    default_filters,
    enrich_for,
    filters_from_mapping,
    order_filters,
    peek_all,
)
from ._ingestor.ingestor import SmartIngestor
from ._ingestor.lease import HolderProcess, Lease, LeaseHeld, MemoryLease, SQLiteLease
from ._ingestor.report import IngestEvent, IngestReport
from ._ingestor.sinks import AcceptedDeal, DealSink, MemoryDealSink, SQLiteDealSink
from ._ingestor.sqlite_db import SCHEMA_VERSION, migrate_sqlite
from ._ingestor.stores import MemoryWatermarkStore, SQLiteWatermarkStore
from ._ingestor.watermark import (
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
    "DEFAULT_STATS_DAYS",
    "KEEPA_EPOCH",
    "SCHEMA_VERSION",
    "AcceptedDeal",
    "AsyncKeepaClient",
    "BuyBoxHolder",
    "Categories",
    "Category",
    "Deal",
    "DealPage",
    "DealQuery",
    "DealSink",
    "Extreme",
    "Filter",
    "FinderPage",
    "FinderQuery",
    "FunctionFilter",
    "History",
    "HistoryPoint",
    "HolderProcess",
    "IngestEvent",
    "IngestReport",
    "KeepaAuthError",
    "KeepaClient",
    "KeepaError",
    "KeepaProtocolError",
    "KeepaRequestError",
    "KeepaServerError",
    "KeepaTokenError",
    "KeepaTransportError",
    "Lease",
    "LeaseHeld",
    "LightningDeal",
    "MemoryDealSink",
    "MemoryLease",
    "MemoryWatermarkStore",
    "MinDrop",
    "Offer",
    "OfferCondition",
    "OfferCount",
    "PriceRange",
    "PriceType",
    "PriceUnit",
    "Product",
    "ProductStats",
    "ProfitEstimate",
    "ProfitModel",
    "SQLiteDealSink",
    "SQLiteLease",
    "SQLiteWatermarkStore",
    "SalesRank",
    "SchemaMismatch",
    "Seller",
    "SmartIngestor",
    "StoreError",
    "TitleTerms",
    "TokenStatus",
    "UsedBuyBoxHolder",
    "Watermark",
    "WatermarkStore",
    "accepted_deal",
    "check_all",
    "clamp_watermark",
    "datetime_to_keepa_minutes",
    "default_filters",
    "enrich_for",
    "filters_from_mapping",
    "first_watermark",
    "keepa_minutes_to_datetime",
    "migrate_sqlite",
    "order_filters",
    "peek_all",
]
