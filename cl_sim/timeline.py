"""The simulator over time (SPEC §1 stream, §4 cost, §5 concurrency): tenants' tasks arrive,
wait for one of `execution.slots` slots, train, and become teachers once *ready*.

    events = stream_events(cfg, tasks)                  # explicit ordering or seeded Poisson
    rec = run_timeline(cfg, tasks, executor, events)    # plan, then execute, then evaluate
    rec.rows                                            # one row per task (times, teachers, score, bytes)
    summarize(rec.rows, cfg.stream.storage_budget_bytes)

Plan, then execute. Every method is a pure recipe over content-derived store keys, so running
its `arrive` against a recorder (no training) yields the exact phases an arrival will run. The
plan walks the arrivals in FIFO order: a task starts when it has arrived and a slot is free; its
teachers are picked (`simulate.pick_teachers`) among the tasks whose adapters were *ready* at
that instant (ready <= start), never among those merely arrived or still training, so
concurrent arrivals cannot teach each other. Its simulated duration comes from the cost model below, which fixes
when it is ready, and so on. Then the planned arrivals execute through the executor
(`simulate.arrive`), each after the arrivals it depends on; the keys it produces must equal
the planned ones. Finally every task is evaluated once, as finally deployed.

Cost model (documented choice). Simulated seconds of one arrival =
    sum over its phases of  phase_overhead_s + passes x seconds_per_example[kind] x teacher_factor
    passes         = examples x max(epochs, ceil(min_steps / steps_per_epoch))    (`phase_passes`)
    teacher_factor = 1 + TEACHER_STEP_COST x (fused adapters - 1)   for fusion phases, else 1
passes counts the examples pushed through forward + backward, exactly as `train.run_phase` steps:
examples is the phase's share of the train split (fraction, max_examples), steps_per_epoch =
ceil(ceil(examples / batch_size) / grad_accum), and the step floor (`method.distill.min_steps`, 100
by default) adds epochs on small tasks, where it dominates (16 examples, batch 16: 100 epochs, not
the configured few). A fusion step crosses every teacher's adapter and the fusion layers at every
adapted position: docs/PERFORMANCE.md (`benchmarks/multi_teacher.py`, idle, 2026-12-01) measured
0.344 s/step at 1 teacher and 0.608 at 5 (1.77x), 0.837 at 8: about +0.2 of a 1-teacher step per
extra teacher (+0.08 with `method.fusion.factorized`: 1.696 -> 2.351 s at 5). Distillation's frozen
teacher runs once per example (cached), which the measured distill cost per pass includes.

Where the per-pass costs come from, in order: `stream.seconds_per_example` (a calibration: paste
`measured_seconds_per_example` over a store's entries for this backbone and machine; it divides each
entry's measured wall time by its passes x teacher_factor, so it is the same unit), else the
labelled fallback `SECONDS_PER_EXAMPLE` (measured once: MiniLM, max_length 64, batch 32, 2 CPU
threads, 256 synthetic examples, 1-3 fused adapters; +-40% run to run; another backbone or machine
needs a calibration). The plan never looks at the store: a phase reused from it is simulated as if
trained, so the schedule, and hence who teaches whom, depends only on config + seed. Measured wall
times are recorded beside the simulated ones (`wall_*` columns).
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Optional, Sequence

import numpy as np

from cl_sim import metrics
from cl_sim.config import Config
from cl_sim.data.task import Task, stable_seed
from cl_sim.errors import ConfigError
from cl_sim.methods import Deployed, Prior
from cl_sim.kinds import KINDS
from cl_sim.kinds.fusion import TEACHER_STEP_COST  # noqa: F401 (part of the cost model)
from cl_sim.phases import Phase
from cl_sim.simulate import arrive, attention_rows, deployment_costs, own_bytes, pick_teachers

# FALLBACK wall seconds per example pass, per phase kind (`Kind.seconds_per_example`, where they were
# measured), used only where `stream.seconds_per_example` gives no calibration
SECONDS_PER_EXAMPLE = {name: kind.seconds_per_example for name, kind in KINDS.items()}
# Each fused adapter beyond the first costs TEACHER_STEP_COST of a 1-teacher step (cl_sim/kinds/fusion.py).


@dataclass(frozen=True)
class ArrivalEvent:
    """One task arriving from one tenant at a simulated time (seconds)."""

    time: float
    tenant: str
    task: str


@dataclass(frozen=True)
class ScheduledArrival:
    """Where and when an arrival ran in the simulated schedule."""

    index: int  # FIFO position
    event: ArrivalEvent
    slot: int
    start: float
    ready: float
    available: tuple[str, ...]  # tasks whose adapters were ready at `start`, in ready order


@dataclass(frozen=True)
class PlannedArrival:
    """A scheduled arrival plus what it will run: teachers, history and phase keys."""

    scheduled: ScheduledArrival
    teachers: tuple[Prior, ...]
    history: tuple[Prior, ...]  # every prior ready at start, in ready order
    phases: tuple[str, ...]
    prior: Prior  # what this task leaves behind for later ones
    deployed: tuple[tuple[str, Deployed], ...]  # deployments this arrival sets (task -> keys)
    examples: int  # simulated example passes over its phases (`phase_passes`: step floor included)


@dataclass
class TimelineRecord:
    """Everything one timeline run produces, as rows ready for Parquet."""

    events: list[ArrivalEvent]
    plan: list[PlannedArrival]
    rows: list[dict] = field(default_factory=list)
    attention: list[dict] = field(default_factory=list)
    tenants: dict[str, int] = field(default_factory=dict)  # tenant -> stored bytes
    summary: dict = field(default_factory=dict)


# ---------------------------------------------------------------- streams


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


# ---------------------------------------------------------------- schedule and cost model


def schedule(events: Sequence[ArrivalEvent], slots: int,
             duration: Callable[[int, ArrivalEvent, tuple[str, ...]], float]) -> list[ScheduledArrival]:
    """FIFO schedule on `slots` slots: an arrival starts once it has arrived and a slot is free.

    Args:
        events: arrivals; served in (time, given order) order.
        slots: how many arrivals may train at the same time.
        duration: (index, event, tasks ready at its start) -> simulated seconds (> 0). It is
            called in FIFO order, so it may decide teachers from the ready tasks.

    Returns:
        One `ScheduledArrival` per event, in FIFO order.
    """
    order = sorted(range(len(events)), key=lambda i: (events[i].time, i))
    free = [0.0] * slots
    done: list[ScheduledArrival] = []
    for index, i in enumerate(order):
        event = events[i]
        slot = min(range(slots), key=lambda s: (free[s], s))
        start = max(event.time, free[slot])
        ready_now = sorted((d for d in done if d.ready <= start), key=lambda d: (d.ready, d.index))
        available = tuple(d.event.task for d in ready_now)
        seconds = float(duration(index, event, available))
        if not seconds > 0:
            raise ValueError(f"duration of {event.task} must be > 0, got {seconds}")
        free[slot] = start + seconds
        done.append(ScheduledArrival(index, event, slot, start, start + seconds, available))
    return done


def phase_examples(phase: Phase, task: Task) -> int:
    """Training examples per epoch of `phase` (the same subset rule as `phases.encoded`)."""
    n = len(task.splits["train"])
    keep = n if phase.max_examples is None else min(n, phase.max_examples)
    return max(1, int(round(keep * phase.fraction)))


def phase_passes(phase: Phase, task: Task) -> int:
    """Examples pushed through forward + backward by `phase`: its epochs, or more where the step
    floor `min_steps` needs them (the same rule as `train.run_phase`)."""
    n = phase_examples(phase, task)
    steps_per_epoch = max(1, math.ceil(math.ceil(n / phase.batch_size) / phase.grad_accum))
    return n * max(phase.epochs, math.ceil(phase.min_steps / steps_per_epoch))


def teacher_factor(phase: Phase) -> float:
    """A phase's cost per pass relative to a 1-teacher pass: grows with the adapters a fusion fuses
    (its kind's `pass_cost`)."""
    return KINDS[phase.kind].pass_cost(phase.spec)


def predicted_seconds(phases: Sequence[Phase], tasks: dict[str, Task], cfg: Config) -> tuple[float, int]:
    """Simulated seconds and example passes of `phases` under the cost model (module docstring)."""
    spe = {**SECONDS_PER_EXAMPLE, **cfg.stream.seconds_per_example}
    seconds, passes = 0.0, 0
    for p in phases:
        n = phase_passes(p, tasks[p.task])
        seconds += cfg.stream.phase_overhead_s + n * spe[p.kind] * teacher_factor(p)
        passes += n
    return seconds, passes


def measured_seconds_per_example(store, keys: Sequence[str]) -> dict[str, float]:
    """Measured wall seconds per example pass (per 1-teacher pass for fusion), per phase kind, over
    store entries `keys`: the cost model's unit. Paste the result into `stream.seconds_per_example`
    to calibrate the simulator for this backbone and machine.
    """
    wall: dict[str, float] = {}
    units: dict[str, float] = {}
    for key in dict.fromkeys(keys):
        meta = store.meta(key)
        kind = meta["phase"]["kind"]
        wall[kind] = wall.get(kind, 0.0) + meta["metrics"]["wall_s"]
        units[kind] = units.get(kind, 0.0) + meta["metrics"]["examples"] * teacher_factor(Phase.from_dict(meta["phase"]))
    return {k: wall[k] / max(1.0, units[k]) for k in sorted(wall)}


# ---------------------------------------------------------------- plan, execute


def _dry_run(cfg: Config, task: Task, teachers: Sequence[Prior], history: Sequence[Prior]):
    recorded: list[Phase] = []
    recorder = SimpleNamespace(run=lambda phase: recorded.append(phase) or phase.key())
    return arrive(cfg, cfg.method.name, task, teachers, history, recorder), recorded


def plan_timeline(cfg: Config, tasks: dict[str, Task], events: Sequence[ArrivalEvent]) -> list[PlannedArrival]:
    """Deterministic schedule of `events` with `cfg.method`, teachers and phases included."""
    priors: dict[str, Prior] = {}
    staged: dict[int, tuple] = {}

    def duration(index: int, event: ArrivalEvent, available: tuple[str, ...]) -> float:
        task = tasks[event.task]
        history = [priors[n] for n in available]
        teachers = pick_teachers(cfg, task, history, tasks)
        arrival, phases = _dry_run(cfg, task, teachers, history)
        priors[task.name] = Prior(task.name, arrival.adapter, arrival.deployed[task.name])
        seconds, steps = predicted_seconds(phases, tasks, cfg)
        staged[index] = (tuple(teachers), tuple(history), tuple(arrival.phases), priors[task.name],
                         tuple(sorted(arrival.deployed.items())), steps)
        return seconds

    names = [e.task for e in events]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"stream: task '{repeated[0]}' arrives more than once")
    return [PlannedArrival(s, *staged[s.index]) for s in schedule(events, cfg.execution.slots or 1, duration)]


def execute_plan(cfg: Config, tasks: dict[str, Task], plan: Sequence[PlannedArrival], executor,
                 log: Callable[[str], None] = print) -> dict[str, tuple[float, float]]:
    """Run the planned arrivals through `executor`, each after those it could learn from.

    Arrivals run concurrently on `execution.slots` threads when the executor says it is
    thread-safe (`executor.thread_safe`), else one after another in start order (a valid
    order: everything an arrival depends on was ready before it started).

    Returns:
        task -> (wall start, wall ready) in seconds since execution began.
    """
    t0 = time.perf_counter()
    by_start = sorted(plan, key=lambda p: (p.scheduled.start, p.scheduled.index))

    def job(p: PlannedArrival, deps=()) -> tuple[float, float]:
        for dep in deps:
            dep.result()
        begin = time.perf_counter() - t0
        s = p.scheduled
        arrival = arrive(cfg, cfg.method.name, tasks[s.event.task], p.teachers, p.history, executor)
        if tuple(arrival.phases) != p.phases:
            raise RuntimeError(f"{s.event.task}: ran phases {arrival.phases}, planned {p.phases}")
        end = time.perf_counter() - t0
        log(f"[{s.index + 1}/{len(plan)}] {s.event.tenant}/{s.event.task}: simulated {s.start:.1f}->{s.ready:.1f} s"
            f" on slot {s.slot}, teachers {','.join(t.task for t in p.teachers) or '-'}; wall {end - begin:.1f} s")
        return begin, end

    slots = cfg.execution.slots or 1  # 0 = sized from the cluster: the schedule counts one
    if not executor.thread_safe or slots == 1:
        return {p.scheduled.event.task: job(p) for p in by_start}
    futures: dict = {}
    with ThreadPoolExecutor(max_workers=slots) as pool:
        for p in by_start:  # FIFO submission: dependencies are always submitted (and picked up) first
            deps = [futures[n] for n in p.scheduled.available]
            futures[p.scheduled.event.task] = pool.submit(job, p, deps)
    return {name: f.result() for name, f in futures.items()}


# ---------------------------------------------------------------- results


def task_rows(cfg: Config, tasks: dict[str, Task], plan: Sequence[PlannedArrival], executor,
              walls: dict[str, tuple[float, float]], run_id: str) -> tuple[list[dict], list[dict]]:
    """One row per task (simulated and measured times, teachers, final score, costs) + attention rows."""
    deployed: dict[str, Deployed] = {}
    for p in sorted(plan, key=lambda p: (p.scheduled.ready, p.scheduled.index)):
        deployed.update(dict(p.deployed))
    rows, attention = [], []
    store = executor.store
    for p in plan:
        s, name = p.scheduled, p.scheduled.event.task
        score, att = executor.evaluate(deployed[name], tasks[name])
        if att and deployed[name].fusion:
            attention += attention_rows(store, deployed[name].fusion, att, run_id, name)
        costs = deployment_costs(deployed[name], store)
        wall_start, wall_ready = walls[name]
        rows.append({
            "run_id": run_id, "method": cfg.method.name, "seed": cfg.training.seed, "tenant": s.event.tenant,
            "task": name, "position": s.index, "slot": s.slot, "arrival_time": s.event.time,
            "start_time": s.start, "ready_time": s.ready, "queue_wait_s": s.start - s.event.time,
            "train_s": s.ready - s.start, "onboarding_s": s.ready - s.event.time,
            "available": ",".join(s.available), "teachers": ",".join(t.task for t in p.teachers),
            "n_teachers": len(p.teachers), "phase_keys": ",".join(p.phases), "example_steps": p.examples,
            "final_score": score, "random_score": tasks[name].random_score,
            "stored_bytes": own_bytes(store, p.phases, costs["entries"]),
            "inference_params": costs["inference_params"],
            "wall_start_s": wall_start, "wall_ready_s": wall_ready, "wall_s": wall_ready - wall_start,
            "phase_wall_s": sum(store.meta(k)["metrics"]["wall_s"] for k in dict.fromkeys(p.phases)),
        })
    return rows, attention


def bytes_per_tenant(rows: Sequence[dict]) -> dict[str, int]:
    """Stored bytes per tenant: the sum over its tasks' own entries."""
    out: dict[str, int] = {}
    for r in rows:
        out[r["tenant"]] = out.get(r["tenant"], 0) + int(r["stored_bytes"])
    return dict(sorted(out.items()))


def summarize(rows: Sequence[dict], budget_bytes: int) -> list[dict]:
    """One dict per method: onboarding/queue percentiles, bytes per tenant, tenants in budget.

    Args:
        rows: task rows of one or more runs (`TimelineRecord.rows`), each with a `method`.
        budget_bytes: the storage budget the tenants share.
    """
    out = []
    for method in sorted({r["method"] for r in rows}):
        g = [r for r in rows if r["method"] == method]
        per_tenant = bytes_per_tenant(g)
        onboarding = metrics.percentiles([r["onboarding_s"] for r in g])
        queue = metrics.percentiles([r["queue_wait_s"] for r in g])
        out.append({
            "method": method, "tenants": len(per_tenant), "tasks": len(g),
            **{f"onboarding_{k}_s": v for k, v in onboarding.items()},
            **{f"queue_wait_{k}_s": v for k, v in queue.items()},
            "makespan_s": max(r["ready_time"] for r in g), "mean_score": float(np.mean([r["final_score"] for r in g])),
            "bytes_per_tenant_mean": float(np.mean(list(per_tenant.values()))),
            "bytes_per_tenant_max": max(per_tenant.values()), "budget_bytes": budget_bytes,
            "tenants_within_budget": metrics.tenants_within_budget(per_tenant, budget_bytes),
            "wall_s": max(r["wall_ready_s"] for r in g),
        })
    return out


def run_timeline(cfg: Config, tasks: dict[str, Task], executor, events: Optional[Sequence[ArrivalEvent]] = None,
                 run_id: str = "run", log: Callable[[str], None] = print) -> TimelineRecord:
    """Plan `events` (default: the config's stream) with `cfg.method`, execute, evaluate.

    Args:
        cfg: resolved config (method, stream cost model and budget, execution.slots).
        tasks: loaded tasks by name.
        executor: provides `run(phase) -> key`, `evaluate(dep, task)`, `.store`, optionally
            `thread_safe = True` to run independent arrivals concurrently.
        events: arrivals; None = `stream_events(cfg, tasks)`.
        run_id: tag for the rows.
        log: progress lines.

    Returns:
        A `TimelineRecord` with the plan, task rows, attention rows, bytes per tenant, summary.
    """
    events = list(events) if events is not None else stream_events(cfg, tasks)
    plan = plan_timeline(cfg, tasks, events)
    walls = execute_plan(cfg, tasks, plan, executor, log)
    rows, attention = task_rows(cfg, tasks, plan, executor, walls, run_id)
    rec = TimelineRecord(events, plan, rows, attention, bytes_per_tenant(rows))
    rec.summary = summarize(rows, cfg.stream.storage_budget_bytes)[0]
    return rec
