"""The rest of Keepa's API as methods of both clients, each written once over :mod:`._endpoints`.

Every method here builds its :class:`~._endpoints.EndpointCall` (the arguments
are checked then, before anything is sent) and hands it to the client's
``_call`` (one request), ``_call_all`` (several, merged) or ``_pages`` (a page
iterator): :class:`~tokenbudget_keepa.KeepaClient` sends and waits,
:class:`~tokenbudget_keepa.AsyncKeepaClient` awaits, both through the same
booking, retry and settle path as ``products()`` and ``deals()``. The methods
are written once, in :class:`Endpoints`; :class:`AsyncEndpoints` holds their
async twins (:func:`.steps.awaited`, :func:`.steps.async_pages`), whose bodies
are the same functions run over the async client's ``_call``. The page
iterators ask for the next page only when it is wanted, so that stopping early
never pays for a page not read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .endpoints import (
    SEARCH_MAX_PAGE,
    SEARCH_PAGE_SIZE,
    EndpointCall,
    best_sellers_call,
    category_calls,
    category_search_call,
    finder_call,
    lightning_deals_call,
    search_call,
    seller_calls,
)
from .models.finder import FINDER_MAX_RESULTS, FinderQuery
from .models.products import Product
from .models.results import Category, FinderPage, LightningDeal, Seller
from .steps import async_pages, awaited, twins


__all__ = ["AsyncEndpoints", "Endpoints"]

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K")
V = TypeVar("V")


def _merged(parts: list[dict[K, V]]) -> dict[K, V]:
    """The answers of several requests (categories, sellers) as one mapping."""
    found: dict[K, V] = {}
    for part in parts:
        found.update(part)
    return found


def _finder_pages(
    domain: int,
    selection: FinderQuery | Mapping[str, Any],
    per_page: int | None,
    first_page: int,
) -> Iterator[EndpointCall[FinderPage]]:
    """The calls of every page from *first_page* on, the first one built (checked) at once."""
    first = finder_call(domain, selection, page=first_page, per_page=per_page)
    query = FinderQuery.from_mapping(selection).with_page(first_page, per_page)
    size = query.page_size

    def calls() -> Iterator[EndpointCall[FinderPage]]:
        yield first
        page = first_page + 1
        while (page + 1) * size <= FINDER_MAX_RESULTS:
            yield finder_call(domain, query, page=page, per_page=size)
            page += 1

    return calls()


def _search_pages(
    domain: int, term: str, first_page: int, options: Mapping[str, Any]
) -> Iterator[EndpointCall[list[Product]]]:
    first = search_call(domain, term, page=first_page, **options)

    def calls() -> Iterator[EndpointCall[list[Product]]]:
        yield first
        for page in range(first_page + 1, SEARCH_MAX_PAGE + 1):
            yield search_call(domain, term, page=page, **options)

    return calls()


class Endpoints:
    """The rest of Keepa's API for :class:`~tokenbudget_keepa.KeepaClient` (a mixin)."""

    _domain: int

    def _call(self, endpoint: EndpointCall[T]) -> T:  # pragma: no cover -- the client's
        raise NotImplementedError

    def _call_all(self, calls: Iterable[EndpointCall[T]], merge: Callable[[list[T]], R]) -> R:
        """Send *calls* one after the other; their results, merged."""
        return merge([self._call(endpoint) for endpoint in calls])

    def _pages(self, calls: Iterator[EndpointCall[T]], is_last: Callable[[T], bool]) -> Iterator[T]:
        for endpoint in calls:
            yield (result := self._call(endpoint))
            if is_last(result):
                return

    def product_finder(
        self,
        selection: FinderQuery | Mapping[str, Any],
        *,
        page: int = 0,
        per_page: int | None = None,
    ) -> FinderPage:
        """One page of a product finder query (``/query``): ASINs matching *selection*.

        *selection* is a :class:`~tokenbudget_keepa.FinderQuery` or a mapping of
        Keepa's product finder fields. *page* (from 0) is the page asked for,
        whatever page the selection names; *per_page* (50 to 10,000) overrides
        its ``perPage`` (Keepa's default: 50). Booked at Keepa's bound for the
        page size (10 + 1 per started 100 ASINs) and settled to what the answer
        cost (10 + 1 per started 100 ASINs returned).

        Raises:
            TypeError, ValueError: A field or the paging is malformed (named in
                the message), before anything is sent.
            KeepaError: The request failed.

        .. versionadded:: 0.1.0
        """
        return self._call(finder_call(self._domain, selection, page=page, per_page=per_page))

    def iter_product_finder(
        self,
        selection: FinderQuery | Mapping[str, Any],
        *,
        per_page: int | None = None,
        first_page: int = 0,
    ) -> Iterator[FinderPage]:
        """The pages of a product finder query, each asked for only when the loop wants it.

        Stops after a page with fewer ASINs than a page holds, or at Keepa's
        10,000th result; breaking out of the loop early never pays for a page
        not read. The arguments are checked at once (not at the first page).

        .. versionadded:: 0.1.0
        """
        calls = _finder_pages(self._domain, selection, per_page, first_page)
        return self._pages(calls, lambda found: found.is_last)

    def best_sellers(
        self,
        category: int | str,
        *,
        range: int = 0,  # noqa: A002 -- Keepa's name, pinned by the specification
        month: int | None = None,
        year: int | None = None,
        variations: bool = False,
        sublist: bool = False,
    ) -> list[str]:
        """The best seller list of a category (node id) or product group: ASINs, best first.

        50 tokens (none when Keepa has no list: the result is then empty).
        *range* ranks by the current sales rank (0) or its 30-, 90- or 180-day
        average; *month* and *year* ask for a past month's list; *sublist*
        ranks a sub-category by its own rank; *variations* lists every variation.

        .. versionadded:: 0.1.0
        """
        return self._call(
            best_sellers_call(
                self._domain,
                category,
                range=range,
                month=month,
                year=year,
                variations=variations,
                sublist=sublist,
            )
        )

    def categories(self, ids: int | Iterable[int], *, parents: bool = False) -> dict[int, Category]:
        """Categories by node id (``0``: every root category), 1 token a request of 10 ids.

        With *parents* the categories on the way to each one's root are in the
        result too.

        .. versionadded:: 0.1.0
        """
        return self._call_all(category_calls(self._domain, ids, parents=parents), _merged)

    def category_search(self, term: str, *, parents: bool = False) -> dict[int, Category]:
        """Categories whose name holds every keyword of *term* (each 3 characters or more): 1.

        .. versionadded:: 0.1.0
        """
        return self._call(category_search_call(self._domain, term, parents=parents))

    def search(
        self,
        term: str,
        *,
        page: int = 0,
        stats: int | None = None,
        update: int | None = None,
        history: bool = True,
        rating: bool = False,
    ) -> list[Product]:
        """Keepa's product search: one page (0 to 9) of up to 10 products, 10 tokens.

        ``update=0`` may cost 1 more a product, ``rating`` up to 5 more a page
        (both in the booking).

        .. versionadded:: 0.1.0
        """
        call = search_call(
            self._domain,
            term,
            page=page,
            stats=stats,
            update=update,
            history=history,
            rating=rating,
        )
        return self._call(call)

    def iter_search(
        self,
        term: str,
        *,
        first_page: int = 0,
        stats: int | None = None,
        update: int | None = None,
        history: bool = True,
        rating: bool = False,
    ) -> Iterator[list[Product]]:
        """The pages of a product search, each asked for (10 tokens) only when wanted.

        Stops after a page of fewer than 10 products, or after page 9.

        .. versionadded:: 0.1.0
        """
        options: dict[str, Any] = {
            "stats": stats,
            "update": update,
            "history": history,
            "rating": rating,
        }
        calls = _search_pages(self._domain, term, first_page, options)
        return self._pages(calls, lambda found: len(found) < SEARCH_PAGE_SIZE)

    def sellers(
        self, ids: str | Iterable[str], *, storefront: bool = False, update: int | None = None
    ) -> dict[str, Seller]:
        """Sellers by id, 1 token a seller found (100 ids a request).

        *storefront* (one id at a time) fills :attr:`Seller.asins` (+9 tokens
        when Keepa has two ASINs or more); *update* (hours, with *storefront*)
        has Keepa collect the storefront anew when its copy is older (up to 50).

        .. versionadded:: 0.1.0
        """
        calls = seller_calls(self._domain, ids, storefront=storefront, update=update)
        return self._call_all(calls, _merged)

    def lightning_deals(
        self, asin: str | None = None, *, state: str | None = None
    ) -> list[LightningDeal]:
        """The lightning deal of one ASIN (1 token) or all of them (500 tokens).

        *state* keeps the deals in one state (``"AVAILABLE"``, ``"UPCOMING"``, …).

        .. versionadded:: 0.1.0
        """
        return self._call(lightning_deals_call(self._domain, asin, state=state))


@twins
class AsyncEndpoints:
    """The rest of Keepa's API for :class:`~tokenbudget_keepa.AsyncKeepaClient` (a mixin).

    Each method is its :class:`Endpoints` twin (same arguments, same checks)
    as a coroutine; the page iterators are for ``async for``.
    """

    _domain: int

    async def _call(self, endpoint: EndpointCall[T]) -> T:  # pragma: no cover -- the client's
        raise NotImplementedError

    async def _call_all(self, calls: Iterable[EndpointCall[T]], merge: Callable[[list[T]], R]) -> R:
        return merge([await self._call(endpoint) for endpoint in calls])

    async def _pages(
        self, calls: Iterator[EndpointCall[T]], is_last: Callable[[T], bool]
    ) -> AsyncIterator[T]:
        for endpoint in calls:
            yield (result := await self._call(endpoint))
            if is_last(result):
                return

    product_finder = awaited(Endpoints.product_finder)
    iter_product_finder = async_pages(Endpoints.iter_product_finder)
    best_sellers = awaited(Endpoints.best_sellers)
    categories = awaited(Endpoints.categories)
    category_search = awaited(Endpoints.category_search)
    search = awaited(Endpoints.search)
    iter_search = async_pages(Endpoints.iter_search)
    sellers = awaited(Endpoints.sellers)
    lightning_deals = awaited(Endpoints.lightning_deals)
