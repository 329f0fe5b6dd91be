"""docs/RESULTS.md, written from the reproduction suite's tables (never by hand).

    text = results_markdown(studies)
    # studies: [{"name", "title", "command", "seeds", "trials", "wall_s", "machine", "finished", "scale",
    #            "tasks": DataFrame}, ...]  (experiments/reproduce.py: one study.json per finished study)

Each comparison the seed papers make is computed where its methods ran, as a paired difference
over seeds (same data, same seed for both sides) with a 95% t-interval (`cl_sim.report.stats`), and
printed beside the paper's own figure. Where ours disagree the table says so; the likely reasons
are listed once at the top of the file (scale: MiniLM and a few hundred examples, not BERT-base
on full GLUE). Scores are in points (x100).
"""
from __future__ import annotations

from pathlib import Path

import math
from typing import Optional

import pandas as pd

from cl_sim.report import analysis, stats
from cl_sim.methods import METHODS
from cl_sim.report.tables import markdown_table, training_sizes

# the papers' figures (from ../shared/seeds/*.md) are the `claims` of each method's registry entry
BUDGET_BYTES = 10_000_000
# the compute-matched controls a teacher method's rows carry (`cl_sim.sim.references`): column, name
CONTROLS = (("ref_matched_score", "step-matched ST-A"), ("ref_work_score", "work-matched ST-A"))
KT_LABELS = (("kt", "KT vs ST-A, % (95% CI)"), ("kt_matched", "KT vs step-matched ST-A, % (95% CI)"),
             ("kt_work", "KT vs work-matched ST-A, % (95% CI)"))


def _points(tasks: pd.DataFrame, method: str, column: str = "diag_score", where=None) -> dict:
    """{seed: mean of `column` x 100 over the method's rows (optionally filtered)}."""
    g = tasks[tasks["method"] == method]
    if where is not None:
        g = g[where(g)]
    return {s: 100 * float(v.mean()) for s, v in g.groupby("seed")[column] if v.notna().any()}


def _paired_row(label: str, iv: stats.Interval, paper: str) -> dict:
    verdict = ("1 seed: no interval" if iv.n < 2 else "interval includes 0" if iv.includes_zero
               else "positive" if iv.mean > 0 else "negative")
    return {"comparison": label, "seeds": iv.n, "difference, points (95% CI)": iv.fmt(2), "verdict": verdict,
            "paper": paper}


def labels(name: str, methods) -> list[str]:
    """The table's labels of registered method `name`: itself and its variants (`i2i-FF`), sorted."""
    return sorted(m for m in methods if m == name or m.startswith(f"{name}-"))


def title(label: str) -> str:
    """`i2i-FF` -> `I2I-FF`: the method's report title plus the variant."""
    name = str(label).split("-")[0]
    return (METHODS[name].title or name) + str(label)[len(name):] if name in METHODS else str(label)


def targets(tasks: pd.DataFrame) -> pd.Series:
    """Rows of tasks that could have had teachers: every arrival after the first, except tasks whose
    role is `teacher` (`TaskConfig.role`: they learn alone) and negative controls (role `control`:
    reported on their own, never pooled with the targets the teachers are expected to help)."""
    later = tasks["position"] > 0
    return later & ~tasks["role"].isin(["teacher", "control"]) if "role" in tasks else later


def controls(tasks: pd.DataFrame) -> list[str]:
    """The negative-control tasks (role `control`), sorted."""
    return sorted(tasks.loc[tasks["role"] == "control", "task"].unique()) if "role" in tasks else []


def task_label(tasks: pd.DataFrame, task: str) -> str:
    """`task`, or `task (control)` for a negative control."""
    return f"{task} (control)" if task in controls(tasks) else task


def claim_intervals(tasks: pd.DataFrame) -> list[tuple[str, str, stats.Interval]]:
    """(comparison, paper, paired interval in points) for every paper comparison (`Method.claims`)
    whose methods are in `tasks`: per task where the claim is per task, else over the targets that
    had teachers (negative controls left out) and, where tasks have the `target` or `control` role,
    per such task too (a negative control keeps its own intervals, against ST-A and both matched
    controls)."""
    methods = set(tasks["method"])
    named = sorted(tasks.loc[tasks["role"].isin(["target", "control"]), "task"].unique()) if "role" in tasks else []
    control = controls(tasks)
    out = []

    def pair(label, a, b, where, paper, b_column="diag_score"):
        iv = stats.paired_diff(_points(tasks, a, where=where), _points(tasks, b, b_column, where))
        out.append((label, paper, iv))

    for name, method in METHODS.items():
        for claim, label in ((c, m) for c in method.claims for m in labels(name, methods)):
            versus = f"{title(label)} - {title(claim.versus)}"
            if claim.versus in methods and claim.per_task:
                for task in sorted(tasks["task"].unique()):
                    pair(f"{versus}, {task}", label, claim.versus, lambda g, t=task: g["task"] == t, claim.paper)
            elif claim.versus in methods:
                pair(f"{versus}, targets with teachers", label, claim.versus, targets, claim.paper)
                for task in named:
                    pair(f"{versus}, {task_label(tasks, task)}", label, claim.versus,
                         lambda g, t=task: g["task"] == t, claim.paper)
            for column, name in CONTROLS:
                if claim.matched and column in tasks and tasks.loc[tasks["method"] == label, column].notna().any():
                    pair(f"{title(label)} - {name}, targets with teachers", label, label, targets,
                         claim.paper, b_column=column)
                    for task in control:
                        pair(f"{title(label)} - {name}, {task_label(tasks, task)}", label, label,
                             lambda g, t=task: g["task"] == t, claim.paper, b_column=column)
    return out


def comparisons(tasks: pd.DataFrame) -> pd.DataFrame:
    """Every paper comparison (`claim_intervals`) as a table row with its verdict."""
    return pd.DataFrame([_paired_row(label, iv, paper) for label, paper, iv in claim_intervals(tasks)])


def by_teacher_count(tasks: pd.DataFrame) -> pd.DataFrame:
    """`comparisons` once per teacher count of a teacher-count sweep (methods without teachers, ST-A,
    on every count's side): a count's own intervals, not a mean over counts; empty without a sweep."""
    counts = sorted(tasks["teacher_count"].dropna().unique()) if "teacher_count" in tasks else []
    if len(counts) < 2:
        return pd.DataFrame()
    rows = [comparisons(tasks[(tasks["teacher_count"] == c) | tasks["teacher_count"].isna()]).assign(teachers=int(c))
            for c in counts]
    table = pd.concat(rows, ignore_index=True)
    return table[["teachers"] + [c for c in table.columns if c not in ("teachers", "paper")]]  # paper: above


def reading(iv: stats.Interval, comparison: str) -> str:
    """One line that says only what the interval allows (`A - B, scope`: A above / below B, or no
    difference shown and how large one could be)."""
    a, _, b = comparison.split(",")[0].partition(" - ")
    if iv.n == 0 or math.isnan(iv.mean):
        return "not measured"
    if iv.n < 2:
        return "1 seed: no interval, nothing shown"
    if iv.low > 0:
        return f"{a} above {b} by {iv.low:.1f} to {iv.high:.1f} points"
    if iv.high < 0:
        return f"{a} below {b} by {-iv.high:.1f} to {-iv.low:.1f} points"
    return f"no difference shown; the data allow {iv.low:+.1f} to {iv.high:+.1f} points"


def verdicts(studies: list[dict]) -> pd.DataFrame:
    """The seed papers' claims, weak- vs strong-teacher studies side by side (a study's `teachers`:
    `strong` where its teachers trained on many times its targets' rows, else weak): per comparison and regime,
    each study's interval and its reading, `study: ...` joined by `; `."""
    cells: dict[str, dict] = {}
    for s in studies:
        regime = "strong" if s.get("teachers") == "strong" else "weak"
        for label, paper, iv in claim_intervals(s["tasks"]):
            row = cells.setdefault(label, {"comparison": label, "paper": paper})
            who = s.get("name", s["title"])
            for col, text in ((f"{regime} teachers, points (95% CI)", iv.fmt(2)),
                              (f"{regime} teachers: reading", reading(iv, label))):
                row[col] = "; ".join(filter(None, [row.get(col), f"{who}: {text}"]))
    columns = ["comparison", "weak teachers, points (95% CI)", "weak teachers: reading",
               "strong teachers, points (95% CI)", "strong teachers: reading", "paper"]
    return pd.DataFrame(list(cells.values()), columns=columns).astype(object).fillna("not run")


def transfer(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per teacher method, over seeds: the score minus the step- and the work-matched ST-A in points
    (paired by seed), and KT against ST-A and both controls; only rows that had teachers
    (`stats.had_teachers`: elsewhere KT is 0 by construction), with the count, and per KT column
    how many of those rows KT left undefined (reference at or below chance). A negative control
    (role `control`) gets rows of its own, never pooled with the other targets."""
    rows = []
    methods = set(tasks["method"])
    control = tasks["role"] == "control" if "role" in tasks else pd.Series(False, index=tasks.index)
    groups = [("", ~control)] + [(f" ({t}, control)", tasks["task"] == t) for t in controls(tasks)]
    for method, (suffix, where) in [(m, grp) for name, entry in METHODS.items() if entry.uses_teachers
                                    for m in labels(name, methods) for grp in groups]:
        all_rows = tasks[(tasks["method"] == method) & where]
        g = all_rows[stats.had_teachers(all_rows)]
        if g.empty:
            continue
        row = {"method": method + suffix, "seeds": g["seed"].nunique(),
               "rows with teachers": f"{len(g)} of {len(all_rows)}"}
        for col, control in CONTROLS:
            if col in g and g[col].notna().any():
                row[f"score - {control}, points (95% CI)"] = stats.paired_diff(
                    _points(g, method), _points(g, method, col)).fmt(2)
        for col, label in KT_LABELS:
            if col in g and (col == "kt" or g[col].notna().any()):
                per_seed = [float(v.mean()) for _, v in g.groupby("seed")[col] if v.notna().any()]
                row[label] = stats.mean_ci(per_seed).fmt(1)
                row[f"{col} undefined rows"] = int(g[col].isna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


def ordering_effect(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per order-dependent method (I2I variants apart) and task: does the order of the tasks before
    it change the task's score beyond seed noise? Seeds are blocks (`stats.ordering_test`: permutation and F-test p-values,
    the ordering's share of variance with an interval that can include 0, and the best - worst
    spread beside what seed noise alone gives); first over the whole stream (the run's final score,
    task `all`), then per task."""
    rows = []
    for method in order_dependent(tasks):
        g = tasks[tasks["method"] == method]
        overall = analysis.ordering_effect(g.assign(method=method)).drop(columns=["method"]).iloc[0].to_dict()
        rows.append({"method": method, "task": "all (final score)", **overall})
        for task, t in g.groupby("task"):
            if t["ordering"].nunique() < 2:  # a task in one sampled ordering only: nothing to compare
                continue
            Y = 100 * t.groupby(["seed", "ordering"])["diag_score"].mean().unstack("ordering")
            rows.append({"method": method, "task": task, **stats.ordering_row(stats.ordering_test(Y.to_numpy()))})
    return pd.DataFrame(rows)


def order_dependent(tasks: pd.DataFrame) -> list[str]:
    """The labels of order-dependent methods (not `single_task`) that ran under 2 or more orderings."""
    methods = set(tasks["method"])
    return [m for name, entry in METHODS.items() if not entry.single_task for m in labels(name, methods)
            if tasks.loc[tasks["method"] == m, "ordering"].nunique() >= 2]


def ordering_means(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per order-dependent method and ordering: the run's final score with its 95% interval over
    seeds (`analysis.ordering_means`). The best of k orderings is biased upward: read it against
    the test above, not on its own."""
    rows = [analysis.ordering_means(tasks[tasks["method"] == m]) for m in order_dependent(tasks)]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def costs(tasks: pd.DataFrame) -> pd.DataFrame:
    """Parameters loaded at inference (% of the backbone) and storage per task; tenants that one
    budget holds at one task per tenant."""
    rows = []
    for method, g in tasks.groupby("method"):
        per_task = float(g["stored_bytes"].mean())
        rows.append({"method": method, "inference params, % of backbone": float(g["inference_params_pct"].mean()),
                     "stored bytes per task": per_task,
                     f"tenants per {BUDGET_BYTES / 1e6:g} MB": int(BUDGET_BYTES // per_task) if per_task else math.nan})
    return pd.DataFrame(rows)


def forgetting(tasks: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for method, g in tasks.groupby("method"):
        per_seed = [float(v.mean()) for _, v in g.groupby("seed")["forgetting"] if v.notna().any()]
        if per_seed:
            rows.append({"method": method, "mean forgetting, % (95% CI)": stats.mean_ci(per_seed).fmt(1)})
    return pd.DataFrame(rows)


HEADER = [
    "# Results: the seed papers re-measured", "",
    "_Written by `experiments/reproduce.py` (`cl_sim/report/results_md.py`) from the suite's tables; do not edit "
    "by hand. Differences are paired over seeds (same data and seed on both sides) with a 95% t-interval; "
    "a difference whose interval includes 0 is not shown to exist. Two compute-matched controls separate "
    "transfer from extra training: the **step-matched** ST-A (`ref_matched_score`, `kt_matched`) trains on "
    "the task alone for at least as many optimizer steps as the method spent on it; the **work-matched** "
    "ST-A (`ref_work_score`, `kt_work`) for at least as many example-passes through the backbone (a fusion "
    "pass over N adapters and the distillation teacher's forward counted at their cost, `cl_sim/sim/references.py`); "
    "both train whole epochs, so where the work rounds up to the same epochs as the steps they are one phase "
    "and their rows agree. "
    "Study titles that say \"compute-matched\" mean these controls. KT means average only the tasks that had "
    "teachers and say how many rows they left out. Studies accumulate: a run writes the "
    "sections of the studies it finished and keeps the others' sections as their last finished run wrote "
    "them (each section gives its command, machine and date)._", "",
    "Where ours disagree with a paper, the likely reason is scale: a 22M-parameter MiniLM (not BERT-base), "
    "a few hundred training examples per task and short sequences (each study states its scale), learning "
    "rates raised so ST-A beats the majority class. The GPU configuration (`reproduce_gpu.yaml`) is the "
    "papers' scale.", ""]


VERDICT_HEADING = "## Verdicts: each seed claim with weak and strong teachers"
VERDICT_NOTE = ("_From the studies finished in this run's output folder. Weak teachers: every task, teachers "
                "included, trained on a few hundred rows; strong: teachers on 1,000 rows or more, several times their targets (each study's training-size "
                "table). A reading says only what its interval allows: an interval that includes 0 shows no "
                "difference, and does not show that there is none._")


def study_section(s: dict) -> str:
    """One finished study's section: a dict with title, command, seeds, trials, wall_s, machine,
    finished, scale and the report's tasks table."""
    tasks = s["tasks"]
    lines = [f"## {s['title']}", "", f"Command: `{s['command']}`  ", f"Seeds: {s['seeds']}; orderings: "
             f"{tasks['ordering'].nunique()}; wall time {s['wall_s'] / 60:.1f} min; trials {s['trials']}"
             + (f"; phases trained {s['phases_trained']}, reused from the store {s['phases_reused']} (a resumed "
                f"or shared-store run reuses earlier runs' phases)" if s.get("phases_trained") is not None else "")
             + "  ",
             f"Scale: {s.get('scale', 'n/a')}" + _variant_note(tasks) + "  ",
             f"Machine: {s.get('machine', 'n/a')}; finished "
             f"{s.get('finished', 'n/a')}" + (f"  \nNote: {s['note']}" if s.get("note") else ""), ""]
    sizes = training_sizes(tasks)
    if not sizes.empty:  # teachers on many rows, targets on few: the regime is in the table
        lines += ["### Training size per task", "", markdown_table(sizes), ""]
    lines += ["### Scores and transfer over seeds", "", markdown_table(stats.seed_table(tasks)), ""]
    if controls(tasks):  # the KT means above pool every task that had teachers
        lines += [f"_The KT columns above pool every task that had teachers, the negative control "
                  f"({', '.join(controls(tasks))}) included; the comparisons and the transfer table below keep "
                  f"the control apart._", ""]
    for title, table in (("Comparisons the papers make", comparisons(tasks)),
                         ("The same comparisons per teacher count", by_teacher_count(tasks)),
                         ("Knowledge transfer, against ST-A and the step- and work-matched ST-A", transfer(tasks)),
                         ("Ordering effect, tested against seed noise", ordering_effect(tasks)),
                         ("Final score per ordering (95% CI over seeds; the best of several is biased upward)",
                          ordering_means(tasks)),
                         ("Costs", costs(tasks)),
                         ("Forgetting", forgetting(tasks))):
        if not table.empty:
            lines += [f"### {title}", "", markdown_table(table), ""]
    per_task = tasks.groupby(["task", "method"])["diag_score"].mean().unstack("method")
    lines += ["### Mean score per task (right after learning it, mean over seeds and orderings)", "",
              markdown_table((100 * per_task).round(1).reset_index()), ""]
    return "\n".join(lines)


def _variant_note(tasks: pd.DataFrame) -> str:
    """"; I2I variant FF" when the rows of a method with variants share one (several get their own labels)."""
    if "i2i_variant" not in tasks:
        return ""
    varied = [n for n, m in METHODS.items() if "i2i_variant" in m.sweep_axes and n in set(tasks["method"])]
    for name in varied:
        variants = sorted(tasks.loc[tasks["method"] == name, "i2i_variant"].dropna().unique())
        if len(variants) == 1:
            return f"; {title(name)} variant {variants[0]}"
    return ""


def sections_by_title(markdown: str) -> dict[str, str]:
    """The study sections of an existing RESULTS.md, by title (the text under each `## ` heading)."""
    found: dict[str, list[str]] = {}
    current = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            found[current] = []
        if current is not None:
            found[current].append(line)
    return {title: "\n".join(body).rstrip("\n") + "\n" for title, body in found.items()}


def results_markdown(studies: list[dict], titles: Optional[dict[str, str]] = None, previous: str = "") -> str:
    """RESULTS.md from finished studies (see `study_section`). With `titles` (the suite's study names
    in order -> title) and the file's `previous` text, a suite study not in `studies` keeps its
    previous section: studies run in separate invocations, or on other machines, add up."""
    fresh = {s.get("name", s["title"]): study_section(s) for s in studies}
    verdict = verdicts(studies) if studies else pd.DataFrame()
    if titles is None:
        sections = list(fresh.values())
    else:
        kept = sections_by_title(previous)
        sections = [fresh.get(name) or kept.get(title) for name, title in titles.items()]
    if verdict.empty:  # nothing finished here: the previous file's table stands
        kept_table = sections_by_title(previous).get(VERDICT_HEADING[3:])
        table = [kept_table] if kept_table else []
    else:
        table = [VERDICT_HEADING, "", VERDICT_NOTE, "", markdown_table(verdict), ""]
    return "\n".join(HEADER + table + [s for s in sections if s])


def machine_line() -> str:
    import os
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node() or 'host'}: {cpu_model()}, {os.cpu_count()} CPU cores, {gpu}, "
            f"torch {torch.__version__}")


def cpu_model() -> str:
    """The CPU's model name and the vector extensions that set CPU training speed (Linux's
    /proc/cpuinfo; elsewhere `platform.processor()`), e.g. "AMD EPYC 9R14 (AVX2, AVX-512F, AVX-512-BF16)"."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "CPU model unknown"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or "CPU model unknown")
    flags = next((set(line.split(":", 1)[1].split()) for line in info.splitlines() if line.startswith("flags")),
                 set())
    ext = [label for flag, label in (("avx2", "AVX2"), ("avx512f", "AVX-512F"), ("avx512_bf16", "AVX-512-BF16"),
                                     ("amx_bf16", "AMX-BF16")) if flag in flags]
    return f"{name} ({', '.join(ext) or 'no AVX2'})"
