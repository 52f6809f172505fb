"""Filters: small named objects that accept or reject a deal, each rejection with a reason.

A filter judges a deal twice at most. :meth:`Filter.check_deal` (the *peek*,
only for filters whose :attr:`~Filter.peek` is true) sees the ``Deal``
alone, before any token is spent on enriching it; :meth:`Filter.check` sees the
deal and its enriched ``Product`` (``None`` when the ingestor enriched
nothing). Each returns ``None`` to accept or a *reason* to reject: peek reasons
start with ``peek:`` (``peek:sales_rank``), full reasons name the test
(``sales_rank``, ``profit``, ``roi``) and missing data has its own reason
(``missing:buybox_price``): a filter never raises on sparse data.

The built-in filters keep one rule: **a peek never rejects what the full check
would accept**. Their full check applies the deal-level test first (the same
test as the peek) and then the product-level test, and rejects as missing only
what neither the deal nor the product has. Data that only the product carries
(offer counts, the buy box) is never judged by a peek.

Each filter also says which ``products()`` keyword arguments its full check
needs (:attr:`Filter.needs`, e.g. ``{"stats": 90, "buybox": True}``);
:func:`enrich_for` merges them into the ingestor's default ``enrich``, and
:func:`order_filters` runs the cheapest first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from tokenbudget_keepa._client.models.products import Deal, PriceType, Product

from .sinks import AcceptedDeal


__all__ = [
    "DEFAULT_STATS_DAYS",
    "Categories",
    "Filter",
    "FunctionFilter",
    "MinDrop",
    "OfferCount",
    "PriceRange",
    "ProfitEstimate",
    "ProfitModel",
    "SalesRank",
    "TitleTerms",
    "accepted_deal",
    "check_all",
    "default_filters",
    "enrich_for",
    "filters_from_mapping",
    "order_filters",
    "peek_all",
]

DEFAULT_STATS_DAYS = 90
"""The ``stats=`` days the built-in filters ask for (statistics cost no extra tokens).

.. versionadded:: 0.1.0
"""

_DEFAULT_COST = 10


@runtime_checkable
class Filter(Protocol):
    """What the ingestor asks of a filter; any object with these members is one.

    It has a :attr:`name` (also the reason of its rejections), says whether
    it can :attr:`peek` (judge the deal alone), and what enrichment it
    :attr:`needs`. An optional ``cost`` attribute (an int, lower runs first) orders filters
    in :func:`order_filters`; filters without one run after the built-ins.

    .. versionadded:: 0.1.0
    """

    @property
    def name(self) -> str:
        """A short name (also the reason of its rejections)."""
        ...

    @property
    def peek(self) -> bool:
        """Whether :meth:`check_deal` can judge the deal alone."""
        ...

    @property
    def needs(self) -> Mapping[str, Any]:
        """The ``products()`` keyword arguments the full check needs (empty: none)."""
        ...

    def check_deal(self, deal: Deal) -> str | None:
        """Peek: ``None`` to keep the deal, or a rejection reason (``"peek:..."``)."""
        ...

    def check(self, deal: Deal, product: Product | None) -> str | None:
        """Full check: ``None`` to accept, or a rejection reason."""
        ...


# -- validation helpers ------------------------------------------------------------------------


def _opt_count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int or None, got {value!r}")
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _opt_real(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{attribute.name} must be a number or None, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


def _to_price_type(value: object) -> object:
    if isinstance(value, str):
        try:
            return PriceType[value.strip().upper()]
        except KeyError:
            names = ", ".join(p.name for p in PriceType)
            raise ValueError(f"price_type must be one of {names}, got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return PriceType(value)
        except ValueError:
            raise ValueError(f"price_type must be 0..18, got {value!r}") from None
    return value


def _check_price_type(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, PriceType):
        raise TypeError(f"{attribute.name} must be a PriceType, got {value!r}")


def _to_ints(value: object) -> object:
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(value)
    return value


def _check_ints(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in value
    ):
        raise TypeError(f"{attribute.name} must be a list of ints, got {value!r}")


def _to_terms(value: object) -> object:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


def _check_terms(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or any(not isinstance(v, str) or not v.strip() for v in value):
        raise TypeError(f"{attribute.name} must be a list of non-empty strings, got {value!r}")


def _check_order(low: str, high: str) -> Callable[[Any], None]:
    def check(instance: Any) -> None:
        lo, hi = getattr(instance, low), getattr(instance, high)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{low} ({lo!r}) must not exceed {high} ({hi!r})")

    return check


def _outside(value: float, low: float | None, high: float | None) -> bool:
    return (low is not None and value < low) or (high is not None and value > high)


def _two_level(
    name: str,
    missing: str,
    deal_value: object,
    product_value: object,
    bad: Callable[[Any], bool],
) -> str | None:
    """The built-ins' full check: the deal's value first (as the peek), then the product's."""
    if deal_value is not None and bad(deal_value):
        return name
    if product_value is not None and bad(product_value):
        return name
    if deal_value is None and product_value is None:
        return f"missing:{missing}"
    return None


# -- built-in filters ----------------------------------------------------------------------------


class _BuiltinFilter:
    """The constant members of the built-in filters, which each one sets as class attributes.

    ``name`` (also the reason of its rejections), ``peek`` (whether
    ``check_deal`` can judge the deal alone), ``cost`` (run order, lower
    first) and ``_needs_stats`` (whether :attr:`needs` is ``{"stats": 90}``
    rather than ``{}``; a fresh dict on every access).
    """

    __slots__ = ()

    name: ClassVar[str]
    peek: ClassVar[bool]
    cost: ClassVar[int]
    _needs_stats: ClassVar[bool] = False

    @property
    def needs(self) -> Mapping[str, Any]:
        """The ``products()`` keyword arguments the full check needs."""
        return {"stats": DEFAULT_STATS_DAYS} if self._needs_stats else {}


@attrs.frozen
class PriceRange(_BuiltinFilter):
    """Keep deals whose current price (of *price_type*) lies in ``[min_price, max_price]``.

    Peek: the deal's ``current`` price. Full: that, then the product's
    ``stats.current`` price. Reasons: ``peek:price``, ``price``, ``missing:price``.

    >>> from tokenbudget_keepa import PriceRange, PriceType
    >>> PriceRange(min_price=1000, max_price=5000, price_type=PriceType.NEW)
    PriceRange(min_price=1000, max_price=5000, price_type=<PriceType.NEW: 1>)

    Args:
        min_price: The lowest price kept, in cents (``None``: no bound).
        max_price: The highest price kept, in cents (``None``: no bound).
        price_type: Which price (default ``PriceType.NEW``).

    .. versionadded:: 0.1.0
    """

    min_price: int | None = attrs.field(default=None, validator=_opt_count)
    max_price: int | None = attrs.field(default=None, validator=_opt_count)
    price_type: PriceType = attrs.field(
        default=PriceType.NEW, converter=_to_price_type, validator=_check_price_type
    )

    def __attrs_post_init__(self) -> None:
        _check_order("min_price", "max_price")(self)

    name = "price"
    peek = True
    cost = 1
    _needs_stats = True

    def _bad(self, price: int) -> bool:
        return _outside(price, self.min_price, self.max_price)

    def check_deal(self, deal: Deal) -> str | None:
        """``peek:price`` when the deal's price is known and outside the range."""
        price = deal.price(self.price_type)
        return "peek:price" if price is not None and self._bad(price) else None

    def check(self, deal: Deal, product: Product | None) -> str | None:
        """``price`` when the deal's or product's price is outside; ``missing:price``."""
        product_price = None if product is None else product.price(self.price_type)
        return _two_level("price", "price", deal.price(self.price_type), product_price, self._bad)


@attrs.frozen
class SalesRank(_BuiltinFilter):
    """Keep deals whose sales rank lies in ``[min_rank, max_rank]`` (lower is better).

    Peek: the deal's current sales rank. Full: that, then the product's.
    Reasons: ``peek:sales_rank``, ``sales_rank``, ``missing:sales_rank``.

    Args:
        max_rank: The worst rank kept (``None``: no bound).
        min_rank: The best rank kept (``None``: no bound).

    .. versionadded:: 0.1.0
    """

    max_rank: int | None = attrs.field(default=None, validator=_opt_count)
    min_rank: int | None = attrs.field(default=None, kw_only=True, validator=_opt_count)

    def __attrs_post_init__(self) -> None:
        _check_order("min_rank", "max_rank")(self)

    name = "sales_rank"
    peek = True
    cost = 1
    _needs_stats = True

    def _bad(self, rank: int) -> bool:
        return _outside(rank, self.min_rank, self.max_rank)

    def check_deal(self, deal: Deal) -> str | None:
        """``peek:sales_rank`` when the deal's rank is known and outside the range."""
        rank = deal.sales_rank
        return "peek:sales_rank" if rank is not None and self._bad(rank) else None

    def check(self, deal: Deal, product: Product | None) -> str | None:
        """``sales_rank`` when the deal's or product's rank is outside; ``missing:sales_rank``."""
        product_rank = None if product is None else product.sales_rank
        return _two_level("sales_rank", "sales_rank", deal.sales_rank, product_rank, self._bad)


@attrs.frozen
class Categories(_BuiltinFilter):
    """Keep deals in at least one *include* category (if any given) and in no *exclude* one.

    A deal's categories are its root category and its category ids. Peek: the
    deal's. Full: the deal's, then the product's. Reasons:
    ``peek:categories``, ``categories``, ``missing:categories``.

    Args:
        include: Category ids of which a deal must have one (empty: any).
        exclude: Category ids of which a deal must have none.

    .. versionadded:: 0.1.0
    """

    include: tuple[int, ...] = attrs.field(default=(), converter=_to_ints, validator=_check_ints)
    exclude: tuple[int, ...] = attrs.field(default=(), converter=_to_ints, validator=_check_ints)

    name = "categories"
    peek = True
    cost = 2

    def _bad(self, categories: frozenset[int]) -> bool:
        if self.include and not categories.intersection(self.include):
            return True
        return bool(categories.intersection(self.exclude))

    @staticmethod
    def _of(root: int | None, categories: tuple[int, ...]) -> frozenset[int] | None:
        found = frozenset(categories) | (frozenset() if root is None else {root})
        return found or None

    def check_deal(self, deal: Deal) -> str | None:
        """``peek:categories`` when the deal's categories are known and fail the test."""
        found = self._of(deal.root_category, deal.categories)
        return "peek:categories" if found is not None and self._bad(found) else None

    def check(self, deal: Deal, product: Product | None) -> str | None:
        """``categories`` when the deal's or product's fail; ``missing:categories``."""
        if not self.include and not self.exclude:
            return None
        product_found = (
            None if product is None else self._of(product.root_category, product.categories)
        )
        return _two_level(
            "categories",
            "categories",
            self._of(deal.root_category, deal.categories),
            product_found,
            self._bad,
        )


@attrs.frozen
class MinDrop(_BuiltinFilter):
    """Keep deals whose price dropped by at least *percent* (the deal's ``deltaPercent``).

    Only the deal carries the drop, so the peek decides alone (a positive
    ``deltaPercent`` is a drop, ``-1`` a 1 % rise; a deal without a current value
    of the price type has no drop, see :meth:`Deal.drop_percent`). Reasons:
    ``peek:drop``, ``drop``, ``peek:missing:drop_percent``, ``missing:drop_percent``.

    Args:
        percent: The smallest drop kept, in percent.
        price_type: Which price (default ``PriceType.NEW``).
        date_range: Against which average: 0 day, 1 week, 2 month, 3 ninety days.

    .. versionadded:: 0.1.0
    """

    percent: int | float = attrs.field()
    price_type: PriceType = attrs.field(
        default=PriceType.NEW, kw_only=True, converter=_to_price_type, validator=_check_price_type
    )
    date_range: int = attrs.field(default=0, kw_only=True)

    @percent.validator
    def _check_percent(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            raise TypeError(f"{attribute.name} must be a number, got None")
        _opt_real(self, attribute, value)

    @date_range.validator
    def _check_date_range(self, _attribute: attrs.Attribute[int], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
            raise ValueError(f"date_range must be 0, 1, 2 or 3, got {value!r}")

    name = "drop"
    peek = True
    cost = 1

    def check(self, deal: Deal, product: Product | None) -> str | None:  # noqa: ARG002
        """``drop`` when the drop is smaller than *percent*; ``missing:drop_percent``."""
        drop = deal.drop_percent(self.price_type, self.date_range)
        if drop is None:
            return "missing:drop_percent"
        return "drop" if drop < self.percent else None

    def check_deal(self, deal: Deal) -> str | None:
        """The full check's reason, prefixed ``peek:`` (the deal alone decides)."""
        reason = self.check(deal, None)
        return None if reason is None else f"peek:{reason}"


@attrs.frozen
class TitleTerms(_BuiltinFilter):
    """Keep deals whose title has one of the *include* terms (if any) and none of *exclude*.

    Terms match whole words, ignoring case (``"lego"`` matches ``"LEGO City"``,
    not ``"Legolas"``); a term may hold several words. Peek: the deal's title.
    Full: the deal's, then the product's. Reasons: ``peek:title``, ``title``,
    ``missing:title``.

    >>> from tokenbudget_keepa import TitleTerms
    >>> TitleTerms(include=["lego"], exclude=["duplo"]).matches("LEGO City Police")
    True

    .. versionadded:: 0.1.0
    """

    include: tuple[str, ...] = attrs.field(default=(), converter=_to_terms, validator=_check_terms)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=_to_terms, validator=_check_terms)
    _include_re: re.Pattern[str] | None = attrs.field(init=False, repr=False, eq=False)
    _exclude_re: re.Pattern[str] | None = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_include_re", _terms_re(self.include))
        object.__setattr__(self, "_exclude_re", _terms_re(self.exclude))

    name = "title"
    peek = True
    cost = 3

    def matches(self, title: str) -> bool:
        """Whether *title* passes the include and exclude terms."""
        if self._include_re is not None and self._include_re.search(title) is None:
            return False
        return self._exclude_re is None or self._exclude_re.search(title) is None

    def check_deal(self, deal: Deal) -> str | None:
        """``peek:title`` when the deal has a title and it fails."""
        return "peek:title" if deal.title is not None and not self.matches(deal.title) else None

    def check(self, deal: Deal, product: Product | None) -> str | None:
        """``title`` when the deal's or product's title fails; ``missing:title``."""
        if not self.include and not self.exclude:
            return None
        product_title = None if product is None else product.title
        return _two_level(
            "title", "title", deal.title, product_title, lambda t: not self.matches(t)
        )


def _terms_re(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    if not terms:
        return None
    words = (r"\s+".join(re.escape(w) for w in term.split()) for term in terms)
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)


@attrs.frozen
class OfferCount(_BuiltinFilter):
    """Keep deals whose product has between *min_offers* and *max_offers* offers.

    Only the product carries the offer count (``stats.totalOfferCount``, else
    the live offers listed), so there is no peek. Reasons: ``offers``,
    ``missing:offer_count``.

    .. versionadded:: 0.1.0
    """

    min_offers: int | None = attrs.field(default=None, validator=_opt_count)
    max_offers: int | None = attrs.field(default=None, validator=_opt_count)

    def __attrs_post_init__(self) -> None:
        _check_order("min_offers", "max_offers")(self)

    name = "offers"
    peek = False
    cost = 4
    _needs_stats = True

    def check_deal(self, deal: Deal) -> str | None:  # noqa: ARG002
        """Never rejects (no peek)."""
        return None

    def check(self, deal: Deal, product: Product | None) -> str | None:  # noqa: ARG002
        """``offers`` when the count is outside; ``missing:offer_count``."""
        count = None if product is None else product.offer_count
        if count is None:
            return "missing:offer_count"
        return "offers" if _outside(count, self.min_offers, self.max_offers) else None


# -- the profit model --------------------------------------------------------------------------


@attrs.frozen
class ProfitEstimate:
    """What the profit model computed for one deal (all money in cents).

    Attributes:
        sale_price: What it sells for (buy box or lowest new offer).
        referral_fee: The marketplace's referral fee on *sale_price*.
        fba_fee: The FBA pick-and-pack fee.
        fixed_fees: Further fees per item (prep, labels).
        shipping: Inbound shipping per item.
        purchase_cost: What buying it costs.
        profit: ``sale_price - referral_fee - fba_fee - fixed_fees - shipping - purchase_cost``.
        roi: ``profit / purchase_cost``.

    .. versionadded:: 0.1.0
    """

    sale_price: int
    referral_fee: int
    fba_fee: int
    fixed_fees: int
    shipping: int
    purchase_cost: int
    profit: int
    roi: float


_SALE_PRICES = ("buybox", "new")


@attrs.frozen
class ProfitModel(_BuiltinFilter):
    """Keep deals that earn at least *min_profit* cents and *min_roi* return on investment.

    ``profit = sale price - referral fee - FBA fee - fixed fees - shipping -
    purchase cost``; ``roi = profit / purchase cost``. The sale price is the
    product's buy box price (``sale_price="buybox"``: ``stats.buyBoxPrice``,
    else the lowest live new offer) or its lowest new price (``"new"``); the
    referral fee is the product's ``referralFeePercentage`` of it (or
    *referral_fee_percent* if given); the FBA fee the product's pick-and-pack
    fee (or *fba_fee* if given); the purchase cost the deal's current price of
    *price_type*, or what *purchase_cost* (a function of the deal and product)
    returns. Only the product has a sale price, so there is no peek.

    Reasons: ``profit``, ``roi``, ``missing:buybox_price`` (or
    ``missing:new_price``), ``missing:referral_fee_percent``,
    ``missing:fba_fee``, ``missing:purchase_cost``.

    >>> from tokenbudget_keepa import Deal, Product, ProfitModel
    >>> deal = Deal.from_raw({"asin": "B0", "lastUpdate": 7_000_000, "current": [-1, 1000]})
    >>> product = Product.from_raw({"asin": "B0", "stats": {"buyBoxPrice": 2500},
    ...                             "referralFeePercentage": 15.0,
    ...                             "fbaFees": {"pickAndPackFee": 300}})
    >>> model = ProfitModel(min_profit=500, shipping=100)
    >>> model.estimate(deal, product).profit     # 2500 - 375 - 300 - 100 - 1000
    725
    >>> model.check(deal, product) is None
    True

    Args:
        min_profit: The smallest profit kept, in cents (``None``: no bound).
        min_roi: The smallest ``profit / purchase cost`` kept (``0.2`` = 20 %).
        sale_price: ``"buybox"`` (default) or ``"new"``.
        referral_fee_percent: A fixed referral fee in percent instead of the product's.
        fba_fee: A fixed FBA fee in cents instead of the product's.
        fixed_fees: Further fees per item, in cents.
        shipping: Inbound shipping per item, in cents.
        price_type: The deal price that is the purchase cost (default ``NEW``).
        purchase_cost: A function ``(deal, product) -> cents | None`` instead.
        offers: Enrich with ``offers=N`` (a buy box from live offers) instead
            of ``buybox=True``.

    .. versionadded:: 0.1.0
    """

    min_profit: int | None = attrs.field(default=None, kw_only=True, validator=_opt_real)
    min_roi: float | None = attrs.field(default=None, kw_only=True, validator=_opt_real)
    sale_price: str = attrs.field(default="buybox", kw_only=True)
    referral_fee_percent: float | None = attrs.field(
        default=None, kw_only=True, validator=_opt_real
    )
    fba_fee: int | None = attrs.field(default=None, kw_only=True, validator=_opt_count)
    fixed_fees: int = attrs.field(default=0, kw_only=True, validator=_opt_count)
    shipping: int = attrs.field(default=0, kw_only=True, validator=_opt_count)
    price_type: PriceType = attrs.field(
        default=PriceType.NEW, kw_only=True, converter=_to_price_type, validator=_check_price_type
    )
    purchase_cost: Callable[[Deal, Product | None], int | None] | None = attrs.field(
        default=None, kw_only=True
    )
    offers: int | None = attrs.field(default=None, kw_only=True, validator=_opt_count)

    @sale_price.validator
    def _check_sale_price(self, _attribute: attrs.Attribute[str], value: object) -> None:
        if value not in _SALE_PRICES:
            raise ValueError(f"sale_price must be 'buybox' or 'new', got {value!r}")

    @purchase_cost.validator
    def _check_purchase_cost(self, _attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not callable(value):
            raise TypeError(f"purchase_cost must be a function or None, got {value!r}")

    def __attrs_post_init__(self) -> None:
        percent = self.referral_fee_percent
        if percent is not None and not 0 <= percent <= 100:
            raise ValueError(f"referral_fee_percent must be in 0..100, got {percent!r}")
        if self.offers is not None and not 20 <= self.offers <= 100:
            raise ValueError(f"offers must be in 20..100 (Keepa's range), got {self.offers!r}")

    name = "profit"
    peek = False
    cost = 5

    @property
    def needs(self) -> Mapping[str, Any]:
        """``{"stats": 90, "buybox": True}``, or ``{"stats": 90, "offers": N}``."""
        if self.offers is not None:
            return {"stats": DEFAULT_STATS_DAYS, "offers": self.offers}
        return {"stats": DEFAULT_STATS_DAYS, "buybox": True}

    def estimate(self, deal: Deal, product: Product | None) -> ProfitEstimate | str:
        """The :class:`ProfitEstimate`, or the ``missing:...`` reason when data is missing."""
        missing_sale = f"missing:{self.sale_price}_price"
        if product is None:
            return missing_sale
        sale = product.buybox_price if self.sale_price == "buybox" else product.new_price
        if sale is None:
            return missing_sale
        percent = self.referral_fee_percent
        if percent is None:
            percent = product.referral_fee_percent
            if percent is None:
                return "missing:referral_fee_percent"
        fba = self.fba_fee if self.fba_fee is not None else product.fba_fee
        if fba is None:
            return "missing:fba_fee"
        if self.purchase_cost is not None:
            cost = self.purchase_cost(deal, product)
            if isinstance(cost, bool) or not isinstance(cost, int):
                cost = None
        else:
            cost = deal.price(self.price_type)
        if cost is None or cost <= 0:
            return "missing:purchase_cost"
        referral = round(sale * percent / 100)
        profit = sale - referral - fba - self.fixed_fees - self.shipping - cost
        return ProfitEstimate(
            sale_price=sale,
            referral_fee=referral,
            fba_fee=fba,
            fixed_fees=self.fixed_fees,
            shipping=self.shipping,
            purchase_cost=cost,
            profit=profit,
            roi=profit / cost,
        )

    def evaluate(self, deal: Deal, product: Product | None) -> ProfitEstimate | None:
        """The :class:`ProfitEstimate`, or ``None`` when data is missing (see :meth:`estimate`)."""
        estimate = self.estimate(deal, product)
        return None if isinstance(estimate, str) else estimate

    def check_deal(self, deal: Deal) -> str | None:  # noqa: ARG002
        """Never rejects (no peek)."""
        return None

    def check(self, deal: Deal, product: Product | None) -> str | None:
        """``profit`` or ``roi`` below the minimum, or the ``missing:...`` reason."""
        estimate = self.estimate(deal, product)
        if isinstance(estimate, str):
            return estimate
        if self.min_profit is not None and estimate.profit < self.min_profit:
            return "profit"
        if self.min_roi is not None and estimate.roi < self.min_roi:
            return "roi"
        return None


# -- user-defined filters ------------------------------------------------------------------------


@attrs.frozen(eq=False)
class FunctionFilter:
    """A filter from a plain function ``fn(deal, product) -> bool | str | None``.

    The function returns ``True`` (or ``None``) to keep the deal, ``False`` to
    reject it (the reason is *name*), or a string: the rejection reason. With
    ``peek=True`` it is also called as ``fn(deal, None)`` before enrichment
    (its reason prefixed ``peek:``), and the full check repeats that call
    first, so a peek never rejects what the full check accepts.

    >>> from tokenbudget_keepa import FunctionFilter
    >>> no_used = FunctionFilter(lambda deal, product: "used" not in (deal.title or "").lower(),
    ...                          name="no_used", peek=True)
    >>> no_used.name, no_used.peek
    ('no_used', True)

    A plain function given to :class:`SmartIngestor` in ``filters`` is wrapped
    in one of these (named after its ``name`` attribute or its ``__name__``).

    Args:
        function: ``(deal, product or None) -> bool | str | None``.
        name: The filter's name (and its rejection reason).
        peek: Whether the function can judge the deal alone (``product`` is ``None``).
        needs: The ``products()`` keyword arguments it needs.
        cost: Run order among filters (lower first).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.1.0
       ``None`` keeps the deal, as ``True`` does (it used to raise :class:`TypeError`).
    """

    function: Callable[[Deal, Product | None], bool | str | None] = attrs.field()
    name: str = attrs.field(kw_only=True)
    peek: bool = attrs.field(default=False, kw_only=True)
    needs: Mapping[str, Any] = attrs.field(factory=dict, kw_only=True)
    cost: int = attrs.field(default=_DEFAULT_COST, kw_only=True)

    @function.validator
    def _check_function(self, _attribute: attrs.Attribute[Any], value: object) -> None:
        if not callable(value):
            raise TypeError(f"function must be callable, got {value!r}")

    @name.validator
    def _check_name(self, _attribute: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"name must be a non-empty str, got {value!r}")

    def _reason(self, verdict: object) -> str | None:
        if verdict is True or verdict is None:
            return None
        if verdict is False:
            return self.name
        if isinstance(verdict, str) and verdict:
            return verdict
        raise TypeError(
            f"filter {self.name!r} must return True or None (keep), False or a reason string "
            f"(reject), got {verdict!r}"
        )

    def check_deal(self, deal: Deal) -> str | None:
        """``peek:<reason>`` when ``fn(deal, None)`` rejects (only with ``peek=True``)."""
        if not self.peek:
            return None
        reason = self._reason(self.function(deal, None))
        return None if reason is None else f"peek:{reason}"

    def check(self, deal: Deal, product: Product | None) -> str | None:
        """The function's verdict on the deal alone (with ``peek``), then with the product."""
        if self.peek:
            reason = self._reason(self.function(deal, None))
            if reason is not None:
                return reason
        return self._reason(self.function(deal, product))


# -- running and configuring filters -------------------------------------------------------------

_FILTER_MEMBERS = ("name", "peek", "needs", "check_deal", "check")
_WHAT_A_FILTER_IS = (
    "a filter is an object with name, peek, needs, check_deal(deal) and check(deal, product) "
    "(see tokenbudget_keepa.Filter), or a function (deal, product) -> bool | str | None"
)


def _function_name(function: object) -> str:
    name = getattr(function, "name", None)
    if isinstance(name, str) and name.strip():
        return name
    name = getattr(function, "__name__", None)
    if isinstance(name, str) and name.strip() and name != "<lambda>":
        return name
    return "function" if name == "<lambda>" else type(function).__name__


def as_filters(filters: object) -> tuple[Filter, ...]:
    """*filters* as :class:`Filter` objects: plain functions wrapped in :class:`FunctionFilter`.

    Raises:
        TypeError: When *filters* is not a sequence, or holds something that is
            neither a :class:`Filter` nor a callable (saying what a filter needs).
    """
    if isinstance(filters, (str, bytes, Mapping)) or not isinstance(filters, Iterable):
        raise TypeError(f"filters must be a sequence of filters ({_WHAT_A_FILTER_IS}), got "
                        f"{filters!r:.80}")  # fmt: skip
    built: list[Filter] = []
    for item in filters:
        if isinstance(item, Filter):
            _check_members(item)
            built.append(item)
            continue
        members = [m for m in _FILTER_MEMBERS if hasattr(item, m)]
        if callable(item) and not {"check", "check_deal"} & set(members):
            peek, needs = getattr(item, "peek", False), getattr(item, "needs", {})
            built.append(
                FunctionFilter(
                    item,
                    name=_function_name(item),
                    peek=peek if isinstance(peek, bool) else False,
                    needs=needs if isinstance(needs, Mapping) else {},
                )
            )
            continue
        missing = ", ".join(m for m in _FILTER_MEMBERS if m not in members)
        raise TypeError(f"{item!r:.80} is not a filter (it lacks {missing}): {_WHAT_A_FILTER_IS}")
    return tuple(built)


def _check_members(item: Filter) -> None:
    name, peek, needs = item.name, item.peek, item.needs
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"filter {item!r:.80}: name must be a non-empty str, got {name!r}")
    if not isinstance(peek, bool):
        raise TypeError(f"filter {name!r}: peek must be a bool, got {peek!r}")
    if not isinstance(needs, Mapping):
        raise TypeError(f"filter {name!r}: needs must be a mapping, got {needs!r:.80}")
    for member in ("check_deal", "check"):
        if not callable(getattr(item, member)):
            raise TypeError(f"filter {name!r}: {member} must be a method")


def _cost(item: object) -> int:
    cost = getattr(item, "cost", _DEFAULT_COST)
    return cost if isinstance(cost, int) and not isinstance(cost, bool) else _DEFAULT_COST


def order_filters(filters: Iterable[Filter]) -> tuple[Filter, ...]:
    """The filters cheapest first: peek filters before the others, then by ``cost``.

    Ties keep their given order.

    .. versionadded:: 0.1.0
    """
    return tuple(sorted(filters, key=lambda f: (not f.peek, _cost(f))))


def peek_all(filters: Iterable[Filter], deal: Deal) -> str | None:
    """The first peek rejection of *deal* (filters in the order given), or ``None``.

    .. versionadded:: 0.1.0
    """
    for item in filters:
        if item.peek:
            reason = item.check_deal(deal)
            if reason is not None:
                return reason
    return None


def check_all(filters: Iterable[Filter], deal: Deal, product: Product | None) -> str | None:
    """The first full rejection of *deal* and its *product* (in the order given), or ``None``.

    .. versionadded:: 0.1.0
    """
    for item in filters:
        reason = item.check(deal, product)
        if reason is not None:
            return reason
    return None


def enrich_for(filters: Iterable[Filter]) -> dict[str, Any]:
    """The ``products()`` keyword arguments that every filter's full check needs, merged.

    Booleans are or-ed, numbers take the largest; ``buybox`` is dropped when
    ``offers`` is asked for (Keepa ignores it then). An empty result means
    the filters need no enrichment at all.

    >>> from tokenbudget_keepa import ProfitModel, SalesRank, enrich_for
    >>> enrich_for([SalesRank(100_000), ProfitModel(min_profit=0)])
    {'stats': 90, 'buybox': True}

    Raises:
        ValueError: When two filters need different values of a key that is
            neither a bool nor a number (naming the key).

    .. versionadded:: 0.1.0
    """
    merged: dict[str, Any] = {}
    for item in filters:
        for key, value in item.needs.items():
            if key not in merged:
                merged[key] = value
                continue
            old = merged[key]
            if isinstance(old, bool) and isinstance(value, bool):
                merged[key] = old or value
            elif isinstance(old, (int, float)) and isinstance(value, (int, float)):
                merged[key] = max(old, value)
            elif old != value:
                raise ValueError(f"filters need different values of {key!r}: {old!r} and {value!r}")
    if merged.get("offers"):
        merged.pop("buybox", None)
    return merged


DEFAULT_MAX_SALES_RANK = 500_000


def default_filters() -> tuple[Filter, ...]:
    """The built-in defaults: a sales rank of at most 500 000, and no loss (profit >= 0).

    >>> from tokenbudget_keepa import default_filters
    >>> [f.name for f in default_filters()]
    ['sales_rank', 'profit']

    .. versionadded:: 0.1.0
    """
    return (SalesRank(max_rank=DEFAULT_MAX_SALES_RANK), ProfitModel(min_profit=0))


# -- the "filters" object of `ingest --query FILE` ---------------------------------------------


def _fields(key: str, value: object, allowed: dict[str, str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"filters.{key} must be an object, got {value!r}")  # noqa: TRY004
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(
            f"filters.{key}.{unknown[0]} is not a known key (known: {', '.join(sorted(allowed))})"
        )
    return {allowed[name]: v for name, v in value.items()}


_MAPPING_KEYS: dict[str, tuple[type[Any], dict[str, str]]] = {
    "price": (
        PriceRange,
        {"min": "min_price", "max": "max_price", "price_type": "price_type"},
    ),
    "sales_rank": (SalesRank, {"min": "min_rank", "max": "max_rank"}),
    "categories": (Categories, {"include": "include", "exclude": "exclude"}),
    "min_drop": (
        MinDrop,
        {"percent": "percent", "price_type": "price_type", "date_range": "date_range"},
    ),
    "title": (TitleTerms, {"include": "include", "exclude": "exclude"}),
    "offers": (OfferCount, {"min": "min_offers", "max": "max_offers"}),
    "profit": (
        ProfitModel,
        {
            "min_profit": "min_profit",
            "min_roi": "min_roi",
            "sale_price": "sale_price",
            "referral_fee_percent": "referral_fee_percent",
            "fba_fee": "fba_fee",
            "fixed_fees": "fixed_fees",
            "shipping": "shipping",
            "price_type": "price_type",
            "offers": "offers",
        },
    ),
}


def filters_from_mapping(mapping: Mapping[str, Any]) -> tuple[Filter, ...]:
    """Build filters from the ``"filters"`` object of an ``ingest --query FILE`` JSON.

    Each key names one built-in filter; ``{}`` means no filters. The keys and
    their fields (money in cents, ``price_type`` a name such as ``"NEW"`` or
    its number):

    - ``"price"``: ``{"min", "max", "price_type"}`` → :class:`PriceRange`;
    - ``"sales_rank"``: ``{"min", "max"}`` → :class:`SalesRank`;
    - ``"categories"``: ``{"include": [ids], "exclude": [ids]}`` → :class:`Categories`;
    - ``"min_drop"``: ``{"percent", "price_type", "date_range"}`` → :class:`MinDrop`;
    - ``"title"``: ``{"include": [terms], "exclude": [terms]}`` → :class:`TitleTerms`;
    - ``"offers"``: ``{"min", "max"}`` → :class:`OfferCount`;
    - ``"profit"``: ``{"min_profit", "min_roi", "sale_price", "referral_fee_percent",
      "fba_fee", "fixed_fees", "shipping", "price_type", "offers"}`` → :class:`ProfitModel`.

    >>> from tokenbudget_keepa import filters_from_mapping
    >>> filters = filters_from_mapping({"profit": {"min_roi": 0.2}, "sales_rank": {"max": 50000}})
    >>> filters[0]
    SalesRank(max_rank=50000, min_rank=None)
    >>> [f.name for f in filters]
    ['sales_rank', 'profit']

    Returns:
        The filters, cheapest first (:func:`order_filters`).

    Raises:
        ValueError: For an unknown key or a bad value, naming it (``filters.price.min``).

    .. versionadded:: 0.1.0
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(f"filters must be an object, got {mapping!r}")  # noqa: TRY004
    built: list[Filter] = []
    for key, value in mapping.items():
        if key not in _MAPPING_KEYS:
            known = ", ".join(sorted(_MAPPING_KEYS))
            raise ValueError(f"filters.{key} is not a known filter (known: {known})")
        cls, allowed = _MAPPING_KEYS[key]
        kwargs = _fields(key, value, allowed)
        try:
            built.append(cls(**kwargs))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"filters.{key}: {exc}") from None
    return order_filters(built)


def accepted_deal(
    deal: Deal,
    product: Product | None,
    *,
    domain: int,
    filters: Iterable[Filter] = (),
) -> AcceptedDeal:
    """The :class:`AcceptedDeal` to store for an accepted *deal*.

    Its price is the deal's current price of the first :class:`PriceRange` or
    :class:`ProfitModel` among *filters* (else ``NEW``); its sales rank the
    product's, else the deal's; its profit and roi those of the first
    :class:`ProfitModel` (``None`` without one).

    .. versionadded:: 0.1.0
    """
    price_type: PriceType = PriceType.NEW
    estimate: ProfitEstimate | None = None
    found_type = False
    for item in filters:
        if isinstance(item, (PriceRange, ProfitModel)) and not found_type:
            price_type, found_type = item.price_type, True
        if isinstance(item, ProfitModel) and estimate is None:
            result = item.estimate(deal, product)
            estimate = result if isinstance(result, ProfitEstimate) else None
    sales_rank = None if product is None else product.sales_rank
    title = deal.title if deal.title is not None or product is None else product.title
    return AcceptedDeal(
        asin=deal.asin,
        title=title,
        last_update=deal.last_update,
        domain=domain,
        price=deal.price(price_type),
        sales_rank=sales_rank if sales_rank is not None else deal.sales_rank,
        profit=None if estimate is None else estimate.profit,
        roi=None if estimate is None else estimate.roi,
        deal=dict(deal.raw),
        product=None if product is None else dict(product.raw),
    )
