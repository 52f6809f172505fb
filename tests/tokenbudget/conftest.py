"""Fixtures of the backend tests: a real Redis server, or a clear skip (never in CI)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_url() -> str:
    """Where the Redis tests run: ``TOKENBUDGET_REDIS_URL``, else local DB 15."""
    return os.environ.get("TOKENBUDGET_REDIS_URL") or DEFAULT_REDIS_URL


def _shown(url: str) -> str:
    """The URL without its credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redis_required() -> bool:
    """In CI (or when asked) a missing Redis fails the tests instead of skipping them."""
    return bool(os.environ.get("CI") or os.environ.get("TOKENBUDGET_REQUIRE_REDIS"))


_checked: dict[str, str | None] = {}


def _redis_problem(url: str) -> str | None:
    if url not in _checked:
        try:
            import redis
        except ImportError:  # pragma: no cover
            _checked[url] = "redis-py is not installed (python -m pip install '.[redis]')"
            return _checked[url]
        client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        try:
            client.ping()
        except redis.RedisError as exc:
            _checked[url] = f"{type(exc).__name__}: {exc}"
        else:
            _checked[url] = None
        finally:
            client.close()
    return _checked[url]


@pytest.fixture
def redis_server() -> str:
    """The URL of a Redis server that answers; skip (or fail in CI) when none does."""
    url = redis_url()
    problem = _redis_problem(url)
    if problem is not None:
        message = (
            f"no Redis server answers at {_shown(url)} ({problem}); start one or point "
            "TOKENBUDGET_REDIS_URL at one"
        )
        if redis_required():
            pytest.fail(f"{message} -- required because CI or TOKENBUDGET_REQUIRE_REDIS is set")
        pytest.skip(message)
    return url


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (and only they)."""
    import redis

    prefix = f"tokenbudget-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[object]:
    """A sync ``redis.Redis`` on the test server."""
    import redis

    client = redis.Redis.from_url(redis_server)
    yield client
    client.close()
