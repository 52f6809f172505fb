"""Keepa's histories as typed time series.

Keepa sends a history as one flat JSON array: ``[time, value, time, value, …]``
(pairs), or ``[time, price, shipping, …]`` (triplets) for the price types that
include shipping (:attr:`PriceType.with_shipping`) and for an offer's
``offerCSV``. Times are Keepa minutes, oldest first; a value of ``-1`` means
"no offer at that time" (out of stock, no rank), ``-2`` "unknown". A
:class:`History` reads such an array into points (:class:`HistoryPoint`) whose
missing values are ``None``.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterator

import attrs

from .json_read import as_int, non_negative
from .keepa_time import datetime_to_keepa_minutes, keepa_minutes_to_datetime
from .price_type import PriceType


__all__ = ["History", "HistoryPoint"]


@attrs.frozen
class HistoryPoint:
    """One point of a Keepa history: from :attr:`minute` on, the value was :attr:`value`.

    Attributes:
        minute: When the value took effect (Keepa minutes; :attr:`time` as a datetime).
        value: The value in the history's unit (cents, rank, count, rating times 10, …);
            for a triplet, the price without shipping. ``None``: no data (Keepa's
            ``-1``, e.g. out of stock, or ``-2``, unknown).
        shipping: For a triplet, the shipping cost (cents; ``0`` is free shipping).
            ``None``: a pair, or no shipping cost known (``-1``: not shippable or
            unspecified, ``-2``: unknown).
        with_shipping: Whether the point is a triplet (time, price, shipping).

    .. versionadded:: 0.1.0
    """

    minute: int
    value: int | None
    shipping: int | None = None
    with_shipping: bool = attrs.field(default=False, repr=False)

    @property
    def time(self) -> dt.datetime:
        """:attr:`minute` as an aware UTC datetime."""
        return keepa_minutes_to_datetime(self.minute)

    @property
    def total(self) -> int | None:
        """The value with shipping (a triplet's price plus shipping), ``None`` if either is missing.

        For a pair, the value itself.
        """
        if self.value is None:
            return None
        if not self.with_shipping:
            return self.value
        return None if self.shipping is None else self.value + self.shipping


@attrs.frozen
class History:
    """A Keepa history: its points, oldest first (a sequence of :class:`HistoryPoint`).

    >>> from tokenbudget_keepa import History
    >>> used = History.from_csv([7_800_000, 1999, 7_800_060, -1, 7_800_120, 1750])
    >>> [(p.minute, p.value) for p in used]
    [(7800000, 1999), (7800060, None), (7800120, 1750)]
    >>> used.at(7_800_100).value is None, used.latest.value
    (True, 1750)
    >>> fbm = History.from_csv([7_800_000, 1999, 399], with_shipping=True)
    >>> fbm.latest.total
    2398

    Attributes:
        points: The points, oldest first.
        with_shipping: Whether the points are triplets (time, price, shipping).

    .. versionadded:: 0.1.0
    """

    points: tuple[HistoryPoint, ...] = ()
    with_shipping: bool = False

    @classmethod
    def from_csv(cls, values: object, *, with_shipping: bool = False) -> History:
        """Read Keepa's flat array (pairs, or triplets *with_shipping*).

        Something that is not a list reads as an empty history; an incomplete last
        group and groups whose time is not an int are skipped (never raising).
        """
        return cls(_points(values, with_shipping=with_shipping, signed=False), with_shipping)

    @classmethod
    def of_type(cls, price_type: PriceType, values: object) -> History:
        """Read the ``csv`` history of *price_type* (triplets where the type has shipping).

        ``EXTRA_INFO_UPDATES`` keeps its negative values: their sign is data (more
        offers existed than Keepa fetched), not a marker.
        """
        signed = price_type is PriceType.EXTRA_INFO_UPDATES
        with_shipping = price_type.with_shipping
        return cls(_points(values, with_shipping=with_shipping, signed=signed), with_shipping)

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[HistoryPoint]:
        return iter(self.points)

    def __getitem__(self, index: int) -> HistoryPoint:
        return self.points[index]

    def __bool__(self) -> bool:
        return bool(self.points)

    @property
    def latest(self) -> HistoryPoint | None:
        """The newest point, ``None`` for an empty history."""
        return self.points[-1] if self.points else None

    def at(self, when: int | dt.datetime) -> HistoryPoint | None:
        """The point in effect at *when* (a Keepa minute or an aware datetime).

        That is the newest point at or before *when*; ``None`` before the first point.
        """
        minute = datetime_to_keepa_minutes(when) if isinstance(when, dt.datetime) else when
        if isinstance(minute, bool) or not isinstance(minute, int):
            raise TypeError(f"when must be a Keepa minute (int) or a datetime, got {when!r}")
        i = bisect.bisect_right([p.minute for p in self.points], minute)
        return self.points[i - 1] if i else None


def _points(values: object, *, with_shipping: bool, signed: bool) -> tuple[HistoryPoint, ...]:
    if not isinstance(values, list):
        return ()
    read = as_int if signed else non_negative
    step = 3 if with_shipping else 2
    points = []
    for i in range(0, len(values) - step + 1, step):
        minute = as_int(values[i])
        if minute is None:
            continue
        shipping = non_negative(values[i + 2]) if with_shipping else None
        points.append(HistoryPoint(minute, read(values[i + 1]), shipping, with_shipping))
    return tuple(points)
