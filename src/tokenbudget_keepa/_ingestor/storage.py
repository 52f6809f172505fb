"""Opening an ingestor's storage from one ``--store`` value: watermark, deals, lease, backlog.

The command names its storage with one value: a path (one SQLite file holding
the watermark, the lease, the ``deals`` table and the backlog) or a URL whose
scheme picks a backend module (``postgresql://…`` opens
``tokenbudget_keepa.postgres``). A backend module joins by offering
``open_storage(url) -> Storage``; :data:`STORAGE_SCHEMES` maps URL schemes to
modules.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote

import attrs

from .backlog import Backlog
from .sinks import DealSink
from .watermark import WatermarkStore


__all__ = ["STORAGE_SCHEMES", "Storage", "UnknownStorage", "open_storage"]

#: URL scheme -> the module whose ``open_storage(url)`` opens it.
STORAGE_SCHEMES: dict[str, str] = {
    "postgresql": "tokenbudget_keepa.postgres",
    "postgres": "tokenbudget_keepa.postgres",
}


class UnknownStorage(ValueError):  # noqa: N818 -- reads as the condition it reports
    """A ``--store`` value that names no storage this installation can open."""


@attrs.define
class Storage:
    """The four things an ingestor keeps, opened together; :meth:`close` closes them all.

    Attributes:
        store: The watermark store.
        sink: The deal sink.
        lease: The lease (``None``: none).
        backlog: Where fetched pages wait between runs.
        description: What was opened, for messages (no password).
    """

    store: WatermarkStore
    sink: DealSink
    lease: Any
    backlog: Backlog
    description: str
    closers: list[Callable[[], None]] = attrs.field(factory=list)

    def close(self) -> None:
        """Close every part (each once; errors while closing are ignored)."""
        while self.closers:
            closer = self.closers.pop()
            with contextlib.suppress(Exception):
                closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _open_sqlite(path: str) -> Storage:
    from .backlog import SQLiteBacklog
    from .lease import SQLiteLease
    from .sinks import SQLiteDealSink
    from .stores import SQLiteWatermarkStore

    if Path(path).is_dir():
        raise UnknownStorage(f"{path!r} is a directory; --store takes a file (or a URL)")
    closers: list[Callable[[], None]] = []
    try:
        store = SQLiteWatermarkStore(path)
        closers.append(store.close)
        sink = SQLiteDealSink(path)
        closers.append(sink.close)
        lease = SQLiteLease(path)
        closers.append(lease.close)
    except BaseException:
        for closer in reversed(closers):
            closer()
        raise
    return Storage(
        store=store,
        sink=sink,
        lease=lease,
        backlog=SQLiteBacklog(path),
        description=f"SQLite file {path}",
        closers=closers,
    )


def redact_url(url: str) -> str:
    """*url* with the password of its user part replaced by ``***`` (other text unchanged).

    >>> redact_url("postgresql://app:s3cret@db/deals")
    'postgresql://app:***@db/deals'
    >>> redact_url("deals.db")
    'deals.db'

    .. versionadded:: 0.1.0
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


def url_secrets(url: str) -> list[str]:
    """The password in *url*'s user part, as written and decoded (empty when none)."""
    _, sep, rest = url.partition("://")
    userinfo, at, _ = rest.partition("/")[0].rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return []
    password = userinfo.partition(":")[2]
    return [p for p in {password, unquote(password)} if p]


def open_storage(target: str) -> Storage:
    """Open the storage a ``--store`` value names: a SQLite path, or a URL of a backend.

    Raises:
        UnknownStorage: A URL scheme no backend handles (naming it).
        SchemaMismatch: The database's schema is not this library's.
        StoreError: The database cannot be opened.

    .. versionadded:: 0.1.0
    """
    scheme, sep, _ = target.partition("://")
    if not sep:
        return _open_sqlite(target)
    if scheme == "sqlite":
        return _open_sqlite(target.removeprefix("sqlite://"))
    module_name = STORAGE_SCHEMES.get(scheme.lower())
    if module_name is None:
        known = ", ".join(sorted({"sqlite", *STORAGE_SCHEMES}))
        raise UnknownStorage(
            f"unknown storage scheme {scheme + '://'!r} (known: {known}, or a path)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        # The module's ImportError says what to install (tokenbudget._install).
        raise UnknownStorage(f"{scheme}:// storage: {e}") from None
    opener = getattr(module, "open_storage", None)
    if opener is None:
        raise UnknownStorage(f"{module_name} cannot open a --store URL yet")
    storage = opener(target)
    if not isinstance(storage, Storage):
        raise TypeError(f"{module_name}.open_storage returned {storage!r}, not a Storage")
    return storage
