"""Follow any HTTP API's own quota: parse what its answers say, estimate what a request costs.

This package is pure (no I/O, no HTTP library imported): ``import
tokenbudget.http`` and :func:`parse` need neither httpx nor httpx2. The
transports that book, send, follow and settle live in
``tokenbudget.http.httpx`` and ``tokenbudget.http.httpx2``, over one
shared core.

Design
------

*One answer in, one* :class:`QuotaReport` *out.* :func:`parse` hands the
answer (headers in any shape, body as bytes / str / decoded JSON, status) to a
:class:`Dialect` as a :class:`ResponseInfo`; the dialect maps that API's own
fields to dialect-free figures:

- :attr:`QuotaReport.limits`: limit name -> :class:`Limit` ``(limit,
  remaining, reset)`` plus the ``window`` in which a whole limit comes back,
  the refill ``step`` (None: continuous) and the ``unit``. Limit names are
  the dialect's (``"requests"``, ``"tokens"``, ``"input-tokens"``, GitHub's
  resources ``"core"``/``"search"``/``"graphql"``, an IETF policy's name).
  ``reset`` is in seconds from the answer: epoch and date resets are measured
  against the answer's ``Date``, never the local clock; an instant before
  ``Date`` means 0 (now).
- :attr:`QuotaReport.retry_after`: ``retry-after-ms``, else ``Retry-After``,
  take precedence over every reset.
- :attr:`QuotaReport.cost`: the true cost the answer reports, per limit name
  (LLM ``usage``, GraphQL ``rateLimit.cost``, Shopify ``actualQueryCost``,
  Keepa ``tokensConsumed``, Mistral's ``query-cost``) to settle a booking.
- :attr:`QuotaReport.kind`: None, or for a refusal ``"wait"`` (retry after
  ``retry_after``), ``"too_large"`` (can never fit: :class:`RequestTooLarge`)
  or ``"terminal"`` (billing, spend cap: :class:`QuotaExhausted`).
- :attr:`QuotaReport.as_of`: the server's time of the answer, to order
  answers that overtake each other.

*One request in, costs out.* :func:`estimate` asks the dialect what a request
costs per limit name before it is sent (:meth:`Dialect.estimate`: a function
of method, URL, headers and body, plus the limits the latest answer reported),
so that a transport books exactly the buckets the answers will sync. The LLM
dialects book one request plus the prompt estimated from the JSON body plus
``max_tokens``; GitHub and Shopify one request, or a documented bound for a
GraphQL query.

A malformed quota field never raises: it is left out of the report and logged
(WARNING, logger ``tokenbudget.http``). A report never shows more remaining
than the server's field says.

The built-in dialects are named (:data:`DIALECTS`) or built with options
(``OpenAIDialect(default_max_tokens=1024)``).

Errors (all :class:`~tokenbudget.TokenBudgetError`, also in
:mod:`tokenbudget.exceptions`): :class:`RateLimited`, :class:`RequestTooLarge`
(a :class:`~tokenbudget.CostExceedsCapacity`), :class:`QuotaExhausted`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from tokenbudget.exceptions import QuotaExhausted, RateLimited, RequestTooLarge

from ._anthropic import AnthropicDialect
from ._dialect import DIALECTS, Dialect, dialect, estimate, finish, parse
from ._github import GitHubDialect
from ._ietf import IETFDialect
from ._keepa import KeepaDialect
from ._message import HeaderFields, HeadersLike, RequestInfo, ResponseInfo
from ._mistral import MistralDialect
from ._openai import GroqDialect, OpenAIDialect
from ._report import Kind, Limit, QuotaReport
from ._shopify import ShopifyDialect


__all__ = [
    "DIALECTS",
    "AnthropicDialect",
    "Dialect",
    "GitHubDialect",
    "GroqDialect",
    "HeaderFields",
    "HeadersLike",
    "IETFDialect",
    "KeepaDialect",
    "Kind",
    "Limit",
    "MistralDialect",
    "OpenAIDialect",
    "QuotaExhausted",
    "QuotaReport",
    "RateLimited",
    "RequestInfo",
    "RequestTooLarge",
    "ResponseInfo",
    "ShopifyDialect",
    "dialect",
    "estimate",
    "finish",
    "parse",
]
