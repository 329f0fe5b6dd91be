"""The sweep as Tune sees it, without starting Ray: named parameters, Tune's primitives, searcher,
scheduler, callbacks, trial resources and storage; and store-prefix reuse across trials that
share hyperparameters (in-process trials, tiny model)."""
from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("ray")

from ray import tune  # noqa: E402
from ray.tune.search.sample import Categorical, Float, Function, Integer  # noqa: E402

from cl_sim.config import load_config  # noqa: E402
from cl_sim.errors import ConfigError  # noqa: E402
from cl_sim.execution import ray_tune, tune_space  # noqa: E402
from cl_sim.execution.trial import run_trial  # noqa: E402
from cl_sim.search_space import parse_space  # noqa: E402
from cl_sim.sweep import load_sweep, trials_for  # noqa: E402

TINY = ["backbone.name=tiny-bert"]


def test_axes_and_searched_keys_are_named_tune_parameters():
    cfg, sweep = load_sweep("task_order", [*TINY, "sweep.search=random", "sweep.sample=2",
                                           "sweep.space.adapter.kind={grid: [pfeiffer, houlsby]}",
                                           "sweep.space.adapter.reduction_factor={randint: [8, 32]}",
                                           "sweep.space.training.lr={loguniform: [1e-4, 1e-2]}",
                                           "sweep.space.method.distill.temperature={quniform: [1, 4, 0.5]}"])
    trials = trials_for(cfg, sweep)
    space = tune_space.param_space(sweep, parse_space(sweep.space, cfg.to_dict()), trials, [])
    assert space["trial"] == {"grid_search": [t for t in space["trial"]["grid_search"]]} and len(trials) == 12
    for axis in ("method", "seed", "ordering"):  # by name in params.json / get_dataframe / HParams
        assert isinstance(space[axis], Function)
    first = space["trial"]["grid_search"][0]
    assert isinstance(space["ordering"].func({"trial": first}), str)  # an ordering is an `a>b>c` string
    assert space["adapter.kind"] == {"grid_search": ["pfeiffer", "houlsby"]}
    assert isinstance(space["adapter.reduction_factor"], Integer) and space["adapter.reduction_factor"].upper == 33
    assert isinstance(space["training.lr"], Float) and space["training.lr"].lower == 1e-4
    assert isinstance(space["method.distill.temperature"].sampler, tune.search.sample.Quantized)


def test_optuna_takes_constants_and_choices_not_grids():
    cfg, sweep = load_sweep("hparam_search", [*TINY, "sweep.space.adapter.kind={grid: [pfeiffer, houlsby]}"])
    space = tune_space.param_space(sweep, parse_space(sweep.space, cfg.to_dict()), trials_for(cfg, sweep), [])
    assert space["method"] == "st_a" and space["ordering"] == "syn_a>syn_b>syn_c" and space["seed"] == 0
    assert isinstance(space["adapter.kind"], Categorical)  # grid -> choice: Optuna samples
    many = dataclasses.replace(sweep, seeds=(0, 1))
    with pytest.raises(ConfigError, match="search: random"):
        tune_space.param_space(many, {}, trials_for(cfg, many), [])
    pytest.importorskip("optuna")
    from ray.tune.search.optuna import OptunaSearch

    assert isinstance(tune_space.search_alg(sweep, "running_avg", "max", 2), OptunaSearch)


def test_ordering_search_is_one_uniform_key_per_task():
    cfg, sweep = load_sweep("ordering_search", TINY)
    names = [t.name for t in cfg.tasks]
    space = tune_space.param_space(sweep, {}, trials_for(cfg, sweep), names)
    assert all(isinstance(space[f"order.{n}"], Float) for n in names) and "ordering" not in space


def test_asha_uses_arrivals_as_time_and_metric_must_be_reported_each_arrival():
    cfg, sweep = load_sweep("hparam_search", TINY)
    asha = tune_space.scheduler(sweep, 3)
    assert isinstance(asha, tune.schedulers.AsyncHyperBandScheduler) and asha._time_attr == "arrival"
    assert isinstance(tune_space.scheduler(dataclasses.replace(sweep, scheduler="fifo"), 3),
                      tune.schedulers.FIFOScheduler)
    with pytest.raises(ConfigError, match="reported there"):
        load_sweep("hparam_search", [*TINY, "sweep.metric=avg_accuracy"])


def test_callbacks_missing_package_is_a_clear_error(monkeypatch):
    cfg, sweep = load_sweep("hparam_search", [*TINY, "sweep.callbacks=[csv, json, tensorboard, mlflow]"])
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match="mlflow needs the `mlflow` package"):
        tune_space.callbacks(sweep, "/tmp/x")
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    only_csv = dataclasses.replace(sweep, callbacks=("csv",))
    [cb] = tune_space.callbacks(only_csv, "/tmp/x")
    assert isinstance(cb, tune.logger.CSVLoggerCallback)
    import os

    assert os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS") == "1"  # only what was listed


def test_local_gpu_trials_ask_for_a_gpu_each():
    assert tune_space.resources("local", True, 2.0) == {"cpu": 2.0, "gpu": 1}
    assert tune_space.resources("local", False, 1.0) == {"cpu": 1.0}
    assert tune_space.resources("ray", True, 0.01) == {"cpu": 0.01}  # the pool's workers hold the GPUs


def test_tune_storage_sits_beside_a_uri_store(tmp_path):
    cfg = load_config(None, [*TINY, f"execution.store_dir=file://{tmp_path}/bucket/store"])
    path, filesystem = ray_tune.tune_storage(cfg, tmp_path / "out" / "s")
    assert path == f"{tmp_path}/bucket/store/tune/s" and filesystem is not None  # pyarrow's, as for Ray Train
    local = load_config(None, [*TINY, f"execution.store_dir={tmp_path}/store"])
    assert ray_tune.tune_storage(local, tmp_path / "out" / "s") == (str(tmp_path / "out" / "s" / "tune"), None)


def test_trials_that_differ_in_a_later_used_key_reuse_the_earlier_phases(tmp_path):
    """I2I trials differing only in method.distill.temperature: the first arrival (plain adapter,
    no distillation) is one store entry; only the phases that read the key train again."""
    tasks = "[" + ", ".join(f"{{name: {f}, family: {f}, n_train: 24, n_dev: 16, n_test: 16}}" for f in "ab") + "]"
    cfg = load_config(None, [*TINY, "backbone.max_length=24", "training.epochs=1", "training.batch_size=16",
                             "training.threads=1", f"tasks={tasks}", "method.kt_matched=false",
                             "execution.executor=local", f"execution.store_dir={tmp_path / 'store'}",
                             "method.distill.min_steps=2"])
    base, params = cfg.to_dict(), {"method": "i2i", "seed": 0, "ordering": "a>b"}
    first = run_trial(base, {**params, "method.distill.temperature": 2.0}, log=lambda m: None)
    second = run_trial(base, {**params, "method.distill.temperature": 4.0}, log=lambda m: None)
    assert first["trained"].get("distill") == 1
    assert second["trained"] == {"distill": 1, "adapter": 1}  # the distilled adapter and the Train phase after it
    assert second["reused"]["adapter"] >= 2 and second["reused"]["fusion"] == 1  # arrival a, ST-A refs, Improvise
