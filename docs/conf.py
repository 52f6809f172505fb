"""Sphinx configuration."""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx


project = "tokenbudget"
author = "The tokenbudget authors"
copyright = "2026, The tokenbudget authors"
release = _version("tokenbudget")
version = ".".join(release.split(".")[:2])

# The tutorial calls a small HTTP API that the test suite ships (tests/demo_api.py): make the
# checkout's `tests` package importable by the doctest builder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
]
myst_enable_extensions = ["colon_fence", "deflist"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "tokenbudget"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = True

# The examples in docstrings (run by the doctest builder through autodoc) assume the
# public names of tokenbudget and tokenbudget.sim are imported, as a reader in a REPL
# would have them.
doctest_global_setup = "from tokenbudget import *\nfrom tokenbudget.sim import *"
# Without network access there is no intersphinx: these standard-library targets,
# named in docstrings, cannot resolve. Builtin classes (ValueError, float, ...) resolve
# by themselves.
nitpick_ignore = [
    ("py:data", "math.inf"),
    ("py:func", "asyncio.sleep"),
    ("py:func", "time.monotonic"),
    ("py:func", "time.sleep"),
    ("py:func", "time.time"),
    ("py:class", "os.PathLike"),
    ("py:class", "random.Random"),
    ("py:class", "collections.abc.Callable"),
    ("py:class", "collections.abc.Iterable"),
    # redis-py's clients, named by RedisBackend (no intersphinx to redis-py's docs either).
    ("py:class", "redis.Redis"),
    ("py:class", "redis.asyncio.Redis"),
    # `on_event`'s annotation: a private alias for Callable[[Event], None], which the
    # constructor's docstring describes.
    ("py:class", "EventHook"),
]


#: Classes whose constructor parameters the reference leaves out of the description, where
#: autodoc's type hints would list them: reservations come from ``reserve()`` (their
#: constructor is private), and the values' parameters are their attributes, which the
#: docstrings document one by one already.
_NO_PARAMETER_LIST = {
    "tokenbudget.Reservation",
    "tokenbudget.AsyncReservation",
    "tokenbudget.Snapshot",
    "tokenbudget.Event",
    "tokenbudget._core.BucketState",
    "tokenbudget._core.Outcome",
}


def _drop_private_constructor_params(
    _app: Sphinx, domain: str, objtype: str, contentnode: nodes.Element
) -> None:
    if domain != "py" or objtype != "class":
        return
    signature = contentnode.parent[0]
    if f"{signature.get('module')}.{signature.get('fullname')}" not in _NO_PARAMETER_LIST:
        return
    for field_list in [n for n in contentnode.children if isinstance(n, nodes.field_list)]:
        for field in list(field_list.children):
            kind = field[0].astext().split()[0]
            if kind in {"param", "type"}:
                field_list.remove(field)
        if not field_list.children:
            contentnode.remove(field_list)


def setup(app: Sphinx) -> None:
    # After autodoc has merged the type hints into the description (priority 500).
    app.connect("object-description-transform", _drop_private_constructor_params, priority=600)
