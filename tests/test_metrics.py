"""Hand-computed checks of cl_sim.metrics; every expected number is worked out in a comment."""
import json
import math

import numpy as np
import pytest

from cl_sim import metrics as M

NAN = np.nan

# A 3-task stream. Rows: after arrival i; columns: task j in arrival order.
R3 = np.array(
    [
        [0.8, 0.3, 0.2],
        [0.7, 0.9, 0.4],
        [0.6, 0.85, 0.7],
    ]
)
B3 = np.array([0.5, 0.5, 0.25])  # random-guesser scores
REF3 = np.array([0.7, 0.9, 0.5])  # reference (e.g. single-task adapter) scores


# --- accuracy-matrix metrics ------------------------------------------------------------
def test_average_accuracy_3x3():
    # (0.6 + 0.85 + 0.7) / 3 = 2.15 / 3
    assert M.average_accuracy(R3) == pytest.approx(2.15 / 3)


def test_average_accuracy_curve_3x3():
    # i=0: 0.8; i=1: (0.7 + 0.9) / 2 = 0.8; i=2: 2.15 / 3
    np.testing.assert_allclose(M.average_accuracy_curve(R3), [0.8, 0.8, 2.15 / 3])


def test_average_accuracy_curve_ignores_future_nan():
    R = np.array([[0.5, NAN], [0.4, 0.6]])
    # future NaN is never in R[i, :i+1]; i=1: (0.4 + 0.6) / 2 = 0.5
    np.testing.assert_allclose(M.average_accuracy_curve(R), [0.5, 0.5])


def test_backward_transfer_3x3():
    # j=0: 0.6 - 0.8 = -0.2; j=1: 0.85 - 0.9 = -0.05; mean = -0.125
    assert M.backward_transfer(R3) == pytest.approx(-0.125)


def test_backward_transfer_single_arrival_is_nan():
    assert math.isnan(M.backward_transfer([[0.9]]))


def test_backward_transfer_positive_when_old_task_improves():
    R = np.array([[0.5, NAN], [0.7, 0.9]])
    # 0.7 - 0.5 = +0.2
    assert M.backward_transfer(R) == pytest.approx(0.2)


def test_forward_transfer_3x3():
    # j=1: R[0,1] - b1 = 0.3 - 0.5 = -0.2; j=2: R[1,2] - b2 = 0.4 - 0.25 = 0.15; mean -0.025
    assert M.forward_transfer(R3, B3) == pytest.approx(-0.025)


def test_forward_transfer_scalar_baseline():
    # b = 0.2 for all: (0.3 - 0.2 + 0.4 - 0.2) / 2 = 0.15
    assert M.forward_transfer(R3, 0.2) == pytest.approx(0.15)


def test_forward_transfer_ignores_nan_and_all_nan_is_nan():
    R = np.array([[0.8, NAN, NAN], [0.7, 0.9, 0.4], [0.6, 0.85, 0.7]])
    # j=1 NaN (no head yet) is skipped; j=2: 0.4 - 0.25 = 0.15
    assert M.forward_transfer(R, B3) == pytest.approx(0.15)
    R_no_heads = np.array([[0.8, NAN], [0.6, 0.9]])
    with np.errstate(all="raise"):
        assert math.isnan(M.forward_transfer(R_no_heads, 0.5))


def test_forgetting_3x3():
    # j=0: 100 (0.8 - 0.6) / (0.8 - 0.5) = 20 / 0.3 = 66.67
    # j=1: 100 (0.9 - 0.85) / (0.9 - 0.5) = 5 / 0.4 = 12.5
    # j=2: last task, NaN
    f = M.forgetting(R3, B3)
    assert f[:2] == pytest.approx([200 / 3, 12.5])
    assert math.isnan(f[2])


def test_forgetting_zero_denominator_is_nan():
    # task 0 ended at chance: R[0,0] == b0 = 0.5, denominator 0 -> NaN, no warning
    R = np.array([[0.5, NAN, NAN], [0.4, 0.8, NAN], [0.4, 0.6, 0.9]])
    with np.errstate(all="raise"):
        f = M.forgetting(R, 0.5)
    # j=1: 100 (0.8 - 0.6) / (0.8 - 0.5) = 66.67
    assert math.isnan(f[0]) and math.isnan(f[2])
    assert f[1] == pytest.approx(200 / 3)


def test_knowledge_transfer_vectorised():
    # j0: 100 (0.8 - 0.7) / (0.7 - 0.5) = 50
    # j1: 100 (0.9 - 0.9) / (0.9 - 0.5) = 0
    # j2: 100 (0.7 - 0.5) / (0.5 - 0.25) = 80
    kt = M.knowledge_transfer(np.diag(R3), REF3, B3)
    np.testing.assert_allclose(kt, [50.0, 0.0, 80.0])


def test_knowledge_transfer_zero_denominator_and_nan():
    # S_ref == S_rand -> NaN; NaN input -> NaN; 100 (0.6 - 0.8) / (0.8 - 0.4) = -50
    with np.errstate(all="raise"):
        kt = M.knowledge_transfer([0.9, NAN, 0.6], [0.5, 0.8, 0.8], [0.5, 0.5, 0.4])
    assert math.isnan(kt[0]) and math.isnan(kt[1])
    assert kt[2] == pytest.approx(-50.0)
    assert M.knowledge_transfer(0.9, 0.8, 0.4) == pytest.approx(25.0)  # 100 * 0.1 / 0.4


def test_knowledge_transfer_is_undefined_when_the_reference_is_at_or_below_chance():
    # S_ref 0.49 < S_rand 0.5 would give 100 * 0.06 / -0.01 = -600: a gain reported as a huge loss
    kt = M.knowledge_transfer([0.55, 0.55], [0.49, 0.6], 0.5)
    assert math.isnan(kt[0]) and kt[1] == pytest.approx(-50.0)
    f = M.forgetting(np.array([[0.45, NAN], [0.30, 0.9]]), 0.5)  # task 0 never rose above chance
    assert math.isnan(f[0])


def test_summary_3x3_with_reference():
    s = M.summary(R3, B3, ref_diag=REF3)
    assert s["avg_accuracy"] == pytest.approx(2.15 / 3)
    assert s["bwt"] == pytest.approx(-0.125)
    assert "fwt" not in s  # R[j-1, j] never exists for adapter methods (see metrics.summary)
    assert s["kt_undefined"] == 0 and s["forgetting_undefined"] == 0
    assert s["mean_forgetting"] == pytest.approx((200 / 3 + 12.5) / 2)  # 39.58
    assert s["mean_kt"] == pytest.approx((50 + 0 + 80) / 3)  # 43.33
    assert all(isinstance(s[k], float) for k in ("avg_accuracy", "bwt", "mean_forgetting", "mean_kt"))


def test_summary_is_json_safe():
    s = M.summary([[0.9]], 0.5)
    # one arrival: nothing to transfer or forget; no reference -> no KT
    assert s == {"avg_accuracy": 0.9, "bwt": None, "mean_forgetting": None, "forgetting_undefined": 0,
                 "mean_kt": None, "kt_undefined": None}
    json.dumps(s, allow_nan=False)


def test_matrix_shape_is_checked():
    with pytest.raises(ValueError):
        M.average_accuracy([0.1, 0.2])
    with pytest.raises(ValueError):
        M.backward_transfer(np.zeros((3, 2)))


# --- cost helpers -----------------------------------------------------------------------
def test_storage_bytes():
    assert M.storage_bytes(1000) == 4000
    assert M.storage_bytes([10, 20], bytes_per_param=2) == 60  # 30 params * 2 bytes
    assert M.storage_bytes({"adapter": 5, "head": 5}) == 40


def test_tenants_within_budget_smallest_first():
    sizes = {"a": 50, "b": 10, "c": 30}
    # sorted 10, 30, 50: 10 + 30 = 40 <= 45, + 50 = 90 > 45 -> 2
    assert M.tenants_within_budget(sizes, 45) == 2
    assert M.tenants_within_budget(sizes, 90) == 3  # exactly full
    assert M.tenants_within_budget(sizes, 5) == 0
    assert M.tenants_within_budget({}, 100) == 0


def test_percentiles():
    p = M.percentiles(np.arange(101))  # 0..100: the q-th percentile is q
    assert p == {"p50": 50.0, "p90": 90.0, "p99": 99.0}
    assert M.percentiles([1.0, NAN, 3.0], qs=(50,)) == {"p50": 2.0}
    assert math.isnan(M.percentiles([])["p50"])


# --- scores -----------------------------------------------------------------------------
def test_score_accuracy():
    assert M.score("accuracy", [0, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx(0.75)


def test_score_f1_binary():
    # positive=1: tp=2 (idx 0, 4), fp=1 (idx 3), fn=1 (idx 1) -> 2*2 / (4 + 1 + 1) = 2/3
    assert M.score("f1", [1, 1, 0, 0, 1], [1, 0, 0, 1, 1], num_labels=2) == pytest.approx(2 / 3)


def test_score_f1_macro_three_classes():
    # class 0: tp1 fp0 fn0 -> 1; class 1: tp0 fp1 fn1 -> 0; class 2: tp1 fp1 fn1 -> 0.5
    assert M.score("f1", [0, 1, 2, 2], [0, 2, 2, 1], num_labels=3) == pytest.approx(0.5)


def test_score_f1_no_positives_is_zero():
    assert M.score("f1", [0, 0], [0, 0], num_labels=2) == 0.0


def test_score_f1_follows_the_task_not_the_classes_a_sample_shows():
    # a 3-class task whose sample holds classes 0 and 2 only: macro over all three classes
    # (class 0: tp2 fp0 fn1 -> 0.8; class 1: absent -> 0; class 2: tp2 fp1 fn0 -> 0.8): 0.533,
    # not binary F1 of class 1 (0.0, what choosing by the labels present gave)
    y, pred = [0, 2, 0, 2, 0], [0, 2, 2, 2, 0]
    assert M.score("f1", y, pred, num_labels=3) == pytest.approx(1.6 / 3)
    # a binary task whose sample shows one class is still binary F1 of class 1
    assert M.score("f1", [1, 1, 1], [1, 0, 1], num_labels=2) == pytest.approx(0.8)
    assert M.score("f1", [0, 0, 0], [0, 0, 0], num_labels=2) == 0.0


def test_score_f1_matches_scikit_learn_on_random_samples():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for k in (2, 3, 5):
        for n in (3, 8, 40):  # small samples often miss classes
            y, p = rng.integers(0, k, n), rng.integers(0, k, n)
            want = (sklearn_metrics.f1_score(y, p, pos_label=1, average="binary", zero_division=0) if k == 2 else
                    sklearn_metrics.f1_score(y, p, labels=list(range(k)), average="macro", zero_division=0))
            assert M.score("f1", y, p, num_labels=k) == pytest.approx(want)


def test_score_f1_needs_the_class_count():
    with pytest.raises(ValueError, match="num_labels"):
        M.score("f1", [0, 1], [0, 1])
    with pytest.raises(ValueError, match="outside"):
        M.score("f1", [0, 3], [0, 1], num_labels=3)


def test_score_matthews():
    # TP=2 TN=1 FP=1 FN=1: (2*1 - 1*1) / sqrt(3 * 3 * 2 * 2) = 1/6
    assert M.score("matthews", [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(1 / 6)
    assert M.score("matthews", [0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    assert M.score("matthews", [1, 0, 1, 0], [1, 1, 1, 1]) == 0.0  # constant prediction


def test_score_pearson():
    # dx = (-1, 0, 1), dy = (-7/3, -1/3, 8/3): 5 / sqrt(2 * 114/9)
    expected = 5 / math.sqrt(2 * 114 / 9)  # 0.99340
    assert M.score("pearson", [1, 2, 3], [2, 4, 7]) == pytest.approx(expected)
    assert M.score("pearson", [1.0, 2.0, 3.0], [0.5, 0.5, 0.5]) == 0.0


def test_rankdata_average_ties():
    np.testing.assert_allclose(M.rankdata([3, 1, 3, 2]), [3.5, 1.0, 3.5, 2.0])


def test_score_spearman_with_ties():
    # ranks x = (1, 2.5, 2.5, 4), y = (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert M.score("spearman", [1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(3 / math.sqrt(10))
    assert M.score("spearman", [1, 2, 3], [9, 4, 1]) == pytest.approx(-1.0)
    assert M.score("spearman", [1, 2, 3], [7, 7, 7]) == 0.0


def test_score_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown metric"):
        M.score("bleu", [1], [1])
    with pytest.raises(ValueError):
        M.score("accuracy", [1, 0], [1])
    assert math.isnan(M.score("accuracy", [], []))


def test_summary_counts_what_its_means_leave_out():
    R = np.array([[0.45, NAN, NAN], [0.40, 0.8, NAN], [0.40, 0.7, 0.9]])  # task 0 never above chance
    s = M.summary(R, 0.5, ref_diag=np.array([0.48, 0.7, 0.8]))  # task 0's reference below chance too
    assert s["kt_undefined"] == 1 and s["mean_kt"] == pytest.approx((100 * 0.1 / 0.2 + 100 * 0.1 / 0.3) / 2)
    assert s["forgetting_undefined"] == 1 and s["mean_forgetting"] == pytest.approx(100 * 0.1 / 0.3)
