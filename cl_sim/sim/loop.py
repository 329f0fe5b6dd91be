"""The simulator loop: every stream, one arrival at a time or many on several slots, runs here.

    trace = simulate(cfg, tasks, executor, schedule, costs)

    for each arrival, first come first served:
        slot, start = the first free slot, once the task has arrived
        teachers    = picked among the tasks *ready* at `start` (`arrivals.pick_teachers`)
        phases      = the method's recipe (`arrivals.arrive`): run, reused from the store, or planned
        ready       = start + the phases' simulated seconds (`costs.CostModel`)
    then, in the order arrivals became ready:
        R[k, :]     = score of every ready task, as each is deployed once the k-th is ready

Teachers come only from tasks whose adapters were ready when an arrival started, so arrivals
training side by side never teach each other. With one slot every earlier task is ready (the
ordering stream: the costs change no teacher). Phases run inside the loop, in start order, unless
the executor is thread-safe (`executor.thread_safe`) and there are several slots: the loop then
only plans (every recipe is a pure function of content-derived store keys, so a recorder gives
the exact phases) and `replay` runs the arrivals concurrently, each after those it learns from,
checking that each ran the phases planned. The schedule depends only on config, seed and the
cost model, never on measured times of this run (recorded beside it: `Trace.walls`).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Optional

import numpy as np

from cl_sim.config import Config, task_budget, task_role
from cl_sim.data.task import Task
from cl_sim.methods import Deployed, Prior
from cl_sim.sim.arrivals import arrive, attention_rows, phase_rows, pick_teachers
from cl_sim.sim.costs import CostModel
from cl_sim.sim.schedule import ArrivalEvent, Schedule, Slots


@dataclass(frozen=True)
class Step:
    """One arrival as the loop ran it: where and when (simulated), whom it learned from, what it ran."""

    index: int  # first come, first served position
    event: ArrivalEvent
    slot: int
    start: float  # simulated seconds
    ready: float
    available: tuple[str, ...]  # tasks ready at `start`, in the order they became ready
    teachers: tuple[Prior, ...]
    history: tuple[Prior, ...]  # every prior ready at `start`, in ready order
    phases: tuple[str, ...]  # store keys, in the order they ran
    prior: Prior  # what it leaves for later arrivals
    deployed: tuple[tuple[str, Deployed], ...]  # the deployments it sets (task -> keys)
    passes: int  # simulated example passes (`costs.phase_passes`, the step floor included)


@dataclass
class Trace:
    """What the loop produced: steps, the accuracy matrix in ready order, and rows ready for Parquet."""

    schedule: Schedule
    costs: CostModel
    steps: list[Step] = field(default_factory=list)  # first come, first served
    walls: dict[str, tuple[float, float]] = field(default_factory=dict)  # task -> measured (start, end) s
    ordering: list[str] = field(default_factory=list)  # tasks in the order they became ready
    R: Optional[np.ndarray] = None  # R[k, j]: task ordering[j] once ordering[k] was ready
    arrived: list[dict] = field(default_factory=list)  # the `TaskRow` fields each arrival settles, ready order
    deployed: dict[str, Deployed] = field(default_factory=dict)  # as finally deployed
    phases: list[dict] = field(default_factory=list)  # `arrival`: the ready-order index
    attention: list[dict] = field(default_factory=list)

    def step(self, task: str) -> Step:
        return next(s for s in self.steps if s.event.task == task)


def simulate(cfg: Config, tasks: dict[str, Task], executor, schedule: Schedule, costs: CostModel,
             run_id: str = "run", log: Callable[[str], None] = print,
             on_arrival: Optional[Callable[[dict], None]] = None, timed: bool = False,
             evaluate: bool = True) -> Trace:
    """Run `schedule` with `cfg.method` (see the module docstring).

    Args:
        executor: `run(phase) -> key`, `evaluate(dep, task) -> (score, attention)`, `.store`, and
            optionally `thread_safe = True` (independent arrivals may run at once).
        costs: simulated seconds per phase (`cl_sim.sim.costs`).
        on_arrival: each matrix row's metrics as they come (e.g. Tune's `tune.report`).
        timed: also log each arrival's simulated start/ready and measured wall time.
        evaluate: score the ready tasks (the matrix and rows); False: only run (or plan) the phases.
    """
    n = len(schedule.events)
    trace = Trace(schedule, costs, R=np.full((n, n), np.nan))
    concurrent = schedule.slots > 1 and getattr(executor, "thread_safe", False)
    clock, t0 = Slots(schedule.slots), time.perf_counter()
    for index, event in enumerate(schedule.fifo()):
        task = tasks[event.task]
        slot, start = clock.start(event)
        ready_now = sorted((s for s in trace.steps if s.ready <= start), key=lambda s: (s.ready, s.index))
        history = [s.prior for s in ready_now]
        teachers = pick_teachers(cfg, task, history, tasks)
        planned = []
        run = (lambda p: p.key()) if concurrent else executor.run
        runner = SimpleNamespace(run=lambda p: planned.append(p) or run(p))
        begin = time.perf_counter() - t0
        arrival = arrive(cfg, cfg.method.name, task, teachers, history, runner)
        seconds, passes = costs.arrival(planned, tasks)
        if not seconds > 0:
            raise ValueError(f"simulated seconds of {task.name} must be > 0, got {seconds}")
        clock.finish(slot, start + seconds)
        step = Step(index, event, slot, start, start + seconds, tuple(p.task for p in history), tuple(teachers),
                    tuple(history), tuple(arrival.phases), Prior(task.name, arrival.adapter, arrival.deployed[task.name]),
                    tuple(sorted(arrival.deployed.items())), passes)
        trace.steps.append(step)
        if not concurrent:
            trace.walls[task.name] = (begin, time.perf_counter() - t0)
            _log_step(step, trace, log, timed)
        if evaluate and schedule.slots == 1:  # ready order is arrival order: score each arrival as it is ready
            _evaluate_next(cfg, tasks, executor, trace, run_id, log, on_arrival)
    if concurrent:
        trace.walls = replay(cfg, tasks, trace, executor, log if timed else (lambda m: None))
    while evaluate and len(trace.ordering) < n:
        _evaluate_next(cfg, tasks, executor, trace, run_id, log, on_arrival)
    return trace


def _log_step(step: Step, trace: Trace, log, timed: bool) -> None:
    if timed:
        begin, end = trace.walls[step.event.task]
        log(f"[{step.index + 1}/{len(trace.schedule.events)}] {step.event.tenant}/{step.event.task}: simulated "
            f"{step.start:.1f}->{step.ready:.1f} s on slot {step.slot}, teachers "
            f"{','.join(t.task for t in step.teachers) or '-'}; wall {end - begin:.1f} s")


def _evaluate_next(cfg: Config, tasks: dict[str, Task], executor, trace: Trace, run_id: str, log,
                   on_arrival) -> None:
    """Score every ready task as deployed once the next arrival (in ready order) is ready: R[k, :]."""
    k = len(trace.ordering)
    step = sorted(trace.steps, key=lambda s: (s.ready, s.index))[k]
    name, R, store = step.event.task, trace.R, executor.store
    trace.ordering.append(name)
    trace.deployed.update(dict(step.deployed))
    for j, other in enumerate(trace.ordering):
        R[k, j], attention = executor.evaluate(trace.deployed[other], tasks[other])
        if j == k and attention and trace.deployed[name].fusion:
            trace.attention += attention_rows(store, trace.deployed[name].fusion, attention, run_id, name)
    own = phase_rows(store, step.phases, run_id, name, k)
    trace.phases += own
    trace.arrived.append({"run_id": run_id, "task": name, "position": step.index, "tenant": tasks[name].tenant,
                          "role": task_role(cfg, name),
                          "teachers": ",".join(p.task for p in step.teachers), "n_teachers": len(step.teachers),
                          "trainable_params": sum(r["trainable_params"] for r in own),
                          "train_steps": sum(r["steps"] for r in own),
                          "train_examples": max((r["train_examples"] for r in own if r["train_examples"] is not None),
                                                default=None),
                          "epochs": task_budget(cfg, name)[1],
                          "phase_keys": ",".join(step.phases)})
    n = len(trace.schedule.events)
    log(f"[{k + 1}/{n}] {name}: " + "  ".join(f"{o}={R[k, j]:.3f}" for j, o in enumerate(trace.ordering)))
    if on_arrival is not None:
        on_arrival({"arrival": k + 1, "task": name, "score": float(R[k, k]),
                    "avg_seen": float(np.nanmean(R[k, : k + 1])), "phases": len(step.phases)})


def replay(cfg: Config, tasks: dict[str, Task], trace: Trace, executor,
           log: Callable[[str], None]) -> dict[str, tuple[float, float]]:
    """Run the planned steps concurrently on `schedule.slots` threads, each after the arrivals it
    could learn from (those ready at its start); returns task -> measured (start, end) seconds."""
    t0 = time.perf_counter()
    walls: dict[str, tuple[float, float]] = {}

    def job(step: Step, deps=()) -> None:
        for dep in deps:
            dep.result()
        begin = time.perf_counter() - t0
        arrival = arrive(cfg, cfg.method.name, tasks[step.event.task], step.teachers, step.history, executor)
        if tuple(arrival.phases) != step.phases:
            raise RuntimeError(f"{step.event.task}: ran phases {arrival.phases}, planned {step.phases}")
        walls[step.event.task] = (begin, time.perf_counter() - t0)
        _log_step(step, SimpleNamespace(walls=walls, schedule=trace.schedule), log, True)

    futures: dict = {}
    with ThreadPoolExecutor(max_workers=trace.schedule.slots) as pool:
        for step in trace.steps:  # start order: dependencies are always submitted (and picked up) first
            futures[step.event.task] = pool.submit(job, step, [futures[n] for n in step.available])
    for f in futures.values():
        f.result()
    return walls
