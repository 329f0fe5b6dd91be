"""Intervals and paired differences (SPEC §5b), checked against hand-computed numbers."""
import math

import numpy as np
import pandas as pd
import pytest

from cl_sim.report import stats
from cl_sim.data.task import Split, Task


def test_mean_ci_is_the_t_interval():
    iv = stats.mean_ci([0.70, 0.74, 0.72])
    sd = np.std([0.70, 0.74, 0.72], ddof=1)  # 0.02
    assert iv.mean == pytest.approx(0.72) and iv.n == 3
    assert iv.high - iv.mean == pytest.approx(4.302653 * sd / math.sqrt(3))  # t(0.975, df=2) = 4.302653
    assert not iv.includes_zero and iv.fmt() == "0.720 ± 0.050"


def test_t_quantile_is_exact_at_every_df():
    # published 0.975 quantiles; the old table used 2.060 for df 26-29 and 1.96 for every df > 30
    for df, want in ((1, 12.706205), (27, 2.051831), (40, 2.021075), (60, 2.000298), (120, 1.979930)):
        assert stats.t_quantile(df) == pytest.approx(want, abs=1e-6)
    assert math.isnan(stats.t_quantile(0))


def test_one_seed_is_an_anecdote_and_nans_are_dropped():
    iv = stats.mean_ci([0.7, float("nan"), None])
    assert iv.n == 1 and math.isnan(iv.low) and iv.includes_zero and "no interval" in iv.fmt()
    assert stats.mean_ci([]).fmt() == "n/a"


def test_paired_difference_uses_only_shared_seeds_and_flags_zero():
    a = {0: 0.80, 1: 0.70, 2: 0.75, 3: 0.9}
    b = {0: 0.78, 1: 0.69, 2: 0.74}  # seed 3 missing: not paired
    iv = stats.paired_diff(a, b)
    assert iv.n == 3 and iv.mean == pytest.approx((0.02 + 0.01 + 0.01) / 3)
    noisy = stats.paired_diff({0: 0.8, 1: 0.6}, {0: 0.7, 1: 0.7})  # +0.1 and -0.1
    assert noisy.includes_zero


def _rows(method, seed, scores, kts):
    return [{"method": method, "seed": seed, "run_id": f"{method}-{seed}", "task": f"t{i}", "position": i,
             "final_score": s, "kt": k, "forgetting": (np.nan if i == len(scores) - 1 else 1.0)}
            for i, (s, k) in enumerate(zip(scores, kts))]


def test_tables_over_seeds_count_undefined_rows_and_pair_by_seed():
    rows = []
    for seed, (x, y) in enumerate([(0.70, 0.60), (0.72, 0.61), (0.74, 0.65)]):
        rows += _rows("i2i", seed, [x, x, x], [0.0, 10.0, np.nan]) + _rows("st_a", seed, [y, y, y], [0.0] * 3)
        rows += _rows("finetune", seed, [y, y, y], [50.0, 50.0, 50.0])
    tasks = pd.DataFrame(rows)
    table = stats.seed_table(tasks).set_index("method")
    assert table.loc["i2i", "seeds"] == 3
    # KT averages the rows with teachers only: position 0 (KT = 0 by construction) is left out, not averaged in
    assert table.loc["i2i", "kt (95% CI)"] == "10.0 ± 0.0"
    assert table.loc["i2i", "kt left out"] == "6 of 9 (3 without teachers)"
    assert pd.isna(table.loc["st_a", "kt (95% CI)"]) and pd.isna(table.loc["finetune", "kt (95% CI)"])
    assert table.loc["i2i", "final_score (95% CI)"].startswith("0.720 ±")
    paired = stats.paired_table(tasks, "st_a").set_index("comparison").loc["i2i - st_a"]
    assert paired["seeds"] == 3 and paired["verdict"] == "higher"
    assert paired["difference (95% CI)"].startswith("0.100 ±")


def test_random_baselines_follow_the_metric():
    def task(metric, labels, k=2):
        split = Split(tuple("x" for _ in labels), np.asarray(labels))
        return Task("t", "classification", tuple(str(i) for i in range(k)), metric, {"train": split, "dev": split})

    assert task("accuracy", [0, 1, 2], k=3).random_score == pytest.approx(1 / 3)
    assert task("matthews", [0, 1]).random_score == 0.0
    labels = [1] * 30 + [0] * 70  # 30% positives: a coin has precision 0.3, recall 0.5
    assert task("f1", labels).random_score == pytest.approx(2 * 0.3 * 0.5 / (0.3 + 0.5))
    rng = np.random.default_rng(0)  # and a simulated coin agrees
    from cl_sim.metrics import score

    sim = np.mean([score("f1", np.asarray(labels), rng.integers(0, 2, 100), 2) for _ in range(2000)])
    assert sim == pytest.approx(task("f1", labels).random_score, abs=0.01)
    three = [0] * 60 + [2] * 40  # a 3-class task whose eval split lacks class 1: chance F1 uses all three
    sim3 = np.mean([score("f1", np.asarray(three), rng.integers(0, 3, 100), 3) for _ in range(2000)])
    assert sim3 == pytest.approx(task("f1", three, k=3).random_score, abs=0.01)


def test_precision_scores_intervals_are_over_seeds_not_arrivals():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "precision_scores.py"
    spec = importlib.util.spec_from_file_location("precision_scores", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # 100 arrivals of one seed: many rows, but one replicate -> no interval
    one = pd.DataFrame({"seed": 0, "diff": np.random.default_rng(0).normal(0, 0.01, 100)})
    assert "no interval" in bench.seed_interval(one)
    # three seeds: the interval comes from the three per-seed means (df = 2), not from 300 arrivals
    three = pd.concat([one.assign(seed=s, diff=one["diff"] + 0.01 * s) for s in range(3)])
    per_seed = three.groupby("seed")["diff"].mean()
    iv = stats.mean_ci(per_seed.tolist())
    assert f"over 3 seeds: {iv.mean * 100:+.2f} points, 95% CI [{iv.low * 100:+.2f}, {iv.high * 100:+.2f}]" \
        == bench.seed_interval(three)
