"""`cl-sim sweep --resume` and what a sweep counts: a half-finished sweep resumed runs only its
unfinished trials and writes complete tables; trials a scheduler stopped early are counted in
counts.json; the best config's re-run on fresh seeds stays out of the sweep's tables."""
from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("ray")

from cl_sim.config import load_config  # noqa: E402
from cl_sim.execution import ray_tune  # noqa: E402
from cl_sim.execution.trial import FAIL_ENV  # noqa: E402
from cl_sim.sweep import SweepConfig, counts_line, sweep_counts, trials_for  # noqa: E402

TASKS3 = "[" + ", ".join(f"{{name: {f}, family: {f}, n_train: 32, n_dev: 16, n_test: 16}}" for f in "abc") + "]"


def tiny_cfg(tmp_path, *overrides):
    return load_config(None, ["backbone.name=tiny-bert", "backbone.max_length=24", "training.epochs=1",
                              "training.batch_size=16", "training.threads=1", f"tasks={TASKS3}",
                              "execution.executor=local", "method.kt_matched=false",
                              f"execution.store_dir={tmp_path / 'store'}", f"output.dir={tmp_path / 'out'}",
                              *overrides])


def test_counts_add_stopped_trials_and_list_the_confirm_run_apart():
    reports = [{"trial_id": "t1", "trained": {"adapter": 3}, "reused": {"adapter": 1}}]
    stopped = [{"trial_id": "t2", "trained": {"adapter": 1}, "reused": {}, "arrivals": 1}]
    counts = sweep_counts({}, {"adapter": 7}, reports, stopped, {"trained": {"adapter": 3}, "reused": {"adapter": 2}})
    assert counts["trained"] == {"adapter": 4} and counts["reused"] == {"adapter": 1}
    assert counts["per_trial"]["t2"] == {"trained": {"adapter": 1}, "reused": {}, "stopped_after_arrivals": 1}
    assert counts["confirm"] == {"trained": {"adapter": 3}, "reused": {"adapter": 2}}
    assert sum(counts["trained"].values()) + sum(counts["confirm"]["trained"].values()) == counts["store_new"]["adapter"]
    assert "confirming on fresh seeds: trained 3 (adapter 3)" in counts_line(counts)


@pytest.mark.ray
def test_resume_runs_only_the_unfinished_trials_and_completes_the_tables(tmp_path, monkeypatch):
    import ray

    cfg = tiny_cfg(tmp_path)
    sweep = SweepConfig(name="r", orderings="config", methods=("st_a",), seeds=(0, 1))
    trials = trials_for(cfg, sweep)  # st_a-s0-a>b>c, st_a-s1-a>b>c
    monkeypatch.setenv(FAIL_ENV, "st_a-s1-a>b>c")  # half the sweep: this trial fails before it trains
    try:
        ray.init(num_cpus=2, include_dashboard=False)
        first = ray_tune.run_sweep(cfg, sweep, trials, log=lambda m: None)
    finally:
        ray.shutdown()
    assert [f["trial_id"] for f in first.failures] == ["st_a-s1-a>b>c"]
    assert set(pd.read_parquet(first.paths["tasks"])["trial_id"]) == {"st_a-s0-a>b>c"}
    done = first.counts["per_trial"]["st_a-s0-a>b>c"]
    assert sum(done["trained"].values()) > 0
    result_log = next((tmp_path / "out" / "r" / "tune" / "r").glob("st_a-s0-*/result.json"))
    reports_before = result_log.read_text()

    monkeypatch.delenv(FAIL_ENV)
    try:
        ray.init(num_cpus=2, include_dashboard=False)
        resumed = ray_tune.run_sweep(cfg, sweep, trials, log=lambda m: None, resume=True)
    finally:
        ray.shutdown()
    assert resumed.failures == []
    tasks = pd.read_parquet(resumed.paths["tasks"])
    assert len(tasks) == 6 and set(tasks["trial_id"]) == {"st_a-s0-a>b>c", "st_a-s1-a>b>c"}  # complete
    # the finished trial was not run again: Tune kept its result (a rerun would report trained 0,
    # everything reused) and its report log did not grow
    assert resumed.counts["per_trial"]["st_a-s0-a>b>c"] == done
    assert result_log.read_text() == reports_before
    # only the failed trial's phases were new in this invocation
    assert resumed.counts["store_new"] == resumed.counts["per_trial"]["st_a-s1-a>b>c"]["trained"]


@pytest.mark.ray
def test_asha_stopped_trials_are_counted_and_confirm_rows_stay_in_confirm_json(tmp_path):
    import ray

    # one trial at a time, in grid order: lr 1e-5 scores 0.625 on `a`, then lr 0.05 scores 0.438 there
    # (measured; same seed, same scores), below the rung's cutoff: ASHA stops it after arrival 1
    cfg = tiny_cfg(tmp_path, "training.epochs=2")
    sweep = SweepConfig(name="s", orderings="config", methods=("st_a",), space={"training.lr": {"grid": [1e-5, 0.05]}},
                        scheduler="asha", confirm_seeds=1)
    try:
        ray.init(num_cpus=1, include_dashboard=False)
        res = ray_tune.run_sweep(cfg, sweep, trials_for(cfg, sweep), log=lambda m: None)
    finally:
        ray.shutdown()
    counts = json.loads(res.paths["counts"].read_text())
    stopped = {t: c for t, c in counts["per_trial"].items() if "stopped_after_arrivals" in c}
    assert len(stopped) == res.stopped == counts["stopped_early"] == 1 and len(counts["per_trial"]) == 2
    assert list(stopped) == ["st_a-s0-a>b>c-training.lr=0.05"]
    for c in stopped.values():  # st_a trains one adapter per arrival: each reported arrival counted
        assert sum(c["trained"].values()) + sum(c["reused"].values()) >= c["stopped_after_arrivals"] >= 1
    counted = sum(counts["trained"].values()) + sum(counts["confirm"]["trained"].values())
    # every phase the store gained is counted, up to one a stopped trial had in flight when stopped
    assert counted <= sum(counts["store_new"].values()) <= counted + res.stopped
    confirm = json.loads(res.paths["confirm"].read_text())
    tasks = pd.read_parquet(res.paths["tasks"])
    assert set(tasks["seed"]) == {0} and confirm["seeds"] == [1] and list(confirm["scores"]) == ["1"]
    assert len(tasks) == 3 * len(res.tables["trials"])  # the search's finished trials only
