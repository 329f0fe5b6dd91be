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

from cl_sim.methods import uses_teachers

KT_COLUMNS = ("kt", "kt_matched", "kt_work")


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


def base_method(label: str) -> str:
    """`i2i-FF` -> `i2i`: a sweep labels variants of one method apart; the registry knows the base."""
    return str(label).split("-")[0]


def had_teachers(tasks):
    """Boolean mask of the rows where KT measures transfer: a method that uses teachers
    (`cl_sim.methods.METHODS`) and a task that had at least one (not the first arrival, not
    `teacher_count=0`). Elsewhere KT is 0 by construction (the method *is* ST-A there) or not
    transfer at all (finetune vs an adapter reference is a method difference), so means leave those
    rows out and say how many."""
    uses = tasks["method"].map(lambda m: uses_teachers(base_method(m))).astype(bool)
    if "n_teachers" in tasks:
        return uses & (tasks["n_teachers"].fillna(0) > 0)
    return uses & (tasks["position"] > 0)


def seed_table(tasks, columns: Sequence[str] = ("final_score", "kt", "kt_matched", "kt_work", "forgetting")):
    """One row per method: seeds, and for each column the mean ± 95% t-interval over seeds of
    the per-seed means, with how many task rows were undefined (NaN) and left out. KT columns
    average only the rows that had teachers (`had_teachers`), say how many they left out, and are
    blank for methods without teachers."""
    import pandas as pd

    rows = []
    for method, g in tasks.groupby("method", sort=True):
        row = {"method": method, "seeds": g["seed"].nunique(), "runs": g["run_id"].nunique()}
        for col in columns:
            rows_used = g[had_teachers(g)] if col in KT_COLUMNS else g
            if col not in g or rows_used.empty or rows_used[col].isna().all():
                continue
            iv = mean_ci(list(per_seed(rows_used, col)[method].values()))
            row[f"{col} (95% CI)"] = iv.fmt(3 if col == "final_score" else 1)
            undefined = int(rows_used[col].isna().sum()) - (
                int(g["position"].eq(g["position"].max()).sum()) if col == "forgetting" else 0)
            left = len(g) - len(rows_used)
            if undefined or left:
                row[f"{col} left out"] = (f"{undefined + left} of {len(g)}" + (f" ({left} without teachers)"
                                                                              if left else ""))
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


# --- does the order matter? ----------------------------------------------------------------
@dataclass(frozen=True)
class OrderingTest:
    """An ordering effect tested against seed noise (`ordering_test`); scores in points."""

    orderings: int
    seeds: int  # complete blocks: seeds that ran every ordering
    F: float
    p_F: float  # randomized-block ANOVA F-test (normal errors)
    p_perm: float  # ordering labels shuffled within seeds (exact when few, else sampled)
    permutations: int
    p_perm_floor: float  # the smallest p the shuffles can give (2 orderings x 3 seeds: 0.25)
    share: float  # ordering's share of the non-seed variance, sigma2_o / (sigma2_o + sigma2_e)
    share_low: float
    share_high: float
    spread: float  # best - worst per-ordering mean (biased up: the best of k)
    spread_null: float  # median spread when only seed noise is there (permutation null)

    @property
    def shown(self) -> bool:
        """The F-test rejects "no ordering effect" at 5% (the share's interval then excludes 0)."""
        return self.p_F < 0.05

    def fmt_share(self) -> str:
        if math.isnan(self.share):
            return "n/a"
        return f"{100 * self.share:.0f}% [{100 * self.share_low:.0f}, {100 * self.share_high:.0f}]"


def _block_f(Y: np.ndarray) -> np.ndarray:
    """F of the ordering (column) effect in seeds x orderings tables (..., n, k), seeds as blocks."""
    n, k = Y.shape[-2:]
    grand = Y.mean((-2, -1), keepdims=True)
    cols, rows = Y.mean(-2, keepdims=True), Y.mean(-1, keepdims=True)
    ms_o = n * ((cols - grand) ** 2).sum((-2, -1)) / (k - 1)
    ms_e = ((Y - cols - rows + grand) ** 2).sum((-2, -1)) / ((k - 1) * (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ms_e > 1e-12 * (1 + ms_o), ms_o / ms_e, np.where(ms_o > 1e-12, np.inf, np.nan))


def _within_seed_shuffles(Y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """(B, n, k): every ordering-label permutation within each seed when there are at most
    `limit`, else the observed table and `limit - 1` seeded random shuffles."""
    import itertools

    n, k = Y.shape
    perms = list(itertools.permutations(range(k)))
    if len(perms) ** n <= limit:
        idx = np.array(list(itertools.product(perms, repeat=n)))  # (B, n, k)
        return np.take_along_axis(np.broadcast_to(Y, idx.shape), idx, axis=-1)
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.broadcast_to(Y, (limit - 1, n, k)), axis=-1)
    return np.concatenate([Y[None], shuffled])


def ordering_test(Y, limit: int = 5_000, seed: int = 0) -> OrderingTest:
    """Does the ordering change the score beyond what seed noise does?

    Args:
        Y: (n_seeds, k_orderings) scores in points, one run per cell; seeds with a missing
            ordering are dropped (the design must be complete to block on seeds).
        limit: permutations enumerated exactly up to this many, else sampled.
        seed: RNG seed of the sampled permutations.

    Returns:
        An `OrderingTest`. Seeds are blocks (a seed's data, init and subsets are shared by its
        orderings), so seed-to-seed differences are removed before orderings are compared:
        randomized-block ANOVA, F = MS_ordering / MS_residual on (k-1, (k-1)(n-1)) df, with a
        permutation p-value that shuffles ordering labels within each seed (no normality
        assumed; with k=2 and 3 seeds there are only 8 shuffles, and relabelling every seed alike
        leaves F unchanged, so p >= 2/8 = 0.25; k=3: 216 shuffles, p >= 6/216). The share
        of variance due to ordering, s = θ/(1+θ) with θ = σ²_o/σ²_e, has the exact interval from
        F / F_crit (θ in [(F/F_.975 - 1)/n, (F/F_.025 - 1)/n], floored at 0): it includes 0
        exactly when the F-test does not reject at 5%. The spread (best - worst mean) is
        reported beside the spread the permutation null gives, since a max minus a min is
        never negative and grows with k whether or not the order matters.
    """
    from scipy.stats import f as f_dist

    Y = np.asarray(Y, dtype=np.float64)
    Y = Y[~np.isnan(Y).any(axis=1)]
    n, k = Y.shape if Y.ndim == 2 else (0, 0)
    spread = float(np.ptp(Y.mean(0))) if n else math.nan
    if n < 2 or k < 2:
        return OrderingTest(k, n, *[math.nan] * 3, 0, *[math.nan] * 4, spread, math.nan)
    F = float(_block_f(Y))
    df1, df2 = k - 1, (k - 1) * (n - 1)
    shuffles = _within_seed_shuffles(Y, limit, seed)
    null_f, null_spread = _block_f(shuffles), np.ptp(shuffles.mean(-2), axis=-1)
    p_perm = float(np.mean(null_f >= F - 1e-12)) if not math.isnan(F) else math.nan
    floor = float(np.mean(null_f >= np.nanmax(null_f) - 1e-12)) if (~np.isnan(null_f)).any() else math.nan
    p_F = float(f_dist.sf(F, df1, df2)) if np.isfinite(F) else (0.0 if F == math.inf else math.nan)
    theta = [max(0.0, (F / c - 1) / n) if np.isfinite(F) else math.nan
             for c in (1.0, float(f_dist.ppf(0.975, df1, df2)), float(f_dist.ppf(0.025, df1, df2)))]
    share = [1.0 if t == math.inf else t / (1 + t) for t in theta]  # point, low, high
    return OrderingTest(k, n, float(F), p_F, p_perm, len(null_f), floor, *share, spread,
                        float(np.median(null_spread)))


def ordering_row(test: OrderingTest) -> dict:
    """The columns every ordering-effect table prints (reports, RESULTS.md, the sweep headline)."""
    if test.seeds < 2:
        return {"orderings": test.orderings, "seeds": test.seeds,
                "ordering effect": "fewer than 2 seeds with every ordering: no test"}
    independent = math.isnan(test.F)  # no score moved with the ordering (ST-A, a reference): nothing to test
    verdict = ("n/a: order-independent (each seed scores the same under every ordering)" if independent
               else "shown (F-test p < 0.05)" if test.shown else "not shown: within seed noise")
    return {"orderings": test.orderings, "seeds": test.seeds,
            "p (permutation within seeds)": "n/a" if independent else f"{test.p_perm:.3g} ({test.permutations} "
                                            f"shuffles, smallest possible {test.p_perm_floor:.3g})",
            "p (F-test)": "n/a" if independent else f"{test.p_F:.3g}",
            "ordering share of variance (95% CI)": test.fmt_share(),
            "spread best - worst, points": f"{test.spread:.2f}",
            "spread from seed noise alone, points": f"{test.spread_null:.2f}", "ordering effect": verdict}
