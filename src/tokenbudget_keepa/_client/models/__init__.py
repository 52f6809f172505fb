"""Keepa's data as typed values (private: users import from :mod:`tokenbudget_keepa`).

:mod:`.products` (products, deals, token status), :mod:`.query` (the deal selection),
:mod:`.finder` (the product finder selection), :mod:`.results` (finder pages, categories,
sellers, lightning deals), :mod:`.price_type`, :mod:`.history`, :mod:`.offers`, :mod:`.stats`,
:mod:`.keepa_time` (Keepa minutes) and :mod:`.json_read` (readers that never raise).
"""
