"""One sweep trial, run end to end (with or without Tune): trial config -> executor -> stream.

    out = run_trial(cfg.to_dict(), {"ordering": ("a", "b"), "method": "i2i", "seed": 0})
    out["rows"]["tasks"]            # + trial_id, summary, trained / reused by kind, overheads

Every report a trial makes has one schema (`arrival_report`): `arrival`, `task`, `score` (the
arriving task's score), `running_avg` (mean score over the tasks seen so far: after the last
arrival it is the stream's avg_accuracy), `ordering`, `name` (the readable trial id) and `done`.
The last arrival is not reported here: the trial's final report (`done=True`, with the summary and
the rows as a checkpoint) carries it, so a scheduler that stops a trial at its last arrival cannot
stop it before its rows are saved.

Phases go through `open_executor` with the trial's config (the driver resolved it: `executor`
local or ray, the pool's shape). A phase key is trained once: the store actor's claims (Ray), or
a file lock per key in the store folder (local trials in several processes; on several nodes
that folder must be shared storage).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Optional

from cl_sim.execution.base import Log, open_executor
from cl_sim.storage import is_uri
from cl_sim.sweep import ROW_TABLES, searched, trial_columns, trial_config, trial_id

# Test hook: a trial whose id equals this variable's value fails before it trains anything.
FAIL_ENV = "CL_SIM_TEST_FAIL_TRIAL"


@contextlib.contextmanager
def _key_lock(folder: Path, key: str):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{key}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # the kernel drops it when a process dies: a killed trial blocks nobody
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class CountingExecutor:
    """Wraps an executor: counts phases trained / reused per kind; with `lock_dir`, trials in other
    processes wait for each other per key instead of training one phase twice."""

    thread_safe = False  # `submit` runs at once: counting compares counters around one phase

    def __init__(self, inner, lock_dir: Optional[Path] = None):
        self.inner, self.store, self.lock_dir = inner, inner.store, lock_dir
        self.trained: Counter = Counter()
        self.reused: Counter = Counter()
        self.overheads = inner.overheads

    def run(self, phase) -> str:
        with _key_lock(self.lock_dir, phase.key()) if self.lock_dir else contextlib.nullcontext():
            before = self.inner.trained
            key = self.inner.run(phase)
            (self.trained if self.inner.trained > before else self.reused)[phase.kind] += 1
        return key

    def submit(self, phase) -> Future:
        """Runs now: counting compares the inner counters before and after, one phase at a time."""
        done: Future = Future()
        done.set_result(self.run(phase))
        return done

    def evaluate(self, dep, task):
        return self.inner.evaluate(dep, task)

    def close(self) -> None:
        self.inner.close()  # a trial's Ray executor only detaches: the driver owns the pool


def make_trial_executor(cfg, tasks: dict, threads: int, log: Log) -> CountingExecutor:
    """The trial's executor (`execution.executor` local or ray), counting what it trains."""
    inner = open_executor(cfg, tasks, threads, log=log)
    local_folder = cfg.execution.executor != "ray" and not is_uri(inner.store.root)  # per-key file locks
    lock_dir = inner.store.root / "locks" if local_folder else None
    return CountingExecutor(inner, lock_dir=lock_dir)


def arrival_report(metrics: dict, name: str, order: tuple, done: bool = False) -> dict:
    """One report's stable keys, from `run_stream`'s per-arrival metrics."""
    return {"arrival": metrics["arrival"], "task": metrics["task"], "score": metrics["score"],
            "running_avg": metrics["avg_seen"], "ordering": ">".join(order), "name": name, "done": done}


def run_trial(base: dict, params: dict, threads: int = 1, log: Log = print,
              report: Optional[Callable[[dict], None]] = None) -> dict:
    """Run one trial: {trial_id, summary, trained, reused (by kind), overheads, rows (per table),
    searched (the searched config keys' values), last (the last arrival's report)}.

    `report` gets `arrival_report` after every arrival but the last (Tune's `tune.report`)."""
    from cl_sim.simulate import run_stream
    from cl_sim.tasks import load_tasks

    cfg, tid = trial_config(base, params), trial_id(params)
    if os.environ.get(FAIL_ENV) == tid:
        raise RuntimeError(f"trial {tid} failed on purpose ({FAIL_ENV})")
    tagged = lambda m: log(f"[{tid}] {m}")  # noqa: E731
    tasks = load_tasks(cfg)
    order = tuple(cfg.stream.ordering or (t.name for t in cfg.tasks))
    seen: list[dict] = []

    def on_arrival(metrics: dict) -> None:  # + the phases so far: a trial a scheduler stops is counted too
        seen.append({**arrival_report(metrics, tid, order), "trained": dict(executor.trained),
                     "reused": dict(executor.reused)})
        if report is not None and metrics["arrival"] < len(order):
            report(seen[-1])

    executor = make_trial_executor(cfg, tasks, threads, tagged)
    try:
        rec = run_stream(cfg, tasks, executor, order, run_id=tid, log=tagged, on_arrival=on_arrival)
    finally:
        executor.close()
    ident = trial_columns(cfg, params)
    rows = {name: [{**ident, **r} for r in getattr(rec, name)] for name in ROW_TABLES}
    return {"trial_id": tid, "summary": rec.summary, "trained": dict(executor.trained),
            "reused": dict(executor.reused), "overheads": list(executor.inner.overheads),
            "rows": rows, "params": params, "searched": searched(params), "last": {**seen[-1], "done": True}}
