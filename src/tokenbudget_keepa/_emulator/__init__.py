"""The Keepa emulator's parts (private): its public face is :mod:`tokenbudget_keepa.testing`.

:mod:`.account` — one account's tokens, as Keepa counts them (the test oracle); :mod:`.data` —
the seeded catalog and deal stream; :mod:`.endpoints` — the answers to the rest of the API;
:mod:`.recordings` — recorded real answers it can serve instead.
"""
