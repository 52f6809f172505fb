"""Readers of Keepa's JSON that never raise: a value of the wrong type reads as "no data".

Keepa marks "no data" differently field by field (``-1``, ``-2``, ``0``, ``null``, a
missing key); the typed views decide per field which marker applies and use these
readers to get at the numbers, so that a sentinel never reaches a user as a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .price_type import PriceType


def as_int(value: object) -> int | None:
    """An int from JSON (an integral float too), else None; bools are not ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def non_negative(value: object) -> int | None:
    """A Keepa number that is not "no data" (``-1``, ``-2`` or below), else None."""
    v = as_int(value)
    return v if v is not None and v >= 0 else None


def positive(value: object) -> int | None:
    """A Keepa number where ``0`` and below mean "no data" (e.g. ``lightningStart``)."""
    v = as_int(value)
    return v if v is not None and v > 0 else None


def as_bool(value: object) -> bool | None:
    """A JSON boolean, else None."""
    return value if isinstance(value, bool) else None


def as_str(value: object) -> str | None:
    """A non-empty JSON string, else None."""
    return value if isinstance(value, str) and value else None


def item(values: object, i: int) -> object:
    """``values[i]`` of a JSON list (or a tuple), else None (past the end, or not a list)."""
    if isinstance(values, (list, tuple)) and 0 <= i < len(values):
        return values[i]
    return None


def ints(values: object) -> tuple[int, ...]:
    """A tuple of ints from a JSON list; entries that are not ints read as ``-1``."""
    if not isinstance(values, list):
        return ()
    out = []
    for v in values:
        i = as_int(v)
        out.append(-1 if i is None else i)
    return tuple(out)


def int_rows(values: object) -> tuple[tuple[int, ...], ...]:
    """A tuple of int tuples from a JSON list of lists (see :func:`ints`)."""
    if not isinstance(values, list):
        return ()
    return tuple(ints(row) for row in values)


def mapping(value: object) -> Mapping[str, Any]:
    """A JSON object, else an empty mapping."""
    return value if isinstance(value, Mapping) else {}


def price_index(price_type: object) -> int:
    """The array index of a price type: a :class:`PriceType`, its int, or its name.

    Raises:
        TypeError: *price_type* is neither an int nor a str (a bool is neither).
        ValueError: A negative int, or a name that is not a :class:`PriceType`.
    """
    if isinstance(price_type, str):
        try:
            return int(PriceType[price_type.strip().upper()])
        except KeyError:
            names = ", ".join(p.name for p in PriceType)
            raise ValueError(
                f"price_type must be a PriceType name ({names}), got {price_type!r}"
            ) from None
    if isinstance(price_type, bool) or not isinstance(price_type, int):
        raise TypeError(f"price_type must be a PriceType, an int or a name, got {price_type!r}")
    if price_type < 0:
        raise ValueError(f"price_type must be >= 0, got {price_type!r}")
    return int(price_type)


def type_value(index: int, value: object) -> int | None:
    """A per-type value (``current``, ``avg``, …): ``-1``/``-2`` (any negative) mean no data.

    ``EXTRA_INFO_UPDATES`` is the exception: its sign is data (negative: Keepa fetched
    fewer offers than there were), so every int of it is kept.
    """
    if index == PriceType.EXTRA_INFO_UPDATES:
        return as_int(value)
    return non_negative(value)


def per_type(values: object) -> dict[PriceType, int]:
    """The known values of a per-type JSON array, by price type (no-data entries left out).

    Entries past the 36 known types (a future Keepa type) are left out too.
    """
    out: dict[PriceType, int] = {}
    if not isinstance(values, (list, tuple)):
        return out
    for i, raw in enumerate(values[: len(PriceType)]):
        value = type_value(i, raw)
        if value is not None:
            out[PriceType(i)] = value
    return out
