"""The cost model: what a Keepa request will cost, estimated before it is sent.

A request is booked on the bucket before it is sent, so its cost must be known
in advance; Keepa tells the true cost only afterwards (``tokensConsumed``),
and the client then settles the booking to it. The model names each request
by its *kind* (the endpoint and the parameters that change the price: offers
and their page count, buybox, rating, stock, ``update=0``) and prices it as
*units* (products asked for; one per deal page) times a cost per unit.

Keepa's documented prices, per product of a ``/product`` request:

- 1 a product found; with ``offers=N`` instead 6 per page of up to 10 offers
  *found* (at most ``ceil(N / 10)`` pages; 5 a page when ``update`` is given and
  the offers are fresher; 1 when the offer fetch fails);
- ``buybox=1``: +2 (not charged with ``offers``, which include the buy box);
- ``rating=1``: +1, only when the rating data is fresh (less than 14 days old);
- ``stock=1``: +2, only when the stock data is fresh (less than 7 days old);
- ``update=0``: +1 for a product updated within the last hour;
- ``stats``, ``history``, ``days``, ``only_live_offers``: nothing.

A ``/deal`` page costs 5, the empty one too; ``/token`` is free and is never booked.

:meth:`RequestKind.list_price` is the most a unit can cost by these rules (every
offer page asked for found, every surcharge charged). Booking that would make a
low-rate account wait four to six times longer than it must: real products have
fewer than 10 offers, and the surcharges that depend on fresh data are charged
for some products only. So before anything is learned a kind is booked at
:meth:`RequestKind.first_estimate`: one page of offers found per product, and half
of each surcharge that depends on fresh data. On the real batches of a
5-tokens-a-minute account (``offers=50, rating=1, buybox=1, stock=1``: 330-372
tokens for 50 products, 14-20 for 3) that is 7.5 a product: above every one of
them, and within 1.25x of all but the cheapest (1.6x). Then the model learns,
per kind, from every settled request: the estimate is the highest cost per unit
of the last :data:`WINDOW` answers of that kind. A rise is adopted at once (one
underestimate never becomes a series); a fall is followed once the dearer
answers have left the window, within a few answers. The estimate only decides
how long the *next* request waits while this one is on the wire: the booking is
settled to the true cost as soon as the answer arrives, so a generous estimate
delays, it never wastes tokens. It is no bound: while a request is on the wire
the client keeps room for what it may cost beyond it (:meth:`CostModel.most`).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

import attrs


__all__ = ["CostModel", "RequestKind"]

#: How many recent answers of a kind the estimate looks at (their highest cost per unit).
WINDOW: Final = 4
#: The least cost per unit the model ever books (a booking needs a cost > 0).
FLOOR: Final = 1.0
#: Tokens per page of up to 10 offers found, per product.
OFFER_PAGE: Final = 6.0
#: Offer pages found per product assumed before anything is learned.
FIRST_OFFER_PAGES: Final = 1
#: The share of a surcharge charged on fresh data only that is booked before anything is learned.
FRESH_ONLY_SHARE: Final = 0.5
#: Tokens a ``/deal`` page costs.
DEAL_PAGE: Final = 5.0


@attrs.frozen(cache_hash=True)  # a key of the cost model's tables, hashed on every request
class RequestKind:
    """The parameters of a request that decide its price per unit.

    Attributes:
        endpoint: ``"product"`` or ``"deal"``.
        offer_pages: Offer pages asked for per product (``ceil(offers / 10)``), 0 without offers.
        buybox: ``buybox=1`` without offers (Keepa does not charge it with offers).
        rating: ``rating=1``.
        stock: ``stock=1``.
        update_now: ``update=0`` (refresh every product now).
    """

    endpoint: str
    offer_pages: int = 0
    buybox: bool = False
    rating: bool = False
    stock: bool = False
    update_now: bool = False

    @classmethod
    def product(
        cls,
        *,
        offers: int | None,
        buybox: bool,
        rating: bool,
        stock: bool = False,
        update: int | None = None,
    ) -> RequestKind:
        """The kind of a ``/product`` request with these parameters."""
        pages = 0 if offers is None else math.ceil(offers / 10)
        return cls("product", pages, buybox and offers is None, rating, stock, update == 0)

    @classmethod
    def deal(cls) -> RequestKind:
        """The kind of a ``/deal`` request (one unit: the page)."""
        return cls("deal")

    def _price(self, pages: float, fresh_share: float) -> float:
        if self.endpoint == "deal":
            return DEAL_PAGE
        base = OFFER_PAGE * pages if self.offer_pages else 1.0
        if self.buybox:
            base += 2.0
        fresh_only = (1.0 if self.rating else 0.0) + (2.0 if self.stock else 0.0)
        fresh_only += 1.0 if self.update_now else 0.0
        return base + fresh_share * fresh_only

    def list_price(self) -> float:
        """The most a unit costs by Keepa's rules: every offer page found, every surcharge."""
        return self._price(self.offer_pages, 1.0)

    def first_estimate(self) -> float:
        """The cost per unit booked before anything is learned (see the module's text)."""
        return self._price(min(self.offer_pages, FIRST_OFFER_PAGES), FRESH_ONLY_SHARE)


@attrs.define
class CostModel:
    """Estimates and learns the cost of Keepa requests per kind (pure: no I/O).

    >>> model = CostModel()
    >>> kind = RequestKind.product(offers=50, buybox=True, rating=True, stock=True)
    >>> model.estimate(kind, 50)  # one page of offers (6) + half of rating (1) and stock (2)
    375.0
    >>> kind.list_price()  # the most: 5 pages of offers, rating and stock charged
    33.0
    >>> model.observe(kind, 50, 330)  # 6.6 a product
    >>> model.estimate(kind, 50)
    330.0
    >>> model.observe(kind, 50, 372)  # 7.44 a product: a rise is adopted at once
    >>> model.observe(kind, 3, 14)  # 4.67: the dearer answers are still in the window
    >>> model.estimate(kind, 3)
    22.32
    """

    _recent: dict[RequestKind, deque[float]] = attrs.field(factory=dict)

    def per_unit(self, kind: RequestKind) -> float:
        """The current estimate of one unit of *kind*."""
        recent = self._recent.get(kind)
        return max(recent) if recent else kind.first_estimate()

    def is_known(self, kind: RequestKind) -> bool:
        """Whether *kind*'s estimate is learned, or by rule its most (a deal page, plain products).

        The client sends a request of a kind not known yet *alone*: the requests after it
        wait for its answer, so that its true cost is in the bucket before they book.
        """
        return kind in self._recent or kind.first_estimate() >= kind.list_price()

    def estimate(self, kind: RequestKind, units: int) -> float:
        """The tokens to book for *units* units of *kind* (at least one unit's floor)."""
        return max(FLOOR, self.per_unit(kind) * max(units, 1))

    def most(self, kind: RequestKind, units: int) -> float:
        """The most *units* units of *kind* may cost: its list price, or the estimate if higher.

        What a request booked at :meth:`estimate` may still cost beyond it (an estimate
        is the highest of the last answers, not a bound): the client keeps that much
        room while the request is on the wire (see ``clients``).
        """
        return max(self.estimate(kind, units), kind.list_price() * max(units, 1))

    def observe(self, kind: RequestKind, units: int, consumed: float) -> None:
        """Learn from a settled request: *consumed* tokens (``tokensConsumed``) for *units*.

        A request that found nothing (no units, or nothing consumed for units
        Keepa did not know) teaches nothing.
        """
        if units <= 0 or not math.isfinite(consumed) or consumed <= 0:
            return
        recent = self._recent.setdefault(kind, deque(maxlen=WINDOW))
        recent.append(max(FLOOR, consumed / units))
