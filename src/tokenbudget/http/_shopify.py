"""The ``shopify`` dialect: the GraphQL cost extension and the REST call-limit header."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from ._dialect import finish
from ._graphql import Field, operations
from ._llm import dig
from ._message import MESSAGE_CHARS, RequestInfo, ResponseInfo, finite, warn_malformed
from ._report import Kind, Limit, QuotaReport


__all__ = ["ShopifyDialect", "query_cost"]

#: Seconds in which the REST bucket leaks whole: 40 calls at 2 a second (Plus: 400 at 20).
REST_WINDOW: Final = 20.0
#: What a GraphQL query is booked as when its text cannot be read.
DEFAULT_QUERY_COST: Final = 100
#: What Shopify charges a mutation on top of its selection.
MUTATION_COST: Final = 10
_CALL_LIMIT = re.compile(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*")
#: The most nodes one connection returns (Shopify's cap on ``first`` / ``last``).
MAX_PAGE: Final = 250


def _cost(fields: tuple[Field, ...]) -> int:
    total = 0
    for field in fields:
        if field.spread:
            total += 1
        elif field.children is None:
            continue  # a scalar: free
        elif field.name == "edges":
            total += _cost(field.children)
        elif field.size is not None:
            total += 2 + field.size * max(_cost(field.children), 1)
        else:
            total += 1 + _cost(field.children)
    return total


def query_cost(query: str, variables: Mapping[str, object] | None = None) -> int | None:
    """Shopify's requested cost of a GraphQL query, estimated from its text, or None.

    >>> from tokenbudget.http._shopify import query_cost
    >>> query_cost("{ products(first: 10) { edges { node { title } } } }")
    12

    The rules Shopify documents, applied without its schema: a field with a
    selection is an object (1) or, with ``first`` / ``last``, a connection (2
    plus that many times its node's cost); a field without one is a scalar
    (0); a mutation adds 10; a fragment spread counts one object; ``first``
    and ``last`` count at most 250 (Shopify's cap). None when the text cannot
    be read.

    .. versionadded:: 0.1.0
    """
    found = operations(query, variables, page_cap=MAX_PAGE)
    if found is None:
        return None
    total = sum(_cost(op.fields) + (MUTATION_COST if op.kind == "mutation" else 0) for op in found)
    return max(total, 1)


class ShopifyDialect:
    """Shopify's GraphQL cost extension and REST ``X-Shopify-Shop-Api-Call-Limit``.

    GraphQL (limit ``"graphql"``, in points): ``extensions.cost.throttleStatus``
    gives ``Limit(maximumAvailable, currentlyAvailable, reset, window)``, with
    ``window = maximumAvailable / restoreRate`` and ``reset`` the seconds until
    the bucket is full again, refilled continuously; ``actualQueryCost`` is the
    cost (``requestedQueryCost`` the *requested*). A ``THROTTLED`` error is a
    *wait* for the points the query asked for, at the restore rate;
    ``MAX_COST_EXCEEDED`` is *too large* (*requested* ``cost``, *allowed*
    ``maxCost``).

    REST (limit ``"rest"``, in calls): ``X-Shopify-Shop-Api-Call-Limit: 32/40``
    is ``Limit(40, 8, ...)``, the bucket leaking whole in 20
    seconds (2 calls a second for 40; Plus stores: 20 for 400).

    The estimate: one call for REST; for GraphQL (a path ending in
    ``graphql.json``) the query's cost estimated from the body's ``query``
    and ``variables`` by Shopify's rules (an object 1, a connection 2 plus
    ``first``/``last`` times its node, a scalar 0, a mutation 10 more), or
    ``default_query_cost`` (100) when it cannot be read.

    .. versionadded:: 0.1.0
    """

    name = "shopify"

    def __init__(self, *, default_query_cost: float = DEFAULT_QUERY_COST) -> None:
        value = finite(default_query_cost)
        if value is None or value < 0:
            raise ValueError(
                f"default_query_cost must be a finite number >= 0, got {default_query_cost!r}"
            )
        self.default_query_cost = value

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        limits: dict[str, Limit] = {}
        raw = response.headers.get("x-shopify-shop-api-call-limit")
        if raw is not None:
            match = _CALL_LIMIT.fullmatch(raw)
            if match is None or int(match.group(2)) == 0:
                warn_malformed(self.name, "X-Shopify-Shop-Api-Call-Limit", raw)
            else:
                used, size = float(match.group(1)), float(match.group(2))
                limits["rest"] = Limit(
                    size,
                    size - used,
                    REST_WINDOW * min(used, size) / size,
                    window=REST_WINDOW,
                    unit="requests",
                )
        body = response.json()
        cost, requested, rate = self._cost(body, limits)
        kind, message, wait, allowed = self._errors(body, limits, requested, rate)
        if response.status == 429 and kind is None:
            kind = "wait"
        return finish(
            response,
            self.name,
            limits,
            cost=cost,
            kind=kind,
            retry_after=wait,
            requested=requested,
            allowed=allowed,
            message=message,
        )

    def _cost(
        self, body: object, limits: dict[str, Limit]
    ) -> tuple[dict[str, float], dict[str, float], float | None]:
        cost_ext = dig(body, "extensions", "cost")
        if not isinstance(cost_ext, Mapping):
            return {}, {}, None
        cost: dict[str, float] = {}
        requested: dict[str, float] = {}
        for key, into in (("actualQueryCost", cost), ("requestedQueryCost", requested)):
            value = cost_ext.get(key)
            number = finite(value)
            if number is not None and number >= 0:
                into["graphql"] = number
            elif value is not None:
                warn_malformed(self.name, f"extensions.cost.{key}", value)
        status = cost_ext.get("throttleStatus")
        if status is None:
            return cost, requested, None
        figures = {
            key: finite(dig(status, key))
            for key in ("maximumAvailable", "currentlyAvailable", "restoreRate")
        }
        size, available, rate = (
            figures["maximumAvailable"],
            figures["currentlyAvailable"],
            figures["restoreRate"],
        )
        if size is None or size <= 0 or available is None or rate is None or rate <= 0:
            warn_malformed(self.name, "extensions.cost.throttleStatus", status)
            return cost, requested, None
        limits["graphql"] = Limit(
            size,
            available,
            max(0.0, size - available) / rate,
            window=size / rate,
            unit="points",
        )
        return cost, requested, rate

    def _errors(
        self,
        body: object,
        limits: Mapping[str, Limit],
        requested: dict[str, float],
        rate: float | None,
    ) -> tuple[Kind | None, str, float | None, dict[str, float]]:
        errors = dig(body, "errors")
        if not isinstance(errors, Sequence) or isinstance(errors, str):
            return None, "", None, {}
        for error in errors:
            code = dig(error, "extensions", "code")
            message = dig(error, "message")
            text = message[:MESSAGE_CHARS] if isinstance(message, str) else ""
            if code == "MAX_COST_EXCEEDED":
                asked = finite(dig(error, "extensions", "cost"))
                most = finite(dig(error, "extensions", "maxCost"))
                if asked is not None and asked >= 0:
                    requested["graphql"] = asked
                allowed = {} if most is None or most < 0 else {"graphql": most}
                return "too_large", text, None, allowed
            if code == "THROTTLED":
                wait = None
                graphql = limits.get("graphql")
                if graphql is not None and rate and graphql.remaining is not None:
                    need = requested.get("graphql", 0.0) - graphql.remaining
                    wait = max(0.0, need) / rate
                return "wait", text, wait, {}
        return None, "", None, {}

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One REST call, or the GraphQL query's estimated cost (see the class's note)."""
        del limits
        if not request.path.endswith("graphql.json"):
            return {"rest": 1.0}
        body = request.json()
        query = dig(body, "query")
        variables = dig(body, "variables")
        cost = None
        if isinstance(query, str):
            cost = query_cost(query, variables if isinstance(variables, Mapping) else None)
        return {"graphql": float(self.default_query_cost if cost is None else cost)}
