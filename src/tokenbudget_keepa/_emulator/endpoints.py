"""The emulator's answers to the rest of Keepa's API (used by :mod:`tokenbudget_keepa.testing`).

``/query`` (product finder), ``/bestsellers``, ``/category``, ``/search`` (category
and product search), ``/seller`` and ``/lightningdeal``, each with Keepa's
documented cost and answer shape, over the emulator's seeded catalog:

- the finder, the best seller lists and the product search look at the first
  :data:`UNIVERSE` products of the catalog (fewer if the catalog is smaller);
  the finder applies ``rootCategory``, ``categories_include``/``_exclude``,
  ``current_SALES``, ``current_NEW`` and ``current_AMAZON`` ranges, ``brand``,
  ``title`` and ``hasReviews`` (every other documented field is accepted and
  ignored), sorts by sales rank (or ``sort`` on ``current_SALES``/``current_NEW``)
  and pages by ``perPage``: 10 + 1 per started 100 ASINs returned;
- best seller lists exist for the catalog's root categories (by id or by name
  as a product group), best rank first: 50 tokens, nothing without a list;
- categories are the catalog's root categories and five sub-categories of each
  (``root * 10 + 1`` … ``+ 5``): 1 token a request;
- every well-formed seller id is a known seller, except those that start with
  ``UNKNOWN``: 1 token a seller found, +9 for a storefront of two ASINs or more,
  50 in all with ``update``;
- one catalog product in 97 (of the first :data:`UNIVERSE`) has a lightning deal
  of six hours, starting at a seeded minute from six hours before the current
  day to its end: 1 token for one ASIN, 500 for the list.

Bad parameters are answered HTTP 400 with Keepa's envelope and an ``error``
object, before admission; a request admitted at a balance of zero or below is
refused with 429, as for ``/product``.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from .data import CATEGORIES, Catalog, Traits


__all__ = [
    "ENDPOINTS",
    "KNOWN_PARAMETERS",
    "POST_ENDPOINTS",
    "EndpointRefusal",
    "serve_endpoint",
]

#: The catalog products the finder, the best seller lists and the search look at.
UNIVERSE: Final = 5_000
#: The paths served here (without the slash).
ENDPOINTS: Final = ("query", "bestsellers", "category", "search", "seller", "lightningdeal")
#: Those that also take their selection as a POST body.
POST_ENDPOINTS: Final = frozenset({"query"})
KNOWN_PARAMETERS: Final = {
    "query": frozenset({"key", "domain", "selection", "stats"}),
    "bestsellers": frozenset(
        {"key", "domain", "category", "range", "month", "year", "variations", "sublist"}
    ),
    "category": frozenset({"key", "domain", "category", "parents"}),
    "search": frozenset(
        {
            "key",
            "domain",
            "type",
            "term",
            "page",
            "stats",
            "update",
            "history",
            "rating",
            "asins-only",
            "parents",
        }
    ),
    "seller": frozenset({"key", "domain", "seller", "storefront", "update"}),
    "lightningdeal": frozenset({"key", "domain", "asin", "state"}),
}
_ALL_DOMAINS: Final = frozenset({1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12})
_NOT_BRAZIL: Final = _ALL_DOMAINS - {12}
_ROOTS: Final = dict(CATEGORIES)
_SUBS: Final = 5
_SELLER_ID = re.compile(r"[A-Za-z0-9]{5,20}")
_ASIN = re.compile(r"[A-Z0-9]{10}")
_STATES: Final = ("AVAILABLE", "UPCOMING", "WAITLIST", "SOLDOUT", "WAITLISTFULL", "EXPIRED")
_LIGHTNING_SHARE: Final = 97
_LIGHTNING_MINUTES: Final = 360
_MAX_FINDER: Final = 10_000


class EndpointRefusal(Exception):  # noqa: N818 -- mirrors the emulator's _Reply
    """A request answered with an HTTP error (*status*, Keepa's message and details)."""

    def __init__(self, status: int, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


class ProductJson(Protocol):
    """Builds a product object as ``/product`` serves it (the emulator's own)."""

    def __call__(self, asin: str, *, history: bool, stats: int) -> dict[str, Any]: ...


def _bad(message: str, details: str = "") -> EndpointRefusal:
    return EndpointRefusal(400, message, details)


def _int(query: Mapping[str, str], name: str, *, low: int, high: int, default: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise _bad(f"parameter {name} is missing")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"parameter {name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise _bad(f"parameter {name} must lie in [{low}, {high}], got {value}")
    return value


def _domain(query: Mapping[str, str], allowed: frozenset[int]) -> int:
    domain = _int(query, "domain", low=0, high=99, default=None)
    if domain not in allowed:
        raise _bad(f"parameter domain {domain} is not served here")
    return domain


def _rank(traits: Traits) -> int:
    return traits.sales_rank if traits.sales_rank is not None else 2**31


_UNIVERSES: weakref.WeakKeyDictionary[Catalog, list[Traits]] = weakref.WeakKeyDictionary()
_universe_lock = threading.Lock()


def _universe(catalog: Catalog) -> list[Traits]:
    """The traits of the first :data:`UNIVERSE` products, best sales rank first (built once)."""
    with _universe_lock:
        found = _UNIVERSES.get(catalog)
        if found is None:
            found = [catalog.traits(catalog.asin(i)) for i in range(min(catalog.size, UNIVERSE))]
            found.sort(key=_rank)
            _UNIVERSES[catalog] = found
        return found


# -- the product finder ------------------------------------------------------------------------


def _selection(query: Mapping[str, str], body: bytes) -> dict[str, Any]:
    text = body.decode("utf-8", "replace") if body.strip() else query.get("selection")
    if text is None:
        raise _bad("the selection is missing (selection=<json> or a JSON body)")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise _bad("the selection is not valid JSON", str(exc)) from None
    if not isinstance(raw, dict):
        raise _bad("the selection must be a JSON object")
    return raw


def _finder_page(selection: Mapping[str, Any]) -> tuple[int, int]:
    page, per_page = selection.get("page", 0), selection.get("perPage", 50)
    for name, value in (("page", page), ("perPage", per_page)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f"{name} must be an integer, got {value!r}")
    if page < 0 or per_page < 50:
        raise _bad(f"page must be >= 0 and perPage >= 50, got page={page}, perPage={per_page}")
    if (page + 1) * per_page > _MAX_FINDER:
        raise _bad(f"page and perPage reach past {_MAX_FINDER} results")
    return page, per_page


def _range_ok(selection: Mapping[str, Any], stem: str, value: int | None) -> bool:
    low, high = selection.get(f"{stem}_gte"), selection.get(f"{stem}_lte")
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _matches(selection: Mapping[str, Any], traits: Traits, price: int) -> bool:  # noqa: C901, PLR0911
    roots = selection.get("rootCategory")
    if roots is not None and traits.root_category not in {int(r) for r in _as_list(roots)}:
        return False
    include = selection.get("categories_include")
    if include is not None and not set(traits.categories) & set(_as_list(include)):
        return False
    exclude = selection.get("categories_exclude")
    if exclude is not None and set(traits.categories) & set(_as_list(exclude)):
        return False
    if not _range_ok(selection, "current_SALES", traits.sales_rank):
        return False
    if not _range_ok(selection, "current_NEW", price):
        return False
    if not _range_ok(selection, "current_AMAZON", price if traits.amazon_offer else None):
        return False
    brands = selection.get("brand")
    if brands is not None:
        wanted = {str(b).lower() for b in _as_list(brands)}
        if (traits.brand or "").lower() not in wanted:
            return False
    title = selection.get("title")
    if isinstance(title, str):
        words = title.lower().split()
        if not all(word in (traits.title or "").lower() for word in words):
            return False
    return not (selection.get("hasReviews") is True and not traits.review_count)


def _finder(catalog: Catalog, selection: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    page, per_page = _finder_page(selection)
    found = [t for t in _universe(catalog) if _matches(selection, t, t.price)]
    sort = selection.get("sort")
    key: Callable[[Traits], int] | None = None
    reverse = False
    if isinstance(sort, list) and sort and isinstance(sort[0], list) and len(sort[0]) == 2:
        field, direction = sort[0]
        key = (lambda t: t.price) if field == "current_NEW" else _rank
        reverse = direction == "desc"
    if key is not None:
        found.sort(key=key, reverse=reverse)
    asins = [t.asin for t in found[page * per_page : (page + 1) * per_page]]
    return {"asinList": asins, "totalResults": len(found)}, 10 + math.ceil(len(asins) / 100)


# -- best sellers, categories, search ----------------------------------------------------------


def _best_sellers(
    catalog: Catalog, query: Mapping[str, str], admit: Callable[[], None]
) -> tuple[dict[str, Any], int]:
    domain = _domain(query, _NOT_BRAZIL)
    raw = query.get("category", "").strip()
    if not raw:
        raise _bad("parameter category is missing")
    if query.get("month") is None:
        rank_range = _int(query, "range", low=0, high=180, default=0)
        if rank_range not in (0, 30, 90, 180):
            raise _bad(f"parameter range must be 0, 30, 90 or 180, got {rank_range}")
    else:
        _int(query, "month", low=1, high=12, default=None)
        _int(query, "year", low=2000, high=9999, default=None)
    admit()
    names = {name.lower(): cat for cat, name in _ROOTS.items()}
    category = int(raw) if raw.isdigit() else names.get(raw.lower())
    if category not in _ROOTS:
        return {}, 0  # no list: an empty answer, no token
    ranked = [t for t in _universe(catalog) if t.root_category == category and t.sales_rank]
    listing = {
        "domainId": domain,
        "lastUpdate": 0,
        "categoryId": category,
        "asinList": [t.asin for t in ranked],
    }
    return {"bestSellersList": listing}, 50


def _category_json(cat_id: int, domain: int) -> dict[str, Any] | None:
    if cat_id in _ROOTS:
        name, parent, children = _ROOTS[cat_id], 0, [cat_id * 10 + k for k in range(1, _SUBS + 1)]
    elif cat_id // 10 in _ROOTS and 1 <= cat_id % 10 <= _SUBS:
        name, parent, children = f"{_ROOTS[cat_id // 10]} {cat_id % 10}", cat_id // 10, []
    else:
        return None
    return {
        "domainId": domain,
        "catId": cat_id,
        "name": name,
        "contextFreeName": name,
        "children": children,
        "parent": parent,
        "highestRank": 2_000_000,
        "lowestRank": 1,
        "productCount": 1000 * (len(children) + 1),
        "isBrowseNode": True,
    }


def _categories(ids: list[int], domain: int, parents: bool) -> dict[str, Any]:
    found: dict[str, Any] = {}
    above: dict[str, Any] = {}
    for cat_id in ids:
        for one in sorted(_ROOTS) if cat_id == 0 else [cat_id]:
            category = _category_json(one, domain)
            if category is None:
                continue
            found[str(one)] = category
            parent = category["parent"]
            if parents and parent:
                above[str(parent)] = _category_json(parent, domain)
    payload: dict[str, Any] = {"categories": found}
    if parents:
        payload["categoryParents"] = above
    return payload


def _category_lookup(
    query: Mapping[str, str], admit: Callable[[], None]
) -> tuple[dict[str, Any], int]:
    domain = _domain(query, _NOT_BRAZIL)
    raw = query.get("category", "")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise _bad(f"parameter category must be category ids, got {raw!r}")
    if len(parts) > 10:
        raise _bad(f"too many categories: {len(parts)} > 10")
    parents = _int(query, "parents", low=0, high=1, default=0) == 1
    admit()
    return _categories([int(p) for p in parts], domain, parents), 1


def _search(
    catalog: Catalog, query: Mapping[str, str], admit: Callable[[], None], product: ProductJson
) -> tuple[dict[str, Any], int]:
    domain = _domain(query, _NOT_BRAZIL)
    kind = query.get("type")
    words = query.get("term", "").lower().split()
    if not words:
        raise _bad("parameter term is missing or empty")
    if kind == "category":
        if any(len(w) < 3 for w in words):
            raise _bad("each keyword of term must be at least 3 characters long")
        every = [
            *sorted(_ROOTS),
            *(r * 10 + k for r in sorted(_ROOTS) for k in range(1, _SUBS + 1)),
        ]
        matched = []
        for cat_id in every:
            category = _category_json(cat_id, domain)
            if category is not None and all(w in category["name"].lower() for w in words):
                matched.append(cat_id)
        parents = _int(query, "parents", low=0, high=1, default=0) == 1
        admit()
        return _categories(matched[:50], domain, parents), 1
    if kind != "product":
        raise _bad(f"parameter type must be 'category' or 'product', got {kind!r}")
    page = _int(query, "page", low=0, high=9, default=0)
    history = _int(query, "history", low=0, high=1, default=1) == 1
    stats = _int(query, "stats", low=0, high=100_000, default=0)
    _int(query, "update", low=-1, high=100_000, default=-1)
    admit()
    found = [t for t in _universe(catalog) if all(w in (t.title or "").lower() for w in words)]
    chosen = found[page * 10 : page * 10 + 10]
    products = [product(t.asin, history=history, stats=stats) for t in chosen]
    return {"products": products}, 10


# -- sellers and lightning deals ---------------------------------------------------------------


def _sellers(  # noqa: C901 -- one check a parameter
    catalog: Catalog, query: Mapping[str, str], admit: Callable[[], None]
) -> tuple[dict[str, Any], int]:
    domain = _domain(query, _NOT_BRAZIL)
    ids = [s.strip() for s in query.get("seller", "").split(",") if s.strip()]
    if not ids:
        raise _bad("parameter seller is missing or empty")
    if len(ids) > 100:
        raise _bad(f"too many sellers: {len(ids)} > 100")
    for seller_id in ids:
        if not _SELLER_ID.fullmatch(seller_id):
            raise _bad(f"invalid seller id {seller_id!r}")
    storefront = _int(query, "storefront", low=0, high=1, default=0) == 1
    if storefront and len(ids) > 1:
        raise _bad("the storefront takes one seller id at a time")
    update = query.get("update")
    if update is not None:
        if not storefront:
            raise _bad("parameter update needs storefront=1")
        _int(query, "update", low=0, high=100_000, default=None)
    admit()
    universe = min(catalog.size, UNIVERSE)
    sellers: dict[str, Any] = {}
    cost = 0
    for seller_id in ids:
        if seller_id.upper().startswith("UNKNOWN"):
            continue
        rng = random.Random(f"seller:{catalog.seed}:{seller_id}")
        seller: dict[str, Any] = {
            "domainId": domain,
            "sellerId": seller_id,
            "sellerName": f"Seller {seller_id[-4:]}",
            "trackedSince": 2_000_000 + int(rng.random() * 5_000_000),
            "hasFBA": rng.random() < 0.5,
            "csv": [
                [7_000_000, 90 + int(rng.random() * 10)],
                [7_000_000, int(rng.random() * 9999)],
            ],
        }
        cost += 1
        if storefront:
            count = int(rng.random() * 30)
            start = int(rng.random() * max(1, universe - count))
            seller["asinList"] = [catalog.asin(i) for i in range(start, start + count)]
            seller["asinListLastSeen"] = [7_000_000] * count
            if count >= 2:
                cost += 9
            if update is not None:
                cost = 50
        sellers[seller_id] = seller
    return {"sellers": sellers}, cost


def _lightning_deal(catalog: Catalog, index: int, domain: int, minute: int) -> dict[str, Any]:
    asin = catalog.asin(index)
    traits = catalog.traits(asin)
    rng = random.Random(f"lightning:{catalog.seed}:{asin}:{minute // 1440}")
    start = minute - minute % 1440 - _LIGHTNING_MINUTES + int(rng.random() * 1440)
    end = start + _LIGHTNING_MINUTES
    if minute < start:
        state = "UPCOMING"
    elif minute < end:
        state = _STATES[0] if rng.random() < 0.8 else _STATES[3]
    else:
        state = "EXPIRED"
    live = state != "UPCOMING"
    return {
        "domainId": domain,
        "lastUpdate": minute,
        "asin": asin,
        "title": traits.title,
        "sellerName": "Amazon.com",
        "sellerId": "ATVPDKIKX0DER",
        "dealId": f"ld-{asin}",
        "dealPrice": traits.price * 7 // 10 if live else -1,
        "currentPrice": traits.price if live else -1,
        "image": None,
        "isPrimeEligible": True,
        "isFulfilledByAmazon": True,
        "isMAP": False,
        "rating": traits.rating if traits.rating is not None else -1,
        "totalReviews": traits.review_count or 0,
        "dealState": state,
        "startTime": start,
        "endTime": end,
        "percentClaimed": int(rng.random() * 100) if live else 0,
        "percentOff": 30,
    }


def _lightning_deals(
    catalog: Catalog, query: Mapping[str, str], minute: int, admit: Callable[[], None]
) -> tuple[dict[str, Any], int]:
    domain = _domain(query, _NOT_BRAZIL)
    state = query.get("state")
    if state is not None and state not in (*_STATES, "SUPPRESSED"):
        raise _bad(f"parameter state is not a lightning deal state, got {state!r}")
    asin = query.get("asin")
    universe = min(catalog.size, UNIVERSE)
    if asin is not None:
        if not _ASIN.fullmatch(asin):
            raise _bad(f"invalid ASIN {asin!r}")
        index = catalog.index(asin)
        has_deal = index is not None and index < universe and index % _LIGHTNING_SHARE == 0
        indices = [index] if has_deal and index is not None else []
        cost = 1
    else:
        indices = list(range(0, universe, _LIGHTNING_SHARE))
        cost = 500
    admit()
    deals = [_lightning_deal(catalog, i, domain, minute) for i in indices]
    if state is not None:
        deals = [d for d in deals if d["dealState"] == state]
    return {"lightningDeals": deals}, cost


def serve_endpoint(
    endpoint: str,
    query: Mapping[str, str],
    body: bytes,
    *,
    catalog: Catalog,
    minute: int,
    admit: Callable[[], None],
    product: ProductJson,
) -> tuple[dict[str, Any], int]:
    """Answer one request to *endpoint*: the payload beside the envelope, and its cost.

    Checks the parameters (:class:`EndpointRefusal` 400), then calls *admit*
    (which refuses with the emulator's own 429 at a balance of zero or below),
    then builds the answer.
    """
    if endpoint == "query":
        _domain(query, _ALL_DOMAINS)
        selection = _selection(query, body)
        _finder_page(selection)
        admit()
        return _finder(catalog, selection)
    if endpoint == "bestsellers":
        return _best_sellers(catalog, query, admit)
    if endpoint == "category":
        return _category_lookup(query, admit)
    if endpoint == "search":
        return _search(catalog, query, admit, product)
    if endpoint == "seller":
        return _sellers(catalog, query, admit)
    if endpoint == "lightningdeal":
        return _lightning_deals(catalog, query, minute, admit)
    raise EndpointRefusal(404, f"unknown path /{endpoint}")
