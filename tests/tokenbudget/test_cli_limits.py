"""``tokenbudget simulate`` refuses, before simulating, a run too long or a plot it cannot write."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

import tokenbudget
import tokenbudget.sim
from tokenbudget._cli import MAX_WAKEUPS, main
from tokenbudget._install import install_hint


HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="needs matplotlib")


def _never_simulates(*args: object, **kwargs: object) -> None:
    raise AssertionError("simulated: the command should have refused before")


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command, expect exit 2 before simulating, nothing on stdout; the error line."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokenbudget.sim, "simulate", _never_simulates)
        with pytest.raises(SystemExit) as info:
            main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("tokenbudget simulate: error:")]
    return line


def test_huge_hours_refused_with_the_arithmetic(capsys):
    """``--hours 1e9`` exits 2 at once, naming --hours, the wake-ups and the largest accepted."""
    line = refused(["simulate", "--hours", "1e9"], capsys)
    assert "argument --hours: 1e+09 simulated hours" in line
    found = re.search(r"use --hours ([0-9.]+) or less$", line)
    assert found is not None
    assert float(found.group(1)) > 24 * 365  # a year of the default workload still runs


def test_fast_workload_bounded_sooner(capsys):
    """A cheap, fast workload has a lower bound on hours than the default one."""
    line = refused(
        ["simulate", "--rate-per-min", "600", "--item-cost", "1", "--batch", "1", "--hours", "1e4"],
        capsys,
    )
    assert f"{MAX_WAKEUPS:,}" in line
    found = re.search(r"use --hours ([0-9.]+) or less$", line)
    assert found is not None
    assert float(found.group(1)) == pytest.approx(MAX_WAKEUPS / 36000, rel=0.01)


def test_the_incident_for_a_week_is_accepted():
    """A week of the seed incident (all four rows) is well within the bound."""
    import attrs

    from tokenbudget._cli import _INCIDENT, _check_run_length, _config, _rows

    settings = attrs.evolve(_INCIDENT, hours=7 * 24.0)
    config = _config(settings)
    _check_run_length(config, settings, _rows(config, settings))


@needs_matplotlib
def test_plot_into_a_missing_directory_refused_before_simulating(capsys):
    """``--plot /nonexistent/dir/p.png`` exits 2 at once naming the directory."""
    line = refused(["simulate", "--plot", "/nonexistent/dir/p.png"], capsys)
    assert "argument --plot: cannot write '/nonexistent/dir/p.png'" in line
    assert "'/nonexistent/dir' does not exist" in line


@needs_matplotlib
@pytest.mark.parametrize("name", ["p.txt", "plot"])
def test_plot_without_an_image_format_refused_before_simulating(name, tmp_path, capsys):
    """``--plot p.txt`` (or no suffix) exits 2 at once, listing the formats."""
    line = refused(["simulate", "--plot", str(tmp_path / name)], capsys)
    assert "has no image format matplotlib writes: end the name with .png" in line


@needs_matplotlib
def test_plot_onto_a_directory_refused(tmp_path, capsys):
    """``--plot`` naming a directory exits 2."""
    folder = tmp_path / "p.png"
    folder.mkdir()
    line = refused(["simulate", "--plot", str(folder)], capsys)
    assert "it is a directory" in line


def test_plot_hint_installs_from_a_checkout(tmp_path, capsys, monkeypatch):
    """Without matplotlib the hint is the checkout install, never the index's tokenbudget."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    line = refused(["simulate", "--plot", str(tmp_path / "p.png")], capsys)
    assert install_hint("plot") in line
    assert "python -m pip install '.[plot]'" in line


def test_every_install_hint_comes_from_one_place():
    """No source file but ``_install.py`` spells an install command of tokenbudget."""
    src = Path(tokenbudget.__file__).resolve().parent.parent
    command = re.compile(r"pip install\s+['\"]?(tokenbudget|\.)\b|pip install\s+['\"]?\.\[")
    offenders = [
        str(path.relative_to(src))
        for path in sorted(src.rglob("*.py"))
        if path.name != "_install.py" and command.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
