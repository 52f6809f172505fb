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
_IMAGE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-+"
_SPACE = 36**8
#: Entries of every price-type array Keepa sends (``current``, ``avg``, ``csv``, ``stats``
#: rows...): real answers carry 34, one per price type 0 (AMAZON) .. 33 (PRIME_EXCL).
PRICE_TYPE_COUNT = 34
_AMAZON, _NEW, _USED, _SALES, _LISTPRICE, _COLLECTIBLE = 0, 1, 2, 3, 4, 5
_NEW_FBM_SHIPPING, _WAREHOUSE, _NEW_FBA, _COUNT_NEW, _COUNT_USED = 7, 9, 10, 11, 12
_COUNT_COLLECTIBLE, _EXTRA_INFO_UPDATES = 14, 15
_RATING, _COUNT_REVIEWS, _BUY_BOX_SHIPPING = 16, 17, 18
_USED_NEW, _USED_VERY_GOOD, _USED_GOOD, _USED_ACCEPTABLE = 19, 20, 21, 22
_BUY_BOX_USED_SHIPPING = 32
#: Price types whose ``csv`` history holds (time, price, shipping) triplets, not pairs.
WITH_SHIPPING = frozenset({7, 18, *range(19, 28), 28, 29, 32})
#: The price types a deal selection may ask for: Keepa's deal-relevant types (its Java
#: client's ``CsvType.isDealRelevant``) and BUY_BOX_SHIPPING, which its docs list too.
DEAL_PRICE_TYPES = frozenset({0, 1, 2, 3, 5, 6, 7, 8, 9, 10, *range(18, 28), 32, 33})
#: Keepa's domain ids (7, the former .cn, is gone) for ``/product``.
DOMAINS = frozenset({1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12})
#: The domain ids ``/deal`` serves: 1-6 and 8-11.
DEAL_DOMAINS = frozenset({1, 2, 3, 4, 5, 6, 8, 9, 10, 11})
#: Keepa's "unknown root category" (the ``"?"`` of a deal page's categories).
UNKNOWN_CATEGORY = 2**63 - 1
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
#: The age of a deal each ``dateRange`` allows, in minutes: a day, a week, 31 and 90 days;
#: 4 (found in exports of Keepa's deal finder, not in its API docs) as 90 days.
DATE_RANGE_MINUTES = (24 * 60, 7 * 24 * 60, 31 * 24 * 60, 90 * 24 * 60, 90 * 24 * 60)


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
    title: str
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
    #: The parent ASIN of a variation, or None (``historical-variations`` costs 1 with one).
    parent_asin: str | None = None
    #: The image file name (a deal sends it as a list of character codes).
    image: str = ""
    #: The warehouse condition of its deals (0: none; 2-5 used conditions), and its comment.
    warehouse_condition: int = 0
    #: A share of real deals has ``creationDate`` two minutes after ``lastUpdate``.
    created_late: bool = False
    #: Price types Keepa has no data on for it: ``avg`` -2 there (-1: no offer in the interval).
    no_data: tuple[int, ...] = ()
    #: Minutes before a deal update that its prices without a change have held.
    held_for: int = 0
    #: Keepa could not place it in a root category: its deals say ``rootCat`` 2**63 - 1.
    root_unknown: bool = False


#: Live offer counts and how often products have them: most have fewer than 10, as real
#: batches show (about 7 tokens a product with ``offers``, ``rating`` and ``stock``).
_OFFER_COUNT_BANDS = ((0.08, 0, 0), (0.88, 1, 9), (0.97, 10, 19), (1.0, 20, 40))
_WAREHOUSE_COMMENTS = (
    "Little to no damage on cover or pages. Item will come in original packaging.",
    "Minor damage on pages. Minor packaging damage observed during inspection.",
    "Minor cosmetic damage on the item. Item will come in original packaging.",
)


def _image_name(bits: int) -> str:
    """An image file name as Amazon's (``5100hXt8PRL.jpg``) from 52 random bits."""
    chars = ["45678"[bits % 5], "1"]
    bits //= 5
    for _ in range(8):
        bits, digit = divmod(bits, 64)
        chars.append(_IMAGE_ALPHABET[digit])
    return "".join(chars) + "L.jpg"


def _offer_count(rng: random.Random) -> int:
    draw = rng.random()
    for upto, low, high in _OFFER_COUNT_BANDS:
        if draw < upto:
            return _below(rng, low, high + 1)
    return 0  # pragma: no cover (the last band ends at 1.0)


#: Traits are a pure function of (seed, size, sparse share, ASIN) and frozen: emulators of
#: the same seed share them (tests start many), up to this many.
_SHARED_TRAITS: dict[tuple[int, int, float, str], Traits] = {}
_SHARED_TRAITS_MAX = 200_000
#: The same for deals (what selections read of them), by catalog, ASIN, creation and minute.
_SHARED_DEALS: dict[tuple[int, int, float, str, int, int], dict[str, Any]] = {}
_SHARED_DEALS_MAX = 20_000


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
        """The seeded traits of a catalog product (cached, across catalogs of the same seed)."""
        found = self._traits.get(asin)
        if found is None:
            key = (self.seed, self.size, self.sparse_share, asin)
            found = _SHARED_TRAITS.get(key)
            if found is None:
                found = self._draw(asin)
                if len(_SHARED_TRAITS) >= _SHARED_TRAITS_MAX:
                    _SHARED_TRAITS.clear()
                _SHARED_TRAITS[key] = found
            self._traits[asin] = found
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
        # Real products and deals always have a title: a "sparse" one is only plainer
        # (drawn as before, so the rest of the seeded data stays as it was).
        plain = missing()
        title = (
            f"Item {asin}" if plain else f"{_pick(rng, _ADJECTIVES)} {_pick(rng, _NOUNS)} {asin}"
        )
        base = {
            "brand": _pick(rng, _BRANDS),
            "price": round(math.exp(rng.uniform(math.log(499), math.log(29_999)))),
            "sales_rank": None
            if missing()
            else round(math.exp(rng.uniform(0, math.log(2_000_000)))),
            "_amazon": rng.random() < 0.3,  # drawn, superseded below
            "pick_and_pack_fee": None if missing() else _below(rng, 300, 900),
            "referral_fee_percent": None if missing() else _pick(rng, (8.0, 15.0, 15.0, 17.0)),
            "package_weight": _below(rng, 50, 5000),
            "rating": _below(rng, 10, 51) if rated else None,
            "review_count": _below(rng, 1, 20_000) if rated else None,
            "buy_box_missing": missing() or fba + fbm == 0,
            "listed_since": _below(rng, 2_000_000, 7_000_000),
        }
        del base["_amazon"]
        no_buy_box = bool(base.pop("buy_box_missing"))
        # The later traits are drawn after those (which stay as they were before them).
        live = _offer_count(rng)
        amazon = live > 0 and rng.random() < 0.3
        fba = _below(rng, 0, live - amazon + 1) if live else 0
        fbm = live - amazon - fba
        warehouse = _pick(rng, (2, 3, 4, 5)) if rng.random() < 0.025 else 0
        more = rng
        return Traits(
            asin=asin,
            title=title,
            root_category=root,
            categories=(root, sub),
            **base,
            offers_fba=fba,
            offers_fbm=fbm,
            amazon_offer=amazon,
            buy_box_missing=no_buy_box or live == 0,
            parent_asin=self.asin(_below(more, self.size)) if more.random() < 0.1 else None,
            image=_image_name(more.getrandbits(52)),
            warehouse_condition=warehouse,
            created_late=more.random() < 0.007,
            no_data=tuple(
                t for t, bit in enumerate(f"{more.getrandbits(68):068b}"[::2]) if bit == "1"
            ),
            held_for=_below(more, 1, 200_000),
            root_unknown=more.random() < 0.005,
        )


def _deal_rng(seed: int, asin: str, minute: int) -> random.Random:
    return random.Random(f"deal:{seed}:{asin}:{minute}")


def _set_row(
    rows: Mapping[str, list[Any]],
    price_type: int,
    current: int,
    references: Sequence[int],
) -> None:
    """Fill one price type's ``current``, ``avg``, ``delta`` and ``deltaPercent`` entries."""
    rows["current"][price_type] = current
    avg, delta, percent = rows["avg"], rows["delta"], rows["deltaPercent"]
    for date_range, reference in enumerate(references):
        avg[date_range][price_type] = reference
        delta[date_range][price_type] = reference - current
        percent[date_range][price_type] = round(100 * (reference - current) / reference)


def deal_prices(catalog: Catalog, asin: str, minute: int) -> dict[str, Any]:
    """The prices of a deal update of *asin* at *minute* (see :func:`_deal_rows`)."""
    return _deal_rows(catalog, asin, minute)[0]


def _deal_rows(  # noqa: C901, PLR0912
    catalog: Catalog, asin: str, minute: int
) -> tuple[dict[str, Any], list[int], random.Random]:
    """The prices of a deal update of *asin* at *minute*: current, avg, delta, deltaPercent.

    As in Keepa's deals: 34 entries per row, ``current`` -1 where there is no
    offer, ``avg`` -1 (no offer in the interval) or -2 (no data) there, and
    ``delta`` (``avg - current``) and ``deltaPercent`` (its rounded percentage of
    ``avg``) 0 where either is missing; both are positive for a price drop (and
    for a better sales rank), and a ``deltaPercent`` of -1 is a 1 % rise.
    """
    traits = catalog.traits(asin)
    rng = _deal_rng(catalog.seed, asin, minute)
    current = _minus_one_list()
    rows: dict[str, Any] = {
        "current": current,
        "avg": [_minus_one_list() for _ in range(4)],
        "delta": [[0] * PRICE_TYPE_COUNT for _ in range(4)],
        "deltaPercent": [[0] * PRICE_TYPE_COUNT for _ in range(4)],
    }
    priced = [_NEW, _USED] + ([_AMAZON] if traits.amazon_offer else [])
    if traits.offers_fba:
        priced.append(_NEW_FBA)
    drops: dict[int, int] = {}
    for price_type in priced:
        base = traits.price if price_type != _USED else traits.price * 7 // 10
        drop = drops[price_type] = _below(rng, 3, 71)
        wiggle = _below(rng, -5, 6)
        references = [max(1, base * (100 + wiggle * date_range) // 100) for date_range in range(4)]
        _set_row(rows, price_type, max(1, base * (100 - drop) // 100), references)
    if traits.sales_rank is not None:
        rank = max(1, traits.sales_rank * _below(rng, 40, 101) // 100)
        references = [
            max(1, traits.sales_rank * (100 + 10 * date_range) // 100) for date_range in range(4)
        ]
        _set_row(rows, _SALES, rank, references)
    current[_LISTPRICE] = traits.price * 12 // 10
    current[_COUNT_NEW] = traits.offers_fba + traits.offers_fbm + traits.amazon_offer
    current[_COUNT_USED] = _below(rng, 0, 8)
    if traits.rating is not None and traits.review_count is not None:
        current[_RATING] = traits.rating
        current[_COUNT_REVIEWS] = traits.review_count
    # The other price types are drawn after those (which stay as they were before them):
    # shipping-included prices, used conditions, the buy boxes, warehouse.
    more = rng
    shipping = _pick(more, (0, 399, 599))
    derived: list[tuple[int, int, int]] = []  # (price type, source type, added)
    if traits.offers_fbm:
        derived.append((_NEW_FBM_SHIPPING, _NEW, shipping))
    if not traits.buy_box_missing:
        derived.append((_BUY_BOX_SHIPPING, _NEW, 0))
    if current[_USED] > 0:
        conditions = more.getrandbits(4) | 8  # the acceptable one always; the others at random
        derived.extend(
            (price_type, _USED, shipping + premium)
            for bit, price_type, premium in (
                (1, _USED_NEW, 240),
                (2, _USED_VERY_GOOD, 120),
                (4, _USED_GOOD, 50),
                (8, _USED_ACCEPTABLE, 0),
            )
            if conditions & bit
        )
        derived.append((_BUY_BOX_USED_SHIPPING, _USED, shipping))
    avg, delta, percent = rows["avg"], rows["delta"], rows["deltaPercent"]
    for price_type, source, added in derived:
        value = current[price_type] = current[source] + added
        for r in range(4):
            reference = avg[r][price_type] = avg[r][source] + added
            delta[r][price_type] = delta[r][source]
            percent[r][price_type] = round(100 * (reference - value) / reference)
    if traits.warehouse_condition:
        base = traits.price * 8 // 10
        references = [max(1, base * (100 + 3 * r) // 100) for r in range(4)]
        _set_row(rows, _WAREHOUSE, max(1, base * (100 - _below(more, 5, 40)) // 100), references)
    if more.random() < 0.1:
        current[_COLLECTIBLE] = traits.price * _below(more, 120, 300) // 100
        current[_COUNT_COLLECTIBLE] = _below(more, 1, 4)
    current[_EXTRA_INFO_UPDATES] = _below(more, 0, 12)
    for row in rows["avg"]:
        for price_type in traits.no_data:
            if row[price_type] == -1:
                row[price_type] = -2  # Keepa's "no data" beside "no offer"
    return rows, [*priced, *(d[0] for d in derived)], more


def _deal_extras(
    traits: Traits, rows: Mapping[str, Any], changed: list[int], rng: random.Random, minute: int
) -> dict[str, Any]:
    """The fields of a real deal beside its prices, seeded."""
    current = rows["current"]
    # What changed at this update holds since it; the rest since earlier (or -1: never).
    held = minute - traits.held_for
    gone = traits.listed_since
    since = [
        held if value >= 0 else (gone if price_type in traits.no_data else -1)
        for price_type, value in enumerate(current)
    ]
    for price_type in changed:
        since[price_type] = minute
    back_in_stock = [False] * PRICE_TYPE_COUNT
    if rng.random() < 0.03:
        back_in_stock[_pick(rng, (_NEW, _USED, _COLLECTIBLE, _USED_GOOD))] = True
    if traits.sales_rank is None:
        drops = [-1, -1, -1, -1]
    else:
        drops = [_below(rng, 0, 6)]
        for _ in range(3):
            drops.append(drops[-1] + _below(rng, 0, 8))
    lightning = rng.random() < 0.017
    lightning_start = minute - _below(rng, 100_000, 4_000_000) if lightning else 0
    extras: dict[str, Any] = {
        "backInStock": back_in_stock,
        "currentSince": since,
        "dateIntervalIndex": 0,
        "lightningEnd": lightning_start + 360 if lightning else 0,
        "lightningStart": lightning_start,
        "salesRankDrops180": drops[2],
        "salesRankDrops30": drops[0],
        "salesRankDrops365": drops[3],
        "salesRankDrops90": drops[1],
        "warehouseCondition": traits.warehouse_condition,
    }
    if traits.warehouse_condition:
        extras["warehouseConditionComment"] = _pick(rng, _WAREHOUSE_COMMENTS)
    return extras


def deal_json(
    catalog: Catalog, asin: str, *, created: int, minute: int, complete: bool = True
) -> dict[str, Any]:
    """The JSON object of *asin*'s deal as last updated at *minute*, shaped as Keepa's.

    The fields of real deal objects, in their (alphabetical) order; a deal first
    seen at *minute* of a product with ``created_late`` reports a ``creationDate``
    two minutes after its ``lastUpdate``, as a share of real deals does. With
    ``complete=False`` only what a selection filters and sorts on is made (the
    prices, categories, title, dates); :func:`complete_deal` adds the rest.
    """
    traits = catalog.traits(asin)
    rows, changed, _rng = _deal_rows(catalog, asin, minute)
    # The last change of what this update changed: from the day's reference to now
    # (positive for a drop, as ``delta``); 0 for the rest.
    day_delta = rows["delta"][0]
    delta_last = [0] * PRICE_TYPE_COUNT
    for price_type in changed:
        delta_last[price_type] = day_delta[price_type]
    rows["deltaLast"] = delta_last
    deal: dict[str, Any] = {
        "asin": asin,
        "title": traits.title,
        "rootCat": UNKNOWN_CATEGORY if traits.root_unknown else traits.root_category,
        "categories": [traits.categories[1]],
        **rows,
        "creationDate": created + 2 if traits.created_late and created == minute else created,
        "lastUpdate": minute,
        "warehouseCondition": traits.warehouse_condition,
    }
    if complete:
        complete_deal(catalog, deal, changed)
    return deal


def complete_deal(catalog: Catalog, deal: dict[str, Any], changed: Sequence[int]) -> None:
    """Add the fields a deal has beside what selections use, in place (key order kept sorted).

    *changed* are the price types its update changed (their ``currentSince`` is the update).
    """
    if "currentSince" in deal:
        return
    asin, minute = deal["asin"], deal["lastUpdate"]
    traits = catalog.traits(asin)
    rng = random.Random(f"deal-extra:{catalog.seed}:{asin}:{minute}")
    extras = _deal_extras(traits, deal, list(changed), rng, minute)
    merged = {**deal, **extras, "image": [ord(char) for char in traits.image]}
    deal.clear()
    deal.update((name, merged[name]) for name in sorted(merged))


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
    #: ASIN -> the update it was dropped at: out of every selection until its next update.
    dropped: dict[str, int] = attrs.field(init=False, factory=dict)

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
            created = self.created[asin]
            catalog = self.catalog
            key = (catalog.seed, catalog.size, catalog.sparse_share, asin, created, minute)
            core = _SHARED_DEALS.get(key)
            if core is None:
                core = deal_json(catalog, asin, created=created, minute=minute, complete=False)
                if len(_SHARED_DEALS) >= _SHARED_DEALS_MAX:
                    _SHARED_DEALS.clear()
                _SHARED_DEALS[key] = core
            # A copy of its own (completing it adds keys); the shared rows are never changed.
            cached = self._cache[asin] = (minute, dict(core))
        return cached[1]

    def drop(self, asin: str) -> None:
        """Take *asin*'s deal out of every selection until it is updated again."""
        self.dropped[asin] = self.latest[asin]
        self._memo.clear()

    def complete(self, deals: Sequence[dict[str, Any]]) -> None:
        """Give *deals* (from :meth:`deal` or :meth:`select`) every field of a real deal."""
        for deal in deals:
            if "currentSince" not in deal:
                changed = _deal_rows(self.catalog, deal["asin"], deal["lastUpdate"])[1]
                complete_deal(self.catalog, deal, changed)

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
                    if low <= minute <= high
                    and minute <= now_minute
                    and self.dropped.get(asin) != minute
                )
                if selection.matches(deal)
            ]
            found = self._memo[key] = selection.sort(chosen, self)
        return found


class SelectionError(ValueError):
    """A deal selection the emulator answers with HTTP 400."""


_INT_FIELDS = ("page", "domainId", "dateRange", "sortType", "minRating")
_RANGE_FIELDS = (
    "deltaPercentRange",
    "deltaRange",
    "deltaLastRange",
    "salesRankRange",
    "currentRange",
)
_CATEGORY_FIELDS = ("includeCategories", "excludeCategories")
_APPLIED_FLAGS = ("hasReviews",)
#: Flags the emulator validates but does not apply (documented).
ACCEPTED_FLAGS = (
    "isLowest",
    "isLowest90",
    "isLowestOffer",
    "isHighest",
    "isOutOfStock",
    "isBackInStock",
    "isRisers",
    "singleVariation",
    "isRangeEnabled",
    "isFilterEnabled",
    "filterErotic",
    "mustHaveAmazonOffer",
    "mustNotHaveAmazonOffer",
    "isPrimeExclusive",
)
#: Keepa's string-array attribute filters (its Java client's ``DealRequest``): validated
#: as lists of strings, not applied.
ATTRIBUTE_FILTERS = (
    "material",
    "type",
    "manufacturer",
    "brand",
    "productGroup",
    "model",
    "color",
    "size",
    "unitType",
    "scent",
    "itemForm",
    "pattern",
    "style",
    "itemTypeKeyword",
    "targetAudienceKeyword",
    "edition",
    "format",
    "author",
    "binding",
    "languages",
    "brandStoreName",
    "brandStoreUrlName",
    "websiteDisplayGroup",
    "websiteDisplayGroupName",
    "salesRankDisplayGroup",
)
_KNOWN = frozenset(
    (
        *_INT_FIELDS,
        *_RANGE_FIELDS,
        *_CATEGORY_FIELDS,
        *_APPLIED_FLAGS,
        *ACCEPTED_FLAGS,
        *ATTRIBUTE_FILTERS,
        "priceTypes",
        "titleSearch",
        "warehouseConditions",
    )
)
#: Keepa's open upper bound of a range (its docs: "-1 translates to the maximum signed
#: integer value").
_INT_MAX = 2**31 - 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_int(name: str, value: object) -> int:
    """*value* as Keepa reads an integer: an int, an integral number or a numeric string.

    Keepa answered ``"domainId": "1"`` and ``"dateRange": "3"`` with HTTP 200 (its
    server reads JSON leniently, as the official Java client's Gson does); a
    boolean, a fraction or a non-numeric string is refused.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit() and text.isascii():
            return int(text)
    raise SelectionError(f"{name} must be an integer, got {value!r}")


def _to_bool(name: str, value: object) -> bool:
    """*value* as Keepa reads a boolean: ``true``/``false``, or the same as a string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise SelectionError(f"{name} must be a boolean, got {value!r}")


def _to_ints(name: str, value: object) -> list[int]:
    if not isinstance(value, list):
        raise SelectionError(f"{name} must be a list of integers, got {value!r}")
    return [_to_int(name, item) for item in value]


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
    warehouse_conditions: frozenset[int] = frozenset()
    ignored: tuple[str, ...] = ()

    @property
    def interval(self) -> int:
        """The row of ``avg``/``delta``/``deltaPercent`` the selection reads (0..3)."""
        return min(self.date_range, 3)

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
            self.warehouse_conditions,
        )

    def _range_value(self, name: str, deal: Mapping[str, Any]) -> int:
        index = self.price_type
        if name == "deltaPercentRange":
            return int(deal["deltaPercent"][self.interval][index])
        if name == "deltaRange":
            return int(deal["delta"][self.interval][index])
        if name == "deltaLastRange":
            return int(deal["deltaLast"][index])
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
        if (
            self.warehouse_conditions
            and self.price_type == _WAREHOUSE
            and deal["warehouseCondition"] not in self.warehouse_conditions
        ):
            return False
        if self.title_search is not None:
            title = str(deal["title"]).lower()
            if not all(word in title for word in self.title_search.lower().split()):
                return False
        return True

    def sort(self, deals: list[dict[str, Any]], stream: DealStream) -> list[dict[str, Any]]:
        """Order *deals* by the selection's ``sortType`` (see the emulator's docs)."""
        kind = abs(self.sort_type)
        index, date_range = self.price_type, self.interval
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
    """Validate a decoded selection as Keepa reads it; raise :class:`SelectionError` naming it.

    ``null`` means absent; integers may be written as strings; a range's upper
    bound -1 is open; fields the emulator does not know are kept in
    :attr:`Selection.ignored` (Keepa ignores them).
    """
    _need(isinstance(raw, Mapping), f"selection must be a JSON object, got {raw!r}")
    assert isinstance(raw, Mapping)  # noqa: S101 (narrowing for mypy)
    fields: dict[str, Any] = {name: value for name, value in raw.items() if value is not None}
    price_types = fields.get("priceTypes")
    _need(
        isinstance(price_types, list) and len(price_types) == 1,
        f"priceTypes must be a list of exactly one price type, got {price_types!r}",
    )
    assert isinstance(price_types, list)  # noqa: S101
    price_type = _to_int("priceTypes", price_types[0])
    _need(
        price_type in DEAL_PRICE_TYPES,
        f"priceTypes holds {price_type!r}, not a price type deals are found on"
        f" ({', '.join(map(str, sorted(DEAL_PRICE_TYPES)))})",
    )
    ints = {name: _to_int(name, fields[name]) for name in _INT_FIELDS if name in fields}
    page = ints.get("page", 0)
    _need(page >= 0, f"page must be >= 0, got {page!r}")
    date_range = ints.get("dateRange", 0)
    _need(0 <= date_range <= 4, f"dateRange must be 0..4, got {date_range!r}")
    sort_type = ints.get("sortType", 1)
    _need(1 <= abs(sort_type) <= 4, f"sortType must be +-1..4, got {sort_type!r}")
    if "domainId" in ints:
        _need(
            ints["domainId"] in DEAL_DOMAINS,
            f"domainId {ints['domainId']!r} has no deals (1-6, 8-11)",
        )
    ranges: dict[str, tuple[int, int]] = {}
    for name in _RANGE_FIELDS:
        if name in fields:
            value = _to_ints(name, fields[name])
            _need(len(value) == 2, f"{name} must be a list of two integers, got {fields[name]!r}")
            low, high = value
            ranges[name] = (low, _INT_MAX if high == -1 else high)
    categories: dict[str, frozenset[int]] = {}
    for name in _CATEGORY_FIELDS:
        categories[name] = frozenset(_to_ints(name, fields.get(name, [])))
    flags = {
        name: _to_bool(name, fields[name])
        for name in (*_APPLIED_FLAGS, *ACCEPTED_FLAGS)
        if name in fields
    }
    for name in ATTRIBUTE_FILTERS:
        if name in fields:
            value = fields[name]
            _need(
                isinstance(value, list) and all(isinstance(v, str) for v in value),
                f"{name} must be a list of strings, got {value!r}",
            )
    title = fields.get("titleSearch")
    _need(title is None or isinstance(title, str), f"titleSearch must be a string, got {title!r}")
    warehouse = frozenset(_to_ints("warehouseConditions", fields.get("warehouseConditions", [])))
    return Selection(
        price_type=price_type,
        page=page,
        date_range=date_range,
        sort_type=sort_type,
        ranges=ranges,
        include=categories["includeCategories"],
        exclude=categories["excludeCategories"],
        min_rating=ints.get("minRating", -1),
        has_reviews=flags.get("hasReviews", False),
        title_search=title or None,
        warehouse_conditions=warehouse,
        ignored=tuple(sorted(name for name in raw if name not in _KNOWN)),
    )


@attrs.frozen
class Freshness:
    """How old a product's data is at one hour: what ``rating``, ``stock`` and ``update`` cost.

    Attributes:
        rating: Its rating data is less than 14 days old (``rating=1`` costs 1).
        stock: Its stock data is less than 7 days old (``stock=1`` costs 2).
        offers: Its offers are fresh (with ``update``, a page of offers costs 5, not 6).
        updated_ago: Minutes since Keepa last updated it (``update=0`` costs 1 within the hour).
    """

    rating: bool
    stock: bool
    offers: bool
    updated_ago: int


def freshness(
    catalog: Catalog,
    asin: str,
    minute: int,
    *,
    rating_share: float,
    stock_share: float,
    offers_share: float,
) -> Freshness:
    """The freshness of *asin*'s data at *minute* (drawn per product and hour, seeded)."""
    rng = random.Random(f"freshness:{catalog.seed}:{asin}:{minute // 60}")
    return Freshness(
        rating=rng.random() < rating_share,
        stock=rng.random() < stock_share,
        offers=rng.random() < offers_share,
        updated_ago=_below(rng, 0, 180),
    )


def _seller_id(rng: random.Random) -> str:
    return "A" + "".join(_pick(rng, _ALPHABET) for _ in range(13))


def offers_json(
    catalog: Catalog, asin: str, *, limit: int, minute: int, stock: bool = False
) -> tuple[list[dict[str, Any]], list[int]]:
    """The offers of a product (at most *limit* live ones, and a few gone), seeded.

    Returns the offers and ``liveOffersOrder`` (the indices of the live ones,
    cheapest first, price plus shipping), as Keepa sends them: its ``offers``
    also hold offers no longer live (``lastSeen`` in the past).
    """
    traits = catalog.traits(asin)
    rng = random.Random(f"offers:{catalog.seed}:{asin}:{minute}")
    live = min(limit, traits.offers_fba + traits.offers_fbm + (1 if traits.amazon_offer else 0))
    gone = _below(rng, 0, 4)
    offers = []
    for number in range(live + gone):
        is_live = number < live
        amazon = traits.amazon_offer and number == 0
        fba = amazon or number <= traits.offers_fba
        price = max(1, traits.price * _below(rng, 80, 131) // 100)
        shipping = 0 if fba else _pick(rng, (0, 0, 399, 599))
        seen = minute if is_live else minute - _below(rng, 1_000, 500_000)
        condition = 1 if rng.random() < 0.85 else _pick(rng, (2, 3, 4, 5))
        offer: dict[str, Any] = {
            "condition": condition,
            "couponHistory": [seen - 1_000, 0],
            "isAddonItem": False,
            "isAmazon": amazon,
            "isFBA": fba,
            "isMAP": False,
            "isPreorder": False,
            "isPrime": fba,
            "isPrimeExcl": False,
            "isScam": False,
            "isShippable": True,
            "isWarehouseDeal": False,
            "lastSeen": seen,
            "lastStockUpdate": 0,
            "minOrderQty": 1,
            "offerCSV": [seen - _below(rng, 0, 600), price, shipping],
            "offerId": number,
            "sellerId": "ATVPDKIKX0DER" if amazon else _seller_id(rng),
            "shipsFromChina": False,
        }
        if condition != 1:
            offer["conditionComment"] = _pick(rng, _WAREHOUSE_COMMENTS)
        if stock and is_live:
            offer["lastStockUpdate"] = minute
            offer["stockCSV"] = [minute, _below(rng, 1, 30)]
        offers.append({name: offer[name] for name in sorted(offer)})
    order = sorted(range(live), key=lambda i: offers[i]["offerCSV"][1] + offers[i]["offerCSV"][2])
    return offers, order


def history(
    rng: random.Random,
    *,
    start: int,
    end: int,
    value: int,
    points: int,
    shipping: int | None = None,
) -> list[int]:
    """A flat ``[t1, v1, t2, v2, ...]`` history ending at *value* (triplets with *shipping*)."""
    if value < 0:
        return [start, -1] if shipping is None else [start, -1, -1]
    times = sorted(_below(rng, start, max(start + 1, end)) for _ in range(points - 1))
    flat: list[int] = []
    for time in times:
        flat += [time, max(1, value * _below(rng, 85, 126) // 100)]
        if shipping is not None:
            flat.append(shipping)
    return [*flat, end, value] if shipping is None else [*flat, end, value, shipping]


_BINDINGS = {283155: "Paperback"}


def _extremes(
    rng: random.Random, current: Sequence[int], start: int, end: int, factor: int
) -> list[Any]:
    """A ``stats`` ``min``/``max`` row: ``[time, value]`` per price type, ``None`` without data."""
    return [
        None if value < 0 else [_below(rng, start, max(start + 1, end)), value * factor // 100]
        for value in current
    ]


def _stats_json(
    traits: Traits,
    rng: random.Random,
    *,
    current: list[int],
    avg_rows: Sequence[Sequence[int]],
    minute: int,
    buy_box: bool,
    offers: list[dict[str, Any]] | None,
    live: int,
) -> dict[str, Any]:
    """The ``stats`` object of a product, with the keys of real ones."""
    # The deal rows are a day, a week, a month and 90 days: the month row stands for the
    # last 30 days, the 90-day row for the longer intervals.
    avg30, avg90, avg180, avg365 = (list(avg_rows[row]) for row in (2, 3, 3, 3))
    start = traits.listed_since
    percent_row = [100 if v < 0 else _below(rng, 0, 60) for v in current]
    used = current[_USED]
    stats: dict[str, Any] = {
        "atIntervalStart": list(avg365),
        "avg": list(avg365),
        "avg180": avg180,
        "avg30": avg30,
        "avg365": avg365,
        "avg90": avg90,
        "buyBoxAvailabilityMessage": None,
        "buyBoxCondition": 1 if buy_box else None,
        "buyBoxIsAmazon": buy_box and traits.amazon_offer,
        "buyBoxIsBackorder": None,
        "buyBoxIsFBA": buy_box and traits.offers_fba > 0,
        "buyBoxIsFreeShippingEligible": None,
        "buyBoxIsMAP": False,
        "buyBoxIsPreorder": False,
        "buyBoxIsPrimeEligible": (traits.offers_fba > 0) if buy_box else None,
        "buyBoxIsPrimeExclusive": None,
        "buyBoxIsPrimePantry": None,
        "buyBoxIsShippable": buy_box,
        "buyBoxIsUnqualified": not buy_box,
        "buyBoxIsUsed": False,
        "buyBoxIsWarehouseDeal": None,
        "buyBoxMaxOrderQuantity": None,
        "buyBoxMinOrderQuantity": None,
        "buyBoxPrice": current[_NEW] if buy_box else -1,
        "buyBoxSellerId": ("ATVPDKIKX0DER" if traits.amazon_offer else _seller_id(rng))
        if buy_box
        else None,
        "buyBoxShipping": 0 if buy_box else -1,
        "buyBoxShippingCountry": None,
        "buyBoxUsedCondition": 4 if used > 0 else None,
        "buyBoxUsedIsFBA": False if used > 0 else None,
        "buyBoxUsedPrice": used if used > 0 else None,
        "buyBoxUsedSellerId": _seller_id(rng) if used > 0 else None,
        "buyBoxUsedShipping": 399 if used > 0 else None,
        "buyBoxUsedStats": None,
        "current": current,
        "deltaPercent90_monthlySold": None,
        "isAddonItem": False,
        "isLowest": [False] * PRICE_TYPE_COUNT,
        "isLowest90": [False] * PRICE_TYPE_COUNT,
        "lastBuyBoxUpdate": minute,
        "lastOffersUpdate": minute,
        "lightningDealInfo": None,
        "max": _extremes(rng, current, start, minute, 110),
        "maxInInterval": _extremes(rng, current, minute - 525_600, minute, 105),
        "min": _extremes(rng, current, start, minute, 90),
        "minInInterval": _extremes(rng, current, minute - 525_600, minute, 95),
        "offerCountFBA": traits.offers_fba,
        "offerCountFBM": traits.offers_fbm,
        "outOfStockCountAmazon30": _below(rng, 0, 3),
        "outOfStockCountAmazon90": _below(rng, 0, 6),
        "outOfStockPercentage180": list(percent_row),
        "outOfStockPercentage30": list(percent_row),
        "outOfStockPercentage365": list(percent_row),
        "outOfStockPercentage90": list(percent_row),
        "outOfStockPercentageInInterval": list(percent_row),
        "retrievedOfferCount": live if offers is not None else -1,
        "salesRankDrops180": -1,
        "salesRankDrops30": -1,
        "salesRankDrops365": -1,
        "salesRankDrops90": -1,
        "sellerIdsLowestFBA": None,
        "sellerIdsLowestFBM": None,
        "totalOfferCount": traits.offers_fba + traits.offers_fbm + traits.amazon_offer,
        "tradeInPrice": -1,
    }
    if traits.sales_rank is not None:
        drops = _below(rng, 0, 6)
        for days in (30, 90, 180, 365):
            stats[f"salesRankDrops{days}"] = drops
            drops += _below(rng, 0, 8)
    if offers is not None and used > 0:
        seller = stats["buyBoxUsedSellerId"]
        stats["buyBoxUsedStats"] = {
            seller: {
                "avgNewOfferCount": -1,
                "avgPrice": used,
                "avgUsedOfferCount": current[_COUNT_USED],
                "condition": 4,
                "isFBA": False,
                "lastSeen": minute,
                "percentageWon": 100.0,
            }
        }
    return stats


def product_json(
    catalog: Catalog,
    stream: DealStream,
    asin: str,
    *,
    minute: int,
    options: Mapping[str, int],
    offers_failed: bool,
    fresh: Freshness | None = None,
) -> tuple[dict[str, Any], int]:
    """The JSON of one catalog product as ``/product`` serves it, and the live offers found.

    Shaped as Keepa's product objects: every key of a real one, ``null`` where
    the product has no such data (``stats`` without ``stats=``, ``csv`` with
    ``history=0``, ``offers`` without ``offers=``), 34 entries per price-type
    array, histories as ``[time, value, ...]`` (``[time, value, shipping, ...]``
    for the shipping-included types). The current prices follow the product's
    latest deal update when it has one.
    """
    traits = catalog.traits(asin)
    if fresh is None:
        fresh = Freshness(rating=False, stock=False, offers=False, updated_ago=30)
    if asin in stream.latest:
        prices = stream.deal(asin)
        last_update = prices["lastUpdate"]
    else:
        prices = deal_prices(catalog, asin, traits.listed_since)
        last_update = traits.listed_since
    current = list(prices["current"])
    rng = random.Random(f"history:{catalog.seed}:{asin}:{last_update}")
    root_name = dict(CATEGORIES).get(traits.root_category, "Products")
    sub = traits.categories[1]
    book = traits.root_category == 283155
    history_on = bool(options.get("history", 1))
    csv: list[list[int] | None] | None = None
    if history_on:
        csv = [None] * PRICE_TYPE_COUNT
        for index, value in enumerate(current):
            if value >= 0 and (index not in (_RATING, _COUNT_REVIEWS) or options.get("rating")):
                csv[index] = history(
                    rng,
                    start=traits.listed_since,
                    end=last_update,
                    value=value,
                    points=4,
                    shipping=0 if index in WITH_SHIPPING else None,
                )
    buy_box = not traits.buy_box_missing and bool(options.get("buybox") or options.get("offers"))
    offers: list[dict[str, Any]] | None = None
    order: list[int] | None = None
    offer_limit = options.get("offers", 0)
    if offer_limit:
        if offers_failed:
            offers, order = [], []
        else:
            offers, order = offers_json(
                catalog,
                asin,
                limit=offer_limit,
                minute=minute,
                stock=bool(options.get("stock")) and fresh.stock,
            )
    if offers is not None and order is not None and options.get("only-live-offers"):
        offers = [offers[i] for i in order]  # the live ones only, cheapest first
        order = list(range(len(offers)))
    live = len(order) if order is not None else 0
    stats = None
    if options.get("stats"):
        rows = prices["avg"]
        stats = _stats_json(
            traits,
            rng,
            current=current,
            avg_rows=rows,
            minute=minute,
            buy_box=buy_box,
            offers=offers,
            live=live,
        )
    rated_at = minute - (
        _below(rng, 0, 14 * 1440) if fresh.rating else _below(rng, 14 * 1440, 200_000)
    )
    product: dict[str, Any] = {
        "asin": asin,
        "author": None,
        "availabilityAmazon": 0 if traits.amazon_offer else -1,
        "binding": _BINDINGS.get(traits.root_category, root_name),
        "brand": traits.brand,
        "buyBoxEligibleOfferCounts": [
            traits.offers_fba,
            traits.offers_fbm,
            0,
            0,
            0,
            0,
            0,
            0,
        ],
        "buyBoxSellerIdHistory": [
            str(last_update),
            "ATVPDKIKX0DER" if traits.amazon_offer else "-1",
        ]
        if buy_box
        else None,
        "buyBoxUsedHistory": None,
        "categories": [sub],
        "categoryTree": [
            {"catId": traits.root_category, "name": root_name},
            {"catId": sub, "name": f"{root_name} {sub % 10}"},
        ],
        "color": None,
        "contributors": None,
        "coupon": None,
        "csv": csv,
        "description": f"{traits.title}: the emulator's catalogue product.",
        "domainId": options["domain"],
        "eanList": [f"{4_000_000_000_000 + (catalog.index(asin) or 0) % 10**12:013d}"],
        "ebayListingIds": None,
        "edition": None,
        "fbaFees": None
        if traits.pick_and_pack_fee is None
        else {"lastUpdate": minute - 1440, "pickAndPackFee": traits.pick_and_pack_fee},
        "features": None,
        "format": None,
        "frequentlyBoughtTogether": None,
        "g": _below(rng, 1, 200),
        "hasReviews": traits.review_count is not None,
        "images": [
            {"l": traits.image, "lH": 1500, "lW": 1500, "m": traits.image, "mH": 500, "mW": 500}
        ],
        "imagesCSV": traits.image,
        "isAdultProduct": False,
        "isB2B": False,
        "isEligibleForSuperSaverShipping": False,
        "isEligibleForTradeIn": False,
        "isHeatSensitive": False,
        "isRedirectASIN": False,
        "isSNS": False,
        "itemHeight": _below(rng, 10, 300),
        "itemLength": _below(rng, 10, 300),
        "itemTypeKeyword": "books" if book else "products",
        "itemWeight": traits.package_weight * 9 // 10,
        "itemWidth": _below(rng, 5, 300),
        "languages": [["English", "Published"]] if book else None,
        "lastEbayUpdate": 0,
        "lastPriceChange": last_update,
        "lastRatingUpdate": rated_at,
        "lastUpdate": max(last_update, minute - fresh.updated_ago),
        "launchpad": False,
        "listedSince": traits.listed_since,
        "liveOffersOrder": order,
        "manufacturer": traits.brand,
        "model": None,
        "newPriceIsMAP": False,
        "numberOfItems": -1,
        "numberOfPages": _below(rng, 50, 900) if book else -1,
        "offers": offers,
        "offersSuccessful": bool(offer_limit) and not offers_failed,
        "packageHeight": _below(rng, 10, 300),
        "packageLength": _below(rng, 10, 300),
        "packageQuantity": 1,
        "packageWeight": traits.package_weight,
        "packageWidth": _below(rng, 10, 300),
        "parentAsin": traits.parent_asin,
        "partNumber": None,
        "productGroup": "Book" if book else root_name,
        "productType": 0,
        "promotions": None,
        "publicationDate": 20_000_000 + _below(rng, 0, 260_000),
        "referralFeePercent": None
        if traits.referral_fee_percent is None
        else int(traits.referral_fee_percent),
        "referralFeePercentage": traits.referral_fee_percent,
        "releaseDate": 0,
        "rootCategory": traits.root_category,
        "salesRankDisplayGroup": "book_display_on_website" if book else "gl_products",
        "salesRankReference": traits.root_category if traits.sales_rank is not None else -1,
        "salesRankReferenceHistory": [traits.listed_since, traits.root_category]
        if traits.sales_rank is not None and history_on
        else None,
        "salesRanks": {str(sub): csv[_SALES]}
        if csv is not None and csv[_SALES] is not None
        else None,
        "size": None,
        "stats": stats,
        "title": traits.title,
        "trackingSince": traits.listed_since,
        "type": "ABIS_BOOK" if book else "PRODUCT",
        "upcList": None,
        "urlSlug": "-".join(traits.title.split()[:2]),
        "variableClosingFee": 180 if book else 0,
        "variationCSV": None,
        "variations": None,
        "websiteDisplayGroup": "book_display_on_website" if book else "products_display_on_website",
        "websiteDisplayGroupName": "Book" if book else root_name,
    }
    return product, live


def chunk(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """*items* in slices of *size*."""
    return [items[i : i + size] for i in range(0, len(items), size)]
