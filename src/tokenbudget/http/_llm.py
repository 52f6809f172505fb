"""What the LLM dialects share: the prompt estimate, the output bound, ``usage`` and streams.

**The estimate of a request's tokens** (booked before sending, settled from
``usage`` afterwards) is conservative, like the count the APIs' own limiters
make before they run a model:

- *prompt*: every string and object key of the JSON body (messages, system
  prompt, tools and their schemas, the model's name: a few tokens too many is
  the safe side) counts ``ceil(ASCII characters / 4)`` plus one token for
  each non-ASCII character (CJK text runs at about one token a character), plus
  4 tokens per message (its role and separators) and 3 for the reply's priming;
  a media part (an image, audio, a document or file, a ``data:`` URL) counts
  :data:`MEDIA_TOKENS` instead of its bytes;
- *output*: ``max_completion_tokens``, ``max_tokens`` or ``max_output_tokens``
  (the first present), times ``n`` choices; a body that names none books the
  dialect's ``default_max_tokens`` (4,096 unless given).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Final

from ._message import RequestInfo, ResponseInfo, finite


__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MEDIA_TOKENS",
    "max_output_tokens",
    "prompt_tokens",
    "stream_events",
]

#: What a media part (image, audio, document, file, data: URL) is booked as, in tokens.
MEDIA_TOKENS: Final = 1600
#: The output booked when a request names no maximum.
DEFAULT_MAX_TOKENS: Final = 4096
#: Tokens per message for its role and separators, and for the reply's priming.
PER_MESSAGE: Final = 4
REPLY_PRIMING: Final = 3
_MEDIA_TYPES: Final = frozenset(
    {
        "image",
        "image_url",
        "input_image",
        "input_audio",
        "audio",
        "document",
        "file",
        "input_file",
    }
)
#: The deepest JSON nesting walked (deeper parts count as media, conservatively).
_MAX_DEPTH: Final = 64


def _text_tokens(text: str) -> int:
    if text.isascii():
        return math.ceil(len(text) / 4)
    ascii_count = sum(1 for char in text if char.isascii())
    return math.ceil(ascii_count / 4) + (len(text) - ascii_count)


def _walk(value: object, depth: int = 0) -> int:
    if depth > _MAX_DEPTH:
        return MEDIA_TOKENS
    kind = type(value)
    # What json.loads makes, by exact type first: the usual case, with the cheapest checks.
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if text.startswith("data:"):
            return MEDIA_TOKENS
        return -(-len(text) // 4) if text.isascii() else _text_tokens(text)
    if kind is dict:
        return _dict_tokens(value, depth)  # type: ignore[arg-type]
    if kind is list:
        return _list_tokens(value, depth)  # type: ignore[arg-type]
    return _walk_other(value, depth)


#: The tokens of the object keys read lately (``"role"``, ``"content"``): every request
#: repeats the same few. Emptied when it holds :data:`_KEYS_KEPT`.
_KEY_TOKENS: dict[str, int] = {}
_KEYS_KEPT: Final = 1024


def _key_tokens(key: str) -> int:
    """The tokens of an object key (an exact ``str``), remembered."""
    tokens = -(-len(key) // 4) if key.isascii() else _text_tokens(key)
    if len(_KEY_TOKENS) >= _KEYS_KEPT:
        _KEY_TOKENS.clear()
    _KEY_TOKENS[key] = tokens
    return tokens


def _dict_tokens(mapping: dict[object, object], depth: int) -> int:
    """:func:`_walk` of an exact ``dict`` within the depth limit."""
    media = mapping.get("type")
    if type(media) is str and media in _MEDIA_TYPES:
        return MEDIA_TOKENS
    total = 0
    keys = _KEY_TOKENS
    if depth >= _MAX_DEPTH:  # its items lie beyond the limit
        for key, item in mapping.items():
            total += (
                _key_tokens(key)  # rare: no lookup first
                if type(key) is str
                else _text_tokens(str(key))
            ) + _walk(item, depth + 1)
        return total
    inner = depth + 1
    for key, item in mapping.items():
        if type(key) is str:
            tokens = keys.get(key)
            total += _key_tokens(key) if tokens is None else tokens
        else:
            total += _text_tokens(str(key))
        kind = type(item)  # _walk(item, inner), its usual cases inline
        if kind is str:
            text: str = item  # type: ignore[assignment]
            total += (
                (len(text) + 3) >> 2  # ceil(len / 4)
                if text.isascii() and text[:5] != "data:"
                else _leaf_tokens(text)
            )
        elif kind is dict:
            total += _dict_tokens(item, inner)  # type: ignore[arg-type]
        elif kind is list:
            total += _list_tokens(item, inner)  # type: ignore[arg-type]
        else:
            total += _walk(item, inner)
    return total


def _list_tokens(items: list[object], depth: int) -> int:
    """:func:`_walk` of an exact ``list`` within the depth limit."""
    if depth >= _MAX_DEPTH:  # its items lie beyond the limit
        return sum(_walk(item, depth + 1) for item in items)
    inner = depth + 1
    total = 0
    keys = _KEY_TOKENS
    for item in items:
        kind = type(item)  # _walk(item, inner), its usual cases inline
        if kind is dict:
            mapping: dict[object, object] = item  # type: ignore[assignment]
            if inner >= _MAX_DEPTH or "type" in mapping:
                total += _dict_tokens(mapping, inner)
                continue
            # _dict_tokens(mapping, inner) of a message ({"role": ..., "content": ...}), inline
            for key, value in mapping.items():
                if type(key) is str:
                    tokens = keys.get(key)
                    total += _key_tokens(key) if tokens is None else tokens
                else:
                    total += _text_tokens(str(key))
                if type(value) is str and value.isascii() and value[:5] != "data:":
                    total += (len(value) + 3) >> 2  # ceil(len / 4)
                else:
                    total += _walk(value, inner + 1)
        elif kind is str:
            text: str = item  # type: ignore[assignment]
            total += (
                (len(text) + 3) >> 2  # ceil(len / 4)
                if text.isascii() and text[:5] != "data:"
                else _leaf_tokens(text)
            )
        elif kind is list:
            total += _list_tokens(item, inner)  # type: ignore[arg-type]
        else:
            total += _walk(item, inner)
    return total


def _leaf_tokens(text: str) -> int:
    """:func:`_walk` of a str within the depth limit: a media URL, or its text's tokens."""
    return MEDIA_TOKENS if text.startswith("data:") else _text_tokens(text)


def _walk_other(value: object, depth: int) -> int:  # noqa: PLR0911 -- one return per JSON type
    """:func:`_walk` of anything but an exact ``str``, ``dict`` or ``list``."""
    if depth > _MAX_DEPTH:
        return MEDIA_TOKENS
    if isinstance(value, str):
        if value.startswith("data:"):
            return MEDIA_TOKENS
        return _text_tokens(value)
    if isinstance(value, Mapping):
        kind = value.get("type")
        if isinstance(kind, str) and kind in _MEDIA_TYPES:
            return MEDIA_TOKENS
        total = 0
        for key, item in value.items():
            total += _text_tokens(str(key)) + _walk(item, depth + 1)
        return total
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return sum(_walk(item, depth + 1) for item in value)
    if value is None or isinstance(value, bool):
        return 0
    try:
        return _text_tokens(str(value))
    except ValueError:  # an int too long to print
        return MEDIA_TOKENS


def prompt_tokens(body: object) -> int:
    """The estimated prompt tokens of a decoded JSON request body (see the module's note)."""
    if type(body) is not dict and not isinstance(body, Mapping):
        return 0 if body is None else _walk(body)
    total = 0
    for key, value in body.items():
        if key in _NOT_PROMPT:
            continue
        kind = type(value)  # _walk(value, 1), its usual cases inline
        if kind is str:
            total += (
                (len(value) + 3) >> 2  # ceil(len / 4)
                if value.isascii() and value[:5] != "data:"
                else _leaf_tokens(value)
            )
        elif kind is list:
            total += _list_tokens(value, 1)
        elif kind is dict:
            total += _dict_tokens(value, 1)
        else:
            total += _walk(value, 1)
    messages = body.get("messages")
    count = len(messages) if type(messages) is list or isinstance(messages, Sequence) else 0
    return total + PER_MESSAGE * count + REPLY_PRIMING


#: The top-level keys of a request body that are no prompt.
_NOT_PROMPT: Final = frozenset({"max_tokens", "max_completion_tokens", "max_output_tokens", "n"})
#: The largest int a float holds exactly: ``math.ceil(float(i))`` is ``i`` up to it.
_EXACT_INT: Final = 2**53


def max_output_tokens(body: object, default: int) -> int:
    """The output tokens a decoded request body may produce, times its ``n`` choices."""
    if type(body) is not dict and not isinstance(body, Mapping):
        return default
    out = None
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        raw = body.get(key)
        if raw is None:
            continue  # finite(None) is None: no call
        if type(raw) is int and 0 <= raw <= _EXACT_INT:  # finite(), then ceil: the int itself
            out = raw
            break
        value = finite(raw)
        if value is not None and value >= 0:
            out = math.ceil(value)
            break
    raw = body.get("n")
    if raw is None:  # finite(None) is None: one choice
        n = 1
    else:
        choices = finite(raw)
        n = math.ceil(choices) if choices is not None and 1 <= choices <= 1024 else 1
    return (default if out is None else out) * n


def request_json(request: RequestInfo) -> object:
    """The request's decoded JSON body, or None."""
    return request.json()


def stream_events(response: ResponseInfo) -> list[Mapping[str, object]]:
    """The JSON objects of a server-sent-event stream body (``data: {...}`` lines), in order.

    Empty when the body is JSON (not a stream) or absent.
    """
    raw = response.body
    if raw is None or response.json() is not None:
        return []
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    events: list[Mapping[str, object]] = []
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if not payload.startswith("{"):
            continue
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            continue
        if isinstance(event, Mapping):
            events.append(event)
    return events


def dig(value: object, *path: str) -> object:
    """``value[path[0]][path[1]]...``, or None where a step is missing or not an object."""
    for key in path:
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
