"""Keeps the API key out of every log record of the libraries the Keepa client uses.

The client adds ``key=`` to a request only as it leaves (its transport), so
httpx never logs it; but httpcore, at ``DEBUG``, logs each answer's headers,
and an answer may echo the query string (a redirect's ``Location``). A filter
on those libraries' loggers replaces every key a client was given (as it is,
and percent-encoded) before any handler sees the record. Logger filters are
not inherited, so each logger is named here, its children included.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote, quote_plus


__all__ = ["keep_key_out_of_logs"]

#: The loggers of httpx, httpcore and the libraries under them (and asyncio, which logs
#: the exceptions of forgotten tasks).
_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.connection_pool",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "h11",
    "h2",
    "hpack",
    "asyncio",
)
_PREFIXES = ("httpx.", "httpcore.", "h2.", "hpack.")

_REDACTED = "<redacted>"


class _KeyFilter(logging.Filter):
    """Replaces the keys in a record's message (formatted once) and in its exception text."""

    def __init__(self) -> None:
        super().__init__("")
        self._forms: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        forms = {key, quote(key, safe=""), quote_plus(key)}
        with self._lock:
            self._forms = tuple(sorted(set(self._forms) | forms, key=len, reverse=True))

    def _redact(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, _REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._forms:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 -- a record its own handler cannot format either
            message = f"{record.msg!r} {record.args!r}"
        redacted = self._redact(message)
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            text = f"{type(error).__name__}: {error}"
            if self._redact(text) != text or self._redact(repr(error.args)) != repr(error.args):
                # The exception itself holds the key: keep its redacted text, not the object.
                redacted = f"{redacted} ({self._redact(text)})"
                record.exc_info = None
                record.exc_text = None
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = _KeyFilter()


def keep_key_out_of_logs(key: str) -> None:
    """From now on, no record of httpx, httpcore (and below) holds *key* (idempotent)."""
    if not key:
        return
    _FILTER.add(key)
    names = set(_LOGGERS)
    names.update(n for n in list(logging.Logger.manager.loggerDict) if n.startswith(_PREFIXES))
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
