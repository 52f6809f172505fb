"""The quota-following transports for httpx: :class:`QuotaTransport`, :class:`AsyncQuotaTransport`.

Plug it into any ``httpx`` client: ``httpx.Client(transport=QuotaTransport("github"))``.

Every request is booked on the buckets of the limits it costs, waits for its
turn, goes out through the inner transport, and its answer syncs every bucket
and settles the true cost (see :mod:`tokenbudget.http`, and the how-to guides).
``httpx``'s transport base classes are not httpx2's: this module's classes
are httpx's, over the implementation shared with :mod:`tokenbudget.http.httpx2`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import httpx

from . import _adapter


__all__ = ["AsyncQuotaTransport", "QuotaTransport"]


class QuotaTransport(
    _adapter.SyncQuotaTransport[httpx.BaseTransport, httpx.Request, httpx.Response],
    httpx.BaseTransport,
    module=httpx,
):
    """A ``httpx`` transport that keeps its requests within the server's own quota.

    >>> import httpx
    >>> from tokenbudget.http.httpx import QuotaTransport
    >>> client = httpx.Client(transport=QuotaTransport("github"))
    """


class AsyncQuotaTransport(
    _adapter.AsyncQuotaTransport[httpx.AsyncBaseTransport, httpx.Request, httpx.Response],
    httpx.AsyncBaseTransport,
    module=httpx,
):
    """The :class:`QuotaTransport` for ``httpx.AsyncClient``: it never blocks the loop.

    >>> import httpx
    >>> from tokenbudget.http.httpx import AsyncQuotaTransport
    >>> client = httpx.AsyncClient(transport=AsyncQuotaTransport("github"))
    """
