"""The version of tokenbudget, also when it runs from a source tree that is not installed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final


__all__ = ["UNKNOWN_VERSION", "version"]

#: The answer when neither the installed metadata nor the checkout's pyproject.toml says.
UNKNOWN_VERSION: Final = "0+unknown"

_VERSION_LINE: Final = re.compile(r'^version\s*=\s*"([^"]+)"\s*(#.*)?$')


def _project_version(text: str) -> str | None:
    """The ``version`` of the ``[project]`` table of a ``pyproject.toml`` text, if it is ours."""
    table = None
    name = version = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and not line.startswith((" ", "\t")):
            table = stripped
            continue
        if table != "[project]":
            continue
        if stripped.replace(" ", "") == 'name="tokenbudget"':
            name = "tokenbudget"
        found = _VERSION_LINE.match(stripped)
        if found is not None:
            version = found.group(1)
    return version if name == "tokenbudget" else None


def _from_checkout() -> str | None:
    """The version in ``pyproject.toml`` when this package sits in a checkout's ``src/``."""
    pyproject = Path(__file__).resolve().parent.parent.parent / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = _project_version(text)
    return None if found is None else f"{found}+source"


def version() -> str:
    """The installed distribution's version.

    Imported from a source tree without being installed (``PYTHONPATH=src``),
    it is the checkout's ``pyproject.toml`` version with a ``+source`` local
    label, else :data:`UNKNOWN_VERSION`: never an exception.
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("tokenbudget")
    except PackageNotFoundError:
        return _from_checkout() or UNKNOWN_VERSION
