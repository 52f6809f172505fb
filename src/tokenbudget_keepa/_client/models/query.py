"""Keepa's deal selection (the ``selection`` of ``/deal``), typed field by field.

:class:`DealQuery` types every field of Keepa's deal request as its
documentation and the official clients' ``DealRequest`` name them, and passes
any other field through unchanged, so that a selection exported from Keepa's
deal finder today, or one using a field Keepa adds tomorrow, is sent as Keepa
would receive it. Its rules, the ones :meth:`DealQuery.from_mapping` applies:

- ``null`` (``None``) means absent, for every field: it is left out of what is sent;
- a number written as a string (``"domainId": "1"``, ``"dateRange": "3"``, in a
  list too) is read as that number, as Keepa reads it;
- a range's upper bound of ``-1`` is open (Keepa reads it as the largest 32-bit
  integer: ``[5000, -1]`` is "5000 and above"); otherwise ``min <= max``;
- a field it does not type is kept and sent unchanged (any JSON value), and logged
  once at ``DEBUG`` under the ``tokenbudget_keepa`` logger.

This module needs no HTTP library.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs


__all__ = ["DEAL_DOMAINS", "DEAL_PRICE_TYPES", "DealQuery"]

log = logging.getLogger("tokenbudget_keepa")

#: The marketplaces Keepa serves deals for (no 7, China; no 12, Brazil).
DEAL_DOMAINS: Final = frozenset({1, 2, 3, 4, 5, 6, 8, 9, 10, 11})
#: The price types a deal can be on: Keepa's deal documentation names 0-3, 5-10,
#: 18-22, 32 and 33; the official Java client's ``CsvType.isDealRelevant`` adds 23-27.
DEAL_PRICE_TYPES: Final = frozenset(
    {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 32, 33}
)
#: ``dateRange``: 0 day, 1 week, 2 month, 3 ninety days (documented); 4 is written by
#: Keepa's own deal finder in its exports.
_DATE_RANGES: Final = range(5)
_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)
#: A whole number written as a string, as Keepa accepts it (``"1"``, ``" -3 "``).
_INT_TEXT = re.compile(r"\s*[-+]?\d{1,19}\s*")

_logged_lock = threading.Lock()
_logged_unknown: set[str] = set()


def _log_unknown(names: Iterable[str]) -> None:
    """Log each unknown field name once per process, at DEBUG."""
    with _logged_lock:
        fresh = [n for n in names if n not in _logged_unknown]
        _logged_unknown.update(fresh)
    for name in fresh:
        log.debug("DealQuery: the selection field %r is not typed; it is sent unchanged", name)


# -- normalising converters (never raise: the validators name what is wrong) ------------------


def _number(value: object) -> object:
    """A whole number written as a string becomes that int; anything else is left as it is."""
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    return value


def _numbers(value: object) -> object:
    """A list (or tuple) becomes a tuple, its numbers-as-strings ints; anything else unchanged."""
    if isinstance(value, (list, tuple)):
        return tuple(_number(v) for v in value)
    return value


def _price_types(value: object) -> object:
    value = _number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    return _numbers(value)


def _strings(value: object) -> object:
    if isinstance(value, list):
        return tuple(value)
    return value


# -- validators ------------------------------------------------------------------------------


def _check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (or one written as a string), got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"
        raise ValueError(f"{name} must lie in {bounds}, got {value!r}")
    return int(value)


def _opt_int(low: int | None = None, high: int | None = None) -> Any:
    def check(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            _check_int(attr.name, value, low, high)

    return check


def _one_of(allowed: frozenset[int] | range, what: str) -> Any:
    def check(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        _check_int(attr.name, value)
        if value not in allowed:
            raise ValueError(f"{attr.name} must be {what}, got {value!r}")

    return check


def _opt_bool(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{attr.name} must be a bool (true or false), got {value!r}")


def _check_range(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or len(value) != 2:
        raise TypeError(f"{attr.name} must be a [min, max] pair of ints, got {value!r}")
    low = _check_int(f"{attr.name}[0]", value[0], *_INT32)
    high = _check_int(f"{attr.name}[1]", value[1], *_INT32)
    if high != -1 and low > high:
        raise ValueError(f"{attr.name} must have min <= max (or max -1: open), got {[low, high]!r}")


def _int_list(low: int, high: int) -> Any:
    def check(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if not isinstance(value, tuple):
            raise TypeError(f"{attr.name} must be a list of ints, got {value!r}")
        for i, v in enumerate(value):
            _check_int(f"{attr.name}[{i}]", v, low, high)

    return check


def _check_price_types(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple):
        raise TypeError(f"price_types must be a list of one int, got {value!r}")
    if len(value) != 1:
        raise ValueError(f"price_types must hold exactly one price type, got {list(value)!r}")
    _check_int("price_types[0]", value[0])
    if value[0] not in DEAL_PRICE_TYPES:
        raise ValueError(
            f"price_types[0] must be a price type deals are found for "
            f"({_ranges(DEAL_PRICE_TYPES)}), got {value[0]!r}"
        )


def _check_sort_type(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    _check_int("sort_type", value, -4, 4)
    if value == 0:
        raise ValueError("sort_type must be one of ±1..4, got 0")


def _check_text(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attr.name} must be a str, got {value!r}")


def _check_strings(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple):
        raise TypeError(f"{attr.name} must be a list of strs, got {value!r}")
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise TypeError(f"{attr.name}[{i}] must be a str, got {v!r}")


def _check_json(name: str, value: object, depth: int = 0) -> None:
    """*value* is a JSON value (as Keepa would receive it), else a TypeError naming *name*."""
    if depth > 32:
        raise TypeError(f"{name} is nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{name} must be a finite number, got {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(f"{name}[{i}]", item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{name} must have str keys, got {key!r}")
            _check_json(f"{name}[{key!r}]", item, depth + 1)
        return
    raise TypeError(f"{name} must be a JSON value, got {value!r}")


def _check_extra(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"extra must be a mapping, got {value!r}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"extra keys must be str, got {key!r}")
        _check_json(f"extra[{key!r}]", item)


def _ranges(values: frozenset[int]) -> str:
    """``0-3, 5-10, …``: *values* as runs."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _range_field() -> Any:
    return attrs.field(default=None, kw_only=True, converter=_numbers, validator=_check_range)


def _flag() -> Any:
    return attrs.field(default=None, kw_only=True, validator=_opt_bool)


def _attribute() -> Any:
    return attrs.field(default=None, kw_only=True, converter=_strings, validator=_check_strings)


@attrs.frozen(repr=False)
class DealQuery:
    """A deal selection for ``/deal``: every field of Keepa's deal request, typed.

    The field names are Keepa's in snake case; :meth:`from_mapping` takes Keepa's
    camelCase names (a selection exported from Keepa's deal finder, or copied
    from its documentation, works as it is) and :meth:`to_selection` writes them
    back. ``None`` leaves a field out (Keepa's default applies). A number
    written as a string is read as the number; a range's upper bound of ``-1``
    is open. Fields this class does not type are kept in :attr:`extra` and sent
    unchanged. The reference page lists each field with Keepa's meaning.

    >>> from tokenbudget_keepa import DealQuery, PriceType
    >>> q = DealQuery(price_types=PriceType.NEW, date_range=0, sort_type=1)
    >>> q.to_selection()
    {'priceTypes': [1], 'dateRange': 0, 'sortType': 1, 'page': 0}
    >>> q = DealQuery.from_mapping(
    ...     {"priceTypes": ["2"], "domainId": "1", "salesRankRange": [5000, -1],
    ...      "deltaLastRange": None, "newFilter": [1, 2]}
    ... )
    >>> q.to_selection()
    {'priceTypes': [2], 'domainId': 1, 'salesRankRange': [5000, -1], 'page': 0, 'newFilter': [1, 2]}

    Attributes:
        price_types: ``priceTypes``, exactly one price type (an int, a
            :class:`PriceType`, or a list of one); one deals are found for.
        domain_id: ``domainId``, the marketplace (1-6, 8-11); ``None``: the
            client's domain.
        date_range: ``dateRange``: 0 day, 1 week, 2 month, 3 ninety days (4 as
            Keepa's deal finder exports it).
        sort_type: ``sortType``: 1 deal age (newest first), 2 absolute delta,
            3 sales rank, 4 percent delta; negative inverts.
        delta_range, delta_percent_range, delta_last_range, sales_rank_range,
            current_range: ``(min, max)`` bounds (32-bit ints; max ``-1``: open).
        include_categories, exclude_categories: Category ids.
        min_rating: ``minRating``, the lowest rating, 0-50 (45 is 4.5 stars);
            ``-1`` none.
        warehouse_conditions: ``warehouseConditions``, Amazon Warehouse
            condition codes (1 new, 2 like new, 3 very good, 4 good, 5 acceptable).
        is_lowest, is_lowest90, is_lowest_offer, is_highest, is_out_of_stock,
            is_back_in_stock, is_risers, is_prime_exclusive, must_have_amazon_offer,
            must_not_have_amazon_offer, has_reviews, filter_erotic,
            single_variation, is_range_enabled, is_filter_enabled: Keepa's flags.
        title_search: ``titleSearch``, words the title must all contain.
        category_search: ``categorySearch``, a str field of the official Java
            ``DealRequest`` (undocumented there: a category name to search for).
        material, type, manufacturer, brand, product_group, model, color, size,
            unit_type, scent, item_form, pattern, style, item_type_keyword,
            target_audience_keyword, edition, format, author, binding, languages,
            brand_store_name, brand_store_url_name, website_display_group,
            website_display_group_name, sales_rank_display_group: Lists of
            strings a product's attribute must match one of.
        page: The page, from 0.
        extra: The fields this class does not type, sent unchanged (any JSON
            value; a key naming a typed field is moved to that field).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.1.0
       Every field of Keepa's deal request is typed; unknown fields pass
       through; ``None`` means absent; numbers may be written as strings;
       ranges may be open (max ``-1``).
    """

    price_types: tuple[int, ...] = attrs.field(converter=_price_types, validator=_check_price_types)
    domain_id: int | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_number,
        validator=_one_of(DEAL_DOMAINS, "1-6 or 8-11"),
    )
    date_range: int | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_number,
        validator=_one_of(_DATE_RANGES, "0 (day), 1 (week), 2 (month), 3 (90 days) or 4"),
    )
    sort_type: int | None = attrs.field(
        default=None, kw_only=True, converter=_number, validator=_check_sort_type
    )
    delta_percent_range: tuple[int, int] | None = _range_field()
    delta_range: tuple[int, int] | None = _range_field()
    sales_rank_range: tuple[int, int] | None = _range_field()
    current_range: tuple[int, int] | None = _range_field()
    include_categories: tuple[int, ...] | None = attrs.field(
        default=None, kw_only=True, converter=_numbers, validator=_int_list(*_INT64)
    )
    exclude_categories: tuple[int, ...] | None = attrs.field(
        default=None, kw_only=True, converter=_numbers, validator=_int_list(*_INT64)
    )
    min_rating: int | None = attrs.field(
        default=None, kw_only=True, converter=_number, validator=_opt_int(-1, 50)
    )
    is_lowest: bool | None = _flag()
    is_lowest_offer: bool | None = _flag()
    is_out_of_stock: bool | None = _flag()
    has_reviews: bool | None = _flag()
    single_variation: bool | None = _flag()
    is_range_enabled: bool | None = _flag()
    is_filter_enabled: bool | None = _flag()
    filter_erotic: bool | None = _flag()
    title_search: str | None = attrs.field(default=None, kw_only=True, validator=_check_text)
    page: int = attrs.field(default=0, kw_only=True, converter=_number, validator=_opt_int(0))
    # -- the fields typed since Keepa's deal request grew (same rules) --
    delta_last_range: tuple[int, int] | None = _range_field()
    warehouse_conditions: tuple[int, ...] | None = attrs.field(
        default=None, kw_only=True, converter=_numbers, validator=_int_list(0, 127)
    )
    is_lowest90: bool | None = _flag()
    is_highest: bool | None = _flag()
    is_back_in_stock: bool | None = _flag()
    is_risers: bool | None = _flag()
    is_prime_exclusive: bool | None = _flag()
    must_have_amazon_offer: bool | None = _flag()
    must_not_have_amazon_offer: bool | None = _flag()
    category_search: str | None = attrs.field(default=None, kw_only=True, validator=_check_text)
    material: tuple[str, ...] | None = _attribute()
    type: tuple[str, ...] | None = _attribute()
    manufacturer: tuple[str, ...] | None = _attribute()
    brand: tuple[str, ...] | None = _attribute()
    product_group: tuple[str, ...] | None = _attribute()
    model: tuple[str, ...] | None = _attribute()
    color: tuple[str, ...] | None = _attribute()
    size: tuple[str, ...] | None = _attribute()
    unit_type: tuple[str, ...] | None = _attribute()
    scent: tuple[str, ...] | None = _attribute()
    item_form: tuple[str, ...] | None = _attribute()
    pattern: tuple[str, ...] | None = _attribute()
    style: tuple[str, ...] | None = _attribute()
    item_type_keyword: tuple[str, ...] | None = _attribute()
    target_audience_keyword: tuple[str, ...] | None = _attribute()
    edition: tuple[str, ...] | None = _attribute()
    format: tuple[str, ...] | None = _attribute()
    author: tuple[str, ...] | None = _attribute()
    binding: tuple[str, ...] | None = _attribute()
    languages: tuple[str, ...] | None = _attribute()
    brand_store_name: tuple[str, ...] | None = _attribute()
    brand_store_url_name: tuple[str, ...] | None = _attribute()
    website_display_group: tuple[str, ...] | None = _attribute()
    website_display_group_name: tuple[str, ...] | None = _attribute()
    sales_rank_display_group: tuple[str, ...] | None = _attribute()
    extra: Mapping[str, Any] = attrs.field(
        factory=dict, kw_only=True, validator=_check_extra, repr=False
    )

    def __repr__(self) -> str:
        """The fields that are set (``None`` ones left out), then :attr:`extra` if any."""
        parts = [
            f"{name}={getattr(self, name)!r}"
            for name in _FIELD_TO_CAMEL
            if getattr(self, name) is not None
        ]
        if self.extra:
            parts.append(f"extra={dict(self.extra)!r}")
        return f"DealQuery({', '.join(parts)})"

    def __attrs_post_init__(self) -> None:
        extra = self.extra
        typed = {k: v for k, v in extra.items() if _field_name(k) is not None}
        if typed or any(v is None for v in extra.values()):
            moved: dict[str, Any] = {}
            for key, value in typed.items():
                name = _field_name(key)
                assert name is not None  # noqa: S101 -- filtered above
                if value is None:
                    continue
                if name in moved or getattr(self, name) != _DEFAULTS[name]:
                    raise ValueError(f"deal selection field {key!r} given twice (in extra too)")
                moved[name] = value
            rest = {k: v for k, v in extra.items() if k not in typed and v is not None}
            # Through evolve, so that the moved values are converted and validated as fields.
            copy = attrs.evolve(self, extra=rest, **moved)
            for field in attrs.fields(DealQuery):
                object.__setattr__(self, field.name, getattr(copy, field.name))
        _log_unknown(self.extra)

    @classmethod
    def from_mapping(cls, selection: Mapping[str, Any] | DealQuery) -> DealQuery:
        """A query from a mapping of selection fields (Keepa's camelCase names, or snake_case).

        ``None`` values are left out; fields this class does not type go to
        :attr:`extra` unchanged (an ``"extra"`` mapping is merged in).

        Raises:
            TypeError: A field has the wrong type (named in the message).
            ValueError: A field is out of range, given twice, or ``priceTypes``
                is missing.
        """
        if isinstance(selection, DealQuery):
            return selection
        if not isinstance(selection, Mapping):
            raise TypeError(f"a deal selection must be a mapping or a DealQuery, got {selection!r}")
        given = dict(selection)
        nested = given.pop("extra", None)
        if nested is not None and not isinstance(nested, Mapping):
            raise TypeError(f"extra must be a mapping, got {nested!r}")
        kwargs, extra = _split([*given.items(), *(nested or {}).items()])
        if "price_types" not in kwargs:
            raise ValueError("a deal selection needs 'priceTypes' (exactly one price type)")
        return cls(**kwargs, extra=extra)

    def to_selection(self) -> dict[str, Any]:
        """The selection as Keepa's JSON object (camelCase; ``None`` fields left out)."""
        out: dict[str, Any] = {}
        for name in _FIELD_TO_CAMEL:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = [v if isinstance(v, str) else int(v) for v in value]
            elif isinstance(value, int) and not isinstance(value, bool):
                value = int(value)
            out[_FIELD_TO_CAMEL[name]] = value
        out.update(
            (key, list(value) if isinstance(value, tuple) else value)
            for key, value in self.extra.items()
        )
        return out

    def with_page(self, page: int) -> DealQuery:
        """A copy asking for *page*."""
        return attrs.evolve(self, page=page)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_FIELD_TO_CAMEL: Final = {
    f.name: _camel(f.name) for f in attrs.fields(DealQuery) if f.name != "extra"
}
_CAMEL_TO_FIELD: Final = {camel: name for name, camel in _FIELD_TO_CAMEL.items()}
_DEFAULTS: Final = {
    f.name: f.default for f in attrs.fields(DealQuery) if f.name not in ("extra", "price_types")
}


def _split(items: Iterable[tuple[object, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The typed fields (by field name) and the others (by key), ``None`` values left out."""
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in items:
        if not isinstance(key, str):
            raise TypeError(f"deal selection keys must be str, got {key!r}")
        if value is None:
            continue  # null: absent
        name = _field_name(key)
        target, slot = (extra, key) if name is None else (kwargs, name)
        if slot in target:
            raise ValueError(f"deal selection field {key!r} given twice")
        target[slot] = value
    return kwargs, extra


def _field_name(key: str) -> str | None:
    """The typed field *key* names (camelCase or snake_case), or None."""
    if key in _CAMEL_TO_FIELD:
        return _CAMEL_TO_FIELD[key]
    if key in _FIELD_TO_CAMEL:
        return key
    return None
