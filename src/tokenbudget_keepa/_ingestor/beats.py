"""Running an ingestor the way a scheduler does: once a period (a Celery beat), for a stretch.

:func:`run_beats` drives :meth:`SmartIngestor.run_once` once every *period*
seconds of a clock, each run with the period as its time budget, and keeps
every report; :class:`BeatRun` sums them up. The demo, the incident test and
the benchmark all use it with a :class:`tokenbudget.ManualClock` shared with
the emulator, so a simulated day takes seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from .report import IngestReport


if TYPE_CHECKING:
    from tokenbudget import ManualClock

    from .ingestor import SmartIngestor


__all__ = ["BeatRun", "run_beats"]


@attrs.frozen
class BeatRun:
    """The reports of a stretch of scheduled runs, oldest first.

    Attributes:
        reports: One report per run.
        starts: The clock time each run started.
        seconds: The stretch's length.
    """

    reports: tuple[IngestReport, ...]
    starts: tuple[float, ...]
    seconds: float

    def combined(self) -> IngestReport:
        """One report for the whole stretch: counts summed, first and last watermarks."""
        if not self.reports:
            raise ValueError("no run happened")
        rejected: Counter[str] = Counter()
        for r in self.reports:
            rejected.update(r.rejected)
        first, last = self.reports[0], self.reports[-1]
        return IngestReport(
            key=last.key,
            deals_seen=sum(r.deals_seen for r in self.reports),
            accepted=sum(r.accepted for r in self.reports),
            rejected=dict(rejected),
            tokens_spent=sum(r.tokens_spent for r in self.reports),
            watermark_before=first.watermark_before,
            watermark_after=last.watermark_after,
            stopped=last.stopped,
            errors=tuple(e for r in self.reports for e in r.errors),
            batches=tuple(b for r in self.reports for b in r.batches),
            pages=sum(r.pages for r in self.reports),
            waited=sum(r.waited for r in self.reports),
            elapsed=self.seconds,
            backlog=last.backlog,
            lease_holder=last.lease_holder,
        )

    def progressed(self) -> list[bool]:
        """For each run, whether it moved the watermark."""
        return [r.watermark_after != r.watermark_before for r in self.reports]

    def idle(self) -> list[bool]:
        """For each run, whether it was an idle wake-up: it spent tokens or waited, and got nothing.

        Getting something is moving the watermark or reading a deal page of a sweep.
        A run that found the bucket recharging and returned at once, spending
        nothing, is not idle: it did not try.
        """
        return [
            not moved and r.pages == 0 and (r.tokens_spent > 0 or r.waited > 0)
            for r, moved in zip(self.reports, self.progressed(), strict=True)
        ]

    def longest_idle_stretch(self) -> int:
        """The most consecutive idle wake-ups (see :meth:`idle`)."""
        longest = current = 0
        for idle in self.idle():
            current = current + 1 if idle else 0
            longest = max(longest, current)
        return longest


def run_beats(
    ingestor: SmartIngestor,
    clock: ManualClock,
    *,
    seconds: float,
    period: float = 60.0,
    on_report: Callable[[IngestReport, float], bool | None] | None = None,
) -> BeatRun:
    """Run *ingestor* once every *period* seconds of *clock* for *seconds*, as a beat would.

    Each run gets the time left until the next beat as its time budget. A run
    that overran its beat (it should not) is followed by the next one at once.
    *on_report* is called with each report and the clock time; returning
    ``True`` stops the stretch early.
    """
    end = clock.now() + seconds
    reports: list[IngestReport] = []
    starts: list[float] = []
    beat = clock.now()
    start = beat
    while beat < end:
        if clock.now() < beat:
            clock.advance(beat - clock.now())
        starts.append(clock.now())
        report = ingestor.run_once(time_budget=max(0.0, min(beat + period, end) - clock.now()))
        reports.append(report)
        if on_report is not None and on_report(report, clock.now()):
            break
        if report.stopped in {"fatal_error", "interrupted"}:
            break
        beat += period
    return BeatRun(tuple(reports), tuple(starts), max(clock.now(), end) - start)
