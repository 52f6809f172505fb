"""The watermark: how far an ingestor has got, and the protocol of the stores that keep it.

A *watermark* is a position in the deal stream, ``(minute, asin)``: a deal's
``lastUpdate`` in Keepa minutes, with its ASIN as the tie-breaker, because many
deals share one minute. It marks the end of a **contiguous prefix** of the
stream: every deal at or before it (``(deal.last_update, deal.asin) <=
(minute, asin)``) has a *final outcome* (stored in the sink, or rejected by a
filter with a reason), and nothing after it is promised. An ingestor therefore
advances it only past the oldest deals of a batch that all have outcomes, never
past a deal that was fetched but not yet stored or rejected (a 429, a failed
upsert, a capped page set or an aborted run leave it where the last outcome
was). Rejections are outcomes too, so a batch of rejected deals moves it as
well. Stores advance it by **compare-and-set, only forward**
(:meth:`WatermarkStore.advance` stores a watermark only if it is greater than
the stored one), so a stale or concurrent writer can never move it back and a
replay after a crash only redoes work (sinks upsert idempotently by ASIN).

A first run has no watermark: it starts a look-back before now
(:func:`first_watermark`, :data:`DEFAULT_LOOKBACK_MINUTES` = one hour by
default). A watermark *in the future* (a wrong clock, or minutes converted
with the wrong epoch) would make every deal look old and stall the ingestor
silently. :func:`clamp_watermark` detects it and applies one documented rule:
a watermark more than *tolerance_minutes* (default
:data:`DEFAULT_FUTURE_TOLERANCE_MINUTES`) after *now* is replaced by the
first-run watermark ``Watermark(now - lookback, "")``; deals in that window
are processed again (harmless: upserts are idempotent), none is skipped for
ever. Because a store never moves a watermark backwards, an ingestor applies a
clamp with :meth:`WatermarkStore.reset` followed by
:meth:`WatermarkStore.advance`, while it holds the job's lease.

The empty ASIN ``""`` sorts before every real ASIN, so ``Watermark(m, "")``
means "everything before minute *m*, nothing of minute *m*".

Errors of the stores, sinks and leases (database locked, schema mismatch) are
in the :class:`tokenbudget.TokenBudgetError` tree:

.. code-block:: text

    TokenBudgetError
    └── StoreError
        └── SchemaMismatch
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from tokenbudget.exceptions import TokenBudgetError


__all__ = [
    "DEFAULT_FUTURE_TOLERANCE_MINUTES",
    "DEFAULT_LOOKBACK_MINUTES",
    "SchemaMismatch",
    "StoreError",
    "Watermark",
    "WatermarkStore",
    "clamp_watermark",
    "first_watermark",
]

DEFAULT_LOOKBACK_MINUTES = 60
"""How far back a first run starts, in minutes (one hour).

.. versionadded:: 0.1.0
"""

DEFAULT_FUTURE_TOLERANCE_MINUTES = 5
"""How far past *now* a watermark may lie before :func:`clamp_watermark` treats it as an error.

A few minutes absorb the skew between the server's clock and ours.

.. versionadded:: 0.1.0
"""


class StoreError(TokenBudgetError):
    """A watermark store, deal sink or lease could not read or write its database.

    Attributes:
        transient: ``True`` when trying again later may help (the database was
            locked or busy, a connection dropped); ``False`` when it cannot (a
            schema mismatch, a file that is not a database).

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), str(self), self.transient))


class SchemaMismatch(StoreError):  # noqa: N818 -- reads as the condition it reports
    """The database's schema is not the one this version of tokenbudget_keepa uses.

    Raised when a store, sink or lease is opened (never later): on a database
    whose schema version is unknown or newer than this library's, or that has
    tables of the same names that tokenbudget_keepa did not create. Nothing is
    ever dropped or recreated to make it fit.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


def _rebuild_error(cls: type[StoreError], message: str, transient: bool) -> StoreError:
    if cls is SchemaMismatch or issubclass(cls, SchemaMismatch):
        return cls(message)
    return cls(message, transient=transient)


def _check_minute(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Watermark.{attribute.name} must be an int (Keepa minutes), got {value!r}")
    if value < 0:
        raise ValueError(f"Watermark.{attribute.name} must be >= 0 (Keepa minutes), got {value!r}")


def _check_asin(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Watermark.{attribute.name} must be a str, got {value!r}")
    if value != value.strip() or any(not c.isprintable() for c in value):
        raise ValueError(
            f"Watermark.{attribute.name} must not contain spaces at its ends or "
            f"control characters, got {value!r}"
        )


@attrs.frozen(order=True)
class Watermark:
    """A position in the deal stream: a deal's ``lastUpdate`` minute, then its ASIN.

    Watermarks order by ``(minute, asin)``; ``asin=""`` sorts before every
    ASIN of its minute.

    >>> from tokenbudget_keepa import Watermark
    >>> Watermark(7_000_000, "B000000002") > Watermark(7_000_000, "B000000001")
    True
    >>> Watermark(7_000_000, "B000000001").covers(7_000_000, "B000000002")
    False
    >>> Watermark.from_mapping({"minute": 7_000_000, "asin": "B0"}).as_dict()
    {'minute': 7000000, 'asin': 'B0'}

    Args:
        minute: Keepa minutes (minutes since 2011-01-01T00:00Z), an int >= 0.
        asin: The ASIN of the last deal of that minute with an outcome, or
            ``""`` for "none of that minute".

    .. versionadded:: 0.1.0
    """

    minute: int = attrs.field(validator=_check_minute)
    asin: str = attrs.field(validator=_check_asin)

    def covers(self, last_update: int, asin: str) -> bool:
        """Whether the deal at ``(last_update, asin)`` is at or before this watermark."""
        return (last_update, asin) <= (self.minute, self.asin)

    def as_dict(self) -> dict[str, Any]:
        """``{"minute": M, "asin": A}``, the JSON form the command prints."""
        return {"minute": self.minute, "asin": self.asin}

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Watermark:
        """The inverse of :meth:`as_dict`.

        Raises:
            ValueError: When a key is missing (naming it).
            TypeError: When a value has the wrong type.
        """
        for name in ("minute", "asin"):
            if name not in mapping:
                raise ValueError(f"a watermark needs the key {name!r}, got {dict(mapping)!r}")
        return cls(mapping["minute"], mapping["asin"])


def first_watermark(
    now_minute: int, *, lookback_minutes: int = DEFAULT_LOOKBACK_MINUTES
) -> Watermark:
    """The watermark of a first run: *lookback_minutes* before *now_minute*, no ASIN of it.

    >>> from tokenbudget_keepa import first_watermark
    >>> first_watermark(7_000_000)
    Watermark(minute=6999940, asin='')

    Raises:
        ValueError: When *lookback_minutes* is negative.

    .. versionadded:: 0.1.0
    """
    if isinstance(lookback_minutes, bool) or not isinstance(lookback_minutes, int):
        raise TypeError(f"lookback_minutes must be an int, got {lookback_minutes!r}")
    if lookback_minutes < 0:
        raise ValueError(f"lookback_minutes must be >= 0, got {lookback_minutes!r}")
    return Watermark(max(0, now_minute - lookback_minutes), "")


def clamp_watermark(
    watermark: Watermark,
    now_minute: int,
    *,
    lookback_minutes: int = DEFAULT_LOOKBACK_MINUTES,
    tolerance_minutes: int = DEFAULT_FUTURE_TOLERANCE_MINUTES,
) -> tuple[Watermark, bool]:
    """Detect a watermark in the future and clamp it; returns ``(watermark, clamped)``.

    The rule: a watermark whose minute is more than *tolerance_minutes* after
    *now_minute* cannot be right (no deal has been updated in the future); it
    is replaced by :func:`first_watermark` ``(now_minute, lookback_minutes)``
    and ``clamped`` is ``True``. Any other watermark is returned unchanged.

    >>> from tokenbudget_keepa import Watermark, clamp_watermark
    >>> clamp_watermark(Watermark(7_000_003, "B0"), 7_000_000)
    (Watermark(minute=7000003, asin='B0'), False)
    >>> clamp_watermark(Watermark(9_000_000, "B0"), 7_000_000)
    (Watermark(minute=6999940, asin=''), True)

    Raises:
        ValueError: When *lookback_minutes* or *tolerance_minutes* is negative.

    .. versionadded:: 0.1.0
    """
    if isinstance(tolerance_minutes, bool) or not isinstance(tolerance_minutes, int):
        raise TypeError(f"tolerance_minutes must be an int, got {tolerance_minutes!r}")
    if tolerance_minutes < 0:
        raise ValueError(f"tolerance_minutes must be >= 0, got {tolerance_minutes!r}")
    fallback = first_watermark(now_minute, lookback_minutes=lookback_minutes)
    if watermark.minute > now_minute + tolerance_minutes:
        return fallback, True
    return watermark, False


@runtime_checkable
class WatermarkStore(Protocol):
    """Where an ingestor keeps its watermark, one per job key.

    Implementations: :class:`MemoryWatermarkStore`,
    :class:`SQLiteWatermarkStore`, and the PostgreSQL and Redis stores of
    ``tokenbudget_keepa.postgres`` and ``tokenbudget_keepa.redis``.
    Errors of the underlying database surface as :exc:`StoreError`.

    A store that keeps a sink's deals in the same database may also offer
    ``commit(key, deals, watermark) -> bool`` (upsert and advance in one
    transaction) and ``covers(sink) -> bool``.

    .. versionadded:: 0.1.0
    """

    def load(self, key: str) -> Watermark | None:
        """The stored watermark of *key*, or ``None`` if there is none."""
        ...

    def advance(self, key: str, watermark: Watermark) -> bool:
        """Compare-and-set, only forward: store *watermark* iff it is greater than the stored one.

        Returns ``True`` if the watermark moved (or none was stored), ``False``
        if the stored one is equal or greater (it is left alone).
        """
        ...

    def reset(self, key: str) -> None:
        """Forget the watermark of *key* (the next run is a first run)."""
        ...

    def keys(self) -> list[str]:
        """Every key with a stored watermark, sorted."""
        ...

    def close(self) -> None:
        """Release the store's connections (a closed store may reopen them on use)."""
        ...
