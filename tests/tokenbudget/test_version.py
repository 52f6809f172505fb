"""``__version__`` and ``--version`` also from a source tree that is not installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tokenbudget
from tokenbudget._version import UNKNOWN_VERSION


SRC = Path(tokenbudget.__file__).resolve().parent.parent
CHECKOUT = SRC.parent


def _origin(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin)


@pytest.fixture(scope="module")
def runtime_deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only tokenbudget's runtime dependencies (attrs, typing-extensions)."""
    deps = tmp_path_factory.mktemp("deps")
    for package in ("attr", "attrs"):
        shutil.copytree(_origin(package).parent, deps / package)
    shutil.copy(_origin("typing_extensions"), deps)
    return deps


def uninstalled(code: list[str], *paths: Path) -> subprocess.CompletedProcess[str]:
    """Run Python with no site-packages (so no tokenbudget distribution) and only *paths*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join(map(str, paths))
    return subprocess.run(
        [sys.executable, "-S", *code],
        capture_output=True,
        text=True,
        env=env,
        cwd=paths[0],
        timeout=60,
        check=False,
    )


def checkout_version() -> str:
    text = (CHECKOUT / "pyproject.toml").read_text()
    line = next(x for x in text.splitlines() if x.startswith("version = "))
    return line.split('"')[1]


def test_version_is_a_string_attribute():
    """``hasattr(tokenbudget, "__version__")`` is True and the value a non-empty string."""
    assert hasattr(tokenbudget, "__version__")
    assert isinstance(tokenbudget.__version__, str)
    assert tokenbudget.__version__


@pytest.mark.skipif(
    not (CHECKOUT / "pyproject.toml").is_file(), reason="runs from a checkout's src/ only"
)
def test_source_tree_version_without_the_distribution(runtime_deps: Path):
    """From a checkout's ``src/`` with no distribution installed, the pyproject version + source."""
    code = "import importlib.metadata as m, tokenbudget as t; print(t.__version__)"
    probe = "import importlib.metadata as m; m.version('tokenbudget')"
    absent = uninstalled(["-c", probe], SRC, runtime_deps)
    assert "PackageNotFoundError" in absent.stderr  # the interpreter really lacks the dist
    result = uninstalled(["-c", code], SRC, runtime_deps)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{checkout_version()}+source"


@pytest.mark.skipif(
    not (CHECKOUT / "pyproject.toml").is_file(), reason="runs from a checkout's src/ only"
)
def test_module_version_option_from_a_source_tree(runtime_deps: Path):
    """``python -m tokenbudget --version`` works from a source tree that is not installed."""
    result = uninstalled(["-m", "tokenbudget", "--version"], SRC, runtime_deps)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tokenbudget {checkout_version()}+source"


def test_unknown_version_outside_a_checkout(tmp_path: Path, runtime_deps: Path):
    """A copy of the package with neither metadata nor pyproject reports the unknown version."""
    shutil.copytree(SRC / "tokenbudget", tmp_path / "lib" / "tokenbudget")
    code = "import tokenbudget; print(tokenbudget.__version__)"
    result = uninstalled(["-c", code], tmp_path / "lib", runtime_deps)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == UNKNOWN_VERSION


def test_installed_version_wins():
    """Installed, ``__version__`` is the distribution's metadata version."""
    assert tokenbudget.__version__ == importlib.metadata.version("tokenbudget")


def test_checkout_version_is_read_from_the_project_table_only():
    """The fallback reads ``[project]``'s version of tokenbudget, not another table's or project's."""
    from tokenbudget._version import _project_version

    ours = '[project]\nname = "tokenbudget"\nkeywords = ["a", "b"]\nversion = "1.2"\n[tool.x]\nversion = "9"\n'
    assert _project_version(ours) == "1.2"
    assert _project_version(ours.replace('"tokenbudget"', '"other"')) is None
    assert _project_version('[tool.x]\nname = "tokenbudget"\nversion = "9"\n') is None
