"""SPEC §3.7, backend equivalence: every backend decides as the pure core does.

Hypothesis draws a configuration (continuous and stepped refills, every
deficit rule) and a sequence of operations at given times. The pure reference
(``_core.apply`` on a local state) runs it, and so do the memory, SQLite and
Redis backends, each with the same ManualClock. Every outcome and every
snapshot must match the reference bit for bit: decisions (admitted or not,
booking ids, recharge mode and its transitions, pending counts) and every
delay, time and balance. The memory and SQLite backends run the same Python
functions, and the Lua twin does the same IEEE double operations in the same
order (the SQLite and Redis formats store doubles as text that round-trips).
Syncs carry server stamps (``as_of``), equal, older (stale) and far in the
future.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import (
    as_of_stamps,
    clock_origins,
    clock_steps,
    configs,
    costs,
    starting_balances,
    step_clock,
)
from tokenbudget import BucketConfig, ManualClock, MemoryBackend, SQLiteBackend, _core
from tokenbudget._core import (
    Admit,
    Cancel,
    Observation,
    Outcome,
    Rebook,
    Request,
    SetRate,
    Settle,
    Sync,
)


@dataclass
class Booking:
    booking_id: int
    time: float
    charged: float
    spent: float
    cancelled: bool = False


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def operations(config: BucketConfig) -> st.SearchStrategy[tuple[Any, ...]]:
    """One step of a scenario: move the clock, or call the bucket."""
    rate = config.refill.tokens_per_second
    span = config.capacity / rate
    step = config.refill_step
    dts = [st.just(0.0), _floats(0.0, span * 2), st.just(1e-10)]
    if step is not None:
        dts.append(st.sampled_from([step, step / 2, step * 3]))
    return st.one_of(
        st.tuples(st.just("advance"), st.one_of(dts)),
        st.tuples(st.just("step"), clock_steps()),
        st.tuples(st.just("try"), costs(config)),
        st.tuples(st.just("reserve"), costs(config)),
        st.tuples(st.just("acquire"), costs(config), _floats(0.0, span)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("settle"), st.integers(0, 50), _floats(0.0, config.capacity * 2)),
        st.tuples(
            st.just("sync"),
            starting_balances(config),
            st.one_of(st.none(), _floats(0.0, step or 60.0)),
            st.one_of(st.none(), _floats(1e-3, 1e3)),
            as_of_stamps(),
        ),
        st.tuples(st.just("rate"), _floats(1e-3, 1e3)),
        st.tuples(st.just("rebook"), st.integers(0, 50)),
        st.tuples(st.just("observe")),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[BucketConfig, float, list[tuple[Any, ...]], float]:
    """A config, a starting balance, operations, and the clock's origin (0, monotonic, wall)."""
    config = draw(configs(steps=True, in_flight=True))
    initial = draw(starting_balances(config))
    ops = draw(st.lists(operations(config), min_size=5, max_size=40))
    return config, initial, ops, draw(clock_origins())


class Reference:
    """The pure core on a local state: the oracle."""

    def __init__(self, config: BucketConfig, initial: float, clock: ManualClock) -> None:
        self.config = config
        self.clock = clock
        self.state = _core.new_state(config, initial, clock.now())

    def apply(self, request: Request) -> Outcome:
        return _core.apply(self.config, self.state, self.clock.now(), request)

    def observe(self) -> Observation:
        return _core.observe(self.config, self.state, self.clock.now())


class OnBackend:
    """One backend, driven through the Backend protocol as the buckets drive it."""

    def __init__(self, backend: Any, config: BucketConfig, initial: float, clock: ManualClock):
        self.backend = backend
        self.config = config
        self.initial = initial
        self.clock = clock
        self.key = uuid.uuid4().hex

    def apply(self, request: Request) -> Outcome:
        return self.backend.apply(self.key, self.config, self.clock, self.initial, request)

    def observe(self) -> Observation:
        return self.backend.observe(self.key, self.config, self.clock, self.initial)


def assert_same(name: str, got: tuple[Any, ...], want: tuple[Any, ...]) -> None:
    """Every field equal, bit for bit (decisions, delays, times, balances)."""
    assert type(got) is type(want), (name, got, want)
    for field, g, w in zip(want._fields, got, want, strict=True):  # type: ignore[attr-defined]
        assert type(g) is type(w), f"{name}: {field} {g!r} is not a {type(w).__name__}"
        assert g == w, f"{name}: {field} {g!r} != reference {w!r}\n{got}\n{want}"


class Scenario:
    """Runs one sequence of operations on the reference and on every backend, comparing."""

    def __init__(
        self,
        config: BucketConfig,
        initial: float,
        backends: dict[str, Callable[[ManualClock], Any]],
        origin: float = 1000.0,
    ) -> None:
        self.clock = clock = ManualClock(origin)
        self.reference = Reference(config, initial, clock)
        self.others = {
            name: OnBackend(make(clock), config, initial, clock) for name, make in backends.items()
        }
        self.bookings: list[Booking] = []

    def check(self, request: Request | None) -> Any:
        """Apply *request* (None: observe) everywhere; the backends must match the reference."""
        ref = self.reference
        want = ref.observe() if request is None else ref.apply(request)
        for name, other in self.others.items():
            got = other.observe() if request is None else other.apply(request)
            assert_same(name, got, want)
        return want

    def admit(self, cost: float, max_wait: float) -> None:
        out = self.check(Admit(cost, max_wait))
        if out.ok:
            self.bookings.append(Booking(out.booking_id, out.time + out.delay, cost, out.spent))

    def booking(self, index: int) -> Booking | None:
        """A booking the shell would still send to the backend (not cancelled)."""
        if not self.bookings:
            return None
        b = self.bookings[index % len(self.bookings)]
        return None if b.cancelled else b

    def rebook(self, index: int) -> None:
        """Book a booking again: the last one, mostly (the others are refused)."""
        if not self.bookings:
            return
        b = self.bookings[-1] if index % 2 else self.bookings[index % len(self.bookings)]
        out = self.check(Rebook(b.booking_id))
        if out.ok:  # booked again: a new id, time and spent figure
            b.cancelled = True
            self.bookings.append(
                Booking(out.booking_id, out.time + out.delay, b.charged, out.spent)
            )

    def step(self, op: tuple[Any, ...]) -> None:  # noqa: C901 -- one branch an operation
        kind = op[0]
        if kind == "advance":
            self.clock.advance(op[1])
            return
        if kind == "step":  # the clock steps back or forward (a wall clock, Redis TIME)
            step_clock(self.clock, op[1])
            return
        if kind == "try":
            self.admit(op[1], 0.0)
        elif kind == "reserve":
            self.admit(op[1], math.inf)
        elif kind == "acquire":
            self.admit(op[1], op[2])
        elif kind == "cancel" and (b := self.booking(op[1])) is not None:
            b.cancelled = self.check(Cancel(b.booking_id, b.time, b.charged)).ok
        elif kind == "settle" and (b := self.booking(op[1])) is not None:
            self.check(Settle(b.booking_id, b.time, b.charged, op[2], b.spent))
            b.charged = op[2]
        elif kind == "sync":
            self.check(Sync(op[1], op[2], op[3], op[4] if len(op) > 4 else None))
        elif kind == "rate":
            self.check(SetRate(op[1]))
        elif kind == "rebook":
            self.rebook(op[1])
        self.check(None)


def run_scenario(
    config: BucketConfig,
    initial: float,
    ops: list[tuple[Any, ...]],
    backends: dict[str, Callable[[ManualClock], Any]],
    origin: float = 1000.0,
) -> None:
    scenario = Scenario(config, initial, backends, origin)
    scenario.check(None)  # creates the bucket everywhere, at the same time
    for op in ops:
        scenario.step(op)


#: Three times the profile's examples: this is the test that pins the Lua twin to the core.
_DIFF_SETTINGS = settings(
    max_examples=settings.default.max_examples * 3,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("differential") / "buckets.db"


@_DIFF_SETTINGS
@given(scenario=scenarios())
def test_memory_and_sqlite_match_the_reference(scenario, sqlite_path):
    """The memory and SQLite backends return the reference's decisions, delays and balances."""
    config, initial, ops, origin = scenario
    opened: list[SQLiteBackend] = []

    def sqlite(clock: ManualClock) -> SQLiteBackend:
        opened.append(SQLiteBackend(sqlite_path, clock=clock))
        return opened[-1]

    try:
        run_scenario(
            config,
            initial,
            ops,
            {"memory": lambda _: MemoryBackend(), "sqlite": sqlite},
            origin,
        )
    finally:
        for backend in opened:
            backend.close()


@pytest.mark.redis
@_DIFF_SETTINGS
@given(scenario=scenarios())
def test_redis_lua_matches_the_reference(scenario, redis_client, redis_prefix):
    """The Lua twin returns the reference's decisions, delays and balances."""
    from tokenbudget.redis import RedisBackend

    config, initial, ops, origin = scenario
    run_scenario(
        config,
        initial,
        ops,
        {"redis": lambda clock: RedisBackend(redis_client, prefix=redis_prefix, clock=clock)},
        origin,
    )


@pytest.mark.redis
def test_all_backends_on_the_incident_numbers(redis_client, redis_prefix, tmp_path):
    """The worked numbers of SPEC §2, through every backend at once, with exact agreement."""
    from tokenbudget import DeficitRule, Rate
    from tokenbudget.redis import RedisBackend

    config = BucketConfig(
        300,
        Rate.per_minute(5),
        burst_threshold=40,
        min_threshold=1,
        deficit=DeficitRule.while_positive(),
    )
    ops: list[tuple[Any, ...]] = [
        ("try", 100.0),  # admitted, leaves -60 in recharge mode
        ("reserve", 10.0),  # waits (40 + 60) / (5/60) = 1200 s
        ("advance", 600.0),
        ("cancel", 1),
        ("advance", 600.0),
        ("try", 25.0),
        ("settle", 0, 120.0),
        ("sync", 12.0, 30.0, None, 5.0),
        ("advance", 1.0),
        ("sync", 50.0, None, None, 4.0),  # stale: older than the one adopted
        ("observe",),
    ]
    run_scenario(
        config,
        40.0,
        ops,
        {
            "memory": lambda _: MemoryBackend(),
            "sqlite": lambda clock: SQLiteBackend(tmp_path / "b.db", clock=clock),
            "redis": lambda clock: RedisBackend(redis_client, prefix=redis_prefix, clock=clock),
        },
    )
