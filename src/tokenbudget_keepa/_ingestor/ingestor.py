# ruff: noqa: SLF001 -- _Run is the ingestor's own run state, in the same module
"""The Smart Ingestor: deals in, filtered, enriched, stored; never lost, never stalled.

One run of :class:`SmartIngestor` is a short way for every deal: the client
pages the selection, the ingestor keeps the pages in its backlog, the peek
filters judge each deal alone (free), the survivors are enriched with product
queries in batches the bucket admits, the full filters judge them, the sink
stores the accepted ones and the watermark store advances the watermark past
the batch. Nothing reaches back up.

The rules that make it safe:

- **The watermark covers a contiguous prefix of outcomes.** Deals are
  processed oldest first by ``(lastUpdate, asin)``; after a batch the
  watermark moves to its last deal, and only once every deal up to there is
  stored or rejected. A failed request, a failed upsert or an aborted run
  leave it where the last outcome was.
- **A sweep reads every page down to the watermark before any deal of it is
  processed**, and only deals settled before the sweep began are processed:
  pages that are not strictly sorted, deals sharing a minute and deals that
  arrive while paging cannot fall through a gap. (A first sweep that falls
  behind is cut at what it paged: its look-back starts there instead.)
- **Every wait is planned.** Before a request the ingestor asks the bucket how
  long it would wait; a run with a time budget stops before a wait that would
  pass it (the next run continues), and a batch is never larger than the
  bucket admits once recharged (:class:`tokenbudget.AdaptiveBatchSizer`).
- **The lease is held for the run and renewed before every step**, with a
  ttl that covers the wait ahead, so a crashed holder's lease expires soon.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import math
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import attrs

from tokenbudget import (
    AcquireTimeout,
    AdaptiveBatchSizer,
    BackendError,
    Clock,
    CostExceedsCapacity,
)
from tokenbudget_keepa._client.cost import RequestKind
from tokenbudget_keepa._client.deadline import deadline_cap, wait_limit
from tokenbudget_keepa._client.errors import (
    KeepaAuthError,
    KeepaError,
    KeepaRequestError,
    KeepaTokenError,
)
from tokenbudget_keepa._client.models.products import Deal, Product
from tokenbudget_keepa._client.models.query import DealQuery
from tokenbudget_keepa._client.spending import tally

from .backlog import Backlog, Entry, MemoryBacklog, Sweep, disorder_of
from .filters import (
    Filter,
    accepted_deal,
    as_filters,
    default_filters,
    enrich_for,
    order_filters,
)
from .report import IngestEvent, IngestEventHook, IngestEventKind, IngestReport, StopReason
from .sinks import AcceptedDeal, DealSink
from .watermark import (
    DEFAULT_FUTURE_TOLERANCE_MINUTES,
    DEFAULT_LOOKBACK_MINUTES,
    StoreError,
    Watermark,
    WatermarkStore,
    clamp_watermark,
    first_watermark,
)


if TYPE_CHECKING:
    from tokenbudget_keepa._client.clients import KeepaClient

    from .lease import Lease


__all__ = ["SmartIngestor", "default_key"]

log = logging.getLogger("tokenbudget_keepa.ingestor")

#: Unix ms = (Keepa minutes + KEEPA_EPOCH_OFFSET) * 60000.
_KEEPA_EPOCH_OFFSET = 21_564_000
#: Tokens one ``/deal`` page costs.
PAGE_COST = 5
#: The ``products()`` options an ingestor's ``enrich`` may give.
ENRICH_OPTIONS = (
    "offers",
    "stats",
    "buybox",
    "history",
    "update",
    "rating",
    "days",
    "stock",
    "only_live_offers",
)
#: The most ASINs one ``/product`` request takes (with ``offers``: 20).
_PRODUCTS_PER_REQUEST = 100
#: Seconds a request started within a run's time budget may still take past its end.
REQUEST_GRACE = 2.0
_PRODUCTS_PER_REQUEST_WITH_OFFERS = 50  # as the client sends them


def _minute_of(timestamp: dt.datetime) -> int:
    return int(timestamp.timestamp() * 1000) // 60_000 - _KEEPA_EPOCH_OFFSET


def default_key(query: DealQuery, domain: int) -> str:
    """The job key derived from a selection: its domain and a digest of its fields.

    The page and sort type are left out (the ingestor owns them).

    .. versionadded:: 0.1.0
    """
    fields = query.to_selection()
    for name in ("page", "sortType"):
        fields.pop(name, None)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return f"deals-{domain}-{digest}"


def product_cost_bound(enrich: Mapping[str, Any]) -> float:
    """An upper bound of the tokens one product costs with these ``products()`` arguments.

    Keepa charges 1 per product, 6 per offer page of up to 10 offers instead
    (``offers=N``), 2 more for ``buybox`` (not with offers), up to 1 more for
    ``rating``, up to 2 more for ``stock``, up to 1 more for ``update=0``
    (the cost model's list price).

    .. versionadded:: 0.1.0
    """
    offers = enrich.get("offers")
    return RequestKind.product(
        offers=None if not offers else int(offers),
        buybox=bool(enrich.get("buybox")),
        rating=bool(enrich.get("rating")),
        stock=bool(enrich.get("stock")),
        update=enrich.get("update"),
    ).list_price()


def check_enrich(enrich: Mapping[str, Any]) -> None:
    """Check *enrich* as ``products()`` will, before the run spends anything."""
    from tokenbudget_keepa._client.clients import product_params

    unknown = sorted(set(enrich) - set(ENRICH_OPTIONS), key=str)
    if unknown:
        raise TypeError(
            f"enrich: unknown option {unknown[0]!r} (the options of products(): "
            f"{', '.join(ENRICH_OPTIONS)})"
        )
    try:
        product_params(**enrich)
    except (TypeError, ValueError) as e:
        raise type(e)(f"enrich: {e}") from None


@attrs.frozen
class _Outcome:
    deal: Deal
    reason: str | None  # None: accepted
    product: Product | None = None


class _Stop(Exception):  # noqa: N818 -- control flow, never leaves this module
    def __init__(self, reason: StopReason, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message


class _Interrupted(KeyboardInterrupt):
    """Raised from a signal handler to stop a run at once (a wait included).

    A :class:`KeyboardInterrupt`, so that one arriving outside a run (while the
    lease is released, say) ends a program as Ctrl-C does.
    """


def _selection_size(page: Any) -> int | None:
    """How many deals the whole selection holds, from a page's ``categoryCount``; or None."""
    raw = getattr(page, "raw", None)
    counts = raw.get("categoryCount") if isinstance(raw, Mapping) else None
    if not isinstance(counts, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in counts
    ):
        return None
    return sum(counts)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class SmartIngestor:
    """Turns a Keepa deal selection into stored, filtered, enriched deals, at the refill rate.

    Args:
        client: A :class:`KeepaClient` (its bucket paces every request).
        selection: The deal selection, a :class:`DealQuery` or a mapping of Keepa's
            fields; the ingestor owns ``page`` and ``sortType`` (newest first).
        store: Where the watermark is kept (:class:`WatermarkStore`).
        sink: Where accepted deals are stored (:class:`DealSink`).
        filters: The filters to apply, cheapest first; ``None``: the built-in
            defaults; ``()``: none (every deal is accepted). A plain function
            ``(deal, product) -> bool | str | None`` is a filter too (wrapped in a
            :class:`FunctionFilter`; ``product`` is ``None`` when deals are not enriched).
        enrich: The keyword arguments of :meth:`KeepaClient.products` for enrichment;
            ``None``: what the filters need (no product queries when they need none).
        key: The job's name in the stores (default: ``deals-<domain>-<digest of the selection>``).
        lease: One ingestor per key at a time (:class:`Lease`); ``None``: no lease.
        backlog: Where fetched but unprocessed pages are kept between runs
            (default: in this object's memory; the command keeps them in its SQLite file).
        lookback_minutes: How far back a first run starts (at least an hour by default).
        settle_minutes: Deals updated in the last *settle_minutes* before a sweep
            began wait for the next sweep (Keepa caches answers for about two minutes).
        disorder_minutes: How far out of order a page may be; paging goes this far
            past the watermark.
        sweep_interval_minutes: The least time between two sweeps of a caught-up job;
            ``None``: long enough that re-reading page 0 takes at most a fifth of the refill.
        lease_ttl: Seconds a lease lives past the wait ahead, unless renewed.
        retries: How often one failed step (a request, a store write) is retried in a run.
        retry_delay: The first pause before a retry, doubled after each.
        clock: Where the ingestor reads time and waits (default: the client's clock).
        on_event: Called with every :class:`IngestEvent`.

    Raises:
        ValueError: When the selection's ``domainId`` is not the client's domain (naming
            both), or an *enrich* option is out of its range (``offers=5``).
        TypeError: When an item of *filters* is neither a filter nor a function (saying
            what a filter needs), or *enrich* has an unknown option or one of the wrong type.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: KeepaClient,
        selection: DealQuery | Mapping[str, Any],
        *,
        store: WatermarkStore,
        sink: DealSink,
        filters: Sequence[Filter | Callable[[Deal, Product | None], bool | str | None]]
        | None = None,
        enrich: Mapping[str, Any] | None = None,
        key: str | None = None,
        lease: Lease | None = None,
        backlog: Backlog | None = None,
        lookback_minutes: int = DEFAULT_LOOKBACK_MINUTES,
        settle_minutes: int = 3,
        disorder_minutes: int = 10,
        sweep_interval_minutes: float | None = None,
        lease_ttl: float = 120.0,
        retries: int = 3,
        retry_delay: float = 1.0,
        clock: Clock | None = None,
        on_event: IngestEventHook | None = None,
    ) -> None:
        query = selection if isinstance(selection, DealQuery) else DealQuery.from_mapping(selection)
        self._query = attrs.evolve(query, sort_type=1, page=0)
        client_domain = getattr(client, "domain", None)
        if query.domain_id and client_domain and int(client_domain) != query.domain_id:
            raise ValueError(
                f"the selection's domainId {query.domain_id} differs from the client's domain "
                f"{client_domain}: deals and products would come from different marketplaces"
            )
        self._domain = query.domain_id or int(client_domain or 1)
        self._client = client
        self._store = store
        self._sink = sink
        self._filters: tuple[Filter, ...] = order_filters(
            default_filters() if filters is None else as_filters(filters)
        )
        if enrich is None:
            self._enrich: Mapping[str, Any] | None = enrich_for(self._filters) or None
        else:
            self._enrich = dict(enrich)
        if self._enrich is not None:
            check_enrich(self._enrich)
        self._price_type = self._query.price_types[0]
        self.key = key or default_key(self._query, self._domain)
        self._lease = lease
        self._backlog: Backlog = MemoryBacklog() if backlog is None else backlog
        for name, value in (
            ("lookback_minutes", lookback_minutes),
            ("settle_minutes", settle_minutes),
            ("disorder_minutes", disorder_minutes),
            ("retries", retries),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        self._lookback = lookback_minutes
        self._settle = settle_minutes
        self._disorder = disorder_minutes
        self._seen_disorder = 0  # the most disorder seen on a page, past the bound too
        self._sweep_interval = sweep_interval_minutes
        if not lease_ttl > 0:
            raise ValueError(f"lease_ttl must be > 0 seconds, got {lease_ttl!r}")
        self._lease_ttl = float(lease_ttl)
        self._retries = retries
        self._retry_delay = float(retry_delay)
        self._clock: Clock = client.clock if clock is None else clock  # no request yet
        self._on_event = on_event
        per_request = _PRODUCTS_PER_REQUEST
        if self._enrich and self._enrich.get("offers"):
            per_request = _PRODUCTS_PER_REQUEST_WITH_OFFERS
        self._cost_bound = product_cost_bound(self._enrich or {})
        self._sizer = AdaptiveBatchSizer(self._cost_bound, max_batch=per_request, min_item_cost=1.0)
        self._stop_requested = False

    def __repr__(self) -> str:
        return f"SmartIngestor(key={self.key!r}, filters={len(self._filters)})"

    @property
    def sizer(self) -> AdaptiveBatchSizer:
        """The batch sizer (its estimate follows what product batches really cost)."""
        return self._sizer

    @property
    def enrich(self) -> Mapping[str, Any] | None:
        """The ``products()`` arguments of enrichment, or ``None`` when deals are not enriched."""
        return self._enrich

    def run_once(self, *, time_budget: float | None = None) -> IngestReport:
        """Process deals until caught up, until the next wait would pass *time_budget*, or an error.

        Args:
            time_budget: Seconds this run may take (on the ingestor's clock); a wait
                for tokens that would pass it ends the run instead (the next run
                continues). ``None``: no limit.
        """
        if time_budget is not None and not time_budget >= 0:
            raise ValueError(f"time_budget must be >= 0 seconds, got {time_budget!r}")
        return _Run(self, time_budget).execute()

    def run_forever(
        self,
        *,
        interval: float = 60.0,
        time_budget: float | None = None,
        on_report: Callable[[IngestReport], None] | None = None,
    ) -> IngestReport | None:
        """Run again and again until SIGINT or SIGTERM; return the last report.

        After a run that caught up (or found the lease held), it sleeps *interval*
        seconds on the clock; after one that stopped on its time budget it goes on
        at once. The signal stops the run in progress cleanly: the batch in flight
        is not committed, the lease is released.
        """
        last: IngestReport | None = None
        with stop_on_signals(self):
            try:
                while not self._stop_requested:
                    last = self.run_once(time_budget=time_budget)
                    if on_report is not None:
                        on_report(last)
                    if last.stopped in {"interrupted", "fatal_error"}:
                        break
                    if last.stopped != "time_budget":
                        self._clock.sleep(interval)
            except _Interrupted:
                pass
        return last

    def request_stop(self) -> None:
        """Ask the run in progress to stop after its current step (thread-safe)."""
        self._stop_requested = True

    def _emit(self, kind: IngestEventKind, message: str, **fields: Any) -> None:
        level = logging.DEBUG if kind == "rejected" else logging.INFO
        if kind in {"error", "retry"}:
            level = logging.WARNING
        log.log(level, "%s: %s", self.key, message)
        if self._on_event is not None:
            self._on_event(IngestEvent(kind, message, self._clock.now(), **fields))


@contextlib.contextmanager
def stop_on_signals(ingestor: SmartIngestor) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM stop *ingestor*'s run cleanly (main thread only).

    .. versionadded:: 0.1.0
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        ingestor.request_stop()
        raise _Interrupted

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@attrs.define
class _Run:
    """The state of one run: what it did so far, for the report."""

    ing: SmartIngestor
    time_budget: float | None
    start: float = 0.0
    deadline: float = math.inf
    token: str | None = None
    watermark: Watermark | None = None  # effective position (the first-run floor included)
    stored: Watermark | None = None
    before: Watermark | None = None
    status_minute: int = 0
    status_time: float = 0.0
    seen: int = 0
    accepted: int = 0
    rejected: Counter[str] = attrs.field(factory=Counter)
    tokens: float = 0.0
    errors: list[str] = attrs.field(factory=list)
    batches: list[int] = attrs.field(factory=list)
    pages: int = 0
    waited: float = 0.0
    sweeps_started: int = 0
    behind_reported: bool = False
    disorder_reported: bool = False
    backlog_left: int = 0
    holder: str | None = None
    peeked: dict[tuple[str, int], str | None] = attrs.field(factory=dict)
    parsed: dict[tuple[str, int], Deal] = attrs.field(factory=dict)

    # -- the run -------------------------------------------------------------------------------

    def execute(self) -> IngestReport:
        ing = self.ing
        clock = ing._clock
        self.start = clock.now()
        if self.time_budget is not None:
            self.deadline = self.start + self.time_budget
        ing._stop_requested = False
        stopped: StopReason = "caught_up"
        try:
            try:
                self._take_lease()
                self._load_watermark()
                while True:
                    if ing._stop_requested:
                        raise _Stop("interrupted")
                    self._renew(0.0)
                    self._step()
            except _Interrupted:
                raise _Stop("interrupted") from None
            except BackendError as e:
                # The account's shared bucket (Redis, SQLite) failed outside a retried step,
                # or past its retries: a transient error of this run, reported, not raised.
                raise _Stop(
                    "error", f"the account's bucket failed ({_describe(e)}); the next run retries"
                ) from e
        except _Stop as stop:
            stopped = stop.reason
            if stop.message and stop.reason not in {"caught_up", "time_budget", "interrupted"}:
                self.errors.append(stop.message)
        finally:
            self._release()
        report = IngestReport(
            key=ing.key,
            deals_seen=self.seen,
            accepted=self.accepted,
            rejected=dict(self.rejected),
            tokens_spent=self.tokens,
            watermark_before=self.before,
            watermark_after=self.stored,
            stopped=stopped,
            errors=tuple(self.errors),
            batches=tuple(self.batches),
            pages=self.pages,
            waited=self.waited,
            elapsed=clock.now() - self.start,
            backlog=self.backlog_left,
            lease_holder=self.holder,
        )
        ing._emit("stopped", f"stopped: {stopped}", reason=stopped, watermark=self.stored)
        return report

    def _step(self) -> None:
        ing = self.ing
        sweep = ing._backlog.load(ing.key)
        pending = self._pending(sweep)
        self.backlog_left = len(pending)
        if pending:
            self._process(pending)
            return
        if sweep is not None and (not sweep.complete or sweep.recheck is not None):
            self._fetch_page(sweep)
            return
        if sweep is not None and (self.sweeps_started or not self._sweep_due(sweep)):
            raise _Stop("caught_up")
        self._fetch_page(self._new_sweep())

    # -- lease ---------------------------------------------------------------------------------

    def _take_lease(self) -> None:
        ing = self.ing
        if ing._lease is None:
            return
        lease = ing._lease
        token = self._store_call(
            "take the lease", lambda: lease.acquire(ing.key, ttl=ing._lease_ttl)
        )
        if token is None:
            self.holder = self._store_call("read the lease", lambda: lease.holder(ing.key))
            who = self.holder or "another ingestor"
            ing._emit("lease", f"the lease is held by {who}: nothing to do")
            raise _Stop("lease_held")
        self.token = token
        ing._emit("lease", "lease taken")

    def _renew(self, wait: float) -> None:
        ing = self.ing
        lease, token = ing._lease, self.token
        if lease is None or token is None:
            return
        ttl = ing._lease_ttl + max(0.0, wait)
        if not self._store_call("renew the lease", lambda: lease.renew(ing.key, token, ttl=ttl)):
            self.token = None
            ing._emit("lease", "the lease was lost (expired and taken over)")
            raise _Stop("lease_lost", "the lease was lost during the run: stopped at once")

    def _release(self) -> None:
        ing = self.ing
        lease, token = ing._lease, self.token
        if lease is None or token is None:
            return
        self.token = None
        try:
            lease.release(ing.key, token)
        except Exception as e:  # noqa: BLE001 -- the lease expires anyway; report it
            self.errors.append(f"releasing the lease failed ({_describe(e)}); it expires by itself")

    # -- watermark -----------------------------------------------------------------------------

    def _server_minute(self) -> int:
        """The server's minute now: from the status read at the start, plus the clock since."""
        elapsed = self.ing._clock.now() - self.status_time
        return self.status_minute + int(elapsed // 60)

    def _load_watermark(self) -> None:
        ing = self.ing
        stored = self._store_call("load the watermark", lambda: ing._store.load(ing.key))
        self.before = self.stored = stored
        status = self._client_call("read the token status", ing._client.token_status)
        self.status_minute = _minute_of(status.timestamp)
        self.status_time = ing._clock.now()
        if stored is None:
            # The look-back is fixed once: stored now (forward only), so that a first sweep
            # paged across several runs keeps its floor instead of sliding with the clock.
            first = first_watermark(self.status_minute, lookback_minutes=ing._lookback)
            self._store_call(
                "store the first watermark", lambda: ing._store.advance(ing.key, first)
            )
            stored = self._store_call("load the watermark", lambda: ing._store.load(ing.key))
            if stored is None:  # pragma: no cover -- a store that drops what it was given
                stored = first
            self.stored = stored
            self.watermark = stored
            ing._emit(
                "watermark",
                f"first run: looking back {ing._lookback} minutes, from minute {stored.minute}",
                watermark=stored,
            )
            return
        clamped, was_clamped = clamp_watermark(
            stored,
            self.status_minute,
            lookback_minutes=ing._lookback,
            tolerance_minutes=DEFAULT_FUTURE_TOLERANCE_MINUTES,
        )
        if was_clamped:
            ahead = stored.minute - self.status_minute
            message = (
                f"the stored watermark {stored.minute}/{stored.asin} is {ahead} minutes past the "
                f"server's time (minute {self.status_minute}): a clock or epoch error; clamped to "
                f"{clamped.minute} (now - {ing._lookback} min look-back)"
            )
            self.errors.append(message)
            ing._emit("error", message, watermark=clamped)

            def reset() -> None:
                ing._store.reset(ing.key)
                ing._store.advance(ing.key, clamped)

            self._store_call("clamp the watermark", reset)
            ing._backlog.clear(ing.key)
            self.stored = clamped
        else:
            ing._emit("watermark", f"watermark {stored.minute}/{stored.asin}", watermark=stored)
        self.watermark = clamped

    # -- paging --------------------------------------------------------------------------------

    def _pending(self, sweep: Sweep | None) -> list[Entry]:
        if sweep is None or not sweep.complete or sweep.recheck is not None:
            return []
        mark = self.watermark
        assert mark is not None  # noqa: S101 -- loaded before the first step
        return [e for e in sweep.deals if e[0] <= sweep.horizon and not mark.covers(e[0], e[1])]

    def _deal(self, entry: Entry) -> Deal:
        """The deal of a backlog entry, parsed once per run."""
        ident = (entry[1], entry[0])
        deal = self.parsed.get(ident)
        if deal is None:
            try:
                deal = Deal.from_raw(entry[2])
            except KeepaError as e:
                raise _Stop("error", f"the backlog holds a deal that cannot be read: {e}") from e
            self.parsed[ident] = deal
        return deal

    def _sweep_due(self, sweep: Sweep) -> bool:
        ing = self.ing
        interval = ing._sweep_interval
        if interval is None:
            rate = ing._client.bucket.config.refill.tokens_per_second * 60
            interval = max(2.0, 5 * PAGE_COST / max(rate, 1e-9))
        started = sweep.horizon + ing._settle
        return self._server_minute() >= started + interval

    def _new_sweep(self) -> Sweep:
        ing = self.ing
        mark = self.watermark
        assert mark is not None  # noqa: S101
        now = self._server_minute()
        disorder = max(ing._disorder, ing._seen_disorder)
        sweep = Sweep(floor=mark.minute - disorder, horizon=now - ing._settle)
        self.sweeps_started += 1
        return sweep

    def _fetch_page(self, sweep: Sweep) -> None:
        ing = self.ing
        again = sweep.recheck is not None
        page = sweep.next_page if sweep.recheck is None else sweep.recheck
        wait = self._plan_wait(PAGE_COST, what=f"deal page {page}")
        self._renew(wait)
        query = ing._query.with_page(page)
        result, spent = self._spending_call(
            f"fetch deal page {page}", lambda: ing._client.deals(query, page=page)
        )
        self.pages += 1
        deals = list(result.deals)
        if again:
            # The list may have moved up at this page's end (deals left above it): the
            # deal pushed onto it from the next page is on it now (see the backlog's docs).
            sweep = sweep.with_recheck(deals)
            ing._emit(
                "page",
                f"deal page {page} read again: the selection shrank between two pages",
                count=len(deals),
                tokens=spent,
            )
            self._store_call("save the backlog", lambda: ing._backlog.save(ing.key, sweep))
            return
        disorder = disorder_of(deals)
        if disorder > ing._disorder:
            # Beyond the bound: page deeper (this sweep and the next ones), and say so.
            mark = self.watermark
            assert mark is not None  # noqa: S101 -- loaded before the first step
            deeper = mark.minute - disorder  # the watermark has not moved since the sweep began
            if deeper < sweep.floor:
                sweep = attrs.evolve(sweep, floor=deeper)
            ing._seen_disorder = max(ing._seen_disorder, disorder)
            if not self.disorder_reported:
                self.disorder_reported = True
                message = (
                    f"deal page {page} is {disorder} minutes out of order, more than "
                    f"disorder_minutes={ing._disorder}: paging deeper; deals may have been "
                    "missed, raise disorder_minutes"
                )
                self.errors.append(message)
                ing._emit("error", message)
        sweep = sweep.with_page(deals, last=bool(result.is_last), size=_selection_size(result))
        ing._emit(
            "page",
            f"deal page {page}: {len(deals)} deals"
            + (" (sweep complete)" if sweep.complete else ""),
            count=len(deals),
            tokens=spent,
        )
        self._store_call("save the backlog", lambda: ing._backlog.save(ing.key, sweep))
        self._check_pace(sweep)

    def _check_pace(self, sweep: Sweep) -> None:
        """Handle a sweep that has paged longer than the span it must cover.

        Newest-first paging is pushed down by the deals that arrive meanwhile: when
        they arrive about as fast as the budget reads pages, a sweep falls behind.
        A first sweep (no deal committed yet: its floor is only the look-back) is
        cut at the prefix it paged (:meth:`_cut_first_sweep`), so that a low-rate
        account processes deals and catches up instead of paging the look-back
        forever. Any other sweep must reach the watermark (deals past it must not
        be skipped): that is reported once a run, not left silent.
        """
        ing = self.ing
        if sweep.complete:
            return
        started = sweep.horizon + ing._settle
        paging = self._server_minute() - started
        span = max(started - sweep.floor, 1)
        if paging <= span:
            return
        mark = self.watermark
        assert mark is not None  # noqa: S101 -- loaded before the first step
        if mark.asin == "" and sweep.deals:
            self._cut_first_sweep(sweep, paging)
            return
        if self.behind_reported:
            return
        self.behind_reported = True
        oldest = sweep.deals[0][0] if sweep.deals else started
        message = (
            f"paging cannot keep up: the sweep begun at minute {started} has read "
            f"{sweep.next_page} pages in {paging} minutes and its oldest deal is at minute "
            f"{oldest}, not yet down to its floor {sweep.floor} ({started - oldest} of "
            f"{started - sweep.floor} minutes): the selection's deals arrive about as fast as "
            "the account's tokens read pages; narrow the selection or raise the refill"
        )
        self.errors.append(message)
        ing._emit("error", message)

    def _cut_first_sweep(self, sweep: Sweep, paging: int) -> None:
        """End a first sweep at the prefix it paged: its look-back starts there.

        Every deal not yet read lies after every deal read on the list, so its
        ``lastUpdate`` is at most ``m + disorder`` where ``m`` is the oldest minute
        read (pages are ordered by ``lastUpdate`` plus at most ``disorder`` minutes).
        The first watermark moves forward past ``m + disorder``: the deals after it
        up to the horizon have all been read, and are processed; the older ones
        are left out, as a shorter look-back would have left them.
        """
        ing = self.ing
        mark = self.watermark
        assert mark is not None  # noqa: S101
        disorder = max(ing._disorder, ing._seen_disorder)
        oldest = sweep.deals[0][0]
        cut = Watermark(oldest + disorder + 1, "")
        if cut > mark:
            self._store_call("move the first watermark", lambda: ing._store.advance(ing.key, cut))
            self.watermark = self.stored = cut
        done = attrs.evolve(sweep, complete=True, floor=max(sweep.floor, cut.minute - disorder))
        self._store_call("save the backlog", lambda: ing._backlog.save(ing.key, done))
        message = (
            f"the first sweep cannot reach its look-back at the account's rate ({sweep.next_page} "
            f"pages in {paging} minutes): it starts at minute {cut.minute} instead of "
            f"{mark.minute}, with the {sweep.next_page} pages read"
        )
        ing._emit("watermark", message, watermark=self.watermark)

    # -- batches -------------------------------------------------------------------------------

    def _peek(self, deal: Deal) -> str | None:
        ident = (deal.asin, deal.last_update)
        if ident in self.peeked:
            return self.peeked[ident]
        reason = None
        for f in self.ing._filters:
            if not f.peek:
                continue
            reason = self._judge(f, functools.partial(f.check_deal, deal), deal)
            if reason is not None:
                break
        self.peeked[ident] = reason
        return reason

    def _judge(self, f: Filter, check: Callable[[], str | None], deal: Deal) -> str | None:
        try:
            reason = check()
        except Exception as e:
            raise _Stop(
                "fatal_error",
                f"filter {f.name!r} raised {_describe(e)} on deal {deal.asin}: fix the filter "
                "(the watermark stays before this deal)",
            ) from e
        if reason is not None and not isinstance(reason, str):
            raise _Stop(
                "fatal_error",
                f"filter {f.name!r} returned {reason!r} for deal {deal.asin}: a reason must be a "
                "str or None",
            )
        return reason

    def _process(self, pending: list[Entry]) -> None:
        """Process one batch and commit it.

        The batch is the oldest pending deals up to its last survivor of the
        peek filters, and the peek-rejected deals right after it.
        """
        ing = self.ing
        limit = ing._sizer.max_batch or _PRODUCTS_PER_REQUEST
        scanned: list[Deal] = []
        survivors: list[Deal] = []
        for entry in pending:  # parse and peek only as far as one batch can reach
            deal = self._deal(entry)
            if self._peek(deal) is None:
                if len(survivors) == limit:
                    break
                survivors.append(deal)
            scanned.append(deal)
        if ing._enrich is None or not survivors:
            # Nothing to spend: every scanned deal's outcome is known now.
            outcomes = [_Outcome(d, self._peek(d)) for d in scanned]
            self._full_filters(outcomes, {})
            self._commit(outcomes)
            return
        size = self._plan_batch(len(survivors))
        chosen = survivors[:size]
        # The batch: every deal up to its last survivor, then the peek-rejected ones after it.
        cut = scanned.index(chosen[-1]) + 1
        while cut < len(scanned) and self._peek(scanned[cut]) is not None:
            cut += 1
        batch = scanned[:cut]
        products = self._enrich_batch(chosen)
        outcomes = [_Outcome(d, self._peek(d)) for d in batch]
        self._full_filters(outcomes, products)
        self._commit(outcomes)

    def _plan_batch(self, survivors: int) -> int:
        ing = self.ing
        config = ing._client.bucket.config
        sizer = ing._sizer
        item = self._item_cost()
        if item > sizer.item_cost:
            sizer.observe(1, item)  # the client books more than learned: size on what it books
        try:
            size = sizer.size(config)
        except CostExceedsCapacity as e:
            raise _Stop(
                "fatal_error",
                f"one product with {dict(ing._enrich or {})} costs up to {ing._sizer.item_cost:g} "
                f"tokens, but this account never admits more than {config.max_cost:g} at once",
            ) from e
        # Keepa runs a batch whatever its debt, so the sizer alone would take the largest
        # request: on a low-rate account one 50-product batch is over an hour of refill with
        # nothing stored. A batch costs at most half the bucket (half an hour of Keepa's).
        size = min(size, max(1, math.floor(config.capacity / 2 / item)) if item > 0 else size)
        size = max(1, min(size, survivors))
        remaining = self.deadline - ing._clock.now()
        if math.isinf(remaining):
            return size
        if self._probe(self._batch_cost(size)) <= remaining:
            return size
        lo, hi = 0, size  # lo fits (0 trivially), hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._probe(self._batch_cost(mid)) <= remaining:
                lo = mid
            else:
                hi = mid
        if lo == 0:
            wait = self._probe(self._batch_cost(1))
            self._stop_for_budget(wait, "a product batch")
        return lo

    def _batch_cost(self, size: int) -> float:
        """What the client books for a product batch of *size* (its cost model's estimate)."""
        return size * self._item_cost()

    def _item_cost(self) -> float:
        ing = self.ing
        model = getattr(ing._client, "cost_model", None)
        if model is None:
            return max(ing._sizer.item_cost, 1.0)
        enrich = ing._enrich or {}
        kind = RequestKind.product(
            offers=enrich.get("offers"),
            buybox=bool(enrich.get("buybox")),
            rating=bool(enrich.get("rating")),
            stock=bool(enrich.get("stock")),
            update=enrich.get("update"),
        )
        return float(model.per_unit(kind))

    def _enrich_batch(self, deals: list[Deal]) -> dict[str, Product]:
        ing = self.ing
        asins = [d.asin for d in deals]
        wait = self._plan_wait(self._batch_cost(len(asins)), what=f"a batch of {len(asins)}")
        self._renew(wait)
        enrich = dict(ing._enrich or {})
        products, spent = self._spending_call(
            f"enrich a batch of {len(asins)}", lambda: ing._client.products(asins, **enrich)
        )
        self.batches.append(len(asins))
        if spent > 0:
            ing._sizer.observe(len(asins), spent)
        ing._emit(
            "batch",
            f"enriched {len(asins)} deals for {spent:g} tokens",
            count=len(asins),
            tokens=spent,
        )
        return {p.asin: p for p in products}

    def _full_filters(self, outcomes: list[_Outcome], products: Mapping[str, Product]) -> None:
        ing = self.ing
        for i, outcome in enumerate(outcomes):
            if outcome.reason is not None:
                continue
            deal = outcome.deal
            product = products.get(deal.asin)
            if ing._enrich is not None and product is None:
                outcomes[i] = _Outcome(deal, "missing:product")
                continue
            reason = None
            for f in ing._filters:
                reason = self._judge(f, functools.partial(f.check, deal, product), deal)
                if reason is not None:
                    break
            outcomes[i] = _Outcome(deal, reason, product)

    def _accepted(self, outcome: _Outcome) -> AcceptedDeal:
        ing = self.ing
        return accepted_deal(
            outcome.deal, outcome.product, domain=ing._domain, filters=ing._filters
        )

    def _commit(self, outcomes: list[_Outcome]) -> None:
        ing = self.ing
        if not outcomes:
            return
        last = outcomes[-1].deal
        mark = Watermark(last.last_update, last.asin)
        accepted = [self._accepted(o) for o in outcomes if o.reason is None]
        store, sink = ing._store, ing._sink
        commit = getattr(store, "commit", None)
        covers = getattr(store, "covers", None)
        together = commit is not None and (
            sink is store  # type: ignore[comparison-overlap]
            or (covers is not None and bool(covers(sink)))
        )

        def write() -> None:
            if together:
                assert commit is not None  # noqa: S101
                commit(ing.key, accepted, mark)
                return
            if accepted:
                sink.upsert(accepted)
            store.advance(ing.key, mark)

        self._renew(0.0)
        self._store_call(f"store {len(accepted)} deals and advance the watermark", write)
        self.watermark = mark
        self.stored = mark
        self.seen += len(outcomes)
        self.accepted += len(accepted)
        for o in outcomes:
            if o.reason is not None:
                self.rejected[o.reason] += 1
                ing._emit(
                    "rejected", f"{o.deal.asin} rejected: {o.reason}", reason=o.reason,
                    asin=o.deal.asin,
                )  # fmt: skip
        reasons = Counter(o.reason for o in outcomes if o.reason is not None)
        detail = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        ing._emit(
            "committed",
            f"{len(outcomes)} deals done: {len(accepted)} stored"
            + (f", rejected {detail}" if detail else "")
            + f"; watermark {mark.minute}/{mark.asin}",
            count=len(outcomes),
            watermark=mark,
        )

    # -- waits, retries ------------------------------------------------------------------------

    def _spending_call(self, what: str, call: Callable[[], Any]) -> tuple[Any, float]:
        """:meth:`_client_call`, and the tokens its successful attempt settled.

        What every attempt settled (this run's own requests, not the others' on a
        shared bucket) is added to the run's tokens, the failed attempts' too.
        """
        settled = [0.0]

        def attempt() -> Any:
            with tally() as spent:
                try:
                    return call()
                finally:
                    self.tokens += spent.tokens
                    settled[0] = spent.tokens

        return self._client_call(what, attempt), settled[0]

    def _probe(self, cost: float) -> float:
        """:meth:`_probe_once`, retried when the bucket's backend fails (Redis gone a moment)."""
        attempt = 0
        while True:
            try:
                return self._probe_once(cost)
            except BackendError as e:
                self._pause(attempt, "ask the account's bucket for tokens", e)
            attempt += 1

    def _probe_once(self, cost: float) -> float:
        """Seconds the bucket would make a request of *cost* wait now; nothing stays booked.

        When the snapshot shows the request admitted at once, nothing is asked
        of the bucket; otherwise ``reserve(cost, timeout=0)`` raises with the
        wait and books nothing (on a rounding edge it books, and is cancelled
        at once: its time has not passed).
        """
        bucket = self.ing._client.bucket
        config = bucket.config
        snap = bucket.snapshot()
        need = config.required_balance(cost)
        if snap.recharging:
            need = max(need, config.burst_threshold)
        if snap.pending == 0 and snap.tokens > 0 and snap.tokens >= need + 1e-6:
            return 0.0
        try:
            reservation = bucket.reserve(cost, timeout=0)
        except AcquireTimeout as e:
            return float(e.delay)
        reservation.cancel()
        return 0.0

    def _stop_for_budget(self, wait: float, what: str) -> None:
        remaining = self.deadline - self.ing._clock.now()
        self.ing._emit(
            "wait",
            f"{what} would wait {wait:.0f} s, more than the {max(remaining, 0):.0f} s left: "
            "stopping (the next run goes on)",
            seconds=wait,
        )
        raise _Stop("time_budget")

    def _plan_wait(self, cost: float, *, what: str) -> float:
        try:
            wait = self._probe(cost)
        except CostExceedsCapacity as e:
            raise _Stop("fatal_error", f"{what}: {e}") from e
        if self.ing._clock.now() + wait > self.deadline:
            self._stop_for_budget(wait, what)
        if wait > 0:
            self.waited += wait
            self.ing._emit("wait", f"waiting {wait:.0f} s for tokens for {what}", seconds=wait)
        return wait

    def _pause(self, attempt: int, what: str, error: BaseException) -> None:
        ing = self.ing
        message = f"{what} failed ({_describe(error)})"
        self.errors.append(message)
        if attempt >= ing._retries:
            ing._emit("error", message + f"; gave up after {attempt + 1} attempts")
            raise _Stop("error", f"{what}: gave up after {attempt + 1} attempts") from error
        delay = ing._retry_delay * 2**attempt
        if ing._clock.now() + delay > self.deadline:
            ing._emit("error", message + "; no time left in this run to retry")
            raise _Stop("error", f"{what}: no time left in this run to retry") from error
        ing._emit("retry", message + f"; retrying in {delay:g} s", seconds=delay)
        self._renew(delay)
        ing._clock.sleep(delay)

    def _client_call(self, what: str, call: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            # With a time budget, a request on the wire (a server trickling its answer, say)
            # ends with the budget too, not only with the client's own timeout. The budget
            # bounds waits (SPEC): a request started in time gets REQUEST_GRACE to finish.
            # The wait planned before the call is no reservation: another process on the
            # account may book first. The client's wait for tokens ends with the budget too.
            left = self.deadline - self.ing._clock.now()
            capping = 0 < left < math.inf
            cap = deadline_cap(max(left, REQUEST_GRACE)) if capping else contextlib.nullcontext()
            limit = (
                wait_limit(self.ing._clock, self.deadline) if capping else contextlib.nullcontext()
            )
            try:
                with cap, limit:
                    return call()
            except (KeepaAuthError, KeepaRequestError) as e:
                raise _Stop("fatal_error", f"{what}: {_describe(e)}") from e
            except CostExceedsCapacity as e:
                raise _Stop("fatal_error", f"{what}: {_describe(e)}") from e
            except (KeepaError, OSError) as e:
                wait = getattr(e, "wait", None) if isinstance(e, KeepaTokenError) else None
                if wait is not None and self.ing._clock.now() + wait > self.deadline:
                    self._stop_for_budget(wait, what)
                self._pause(attempt, what, e)
            attempt += 1

    def _store_call(self, what: str, call: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            try:
                return call()
            except StoreError as e:
                if not e.transient:
                    raise _Stop("fatal_error", f"{what}: {_describe(e)}") from e
                self._pause(attempt, what, e)
            except Exception as e:  # noqa: BLE001 -- any database error: retried, then reported
                self._pause(attempt, what, e)
            attempt += 1
