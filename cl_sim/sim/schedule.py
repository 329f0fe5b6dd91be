"""Schedules: which tasks arrive, when, from which tenant, and how many may train at once.

    Schedule.one_at_a_time(order, tenants)     # the ordering stream: times 0, 1, 2, ... on one slot
    Schedule(stream_events(cfg, tasks), slots)  # the tenants timeline: an ordering with `stream.times`
                                                # or seeded Poisson arrivals per tenant, on N slots

`Slots` is the clock the loop (`cl_sim.sim.loop`) runs a schedule with: first come, first served
(FIFO); an arrival starts once it has arrived and a slot is free (the slot free first, lowest
number on ties). With one slot every earlier arrival is ready when the next one starts, so the
ordering stream's teachers are all the tasks before it, whatever the phases cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from cl_sim.config import Config
from cl_sim.data.task import Task, stable_seed
from cl_sim.errors import ConfigError


@dataclass(frozen=True)
class ArrivalEvent:
    """One task arriving from one tenant at a simulated time (seconds)."""

    time: float
    tenant: str
    task: str


@dataclass(frozen=True)
class Schedule:
    """Arrivals and the slots they share."""

    events: tuple[ArrivalEvent, ...]
    slots: int = 1

    def __post_init__(self):
        object.__setattr__(self, "events", tuple(self.events))
        names = [e.task for e in self.events]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"stream: task '{repeated[0]}' arrives more than once")
        if self.slots < 1:
            raise ValueError(f"a schedule needs at least one slot, got {self.slots}")

    @classmethod
    def one_at_a_time(cls, order: Sequence[str], tenants: dict[str, str]) -> "Schedule":
        """The ordering stream: `order` arriving at 0, 1, 2, ... on one slot."""
        return cls(tuple(ordering_events(order, tenants)), 1)

    def fifo(self) -> list[ArrivalEvent]:
        """The events in the order they are served: by time, then as given."""
        return [self.events[i] for i in sorted(range(len(self.events)), key=lambda i: (self.events[i].time, i))]


class Slots:
    """The FIFO clock: `start(event)` -> (slot, simulated start); `finish(slot, ready)` frees it."""

    def __init__(self, n: int):
        self.free = [0.0] * n

    def start(self, event: ArrivalEvent) -> tuple[int, float]:
        slot = min(range(len(self.free)), key=lambda s: (self.free[s], s))
        return slot, max(event.time, self.free[slot])

    def finish(self, slot: int, ready: float) -> None:
        self.free[slot] = ready


def ordering_events(order: Sequence[str], tenants: dict[str, str],
                    times: Sequence[float] = ()) -> list[ArrivalEvent]:
    """An explicit ordering as events at `times` (default 0, 1, 2, ...); tenants: task -> tenant."""
    times = tuple(times) or tuple(float(i) for i in range(len(order)))
    if len(times) != len(order):
        raise ConfigError(f"stream.times: {len(times)} times for an ordering of {len(order)} tasks")
    return [ArrivalEvent(float(t), tenants[name], name) for t, name in zip(times, order)]


def _poisson_times(horizon: float, rate: float, seed: int, tenant: str) -> list[float]:
    rng = np.random.default_rng(stable_seed("poisson", seed, tenant))
    times, t = [], 0.0
    while True:
        t += float(rng.exponential(1.0 / rate))
        if t > horizon:
            return times
        times.append(round(t, 6))


def poisson_events(pools: dict[str, Sequence[str]], horizon: float, rate: float, seed: int,
                   shared: Optional[Sequence[str]] = None) -> list[ArrivalEvent]:
    """Seeded Poisson arrivals per tenant over [0, horizon], tasks drawn without replacement.

    Args:
        pools: tenant -> its task pool (ignored for the draw when `shared` is given).
        horizon: simulated seconds.
        rate: arrivals per tenant per simulated second.
        seed: stream seed; each tenant's clock and draw derive from (seed, tenant) via sha256.
        shared: one pool every tenant draws from, in global arrival order.

    Returns:
        Events sorted by (time, tenant). A tenant whose pool is exhausted stops arriving.
    """
    clocks = {t: _poisson_times(horizon, rate, seed, t) for t in sorted(pools)}
    if shared is None:
        events = []
        for tenant, times in clocks.items():
            rng = np.random.default_rng(stable_seed("draw", seed, tenant))
            pool = sorted(pools[tenant])
            drawn = [pool[i] for i in rng.permutation(len(pool))[: len(times)]]
            events += [ArrivalEvent(t, tenant, name) for t, name in zip(times, drawn)]
        return sorted(events, key=lambda e: (e.time, e.tenant))
    pool = sorted(shared)
    drawn = [pool[i] for i in np.random.default_rng(stable_seed("draw", seed, "shared")).permutation(len(pool))]
    slots = sorted((t, tenant) for tenant, times in clocks.items() for t in times)
    return [ArrivalEvent(t, tenant, name) for (t, tenant), name in zip(slots, drawn)]


def stream_events(cfg: Config, tasks: dict[str, Task]) -> list[ArrivalEvent]:
    """The config's stream: `stream.kind=ordering` (with `stream.times`) or `poisson`."""
    s = cfg.stream
    names = list(s.ordering) or [t.name for t in cfg.tasks if t.name in tasks] or list(tasks)
    owner = {n: tasks[n].tenant for n in names}
    if s.kind == "ordering":
        return ordering_events(names, owner, s.times)
    if s.pool == "shared":
        tenants = s.tenants or tuple(sorted(set(owner.values())))
        events = poisson_events({t: () for t in tenants}, s.horizon, s.rate, s.seed, shared=names)
    else:
        pools = {t: [n for n in names if owner[n] == t] for t in sorted(set(owner.values()))}
        unknown = [t for t in s.tenants if t not in pools]
        if unknown:
            raise ConfigError(f"stream.tenants: tenant '{unknown[0]}' owns no task (tenants: {', '.join(pools)})")
        pools = {t: p for t, p in pools.items() if not s.tenants or t in s.tenants}
        events = poisson_events(pools, s.horizon, s.rate, s.seed)
    if not events:
        raise ConfigError(f"stream: no Poisson arrival within stream.horizon={s.horizon} at stream.rate={s.rate}; "
                          "raise either")
    return events
