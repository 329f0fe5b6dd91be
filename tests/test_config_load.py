"""One door for configuration (`cl_sim.config.load`): the three file shapes, overrides last, smoke
settings from one place (then the file's own `smoke:` section), an absent `tasks` key versus an
explicit empty list, resource keys bounded by the machine, and derived configs validated."""
import dataclasses
import os

import pytest
import yaml

from cl_sim.config import SMOKE, Config, derive, load, load_config, task_budget
from cl_sim.errors import ConfigError
from cl_sim.sweep import load_sweep

TASKS = [{"name": "a", "family": "a", "n_train": 64}, {"name": "b", "family": "b", "n_train": 64}]


def _write(tmp_path, tree, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree))
    return path


def test_a_run_file_gives_a_config_only(tmp_path):
    cfg, sweep, studies = load(_write(tmp_path, {"tasks": TASKS, "training": {"epochs": 2}}), ["training.lr=0.01"])
    assert isinstance(cfg, Config) and sweep is None and studies is None
    assert cfg.training.epochs == 2 and cfg.training.lr == 0.01 and [t.name for t in cfg.tasks] == ["a", "b"]


def test_a_sweep_file_gives_config_and_sweep_and_sweep_overrides_go_to_the_sweep(tmp_path):
    path = _write(tmp_path, {"tasks": TASKS, "method": {"name": "fusion"}, "sweep": {"orderings": "config"}})
    cfg, sweep, studies = load(path, ["sweep.seeds=[3, 4]", "sweep.space.training.lr={choice: [0.1, 0.2]}"])
    assert studies is None and sweep.seeds == (3, 4) and sweep.space == {"training.lr": {"choice": [0.1, 0.2]}}
    assert sweep.methods == ("fusion",)  # no `methods`: the config's method, not a built-in pair
    assert load_config(path) == cfg  # a sweep file's config part, as a run would use it
    assert load(_write(tmp_path, {"tasks": TASKS}), ["sweep.seeds=[1]"]).sweep.seeds == (1,)  # an override makes one


def test_a_bad_search_space_value_is_caught_at_load(tmp_path):
    path = _write(tmp_path, {"tasks": TASKS, "sweep": {"space": {"training.lr": {"choice": [0.1, -1]}}}})
    with pytest.raises(ConfigError, match=r"sweep.space.training.lr: value -1: training.lr: must be > 0"):
        load(path)


def _suite(tmp_path):
    return _write(tmp_path, {
        "base": {"training": {"epochs": 3, "max_train_examples": 200}, "output": {"dir": str(tmp_path / "out")}},
        "smoke": {"training": {"max_train_examples": 32}, "sweep": {"seeds": [0, 1]}},
        "studies": {
            "one": {"title": "One", "config": {"tasks": TASKS}, "sweep": {"orderings": "config", "seeds": [0, 1, 2],
                                                                          "methods": ["st_a", "i2i"]}},
            "two": {"title": "Two", "teachers": "strong", "sweep": {"orderings": "config"},
                    "config": {"training": {"epochs": 5},
                               "tasks": [{**TASKS[0], "max_train_examples": 3000, "epochs": 1},
                                         {**TASKS[1], "max_train_examples": None, "epochs": 2}]}}}},
        "suite.yaml")


def test_a_reproduction_file_gives_one_config_and_sweep_per_study(tmp_path):
    base, sweep, studies = load(_suite(tmp_path), ["training.lr=0.5"])
    assert sweep is None and studies.names() == ("one", "two") and base.training.epochs == 3
    one, two = studies["one"], studies["two"]
    assert one.sweep.name == "one" and one.sweep.methods == ("st_a", "i2i") and one.title == "One"
    assert two.teachers == "strong" and two.config.training.epochs == 5  # base + the study's config
    assert one.config.training.lr == two.config.training.lr == base.training.lr == 0.5  # overrides: every study
    assert task_budget(two.config, "a") == (3000, 1)
    with pytest.raises(ConfigError, match="reproduction file"):
        load_config(_suite(tmp_path))
    with pytest.raises(ConfigError, match="reproduction file"):
        load_sweep(_suite(tmp_path))


def test_a_bad_study_is_named(tmp_path):
    path = _write(tmp_path, {"studies": {"x": {"config": {"training": {"epochs": 0}}}}})
    with pytest.raises(ConfigError, match=r"^studies.x: training.epochs: must be > 0"):
        load(path)
    with pytest.raises(ConfigError, match="unknown key 'bases'"):
        load(_write(tmp_path, {"bases": {}, "studies": {"x": {}}}))


def test_smoke_is_one_setting_then_the_file_s_own_section(tmp_path):
    path = _write(tmp_path, {"tasks": TASKS, "backbone": {"name": "minilm"}, "training": {"epochs": 9, "lr": 0.2},
                             "smoke": {"sweep": {"name": "s_smoke"}, "training": {"batch_size": 4}},
                             "sweep": {"name": "s", "seeds": [0, 1, 2]}})
    cfg, sweep, _ = load(path, ["training.epochs=2"], smoke=True)
    assert cfg.backbone.name == SMOKE["backbone"]["name"] and cfg.training.lr == 0.2  # the file's keys stay
    assert cfg.training.batch_size == 4 and cfg.training.epochs == 2  # file's smoke over SMOKE, overrides last
    assert [t.name for t in cfg.tasks] == [t["name"] for t in SMOKE["tasks"]]  # the tiny stream, offline
    assert sweep.name == "s_smoke" and sweep.seeds == (0, 1, 2)
    assert load(path).config.backbone.name == "minilm"  # without smoke the section is not read


def test_smoke_keeps_a_study_s_tasks_and_cuts_their_own_budgets(tmp_path):
    _, _, studies = load(_suite(tmp_path), smoke=True)
    two = studies["two"].config
    assert [t.name for t in two.tasks] == ["a", "b"] and two.backbone.name == "tiny-bert"
    assert task_budget(two, "a") == (32, 1) and task_budget(two, "b") == (32, 1)
    assert studies["one"].sweep.seeds == (0, 1) and two.output.dir == str(tmp_path / "out" / "smoke")


def test_shipped_smoke_tests_load():
    for name in ("task_order", "teacher_count", "low_shot", "hparam_search", "ordering_search", "tenants"):
        cfg, sweep, _ = load(name, smoke=True)
        assert cfg.backbone.name == "tiny-bert" and cfg.training.epochs == 1, name
        assert sweep is None or sweep.name.endswith("_smoke"), name


def test_an_absent_task_list_gets_the_default_stream_an_empty_one_is_an_error(tmp_path):
    assert len(load_config(_write(tmp_path, {"training": {"epochs": 1}})).tasks) == 3
    for tree, overrides in (({"tasks": []}, []), ({}, ["tasks=[]"])):
        with pytest.raises(ConfigError, match=r"^tasks: an empty list"):
            load_config(_write(tmp_path, tree), overrides)


def test_resource_keys_are_bounded_by_this_machine_unless_a_cluster_runs_the_phases(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert load_config(None, ["training.threads=4", "execution.num_workers=2", "execution.cpus_per_worker=2"])
    for override, key in (("training.threads=5", "training.threads"), ("execution.num_workers=8", "execution.num_workers"),
                          ("execution.cpus_per_worker=4.5", "execution.cpus_per_worker")):
        with pytest.raises(ConfigError, match=rf"^{key}: .* is more than the 4 CPU\(s\) of this machine"):
            load_config(None, [override])
    with pytest.raises(ConfigError, match="num_workers x execution.cpus_per_worker: 6 is more than the 4"):
        load_config(None, ["execution.num_workers=3", "execution.cpus_per_worker=2"])
    with pytest.raises(ConfigError, match=r"^sweep.cpus_per_trial: 8 is more than the 4"):
        load(None, ["sweep.cpus_per_trial=8"])
    assert load_config(None, ["training.threads=64", "execution.address=ray://head:10001"]).training.threads == 64
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert load_config(None, ["training.threads=64"]).training.threads == 64


def test_derive_changes_dotted_keys_and_validates():
    cfg = load_config(None, ["method.name=fusion", "method.teacher_count=1"])
    fused = derive(cfg, {"method.name": "i2i"})
    assert fused == cfg.replace(method=dataclasses.replace(cfg.method, name="i2i"))
    with pytest.raises(ConfigError, match="method.teacher_count: method 'st_a' uses no teachers"):
        derive(cfg, {"method.name": "st_a"})
