"""The clients build each request's URL themselves, as httpx would from a path and ``params=``.

They hand httpx the whole URL (parsed once) and their transport adds the key to
the parsed URL's query without parsing it again: both must give exactly the URL
httpx's own way gives.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget_keepa import KeepaClient
from tokenbudget_keepa._client.clients import _Call, _key_query, _keyed_url


BASES = ("http://127.0.0.1:8080", "https://api.keepa.com", "http://127.0.0.1:1/prefix")
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
params = st.dictionaries(texts.filter(bool), texts, max_size=5)
paths = st.sampled_from(("/product", "/deal", "/token", "/query", "/search", "/seller"))


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, tuple[KeepaClient, httpx.Client]]]:
    """A Keepa client and a plain httpx client on each base URL."""
    made = {base: (KeepaClient("k", base_url=base), httpx.Client(base_url=base)) for base in BASES}
    yield made
    for ours, theirs in made.values():
        ours.close()
        theirs.close()


@given(base=st.sampled_from(BASES), path=paths, query=params)
def test_a_calls_url_is_the_one_httpx_builds_from_its_path_and_params(clients, base, path, query):
    """A call's URL is httpx's URL of ``get(path, params=...)`` on the client's base URL."""
    client, http = clients[base]
    ours = httpx.Request("GET", client._url(_Call(path, query, None, 0))).url
    theirs = http.build_request("GET", path, params=query).url
    assert ours == theirs
    assert ours.raw_path == theirs.raw_path
    # The URL the client gives httpx unparsed has the components httpx's parse gives it.
    assert ours._uri_reference == httpx.URL(str(theirs))._uri_reference


@pytest.mark.parametrize("base", BASES)
def test_a_long_query_is_parsed_by_httpx_as_from_params(clients, base):
    """A query past the client's own building (httpx checks a URL's length) is httpx's too."""
    client, http = clients[base]
    query = {"asin": ",".join(["B000000001"] * 1000), "x": "é &"}
    ours = httpx.Request("GET", client._url(_Call("/product", query, None, 0))).url
    assert ours == http.build_request("GET", "/product", params=query).url
    with pytest.raises(httpx.InvalidURL):
        client._url(_Call("/product", {"asin": "B" * 70_000}, None, 0))


@given(base=st.sampled_from(BASES), path=paths, query=params, key=texts.filter(bool))
def test_the_key_is_added_to_the_parsed_query_as_a_new_parse_would(clients, base, path, query, key):
    """The keyed URL equals the URL parsed anew with ``&key=...`` (or ``?key=...``) appended."""
    url = clients[base][1].build_request("GET", path, params=query).url
    keyed = _keyed_url(url, _key_query(key))
    text = str(url)
    expected = httpx.URL(f"{text}&{_key_query(key)}" if url.query else f"{text}?{_key_query(key)}")
    assert keyed == expected
    assert keyed.raw_path == expected.raw_path
    assert keyed.params.get_list("key")[-1] == key
    assert url.params.get("key") == query.get("key")  # the request's own URL is unchanged


@pytest.mark.parametrize("base", BASES)
def test_an_httpx_without_parsed_components_gets_the_url_as_text(clients, base):
    """Should httpx keep a URL's components otherwise, each URL is given whole, as text."""
    _, http = clients[base]
    fresh = KeepaClient("k", base_url=base)
    try:
        fresh._parsed["/product"] = False  # what an httpx without them leaves
        query = {"asin": "B000000001", "x": "é &"}
        url = fresh._url(_Call("/product", query, None, 0))
        assert url == http.build_request("GET", "/product", params=query).url
        assert (
            fresh._url(_Call("/product", {}, None, 0)) == http.build_request("GET", "/product").url
        )
    finally:
        fresh.close()
