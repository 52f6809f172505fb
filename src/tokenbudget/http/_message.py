"""What a dialect reads: the headers, body and status of one answer (or request), no I/O.

:class:`HeaderFields` takes headers in any shape a Python HTTP library hands
them over (a mapping, httpx's and httpx2's ``Headers`` with their repeated
fields, a list of pairs, bytes or str) and looks them up case-insensitively.
:class:`ResponseInfo` and :class:`RequestInfo` add the body (decoded as JSON
on first use) and the few readings every dialect shares: the answer's
``Date``, ``Retry-After`` / ``retry-after-ms``, an instant measured against
that ``Date``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import functools
import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final, TypeAlias


__all__ = ["HeaderFields", "HeadersLike", "RequestInfo", "ResponseInfo"]

log = logging.getLogger("tokenbudget.http")

#: The most characters of a bad value quoted in a warning.
_QUOTE: Final = 80
#: The most characters of a server's message kept in a report.
MESSAGE_CHARS: Final = 500


def quote(value: object) -> str:
    """A bad value for a warning: repr'd, cut to a few dozen characters."""
    text = repr(value)
    return text if len(text) <= _QUOTE else text[: _QUOTE - 3] + "..."


def warn_malformed(dialect: str, field: str, value: object, why: str = "") -> None:
    """Log (WARNING) that a quota field is ignored because it is malformed."""
    log.warning(
        "%s: ignoring the malformed %s %s%s",
        dialect,
        field,
        quote(value),
        f" ({why})" if why else "",
    )


def _text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    raise TypeError(f"a header {what} must be str or bytes, got {value!r} ({type(value).__name__})")


def _pairs_of(headers: object) -> Iterable[object]:
    """The ``(name, value)`` pairs of headers in any accepted shape, repeated fields apart."""
    if isinstance(headers, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"headers must be a mapping or (name, value) pairs, got {quote(headers)}")
    raw = getattr(headers, "raw", None)
    if type(raw) is list and callable(getattr(headers, "multi_items", None)):
        return raw  # httpx.Headers, httpx2.Headers: (bytes, bytes) pairs, repeated fields apart
    multi_items = getattr(headers, "multi_items", None)
    if callable(multi_items):
        pairs: Iterable[object] = multi_items()
        return pairs
    if isinstance(headers, Mapping):
        return headers.items()
    if isinstance(headers, Iterable):
        return headers
    raise TypeError(
        f"headers must be a mapping or (name, value) pairs, got {quote(headers)} "
        f"({type(headers).__name__})"
    )


#: The field names of httpx's headers (lowercased bytes) as read lately: a server sends the
#: same few names in every answer. Emptied when it holds :data:`_NAMES_KEPT`.
_NAMES: dict[bytes, str] = {}
_NAMES_KEPT: Final = 512


def _httpx_fields(headers: object) -> dict[str, list[str]] | None:
    """The fields of an ``httpx.Headers`` / ``httpx2.Headers``, read at once; else None.

    Both keep ``(raw name, lowercased name, value)`` bytes triples; reading them
    directly skips the pair list ``.raw`` builds per call and the checks that
    pairs of unknown origin need.
    """
    triples = getattr(headers, "_list", None)
    if type(triples) is not list or not callable(getattr(headers, "multi_items", None)):
        return None
    fields: dict[str, list[str]] = {}
    names = _NAMES
    try:
        for _, low, raw_value in triples:
            name = names.get(low)
            if name is None:
                name = low.decode("latin-1").strip().lower()
                if len(names) >= _NAMES_KEPT:
                    names.clear()
                names[low] = name
            value = raw_value.decode("latin-1").strip()
            known = fields.get(name)
            if known is None:
                fields[name] = [value]
            else:
                known.append(value)
    except (TypeError, ValueError, AttributeError):
        return None  # not the layout expected: the general path decides
    return fields


class HeaderFields(Mapping[str, str]):
    """Immutable, case-insensitive HTTP header fields; a name may repeat.

    >>> from tokenbudget.http import HeaderFields
    >>> fields = HeaderFields([("RateLimit-Policy", '"a";q=1'), ("ratelimit-policy", '"b";q=2')])
    >>> fields["ratelimit-policy"]
    '"a";q=1, "b";q=2'
    >>> fields.get_all("RATELIMIT-POLICY")
    ('"a";q=1', '"b";q=2')

    Looking a name up gives its values joined by ``", "`` (as HTTP combines
    repeated fields); :meth:`get_all` gives them one by one.

    Args:
        headers: A mapping (``dict``, httpx's or httpx2's ``Headers``, whose
            repeated fields are kept), an iterable of ``(name, value)`` pairs,
            or another :class:`HeaderFields`; ``str`` or ``bytes`` (Latin-1).

    Raises:
        TypeError: *headers* is none of these (the message names what it got).

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_fields",)

    def __init__(self, headers: HeadersLike = ()) -> None:
        quick = headers._fields if isinstance(headers, HeaderFields) else _httpx_fields(headers)
        if quick is not None:
            self._fields: dict[str, list[str]] = quick
            return
        fields: dict[str, list[str]] = {}
        pairs = _pairs_of(headers)
        for pair in pairs:
            if type(pair) is not tuple and type(pair) is not list:
                raise TypeError(f"a header must be a (name, value) pair, got {quote(pair)}")
            if len(pair) != 2:
                raise TypeError(f"a header must be a (name, value) pair, got {quote(pair)}")
            name, value = pair
            if type(name) is bytes:
                name = name.decode("latin-1")
            elif type(name) is not str:
                name = _text(name, "name")
            if type(value) is bytes:
                value = value.decode("latin-1")
            elif type(value) is not str:
                value = _text(value, "value")
            name = name.strip().lower()
            known = fields.get(name)
            if known is None:
                fields[name] = [value.strip()]
            else:
                known.append(value.strip())
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        values = self._fields[name.lower()]
        return values[0] if len(values) == 1 else ", ".join(values)

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The field's values joined by ``", "``, or *default* when absent."""
        values = self._fields.get(name.lower())
        if values is None:
            return default
        return values[0] if len(values) == 1 else ", ".join(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"HeaderFields({[(n, v) for n, vs in self._fields.items() for v in vs]!r})"

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of the field *name*, in order (empty when absent)."""
        return tuple(self._fields.get(name.lower(), ()))


#: Headers as accepted everywhere: a mapping of names to values (httpx's and
#: httpx2's ``Headers`` included), or ``(name, value)`` pairs with repeated
#: names; ``str`` or ``bytes``.
HeadersLike: TypeAlias = (
    HeaderFields
    | Mapping[str, str]
    | Mapping[bytes, bytes]
    | Iterable[tuple[str, str]]
    | Iterable[tuple[bytes, bytes]]
)


#: json.loads' own steps for a text without leading whitespace: the C scanner, then
#: nothing but whitespace may follow (``JSONDecoder.decode`` and ``raw_decode``).
_scan_once: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_whitespace: Callable[[str, int], re.Match[str]] = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]


def _decode_json(body: bytes | str) -> object | None:
    try:
        if type(body) is bytes and body[:1] == b"{" and body[1:2] != b"\x00":
            # What json.loads does for bytes it detects as UTF-8 (no BOM, no NUL
            # second byte), without the detection's and the decoder's Python-level calls.
            text = body.decode("utf-8", "surrogatepass")
            try:
                found, end = _scan_once(text, 0)
            except StopIteration:
                return None
            if end != len(text) and _whitespace(text, end).end() != len(text):
                return None  # extra data
            return found
        decoded: object = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, bad UTF-8, too deep, huge ints
        return None
    return decoded


class _Message:
    __slots__ = ("_headers", "_json", "_raw", "_source")

    def __init__(self, headers: HeadersLike, body: object) -> None:
        self._headers: HeaderFields | None
        self._source: HeadersLike | None = None
        if type(headers) is HeaderFields:
            self._headers = headers  # immutable: shared
        elif type(getattr(headers, "_list", None)) is list and callable(
            getattr(headers, "multi_items", None)
        ):
            # httpx's or httpx2's Headers: read on first use (a cost estimate rarely needs them).
            self._headers, self._source = None, headers
        else:
            self._headers = HeaderFields(headers)
        self._raw: bytes | str | None
        self._json: object
        if body is None or isinstance(body, (bytes, str)):
            self._raw, self._json = body, _UNSET
        elif isinstance(body, (bytearray, memoryview)):
            self._raw, self._json = bytes(body), _UNSET
        else:  # already decoded JSON
            self._raw, self._json = None, body

    @property
    def headers(self) -> HeaderFields:
        """The headers (see :class:`HeaderFields`)."""
        fields = self._headers
        if fields is None:
            fields = self._headers = HeaderFields(self._source)  # type: ignore[arg-type]
            self._source = None
        return fields

    @property
    def body(self) -> bytes | str | None:
        """The raw body as given, or None (absent, or given already decoded)."""
        return self._raw

    def json(self) -> object | None:
        """The body decoded as JSON (once), or None when absent or not JSON."""
        if self._json is _UNSET:
            self._json = None if self._raw is None else _decode_json(self._raw)
        return self._json


_UNSET: Final = object()


class ResponseInfo(_Message):
    """One HTTP answer as a dialect sees it: status, headers, body; pure.

    Args:
        headers: The answer's headers (see :class:`HeaderFields`).
        body: The body: ``bytes`` or ``str`` (decoded as JSON on first use),
            an already decoded JSON value, or None.
        status: The HTTP status.
        url: The URL of the request it answers, when known (GitHub names a
            limit by it when the answer does not), else None.
        received_at: The local wall-clock time it arrived, Unix seconds: the
            fallback when the answer has no ``Date``. Default: now.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_date", "received_at", "status", "url")

    def __init__(
        self,
        headers: HeadersLike = (),
        body: object = None,
        *,
        status: int = 200,
        url: str | None = None,
        received_at: float | None = None,
    ) -> None:
        super().__init__(headers, body)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
            raise ValueError(f"status must be an HTTP status code (100..999), got {status!r}")
        self.status = status
        self.url = url
        self.received_at = time.time() if received_at is None else float(received_at)
        self._date: float | object | None = _UNSET

    def __repr__(self) -> str:
        return f"ResponseInfo(status={self.status}, headers={self.headers!r})"

    @property
    def date(self) -> float | None:
        """The answer's ``Date`` in Unix seconds, or None (absent or malformed, with a warning)."""
        if self._date is _UNSET:
            raw = self.headers.get("date")
            self._date = None if raw is None else http_date(raw)
            if raw is not None and self._date is None:
                warn_malformed("http", "Date", raw)
        return self._date  # type: ignore[return-value]

    @property
    def now(self) -> float:
        """The answer's time in Unix seconds, its ``Date`` or else when it was received."""
        date = self.date
        return self.received_at if date is None else date

    def seconds_until(self, instant: float) -> float:
        """Seconds from the answer to a Unix *instant*; 0 when it lies before the answer."""
        return max(0.0, instant - self.now)

    def retry_after(self, dialect: str = "http") -> float | None:
        """The wait the server asks for: ``retry-after-ms``, else ``Retry-After``, or None.

        ``Retry-After`` may be delay-seconds (a decimal accepted too) or an
        HTTP date, measured against the answer's ``Date``; repeated, the
        longest wait counts. Malformed values are ignored with a warning.
        """
        headers = self.headers
        fields = headers._fields  # the usual answer names neither: two lookups, no call
        if "retry-after-ms" not in fields and "retry-after" not in fields:
            return None
        raw_ms = headers.get("retry-after-ms")
        if raw_ms is not None:
            ms = decimal(raw_ms)
            if ms is not None and ms >= 0:
                return ms / 1000.0
            warn_malformed(dialect, "retry-after-ms", raw_ms)
        waits: list[float] = []
        for raw in headers.get_all("retry-after"):
            seconds = decimal(raw)
            if seconds is None:
                instant = http_date(raw)
                seconds = None if instant is None else self.seconds_until(instant)
            if seconds is None:
                warn_malformed(dialect, "Retry-After", raw)
            else:
                waits.append(seconds)
        return max(waits) if waits else None


class RequestInfo(_Message):
    """One HTTP request as a dialect's cost estimate sees it; pure.

    Args:
        method: The HTTP method (``"POST"``).
        url: The URL (``"https://api.openai.com/v1/chat/completions"``), or a URL
            object (one with a ``raw_path``: httpx's, httpx2's), made text when first read.
        headers: The request's headers (see :class:`HeaderFields`).
        body: The body: ``bytes`` or ``str`` (decoded as JSON on first use),
            an already decoded JSON value, or None.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_url", "_url_of", "method")
    _url: str | None  # the text, once made
    _url_of: object  # what it is made of

    def __init__(
        self,
        method: str = "GET",
        url: object = "",
        headers: HeadersLike = (),
        body: object = None,
    ) -> None:
        if (
            type(body) is bytes
            and type(getattr(headers, "_list", None)) is list
            and callable(getattr(headers, "multi_items", None))
        ):  # what the quota transport hands over: _Message.__init__'s case, inline
            self._headers, self._source, self._raw, self._json = None, headers, body, _UNSET
        else:
            super().__init__(headers, body)
        self.method = method.upper()
        self.url = url  # text, or a URL object (see the setter)

    def __repr__(self) -> str:
        return f"RequestInfo({self.method!r}, {self.url!r})"

    @property
    def url(self) -> str:
        """The URL as text (made of the URL object given, httpx's ``URL``, when first read).

        Raises:
            TypeError: On setting anything but text or a URL object (one with a
                ``raw_path``, as httpx's, httpx2's and yarl's have).
        """
        url = self._url
        if url is None:
            url = self._url = str(self._url_of)
        return url

    @url.setter
    def url(self, url: object) -> None:
        if isinstance(url, str):
            self._url = url
        elif hasattr(type(url), "raw_path"):  # its class's: the property is not run
            self._url = None
        else:
            raise TypeError(f"url must be text or a URL object, got {quote(url)}")
        self._url_of = url

    @property
    def path(self) -> str:
        """The URL's path (``"/v1/chat/completions"``), without query or fragment."""
        rest = self.url.split("://", 1)[-1] if "://" in self.url else self.url
        if "://" in self.url:
            slash = rest.find("/")
            rest = "/" if slash < 0 else rest[slash:]
        return rest.split("?", 1)[0].split("#", 1)[0] or "/"


# -- readings shared by the dialects ------------------------------------------------------------

_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")
_SIGNED = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?")


def decimal(text: str) -> float | None:
    """A non-negative decimal number (``"42"``, ``"2.0"``), or None when *text* is not one."""
    text = text.strip()
    if len(text) <= 20 and text.isdigit() and text.isascii():  # the usual case, no regex
        return float(text)
    return float(text) if _DECIMAL.fullmatch(text) else None


def signed_decimal(text: str) -> float | None:
    """A decimal number that may be negative, or None when *text* is not one."""
    text = text.strip()
    return float(text) if _SIGNED.fullmatch(text) else None


_IMF_FIXDATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" ([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
_MONTHS: Final = {
    name: i
    for i, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


@functools.lru_cache(maxsize=256)
def http_date(text: str) -> float | None:
    """An HTTP date (IMF-fixdate, RFC 850 or asctime) in Unix seconds, or None.

    Cached: a server's answers share their ``Date`` for a whole second.
    """
    if not text or len(text) > 64:
        return None
    fixdate = _IMF_FIXDATE.fullmatch(text)
    if fixdate is not None:  # the form every server sends: read without the email module
        day, month, year, hour, minute, second = fixdate.groups()
        with contextlib.suppress(ValueError, OverflowError):  # else: the general reader decides
            moment = dt.datetime(
                int(year),
                _MONTHS[month],
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=dt.UTC,
            )
            return moment.timestamp()
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):  # pragma: no cover -- far out of range
        return None


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)


def rfc3339(text: str) -> float | None:
    """An RFC 3339 instant (``2024-10-15T09:49:10Z``) in Unix seconds, or None."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if zone in {"Z", "z"}:
            tz = dt.UTC
        else:
            sign = 1 if zone[0] == "+" else -1
            tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        moment = dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), min(int(second), 59), tzinfo=tz
        )
        stamp = moment.timestamp()
    except (ValueError, OverflowError):
        return None
    return stamp + (float(fraction) if fraction else 0.0) + (1 if int(second) == 60 else 0)


_FLOAT_MAX: Final = int(sys.float_info.max)


def finite(value: object) -> float | None:
    """A JSON number as a finite float, or None (not a number, a bool, NaN, infinite)."""
    kind = type(value)
    if kind is float:
        return value if -math.inf < value < math.inf else None  # type: ignore[return-value,operator]
    if kind is int and -_FLOAT_MAX <= value <= _FLOAT_MAX:  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
