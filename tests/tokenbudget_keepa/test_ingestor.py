"""The Smart Ingestor against the emulator over loopback: progress, outcomes, failure classes."""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pytest

from tokenbudget import BucketConfig, DeficitRule, ManualClock, Rate, TokenBucket
from tokenbudget_keepa import (
    AcceptedDeal,
    Deal,
    IngestEvent,
    KeepaClient,
    MemoryDealSink,
    MemoryLease,
    MemoryWatermarkStore,
    Product,
    SmartIngestor,
    StoreError,
    Watermark,
)
from tokenbudget_keepa._ingestor.ingestor import REQUEST_GRACE, _Run
from tokenbudget_keepa.testing import Fault, KeepaEmulator


SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}


class Everything:
    """Accepts every deal, after enrichment (a full filter that needs products)."""

    name = "everything"
    peek = False
    needs: ClassVar[dict[str, Any]] = {"stats": 90}

    def check_deal(self, deal: Deal) -> str | None:
        return None

    def check(self, deal: Deal, product: Product | None) -> str | None:
        return None


class RejectAll:
    """Rejects every deal, on the deal alone (peek) or after enrichment."""

    def __init__(self, *, peek: bool) -> None:
        self.peek = peek
        self.name = "nothing"
        self.needs: dict[str, Any] = {} if peek else {"stats": 90}

    def check_deal(self, deal: Deal) -> str | None:
        return "peek:nothing"

    def check(self, deal: Deal, product: Product | None) -> str | None:
        return "nothing"


class FlakySink(MemoryDealSink):
    """A memory sink whose first *failures* upserts fail as a locked database does."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def upsert(self, deals: Sequence[AcceptedDeal]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("database is locked", transient=True)
        super().upsert(deals)


@pytest.fixture
def make(
    make_emulator: Callable[..., KeepaEmulator], manual_clock: ManualClock
) -> Callable[..., tuple[KeepaEmulator, SmartIngestor]]:
    """Build an emulator and an ingestor on it (memory stores unless given)."""
    clients: list[KeepaClient] = []

    def build(
        *, emulator: dict[str, Any] | None = None, bucket: TokenBucket | None = None, **kwargs: Any
    ) -> tuple[KeepaEmulator, SmartIngestor]:
        emu = make_emulator(**{"history_minutes": 180, **(emulator or {})})
        client = KeepaClient(emu.api_key, base_url=emu.url, clock=manual_clock, bucket=bucket)
        clients.append(client)
        options: dict[str, Any] = {
            "store": MemoryWatermarkStore(),
            "sink": MemoryDealSink(),
            "filters": (),
            "key": "job",
            "retry_delay": 1.0,
        }
        options.update(kwargs)
        return emu, SmartIngestor(client, SELECTION, **options)

    yield build
    for client in clients:
        client.close()


def only_the_first_floor(store: MemoryWatermarkStore) -> bool:
    """Whether the stored watermark is the first run's floor: no deal committed."""
    mark = store.load("job")
    return mark is not None and mark.asin == ""


def truth(emu: KeepaEmulator, first: int, last: int) -> set[str]:
    """The ASINs whose latest update lies in [first, last] (what a perfect ingestor stores)."""
    return {d["asin"] for d in emu.deals_between(first, last, SELECTION)}


def test_first_run_looks_back_an_hour(make: Callable[..., Any]) -> None:
    """A first run stores the deals of the last hour up to the settled horizon, no older one."""
    emu, ingestor = make(emulator={"refill_per_min": 100})
    now = emu.now_minute()
    report = ingestor.run_once()
    assert report.watermark_before is None
    assert report.stopped == "caught_up"
    assert ingestor._sink.asins() == truth(emu, now - 60, now - 3)
    assert report.accepted == report.deals_seen == len(truth(emu, now - 60, now - 3))


def test_a_first_sweep_paged_over_many_runs_keeps_its_look_back(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """A drained account pages the first hour over many short runs; its oldest deals stay in."""
    emulator = {"refill_per_min": 5, "tokens": 0, "deals_per_minute": 30}
    emu, ingestor = make(emulator=emulator)
    start = emu.now_minute()
    for _ in range(45):
        ingestor.run_once(time_budget=55)
        manual_clock.advance(60 - manual_clock.now() % 60)
    hour = truth(emu, start - 60, start - 3)
    assert len(hour) > 1000
    assert hour <= ingestor._sink.asins()


def test_a_first_run_stores_its_floor_at_once(make: Callable[..., Any]) -> None:
    """The first run's look-back is stored before any page, so later runs keep the same floor."""
    store = MemoryWatermarkStore()
    emu, ingestor = make(emulator={"refill_per_min": 5, "tokens": 0}, store=store)
    now = emu.now_minute()
    report = ingestor.run_once(time_budget=1)
    assert report.stopped == "time_budget"
    assert store.load("job") == Watermark(now - 60, "")
    assert report.watermark_before is None


def test_paging_that_cannot_keep_up_is_reported(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """Deals arriving faster than the budget reads pages: the report says so, not silence.

    Past the first sweep (a deal committed): the sweep must reach the watermark.
    """
    emulator = {"refill_per_min": 5, "tokens": 0, "deals_per_minute": 200}
    emulator.update(history_minutes=10, disorder_minutes=0)
    store = MemoryWatermarkStore()
    emu, ingestor = make(
        emulator=emulator, store=store, lookback_minutes=2, settle_minutes=1, disorder_minutes=0
    )
    store.advance("job", Watermark(emu.now_minute() - 2, "B000000000"))
    errors: list[str] = []
    for _ in range(8):
        errors += ingestor.run_once(time_budget=55).errors
        manual_clock.advance(60 - manual_clock.now() % 60)
    assert any("paging cannot keep up" in e for e in errors), errors


def test_pages_out_of_order_past_the_bound_lose_nothing_and_are_reported(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """A page more out of order than disorder_minutes: paged deeper, reported, nothing lost."""
    emulator = {"refill_per_min": 300, "deals_per_minute": 100, "disorder_minutes": 30}
    emu, ingestor = make(emulator={**emulator, "history_minutes": 90})
    start = emu.now_minute()
    errors = list(ingestor.run_once().errors)
    for _ in range(3):
        manual_clock.advance(10 * 60)
        errors += ingestor.run_once().errors
    now = emu.now_minute()
    assert truth(emu, start - 60, now - 3) <= ingestor._sink.asins()
    assert any("out of order" in e for e in errors), errors


def test_next_run_continues_where_the_last_stopped(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """A later run stores the deals that arrived since, none lost, the watermark only forward."""
    emu, ingestor = make(emulator={"refill_per_min": 100})
    start = emu.now_minute()
    first = ingestor.run_once()
    manual_clock.advance(47 * 60)
    second = ingestor.run_once()
    now = emu.now_minute()
    assert second.watermark_before == first.watermark_after
    assert second.watermark_after is not None
    assert first.watermark_after is not None
    assert second.watermark_after > first.watermark_after
    assert ingestor._sink.asins() >= truth(emu, start - 60, now - 3)


def test_rejected_deals_advance_the_watermark(make: Callable[..., Any]) -> None:
    """A run whose every deal is rejected on the deal alone still advances the watermark."""
    _emu, ingestor = make(filters=(RejectAll(peek=True),))
    report = ingestor.run_once()
    assert report.accepted == 0
    assert report.rejected == {"peek:nothing": report.deals_seen}
    assert report.deals_seen > 0
    assert report.watermark_after is not None
    assert report.tokens_spent == 5 * report.pages  # rejected deals cost no product query


def test_fully_rejected_batches_advance_the_watermark(make: Callable[..., Any]) -> None:
    """Deals rejected after enrichment are outcomes too: the watermark moves past them."""
    _emu, ingestor = make(emulator={"refill_per_min": 100}, filters=(RejectAll(peek=False),))
    report = ingestor.run_once()
    assert report.batches
    assert report.rejected == {"nothing": report.deals_seen}
    assert report.watermark_after is not None


def test_a_future_watermark_is_detected_reported_and_clamped(make: Callable[..., Any]) -> None:
    """A watermark past the server's time is reported and clamped to now minus the look-back."""
    store = MemoryWatermarkStore()
    emu, ingestor = make(store=store)
    now = emu.now_minute()
    store.advance("job", Watermark(now + 10_000, "B0ZZZZZZZZ"))
    report = ingestor.run_once()
    assert any("past the server's time" in e for e in report.errors)
    assert report.deals_seen > 0
    after = store.load("job")
    assert after is not None
    assert now - 60 <= after.minute <= now


def test_a_store_error_is_retried_and_reported(make: Callable[..., Any]) -> None:
    """A locked database on upsert is retried within the run, reported, and nothing is lost."""
    sink = FlakySink(failures=2)
    emu, ingestor = make(sink=sink)
    now = emu.now_minute()
    report = ingestor.run_once()
    assert report.stopped == "caught_up"
    assert len(report.errors) == 2
    assert all("database is locked" in e for e in report.errors)
    assert sink.asins() == truth(emu, now - 60, now - 3)


def test_a_store_error_that_persists_stops_without_advancing(make: Callable[..., Any]) -> None:
    """When the sink keeps failing, the run stops on an error and the watermark stays put."""
    store = MemoryWatermarkStore()
    _emu, ingestor = make(store=store, sink=FlakySink(failures=100), retries=2)
    report = ingestor.run_once()
    assert report.stopped == "error"
    assert len(report.errors) == 4  # three attempts, then the reason it stopped
    assert only_the_first_floor(store)
    assert report.watermark_after == store.load("job")


def test_a_filter_that_raises_stops_before_its_deal(make: Callable[..., Any]) -> None:
    """A filter that raises is a fatal error naming it; no deal at or after that one is passed."""
    emu, _ = make(emulator={"refill_per_min": 100})
    now = emu.now_minute()
    deals = emu.deals_between(now - 60, now - 3, SELECTION)
    victim = deals[len(deals) // 2]

    class Fragile:
        name = "fragile"
        peek = True
        needs: ClassVar[dict[str, Any]] = {}

        def check_deal(self, deal: Deal) -> str | None:
            if deal.asin == victim["asin"]:
                raise TypeError("'>' not supported between 'NoneType' and 'int'")
            return None

        def check(self, deal: Deal, product: Product | None) -> str | None:
            return None

    store = MemoryWatermarkStore()
    _, ingestor = make(emulator={"refill_per_min": 100}, filters=(Fragile(),), store=store)
    report = ingestor.run_once()
    assert report.stopped == "fatal_error"
    assert "fragile" in report.errors[-1]
    mark = store.load("job")
    assert mark is None or mark < Watermark(victim["lastUpdate"], victim["asin"])


def test_server_faults_mid_run_are_reported_and_lose_nothing(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """503s past the client's retries and malformed JSON stop a run; the next runs lose nothing."""
    emu, ingestor = make(emulator={"refill_per_min": 100}, filters=(Everything(),), retries=0)
    start = emu.now_minute()
    emu.inject(*[Fault.server_error(503)] * 6, endpoint="product")
    first = ingestor.run_once()
    assert first.stopped == "error"
    assert any("KeepaServerError" in e for e in first.errors)
    emu.inject(Fault.malformed_json(), endpoint="product")
    second = ingestor.run_once()
    assert any("KeepaProtocolError" in e for e in second.errors)
    last = ingestor.run_once()
    while last.stopped != "caught_up":
        last = ingestor.run_once()
    assert ingestor._sink.asins() == truth(emu, start - 60, start - 3)


def test_sparse_products_are_rejections_not_crashes(make: Callable[..., Any]) -> None:
    """Products missing fields are rejected with a missing:* reason; the run goes on."""
    _emu, ingestor = make(emulator={"refill_per_min": 200, "sparse_share": 0.5}, filters=None)
    report = ingestor.run_once()
    assert report.stopped == "caught_up"
    assert not report.errors
    assert any(reason.startswith("missing:") for reason in report.rejected)
    assert report.watermark_after is not None


def test_a_wait_past_the_time_budget_ends_the_run(make: Callable[..., Any]) -> None:
    """With no tokens, a run with a time budget returns at once instead of waiting."""
    emu, ingestor = make(emulator={"tokens": -40})
    report = ingestor.run_once(time_budget=30)
    assert report.stopped == "time_budget"
    assert report.tokens_spent == 0
    assert report.elapsed < 30
    assert emu.stats().throttled == 0


def test_a_capped_page_set_never_advances_the_watermark(make: Callable[..., Any]) -> None:
    """Pages read down only part of the way leave the watermark; the next run reads on."""
    store = MemoryWatermarkStore()
    emu, ingestor = make(
        emulator={"deals_per_minute": 10, "tokens": 12, "refill_per_min": 5}, store=store
    )
    first = ingestor.run_once(time_budget=30)  # a few pages, then a wait for tokens
    assert first.stopped == "time_budget"
    assert first.deals_seen == 0
    assert only_the_first_floor(store)
    second = ingestor.run_once()
    assert second.deals_seen > 300
    assert second.stopped == "caught_up"
    # The second run read on from where the first stopped: no page was read twice.
    requests = emu.stats().requests["deal"][200]
    assert requests == first.pages + second.pages


def test_a_held_lease_means_nothing_is_done(make: Callable[..., Any]) -> None:
    """A second ingestor on the same key reports who holds the lease and spends nothing."""
    lease = MemoryLease()
    lease.acquire("job", ttl=600)
    emu, ingestor = make(lease=lease)
    report = ingestor.run_once()
    assert report.stopped == "lease_held"
    assert report.lease_holder is not None
    assert emu.stats().total_requests == 0


def test_a_lost_lease_stops_the_run_at_once(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """When another holder takes over the lease mid-run, the run stops before committing."""
    lease = MemoryLease(clock=manual_clock)
    store = MemoryWatermarkStore()

    def steal(event: IngestEvent) -> None:
        if event.kind == "page":
            manual_clock.advance(10_000)  # the lease expires...
            lease.acquire("job", ttl=600)  # ...and another ingestor takes it

    _emu, ingestor = make(lease=lease, store=store, on_event=steal, lease_ttl=60)
    report = ingestor.run_once()
    assert report.stopped == "lease_lost"
    assert only_the_first_floor(store)


def test_batches_fit_what_a_recharged_bucket_admits(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """Every product batch is admitted when the bucket leaves recharge mode (no second wait)."""
    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.none(),
        refill_step=60,
    )
    bucket = TokenBucket(config, clock=manual_clock, tokens=40)
    emu, ingestor = make(bucket=bucket, filters=(Everything(),), enrich={"offers": 20})
    report = ingestor.run_once(time_budget=4 * 3600)
    assert report.batches
    stats = emu.stats()
    # What a product cost on average: the bucket booked at least that much for each one.
    per_product = (stats.tokens_consumed - 5 * stats.count("deal", 200)) / stats.products_served
    assert max(report.batches) * per_product <= 40 or max(report.batches) == 1
    assert stats.throttled == 0


def test_tokens_spent_are_what_the_server_charged(make: Callable[..., Any]) -> None:
    """The report's tokens are the emulator's: pages at 5, products at their real cost."""
    emu, ingestor = make(emulator={"refill_per_min": 100}, filters=(Everything(),))
    report = ingestor.run_once()
    assert report.tokens_spent == emu.stats().tokens_consumed


def test_one_run_is_not_capped_but_by_the_budget(make: Callable[..., Any]) -> None:
    """A rich account processes every page of a busy selection in one run."""
    _emu, ingestor = make(emulator={"refill_per_min": 1000, "deals_per_minute": 12})
    report = ingestor.run_once()
    assert report.pages >= 5
    assert report.deals_seen > 500
    assert report.stopped == "caught_up"


def test_run_forever_stops_cleanly_on_sigterm(make: Callable[..., Any]) -> None:
    """SIGTERM ends run_forever after the run in progress; the handlers are restored."""
    _emu, ingestor = make()
    before = signal.getsignal(signal.SIGTERM)
    seen: list[str] = []

    def on_report(report: Any) -> None:
        seen.append(report.stopped)
        if len(seen) == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    last = ingestor.run_forever(interval=60, on_report=on_report)
    assert len(seen) == 3
    assert last is not None
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_429_past_the_clients_retries_never_advances_the_watermark(
    make: Callable[..., Any],
) -> None:
    """Refused with 429 again and again: the run stops on the error, the batch uncommitted."""
    store = MemoryWatermarkStore()
    emu, ingestor = make(
        emulator={"refill_per_min": 100}, filters=(Everything(),), store=store, retries=0
    )
    emu.inject(*[Fault.server_error(429)] * 8, endpoint="product")
    report = ingestor.run_once()
    assert report.stopped == "error"
    assert any("KeepaTokenError" in e for e in report.errors)
    assert only_the_first_floor(store)
    assert report.deals_seen == 0


def test_a_failed_token_status_at_start_is_retried(make: Callable[..., Any]) -> None:
    """A 500 and a malformed /token answer at start-up are retried, reported, and the run goes on."""
    emu, ingestor = make(emulator={"refill_per_min": 100}, retry_delay=0.5)
    emu.inject(Fault.server_error(500), Fault.malformed_json(), endpoint="token")
    now = emu.now_minute()
    report = ingestor.run_once()
    assert report.stopped == "caught_up", report.errors
    assert any("token status" in e for e in report.errors)
    assert ingestor._sink.asins() == truth(emu, now - 60, now - 3)


def test_a_selection_of_another_domain_is_refused(
    make_emulator: Callable[..., KeepaEmulator], manual_clock: ManualClock
) -> None:
    """A selection's domainId that differs from the client's domain: ValueError naming both."""
    emu = make_emulator()
    client = KeepaClient(emu.api_key, base_url=emu.url, clock=manual_clock, domain=3)
    with client, pytest.raises(ValueError, match=r"domainId 1 .* domain 3"):
        SmartIngestor(
            client, SELECTION, store=MemoryWatermarkStore(), sink=MemoryDealSink(), filters=()
        )


class CallableRejecter:
    """A callable object with a name and nothing else of a filter (what users write)."""

    name = "callable_rejecter"

    def __call__(self, deal: Deal, product: Product | None) -> bool:
        return False


def test_plain_functions_are_filters(make: Callable[..., Any]) -> None:
    """A function (deal, product) -> bool | str | None is a filter: False rejects with its name."""

    def no_deals(deal: Deal, product: Product | None) -> bool:
        return False

    def keep(deal: Deal, product: Product | None) -> None:
        return None

    _emu, ingestor = make(filters=(keep, no_deals))
    report = ingestor.run_once()
    assert report.stopped == "caught_up", report.errors
    assert report.deals_seen > 0
    assert report.rejected == {"no_deals": report.deals_seen}


@pytest.mark.parametrize(
    ("function", "reason"),
    [
        (CallableRejecter(), "callable_rejecter"),
        (lambda deal, product: "too_cheap", "too_cheap"),
        (lambda deal, product: False, "function"),
    ],
)
def test_callables_reject_with_their_reason(
    make: Callable[..., Any], function: Any, reason: str
) -> None:
    """A callable object with a name, or a lambda: its string, or its name, is the reason."""
    _emu, ingestor = make(filters=(function,))
    report = ingestor.run_once()
    assert report.stopped == "caught_up", report.errors
    assert report.rejected == {reason: report.deals_seen}


class HalfFilter:
    """Has a name and a check, but no peek and no needs: neither a filter nor a function."""

    name = "half"

    def check(self, deal: Deal, product: Product | None) -> str | None:
        return None


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ((42,), "42"),
        ((HalfFilter(),), "peek, needs, check_deal"),
        (("sales_rank",), "'sales_rank'"),
        (lambda deal, product: True, "sequence"),
        ("sales_rank", "sequence"),
    ],
)
def test_what_is_not_a_filter_is_refused_at_construction(
    make: Callable[..., Any], filters: Any, named: str
) -> None:
    """Neither a filter nor a function: TypeError at construction, saying what a filter needs."""
    with pytest.raises(TypeError, match="a filter is an object with name") as info:
        make(filters=filters)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("enrich", "error", "named"),
    [
        ({"stats": "90"}, TypeError, "enrich: stats must be an int"),
        ({"history": 1}, TypeError, "enrich: history must be a bool"),
        ({"offers": 5}, ValueError, "enrich: offers must lie in"),
        ({"stat": 90}, TypeError, "enrich: unknown option 'stat'"),
    ],
)
def test_a_bad_enrich_is_refused_at_construction(
    make: Callable[..., Any], enrich: dict[str, Any], error: type[Exception], named: str
) -> None:
    """enrich is checked as products() checks it, when the ingestor is built: nothing spent."""
    with pytest.raises(error, match=named):
        make(enrich=enrich)


class SharedBucket(TokenBucket):
    """A bucket that another client spends from while the ingestor's requests are on the wire.

    Right after each booking of the ingestor's client, the other client (its own
    KeepaClient on this same bucket, in a thread of its own) makes one request, as
    another process sharing the account would.
    """

    other: KeepaClient | None = None
    asins: ClassVar[list[str]] = []

    def reserve(self, cost: float = 1, *, timeout: float | None = None) -> Any:
        booking = super().reserve(cost, timeout=timeout)
        other, self.other = self.other, None
        if other is not None:
            thread = threading.Thread(target=other.products, args=(self.asins,))
            thread.start()
            thread.join()
            self.other = other
        return booking


def test_tokens_spent_are_the_runs_own_on_a_shared_bucket(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """Another client spending from the same bucket meanwhile does not count in tokens_spent."""
    config = BucketConfig(
        6000,
        Rate.per_minute(100),
        burst_threshold=1,
        min_threshold=1,
        deficit=DeficitRule.while_positive(math.inf),
        refill_step=60,
    )
    bucket = SharedBucket(config, clock=manual_clock, tokens=6000)
    emu, ingestor = make(emulator={"refill_per_min": 100}, bucket=bucket, filters=(Everything(),))
    other = KeepaClient(emu.api_key, base_url=emu.url, clock=manual_clock, bucket=bucket)
    SharedBucket.asins = emu.catalog_asins(7)
    bucket.other = other
    try:
        report = ingestor.run_once()
    finally:
        bucket.other = None
        other.close()
    stats = emu.stats()
    assert report.stopped == "caught_up", report.errors
    assert report.batches
    requests = report.pages + len(report.batches)  # the other client made one request each
    assert stats.count("product", 200) == len(report.batches) + requests
    assert report.tokens_spent == stats.tokens_consumed - 7 * requests


def test_a_first_sweep_that_cannot_reach_its_look_back_starts_where_it_paged(
    make: Callable[..., Any], manual_clock: ManualClock
) -> None:
    """Paging falls behind in a first sweep: it is cut at its paged prefix, whose deals go in.

    100 deals a minute against one page (150 deals) a minute: newest-first paging
    gains 50 deals a minute on the list and would reach the hour's floor after two
    hours of paging, committing nothing meanwhile. Cut once it has paged longer than
    its span, the first sweep keeps the deals after ``oldest + disorder``, each once,
    and none older; no error is reported for it.
    """
    emulator = {"refill_per_min": 5, "tokens": 0, "deals_per_minute": 100, "reupdate_share": 0.0}
    emulator.update(history_minutes=90, disorder_minutes=2)
    store = MemoryWatermarkStore()
    emu, ingestor = make(
        emulator=emulator, store=store, lookback_minutes=20, settle_minutes=1, disorder_minutes=2
    )
    start = emu.now_minute()
    errors: list[str] = []
    for _ in range(40):
        report = ingestor.run_once(time_budget=55)
        errors += report.errors
        manual_clock.advance(60 - manual_clock.now() % 60)
        if not only_the_first_floor(store):
            break
    assert not only_the_first_floor(store), "the first sweep never committed a deal"
    assert not any("paging cannot keep up" in e for e in errors), errors
    mark = store.load("job")
    assert mark is not None
    stored = ingestor._sink.deals()
    cut = min(d.last_update for d in stored)
    assert start - 20 < cut < start - 1  # the look-back was cut short, not dropped
    # Every deal between the cut and the watermark, each once (one record per ASIN).
    expected = {
        d["asin"]
        for d in emu.deals_between(cut, mark.minute, SELECTION)
        if (d["lastUpdate"], d["asin"]) <= (mark.minute, mark.asin)
    }
    assert {d.asin for d in stored} == expected


def test_a_wait_pushed_past_the_budget_by_another_booking_ends_the_run(
    make: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user of the account books between the plan and the request: the run stops.

    The planned wait is no reservation: a process sharing the account that books
    first pushes the request's time back. The client gives its booking back when
    it would be due past the run's budget (``wait_limit``), and the run ends for
    its budget instead of sending the request 17 minutes late.
    """
    emu, ingestor = make(emulator={"refill_per_min": 5, "tokens": 20})
    planned = _Run._plan_wait

    def plan_then_another_books(run: _Run, cost: float, *, what: str) -> float:
        wait = planned(run, cost, what=what)
        run.ing._client.bucket.reserve(100)  # another process's request, booked first
        return wait

    monkeypatch.setattr(_Run, "_plan_wait", plan_then_another_books)
    report = ingestor.run_once(time_budget=60)
    assert report.stopped == "time_budget"
    assert report.elapsed <= 60 + REQUEST_GRACE
    assert emu.stats().count("deal") == 0


def test_a_deal_leaving_between_two_page_reads_hides_no_neighbour(
    make: Callable[..., Any],
) -> None:
    """A deal of page 0 leaves the selection before page 1 is read: page 0 is read again.

    The list moves up by one, so the first deal of page 1 moves to the end of page 0,
    already read: on neither read. Page 1 lacks page 0's last deal and the selection
    shrank, so the sweep reads page 0 again and keeps the deal (one page more).
    """
    dropped: list[str] = []
    emulator = {"refill_per_min": 300, "deals_per_minute": 10, "reupdate_share": 0.0}
    emu, ingestor = make(emulator={**emulator, "disorder_minutes": 0})

    def on_event(event: IngestEvent) -> None:
        if event.kind == "page" and not dropped:  # page 0 was read: its newest deal leaves
            now = emu.now_minute()
            dropped.append(emu.deals_between(now - 5, now, SELECTION)[-1]["asin"])
            emu.drop_deal(dropped[0])

    ingestor._on_event = on_event
    now = emu.now_minute()
    report = ingestor.run_once()
    assert report.stopped == "caught_up"
    expected = truth(emu, now - 60, now - 3)
    assert len(expected) > 300  # more than two pages of deals
    assert dropped
    assert dropped[0] not in expected
    assert ingestor._sink.asins() == expected
    assert report.pages == math.ceil(len(truth(emu, now - 70, now)) / 150) + 1
