"""The local executor: phases run in this process, one after another. The reference the Ray
executor is checked against (same seed, one worker -> identical results)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Optional

import torch

from cl_sim.data.task import Task
from cl_sim.phases import Phase
from cl_sim.store import Store
from cl_sim.train import evaluate_deployed, run_phase


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)


def eval_key(dep, task: Task, split: str) -> str:
    blob = json.dumps([dataclasses.asdict(dep), task.data_hash(), split], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class LocalExecutor:
    """Runs phases in-process; every finished phase goes to the store, and is reused from it."""

    def __init__(self, store: Store, tasks: dict[str, Task], threads: int = 0, log=None):
        self.store, self.tasks, self.log = store, tasks, log or (lambda msg: None)
        self.trained, self.reused = 0, 0
        set_threads(threads)

    def run(self, phase: Phase) -> str:
        key = phase.key()
        if self.store.has(key):
            self.reused += 1
            return key
        self.log(f"train {phase.kind:<8} {phase.task:<12} {key}")
        out = run_phase(phase, self.tasks[phase.task], self.store)
        self.store.put(key, out.states, {"phase": phase.to_dict(), "metrics": out.metrics, "attention": out.attention})
        self.trained += 1
        return key

    def evaluate(self, dep, task: Task) -> tuple[float, Optional[list]]:
        key = eval_key(dep, task, task.eval_split)
        cached = self.store.score(key)
        if cached is not None:
            return cached
        score, attention = evaluate_deployed(dep, task, self.store)
        self.store.put_score(key, score, attention)
        return score, attention
