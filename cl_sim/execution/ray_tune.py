"""Ray Tune sweeps: the trials of `cl_sim.sweep` run as Tune trials sharing one durable store,
collected into one table per sweep.

    cfg, sweep = load_sweep("experiments/configs/task_order.yaml", ["sweep.sample=3"])
    connect(None)                                 # join the running cluster or start a local one
    res = run_sweep(cfg, sweep, trials_for(cfg, sweep))
    res.paths["tasks"]                            # one row per (trial, task); res.counts: trained/reused

Each trial is a Tune function trainable running `cl_sim.execution.trial.run_trial`: it reports
every arrival's metrics through `tune.report` (so `ResultGrid`, Tune's loggers, callbacks and
schedulers see the work as it happens) and, last, its summary with a checkpoint holding its rows.
Phases run on the Ray Train phase pool by default (`execution.executor=auto`; the driver starts
the pool once, sized from the cluster, and the trials share it) or, with `execution.executor=local`
(`--local`), in each trial's own process.

A failed trial does not lose the others: the tables are written from the trials that finished,
and the failures (with their errors) go to `failures.json` and the log. Resume: the store is
durable and evaluation scores are cached beside it, so rerunning a killed sweep trains only the
unfinished phases and writes the same tables. What was trained vs reused goes to `counts.json`.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import ray
from ray import tune

from cl_sim.config import Config
from cl_sim.errors import CLSimError, ConfigError
from cl_sim.execution.base import open_executor, overhead_line, resolve
from cl_sim.execution.pool_size import TRIAL_CPU, TRIALS_PER_SLOT
from cl_sim.execution.trial import run_trial
from cl_sim.io import atomic_write_json
from cl_sim.sweep import (SUMMARY, Log, SweepConfig, SweepResult, absolute_paths, counts_line, load_sweep,  # noqa: F401
                          dispatch_order, store_counts, sweep_counts, sweep_tables, trial_config, trial_id, trials_for,
                          write_sweep)


# ---------------------------------------------------------------- Ray and Tune


def connect(address: Optional[str] = None, log: Log = print) -> bool:
    """Join or start Ray. `address`: None = `$RAY_ADDRESS` (set by `ray job submit`), else a cluster
    started with `ray start` on this machine, else a new local one; `local` = always a new local
    one; `auto` / `host:port` = that cluster. Returns True when this process started Ray."""
    if ray.is_initialized():
        return False
    from cl_sim.progress import QUIET, verbosity

    # quiet: the trials' own lines (per phase) stay in their logs; the driver prints per trial
    ctx = ray.init(address=address, logging_level=logging.WARNING, log_to_driver=verbosity() > QUIET)
    from cl_sim.execution.ray_logs import quiet_ray_driver_logs
    from cl_sim.progress import set_verbosity

    set_verbosity(verbosity())  # ray.init reset Ray's loggers: quiet Tune's "View results"/TensorBoard lines again
    quiet_ray_driver_logs()
    node = getattr(ray._private.worker.global_worker, "node", None)
    started = bool(getattr(node, "head", False))  # a driver that joins a cluster has a non-head node
    dash = f", dashboard {ctx.dashboard_url}" if ctx.dashboard_url else ""
    log(f"ray: {'started a local cluster' if started else 'joined'} {ctx.address_info['gcs_address']} "
        f"({ray.cluster_resources().get('CPU', 0):g} CPUs{dash})")
    return started


def _trainable(config: dict, base: dict, trials: dict, threads: int, cwd: str) -> None:
    if os.path.isdir(cwd):  # Tune starts trials in their own folder; relative data paths mean the driver's
        os.chdir(cwd)
    from cl_sim.progress import set_verbosity, verbosity

    set_verbosity(verbosity())  # the driver's level (inherited env): quiets Ray Train's checkpoint lines
    out = run_trial(base, trials[config["trial"]], threads, log=lambda m: print(m, flush=True), report=tune.report)
    numbers = {k: v for k, v in out["summary"].items() if k in SUMMARY}
    with tempfile.TemporaryDirectory() as tmp:  # the rows travel as a checkpoint (Tune's storage), not a metric
        with open(os.path.join(tmp, ROWS_FILE), "w") as f:
            json.dump(out, f, default=_json_scalar)
        tune.report({**numbers, "phases_trained": sum(out["trained"].values()),
                     "phases_reused": sum(out["reused"].values())}, checkpoint=tune.Checkpoint.from_directory(tmp))


ROWS_FILE = "trial.json"


def _json_scalar(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class _Progress(tune.Callback):
    """One line per finished trial (Tune's own tables would print every metric, rows included),
    and every `every_s` seconds a line with the pool's phases (done, running, queued) and trials."""

    def __init__(self, total: int, log: Log, status: Optional[Callable[[], dict]] = None, every_s: float = 60.0):
        self.total, self.log, self.done, self.status, self.every_s = total, log, 0, status, every_s
        self.last = time.monotonic()

    def _phases(self) -> str:
        if self.status is None:
            return ""
        try:
            s = self.status()
        except Exception:  # the pool is gone (shutting down): no phase counts, never a failed sweep
            return ""
        return f"phases trained {s['trained']}, running {s['busy']}, queued {s['queued']}; "  # reuse: per trial

    def _trials(self, trials) -> str:
        running = sum(t.status == "RUNNING" for t in trials)
        queued = max(0, self.total - self.done - running)  # Tune creates trials lazily: count from the total
        return f"trials done {self.done}/{self.total}, running {running}, queued {queued}"

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            self.log(f"progress: {self._phases()}{self._trials(trials)} ({time.strftime('%H:%M:%S')})")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "phases_trained" not in result:  # an arrival's report; the trial's last one has the counts
            return
        self.done += 1
        acc = result.get("avg_accuracy")
        self.log(f"[{self.done}/{self.total}] {trial.config['trial']}: avg_accuracy "
                 f"{'-' if acc is None else f'{acc:.3f}'}, phases trained {result['phases_trained']}, "
                 f"reused {result['phases_reused']}; {self._trials(trials)} ({time.strftime('%H:%M:%S')})")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.log(f"trial {trial.config.get('trial')} FAILED (its log: {trial.local_path})")


def _resources(cfg: Config, sweep: SweepConfig) -> tuple[dict, int, int]:
    """(trial resources, max concurrent trials, torch threads per trial), per RAY-NOTES: a trial that
    only drives the phase pool takes a sliver of a CPU; a local trial trains, so it takes its CPUs."""
    if cfg.execution.executor == "ray":
        return {"cpu": TRIAL_CPU}, sweep.max_concurrent_trials or TRIALS_PER_SLOT * cfg.execution.slots, 1
    cpus = sweep.cpus_per_trial
    concurrent = sweep.max_concurrent_trials or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
    return {"cpu": cpus}, concurrent, max(1, math.floor(cpus))


def tune_trials(cfg: Config, sweep: SweepConfig, trials: list[dict], out: Path, log: Log,
                status: Optional[Callable[[], dict]] = None) -> tuple[list[dict], list[dict]]:
    """Run every trial on Ray Tune: (`run_trial` outputs of the finished trials sorted by trial id,
    failures as {trial_id, error}). `status`: the phase pool's counts, for the progress lines."""
    by_id = {trial_id(p): p for p in dispatch_order(trials)}  # the results are sorted by trial id
    resources, concurrent, threads = _resources(cfg, sweep)
    log(f"tune: {len(by_id)} trials, {resources} each, at most {concurrent} at a time, {threads} torch thread(s)")
    fn = tune.with_parameters(_trainable, base=cfg.to_dict(), trials=by_id, threads=threads, cwd=os.getcwd())
    tuner = tune.Tuner(tune.with_resources(fn, resources), param_space={"trial": tune.grid_search(list(by_id))},
                       tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
                       run_config=tune.RunConfig(name=sweep.name, storage_path=str(out / "tune"), verbose=0,
                                                 callbacks=[_Progress(len(by_id), log, status)]))
    reports, failed = [], []
    for res in tuner.fit():
        tid = (res.config or {}).get("trial", "?")
        if res.error is None and res.checkpoint is not None:
            with res.checkpoint.as_directory() as folder:
                reports.append(json.loads((Path(folder) / ROWS_FILE).read_text()))
        else:
            failed.append({"trial_id": tid, "error": _short(res.error) if res.error else "no result reported"})
    return sorted(reports, key=lambda r: r["trial_id"]), sorted(failed, key=lambda f: f["trial_id"])


def _short(err) -> str:
    cause = getattr(err, "cause", None) or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"


def run_sweep(cfg: Config, sweep: SweepConfig, trials: list[dict], log: Log = print) -> SweepResult:
    """Run `trials` on Ray Tune (Ray must be up: `connect`), then write the sweep's tables, counts
    and report under `<output.dir>/<output.name or sweep.name>` from the trials that finished.
    Every trial config is validated before anything starts; failed trials are listed in
    `failures.json` (and `res.failures`); if none finished, nothing is written."""
    cfg = absolute_paths(cfg)
    out = Path(cfg.output.dir) / (cfg.output.name or sweep.name)
    if not trials:
        raise ConfigError("sweep: no trials (check sweep.methods, sweep.seeds and the tasks)")
    for params in trials:
        trial_config(cfg.to_dict(), params)
    start = time.perf_counter()
    cfg = resolve(cfg, default="ray", parallel=len(trials), log=log)  # the trials get the sized pool's config
    log(f"sweep {sweep.name}: {len(trials)} trials; store {cfg.execution.store_dir}; results {out}")
    from cl_sim.store import Store
    from cl_sim.store_admin import foreign_note

    if note := foreign_note(Store(cfg.execution.store_dir), cfg.backbone.name):
        log(note)
    before = store_counts(cfg.execution.store_dir)
    pool = _start_pool(cfg, log) if cfg.execution.executor == "ray" else None
    opened = time.perf_counter() - start
    try:
        # Tune pickles its callbacks: the status call holds the pool's actor handle, not the executor
        status = functools.partial(pool_status, pool.pool) if pool is not None else None
        reports, failures = tune_trials(cfg, sweep, trials, out, log, status)
        busy = busy_line(status, cfg.execution.slots, time.perf_counter() - start - opened) if status else None
    finally:
        if pool is not None:
            pool.close()
    if not reports:
        raise CLSimError(f"all {len(trials)} trials failed; nothing written, finished phases are in the store "
                         f"(rerun to resume). First: {failures[0]['trial_id']}: {failures[0]['error']}")
    counts = sweep_counts(before, store_counts(cfg.execution.store_dir), reports)
    counts["wall_s"] = round(time.perf_counter() - start, 1)
    tables = sweep_tables(reports)
    paths = write_sweep(out, cfg, sweep, tables, counts)
    paths["failures"] = out / "failures.json"
    atomic_write_json(paths["failures"], failures)
    for f in failures:
        log(f"trial {f['trial_id']} FAILED: {f['error']}")
    overheads = sorted((x for r in reports for x in r.get("overheads", [])), reverse=True)  # start-up first
    log(overhead_line(cfg, opened, overheads))
    if busy:
        log(busy)
    log(f"{counts_line(counts)}; {counts['wall_s']} s" + (f"; {len(failures)} trial(s) FAILED" if failures else ""))
    return SweepResult(out, paths, counts, tables, failures)


def busy_line(status: Callable[[], dict], slots: int, wall_s: float) -> Optional[str]:
    """Where the slots' time went: training phases, evaluating, or waiting for a job (or starting);
    None when the pool cannot say (it died): a diagnostic must not cost the sweep its tables."""
    try:
        status = status()
    except Exception:
        return None
    total = max(slots * wall_s, 1e-9)
    phases, evals = status["phase_s"], status["eval_s"]
    return (f"ray: slots busy {100 * (phases + evals) / total:.0f}% of {slots} x {wall_s:.0f} s: phases "
            f"{100 * phases / total:.0f}% ({status['trained']}), evaluations {100 * evals / total:.0f}% "
            f"({status['evaluated']}); the rest waiting for jobs or starting")


def pool_status(pool) -> dict:
    """The phase pool's counts (trained, reused, busy, queued) from its actor handle."""
    return ray.get(pool.status.remote())


def _start_pool(cfg: Config, log: Log):
    """The driver starts the phase pool once; trials find it by name; `close()` stops it."""
    from cl_sim.tasks import load_tasks

    return open_executor(cfg, load_tasks(cfg), log=lambda m: log(f"  {m}"))
