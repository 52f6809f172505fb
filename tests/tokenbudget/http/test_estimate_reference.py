"""The estimate's walk gives what it gave before its fast paths (kept here as the reference)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import httpx2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tokenbudget import TokenBucket
from tokenbudget.http import OpenAIDialect, RequestInfo
from tokenbudget.http._llm import (
    _MAX_DEPTH,
    _MEDIA_TYPES,
    MEDIA_TOKENS,
    PER_MESSAGE,
    REPLY_PRIMING,
    max_output_tokens,
    prompt_tokens,
)
from tokenbudget.http._message import finite
from tokenbudget.http._transport import TransportCore


# -- the reference: the estimate as it was before its fast paths (_llm.py, 2026-12-06) -----------


def _old_text_tokens(text: str) -> int:
    if text.isascii():
        return math.ceil(len(text) / 4)
    ascii_count = sum(1 for char in text if char.isascii())
    return math.ceil(ascii_count / 4) + (len(text) - ascii_count)


def _old_walk(value: object, depth: int = 0) -> int:  # noqa: C901
    if depth > _MAX_DEPTH:
        return MEDIA_TOKENS
    kind = type(value)
    # What json.loads makes, by exact type first: the usual case, with the cheapest checks.
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if text.startswith("data:"):
            return MEDIA_TOKENS
        return -(-len(text) // 4) if text.isascii() else _old_text_tokens(text)
    if kind is dict:
        mapping: dict[object, object] = value  # type: ignore[assignment]
        media = mapping.get("type")
        if type(media) is str and media in _MEDIA_TYPES:
            return MEDIA_TOKENS
        total = 0
        leaves = depth < _MAX_DEPTH  # a str item is walked inline (its _old_walk at depth + 1)
        for key, item in mapping.items():
            total += (
                -(-len(key) // 4)
                if type(key) is str and key.isascii()
                else _old_text_tokens(str(key))
            )
            if leaves and type(item) is str:
                total += (
                    _old_leaf_tokens(item)
                    if item.startswith("data:") or not item.isascii()
                    else -(-len(item) // 4)
                )
            else:
                total += _old_walk(item, depth + 1)
        return total
    if kind is list:
        total = 0
        leaves = depth < _MAX_DEPTH
        for item in value:  # type: ignore[attr-defined]
            if leaves and type(item) is str:
                total += (
                    _old_leaf_tokens(item)
                    if item.startswith("data:") or not item.isascii()
                    else -(-len(item) // 4)
                )
            else:
                total += _old_walk(item, depth + 1)
        return total
    return _old_walk_other(value, depth)


def _old_leaf_tokens(text: str) -> int:
    """:func:`_old_walk` of a str within the depth limit: a media URL, or its text's tokens."""
    return MEDIA_TOKENS if text.startswith("data:") else _old_text_tokens(text)


def _old_walk_other(value: object, depth: int) -> int:
    """:func:`_old_walk` of anything but an exact ``str``, ``dict`` or ``list``."""
    if depth > _MAX_DEPTH:
        return MEDIA_TOKENS
    if isinstance(value, str):
        if value.startswith("data:"):
            return MEDIA_TOKENS
        return _old_text_tokens(value)
    if isinstance(value, Mapping):
        kind = value.get("type")
        if isinstance(kind, str) and kind in _MEDIA_TYPES:
            return MEDIA_TOKENS
        total = 0
        for key, item in value.items():
            total += _old_text_tokens(str(key)) + _old_walk(item, depth + 1)
        return total
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return sum(_old_walk(item, depth + 1) for item in value)
    if value is None or isinstance(value, bool):
        return 0
    try:
        return _old_text_tokens(str(value))
    except ValueError:  # an int too long to print
        return MEDIA_TOKENS


def _old_prompt_tokens(body: object) -> int:
    """The estimated prompt tokens of a decoded JSON request body (see the module's note)."""
    if type(body) is not dict and not isinstance(body, Mapping):
        return 0 if body is None else _old_walk(body)
    total = 0
    for key, value in body.items():
        if key in {"max_tokens", "max_completion_tokens", "max_output_tokens", "n"}:
            continue
        if type(value) is str:  # _old_walk(value, 1) of a str, inline
            total += (
                _old_leaf_tokens(value)
                if value.startswith("data:") or not value.isascii()
                else -(-len(value) // 4)
            )
        else:
            total += _old_walk(value, 1)
    messages = body.get("messages")
    count = len(messages) if type(messages) is list or isinstance(messages, Sequence) else 0
    return total + PER_MESSAGE * count + REPLY_PRIMING


def _old_max_output_tokens(body: object, default: int) -> int:
    """The output tokens a decoded request body may produce, times its ``n`` choices."""
    if type(body) is not dict and not isinstance(body, Mapping):
        return default
    out = None
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        raw = body.get(key)
        if raw is None:
            continue  # finite(None) is None: no call
        value = finite(raw)
        if value is not None and value >= 0:
            out = math.ceil(value)
            break
    choices = finite(body.get("n"))
    n = math.ceil(choices) if choices is not None and 1 <= choices <= 1024 else 1
    return (default if out is None else out) * n


def _old_estimate(
    body: object, path: str, windows: Mapping[str, float], default: int
) -> dict[str, float]:
    tokens = _old_prompt_tokens(body) if body is not None else 0
    generating = isinstance(body, Mapping) and "messages" in body
    if generating or path.endswith(
        ("/chat/completions", "/completions", "/responses", "/messages")
    ):
        tokens += _old_max_output_tokens(body, default)
    costs = {"requests": 1.0}
    costs.update({n: float(tokens) for n in windows if n != "requests"})
    return costs


# -- the strategies --------------------------------------------------------------------------

_TEXTS = st.one_of(
    st.sampled_from(["", "user", "role", "content", "type", "data:", "data:image/png;base64,AA"]),
    st.sampled_from(sorted(_MEDIA_TYPES)),
    st.text(max_size=12),
    st.text(alphabet="ab\u00e9\u6f22", max_size=9).map(lambda text: "data:" + text),
    st.integers(0, 40).map(lambda n: "x" * n),
)
_NUMBERS = st.one_of(
    st.integers(-5, 5),
    st.integers(-(2**60), 2**60),
    st.sampled_from([2**53, 2**53 + 1, 2**1100, -(2**1100)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
_JSON = st.recursive(
    st.one_of(_TEXTS, _NUMBERS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_TEXTS, inner, max_size=4),
        st.lists(st.fixed_dictionaries({"role": _TEXTS, "content": inner}), max_size=3),
    ),
    max_leaves=20,
)
_OUTPUT_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens", "n")


@st.composite
def _bodies(draw: st.DrawFn) -> object:
    """A request body: mostly chat-like objects, with odd maxima, media and non-dicts."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_JSON)
    body: dict[str, Any] = draw(st.dictionaries(_TEXTS, _JSON, max_size=4))
    if draw(st.booleans()):
        body["messages"] = draw(_JSON)
    for key in _OUTPUT_KEYS:
        if draw(st.booleans()):
            body[key] = draw(_NUMBERS)
    return body


def _deep(depth: int, leaf: object, kind: str) -> object:
    """*leaf* nested *depth* levels in lists, dicts or messages."""
    value = leaf
    for level in range(depth):
        if kind == "list" or (kind == "mixed" and level % 2):
            value = [value, "abc"]
        elif kind == "dict":
            value = {"k": value, "x": "abcde"}
        else:
            value = [{"role": "user", "content": value}]
    return value


# -- the tests ---------------------------------------------------------------------------------


@given(_bodies())
def test_prompt_tokens_as_before(body: object) -> None:
    """prompt_tokens gives the old walk's count for every decoded body."""
    assert prompt_tokens(body) == _old_prompt_tokens(body)


@given(
    st.integers(_MAX_DEPTH - 4, _MAX_DEPTH + 3),
    st.one_of(_TEXTS, _NUMBERS, st.just({"a": "bc"}), st.just(["ab"])),
    st.sampled_from(["list", "dict", "message", "mixed"]),
)
def test_prompt_tokens_at_the_depth_limit_as_before(depth: int, leaf: object, kind: str) -> None:
    """Around the deepest nesting walked, the count is the old walk's."""
    body = {"messages": _deep(depth, leaf, kind), "model": _deep(depth, leaf, kind)}
    assert prompt_tokens(body) == _old_prompt_tokens(body)


@given(_bodies())
def test_prompt_tokens_of_other_mappings_as_before(body: object) -> None:
    """A body given as another mapping (read only) counts as before."""
    if isinstance(body, dict):
        body = MappingProxyType(body)
    assert prompt_tokens(body) == _old_prompt_tokens(body)


@given(_bodies(), st.integers(0, 10**6))
def test_max_output_tokens_as_before(body: object, default: int) -> None:
    """max_output_tokens gives the old bound for every decoded body."""
    assert max_output_tokens(body, default) == _old_max_output_tokens(body, default)


@given(
    _bodies(),
    st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/v1/responses"]),
    st.sampled_from([None, {"requests": 60.0}, {"tokens": 1.0, "requests": 2.0, "t2": 3.0}]),
)
def test_openai_estimate_as_before(
    body: object, path: str, windows: dict[str, float] | None
) -> None:
    """The dialect's estimate of a JSON body, as bytes, is the old one."""
    chosen = OpenAIDialect(default_max_tokens=77)
    if windows is not None:
        chosen.windows = windows
    try:
        raw = json.dumps(body).encode()
    except ValueError:  # an int too long to write
        return
    decoded = json.loads(raw)
    request = RequestInfo("POST", "https://api.openai.com" + path, {}, raw)
    expected = _old_estimate(decoded, path, chosen.windows, 77)
    found = chosen.estimate(request, {})
    assert found == expected
    assert list(found) == list(expected)


def test_ints_too_long_to_write_count_as_before() -> None:
    """An int too long to print counts as a media part, as before, wherever it lies."""
    huge = 10**5000
    for body in (
        {"model": huge, "messages": [{"role": "user", "content": huge}], "n": huge},
        {"messages": [huge, [huge], {"a": huge}], "max_tokens": huge},
        [huge],
        huge,
    ):
        assert prompt_tokens(body) == _old_prompt_tokens(body)
        assert max_output_tokens(body, 5) == _old_max_output_tokens(body, 5)


def _outcome(estimate: Any) -> object:
    """What *estimate()* gives (its costs in order), or the type of what it raises."""
    try:
        costs = estimate()
    except Exception as exc:
        return type(exc)
    return list(costs.items())


@given(
    st.one_of(
        _bodies().map(lambda body: json.dumps(body).encode()),
        st.sampled_from([b"null", b"[]", b'"messages"', b"{", b"not json", b'{"messages": 1}x']),
    ),
    st.sampled_from(["/v1/chat/completions", "/v1/embeddings"]),
    st.sampled_from(["openai", "groq"]),
)
@example(b'{"messages": [], "max_tokens": 1e308, "n": 1024}', "/v1/chat/completions", "openai")
def test_the_transports_estimate_is_the_dialects(raw: bytes, path: str, dialect: str) -> None:
    """The transport's estimate of a request (a chat's body decoded once, on its fast path,
    any other handed to the dialect decoded) is what the dialect's estimate gives."""
    core: TransportCore[TokenBucket] = TransportCore(dialect, bucket_type=TokenBucket)
    url = httpx2.URL("https://api.openai.com" + path)
    headers = httpx2.Headers({"content-type": "application/json"})
    expected = _outcome(lambda: core.dialect.estimate(RequestInfo("POST", url, headers, raw), {}))
    assert _outcome(lambda: core.costs(None, "POST", url, headers, raw)) == expected


def test_an_estimate_of_the_users_own_is_what_the_transport_books() -> None:
    """A built-in dialect whose ``estimate`` was replaced (on it, or on its class) books that."""
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    url = httpx2.URL("https://api.openai.com/v1/chat/completions")
    mine = OpenAIDialect()
    mine.estimate = lambda request, limits: {"requests": 1.0, "tokens": 7.0}  # type: ignore[method-assign]
    core: TransportCore[TokenBucket] = TransportCore(mine, bucket_type=TokenBucket)
    assert core.costs(None, "POST", url, httpx2.Headers(), chat) == {"requests": 1.0, "tokens": 7.0}

    class Mine(OpenAIDialect):
        def estimate(self, request: RequestInfo, limits: Any) -> dict[str, float]:
            return {"tokens": 9.0}

    core = TransportCore(Mine(), bucket_type=TokenBucket)
    assert core.costs(None, "POST", url, httpx2.Headers(), chat) == {"tokens": 9.0}


def test_a_default_set_to_no_count_is_refused_as_by_the_dialects_estimate() -> None:
    """``default_max_tokens`` set after the dialect was made, to no count: the general checks."""
    chat = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    url = httpx2.URL("https://api.openai.com/v1/chat/completions")
    for bad in (-100, math.nan):  # (the prompt, 12 tokens, less than 100)
        chosen = OpenAIDialect()
        chosen.default_max_tokens = bad  # type: ignore[assignment]
        core: TransportCore[TokenBucket] = TransportCore(chosen, bucket_type=TokenBucket)
        with pytest.raises(ValueError, match="not a number >= 0"):
            core.costs(None, "POST", url, httpx2.Headers(), chat)
