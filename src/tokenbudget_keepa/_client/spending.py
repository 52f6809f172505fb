"""What the Keepa requests of one context spent, whoever else spends from the same bucket.

A bucket shared by processes (Redis) books everyone's requests: the change of
its ``booked`` total over a run counts the others' spending too (and goes
negative when Redis is flushed). Each client settles its own bookings to
Keepa's ``tokensConsumed``; :func:`tally` collects those settlements in a
context variable, so a run counts exactly its own requests (a thread or task
started inside the block counts too, one started elsewhere does not).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import attrs


__all__ = ["Tally", "count_spent", "tally"]


@attrs.define
class Tally:
    """Tokens settled, and requests, by the Keepa clients within a :func:`tally` block."""

    tokens: float = 0.0
    requests: int = 0


_TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar(
    "tokenbudget_keepa_tally", default=None
)


@contextlib.contextmanager
def tally() -> Iterator[Tally]:
    """Within the block, every request a Keepa client settles is added to the yielded tally."""
    current = Tally()
    token = _TALLY.set(current)
    try:
        yield current
    finally:
        _TALLY.reset(token)


def count_spent(tokens: float) -> None:
    """Add one settled request of *tokens* to the tally of this context, if there is one."""
    current = _TALLY.get()
    if current is not None:
        current.tokens += tokens
        current.requests += 1
