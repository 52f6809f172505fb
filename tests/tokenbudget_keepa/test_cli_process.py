"""The ``tokenbudget-keepa`` command as a process: what reaches stderr, and Ctrl-C at start-up.

These run the command as its console script does (the entry point named in
``pyproject.toml``), in a child process: how the command configures logging
and what an early Ctrl-C prints only show there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tokenbudget_keepa.testing import Fault, KeepaEmulator


CHECKOUT = Path(__file__).resolve().parents[2]
SELECTION = {"domainId": 1, "priceTypes": [1], "dateRange": 0}
SECRET = "sEcReT-cLi-kEy-0123456789"  # noqa: S105 -- a test key, searched for

#: A child that runs the console script's entry point, after installing an import hook that
#: raises KeyboardInterrupt (a Ctrl-C) when the module named in argv[1] is imported.
CHILD = """
import sys

AT = sys.argv[1]

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == AT:
            raise KeyboardInterrupt
        return None

if AT:
    sys.meta_path.insert(0, CtrlC())
module, _, function = sys.argv[2].partition(":")
sys.argv[:3] = ["tokenbudget-keepa"]
entry = getattr(__import__(module, fromlist=[function]), function)
sys.exit(entry())
"""


def entry_point() -> str:
    """The ``tokenbudget-keepa`` entry point, as ``pyproject.toml`` names it."""
    text = (CHECKOUT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^tokenbudget-keepa = "([^"]+)"', text, re.MULTILINE)
    assert found is not None
    return found.group(1)


def command(
    *argv: str, interrupt_at: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command in a child process as its console script does."""
    return subprocess.run(
        [sys.executable, "-c", CHILD, interrupt_at, entry_point(), *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "module", ["tokenbudget_keepa", "tokenbudget", "httpx", "tokenbudget_keepa._cli", "argparse"]
)
def test_ctrl_c_while_importing_prints_one_line_and_exits_130(module: str) -> None:
    """Ctrl-C while the command imports its modules: one line, status 130, no traceback."""
    done = command("status", "--base-url", "http://127.0.0.1:9", interrupt_at=module)
    assert "Traceback" not in done.stderr
    assert done.stderr == "tokenbudget-keepa: interrupted\n"
    assert done.returncode == 130


def test_the_entry_point_runs_the_command() -> None:
    """Without an interruption the entry point is the command (--version)."""
    done = command("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tokenbudget-keepa ")


@pytest.fixture
def failing(make_emulator: Callable[..., KeepaEmulator], tmp_path: Path) -> list[str]:
    """ingest arguments against an emulator whose deal pages are malformed: a run that fails."""
    emulator = make_emulator(api_key=SECRET, refill_per_min=100)
    emulator.inject(*[Fault.malformed_json()] * 20, endpoint="deal")
    query = tmp_path / "query.json"
    query.write_text(json.dumps({"selection": SELECTION, "filters": {}}))
    store = tmp_path / "i.db"
    return [
        "ingest", "--query", str(query), "--store", str(store), "--base-url", emulator.url,
        "--time-budget", "0.9",
    ]  # fmt: skip


def test_a_fatal_error_is_one_line_on_stderr(failing: list[str]) -> None:
    """A run that fails after a retry warning: status 1 and one line; the warning is not shown."""
    done = command(*failing, env={"KEEPA_API_KEY": SECRET})
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tokenbudget-keepa: error: ")


@pytest.mark.parametrize("option", [["-v"], ["--log-level", "WARNING"]])
def test_verbose_shows_the_warnings(failing: list[str], option: list[str]) -> None:
    """-v (or --log-level warning): the run's warnings on stderr, one line each, then the error."""
    done = command(*failing, *option, env={"KEEPA_API_KEY": SECRET})
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("tokenbudget-keepa: WARNING tokenbudget_keepa.") for line in lines)
    assert lines[-1].startswith("tokenbudget-keepa: error: ")


def test_debug_logging_never_shows_the_key(failing: list[str]) -> None:
    """-vv logs every library's DEBUG records on stderr; none holds the key."""
    done = command(*failing, "-vv", env={"KEEPA_API_KEY": SECRET})
    assert done.returncode == 1, done.stderr
    assert " DEBUG " in done.stderr
    assert SECRET not in done.stderr + done.stdout
