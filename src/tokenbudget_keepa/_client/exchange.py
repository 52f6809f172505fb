"""The decisions of one Keepa request's retry loop, without I/O.

Both clients send a request the same way: book it, send it, settle the booking
from the answer, then decide. :class:`Exchange` makes that decision from what
came back, so that the sync and the async client only send, wait and sleep:

- an answer with HTTP 200 is :class:`Done`;
- a 429 (not enough tokens) is :class:`Resend` while token retries remain: the
  bucket was synced from the refusal, so booking again waits exactly as long as
  Keepa needs (a refusal without an envelope means a balance of zero at most);
- a 5xx answer, or no answer at all, is :class:`BackOff` while server retries
  remain (capped exponential backoff, the *retry*-th);
- anything else, or a retry budget spent, is :class:`GiveUp`: the client raises
  the error of the error tree (it builds it, since only it may redact the key).

The error tree says which answers are final: 400, 402, 404 and 405 are never
retried.
"""

from __future__ import annotations

from typing import Final

import attrs


__all__ = ["BackOff", "Decision", "Done", "Exchange", "GiveUp", "Resend"]

_OK: Final = 200
_TOO_MANY: Final = 429
_SERVER: Final = 500


@attrs.frozen
class Done:
    """The answer is Keepa's success: read its payload."""


@attrs.frozen
class Resend:
    """Keepa refused for want of tokens: book again (the synced bucket waits), send again.

    Attributes:
        unknown_balance: The refusal carried no envelope: sync the bucket to
            zero first (Keepa refuses only at zero or below).
    """

    unknown_balance: bool


@attrs.frozen
class BackOff:
    """Sleep the *retry*-th backoff (once the requests on the wire are answered), then resend."""

    retry: int


@attrs.frozen
class GiveUp:
    """No more tries: raise the error of the last answer, or of the missing one."""

    answered: bool


Decision = Done | Resend | BackOff | GiveUp
_DONE: Final = Done()  # the same answer every time: made once


@attrs.define
class Exchange:
    """The state of one request's tries: what to do after each answer (or the lack of one).

    >>> exchange = Exchange(max_retries=1, max_token_retries=1)
    >>> exchange.start(), exchange.answered(429, envelope=True)
    (1, Resend(unknown_balance=False))
    >>> exchange.start(), exchange.answered(503, envelope=True)
    (2, BackOff(retry=1))
    >>> exchange.start(), exchange.no_answer()
    (3, GiveUp(answered=False))

    Attributes:
        max_retries: Retries after a 5xx answer or no answer.
        max_token_retries: Retries after a 429.
        estimate: The tokens each try is booked at (0: a free request, not booked).
        beyond: What the request may cost beyond *estimate* (its kind's list price
            above what was learned): the room kept while it is on the wire.
        alone: Each try is sent alone (a kind of request whose cost is not known yet).
        attempt: The tries started so far.
        token_retries: The 429s retried so far.
        server_retries: The 5xx answers and missing answers so far.
    """

    max_retries: int
    max_token_retries: int
    estimate: float = 0.0
    alone: bool = False
    beyond: float = 0.0
    attempt: int = 0
    token_retries: int = 0
    server_retries: int = 0

    def start(self) -> int:
        """Count a new try; its number (from 1)."""
        self.attempt += 1
        return self.attempt

    def no_answer(self) -> BackOff | GiveUp:
        """No answer came (connection lost, timeout): back off and resend, or give up."""
        self.server_retries += 1
        if self.server_retries > self.max_retries:
            return GiveUp(answered=False)
        return BackOff(self.server_retries)

    def answered(self, status: int, *, envelope: bool) -> Decision:
        """What to do after an answer with HTTP *status* (*envelope*: it carried one)."""
        if status == _OK:
            return _DONE
        if status == _TOO_MANY and self.token_retries < self.max_token_retries:
            self.token_retries += 1
            return Resend(unknown_balance=not envelope)
        if status >= _SERVER and self.server_retries < self.max_retries:
            self.server_retries += 1
            return BackOff(self.server_retries)
        return GiveUp(answered=True)
