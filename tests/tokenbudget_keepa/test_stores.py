"""Watermark stores and deal sinks: compare-and-set forward only, idempotent upserts."""

from __future__ import annotations

import pytest

from tokenbudget_keepa import (
    AcceptedDeal,
    DealSink,
    MemoryDealSink,
    MemoryWatermarkStore,
    Watermark,
    WatermarkStore,
)


def accepted(asin, last_update=100, **kw):
    return AcceptedDeal(
        asin=asin, title=kw.pop("title", None), last_update=last_update, domain=1, **kw
    )


@pytest.fixture
def store():
    s = MemoryWatermarkStore()
    yield s
    s.close()


@pytest.fixture
def sink():
    s = MemoryDealSink()
    yield s
    s.close()


def test_memory_store_is_a_watermark_store(store):
    """MemoryWatermarkStore satisfies the WatermarkStore protocol."""
    assert isinstance(store, WatermarkStore)


def test_load_of_unknown_key_is_none(store):
    """A key never advanced has no watermark."""
    assert store.load("job") is None


def test_advance_forward_only(store):
    """advance stores a greater watermark and refuses an equal or smaller one."""
    assert store.advance("job", Watermark(10, "B1"))
    assert not store.advance("job", Watermark(10, "B1"))
    assert not store.advance("job", Watermark(9, "ZZ"))
    assert store.advance("job", Watermark(10, "B2"))
    assert store.load("job") == Watermark(10, "B2")


def test_reset_and_keys(store):
    """reset forgets one key; keys lists the others sorted."""
    store.advance("b", Watermark(1, ""))
    store.advance("a", Watermark(1, ""))
    store.reset("b")
    store.reset("never")
    assert store.keys() == ["a"]
    assert store.load("b") is None


def test_empty_key_is_refused(store):
    """An empty key raises ValueError."""
    with pytest.raises(ValueError, match="key"):
        store.load("")


def test_memory_sink_is_a_deal_sink(sink):
    """MemoryDealSink satisfies the DealSink protocol."""
    assert isinstance(sink, DealSink)


def test_upsert_is_idempotent(sink):
    """Upserting the same deals twice keeps one record per ASIN."""
    deals = [accepted("B1"), accepted("B2")]
    sink.upsert(deals)
    sink.upsert(deals)
    assert sink.asins() == frozenset({"B1", "B2"})
    assert len(sink) == 2


def test_upsert_never_rolls_back(sink):
    """An older record of an ASIN never replaces a newer one; a newer one does."""
    sink.upsert([accepted("B1", 200, title="new")])
    sink.upsert([accepted("B1", 100, title="old")])
    assert sink.get("B1").title == "new"
    sink.upsert([accepted("B1", 300, title="newer")])
    assert sink.get("B1").title == "newer"


def test_accepted_deal_validates():
    """AcceptedDeal refuses an empty ASIN and a non-int last_update, naming the field."""
    with pytest.raises(ValueError, match="asin"):
        accepted("")
    with pytest.raises(TypeError, match="last_update"):
        accepted("B1", last_update="1")


def test_accepted_deal_json():
    """deal_json and product_json are compact, key-sorted JSON (product None stays None)."""
    deal = accepted("B1", deal={"b": 1, "a": [1, 2]})
    assert deal.deal_json() == '{"a":[1,2],"b":1}'
    assert deal.product_json() is None
