"""Just enough GraphQL to estimate a query's cost before sending it: its selection tree; pure.

The tree keeps what the cost rules of GitHub and Shopify look at: each field
with a selection (an object, or a connection when it has ``first`` / ``last``),
the page size it asks for, and its children; scalars are leaves. No schema is
needed, none is consulted: the estimate is read from the query's text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import attrs

from ._message import finite


__all__ = ["Field", "Operation", "operations"]

_TOKEN = re.compile(
    r'"""(?:.|\n)*?"""|"(?:[^"\\\n]|\\.)*"|\.\.\.|\$?[_A-Za-z][_0-9A-Za-z]*|-?[0-9]+(?:\.[0-9]+)?'
    r"|[{}()\[\]:=@!,|&]"
)
#: The longest query text read.
MAX_QUERY: Final = 100_000
#: The deepest selection read; deeper queries are not read (servers refuse them too).
MAX_DEPTH: Final = 64


@attrs.frozen
class Field:
    """A field of a selection: a scalar (``children`` None), an object, or a connection.

    Attributes:
        name: The field's name (not its alias); ``"..."`` for a fragment spread.
        size: The page size ``first`` / ``last`` asks for (capped), or None.
        children: The selected fields, or None for a scalar.
    """

    name: str
    size: int | None
    children: tuple[Field, ...] | None

    @property
    def spread(self) -> bool:
        """Whether it is a named fragment's spread (not resolved: its cost is not known)."""
        return self.name == "..."


@attrs.frozen
class Operation:
    """One operation of a document: ``query``, ``mutation`` or ``subscription``."""

    kind: str
    fields: tuple[Field, ...]


class _Reader:
    __slots__ = ("cap", "pos", "tokens", "variables")

    def __init__(self, query: str, variables: Mapping[str, object], cap: int) -> None:
        query = re.sub(r"#[^\n]*", "", query)
        self.tokens: list[str] = [tok for tok in _TOKEN.findall(query) if tok != ","]
        self.pos = 0
        self.variables = variables
        self.cap = cap

    def tok(self) -> str:
        return self.tokens[self.pos]  # IndexError at the end: an unreadable query

    def skip_group(self, open_: str, close: str) -> None:
        depth = 0
        while True:
            if self.tok() == open_:
                depth += 1
            elif self.tok() == close:
                depth -= 1
                if depth == 0:
                    self.pos += 1
                    return
            self.pos += 1

    def arguments(self) -> int | None:
        size = None
        start = self.pos
        self.skip_group("(", ")")
        for j in range(start + 1, self.pos - 3):
            if self.tokens[j] in {"first", "last"} and self.tokens[j + 1] == ":":
                value = self.tokens[j + 2]
                number = finite(self.variables.get(value[1:])) if value.startswith("$") else None
                if number is None and value.lstrip("-").isdigit():
                    number = float(value)
                if number is not None and number > 0:
                    size = max(size or 0, int(min(number, self.cap)))
        return size

    def directives(self) -> None:
        while self.tok() == "@":
            self.pos += 2
            if self.tok() == "(":
                self.skip_group("(", ")")

    def selection(self, depth: int) -> list[Field]:
        """The fields of the selection set at ``{``; inline fragments flattened into it."""
        if depth > MAX_DEPTH:
            raise IndexError("too deep")
        self.pos += 1
        fields: list[Field] = []
        while self.tok() != "}":
            if self.tok() == "...":
                self.pos += 1
                if self.tok() == "on":
                    self.pos += 2
                elif self.tok() not in {"{", "@"}:
                    self.pos += 1
                    fields.append(Field("...", None, ()))
                self.directives()
                if self.tok() == "{":
                    fields.extend(self.selection(depth + 1))
                continue
            name = self.tok()
            self.pos += 1
            if self.tok() == ":":  # an alias
                name = self.tokens[self.pos + 1]
                self.pos += 2
            size = self.arguments() if self.tok() == "(" else None
            self.directives()
            if self.tok() != "{":
                fields.append(Field(name, size, None))
                continue
            fields.append(Field(name, size, tuple(self.selection(depth + 1))))
        self.pos += 1
        return fields

    def document(self) -> list[Operation]:
        out: list[Operation] = []
        while self.pos < len(self.tokens):
            if self.tok() == "fragment":  # definitions: their spreads are not resolved
                while self.tok() != "{":
                    self.pos += 1
                self.skip_group("{", "}")
                continue
            kind = self.tok() if self.tok() in {"query", "mutation", "subscription"} else "query"
            while self.tok() != "{":
                if self.tok() == "(":
                    self.skip_group("(", ")")
                else:
                    self.pos += 1
            out.append(Operation(kind, tuple(self.selection(0))))
        return out


def operations(
    query: str, variables: Mapping[str, object] | None = None, *, page_cap: int
) -> list[Operation] | None:
    """The operations of a GraphQL document, or None when its text cannot be read.

    ``first`` / ``last`` are read from literals or *variables*, and capped at
    *page_cap* (the server's own cap on a page).
    """
    if len(query) > MAX_QUERY:
        return None
    try:
        return _Reader(query, variables or {}, page_cap).document()
    except IndexError:
        return None
