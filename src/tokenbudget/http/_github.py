"""The ``github`` dialect: REST ``x-ratelimit-*``, secondary limits, GraphQL ``rateLimit``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ._dialect import finish
from ._graphql import Field, operations
from ._llm import dig
from ._message import (
    MESSAGE_CHARS,
    RequestInfo,
    ResponseInfo,
    decimal,
    finite,
    rfc3339,
    warn_malformed,
)
from ._report import Kind, Limit, QuotaReport


__all__ = ["GitHubDialect"]

#: The window of each resource GitHub documents, in seconds (a fixed window: the
#: whole limit comes back at ``x-ratelimit-reset``).
WINDOWS: Final = {
    "core": 3600.0,
    "graphql": 3600.0,
    "search": 60.0,
    "code_search": 60.0,
    "integration_manifest": 3600.0,
    "source_import": 60.0,
    "code_scanning_upload": 3600.0,
    "code_scanning_autofix": 3600.0,
    "actions_runner_registration": 3600.0,
    "scim": 3600.0,
    "dependency_snapshots": 3600.0,
    "dependency_sbom": 3600.0,
    "audit_log": 3600.0,
    "audit_log_streaming": 3600.0,
}
#: GitHub's advice when a secondary limit names no time: wait at least a minute.
SECONDARY_WAIT: Final = 60.0
_SECONDARY: Final = ("secondary rate limit", "abuse detection")
_PRIMARY: Final = ("api rate limit exceeded", "rate limit exceeded")


#: The most nodes one connection returns (GitHub's cap on ``first`` / ``last``).
MAX_PAGE: Final = 100


def _requests(fields: tuple[Field, ...], times: int) -> int:
    """GitHub's count of the requests a selection needs, each connection at full pages."""
    total = 0
    for field in fields:
        if field.children is None or field.spread:
            continue
        if field.size is not None:
            total += times + _requests(field.children, times * field.size)
        else:
            total += _requests(field.children, times)
    return total


def query_points(query: str, variables: Mapping[str, object] | None = None) -> int | None:
    """GitHub's primary-limit points of a GraphQL query, from its text, or None.

    >>> from tokenbudget.http._github import query_points
    >>> query_points(
    ...     "{ viewer { repositories(first: 100) { nodes { issues(first: 50) {"
    ...     " nodes { labels(first: 60) { nodes { name } } } } } } } }"
    ... )
    51

    GitHub's documented rule: add up the requests each connection needs
    (assuming every ``first`` / ``last`` is filled: one for the top connection,
    then one per parent node), divide by 100, round; at least 1.

    .. versionadded:: 0.1.0
    """
    found = operations(query, variables, page_cap=MAX_PAGE)
    if found is None:
        return None
    total = sum(_requests(op.fields, 1) for op in found)
    return max(1, int(total / 100 + 0.5))


def _resource_of(path: str) -> str:
    if path.startswith("/search/code"):
        return "code_search"
    if path.startswith("/search/"):
        return "search"
    if path.rstrip("/").endswith("/graphql"):
        return "graphql"
    return "core"


def _path(url: str) -> str:
    return RequestInfo("GET", url).path


class GitHubDialect:
    """GitHub's REST headers and GraphQL ``rateLimit``.

    Limits are named by GitHub's resource (``x-ratelimit-resource``: ``core``,
    ``search``, ``code_search``, ``graphql``, ...; when the answer omits it,
    as older answers do, the request's path decides, else ``core``). Resets
    are epoch seconds, measured against the answer's ``Date``. Windows are
    fixed (``step == window``): an hour for ``core`` and ``graphql``, a minute
    for the searches.

    A GraphQL answer's ``data.rateLimit`` (``limit``, ``remaining``, ``cost``,
    ``resetAt``: ask for it in the query) reports the ``graphql`` limit and
    the query's true cost.

    Refusals (403 or 429, and GraphQL ``RATE_LIMITED`` errors) are *waits*:
    ``Retry-After`` when sent; for a secondary limit without it,
    a minute, as GitHub advises; for an exhausted
    primary limit, its reset. A 403 that is none of these is no quota answer.

    The estimate books one point on the request's resource; a GraphQL query
    its points by GitHub's documented rule, read from its text (the requests
    its connections need at full pages, divided by 100, at least 1), or 1
    when the text cannot be read. The answer's ``rateLimit.cost``, or the next
    answer's headers, correct it.

    .. versionadded:: 0.1.0
    """

    name = "github"

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        limits: dict[str, Limit] = {}
        headers = response.headers
        resource = headers.get("x-ratelimit-resource")
        if resource is not None and not resource.strip():
            resource = None
        if resource is None:
            resource = _resource_of(_path(response.url)) if response.url else "core"
        resource = resource.strip()
        figures: list[float | None] = []
        for part in ("limit", "remaining"):
            raw = headers.get(f"x-ratelimit-{part}")
            value = None if raw is None else decimal(raw)
            if raw is not None and value is None:
                warn_malformed(self.name, f"x-ratelimit-{part}", raw)
            figures.append(value)
        raw_reset = headers.get("x-ratelimit-reset")
        reset = None
        if raw_reset is not None:
            epoch = decimal(raw_reset)
            if epoch is None:
                warn_malformed(self.name, "x-ratelimit-reset", raw_reset)
            else:
                reset = response.seconds_until(epoch)
        window = WINDOWS.get(resource)
        if figures != [None, None] or reset is not None:
            limits[resource] = Limit(
                figures[0], figures[1], reset, window=window, step=window, unit="requests"
            )
        cost = self._graphql(response, limits)
        kind, message, wait = self._refusal(response, limits, resource)
        return finish(
            response, self.name, limits, cost=cost, kind=kind, retry_after=wait, message=message
        )

    def _graphql(self, response: ResponseInfo, limits: dict[str, Limit]) -> dict[str, float]:
        rate = dig(response.json(), "data", "rateLimit")
        if not isinstance(rate, Mapping):
            return {}
        numbers = {key: finite(rate.get(key)) for key in ("limit", "remaining", "cost")}
        for key, value in numbers.items():
            if key in rate and (value is None or value < 0):
                warn_malformed(self.name, f"rateLimit.{key}", rate.get(key))
                numbers[key] = None
        reset = None
        reset_at = rate.get("resetAt")
        if reset_at is not None:
            instant = rfc3339(reset_at) if isinstance(reset_at, str) else None
            if instant is None:
                warn_malformed(self.name, "rateLimit.resetAt", reset_at)
            else:
                reset = response.seconds_until(instant)
        known = limits.get("graphql")
        remaining = numbers["remaining"]
        if known is not None and known.remaining is not None:  # the lower of the two reports
            remaining = known.remaining if remaining is None else min(remaining, known.remaining)
        if numbers["limit"] is not None or remaining is not None or reset is not None:
            window = WINDOWS["graphql"]
            limits["graphql"] = Limit(
                numbers["limit"] if numbers["limit"] is not None or known is None else known.limit,
                remaining,
                reset if reset is not None or known is None else known.reset,
                window=window,
                step=window,
                unit="points",
            )
        cost = numbers["cost"]
        return {} if cost is None else {"graphql": cost}

    def _refusal(  # noqa: PLR0911 -- one return per kind of refusal, in GitHub's order
        self, response: ResponseInfo, limits: Mapping[str, Limit], resource: str
    ) -> tuple[Kind | None, str, float | None]:
        limit = limits.get(resource)
        body = response.json()
        message = dig(body, "message")
        text = message[:MESSAGE_CHARS] if isinstance(message, str) else ""
        errors = dig(body, "errors")
        if isinstance(errors, Sequence) and not isinstance(errors, str):
            for error in errors:
                if dig(error, "type") == "RATE_LIMITED":
                    found = dig(error, "message")
                    text = found[:MESSAGE_CHARS] if isinstance(found, str) else text
                    graphql = limits.get("graphql")
                    return "wait", text, None if graphql is None else graphql.reset
        if response.status not in {403, 429}:
            return None, text, None
        lowered = text.lower()
        if any(words in lowered for words in _SECONDARY):
            return "wait", text, SECONDARY_WAIT
        if response.headers.get("retry-after") is not None:
            return "wait", text, None
        if limit is not None and limit.exhausted:
            return "wait", text, limit.reset
        if any(words in lowered for words in _PRIMARY):
            return "wait", text, None
        if response.status == 429:
            return "wait", text, None
        return None, text, None

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One point on the resource the path names; a GraphQL query's points by GitHub's rule."""
        del limits
        resource = _resource_of(request.path)
        if resource != "graphql":
            return {resource: 1.0}
        body = request.json()
        query, variables = dig(body, "query"), dig(body, "variables")
        points = None
        if isinstance(query, str):
            points = query_points(query, variables if isinstance(variables, Mapping) else None)
        return {resource: float(points or 1)}
