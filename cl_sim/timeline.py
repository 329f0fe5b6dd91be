"""Tenants over time (SPEC §1 stream, §4 cost, §5 concurrency): tenants' tasks arrive, wait for one
of `execution.slots` slots, train, and become teachers once *ready*.

    events = stream_events(cfg, tasks)                  # explicit ordering or seeded Poisson
    rec = run_timeline(cfg, tasks, executor, events)    # the simulator loop on N slots, then rows
    rec.rows                                            # one `TimelineRow` (as a dict) per task
    summarize(rec.rows, cfg.stream.storage_budget_bytes)

This is the simulator loop of the ordering stream (`cl_sim.sim.loop.simulate`) on a schedule with
arrival times and several slots: a task starts when it has arrived and a slot is free (first come,
first served); its teachers are picked (`pick_teachers`) among the tasks whose adapters were *ready*
at that instant, never among those merely arrived or still training, so concurrent arrivals cannot
teach each other. Its simulated duration comes from the cost model (`cl_sim.sim.costs`: per phase
kind, seconds = a + b x passes x (1 + c x (teachers - 1)) + d x dev rows, fitted to the measured
wall times of the store's phases for this backbone, the distillation step floor counted in passes,
the number of fused teachers a term; configured or labelled fallback constants where nothing was
measured). The cost model is fixed before the first arrival (`cost_model`), so the schedule, and
hence who teaches whom, depends on config, seed and that model (recorded in every row's
`cost_source` and in `TimelineRecord.costs`), never on how long this run's phases take.

Rows: a `TimelineRow` is the runs' and sweeps' `TaskRow` (scores, forgetting, costs) plus the
timeline's own fields, documented below; the accuracy matrix behind its scores is in ready order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from cl_sim import metrics
from cl_sim.config import Config
from cl_sim.data.task import Task
from cl_sim.sim.references import References
from cl_sim.sim.costs import CostModel, cost_model, phase_passes
from cl_sim.sim.loop import Trace, simulate
from cl_sim.sim.schedule import ArrivalEvent, Schedule, ordering_events, poisson_events, stream_events
from cl_sim.simulate import RunRecord, TaskRow, summarize as summarize_run

__all__ = ["ArrivalEvent", "CostModel", "Schedule", "TimelineRecord", "TimelineRow", "bytes_per_tenant",
           "cost_model", "ordering_events", "phase_passes", "poisson_events", "run_timeline", "stream_events",
           "summarize", "timeline_rows"]


@dataclass(frozen=True, kw_only=True)
class TimelineRow(TaskRow):
    """A `TaskRow` plus when and where the task ran. Simulated seconds come from the cost model;
    `wall_*` are measured on this run (a phase reused from the store costs no wall time here, but
    `phase_wall_s` counts the time its store entry recorded). KT fields are None / NaN (no references)."""

    method: str
    seed: int  # training.seed
    slot: int
    arrival_time: float  # simulated s
    start_time: float
    ready_time: float
    queue_wait_s: float  # start - arrival
    train_s: float  # ready - start: the cost model's seconds for its phases
    onboarding_s: float  # ready - arrival
    available: str  # tasks ready at its start, comma-separated (its possible teachers)
    example_steps: int  # simulated example passes over its phases (`phase_passes`: step floor included)
    max_teachers: int  # most adapters one of its phases fuses (1 without fusion)
    cost_source: str  # where the cost model of its phases' kinds came from (`costs.KindCost.source`)
    wall_start_s: float  # measured, since the run began
    wall_ready_s: float
    wall_s: float
    phase_wall_s: float  # its phases' measured wall times as the store recorded them


@dataclass
class TimelineRecord:
    """Everything one timeline run produces, as rows ready for Parquet."""

    events: list[ArrivalEvent]
    trace: Trace  # the loop's steps (`trace.steps`: slots, simulated times, teachers, phases)
    rows: list[dict] = field(default_factory=list)  # `TimelineRow`s as dicts
    attention: list[dict] = field(default_factory=list)
    tenants: dict[str, int] = field(default_factory=dict)  # tenant -> stored bytes
    summary: dict = field(default_factory=dict)
    costs: dict = field(default_factory=dict)  # the cost model used (`CostModel.describe`)


def run_timeline(cfg: Config, tasks: dict[str, Task], executor, events: Optional[Sequence[ArrivalEvent]] = None,
                 run_id: str = "run", log: Callable[[str], None] = print,
                 costs: Optional[CostModel] = None) -> TimelineRecord:
    """Run `events` (default: the config's stream) with `cfg.method` on `execution.slots` slots.

    Args:
        cfg: resolved config (method, stream cost model and budget, execution.slots).
        tasks: loaded tasks by name.
        executor: provides `run(phase) -> key`, `evaluate(dep, task)`, `.store`, optionally
            `thread_safe = True` to run independent arrivals concurrently.
        events: arrivals; None = `stream_events(cfg, tasks)`.
        run_id: tag for the rows.
        log: progress lines.
        costs: the cost model; None = `cost_model(cfg, executor.store)` (fitted to the store now).

    Returns:
        A `TimelineRecord` with the loop's trace, task rows, attention rows, bytes per tenant, summary.
    """
    events = list(events) if events is not None else stream_events(cfg, tasks)
    costs = costs if costs is not None else cost_model(cfg, executor.store)
    schedule = Schedule(tuple(events), cfg.execution.slots or 1)  # 0 = sized from the cluster: one counts
    trace = simulate(cfg, tasks, executor, schedule, costs, run_id, log, timed=True)
    run = RunRecord(tuple(trace.ordering), trace.R, phases=trace.phases, attention=trace.attention)
    summarize_run(cfg, run, tasks, trace.arrived, trace.deployed, executor.store, References(None), run_id)
    rows = timeline_rows(cfg, tasks, trace, run.tasks, executor.store)
    rec = TimelineRecord(events, trace, rows, trace.attention, bytes_per_tenant(rows), costs=costs.describe())
    rec.summary = summarize(rows, cfg.stream.storage_budget_bytes)[0]
    return rec


def timeline_rows(cfg: Config, tasks: dict[str, Task], trace: Trace, task_rows: Sequence[dict],
                  store) -> list[dict]:
    """`TaskRow`s (ready order) extended to `TimelineRow`s, in first come, first served order."""
    by_task = {r["task"]: r for r in task_rows}
    sources = trace.costs.sources()
    rows = []
    for s in trace.steps:
        name = s.event.task
        wall_start, wall_ready = trace.walls[name]
        kinds = sorted({store.meta(k)["phase"]["kind"] for k in s.phases})
        teachers = [len(store.meta(k)["phase"].get("spec", {}).get("teachers") or ()) for k in s.phases]
        row = TimelineRow(**by_task[name], method=cfg.method.name, seed=cfg.training.seed, slot=s.slot,
                          arrival_time=s.event.time, start_time=s.start, ready_time=s.ready,
                          queue_wait_s=s.start - s.event.time, train_s=s.ready - s.start,
                          onboarding_s=s.ready - s.event.time, available=",".join(s.available),
                          example_steps=s.passes, max_teachers=max([1, *teachers]),
                          cost_source="; ".join(f"{k}: {sources[k]}" for k in kinds),
                          wall_start_s=wall_start, wall_ready_s=wall_ready, wall_s=wall_ready - wall_start,
                          phase_wall_s=sum(store.meta(k)["metrics"]["wall_s"] for k in dict.fromkeys(s.phases)))
        rows.append(dataclasses.asdict(row))
    return rows


def bytes_per_tenant(rows: Sequence[dict]) -> dict[str, int]:
    """Stored bytes per tenant: the sum over its tasks' own entries."""
    out: dict[str, int] = {}
    for r in rows:
        out[r["tenant"]] = out.get(r["tenant"], 0) + int(r["stored_bytes"])
    return dict(sorted(out.items()))


def summarize(rows: Sequence[dict], budget_bytes: int) -> list[dict]:
    """One dict per method: onboarding/queue percentiles, bytes per tenant, tenants in budget, and
    the cost model against the measured phase times (`simulated_train_s` vs `phase_wall_s`).

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
        simulated, measured = sum(r["train_s"] for r in g), sum(r["phase_wall_s"] for r in g)
        out.append({
            "method": method, "tenants": len(per_tenant), "tasks": len(g),
            **{f"onboarding_{k}_s": v for k, v in onboarding.items()},
            **{f"queue_wait_{k}_s": v for k, v in queue.items()},
            "makespan_s": max(r["ready_time"] for r in g), "mean_score": float(np.mean([r["final_score"] for r in g])),
            "bytes_per_tenant_mean": float(np.mean(list(per_tenant.values()))),
            "bytes_per_tenant_max": max(per_tenant.values()), "budget_bytes": budget_bytes,
            "tenants_within_budget": metrics.tenants_within_budget(per_tenant, budget_bytes),
            "wall_s": max(r["wall_ready_s"] for r in g),
            "simulated_train_s": simulated, "phase_wall_s": measured,
            "simulated_vs_measured": simulated / measured if measured > 0 else None,
        })
    return out
