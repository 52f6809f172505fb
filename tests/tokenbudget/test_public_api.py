"""The public surface: ``__all__``, ``__version__``, docstrings, the error tree."""

from __future__ import annotations

import importlib.metadata
import inspect
import pickle

import pytest

import tokenbudget
from tokenbudget import exceptions


#: The names SPEC §4 pins, plus the extras the core deliberately exports.
INTENDED = {
    # SPEC §4
    "AcquireTimeout",
    "AdaptiveBatchSizer",
    "AsyncTokenBucket",
    "BucketConfig",
    "Clock",
    "CostExceedsCapacity",
    "DeficitRule",
    "ManualClock",
    "MemoryBackend",
    "MonotonicClock",
    "Rate",
    "Reservation",
    "SQLiteBackend",
    "Snapshot",
    "TokenBucket",
    "TokenBudgetError",
    "__version__",
    # extras
    "AsyncReservation",
    "Backend",
    "BackendError",
    "Event",
    "ReservationError",
    "WallClock",
}

PUBLIC_OBJECTS = sorted(set(tokenbudget.__all__) - {"__version__"})


def test_all_is_exactly_the_public_names():
    """tokenbudget.__all__ lists exactly the intended public names."""
    assert set(tokenbudget.__all__) == INTENDED
    assert len(tokenbudget.__all__) == len(INTENDED)


def test_all_is_sorted():
    """__all__ is sorted."""
    assert tokenbudget.__all__ == sorted(tokenbudget.__all__)


@pytest.mark.parametrize("name", tokenbudget.__all__)
def test_each_name_importable(name):
    """Every name in __all__ is importable from tokenbudget."""
    namespace: dict[str, object] = {}
    exec(f"from tokenbudget import {name}", namespace)  # noqa: S102 -- the import is the test
    assert namespace[name] is not None


@pytest.mark.parametrize("name", PUBLIC_OBJECTS)
def test_each_public_object_has_a_docstring(name):
    """Every public class and function has its own docstring."""
    obj = getattr(tokenbudget, name)
    assert inspect.getdoc(obj)
    assert obj.__doc__
    assert obj.__doc__.strip()


def test_version_matches_metadata():
    """__version__ is the installed distribution's version."""
    assert tokenbudget.__version__ == importlib.metadata.version("tokenbudget")


def test_unknown_attribute():
    """An unknown attribute raises AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = tokenbudget.no_such_name  # type: ignore[attr-defined]


def test_cost_exceeds_capacity_is_a_value_error():
    """CostExceedsCapacity is a TokenBudgetError and a ValueError."""
    assert issubclass(tokenbudget.CostExceedsCapacity, tokenbudget.TokenBudgetError)
    assert issubclass(tokenbudget.CostExceedsCapacity, ValueError)


def test_error_tree():
    """Every error subclasses TokenBudgetError and the builtin whose meaning matches."""
    assert issubclass(exceptions.AcquireTimeout, TimeoutError)
    assert issubclass(exceptions.ReservationError, RuntimeError)
    assert issubclass(exceptions.BackendError, ConnectionError)
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), exceptions.TokenBudgetError)


@pytest.mark.parametrize(
    "error",
    [
        exceptions.TokenBudgetError("boom"),
        exceptions.CostExceedsCapacity(301.0, 299.0),
        exceptions.AcquireTimeout(100.0, 732.0, 10.0),
        exceptions.ReservationError("cancelled"),
        exceptions.BackendError("redis", "connection refused"),
    ],
    ids=type,
)
def test_exceptions_pickle(error):
    """Every error survives pickling with its message and attributes."""
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 -- our own data
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert vars(clone) == vars(error)
