"""DataFrames as Markdown tables (reports, RESULTS.md, the sweeps' printed headline)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _fmt(v) -> str:
    if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return "n/a"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    if isinstance(v, (int, np.integer)) and abs(v) >= 1e4:
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (pandas' ``to_markdown`` when tabulate is installed)."""
    text = df.astype(object).map(_fmt)
    try:
        import tabulate  # noqa: F401  (optional; only decides the formatter)
        return text.to_markdown(index=False, disable_numparse=True)
    except ImportError:
        pass
    cols = [str(c) for c in text.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in text.itertuples(index=False)]
    return "\n".join(lines)


def training_sizes(tasks: pd.DataFrame) -> pd.DataFrame:
    """Each task's training budget as run: rows trained on (`train_examples`: min-max over the rows
    where methods differ, e.g. I2I's low-shot variants) and epochs, per task in arrival order."""
    if "train_examples" not in tasks or tasks["train_examples"].isna().all():
        return pd.DataFrame()
    rows = []
    for task, g in tasks.sort_values("position").groupby("task", sort=False):
        n = pd.to_numeric(g["train_examples"], errors="coerce").dropna()
        lo, hi = (int(n.min()), int(n.max())) if len(n) else (None, None)
        sizes = "n/a" if lo is None else str(hi) if lo == hi else f"{lo}-{hi}"
        epochs = sorted({int(e) for e in g["epochs"].dropna()}) if "epochs" in g else []
        rows.append({"task": task, "training examples": sizes,
                     "epochs": ", ".join(map(str, epochs)) or "n/a"})
    return pd.DataFrame(rows)
