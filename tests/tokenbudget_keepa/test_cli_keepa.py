"""The ``tokenbudget-keepa`` command: demo, ingest, status, watermark; exit statuses 0, 1, 2."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tokenbudget_keepa import SQLiteLease
from tokenbudget_keepa._cli import main
from tokenbudget_keepa.testing import KeepaEmulator


SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}


@pytest.fixture
def emulator(make_emulator: Callable[..., KeepaEmulator]) -> KeepaEmulator:
    """An emulator with tokens to spare (its clock does not move: no refill needed)."""
    return make_emulator(refill_per_min=100, history_minutes=120)


@pytest.fixture
def query(tmp_path: Path) -> Callable[..., Path]:
    """Write a query file."""

    def write(document: Any) -> Path:
        path = tmp_path / "query.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        return path

    return write


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's key in KEEPA_API_KEY."""
    monkeypatch.setenv("KEEPA_API_KEY", "test-key")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command in-process: (status, stdout, stderr)."""
    try:
        status = main(list(argv))
    except SystemExit as e:
        status = int(e.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def ingest(emulator: KeepaEmulator, query: Path, store: Path, *more: str) -> list[str]:
    return [
        "ingest", "--query", str(query), "--store", str(store), "--base-url", emulator.url, *more,
    ]  # fmt: skip


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """--help names demo, ingest, status and watermark, and the exit statuses."""
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for command in ("demo", "ingest", "status", "watermark"):
        assert command in out
    assert "Exit status" in out


def test_version_through_python_m() -> None:
    """python -m tokenbudget_keepa --version prints the version."""
    done = subprocess.run(
        [sys.executable, "-m", "tokenbudget_keepa", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("tokenbudget-keepa ")


def test_no_command_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command: the help on stderr and status 2."""
    status, _, err = run(capsys)
    assert status == 2
    assert "usage" in err


def test_ingest_stores_deals_and_prints_the_report_as_json(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """ingest --json: one JSON object; the deals are in the file's deals table."""
    store = tmp_path / "ingest.db"
    status, out, _ = run(
        capsys, *ingest(emulator, query({"selection": SELECTION, "filters": {}}), store, "--json")
    )
    assert status == 0
    report = json.loads(out)
    assert report["stopped"] == "caught_up"
    assert report["watermark_before"] is None
    assert set(report["watermark_after"]) == {"minute", "asin"}
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT count(*) FROM deals").fetchone()[0]
    conn.close()
    assert rows == report["accepted"] > 0


def test_a_second_ingest_goes_on_from_the_watermark(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A second run starts at the first one's watermark."""
    store = tmp_path / "ingest.db"
    args = ingest(emulator, query({"selection": SELECTION, "filters": {}}), store, "--json")
    first = json.loads(run(capsys, *args)[1])
    second = json.loads(run(capsys, *args)[1])
    assert second["watermark_before"] == first["watermark_after"]


def test_ingest_prints_a_readable_report(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """Without --json: counts, reasons, tokens, watermarks and why it stopped."""
    document = {"selection": SELECTION, "filters": {"sales_rank": {"max": 100_000}}}
    status, out, _ = run(capsys, *ingest(emulator, query(document), tmp_path / "i.db"))
    assert status == 0
    assert "deals seen" in out
    assert "watermark" in out
    assert "stopped: caught_up" in out


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("{not json", "not JSON"),
        ([1, 2], "JSON object"),
        ({"filters": {}}, "'selection'"),
        ({"selection": SELECTION, "extra": 1}, "'extra'"),
        ({"selection": {"priceTypes": ["4"]}}, "selection"),
        ({"selection": SELECTION, "enrich": {"offerz": 20}}, "'offerz'"),
        ({"selection": SELECTION, "enrich": {"offers": 5}}, "offers"),
        ({"selection": SELECTION, "filters": {"no_such_filter": {}}}, "no_such_filter"),
    ],
)
def test_a_bad_query_file_is_bad_input(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    document: Any,
    named: str,
) -> None:
    """A malformed query file: status 2, one line naming what is wrong."""
    status, _, err = run(capsys, *ingest(emulator, query(document), tmp_path / "i.db"))
    assert status == 2
    assert named in err
    assert len(err.strip().splitlines()) <= 2 + err.count("usage")  # usage line + the error


def test_a_missing_query_file_is_bad_input(
    capsys: pytest.CaptureFixture[str], emulator: KeepaEmulator, tmp_path: Path
) -> None:
    """A query file that does not exist: status 2 naming it."""
    status, _, err = run(capsys, *ingest(emulator, tmp_path / "nope.json", tmp_path / "i.db"))
    assert status == 2
    assert "nope.json" in err


def test_a_missing_key_is_bad_input(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without KEEPA_API_KEY: status 2 naming the variable."""
    monkeypatch.delenv("KEEPA_API_KEY")
    status, _, err = run(capsys, *ingest(emulator, query({"selection": SELECTION}), tmp_path / "i"))
    assert status == 2
    assert "KEEPA_API_KEY" in err


def test_a_refused_key_is_a_fatal_error_in_one_line(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key Keepa refuses: status 1, one line, and the key appears nowhere."""
    monkeypatch.setenv("KEEPA_API_KEY", "wrong-secret-key")
    status, out, err = run(
        capsys, *ingest(emulator, query({"selection": SELECTION}), tmp_path / "i.db")
    )
    assert status == 1
    assert len(err.strip().splitlines()) == 1
    assert "KeepaAuthError" in err
    assert "wrong-secret-key" not in out + err


def test_an_unknown_store_scheme_is_bad_input(
    capsys: pytest.CaptureFixture[str], emulator: KeepaEmulator, query: Callable[..., Path]
) -> None:
    """--store ftp://... : status 2 naming the scheme."""
    args = ingest(emulator, query({"selection": SELECTION}), Path("x"))
    args[args.index("--store") + 1] = "ftp://host/db"
    status, _, err = run(capsys, *args)
    assert status == 2
    assert "ftp://" in err


def test_a_foreign_database_is_refused_at_start(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A file with a deals table tokenbudget did not create: status 2 before any request."""
    store = tmp_path / "foreign.db"
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE deals (id INTEGER)")
    conn.close()
    status, _, err = run(capsys, *ingest(emulator, query({"selection": SELECTION}), store))
    assert status == 2
    assert "deals" in err
    assert emulator.stats().total_requests == 0


def test_a_held_lease_is_a_normal_stop(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """When another run holds the job's lease: status 0, and stderr says who holds it."""
    store = tmp_path / "ingest.db"
    document = {"selection": SELECTION, "filters": {}, "key": "job"}
    lease = SQLiteLease(store)
    token = lease.acquire("job", ttl=600)
    try:
        status, out, err = run(capsys, *ingest(emulator, query(document), store, "--json"))
    finally:
        assert token is not None
        lease.release("job", token)
        lease.close()
    assert status == 0
    assert json.loads(out)["stopped"] == "lease_held"
    assert "held by" in err


def test_status_prints_the_token_status(
    capsys: pytest.CaptureFixture[str], emulator: KeepaEmulator
) -> None:
    """status --json: the balance and the refill, without spending a token."""
    status, out, _ = run(capsys, "status", "--base-url", emulator.url, "--json")
    assert status == 0
    document = json.loads(out)
    assert document["refill_rate"] == 100
    assert emulator.stats().tokens_consumed == 0


def test_watermark_show_and_reset(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """watermark show --json maps each key to its watermark; reset forgets it."""
    store = tmp_path / "ingest.db"
    document = {"selection": SELECTION, "filters": {}, "key": "job"}
    run(capsys, *ingest(emulator, query(document), store))
    status, out, _ = run(capsys, "watermark", "show", "--store", str(store), "--json")
    assert status == 0
    shown = json.loads(out)
    assert set(shown) == {"job"}
    assert set(shown["job"]) == {"minute", "asin"}
    assert run(capsys, "watermark", "reset", "--store", str(store), "--key", "job")[0] == 0
    status, out, _ = run(capsys, "watermark", "show", "--store", str(store), "--json")
    assert json.loads(out) == {}


def test_watermark_show_of_a_missing_file_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """watermark show on a file that does not exist: status 2 naming it."""
    status, _, err = run(capsys, "watermark", "show", "--store", str(tmp_path / "none.db"))
    assert status == 2
    assert "none.db" in err


def test_demo_runs_with_nothing_configured(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo: emulator, ingestor, SQLite file, report; no 429, deals stored."""
    monkeypatch.delenv("KEEPA_API_KEY")
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys, "demo", "--hours", "1", "--json")
    assert status == 0
    document = json.loads(out)
    assert document["demo"]["throttled"] == 0
    assert document["accepted"] > 0
    assert (tmp_path / "tokenbudget-keepa-demo.sqlite").exists()


def test_a_time_budget_ends_the_run_before_a_long_wait(
    capsys: pytest.CaptureFixture[str],
    make_emulator: Callable[..., KeepaEmulator],
    query: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """ingest --time-budget on an account in debt: a normal stop (0) that spent nothing."""
    drained = make_emulator(refill_per_min=5, tokens=-100)
    document = {"selection": SELECTION, "filters": {}}
    args = ingest(drained, query(document), tmp_path / "i.db", "--time-budget", "5", "--json")
    status, out, _ = run(capsys, *args)
    assert status == 0
    report = json.loads(out)
    assert report["stopped"] == "time_budget"
    assert report["tokens_spent"] == 0


def test_a_query_file_not_in_utf8_is_bad_input(
    capsys: pytest.CaptureFixture[str], emulator: KeepaEmulator, tmp_path: Path
) -> None:
    """A query file that is not UTF-8: status 2, one line naming --query."""
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"selection": {"title": "caf\xe9"}}')
    status, _, err = run(capsys, *ingest(emulator, path, tmp_path / "i.db"))
    assert status == 2
    assert "--query" in err
    assert "UTF-8" in err


def test_a_refused_key_with_json_prints_the_report(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused key with --json: status 1, the report on stdout, one line on stderr."""
    monkeypatch.setenv("KEEPA_API_KEY", "wrong-secret-key")
    args = ingest(emulator, query({"selection": SELECTION}), tmp_path / "i.db", "--json")
    status, out, err = run(capsys, *args)
    assert status == 1
    assert json.loads(out)["stopped"] == "fatal_error"
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("option", "url"),
    [
        ("--store", "postgresql://app:Hunter2pw@127.0.0.1:1/deals"),
        ("--bucket", "redis://:Hunter2pw@127.0.0.1:1/0"),
        ("--bucket", "redis://:Hunter2pw@127.0.0.1:1/x"),
    ],
)
def test_a_url_password_never_appears_in_messages(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    option: str,
    url: str,
) -> None:
    """A --store or --bucket URL that fails: its password is shown as *** in every message."""
    args = ingest(emulator, query({"selection": SELECTION}), tmp_path / "i.db")
    if option == "--store":
        args[args.index("--store") + 1] = url
    else:
        args += ["--bucket", url]
    status, out, err = run(capsys, *args)
    assert status in {1, 2}
    assert "Hunter2pw" not in out + err


def test_reset_on_a_missing_file_is_bad_input_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """watermark reset on a file that does not exist: status 2, and no file is created."""
    path = tmp_path / "new.db"
    status, _, err = run(capsys, "watermark", "reset", "--store", str(path))
    assert status == 2
    assert "new.db" in err
    assert not path.exists()


def test_a_missing_key_creates_no_store_file(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ingest without KEEPA_API_KEY exits 2 before creating the --store file."""
    monkeypatch.delenv("KEEPA_API_KEY")
    path = tmp_path / "new.db"
    status, _, _ = run(capsys, *ingest(emulator, query({"selection": SELECTION}), path))
    assert status == 2
    assert not path.exists()


def test_a_selection_of_another_domain_is_bad_input(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A selection whose domainId is not --domain: status 2 naming both."""
    args = ingest(emulator, query({"selection": SELECTION}), tmp_path / "i.db", "--domain", "3")
    status, _, err = run(capsys, *args)
    assert status == 2
    assert "domainId 1" in err
    assert "domain 3" in err


@pytest.mark.parametrize(
    ("enrich", "named"),
    [
        ({"stats": "90"}, "stats"),
        ({"stats": 0}, "stats"),
        ({"history": "yes"}, "history"),
        ({"days": 1.5}, "days"),
        ({"update": -2}, "update"),
    ],
)
def test_a_bad_enrich_value_is_bad_input_before_anything_is_spent(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    enrich: dict[str, Any],
    named: str,
) -> None:
    """A bad stats/history/... in enrich: status 2 naming it; no request, no store file."""
    store = tmp_path / "i.db"
    document = {"selection": SELECTION, "filters": {}, "enrich": enrich}
    status, _, err = run(capsys, *ingest(emulator, query(document), store))
    assert status == 2, err
    assert f"enrich: {named}" in err
    assert len(err.strip().splitlines()) == 1
    assert emulator.stats().total_requests == 0
    assert not store.exists()


@pytest.mark.parametrize("depth", [33, 50_000])
def test_a_query_file_nested_too_deeply_is_bad_input(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    depth: int,
) -> None:
    """A query file nested deeper than 32 levels (50,000: past Python's recursion): status 2."""
    nested = "[" * depth + "]" * depth
    status, _, err = run(
        capsys, *ingest(emulator, query('{"selection": {"x": ' + nested + "}}"), tmp_path / "i")
    )
    assert status == 2, err
    assert "nested more than 32 levels" in err
    assert emulator.stats().total_requests == 0


@pytest.mark.parametrize("database", ["abc", "-1", "0x1"])
def test_a_bucket_url_whose_database_is_not_a_number_is_bad_input(
    capsys: pytest.CaptureFixture[str],
    emulator: KeepaEmulator,
    query: Callable[..., Path],
    tmp_path: Path,
    database: str,
) -> None:
    """--bucket redis://host/abc: status 2 naming the database, not database 0 silently."""
    pytest.importorskip("redis")
    store = tmp_path / "i.db"
    args = ingest(emulator, query({"selection": SELECTION}), store)
    args += ["--bucket", f"redis://127.0.0.1:6379/{database}"]
    status, _, err = run(capsys, *args)
    assert status == 2, err
    assert f"got {database!r}" in err
    assert emulator.stats().total_requests == 0
    assert not store.exists()
