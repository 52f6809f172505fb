"""The ``mistral`` dialect (being written: reports only Retry-After for now)."""

from __future__ import annotations

from collections.abc import Mapping

from ._dialect import finish
from ._message import RequestInfo, ResponseInfo
from ._report import Limit, QuotaReport


__all__ = ["MistralDialect"]


class MistralDialect:
    """The ``mistral`` dialect.

    .. versionadded:: 0.1.0
    """

    name = "mistral"

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        return finish(response, self.name, {})

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One request."""
        del request, limits
        return {"requests": 1.0}
