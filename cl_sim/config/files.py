"""One door for configuration files: `load` reads any of the three shapes a file takes and
returns `Loaded(config, sweep, studies)`; every entry point goes through it (`load_config`,
`cl_sim.sweep.load_sweep`, `cl-sim validate|show-config`, experiments/reproduce.py and tenants.py).

    run config     backbone:, tasks:, training:, ...              -> (Config, None, None)
    sweep file     a run config + `sweep:`                        -> (Config, SweepConfig, None)
    reproduction   `base:` (a run config) + `studies:` {name: {title, config, sweep, teachers, note}}
                                                                  -> (base Config, None, Studies)

Order: the file; with `smoke=True` (`--smoke-test`) `SMOKE`, then the file's own `smoke:` section
(the file's shape, `sweep:` included); then `key=value` overrides (`sweep.*` to the sweep, the rest
to the config; in a reproduction file to every study). Only an absent `tasks` key gets the default
stream; a sweep that names no `methods` sweeps the config's `method.name`.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Optional

import yaml

from cl_sim.config.rules import bound_by_cpus, machine_cpus, validate
from cl_sim.config.schema import FROM_TRAINING, Config, default_tasks
from cl_sim.config.sweep import SweepConfig
from cl_sim.config.tree import build, merge, parse_overrides, set_dotted
from cl_sim.errors import ConfigError
from cl_sim.search_space import did_you_mean, parse_space

CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # the experiment configs shipped with the package
# --smoke-test, for every entry point and shape: a tiny random BERT, one epoch, three tiny synthetic tasks
# (seconds of training). A file's `smoke:` section goes over it; a reproduction file's studies keep their
# own tasks, and every task's own budget is cut to the smoke's `training` (`_smoke`).
SMOKE = {"backbone": {"name": "tiny-bert", "max_length": 32}, "training": {"epochs": 1, "batch_size": 16},
         "tasks": [{"name": f"syn_{f}", "family": f, "n_train": 32, "n_dev": 32, "n_test": 32} for f in "abc"]}
STUDY_KEYS = ("title", "config", "sweep", "teachers", "note")


@dataclass(frozen=True)
class Study:
    """One study of a reproduction file: one sweep (its name is the study's) over one config."""

    name: str
    title: str
    config: Config
    sweep: SweepConfig
    teachers: str = "weak"  # RESULTS.md's verdict table: the weak- or strong-teacher column
    note: str = ""  # RESULTS.md: a line under the study's scale (what was cut, how its rates were chosen)


@dataclass(frozen=True)
class Studies:
    """A reproduction file's studies, in file order."""

    studies: tuple[Study, ...]

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.studies)

    def __getitem__(self, name: str) -> Study:
        for study in self.studies:
            if study.name == name:
                return study
        raise KeyError(name)

    def __iter__(self):
        return iter(self.studies)


class Loaded(NamedTuple):
    config: Config  # a reproduction file: its base config
    sweep: Optional[SweepConfig]  # a sweep file's (or `sweep.*` overrides')
    studies: Optional[Studies]  # a reproduction file's


# ---------------------------------------------------------------- files


def config_path(name_or_path: str | Path) -> Path:
    """A config file: a path, or the name of a config shipped with the package (`task_order`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIGS / f"{name_or_path}.yaml"
    if "/" not in str(name_or_path) and shipped.is_file():
        return shipped
    names = shipped_configs()
    hint = did_you_mean(path.stem, names) if path.suffix in ("", ".yaml", ".yml") else ""
    raise ConfigError(f"config file not found: {name_or_path}{hint} (or a shipped config: {', '.join(names)})")


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def read_yaml(path: Path) -> dict:
    """A YAML file's top-level mapping ({} for an empty file); one ConfigError for anything else."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return tree


def read_tree(path: Optional[str | Path]) -> dict:
    """The file's tree ({} for no file): a path or a shipped config's name."""
    return {} if path is None else read_yaml(config_path(path))


# ---------------------------------------------------------------- the loader


def load(path: Optional[str | Path] = None, overrides: Iterable[str] = (), smoke: bool = False) -> Loaded:
    """Any config file (or none: the defaults) + overrides -> `Loaded(config, sweep, studies)`,
    every part checked and validated."""
    tree, pairs = read_tree(path), parse_overrides(overrides)
    if "studies" in tree or "base" in tree:
        return _studies(tree, pairs, smoke)
    tree, is_sweep = copy.deepcopy(tree), "sweep" in tree
    file_smoke, sweep_tree = tree.pop("smoke", None), tree.pop("sweep", None)
    sweep_tree = {} if sweep_tree is None and is_sweep else sweep_tree  # an empty `sweep:` section
    if smoke:
        tree, sweep_tree = _smoke(tree, sweep_tree, file_smoke, keep_tasks=False)
    tree, sweep_tree = _override(tree, sweep_tree, pairs)
    cfg = config_from_tree(tree)
    return Loaded(cfg, None if sweep_tree is None else sweep_from_tree(sweep_tree, cfg), None)


def load_config(path: Optional[str | Path] = None, overrides: Iterable[str] = ()) -> Config:
    """A run config (a sweep file's config part) + dotted overrides, validated."""
    loaded = load(path, overrides)
    if loaded.studies is not None:
        raise ConfigError(f"{path}: a reproduction file (base + studies) holds one config per study: "
                          f"experiments/reproduce.py runs them, `cl-sim validate` checks them")
    return loaded.config


def config_from_tree(tree: dict) -> Config:
    """The config part of a file, after smoke and overrides -> a validated `Config`. Only an absent
    `tasks` key gets the default stream (an empty list is an error)."""
    if "tasks" not in tree:
        tree = {**tree, "tasks": [dataclasses.asdict(t) for t in default_tasks()]}
    cfg = build(Config, tree)
    validate(cfg)
    return cfg


def sweep_from_tree(tree: Any, cfg: Config) -> SweepConfig:
    """The `sweep:` section -> a `SweepConfig` checked against `cfg` (its search space, the
    machine's CPUs); no `methods` = the config's method."""
    if not isinstance(tree, dict):
        raise ConfigError(f"sweep: expected a mapping, got {type(tree).__name__} {tree!r}")
    if not isinstance(tree.get("space") or {}, dict):
        raise ConfigError("sweep.space: expected a mapping of config keys to distributions")
    sweep = build(SweepConfig, tree, "sweep")
    if not sweep.methods:
        sweep = dataclasses.replace(sweep, methods=(cfg.method.name,))
    parse_space(sweep.space, cfg.to_dict(), check=lambda tree: validate(build(Config, tree)))
    if sweep.orderings == "search" and len(sweep.tasks or cfg.tasks) < 2:
        raise ConfigError("sweep.orderings: search needs at least 2 tasks")
    bound_by_cpus("sweep.cpus_per_trial", sweep.cpus_per_trial, machine_cpus(cfg))
    return sweep


def derive(cfg: Config, changes: dict[str, Any]) -> Config:
    """`cfg` with dotted keys changed (`{"method.name": "fusion"}`), validated like a loaded one."""
    tree = json.loads(json.dumps(cfg.to_dict()))
    for key, value in changes.items():
        set_dotted(tree, key, value)
    out = build(Config, tree)
    validate(out)
    return out


def _override(tree: dict, sweep_tree: Optional[dict], pairs: list[tuple[str, Any]]) -> tuple[dict, Optional[dict]]:
    """`sweep.*` overrides to the sweep (`sweep.space.<config key>` whole), the rest to the config."""
    for key, value in pairs:
        if key.startswith("sweep."):
            sweep_tree = dict(sweep_tree or {})
            if key.startswith("sweep.space."):
                sweep_tree["space"] = {**(sweep_tree.get("space") or {}), key[len("sweep.space."):]: value}
            else:
                set_dotted(sweep_tree, key[len("sweep."):], value)
            continue
        if key.startswith("tasks.") and "tasks" not in tree:  # edit the default stream
            tree["tasks"] = [dataclasses.asdict(t) for t in default_tasks()]
        set_dotted(tree, key, value)
    return tree, sweep_tree


def _smoke(tree: dict, sweep_tree: Optional[dict], file_smoke: Any, keep_tasks: bool) -> tuple[dict, Optional[dict]]:
    """`SMOKE`, then the file's `smoke:` section, over the file; every task's own budget cut to the
    smoke's `training` (a teacher's 3,000 rows would not be a smoke test)."""
    if not isinstance(file_smoke or {}, dict):
        raise ConfigError(f"smoke: expected a mapping in the file's own shape, got {file_smoke!r}")
    extra = copy.deepcopy(file_smoke or {})
    if "sweep" in extra:
        sweep_tree = merge(sweep_tree or {}, extra.pop("sweep") or {})
    base = {k: v for k, v in copy.deepcopy(SMOKE).items() if not (keep_tasks and k == "tasks")}
    tree = merge(merge(tree, base), extra)
    training = merge(SMOKE["training"], extra.get("training") or {})
    cap = training.get("max_train_examples")
    tasks = []
    for task in tree.get("tasks") or []:
        if isinstance(task, dict):
            task = dict(task)
            if "epochs" in task:
                task["epochs"] = training["epochs"]
            rows = task.get("max_train_examples", FROM_TRAINING)
            if cap is not None and (rows is None or isinstance(rows, int)):
                task["max_train_examples"] = cap if rows is None else min(rows, cap)
        tasks.append(task)
    if "tasks" in tree:
        tree["tasks"] = tasks
    return tree, sweep_tree


def _studies(tree: dict, pairs: list[tuple[str, Any]], smoke: bool) -> Loaded:
    """A reproduction file: every study = base + its `config`, one sweep named after it. A smoke
    run keeps each study's tasks (cut to the smoke's budget) and writes under <output.dir>/smoke."""
    unknown = sorted(set(tree) - {"base", "studies", "smoke"})
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' in a reproduction file (known: base, smoke, studies)")
    base, studies = tree.get("base") or {}, tree.get("studies")
    if not isinstance(base, dict) or "sweep" in base:
        raise ConfigError("base: expected a run config (a study's sweep goes under studies.<name>.sweep)")
    if not isinstance(studies, dict) or not studies:
        raise ConfigError("studies: expected a mapping of study names to {title, config, sweep}")

    def one(config: dict, sweep_tree: Optional[dict]) -> tuple[Config, Optional[dict]]:
        cfg_tree = merge(copy.deepcopy(base), copy.deepcopy(config))
        if smoke:
            cfg_tree, sweep_tree = _smoke(cfg_tree, sweep_tree, tree.get("smoke"), keep_tasks=True)
        cfg_tree, sweep_tree = _override(cfg_tree, sweep_tree, pairs)
        if smoke:
            cfg_tree["output"] = {**(cfg_tree.get("output") or {})}
            cfg_tree["output"]["dir"] = str(Path(cfg_tree["output"].get("dir", "runs")) / "smoke")
        return config_from_tree(cfg_tree), sweep_tree

    loaded = []
    for name, study in studies.items():
        try:
            if not isinstance(study, dict) or set(study) - set(STUDY_KEYS):
                raise ConfigError(f"expected a mapping with keys {', '.join(STUDY_KEYS)}"
                                  + (f", got '{sorted(set(study) - set(STUDY_KEYS))[0]}'" if isinstance(study, dict) else ""))
            cfg, sweep_tree = one(study.get("config") or {}, {**(study.get("sweep") or {}), "name": name})
            loaded.append(Study(name, str(study.get("title", name)), cfg, sweep_from_tree(sweep_tree, cfg),
                                str(study.get("teachers", "weak")), str(study.get("note", ""))))
        except ConfigError as exc:
            raise ConfigError(f"studies.{name}: {exc}") from None
    return Loaded(one({}, None)[0], None, Studies(tuple(loaded)))


# ---------------------------------------------------------------- a loaded config, out again


def config_hash(cfg: Config) -> str:
    import hashlib

    blob = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def save_config(cfg: Config, path: Path) -> None:
    from cl_sim.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(json.loads(json.dumps(cfg.to_dict())), sort_keys=False))
