"""Watermark stores: memory and SQLite."""

from __future__ import annotations

import threading

from ._watermark import Watermark


__all__ = ["MemoryWatermarkStore"]


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a watermark key must be a non-empty str, got {key!r}")
    return key


class MemoryWatermarkStore:
    """Watermarks in a dict, for tests and one-off runs (thread-safe).

    >>> from tokenbudget_keepa import MemoryWatermarkStore, Watermark
    >>> store = MemoryWatermarkStore()
    >>> store.advance("job", Watermark(7_000_000, "B000000002"))
    True
    >>> store.advance("job", Watermark(7_000_000, "B000000001"))   # never backwards
    False
    >>> store.load("job")
    Watermark(minute=7000000, asin='B000000002')

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._watermarks: dict[str, Watermark] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryWatermarkStore(<{len(self._watermarks)} keys>)"

    def load(self, key: str) -> Watermark | None:
        """The stored watermark of *key*, or ``None``."""
        with self._lock:
            return self._watermarks.get(_check_key(key))

    def advance(self, key: str, watermark: Watermark) -> bool:
        """Store *watermark* iff it is greater than the stored one; ``True`` if it moved."""
        _check_key(key)
        if not isinstance(watermark, Watermark):
            raise TypeError(f"advance() takes a Watermark, got {watermark!r}")
        with self._lock:
            old = self._watermarks.get(key)
            if old is not None and watermark <= old:
                return False
            self._watermarks[key] = watermark
            return True

    def reset(self, key: str) -> None:
        """Forget the watermark of *key*."""
        with self._lock:
            self._watermarks.pop(_check_key(key), None)

    def keys(self) -> list[str]:
        """Every key with a stored watermark, sorted."""
        with self._lock:
            return sorted(self._watermarks)

    def close(self) -> None:
        """Nothing to release."""
