"""Search spaces as plain data: keys checked against the config (with "did you mean"), trial params
over any config key, ordering random keys. No Ray, no training."""
from __future__ import annotations

import pytest

from cl_sim.errors import ConfigError
from cl_sim.search_space import ordering_from_keys, parse_space
from cl_sim.sweep import CONFIGS, config_path, load_sweep, trial_columns, trial_config, trial_id, trials_for

TINY = ["backbone.name=tiny-bert"]


def test_space_keys_and_values_are_checked_against_the_config():
    cfg, sweep = load_sweep("hparam_search", ["sweep.space.method.distill.temperature={uniform: [1, 4]}",
                                              "sweep.space.tasks.0.n_train={choice: [16, 32]}", *TINY])
    assert set(sweep.space) == {"training.lr", "adapter.reduction_factor", "method.distill.temperature",
                                "tasks.0.n_train"}
    dims = parse_space(sweep.space, cfg.to_dict())
    assert dims["training.lr"].kind == "loguniform" and dims["training.lr"].args == (1e-4, 1e-2)  # "1e-4" as YAML 1.1 reads it
    bad = {"sweep.space.training.lrr={loguniform: [1e-4, 1e-2]}": "did you mean 'training.lr'",
           "sweep.space.training.lr={logunifrm: [1e-4, 1e-2]}": "did you mean 'loguniform'",
           "sweep.space.training.lr={loguniform: [0, 1e-2]}": "must be > 0",
           "sweep.space.adapter.kind={grid: [pfeiffer, pfeifer]}": "'pfeifer' is not one of",
           "sweep.space.training.seed={choice: [1, 2]}": "set by sweep.seeds",
           "sweep.space.tasks.0.n_trian={choice: [1]}": "did you mean 'tasks.0.n_train'",
           "sweep.serch=optuna": "did you mean 'sweep.search'",
           "sweep.scheduler=ashaa": "did you mean 'asha'",
           "sweep.callbacks=[mlfow]": "did you mean 'mlflow'"}
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            load_sweep("hparam_search", [override, *TINY])


def test_trial_params_set_any_config_key_and_show_up_as_columns():
    cfg, sweep = load_sweep("hparam_search", TINY)
    [params] = trials_for(cfg, sweep)  # one stream, one method, one seed: the space does the rest
    params = {**params, "training.lr": 0.002, "adapter.reduction_factor": 8, "tasks.1.n_train": 20}
    trial = trial_config(cfg.to_dict(), params)
    assert trial.training.lr == 0.002 and trial.adapter.reduction_factor == 8 and trial.tasks[1].n_train == 20
    assert trial_id(params) == ("st_a-s0-syn_a>syn_b>syn_c-adapter.reduction_factor=8,tasks.1.n_train=20,"
                                "training.lr=0.002")
    columns = trial_columns(trial, params)
    assert columns["training.lr"] == 0.002 and columns["adapter.reduction_factor"] == 8
    with pytest.raises(ConfigError, match="did you mean 'training.lr'"):
        trial_config(cfg.to_dict(), {**params, "training.lrr": 1.0})


def test_ordering_search_decodes_random_keys_into_a_permutation():
    cfg, sweep = load_sweep("ordering_search", TINY)
    assert sweep.orderings == "search" and len(cfg.tasks) == 8
    [params] = trials_for(cfg, sweep)
    assert "ordering" not in params  # not an axis: searched
    keys = {f"order.{t.name}": (i * 0.37) % 1 for i, t in enumerate(cfg.tasks)}
    order = ordering_from_keys(keys)
    assert sorted(order) == sorted(t.name for t in cfg.tasks)
    assert trial_config(cfg.to_dict(), {**params, **keys}).stream.ordering == order
    assert trial_columns(cfg, {**params, **keys})["ordering"] == ">".join(order)


def test_shipped_configs_load_by_name_and_as_sweeps():
    assert config_path("task_order") == CONFIGS / "task_order.yaml"
    for name in ("task_order", "teacher_count", "low_shot", "hparam_search", "ordering_search", "orderings_120"):
        cfg, sweep = load_sweep(name, TINY)
        assert trials_for(cfg, sweep)
    with pytest.raises(ConfigError, match="did you mean 'task_order'"):
        config_path("task_ordr")
    cfg, sweep = load_sweep("task_order", [], smoke=True)  # --smoke-test: tiny model + the file's own smoke list
    assert cfg.backbone.name == "tiny-bert" and sweep.name == "task_order_smoke" and sweep.seeds == (0, 1)
