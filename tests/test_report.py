"""cl_sim.report (plots, run) on small hand-made tables: files exist, are PNGs, and the report links them."""
import sys

import numpy as np
import pandas as pd
import pytest

from cl_sim.report import plots, run
from cl_sim.report.tables import markdown_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASKS = ("sst2", "rte", "mrpc")
METHODS = ("st_a", "i2i")


def _matrix_df() -> pd.DataFrame:
    rows = []
    for method in METHODS:
        for seed in (0, 1):
            run_id = f"{method}/seed{seed}"
            for i in range(3):  # after the i-th arrival
                for j, task in enumerate(TASKS):
                    score = np.nan if j > i else 0.6 + 0.1 * j - 0.02 * (i - j) + 0.01 * seed
                    rows.append(dict(run_id=run_id, method=method, seed=seed, ordering=">".join(TASKS),
                                     arrival=i, task=task, position=j, score=score))
    return pd.DataFrame(rows)


def _tasks_df() -> pd.DataFrame:
    rows = []
    for m, method in enumerate(METHODS):
        for seed in (0, 1):
            for j, task in enumerate(TASKS):
                rows.append(dict(
                    run_id=f"{method}/seed{seed}", method=method, seed=seed, ordering=">".join(TASKS),
                    task=task, position=j, final_score=0.7 + 0.05 * m, diag_score=0.72,
                    kt=np.nan if method == "st_a" else 5.0 * j + seed, forgetting=1.0,
                    trainable_params=10_000 * (m + 1), inference_params=100_000 * (m + 1),
                    stored_bytes=40_000, wall_s=1.5, teachers=",".join(TASKS[:j]), teacher_count=j,
                    low_shot_fraction=[0.01, 0.1, 1.0][j],
                ))
    return pd.DataFrame(rows)


def _attention_df() -> pd.DataFrame:
    rows = [dict(run_id="i2i/seed0", task="mrpc", layer=layer, teacher=t, weight=w)
            for layer in range(2) for t, w in (("sst2", 0.7), ("rte", 0.3))]
    rows += [dict(run_id="i2i/seed0", task="rte", layer=layer, teacher="sst2", weight=1.0) for layer in range(2)]
    return pd.DataFrame(rows)


def _tenants_df() -> pd.DataFrame:
    rows = []
    for method in METHODS:
        for k, (tenant, task) in enumerate(zip(("acme", "acme", "beta"), TASKS)):
            arrival, start = 10.0 * k, 10.0 * k + 2.0
            rows.append(dict(run_id=f"{method}/seed0", method=method, tenant=tenant, task=task,
                             arrival_time=arrival, start_time=start, ready_time=start + 5.0,
                             onboarding_s=7.0, queue_wait_s=2.0, stored_bytes=1000))
    return pd.DataFrame(rows)


def _assert_png(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_write_report_all_tables(tmp_path):
    path = run.write_report(tmp_path / "out", matrix=_matrix_df(), tasks=_tasks_df(),
                               attention=_attention_df(), tenants=_tenants_df())
    assert path == tmp_path / "out" / "report.md"
    text = path.read_text()
    pngs = ["kt_by_position.png", "pareto.png", "curve_teacher_count.png", "curve_low_shot_fraction.png",
            "attention.png", "tenant_timeline.png"]
    pngs += [f"accuracy_matrix_{m}_seed{s}.png" for m in METHODS for s in (0, 1)]
    for name in pngs:
        assert f"]({name})" in text
        _assert_png(tmp_path / "out" / name)
    for heading in ("## Summary by method", "## Accuracy matrices", "## Fusion attention", "## Tenants"):
        assert heading in text
    assert not list((tmp_path / "out").glob("*.tmp")) and not list((tmp_path / "out").glob(".*.tmp"))


def test_write_report_only_present_data(tmp_path):
    path = run.write_report(tmp_path, matrix=_matrix_df())
    text = path.read_text()
    assert "accuracy_matrix_" in text
    for absent in ("kt_by_position", "pareto", "attention.png", "tenant_timeline", "## Summary by method"):
        assert absent not in text
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        f"accuracy_matrix_{m}_seed{s}.png" for m in METHODS for s in (0, 1))


def test_write_report_empty(tmp_path):
    text = run.write_report(tmp_path, tasks=pd.DataFrame()).read_text()
    assert "No results to report." in text
    assert not list(tmp_path.glob("*.png"))


def test_summary_tables_numbers():
    summary = run.method_summary(_tasks_df()).set_index("method")
    assert summary.loc["i2i", "runs"] == 2
    assert summary.loc["i2i", "final_score"] == pytest.approx(0.75)
    # i2i KT per run over the tasks with teachers (position 0 is ST-A by construction):
    # seed0 mean(5, 10) = 7.5, seed1 mean(6, 11) = 8.5 -> 8.0
    assert summary.loc["i2i", "kt"] == pytest.approx(8.0)
    assert np.isnan(summary.loc["st_a", "kt"])
    # the controls' KT likewise: 2 x KT on every row -> 16; the first arrivals' 999 never enter
    tasks = _tasks_df()
    tasks["kt_work"] = np.where(tasks["position"] > 0, 2 * tasks["kt"], 999.0)
    assert run.method_summary(tasks).set_index("method").loc["i2i", "kt_work"] == pytest.approx(16.0)
    assert summary.loc["st_a", "stored_bytes"] == 120_000  # 3 tasks * 40_000 per run

    stream = run.stream_summary(_matrix_df()).set_index("run_id")
    # st_a/seed0 final row: 0.56, 0.68, 0.8 -> avg 0.68; BWT: (0.56-0.6 + 0.68-0.7) / 2 = -0.03
    assert stream.loc["st_a/seed0", "avg_accuracy"] == pytest.approx(0.68)
    assert stream.loc["st_a/seed0", "bwt"] == pytest.approx(-0.03)

    tenants = run.tenant_summary(_tenants_df()).set_index("method")
    assert tenants.loc["i2i", "tenants"] == 2
    assert tenants.loc["i2i", "onboarding_p50_s"] == pytest.approx(7.0)
    assert tenants.loc["i2i", "bytes_per_tenant"] == pytest.approx(1500)  # acme 2000, beta 1000

    top = run.attention_summary(_attention_df()).set_index("task")
    assert top.loc["mrpc", "top_teacher"] == "sst2"
    assert top.loc["mrpc", "mean_weight"] == pytest.approx(0.7)


def test_pareto_front():
    pts = pd.DataFrame({"params": [1, 2, 3, 4], "score": [0.5, 0.4, 0.7, 0.6]}, index=list("abcd"))
    # b is beaten by a (cheaper and better), d by c
    assert list(plots.pareto_front(pts).index) == ["a", "c"]


@pytest.mark.parametrize("without_tabulate", [False, True])
def test_markdown_table_formats_nan_and_pipes(monkeypatch, without_tabulate):
    if without_tabulate:
        monkeypatch.setitem(sys.modules, "tabulate", None)  # import now raises ImportError
    df = pd.DataFrame({"name": ["a|b"], "x": [np.nan], "n": [123456], "f": [0.123456]})
    text = markdown_table(df)
    assert "n/a" in text and "a\\|b" in text and "123,456" in text and "0.1235" in text
    assert text.count("\n") == 2  # header, rule, one row


def test_plot_curve_rejects_unknown_x(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_curve(_tasks_df(), "seed", tmp_path / "x.png")


def test_report_html_is_one_self_contained_page(tmp_path):
    from cl_sim.report.run import write_report

    matrix = pd.DataFrame([{"run_id": "r", "method": "st_a", "seed": 0, "ordering": "a>b", "arrival": i,
                            "task": t, "position": j, "score": 0.5 + 0.1 * i}
                           for i in range(2) for j, t in enumerate("ab") if j <= i])
    md = write_report(tmp_path / "rep", matrix=matrix)
    html = md.with_suffix(".html").read_text()
    assert html.startswith("<!doctype html>") and "<table>" in html
    assert 'src="data:image/png;base64,' in html and ".png\"" not in html  # every plot embedded


def test_transfer_plot_draws_points_against_both_controls_not_exploding_kt(tmp_path):
    # reference 2 points over chance: a 1-point gain is KT = 50%; the plot shows +1 point instead,
    # and beside it the differences to the step- and the work-matched ST-A; first arrivals (no
    # teachers) left out
    tasks = _tasks_df().assign(ref_score=0.52, random_score=0.5, diag_score=0.53, ref_matched_score=0.535,
                               ref_work_score=0.54, kt=50.0)
    series = dict(plots.transfer_series(tasks[tasks["position"] > 0]))
    assert list(series) == ["score - ST-A reference (points)", "score - step-matched ST-A (points)",
                            "score - work-matched ST-A (points)"]
    assert series["score - ST-A reference (points)"].to_numpy() == pytest.approx(1.0)
    assert series["score - step-matched ST-A (points)"].to_numpy() == pytest.approx(-0.5)
    assert series["score - work-matched ST-A (points)"].to_numpy() == pytest.approx(-1.0)
    _assert_png(plots.plot_kt_by_position(tasks, tmp_path / "kt.png"))
    # a study without the work-matched control keeps its two panels
    older = dict(plots.transfer_series(tasks.drop(columns="ref_work_score")))
    assert list(older) == ["score - ST-A reference (points)", "score - step-matched ST-A (points)"]


def test_an_order_independent_method_reads_n_a_not_nan_in_the_ordering_table(tmp_path):
    """ST-A scores the same under every ordering: no p-value, no best ordering; "n/a" and why."""
    rows = [dict(run_id=f"{m}/{seed}/{o}", method=m, seed=seed, ordering=o, task=t, position=o.index(t) // 2,
                 final_score=0.6 + 0.02 * seed + (0.01 * (seed % 2) + 0.02 * (o == "a>b") if m == "i2i" else 0.0),
                 diag_score=0.7, kt=np.nan, forgetting=0.0, trainable_params=10, inference_params=100,
                 stored_bytes=40, wall_s=1.0, teachers="", teacher_count=0, low_shot_fraction=1.0)
            for m in ("st_a", "i2i") for seed in range(3) for o in ("a>b", "b>a") for t in "ab"]
    path = run.write_report(tmp_path, tasks=pd.DataFrame(rows))
    text = path.read_text()
    ordering = text[text.index("## Ordering analysis"):]
    st_a = next(line for line in ordering.splitlines() if line.startswith("| st_a"))
    assert "nan" not in ordering.lower().replace("n/a", "")
    assert "n/a: order-independent" in st_a and "a>b" not in st_a and "| 0.00 " in st_a  # spread 0
    i2i = next(line for line in ordering.splitlines() if line.startswith("| i2i"))
    assert "order-independent" not in i2i and "a>b" in i2i
