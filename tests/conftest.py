"""Shared fixtures and the hypothesis profiles (``ci`` when ``CI`` is set)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings


settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=20, deadline=None)
#: The other Pythons in nox: the same tests, a lighter search (the hard one, ``ci``, runs once).
settings.register_profile("compat", max_examples=20, deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)


#: The longest test files, longest first (the shared-account days: minutes of wall clock,
#: mostly asleep on their simulated clock), collected first: nox runs the heavy tests in two
#: workers that share them out as they go (``--dist worksteal``), the first worker starting
#: with these while the other takes the rest.
LONGEST_FIRST = ("test_shared_account_day.py", "test_shared_account_ingest_day.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first; skip the ``heavy`` tests when ``TOKENBUDGET_SKIP_HEAVY`` is set.

    (``TOKENBUDGET_SKIP_HEAVY``: the other Pythons in nox.)
    """
    first = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))  # stable: the rest in order
    if not os.environ.get("TOKENBUDGET_SKIP_HEAVY"):
        return
    skip = pytest.mark.skip(
        reason="multi-process and wall-clock-timed tests run on the noxfile's default Python "
        "only (TOKENBUDGET_SKIP_HEAVY is set)"
    )
    for item in items:
        if item.get_closest_marker("heavy") is not None:
            item.add_marker(skip)
