"""Structured Field Values (RFC 9651), the subset the IETF RateLimit fields need; pure.

A *List* is members separated by commas, each an *Item* (a bare value with
``;key=value`` parameters) or an *Inner List* (``(a b);p``); a *Dictionary* is
``key=member`` pairs (a key alone means ``?1``). Bare values: Integer,
Decimal, String, Token, Byte Sequence, Boolean, Date (``@1659578233``) and
Display String (``%"..."``).

Strict parsing follows the RFC's algorithms. :func:`parse_list` and
:func:`parse_dictionary` take ``lenient=True`` (what the RateLimit draft asks
of a recipient): a member that does not parse is dropped, and the members
around it are kept; a parameter's value that does not parse is kept as
:class:`Malformed` (the member and its other parameters are kept); keys are
matched case-insensitively; whitespace around ``;`` and ``=`` is skipped.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Final, TypeAlias

import attrs


__all__ = [
    "BareItem",
    "InnerList",
    "Item",
    "Malformed",
    "SFError",
    "Token",
    "parse_dictionary",
    "parse_item",
    "parse_list",
]


class SFError(ValueError):
    """A field value that is not a valid Structured Field."""


class Token(str):
    """An SF Token (``quota``, ``*foo``): a string written without quotes."""

    __slots__ = ()


@attrs.frozen
class DisplayString:
    """An SF Display String (``%"f%c3%bc"``), decoded."""

    value: str


@attrs.frozen
class Malformed:
    """A parameter's value that does not parse (lenient parsing only), as written.

    Lenient parsing keeps the member and its other parameters; a reader that
    wants this parameter sees a value of no type it reads and ignores it.
    """

    text: str


BareItem: TypeAlias = "int | float | str | Token | bytes | bool | DisplayString"
Params: TypeAlias = dict[
    str, "int | float | str | Token | bytes | bool | DisplayString | Malformed"
]


@attrs.frozen
class Item:
    """A bare item with its parameters."""

    value: int | float | str | bytes | bool | DisplayString
    params: Params = attrs.field(factory=dict)


@attrs.frozen
class InnerList:
    """An inner list ``(a b)`` with its parameters."""

    items: tuple[Item, ...]
    params: Params = attrs.field(factory=dict)


Member: TypeAlias = "Item | InnerList"

_KEY_START: Final = frozenset("abcdefghijklmnopqrstuvwxyz*")
_KEY_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.*")
_TCHAR: Final = frozenset(
    "!#$%&'*+-.^_`|~:/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_ALPHA: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/=]*")
#: The longest field value parsed; longer ones are refused at once.
MAX_LENGTH: Final = 16_384


class _Parser:
    __slots__ = ("lenient", "pos", "text")

    def __init__(self, text: str, *, lenient: bool) -> None:
        if len(text) > MAX_LENGTH:
            raise SFError(f"longer than {MAX_LENGTH} characters")
        self.text = text
        self.pos = 0
        self.lenient = lenient

    # -- characters ----------------------------------------------------------------------------

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def skip_ows(self) -> None:
        while self.peek() in {" ", "\t"} and not self.done():
            self.pos += 1

    def fail(self, why: str) -> SFError:
        return SFError(f"{why} at position {self.pos} of {self.text[:60]!r}")

    # -- RFC 9651 section 4.2 ------------------------------------------------------------------

    def members(self, parse_member: Callable[[], object]) -> list[object]:
        out: list[object] = []
        while not self.done():
            out.append(parse_member())
            self.skip_ows()
            if self.done():
                return out
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.pos += 1
            self.skip_ows()
            if self.done():
                raise self.fail("trailing ','")
        return out

    def item_or_inner_list(self) -> Item | InnerList:
        if self.peek() == "(":
            return self.inner_list()
        return self.item()

    def inner_list(self) -> InnerList:
        self.pos += 1  # "("
        items: list[Item] = []
        while not self.done():
            self.skip_sp()
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.params())
            items.append(self.item())
            if self.peek() not in {" ", ")"}:
                raise self.fail("expected ' ' or ')' in an inner list")
        raise self.fail("unterminated inner list")

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    def params(self) -> Params:
        params: Params = {}
        while True:
            if self.lenient:
                self.skip_ows()
            if self.peek() != ";":
                return params
            self.pos += 1
            if self.lenient:
                self.skip_ows()
            else:
                self.skip_sp()
            key = self.key()
            value: int | float | str | bytes | bool | DisplayString | Malformed = True
            if self.lenient:
                self.skip_ows()
            if self.peek() == "=":
                self.pos += 1
                if self.lenient:
                    self.skip_ows()
                    value = self.lenient_value()
                else:
                    value = self.bare_item()
            params[key] = value

    def lenient_value(self) -> int | float | str | bytes | bool | DisplayString | Malformed:
        """A parameter's value; one that does not parse is skipped up to the next ``;`` or ``,``."""
        start = self.pos
        try:
            value: int | float | str | bytes | bool | DisplayString = self.bare_item()
            if self.peek() in {"", ";", ",", " ", "\t", ")"}:
                return value
        except SFError:
            pass
        self.pos, quoted, escaped = start, False, False
        while not self.done():
            char = self.peek()
            if quoted:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    quoted = False
            elif char == '"':
                quoted = True
            elif char in {";", ","}:
                break
            self.pos += 1
        return Malformed(self.text[start : self.pos].rstrip(" \t"))

    def key(self) -> str:
        start = self.pos
        first = self.peek()
        if self.lenient:
            first = first.lower()
        if first not in _KEY_START or not first:
            raise self.fail("expected a key")
        self.pos += 1
        while not self.done():
            char = self.peek().lower() if self.lenient else self.peek()
            if char not in _KEY_CHARS:
                break
            self.pos += 1
        key = self.text[start : self.pos]
        return key.lower() if self.lenient else key

    def bare_item(self) -> int | float | str | bytes | bool | DisplayString:  # noqa: PLR0911
        char = self.peek()
        if char == "-" or (char.isdigit() and char.isascii()):
            return self.number()
        if char == '"':
            return self.string()
        if char == "*" or char in _ALPHA:
            return self.token()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "@":
            self.pos += 1
            value = self.number()
            if not isinstance(value, int):
                raise self.fail("a date must be an integer")
            return value
        if char == "%":
            return self.display_string()
        raise self.fail("expected a bare item")

    def number(self) -> int | float:
        sign = 1
        if self.peek() == "-":
            sign = -1
            self.pos += 1
        start = self.pos
        while not self.done() and self.peek().isascii() and self.peek().isdigit():
            self.pos += 1
        integer = self.text[start : self.pos]
        if not integer:
            raise self.fail("expected a digit")
        if self.peek() != ".":
            if len(integer) > 15:
                raise self.fail("an integer has at most 15 digits")
            return sign * int(integer)
        if len(integer) > 12:
            raise self.fail("a decimal has at most 12 integer digits")
        self.pos += 1
        frac_start = self.pos
        while not self.done() and self.peek().isascii() and self.peek().isdigit():
            self.pos += 1
        fraction = self.text[frac_start : self.pos]
        if not fraction or len(fraction) > 3:
            raise self.fail("a decimal has 1 to 3 fractional digits")
        return sign * float(f"{integer}.{fraction}")

    def string(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while not self.done():
            char = self.peek()
            self.pos += 1
            if char == "\\":
                nxt = self.peek()
                if nxt not in {'"', "\\"}:
                    raise self.fail("bad escape in a string")
                out.append(nxt)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not (" " <= char <= "~"):
                raise self.fail("a string holds printable ASCII only")
            else:
                out.append(char)
        raise self.fail("unterminated string")

    def token(self) -> Token:
        start = self.pos
        self.pos += 1
        while not self.done() and self.peek() in _TCHAR:
            self.pos += 1
        return Token(self.text[start : self.pos])

    def byte_sequence(self) -> bytes:
        self.pos += 1
        end = self.text.find(":", self.pos)
        if end < 0:
            raise self.fail("unterminated byte sequence")
        encoded = self.text[self.pos : end]
        self.pos = end + 1
        if not _BASE64.fullmatch(encoded):
            raise self.fail("a byte sequence is base64")
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            if self.lenient:
                return b""
            raise self.fail("bad base64") from None

    def boolean(self) -> bool:
        self.pos += 1
        char = self.peek()
        if char not in {"0", "1"}:
            raise self.fail("a boolean is ?0 or ?1")
        self.pos += 1
        return char == "1"

    def display_string(self) -> DisplayString:
        self.pos += 1
        if self.peek() != '"':
            raise self.fail("expected '\"' after '%'")
        self.pos += 1
        raw = bytearray()
        while not self.done():
            char = self.peek()
            self.pos += 1
            if char == "%":
                hexa = self.text[self.pos : self.pos + 2]
                if len(hexa) != 2 or not all(c in "0123456789abcdef" for c in hexa):
                    raise self.fail("bad percent escape")
                raw.append(int(hexa, 16))
                self.pos += 2
            elif char == '"':
                try:
                    return DisplayString(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise self.fail("a display string is UTF-8") from None
            elif not (" " <= char <= "~"):
                raise self.fail("a display string holds printable ASCII only")
            else:
                raw.extend(char.encode("ascii"))
        raise self.fail("unterminated display string")


def _split_members(text: str) -> list[str]:
    """Split a field at the commas outside strings (for salvaging members one by one)."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == ",":  # inner lists hold no commas: members are space-separated
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip(" \t") for part in parts]


def _parse_whole(text: str, parse_member: Callable[[_Parser], object], *, lenient: bool) -> object:
    parser = _Parser(text.strip(" \t") if lenient else text.lstrip(" "), lenient=lenient)
    return parser.members(lambda: parse_member(parser))


def parse_list(
    text: str, *, lenient: bool = False, on_error: Callable[[str, SFError], None] | None = None
) -> list[Item | InnerList]:
    """Parse an SF List.

    Raises:
        SFError: *text* is not a List (strict mode only; a lenient parse drops
            each member that does not parse, calling *on_error(member, error)*).
    """

    def member(parser: _Parser) -> Item | InnerList:
        return parser.item_or_inner_list()

    return _lenient_members(text, member, lenient=lenient, on_error=on_error)  # type: ignore[return-value]


def parse_dictionary(
    text: str, *, lenient: bool = False, on_error: Callable[[str, SFError], None] | None = None
) -> dict[str, Item | InnerList]:
    """Parse an SF Dictionary (a later key wins over an earlier one).

    Raises:
        SFError: *text* is not a Dictionary (strict mode only; see :func:`parse_list`).
    """

    def member(parser: _Parser) -> tuple[str, Item | InnerList]:
        key = parser.key()
        if parser.lenient:
            parser.skip_ows()
        if parser.peek() == "=":
            parser.pos += 1
            if parser.lenient:
                parser.skip_ows()
            return key, parser.item_or_inner_list()
        return key, Item(True, parser.params())

    pairs = _lenient_members(text, member, lenient=lenient, on_error=on_error)
    return dict(pairs)  # type: ignore[arg-type]


def parse_item(text: str, *, lenient: bool = False) -> Item:
    """Parse an SF Item.

    Raises:
        SFError: *text* is not an Item.
    """
    parser = _Parser(text.strip(" \t") if lenient else text.lstrip(" "), lenient=lenient)
    item = parser.item()
    if lenient:
        parser.skip_ows()
    if not parser.done():
        raise parser.fail("trailing characters")
    return item


def _lenient_members(
    text: str,
    parse_member: Callable[[_Parser], object],
    *,
    lenient: bool,
    on_error: Callable[[str, SFError], None] | None,
) -> list[object]:
    try:
        return _parse_whole(text, parse_member, lenient=lenient)  # type: ignore[return-value]
    except SFError as exc:
        if not lenient:
            raise
        if len(text) > MAX_LENGTH:
            if on_error is not None:
                on_error(text, exc)
            return []
    out: list[object] = []
    for part in _split_members(text):
        if not part:
            continue
        try:
            parser = _Parser(part, lenient=True)
            got = parse_member(parser)
            parser.skip_ows()
            if not parser.done():
                raise parser.fail("trailing characters")
        except SFError as exc:
            if on_error is not None:
                on_error(part, exc)
            continue
        out.append(got)
    return out
