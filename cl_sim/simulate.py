"""Run one stream × one method × one seed: the continual-learning loop, top to bottom.

    for each arriving task:
        teachers = selected among the tasks finished so far
        phases   = the method's recipe for this task (run, or reused from the store)
        R[i, :]  = score of every task seen so far, as each is deployed now

    references = the KT reference scores, each task trained alone (`references`: up to 2n more phases)
    summary    = per-task rows, the matrix, the run's metrics (`summarize`)

The loop itself is `cl_sim.sim.loop.simulate` on a one-slot schedule, the same loop the tenants
timeline runs (`cl_sim.timeline`); the per-arrival helpers it uses live in `cl_sim.sim.arrivals` and
are re-exported here. The executor (local or Ray) only runs phases and evaluations.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from cl_sim import metrics
from cl_sim.config import Config
from cl_sim.data.task import Task
from cl_sim.methods import METHODS, Prior  # noqa: F401 (Prior re-exported)
from cl_sim.sim.references import References, references
from cl_sim.sim.arrivals import (arrive, attention_rows, deployment_costs, own_bytes,  # noqa: F401 (re-exported)
                                phase_rows, pick_teachers)
from cl_sim.sim.costs import fallback_model
from cl_sim.sim.loop import simulate
from cl_sim.sim.schedule import Schedule


@dataclass(frozen=True)
class TaskRow:
    """One task of one run: what taught it, what it trained and costs, how it scored. The schema of
    `tasks.parquet` (a sweep puts its trial's columns in front); rows travel as `dataclasses.asdict`."""

    run_id: str
    task: str
    position: int  # arrival index
    tenant: str
    role: str  # `TaskConfig.role`: both, teacher (learns alone), target or control (never teach)
    teachers: str  # the teacher tasks, comma-separated
    n_teachers: int
    trainable_params: int  # summed over the arrival's phases
    train_steps: int  # optimizer steps of the arrival's phases
    train_examples: Optional[int]  # training rows its largest phase trained on (the task's budget as run)
    epochs: int  # the task's epoch budget (`config.task_budget`)
    phase_keys: str  # the arrival's store keys, comma-separated, in the order they ran
    final_score: float  # after the last arrival (R[-1, i])
    diag_score: float  # right after learning it (R[i, i])
    ref_score: Optional[float]  # the KT reference on the task alone
    random_score: float
    kt: float
    forgetting: float
    ref_matched_score: Optional[float]  # step-matched ST-A (teacher methods)
    kt_matched: float
    train_work: Optional[float]  # the arrival's training work, example-passes (`references`; teacher methods)
    ref_work_score: Optional[float]  # work-matched ST-A (teacher methods)
    kt_work: float
    inference_params: int  # parameters its deployment loads
    inference_params_pct: float  # ... as % of the backbone
    stored_bytes: int  # what it adds to the store for serving (`own_bytes`)


@dataclass
class RunRecord:
    """Everything one run produces, as rows ready for Parquet."""

    ordering: tuple[str, ...]
    R: np.ndarray
    matrix: list[dict] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)  # `TaskRow`s as dicts
    phases: list[dict] = field(default_factory=list)
    attention: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def run_stream(cfg: Config, tasks: dict[str, Task], executor, order: Sequence[str], run_id: str = "run",
               log=print, on_arrival: Optional[Callable[[dict], None]] = None) -> RunRecord:
    """Run `order` with `cfg.method`, one arrival at a time: the simulator loop
    (`cl_sim.sim.loop.simulate`) on a one-slot schedule, then the KT references (`references`) and
    the task rows (`summarize`). `executor` provides `run(phase) -> key` and `evaluate`;
    `on_arrival` gets each arrival's metrics as they come (e.g. Tune's `tune.report`)."""
    order = tuple(order)
    schedule = Schedule.one_at_a_time(order, {name: tasks[name].tenant for name in order})
    trace = simulate(cfg, tasks, executor, schedule, fallback_model(cfg), run_id, log, on_arrival)
    rec = RunRecord(order, trace.R, phases=trace.phases, attention=trace.attention)
    refs = references(cfg, order, tasks, executor, trace.arrived)
    summarize(cfg, rec, tasks, trace.arrived, trace.deployed, executor.store, refs, run_id)
    return rec


def summarize(cfg: Config, rec: RunRecord, tasks: dict[str, Task], arrived: list[dict], deployed: dict, store,
              refs: References, run_id: str) -> None:
    """Complete `rec`: a `TaskRow` per arrival (`arrived`: what each arrival settled, + its scores, KT,
    forgetting and costs), the matrix rows, the summary."""
    order, R = rec.ordering, rec.R
    random = np.asarray([tasks[n].random_score for n in order])
    ref, matched, work = refs.ref, refs.matched, refs.work_matched
    nan = np.full(len(order), np.nan)
    kt, kt_matched, kt_work = (metrics.knowledge_transfer(np.diag(R), s, random) if s is not None else nan
                               for s in (ref, matched, work))
    fgt = metrics.forgetting(R, random)
    backbone_params = backbone_param_count(cfg)
    for i, settled in enumerate(arrived):
        name = order[i]
        costs = deployment_costs(deployed[name], store)
        row = TaskRow(**settled, final_score=R[-1, i], diag_score=R[i, i], ref_score=None if ref is None else ref[i],
                      random_score=random[i], kt=kt[i], forgetting=fgt[i],
                      ref_matched_score=None if matched is None else matched[i], kt_matched=kt_matched[i],
                      train_work=None if refs.work is None else float(refs.work[i]),
                      ref_work_score=None if work is None else work[i], kt_work=kt_work[i],
                      inference_params=costs["inference_params"],
                      inference_params_pct=100.0 * costs["inference_params"] / backbone_params,
                      stored_bytes=own_bytes(store, [r["key"] for r in rec.phases if r["arrival"] == i],
                                             costs["entries"]))
        rec.tasks.append(dataclasses.asdict(row))
    for i in range(len(order)):
        for j in range(len(order)):
            if not np.isnan(R[i, j]):
                rec.matrix.append({"run_id": run_id, "arrival": i, "task": order[j], "position": j, "score": R[i, j]})
    # KT means over the arrivals that had teachers (elsewhere KT is 0 by construction, or no transfer)
    taught = np.asarray([a["n_teachers"] > 0 for a in arrived]) & METHODS[cfg.method.name].uses_teachers
    rec.summary = metrics.summary(R, random, ref_diag=ref, kt_rows=taught)
    for key, s in (("mean_kt_matched", matched), ("mean_kt_work", work)):
        rec.summary[key] = metrics.summary(R, random, ref_diag=s, kt_rows=taught)["mean_kt"] if s is not None else None


def backbone_param_count(cfg: Config) -> int:
    from cl_sim.phases import cached_backbone

    return sum(p.numel() for p in cached_backbone(cfg.backbone.name)[0].parameters())
