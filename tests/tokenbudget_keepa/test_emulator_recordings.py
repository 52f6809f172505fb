"""The emulator serving recorded Keepa answers: ``../shared/realdata`` and folders of one's own."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.shared_data import realdata, realdata_dir, realdata_files
from tokenbudget import ManualClock
from tokenbudget_keepa import KeepaClient
from tokenbudget_keepa.testing import KeepaEmulator, Recordings


KEY = "test-key"
SELECTION = json.dumps({"priceTypes": [2], "domainId": 1})
#: The key goes out in this file's own httpx URLs, which httpx logs (see the fixture).
pytestmark = pytest.mark.usefixtures("emulator_key_out_of_httpx_logs")


@pytest.fixture(autouse=True)
def _key_audited(api_keys: list[str]) -> None:
    """The emulators here take :data:`KEY`: the log audit searches every record for it too."""
    api_keys.append(KEY)


@pytest.fixture(scope="module")
def http() -> Any:
    with httpx.Client(timeout=30) as client:
        yield client


def real_pages() -> list[dict[str, Any]]:
    """The real /deal answers, in the order Keepa sent them."""
    pages = [json.loads(p.read_text()) for p in realdata_files("deal_page_*.json")]
    return sorted(pages, key=lambda body: body["timestamp"])


def test_the_real_data_folder_loads_as_recordings() -> None:
    """Its deal pages (not the 429), both products and the 51 /token bodies are found."""
    recordings = Recordings.load(realdata_dir())
    assert [p["timestamp"] for p in recordings.deal_pages] == [p["timestamp"] for p in real_pages()]
    assert set(recordings.products) == {"055299068X", "1886940606"}
    assert len(recordings.token_bodies) == len(realdata("token_bodies.json"))
    stamps = [b["timestamp"] for b in recordings.token_bodies]
    assert stamps == sorted(stamps)


def test_recorded_deal_pages_are_served_in_order_then_empty(http: Any) -> None:
    """One recorded page per /deal request, charged its recorded 5; then an empty page."""
    clock = ManualClock()
    with KeepaEmulator(recordings=realdata_dir(), clock=clock, tokens=10_000) as keepa:
        for page in real_pages():
            body = http.get(f"{keepa.url}/deal", params={"key": KEY, "selection": SELECTION})
            assert body.status_code == 200
            assert body.json()["deals"] == page["deals"]
            assert body.json()["tokensConsumed"] == page["tokensConsumed"] == 5
            assert body.json()["dealsCached"] is page["dealsCached"]
        after = http.get(f"{keepa.url}/deal", params={"key": KEY, "selection": SELECTION}).json()
        assert after["deals"]["dr"] == []
        assert set(after["deals"]) == set(page["deals"])
        stats = keepa.stats()
        assert stats.deals_served == sum(len(p["deals"]["dr"]) for p in real_pages())
        assert stats.tokens_consumed == 5 * (len(real_pages()) + 1)


def test_the_account_starts_as_the_earliest_recorded_token_body(http: Any) -> None:
    """Rate, balance and the server's time come from the recordings unless given."""
    recordings = Recordings.load(realdata_dir())
    first = recordings.token_bodies[0]
    earliest = recordings.first_timestamp()
    assert earliest is not None
    with KeepaEmulator(recordings=recordings, clock=ManualClock()) as keepa:
        body = http.get(f"{keepa.url}/token", params={"key": KEY}).json()
        assert (body["refillRate"], body["tokensLeft"]) == (5, first["tokensLeft"])
        assert body["timestamp"] == earliest // 1000 * 1000
    with KeepaEmulator(recordings=recordings, clock=ManualClock(), refill_per_min=7, tokens=3) as k:
        body = http.get(f"{k.url}/token", params={"key": KEY}).json()
        assert (body["refillRate"], body["tokensLeft"]) == (7, 3)


def test_recorded_products_are_served_by_asin_at_keepas_cost(http: Any) -> None:
    """The real products as recorded; 7 tokens each for the logged parameters (14 for both)."""
    params = {"stats": 365, "offers": 50, "rating": 1, "history": 1, "stock": 1, "buybox": 1}
    with KeepaEmulator(recordings=realdata_dir(), clock=ManualClock(), tokens=1000) as keepa:
        asins = ["055299068X", "1886940606", "B000000000"]
        body = http.get(
            f"{keepa.url}/product",
            params={"key": KEY, "domain": 1, "asin": ",".join(asins), **params},
        ).json()
        assert [p["asin"] for p in body["products"]] == asins[:2]
        assert body["products"][0] == realdata("product_055299068X.json")
        # One page of live offers (6) and fresh rating data (1) each; no stock data.
        assert body["tokensConsumed"] == 14
        catalog = keepa.catalog_asins(2)
        mixed = http.get(
            f"{keepa.url}/product",
            params={"key": KEY, "domain": 1, "asin": ",".join([asins[0], *catalog])},
        ).json()
        assert [p["asin"] for p in mixed["products"]] == [asins[0], *catalog]
        assert mixed["tokensConsumed"] == 3


def test_the_client_reads_recorded_answers() -> None:
    """KeepaClient against the recordings: real pages and products parse, nothing throttled."""
    clock = ManualClock()
    with (
        KeepaEmulator(recordings=realdata_dir(), clock=clock, api_key="k" * 32) as keepa,
        KeepaClient("k" * 32, base_url=keepa.url, clock=clock) as client,
    ):
        page = client.deals({"priceTypes": [2], "domainId": 1})
        first = real_pages()[0]["deals"]["dr"]
        assert [d.asin for d in page.deals] == [d["asin"] for d in first]
        products = client.products(["055299068X", "1886940606"], offers=50, stats=365)
        assert [p.asin for p in products] == ["055299068X", "1886940606"]
        assert keepa.stats().throttled == 0


def test_a_folder_of_ones_own_with_subfolders_and_gzip(tmp_path: Path, http: Any) -> None:
    """deal/, product/ and token/ hold bodies (one or a list per file, .json or .json.gz)."""
    page = real_pages()[-1]
    (tmp_path / "deal").mkdir()
    (tmp_path / "deal" / "b.json").write_text(json.dumps(page))
    (tmp_path / "deal" / "a.json").write_text(json.dumps({**page, "timestamp": 1}))
    (tmp_path / "deal" / "429.json").write_text(
        json.dumps([{k: v for k, v in page.items() if k not in ("deals", "dealsCached")}])
    )
    (tmp_path / "product").mkdir()
    product = realdata("product_1886940606.json")
    with gzip.open(tmp_path / "product" / "answer.json.gz", "wt") as file:
        json.dump({"products": [product]}, file)
    (tmp_path / "token").mkdir()
    (tmp_path / "token" / "status.json").write_text(json.dumps(realdata("token_bodies.json")[3]))
    recordings = Recordings.load(tmp_path)
    assert [p["timestamp"] for p in recordings.deal_pages] == [1, page["timestamp"]]
    assert list(recordings.products) == ["1886940606"]
    assert len(recordings.token_bodies) == 1
    with KeepaEmulator(recordings=tmp_path, clock=ManualClock()) as keepa:
        body = http.get(
            f"{keepa.url}/product", params={"key": KEY, "domain": 1, "asin": "1886940606"}
        ).json()
        assert body["products"] == [product]
        assert body["tokensConsumed"] == 1


@pytest.mark.parametrize(
    ("files", "match"),
    [
        (None, "must be a folder"),
        ({}, "holds no deal page, product or token body"),
        ({"deal/x.json": "{not json"}, "x.json is not readable JSON"),
        ({"deal/x.json": "[1]"}, "holds int, not a JSON object"),
        ({"deal/x.json": '{"deals": {"dr": 5}}'}, "no 'dr' list"),
        ({"product/x.json": '{"title": "no asin"}'}, "a product without an 'asin'"),
    ],
)
def test_bad_recordings_are_refused_naming_the_file(
    tmp_path: Path, files: dict[str, str] | None, match: str
) -> None:
    """A missing folder, an empty one or a malformed file is a ValueError naming it."""
    folder = tmp_path / "recorded"
    if files is not None:
        folder.mkdir()
        for name, text in files.items():
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_text(text)
    with pytest.raises(ValueError, match=match):
        KeepaEmulator(recordings=folder)
