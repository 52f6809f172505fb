"""The ``tokenbudget`` command, end to end: ``python -m tokenbudget simulate``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tokenbudget import __version__
from tokenbudget._cli import main


ITEMS_PER_HOUR = 5 * 60 / 5  # the incident's refill / item cost
ROW_KEYS = {"batch", "strategy", "items", "items_per_hour", "utilization", "longest_stall_s"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenbudget", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def simulate_json(*args: str) -> dict:
    result = run("simulate", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def row(document: dict, strategy: str, batch: int | str) -> dict:
    (found,) = [r for r in document["rows"] if r["strategy"] == strategy and r["batch"] == batch]
    return found


def within(value: float, expected: float, rel: float = 0.02) -> bool:
    return abs(value - expected) <= rel * expected


@pytest.fixture(scope="module")
def incident() -> dict:
    return simulate_json()


def test_no_options_replays_the_incident(incident):
    """``tokenbudget simulate`` alone is the incident: poll and book, batch 20 and auto."""
    assert incident["incident"] is True
    assert incident["config"] == {
        "rate_per_min": 5.0,
        "capacity": 300.0,
        "burst": 40.0,
        "min": 1.0,
        "deficit": "none",
        "max_cost": 299.0,
    }
    assert [(r["strategy"], r["batch"]) for r in incident["rows"]] == [
        ("poll", 20),
        ("poll", "auto"),
        ("book", 20),
        ("book", "auto"),
    ]
    for r in incident["rows"]:
        assert ROW_KEYS | {"idle_wakeups"} <= r.keys()
        assert [c["name"] for c in r["consumers"]] == ["ingestor", "small"]


def test_incident_poll_consumer_starves(incident):
    """The 20-item poll ingestor processes nothing in 24 h, waking every minute for nothing."""
    starved = row(incident, "poll", 20)

    assert starved["items"] == 0
    assert starved["items_per_hour"] == 0
    assert starved["longest_stall_s"] == 24 * 3600
    assert starved["idle_wakeups"] == 24 * 60 + 1
    small = starved["consumers"][1]
    assert within(small["items_per_hour"], ITEMS_PER_HOUR)


@pytest.mark.parametrize("batch", [20, "auto"])
def test_incident_book_progresses_every_cycle(incident, batch):
    """Booked, the same workload gives every consumer items every cycle at the refill's rate."""
    booked = row(incident, "book", batch)
    cycle_tokens = (20 if batch == 20 else 7) * 5 + 5 + 1

    for consumer in booked["consumers"]:
        assert consumer["items"] > 0
        assert consumer["longest_stall_s"] <= cycle_tokens * 12 + 1e-6  # 12 s a token
    assert within(booked["total"]["items_per_hour"], ITEMS_PER_HOUR)


def test_incident_auto_unblocks_the_poll_ingestor(incident):
    """Auto-sized batches (7 items) make even the poll ingestor progress every cycle."""
    sized = row(incident, "poll", "auto")

    assert within(sized["items_per_hour"], ITEMS_PER_HOUR)
    assert sized["mean_batch"] == 7
    assert sized["longest_stall_s"] <= 8 * 60


def test_batches_5_and_20_under_book_give_the_same_rate():
    """The documented command: batches of 5 and 20 booked give 60 items/h; 20 stalls longer."""
    document = simulate_json("--strategy", "book", "--batch", "5", "--batch", "20")
    five, twenty = row(document, "book", 5), row(document, "book", 20)

    assert document["incident"] is False
    assert within(five["items_per_hour"], ITEMS_PER_HOUR)
    assert within(twenty["items_per_hour"], ITEMS_PER_HOUR)
    assert twenty["longest_stall_s"] > 2 * five["longest_stall_s"]


def test_competing_consumer_option():
    """--consumer adds a competitor; its strategy follows the row's unless given."""
    document = simulate_json(
        "--batch",
        "5",
        "--strategy",
        "book",
        "--consumer",
        "batch=2,item-cost=3",
        "--consumer",
        "name=poller,batch=1,strategy=poll,tick=120",
        "--hours",
        "6",
    )
    (only,) = document["rows"]
    names = [(c["name"], c["strategy"], c["batch"]) for c in only["consumers"]]

    assert names == [("ingestor", "book", 5), ("c2", "book", 2), ("poller", "poll", 1)]
    assert only["total"]["utilization"] > 0.9


def test_table_tells_the_story():
    """The default output is a short table with a verdict per row."""
    result = run("simulate")
    out = result.stdout

    assert result.returncode == 0
    assert "The seed incident, replayed" in out
    assert "poll / batch 20: the ingestor got nothing in 24 h" in out
    assert "livelock" in out
    assert "book / batch auto: every consumer progresses every cycle" in out
    assert "60 items/h" in out
    assert len(out.splitlines()) <= 20
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_drawn_costs_and_seed_are_reproducible():
    """LOW..HIGH item costs are drawn from --seed: the same seed gives the same rows."""
    args = ("--item-cost", "3..8", "--batch", "auto", "--seed", "3", "--hours", "6")

    assert simulate_json(*args) == simulate_json(*args)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--rate-per-min", "-5"], "--rate-per-min"),
        (["--rate-per-min", "0"], "--rate-per-min"),
        (["--capacity", "nan"], "--capacity"),
        (["--burst", "400"], "--burst"),
        (["--min", "50"], "--min"),
        (["--item-cost", "300"], "--item-cost"),
        (["--item-cost", "8..3"], "--item-cost"),
        (["--batch", "60"], "--batch"),
        (["--batch", "0"], "--batch"),
        (["--deficit", "sometimes"], "--deficit"),
        (["--deficit", "while-positive", "--min", "0"], "--deficit"),
        (["--tokens", "301"], "--tokens"),
        (["--hours", "-1"], "--hours"),
        (["--tick", "-60"], "--tick"),
        (["--consumer", "item-cost=400"], "--consumer"),
        (["--consumer", "colour=red"], "--consumer"),
        (["--consumer", "name=ingestor"], "--consumer"),
        (["--strategy", "hope"], "--strategy"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args, option, capsys):
    """Impossible options exit with status 2 and a message that names the option."""
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *args])

    assert exc.value.code == 2
    assert f"argument {option}:" in capsys.readouterr().err


def test_bad_option_end_to_end():
    """The same through the installed entry point: exit 2, the option named, nothing on stdout."""
    result = run("simulate", "--item-cost", "300")

    assert result.returncode == 2
    assert "argument --item-cost:" in result.stderr
    assert "299" in result.stderr
    assert result.stdout == ""


HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_plot_without_matplotlib_exits_2(tmp_path: Path, capsys, monkeypatch):
    """--plot without matplotlib stops before simulating, naming --plot and what to install."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    target = tmp_path / "balance.png"
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--plot", str(target)])

    assert exc.value.code == 2
    assert "argument --plot:" in capsys.readouterr().err
    assert not target.exists()


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="needs matplotlib")
def test_plot_draws_a_png(tmp_path: Path):
    """--plot FILE.png draws the balance of every row."""
    target = tmp_path / "balance.png"
    result = run("simulate", "--hours", "2", "--plot", str(target))

    assert result.returncode == 0, result.stderr
    assert target.read_bytes().startswith(b"\x89PNG")


def test_help_and_version():
    """--help describes simulate; --version prints the package version."""
    helped = run("simulate", "--help")
    version = run("--version")

    assert helped.returncode == 0
    assert "--rate-per-min" in helped.stdout
    assert "replays the seed incident" in helped.stdout.replace("\n", " ")
    assert version.returncode == 0
    assert version.stdout.strip() == f"tokenbudget {__version__}"


def test_no_command_prints_help_and_exits_2(capsys):
    """``tokenbudget`` alone shows the commands."""
    assert main([]) == 2
    assert "simulate" in capsys.readouterr().out
