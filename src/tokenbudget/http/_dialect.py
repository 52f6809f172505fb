"""The :class:`Dialect` protocol, the built-in dialects by name, :func:`parse`, :func:`estimate`."""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Mapping
from typing import Final, Protocol, runtime_checkable

from ._message import HeadersLike, RequestInfo, ResponseInfo, log, quote
from ._report import Kind, Limit, QuotaReport


__all__ = ["DIALECTS", "Dialect", "dialect", "estimate", "finish", "parse"]


@runtime_checkable
class Dialect(Protocol):
    """How one HTTP API reports its quota, and what a request costs it.

    Implement it for an API of your own and pass the object wherever a dialect
    name is accepted. Both methods are pure (no I/O, no clock but the one the
    answer carries) and must not raise on anything a server may send: ignore a
    malformed field (log a warning on the ``tokenbudget.http`` logger) and
    report what is left.

    >>> from tokenbudget.http import Limit, QuotaReport, ResponseInfo, finish, parse
    >>> class Widgets:
    ...     name = "widgets"
    ...
    ...     def parse(self, response: ResponseInfo) -> QuotaReport:
    ...         left = response.headers.get("x-widgets-left")
    ...         limits = {}
    ...         if left is not None and left.isdigit():
    ...             limits["calls"] = Limit(100, float(left), None, window=60)
    ...         return finish(response, self.name, limits)
    ...
    ...     def estimate(self, request, limits):
    ...         return {"calls": 1}
    >>> parse(Widgets(), {"X-Widgets-Left": "42"}).limits["calls"].remaining
    42.0

    :func:`finish` applies the rules every dialect shares: ``retry-after-ms``
    and ``Retry-After`` take precedence, a 429 is a *wait* unless the dialect
    says otherwise, the answer's ``Date`` is its :attr:`~QuotaReport.as_of`.

    .. versionadded:: 0.1.0
    """

    @property
    def name(self) -> str:
        """A short name for messages and logs (``"openai"``)."""
        ...

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        ...

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """The cost of *request* per limit name, booked before it is sent.

        *limits* are the limits the latest answer reported (empty before the
        first answer): dialects whose limit names the server chooses (IETF
        policy names) book on those. A name missing from the result costs 0.
        """
        ...


#: The built-in dialects: name -> (module, class).
_BUILTIN: Final = {
    "anthropic": ("._anthropic", "AnthropicDialect"),
    "github": ("._github", "GitHubDialect"),
    "groq": ("._openai", "GroqDialect"),
    "ietf": ("._ietf", "IETFDialect"),
    "keepa": ("._keepa", "KeepaDialect"),
    "mistral": ("._mistral", "MistralDialect"),
    "openai": ("._openai", "OpenAIDialect"),
    "shopify": ("._shopify", "ShopifyDialect"),
}
#: The names :func:`dialect` knows, sorted.
DIALECTS: Final = tuple(sorted(_BUILTIN))
_CACHE: dict[str, Dialect] = {}


def dialect(name: str | Dialect) -> Dialect:
    """The built-in dialect called *name* (one of :data:`DIALECTS`); a dialect object as is.

    >>> from tokenbudget.http import dialect
    >>> dialect("openai").name
    'openai'

    Raises:
        ValueError: *name* is no built-in dialect (the message lists them).
        TypeError: *name* is neither a string nor a :class:`Dialect`.

    .. versionadded:: 0.1.0
    """
    if isinstance(name, str):
        found = _CACHE.get(name)
        if found is None:
            where = _BUILTIN.get(name)
            if where is None:
                raise ValueError(
                    f"unknown dialect {name!r}; the built-in ones: {', '.join(DIALECTS)}"
                )
            module = importlib.import_module(where[0], __package__)
            found = _CACHE[name] = getattr(module, where[1])()
        return found
    if isinstance(name, Dialect):
        return name
    raise TypeError(
        f"dialect must be a name ({', '.join(DIALECTS)}) or a Dialect object, got {quote(name)}"
    )


def parse(
    dialect: str | Dialect,
    headers: HeadersLike,
    body: object = None,
    *,
    status: int = 200,
    url: str | None = None,
    received_at: float | None = None,
) -> QuotaReport:
    """Read what one HTTP answer says about its quota; pure, no I/O.

    >>> from tokenbudget.http import parse
    >>> report = parse("openai", {
    ...     "x-ratelimit-limit-tokens": "30000",
    ...     "x-ratelimit-remaining-tokens": "29937",
    ...     "x-ratelimit-reset-tokens": "126ms",
    ... })
    >>> report.limits["tokens"]  # doctest: +NORMALIZE_WHITESPACE
    Limit(limit=30000.0, remaining=29937.0, reset=0.126, window=60.0, step=None, unit='tokens',
          rounding=None)

    Args:
        dialect: A built-in dialect's name (:data:`DIALECTS`) or a :class:`Dialect`.
        headers: The answer's headers: a mapping (httpx's and httpx2's
            ``Headers`` too), or ``(name, value)`` pairs; any case.
        body: The body as ``bytes`` or ``str`` (JSON decoded when the dialect
            reads it), an already decoded JSON value, or None.
        status: The HTTP status.
        url: The request's URL, when known (GitHub's limit names fall back on it).
        received_at: Local Unix time of arrival; used only when the answer has
            no ``Date``. Default: now.

    Returns:
        The :class:`QuotaReport`. A malformed quota field is left out with a
        warning on the ``tokenbudget.http`` logger, never raised (and were a
        built-in dialect ever to fail on an answer, the answer is taken as
        reporting no limit, with the traceback logged as an ERROR).

    Raises:
        ValueError: An unknown dialect name, or a status outside 100..999.
        TypeError: *headers* is not a mapping or pairs of ``str`` / ``bytes``.

    .. versionadded:: 0.1.0
    """
    chosen = _resolve(dialect)
    response = ResponseInfo(headers, body, status=status, url=url, received_at=received_at)
    if type(chosen).__module__.startswith(__package__ or "tokenbudget.http"):
        report = _guarded(chosen, response)
    else:
        report = chosen.parse(response)
    if not isinstance(report, QuotaReport):
        raise TypeError(f"dialect {chosen.name!r} returned {quote(report)}, not a QuotaReport")
    return report


def estimate(
    dialect: str | Dialect,
    method: str = "GET",
    url: str = "",
    headers: HeadersLike = (),
    body: object = None,
    *,
    limits: Mapping[str, Limit] | None = None,
) -> dict[str, float]:
    """The dialect's cost estimate of a request, per limit name, to book before sending.

    >>> from tokenbudget.http import estimate
    >>> estimate("github", "GET", "https://api.github.com/repos/python/cpython")
    {'core': 1.0}

    Args:
        dialect: A built-in dialect's name or a :class:`Dialect`.
        method: The HTTP method.
        url: The URL.
        headers: The request's headers.
        body: Its body (``bytes``, ``str`` or decoded JSON), or None.
        limits: The limits the latest answer reported, when known.

    Raises:
        ValueError: The dialect returned a cost that is not a finite number >= 0.

    .. versionadded:: 0.1.0
    """
    chosen = _resolve(dialect)
    costs = chosen.estimate(RequestInfo(method, url, headers, body), limits or {})
    out: dict[str, float] = {}
    for name, cost in costs.items():
        value = float(cost)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"dialect {chosen.name!r} estimated cost {cost!r} for limit {name!r}; "
                "a cost must be a finite number >= 0"
            )
        out[name] = value
    return out


_resolve = dialect


def _guarded(chosen: Dialect, response: ResponseInfo) -> QuotaReport:
    """A built-in dialect's report; should it ever fail, an empty one and an ERROR log.

    The built-in dialects are fuzzed never to raise; this net keeps a request
    that an undiscovered bug would crash going (the answer then reports no
    limit, as an answer without quota fields does), and says so loudly.
    """
    try:
        return chosen.parse(response)
    except Exception:  # noqa: BLE001 -- the net under the fuzzed parsers, logged with its traceback
        log.log(
            logging.ERROR,
            "%s: could not read the answer's quota (a bug in tokenbudget; please report it "
            "with this traceback); the answer is taken as reporting no limit",
            chosen.name,
            exc_info=True,
        )
        return finish(response, chosen.name, {})


def finish(
    response: ResponseInfo,
    name: str,
    limits: Mapping[str, Limit],
    *,
    cost: Mapping[str, float] | None = None,
    kind: Kind | None = None,
    retry_after: float | None = None,
    requested: Mapping[str, float] | None = None,
    allowed: Mapping[str, float] | None = None,
    as_of: float | None = None,
    message: str = "",
) -> QuotaReport:
    """Build a dialect's :class:`QuotaReport` with the rules every dialect shares.

    - ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date,
      measured against ``Date``), takes precedence over *retry_after* (a wait
      the dialect read from the body) and over every reset.
    - A 429 the dialect did not classify is a *wait*.
    - A *wait* with no time named waits for the latest reset among the
      exhausted limits (when they have one).
    - *as_of* defaults to the answer's ``Date``.

    Args:
        response: The answer.
        name: The dialect's name, for warnings.
        limits: The limits read.
        cost: The true cost the answer reports, per limit name.
        kind: The dialect's verdict on a refusal, or None.
        retry_after: A wait in seconds the dialect read elsewhere than the headers.
        requested: What the server says the request asked for.
        allowed: The most the server admits for one request (a *too_large* refusal).
        as_of: The server's time of the answer when the dialect knows better than ``Date``.
        message: The server's words for a refusal (cut to 500 characters).

    .. versionadded:: 0.1.0
    """
    header_wait = response.retry_after(name)
    wait = header_wait if header_wait is not None else retry_after
    if kind is None and response.status == 429:
        kind = "wait"
    if kind == "wait" and wait is None:
        resets = [lim.reset for lim in limits.values() if lim.exhausted and lim.reset is not None]
        wait = max(resets) if resets else None
    if wait is not None and not (math.isfinite(wait) and wait >= 0):
        wait = None
    return QuotaReport(
        limits=limits,
        retry_after=wait,
        cost=cost or {},
        kind=kind,
        requested=requested or {},
        allowed=allowed or {},
        as_of=response.date if as_of is None else as_of,
        message=message[:500],
    )
