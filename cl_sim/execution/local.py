"""The local executor: phases run in this process, one after another. The reference the Ray
executor is checked against (same seed, one worker -> identical results)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from concurrent.futures import Future
from typing import Optional

import torch

from cl_sim.data.task import Task
from cl_sim.errors import ConfigError
from cl_sim.execution.devices import runtime_record
from cl_sim.phases import Dist, Phase, phase_meta
from cl_sim.store import Store
from cl_sim.train import evaluate_deployed, run_phase


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)


def eval_key(dep, task: Task, split: str) -> str:
    """Key of a cached evaluation score. The deployment's store keys already carry the code and
    backbone fingerprint (see `Phase.key`), so a score is never reused across code versions."""
    blob = json.dumps([dataclasses.asdict(dep), task.data_hash(), split], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def deployed_refs(dep) -> list[str]:
    """The store entries an evaluation read (kept beside its score so `store gc` can prune it)."""
    return sorted({k for k in dataclasses.asdict(dep).values() if k})


def local_device(use_gpu: bool) -> str:
    """`execution.use_gpu` for in-process runs: the first CUDA device, or a clear error."""
    if not use_gpu:
        return "cpu"
    if not torch.cuda.is_available():
        raise ConfigError("execution.use_gpu: true, but no CUDA device is visible to this process")
    return "cuda"


class LocalExecutor:
    """Runs phases in-process; every finished phase goes to the store, and is reused from it."""

    thread_safe = False  # one process, one phase at a time

    def __init__(self, store: Store, tasks: dict[str, Task], threads: int = 0, log=None, device: str = "cpu",
                 eval_batch_size: int = 128):
        self.store, self.tasks, self.log = store, tasks, log or (lambda msg: None)
        self.device, self.eval_batch_size = device, eval_batch_size
        self.trained, self.reused = 0, 0
        self.overheads: list[float] = []  # nothing between the caller and the phase
        set_threads(threads)

    def run(self, phase: Phase) -> str:
        key = phase.key()
        if self.store.has(key):
            self.reused += 1
            return key
        self.log(f"train {phase.kind:<8} {phase.task:<12} {key}")
        dist = Dist(device=self.device, eval_batch_size=self.eval_batch_size)
        out = run_phase(phase, self.tasks[phase.task], self.store, dist)
        execution = {"executor": "local", **runtime_record(self.device, 1)}
        self.store.put(key, out.states, phase_meta(phase, out.metrics, out.attention, execution=execution))
        m = out.metrics
        dev = "" if m["dev_score"] is None else f", dev {m['dev_score']:.3f} ({m['dev_examples']} ex)"
        self.log(f"done  {phase.kind:<8} {phase.task:<12} {m['wall_s']:.1f} s, {m['steps']} steps, "
                 f"{m['examples'] / max(m['wall_s'], 1e-9):.0f} examples/s{dev}")
        self.trained += 1
        return key

    def submit(self, phase: Phase) -> Future:
        """`run` now (in this thread); the future is already done."""
        done: Future = Future()
        try:
            done.set_result(self.run(phase))
        except Exception as exc:
            done.set_exception(exc)
        return done

    def close(self) -> None:
        """Nothing to release: phases ran in this process."""

    def evaluate(self, dep, task: Task) -> tuple[float, Optional[list]]:
        key = eval_key(dep, task, task.eval_split)
        cached = self.store.score(key)
        if cached is not None:
            return cached
        score, attention = evaluate_deployed(dep, task, self.store, device=self.device,
                                             batch_size=self.eval_batch_size)
        self.store.put_score(key, score, attention, refs=deployed_refs(dep))
        return score, attention
