"""The ingestor's backlog: deal pages fetched but not yet processed, kept between runs.

Paging costs tokens (5 a page). On an account that refills 5 tokens a minute,
an ingestor that re-read its pages on every run would spend its whole budget
reading the same deals again. So the pages of one *sweep* are kept in a
backlog: a sweep pages the selection newest first from page 0 down to the
watermark of its start (its *floor*), and its deals are then processed oldest
first, run after run, until none is left; only then does a new sweep read
page 0 again.

A sweep started at server minute *t* is complete for every deal whose
``lastUpdate`` is at or before its *horizon* ``t - settle`` (a few minutes
before *t*, so that deals of the current minute, and answers Keepa cached,
are never half seen). Deals after the horizon are left for the next sweep.
The backlog is only a cache: the watermark is the truth, and a deal at or
before it is dropped when the backlog is loaded. Losing the backlog costs
tokens, never deals.

Pages read minutes apart see a list that moved meanwhile. New and re-updated
deals go to the top, which only pushes later pages down (a deal read twice is
kept once); a re-updated deal is read at its new ``lastUpdate`` by the next
sweep. A deal that *leaves* the selection between two page reads (Keepa
drops a deal whose price went back up) pulls the later pages up by one, so
the deal at the page boundary would be on neither read. That is detected and
closed: when page *k + 1* does not hold page *k*'s last deal (the list did not
move down at the boundary) and the selection's size (the sum of the answer's
``categoryCount``) shrank between the two reads (so deals may have left above
the boundary), page *k* is read again before the sweep goes on, and the deals
it holds now are kept too. If the list moved down at the boundary, or did not
shrink, no deal of page *k + 1* can have moved onto page *k*. The bound: a deal
stays hidden only if the list changed again between the read of page *k + 1*
and the re-read of page *k* (the answers of one server minute are one list in
the emulator; Keepa's answer cache, about two minutes, makes a change rare),
and the check costs one page (5 tokens) per boundary where deals left.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

import attrs

from tokenbudget_keepa._client.models.products import Deal

from .watermark import StoreError


__all__ = ["Backlog", "MemoryBacklog", "SQLiteBacklog", "Sweep"]


Entry = tuple[int, str, Mapping[str, Any]]
"""A deal in the backlog: ``(lastUpdate, asin, raw JSON)``; parsed only when processed."""


def entry_of(deal: Deal) -> Entry:
    """The backlog entry of a fetched deal."""
    return (deal.last_update, deal.asin, deal.raw)


def disorder_of(deals: Sequence[Deal]) -> int:
    """How far out of order a newest-first page is (0 when sorted).

    The most minutes a deal is newer than one before it on the page.
    """
    worst = 0
    oldest: int | None = None
    for deal in deals:
        if oldest is not None:
            worst = max(worst, deal.last_update - oldest)
        oldest = deal.last_update if oldest is None else min(oldest, deal.last_update)
    return worst


def latest_per_asin(entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """One entry per ASIN (its latest ``lastUpdate``), sorted by ``(last_update, asin)``."""
    latest: dict[str, Entry] = {}
    for entry in entries:
        old = latest.get(entry[1])
        if old is None or entry[0] >= old[0]:
            latest[entry[1]] = entry
    return tuple(sorted(latest.values(), key=lambda e: (e[0], e[1])))


@attrs.frozen
class Sweep:
    """One pass over the selection's pages, newest first, down to a floor.

    Attributes:
        floor: Paging stops at a page whose deals lie below this minute, at least
            half of them (the watermark's minute when the sweep started, less the
            pages' disorder).
        horizon: Deals updated at or before this minute are complete once the
            sweep is; later ones wait for the next sweep.
        next_page: The next page to fetch.
        complete: Whether paging reached the floor or the last page.
        deals: The deals fetched so far as :data:`Entry` values, one per ASIN, oldest first.
        boundary: The ASIN of the last deal of the last page read.
        size: The selection's size at the last page read (its ``categoryCount``), if known.
        recheck: A page to read again before the sweep goes on (the list may have
            moved up at its end: see the module's docs).
    """

    floor: int
    horizon: int
    next_page: int = 0
    complete: bool = False
    deals: tuple[Entry, ...] = ()
    boundary: str | None = None
    size: int | None = None
    recheck: int | None = None

    def with_page(self, deals: Sequence[Deal], *, last: bool, size: int | None = None) -> Sweep:
        """The sweep after one more page: its deals merged, paging done if it reached the floor.

        A page after the first that does not hold the last page's last deal, read
        while the selection shrank, makes the page before it due again (:attr:`recheck`).
        """
        merged = latest_per_asin((*self.deals, *(entry_of(d) for d in deals)))
        # Reached when at least half the page lies below the floor: one deal far out of
        # order near the top of a page must not end the sweep (its later pages would be lost).
        minutes = sorted(d.last_update for d in deals)
        reached = bool(minutes) and minutes[(len(minutes) - 1) // 2] < self.floor
        moved_up = (
            self.next_page > 0
            and self.boundary is not None
            and bool(deals)
            and all(d.asin != self.boundary for d in deals)
            and (size is None or self.size is None or size < self.size)
        )
        return attrs.evolve(
            self,
            next_page=self.next_page + 1,
            complete=last or reached or not deals,
            deals=merged,
            boundary=deals[-1].asin if deals else None,
            size=size,
            recheck=self.next_page - 1 if moved_up else None,
        )

    def with_recheck(self, deals: Sequence[Deal]) -> Sweep:
        """The sweep after reading page :attr:`recheck` again: its deals merged, no recheck due."""
        merged = latest_per_asin((*self.deals, *(entry_of(d) for d in deals)))
        return attrs.evolve(self, deals=merged, recheck=None)

    def to_json(self) -> str:
        """The sweep as JSON text (deals as Keepa's raw objects)."""
        return json.dumps(
            {
                "floor": self.floor,
                "horizon": self.horizon,
                "next_page": self.next_page,
                "complete": self.complete,
                "boundary": self.boundary,
                "size": self.size,
                "recheck": self.recheck,
                "deals": [dict(raw) for _, _, raw in self.deals],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Sweep:
        """The inverse of :meth:`to_json`."""
        data: dict[str, Any] = json.loads(text)
        return cls(
            floor=int(data["floor"]),
            horizon=int(data["horizon"]),
            next_page=int(data["next_page"]),
            complete=bool(data["complete"]),
            deals=latest_per_asin(_entry_of_raw(raw) for raw in data["deals"]),
            boundary=None if data.get("boundary") is None else str(data["boundary"]),
            size=None if data.get("size") is None else int(data["size"]),
            recheck=None if data.get("recheck") is None else int(data["recheck"]),
        )


def _entry_of_raw(raw: Any) -> Entry:
    if not isinstance(raw, Mapping):
        raise TypeError(f"a backlog deal must be an object, got {raw!r:.40}")
    minute, asin = raw["lastUpdate"], raw["asin"]
    if isinstance(minute, bool) or not isinstance(minute, int) or not isinstance(asin, str):
        raise TypeError(f"a backlog deal needs an int lastUpdate and a str asin, got {raw!r:.60}")
    return (minute, asin, raw)


class Backlog(Protocol):
    """Where an ingestor keeps the sweep in progress of each job key."""

    def load(self, key: str) -> Sweep | None:
        """The sweep of *key*, or ``None``."""
        ...

    def save(self, key: str, sweep: Sweep) -> None:
        """Keep *sweep* as the sweep of *key*."""
        ...

    def clear(self, key: str) -> None:
        """Forget the sweep of *key*."""
        ...


class MemoryBacklog:
    """Sweeps in a dict: kept as long as the ingestor object lives."""

    def __init__(self) -> None:
        self._sweeps: dict[str, Sweep] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryBacklog(<{len(self._sweeps)} keys>)"

    def load(self, key: str) -> Sweep | None:
        """The sweep of *key*, or ``None``."""
        with self._lock:
            return self._sweeps.get(key)

    def save(self, key: str, sweep: Sweep) -> None:
        """Keep *sweep* as the sweep of *key*."""
        with self._lock:
            self._sweeps[key] = sweep

    def clear(self, key: str) -> None:
        """Forget the sweep of *key*."""
        with self._lock:
            self._sweeps.pop(key, None)


_TABLE = "tokenbudget_keepa_backlog_v1"


class SQLiteBacklog:
    """Sweeps in a table of a SQLite file (the command keeps them beside its watermark).

    The table is a cache with its version in its name
    (``tokenbudget_keepa_backlog_v1``): a later version uses a new table and
    leaves this one alone. One short connection per operation, so nothing is
    held open between runs.
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self._path = str(path)
        self._timeout = timeout
        self._ready = False
        # key -> (the row's generation, its sweep): a load reads the whole row only when it changed.
        self._cache: dict[str, tuple[int, Sweep]] = {}

    def __repr__(self) -> str:
        return f"SQLiteBacklog({self._path!r})"

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"{self._path}: cannot open the backlog: {e}", transient=True) from e
        if not self._ready:
            try:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_TABLE} (key TEXT PRIMARY KEY, "
                    "generation INTEGER NOT NULL, sweep TEXT NOT NULL, updated_at REAL NOT NULL)"
                )
            except sqlite3.Error as e:
                conn.close()
                raise StoreError(f"{self._path}: cannot create the backlog table: {e}") from e
            self._ready = True
        return conn

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            with closing(self._connect()) as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self._path}: backlog: {e}", transient=True) from e

    def load(self, key: str) -> Sweep | None:
        """The sweep of *key*, or ``None`` (also when the stored one cannot be read)."""
        rows = self._run(f"SELECT generation FROM {_TABLE} WHERE key = ?", (key,))  # noqa: S608
        if not rows:
            self._cache.pop(key, None)
            return None
        generation = int(rows[0][0])
        cached = self._cache.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        rows = self._run(
            f"SELECT generation, sweep FROM {_TABLE} WHERE key = ?",  # noqa: S608
            (key,),
        )
        if not rows:
            return None
        try:
            sweep = Sweep.from_json(rows[0][1])
        except (ValueError, KeyError, TypeError):
            return None  # a cache: an unreadable sweep only costs the pages again
        self._cache[key] = (int(rows[0][0]), sweep)
        return sweep

    def save(self, key: str, sweep: Sweep) -> None:
        """Keep *sweep* as the sweep of *key*."""
        generation = secrets.randbits(62)  # unique per save: a load knows when to reread
        self._run(
            f"INSERT INTO {_TABLE} (key, generation, sweep, updated_at) "  # noqa: S608
            "VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET generation = excluded.generation, "
            "sweep = excluded.sweep, updated_at = excluded.updated_at",
            (key, generation, sweep.to_json(), time.time()),
        )
        self._cache[key] = (generation, sweep)

    def clear(self, key: str) -> None:
        """Forget the sweep of *key*."""
        self._cache.pop(key, None)
        self._run(f"DELETE FROM {_TABLE} WHERE key = ?", (key,))  # noqa: S608
