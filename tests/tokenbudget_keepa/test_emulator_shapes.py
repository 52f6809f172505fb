"""The emulator against real Keepa answers (``../shared/realdata``), field by field.

Users test their code against :class:`KeepaEmulator`: where its answers differ
from Keepa's, their tests lie to them. These tests fail as soon as the
emulator drifts from the real bodies: keys, value types, array lengths, the
image encoding, the 429 and error bodies; it accepts the real selections and
charges what real requests cost.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import pytest

from tests.shared_data import realdata, realdata_files, realdata_names
from tokenbudget_keepa.testing import KeepaEmulator


KEY = "test-key"
#: Price-type arrays of real answers: one entry per price type 0..33.
PRICE_TYPES = 34

#: These tests send the key in plain httpx URLs of their own.
pytestmark = pytest.mark.usefixtures("emulator_key_out_of_httpx_logs")


@pytest.fixture(scope="module")
def http() -> Any:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def keepa(make_emulator: Any) -> KeepaEmulator:
    """An emulator with a day of deals and tokens enough for every request here."""
    return make_emulator(refill_per_min=5000, history_minutes=24 * 60)  # type: ignore[no-any-return]


def kind(value: object) -> str:
    """The JSON type of *value* (int and float apart, as Keepa sends them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str", list: "list", dict: "object"}[type(value)]


def kinds_by_key(objects: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for obj in objects:
        for name, value in obj.items():
            found[name].add(kind(value))
    return found


def assert_like(
    emulated: list[Mapping[str, Any]],
    real: list[Mapping[str, Any]],
    what: str,
    *,
    usual: float = 0.99,
    nullable_ok: bool = False,
) -> None:
    """Every key the emulator sends is a real one, of a real type; every usual real key is sent.

    A key is *usual* when at least ``usual`` of the real objects have it; a rare
    one (``parentAsin`` in 1 of 4,435 deals) the emulator may leave out. With
    ``nullable_ok``, ``null`` is accepted for any key (a real value may be
    ``null`` where the sample happens to have one).
    """
    real_kinds = kinds_by_key(real)
    counts = Counter(name for obj in real for name in obj)
    common = {name for name, n in counts.items() if n >= usual * len(real)}
    for obj in emulated:
        assert set(obj) <= set(real_kinds), f"{what}: invented keys {set(obj) - set(real_kinds)}"
        assert common <= set(obj), f"{what}: missing keys {common - set(obj)}"
        for name, value in obj.items():
            allowed = real_kinds[name] | ({"null"} if nullable_ok else set())
            if "null" in real_kinds[name] and real_kinds[name] <= {"null"}:
                continue  # the samples only show null: any type is believable
            assert kind(value) in allowed, f"{what}.{name}: {kind(value)} not in {allowed}"


# -- deals ----------------------------------------------------------------------------


def real_deals() -> list[dict[str, Any]]:
    return [entry["deal"] for entry in realdata("deals_unique.json.gz")]


def emulated_deals(http: Any, keepa: KeepaEmulator, pages: int = 3) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in range(pages):
        selection = json.dumps({"priceTypes": [2], "page": page, "dateRange": 0})
        body = http.get(f"{keepa.url}/deal", params={"key": KEY, "selection": selection}).json()
        found += body["deals"]["dr"]
    return found


def test_deals_have_the_keys_and_types_of_real_deals(http: Any, keepa: KeepaEmulator) -> None:
    """Same keys (no invented minRating/parentAsin), same types, as the 4,435 real deals."""
    deals = emulated_deals(http, keepa)
    assert len(deals) == 450
    assert_like(deals, real_deals(), "deal")
    assert not any("minRating" in d or "parentAsin" in d for d in deals)
    assert any("warehouseConditionComment" in d for d in deals)  # as 109 real ones


def test_deal_arrays_have_the_real_lengths_and_element_types(
    http: Any, keepa: KeepaEmulator
) -> None:
    """34 entries per price-type row, 4 rows per interval field, ints (bools for backInStock)."""
    real = real_deals()
    rows = ("current", "currentSince", "deltaLast", "backInStock")
    grids = ("avg", "delta", "deltaPercent")
    for name in rows:
        assert {len(d[name]) for d in real} == {PRICE_TYPES}
    for deal in emulated_deals(http, keepa):
        for name in rows:
            assert len(deal[name]) == PRICE_TYPES, name
            wanted = "bool" if name == "backInStock" else "int"
            assert {kind(v) for v in deal[name]} == {wanted}, name
        for name in grids:
            assert [len(row) for row in deal[name]] == [PRICE_TYPES] * 4, name
            assert {kind(v) for row in deal[name] for v in row} == {"int"}, name


def test_deal_image_is_a_list_of_character_codes(http: Any, keepa: KeepaEmulator) -> None:
    """``image`` is the file name as character codes (an Amazon .jpg), as in real deals."""
    real_names = [bytes(d["image"]).decode() for d in real_deals()]
    lengths = Counter(len(name) for name in real_names)
    assert lengths.most_common(1)[0][0] == 15
    assert sum(name.endswith(".jpg") for name in real_names) > 0.9 * len(real_names)
    for deal in emulated_deals(http, keepa, pages=1):
        name = "".join(map(chr, deal["image"]))
        assert name.isascii()
        assert name.endswith(".jpg")
        assert len(name) in lengths


def test_deal_values_follow_the_real_conventions(http: Any, keepa: KeepaEmulator) -> None:
    """delta = avg - current, deltaPercent its rounded share, 0 where data is missing."""
    for deal in emulated_deals(http, keepa, pages=1):
        for r in range(4):
            for i in range(PRICE_TYPES):
                cur, avg = deal["current"][i], deal["avg"][r][i]
                delta, percent = deal["delta"][r][i], deal["deltaPercent"][r][i]
                if cur < 0 or avg < 0:
                    assert (delta, percent) == (0, 0)
                else:
                    assert delta == avg - cur
                    assert percent == round(100 * delta / avg)
                assert avg >= -2
        assert deal["dateIntervalIndex"] == 0


def test_some_creation_dates_come_after_the_last_update(make_emulator: Any) -> None:
    """As 30 of the 4,435 real deals, a few deals are created 2 minutes after their lastUpdate."""
    real = Counter(
        d["creationDate"] - d["lastUpdate"]
        for d in real_deals()
        if d["creationDate"] > d["lastUpdate"]
    )
    assert set(real) == {2}
    keepa = make_emulator(history_minutes=3 * 24 * 60, deals_per_minute=3)
    deals = keepa.deals_between(0, keepa.now_minute())
    late = [d for d in deals if d["creationDate"] > d["lastUpdate"]]
    assert late
    assert {d["creationDate"] - d["lastUpdate"] for d in late} == {2}
    assert len(late) < 0.02 * len(deals)


@pytest.mark.parametrize("name", realdata_names("deal_page_*.json"))
def test_deal_pages_are_shaped_as_the_real_ones(http: Any, keepa: KeepaEmulator, name: str) -> None:
    """The page's top level and its ``deals`` wrapper have the real keys and types."""
    real = realdata(name)
    count = len(real["deals"]["dr"])
    page = 0 if count else 99  # an empty real page: ask past the end
    selection = json.dumps({"priceTypes": [2], "page": page})
    body = http.get(f"{keepa.url}/deal", params={"key": KEY, "selection": selection}).json()
    assert {k: kind(v) for k, v in body.items()} == {k: kind(v) for k, v in real.items()}
    wrapper, real_wrapper = body["deals"], real["deals"]
    assert {k: kind(v) for k, v in wrapper.items()} == {k: kind(v) for k, v in real_wrapper.items()}
    assert len(wrapper["categoryIds"]) == len(wrapper["categoryNames"])
    assert len(wrapper["categoryIds"]) == len(wrapper["categoryCount"])
    assert all(kind(c) == "int" for c in wrapper["categoryIds"])
    assert (len(wrapper["dr"]) == 0) == (count == 0)


# -- token, 429 and error bodies ------------------------------------------------------


def test_token_bodies_are_shaped_as_the_real_ones(http: Any, keepa: KeepaEmulator) -> None:
    """``/token`` answers the real envelope: same keys, same types."""
    real = realdata("token_bodies.json")
    body = http.get(f"{keepa.url}/token", params={"key": KEY}).json()
    for sample in real:
        assert {k: kind(v) for k, v in body.items()} == {k: kind(v) for k, v in sample.items()}


def test_the_429_body_is_the_real_one(http: Any, make_emulator: Any) -> None:
    """A 429 is the envelope alone (no ``error``), with the balance at or below zero."""
    (real_file,) = realdata_files("deal_429_*.json")
    real = json.loads(real_file.read_text())
    keepa = make_emulator(tokens=-249)
    response = http.get(
        f"{keepa.url}/deal", params={"key": KEY, "selection": '{"priceTypes": [2]}'}
    )
    assert response.status_code == 429
    body = response.json()
    assert {k: kind(v) for k, v in body.items()} == {k: kind(v) for k, v in real.items()}
    assert "error" not in body
    assert (body["tokensLeft"], body["tokensConsumed"]) == (-249, 0)


def test_a_400_is_keepas_invalid_parameter_body(http: Any, keepa: KeepaEmulator) -> None:
    """A rejected request: ``error.type`` invalidParameter, Keepa's message, a zeroed envelope."""
    real_envelope = realdata("token_bodies.json")[0]
    response = http.get(
        f"{keepa.url}/deal", params={"key": KEY, "selection": '{"priceTypes": [99]}'}
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {*real_envelope, "error"}
    assert body["error"]["type"] == "invalidParameter"
    assert body["error"]["message"] == "You used an invalid parameter for this API call."
    assert "99" in body["error"]["details"]
    assert (body["tokensLeft"], body["refillRate"], body["refillIn"]) == (0, 0, 0)


# -- products -------------------------------------------------------------------------


def real_products() -> list[dict[str, Any]]:
    return [realdata(path.name) for path in realdata_files("product_*.json")]


def emulated_products(http: Any, keepa: KeepaEmulator, count: int = 30) -> list[dict[str, Any]]:
    params = {
        "key": KEY,
        "domain": 1,
        "asin": ",".join(keepa.catalog_asins(count)),
        "stats": 365,
        "offers": 50,
        "rating": 1,
        "buybox": 1,
        "stock": 1,
        "history": 1,
    }
    body = http.get(f"{keepa.url}/product", params=params).json()
    products: list[dict[str, Any]] = body["products"]
    assert len(products) == count
    return products


def test_products_have_the_keys_and_types_of_real_products(http: Any, keepa: KeepaEmulator) -> None:
    """Every key of the real product objects (null where there is no data), real types."""
    real = real_products()
    products = emulated_products(http, keepa)
    assert_like(products, real, "product", usual=1.0, nullable_ok=True)
    assert_like(
        [p["stats"] for p in products], [p["stats"] for p in real], "stats", usual=1.0,
        nullable_ok=True,
    )  # fmt: skip
    offers = [o for p in products for o in p["offers"]]
    assert_like(offers, [o for p in real for o in p["offers"]], "offer", usual=1.0)


def test_product_arrays_have_the_real_lengths(http: Any, keepa: KeepaEmulator) -> None:
    """``csv`` and the ``stats`` rows hold 34 entries; histories are pairs or triplets."""
    real = realdata("product_055299068X.json")
    rows = [n for n, v in real["stats"].items() if isinstance(v, list) and len(v) == PRICE_TYPES]
    assert {"current", "avg", "min", "max", "avg30", "avg90", "isLowest"} <= set(rows)
    triplets = {i for i, h in enumerate(real["csv"]) if h and i in (7, 18, *range(19, 28), 32)}
    for product in emulated_products(http, keepa, 10):
        assert len(product["csv"]) == PRICE_TYPES
        for i, history in enumerate(product["csv"]):
            if history is not None:
                assert len(history) % (3 if i in (7, 18, *range(19, 28), 32) else 2) == 0, i
        for name in rows:
            assert len(product["stats"][name]) == PRICE_TYPES, name
        for extreme in ("min", "max"):
            assert all(v is None or len(v) == 2 for v in product["stats"][extreme])
    assert triplets  # the real one has such histories, with their shipping


def test_real_product_ids_index_their_offers(http: Any, keepa: KeepaEmulator) -> None:
    """As in real products, ``liveOffersOrder`` indexes the live ones among all ``offers``."""
    for product in [*real_products(), *emulated_products(http, keepa, 10)]:
        offers, live = product["offers"], product["liveOffersOrder"]
        assert all(0 <= i < len(offers) for i in live)
        assert product["stats"]["retrievedOfferCount"] == len(live)


# -- what Keepa accepts ---------------------------------------------------------------


@pytest.mark.parametrize("name", realdata_names("selection_*.json"))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_real_selections_are_accepted(
    http: Any, keepa: KeepaEmulator, name: str, method: str
) -> None:
    """Every real selection (unknown fields, nulls, numbers as strings) is answered 200."""
    selection = realdata(name)
    if method == "GET":
        response = http.get(
            f"{keepa.url}/deal", params={"key": KEY, "selection": json.dumps(selection)}
        )
    else:
        response = http.post(f"{keepa.url}/deal", params={"key": KEY}, json=selection)
    assert response.status_code == 200, response.text
    assert response.json()["tokensConsumed"] == 5


@pytest.mark.parametrize(
    ("stats", "status"),
    [
        ("2025-08-20,2025-09-19", 200),  # Keepa's documented date range: yyyy-mm-dd
        ("1755648000000,1758240000000", 200),  # or Unix epoch milliseconds
        ("180", 200),
        ("2025-09-19,2025-08-20", 400),  # backwards
        ("2025-09-19", 400),
        ("2025-13-01,2025-12-31", 400),
        ("a,b", 400),
    ],
)
def test_stats_takes_a_date_range_as_keepa_does(
    http: Any, keepa: KeepaEmulator, stats: str, status: int
) -> None:
    """``stats=FROM,TO`` (dates or epoch ms) is accepted as Keepa documents; nonsense is a 400."""
    deals = http.get(
        f"{keepa.url}/deal", params={"key": KEY, "selection": json.dumps({"priceTypes": [1]})}
    ).json()["deals"]["dr"]
    response = http.get(
        f"{keepa.url}/product",
        params={"key": KEY, "domain": 1, "asin": deals[0]["asin"], "stats": stats},
    )
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["products"][0]["stats"] is not None
    else:
        assert "stats" in response.json()["error"]["details"]


def test_open_upper_bounds_and_strings_are_read_as_keepa_does(
    http: Any, keepa: KeepaEmulator
) -> None:
    """``[5000, -1]`` is "5000 or more"; ``"1"`` is 1; ``null`` is absent."""

    def asins(selection: dict[str, Any]) -> list[str]:
        body = http.get(
            f"{keepa.url}/deal", params={"key": KEY, "selection": json.dumps(selection)}
        ).json()
        return [d["asin"] for d in body["deals"]["dr"]]

    base = {"priceTypes": [1], "sortType": 3}
    open_bound = asins({**base, "salesRankRange": [5000, -1]})
    assert open_bound == asins({**base, "salesRankRange": [5000, 2**31 - 1]})
    assert open_bound
    assert open_bound != asins(base)
    assert asins({**base, "domainId": "1", "dateRange": "0"}) == asins({**base, "domainId": 1})
    assert asins({**base, "deltaLastRange": None, "titleSearch": None}) == asins(base)


@pytest.mark.parametrize("domain", [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 7, 12])
def test_deal_domains_are_keepas(http: Any, keepa: KeepaEmulator, domain: int) -> None:
    """Deals are served for domains 1-6 and 8-11; 7 (gone) and 12 are refused."""
    selection = json.dumps({"priceTypes": [1], "domainId": domain})
    response = http.get(f"{keepa.url}/deal", params={"key": KEY, "selection": selection})
    assert response.status_code == (400 if domain in (7, 12) else 200)


# -- costs ----------------------------------------------------------------------------


def test_real_like_batches_cost_what_real_ones_did(http: Any, keepa: KeepaEmulator) -> None:
    """The logged batches' parameters cost, at the median, within the real range of their size."""
    observed: dict[int, list[int]] = defaultdict(list)
    params: dict[str, Any] = {}
    for entry in realdata("cost_observations.json")["product"]:
        observed[entry["asins"]].append(entry["tokensConsumed"])
        params = {k: v for k, v in entry["params"].items() if k != "only_live_offers"}
    assert set(observed) == {3, 50}
    first = 0
    for size, real_costs in observed.items():
        costs = []
        for _ in range(12):
            asins = keepa.catalog_asins(size, first=first)
            first += size
            body = http.get(
                f"{keepa.url}/product",
                params={"key": KEY, **params, "asin": ",".join(asins)},
            ).json()
            costs.append(body["tokensConsumed"])
        median = statistics.median(costs)
        assert 0.8 * min(real_costs) <= median <= 1.2 * max(real_costs), (size, costs, real_costs)


def test_fifty_asins_with_offers_in_one_request(http: Any, keepa: KeepaEmulator) -> None:
    """Keepa served 50 ASINs with offers=50 in one request: so does the emulator."""
    assert len(emulated_products(http, keepa, 50)) == 50


def test_every_real_deal_page_cost_five(http: Any, keepa: KeepaEmulator) -> None:
    """Every real /deal page cost 5, the empty one too: so do the emulator's."""
    assert {
        e["tokensConsumed"] for e in realdata("deal_envelopes.json") if e["_http_status"] == 200
    } == {5}
    for page in (0, 99):
        selection = json.dumps({"priceTypes": [2], "page": page})
        body = http.get(f"{keepa.url}/deal", params={"key": KEY, "selection": selection}).json()
        assert body["tokensConsumed"] == 5


# -- the project's models read the emulator's bodies as they read real ones ---------------


def test_the_models_read_emulated_deals_as_real_ones(http: Any, keepa: KeepaEmulator) -> None:
    """Every accessor of Deal works on the emulator's deals and agrees with the raw JSON."""
    from tokenbudget_keepa import Deal, PriceType

    for raw in emulated_deals(http, keepa, pages=1):
        deal = Deal.from_raw(raw)
        assert deal.image == "".join(map(chr, raw["image"]))
        assert deal.price(PriceType.NEW) == (raw["current"][1] if raw["current"][1] >= 0 else None)
        for price_type in (PriceType.NEW, PriceType.USED):
            if raw["current"][price_type] >= 0 and raw["avg"][0][price_type] > 0:
                assert deal.drop_percent(price_type, 0) == raw["deltaPercent"][0][price_type]
            deal.current_since(price_type)
            deal.last_change(price_type)
        assert deal.back_in_stock == {PriceType(i) for i, b in enumerate(raw["backInStock"]) if b}
        assert (deal.warehouse_condition is None) == (raw["warehouseCondition"] == 0)
        assert deal.sales_rank_drops(30) == (
            raw["salesRankDrops30"] if raw["salesRankDrops30"] >= 0 else None
        )
        assert deal.date_interval_index == 0
        assert deal.parent_asin is None
        assert deal.min_rating is None


def test_the_models_read_emulated_products_as_real_ones(http: Any, keepa: KeepaEmulator) -> None:
    """Product's histories, stats and offers read the emulator's products without surprise."""
    from tokenbudget_keepa import PriceType, Product

    for raw in emulated_products(http, keepa, 10):
        product = Product.from_raw(raw)
        assert len(product.live_offers) == len(raw["liveOffersOrder"])
        assert len(product.offers) == len(raw["offers"])
        histories = product.histories
        for price_type, history in histories.items():
            assert len(history) * (3 if price_type.with_shipping else 2) == len(
                raw["csv"][price_type]
            )
        assert product.price(PriceType.NEW) == (
            raw["stats"]["current"][1] if raw["stats"]["current"][1] >= 0 else None
        )
        assert product.stats is not None
