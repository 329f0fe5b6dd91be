"""Ray Tune sweeps: the trials of `cl_sim.sweep` run as Tune trials sharing one durable store,
collected into one table per sweep.

    cfg, sweep = load_sweep("experiments/configs/task_order.yaml", ["sweep.sample=3"])
    connect(None)                                 # join the running cluster or start a local one
    res = run_sweep(cfg, sweep, trials_for(cfg, sweep))
    res.paths["tasks"]                            # one row per (trial, task); res.counts: trained/reused

Each trial is a Tune function trainable: `run_trial`, then `tune.report` of its summary and rows.
Phases run through the executor the config names: `execution.executor=ray` uses
`cl_sim.execution.ray_train` (one phase pool on the cluster, started by this driver, shared by the
trials) when it imports, else each trial trains in its own process with `LocalExecutor` (logged).

Resume: the store is durable and evaluation scores are cached beside it, so rerunning a killed
sweep trains only the unfinished phases and writes the same tables. What was trained vs reused
goes to `counts.json`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Optional

import ray
from ray import tune

from cl_sim.config import Config
from cl_sim.errors import CLSimError, ConfigError
from cl_sim.sweep import (SUMMARY, Log, SweepConfig, SweepResult, absolute_paths, counts_line, load_sweep,  # noqa: F401
                          run_trial, store_counts, sweep_counts, sweep_tables, trial_config, trial_id, trials_for,
                          write_sweep)


# ---------------------------------------------------------------- Ray and Tune


def connect(address: Optional[str] = None, log: Log = print) -> bool:
    """Join or start Ray. `address`: None = `$RAY_ADDRESS` (set by `ray job submit`), else a cluster
    started with `ray start` on this machine, else a new local one; `local` = always a new local
    one; `auto` / `host:port` = that cluster. Returns True when this process started Ray."""
    if ray.is_initialized():
        return False
    ctx = ray.init(address=address, logging_level=logging.WARNING)
    node = getattr(ray._private.worker.global_worker, "node", None)
    started = bool(getattr(node, "head", False))  # a driver that joins a cluster has a non-head node
    dash = f", dashboard {ctx.dashboard_url}" if ctx.dashboard_url else ""
    log(f"ray: {'started a local cluster' if started else 'joined'} {ctx.address_info['gcs_address']} "
        f"({ray.cluster_resources().get('CPU', 0):g} CPUs{dash})")
    return started


def choose_executor(cfg: Config, log: Log) -> str:
    """`ray` when the config asks for it and `cl_sim.execution.ray_train` imports, else `local`."""
    if cfg.execution.executor != "ray":
        log("executor: local (each trial trains its phases in its own process; "
            "execution.executor=ray runs them on a Ray Train phase pool)")
        return "local"
    try:
        import cl_sim.execution.ray_train  # noqa: F401
    except ImportError as exc:
        log(f"executor: local, NOT ray: cl_sim.execution.ray_train does not import ({exc})")
        return "local"
    ex = cfg.execution
    log(f"executor: ray (one phase pool, {ex.slots} slot(s) x {ex.num_workers} Train worker(s), for all trials)")
    return "ray"


def _trainable(config: dict, base: dict, trials: dict, executor_kind: str, threads: int, cwd: str) -> None:
    if os.path.isdir(cwd):  # Tune starts trials in their own folder; relative data paths mean the driver's
        os.chdir(cwd)
    out = run_trial(base, trials[config["trial"]], executor_kind, threads, log=lambda m: print(m, flush=True))
    numbers = {k: v for k, v in out["summary"].items() if k in SUMMARY}
    tune.report({**numbers, "phases_trained": sum(out["trained"].values()),
                 "phases_reused": sum(out["reused"].values()),
                 "report": json.dumps(out, default=_json_scalar)})  # a string: Tune's loggers keep it as is


def _json_scalar(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class _Progress(tune.Callback):
    """One line per finished trial (Tune's own tables would print every metric, rows included)."""

    def __init__(self, total: int, log: Log):
        self.total, self.log, self.done = total, log, 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.done += 1
        acc = result.get("avg_accuracy")
        self.log(f"[{self.done}/{self.total}] {trial.config['trial']}: avg_accuracy "
                 f"{'-' if acc is None else f'{acc:.3f}'}, phases trained {result['phases_trained']}, "
                 f"reused {result['phases_reused']} ({time.strftime('%H:%M:%S')})")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.log(f"trial {trial.config.get('trial')} FAILED (its log: {trial.local_path})")


def _resources(cfg: Config, sweep: SweepConfig, kind: str) -> tuple[dict, int, int]:
    """(trial resources, max concurrent trials, torch threads per trial), per RAY-NOTES: a trial that
    only drives the phase pool takes a sliver of a CPU; a local trial trains, so it takes its CPUs."""
    if kind == "ray":
        return {"cpu": 0.01}, sweep.max_concurrent_trials or 2 * cfg.execution.slots, 1
    cpus = sweep.cpus_per_trial
    concurrent = sweep.max_concurrent_trials or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
    return {"cpu": cpus}, concurrent, max(1, math.floor(cpus))


def tune_trials(cfg: Config, sweep: SweepConfig, trials: list[dict], kind: str, out: Path, log: Log) -> list[dict]:
    """Run every trial on Ray Tune; returns their `run_trial` outputs, sorted by trial id."""
    by_id = {trial_id(p): p for p in trials}
    resources, concurrent, threads = _resources(cfg, sweep, kind)
    log(f"tune: {len(by_id)} trials, {resources} each, at most {concurrent} at a time, {threads} torch thread(s)")
    fn = tune.with_parameters(_trainable, base=cfg.to_dict(), trials=by_id, executor_kind=kind, threads=threads,
                              cwd=os.getcwd())
    tuner = tune.Tuner(tune.with_resources(fn, resources), param_space={"trial": tune.grid_search(list(by_id))},
                       tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
                       run_config=tune.RunConfig(name=sweep.name, storage_path=str(out / "tune"), verbose=0,
                                                 callbacks=[_Progress(len(by_id), log)]))
    reports, failed = [], []
    for res in tuner.fit():
        if res.error is not None or "report" not in (res.metrics or {}):
            failed.append(f"{(res.config or {}).get('trial', '?')}: {_short(res.error)}")
        else:
            reports.append(json.loads(res.metrics["report"]))
    if failed:
        raise CLSimError(f"{len(failed)} of {len(by_id)} trials failed; nothing written, finished phases are in "
                         f"the store (rerun to resume). First: {failed[0]}")
    return sorted(reports, key=lambda r: r["trial_id"])


def _short(err) -> str:
    cause = getattr(err, "cause", None) or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"


def run_sweep(cfg: Config, sweep: SweepConfig, trials: list[dict], log: Log = print) -> SweepResult:
    """Run `trials` on Ray Tune (Ray must be up: `connect`), then write the sweep's tables, counts
    and report under `<output.dir>/<output.name or sweep.name>`. Every trial config is validated
    before anything starts; if a trial fails, no table is (over)written."""
    cfg = absolute_paths(cfg)
    out = Path(cfg.output.dir) / (cfg.output.name or sweep.name)
    if not trials:
        raise ConfigError("sweep: no trials (check sweep.methods, sweep.seeds and the tasks)")
    for params in trials:
        trial_config(cfg.to_dict(), params)
    kind = choose_executor(cfg, log)
    log(f"sweep {sweep.name}: {len(trials)} trials; store {cfg.execution.store_dir}; results {out}")
    from cl_sim.store import Store
    from cl_sim.store_admin import foreign_note

    if note := foreign_note(Store(cfg.execution.store_dir), cfg.backbone.name):
        log(note)
    before, start = store_counts(cfg.execution.store_dir), time.perf_counter()
    pool = _start_pool(cfg, log) if kind == "ray" else None
    try:
        reports = tune_trials(cfg, sweep, trials, kind, out, log)
    finally:
        if pool is not None:
            pool.shutdown(stop_ray=False)
    counts = sweep_counts(before, store_counts(cfg.execution.store_dir), reports)
    counts["wall_s"] = round(time.perf_counter() - start, 1)
    tables = sweep_tables(reports)
    paths = write_sweep(out, cfg, sweep, tables, counts)
    log(f"{counts_line(counts)}; {counts['wall_s']} s")
    return SweepResult(out, paths, counts, tables)


def _start_pool(cfg: Config, log: Log):
    """The driver starts the phase pool once; trials find it by name; this driver stops it."""
    from cl_sim.execution.ray_train import make_executor
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks

    return make_executor(cfg, Store(cfg.execution.store_dir), load_tasks(cfg), log=lambda m: log(f"  {m}"))
