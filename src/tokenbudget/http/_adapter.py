"""The transport classes, once for httpx and httpx2: each public module subclasses them.

httpx and httpx2 share their API but not their classes: a transport for one
must subclass that library's ``BaseTransport`` (or ``AsyncBaseTransport``),
and its annotations name that library's types. ``SyncQuotaTransport``
and ``AsyncQuotaTransport`` here hold everything else, generic in the
library's inner transport, request and response types; a public module
(:mod:`tokenbudget.http.httpx`, :mod:`tokenbudget.http.httpx2`) declares

.. code-block:: python

    class QuotaTransport(
        SyncQuotaTransport[httpx.BaseTransport, httpx.Request, httpx.Response],
        httpx.BaseTransport,
        module=httpx,
    ):
        \"\"\"What is particular to httpx (a summary, an example).\"\"\"

and the class gets the engine of that *module* and, appended to its own
docstring, the arguments and behaviour every transport shares.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import ModuleType, TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from tokenbudget._backend import Backend
from tokenbudget._bucket import AsyncTokenBucket, TokenBucket
from tokenbudget._clock import Clock

from ._dialect import Dialect
from ._engine import AsyncEngine, SyncEngine
from ._transport import CostFunction, TransportCore


__all__ = ["AsyncQuotaTransport", "SyncQuotaTransport"]

#: The inner transport a transport wraps, bound by each library's module
#: (``httpx.BaseTransport`` for ``tokenbudget.http.httpx.QuotaTransport``,
#: ``httpx2.AsyncBaseTransport`` for ``tokenbudget.http.httpx2.AsyncQuotaTransport``, ...).
InnerT = TypeVar("InnerT")
#: The request a transport sends (``httpx.Request`` or ``httpx2.Request``).
RequestT = TypeVar("RequestT")
#: The response a transport returns (``httpx.Response`` or ``httpx2.Response``).
ResponseT = TypeVar("ResponseT")
#: The buckets a transport keeps (:class:`~tokenbudget.TokenBucket` for the sync
#: transports, :class:`~tokenbudget.AsyncTokenBucket` for the async ones).
BucketT = TypeVar("BucketT", TokenBucket, AsyncTokenBucket)

#: What every sync transport's docstring says after its own part; ``{lib}`` is the library.
_SYNC_DOC = """
Per request: book its cost on each limit's bucket (the dialect's estimate,
or *cost*), wait for the latest booking, send, sync every bucket from the
answer and settle the true cost the answer reports (a streamed answer when
its stream ends; an abandoned one stays settled at its booking). Before the
first answer there is no bucket: the first request goes out alone and
the others wait for its answer, which creates a bucket per limit it reports.

An answer whose body tells the true cost (JSON, or any small body) is read
whole before it is returned, and comes back read and closed, as
``{lib}.Response(content=...)`` does: ``read()``, ``iter_bytes()``, ``text``
and ``json()`` give what they would have, even in ``client.stream(...)``;
``iter_raw()`` raises ``StreamConsumed``. The JSON the transport decoded to
follow it is not decoded twice: the first ``json()`` without arguments gives
it (equal to a new decoding, and the caller's alone); later calls decode
again (for a body of at most 256 KiB, a built-in dialect's ``parse``, and
``{lib}.Response``'s own ``json``). Server-sent events stream as they come;
any other body is not read.

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
    transport: The inner transport that sends (default ``{lib}.HTTPTransport()``).
    backend: Where the buckets the transport creates live (default: its own
        memory); every process naming the same backend and *key* shares one budget.
    key: The prefix of the created buckets' names (default
        ``"tokenbudget.http:DIALECT"``): limit ``L`` is bucket ``KEY:L``.
    buckets: Limit name to a :class:`~tokenbudget.TokenBucket` of your own
        (then none is created; give them ``in_flight=`` when requests overlap).
    cost: ``(request) -> {{limit name: cost}}``, the estimate booked before sending
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

#: What every async transport's docstring says after its own part.
_ASYNC_DOC = """
Takes the same arguments as the sync ``QuotaTransport`` of ``{lib}``, with
:class:`~tokenbudget.AsyncTokenBucket` buckets and ``{lib}.AsyncHTTPTransport()``
as the default inner transport.

.. versionadded:: 0.1.0
"""


class _QuotaTransport(Generic[InnerT, BucketT]):
    """What the sync and async transports share: the core and the engine built from the options."""

    #: The library the subclass is for (given as ``module=`` by a library's transport).
    _module: ClassVar[ModuleType]
    #: The name of the library's default inner transport, the buckets' and the engine's types.
    _inner: ClassVar[str]
    _bucket_type: ClassVar[type[TokenBucket | AsyncTokenBucket]]
    _engine_type: ClassVar[type[SyncEngine | AsyncEngine]]
    #: What a library's transport gets appended to its docstring, ``{lib}`` its library's name.
    _shared_doc: ClassVar[str]
    _engine: SyncEngine | AsyncEngine

    def __init_subclass__(cls, *, module: ModuleType | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if module is not None:  # a library's transport, not the sync or async twin below
            cls._module = module
            own = inspect.cleandoc(cls.__doc__ or "")
            cls.__doc__ = own + "\n" + cls._shared_doc.format(lib=module.__name__)

    def __init__(
        self,
        dialect: str | Dialect,
        *,
        transport: InnerT | None = None,
        backend: Backend | None = None,
        key: str | None = None,
        buckets: Mapping[str, BucketT] | None = None,
        cost: CostFunction | None = None,
        retries: int = 3,
        clock: Clock | None = None,
    ) -> None:
        #: The sans-I/O core (its bucket type is the subclass's ``BucketT``).
        core: TransportCore[Any] = TransportCore(
            dialect,
            bucket_type=self._bucket_type,
            backend=backend,
            key=key,
            buckets=buckets,
            cost=cost,
            retries=retries,
            clock=clock,
        )
        self._core = core
        module = self._module
        inner = getattr(module, self._inner)() if transport is None else transport
        self._engine = self._engine_type(module, core, inner)

    def __repr__(self) -> str:
        core = self._core
        return f"{type(self).__name__}({core.dialect.name!r}, buckets={sorted(core.buckets)})"

    @property
    def buckets(self) -> Mapping[str, BucketT]:
        """The bucket of each limit (empty before the first answer when none was given)."""
        buckets: dict[str, BucketT] = self._core.buckets
        return dict(buckets)


class SyncQuotaTransport(
    _QuotaTransport[InnerT, TokenBucket], Generic[InnerT, RequestT, ResponseT]
):
    """What every sync quota transport is; a library's transport subclasses it (module doc)."""

    _inner = "HTTPTransport"
    _bucket_type = TokenBucket
    _engine_type = SyncEngine
    _engine: SyncEngine
    _shared_doc = _SYNC_DOC

    def handle_request(self, request: RequestT) -> ResponseT:
        """Send *request* within the quota (see the class)."""
        response: ResponseT = self._engine.handle(request)
        return response

    def close(self) -> None:
        """Settle what waits, close the inner transport."""
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


class AsyncQuotaTransport(
    _QuotaTransport[InnerT, AsyncTokenBucket], Generic[InnerT, RequestT, ResponseT]
):
    """What every async quota transport is: the sync one's twin that never blocks the loop."""

    _inner = "AsyncHTTPTransport"
    _bucket_type = AsyncTokenBucket
    _engine_type = AsyncEngine
    _engine: AsyncEngine
    _shared_doc = _ASYNC_DOC

    async def handle_async_request(self, request: RequestT) -> ResponseT:
        """Send *request* within the quota (see the sync ``QuotaTransport``)."""
        response: ResponseT = await self._engine.handle(request)
        return response

    async def aclose(self) -> None:
        """Settle what waits, close the inner transport."""
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
