"""The Keepa client, layer by layer (private: users import from :mod:`tokenbudget_keepa`).

* :mod:`.endpoints` — every request Keepa answers, sans-I/O: what it sends, its cost bound, how
  its answer reads; :mod:`.envelope` — the envelope every answer carries (tokens, refill, time);
  :mod:`.cost` — what a request will cost before it is sent; :mod:`.exchange` — one request's
  retry decisions; :mod:`.errors` — the error tree.
* :mod:`.clients` — :class:`~tokenbudget_keepa.KeepaClient` and
  :class:`~tokenbudget_keepa.AsyncKeepaClient`, which only send, wait and sleep;
  :mod:`.steps` — how their request logic, written once, yields its I/O for each to run;
  :mod:`.endpoint_methods` — the endpoints as methods of both, each written once;
  :mod:`.deadline`, :mod:`.redaction`, :mod:`.spending` — per-request deadline, keeping the key
  out of logs, what one context spent.
* :mod:`.models` — Keepa's JSON as typed values (products, deals, selections, results).
"""
