"""Tasks as plain frozen data: texts, labels and what the metric needs."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

KINDS = ("classification", "regression", "multiple_choice")
METRICS = ("accuracy", "f1", "matthews", "pearson", "spearman")


@dataclass(frozen=True)
class Split:
    """One split of a task.

    texts: one tuple of strings per example. classification/regression: 1 or 2 segments
        (a single sentence or a sentence pair). multiple_choice: (context, choice_1, ..., choice_n).
    labels: int64 class ids (classification, multiple_choice: index of the right choice)
        or float32 targets (regression), shape (N,).
    """

    texts: tuple[tuple[str, ...], ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices) -> "Split":
        idx = np.asarray(indices, dtype=np.int64)
        return Split(tuple(self.texts[i] for i in idx), self.labels[idx])


@dataclass(frozen=True)
class Task:
    """A task: name, kind, labels, metric and its splits ("train", "dev", optional "test")."""

    name: str
    kind: str
    labels: tuple[str, ...]  # class names; () for regression; choice names for multiple_choice
    metric: str
    splits: dict = field(hash=False, compare=False)  # split name -> Split
    tenant: str = "default"

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.labels)

    @property
    def eval_split(self) -> str:
        """The split the accuracy matrix is computed on: test when there is one, else dev."""
        return "test" if "test" in self.splits else "dev"

    @property
    def random_score(self) -> float:
        """Expected score of a uniform random guesser on the eval split (CLiMB's S_random).

        accuracy: 1/K. f1: per scored class c with prevalence p_c, precision p_c and recall 1/K,
        so F1_c = 2 p_c / (K p_c + 1) (class 1 for two classes, as `metrics.score`; the macro
        mean beyond). matthews, pearson, spearman: 0 (no correlation with the labels).
        """
        k = max(self.num_labels, 1)
        if self.metric == "accuracy":
            return 1.0 / k
        if self.metric == "f1":
            labels = self.splits[self.eval_split].labels
            classes = [1] if k <= 2 else range(k)
            return float(np.mean([2 * np.mean(labels == c) / (k * np.mean(labels == c) + 1) for c in classes]))
        return 0.0

    def data_hash(self) -> str:
        """sha256 over every split's texts and labels: the store key changes when data does."""
        h = hashlib.sha256()
        h.update(f"{self.name}|{self.kind}|{self.labels}|{self.metric}".encode())
        for name in sorted(self.splits):
            split = self.splits[name]
            h.update(name.encode())
            for t in split.texts:
                h.update("\x1f".join(t).encode())
                h.update(b"\x1e")
            h.update(np.ascontiguousarray(split.labels).tobytes())
        return h.hexdigest()[:16]


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from the sha256 of ``parts`` (stable across processes, unlike hash())."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def label_sort_key(label: str) -> tuple:
    """Numeric-aware order for class names: numbers by value ("2" < "10"), then strings."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def carve_dev(train: Split, fraction: float, seed_name: str) -> tuple[Split, Split]:
    """Split ``fraction`` of each class off ``train`` (at least one row per class stays).

    Deterministic: the permutation is seeded by the sha256 of ``seed_name``.
    """
    rng = np.random.default_rng(stable_seed("carve_dev", seed_name))
    dev_idx = []
    # classes are stratified; regression targets form one group
    groups = np.unique(train.labels) if train.labels.dtype.kind == "i" else [None]
    for c in groups:
        rows = np.arange(len(train)) if c is None else np.flatnonzero(train.labels == c)
        members = rng.permutation(rows)
        n_dev = min(int(round(fraction * len(members))), len(members) - 1)
        dev_idx.extend(members[:n_dev].tolist())
    is_dev = np.zeros(len(train), dtype=bool)
    is_dev[dev_idx] = True
    return train.subset(np.flatnonzero(~is_dev)), train.subset(np.flatnonzero(is_dev))
