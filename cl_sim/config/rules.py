"""Rules that span sections, checked once every section has checked itself: task budgets, task
names and the ordering, teacher counts, the method registry's combinations, and resource keys
bounded by the machine that runs the phases."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from cl_sim.config.schema import FROM_TRAINING, Config, TaskConfig
from cl_sim.errors import ConfigError


def _check_budgets(tasks: tuple[TaskConfig, ...]) -> None:
    """Per-task budgets, keyed as overrides spell them (`tasks.1.max_train_examples`)."""
    for i, t in enumerate(tasks):
        rows, key = t.max_train_examples, f"tasks.{i}.max_train_examples"
        if isinstance(rows, str) and rows != FROM_TRAINING:
            raise ConfigError(f"{key}: expected an int > 0, null (every row) or '{FROM_TRAINING}' "
                              f"(training.max_train_examples), got {rows!r}")
        if isinstance(rows, int) and rows <= 0:
            raise ConfigError(f"{key}: must be > 0 (null = every row), got {rows!r}")
        if t.epochs is not None and t.epochs <= 0:
            raise ConfigError(f"tasks.{i}.epochs: must be > 0 (null = training.epochs), got {t.epochs!r}")


def machine_cpus(cfg: Config) -> Optional[int]:
    """The CPUs of the machine whose processes the resource keys size: this one, unless the phases
    run on a Ray cluster named by `execution.address` or `$RAY_ADDRESS` (None: its nodes are not
    known before connecting; the pool sizes itself from them)."""
    address = cfg.execution.address or os.environ.get("RAY_ADDRESS")
    return None if address not in (None, "", "local") else os.cpu_count()


def bound_by_cpus(key: str, value: float, cpus: Optional[int]) -> None:
    """`key` asks for `value` CPUs (threads, workers) of a machine that has `cpus`."""
    if cpus is not None and value > cpus:
        raise ConfigError(f"{key}: {value:g} is more than the {cpus} CPU(s) of this machine")


def check_resources(cfg: Config) -> None:
    """Threads and workers per phase that the machine can hold (100,000 threads end in a crash
    that starves every other process, not in an error)."""
    cpus, ex = machine_cpus(cfg), cfg.execution
    bound_by_cpus("training.threads", cfg.training.threads, cpus)
    bound_by_cpus("execution.num_workers", ex.num_workers, cpus)
    bound_by_cpus("execution.cpus_per_worker", ex.cpus_per_worker, cpus)
    if ex.cpus_per_worker:
        bound_by_cpus("execution.num_workers x execution.cpus_per_worker", ex.num_workers * ex.cpus_per_worker, cpus)


def validate(cfg: Config) -> None:
    """Cross-field checks that single sections cannot make."""
    if not cfg.tasks:  # the loader gives an absent `tasks` key the default stream, never an empty list
        raise ConfigError("tasks: an empty list; list at least one task (or leave `tasks` out for the "
                          "default synthetic stream)")
    _check_budgets(cfg.tasks)
    check_resources(cfg)
    name = cfg.backbone.name
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        raise ConfigError(f"backbone.name: no model folder at {name}")
    names = [t.name for t in cfg.tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"tasks: duplicate task name '{dupes[0]}'")
    order = cfg.stream.ordering
    unknown = [n for n in order if n not in names]
    if unknown:
        raise ConfigError(f"stream.ordering: unknown task '{unknown[0]}' (tasks: {', '.join(names)})")
    repeated = sorted({n for n in order if order.count(n) > 1})
    if repeated:
        raise ConfigError(f"stream.ordering: task '{repeated[0]}' appears more than once")
    tc = cfg.method.teacher_count
    if tc is not None and tc > max(len(names) - 1, 0):
        raise ConfigError(
            f"method.teacher_count: {tc} is more than the {len(names) - 1} earlier tasks a stream of {len(names)} can have")
    from cl_sim.methods import check_supported  # the registry (no torch); methods import no config

    check_supported(cfg)
