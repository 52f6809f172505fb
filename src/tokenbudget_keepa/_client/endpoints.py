"""The rest of Keepa's API as sans-I/O definitions: what each request sends, what its answer means.

Each function here checks its arguments (a :class:`TypeError` or
:class:`ValueError` naming the parameter, before anything is sent) and returns
:class:`EndpointCall` objects: the request to make (path and query parameters,
the key left out), the most Keepa's documented rules can charge for it (the
*bound* the client books before sending), and the interpretation of a
successful answer's body: the typed result, and the documented cost of that
answer (the figure a booking is settled to when the answer carries no
``tokensConsumed``). Nothing here does I/O: both clients send these calls the
same way, and the tests read them without a server.

Keepa's documented costs:

============================  ============================================================
request                       cost
============================  ============================================================
``/query`` (product finder)   10, plus 1 per started 100 ASINs returned (booked for a
                              full page)
``/bestsellers``              50 (nothing when Keepa has no list)
``/category``                 1 a request (up to 10 ids)
``/search?type=category``     1
``/search?type=product``      10 a page of up to 10 products (+1 a product with
                              ``update=0``; ``rating=1`` up to 5 more)
``/seller``                   1 a seller found (up to 100 ids); the storefront +9
                              (one id only); ``update`` up to 50
``/lightningdeal``            1 for one ASIN, 500 for the whole list
============================  ============================================================
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Generic, TypeVar

import attrs

from .errors import KeepaProtocolError
from .models.finder import FinderQuery
from .models.products import Product
from .models.results import LIGHTNING_DEAL_STATES, Category, FinderPage, LightningDeal, Seller


__all__ = [
    "BEST_SELLER_RANGES",
    "EndpointCall",
    "best_sellers_call",
    "category_calls",
    "category_search_call",
    "finder_call",
    "lightning_deals_call",
    "search_call",
    "seller_calls",
]

T = TypeVar("T")

#: ``range`` of ``/bestsellers``: the current rank, or its 30-, 90- or 180-day average.
BEST_SELLER_RANGES: Final = (0, 30, 90, 180)
#: The marketplaces the endpoints other than ``/product`` and ``/query`` serve (no 12, Brazil).
_NOT_BRAZIL: Final = frozenset({1, 2, 3, 4, 5, 6, 8, 9, 10, 11})
_ALL_DOMAINS: Final = frozenset({*_NOT_BRAZIL, 12})
FINDER_BASE_COST: Final = 10
BEST_SELLERS_COST: Final = 50
CATEGORY_COST: Final = 1
SEARCH_PAGE_COST: Final = 10
SEARCH_PAGE_SIZE: Final = 10
SEARCH_MAX_PAGE: Final = 9
SEARCH_RATING_MAX: Final = 5
STOREFRONT_COST: Final = 9
STOREFRONT_UPDATE_COST: Final = 50
LIGHTNING_DEAL_COST: Final = 1
LIGHTNING_DEALS_ALL_COST: Final = 500
MAX_CATEGORY_IDS: Final = 10
MAX_SELLER_IDS: Final = 100
_ASIN = re.compile(r"[A-Za-z0-9]{10}")
_SELLER_ID = re.compile(r"[A-Za-z0-9]{5,20}")
_MIN_KEYWORD: Final = 3
_INT64_MAX: Final = 2**63 - 1


@attrs.frozen
class EndpointCall(Generic[T]):
    """One request to Keepa and the meaning of its answer, without I/O.

    Attributes:
        endpoint: The endpoint's name (``"product_finder"``, ``"best_sellers"``, …).
        path: The path (``"/query"``).
        params: The query parameters, the key left out.
        bound: The most Keepa's documented rules charge for it: what is booked.
        read: The typed result of a successful answer's body (raises
            :class:`~tokenbudget_keepa.KeepaProtocolError` on a body that is not
            the answer Keepa documents).
        cost: Keepa's documented cost of a successful answer's body: what the
            booking is settled to when the envelope has no ``tokensConsumed``.
    """

    endpoint: str
    path: str
    params: Mapping[str, str]
    bound: float
    read: Callable[[Mapping[str, Any]], T] = attrs.field(repr=False)
    cost: Callable[[Mapping[str, Any]], float] = attrs.field(repr=False)


# -- argument checks ---------------------------------------------------------------------------


def _check_int(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"
        raise ValueError(f"{name} must lie in {bounds}, got {value!r}")
    return int(value)


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def _check_domain(domain: int, allowed: frozenset[int], endpoint: str) -> str:
    _check_int("domain", domain)
    if domain not in allowed:
        raise ValueError(
            f"domain {domain!r} is not served by {endpoint} (Keepa serves {sorted(allowed)})"
        )
    return str(domain)


def _check_term(name: str, term: object, *, min_keyword: int = 1) -> str:
    if not isinstance(term, str):
        raise TypeError(f"{name} must be a str, got {term!r}")
    words = term.split()
    if not words:
        raise ValueError(f"{name} must hold at least one keyword, got {term!r}")
    short = [w for w in words if len(w) < min_keyword]
    if short:
        raise ValueError(
            f"{name} keywords must be at least {min_keyword} characters long "
            f"(Keepa's minimum), got {short[0]!r} in {term!r}"
        )
    return " ".join(words)


def _many(name: str, values: object, scalar: type) -> list[Any]:
    """*values* as a list (one *scalar* is a list of one), duplicates dropped, order kept."""
    items: Iterable[object]
    if isinstance(values, scalar) and not isinstance(values, bool):
        items = [values]
    elif isinstance(values, Iterable) and not isinstance(values, (str, bytes, Mapping)):
        items = values
    else:
        raise TypeError(
            f"{name} must be a {scalar.__name__} or an iterable of them, got {values!r}"
        )
    try:
        out = list(dict.fromkeys(items))
    except TypeError:
        raise TypeError(f"{name} must hold {scalar.__name__} values, got {values!r}") from None
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def _protocol(endpoint: str, message: str) -> KeepaProtocolError:
    return KeepaProtocolError(f"{endpoint} answered {message}", endpoint=endpoint, status=200)


def _list_of(body: Mapping[str, Any], field: str, endpoint: str) -> list[Any]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _protocol(endpoint, f"a {field!r} that is not a list: {type(value).__name__}")
    return value


def _map_of(body: Mapping[str, Any], field: str, endpoint: str) -> Mapping[str, Any]:
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _protocol(endpoint, f"a {field!r} that is not an object: {type(value).__name__}")
    return value


def _asin_list(values: list[Any], field: str, endpoint: str) -> list[str]:
    for i, asin in enumerate(values):
        if not isinstance(asin, str):
            raise _protocol(endpoint, f"a {field}[{i}] that is not a string: {asin!r}")
    return list(values)


def _with_endpoint(endpoint: str, read: Callable[[], T]) -> T:
    try:
        return read()
    except KeepaProtocolError as exc:
        exc.endpoint = endpoint
        exc.status = 200
        raise


# -- product finder ----------------------------------------------------------------------------


def finder_bound(page_size: int) -> float:
    """The most a finder page of *page_size* ASINs costs: 10 + 1 per started 100.

    >>> finder_bound(50), finder_bound(100), finder_bound(101), finder_bound(10_000)
    (11.0, 11.0, 12.0, 110.0)
    """
    return float(FINDER_BASE_COST + math.ceil(page_size / 100))


def finder_call(
    domain: int,
    selection: FinderQuery | Mapping[str, Any],
    *,
    page: int = 0,
    per_page: int | None = None,
) -> EndpointCall[FinderPage]:
    """One page of a product finder query (``/query``).

    *page* is the page asked for, whatever page the selection names; *per_page*
    (50 to 10,000) overrides the selection's ``perPage`` (default 50). Booked
    at 10 + 1 per started 100 of the page size; settled to 10 + 1 per started
    100 ASINs returned.
    """
    _check_int("page", page, low=0)
    if per_page is not None:
        _check_int("per_page", per_page)
    query = FinderQuery.from_mapping(selection).with_page(page, per_page)
    data = query.to_selection()
    page_size = query.page_size

    def read(body: Mapping[str, Any]) -> FinderPage:
        asins = _asin_list(_list_of(body, "asinList", "/query"), "asinList", "/query")
        total = body.get("totalResults")
        if total is None:
            total = len(asins) + query.page * page_size
        if isinstance(total, bool) or not isinstance(total, int):
            raise _protocol("/query", f"a 'totalResults' that is not an int: {total!r}")
        return FinderPage(asins, total, query.page, page_size, body)

    def cost(body: Mapping[str, Any]) -> float:
        returned = body.get("asinList")
        count = len(returned) if isinstance(returned, list) else 0
        return float(FINDER_BASE_COST + math.ceil(count / 100))

    return EndpointCall(
        "product_finder",
        "/query",
        {
            "domain": _check_domain(domain, _ALL_DOMAINS, "the product finder"),
            "selection": json.dumps(data, separators=(",", ":")),
        },
        finder_bound(page_size),
        read,
        cost,
    )


# -- best sellers ------------------------------------------------------------------------------


def best_sellers_call(  # noqa: C901 -- one check a parameter
    domain: int,
    category: int | str,
    *,
    range: int = 0,  # noqa: A002 -- Keepa's name, pinned by the specification
    month: int | None = None,
    year: int | None = None,
    variations: bool = False,
    sublist: bool = False,
) -> EndpointCall[list[str]]:
    """The best seller list of a category (node id) or product group (``/bestsellers``): 50.

    *range* ranks by the current sales rank (0) or its 30-, 90- or 180-day
    average; *month* and *year* ask for a past month's list instead (both, and
    not with a *range*); *sublist* ranks a sub-category by its own sales rank
    (not with *range*, *month* or *year*); *variations* lists every variation.
    """
    params = {"domain": _check_domain(domain, _NOT_BRAZIL, "/bestsellers")}
    if isinstance(category, str):
        if not category.strip() or "," in category:
            raise ValueError(
                f"category must be a category id or a product group name, got {category!r}"
            )
        params["category"] = category.strip()
    else:
        params["category"] = str(_check_int("category", category, low=0, high=_INT64_MAX))
    _check_int("range", range)
    if range not in BEST_SELLER_RANGES:
        raise ValueError(f"range must be one of {BEST_SELLER_RANGES}, got {range!r}")
    if (month is None) != (year is None):
        raise ValueError(f"month and year go together, got month={month!r}, year={year!r}")
    if month is not None and year is not None:
        _check_int("month", month, low=1, high=12)
        _check_int("year", year, low=2000, high=9999)
        if range:
            raise ValueError(f"range must be 0 with month and year, got range={range!r}")
        params["month"], params["year"] = str(month), str(year)
    else:
        params["range"] = str(range)
    if _check_bool("sublist", sublist):
        if range or month is not None:
            raise ValueError("sublist=True takes neither range nor month/year")
        params["sublist"] = "1"
    if _check_bool("variations", variations):
        params["variations"] = "1"

    def read(body: Mapping[str, Any]) -> list[str]:
        found = _map_of(body, "bestSellersList", "/bestsellers")
        return _asin_list(_list_of(found, "asinList", "/bestsellers"), "asinList", "/bestsellers")

    def cost(body: Mapping[str, Any]) -> float:
        return float(BEST_SELLERS_COST) if body.get("bestSellersList") else 0.0

    return EndpointCall(
        "best_sellers", "/bestsellers", params, float(BEST_SELLERS_COST), read, cost
    )


# -- categories --------------------------------------------------------------------------------


def _categories_of(body: Mapping[str, Any], endpoint: str) -> dict[int, Category]:
    def read() -> dict[int, Category]:
        out: dict[int, Category] = {}
        for field in ("categories", "categoryParents"):
            for raw in _map_of(body, field, endpoint).values():
                category = Category.from_raw(raw)
                out.setdefault(category.id, category)
        return out

    return _with_endpoint(endpoint, read)


def category_calls(
    domain: int, ids: int | Iterable[int], *, parents: bool = False
) -> list[EndpointCall[dict[int, Category]]]:
    """Categories by node id (``/category``), 10 a request at 1 token each; ``0``: the roots.

    With *parents* the categories on the way to each one's root come in the
    same result.
    """
    params = {"domain": _check_domain(domain, _NOT_BRAZIL, "/category")}
    codes = _many("ids", ids, int)
    for i, code in enumerate(codes):
        _check_int(f"ids[{i}]", code, low=0, high=_INT64_MAX)
    params["parents"] = "1" if _check_bool("parents", parents) else "0"
    calls: list[EndpointCall[dict[int, Category]]] = []
    for start in range(0, len(codes), MAX_CATEGORY_IDS):
        chunk = codes[start : start + MAX_CATEGORY_IDS]
        calls.append(
            EndpointCall(
                "categories",
                "/category",
                {**params, "category": ",".join(str(c) for c in chunk)},
                float(CATEGORY_COST),
                lambda body: _categories_of(body, "/category"),
                lambda _body: float(CATEGORY_COST),
            )
        )
    return calls


def category_search_call(
    domain: int, term: str, *, parents: bool = False
) -> EndpointCall[dict[int, Category]]:
    """Categories whose name holds every keyword of *term* (3 characters or more): 1 token."""
    params = {
        "domain": _check_domain(domain, _NOT_BRAZIL, "the category search"),
        "type": "category",
        "term": _check_term("term", term, min_keyword=_MIN_KEYWORD),
    }
    if _check_bool("parents", parents):
        params["parents"] = "1"
    return EndpointCall(
        "category_search",
        "/search",
        params,
        float(CATEGORY_COST),
        lambda body: _categories_of(body, "/search"),
        lambda _body: float(CATEGORY_COST),
    )


# -- product search ----------------------------------------------------------------------------


def search_call(
    domain: int,
    term: str,
    *,
    page: int = 0,
    stats: int | None = None,
    update: int | None = None,
    history: bool = True,
    rating: bool = False,
) -> EndpointCall[list[Product]]:
    """One page (up to 10 products) of Keepa's product search (``/search?type=product``): 10.

    *page* runs from 0 to 9; a page of fewer than 10 products is the last.
    ``update=0`` costs 1 more a product found that was fresh; ``rating`` up to
    5 more a page: both are in the bound.
    """
    params = {
        "domain": _check_domain(domain, _NOT_BRAZIL, "the product search"),
        "type": "product",
        "term": _check_term("term", term),
        "page": str(_check_int("page", page, low=0, high=SEARCH_MAX_PAGE)),
        "history": "1" if _check_bool("history", history) else "0",
    }
    bound = SEARCH_PAGE_COST
    if stats is not None:
        params["stats"] = str(_check_int("stats", stats, low=1))
    if update is not None:
        params["update"] = str(_check_int("update", update, low=0))
        if update == 0:
            bound += SEARCH_PAGE_SIZE
    if _check_bool("rating", rating):
        params["rating"] = "1"
        bound += SEARCH_RATING_MAX

    def read(body: Mapping[str, Any]) -> list[Product]:
        rows = _list_of(body, "products", "/search")
        return _with_endpoint("/search", lambda: [Product.from_raw(row) for row in rows])

    return EndpointCall(
        "search", "/search", params, float(bound), read, lambda _body: float(SEARCH_PAGE_COST)
    )


# -- sellers -----------------------------------------------------------------------------------


def seller_calls(  # noqa: C901 -- one check a parameter
    domain: int,
    ids: str | Iterable[str],
    *,
    storefront: bool = False,
    update: int | None = None,
) -> list[EndpointCall[dict[str, Seller]]]:
    """Sellers by id (``/seller``), 100 a request, 1 token a seller found.

    *storefront* adds the seller's ASINs (+9 tokens when Keepa has at least
    two; Keepa takes one id at a time then); *update* (hours, with
    *storefront*) has Keepa collect the storefront from Amazon when its copy is
    older (up to 50 tokens).
    """
    params = {"domain": _check_domain(domain, _NOT_BRAZIL, "/seller")}
    codes = _many("ids", ids, str)
    for i, code in enumerate(codes):
        if not isinstance(code, str):
            raise TypeError(f"ids[{i}] must be a str, got {code!r}")
        if not _SELLER_ID.fullmatch(code):
            raise ValueError(f"ids[{i}] must be a seller id (5-20 letters or digits), got {code!r}")
    bound_extra = 0
    if _check_bool("storefront", storefront):
        if len(codes) > 1:
            raise ValueError(
                f"storefront=True takes one seller id at a time (Keepa refuses a batch), "
                f"got {len(codes)} ids"
            )
        params["storefront"] = "1"
        bound_extra = STOREFRONT_COST
    if update is not None:
        _check_int("update", update, low=0)
        if not storefront:
            raise ValueError("update is the storefront's refresh: it needs storefront=True")
        params["update"] = str(update)
        bound_extra = STOREFRONT_UPDATE_COST - 1

    def read(body: Mapping[str, Any]) -> dict[str, Seller]:
        def sellers() -> dict[str, Seller]:
            found = _map_of(body, "sellers", "/seller")
            return {
                seller.id: seller
                for seller in (Seller.from_raw(raw, seller_id=key) for key, raw in found.items())
            }

        return _with_endpoint("/seller", sellers)

    def cost(body: Mapping[str, Any]) -> float:
        found = body.get("sellers")
        if not isinstance(found, Mapping):
            return 0.0
        total = float(len(found))
        if storefront:
            for raw in found.values():
                listed = raw.get("asinList") if isinstance(raw, Mapping) else None
                if isinstance(listed, list) and len(listed) >= 2:
                    total += STOREFRONT_COST
        return total

    calls: list[EndpointCall[dict[str, Seller]]] = []
    for start in range(0, len(codes), MAX_SELLER_IDS):
        chunk = codes[start : start + MAX_SELLER_IDS]
        calls.append(
            EndpointCall(
                "sellers",
                "/seller",
                {**params, "seller": ",".join(chunk)},
                float(len(chunk) + bound_extra),
                read,
                cost,
            )
        )
    return calls


# -- lightning deals ---------------------------------------------------------------------------


def lightning_deals_call(
    domain: int, asin: str | None = None, *, state: str | None = None
) -> EndpointCall[list[LightningDeal]]:
    """The lightning deal of one ASIN (1 token) or the whole list (500 tokens).

    *state* keeps the deals in one state (``"AVAILABLE"``, ``"UPCOMING"``, …).
    """
    params = {"domain": _check_domain(domain, _NOT_BRAZIL, "/lightningdeal")}
    bound = LIGHTNING_DEALS_ALL_COST
    if asin is not None:
        if not isinstance(asin, str):
            raise TypeError(f"asin must be a str, got {asin!r}")
        if not _ASIN.fullmatch(asin):
            raise ValueError(f"asin must be 10 letters or digits, got {asin!r}")
        params["asin"] = asin.upper()
        bound = LIGHTNING_DEAL_COST
    if state is not None:
        if not isinstance(state, str):
            raise TypeError(f"state must be a str, got {state!r}")
        if state not in LIGHTNING_DEAL_STATES:
            raise ValueError(f"state must be one of {sorted(LIGHTNING_DEAL_STATES)}, got {state!r}")
        params["state"] = state

    def read(body: Mapping[str, Any]) -> list[LightningDeal]:
        rows = _list_of(body, "lightningDeals", "/lightningdeal")
        return _with_endpoint("/lightningdeal", lambda: [LightningDeal.from_raw(r) for r in rows])

    return EndpointCall(
        "lightning_deals",
        "/lightningdeal",
        params,
        float(bound),
        read,
        lambda _body: float(bound),
    )
