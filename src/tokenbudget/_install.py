"""How to install tokenbudget's extras: the one place every hint in the code comes from.

The name ``tokenbudget`` on the package index belongs, for now, to an unrelated
project, so ``pip install 'tokenbudget[redis]'`` would install the wrong
library. Until the name is ours, every hint installs an extra from a checkout
(or a wheel built from one). When it is ours, change :data:`INSTALL_EXTRA`
here and nothing else.
"""

from __future__ import annotations

from typing import Final


__all__ = ["INSTALL_EXTRA", "install_hint"]

#: The command that installs *extras* (comma-separated), formatted with ``extras=``.
INSTALL_EXTRA: Final = (
    "from a checkout of tokenbudget: python -m pip install '.[{extras}]' "
    "(the tokenbudget on the package index is another project for now)"
)


def install_hint(*extras: str) -> str:
    """The words that tell a user how to install *extras*, for an error message."""
    names = ",".join(extras)
    return f"install the {names!r} extra {INSTALL_EXTRA.format(extras=names)}"
