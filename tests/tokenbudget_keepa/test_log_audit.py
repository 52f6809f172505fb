"""The key audit every Keepa and deployment test runs under finds a key planted in a record."""

from __future__ import annotations

import logging

import pytest

from tests._log_audit import audit_fixture, key_audit
from tokenbudget_keepa._client import redaction
from tokenbudget_keepa._client.redaction import keep_key_out_of_logs


#: A key no emulator of the suite uses: the audit around this test itself must not see it.
PLANTED = "pLaNtEd-kEy-9876543210"


def test_a_key_in_a_debug_message_of_a_library_logger_is_found():
    """A DEBUG record of a library's logger (httpcore) holding the key is a hit."""
    with key_audit([PLANTED]) as audit:
        logging.getLogger("httpcore.http11").debug("send_request_headers %s", f"/x?key={PLANTED}")
    assert len(audit.hits) == 1
    assert "httpcore.http11" in audit.hits[0]


def test_a_key_in_a_logger_created_during_the_test_or_an_exception_is_found():
    """A logger created while auditing, and an exception's text, are searched too."""
    error = ValueError(f"bad url https://x/?key={PLANTED}")
    with key_audit([PLANTED]) as audit:
        logging.getLogger(f"brand.new.{id(audit)}").debug("failed", exc_info=error)
        logging.getLogger("tokenbudget_keepa").info("clean record")
    assert len(audit.hits) == 1
    assert audit.records >= 2


def test_the_fixture_fails_the_test_that_planted_a_key():
    """The autouse fixture's body fails a test one of whose records holds a key."""
    fixture = audit_fixture([PLANTED])
    next(fixture)
    logging.getLogger("httpx").debug("GET https://api.keepa.com/token?key=%s", PLANTED)
    with pytest.raises(pytest.fail.Exception, match="hold an API key"):
        next(fixture)


def test_a_key_given_to_a_client_before_the_audit_does_not_hide_a_record():
    """The client's key filter is one for the process: keys it got before the audit (an
    earlier test's clients: "k" cuts every k out) are not cut out of records during it."""
    keep_key_out_of_logs(PLANTED)
    keep_key_out_of_logs("k")
    with key_audit([PLANTED]) as audit:
        logging.getLogger("httpx").info("HTTP Request: GET https://x/product?key=%s", PLANTED)
    assert len(audit.hits) == 1
    assert PLANTED in audit.hits[0]


def test_a_key_given_to_a_client_during_the_audit_is_cut_out_and_the_earlier_ones_are_back():
    """A key given during the audit is redacted as for a user (the client's own filter
    works); after it, the filter holds the keys it held before, and only those."""
    keep_key_out_of_logs("earlier-key")
    with key_audit([PLANTED]) as audit:
        keep_key_out_of_logs(PLANTED)
        logging.getLogger("httpcore.http11").debug("location %s", f"/x?key={PLANTED}")
    assert audit.hits == []
    assert audit.records >= 1
    assert "earlier-key" in redaction._FILTER._forms
    assert PLANTED not in redaction._FILTER._forms


def test_levels_and_pytest_handlers_are_restored():
    """After the audit every logger has its level back (the suite's other tests see no change)."""
    named = logging.getLogger("tokenbudget_keepa.test_log_audit")
    named.setLevel(logging.ERROR)
    try:
        with key_audit([PLANTED]):
            assert named.isEnabledFor(logging.DEBUG)
        assert named.level == logging.ERROR
    finally:
        named.setLevel(logging.NOTSET)
