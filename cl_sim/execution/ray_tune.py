"""Ray Tune sweeps: many runs over orderings × methods × seeds (× teacher counts, low-shot
fractions, I2I variants), sharing one durable store, collected into one table per sweep.

    cfg, sweep = load_sweep("experiments/configs/task_order.yaml", ["sweep.sample=3"])
    connect(None)                                  # join the running cluster or start a local one
    res = run_sweep(cfg, sweep, trials_for(cfg, sweep))
    res.paths["tasks"]                             # one row per (trial, task), deterministic

A trial is a plain dict of params (`PARAMS` maps each to its config key) run by a Tune function
trainable: trial config = base config + params, `run_stream`, `tune.report` of the summary and the
rows. Phases run through the executor the config names: `execution.executor=ray` uses
`cl_sim.execution.ray_train` (the phase pool on the cluster, started once by this driver) when it
imports, otherwise every trial runs its phases in-process with `LocalExecutor`; the choice is
logged. Either way a phase key is trained once: the Ray store actor's claims, or a file lock per
key in the shared store folder (local trials; multi-node needs that folder on shared storage).

Resuming: the store is durable and evaluation scores are cached beside it, so rerunning a killed
sweep trains only the unfinished phases and writes the same tables. Tables hold no wall times
(those are in `phases.parquet`) and are sorted, so an interrupted + resumed sweep and an
uninterrupted one give equal `tasks`/`matrix`/`trials` tables.
"""
from __future__ import annotations

import contextlib
import copy
import fcntl
import itertools
import json
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd
import yaml

from cl_sim.config import Config, build, load_config, save_config, validate
from cl_sim.errors import CLSimError, ConfigError
from cl_sim.methods import USES_TEACHERS

# trial param -> (config section, key)
PARAMS = {"ordering": ("stream", "ordering"), "method": ("method", "name"), "seed": ("training", "seed"),
          "teacher_count": ("method", "teacher_count"), "low_shot_fraction": ("method", "low_shot_fraction"),
          "i2i_variant": ("method", "i2i_variant")}
I2I_ONLY = ("low_shot_fraction", "i2i_variant")
TRIAL_COLUMNS = ("trial_id", "method", "seed", "ordering", "teacher_count", "low_shot_fraction", "i2i_variant")


@dataclass(frozen=True)
class SweepConfig:
    """The `sweep:` section of an experiment YAML (everything else is a cl_sim `Config`).

    orderings: `all` = permutations of `tasks` (or a seeded `sample` of them), `config` = the
    config's one ordering. Empty axis lists mean "not swept": the config's value is used.
    """

    name: str = "sweep"
    tasks: tuple[str, ...] = ()  # tasks to order; empty = all of the config's tasks
    orderings: str = "all"
    sample: Optional[int] = None  # k orderings drawn (seeded) instead of all permutations
    sample_seed: int = 0
    methods: tuple[str, ...] = ("st_a", "i2i")
    seeds: tuple[int, ...] = (0,)
    teacher_counts: tuple[int, ...] = ()
    low_shot_fractions: tuple[float, ...] = ()
    i2i_variants: tuple[str, ...] = ()
    cpus_per_trial: float = 1.0  # local executor: the trial trains; ray executor: trials get 0.01
    max_concurrent_trials: int = 0  # 0 = what the cluster's CPUs hold

    def __post_init__(self):
        if self.orderings not in ("all", "config"):
            raise ConfigError(f"sweep.orderings: {self.orderings!r} is not one of all, config")
        if self.sample is not None and self.sample < 1:
            raise ConfigError(f"sweep.sample: must be >= 1 or null, got {self.sample}")
        if self.cpus_per_trial <= 0:
            raise ConfigError(f"sweep.cpus_per_trial: must be > 0, got {self.cpus_per_trial}")


@dataclass
class SweepResult:
    out: Path
    paths: dict[str, Path]
    counts: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


# ---------------------------------------------------------------- trials: plain data, no Ray


def load_sweep(path: Optional[str | Path], overrides: Sequence[str] = ()) -> tuple[Config, SweepConfig]:
    """Read an experiment YAML: its `sweep:` section plus a cl_sim config; `sweep.*` overrides go to
    the sweep, every other `key=value` to the config (validated once, like `load_config`)."""
    tree = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        tree = yaml.safe_load(Path(path).read_text()) or {}
    sweep_tree = dict(tree.pop("sweep", None) or {})
    cfg_overrides = [f"{k}={json.dumps(v)}" for k, v in tree.items()]  # the file's config, as overrides
    for item in overrides:
        key, _, raw = item.partition("=")
        if key.startswith("sweep."):
            sweep_tree[key[len("sweep."):]] = yaml.safe_load(raw) if raw else ""
        else:
            cfg_overrides.append(item)
    return load_config(None, cfg_overrides), build(SweepConfig, sweep_tree, "sweep")


def orderings(names: Sequence[str], sample: Optional[int] = None, seed: int = 0) -> list[tuple[str, ...]]:
    """All permutations of `names` (lexicographic in the given order), or a seeded sample of k."""
    perms = list(itertools.permutations(names))
    if sample is None or sample >= len(perms):
        return perms
    return sorted(random.Random(seed).sample(perms, sample), key=perms.index)


def grid(**axes: Sequence) -> list[dict]:
    """Cartesian product of the axes as trial dicts; params a method ignores are dropped
    (teacher_count without teachers, low-shot settings outside I2I) and duplicates removed."""
    trials: dict[str, dict] = {}
    for values in itertools.product(*axes.values()):
        params = dict(zip(axes, values))
        method = params.get("method")
        if method is not None and method not in USES_TEACHERS:
            params.pop("teacher_count", None)
        if method is not None and method != "i2i":
            for k in I2I_ONLY:
                params.pop(k, None)
        trials.setdefault(trial_id(params), params)
    return list(trials.values())


def trials_for(cfg: Config, sweep: SweepConfig) -> list[dict]:
    """The sweep's trials: orderings × methods × seeds (× the optional axes)."""
    names = list(sweep.tasks) or [t.name for t in cfg.tasks]
    if sweep.orderings == "config":
        orders = [tuple(cfg.stream.ordering or names)]
    else:
        orders = orderings(names, sweep.sample, sweep.sample_seed)
    axes = {"ordering": orders, "method": sweep.methods, "seed": sweep.seeds}
    for name, values in (("teacher_count", sweep.teacher_counts), ("low_shot_fraction", sweep.low_shot_fractions),
                         ("i2i_variant", sweep.i2i_variants)):
        if values:
            axes[name] = values
    return grid(**axes)


def trial_id(params: dict) -> str:
    """Readable and deterministic (Tune's own ids change between runs)."""
    parts = [params.get("method", "cfg"), f"s{params.get('seed', 'cfg')}"]
    if "ordering" in params:
        parts.append(">".join(params["ordering"]))
    tags = {"teacher_count": "tc", "low_shot_fraction": "ls", "i2i_variant": ""}
    parts += [f"{tag}{params[k]}" for k, tag in tags.items() if k in params]
    return "-".join(str(p) for p in parts)


def trial_config(base: dict, params: dict) -> Config:
    """Base config (a `Config.to_dict()`) with the trial's params applied, validated."""
    tree = copy.deepcopy(base)
    for name, value in params.items():
        if name not in PARAMS:
            raise ConfigError(f"trial param '{name}' is unknown (known: {', '.join(PARAMS)})")
        section, key = PARAMS[name]
        tree[section][key] = list(value) if name == "ordering" else value
    cfg = build(Config, tree)
    validate(cfg)
    return cfg


def absolute_paths(cfg: Config) -> Config:
    """Trials run in other processes and folders: pin the store, output and data paths."""
    ex, out = cfg.execution, cfg.output
    cfg = cfg.replace(execution=_replace(ex, store_dir=str(Path(ex.store_dir).resolve())),
                      output=_replace(out, dir=str(Path(out.dir).resolve())))
    if cfg.data_root is not None:
        cfg = cfg.replace(data_root=str(Path(cfg.data_root).resolve()))
    return cfg


def _replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def store_counts(root: str | Path) -> dict[str, int]:
    """Finished store entries by phase kind (keys are `<kind>-<hash>`)."""
    manifest = Path(root) / "manifest"
    keys = [p.stem for p in manifest.glob("*.json")] if manifest.is_dir() else []
    return dict(sorted(Counter(k.split("-", 1)[0] for k in keys).items()))


# ---------------------------------------------------------------- one trial (testable without Tune)


@contextlib.contextmanager
def _key_lock(folder: Path, key: str):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{key}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the process dies, so a killed trial blocks nobody
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class CountingExecutor:
    """Wraps an executor: counts phases trained / reused by kind; with `lock_dir`, concurrent
    trials wait for each other per key instead of training the same phase twice."""

    def __init__(self, inner, lock_dir: Optional[Path] = None):
        self.inner, self.store, self.lock_dir = inner, inner.store, lock_dir
        self.trained: Counter = Counter()
        self.reused: Counter = Counter()

    def run(self, phase) -> str:
        lock = _key_lock(self.lock_dir, phase.key()) if self.lock_dir else contextlib.nullcontext()
        with lock:
            before = self.inner.trained
            key = self.inner.run(phase)
            (self.trained if self.inner.trained > before else self.reused)[phase.kind] += 1
        return key

    def evaluate(self, dep, task):
        return self.inner.evaluate(dep, task)


def make_trial_executor(cfg: Config, kind: str, tasks: dict, threads: int, log: Callable) -> CountingExecutor:
    """`kind` is `ray` (phase pool on the cluster) or `local` (phases in this process)."""
    from cl_sim.store import Store

    store = Store(cfg.execution.store_dir)
    if kind == "ray":
        from cl_sim.execution.ray_train import make_executor

        return CountingExecutor(make_executor(cfg, store, tasks, log=log))
    from cl_sim.execution.local import LocalExecutor

    inner = LocalExecutor(store, tasks, cfg.training.threads or threads, log=log)
    return CountingExecutor(inner, lock_dir=store.root / "locks")


def run_trial(base: dict, params: dict, executor_kind: str = "local", threads: int = 1,
              log: Callable[[str], None] = print) -> dict:
    """Run one trial; returns its rows (tasks, matrix, phases, attention), summary and counts."""
    from cl_sim.simulate import run_stream
    from cl_sim.tasks import load_tasks

    cfg = trial_config(base, params)
    tid = trial_id(params)
    tasks = load_tasks(cfg)
    executor = make_trial_executor(cfg, executor_kind, tasks, threads, lambda m: log(f"[{tid}] {m}"))
    try:
        rec = run_stream(cfg, tasks, executor, params.get("ordering") or cfg.stream.ordering, run_id=tid,
                         log=lambda m: log(f"[{tid}] {m}"))
    finally:
        if hasattr(executor.inner, "close"):
            executor.inner.close()  # Ray trials leave the shared pool running for the others
    ident = trial_columns(cfg, params)
    return {"trial_id": tid, "params": params, **{k: v for k, v in rec.summary.items()},
            "trained": dict(executor.trained), "reused": dict(executor.reused),
            "rows": {"tasks": [{**ident, **r} for r in rec.tasks], "matrix": [{**ident, **r} for r in rec.matrix],
                     "phases": [{**ident, **r} for r in rec.phases],
                     "attention": [{**ident, **r} for r in rec.attention]}}


def trial_columns(cfg: Config, params: dict) -> dict:
    m = cfg.method
    uses_teachers, i2i = m.name in USES_TEACHERS, m.name == "i2i"
    return {"trial_id": trial_id(params), "method": m.name, "seed": cfg.training.seed,
            "ordering": ">".join(params.get("ordering") or cfg.stream.ordering),
            "teacher_count": float(m.teacher_count) if uses_teachers and m.teacher_count is not None else math.nan,
            "low_shot_fraction": m.low_shot_fraction if i2i else math.nan, "i2i_variant": m.i2i_variant if i2i else None}


# ---------------------------------------------------------------- the sweep on Ray Tune


def connect(address: Optional[str] = None, log: Callable[[str], None] = print) -> bool:
    """Join or start Ray. `address`: None = `$RAY_ADDRESS` (set by `ray job submit`), else a cluster
    started with `ray start` on this machine, else a new local one; `local` = always a new local
    one; `auto` / `host:port` = that cluster. Returns True when this process started Ray."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    ctx = ray.init(address=address, logging_level=logging.WARNING)
    node = getattr(ray._private.worker.global_worker, "node", None)
    started = bool(getattr(node, "head", False))  # a driver that joins a cluster has a non-head node
    cpus = ray.cluster_resources().get("CPU", 0)
    log(f"ray: {'started a local cluster' if started else 'joined'} {ctx.address_info['gcs_address']} "
        f"({cpus:g} CPUs{', dashboard ' + ctx.dashboard_url if ctx.dashboard_url else ''})")
    return started


def choose_executor(cfg: Config, log: Callable[[str], None]) -> str:
    """`ray` when the config asks for it and `cl_sim.execution.ray_train` imports, else `local`."""
    if cfg.execution.executor != "ray":
        log("executor: local (each trial trains its phases in its own process; execution.executor=ray "
            "runs them on the Ray Train phase pool)")
        return "local"
    try:
        import cl_sim.execution.ray_train  # noqa: F401
    except ImportError as exc:
        log(f"executor: local, NOT ray: cl_sim.execution.ray_train does not import ({exc})")
        return "local"
    ex = cfg.execution
    log(f"executor: ray (phase pool: {ex.slots} slot(s) x {ex.num_workers} Train worker(s), shared by all trials)")
    return "ray"


def _trainable(config: dict, base: dict, trials: dict, executor_kind: str, threads: int, cwd: str) -> None:
    from ray import tune

    if os.path.isdir(cwd):  # Tune moves trials into their own folder; relative data paths mean the driver's
        os.chdir(cwd)
    out = run_trial(base, trials[config["trial"]], executor_kind, threads, log=lambda m: print(m, flush=True))
    metrics = {k: v for k, v in out.items() if k not in ("rows", "params", "trained", "reused", "trial_id")}
    tune.report({**metrics, "phases_trained": sum(out["trained"].values()),
                 "phases_reused": sum(out["reused"].values()),
                 "counts": json.dumps({"trained": out["trained"], "reused": out["reused"]}),
                 "rows": json.dumps(out["rows"], default=_json_scalar)})


def _json_scalar(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _progress_callback(total: int, log: Callable[[str], None]):
    from ray import tune

    class Progress(tune.Callback):
        done = 0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            Progress.done += 1
            acc = result.get("avg_accuracy")
            log(f"[{Progress.done}/{total}] {trial.config['trial']}: avg_accuracy "
                f"{'-' if acc is None else f'{acc:.3f}'}, phases trained {result['phases_trained']}, "
                f"reused {result['phases_reused']} ({time.strftime('%H:%M:%S')})")

        def on_trial_error(self, iteration, trials, trial, **info):
            log(f"trial {trial.config.get('trial')} FAILED (log in {trial.local_path})")

    return Progress()


def _resources(cfg: Config, sweep: SweepConfig, kind: str) -> tuple[dict, int, int]:
    """(trial resources, max concurrent trials, torch threads per local trial), per RAY-NOTES:
    a trial that only drives the phase pool takes a sliver of CPU; a local trial trains itself."""
    import ray

    cluster_cpus = ray.cluster_resources().get("CPU", 1)
    if kind == "ray":
        return {"cpu": 0.01}, sweep.max_concurrent_trials or 2 * cfg.execution.slots, 1
    cpus = sweep.cpus_per_trial
    concurrent = sweep.max_concurrent_trials or max(1, int(cluster_cpus // cpus))
    return {"cpu": cpus}, concurrent, max(1, math.floor(cpus))


def tune_trials(cfg: Config, sweep: SweepConfig, trials: list[dict], kind: str, out: Path,
                log: Callable[[str], None]) -> list[dict]:
    """Run every trial on Ray Tune; returns their reports (metrics + rows), sorted by trial id."""
    from ray import tune

    by_id = {trial_id(p): p for p in trials}
    resources, concurrent, threads = _resources(cfg, sweep, kind)
    log(f"tune: {len(by_id)} trials, {resources} each, at most {concurrent} at a time, {threads} torch thread(s)")
    fn = tune.with_parameters(_trainable, base=cfg.to_dict(), trials=by_id, executor_kind=kind, threads=threads,
                              cwd=os.getcwd())
    tuner = tune.Tuner(tune.with_resources(fn, resources),
                       param_space={"trial": tune.grid_search(list(by_id))},
                       tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
                       run_config=tune.RunConfig(name=sweep.name, storage_path=str(out / "tune"), verbose=0,
                                                 callbacks=[_progress_callback(len(by_id), log)]))
    grid_result = tuner.fit()
    reports, failed = [], []
    for res in grid_result:
        if res.error is not None or not res.metrics or "rows" not in res.metrics:
            failed.append((res.config.get("trial") if res.config else "?", res.error))
            continue
        m = res.metrics
        summary = {k: m[k] for k in ("avg_accuracy", "bwt", "fwt", "mean_forgetting", "mean_kt") if k in m}
        reports.append({"trial_id": res.config["trial"], **summary, **json.loads(m["counts"]),
                        "rows": json.loads(m["rows"])})  # Tune's own "trial_id" differs between runs
    if failed:
        tid, err = failed[0]
        raise CLSimError(f"{len(failed)} of {len(by_id)} trials failed (nothing written; finished phases are in "
                         f"the store, rerun to resume); first: {tid}: {_short(err)}")
    return sorted(reports, key=lambda r: r["trial_id"])


def _short(err) -> str:
    cause = getattr(err, "cause", None) or err
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"


# ---------------------------------------------------------------- tables, counts, report


def sweep_dir(cfg: Config, sweep: SweepConfig) -> Path:
    return Path(cfg.output.dir).resolve() / (cfg.output.name or sweep.name)


def sweep_tables(reports: list[dict]) -> dict[str, pd.DataFrame]:
    """One table per kind of row, trials in id order, rows in run order: deterministic."""
    reports = sorted(reports, key=lambda r: r["trial_id"])
    tables = {name: pd.DataFrame([row for r in reports for row in r["rows"][name]])
              for name in ("tasks", "matrix", "phases", "attention")}
    summary_keys = ("avg_accuracy", "bwt", "fwt", "mean_forgetting", "mean_kt")
    trials = []
    for r in reports:
        ident = {k: v for k, v in r["rows"]["tasks"][0].items() if k in TRIAL_COLUMNS} if r["rows"]["tasks"] else {}
        trials.append({**ident, "trial_id": r["trial_id"], **{k: r.get(k) for k in summary_keys}})
    tables["trials"] = pd.DataFrame(trials)
    return tables


def sweep_counts(before: dict, after: dict, reports: list[dict]) -> dict:
    """What the sweep trained and reused: the store's entries by kind before/after (the truth)
    and the trials' own executor counters (which also count reuse)."""
    trained, reused = Counter(), Counter()
    for r in reports:
        trained.update(r["trained"])
        reused.update(r["reused"])
    new = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(after) | set(before))}
    return {"store_before": before, "store_after": after, "store_new": {k: v for k, v in new.items() if v},
            "trained": dict(sorted(trained.items())), "reused": dict(sorted(reused.items())),
            "per_trial": {r["trial_id"]: {"trained": r["trained"], "reused": r["reused"]} for r in reports}}


def counts_line(counts: dict) -> str:
    fmt = lambda c: f"{sum(c.values())} (" + ", ".join(f"{k} {v}" for k, v in c.items()) + ")"  # noqa: E731
    return (f"phases trained {fmt(counts['trained'])}; reused from the store {fmt(counts['reused'])}; "
            f"store entries new {fmt(counts['store_new'])}, now {fmt(counts['store_after'])}")


def write_sweep(out: Path, cfg: Config, sweep: SweepConfig, tables: dict[str, pd.DataFrame], counts: dict
                ) -> dict[str, Path]:
    """Every file atomically; the report last (it reads nothing back)."""
    from cl_sim.io import atomic_write_json, atomic_write_parquet
    from cl_sim.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {"config": out / "config.yaml", "sweep": out / "sweep.json", "counts": out / "counts.json"}
    save_config(cfg, paths["config"])
    atomic_write_json(paths["sweep"], {"sweep": _plain(sweep), "trials": sorted(tables["trials"]["trial_id"])})
    atomic_write_json(paths["counts"], counts)
    for name, df in tables.items():
        if name != "attention" or not df.empty:
            paths[name] = out / f"{name}.parquet"
            atomic_write_parquet(paths[name], df)
    paths["report"] = write_report(out, matrix=tables["matrix"], tasks=report_tasks(tables),
                                   attention=tables["attention"] if not tables["attention"].empty else None)
    return paths


def _plain(sweep: SweepConfig) -> dict:
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(sweep)))


def report_tasks(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The tasks table for the report: + wall time per task, and I2I variants as their own
    method when the sweep varies them (so curves do not average FF with LL)."""
    tasks = tables["tasks"].copy()
    phases = tables["phases"]
    if not phases.empty:
        wall = phases.groupby(["trial_id", "task"], as_index=False)["wall_s"].sum()
        tasks = tasks.merge(wall, on=["trial_id", "task"], how="left")
    if tasks["i2i_variant"].dropna().nunique() > 1:
        tasks["method"] = [f"{m}-{v}" if isinstance(v, str) else m for m, v in zip(tasks["method"], tasks["i2i_variant"])]
    return tasks


def run_sweep(cfg: Config, sweep: SweepConfig, trials: list[dict], log: Callable[[str], None] = print
              ) -> SweepResult:
    """Run `trials` on Ray Tune (Ray must be up: `connect`), then write the sweep's tables, counts
    and report under `output.dir/<output.name or sweep.name>`. Every trial config is validated
    before anything starts; a failed trial leaves the previous tables untouched."""
    cfg = absolute_paths(cfg)
    out = sweep_dir(cfg, sweep)
    if not trials:
        raise ConfigError("sweep: no trials (check sweep.methods, sweep.seeds and the task list)")
    for params in trials:
        trial_config(cfg.to_dict(), params)
    kind = choose_executor(cfg, log)
    log(f"sweep {sweep.name}: {len(trials)} trials; store {cfg.execution.store_dir}; results {out}")
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
    log(counts_line(counts) + f"; {counts['wall_s']} s")
    return SweepResult(out, paths, counts, tables)


def _start_pool(cfg: Config, log: Callable[[str], None]):
    """The driver starts the phase pool once; trials find it by name, and this driver stops it."""
    from cl_sim.execution.ray_train import make_executor
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks

    return make_executor(cfg, Store(cfg.execution.store_dir), load_tasks(cfg), log=lambda m: log(f"  {m}"))
