"""Continual-learning and cost metrics as pure numpy functions (SPEC §4).

Everything here takes plain numbers and returns plain numbers: no torch, no Ray, no state.
The central object is the accuracy matrix ``R`` of shape (n_arrivals, n_tasks), tasks in
arrival order, where ``R[i, j]`` is the score on task j after the i-th arrival and NaN where
it is undefined (e.g. a future task that has no head yet).

References:
    Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017
        (average accuracy, BWT, FWT).
    Srinivasan et al., "CLiMB: A Continual Learning Benchmark for Vision-and-Language
        Tasks", NeurIPS 2022 (knowledge transfer and forgetting, normalised by a random
        baseline).

Example:
    >>> R = np.array([[0.8, np.nan], [0.7, 0.9]])
    >>> round(backward_transfer(R), 6)  # 0.7 - 0.8
    -0.1
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

SCORE_METRICS = ("accuracy", "f1", "matthews", "pearson", "spearman")


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _as_matrix(R) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2:
        raise ValueError(f"accuracy matrix must be 2-D (n_arrivals, n_tasks), got shape {R.shape}")
    if R.shape[1] < R.shape[0]:
        raise ValueError(f"accuracy matrix needs n_tasks >= n_arrivals, got shape {R.shape}")
    return R


def _nanmean(x) -> float:
    """Mean over the finite entries; NaN (without a RuntimeWarning) when there are none."""
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def _safe_ratio(num, den) -> np.ndarray:
    """Element-wise num / den with NaN where den <= 0 (or either side is NaN).

    Every denominator here is "how far above a random guesser" a score is: at or below chance
    the normalisation is undefined (it would flip the sign or blow up), so the result is NaN.
    """
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, np.nan)
    ok = (den > 0) & ~np.isnan(den) & ~np.isnan(num)
    np.divide(num, den, out=out, where=ok)
    return out


def _random_vector(random_scores, n_tasks: int) -> np.ndarray:
    b = np.broadcast_to(np.asarray(random_scores, dtype=np.float64), (n_tasks,))
    return np.array(b)


# ---------------------------------------------------------------------------------------
# accuracy-matrix metrics
# ---------------------------------------------------------------------------------------
def average_accuracy(R) -> float:
    """Mean score over all tasks after the last arrival.

    Args:
        R: accuracy matrix, shape (n_arrivals, n_tasks).

    Returns:
        Mean of ``R[-1, :]`` ignoring NaN entries; NaN if the row is all NaN.
    """
    R = _as_matrix(R)
    return _nanmean(R[-1, :])


def average_accuracy_curve(R) -> np.ndarray:
    """Average accuracy over the tasks seen so far, after each arrival.

    Args:
        R: accuracy matrix, shape (n_arrivals, n_tasks).

    Returns:
        Array of shape (n_arrivals,) whose i-th entry is the mean of ``R[i, :i+1]``
        (NaN entries ignored).
    """
    R = _as_matrix(R)
    return np.array([_nanmean(R[i, : i + 1]) for i in range(R.shape[0])])


def backward_transfer(R) -> float:
    """Backward transfer (BWT, Lopez-Paz & Ranzato 2017).

    ``BWT = mean_{j < T-1} (R[T-1, j] - R[j, j])`` with T the number of arrivals. Negative
    values mean forgetting.

    Args:
        R: accuracy matrix, shape (n_arrivals, n_tasks).

    Returns:
        BWT ignoring NaN terms; NaN with a single arrival or when every term is NaN.
    """
    R = _as_matrix(R)
    T = R.shape[0]
    j = np.arange(T - 1)
    return _nanmean(R[T - 1, j] - R[j, j])


def forward_transfer(R, random_scores) -> float:
    """Forward transfer (FWT, Lopez-Paz & Ranzato 2017).

    ``FWT = mean_{j >= 1} (R[j-1, j] - b_j)``: how well task j is solved just before it
    arrives, relative to a random baseline ``b_j``.

    Args:
        R: accuracy matrix, shape (n_arrivals, n_tasks).
        random_scores: b, scalar or shape (n_tasks,).

    Returns:
        FWT ignoring NaN terms (tasks without a head before their arrival); NaN when all
        terms are NaN or there is a single arrival.
    """
    R = _as_matrix(R)
    b = _random_vector(random_scores, R.shape[1])
    j = np.arange(1, R.shape[0])
    return _nanmean(R[j - 1, j] - b[j])


def knowledge_transfer(scores, ref_scores, random_scores) -> np.ndarray:
    """CLiMB knowledge transfer per task: ``100 * (S_m - S_ref) / (S_ref - S_rand)``.

    Args:
        scores: S_m, the method's score on each task right after learning it.
        ref_scores: S_ref, the reference's score (e.g. a single-task adapter).
        random_scores: S_rand, a random guesser's score (scalar or per task).

    Returns:
        Float array with the broadcast shape of the inputs; NaN where ``S_ref <= S_rand`` (the
        reference learned nothing: the ratio is undefined) or an input is NaN.
    """
    s = np.asarray(scores, dtype=np.float64)
    ref = np.asarray(ref_scores, dtype=np.float64)
    rnd = np.asarray(random_scores, dtype=np.float64)
    return 100.0 * _safe_ratio(s - ref, ref - rnd)


def forgetting(R, random_scores) -> np.ndarray:
    """CLiMB forgetting per task: ``100 * (R[j,j] - R[T-1,j]) / (R[j,j] - b_j)``.

    Args:
        R: accuracy matrix, shape (n_arrivals, n_tasks).
        random_scores: b, scalar or shape (n_tasks,).

    Returns:
        Array of shape (n_arrivals,): entry j is the forgetting of task j between learning
        it and the end of the stream. The last task (nothing learnt after it) and tasks
        never learnt above chance (``R[j,j] <= b_j``) get NaN.
    """
    R = _as_matrix(R)
    T = R.shape[0]
    b = _random_vector(random_scores, R.shape[1])
    j = np.arange(T)
    diag = R[j, j]
    out = 100.0 * _safe_ratio(diag - R[T - 1, j], diag - b[j])
    out[T - 1] = np.nan
    return out


def _json_float(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def summary(R, random_scores, ref_diag=None, kt_rows=None) -> dict:
    """Headline numbers of one stream, JSON-safe.

    Args:
        R: accuracy matrix, shape (n_arrivals, n_tasks).
        random_scores: random-guesser score, scalar or shape (n_tasks,).
        ref_diag: optional reference score per task (shape (n_arrivals,)); when given,
            ``mean_kt`` is the mean CLiMB KT of ``diag(R)`` against it.
        kt_rows: optional boolean mask of the arrivals KT measures transfer on (those that had
            teachers); when given, ``mean_kt`` averages only those and ``kt_left_out`` counts the
            others (KT is 0 there by construction, or not transfer at all), so a mean over 1 of 5
            tasks says so.

    Returns:
        Dict: avg_accuracy, bwt, mean_forgetting, mean_kt (float, None where undefined, e.g.
        no ``ref_diag``) and how many tasks each mean left out as undefined (reference or
        diagonal at or below chance): ``kt_undefined``, ``forgetting_undefined`` (the last task
        has nothing to forget and is not counted).

    FWT is not in the summary: it needs ``R[j-1, j]``, a task's score *before* it is trained,
    which no adapter method has (the task has no head yet), so it would always be undefined.
    KT against a single-task reference measures transfer instead (``forward_transfer`` stays
    available for matrices that have those entries).
    """
    R = _as_matrix(R)
    mean_kt, kt_undefined = math.nan, None
    if ref_diag is not None:
        j = np.arange(R.shape[0])
        b = _random_vector(random_scores, R.shape[1])[j]
        kt = knowledge_transfer(R[j, j], ref_diag, b)
        if kt_rows is not None:
            kt = kt[np.asarray(kt_rows, dtype=bool)]
        mean_kt, kt_undefined = _nanmean(kt), int(np.isnan(kt).sum())
    fgt = forgetting(R, random_scores)[:-1]
    return {
        "avg_accuracy": _json_float(average_accuracy(R)),
        "bwt": _json_float(backward_transfer(R)),
        "mean_forgetting": _json_float(_nanmean(fgt)),
        "forgetting_undefined": int(np.isnan(fgt).sum()),
        "mean_kt": _json_float(mean_kt),
        "kt_undefined": kt_undefined,
    } | ({} if kt_rows is None else {"kt_left_out": int(R.shape[0] - np.count_nonzero(kt_rows))})


# ---------------------------------------------------------------------------------------
# cost helpers
# ---------------------------------------------------------------------------------------
def storage_bytes(param_counts, bytes_per_param: int = 4) -> int:
    """Bytes needed to store parameters.

    Args:
        param_counts: an int, an iterable of ints, or a mapping whose values are ints
            (e.g. parameter count per adapter/head).
        bytes_per_param: 4 for float32, 2 for float16/bfloat16.

    Returns:
        Total bytes as an int.
    """
    if isinstance(param_counts, Mapping):
        param_counts = param_counts.values()
    if isinstance(param_counts, Iterable):
        total = sum(int(n) for n in param_counts)
    else:
        total = int(param_counts)
    return total * int(bytes_per_param)


def tenants_within_budget(bytes_per_tenant: dict[str, int], budget_bytes: int) -> int:
    """How many tenants fit a storage budget, filling it greedily smallest first.

    Smallest-first maximises the count of tenants that fit.

    Args:
        bytes_per_tenant: tenant name -> bytes it stores.
        budget_bytes: storage budget in bytes.

    Returns:
        Number of tenants whose cumulative storage stays within the budget.
    """
    used, count = 0, 0
    for size in sorted(int(v) for v in bytes_per_tenant.values()):
        if used + size > budget_bytes:
            break
        used += size
        count += 1
    return count


def percentiles(values, qs=(50, 90, 99)) -> dict:
    """Percentiles of a sample (e.g. onboarding latency), keyed ``"p50"``, ``"p90"``, ...

    Args:
        values: numbers; NaN entries are ignored.
        qs: percentiles in [0, 100].

    Returns:
        Dict ``{"p<q>": float}``; NaN values when there is no finite sample.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    out = {}
    for q in qs:
        out[f"p{q:g}"] = float(np.percentile(x, q)) if x.size else math.nan
    return out


# ---------------------------------------------------------------------------------------
# per-task scores
# ---------------------------------------------------------------------------------------
def _f1(tp: float, fp: float, fn: float) -> float:
    den = 2 * tp + fp + fn
    return 2 * tp / den if den else 0.0


def _f1_score(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> float:
    """F1 under one convention fixed by the task's class count K, never by the labels a sample holds.

    K == 2: binary F1 of the positive class 1 (GLUE's MRPC/QQP convention). K > 2: macro F1 over
    all K classes 0..K-1; a class with no gold and no predicted example scores 0 (scikit-learn's
    ``f1_score(labels=range(K), average="macro", zero_division=0)``). Choosing the convention from
    ``y_true ∪ y_pred`` instead would score a 3-class sample showing only classes 0 and 2 as if it
    were binary (positive class 1, F1 0.0).
    """
    if num_labels is None or int(num_labels) < 2:
        raise ValueError(f"f1 needs the task's number of classes (num_labels >= 2), got {num_labels!r}")
    k = int(num_labels)
    out_of_range = np.setdiff1d(np.union1d(y_true, y_pred), np.arange(k))
    if out_of_range.size:
        raise ValueError(f"f1: labels {out_of_range.tolist()} are outside the task's {k} classes 0..{k - 1}")
    classes = [1] if k == 2 else range(k)
    f1s = [
        _f1(
            np.sum((y_pred == c) & (y_true == c)),
            np.sum((y_pred == c) & (y_true != c)),
            np.sum((y_pred != c) & (y_true == c)),
        )
        for c in classes
    ]
    return float(np.mean(f1s))


def _matthews(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Multi-class MCC (Gorodkin 2004), which equals the usual phi coefficient for 2 classes."""
    labels, inv = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    t_idx, p_idx = inv[: y_true.size], inv[y_true.size :]
    C = np.zeros((labels.size, labels.size))
    np.add.at(C, (t_idx, p_idx), 1)
    t, p = C.sum(axis=1), C.sum(axis=0)
    s, c = C.sum(), np.trace(C)
    den = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / den) if den else 0.0


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y / den) if den else 0.0


def rankdata(x) -> np.ndarray:
    """1-based ranks with ties given their average rank (like scipy's ``method="average"``)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # rank of the last member of each tie group
    avg = ends - (counts - 1) / 2.0
    return avg[inv]


def score(metric: str, y_true, y_pred, num_labels: int | None = None) -> float:
    """A task's score under its metric.

    Args:
        metric: one of accuracy, f1, matthews, pearson, spearman.
        y_true: gold labels or targets, shape (N,).
        y_pred: predicted labels or values, shape (N,).
        num_labels: the task's number of classes K (``Task.num_labels``); required for f1, whose
            convention it fixes: binary F1 of class 1 when K == 2, macro F1 over all K classes
            (an absent class scores 0) when K > 2, whichever labels the sample happens to hold.

    Returns:
        The score as a float. Constant predictions (or targets) give 0.0 for matthews,
        pearson and spearman rather than NaN; an empty sample gives NaN.

    Raises:
        ValueError: unknown metric, mismatched lengths, or f1 without ``num_labels`` (or with
            labels outside 0..K-1).
    """
    if metric not in SCORE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {SCORE_METRICS}")
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} entries but y_pred has {y_pred.size}")
    if y_true.size == 0:
        return math.nan
    if metric == "accuracy":
        return float(np.mean(y_true == y_pred))
    if metric == "f1":
        return _f1_score(y_true, y_pred, num_labels)
    if metric == "matthews":
        return _matthews(y_true, y_pred)
    if metric == "pearson":
        return _pearson(y_true.astype(np.float64), y_pred.astype(np.float64))
    return _pearson(rankdata(y_true), rankdata(y_pred))
