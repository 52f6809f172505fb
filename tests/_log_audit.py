"""The key audit of the Keepa and deployment tests: every logger at DEBUG, no record holds a key.

While a test runs, every logger is enabled at DEBUG (root, httpx, httpcore and below,
asyncio, tokenbudget*, loggers created during the test too) and one handler searches
each record for the keys as it is emitted: its logger name, its message with its
arguments, its exception and stack text. Nothing is stored but the records that hold a
key, so the audit costs one ``getMessage()`` per record; pytest's own capture handlers
are kept at WARNING meanwhile (they would format and keep every DEBUG record), unless a
test asks for lower with ``caplog.set_level``. A hit fails the test at teardown. The
fixture must not depend on ``caplog``: set up before it, it is torn down after it, and so
restores pytest's handlers last.

The Keepa client's key filter (:mod:`tokenbudget_keepa._client.redaction`, on the loggers
of httpx, httpcore and below, and asyncio) is one for the process and keeps every key any
client of the process was given: after an earlier test's client of ``"test-key"``, or of
``"k"`` (which cuts every ``k`` out of those records, each test key's included), the audit
would be blind to these keys in httpx's records, so that a test's verdict would depend on
the tests run before it in its process (pytest-xdist hands them out as workers free up).
The audit empties the filter for the block (its keys are back after): only the keys the
test's own clients give it are cut out, as in a process that runs this test alone. A
client made before the block (a module-scoped fixture) has its key's redaction off in it:
stricter, never blinder.

Records of other processes (CLI runs, Celery workers) are not seen: those tests search
the processes' output for the key themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import pytest
from _pytest.logging import LogCaptureHandler

from tokenbudget_keepa._client import redaction


__all__ = ["KeyAudit", "key_audit"]


class KeyAudit(logging.Handler):
    """A handler that keeps the records holding one of *keys* (searched as they are emitted)."""

    def __init__(self, keys: Collection[str]) -> None:
        super().__init__(logging.DEBUG)
        self.keys = keys  # read at each record: keys added during the test count
        self.hits: list[str] = []
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Search *record* for every key; keep a short text of it on a hit."""
        self.records += 1
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg!r} {record.args!r}"
        parts = [record.name, text]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        joined = "\n".join(parts)
        for key in self.keys:
            if key and key in joined:
                self.hits.append(f"{record.name} {record.levelname}: {joined[:300]}")
                return


@contextmanager
def key_audit(keys: Collection[str]) -> Iterator[KeyAudit]:
    """Every logger at DEBUG, a :class:`KeyAudit` on them, the key filter empty; all restored after."""
    audit = KeyAudit(keys)
    root = logging.getLogger()
    manager = logging.Logger.manager
    loggers = [root] + [
        lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    quiet = [(h, h.level) for h in root.handlers if isinstance(h, LogCaptureHandler)]
    saved_disable = manager.disable
    for handler, level in quiet:
        handler.setLevel(max(level, logging.WARNING))
    logging.disable(logging.NOTSET)
    for lg in loggers:
        if lg is root or lg.level != logging.NOTSET:
            lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if lg is root or not lg.propagate:
            lg.addHandler(audit)
    key_filter = redaction._FILTER
    with key_filter._lock:
        earlier_keys, key_filter._forms = key_filter._forms, ()
    try:
        yield audit
    finally:
        with key_filter._lock:
            key_filter._forms = earlier_keys
        for lg in [root] + [
            lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)
        ]:
            if audit in lg.handlers:
                lg.removeHandler(audit)
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled
        for handler, level in quiet:
            handler.setLevel(level)
        logging.disable(saved_disable)


def audit_fixture(keys: Collection[str]) -> Iterator[None]:
    """The body of an autouse fixture: the test runs under :func:`key_audit`; a hit fails it."""
    with key_audit(keys) as audit:
        yield
    if audit.hits:
        pytest.fail(
            f"{len(audit.hits)} log record(s) hold an API key; the first: {audit.hits[0]}",
            pytrace=False,
        )
