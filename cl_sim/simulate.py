"""Run one stream × one method × one seed: the continual-learning loop, top to bottom.

    for each arriving task:
        teachers = selected among the tasks finished so far
        phases   = the method's recipe for this task (run, or reused from the store)
        R[i, :]  = score of every task seen so far, as each is deployed now

    references = the KT reference scores, each task trained alone (`references`: up to 2n more phases)
    summary    = per-task rows, the matrix, the run's metrics (`summarize`)

The executor (local or Ray) only runs phases and evaluations; this loop is the same for both.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from cl_sim import metrics
from cl_sim.config import Config, task_budget, task_role
from cl_sim.data.task import Task
from cl_sim.kinds import KINDS
from cl_sim.methods import METHODS, Arrival, Deployed, Prior
from cl_sim.methods.base import MethodContext
from cl_sim.references import References, references
from cl_sim.teachers import select_teachers
from cl_sim.tasks import task_embedding


@dataclass(frozen=True)
class TaskRow:
    """One task of one run: what taught it, what it trained and costs, how it scored. The schema of
    `tasks.parquet` (a sweep puts its trial's columns in front); rows travel as `dataclasses.asdict`."""

    run_id: str
    task: str
    position: int  # arrival index
    tenant: str
    role: str  # `TaskConfig.role`: both, teacher (learns alone) or target (never teaches)
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


def arrive(cfg: Config, method: str, task: Task, teachers: Sequence[Prior], history: Sequence[Prior],
           executor) -> Arrival:
    ctx = MethodContext(cfg, task, executor.run)
    return METHODS[method].arrive(ctx, list(teachers), list(history))


def pick_teachers(cfg: Config, task: Task, finished: Sequence[Prior], tasks: dict[str, Task]) -> list[Prior]:
    """The teachers of `task` among the tasks `finished`; none for a method that uses no teachers or
    a task whose role is `teacher`, and never a task whose role is `target` (`TaskConfig.role`)."""
    m = cfg.method
    if not METHODS[m.name].uses_teachers or task_role(cfg, task.name) == "teacher":
        return []
    finished = [p for p in finished if task_role(cfg, p.task) != "target"]
    embed = lambda name: task_embedding(tasks[name], cfg.backbone.name, cfg.backbone.max_length)  # noqa: E731
    return select_teachers(finished, m.teacher_count, m.teacher_selection, task.name, cfg.training.seed, embed)


def deployment_costs(dep: Deployed, store) -> dict:
    """Parameters needed at inference and the store entries (bytes) a deployment loads."""
    entries = {k for k in (dep.head, dep.adapter, dep.fusion, dep.backbone) if k}
    params = store.meta(dep.head)["groups"]["head"]
    if dep.adapter:
        params += store.meta(dep.adapter)["groups"]["adapter"]
    if dep.backbone:
        params += store.meta(dep.backbone)["groups"]["backbone"]
    if dep.fusion:
        fusion = store.meta(dep.fusion)
        params += fusion["groups"]["fusion"]
        for k in fusion["phase"]["spec"]["teachers"]:
            params += store.meta(k)["groups"]["adapter"]
            entries.add(k)
    return {"inference_params": params, "entries": entries}


def own_bytes(store, phases: Sequence[str], entries: set) -> int:
    """Bytes a task adds to the store for serving: those of its deployed `entries` that its own
    arrival's `phases` made with adapters (a fusion task's teachers belong to their own tasks), else
    all of them."""
    own = {k for k in phases if KINDS[store.meta(k)["phase"]["kind"]].uses_adapter}
    kept = (entries & own) or entries
    return sum(store.meta(k)["bytes"] for k in kept)


def run_stream(cfg: Config, tasks: dict[str, Task], executor, order: Sequence[str], run_id: str = "run",
               log=print, on_arrival: Optional[Callable[[dict], None]] = None) -> RunRecord:
    """Run `order` with `cfg.method`; `executor` provides `run(phase) -> key` and `evaluate`.
    `on_arrival` gets each arrival's metrics as they come (e.g. Tune's `tune.report`)."""
    order = tuple(order)
    n = len(order)
    R = np.full((n, n), np.nan)
    rec = RunRecord(order, R)
    finished: list[Prior] = []
    deployed: dict[str, Deployed] = {}
    arrived: list[dict] = []  # the TaskRow fields each arrival settles
    for i, name in enumerate(order):
        task = tasks[name]
        teachers = pick_teachers(cfg, task, finished, tasks)
        arrival = arrive(cfg, cfg.method.name, task, teachers, finished, executor)
        deployed.update(arrival.deployed)
        finished.append(Prior(name, arrival.adapter, arrival.deployed[name]))
        for j, other in enumerate(order[: i + 1]):
            R[i, j], attention = executor.evaluate(deployed[other], tasks[other])
            if j == i and attention:
                rec.attention += attention_rows(executor.store, deployed[name].fusion, attention, run_id, name)
        rec.phases += phase_rows(executor.store, arrival.phases, run_id, name, i)
        own = [r for r in rec.phases if r["arrival"] == i]
        arrived.append({"run_id": run_id, "task": name, "position": i, "tenant": task.tenant,
                        "role": task_role(cfg, name),
                        "teachers": ",".join(p.task for p in teachers), "n_teachers": len(teachers),
                        "trainable_params": sum(r["trainable_params"] for r in own),
                        "train_steps": sum(r["steps"] for r in own),
                        "train_examples": max((r["train_examples"] for r in own if r["train_examples"] is not None),
                                              default=None),
                        "epochs": task_budget(cfg, name)[1],
                        "phase_keys": ",".join(arrival.phases)})
        log(f"[{i + 1}/{n}] {name}: " + "  ".join(f"{o}={R[i, j]:.3f}" for j, o in enumerate(order[: i + 1])))
        if on_arrival is not None:
            on_arrival({"arrival": i + 1, "task": name, "score": float(R[i, i]),
                        "avg_seen": float(np.nanmean(R[i, : i + 1])), "phases": len(arrival.phases)})
    refs = references(cfg, order, tasks, executor, [a["train_steps"] for a in arrived])
    summarize(cfg, rec, tasks, arrived, deployed, executor.store, refs, run_id)
    return rec


def attention_rows(store, fusion_key: str, attention: list, run_id: str, task: str) -> list[dict]:
    """One row per (adapted position, fused adapter): which teachers a task listens to."""
    teachers = [store.meta(k)["phase"]["task"] for k in store.meta(fusion_key)["phase"]["spec"]["teachers"]]
    return [{"run_id": run_id, "task": task, "layer": layer, "teacher": teachers[t], "weight": w}
            for layer, row in enumerate(attention) for t, w in enumerate(row)]


def phase_rows(store, keys: Sequence[str], run_id: str, task: str, arrival: int) -> list[dict]:
    rows = []
    for key in keys:
        meta = store.meta(key)
        m, p, ex = meta["metrics"], meta["phase"], meta.get("execution", {})  # where it was trained
        rows.append({"run_id": run_id, "task": task, "arrival": arrival, "kind": p["kind"], "key": key,
                     "executor": ex.get("executor"), "workers": ex.get("workers"),
                     "fraction": p["fraction"], "epochs": p["epochs"], "examples": m["examples"],
                     "train_examples": m.get("train_examples"),
                     "steps": m["steps"], "dev_score": m["dev_score"], "wall_s": m["wall_s"],
                     "trainable_params": m["trainable_params"], "stored_bytes": meta["bytes"]})
    return rows


def summarize(cfg: Config, rec: RunRecord, tasks: dict[str, Task], arrived: list[dict], deployed: dict, store,
              refs: References, run_id: str) -> None:
    """Complete `rec`: a `TaskRow` per arrival (`arrived`: what each arrival settled, + its scores, KT,
    forgetting and costs), the matrix rows, the summary."""
    order, R = rec.ordering, rec.R
    random = np.asarray([tasks[n].random_score for n in order])
    ref, matched = refs.ref, refs.matched
    kt = metrics.knowledge_transfer(np.diag(R), ref, random) if ref is not None else np.full(len(order), np.nan)
    kt_matched = (metrics.knowledge_transfer(np.diag(R), matched, random) if matched is not None
                  else np.full(len(order), np.nan))
    fgt = metrics.forgetting(R, random)
    backbone_params = backbone_param_count(cfg)
    for i, settled in enumerate(arrived):
        name = order[i]
        costs = deployment_costs(deployed[name], store)
        row = TaskRow(**settled, final_score=R[-1, i], diag_score=R[i, i], ref_score=None if ref is None else ref[i],
                      random_score=random[i], kt=kt[i], forgetting=fgt[i],
                      ref_matched_score=None if matched is None else matched[i], kt_matched=kt_matched[i],
                      inference_params=costs["inference_params"],
                      inference_params_pct=100.0 * costs["inference_params"] / backbone_params,
                      stored_bytes=own_bytes(store, [r["key"] for r in rec.phases if r["arrival"] == i],
                                             costs["entries"]))
        rec.tasks.append(dataclasses.asdict(row))
    for i in range(len(order)):
        for j in range(len(order)):
            if not np.isnan(R[i, j]):
                rec.matrix.append({"run_id": run_id, "arrival": i, "task": order[j], "position": j, "score": R[i, j]})
    rec.summary = metrics.summary(R, random, ref_diag=ref)
    rec.summary["mean_kt_matched"] = (metrics.summary(R, random, ref_diag=matched)["mean_kt"]
                                      if matched is not None else None)


def backbone_param_count(cfg: Config) -> int:
    from cl_sim.phases import cached_backbone

    return sum(p.numel() for p in cached_backbone(cfg.backbone.name)[0].parameters())
