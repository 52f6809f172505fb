"""Sphinx configuration."""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


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
    ("py:class", "collections.abc.Iterator"),
    ("py:class", "collections.abc.AsyncIterator"),
    ("py:class", "collections.abc.Mapping"),
    ("py:class", "collections.abc.Sequence"),
    # tokenbudget_keepa's typed results, named in the filters' signatures, until the Keepa
    # client's reference documents them (then `_public_alias` below resolves them).
    ("py:class", "tokenbudget_keepa._client.models.products.Deal"),
    ("py:class", "tokenbudget_keepa._client.models.products.Product"),
    ("py:class", "tokenbudget_keepa._client.models.products.PriceType"),
    ("py:class", "datetime.datetime"),
    # The emulator's `start: datetime` as autodoc renders it from the class signature.
    ("py:class", "datetime"),
    # redis-py's clients, named by RedisBackend (no intersphinx to redis-py's docs either).
    ("py:class", "redis.Redis"),
    ("py:class", "redis.asyncio.Redis"),
    # psycopg's and Celery's classes, named by the deployment modules (no intersphinx either).
    ("py:class", "psycopg.Connection"),
    ("py:class", "Connection"),
    ("py:class", "celery.Celery"),
    # `on_event`'s annotation: a private alias for Callable[[Event], None], which the
    # constructor's docstring describes.
    ("py:class", "EventHook"),
    # The ingestor's private names that its docstrings mention: the hook alias (as above),
    # the backlog protocol, the literal of stop reasons and the default job key; each is
    # described where it is used.
    ("py:class", "IngestEventHook"),
    ("py:class", "Backlog"),
    ("py:data", "StopReason"),
    ("py:func", "default_key"),
    # httpx's and httpx2's classes, named by the transports (no intersphinx to their docs).
    *(
        ("py:class", f"{lib}.{name}")
        for lib in ("httpx", "httpx2")
        for name in ("BaseTransport", "AsyncBaseTransport", "Request", "Response")
    ),
    # The transports' `cost` annotation: a private alias of Callable[[request], Mapping],
    # which the constructor's docstring describes.
    ("py:class", "CostFunction"),
    # The Keepa clients' shared constructor types *bucket* by the client (TokenBucket for
    # KeepaClient, AsyncTokenBucket for AsyncKeepaClient); the reference's signatures name them.
    ("py:class", "BucketT"),
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


def _public_alias(
    app: Sphinx, env: BuildEnvironment, node: addnodes.pending_xref, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve a name of a private module (``pkg._private.Name``) as the public ``pkg.Name``.

    Type hints carry their class's real module, and the module docstrings that the
    reference includes (``automodule`` of a private module) name their siblings bare.
    """
    if node.get("refdomain") != "py":
        return None
    target = str(node.get("reftarget", ""))
    module = str(node.get("py:module") or "")
    full = target if target.startswith("tokenbudget") else f"{module}.{target}"
    parts = [part for part in full.split(".") if part]
    if not parts or not parts[0].startswith("tokenbudget"):
        return None
    private = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
    if private is None:  # a bare name in a public module's docstring: module.name
        candidates = [full]
    else:  # private modules may nest (pkg._sub.module.Name): each tail, shortest path first
        candidates = [".".join(parts[:private] + parts[i:]) for i in range(private + 1, len(parts))]
    domain = env.get_domain("py")
    for public in candidates:
        if public == target:
            continue
        found = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], public, node, contnode
        )
        if found is not None:
            return found
    return None


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _public_alias)
    # After autodoc has merged the type hints into the description (priority 500).
    app.connect("object-description-transform", _drop_private_constructor_params, priority=600)
