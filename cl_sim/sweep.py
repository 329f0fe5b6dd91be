"""Sweeps as plain data, without Ray or executors: trial grids over
orderings × methods × seeds (× teacher counts, low-shot fractions, I2I variants), trial configs,
and the sweep's tables and counts (the `sweep:` section is `cl_sim.config.SweepConfig`, loaded
with the config through `cl_sim.config.load`). `execution/trial.py` runs one trial;
`execution/ray_tune.py` runs them all on Ray Tune (this module imports neither).

    cfg, sweep = load_sweep("task_order", ["sweep.sample=3"])   # a shipped config by name, or a path
    trials = trials_for(cfg, sweep)               # plain dicts of params
    trial_config(cfg.to_dict(), trials[0])        # the Config that trial runs

A trial is a plain dict of params: the sweep's axes (`PARAMS` maps each to its config key; an
ordering is a tuple or an `a>b>c` string), any dotted config key a `sweep.space` searches
(`training.lr`), and for ordering search one random key per task (`order.<task>`, see
`cl_sim.search_space`). Trial config = base config + params. Tables are sorted by trial id and hold no wall times (those are in
`phases.parquet`), so a resumed sweep writes the same `tasks`, `matrix` and `trials` tables as an
uninterrupted one.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pandas as pd

from cl_sim.config import (CONFIGS, Config, SweepConfig, build, config_path, load, read_tree, save_config,  # noqa: F401
                           shipped_configs, sweep_from_tree, validate)
from cl_sim.errors import ConfigError
from cl_sim.search_space import ORDER_PREFIX, did_you_mean, flat_keys, ordering_from_keys, set_key, short_value
from cl_sim.storage import resolve as resolve_root
from cl_sim.methods import METHODS

Log = Callable[[str], None]
# trial param -> (config section, key)
PARAMS = {"ordering": ("stream", "ordering"), "method": ("method", "name"), "seed": ("training", "seed"),
          "teacher_count": ("method", "teacher_count"), "low_shot_fraction": ("method", "low_shot_fraction"),
          "i2i_variant": ("method", "i2i_variant")}
# trial params only some methods read: teacher_count those that use teachers, the rest those naming
# them in their registry entry (`Method.sweep_axes`); the others' trials drop them
METHOD_AXES = ("teacher_count", "low_shot_fraction", "i2i_variant")
TRIAL_COLUMNS = ("trial_id", "method", "seed", "ordering", "teacher_count", "low_shot_fraction", "i2i_variant")
SUMMARY = ("avg_accuracy", "bwt", "mean_forgetting", "forgetting_undefined", "mean_kt", "kt_undefined",
           "kt_left_out", "mean_kt_matched", "mean_kt_work")
ROW_TABLES = ("tasks", "matrix", "phases", "attention")


@dataclass
class SweepResult:
    out: Path
    paths: dict[str, Path]
    counts: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)  # {trial_id, error} of trials that did not finish
    confirm: Optional[dict] = None  # a search's best config re-run on fresh seeds
    stopped: int = 0  # trials the scheduler stopped early
    result_grid: Any = None  # Tune's ResultGrid (ResultGrid.get_dataframe(): a column per parameter)


# ---------------------------------------------------------------- trials as plain data


def load_sweep(path: Optional[str | Path], overrides: Sequence[str] = (), smoke: bool = False
               ) -> tuple[Config, SweepConfig]:
    """An experiment file (a path or a shipped config's name) as a sweep, through the one loader
    (`cl_sim.config.load`): `sweep.*` keys and overrides go to the sweep, all others to the config;
    a file without `sweep:` gets the default sweep. `smoke`: `--smoke-test`'s settings first."""
    cfg, sweep, studies = load(path, overrides, smoke)
    if studies is not None:
        raise ConfigError(f"{path}: a reproduction file (base + studies): experiments/reproduce.py runs its studies")
    return cfg, sweep if sweep is not None else sweep_from_tree({}, cfg)


def searches(sweep: SweepConfig) -> bool:
    """Does the sweep search (a space or orderings), so that its best trial needs confirming?"""
    return bool(sweep.space) or sweep.orderings == "search"


def orderings(names: Sequence[str], sample: Optional[int] = None, seed: int = 0) -> list[tuple[str, ...]]:
    """All permutations of `names` (lexicographic in the given order), or a seeded sample of k."""
    perms = list(itertools.permutations(names))
    if sample is None or sample >= len(perms):
        return perms
    return sorted(random.Random(seed).sample(perms, sample), key=perms.index)


def grid(**axes: Sequence) -> list[dict]:
    """Cartesian product of the axes as trial dicts; params a method ignores are dropped
    (teacher_count without teachers, axes outside the method's `sweep_axes`), duplicates removed."""
    trials: dict[str, dict] = {}
    for values in itertools.product(*axes.values()):
        params = dict(zip(axes, values))
        method = params.get("method")
        if method in METHODS:  # an unknown name fails validation with its own message
            for k in set(METHOD_AXES) - reads(method):
                params.pop(k, None)
        trials.setdefault(trial_id(params), params)
    return list(trials.values())


def reads(method: str) -> set[str]:
    """The `METHOD_AXES` a registered method reads."""
    entry = METHODS[method]
    return set(entry.sweep_axes) | ({"teacher_count"} if entry.uses_teachers else set())


def trials_for(cfg: Config, sweep: SweepConfig) -> list[dict]:
    """The sweep's trials: orderings × methods × seeds (× the axes the sweep lists)."""
    names = list(sweep.tasks) or [t.name for t in cfg.tasks]
    if sweep.orderings == "config":
        orders = [tuple(cfg.stream.ordering or names)]
    elif sweep.orderings == "search":
        orders = []  # searched: random keys per task (cl_sim.search_space), not an axis
    else:
        orders = orderings(names, sweep.sample, sweep.sample_seed)
    axes = {"ordering": orders, "method": sweep.methods, "seed": sweep.seeds, "teacher_count": sweep.teacher_counts,
            "low_shot_fraction": sweep.low_shot_fractions, "i2i_variant": sweep.i2i_variants}
    return grid(**{k: v for k, v in axes.items() if v})


def dispatch_order(trials: list[dict]) -> list[dict]:
    """The order to start trials in: orderings sorted by their *last* task first, so trials that run
    at the same time start with different tasks and do not wait for one another's shared prefix.
    (In grid order the 4 concurrent trials of `orderings_120` shared 2.3 arrivals on average and
    queued on the same claims; in this order 0.6.) Total work is the same: every prefix trains
    once either way. Trials without an ordering keep their order (the sort is stable)."""
    return sorted(trials, key=lambda p: tuple(reversed(p.get("ordering") or ())))


def trial_ordering(params: dict) -> Optional[tuple[str, ...]]:
    """The trial's ordering: an axis value (tuple or `a>b>c`), or decoded from random keys."""
    order = params.get("ordering")
    if isinstance(order, str):
        return tuple(order.split(">"))
    if order is not None:
        return tuple(order)
    return ordering_from_keys(params) or None


def searched(params: dict) -> dict:
    """The params a search space set: dotted config keys (not axes, not ordering keys)."""
    return {k: v for k, v in params.items() if k not in PARAMS and not k.startswith(ORDER_PREFIX)}


def trial_id(params: dict) -> str:
    """Readable and deterministic (Tune's own trial ids change from run to run)."""
    parts = [params.get("method", "cfg"), f"s{params.get('seed', 'cfg')}"]
    if (order := trial_ordering(params)) is not None:
        parts.append(">".join(order))
    tags = {"teacher_count": "tc", "low_shot_fraction": "ls", "i2i_variant": ""}
    parts += [f"{tag}{params[k]}" for k, tag in tags.items() if params.get(k) is not None]
    space = ",".join(f"{k}={short_value(v)}" for k, v in sorted(searched(params).items()))
    return "-".join(str(p) for p in parts + ([space] if space else []))


def trial_config(base: dict, params: dict) -> Config:
    """Base config (a `Config.to_dict()`) with the trial's params applied, validated; a method
    without teachers drops the base config's teacher_count. Params that are None are not set."""
    tree = copy.deepcopy(base)
    keys = set(flat_keys(base))
    for name, value in params.items():
        if value is None or name.startswith(ORDER_PREFIX):
            continue
        if name in PARAMS:
            section, key = PARAMS[name]
            tree[section][key] = list(trial_ordering(params)) if name == "ordering" else value
        elif name in keys:
            set_key(tree, name, value)
        else:
            raise ConfigError(f"trial param '{name}' is unknown{did_you_mean(name, [*PARAMS, *keys])} "
                              f"(known: {', '.join(PARAMS)} or a config key)")
    if any(k.startswith(ORDER_PREFIX) for k in params):
        tree["stream"]["ordering"] = list(ordering_from_keys(params))
    if tree["method"]["name"] in METHODS and "teacher_count" not in reads(tree["method"]["name"]):
        # a base teacher_count must not reject st_a trials
        tree["method"]["teacher_count"] = None
    cfg = build(Config, tree)
    validate(cfg)
    return cfg


def trial_columns(cfg: Config, params: dict) -> dict:
    """The columns that say which trial a row belongs to (NaN where a method ignores a param), and
    one column per searched config key (`training.lr`)."""
    m = cfg.method
    tc, axes = m.teacher_count, reads(m.name)
    order = trial_ordering(params) or cfg.stream.ordering or tuple(t.name for t in cfg.tasks)
    return {"trial_id": trial_id(params), "method": m.name, "seed": cfg.training.seed,
            "ordering": ">".join(order),
            "teacher_count": float(tc) if "teacher_count" in axes and tc is not None else math.nan,
            "low_shot_fraction": m.low_shot_fraction if "low_shot_fraction" in axes else math.nan,
            "i2i_variant": m.i2i_variant if "i2i_variant" in axes else None, **searched(params)}


def absolute_paths(cfg: Config) -> Config:
    """Trials run in other processes and folders: pin the store, output and data paths."""
    ex, out = cfg.execution, cfg.output
    cfg = cfg.replace(execution=dataclasses.replace(ex, store_dir=resolve_root(ex.store_dir)),
                      output=dataclasses.replace(out, dir=str(Path(out.dir).resolve())))
    return cfg.replace(data_root=str(Path(cfg.data_root).resolve())) if cfg.data_root is not None else cfg


def store_counts(root: str | Path) -> dict[str, int]:
    """Finished store entries by phase kind (keys are `<kind>-<hash>`)."""
    from cl_sim.storage import Files

    keys = Files(root).names("manifest", ".json")
    return dict(sorted(Counter(k.split("-", 1)[0] for k in keys).items()))


# ---------------------------------------------------------------- tables, counts, report


def sweep_tables(reports: list[dict]) -> dict[str, pd.DataFrame]:
    """One table per kind of row; trials in id order, rows in run order: deterministic."""
    reports = sorted(reports, key=lambda r: r["trial_id"])
    tables = {name: pd.DataFrame([row for r in reports for row in r["rows"][name]]) for name in ROW_TABLES}
    trials = [{**{k: v for k, v in r["rows"]["tasks"][0].items() if k in TRIAL_COLUMNS or k in r.get("searched", {})},
               **{k: r["summary"].get(k) for k in SUMMARY}} for r in reports]
    tables["trials"] = pd.DataFrame(trials)
    return tables


def sweep_counts(before: dict, after: dict, reports: list[dict], stopped: Sequence[dict] = (),
                 confirm: Optional[dict] = None) -> dict:
    """What the sweep trained and reused: store entries by kind before/after (the ground truth) and
    the trials' own counters (which also see reuse): finished trials, trials a scheduler stopped
    early (`stopped`: {trial_id, trained, reused, arrivals} as of their last report) and, apart,
    the best config's re-run on fresh seeds (`confirm`: {trained, reused})."""
    trained, reused = Counter(), Counter()
    for r in [*reports, *stopped]:
        trained.update(r["trained"])
        reused.update(r["reused"])
    new = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(after) | set(before))}
    per_trial = {r["trial_id"]: {"trained": r["trained"], "reused": r["reused"]} for r in reports}
    per_trial.update({s["trial_id"]: {"trained": s["trained"], "reused": s["reused"],
                                      "stopped_after_arrivals": s.get("arrivals")} for s in stopped})
    counts = {"store_before": before, "store_after": after, "store_new": {k: v for k, v in new.items() if v},
              "trained": dict(sorted(trained.items())), "reused": dict(sorted(reused.items())),
              "per_trial": dict(sorted(per_trial.items()))}
    if confirm is not None:
        counts["confirm"] = {k: dict(sorted(confirm[k].items())) for k in ("trained", "reused")}
    return counts


def counts_line(counts: dict) -> str:
    fmt = lambda c: f"{sum(c.values())} (" + ", ".join(f"{k} {v}" for k, v in c.items()) + ")"  # noqa: E731
    again = counts.get("confirm")
    return (f"phases trained {fmt(counts['trained'])}, reused from the store {fmt(counts['reused'])}"
            + (f"; confirming on fresh seeds: trained {fmt(again['trained'])}, reused {fmt(again['reused'])}"
               if again else "") + f"; store entries: new {fmt(counts['store_new'])}, now {fmt(counts['store_after'])}")


def report_tasks(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The tasks table as the report reads it: + wall time per task; I2I variants as their own
    method when the sweep varies them (so curves do not average FF with LL)."""
    tasks, phases = tables["tasks"].copy(), tables["phases"]
    if not phases.empty:
        wall = phases.groupby(["trial_id", "task"], as_index=False)["wall_s"].sum()
        tasks = tasks.merge(wall, on=["trial_id", "task"], how="left")
    if tasks["i2i_variant"].dropna().nunique() > 1:
        tasks["method"] = [f"{m}-{v}" if isinstance(v, str) else m
                           for m, v in zip(tasks["method"], tasks["i2i_variant"])]
    return tasks


def write_sweep(out: Path, cfg: Config, sweep: SweepConfig, tables: dict[str, pd.DataFrame], counts: dict
                ) -> dict[str, Path]:
    """Every file atomically (tables, config, counts), then the report."""
    from cl_sim.io import atomic_write_json, atomic_write_parquet
    from cl_sim.report.run import write_report

    paths = {"config": out / "config.yaml", "sweep": out / "sweep.json", "counts": out / "counts.json"}
    save_config(cfg, paths["config"])
    atomic_write_json(paths["sweep"], {"sweep": dataclasses.asdict(sweep),
                                       "trials": list(tables["trials"]["trial_id"])})
    atomic_write_json(paths["counts"], counts)
    for name, df in tables.items():
        if not df.empty:
            paths[name] = out / f"{name}.parquet"
            atomic_write_parquet(paths[name], df)
    attention = tables["attention"] if not tables["attention"].empty else None
    paths["report"] = write_report(out, matrix=tables["matrix"], tasks=report_tasks(tables), attention=attention)
    return paths
