"""A sweep as Tune sees it: every axis and searched key a real Tune parameter, the searcher, the
scheduler and the callbacks, from the plain-data `SweepConfig` (`cl_sim.sweep`,
`cl_sim.search_space`).

    space = param_space(sweep, dims, trials, tasks)   # {"method": ..., "seed": ..., "training.lr": tune.loguniform(...)}
    tune.TuneConfig(search_alg=search_alg(sweep, dims, trials), scheduler=scheduler(sweep, n_tasks), ...)

Axes (method, seed, ordering as `a>b>c`, teacher_count, ...) are one Tune grid over the sweep's
trials (`trial` = its readable id) with each axis a named parameter derived from it
(`tune.sample_from`), so a grid that drops params a method ignores stays one grid, and
`params.json`, `ResultGrid.get_dataframe()` and TensorBoard's HParams carry every axis by name.
Searched keys map onto Tune's own primitives. Optuna samples, so it takes no grid: the axes must
then be one combination (constants), and `grid:` dimensions become `choice`.
"""
from __future__ import annotations

import functools
import os

from ray import tune

from cl_sim.errors import ConfigError
from cl_sim.search_space import Dim, order_keys
from cl_sim.sweep import PARAMS, SweepConfig, dispatch_order, trial_id

TUNE_DEFAULT_CALLBACKS = ("csv", "json", "tensorboard")  # Tune adds these unless told not to


def _axis(combos: dict, name: str, config: dict) -> object:
    value = combos[config["trial"]].get(name)
    return ">".join(value) if name == "ordering" and isinstance(value, (list, tuple)) else value


def domain(dim: Dim, grid_ok: bool = True):
    """A `Dim` as Tune's own primitive."""
    a = dim.args
    if dim.kind == "grid":
        return tune.grid_search(list(a)) if grid_ok else tune.choice(list(a))
    if dim.kind == "choice":
        return tune.choice(list(a))
    if dim.kind in ("randint", "lograndint"):  # Tune's upper bound is exclusive; ours inclusive, as YAML reads
        return getattr(tune, dim.kind)(int(a[0]), int(a[1]) + 1)
    if dim.kind == "qrandint":
        return tune.qrandint(int(a[0]), int(a[1]), int(a[2]))
    return getattr(tune, dim.kind)(*a)


def param_space(sweep: SweepConfig, dims: dict[str, Dim], trials: list[dict], tasks: list[str]) -> dict:
    """Tune's `param_space`: the axes (one grid over `trials`, or constants), the searched keys,
    and for ordering search one `uniform(0, 1)` key per task."""
    combos = {trial_id(p): p for p in dispatch_order(trials)}
    optuna = sweep.search == "optuna"
    space: dict = {}
    if len(combos) == 1 or optuna:
        if len(combos) > 1:
            raise ConfigError(f"sweep.search: optuna samples sweep.space, it takes no grid; the sweep's axes "
                              f"(methods x seeds x orderings ...) make {len(combos)} combinations. Use one of each, "
                              f"or search: random (each combination x num_samples)")
        space.update({k: (">".join(v) if k == "ordering" else v) for k, v in next(iter(combos.values())).items()})
    else:
        space["trial"] = tune.grid_search(list(combos))
        names = [n for n in PARAMS if any(n in p for p in trials)]
        space.update({n: tune.sample_from(functools.partial(_axis, combos, n)) for n in names})
    for key, dim in dims.items():
        space[key] = domain(dim, grid_ok=not optuna)
    if sweep.orderings == "search":
        space.update({k: tune.uniform(0.0, 1.0) for k in order_keys(tasks)})
    return space


def search_alg(sweep: SweepConfig, metric: str, mode: str, concurrent: int):
    """Tune's BasicVariantGenerator (grid x num_samples, seeded) or Tune's OptunaSearch."""
    if sweep.search != "optuna":
        return tune.search.BasicVariantGenerator(random_state=sweep.search_seed, max_concurrent=concurrent)
    try:
        import optuna
    except ImportError:
        raise ConfigError("sweep.search: optuna needs the `optuna` package: pip install 'cl_sim[tune-search]' "
                          "(or pip install optuna)") from None
    from ray.tune.search.optuna import OptunaSearch

    from cl_sim.progress import VERBOSE, verbosity

    if verbosity() < VERBOSE:  # "A new study created in memory" and a line per trial
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    return OptunaSearch(metric=metric, mode=mode, seed=sweep.search_seed)


def scheduler(sweep: SweepConfig, n_tasks: int):
    """FIFO, or ASHA with arrivals as time: a trial is compared with the others after
    `grace_period`, `grace_period * eta`, ... arrivals, on its running average so far."""
    if sweep.scheduler == "fifo" or n_tasks < 2:
        return tune.schedulers.FIFOScheduler()
    return tune.schedulers.ASHAScheduler(time_attr="arrival", max_t=n_tasks, grace_period=min(sweep.grace_period, n_tasks),
                                         reduction_factor=sweep.eta)


def callbacks(sweep: SweepConfig, tracking_dir: str) -> list:
    """Tune's CSV/JSON/TensorBoard loggers stay on by default; `sweep.callbacks` adds MLflow or W&B
    (Ray's integrations). Listing callbacks that omit one of Tune's defaults turns that one off."""
    names = list(sweep.callbacks)
    if names and not set(TUNE_DEFAULT_CALLBACKS) <= set(names):
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # only the ones listed
    out = []
    for name in names:
        if name == "csv":
            out.append(tune.logger.CSVLoggerCallback())
        elif name == "json":
            out.append(tune.logger.JsonLoggerCallback())
        elif name == "tensorboard":
            _need("tensorboardX", name)
            out.append(tune.logger.TBXLoggerCallback())
        elif name == "mlflow":
            _need("mlflow", name)
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            # $MLFLOW_TRACKING_URI (a server, sqlite:///...) if set, else a local file store beside the
            # results: no server needed (MLflow 3 keeps file stores behind this switch)
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
                uri = f"file://{tracking_dir}/mlruns"
            out.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=sweep.name, save_artifact=False))
        elif name == "wandb":
            _need("wandb", name)
            from ray.air.integrations.wandb import WandbLoggerCallback

            out.append(WandbLoggerCallback(project=sweep.name))
    return out


def _need(package: str, name: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"sweep.callbacks: {name} needs the `{package}` package (pip install {package})")


def trial_params(config: dict) -> dict:
    """A Tune trial's config -> the sweep's trial params (the axes it set, searched keys, order keys)."""
    return {k: v for k, v in config.items() if k != "trial" and v is not None}


def resources(executor: str, use_gpu: bool, cpus: float) -> dict:
    """What one local trial asks Tune for: its CPUs, and a GPU when it trains on one (concurrent
    trials then get different GPUs instead of all piling onto cuda:0)."""
    return {"cpu": cpus, "gpu": 1} if executor == "local" and use_gpu else {"cpu": cpus}


def dirname(trial) -> str:
    """Trial folders named after what they run (Tune's default is an opaque hash). Tune names a
    trial before it resolves the `sample_from` axes, so a grid trial is named by its `trial` id."""
    name = trial.config.get("trial")
    name = name if isinstance(name, str) else trial_id(trial_params(trial.config))
    safe = "".join(c if c.isalnum() or c in "-_.=,>" else "_" for c in name).replace(">", "_")
    return f"{safe[:80]}_{trial.trial_id}"

