"""tokenbudget_keepa: the Keepa API on top of tokenbudget (work in progress).

The Keepa client, Smart Ingestor, filters and watermark stores arrive in a
later release; this package currently only reserves the import name.
"""

from __future__ import annotations


__all__: list[str] = []
