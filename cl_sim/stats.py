"""Uncertainty for every comparison the tool prints (SPEC §5b): means with a 95% interval over
seeds, and paired differences between methods run on the same seed and data.

    mean_ci([0.71, 0.74, 0.69])                  # Interval(mean=0.713, low=0.651, high=0.776, n=3)
    paired_diff({0: 0.74, 1: 0.70}, {0: 0.71, 1: 0.69})   # method A - method B, per shared seed

The interval is Student's t over seeds (quantiles from ``scipy.stats.t.ppf``, exact at every
df; a hand table that fell back to 1.96 beyond df 30 was up to 4% narrow): each seed is one independent run of the whole study
(data order, initialisations, low-shot subsets), so seeds are the replicates; test examples
within a run are not independent of each other's model and are averaged first. With one seed
there is no interval (low = high = NaN): one seed is an anecdote, and the report says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


def t_quantile(df: int, q: float = 0.975) -> float:
    """The `q` quantile of Student's t with `df` degrees of freedom (scipy's ``t.ppf``, exact);
    0.975 gives a two-sided 95% interval. NaN for df < 1 (no interval from one replicate)."""
    if df < 1:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(q, df))


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def includes_zero(self) -> bool:
        """True when the interval cannot tell the sign (or there is no interval: n < 2)."""
        return not (self.low > 0 or self.high < 0)

    def fmt(self, digits: int = 3) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "n/a"
        if self.n < 2:
            return f"{self.mean:.{digits}f} (1 seed, no interval)"
        half = (self.high - self.low) / 2
        return f"{self.mean:.{digits}f} ± {half:.{digits}f}"


def mean_ci(values: Sequence[float]) -> Interval:
    """Mean and 95% t-interval of independent replicates (NaNs dropped)."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = t_quantile(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_diff(a: Mapping, b: Mapping) -> Interval:
    """A - B over the replicates (seeds) both have, paired: the seed's shared data and
    initialisation cancel out, so the interval is about the methods, not the luck of the draw."""
    shared = [k for k in a if k in b and not _missing(a[k]) and not _missing(b[k])]
    return mean_ci([a[k] - b[k] for k in shared])


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


# --- tables over a sweep's task rows -------------------------------------------------------
def per_seed(tasks, column: str, by: Sequence[str] = ("method",)):
    """{group: {seed: mean of `column` over that seed's runs and tasks}} (NaNs ignored)."""
    out: dict = {}
    for keys, g in tasks.groupby(list(by) + ["seed"], sort=True):
        *group, seed = keys if isinstance(keys, tuple) else (keys,)
        v = g[column].astype(float)
        out.setdefault(tuple(group) if len(group) > 1 else group[0], {})[seed] = (
            float(v.mean()) if v.notna().any() else math.nan)
    return out


def seed_table(tasks, columns: Sequence[str] = ("final_score", "kt", "kt_matched", "forgetting")):
    """One row per method: seeds, and for each column the mean ± 95% t-interval over seeds of
    the per-seed means, with how many task rows were undefined (NaN) and left out."""
    import pandas as pd

    rows = []
    for method, g in tasks.groupby("method", sort=True):
        row = {"method": method, "seeds": g["seed"].nunique(), "runs": g["run_id"].nunique()}
        for col in columns:
            if col not in g or g[col].isna().all():
                continue
            iv = mean_ci(list(per_seed(g, col)[method].values()))
            row[f"{col} (95% CI)"] = iv.fmt(3 if col == "final_score" else 1)
            undefined = int(g[col].isna().sum()) - (int(g["position"].eq(g["position"].max()).sum())
                                                    if col == "forgetting" else 0)
            if undefined:
                row[f"{col} undefined"] = f"{undefined} of {len(g)}"
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(tasks, reference: str, column: str = "final_score"):
    """Each method minus `reference` on `column`, paired by seed (the same data and seed for
    both), with its 95% interval and a flag where the interval includes zero."""
    import pandas as pd

    means = per_seed(tasks, column)
    if reference not in means:
        return pd.DataFrame()
    rows = []
    for method, by_seed in means.items():
        if method == reference:
            continue
        iv = paired_diff(by_seed, means[reference])
        rows.append({"comparison": f"{method} - {reference}", "metric": column, "seeds": iv.n,
                     "difference (95% CI)": iv.fmt(3),
                     "verdict": ("one seed: no interval" if iv.n < 2 else
                                 "interval includes 0: no difference shown" if iv.includes_zero else
                                 ("higher" if iv.mean > 0 else "lower"))})
    return pd.DataFrame(rows)
