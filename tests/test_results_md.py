"""docs/RESULTS.md tables from a study's task rows: I2I variants kept apart, the step- and the
work-matched controls paired on the same rows, the ordering effect per variant tested against seed noise."""
import itertools

import numpy as np
import pandas as pd

from cl_sim.report.results_md import comparisons, ordering_effect, results_markdown, transfer


def _tasks() -> pd.DataFrame:
    """st_a and I2I FF/LL over 2 orderings x 3 seeds of tasks a, b. I2I-FF beats ST-A by exactly
    4 points as the second task after a and by 5 after b, its step-matched reference by 1 and its
    work-matched one by 0, 1, 2 points on seeds 0, 1, 2 (KT against it undefined on one row); LL
    equals ST-A and both controls."""
    rows = []
    for seed, order in itertools.product((0, 1, 2), ("a>b", "b>a")):
        for pos, task in enumerate(order.split(">")):
            st = 0.6 + 0.01 * seed + (0.05 if task == "b" else 0.0)
            common = dict(seed=seed, ordering=order, task=task, position=pos, run_id=f"{seed}{order}",
                          ref_score=st, random_score=0.5, forgetting=0.0, stored_bytes=100,
                          inference_params_pct=1.0, kt_matched=np.nan, ref_matched_score=np.nan,
                          kt_work=np.nan, ref_work_score=np.nan)
            rows.append({**common, "method": "st_a", "diag_score": st, "kt": 0.0})
            ff = st + (0.04 if pos else 0.0) + (0.01 * (order == "b>a") if pos else 0.0)
            undefined = seed == 0 and order == "a>b" and pos == 1
            rows.append({**common, "method": "i2i-FF", "diag_score": ff, "kt": 100 * (ff - st) / st,
                         "ref_matched_score": ff - 0.01, "ref_work_score": ff - 0.01 * seed,
                         "kt_work": np.nan if undefined else 1.0})
            rows.append({**common, "method": "i2i-LL", "diag_score": st, "kt": 0.0, "ref_matched_score": st,
                         "ref_work_score": st, "kt_work": 0.0})
    t = pd.DataFrame(rows)
    t["final_score"] = t["diag_score"]
    return t


def test_each_variant_is_compared_with_st_a_and_its_matched_control():
    c = comparisons(_tasks()).set_index("comparison")
    ff = c.loc["I2I-FF - ST-A, targets with teachers"]
    assert ff["verdict"] == "positive" and ff["difference, points (95% CI)"].startswith("4.50")
    assert c.loc["I2I-FF - step-matched ST-A, targets with teachers", "difference, points (95% CI)"].startswith("1.00")
    work = c.loc["I2I-FF - work-matched ST-A, targets with teachers"]  # 0, 1, 2 points: mean 1, t(2) interval
    assert work["difference, points (95% CI)"] == "1.00 ± 2.48" and work["verdict"] == "interval includes 0"
    assert c.loc["I2I-LL - work-matched ST-A, targets with teachers", "difference, points (95% CI)"] == "0.00 ± 0.00"
    assert c.loc["I2I-LL - ST-A, targets with teachers", "verdict"] == "interval includes 0"
    assert "I2I - ST-A, targets with teachers" not in c.index  # variants never averaged together


def test_transfer_and_spread_per_variant():
    t = transfer(_tasks()).set_index("method")
    assert set(t.index) == {"i2i-FF", "i2i-LL"}
    assert t.loc["i2i-FF", "rows with teachers"] == "6 of 12"  # first arrivals (KT = 0 by construction) left out
    assert t.loc["i2i-FF", "score - step-matched ST-A, points (95% CI)"] == "1.00 ± 0.00"
    assert t.loc["i2i-FF", "score - work-matched ST-A, points (95% CI)"] == "1.00 ± 2.48"
    assert t.loc["i2i-FF", "KT vs work-matched ST-A, % (95% CI)"] == "1.0 ± 0.0"
    assert t.loc["i2i-FF", "kt_work undefined rows"] == 1 and t.loc["i2i-LL", "kt_work undefined rows"] == 0
    s = ordering_effect(_tasks()).set_index(["method", "task"])
    spread = "spread best - worst, points"
    assert s.loc[("i2i-FF", "a"), spread] == "5.00"  # a first (no gain) vs after b (+5)
    assert s.loc[("i2i-FF", "b"), spread] == "4.00"
    assert s.loc[("i2i-LL", "b"), spread] == "0.00"
    # the same +5 on every seed: the F-test shows it; 2 orderings x 3 seeds allow 8 shuffles, p >= 0.25
    assert s.loc[("i2i-FF", "a"), "ordering effect"].startswith("shown")
    assert "smallest possible 0.25" in s.loc[("i2i-FF", "a"), "p (permutation within seeds)"]
    # the whole stream first (the run's final score), then per task
    assert ("i2i-FF", "all (final score)") in s.index and s.index[0] == ("i2i-FF", "all (final score)")


def test_final_score_per_ordering_with_intervals_for_order_dependent_methods_only():
    from cl_sim.report.results_md import ordering_means

    m = ordering_means(_tasks())
    assert set(m["method"]) == {"i2i-FF", "i2i-LL"}  # ST-A is order-independent: no table rows
    assert m.groupby("method")["ordering"].nunique().eq(_tasks()["ordering"].nunique()).all()
    assert m["score, points (95% CI over seeds)"].str.contains("±").all()


def test_markdown_has_every_section():
    md = results_markdown([{"title": "T", "command": "cmd", "seeds": [0, 1, 2], "wall_s": 60, "trials": 9,
                            "tasks": _tasks()}])
    for heading in ("## T", "### Comparisons the papers make", "### Ordering effect",
                    "### Knowledge transfer, against ST-A and the step- and work-matched ST-A"):
        assert heading in md


def test_a_study_with_failed_trials_stays_out_of_results(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "reproduce.py"
    spec = importlib.util.spec_from_file_location("reproduce", path)
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    base = {"title": "T", "command": "c", "seeds": [0, 1, 2], "wall_s": 1, "trials": 9}
    for name, failed in (("done", 0), ("interrupted", 4)):
        (tmp_path / name).mkdir()
        _tasks().assign(trial_id="x", i2i_variant=None).to_parquet(tmp_path / name / "tasks.parquet")
        (tmp_path / name / "study.json").write_text(json.dumps({**base, "name": name, "failed_trials": failed}))
    found = reproduce.finished_studies(tmp_path, ["done", "interrupted", "never_ran"])
    assert [s["name"] for s in found] == ["done"]


def test_a_study_not_rerun_keeps_its_section():
    titles = {"done": "Done study", "other": "Other study", "never": "Never ran"}
    first = results_markdown([{"name": "other", "title": "Other study", "command": "cmd other", "seeds": [0, 1],
                               "wall_s": 60, "trials": 4, "tasks": _tasks()}], titles)
    assert "## Other study" in first and "## Done study" not in first
    # a later run finishes only `done`: `other` keeps its section byte for byte, in the suite's order
    second = results_markdown([{"name": "done", "title": "Done study", "command": "cmd done", "seeds": [0, 1, 2],
                                "wall_s": 120, "trials": 9, "tasks": _tasks()}], titles, first)
    assert second.index("## Done study") < second.index("## Other study")
    assert "Never ran" not in second
    kept = second[second.index("## Other study"):]
    assert kept == first[first.index("## Other study"):]
    assert "Command: `cmd done`" in second and "Command: `cmd other`" in second
    # rewriting with nothing new changes nothing
    assert results_markdown([], titles, second) == second


def test_the_committed_results_keep_every_section():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    spec = yaml.safe_load((root / "experiments" / "configs" / "reproduce_cpu.yaml").read_text())
    titles = {n: s["title"] for n, s in spec["studies"].items()}
    previous = (root / "docs" / "RESULTS.md").read_text()
    rewritten = results_markdown([], titles, previous)
    present = [t for t in titles.values() if f"## {t}\n" in previous]
    assert present, "docs/RESULTS.md holds no study of reproduce_cpu.yaml"
    for title in present:
        start = previous.index(f"## {title}\n")
        assert previous[start:].split("\n## ")[0] in rewritten


def _strong_tasks(unrelated_role: str = "control") -> pd.DataFrame:
    """A strong-teacher study over 3 seeds: teachers t1, t2 (role teacher), target small (role
    target) and the unrelated negative control (role `unrelated_role`). Fusion beats ST-A on `small`
    by 3 + seed points (3, 4, 5) and equals it on `unrelated` up to +-1 point; ST-A - full FT is
    -1 + seed (-1, 0, +1) per task."""
    rows = []
    for seed in (0, 1, 2):
        for pos, (task, role) in enumerate((("t1", "teacher"), ("t2", "teacher"), ("small", "target"),
                                            ("unrelated", unrelated_role))):
            st = 0.6
            common = dict(seed=seed, ordering="t1>t2>small>unrelated", task=task, position=pos, role=role,
                          run_id=f"{seed}", ref_score=st, random_score=0.5, forgetting=0.0, stored_bytes=100,
                          inference_params_pct=1.0, kt_matched=np.nan, ref_matched_score=np.nan, kt=0.0,
                          n_teachers=0 if role == "teacher" else 2)
            gain = {"small": 0.03 + 0.01 * seed, "unrelated": 0.01 * (seed - 1)}.get(task, 0.0)
            rows.append({**common, "method": "st_a", "diag_score": st})
            rows.append({**common, "method": "finetune", "diag_score": st + 0.01 - 0.01 * seed})
            rows.append({**common, "method": "fusion", "diag_score": st + gain})
    t = pd.DataFrame(rows)
    t["final_score"] = t["diag_score"]
    return t


def test_verdicts_put_weak_and_strong_teachers_side_by_side_and_read_only_the_interval():
    from cl_sim.report.results_md import VERDICT_HEADING, reading, verdicts

    meta = {"command": "cmd", "seeds": [0, 1, 2], "wall_s": 60, "trials": 9}
    weak = {**meta, "name": "weak", "title": "Weak", "tasks": _tasks()}
    strong = {**meta, "name": "strong", "title": "Strong", "teachers": "strong", "tasks": _strong_tasks()}
    v = verdicts([weak, strong]).set_index("comparison")
    fusion = v.loc["Fusion - ST-A, small"]
    assert fusion["strong teachers, points (95% CI)"] == "strong: 4.00 ± 2.48"  # 3, 4, 5 points: t(2) interval
    assert fusion["strong teachers: reading"] == "strong: Fusion above ST-A by 1.5 to 6.5 points"
    assert fusion["weak teachers, points (95% CI)"] == "not run"  # the weak study had no fusion
    # the unrelated target keeps its own interval, which includes 0: no difference shown, and how large
    control = v.loc["Fusion - ST-A, unrelated (control)"]
    assert control["strong teachers: reading"] == "strong: no difference shown; the data allow -2.5 to +2.5 points"
    # teachers (role teacher) and the negative control (role control) are not pooled: small alone
    assert v.loc["Fusion - ST-A, targets with teachers", "strong teachers, points (95% CI)"] == "strong: 4.00 ± 2.48"
    # the weak study's I2I claims sit in the weak column, the strong column says not run
    i2i = v.loc["I2I-FF - ST-A, targets with teachers"]
    assert i2i["weak teachers: reading"] == "weak: I2I-FF above ST-A by 4.5 to 4.5 points"
    assert i2i["strong teachers: reading"] == "not run"
    assert v.loc["ST-A - full FT, small", "strong teachers: reading"].startswith("strong: no difference shown")
    assert reading(stats_interval(1.0, 1.0, 1.0, 1), "A - B, x") == "1 seed: no interval, nothing shown"
    md = results_markdown([weak, strong], {"weak": "Weak", "strong": "Strong"})
    assert md.index(VERDICT_HEADING) < md.index("## Weak")
    # a rewrite with nothing finished keeps the table and every section as they were
    assert results_markdown([], {"weak": "Weak", "strong": "Strong"}, md) == md


def stats_interval(mean, low, high, n):
    from cl_sim.report.stats import Interval

    return Interval(mean, low, high, n)


def test_a_teacher_count_sweep_gets_each_counts_own_intervals():
    from cl_sim.report.results_md import by_teacher_count

    t = _strong_tasks()
    t["teacher_count"] = np.nan  # ST-A and full FT: no teachers, on every count's side
    fusion = t[t["method"] == "fusion"]
    doubled = fusion.assign(teacher_count=2.0, diag_score=2 * fusion["diag_score"] - 0.6)  # twice the gain
    t = pd.concat([t[t["method"] != "fusion"], fusion.assign(teacher_count=1.0), doubled], ignore_index=True)
    table = by_teacher_count(t).set_index(["teachers", "comparison"])
    assert table.loc[(1, "Fusion - ST-A, small"), "difference, points (95% CI)"] == "4.00 ± 2.48"
    assert table.loc[(2, "Fusion - ST-A, small"), "difference, points (95% CI)"] == "8.00 ± 4.97"
    assert "paper" not in table  # the section's comparisons above cite the papers
    assert by_teacher_count(_strong_tasks()).empty  # no sweep, no table


def test_the_machine_line_names_the_cpu_and_its_vector_extensions():
    from cl_sim.report.results_md import cpu_model, machine_line

    model = cpu_model()
    assert model and "(" in model and model.endswith(")")  # "<name> (<extensions or 'no AVX2'>)"
    assert model in machine_line() and "CPU cores" in machine_line()


def test_a_negative_control_is_reported_apart_and_never_pooled():
    """Role `control`: its own rows in the comparisons (against ST-A and, for a teacher method with
    matched controls, against both), and in the transfer table; the pooled rows read the targets
    the teachers should help. With role `target` instead it is pooled (the average of both)."""
    from cl_sim.report.results_md import comparisons, study_section, targets, transfer

    t = _strong_tasks()
    t["ref_work_score"] = t["ref_matched_score"] = t["diag_score"] - 0.01  # both controls 1 point below
    t.loc[t["method"] != "fusion", ["ref_work_score", "ref_matched_score"]] = np.nan
    assert set(t.loc[targets(t), "task"]) == {"small"}
    c = comparisons(t).set_index("comparison")["difference, points (95% CI)"]
    assert c["Fusion - ST-A, targets with teachers"] == "4.00 ± 2.48"
    assert c["Fusion - ST-A, unrelated (control)"] == "0.00 ± 2.48"
    assert c["Fusion - work-matched ST-A, unrelated (control)"] == "1.00 ± 0.00"
    assert c["Fusion - work-matched ST-A, targets with teachers"] == "1.00 ± 0.00"
    rows = transfer(t).set_index("method")
    assert rows.loc["fusion", "rows with teachers"] == "3 of 9"  # small only (teachers had none)
    assert rows.loc["fusion (unrelated, control)", "rows with teachers"] == "3 of 3"
    section = study_section({"title": "S", "command": "c", "seeds": [0, 1, 2], "wall_s": 60, "trials": 9,
                             "tasks": t})
    assert "the negative control (unrelated) included" in section
    pooled = comparisons(_strong_tasks("target")).set_index("comparison")["difference, points (95% CI)"]
    assert pooled["Fusion - ST-A, targets with teachers"].startswith("2.00")
    assert "Fusion - ST-A, unrelated" in pooled

