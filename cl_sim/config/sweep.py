"""The `sweep:` section of an experiment file (`SweepConfig`): which trials a sweep runs and how
Ray Tune searches and schedules them. Trials themselves are built in `cl_sim.sweep`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from cl_sim.errors import ConfigError
from cl_sim.search_space import did_you_mean

ORDERINGS = ("all", "config", "search")
SEARCHES = ("grid", "random", "optuna")
SCHEDULERS = ("fifo", "asha")
CALLBACKS = ("csv", "json", "tensorboard", "mlflow", "wandb")
# what every report of a trial carries (after each arrival, and last with done=True and the summary)
ARRIVAL_METRICS = ("running_avg", "score")


@dataclass(frozen=True)
class SweepConfig:
    """The `sweep:` section of an experiment YAML (the rest of the file is a cl_sim `Config`).

    orderings: `all` = permutations of `tasks` (or a seeded `sample` of k), `config` = the config's
    one ordering. Empty axes (teacher_counts, ...) are not swept: the config's value holds; for
    `methods` the loader writes that value in (`cl_sim.config.load`), so trial ids name the method.
    """

    name: str = "sweep"
    tasks: tuple[str, ...] = ()  # tasks to order; empty = all of the config's tasks
    orderings: str = "all"
    sample: Optional[int] = None
    sample_seed: int = 0
    methods: tuple[str, ...] = ()  # empty = the config's method.name
    seeds: tuple[int, ...] = (0,)
    teacher_counts: tuple[int, ...] = ()
    low_shot_fractions: tuple[float, ...] = ()
    i2i_variants: tuple[str, ...] = ()
    cpus_per_trial: float = 1.0  # local executor (the trial trains); with the ray executor trials take 0.01
    max_concurrent_trials: int = 0  # 0 = what the cluster's CPUs hold
    # search (cl_sim.search_space): any config key -> {loguniform: [lo, hi]}, {choice: [...]}, {grid: [...]}, ...
    space: dict[str, Any] = field(default_factory=dict)
    search: str = "grid"  # grid | random (Tune's BasicVariantGenerator) | optuna (Tune's OptunaSearch)
    num_samples: int = 1  # Tune's num_samples: samples of the space (grid: repeats of the grid)
    search_seed: int = 0  # seeds the sampler, so a search is repeatable
    metric: str = "running_avg"  # reported after every arrival; after the last it is avg_accuracy
    mode: str = "max"  # max: best; min: worst (e.g. the worst ordering)
    scheduler: str = "fifo"  # fifo | asha (arrivals are the time attribute)
    grace_period: int = 1  # asha: arrivals every trial gets before it can be stopped
    eta: float = 2.0  # asha: reduction factor between rungs
    confirm_seeds: int = 3  # a search re-runs its best config on this many fresh seeds (0 = no)
    callbacks: tuple[str, ...] = ()  # extra Tune callbacks: mlflow, wandb (csv, json, tensorboard are Tune's own)

    def __post_init__(self):
        if self.orderings not in ORDERINGS:
            raise ConfigError(f"sweep.orderings: {self.orderings!r} is not one of {', '.join(ORDERINGS)}")
        for key, value, choices in (("search", self.search, SEARCHES), ("scheduler", self.scheduler, SCHEDULERS),
                                    ("mode", self.mode, ("max", "min"))):
            if value not in choices:
                raise ConfigError(f"sweep.{key}: {value!r} is not one of {', '.join(choices)}"
                                  f"{did_you_mean(str(value), choices)}")
        for name in self.callbacks:
            if name not in CALLBACKS:
                raise ConfigError(f"sweep.callbacks: {name!r} is not one of {', '.join(CALLBACKS)}"
                                  f"{did_you_mean(name, CALLBACKS)}")
        if self.scheduler == "asha" and self.metric not in ARRIVAL_METRICS:
            raise ConfigError(f"sweep.metric: asha compares trials after every arrival, so the metric must be "
                              f"reported there: one of {', '.join(ARRIVAL_METRICS)}, got {self.metric!r}")
        for key in ("num_samples", "grace_period"):
            if getattr(self, key) < 1:
                raise ConfigError(f"sweep.{key}: must be >= 1, got {getattr(self, key)}")
        if self.eta <= 1:
            raise ConfigError(f"sweep.eta: must be > 1, got {self.eta}")
        if self.confirm_seeds < 0:
            raise ConfigError(f"sweep.confirm_seeds: must be >= 0, got {self.confirm_seeds}")
        if self.sample is not None and self.sample < 1:
            raise ConfigError(f"sweep.sample: must be >= 1 or null, got {self.sample}")
        if self.cpus_per_trial <= 0:
            raise ConfigError(f"sweep.cpus_per_trial: must be > 0, got {self.cpus_per_trial}")
