"""PostgreSQL watermark store, deal sink and lease, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from tests.deploy.conftest import postgres_required
from tokenbudget import TokenBudgetError
from tokenbudget_keepa import AcceptedDeal, SchemaMismatch, StoreError, Watermark
from tokenbudget_keepa._ingestor.lease import HolderProcess


if not postgres_required():
    pytest.importorskip("psycopg", reason="psycopg is not installed (tokenbudget[postgres])")

import psycopg

from tokenbudget_keepa.postgres import (
    SCHEMA_VERSION,
    PostgresDatabase,
    PostgresDealSink,
    PostgresError,
    PostgresSchemaError,
    PostgresUnavailableError,
    PostgresWatermarkStore,
    migrate,
)


pytestmark = pytest.mark.postgres


def deal(asin: str, last_update: int = 100, **changes: object) -> AcceptedDeal:
    fields: dict[str, object] = {
        "asin": asin,
        "title": f"title of {asin}",
        "last_update": last_update,
        "domain": 1,
        "price": 1999,
        "sales_rank": 1234,
        "profit": 500,
        "roi": 0.25,
        "deal": {"asin": asin, "lastUpdate": last_update},
        "product": {"asin": asin, "stats": {"buyBoxPrice": 2499}},
    }
    fields.update(changes)
    return AcceptedDeal(**fields)  # type: ignore[arg-type]


@pytest.fixture
def db(postgres_url: str):
    database = PostgresDatabase(postgres_url, migrate=True)
    yield database
    database.close()


def test_migrate_creates_the_tables_at_the_current_version(postgres_url):
    """An empty database is migrated to SCHEMA_VERSION, with the deals table users read."""
    assert migrate(postgres_url) == SCHEMA_VERSION
    with psycopg.connect(postgres_url) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'deals' AND table_schema = current_schema() "
                "ORDER BY ordinal_position"
            )
        ]
    assert columns == [
        "asin", "title", "last_update", "domain", "price", "sales_rank", "profit", "roi",
        "deal_json", "product_json", "updated_at",
    ]  # fmt: skip


def test_migrate_is_idempotent(postgres_url):
    """Migrating twice changes nothing and keeps one version row."""
    migrate(postgres_url)
    with PostgresDatabase(postgres_url, migrate=True) as db:
        db.deal_sink().upsert([deal("B000000001")])
        assert db.migrate() == SCHEMA_VERSION
        assert db.schema_version() == SCHEMA_VERSION
        assert db.deal_sink().asins() == {"B000000001"}
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM tokenbudget_keepa_schema").fetchone() == (1,)


def test_concurrent_migrations_take_turns(postgres_url):
    """Processes starting at once on an empty database all succeed; the schema is made once."""
    code = "import sys; from tokenbudget_keepa.postgres import migrate; print(migrate(sys.argv[1]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, postgres_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert [out.strip() for out, _ in outputs] == [str(SCHEMA_VERSION)] * 4
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM tokenbudget_keepa_schema").fetchall() == [
            (SCHEMA_VERSION,)
        ]


def test_unknown_schema_version_is_refused_in_one_line(postgres_url):
    """A database at a newer version is refused at start-up, migrating or not, naming it."""
    migrate(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE tokenbudget_keepa_schema SET version = 99")
    for migrating in (False, True):
        with pytest.raises(PostgresSchemaError) as info:
            PostgresDatabase(postgres_url, migrate=migrating)
        message = str(info.value)
        assert "\n" not in message
        assert "version 99" in message
        assert "upgrade tokenbudget" in message
        assert isinstance(info.value, SchemaMismatch)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM tokenbudget_keepa_schema").fetchone() == (99,)


def test_missing_schema_is_an_error_without_migrate(postgres_url):
    """Opening an empty database without migrating says to migrate; nothing is created."""
    with pytest.raises(PostgresSchemaError, match="no tokenbudget_keepa tables"):
        PostgresWatermarkStore(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('deals')").fetchone() == (None,)


def test_foreign_deals_table_is_refused(postgres_url):
    """A table named deals that tokenbudget did not create is never adopted."""
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE deals (id integer)")
    with pytest.raises(PostgresSchemaError, match="did not create"):
        migrate(postgres_url)


def test_unreachable_database_is_a_typed_error_at_start_up():
    """No server on the port: PostgresUnavailableError at once, naming where, never the password."""
    started = time.monotonic()
    with pytest.raises(PostgresUnavailableError) as info:
        PostgresDatabase("postgresql://postgres:s3cret@127.0.0.1:1/nowhere", connect_timeout=2)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "127.0.0.1:1/nowhere" in message
    assert "s3cret" not in message
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, StoreError)
    assert isinstance(info.value, TokenBudgetError)
    assert info.value.transient


def test_watermark_never_moves_backwards(db):
    """advance is a compare-and-set: only a greater watermark is stored."""
    store = db.watermark_store()
    assert store.load("k") is None
    assert store.advance("k", Watermark(100, "B000000005"))
    assert not store.advance("k", Watermark(100, "B000000005"))
    assert not store.advance("k", Watermark(99, "B00000000Z"))
    assert not store.advance("k", Watermark(100, "B000000004"))
    assert store.advance("k", Watermark(100, "B000000006"))
    assert store.load("k") == Watermark(100, "B000000006")
    assert store.load("other") is None


def test_watermark_ties_order_as_python_does(db):
    """ASINs sharing a minute compare bytewise, as Watermark does (not by the locale)."""
    store = db.watermark_store()
    low, high = sorted([Watermark(5, "B0zzzzzzzz"), Watermark(5, "B0ZZZZZZZZ")])
    assert store.advance("k", high)
    assert not store.advance("k", low)
    assert store.load("k") == high


def test_concurrent_advances_keep_the_maximum(db):
    """Threads advancing one key at once leave the greatest watermark, never a smaller one."""
    store = db.watermark_store()
    marks = [Watermark(m, f"B{m:09d}") for m in range(40)]

    def work(part):
        for w in part:
            store.advance("k", w)

    threads = [threading.Thread(target=work, args=(marks[i::4][::-1],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.load("k") == max(marks)


def test_reset_and_keys(db):
    """keys lists every stored key; reset forgets one."""
    store = db.watermark_store()
    store.advance("b", Watermark(1, "B1"))
    store.advance("a", Watermark(1, "B1"))
    assert store.keys() == ["a", "b"]
    store.reset("a")
    assert store.keys() == ["b"]
    assert store.load("a") is None


def test_upsert_is_idempotent_by_asin(db):
    """Upserting the same deals twice leaves one row per ASIN."""
    sink = db.deal_sink()
    batch = [deal("B000000001"), deal("B000000002")]
    sink.upsert(batch)
    sink.upsert(batch)
    assert sink.asins() == {"B000000001", "B000000002"}
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM deals").fetchone() == (2,)


def test_upsert_keeps_the_latest_update(db):
    """A newer update of an ASIN replaces its row; an older one never does."""
    sink = db.deal_sink()
    sink.upsert([deal("B000000001", 100, price=10)])
    sink.upsert([deal("B000000001", 200, price=20)])
    sink.upsert([deal("B000000001", 150, price=15)])
    sink.upsert([deal("B000000002", 1, price=1), deal("B000000002", 3, price=3)])
    with db.transaction() as conn:
        rows = conn.execute("SELECT asin, last_update, price FROM deals ORDER BY asin").fetchall()
    assert rows == [("B000000001", 200, 20), ("B000000002", 3, 3)]


def test_deal_and_product_json_round_trip(db):
    """The raw deal and product are stored as jsonb users can query; a missing product is NULL."""
    sink = db.deal_sink()
    sink.upsert([deal("B000000001"), deal("B000000002", product=None, title=None, roi=None)])
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT asin, deal_json->>'asin', product_json->'stats'->>'buyBoxPrice', title "
            "FROM deals ORDER BY asin"
        ).fetchall()
    assert rows == [
        ("B000000001", "B000000001", "2499", "title of B000000001"),
        ("B000000002", "B000000002", None, None),
    ]


def test_commit_upserts_and_advances_together(db):
    """commit stores the deals and moves the watermark in one go."""
    store, sink = db.watermark_store(), db.deal_sink()
    assert store.covers(sink)
    assert store.commit("k", [deal("B000000001"), deal("B000000002")], Watermark(100, "B2"))
    assert sink.asins() == {"B000000001", "B000000002"}
    assert store.load("k") == Watermark(100, "B2")


def test_commit_is_one_transaction(db):
    """A failing row in a batch stores nothing of the batch and leaves the watermark alone."""
    store, sink = db.watermark_store(), db.deal_sink()
    store.advance("k", Watermark(50, "B0"))
    bad = deal("B000000002", title="nul \x00 byte")  # PostgreSQL text cannot hold NUL
    with pytest.raises(PostgresError) as info:
        store.commit("k", [deal("B000000001"), bad], Watermark(100, "B2"))
    assert "\n" not in str(info.value)
    assert sink.asins() == frozenset()
    assert store.load("k") == Watermark(50, "B0")


def test_covers_only_sinks_on_the_same_database(db, postgres_url):
    """The store commits for a sink on its database, not for another kind of sink."""
    store = db.watermark_store()
    other = PostgresDealSink(postgres_url)
    try:
        assert store.covers(other)
        assert not store.covers(object())
    finally:
        other.close()


def test_store_opened_from_a_url_closes_its_pool(postgres_url):
    """A store given a URL owns its pool; close() closes it (no warning, no leak)."""
    store = PostgresWatermarkStore(postgres_url, migrate=True)
    store.advance("k", Watermark(1, "B1"))
    store.close()
    with pytest.raises(PostgresError):
        store.load("k")


def test_lease_has_one_holder(db):
    """A held lease is refused to others; renew and release act only for the holder."""
    lease = db.lease()
    token = lease.acquire("job", ttl=30)
    assert token is not None
    assert lease.acquire("job", ttl=30) is None
    assert lease.acquire("other-job", ttl=30) is not None
    holder = lease.holder("job")
    assert holder is not None
    assert holder.startswith(f"pid {os.getpid()} on ")
    assert not lease.renew("job", "not-the-token", ttl=30)
    assert not lease.release("job", "not-the-token")
    assert lease.renew("job", token, ttl=30)
    assert lease.release("job", token)
    assert lease.holder("job") is None
    assert lease.acquire("job", ttl=30) is not None


def test_lease_expires_for_a_crashed_holder(db):
    """A lease not renewed expires; the next acquire takes it and the old token is void."""
    lease = db.lease()
    old = lease.acquire("job", ttl=0.2)
    assert old is not None
    time.sleep(0.3)
    assert lease.holder("job") is None
    new = lease.acquire("job", ttl=30)
    assert new is not None
    assert not lease.renew("job", old, ttl=30)
    assert not lease.release("job", old)
    assert lease.holder("job") is not None


def test_lease_renewed_late_is_kept_if_nobody_took_it(db):
    """A holder renewing after its ttl ran out keeps the lease when nobody else took it."""
    lease = db.lease()
    token = lease.acquire("job", ttl=0.1)
    time.sleep(0.2)
    assert lease.renew("job", token, ttl=30)
    assert lease.acquire("job", ttl=30) is None


def test_lease_of_a_dead_local_process_is_taken_over_at_once(db, postgres_url):
    """A lease held by a process of this host that is gone is taken without waiting."""
    code = (
        "import sys; from tokenbudget_keepa.postgres import PostgresLease; "
        "l = PostgresLease(sys.argv[1]); print(l.acquire('job', ttl=3600)); l.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, postgres_url], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() != "None"
    lease = db.lease()
    assert lease.holder("job") is not None
    assert lease.acquire("job", ttl=30) is not None


def test_lease_of_another_host_is_not_taken_over(db):
    """A holder on another host is never judged dead: its lease waits for its expiry."""
    lease = db.lease()
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO tokenbudget_keepa_leases (key, token, host, pid, expires_at, acquired_at) "
            "VALUES ('job', 't', 'elsewhere', 999999999, now() + interval '1 hour', now())"
        )
    assert lease.acquire("job", ttl=30) is None
    assert lease.holder("job").startswith("pid 999999999 on elsewhere")
    assert not HolderProcess(999_999_999, "elsewhere").is_gone()


def test_bad_ttl_is_refused(db):
    """A ttl that is not a positive finite number of seconds is a ValueError naming it."""
    with pytest.raises(ValueError, match="nan"):
        db.lease().acquire("job", ttl=float("nan"))


def test_open_storage_opens_every_part_on_one_migrated_database(postgres_url):
    """--store postgresql://: store, sink, lease and backlog on one pool; the store commits for
    the sink; close() closes the pool."""
    from tokenbudget_keepa._ingestor.storage import open_storage

    storage = open_storage(postgres_url)
    try:
        assert storage.store.covers(storage.sink)
        assert storage.lease.acquire("job", ttl=30) is not None
        assert "PostgreSQL database" in storage.description
    finally:
        storage.close()
    with PostgresDatabase(postgres_url) as db:
        assert db.schema_version() == SCHEMA_VERSION


def test_backlog_keeps_a_sweep_between_runs(db):
    """The ingestor's sweep in progress round-trips through PostgreSQL, per key."""
    from tokenbudget_keepa._client.models.products import Deal
    from tokenbudget_keepa._ingestor.backlog import Sweep

    backlog = db.backlog()
    raw = {"asin": "B000000001", "lastUpdate": 7_000_000, "title": "Kettle"}
    sweep = Sweep(floor=6_999_000, horizon=7_000_010).with_page([Deal.from_raw(raw)], last=True)
    assert backlog.load("job") is None
    backlog.save("job", sweep)
    assert backlog.load("job") == sweep
    backlog.clear("job")
    assert backlog.load("job") is None
