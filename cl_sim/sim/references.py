"""The single-task scores KT compares a run against, trained (or reused from the store) after the
stream: CLiMB's reference (`method.kt_reference` on each task alone) and, for teacher methods with
`method.kt_matched`, two compute-matched ST-A controls that separate transfer from extra training.

Step-matched: ST-A on the task alone for at least as many optimizer steps as the method's phases
took on it. Work-matched: ST-A for at least as much training **work**, counted in example-passes:

    one example-pass = one training example through the backbone with one adapter, forward and
    backward (an ST-A training example). A phase's work, from what its store entry records:
        work = epochs run x training rows x pass cost
            epochs run    = steps / steps per epoch (ceil(ceil(train_examples / batch) / grad_accum))
            pass cost     = `KINDS[kind].pass_cost(spec)`: 1 for adapter / head / finetune / distill, for
                            a fusion over N adapters 1 + c (N - 1) (`kinds.fusion.TEACHER_STEP_COST`,
                            measured in docs/PERFORMANCE.md)
        + a distillation's teacher: a forward of the fused teacher, FORWARD_SHARE (1/3: a backward
          costs about two forwards) x the teacher fusion's pass cost, once per training row when
          its outputs were cached (`cl_sim/teacher_cache.py`, metric `teacher_cached`), else once
          per example of every step.
    An arrival's work is the sum over its phases (I2I: Improvise + Initialize + Train).

The work-matched ST-A runs whole epochs: ceil(work / ST-A's training rows) of them, at least the
task's own epochs (so `min_steps` = that many epochs x ST-A's steps per epoch). For an arrival of
plain adapter phases it equals the step-matched control; for fusion and distillation it is at least
as long whenever their steps carry as many examples as ST-A's (same batch size and accumulation,
full data). A low-shot phase's steps carry fewer rows than a full batch, so there the work-matched
control can be shorter than the step-matched one: that is the point of counting work.

The unit ignores what differs between backward passes (an adapter's backward skips the frozen
weights' gradients, fine-tuning's does not): only teacher methods, whose phases all train adapters,
fusion layers or heads over a frozen backbone, get matched controls. Dev passes are not training
work. Data-parallel replicas are not counted twice (the work is what one process would do).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from cl_sim.config import Config
from cl_sim.data.task import Task
from cl_sim.kinds import KINDS
from cl_sim.methods import METHODS, Deployed
from cl_sim.methods.base import MethodContext
from cl_sim.phases import Phase, train_indices

FORWARD_SHARE = 1 / 3  # a forward pass's share of a forward + backward one


def steps_per_epoch(rows: int, batch_size: int, grad_accum: int) -> int:
    """Optimizer steps of one epoch over `rows` (`train.run_phase`: the last batch and step may be short)."""
    return max(1, math.ceil(math.ceil(rows / batch_size) / grad_accum))


def phase_work(store, key: str) -> float:
    """Training work of stored phase `key`, in example-passes (module docstring)."""
    meta = store.meta(key)
    phase, m = Phase.from_dict(meta["phase"]), meta["metrics"]
    kind = KINDS[phase.kind]
    rows = m.get("train_examples")
    if rows:
        epochs = m["steps"] / steps_per_epoch(rows, phase.batch_size, phase.grad_accum)
        passes = epochs * rows
    else:  # an entry from before `train_examples` was recorded: the examples it counted
        passes = float(m["examples"])
        rows, epochs = None, None
    work = passes * kind.pass_cost(phase.spec)
    teacher_key = getattr(phase.spec, "teacher_fusion", None)  # a distillation's frozen teacher
    if teacher_key:
        teacher = Phase.from_dict(store.meta(teacher_key)["phase"])
        cached = m.get("teacher_cached", phase.spec.distill.cache_teacher)
        forwards = rows if (cached and rows) else passes
        work += forwards * FORWARD_SHARE * KINDS[teacher.kind].pass_cost(teacher.spec)
    return work


def arrival_work(store, keys: Sequence[str]) -> float:
    """An arrival's training work: the sum over its phases."""
    return float(sum(phase_work(store, k) for k in keys))


def st_a_epoch(cfg: Config, task: Task) -> tuple[int, int, int]:
    """(epochs, training rows, steps per epoch) of the ST-A phase on `task` (its own budget)."""
    phase = MethodContext(cfg, task, lambda p: "").phase("adapter")
    idx = train_indices(phase, task)
    rows = len(task.splits["train"].labels) if idx is None else len(idx)
    return phase.epochs, rows, steps_per_epoch(rows, phase.batch_size, phase.grad_accum)


def work_matched_steps(cfg: Config, task: Task, work: float) -> int:
    """`min_steps` of the ST-A phase that does at least `work` example-passes on `task`: whole
    epochs over its training rows, at least the task's own epochs."""
    epochs, rows, per_epoch = st_a_epoch(cfg, task)
    return max(epochs, math.ceil(work / rows - 1e-9)) * per_epoch


def st_a_epochs_run(cfg: Config, task: Task, min_steps: int) -> int:
    """Epochs an ST-A phase with `min_steps` trains (`train.run_phase`: whole epochs)."""
    epochs, _, per_epoch = st_a_epoch(cfg, task)
    return max(epochs, math.ceil(min_steps / per_epoch))


def reference_scores(cfg: Config, order: Sequence[str], tasks: dict[str, Task], executor) -> Optional[np.ndarray]:
    """S_ref(k) for CLiMB's KT: the reference method (order-independent) trained on each task alone."""
    ref = cfg.method.kt_reference
    if not METHODS[ref].single_task:  # an order-dependent method has no per-task reference
        return None
    scores = []
    for name in order:
        ctx = MethodContext(cfg, tasks[name], executor.run)
        dep = METHODS[ref].arrive(ctx, [], []).deployed[name]
        scores.append(executor.evaluate(dep, tasks[name])[0])
    return np.asarray(scores)


def matched_reference_scores(cfg: Config, order: Sequence[str], tasks: dict[str, Task], executor,
                             steps: Sequence[int]) -> np.ndarray:
    """ST-A trained on each task alone with `min_steps` = `steps` (whole epochs, so up to one epoch
    more): the step-matched control with the method's steps, the work-matched one with
    `work_matched_steps`. `min_steps` only adds whole epochs, so the floor asked for is the epochs it
    runs x ST-A's steps per epoch (0 when the task's own epochs reach it: ST-A's phase itself): controls
    that train the same epochs are one phase (the same numbers, trained once for every method)."""
    scores = []
    for name, n in zip(order, steps):
        ctx = MethodContext(cfg, tasks[name], executor.run)
        epochs, _, per_epoch = st_a_epoch(cfg, tasks[name])
        run = st_a_epochs_run(cfg, tasks[name], int(n))
        key = ctx.train(ctx.phase("adapter", min_steps=run * per_epoch if run > epochs else 0))
        scores.append(executor.evaluate(Deployed(head=key, adapter=key), tasks[name])[0])
    return np.asarray(scores)


@dataclass(frozen=True)
class References:
    """Single-task scores KT compares a run against, per task in arrival order (None: not computed)."""

    ref: Optional[np.ndarray]  # `method.kt_reference` trained on each task alone (CLiMB's S_ref)
    matched: Optional[np.ndarray] = None  # step-matched ST-A: teacher methods with `method.kt_matched`
    work_matched: Optional[np.ndarray] = None  # work-matched ST-A: the same methods
    steps: Optional[np.ndarray] = None  # the step-matched control's `min_steps` (the method's steps)
    work: Optional[np.ndarray] = None  # the method's work per arrival, example-passes
    work_steps: Optional[np.ndarray] = None  # the work-matched control's `min_steps`


def references(cfg: Config, order: Sequence[str], tasks: dict[str, Task], executor,
               arrived: Sequence[dict]) -> References:
    """Train (or reuse from the store) the phases KT needs after the stream: the reference method on
    each task alone, then for a teacher method ST-A matched to each arrival's steps and to its work
    (`arrived`: each arrival's `train_steps` and comma-separated `phase_keys`). A work-matched
    control that would run the same epochs as the step-matched one is that one (no second phase)."""
    ref = reference_scores(cfg, order, tasks, executor)
    if not (cfg.method.kt_matched and METHODS[cfg.method.name].uses_teachers):
        return References(ref)
    steps = np.asarray([int(a["train_steps"]) for a in arrived])
    matched = matched_reference_scores(cfg, order, tasks, executor, steps)
    work = np.asarray([arrival_work(executor.store, [k for k in a["phase_keys"].split(",") if k]) for a in arrived])
    work_steps = np.asarray([work_matched_steps(cfg, tasks[n], w) for n, w in zip(order, work)])
    work_matched = matched.copy()
    for i, name in enumerate(order):
        if st_a_epochs_run(cfg, tasks[name], work_steps[i]) != st_a_epochs_run(cfg, tasks[name], steps[i]):
            work_matched[i] = matched_reference_scores(cfg, [name], tasks, executor, [work_steps[i]])[0]
    return References(ref, matched, work_matched, steps, work, work_steps)

