"""The quota-following transports for httpx2: :class:`QuotaTransport`, :class:`AsyncQuotaTransport`.

``httpx2`` is what the OpenAI and Anthropic SDKs use: ``OpenAI(http_client=httpx2.Client(
transport=QuotaTransport("openai", retries=0)))``, the SDK keeping its own retries.

Every request is booked on the buckets of the limits it costs, waits for its
turn, goes out through the inner transport, and its answer syncs every bucket
and settles the true cost (see :mod:`tokenbudget.http`, and the how-to guides).
``httpx2``'s transport base classes are not httpx's: this module's classes
are httpx2's, over the implementation shared with :mod:`tokenbudget.http.httpx`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import httpx2

from . import _adapter


__all__ = ["AsyncQuotaTransport", "QuotaTransport"]


class QuotaTransport(
    _adapter.SyncQuotaTransport[httpx2.BaseTransport, httpx2.Request, httpx2.Response],
    httpx2.BaseTransport,
    module=httpx2,
):
    """A ``httpx2`` transport that keeps its requests within the server's own quota.

    The one to give the OpenAI and Anthropic SDKs, with ``retries=0`` so that
    the SDK's own retries are the only ones:

    >>> import httpx2
    >>> from tokenbudget.http.httpx2 import QuotaTransport
    >>> client = httpx2.Client(transport=QuotaTransport("openai", retries=0))
    """


class AsyncQuotaTransport(
    _adapter.AsyncQuotaTransport[httpx2.AsyncBaseTransport, httpx2.Request, httpx2.Response],
    httpx2.AsyncBaseTransport,
    module=httpx2,
):
    """The :class:`QuotaTransport` for ``httpx2.AsyncClient``: it never blocks the loop.

    For ``AsyncOpenAI`` and ``AsyncAnthropic``, with ``retries=0`` as well:

    >>> import httpx2
    >>> from tokenbudget.http.httpx2 import AsyncQuotaTransport
    >>> client = httpx2.AsyncClient(transport=AsyncQuotaTransport("anthropic", retries=0))
    """
