"""Fixtures of the deployment tests: real PostgreSQL and Redis servers, or a clear skip.

PostgreSQL: one fresh database per test run (dropped after), one schema per
test (``search_path``), so tests never see each other's tables. In CI (or with
``TOKENBUDGET_REQUIRE_POSTGRES``) a missing server fails instead of skipping.
"""

from __future__ import annotations

import gc
import os
import uuid
import warnings
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests._log_audit import audit_fixture
from tests.tokenbudget.conftest import redis_client, redis_prefix, redis_server


__all__ = ["redis_client", "redis_prefix", "redis_server"]

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: The keys the deployment tests give their emulators and clients.
KEYS = ("test-key", "s3cret-key", "wrong-key")


@pytest.fixture(autouse=True)
def _celery_garbage_collected_here() -> Iterator[None]:
    """Collect the garbage a deployment test leaves, where it is made, not in a later test.

    The Celery app that sends tasks and reads their results in the test's own
    process (``tests.deploy._workers.sender``) leaves a connection to the broker
    in a reference cycle although it is closed: its socket's ``ResourceWarning``
    came out of whichever test the collector next ran in (the heavy phase runs
    two workers, and a simulated day failed on it). Collected here, that warning
    is ignored; any other warning still fails the test.
    """
    yield
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"unclosed <socket\.socket", ResourceWarning)
        gc.collect()


@pytest.fixture
def api_keys() -> list[str]:
    """The keys searched for in every log record: :data:`KEYS` and those a test adds."""
    return list(KEYS)


@pytest.fixture(autouse=True)
def _every_logger_at_debug_and_no_key(api_keys: list[str]) -> Iterator[None]:
    """Every logger at DEBUG; no record may hold a key (see :mod:`tests._log_audit`).

    ``TOKENBUDGET_LOG_AUDIT=0`` turns the audit off.
    """
    if os.environ.get("TOKENBUDGET_LOG_AUDIT", "1") == "0":
        yield
        return
    yield from audit_fixture(api_keys)


def postgres_admin_url() -> str:
    """A database to create the test database from: ``TOKENBUDGET_POSTGRES_URL`` or local."""
    return os.environ.get("TOKENBUDGET_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def postgres_required() -> bool:
    """In CI (or when asked) a missing PostgreSQL fails the tests instead of skipping them."""
    return bool(os.environ.get("CI") or os.environ.get("TOKENBUDGET_REQUIRE_POSTGRES"))


def _with_db(url: str, dbname: str) -> str:
    base, _, _query = url.partition("?")
    scheme_host = base.rsplit("/", 1)[0]
    return f"{scheme_host}/{dbname}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a fresh database of this test run on a server that answers (dropped after)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        problem: str | None = "psycopg is not installed (python -m pip install '.[postgres]')"
    else:
        problem = None
    admin = postgres_admin_url()
    if problem is None:
        try:
            conn = psycopg.connect(admin, connect_timeout=2, autocommit=True)
        except psycopg.Error as exc:
            problem = " ".join(str(exc).split())
    if problem is not None:
        message = (
            f"no PostgreSQL server answers at {admin.split('@')[-1]} ({problem}); start one or "
            "point TOKENBUDGET_POSTGRES_URL at one"
        )
        if postgres_required():
            pytest.fail(f"{message} -- required because CI or TOKENBUDGET_REQUIRE_POSTGRES is set")
        pytest.skip(message)
    name = f"tokenbudget_test_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield _with_db(admin, name)
    finally:
        with psycopg.connect(admin, connect_timeout=2, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """A connection URL on this test's own (empty) schema of the test database."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
    return f"{postgres_database}?options={quote(f'-csearch_path={schema}')}"
