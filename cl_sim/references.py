"""The single-task scores KT compares a run against, trained (or reused from the store) after the stream:
CLiMB's reference (`method.kt_reference` on each task alone) and the compute-matched ST-A control."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from cl_sim.config import Config
from cl_sim.data.task import Task
from cl_sim.methods import METHODS, Deployed
from cl_sim.methods.base import MethodContext


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
    """The compute-matched control: ST-A trained on each task alone for at least as many optimizer
    steps as the method spent on it (whole epochs, so up to one epoch more), separating transfer
    from extra training (I2I's Improvise + Initialize + Train give a task several times ST-A's steps)."""
    scores = []
    for name, n in zip(order, steps):
        ctx = MethodContext(cfg, tasks[name], executor.run)
        key = ctx.train(ctx.phase("adapter", min_steps=int(n)))
        scores.append(executor.evaluate(Deployed(head=key, adapter=key), tasks[name])[0])
    return np.asarray(scores)


@dataclass(frozen=True)
class References:
    """Single-task scores KT compares a run against, per task in arrival order (None: not computed)."""

    ref: Optional[np.ndarray]  # `method.kt_reference` trained on each task alone (CLiMB's S_ref)
    matched: Optional[np.ndarray]  # step-matched ST-A: teacher methods with `method.kt_matched`


def references(cfg: Config, order: Sequence[str], tasks: dict[str, Task], executor,
               steps: Sequence[int]) -> References:
    """Train (or reuse from the store) the phases KT needs after the stream: the reference method on
    each task alone, then for a teacher method ST-A for as many steps as it spent per task (`steps`)."""
    ref = reference_scores(cfg, order, tasks, executor)
    matched = (matched_reference_scores(cfg, order, tasks, executor, steps)
               if cfg.method.kt_matched and METHODS[cfg.method.name].uses_teachers else None)
    return References(ref, matched)
