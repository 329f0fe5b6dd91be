"""PNG plots from the results tables (`cl_sim.report.run` assembles them into a report).

Inputs are the pandas tables written by the simulator ("matrix", "tasks" and optionally
"attention" and "tenants"). Plots use matplotlib's Agg canvas directly
(no pyplot global state), so this is safe on headless machines and in worker processes.
Every ``plot_*`` function writes one PNG and returns its path; every file is written to a
temporary name first and moved into place with ``os.replace``.

Usage:
    from cl_sim.report.plots import plot_accuracy_matrix
    plot_accuracy_matrix(matrix_df, "runs/x/accuracy_matrix.png")
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


CURVE_X = ("teacher_count", "low_shot_fraction")
MAX_MATRIX_PLOTS = 8  # one heatmap per run; beyond this the report only lists the numbers
TASK_NUMERIC = ("position", "final_score", "diag_score", "kt", "forgetting", "trainable_params",
                 "inference_params", "stored_bytes", "wall_s", "train_steps", "train_examples", "epochs",
                 "teacher_count",
                 "low_shot_fraction")


# --- files and figures ---------------------------------------------------------------
def write_atomic(path, write) -> Path:
    """Call ``write(tmp)`` then move tmp onto path, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)  # axes: (nrows, ncols)


def _save(fig: Figure, path) -> Path:
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _colors(methods) -> dict:
    """The same colour for a method in every plot."""
    return {m: f"C{i % 10}" for i, m in enumerate(sorted(set(methods)))}


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _maybe_log_x(ax, values) -> None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size and v.min() > 0 and v.max() / v.min() >= 20:
        ax.set_xscale("log")


# --- plots ---------------------------------------------------------------------------
def matrix_of(run_df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Accuracy matrix R (n_arrivals, n_tasks) and task names of one run's matrix rows."""
    n_arr = int(run_df["arrival"].max()) + 1
    n_tasks = max(int(run_df["position"].max()) + 1, n_arr)
    R = np.full((n_arr, n_tasks), np.nan)
    R[run_df["arrival"].to_numpy(int), run_df["position"].to_numpy(int)] = run_df["score"].to_numpy(float)
    names = run_df.drop_duplicates("position").set_index("position")["task"]
    return R, [str(names.get(j, j)) for j in range(n_tasks)]


def plot_accuracy_matrix(matrix_df: pd.DataFrame, path, run_id=None) -> Path:
    """Heatmap of one run's accuracy matrix (rows: after arrival i; columns: tasks in order).

    Args:
        matrix_df: "matrix" table; only the rows of ``run_id`` are used.
        path: PNG file to write.
        run_id: the run to draw; defaults to the first run in the table.
    """
    run_id = matrix_df["run_id"].iloc[0] if run_id is None else run_id
    df = matrix_df[matrix_df["run_id"] == run_id]
    R, names = matrix_of(df)
    fig, axes = _new_figure(1.2 + 0.8 * R.shape[1], 1.0 + 0.6 * R.shape[0])
    ax = axes[0, 0]
    im = ax.imshow(np.ma.masked_invalid(R), cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(R):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="w")
    ax.set_xticks(range(R.shape[1]), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(R.shape[0]), labels=[f"after {i}: {names[i]}" for i in range(R.shape[0])])
    ax.set_title(f"{df['method'].iloc[0]} seed {df['seed'].iloc[0]}", fontsize=9)
    fig.colorbar(im, ax=ax, label="score")
    return _save(fig, path)


def transfer_series(tasks_df: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """What the transfer plot draws, as (label, values per row): score differences in points
    against the ST-A reference and the step- and work-matched controls where the rows carry them,
    else KT."""
    out = []
    for col, label in (("ref_score", "score - ST-A reference (points)"),
                       ("ref_matched_score", "score - step-matched ST-A (points)"),
                       ("ref_work_score", "score - work-matched ST-A (points)")):
        if col in tasks_df and pd.to_numeric(tasks_df[col], errors="coerce").notna().any():
            out.append((label, 100 * (tasks_df["diag_score"] - pd.to_numeric(tasks_df[col], errors="coerce"))))
    return out or [("knowledge transfer (%)", tasks_df["kt"])]


def plot_kt_by_position(tasks_df: pd.DataFrame, path) -> Path:
    """Transfer by stream position per teacher method: mean over seeds with its 95% t-interval.

    Drawn in points (the method's score minus the ST-A reference, and minus the step- and the
    work-matched ST-A when the study ran them), not CLiMB's normalised KT: KT divides by the reference's margin over
    chance, which is a few points on a hard small task, so a 1-point difference can read as 30%
    and its band as hundreds (the smallest margin is printed on the plot). Only rows that had
    teachers (`stats.had_teachers`); elsewhere the method is ST-A and the difference is 0.

    Args:
        tasks_df: "tasks" table (method, seed, position, diag_score and ref_score /
            ref_matched_score / ref_work_score, or kt).
        path: PNG file to write.
    """
    from cl_sim.report import stats

    df = tasks_df[stats.had_teachers(tasks_df)] if "seed" in tasks_df else tasks_df
    series = transfer_series(df)
    colors = _colors(tasks_df["method"])
    fig, axes = _new_figure(6.5 * len(series), 4.0, 1, len(series))
    for ax, (label, y) in zip(axes[0], series):
        for method, g in df.assign(_y=y).dropna(subset=["_y"]).groupby("method", sort=True):
            by_seed = g.groupby(["position", "seed"] if "seed" in g else ["position"])["_y"].mean()
            ivs = {pos: stats.mean_ci(v.tolist()) for pos, v in by_seed.groupby(level="position")}
            x = sorted(ivs)
            mean = np.array([ivs[p].mean for p in x])
            err = np.nan_to_num([mean - [ivs[p].low for p in x], [ivs[p].high for p in x] - mean])  # 1 seed: none
            ax.errorbar(x, mean, yerr=err, marker="o", capsize=3, color=colors[method], label=method)
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("position in the stream (arrival index)")
        ax.set_ylabel(label)
        _legend(ax)
    if {"ref_score", "random_score"} <= set(df) and series[0][0].endswith("(points)"):
        margin = 100 * (pd.to_numeric(df["ref_score"], errors="coerce") - pd.to_numeric(df["random_score"], errors="coerce"))
        if margin.notna().any():
            fig.suptitle(f"points, 95% CI over seeds; the reference's margin over chance is {margin.min():.1f}-"
                         f"{margin.max():.1f} points (normalised KT = 100 x difference / margin)", fontsize=8)
    return _save(fig, path)


def plot_curve(tasks_df: pd.DataFrame, x: str, path) -> Path:
    """Mean KT and mean final score against ``x`` (teacher_count or low_shot_fraction).

    Args:
        tasks_df: "tasks" table.
        x: the column on the x axis, one of ``CURVE_X``.
        path: PNG file to write.
    """
    if x not in CURVE_X:
        raise ValueError(f"x must be one of {CURVE_X}, got {x!r}")
    df = tasks_df.dropna(subset=[x])
    colors = _colors(tasks_df["method"])
    fig, axes = _new_figure(10.0, 4.0, 1, 2)
    for ax, y, label in zip(axes[0], ("kt", "final_score"), ("mean KT (%)", "mean final score")):
        for method, g in df.groupby("method", sort=True):
            s = g.groupby(x)[y].mean().dropna()
            if not s.empty:
                ax.plot(s.index, s.to_numpy(), marker="o", color=colors[method], label=method)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(label)
        _maybe_log_x(ax, df[x])
        _legend(ax)
    return _save(fig, path)


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``points`` (columns params, score) not beaten by a cheaper, better row."""
    pts = points.sort_values(["params", "score"], ascending=[True, False])
    keep = pts["score"] > pts["score"].cummax().shift(fill_value=-math.inf)
    return pts[keep]


def plot_pareto(tasks_df: pd.DataFrame, path) -> Path:
    """Final score against parameters needed at inference, per method, with the Pareto front.

    Small points are runs (means over their tasks); large points are method means.

    Args:
        tasks_df: "tasks" table (columns method, run_id, final_score, inference_params).
        path: PNG file to write.
    """
    df = tasks_df.dropna(subset=["final_score", "inference_params"])
    runs = df.groupby(["method", "run_id"], as_index=False).agg(score=("final_score", "mean"),
                                                                 params=("inference_params", "mean"))
    means = runs.groupby("method")[["params", "score"]].mean()
    colors = _colors(tasks_df["method"])
    fig, axes = _new_figure(6.5, 4.5)
    ax = axes[0, 0]
    for method, g in runs.groupby("method"):
        ax.scatter(g["params"], g["score"], s=12, alpha=0.4, color=colors[method])
    for method, row in means.iterrows():
        ax.scatter(row["params"], row["score"], s=60, color=colors[method], label=method)
    front = pareto_front(means)
    ax.step(front["params"], front["score"], where="post", color="grey", ls="--", lw=1)
    _maybe_log_x(ax, runs["params"])
    ax.set_xlabel("parameters needed at inference per task")
    ax.set_ylabel("mean final score")
    _legend(ax)
    return _save(fig, path)


def plot_attention(att_df: pd.DataFrame, path) -> Path:
    """Fusion attention per task: a (layer x teacher) heatmap of mean weight over runs.

    Args:
        att_df: "attention" table (columns task, layer, teacher, weight).
        path: PNG file to write.
    """
    tasks = list(dict.fromkeys(att_df["task"]))  # first-seen order is stream order
    teachers = sorted(att_df["teacher"].unique())
    ncols = min(len(tasks), 4)
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = _new_figure(1.5 + 0.5 * len(teachers) * ncols, 0.8 + 2.6 * nrows, nrows, ncols)
    for ax, task in zip(axes.flat, tasks):
        grid = att_df[att_df["task"] == task].pivot_table(index="layer", columns="teacher", values="weight",
                                                          aggfunc="mean").reindex(columns=teachers)
        im = ax.imshow(np.ma.masked_invalid(grid.to_numpy(float)), aspect="auto", cmap="magma",
                       vmin=0, vmax=1)
        ax.set_title(str(task), fontsize=9)
        ax.set_xticks(range(len(teachers)), labels=teachers, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(grid.index)), labels=[str(v) for v in grid.index], fontsize=7)
        ax.set_ylabel("layer", fontsize=8)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight")
    return _save(fig, path)


def plot_tenant_timeline(tenant_df: pd.DataFrame, path) -> Path:
    """Gantt chart of onboarding: queue wait (grey) then training (colour), per method.

    Only the first run of each method is drawn, so rows stay readable.

    Args:
        tenant_df: "tenants" table (method, run_id, tenant, task, arrival/start/ready times).
        path: PNG file to write.
    """
    methods = sorted(tenant_df["method"].unique())
    colors = _colors(methods)
    firsts = []
    for m in methods:
        g = tenant_df[tenant_df["method"] == m]
        firsts.append(g[g["run_id"] == g["run_id"].iloc[0]].sort_values("arrival_time"))
    rows = max(len(g) for g in firsts)
    fig, axes = _new_figure(8.0, 0.6 + len(methods) * (0.8 + 0.25 * rows), len(methods), 1, sharex=True)
    for ax, method, g in zip(axes[:, 0], methods, firsts):
        y = np.arange(len(g))
        arrival, start, ready = (g[c].to_numpy(float) for c in ("arrival_time", "start_time", "ready_time"))
        ax.barh(y, start - arrival, left=arrival, color="lightgrey", label="queue wait")
        ax.barh(y, ready - start, left=start, color=colors[method], label="onboarding")
        ax.set_yticks(y, labels=(g["tenant"].astype(str) + ": " + g["task"].astype(str)).tolist(), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(method, fontsize=9)
        _legend(ax)
    axes[-1, 0].set_xlabel("time (s)")
    return _save(fig, path)
