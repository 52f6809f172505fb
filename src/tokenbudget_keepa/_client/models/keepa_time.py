"""Keepa time: whole minutes counted from 2011-01-01T00:00Z.

Keepa stamps every date it returns (a deal's ``lastUpdate`` and ``creationDate``,
a product's ``lastUpdate``, the times in a product's ``csv`` histories) in *Keepa
minutes*: the minutes since :data:`KEEPA_EPOCH`. In Unix terms,
``unix_ms = (keepa_minutes + 21564000) * 60000``.
"""

from __future__ import annotations

import datetime as dt


__all__ = ["KEEPA_EPOCH", "datetime_to_keepa_minutes", "keepa_minutes_to_datetime"]

#: The instant Keepa minutes count from: 2011-01-01T00:00Z.
KEEPA_EPOCH = dt.datetime(2011, 1, 1, tzinfo=dt.UTC)

#: Keepa minute 0 in Unix minutes (the minutes from 1970-01-01 to 2011-01-01).
KEEPA_EPOCH_UNIX_MINUTES = 21_564_000

_MINUTE = dt.timedelta(minutes=1)


def keepa_minutes_to_datetime(minutes: int) -> dt.datetime:
    """Return the aware UTC datetime of a Keepa minute.

    >>> from tokenbudget_keepa import keepa_minutes_to_datetime
    >>> keepa_minutes_to_datetime(0)
    datetime.datetime(2011, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> keepa_minutes_to_datetime(7_889_760).isoformat()
    '2026-01-01T00:00:00+00:00'

    Args:
        minutes: Minutes since 2011-01-01T00:00Z (negative values lie before it).

    Raises:
        TypeError: *minutes* is not an integer.

    .. versionadded:: 0.1.0
    """
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise TypeError(f"minutes must be an int, got {minutes!r}")
    return KEEPA_EPOCH + minutes * _MINUTE


def datetime_to_keepa_minutes(moment: dt.datetime) -> int:
    """Return the Keepa minute that contains an aware datetime (rounding down).

    >>> import datetime
    >>> from tokenbudget_keepa import datetime_to_keepa_minutes
    >>> datetime_to_keepa_minutes(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    7889760

    Args:
        moment: An aware datetime, in any time zone.

    Raises:
        TypeError: *moment* is not a datetime.
        ValueError: *moment* is naive (it has no time zone, so it names no instant).

    .. versionadded:: 0.1.0
    """
    if not isinstance(moment, dt.datetime):
        raise TypeError(f"moment must be a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment must be an aware datetime, got the naive {moment!r}")
    return (moment - KEEPA_EPOCH) // _MINUTE
