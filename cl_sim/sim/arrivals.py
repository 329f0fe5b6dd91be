"""What one arrival does, whatever the schedule: pick its teachers among the finished tasks, run its
method's recipe (`arrive`), and describe what it ran and deployed (phase rows, attention rows,
inference parameters, stored bytes)."""
from __future__ import annotations

from typing import Sequence

from cl_sim.config import Config, learns_only, task_role
from cl_sim.data.task import Task
from cl_sim.kinds import KINDS
from cl_sim.methods import METHODS, Arrival, Deployed, Prior
from cl_sim.methods.base import MethodContext
from cl_sim.tasks import task_embedding
from cl_sim.teachers import select_teachers


def arrive(cfg: Config, method: str, task: Task, teachers: Sequence[Prior], history: Sequence[Prior],
           executor) -> Arrival:
    ctx = MethodContext(cfg, task, executor.run)
    return METHODS[method].arrive(ctx, list(teachers), list(history))


def pick_teachers(cfg: Config, task: Task, finished: Sequence[Prior], tasks: dict[str, Task]) -> list[Prior]:
    """The teachers of `task` among the tasks `finished`; none for a method that uses no teachers or
    a task whose role is `teacher`, and never a task that only learns (`target`, `control`: `TaskConfig.role`)."""
    m = cfg.method
    if not METHODS[m.name].uses_teachers or task_role(cfg, task.name) == "teacher":
        return []
    finished = [p for p in finished if not learns_only(task_role(cfg, p.task))]
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
