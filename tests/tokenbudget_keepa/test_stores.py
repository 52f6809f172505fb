"""Watermark stores and deal sinks: compare-and-set forward only, idempotent upserts, schema."""

from __future__ import annotations

import gc
import pickle
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenbudget_keepa import (
    SCHEMA_VERSION,
    AcceptedDeal,
    DealSink,
    MemoryDealSink,
    MemoryWatermarkStore,
    SchemaMismatch,
    SQLiteDealSink,
    SQLiteLease,
    SQLiteWatermarkStore,
    StoreError,
    Watermark,
    WatermarkStore,
    migrate_sqlite,
)


def accepted(asin, last_update=100, **kw):
    return AcceptedDeal(
        asin=asin, title=kw.pop("title", None), last_update=last_update, domain=1, **kw
    )


@pytest.fixture
def path(tmp_path):
    return tmp_path / "ingest.db"


@pytest.fixture(params=["memory", "sqlite"])
def store(request, path):
    s = MemoryWatermarkStore() if request.param == "memory" else SQLiteWatermarkStore(path)
    yield s
    s.close()


@pytest.fixture(params=["memory", "sqlite"])
def sink(request, path):
    s = MemoryDealSink() if request.param == "memory" else SQLiteDealSink(path)
    yield s
    s.close()


# -- the watermark store protocol, on every store ---------------------------------------------


def test_store_is_a_watermark_store(store):
    """Every store satisfies the WatermarkStore protocol."""
    assert isinstance(store, WatermarkStore)


def test_load_of_unknown_key_is_none(store):
    """A key never advanced has no watermark."""
    assert store.load("job") is None


def test_advance_forward_only(store):
    """advance stores a greater watermark and refuses an equal or smaller one."""
    assert store.advance("job", Watermark(10, "B1"))
    assert not store.advance("job", Watermark(10, "B1"))
    assert not store.advance("job", Watermark(9, "ZZ"))
    assert store.advance("job", Watermark(10, "B2"))
    assert store.load("job") == Watermark(10, "B2")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # reset per example
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(["", "B1", "B2", "C"])), max_size=12
    )
)
def test_advance_keeps_the_running_maximum(store, steps):
    """After any sequence of advances, the stored watermark is their maximum."""
    store.reset("job")
    best = None
    for minute, asin in steps:
        wm = Watermark(minute, asin)
        assert store.advance("job", wm) == (best is None or wm > best)
        best = wm if best is None or wm > best else best
        assert store.load("job") == best


def test_reset_and_keys(store):
    """reset forgets one key; keys lists the others sorted."""
    store.advance("b", Watermark(1, ""))
    store.advance("a", Watermark(1, ""))
    store.reset("b")
    store.reset("never")
    assert store.keys() == ["a"]
    assert store.load("b") is None


def test_reset_lets_a_smaller_watermark_in(store):
    """After reset, any watermark is stored (how a clamp is applied)."""
    store.advance("job", Watermark(100, "B"))
    store.reset("job")
    assert store.advance("job", Watermark(5, ""))
    assert store.load("job") == Watermark(5, "")


def test_empty_key_is_refused(store):
    """An empty key raises ValueError."""
    with pytest.raises(ValueError, match="key"):
        store.load("")


def test_advance_refuses_a_non_watermark(store):
    """advance with a tuple raises TypeError."""
    with pytest.raises(TypeError, match="Watermark"):
        store.advance("job", (1, "B"))


def test_threads_never_move_it_back(store):
    """Threads advancing at once leave the greatest watermark stored."""
    marks = [Watermark(m, f"B{i}") for i in range(4) for m in range(25)]

    def work(i):
        for wm in marks[i::4]:
            store.advance("job", wm)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.load("job") == max(marks)


# -- the deal sink protocol, on every sink ----------------------------------------------------


def test_sink_is_a_deal_sink(sink):
    """Every sink satisfies the DealSink protocol."""
    assert isinstance(sink, DealSink)


def test_upsert_is_idempotent(sink):
    """Upserting the same deals twice keeps one record per ASIN."""
    deals = [accepted("B1"), accepted("B2")]
    sink.upsert(deals)
    sink.upsert(deals)
    assert sink.asins() == frozenset({"B1", "B2"})
    assert len(sink) == 2


def test_upsert_never_rolls_back(sink):
    """An older record of an ASIN never replaces a newer one; a newer one does."""
    sink.upsert([accepted("B1", 200, title="new")])
    sink.upsert([accepted("B1", 100, title="old")])
    assert sink.get("B1").title == "new"
    sink.upsert([accepted("B1", 300, title="newer")])
    assert sink.get("B1").title == "newer"


def test_upsert_of_one_asin_twice_in_a_batch(sink):
    """Within one batch the latest record of an ASIN wins."""
    sink.upsert([accepted("B1", 300, title="late"), accepted("B1", 200, title="early")])
    assert sink.get("B1").title == "late"


def test_round_trip(sink):
    """A stored deal reads back equal, its raw JSON included."""
    deal = accepted(
        "B1",
        title="Kettle",
        price=1999,
        sales_rank=5,
        profit=-20,
        roi=-0.25,
        deal={"asin": "B1", "current": [1, -1]},
        product={"asin": "B1", "stats": None},
    )
    sink.upsert([deal])
    back = sink.get("B1")
    assert back == deal
    assert (back.deal, back.product) == (deal.deal, deal.product)
    assert sink.deals() == [deal]
    assert sink.get("B2") is None


def test_upsert_refuses_other_values(sink):
    """upsert of something that is not an AcceptedDeal raises TypeError and stores nothing."""
    with pytest.raises(TypeError, match="AcceptedDeal"):
        sink.upsert([accepted("B1"), {"asin": "B2"}])
    assert sink.asins() == frozenset()


def test_accepted_deal_validates():
    """AcceptedDeal refuses an empty ASIN and a non-int last_update, naming the field."""
    with pytest.raises(ValueError, match="asin"):
        accepted("")
    with pytest.raises(TypeError, match="last_update"):
        accepted("B1", last_update="1")


def test_accepted_deal_refuses_infinite_roi():
    """A roi that is not finite raises ValueError naming it; a str roi raises TypeError."""
    with pytest.raises(ValueError, match="roi"):
        accepted("B1", roi=float("inf"))
    with pytest.raises(TypeError, match="roi"):
        accepted("B1", roi="0.5")


def test_accepted_deal_json():
    """deal_json and product_json are compact, key-sorted JSON (product None stays None)."""
    deal = accepted("B1", deal={"b": 1, "a": [1, 2]})
    assert deal.deal_json() == '{"a":[1,2],"b":1}'
    assert deal.product_json() is None


# -- SQLite: one file, schema, transactions, processes ---------------------------------------


def test_one_file_holds_store_sink_and_lease(path):
    """Store, sink and lease open the same file; its deals table is plain SQL."""
    with SQLiteWatermarkStore(path) as store, SQLiteDealSink(path) as sink, SQLiteLease(path):
        store.advance("job", Watermark(7, "B1"))
        sink.upsert([accepted("B1", price=1999)])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT asin, price FROM deals").fetchall() == [("B1", 1999)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = [row[1] for row in conn.execute("PRAGMA table_info(deals)")]
    finally:
        conn.close()
    assert cols == [
        "asin",
        "title",
        "last_update",
        "domain",
        "price",
        "sales_rank",
        "profit",
        "roi",
        "deal_json",
        "product_json",
        "updated_at",
    ]


def _versions(path):
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT version FROM tokenbudget_keepa_schema")]
    finally:
        conn.close()


def test_new_file_gets_the_current_schema(path):
    """Opening a new file records the current schema version once."""
    SQLiteWatermarkStore(path).close()
    SQLiteDealSink(path).close()
    assert _versions(path) == [SCHEMA_VERSION]


def test_migrate_is_idempotent(path):
    """migrate_sqlite twice (and after a store opened the file) changes nothing."""
    assert migrate_sqlite(path) == SCHEMA_VERSION
    SQLiteDealSink(path).close()
    assert migrate_sqlite(path) == SCHEMA_VERSION
    assert _versions(path) == [SCHEMA_VERSION]


def _execute(path, *statements):
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("opener", [SQLiteWatermarkStore, SQLiteDealSink, SQLiteLease])
def test_newer_schema_is_refused_at_start(path, opener):
    """A file of a newer schema version raises SchemaMismatch naming both versions."""
    migrate_sqlite(path)
    _execute(path, "INSERT INTO tokenbudget_keepa_schema VALUES (99, 'later')")
    with pytest.raises(SchemaMismatch, match=r"version 99.*1"):
        opener(path)
    with pytest.raises(SchemaMismatch, match="99"):
        migrate_sqlite(path)


def test_foreign_deals_table_is_refused(path):
    """A deals table that tokenbudget_keepa did not create raises SchemaMismatch, untouched."""
    _execute(path, "CREATE TABLE deals (id INTEGER)", "INSERT INTO deals VALUES (1)")
    with pytest.raises(SchemaMismatch, match="deals"):
        SQLiteDealSink(path)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id FROM deals").fetchall() == [(1,)]
    finally:
        conn.close()


def test_missing_column_is_refused(path):
    """A current-version file whose deals table lacks a column raises SchemaMismatch naming it."""
    migrate_sqlite(path)
    _execute(path, "ALTER TABLE deals DROP COLUMN roi")
    with pytest.raises(SchemaMismatch, match="roi"):
        SQLiteWatermarkStore(path)


def test_unknown_version_is_refused(path):
    """A schema table holding no valid version raises SchemaMismatch."""
    migrate_sqlite(path)
    _execute(path, "DELETE FROM tokenbudget_keepa_schema")
    with pytest.raises(SchemaMismatch, match="unknown schema version"):
        SQLiteDealSink(path)


def test_not_a_database_is_a_store_error(path):
    """A file that is not SQLite raises a non-transient StoreError naming the file."""
    path.write_bytes(b"this is not a database, just text " * 100)
    with pytest.raises(StoreError, match=r"ingest\.db") as info:
        SQLiteWatermarkStore(path)
    assert not info.value.transient


def test_locked_database_is_a_transient_store_error(path):
    """A write while another connection holds the write lock raises a transient StoreError."""
    store = SQLiteWatermarkStore(path, timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked") as info:
            store.advance("job", Watermark(1, ""))
        assert info.value.transient
        blocker.execute("ROLLBACK")
        assert store.advance("job", Watermark(1, ""))  # usable again afterwards
    finally:
        blocker.close()
        store.close()


def test_reads_do_not_wait_for_a_writer(path):
    """load() answers while another connection holds the write lock (WAL)."""
    store = SQLiteWatermarkStore(path, timeout=0.05)
    store.advance("job", Watermark(1, "B"))
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        assert store.load("job") == Watermark(1, "B")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        store.close()


def test_commit_stores_and_advances_together(path):
    """commit upserts the deals and advances the watermark; covers names the same file only."""
    with SQLiteWatermarkStore(path) as store, SQLiteDealSink(path) as sink:
        assert store.covers(sink)
        assert not store.covers(MemoryDealSink())
        assert store.commit("job", [accepted("B1")], Watermark(100, "B1"))
        assert not store.commit("job", [accepted("B2")], Watermark(99, ""))
        assert sink.asins() == frozenset({"B1", "B2"})
        assert store.load("job") == Watermark(100, "B1")


def test_covers_is_false_for_another_file(path, tmp_path):
    """A sink on another file is not covered."""
    with SQLiteWatermarkStore(path) as store, SQLiteDealSink(tmp_path / "other.db") as sink:
        assert not store.covers(sink)


def test_commit_is_all_or_nothing(path):
    """When the watermark write fails, the deals of the same commit are not stored either."""
    with SQLiteWatermarkStore(path) as store, SQLiteDealSink(path) as sink:
        _execute(
            path,
            "CREATE TRIGGER refuse BEFORE INSERT ON tokenbudget_keepa_watermarks "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
        with pytest.raises(StoreError, match="refused by test"):
            store.commit("job", [accepted("B1")], Watermark(100, "B1"))
        assert sink.asins() == frozenset()
        assert store.load("job") is None


def test_unclosed_store_is_closed_when_collected(path):
    """A store dropped without close() leaks no connection (no ResourceWarning)."""
    store = SQLiteWatermarkStore(path)
    store.advance("job", Watermark(1, ""))
    del store
    gc.collect()


def test_sqlite_parts_pickle(path):
    """SQLite store, sink and lease pickle by path and timeout, and reopen the same file."""
    for part in (
        SQLiteWatermarkStore(path, timeout=1.5),
        SQLiteDealSink(path, timeout=1.5),
        SQLiteLease(path, timeout=1.5),
    ):
        clone = pickle.loads(pickle.dumps(part))  # noqa: S301 -- our own bytes
        assert (type(clone), clone.path, clone._db.timeout) == (type(part), part.path, 1.5)
        clone.close()
        part.close()


def test_closed_store_reopens_on_use(path):
    """After close(), the next operation opens a new connection."""
    store = SQLiteWatermarkStore(path)
    store.close()
    assert store.advance("job", Watermark(1, ""))
    store.close()


WRITER = """
import random, sys
from tokenbudget_keepa import SQLiteWatermarkStore, Watermark
path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
marks = [Watermark(m, f"B{seed}{i}") for m in range(60) for i in range(3)]
rng.shuffle(marks)
with SQLiteWatermarkStore(path, timeout=30) as store:
    for wm in marks:
        store.advance("job", wm)
"""


def test_two_processes_never_move_it_back(path):
    """Two processes advancing shuffled watermarks on one file: a reader never sees it go back."""
    migrate_sqlite(path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(seed)]) for seed in (1, 2)
    ]
    seen = []
    with SQLiteWatermarkStore(path) as reader:
        while any(p.poll() is None for p in procs):
            wm = reader.load("job")
            if wm is not None:
                seen.append(wm)
            time.sleep(0.002)  # poll, leaving the CPU to the writers
        for p in procs:
            assert p.wait() == 0
        final = reader.load("job")
    assert seen == sorted(seen)
    assert final == max(Watermark(59, f"B{s}{i}") for s in (1, 2) for i in range(3))


OPENER = """
import sys
from tokenbudget_keepa import SQLiteDealSink, SQLiteLease, SQLiteWatermarkStore
cls = {"store": SQLiteWatermarkStore, "sink": SQLiteDealSink, "lease": SQLiteLease}[sys.argv[2]]
cls(sys.argv[1], timeout=30).close()
"""


def test_processes_opening_a_new_file_at_once_create_one_schema(path):
    """Three processes opening a new file at once all succeed; the schema is created once."""
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, str(path), kind])
        for kind in ("store", "sink", "lease")
    ]
    assert [p.wait() for p in procs] == [0, 0, 0]
    assert _versions(path) == [SCHEMA_VERSION]
