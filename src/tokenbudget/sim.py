"""See a budget before spending it: a deterministic simulator of consumers sharing one bucket.

One or more :class:`Consumer` objects share one real :class:`~tokenbudget.TokenBucket`
on a :class:`~tokenbudget.ManualClock`; :func:`simulate` runs them for simulated
hours in milliseconds and returns a :class:`SimulationReport`: items per hour,
utilization of the refill budget, the longest stall, idle wake-ups, tokens lost
at capacity.

>>> from tokenbudget.sim import Consumer, INCIDENT_CONFIG, simulate
>>> report = simulate(INCIDENT_CONFIG, Consumer(item_cost=5, batch="auto"), hours=24)
>>> round(report.items_per_hour)  # 5 tokens a minute / 5 tokens an item
60

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from ._sim import (
    INCIDENT_CONFIG,
    MIN_POLL_INTERVAL,
    BatchPolicy,
    Consumer,
    ConsumerReport,
    ItemCost,
    SimulationReport,
    Strategy,
    incident_workload,
    simulate,
)


__all__ = [
    "INCIDENT_CONFIG",
    "MIN_POLL_INTERVAL",
    "BatchPolicy",
    "Consumer",
    "ConsumerReport",
    "ItemCost",
    "SimulationReport",
    "Strategy",
    "incident_workload",
    "simulate",
]
