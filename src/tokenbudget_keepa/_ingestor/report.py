"""What one ingestor run did: :class:`IngestReport`, and the events it emits on the way."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from .watermark import Watermark


__all__ = ["IngestEvent", "IngestEventKind", "IngestReport", "StopReason"]

StopReason = Literal[
    "caught_up",
    "time_budget",
    "lease_held",
    "lease_lost",
    "interrupted",
    "error",
    "fatal_error",
]
"""Why a run returned.

- ``caught_up``: every deal the selection serves up to the settled horizon has an outcome;
- ``time_budget``: the next wait for tokens would pass the run's time budget;
- ``lease_held``: another ingestor holds the lease of this key (nothing was done);
- ``lease_lost``: the lease expired or was taken over during the run (it stopped at once);
- ``interrupted``: SIGINT/SIGTERM (or :class:`KeyboardInterrupt`) asked it to stop;
- ``error``: a transient error (server, malformed answer, store, the account's shared
  bucket: Redis gone) persisted after the retries of one batch; the next run retries it;
- ``fatal_error``: Keepa refused the key or the selection, or a filter raised: retrying
  cannot help until the configuration changes.
"""

IngestEventKind = Literal[
    "lease",
    "watermark",
    "page",
    "batch",
    "rejected",
    "committed",
    "wait",
    "retry",
    "error",
    "stopped",
]


@attrs.frozen
class IngestEvent:
    """One step of a run, passed to the ``on_event`` hook and logged on ``tokenbudget_keepa``.

    Attributes:
        kind: ``lease`` (taken, held by another, lost), ``watermark`` (loaded, clamped),
            ``page`` (a deal page fetched), ``batch`` (a product batch enriched),
            ``rejected`` (one deal and its reason), ``committed`` (deals stored and the
            watermark advanced), ``wait`` (a wait for tokens, *seconds* long),
            ``retry`` (a failed step about to be retried), ``error``, ``stopped``.
        message: One line for a human.
        time: The ingestor's clock when it happened.
        seconds: The wait (``wait``), else ``0``.
        count: Deals concerned (pages: deals on the page; batches: its size).
        tokens: Tokens the step spent, as the server reported them.
        reason: The rejection reason (``rejected``), the stop reason (``stopped``).
        asin: The deal concerned (``rejected``).
        watermark: The watermark after the step (``committed``, ``watermark``).

    .. versionadded:: 0.1.0
    """

    kind: IngestEventKind
    message: str
    time: float
    seconds: float = 0.0
    count: int = 0
    tokens: float = 0.0
    reason: str | None = None
    asin: str | None = None
    watermark: Watermark | None = None


IngestEventHook = Callable[[IngestEvent], None]


def _watermark_json(watermark: Watermark | None) -> dict[str, Any] | None:
    if watermark is None:
        return None
    return {"minute": watermark.minute, "asin": watermark.asin}


@attrs.frozen(kw_only=True)
class IngestReport:
    """What one :meth:`SmartIngestor.run_once` did.

    Attributes:
        key: The job's key in the stores.
        deals_seen: Deals that reached a final outcome in this run (accepted or rejected).
        accepted: Deals stored in the sink.
        rejected: Rejection reason to the number of deals it rejected.
        tokens_spent: Tokens the run's own requests spent (deal pages and product
            batches, failed attempts included): each settled to the server's
            ``tokensConsumed``. Other processes spending from a shared bucket meanwhile
            do not count.
        watermark_before: The stored watermark when the run started (``None``: first run).
        watermark_after: The stored watermark when the run returned.
        stopped: Why the run returned: ``caught_up``, ``time_budget``, ``lease_held``,
            ``interrupted``, ``error``, ``lease_lost`` or ``fatal_error``.
        errors: Every error met, one line each (also the retried ones).
        batches: The size of every product batch, in order.
        pages: Deal pages fetched.
        waited: Seconds of waiting for tokens the bucket announced before the run's
            requests (the client then sleeps them on its clock).
        elapsed: Seconds the run took (on the ingestor's clock).
        backlog: Deals fetched but not yet processed when the run returned.
        lease_holder: Who holds the lease, when ``stopped == "lease_held"``.

    .. versionadded:: 0.1.0
    """

    key: str
    deals_seen: int = 0
    accepted: int = 0
    rejected: Mapping[str, int] = attrs.field(factory=dict)
    tokens_spent: float = 0.0
    watermark_before: Watermark | None = None
    watermark_after: Watermark | None = None
    stopped: StopReason = "caught_up"
    errors: tuple[str, ...] = ()
    batches: tuple[int, ...] = ()
    pages: int = 0
    waited: float = 0.0
    elapsed: float = 0.0
    backlog: int = 0
    lease_holder: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run stopped normally (not on an error, a lost lease or a fatal error)."""
        return self.stopped in {"caught_up", "time_budget", "lease_held", "interrupted"}

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (watermarks as ``{"minute": M, "asin": A}``)."""
        return {
            "key": self.key,
            "deals_seen": self.deals_seen,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "tokens_spent": self.tokens_spent,
            "watermark_before": _watermark_json(self.watermark_before),
            "watermark_after": _watermark_json(self.watermark_after),
            "stopped": self.stopped,
            "errors": list(self.errors),
            "batches": list(self.batches),
            "pages": self.pages,
            "waited": self.waited,
            "elapsed": self.elapsed,
            "backlog": self.backlog,
            "lease_holder": self.lease_holder,
        }

    def summary(self) -> str:
        """A few lines for a human: counts, reasons, watermarks, why it stopped."""

        def mark(w: Watermark | None) -> str:
            return "none" if w is None else f"{w.minute}/{w.asin}"

        rejected = sum(self.rejected.values())
        lines = [
            (
                f"key {self.key}: {self.deals_seen} deals seen, {self.accepted} accepted, "
                f"{rejected} rejected"
            ),
        ]
        if self.rejected:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.rejected.items()))
            lines.append(f"  rejected: {reasons}")
        sizes = ""
        if self.batches:
            sizes = f" (sizes {min(self.batches)}..{max(self.batches)})"
        lines.append(
            f"  {self.tokens_spent:g} tokens spent: {self.pages} deal pages, "
            f"{len(self.batches)} product batches{sizes}; waited {self.waited:g} s for tokens"
        )
        lines.append(
            f"  watermark {mark(self.watermark_before)} -> {mark(self.watermark_after)}; "
            f"{self.backlog} deals left in the backlog"
        )
        stop = f"  stopped: {self.stopped}"
        if self.lease_holder:
            stop += f" (held by {self.lease_holder})"
        lines.append(stop)
        lines.extend(f"  error: {e}" for e in self.errors)
        return "\n".join(lines)
