"""Ordering analysis on hand-built rows: predecessors, teacher -> target transfer, effect size."""
import numpy as np
import pandas as pd
import pytest

from cl_sim.report import analysis


def _rows():
    # b gains 10 points when a came before it; a gains nothing from b; two seeds
    rows = []
    for seed in (0, 1):
        for order in ("a>b", "b>a"):
            for pos, task in enumerate(order.split(">")):
                gain = 0.1 if (task == "b" and pos == 1) else 0.0
                score = 0.6 + gain + 0.01 * seed
                rows.append({"method": "i2i", "seed": seed, "ordering": order, "task": task, "position": pos,
                             "run_id": f"{seed}-{order}", "diag_score": score, "final_score": score})
    return pd.DataFrame(rows)


def test_transfer_matrix_is_with_minus_without():
    m = analysis.transfer_matrix(_rows(), "i2i")
    assert m.loc["a", "b"] == pytest.approx(10.0) and m.loc["b", "a"] == pytest.approx(0.0)
    assert np.isnan(m.loc["a", "a"])


def test_score_by_predecessors_and_ordering_effect():
    by = analysis.score_by_predecessors(_rows(), "i2i").set_index(["target", "before (set)"])
    assert by.loc[("b", "a"), "score, points"] == pytest.approx(70.5)
    assert by.loc[("b", "(first)"), "score, points"] == pytest.approx(60.5)
    assert by.loc[("b", "a"), "95% CI over seeds"] == "70.5 ± 6.4"  # t(1) = 12.71 x sd 0.71 / sqrt(2)
    effect = analysis.ordering_effect(_rows()).iloc[0]
    assert effect["seeds"] == 2 and effect["best ordering"] == "a>b"
    assert effect["spread best - worst, points"] == "5.00"  # b's +10 points when a came first, over 2 tasks
    assert effect["ordering effect"].startswith("shown")  # the same +5 on both seeds: no residual noise
    means = analysis.ordering_means(_rows()).set_index("ordering")
    assert means.loc["a>b", "score, points (95% CI over seeds)"].startswith("65.50 ±")


def _noisy_runs(rng, effect, seeds=5, orderings=("a>b>c", "b>c>a", "c>a>b", "a>c>b")):
    """Run mean scores: a seed effect (shared by the seed's orderings), per-run noise, and `effect`
    points added to the last ordering."""
    rows = []
    for seed in range(seeds):
        base = 0.7 + rng.normal(0, 0.05)
        for i, order in enumerate(orderings):
            score = base + rng.normal(0, 0.01) + (effect / 100 if i == len(orderings) - 1 else 0.0)
            rows.append({"method": "i2i", "seed": seed, "ordering": order, "final_score": score})
    return pd.DataFrame(rows)


def test_ordering_effect_is_not_shown_on_noise_and_is_shown_on_a_real_effect():
    rng = np.random.default_rng(0)
    verdict = lambda effect: analysis.ordering_effect(_noisy_runs(rng, effect)).iloc[0]["ordering effect"]  # noqa: E731
    noise = [verdict(0.0).startswith("shown") for _ in range(40)]
    real = [verdict(3.0).startswith("shown") for _ in range(40)]
    assert sum(noise) <= 6  # about 5% false positives expected (2 of 40)
    assert sum(real) >= 36  # a 3-point effect against 1 point of run noise


def test_report_renders_the_heatmap(tmp_path):
    from cl_sim.report.run import write_report

    tasks = _rows().assign(kt=np.nan, forgetting=np.nan, inference_params=1, stored_bytes=1, trainable_params=1)
    md = write_report(tmp_path, tasks=tasks)
    assert "## Ordering analysis" in md.read_text() and (tmp_path / "transfer_i2i.png").is_file()


def test_headline_gives_intervals_and_paired_differences_per_task():
    i2i = _rows()
    st_a = i2i.assign(method="st_a", diag_score=0.6 + 0.01 * i2i["seed"], final_score=0.6 + 0.01 * i2i["seed"])
    tasks = pd.concat([i2i, st_a]).assign(kt=np.nan, kt_matched=np.nan)
    text = analysis.headline(tasks)
    assert "| i2i      | 2       | 4      | 0.630 ±" in text  # method over seeds
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if "i2i - st_a" in line}
    assert "0.050 ± 0.000" in rows["b"] and "higher" in rows["b"]  # b gains 5 points on average over orderings
    assert "interval includes 0" in rows["a"]  # a gains nothing
    assert "ordering share of variance" in text and "p (permutation within seeds)" in text


def test_transfer_matrix_against_the_step_matched_control():
    rows = _rows()
    rows["ref_matched_score"] = rows["diag_score"] - 0.02  # the method is 2 points above its control everywhere
    m = analysis.transfer_matrix(rows, "i2i", "ref_matched_score")
    assert m.loc["a", "b"] == pytest.approx(2.0) and m.loc["b", "a"] == pytest.approx(2.0)
    iv = analysis.transfer_matrix(rows, "i2i", with_interval=True).loc["a", "b"]
    assert iv.n == 2 and iv.mean == pytest.approx(10.0)
    assert analysis.transfer_matrix(_rows(), "i2i", "ref_matched_score").empty  # no control ran: no panel


def test_the_heatmap_draws_a_panel_per_control(tmp_path, monkeypatch):
    rows = _rows()
    rows["ref_matched_score"] = rows["diag_score"] - 0.02
    rows["ref_work_score"] = rows["diag_score"] + 0.01  # the method is 1 point below its work-matched control
    work = analysis.transfer_matrix(rows, "i2i", "ref_work_score", with_interval=True)
    assert work.loc["a", "b"].mean == pytest.approx(-1.0) and work.loc["a", "b"].n == 2
    titles = []
    monkeypatch.setattr(analysis, "_heatmap", lambda ax, m, lim, label: (titles.append(label), ax.imshow([[0]]))[1])
    analysis.plot_transfer_heatmap(analysis.transfer_matrix(rows, "i2i", with_interval=True), tmp_path / "t.png",
                                   matched=analysis.transfer_matrix(rows, "i2i", "ref_matched_score", with_interval=True),
                                   work=work)
    assert titles == ["with - without teacher (points)", "with teacher - step-matched ST-A (points)",
                      "with teacher - work-matched ST-A (points)"]
    assert (tmp_path / "t.png").stat().st_size > 0
