"""Each dialect's cost estimate of a request, booked before it is sent."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget.http import (
    AnthropicDialect,
    Limit,
    OpenAIDialect,
    ShopifyDialect,
    estimate,
)
from tokenbudget.http._llm import MEDIA_TOKENS, prompt_tokens


CHAT = "https://api.openai.com/v1/chat/completions"


def chat(content: str, **extra: object) -> bytes:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}
    return json.dumps(body).encode()


def test_openai_books_a_request_the_prompt_and_max_tokens():
    """One request; ceil(chars/4) of every string and key, 4 a message, 3 priming, max_tokens."""
    body = json.loads(chat("x" * 40, max_tokens=100))
    # strings and keys: "gpt-4o" 2, role 1 + user 1, content 2 + 40 x 10, messages key not counted
    expected_prompt = 2 + (1 + 1) + (2 + 10) + 4 + 3
    assert prompt_tokens(body) == expected_prompt
    costs = estimate("openai", "POST", CHAT, {}, chat("x" * 40, max_tokens=100))
    assert costs["requests"] == 1.0
    assert costs["tokens"] == expected_prompt + 100


def test_openai_max_completion_tokens_and_n_choices():
    """max_completion_tokens wins over max_tokens, times n choices."""
    body = chat("hi", max_completion_tokens=50, max_tokens=999, n=3)
    prompt = prompt_tokens(json.loads(body))
    assert estimate("openai", "POST", CHAT, {}, body)["tokens"] == prompt + 150


def test_openai_default_output_when_absent():
    """A body naming no maximum books the dialect's default output (4,096, or as configured)."""
    prompt = prompt_tokens(json.loads(chat("hi")))
    assert estimate("openai", "POST", CHAT, {}, chat("hi"))["tokens"] == prompt + 4096
    small = OpenAIDialect(default_max_tokens=256)
    assert estimate(small, "POST", CHAT, {}, chat("hi"))["tokens"] == prompt + 256


def test_non_ascii_counts_a_token_a_character():
    """CJK text books a token per character (its real rate), not a quarter."""
    ascii_only = prompt_tokens({"messages": [{"content": "abcd" * 10}]})
    cjk = prompt_tokens({"messages": [{"content": "\u6f22" * 40}]})
    assert cjk - ascii_only == 40 - 10


def test_media_counts_a_fixed_amount_not_its_bytes():
    """A base64 image books MEDIA_TOKENS, whatever its size."""
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10**6}}
    body = {"messages": [{"role": "user", "content": [image]}]}
    assert MEDIA_TOKENS <= prompt_tokens(body) < MEDIA_TOKENS + 20


def test_embeddings_book_no_output():
    """An embeddings request books its input only."""
    body = json.dumps({"model": "text-embedding-3-small", "input": "hello world"})
    costs = estimate("openai", "POST", "https://api.openai.com/v1/embeddings", {}, body)
    assert costs["tokens"] == prompt_tokens(json.loads(body))


def test_get_books_one_request():
    """A GET books one request and no tokens."""
    assert estimate("openai", "GET", "https://api.openai.com/v1/models")["tokens"] == 0.0


def test_anthropic_splits_input_and_output():
    """Anthropic books the prompt as input, max_tokens as output, their sum as tokens."""
    body = {"model": "claude", "max_tokens": 300, "messages": [{"role": "user", "content": "Hi"}]}
    costs = estimate("anthropic", "POST", "https://api.anthropic.com/v1/messages", {}, body)
    prompt = prompt_tokens(body)
    assert costs == {
        "requests": 1.0,
        "input-tokens": prompt,
        "output-tokens": 300.0,
        "tokens": prompt + 300.0,
    }
    assert AnthropicDialect().default_max_tokens == 4096


def test_groq_and_mistral_book_like_openai():
    """Groq books requests and tokens; Mistral books each token limit it knows."""
    body = chat("hello", max_tokens=10)
    assert set(estimate("groq", "POST", CHAT, {}, body)) == {"requests", "tokens"}
    limits = {
        "tokens-minute": Limit(100, 50, None, unit="tokens"),
        "requests-10-second": Limit(60, 59, None),
    }
    costs = estimate("mistral", "POST", CHAT, {}, body, limits=limits)
    assert costs["requests-10-second"] == 1.0
    assert costs["tokens-minute"] == prompt_tokens(json.loads(body)) + 10


def test_github_graphql_points_by_githubs_rule():
    """GitHub's documented example: 1 + 100 + 100 x 50 requests = 5101, so 51 points."""
    query = (
        "query { viewer { login repositories(first: 100) { edges { node { id"
        " issues(first: 50) { edges { node { id labels(first: 60) { edges { node { id name }"
        " } } } } } } } } } }"
    )
    url = "https://api.github.com/graphql"
    assert estimate("github", "POST", url, {}, {"query": query}) == {"graphql": 51.0}
    assert estimate("github", "POST", url, {}, {"query": "{ viewer { login } }"}) == {
        "graphql": 1.0
    }
    assert estimate("github", "POST", url, {}, {"query": "{ broken"}) == {"graphql": 1.0}


@pytest.mark.parametrize(
    ("url", "resource"),
    [
        ("https://api.github.com/repos/python/cpython", "core"),
        ("https://api.github.com/search/issues?q=x", "search"),
        ("https://api.github.com/search/code?q=x", "code_search"),
        ("https://api.github.com/graphql", "graphql"),
    ],
)
def test_github_books_one_point_on_the_resource(url, resource):
    """GitHub books one point on the resource the path names."""
    assert estimate("github", "GET", url) == {resource: 1.0}


def test_shopify_rest_and_graphql():
    """Shopify books one REST call, or the query's estimated cost."""
    assert estimate("shopify", "GET", "https://s.myshopify.com/admin/api/2025-01/shop.json") == {
        "rest": 1.0
    }
    query = {
        "query": "query($n: Int) { products(first: $n) { nodes { id } } }",
        "variables": {"n": 50},
    }
    url = "https://s.myshopify.com/admin/api/2025-01/graphql.json"
    assert estimate("shopify", "POST", url, {}, query) == {"graphql": 52.0}
    assert estimate(ShopifyDialect(default_query_cost=7), "POST", url, {}, {"query": "{"}) == {
        "graphql": 7.0
    }


def test_ietf_books_on_the_policies_it_knows():
    """IETF books one request per request policy and the body's bytes per byte policy."""
    limits = {
        "burst": Limit(100, 50, 5, window=60),
        "bytes": Limit(65535, None, None, window=10, unit="content-bytes"),
    }
    costs = estimate("ietf", "POST", "https://x/", {}, b"0123456789", limits=limits)
    assert costs == {"burst": 1.0, "bytes": 10.0}
    assert estimate("ietf", "GET", "https://x/") == {}


def test_keepa_books_one_token():
    """The keepa dialect's default estimate is one token (KeepaClient models the rest)."""
    assert estimate("keepa", "GET", "https://api.keepa.com/token") == {"tokens": 1.0}


def test_bad_default_max_tokens():
    """default_max_tokens must be an int >= 0."""
    with pytest.raises(ValueError, match="-1"):
        OpenAIDialect(default_max_tokens=-1)
    with pytest.raises(TypeError, match=r"1\.5"):
        AnthropicDialect(default_max_tokens=1.5)  # type: ignore[arg-type]


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["data:image/png;base64,AA", "image", "file", "\u6f22\u5b57 ok"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["type", "messages"]), inner, max_size=4
        )
    ),
    max_leaves=25,
)


def _generic(value: object) -> object:
    """*value* rebuilt from mapping and sequence types other than dict and list."""
    if isinstance(value, dict):
        return MappingProxyType({key: _generic(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_generic(item) for item in value)
    return value


@given(_JSON)
def test_the_estimate_of_decoded_json_is_that_of_any_mapping_and_sequence(value):
    """The fast walk of json.loads' dicts and lists counts as the generic walk of other types."""
    assert prompt_tokens({"messages": [value]}) == prompt_tokens(_generic({"messages": [value]}))
    assert prompt_tokens(value) == prompt_tokens(_generic(value))


def test_the_estimate_of_nesting_past_the_depth_limit_counts_it_as_media():
    """Beyond 64 levels a value counts MEDIA_TOKENS, for dicts and lists as for other types."""
    deep: object = "x"
    for _ in range(70):
        deep = [{"k": deep}]
    assert prompt_tokens(deep) == prompt_tokens(_generic(deep))
    assert prompt_tokens(deep) >= MEDIA_TOKENS


@pytest.mark.parametrize("levels", range(60, 68))
@pytest.mark.parametrize("leaf", ["abcdefghij", "\u6f22\u5b57 ok", "data:image/png;base64,AA"])
def test_strings_on_either_side_of_the_depth_limit(levels: int, leaf: str) -> None:
    """A str item walked inline counts as its own walk would, at and past the depth limit."""
    nested: object = leaf
    for i in range(levels):
        nested = [nested, leaf] if i % 2 else {"k": nested, "s": leaf}
    assert prompt_tokens(nested) == prompt_tokens(_generic(nested))
    assert prompt_tokens({"messages": nested}) == prompt_tokens(_generic({"messages": nested}))
