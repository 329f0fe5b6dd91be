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
