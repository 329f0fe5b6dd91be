"""Sweeps: trial grids, the store's phase counts over all orderings, and a Tune sweep end to end.

The counting tests run every trial in-process (`run_trial`, local executor, no Ray runtime) so
they take seconds; the sweep test starts its own local Ray (`address="local"`, never joining a
cluster someone else started) and stops it with `ray.shutdown()`.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("ray")

from cl_sim.config import load_config  # noqa: E402
from cl_sim.errors import ConfigError  # noqa: E402
from cl_sim.execution import ray_tune  # noqa: E402
from cl_sim.execution.trial import FAIL_ENV, run_trial  # noqa: E402
from cl_sim.sweep import SweepConfig, dispatch_order, grid, orderings, store_counts, sweep_counts, trial_id, trials_for  # noqa: E402

TASKS4 = "[" + ", ".join(f"{{name: {f}, family: {f}, n_train: 32, n_dev: 16, n_test: 16}}" for f in "abcd") + "]"


def tiny_cfg(store_dir, tasks=TASKS4, *overrides):
    return load_config(None, ["backbone.name=tiny-bert", "backbone.max_length=24", "training.epochs=1",
                              "training.batch_size=16", "training.threads=1", f"tasks={tasks}",
                              "execution.executor=local", f"execution.store_dir={store_dir}", *overrides])


def sweep_all_orderings(cfg, method: str) -> dict:
    """Every ordering of the tasks with `method`, trial by trial, on one store: the counts."""
    base, before = cfg.to_dict(), store_counts(cfg.execution.store_dir)
    reports = [run_trial(base, p, threads=1, log=lambda m: None)
               for p in grid(ordering=orderings([t.name for t in cfg.tasks]), method=[method], seed=[0])]
    assert len(reports) == 24
    return sweep_counts(before, store_counts(cfg.execution.store_dir), reports)


# ---------------------------------------------------------------- plain data


def test_orderings_all_and_seeded_sample():
    assert len(orderings("abcd")) == 24
    first = orderings("abcd", sample=5, seed=1)
    assert first == orderings("abcd", sample=5, seed=1) and len(set(first)) == 5
    assert orderings("ab", sample=9) == [("a", "b"), ("b", "a")]


def test_dispatch_order_starts_concurrent_trials_on_different_tasks():
    trials = grid(ordering=orderings("abcde"), method=["i2i"], seed=[0])
    order = dispatch_order(trials)
    assert sorted(map(trial_id, order)) == sorted(map(trial_id, trials))  # the same trials
    firsts = [t["ordering"][0] for t in order]
    assert all(firsts[i] != firsts[i + 1] for i in range(len(firsts) - 1))  # neighbours start differently
    assert all(len(set(firsts[i:i + 4])) >= 3 for i in range(len(firsts) - 3))  # 4 at once: >= 3 first tasks
    assert [t["ordering"][0] for t in trials[:4]] == ["a"] * 4  # grid order: all four wait on `a`
    assert dispatch_order([{"method": "st_a"}, {"method": "i2i"}]) == [{"method": "st_a"}, {"method": "i2i"}]


def test_grid_drops_params_a_method_ignores_and_dedupes():
    trials = grid(ordering=[("a", "b")], method=["st_a", "i2i"], seed=[0], teacher_count=[0, 1],
                  i2i_variant=["FF", "LL"])
    assert [trial_id(t) for t in trials] == ["st_a-s0-a>b", "i2i-s0-a>b-tc0-FF", "i2i-s0-a>b-tc0-LL",
                                             "i2i-s0-a>b-tc1-FF", "i2i-s0-a>b-tc1-LL"]
    assert len(trials) == 5


def test_trials_for_and_load_sweep_split_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("sweep: {name: t, methods: [st_a], sample: 2}\nbackbone: {name: tiny-bert}\n")
    cfg, sweep = ray_tune.load_sweep(path, ["sweep.seeds=[0, 1]", "training.epochs=1"])
    assert cfg.backbone.name == "tiny-bert" and cfg.training.epochs == 1 and sweep.seeds == (0, 1)
    trials = trials_for(cfg, sweep)
    assert len(trials) == 4 and all(len(t["ordering"]) == len(cfg.tasks) for t in trials)
    with pytest.raises(ConfigError, match="sweep.bogus"):
        ray_tune.load_sweep(path, ["sweep.bogus=1"])
    with pytest.raises(ConfigError, match="teacher_count"):
        ray_tune.trial_config(cfg.to_dict(), {"method": "i2i", "teacher_count": 7})
    with_teachers = ray_tune.load_sweep(path, ["method.name=i2i", "method.teacher_count=1"])[0].to_dict()
    assert ray_tune.trial_config(with_teachers, {"method": "st_a"}).method.teacher_count is None


# ---------------------------------------------------------------- must-show counts


def test_i2i_all_orderings_of_4_tasks_train_64_final_adapters_not_96(tmp_path):
    # prefix sharing alone: without the compute-matched references (their own adapter phases)
    counts = sweep_all_orderings(tiny_cfg(tmp_path / "store", TASKS4, "method.kt_matched=false"), "i2i")
    # 4 + 12 + 24 + 24 distinct ordered prefixes; the first arrival and the KT reference are ST-A
    assert counts["store_new"] == {"adapter": 64, "distill": 60, "fusion": 60}
    assert counts["trained"] == counts["store_new"]  # each phase trained once, by exactly one trial
    assert counts["reused"]["adapter"] == 24 * 4 * 2 - 64  # arrivals + KT references, minus the trained


def test_fusion_all_orderings_of_4_tasks_train_at_most_28_fusion_layers(tmp_path):
    counts = sweep_all_orderings(tiny_cfg(tmp_path / "store", TASKS4, "method.kt_matched=false"), "fusion")
    # one per task and non-empty set of earlier tasks (4 x 7): a first arrival has no teachers, so ST-A
    assert counts["store_new"] == {"adapter": 4, "fusion": 28}
    assert counts["trained"] == counts["store_new"]


# ---------------------------------------------------------------- Tune end to end


@pytest.mark.ray
def test_tune_sweep_end_to_end_then_rerun_reuses_everything(tmp_path):
    import ray

    tasks3 = "[" + ", ".join(f"{{name: {f}, family: {f}, n_train: 32, n_dev: 16, n_test: 16}}" for f in "abc") + "]"
    cfg = tiny_cfg(tmp_path / "store", tasks3, f"output.dir={tmp_path / 'out'}")
    sweep = SweepConfig(name="t", sample=2, methods=("st_a", "i2i"))
    trials = trials_for(cfg, sweep)
    try:
        ray_tune.connect("local", log=lambda m: None)
        first = ray_tune.run_sweep(cfg, sweep, trials, log=lambda m: None)
        tasks = pd.read_parquet(first.paths["tasks"])
        assert len(tasks) == len(trials) * 3
        assert set(zip(tasks["trial_id"], tasks["task"])) == {(trial_id(t), n) for t in trials for n in "abc"}
        assert first.counts["trained"] == first.counts["store_new"] and first.counts["trained"]["adapter"] > 0
        assert (first.paths["report"]).is_file()
        again = ray_tune.run_sweep(cfg, sweep, trials, log=lambda m: None)
    finally:
        ray.shutdown()
    assert again.counts["trained"] == {} and again.counts["store_new"] == {}
    for name in ("tasks", "matrix", "trials"):
        pd.testing.assert_frame_equal(pd.read_parquet(first.paths[name]), pd.read_parquet(again.paths[name]))


@pytest.mark.ray
def test_trials_report_each_arrival_to_tune_and_a_failed_trial_keeps_the_others(tmp_path, monkeypatch):
    import ray

    tasks2 = "[" + ", ".join(f"{{name: {f}, family: {f}, n_train: 32, n_dev: 16, n_test: 16}}" for f in "ab") + "]"
    cfg = tiny_cfg(tmp_path / "store", tasks2, f"output.dir={tmp_path / 'out'}")
    sweep = SweepConfig(name="f", methods=("st_a",))
    trials = trials_for(cfg, sweep)  # a>b and b>a
    monkeypatch.setenv(FAIL_ENV, "st_a-s0-b>a")  # read in the trial processes Ray starts below
    try:
        ray.init(num_cpus=2, include_dashboard=False)
        res = ray_tune.run_sweep(cfg, sweep, trials, log=lambda m: None)
    finally:
        ray.shutdown()
    tasks = pd.read_parquet(res.paths["tasks"])
    assert list(tasks["trial_id"].unique()) == ["st_a-s0-a>b"] and len(tasks) == 2
    assert [f["trial_id"] for f in res.failures] == ["st_a-s0-b>a"]
    assert "failed on purpose" in res.failures[0]["error"]
    assert json.loads(res.paths["failures"].read_text()) == res.failures
    # Tune's own JSON logger saw every arrival as it happened; the last one is the final report,
    # with the summary: one schema (arrival, task, score, running_avg, done) throughout
    [log] = list((tmp_path / "out" / "f" / "tune" / "f").glob("st_a-s0-a_b_*/result.json"))
    results = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["arrival"], r["task"], r["done"]) for r in results] == [(1, "a", False), (2, "b", True)]
    assert all(0.0 <= r["running_avg"] <= 1.0 and r["name"] == "st_a-s0-a>b" for r in results)
    assert results[-1]["phases_trained"] > 0 and results[-1]["running_avg"] == pytest.approx(results[-1]["avg_accuracy"])
    params = json.loads((log.parent / "params.json").read_text())  # every axis a Tune parameter, by name
    assert params["method"] == "st_a" and params["seed"] == 0 and params["ordering"] == "a>b"


def test_progress_lines_show_phases_and_trials(monkeypatch):
    """The sweep's live lines: per finished trial, and a heartbeat with the pool's phase counts."""
    class T:
        def __init__(self, status, trial="x"):
            self.status, self.config, self.trial_id = status, {"trial": trial}, trial

    lines, clock = [], [0.0]
    monkeypatch.setattr(ray_tune.time, "monotonic", lambda: clock[0])
    status = {"trained": 7, "reused": 3, "busy": 2, "queued": 5, "evaluated": 1}
    progress = ray_tune._Progress(4, lines.append, lambda: status, every_s=60)
    trials = [T("RUNNING"), T("RUNNING"), T("TERMINATED")]
    progress.on_step_end(0, trials)
    assert lines == []  # not due yet
    clock[0] = 61.0
    progress.on_step_end(1, trials)
    assert lines[-1].startswith("progress: phases trained 7, running 2, queued 5; "
                                "trials done 0/4, running 2, queued 2")
    progress.on_trial_result(2, trials, trials[2], {"arrival": 1, "task": "a", "score": 0.5, "running_avg": 0.5,
                                                    "name": "st_a-s0-a>b"})  # an arrival's report: its line
    assert len(lines) == 2 and lines[-1] == "  st_a-s0-a>b: arrival 1 a: score 0.500, running avg 0.500"
    progress.on_trial_result(3, trials, trials[2], {"avg_accuracy": 0.5, "phases_trained": 4, "phases_reused": 1})
    assert "phases trained 4, reused 1; trials done 1/4, running 2, queued 1" in lines[-1]

    def gone():
        raise RuntimeError("pool stopped")

    assert ray_tune.busy_line(gone, 2, 100.0) is None  # the end line is skipped, the sweep goes on
    busy = ray_tune.busy_line(lambda: {**status, "phase_s": 120.0, "eval_s": 40.0}, 2, 100.0)
    assert busy.startswith("ray: slots busy 80% of 2 x 100 s: phases 60% (7), evaluations 20% (1)")
    quiet = ray_tune._Progress(1, lines.append, gone, every_s=0)
    quiet.on_step_end(0, [])
    assert lines[-1].startswith("progress: trials done 0/1")  # no pool counts, no failure


@pytest.mark.ray
def test_ordering_search_with_asha_and_an_mlflow_local_store(tmp_path):
    """Ordering search (random keys per task) on Tune with ASHA over arrivals; MLflow's local file
    store gets a run per trial with the ordering keys as params; the best ordering is re-run on
    fresh seeds."""
    import ray

    pytest.importorskip("mlflow")
    tasks3 = "[" + ", ".join(f"{{name: {f}, family: {f}, n_train: 32, n_dev: 16, n_test: 16}}" for f in "abc") + "]"
    cfg = tiny_cfg(tmp_path / "store", tasks3, f"output.dir={tmp_path / 'out'}", "method.kt_matched=false")
    sweep = SweepConfig(name="o", orderings="search", methods=("st_a",), search="random", num_samples=3,
                        scheduler="asha", confirm_seeds=2, callbacks=("csv", "json", "tensorboard", "mlflow"),
                        max_concurrent_trials=2)
    try:
        ray.init(num_cpus=2, include_dashboard=False)
        res = ray_tune.run_sweep(cfg, sweep, trials_for(cfg, sweep), log=lambda m: None)
    finally:
        ray.shutdown()
    tasks = pd.read_parquet(res.paths["tasks"])
    assert all(sorted(o.split(">")) == ["a", "b", "c"] for o in tasks["ordering"])
    assert len(res.tables["trials"]) + res.stopped == 3
    assert res.confirm["seeds"] == [1, 2] and len(res.confirm["scores"]) == 2
    df = res.result_grid.get_dataframe()
    assert {"config/order.a", "config/order.b", "config/order.c", "running_avg", "arrival"} <= set(df.columns)
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"file://{tmp_path / 'out' / 'o' / 'mlruns'}")
    [exp] = [e for e in client.search_experiments() if e.name == "o"]
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3 and all("order.a" in r.data.params and "running_avg" in r.data.metrics for r in runs)
