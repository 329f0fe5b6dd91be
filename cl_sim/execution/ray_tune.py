"""Ray Tune sweeps: the trials of `cl_sim.sweep` run as Tune trials sharing one durable store,
collected into one table per sweep.

    cfg, sweep = load_sweep("task_order", ["sweep.sample=3"])   # a shipped config's name or a path
    connect(None)                                 # join the running cluster or start a local one
    res = run_sweep(cfg, sweep, trials_for(cfg, sweep))
    res.paths["tasks"]                            # one row per (trial, task); res.counts: trained/reused
    res.result_grid.get_dataframe()               # Tune's view: a column per parameter (config/training.lr)

The sweep's axes and `sweep.space` become named Tune parameters (`tune_space.py`); a search
(`sweep.search: random | optuna`, `sweep.scheduler: asha` over arrivals) ends with its best config
re-run on fresh seeds (`confirm`).

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

import dataclasses
import functools
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import ray
from ray import tune

from cl_sim.config import Config
from cl_sim.errors import CLSimError, ConfigError
from cl_sim.execution.base import open_executor, overhead_line, resolve
from cl_sim.execution.pool_size import TRIAL_CPU, TRIALS_PER_SLOT, started_here
from cl_sim.execution.trial import run_trial
from cl_sim.execution.tune_space import callbacks, dirname, param_space, resources, scheduler, search_alg, trial_params
from cl_sim.io import atomic_write_json
from cl_sim.search_space import ORDER_PREFIX, parse_space
from cl_sim.storage import is_uri, train_storage
from cl_sim.sweep import (SUMMARY, Log, SweepConfig, SweepResult, absolute_paths, counts_line, load_sweep,  # noqa: F401
                          dispatch_order, searches, store_counts, sweep_counts, sweep_tables, trial_config, trial_id,
                          trials_for, write_sweep)


# ---------------------------------------------------------------- Ray and Tune


def connect(address: Optional[str] = None, log: Log = print) -> bool:
    """Join or start Ray. `address`: None = `$RAY_ADDRESS` (set by `ray job submit`), else a cluster
    started with `ray start` on this machine, else a new local one; `local` = always a new local
    one; `auto` / `host:port` = that cluster. Returns True when this process started Ray."""
    if ray.is_initialized():
        return False
    from cl_sim.progress import VERBOSE, verbosity

    # unless --verbose the trials' own lines (per phase) stay in their logs (Tune's trial folders) and
    # the driver prints a line per arrival and per trial (`_Progress`): no "(_trainable pid=...)" prefixes
    ctx = ray.init(address=address, logging_level=logging.WARNING, log_to_driver=verbosity() >= VERBOSE)
    from cl_sim.execution.ray_logs import quiet_ray_driver_logs
    from cl_sim.progress import set_verbosity

    set_verbosity(verbosity())  # ray.init reset Ray's loggers: quiet Tune's "View results"/TensorBoard lines again
    quiet_ray_driver_logs()
    started = started_here()  # a driver that joins a cluster has a non-head node
    dash = f", dashboard {ctx.dashboard_url}" if ctx.dashboard_url else ""
    log(f"ray: {'started a local cluster' if started else 'joined'} {ctx.address_info['gcs_address']} "
        f"({ray.cluster_resources().get('CPU', 0):g} CPUs{dash})")
    return started


def _trainable(config: dict, base: dict, threads: int, cwd: str) -> None:
    if os.path.isdir(cwd):  # Tune starts trials in their own folder; relative data paths mean the driver's
        os.chdir(cwd)
    from cl_sim.progress import set_verbosity, verbosity

    set_verbosity(verbosity())  # the driver's level (inherited env): quiets Ray Train's checkpoint lines
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731  (progress: stderr, also when forwarded)
    out = run_trial(base, trial_params(config), threads, log=log, report=tune.report)
    numbers = {k: v for k, v in out["summary"].items() if k in SUMMARY}
    with tempfile.TemporaryDirectory() as tmp:  # the rows travel as a checkpoint (Tune's storage), not a metric
        with open(os.path.join(tmp, ROWS_FILE), "w") as f:
            json.dump(out, f, default=_json_scalar)
        tune.report({**out["last"], **numbers, "phases_trained": sum(out["trained"].values()),
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
        self.arrivals: dict[str, tuple] = {}  # running trials' last reported (arrival, name)
        self.stopped = 0

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
            self.arrivals[trial.trial_id] = (result.get("arrival", 0), result.get("name", str(trial)))
            score = result.get("score")
            self.log(f"  {result.get('name', trial)}: arrival {result.get('arrival')} {result.get('task')}: score "
                     f"{'-' if score is None else f'{score:.3f}'}, running avg {result.get('running_avg', 0):.3f}")
            return
        self.done += 1
        self.arrivals.pop(trial.trial_id, None)
        acc = result.get("avg_accuracy")
        self.log(f"[{self.done}/{self.total}] {result.get('name', trial)}: avg_accuracy "
                 f"{'-' if acc is None else f'{acc:.3f}'}, phases trained {result['phases_trained']}, "
                 f"reused {result['phases_reused']}; {self._trials(trials)} ({time.strftime('%H:%M:%S')})")

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id in self.arrivals:  # ended without its final report: the scheduler stopped it
            self.stopped += 1
            self.done += 1
            arrival, name = self.arrivals.pop(trial.trial_id)
            self.log(f"[{self.done}/{self.total}] {name}: stopped early by the scheduler after {arrival} "
                     f"arrival(s); {self._trials(trials)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.arrivals.pop(trial.trial_id, None)
        self.log(f"trial {trial} FAILED (its log: {trial.local_path})")


def _resources(cfg: Config, sweep: SweepConfig) -> tuple[dict, int, int]:
    """(trial resources, max concurrent trials, torch threads per trial), per RAY-NOTES: a trial that
    only drives the phase pool takes a sliver of a CPU; a local trial trains, so it takes its CPUs
    (and a GPU when it trains on one)."""
    if cfg.execution.executor == "ray":
        return {"cpu": TRIAL_CPU}, sweep.max_concurrent_trials or TRIALS_PER_SLOT * cfg.execution.slots, 1
    cpus = sweep.cpus_per_trial
    res = resources(cfg.execution.executor, cfg.execution.use_gpu, cpus)
    fits = ray.cluster_resources().get("CPU", 1) // cpus
    if "gpu" in res:
        fits = min(fits, ray.cluster_resources().get("GPU", 0))
    concurrent = sweep.max_concurrent_trials or max(1, int(fits))
    return res, concurrent, max(1, math.floor(cpus))


def tune_storage(cfg: Config, out: Path) -> tuple[str, object]:
    """(storage_path, storage_filesystem) of the Tune experiment: beside the store when that is a
    URI (s3://...), so trials on other nodes can write their reports; else `<out>/tune`."""
    if is_uri(cfg.execution.store_dir):
        return train_storage(cfg.execution.store_dir, f"tune/{out.name}")
    return str(out / "tune"), None


@dataclass
class Outcome:
    reports: list[dict]  # `run_trial` outputs of the finished trials, by trial id (unique)
    failures: list[dict]  # {trial_id, error}
    stopped: int  # trials the scheduler stopped early (no rows)
    grid: object = None  # Tune's ResultGrid
    stopped_runs: list = dataclasses.field(default_factory=list)  # {trial_id, trained, reused, arrivals} of those


def tune_trials(cfg: Config, sweep: SweepConfig, trials: list[dict], out: Path, log: Log,
                status: Optional[Callable[[], dict]] = None, name: Optional[str] = None,
                resume: bool = False) -> Outcome:
    """Run the trials (and `sweep.space` samples) on Ray Tune. `status`: the phase pool's counts,
    for the progress lines. `resume`: continue the Tune experiment in `out` where it stopped."""
    dims = parse_space(sweep.space, cfg.to_dict())
    tasks = list(sweep.tasks) or [t.name for t in cfg.tasks]
    space = param_space(sweep, dims, trials, tasks)
    n_grid = len(trials) if len(trials) > 1 and sweep.search != "optuna" else 1
    for dim in dims.values():
        n_grid *= len(dim.args) if dim.kind == "grid" and sweep.search != "optuna" else 1
    total = n_grid * sweep.num_samples
    res, concurrent, threads = _resources(cfg, sweep)
    log(f"tune: {total} trials ({sweep.search} search, {sweep.scheduler} scheduler, metric {sweep.metric} "
        f"{sweep.mode}), {res} each, at most {concurrent} at a time, {threads} torch thread(s)")
    fn = tune.with_resources(tune.with_parameters(_trainable, base=cfg.to_dict(), threads=threads, cwd=os.getcwd()),
                             res)
    storage, filesystem = tune_storage(cfg, out)
    name = name or sweep.name
    progress = _Progress(total, log, status)
    # a trial whose actor or node goes away (an autoscaler scaling a node down, a spot node lost) restarts,
    # up to execution.max_failures times: it is deterministic and its finished phases come from the store
    run_config = tune.RunConfig(name=name, storage_path=storage, storage_filesystem=filesystem, verbose=0,
                                failure_config=tune.FailureConfig(max_failures=cfg.execution.max_failures),
                                callbacks=[progress, *callbacks(sweep, str(out))])
    tune_config = tune.TuneConfig(
        metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples, max_concurrent_trials=concurrent if sweep.search == "optuna" else None,
        search_alg=search_alg(sweep, sweep.metric, sweep.mode, concurrent), scheduler=scheduler(sweep, len(tasks)),
        reuse_actors=True, trial_name_creator=dirname, trial_dirname_creator=dirname)
    path = f"{storage}/{name}"
    if resume and tune.Tuner.can_restore(path, storage_filesystem=filesystem):
        log(f"tune: resuming {path}")
        tuner = tune.Tuner.restore(path, fn, resume_errored=True, storage_filesystem=filesystem)
    else:
        tuner = tune.Tuner(fn, param_space=space, tune_config=tune_config, run_config=run_config)
    reports, failed, stopped = [], [], []
    grid = tuner.fit()
    for result in grid:
        tid = trial_id(trial_params(result.config or {}))
        if result.error is None and result.checkpoint is not None:
            with result.checkpoint.as_directory() as folder:
                reports.append(json.loads((Path(folder) / ROWS_FILE).read_text()))
        elif result.error is None and "phases_trained" not in (result.metrics or {}):
            last = result.metrics or {}  # the scheduler stopped it before its last arrival: its last report
            stopped.append({"trial_id": tid, "trained": dict(last.get("trained") or {}),
                            "reused": dict(last.get("reused") or {}), "arrivals": last.get("arrival")})
        else:
            failed.append({"trial_id": tid, "error": _short(result.error) if result.error else "no result reported"})
    return Outcome(unique_ids(reports), sorted(failed, key=lambda f: f["trial_id"]), len(stopped), grid,
                   sorted(stopped, key=lambda s: s["trial_id"]))


def unique_ids(reports: list[dict]) -> list[dict]:
    """Sorted by trial id; a search that sampled the same config twice gets `#2`, `#3`, ..."""
    seen: Counter = Counter()
    for r in sorted(reports, key=lambda r: r["trial_id"]):
        seen[r["trial_id"]] += 1
        if seen[r["trial_id"]] > 1:
            new = f"{r['trial_id']}#{seen[r['trial_id']]}"
            r["trial_id"] = new
            for rows in r["rows"].values():
                for row in rows:
                    row["trial_id"] = new
    return sorted(reports, key=lambda r: r["trial_id"])


def _short(err) -> str:
    cause = getattr(err, "cause", None) or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"


def run_sweep(cfg: Config, sweep: SweepConfig, trials: list[dict], log: Log = print, resume: bool = False
              ) -> SweepResult:
    """Run `trials` on Ray Tune (Ray must be up: `connect`), then write the sweep's tables, counts
    and report under `<output.dir>/<output.name or sweep.name>` from the trials that finished.
    Every trial config is validated before anything starts; failed trials are listed in
    `failures.json` (and `res.failures`); if none finished, nothing is written. A search
    (`sweep.space` or `orderings: search`) then re-runs its best config on `sweep.confirm_seeds`
    fresh seeds (`confirm.json`, `res.confirm`)."""
    cfg = absolute_paths(cfg)
    out = Path(cfg.output.dir) / (cfg.output.name or sweep.name)
    if not trials:
        raise ConfigError("sweep: no trials (check sweep.methods, sweep.seeds and the tasks)")
    for params in trials:
        trial_config(cfg.to_dict(), params)
    start = time.perf_counter()
    cfg = resolve(cfg, default="ray", parallel=len(trials) * sweep.num_samples, log=log)  # the sized pool's config
    log(f"sweep {sweep.name}: {len(trials)} trials; store {cfg.execution.store_dir}; results {out}")
    from cl_sim.store import Store
    from cl_sim.store_admin import foreign_note

    if note := foreign_note(Store(cfg.execution.store_dir), cfg.backbone.name):
        log(note)
    before = store_counts(cfg.execution.store_dir)
    pool = _start_pool(cfg, log) if cfg.execution.executor == "ray" else None
    opened = time.perf_counter() - start
    confirmed = None
    try:
        # Tune pickles its callbacks: the status call holds the pool's actor handle, not the executor
        status = functools.partial(pool_status, pool.pool) if pool is not None else None
        outcome = tune_trials(cfg, sweep, trials, out, log, status, resume=resume)
        if outcome.reports and searches(sweep) and sweep.confirm_seeds:
            confirmed = confirm(cfg, sweep, outcome, out, log, status)
        busy = busy_line(status, cfg.execution.slots, time.perf_counter() - start - opened) if status else None
    finally:
        if pool is not None:
            pool.close()
    reports, failures = outcome.reports, outcome.failures
    if not reports:
        raise CLSimError(f"all {len(trials)} trials failed or were stopped; nothing written, finished phases are in "
                         f"the store (rerun to resume). First: "
                         + (f"{failures[0]['trial_id']}: {failures[0]['error']}" if failures else "none failed"))
    counts = sweep_counts(before, store_counts(cfg.execution.store_dir), reports, outcome.stopped_runs,
                          confirmed if confirmed and "trained" in confirmed else None)
    counts["wall_s"] = round(time.perf_counter() - start, 1)
    counts["stopped_early"] = outcome.stopped
    tables = sweep_tables(reports)
    paths = write_sweep(out, cfg, sweep, tables, counts)
    paths["failures"] = out / "failures.json"
    atomic_write_json(paths["failures"], failures)
    if confirmed is not None:
        paths["confirm"] = out / "confirm.json"
        atomic_write_json(paths["confirm"], confirmed)
    for f in failures:
        log(f"trial {f['trial_id']} FAILED: {f['error']}")
    overheads = sorted((x for r in reports for x in r.get("overheads", [])), reverse=True)  # start-up first
    log(overhead_line(cfg, opened, overheads))
    if busy:
        log(busy)
    if sweep.scheduler != "fifo":
        log(f"{sweep.scheduler}: stopped {outcome.stopped} of {len(reports) + outcome.stopped + len(failures)} "
            f"trials early (before their last arrival)")
    log(f"{counts_line(counts)}; {counts['wall_s']} s" + (f"; {len(failures)} trial(s) FAILED" if failures else ""))
    return SweepResult(out, paths, counts, tables, failures, confirm=confirmed, stopped=outcome.stopped,
                       result_grid=outcome.grid)


def final_metric(report: dict, metric: str) -> float:
    """A finished trial's value of the sweep's metric (its last report, else its summary)."""
    value = report["last"].get(metric, report["summary"].get(metric))
    return math.nan if value is None else float(value)


def confirm(cfg: Config, sweep: SweepConfig, outcome: Outcome, out: Path, log: Log,
            status: Optional[Callable[[], dict]]) -> dict:
    """Re-run the search's best config on fresh seeds. The best of N noisy trials is biased upward
    (it won partly by luck); the same config on seeds the search never saw is not."""
    from cl_sim.report.stats import mean_ci

    scored = [r for r in outcome.reports if not math.isnan(final_metric(r, sweep.metric))]
    if not scored:
        return {"error": f"no finished trial reported {sweep.metric}"}
    pick = max if sweep.mode == "max" else min
    best = pick(scored, key=lambda r: final_metric(r, sweep.metric))
    params = {k: v for k, v in best["params"].items() if not k.startswith(ORDER_PREFIX)}
    params["ordering"] = tuple(best["last"]["ordering"].split(">"))  # explicit, also when it was searched
    used = set(sweep.seeds) | {cfg.training.seed} | {r["params"].get("seed", cfg.training.seed) for r in outcome.reports}
    seeds = [max(used) + 1 + i for i in range(sweep.confirm_seeds)]
    log(f"best of {len(outcome.reports)} finished trials: {best['trial_id']}: {sweep.metric} "
        f"{final_metric(best, sweep.metric):.4f} (biased upward: the best of many noisy trials); "
        f"re-running it on fresh seeds {seeds}")
    plain = dataclasses.replace(sweep, space={}, orderings="config", search="grid", scheduler="fifo", num_samples=1,
                                callbacks=())
    again = tune_trials(cfg, plain, [{**params, "seed": s} for s in seeds], out, log, status, name=f"{sweep.name}_confirm")
    scores = {r["params"]["seed"]: final_metric(r, sweep.metric) for r in again.reports}
    own = sweep_counts({}, {}, again.reports)  # the re-run's own phases: counts.json lists them apart
    ci = mean_ci(list(scores.values()))
    finite = lambda x: x if x == x else None  # noqa: E731  (JSON has no NaN: one seed has no interval)
    log(f"confirmed on {ci.n} fresh seeds: {sweep.metric} {ci.fmt(4)} (95% interval; the search's "
        f"{final_metric(best, sweep.metric):.4f} is the best of {len(outcome.reports)} and biased upward)")
    return {"best_trial": best["trial_id"], "params": params, "metric": sweep.metric, "mode": sweep.mode,
            "search_score": final_metric(best, sweep.metric), "trials_searched": len(outcome.reports),
            "seeds": seeds, "scores": scores, "mean": finite(ci.mean), "ci95": [finite(ci.low), finite(ci.high)],
            "failures": again.failures, "trained": own["trained"], "reused": own["reused"],
            "note": "the search's best score is the maximum over noisy trials and biased upward; "
                    "the fresh-seed mean and interval are not"}


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
