"""The shared data folders the real-data tests read are found (and complete)."""

from __future__ import annotations

from tests.shared_data import quota_samples_dir, realdata, realdata_dir, realdata_files


def test_realdata_is_found() -> None:
    """The real Keepa data folder holds its index and every file the index names."""
    folder = realdata_dir()
    for entry in realdata("index.json"):
        assert (folder / entry["file"]).is_file(), entry["file"]


def test_realdata_deals_load() -> None:
    """The gzipped real deals load as a list of {"deal", "envelope_timestamp"} entries."""
    deals = realdata("deals_unique.json.gz")
    assert len(deals) == 4435
    assert all("asin" in entry["deal"] for entry in deals)
    assert len(realdata_files("deal_page_*.json")) >= 7


def test_quota_samples_are_found() -> None:
    """The quota-header samples folder is found."""
    assert any(quota_samples_dir().glob("*.txt"))
