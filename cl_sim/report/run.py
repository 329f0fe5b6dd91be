"""The Markdown report of a run or a sweep (`write_report`): summary tables, the ordering and
transfer analyses, and the PNG plots of `cl_sim.report.plots`, linked from report.md (and
report.html).

Usage:
    from cl_sim.report.run import write_report
    write_report("runs/task_order", matrix=matrix_df, tasks=tasks_df)
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cl_sim import metrics
from cl_sim.report.plots import (CURVE_X, MAX_MATRIX_PLOTS, TASK_NUMERIC, matrix_of, plot_accuracy_matrix,
                                 plot_attention, plot_curve, plot_kt_by_position, plot_pareto,
                                 plot_tenant_timeline, write_atomic)
from cl_sim.report.tables import markdown_table, training_sizes






def method_summary(tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per method: per-run means (sums for bytes and wall time), averaged over runs. KT
    (against ST-A and the step- and work-matched controls) averages the tasks that had teachers only
    (`stats.had_teachers`; NaN for methods without)."""
    from cl_sim.report import stats

    taught = stats.had_teachers(tasks)
    tasks = tasks.assign(**{c: pd.to_numeric(tasks[c], errors="coerce").where(taught)
                            for c in stats.KT_COLUMNS if c in tasks})
    aggs = {c: (c, "mean") for c in ("final_score", *stats.KT_COLUMNS, "forgetting", "trainable_params",
                                     "inference_params")}
    aggs |= {c: (c, "sum") for c in ("stored_bytes", "train_steps", "wall_s")}  # per run: the cost
    aggs = {k: v for k, v in aggs.items() if v[0] in tasks}
    per_run = tasks.groupby(["method", "run_id"]).agg(**aggs)
    out = per_run.groupby("method").mean()
    out.insert(0, "runs", per_run.groupby("method").size())
    if "final_score" in per_run:
        out.insert(2, "final_score_std", per_run.groupby("method")["final_score"].std())
    return out.reset_index()


def stream_summary(matrix: pd.DataFrame) -> pd.DataFrame:
    """One row per run: average accuracy and BWT from its accuracy matrix."""
    rows = []
    for run_id, g in matrix.groupby("run_id", sort=False):
        R, _ = matrix_of(g)
        row = {"run_id": run_id} | {k: g[k].iloc[0] for k in ("method", "seed", "ordering") if k in g}
        rows.append(row | {"avg_accuracy": metrics.average_accuracy(R), "bwt": metrics.backward_transfer(R)})
    return pd.DataFrame(rows)


def tenant_summary(tenants: pd.DataFrame) -> pd.DataFrame:
    """One row per method: onboarding latency percentiles, queue wait, bytes per tenant."""
    rows = []
    for method, g in tenants.groupby("method", sort=True):
        per_tenant = g.groupby(["run_id", "tenant"])["stored_bytes"].sum()
        row = {"method": method, "tenants": g["tenant"].nunique(), "adapters": len(g)}
        row |= {f"onboarding_{k}_s": v for k, v in metrics.percentiles(g["onboarding_s"]).items()}
        row |= {"queue_wait_mean_s": g["queue_wait_s"].mean(), "bytes_per_tenant": per_tenant.mean()}
        rows.append(row)
    return pd.DataFrame(rows)


def attention_summary(att: pd.DataFrame) -> pd.DataFrame:
    """Per task, the teacher with the highest mean attention weight (over layers and runs)."""
    mean = att.groupby(["task", "teacher"], sort=False)["weight"].mean().reset_index()
    top = mean.loc[mean.groupby("task", sort=False)["weight"].idxmax()]
    return top.rename(columns={"teacher": "top_teacher", "weight": "mean_weight"}).reset_index(drop=True)


# --- report --------------------------------------------------------------------------
def _present(df) -> bool:
    return df is not None and not df.empty


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).strip("_") or "run"


def _figure(title: str, name: str) -> list[str]:
    return [f"### {title}", "", f"![{title}]({name})", ""]


def _tasks_section(out: Path, tasks: pd.DataFrame) -> list[str]:
    tasks = tasks.copy()
    for col in TASK_NUMERIC:
        if col in tasks:
            tasks[col] = pd.to_numeric(tasks[col], errors="coerce")
    lines = ["## Summary by method", "", markdown_table(method_summary(tasks)), ""]
    sizes = training_sizes(tasks)
    if not sizes.empty:
        lines += ["## Training size per task", "", markdown_table(sizes), ""]
    lines += _stats_section(tasks)
    if "ordering" in tasks and tasks["ordering"].nunique() > 1:
        from cl_sim.report import stats

        by_order = tasks.assign(kt=tasks["kt"].where(stats.had_teachers(tasks))).groupby(
            ["method", "ordering"], as_index=False).agg(
            runs=("run_id", "nunique"), final_score=("final_score", "mean"), kt=("kt", "mean"))
        lines += ["## By ordering", "", markdown_table(by_order), ""]
        lines += _ordering_section(out, tasks)
    if tasks["kt"].notna().any():
        plot_kt_by_position(tasks, out / "kt_by_position.png")
        lines += _figure("Transfer by position (points against the references, tasks with teachers)",
                         "kt_by_position.png")
    if (tasks["final_score"].notna() & tasks["inference_params"].notna()).any():
        plot_pareto(tasks, out / "pareto.png")
        lines += _figure("Final score vs inference parameters", "pareto.png")
    for x in CURVE_X:
        if x in tasks and tasks[x].dropna().nunique() > 1:
            name = f"curve_{x}.png"
            plot_curve(tasks, x, out / name)
            lines += _figure(f"KT and final score vs {x.replace('_', ' ')}", name)
    return lines


def _ordering_section(out: Path, tasks: pd.DataFrame) -> list[str]:
    """Ordering effect size, each target's score by what preceded it, teacher -> target heatmaps."""
    from cl_sim.report import analysis

    lines = ["## Ordering analysis", "", "Ordering effect on the run's mean final score, tested against seed noise "
             "(seeds as blocks: ordering labels shuffled within seeds, and the F-test; the ordering's share of "
             "variance with its 95% interval; the best - worst spread beside the spread seed noise alone gives, "
             "since a max minus a min is never negative):", "", markdown_table(analysis.ordering_effect(tasks)), "",
             "Mean final score per ordering:", "", markdown_table(analysis.ordering_means(tasks)), ""]
    for method in sorted(tasks["method"].unique()):
        matrix = analysis.transfer_matrix(tasks, method, with_interval=True)
        if matrix.notna().to_numpy().any():
            name = f"transfer_{_slug(method)}.png"
            matched = analysis.transfer_matrix(tasks, method, "ref_matched_score", with_interval=True)
            work = analysis.transfer_matrix(tasks, method, "ref_work_score", with_interval=True)
            analysis.plot_transfer_heatmap(matrix, out / name, f"{method}: teacher -> target", matched=matched,
                                           work=work)
            lines += [f"### {method}: score by the tasks before it", "",
                      markdown_table(analysis.score_by_predecessors(tasks, method)), ""]
            lines += _figure(f"{method}: teacher -> target transfer", name)
    return lines


def _stats_section(tasks: pd.DataFrame) -> list[str]:
    """Means with 95% t-intervals over seeds, and paired differences against the reference."""
    from cl_sim.report import stats

    if "seed" not in tasks:
        return []
    lines = ["## Over seeds (mean ± 95% t-interval of per-seed means)", "", markdown_table(stats.seed_table(tasks)), ""]
    methods = sorted(tasks["method"].unique())
    reference = "st_a" if "st_a" in methods else None
    if reference and len(methods) > 1:
        lines += [f"## Paired differences against {reference} (same seeds, same data)", "",
                  markdown_table(stats.paired_table(tasks, reference)), ""]
    if tasks["seed"].nunique() < 3:
        lines += [f"_{tasks['seed'].nunique()} seed(s): intervals need at least 2 and are wide below 3; "
                  f"add seeds (`sweep.seeds`) before reading a difference as real._", ""]
    return lines


def _matrix_section(out: Path, matrix: pd.DataFrame) -> list[str]:
    lines = ["## Accuracy matrices", "", markdown_table(stream_summary(matrix)), ""]
    run_ids = list(dict.fromkeys(matrix["run_id"]))
    for run_id in run_ids[:MAX_MATRIX_PLOTS]:
        name = f"accuracy_matrix_{_slug(run_id)}.png"
        plot_accuracy_matrix(matrix, out / name, run_id=run_id)
        lines += _figure(f"Accuracy matrix, run {run_id}", name)
    if len(run_ids) > MAX_MATRIX_PLOTS:
        lines += [f"_{len(run_ids) - MAX_MATRIX_PLOTS} more runs not plotted._", ""]
    return lines


def write_report(out_dir, matrix=None, tasks=None, attention=None, tenants=None) -> Path:
    """Write ``report.md`` and the plots whose data is present into ``out_dir``.

    Args:
        out_dir: folder for the report and PNGs (created if missing).
        matrix: "matrix" table (run_id, method, seed, ordering, arrival, task, position, score).
        tasks: "tasks" table (run_id, method, seed, ordering, task, position, final_score,
            diag_score, kt, forgetting, trainable_params, inference_params, stored_bytes,
            wall_s, teachers, teacher_count, low_shot_fraction).
        attention: optional "attention" table (run_id, task, layer, teacher, weight).
        tenants: optional "tenants" table (run_id, method, tenant, task, arrival_time,
            start_time, ready_time, onboarding_s, queue_wait_s, stored_bytes).

    Returns:
        Path of the written ``report.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# cl_sim report", ""]
    if _present(tasks):
        lines += _tasks_section(out, tasks)
    if _present(matrix):
        lines += _matrix_section(out, matrix)
    if _present(attention):
        plot_attention(attention, out / "attention.png")
        lines += ["## Fusion attention", "", markdown_table(attention_summary(attention)), ""]
        lines += _figure("Attention weight per layer and teacher", "attention.png")
    if _present(tenants):
        plot_tenant_timeline(tenants, out / "tenant_timeline.png")
        lines += ["## Tenants", "", markdown_table(tenant_summary(tenants)), ""]
        lines += _figure("Tenant onboarding timeline", "tenant_timeline.png")
    if len(lines) == 2:
        lines += ["No results to report.", ""]
    path = write_atomic(out / "report.md", lambda tmp: tmp.write_text("\n".join(lines), encoding="utf-8"))
    from cl_sim.report.html import write_html

    write_html(path)  # report.html beside it: one self-contained page, plots embedded
    return path
