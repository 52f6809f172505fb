"""The quota-following transports for httpx: :class:`QuotaTransport`, :class:`AsyncQuotaTransport`.

Plug it into any ``httpx`` client: ``httpx.Client(transport=QuotaTransport("github"))``.

Every request is booked on the buckets of the limits it costs, waits for its
turn, goes out through the inner transport, and its answer syncs every bucket
and settles the true cost (see :mod:`tokenbudget.http`, and the how-to guides).
``httpx``'s transport base classes are not httpx2's: this module's classes
are httpx's, over the core shared with :mod:`tokenbudget.http.httpx2`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Self

import httpx

from tokenbudget._backend import Backend
from tokenbudget._bucket import AsyncTokenBucket, TokenBucket
from tokenbudget._clock import Clock

from ._dialect import Dialect
from ._engine import AsyncEngine, SyncEngine
from ._transport import CostFunction, TransportCore


__all__ = ["AsyncQuotaTransport", "QuotaTransport"]


class QuotaTransport(httpx.BaseTransport):
    """A ``httpx`` transport that keeps its requests within the server's own quota.

    >>> import httpx
    >>> from tokenbudget.http.httpx import QuotaTransport
    >>> client = httpx.Client(transport=QuotaTransport("openai", retries=0))

    Per request: book its cost on each limit's bucket (the dialect's estimate,
    or *cost*), wait for the latest booking, send, sync every bucket from the
    answer and settle the true cost the answer reports (a streamed answer when
    its stream ends; an abandoned one stays settled at its booking). Before the
    first answer there is no bucket: the first request goes out alone and
    the others wait for its answer, which creates a bucket per limit it reports.

    A refusal is handled by its kind: *wait* is retried, after the server's
    wait, through the buckets (so that other requests queue behind it), at most
    *retries* times, then :class:`~tokenbudget.http.RateLimited` is raised;
    *too large* raises :class:`~tokenbudget.http.RequestTooLarge` and
    *terminal* :class:`~tokenbudget.http.QuotaExhausted`, at once. With
    ``retries=0`` (an SDK that retries itself) every refusal is returned, and
    the *too large* and *terminal* ones carry ``x-should-retry: false``.

    Args:
        dialect: The API's dialect: a name (``"openai"``, ``"anthropic"``,
            ``"github"``, ``"shopify"``, ``"ietf"``, ``"groq"``, ``"mistral"``,
            ``"keepa"``) or a :class:`~tokenbudget.http.Dialect` object.
        transport: The inner transport that sends (default ``httpx.HTTPTransport()``).
        backend: Where the buckets the transport creates live (default: its own
            memory); every process naming the same backend and *key* shares one budget.
        key: The prefix of the created buckets' names (default
            ``"tokenbudget.http:DIALECT"``): limit ``L`` is bucket ``KEY:L``.
        buckets: Limit name to a :class:`~tokenbudget.TokenBucket` of your own
            (then none is created; give them ``in_flight=`` when requests overlap).
        cost: ``(request) -> {limit name: cost}``, the estimate booked before sending
            (default: the dialect's).
        retries: How many times a *wait* refusal is retried (0: returned to the caller).
        clock: The clock of the created buckets, and what the transport sleeps on
            (default: the monotonic clock).

    Raises:
        ValueError: An unknown dialect name, *retries* below 0, an empty *key*.
        TypeError: *buckets* that are not ``TokenBucket`` objects, a *cost* that is
            not callable.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        dialect: str | Dialect,
        *,
        transport: httpx.BaseTransport | None = None,
        backend: Backend | None = None,
        key: str | None = None,
        buckets: Mapping[str, TokenBucket] | None = None,
        cost: CostFunction | None = None,
        retries: int = 3,
        clock: Clock | None = None,
    ) -> None:
        core = TransportCore(
            dialect,
            bucket_type=TokenBucket,
            backend=backend,
            key=key,
            buckets=buckets,
            cost=cost,
            retries=retries,
            clock=clock,
        )
        inner = httpx.HTTPTransport() if transport is None else transport
        self._engine = SyncEngine(httpx, core, inner)

    def __repr__(self) -> str:
        core = self._engine.core
        return f"{type(self).__name__}({core.dialect.name!r}, buckets={sorted(core.buckets)})"

    @property
    def buckets(self) -> Mapping[str, TokenBucket]:
        """The bucket of each limit (empty before the first answer when none was given)."""
        return dict(self._engine.core.buckets)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* within the quota (see the class)."""
        response: httpx.Response = self._engine.handle(request)
        return response

    def close(self) -> None:
        """Close the inner transport."""
        self._engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()


class AsyncQuotaTransport(httpx.AsyncBaseTransport):
    """The :class:`QuotaTransport` for ``httpx.AsyncClient``: it never blocks the loop.

    Takes the same arguments, with :class:`~tokenbudget.AsyncTokenBucket` buckets
    and ``httpx.AsyncHTTPTransport()`` as the default inner transport.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        dialect: str | Dialect,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backend: Backend | None = None,
        key: str | None = None,
        buckets: Mapping[str, AsyncTokenBucket] | None = None,
        cost: CostFunction | None = None,
        retries: int = 3,
        clock: Clock | None = None,
    ) -> None:
        core = TransportCore(
            dialect,
            bucket_type=AsyncTokenBucket,
            backend=backend,
            key=key,
            buckets=buckets,
            cost=cost,
            retries=retries,
            clock=clock,
        )
        inner = httpx.AsyncHTTPTransport() if transport is None else transport
        self._engine = AsyncEngine(httpx, core, inner)

    __repr__ = QuotaTransport.__repr__

    @property
    def buckets(self) -> Mapping[str, AsyncTokenBucket]:
        """The bucket of each limit (empty before the first answer when none was given)."""
        return dict(self._engine.core.buckets)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* within the quota (see :class:`QuotaTransport`)."""
        response: httpx.Response = await self._engine.handle(request)
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._engine.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()
