"""The cost model: what a Keepa request will cost, estimated before it is sent.

A request is booked on the bucket before it is sent, so its cost must be known
in advance; Keepa tells the true cost only afterwards (``tokensConsumed``),
and the client then settles the booking to it. The model names each request
by its *kind* (the endpoint and the parameters that change the price: offers,
their page count, buybox, rating) and prices it as *units* (products asked
for; one per deal page) times a learned cost per unit. Each kind starts from
Keepa's price list (1 a product; 6 a page of offers a product, up to the pages
asked for; +2 buybox; +1 rating; 5 a deal page), which is the most it can
cost. Then it learns from every settled request the way the core's batch sizer
does: a cost per unit above the estimate is adopted at once, so one
underestimate never becomes a series; a lower one is followed gradually (a
quarter of the way each time), because an offers batch costs more or less
depending on how many offers the products happen to have. The estimate only
decides how long the *next* request waits while this one is on the wire: the
booking is settled to the true cost as soon as the answer arrives, so a
generous estimate delays, it never wastes tokens. ``/token`` is free and is
never booked.
"""

from __future__ import annotations

import math
from typing import Final

import attrs


__all__ = ["CostModel", "RequestKind"]

#: How far a lower observed cost moves the estimate down (a quarter of the way).
FALL: Final = 0.25
#: The least cost per unit the model ever books (a booking needs a cost > 0).
FLOOR: Final = 1.0


@attrs.frozen
class RequestKind:
    """The parameters of a request that decide its price per unit.

    Attributes:
        endpoint: ``"product"`` or ``"deal"``.
        offer_pages: Offer pages asked for per product (``ceil(offers / 10)``), 0 without offers.
        buybox: ``buybox=1`` (Keepa ignores it with offers).
        rating: ``rating=1``.
    """

    endpoint: str
    offer_pages: int = 0
    buybox: bool = False
    rating: bool = False

    @classmethod
    def product(cls, *, offers: int | None, buybox: bool, rating: bool) -> RequestKind:
        """The kind of a ``/product`` request with these parameters."""
        pages = 0 if offers is None else math.ceil(offers / 10)
        return cls("product", pages, buybox and offers is None, rating)

    @classmethod
    def deal(cls) -> RequestKind:
        """The kind of a ``/deal`` request (one unit: the page)."""
        return cls("deal")

    def list_price(self) -> float:
        """Keepa's price per unit before anything is learned: the most it costs."""
        if self.endpoint == "deal":
            return 5.0
        base = 6.0 * self.offer_pages if self.offer_pages else 1.0
        return base + (2.0 if self.buybox else 0.0) + (1.0 if self.rating else 0.0)


@attrs.define
class CostModel:
    """Estimates and learns the cost of Keepa requests per kind (pure: no I/O).

    >>> model = CostModel()
    >>> kind = RequestKind.product(offers=20, buybox=False, rating=False)
    >>> model.estimate(kind, 20)  # 20 products x 2 offer pages x 6 tokens
    240.0
    >>> model.observe(kind, 20, 100)  # 5 a product: followed a quarter of the way
    >>> model.estimate(kind, 20)
    205.0
    >>> model.observe(kind, 20, 260)  # 13 a product: adopted at once
    >>> model.estimate(kind, 20)
    260.0
    """

    _per_unit: dict[RequestKind, float] = attrs.field(factory=dict)

    def per_unit(self, kind: RequestKind) -> float:
        """The current estimate of one unit of *kind*."""
        return self._per_unit.get(kind, kind.list_price())

    def estimate(self, kind: RequestKind, units: int) -> float:
        """The tokens to book for *units* units of *kind* (at least one unit's floor)."""
        return max(FLOOR, self.per_unit(kind) * max(units, 1))

    def observe(self, kind: RequestKind, units: int, consumed: float) -> None:
        """Learn from a settled request: *consumed* tokens (``tokensConsumed``) for *units*.

        A request that found nothing (no units, or nothing consumed for units
        Keepa did not know) teaches nothing.
        """
        if units <= 0 or not math.isfinite(consumed) or consumed <= 0:
            return
        seen = max(FLOOR, consumed / units)
        old = self.per_unit(kind)
        self._per_unit[kind] = seen if seen >= old else old + FALL * (seen - old)
