"""The emulator's seeded data: a catalog of products and a stream of deals.

Everything here is a pure function of the seed, the Keepa minute and the
options, so two emulators with the same seed serve the same JSON at the same
minute, whatever was asked before.

*Catalog.* Product ``i`` (``0 <= i < catalog_size``) has the ASIN ``"B0"`` plus
8 base-36 characters of a seeded bijection of ``i``, so any ASIN can be mapped
back to its index (or found unknown) without a table. Its fixed traits (title,
categories, base price, sales rank, offers, fees) come from a generator seeded
by the seed and the ASIN; a share of them is *sparse*: title, fees, referral
percentage, sales ranks or the buy box price are missing, as in real data.

*Deal stream.* Minute ``m`` brings ``n(m)`` deal updates, ``n`` drawn uniformly
from ``0 .. floor(2 * deals_per_minute)`` by a generator seeded with the seed and
``m``. Each update, in turn, re-updates an ASIN already in the stream (with
probability ``reupdate_share``, drawn uniformly among those seen) or brings the
next catalog product into it. A deal's ``lastUpdate`` is the minute of its
latest update (one entry per ASIN); its ``creationDate`` the minute of its first.
The stream starts ``history_minutes`` before the emulator's start and is
extended to the current minute whenever it is read; every update of a minute
is visible from the first instant of that minute.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs


__all__ = [
    "CATEGORIES",
    "DOMAINS",
    "PRICE_TYPE_COUNT",
    "Catalog",
    "DealStream",
    "SelectionError",
    "parse_selection",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SPACE = 36**8
#: Price types (csv indices) 0..18, as in ``tokenbudget_keepa`` ``PriceType``.
PRICE_TYPE_COUNT = 19
_AMAZON, _NEW, _USED, _SALES, _LISTPRICE = 0, 1, 2, 3, 4
_NEW_FBA, _COUNT_NEW, _COUNT_USED = 10, 11, 12
_RATING, _COUNT_REVIEWS, _BUY_BOX_SHIPPING = 16, 17, 18
#: Keepa's domain ids (7, the former .cn, is gone).
DOMAINS = frozenset({1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12})
#: (root category id, name) pairs the catalog draws from.
CATEGORIES: tuple[tuple[int, str], ...] = (
    (172282, "Electronics"),
    (1055398, "Home & Kitchen"),
    (165793011, "Toys & Games"),
    (3760911, "Beauty & Personal Care"),
    (3375251, "Sports & Outdoors"),
    (283155, "Books"),
    (16310101, "Grocery & Gourmet Food"),
    (2619525011, "Appliances"),
)
_ADJECTIVES = ("Compact", "Deluxe", "Portable", "Classic", "Wireless", "Organic", "Heavy-Duty")
_NOUNS = ("Lamp", "Kettle", "Speaker", "Backpack", "Puzzle", "Blender", "Notebook", "Drill")
_BRANDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", None)
#: The age of a deal each ``dateRange`` allows, in minutes: a day, a week, 31 and 90 days.
DATE_RANGE_MINUTES = (24 * 60, 7 * 24 * 60, 31 * 24 * 60, 90 * 24 * 60)


def _below(rng: random.Random, low: int, high: int | None = None) -> int:
    """``rng.randrange(low, high)`` (or ``randrange(low)``), faster and just as seeded."""
    if high is None:
        low, high = 0, low
    return low + int(rng.random() * (high - low))


def _pick(rng: random.Random, items: Sequence[Any]) -> Any:
    """``rng.choice(items)``, faster."""
    return items[int(rng.random() * len(items))]


def _minus_one_list() -> list[int]:
    return [-1] * PRICE_TYPE_COUNT


@attrs.frozen
class Traits:
    """The fixed traits of one catalog product."""

    asin: str
    title: str | None
    root_category: int
    categories: tuple[int, ...]
    brand: str | None
    price: int
    sales_rank: int | None
    offers_fba: int
    offers_fbm: int
    amazon_offer: bool
    pick_and_pack_fee: int | None
    referral_fee_percent: float | None
    package_weight: int
    rating: int | None
    review_count: int | None
    buy_box_missing: bool
    listed_since: int


class Catalog:
    """The products of the emulator: ASINs to seeded traits."""

    def __init__(self, *, seed: int, size: int, sparse_share: float) -> None:
        self.seed = seed
        self.size = size
        self.sparse_share = sparse_share
        rng = random.Random(f"catalog:{seed}")
        mult = _below(rng, 36**7, _SPACE)
        while mult % 2 == 0 or mult % 3 == 0:
            mult += 1
        self._mult = mult
        self._add = _below(rng, _SPACE)
        self._inverse = pow(mult, -1, _SPACE)
        self._traits: dict[str, Traits] = {}

    def asin(self, index: int) -> str:
        """The ASIN of catalog product *index*."""
        code = (index * self._mult + self._add) % _SPACE
        chars = []
        for _ in range(8):
            code, digit = divmod(code, 36)
            chars.append(_ALPHABET[digit])
        return "B0" + "".join(reversed(chars))

    def index(self, asin: str) -> int | None:
        """The catalog index of *asin*, or ``None`` if the catalog has no such product."""
        if len(asin) != 10 or not asin.startswith("B0"):
            return None
        code = 0
        for char in asin[2:]:
            digit = _ALPHABET.find(char)
            if digit < 0:
                return None
            code = code * 36 + digit
        index = ((code - self._add) * self._inverse) % _SPACE
        return index if index < self.size else None

    def traits(self, asin: str) -> Traits:
        """The seeded traits of a catalog product (cached)."""
        found = self._traits.get(asin)
        if found is None:
            found = self._traits[asin] = self._draw(asin)
        return found

    def _draw(self, asin: str) -> Traits:
        rng = random.Random(f"product:{self.seed}:{asin}")
        sparse = self.sparse_share

        def missing() -> bool:
            return rng.random() < sparse

        root, _name = _pick(rng, CATEGORIES)
        sub = root * 10 + _below(rng, 1, 6)
        fba = _below(rng, 0, 25)
        fbm = _below(rng, 0, 40)
        rated = not missing()
        return Traits(
            asin=asin,
            title=None if missing() else f"{_pick(rng, _ADJECTIVES)} {_pick(rng, _NOUNS)} {asin}",
            root_category=root,
            categories=(root, sub),
            brand=_pick(rng, _BRANDS),
            price=round(math.exp(rng.uniform(math.log(499), math.log(29_999)))),
            sales_rank=None if missing() else round(math.exp(rng.uniform(0, math.log(2_000_000)))),
            offers_fba=fba,
            offers_fbm=fbm,
            amazon_offer=rng.random() < 0.3,
            pick_and_pack_fee=None if missing() else _below(rng, 300, 900),
            referral_fee_percent=None if missing() else _pick(rng, (8.0, 15.0, 15.0, 17.0)),
            package_weight=_below(rng, 50, 5000),
            rating=_below(rng, 10, 51) if rated else None,
            review_count=_below(rng, 1, 20_000) if rated else None,
            buy_box_missing=missing() or fba + fbm == 0,
            listed_since=_below(rng, 2_000_000, 7_000_000),
        )


def _deal_rng(seed: int, asin: str, minute: int) -> random.Random:
    return random.Random(f"deal:{seed}:{asin}:{minute}")


def deal_prices(catalog: Catalog, asin: str, minute: int) -> dict[str, Any]:
    """The prices of a deal update of *asin* at *minute*: current, avg, delta, deltaPercent.

    ``delta`` is ``avg - current`` and ``deltaPercent`` its percentage of ``avg``,
    both positive for a price drop (and for a better sales rank).
    """
    traits = catalog.traits(asin)
    rng = _deal_rng(catalog.seed, asin, minute)
    current = _minus_one_list()
    avg = [_minus_one_list() for _ in range(4)]
    delta = [_minus_one_list() for _ in range(4)]
    percent = [_minus_one_list() for _ in range(4)]
    priced = [_NEW, _USED] + ([_AMAZON] if traits.amazon_offer else [])
    if traits.offers_fba:
        priced.append(_NEW_FBA)
    for price_type in priced:
        base = traits.price if price_type != _USED else traits.price * 7 // 10
        drop = _below(rng, 3, 71)
        current[price_type] = max(1, base * (100 - drop) // 100)
        for date_range in range(4):
            reference = max(1, base * (100 + _below(rng, -5, 6) * date_range) // 100)
            avg[date_range][price_type] = reference
            delta[date_range][price_type] = reference - current[price_type]
            percent[date_range][price_type] = round(
                100 * (reference - current[price_type]) / reference
            )
    if traits.sales_rank is not None:
        rank = max(1, traits.sales_rank * _below(rng, 40, 101) // 100)
        current[_SALES] = rank
        for date_range in range(4):
            reference = max(1, traits.sales_rank * (100 + 10 * date_range) // 100)
            avg[date_range][_SALES] = reference
            delta[date_range][_SALES] = reference - rank
            percent[date_range][_SALES] = round(100 * (reference - rank) / reference)
    current[_LISTPRICE] = traits.price * 12 // 10
    current[_COUNT_NEW] = traits.offers_fba + traits.offers_fbm
    current[_COUNT_USED] = _below(rng, 0, 8)
    if traits.rating is not None and traits.review_count is not None:
        current[_RATING] = traits.rating
        current[_COUNT_REVIEWS] = traits.review_count
    return {"current": current, "avg": avg, "delta": delta, "deltaPercent": percent}


def deal_json(catalog: Catalog, asin: str, *, created: int, minute: int) -> dict[str, Any]:
    """The JSON object of *asin*'s deal as last updated at *minute*."""
    traits = catalog.traits(asin)
    prices = deal_prices(catalog, asin, minute)
    return {
        "asin": asin,
        "parentAsin": asin,
        "title": traits.title,
        "rootCat": traits.root_category,
        "categories": list(traits.categories),
        **prices,
        "creationDate": created,
        "lastUpdate": minute,
        "image": f"{asin}.jpg",
        "minRating": traits.rating if traits.rating is not None else -1,
    }


@attrs.define
class DealStream:
    """The deal updates, materialized minute by minute up to the last minute read."""

    catalog: Catalog
    seed: int
    deals_per_minute: float
    reupdate_share: float
    first_minute: int
    disorder_minutes: int
    #: The last materialized minute.
    upto: int = attrs.field(init=False)
    latest: dict[str, int] = attrs.field(init=False, factory=dict)
    created: dict[str, int] = attrs.field(init=False, factory=dict)
    order: list[str] = attrs.field(init=False, factory=list)
    next_new: int = attrs.field(init=False, default=0)
    _cache: dict[str, tuple[int, dict[str, Any]]] = attrs.field(init=False, factory=dict)
    _jitters: dict[tuple[str, int], int] = attrs.field(init=False, factory=dict)
    _memo: dict[tuple[object, ...], list[dict[str, Any]]] = attrs.field(init=False, factory=dict)
    _memo_minute: int | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.upto = self.first_minute - 1

    def extend(self, minute: int) -> None:
        """Materialize the updates of every minute up to *minute*, inclusive."""
        for current in range(self.upto + 1, minute + 1):
            rng = random.Random(f"deals:{self.seed}:{current}")
            count = int(rng.random() * (math.floor(2 * self.deals_per_minute) + 1))
            for _ in range(count):
                reupdate = self.order and (
                    rng.random() < self.reupdate_share or self.next_new >= self.catalog.size
                )
                if reupdate:
                    asin = self.order[_below(rng, len(self.order))]
                else:
                    asin = self.catalog.asin(self.next_new)
                    self.next_new += 1
                    self.order.append(asin)
                    self.created[asin] = current
                self.latest[asin] = current
        self.upto = max(self.upto, minute)

    def deal(self, asin: str) -> dict[str, Any]:
        """The JSON of *asin*'s latest deal (cached until it is updated again)."""
        minute = self.latest[asin]
        cached = self._cache.get(asin)
        if cached is None or cached[0] != minute:
            cached = (
                minute,
                deal_json(self.catalog, asin, created=self.created[asin], minute=minute),
            )
            self._cache[asin] = cached
        return cached[1]

    def jitter(self, asin: str, minute: int) -> int:
        """The local disorder of a deal in ``sortType=1`` pages: 0..disorder_minutes."""
        if self.disorder_minutes <= 0:
            return 0
        key = (asin, minute)
        found = self._jitters.get(key)
        if found is None:
            rng = random.Random(f"jitter:{self.seed}:{asin}:{minute}")
            found = self._jitters[key] = _below(rng, self.disorder_minutes + 1)
        return found

    def select(
        self, selection: Selection, *, now_minute: int, window: tuple[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """Every deal matching *selection* now, in the selection's order (all pages).

        The result depends only on the selection (but its page), the window and
        the minute, so it is memoized for the current minute: paging costs little.
        Callers must not mutate the list.
        """
        self.extend(now_minute)
        if window is None:
            low, high = now_minute - DATE_RANGE_MINUTES[selection.date_range], now_minute
        else:
            low, high = window
        if self._memo_minute != now_minute:
            self._memo.clear()
            self._memo_minute = now_minute
        key = (selection.key(), low, high)
        found = self._memo.get(key)
        if found is None:
            chosen = [
                deal
                for deal in (
                    self.deal(asin)
                    for asin, minute in self.latest.items()
                    if low <= minute <= high and minute <= now_minute
                )
                if selection.matches(deal)
            ]
            found = self._memo[key] = selection.sort(chosen, self)
        return found


class SelectionError(ValueError):
    """A deal selection the emulator answers with HTTP 400."""


_INT_FIELDS = ("page", "domainId", "dateRange", "sortType", "minRating")
_RANGE_FIELDS = ("deltaPercentRange", "deltaRange", "salesRankRange", "currentRange")
_CATEGORY_FIELDS = ("includeCategories", "excludeCategories")
_APPLIED_FLAGS = ("hasReviews",)
#: Flags the emulator validates but does not apply (documented).
ACCEPTED_FLAGS = (
    "isLowest",
    "isLowest90",
    "isLowestOffer",
    "isOutOfStock",
    "isBackInStock",
    "singleVariation",
    "isRangeEnabled",
    "isFilterEnabled",
    "filterErotic",
    "mustHaveAmazonOffer",
    "mustNotHaveAmazonOffer",
    "isPrimeExclusive",
)
_KNOWN = frozenset(
    (
        *_INT_FIELDS,
        *_RANGE_FIELDS,
        *_CATEGORY_FIELDS,
        *_APPLIED_FLAGS,
        *ACCEPTED_FLAGS,
        "priceTypes",
        "titleSearch",
    )
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@attrs.frozen
class Selection:
    """A validated deal selection: what the emulator applies of it."""

    price_type: int
    page: int = 0
    date_range: int = 0
    sort_type: int = 1
    ranges: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)
    include: frozenset[int] = frozenset()
    exclude: frozenset[int] = frozenset()
    min_rating: int = -1
    has_reviews: bool = False
    title_search: str | None = None
    ignored: tuple[str, ...] = ()

    def key(self) -> tuple[object, ...]:
        """What decides the whole ordered result (everything but the page)."""
        return (
            self.price_type,
            self.date_range,
            self.sort_type,
            tuple(sorted(self.ranges.items())),
            self.include,
            self.exclude,
            self.min_rating,
            self.has_reviews,
            self.title_search,
        )

    def _range_value(self, name: str, deal: Mapping[str, Any]) -> int:
        index = self.price_type
        if name == "deltaPercentRange":
            return int(deal["deltaPercent"][self.date_range][index])
        if name == "deltaRange":
            return int(deal["delta"][self.date_range][index])
        if name == "currentRange":
            return int(deal["current"][index])
        return int(deal["current"][_SALES])

    def matches(self, deal: Mapping[str, Any]) -> bool:  # noqa: C901, PLR0911
        """Whether *deal* passes the selection's filters."""
        current = deal["current"]
        if current[self.price_type] < 0:
            return False
        for name, (low, high) in self.ranges.items():
            value = self._range_value(name, deal)
            if name == "salesRankRange" and value < 0:
                return False
            if not low <= value <= high:
                return False
        if self.include or self.exclude:
            categories = {deal["rootCat"], *deal["categories"]}
            if self.include and not categories & self.include:
                return False
            if self.exclude and categories & self.exclude:
                return False
        if self.min_rating > 0 and current[_RATING] < self.min_rating:
            return False
        if self.has_reviews and current[_COUNT_REVIEWS] <= 0:
            return False
        if self.title_search is not None:
            title = deal["title"]
            if title is None or self.title_search.lower() not in title.lower():
                return False
        return True

    def sort(self, deals: list[dict[str, Any]], stream: DealStream) -> list[dict[str, Any]]:
        """Order *deals* by the selection's ``sortType`` (see the emulator's docs)."""
        kind = abs(self.sort_type)
        index, date_range = self.price_type, self.date_range
        if kind == 1:
            deals.sort(key=lambda d: d["asin"])
            deals.sort(
                key=lambda d: d["lastUpdate"] + stream.jitter(d["asin"], d["lastUpdate"]),
                reverse=True,
            )
        elif kind == 2:
            deals.sort(key=lambda d: (-d["delta"][date_range][index], d["asin"]))
        elif kind == 3:
            deals.sort(
                key=lambda d: (
                    d["current"][_SALES] if d["current"][_SALES] > 0 else math.inf,
                    d["asin"],
                )
            )
        else:
            deals.sort(key=lambda d: (-d["deltaPercent"][date_range][index], d["asin"]))
        if self.sort_type < 0:
            deals.reverse()
        return deals


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise SelectionError(message)


def parse_selection(raw: object) -> Selection:
    """Validate a decoded selection; raise :class:`SelectionError` naming the bad field."""
    _need(isinstance(raw, Mapping), f"selection must be a JSON object, got {raw!r}")
    assert isinstance(raw, Mapping)  # noqa: S101 (narrowing for mypy)
    fields: Mapping[str, Any] = raw
    price_types = fields.get("priceTypes")
    _need(
        isinstance(price_types, list) and len(price_types) == 1,
        f"priceTypes must be a list of exactly one price type, got {price_types!r}",
    )
    assert isinstance(price_types, list)  # noqa: S101
    price_type = price_types[0]
    _need(
        _is_int(price_type) and 0 <= price_type < PRICE_TYPE_COUNT,
        f"priceTypes holds an unknown price type {price_type!r}",
    )
    for name in _INT_FIELDS:
        if name in fields:
            _need(_is_int(fields[name]), f"{name} must be an integer, got {fields[name]!r}")
    page = fields.get("page", 0)
    _need(page >= 0, f"page must be >= 0, got {page!r}")
    date_range = fields.get("dateRange", 0)
    _need(0 <= date_range <= 3, f"dateRange must be 0..3, got {date_range!r}")
    sort_type = fields.get("sortType", 1)
    _need(1 <= abs(sort_type) <= 4, f"sortType must be +-1..4, got {sort_type!r}")
    if "domainId" in fields:
        _need(fields["domainId"] in DOMAINS, f"unknown domainId {fields['domainId']!r}")
    ranges: dict[str, tuple[int, int]] = {}
    for name in _RANGE_FIELDS:
        if name in fields:
            value = fields[name]
            _need(
                isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value),
                f"{name} must be a list of two integers, got {value!r}",
            )
            ranges[name] = (value[0], value[1])
    categories: dict[str, frozenset[int]] = {}
    for name in _CATEGORY_FIELDS:
        value = fields.get(name, [])
        _need(
            isinstance(value, list) and all(_is_int(v) for v in value),
            f"{name} must be a list of integers, got {value!r}",
        )
        categories[name] = frozenset(value)
    for name in (*_APPLIED_FLAGS, *ACCEPTED_FLAGS):
        if name in fields:
            _need(isinstance(fields[name], bool), f"{name} must be a boolean, got {fields[name]!r}")
    title = fields.get("titleSearch")
    _need(title is None or isinstance(title, str), f"titleSearch must be a string, got {title!r}")
    min_rating = fields.get("minRating", -1)
    return Selection(
        price_type=price_type,
        page=page,
        date_range=date_range,
        sort_type=sort_type,
        ranges=ranges,
        include=categories["includeCategories"],
        exclude=categories["excludeCategories"],
        min_rating=min_rating,
        has_reviews=bool(fields.get("hasReviews", False)),
        title_search=title or None,
        ignored=tuple(sorted(name for name in fields if name not in _KNOWN)),
    )


def offers_json(catalog: Catalog, asin: str, *, limit: int, minute: int) -> list[dict[str, Any]]:
    """The live offers of a product (at most *limit*), seeded by the ASIN and minute."""
    traits = catalog.traits(asin)
    rng = random.Random(f"offers:{catalog.seed}:{asin}:{minute}")
    total = min(limit, traits.offers_fba + traits.offers_fbm + (1 if traits.amazon_offer else 0))
    offers = []
    for number in range(total):
        amazon = traits.amazon_offer and number == 0
        fba = amazon or number <= traits.offers_fba
        price = max(1, traits.price * _below(rng, 80, 131) // 100)
        shipping = 0 if fba else _pick(rng, (0, 0, 399, 599))
        offers.append(
            {
                "offerId": number,
                "sellerId": "ATVPDKIKX0DER"
                if amazon
                else "A" + "".join(_pick(rng, _ALPHABET) for _ in range(13)),
                "isFBA": fba,
                "isPrime": fba,
                "isAmazon": amazon,
                "condition": 1 if rng.random() < 0.85 else 2,
                "offerCSV": [minute - _below(rng, 0, 600), price, shipping],
                "lastSeen": minute,
            }
        )
    return offers


def history(rng: random.Random, *, start: int, end: int, value: int, points: int) -> list[int]:
    """A flat ``[t1, v1, t2, v2, ...]`` history ending at *value*."""
    if value < 0:
        return [start, -1]
    times = sorted(_below(rng, start, max(start + 1, end)) for _ in range(points - 1))
    flat: list[int] = []
    for time in times:
        flat += [time, max(1, value * _below(rng, 85, 126) // 100)]
    return [*flat, end, value]


def product_json(  # noqa: C901, PLR0912
    catalog: Catalog,
    stream: DealStream,
    asin: str,
    *,
    minute: int,
    options: Mapping[str, int],
    offers_failed: bool,
) -> tuple[dict[str, Any], int]:
    """The JSON of one catalog product as ``/product`` serves it, and the offers found.

    The current prices follow the product's latest deal update when it has one.
    """
    traits = catalog.traits(asin)
    if asin in stream.latest:
        prices = stream.deal(asin)
        current = list(prices["current"])
        avg = list(prices["avg"][options.get("date_range", 0)])
        last_update = prices["lastUpdate"]
    else:
        prices = deal_prices(catalog, asin, traits.listed_since)
        current = list(prices["current"])
        avg = list(prices["avg"][0])
        last_update = traits.listed_since
    product: dict[str, Any] = {
        "asin": asin,
        "domainId": options["domain"],
        "productType": 0,
        "rootCategory": traits.root_category,
        "categories": list(traits.categories),
        "brand": traits.brand,
        "productGroup": "Product",
        "lastUpdate": max(last_update, minute - 30),
        "lastPriceChange": last_update,
        "packageWeight": traits.package_weight,
        "trackingSince": traits.listed_since,
    }
    if traits.title is not None:
        product["title"] = traits.title
    if traits.pick_and_pack_fee is not None:
        product["fbaFees"] = {"pickAndPackFee": traits.pick_and_pack_fee}
    if traits.referral_fee_percent is not None:
        product["referralFeePercentage"] = traits.referral_fee_percent
    rng = random.Random(f"history:{catalog.seed}:{asin}:{last_update}")
    if options.get("history", 1):
        csv: list[list[int] | None] = [None] * PRICE_TYPE_COUNT
        for index, value in enumerate(current):
            if value >= 0 and (index not in (_RATING, _COUNT_REVIEWS) or options.get("rating")):
                csv[index] = history(
                    rng, start=traits.listed_since, end=last_update, value=value, points=4
                )
        product["csv"] = csv
        if traits.sales_rank is not None:
            product["salesRanks"] = {str(traits.categories[1]): csv[_SALES]}
    buy_box = not traits.buy_box_missing and (options.get("buybox") or options.get("offers"))
    buy_box_price = current[_NEW] if buy_box else -1
    found_offers = 0
    offer_limit = options.get("offers", 0)
    if offer_limit:
        offers = (
            [] if offers_failed else offers_json(catalog, asin, limit=offer_limit, minute=minute)
        )
        found_offers = len(offers)
        product["offers"] = offers
        product["liveOffersOrder"] = sorted(
            range(len(offers)), key=lambda i: offers[i]["offerCSV"][1] + offers[i]["offerCSV"][2]
        )
        product["offersSuccessful"] = not offers_failed
    if buy_box:
        product["buyBoxSellerIdHistory"] = [str(last_update), "ATVPDKIKX0DER"]
    if options.get("stats"):
        stats: dict[str, Any] = {
            "current": current,
            "avg": avg,
            "min": [None if v < 0 else [traits.listed_since, v * 9 // 10] for v in current],
            "max": [None if v < 0 else [traits.listed_since, v * 11 // 10] for v in current],
            "totalOfferCount": traits.offers_fba + traits.offers_fbm,
            "offerCountFBA": traits.offers_fba,
            "offerCountFBM": traits.offers_fbm,
            "salesRankDrops30": _below(rng, 0, 60) if traits.sales_rank is not None else -1,
        }
        if buy_box:
            stats["buyBoxPrice"] = buy_box_price
            stats["buyBoxShipping"] = 0
            stats["buyBoxIsFBA"] = traits.offers_fba > 0
        product["stats"] = stats
    return product, found_offers


def chunk(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """*items* in slices of *size*."""
    return [items[i : i + size] for i in range(0, len(items), size)]
