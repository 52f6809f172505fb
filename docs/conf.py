"""Sphinx configuration."""

from __future__ import annotations

from importlib.metadata import version as _version


project = "tokenbudget"
author = "The tokenbudget authors"
copyright = "2026, The tokenbudget authors"
release = _version("tokenbudget")
version = ".".join(release.split(".")[:2])

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
nitpick_ignore_regex = [(r"py:.*", r"(attrs|typing_extensions|_?[a-z_]+\.)?[A-Z_a-z.]*\._[a-z].*")]
