"""Ordering analysis for sweeps over task orderings: what preceded a task, and what that did.

    by_set = score_by_predecessors(tasks, "i2i")            # a target's score by the set before it
    gain = transfer_matrix(tasks, "i2i")                    # teacher -> target: with minus without
    beyond = transfer_matrix(tasks, "i2i", "ref_work_score")  # with teacher minus work-matched ST-A
    effect = ordering_effect(tasks)                         # ordering vs seed noise: p-value, variance share
    plot_transfer_heatmap(transfer_matrix(tasks, "i2i", with_interval=True), "transfer_i2i.png",
                          matched=transfer_matrix(tasks, "i2i", "ref_matched_score", with_interval=True),
                          work=transfer_matrix(tasks, "i2i", "ref_work_score", with_interval=True))

All of it reads the sweep's task rows (method, seed, ordering "a>b>c", task, position, diag_score,
final_score), so it works on any study that varied the ordering.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from cl_sim.report import stats


def _preceding(row) -> list[str]:
    return str(row["ordering"]).split(">")[: int(row["position"])]


def score_by_predecessors(tasks: pd.DataFrame, method: str) -> pd.DataFrame:
    """One row per (target, tasks before it): as a set and as a sequence, with the target's mean
    score right after learning it, its 95% t-interval over seeds (of the per-seed means) and the
    number of rows (orderings x seeds) behind the mean."""
    g = tasks[tasks["method"] == method].copy()
    g["before (sequence)"] = [" > ".join(_preceding(r)) or "(first)" for _, r in g.iterrows()]
    g["before (set)"] = [", ".join(sorted(_preceding(r))) or "(first)" for _, r in g.iterrows()]
    rows = []
    for (task, as_set), s in g.groupby(["task", "before (set)"], sort=True):
        sequences = sorted(set(s["before (sequence)"]))
        by_seq = "; ".join(f"{q}: {100 * s[s['before (sequence)'] == q]['diag_score'].mean():.1f}"
                           for q in sequences) if len(sequences) > 1 else ""
        per_seed = (100 * s.groupby("seed")["diag_score"].mean()).tolist()
        rows.append({"target": task, "before (set)": as_set, "rows": len(s),
                     "score, points": 100 * float(s["diag_score"].mean()),
                     "95% CI over seeds": stats.mean_ci(per_seed).fmt(1), "by sequence": by_seq})
    return pd.DataFrame(rows)


def transfer_matrix(tasks: pd.DataFrame, method: str, against: str | None = None,
                    with_interval: bool = False) -> pd.DataFrame:
    """teacher x target, points. Default: the target's score when the teacher came before it minus
    when it did not. `against="ref_matched_score"` / `"ref_work_score"`: the target's score when the
    teacher came before it minus the step- / work-matched ST-A control on the same rows (transfer
    beyond extra optimizer steps / extra training work, `cl_sim.sim.references`).
    Both are computed per seed, then averaged; NaN where one side never happened. With
    `with_interval`, cells are `stats.Interval`s (95% t over seeds) instead of floats."""
    g = tasks[tasks["method"] == method]
    names = sorted(g["task"].unique())
    out = pd.DataFrame(np.nan, index=pd.Index(names, name="teacher"), columns=pd.Index(names, name="target"),
                       dtype=object if with_interval else float)
    if against is not None and (against not in g or g[against].isna().all()):
        return out.iloc[0:0, 0:0]
    before = [set(_preceding(r)) for _, r in g.iterrows()]
    scores = g["diag_score"].to_numpy(dtype=float)
    control = g[against].to_numpy(dtype=float) if against else None
    targets, seeds = g["task"].to_numpy(), g["seed"].to_numpy()
    for teacher in names:
        for target in names:
            if teacher == target:
                continue
            on = np.array([t == target and teacher in b for t, b in zip(targets, before)])
            off = np.array([t == target and teacher not in b for t, b in zip(targets, before)])
            per_seed = []
            for s in np.unique(seeds):
                mine = seeds == s
                if control is not None and (on & mine).any():
                    per_seed.append(100 * np.nanmean(scores[on & mine] - control[on & mine]))
                elif control is None and (on & mine).any() and (off & mine).any():
                    per_seed.append(100 * (scores[on & mine].mean() - scores[off & mine].mean()))
            if per_seed:
                iv = stats.mean_ci(per_seed)
                out.loc[teacher, target] = iv if with_interval else iv.mean
    return out


def _by_seed_and_ordering(g: pd.DataFrame, column: str) -> pd.DataFrame:
    """seeds x orderings table of the mean of `column` in points (one run per cell)."""
    return 100 * g.groupby(["seed", "ordering"])[column].mean().unstack("ordering")


def ordering_effect(tasks: pd.DataFrame, column: str = "final_score") -> pd.DataFrame:
    """Per method: does the order change the run's mean score beyond seed noise?

    A randomized-block test with seeds as blocks (`stats.ordering_test`): a p-value from shuffling
    ordering labels within seeds and from the F-test, the ordering's share of variance with its
    95% interval (which can include 0), and the best - worst spread beside the spread seed noise
    alone gives. (The spread itself is never negative, so an interval on it excludes 0 under
    noise alone: it is descriptive, not the test.)
    """
    rows = []
    for method, g in tasks.groupby("method", sort=True):
        if g["ordering"].nunique() < 2:
            continue
        Y = _by_seed_and_ordering(g, column)
        means = Y.mean()
        ranked = np.ptp(means.to_numpy()) > 0  # an order-independent method has no best ordering
        rows.append({"method": method, **stats.ordering_row(stats.ordering_test(Y.to_numpy())),
                     "best ordering": means.idxmax() if ranked else "n/a",
                     "worst ordering": means.idxmin() if ranked else "n/a"})
    return pd.DataFrame(rows)


def ordering_means(tasks: pd.DataFrame, column: str = "final_score") -> pd.DataFrame:
    """Per method and ordering: the run's mean score (points) with its 95% t-interval over seeds."""
    rows = []
    for method, g in tasks.groupby("method", sort=True):
        for ordering, per_seed in _by_seed_and_ordering(g, column).items():
            rows.append({"method": method, "ordering": ordering,
                         "score, points (95% CI over seeds)": stats.mean_ci(per_seed.tolist()).fmt(2)})
    return pd.DataFrame(rows)


def _heatmap(ax, matrix: pd.DataFrame, lim: float, label: str):
    values = np.array([[v.mean if isinstance(v, stats.Interval) else np.nan for v in row]
                       for row in matrix.to_numpy()], dtype=float)
    n = len(matrix)
    im = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set_xticks(range(n), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(n), matrix.index)
    ax.set_xlabel("target")
    ax.set_ylabel("teacher (came before)")
    for i in range(n):
        for j in range(n):
            iv = matrix.iat[i, j]
            if isinstance(iv, stats.Interval) and np.isfinite(iv.mean):
                half = "" if iv.n < 2 else f"\n±{(iv.high - iv.low) / 2:.1f}"
                ax.text(j, i, f"{iv.mean:+.1f}{half}", ha="center", va="center", fontsize=7,
                        color="white" if abs(iv.mean) > lim / 2 else "black")
    ax.set_title(label, fontsize=9)
    return im


def plot_transfer_heatmap(matrix: pd.DataFrame, path, title: str = "", matched: pd.DataFrame | None = None,
                          work: pd.DataFrame | None = None) -> None:
    """teacher (rows) -> target (columns) heatmaps of `transfer_matrix(..., with_interval=True)`, points
    with their 95% interval over seeds, diverging around 0: "with - without the teacher" and, when
    the study ran the controls, "with the teacher - step-matched ST-A" and "- work-matched ST-A"
    beside it (the first includes the method's extra training; the others separate it out)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(matrix, "with - without teacher (points)")]
    for control, label in ((matched, "step-matched"), (work, "work-matched")):
        if control is not None and not control.empty:
            panels.append((control, f"with teacher - {label} ST-A (points)"))
    means = [v.mean for m, _ in panels for v in m.to_numpy().ravel() if isinstance(v, stats.Interval)]
    lim = float(np.nanmax(np.abs(means))) if np.isfinite(means).any() else 1.0
    n = len(matrix)
    fig = Figure(figsize=(len(panels) * max(5.0, 1.6 + 0.9 * n), max(4.0, 1.2 + 0.8 * n)), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (m, label) in zip(axes, panels):
        im = _heatmap(ax, m, lim or 1.0, label)
    fig.colorbar(im, ax=list(axes), label="points (95% CI over seeds)")
    fig.suptitle(title or "teacher -> target transfer", fontsize=10)
    fig.savefig(path, dpi=110)


def headline(tasks: pd.DataFrame) -> str:
    """What a sweep prints when it ends: each method over seeds (mean ± 95% t-interval), each
    method minus ST-A per task (paired by seed and ordering, flagged where the interval includes 0),
    and the ordering effect. `tasks` is the report's tasks table."""
    from cl_sim.report.tables import markdown_table

    parts = [markdown_table(stats.seed_table(tasks, ("final_score", "kt", "kt_matched", "kt_work")))]
    if "st_a" in set(tasks["method"]) and tasks["method"].nunique() > 1:
        rows = []
        for task, g in tasks.groupby("task", sort=True):
            table = stats.paired_table(g, "st_a")
            if not table.empty:
                rows.append(table.assign(task=task, metric="final score"))
        if rows:
            parts.append(markdown_table(pd.concat(rows)[["task", "comparison", "seeds", "difference (95% CI)",
                                                           "verdict"]]))
    effect = ordering_effect(tasks)
    if not effect.empty:
        parts.append(markdown_table(effect))
    return "\n\n".join(parts)
