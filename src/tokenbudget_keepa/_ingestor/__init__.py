"""The Smart Ingestor's parts (private: users import from :mod:`tokenbudget_keepa`).

:mod:`.ingestor` (the run), :mod:`.filters`, :mod:`.backlog` (pages fetched, not yet processed),
:mod:`.watermark` and :mod:`.stores` (how far it got), :mod:`.lease` (one holder per job),
:mod:`.sinks` (where accepted deals go), :mod:`.sqlite_db` and :mod:`.storage` (one ``--store``
value opens them all), :mod:`.report` (what a run did), :mod:`.beats` (running it once a period).
The deployment on Redis, PostgreSQL and Celery is in the public modules
:mod:`tokenbudget_keepa.redis`, :mod:`tokenbudget_keepa.postgres` and
:mod:`tokenbudget_keepa.celery`.
"""
