"""The ``github`` dialect (being written: reports only Retry-After for now)."""

from __future__ import annotations

from collections.abc import Mapping

from ._dialect import finish
from ._message import RequestInfo, ResponseInfo
from ._report import Limit, QuotaReport


__all__ = ["GitHubDialect"]


class GitHubDialect:
    """The ``github`` dialect.

    .. versionadded:: 0.1.0
    """

    name = "github"

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        return finish(response, self.name, {})

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One request on the resource its path names."""
        del limits
        path = request.path
        if path.startswith("/search/code"):
            return {"code_search": 1.0}
        if path.startswith("/search/"):
            return {"search": 1.0}
        if path.rstrip("/").endswith("/graphql"):
            return {"graphql": 1.0}
        return {"core": 1.0}
