"""A method is one file plus one registry line: the toy method (tests/methods/toy_method.py),
registered here with one line, passes config validation and runs through a local sweep's trials;
the registry, not the name, decides which sweep axes a method reads and whether it has teachers."""
import math

import pytest

from cl_sim.config import load_config
from cl_sim.errors import ConfigError
from cl_sim.execution.trial import run_trial
from cl_sim.methods import METHODS
from cl_sim.sweep import SweepConfig, trials_for
import toy_method  # tests/methods/ is on sys.path (pytest puts a test file's folder there)

TASKS = "[" + ", ".join(f"{{name: {f}, family: {f}, n_train: 32, n_dev: 16, n_test: 16}}" for f in "ab") + "]"
TINY = ["backbone.name=tiny-bert", "backbone.max_length=24", "training.epochs=1", "training.batch_size=16",
        "training.threads=1", f"tasks={TASKS}", "execution.executor=local"]


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, "toy", toy_method.METHOD)  # the one registry line


def test_an_unregistered_method_is_rejected_by_name():
    with pytest.raises(ConfigError, match="unknown method 'toy'"):
        load_config(None, ["method.name=toy"])


def test_a_method_in_one_file_plus_one_registry_line_runs_through_a_sweep(toy, tmp_path):
    cfg = load_config(None, [*TINY, f"execution.store_dir={tmp_path / 'store'}"])
    sweep = SweepConfig(orderings="config", methods=("st_a", "toy"), low_shot_fractions=(0.5, 1.0),
                        teacher_counts=(0,))
    trials = trials_for(cfg, sweep)
    # st_a reads neither axis (one trial); toy reads the fraction (two), neither has teachers
    assert sorted((t["method"], t.get("low_shot_fraction")) for t in trials) == [
        ("st_a", None), ("toy", 0.5), ("toy", 1.0)]
    assert not any("teacher_count" in t for t in trials)
    out = {(t["method"], t.get("low_shot_fraction")): run_trial(cfg.to_dict(), t, log=lambda m: None)
           for t in trials}
    half, full, st_a = out[("toy", 0.5)], out[("toy", 1.0)], out[("st_a", None)]
    assert [r["train_examples"] for r in half["rows"]["phases"]] == [16, 16]  # half of 32 rows, both tasks
    assert half["rows"]["tasks"][0]["low_shot_fraction"] == 0.5
    assert math.isnan(st_a["rows"]["tasks"][0]["low_shot_fraction"])  # st_a ignores the axis
    # toy at fraction 1 trains exactly ST-A's phases: the same store keys, reused, not retrained
    assert [r["key"] for r in full["rows"]["phases"]] == [r["key"] for r in st_a["rows"]["phases"]]
    assert sum(full["trained"].values()) == 0 or sum(st_a["trained"].values()) == 0


def test_every_registered_method_says_what_it_needs():
    for name, m in METHODS.items():
        assert callable(m.arrive), name
        assert not (m.uses_teachers and m.single_task), name  # a KT reference trains each task alone
    assert {n for n, m in METHODS.items() if m.single_task} >= {"st_a"}


def test_a_method_s_paper_claims_come_from_its_registry_entry(monkeypatch):
    import dataclasses

    import pandas as pd

    from cl_sim.methods import Claim
    from cl_sim.report.results_md import comparisons

    monkeypatch.setitem(METHODS, "toy", dataclasses.replace(toy_method.METHOD, title="Toy",
                                                          claims=(Claim("st_a", "Toy et al.: +1 point"),)))
    rows = [dict(method=m, seed=s, task=t, position=p, diag_score=0.6 + 0.01 * s + (0.02 if m == "toy" else 0.0),
                 ref_matched_score=float("nan")) for m in ("st_a", "toy") for s in (0, 1) for p, t in enumerate("ab")]
    table = comparisons(pd.DataFrame(rows)).set_index("comparison")
    assert table.loc["Toy - ST-A, targets with teachers", "paper"] == "Toy et al.: +1 point"
    assert table.loc["Toy - ST-A, targets with teachers", "difference, points (95% CI)"].startswith("2.00")
