"""Phases: the unit of training work that executors run, checkpoint, cache and resume.

A `Phase` is plain frozen data: the fields every kind shares plus `spec`, the typed fields of its
kind (`cl_sim.kinds`: adapter, head, finetune, fusion, distill). Its store key hashes every input
that changes the result (kind, task data hash, backbone, adapter shape, hyperparameters, seed, the
kind's spec with the store keys of its init state and teachers), so identical work is never trained
twice, by any run or trial.

    out = run_phase(phase, task, store)          # -> PhaseOutput(states, metrics, attention)
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from cl_sim.backbone import cached_backbone
from cl_sim.config import AdapterConfig, build as build_data
from cl_sim.data.task import Split, Task
from cl_sim.data.tokenize import encode_split
from cl_sim.fingerprint import fingerprint, fingerprint_parts
from cl_sim.kinds import KINDS as _REGISTRY, Built, StateSource
from cl_sim.model import AdaptedModel

KINDS = tuple(_REGISTRY)


@dataclass(frozen=True)
class Phase:
    kind: str
    task: str
    data_hash: str
    backbone: str
    pooling: str
    max_length: int
    adapter: Optional[dict]  # AdapterConfig as a dict; None for kinds without adapters (head, finetune)
    seed: int
    epochs: int
    lr: float
    batch_size: int
    grad_accum: int = 1
    weight_decay: float = 0.0
    precision: str = "fp32"
    min_steps: int = 0  # train at least this many optimizer steps (more epochs on small tasks)
    fraction: float = 1.0  # share of the training split (I2I's low-shot phases)
    max_examples: Optional[int] = None
    dev_examples: Optional[int] = None  # dev rows scored at the phase's end (None = all, 0 = none)
    init: Optional[str] = None  # store key whose states start this phase (which ones: its kind decides)
    head_lr: Optional[float] = None  # the task head's rate; None = lr (fusion phases: training.lr)
    spec: Any = None  # the kind's own fields (`KINDS[kind].spec`; a dict is read into it; None = its defaults)

    def __post_init__(self):
        if self.kind not in _REGISTRY:
            raise ValueError(f"unknown phase kind '{self.kind}' (known: {', '.join(KINDS)})")
        cls = _REGISTRY[self.kind].spec
        if self.spec is None or isinstance(self.spec, dict):
            object.__setattr__(self, "spec", build_data(cls, self.spec or {}, "phase.spec"))
        elif not isinstance(self.spec, cls):
            raise TypeError(f"a {self.kind} phase takes a {cls.__name__}, got {type(self.spec).__name__}")

    def config_hash(self) -> str:
        """sha256 of the configuration alone (what the key hashed before fingerprints)."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def key(self) -> str:
        """Store key: the configuration plus the code/backbone fingerprint (`cl_sim.fingerprint`)."""
        blob = f"{self.config_hash()}|{fingerprint(self.backbone)}"
        return f"{self.kind}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Phase":
        return Phase(**d)


def phase_meta(phase: Phase, metrics: dict, attention: Optional[list] = None,
               stamp: Optional[dict] = None, **extra) -> dict:
    """A store entry's manifest fields: the phase, its metrics, and what its key was made of.

    `stamp`: `{"fingerprint", "fingerprint_parts"}` as the process that computed the key saw them
    (`job_fingerprint`); None = computed here (in-process runs: the same process)."""
    return {"phase": phase.to_dict(), "metrics": metrics, "attention": attention,
            "config_hash": phase.config_hash(), **(stamp or job_fingerprint(phase.backbone)), **extra}


def job_fingerprint(backbone: str) -> dict:
    """The fingerprint behind a phase's key, to travel with the phase to the worker that stores it."""
    return {"fingerprint": fingerprint(backbone), "fingerprint_parts": fingerprint_parts(backbone)}


@dataclass
class PhaseOutput:
    states: dict  # group -> {name: tensor}
    metrics: dict  # train_loss, dev_score, examples, steps, wall_s, trainable_params
    attention: Optional[list] = None  # fusion: per slot, mean attention per teacher (lists)


@dataclass
class Dist:
    """How this process takes part in data-parallel training (set by the Ray executor)."""

    rank: int = 0
    world_size: int = 1
    wrap: Callable = staticmethod(lambda m: m)
    device: str = "cpu"
    eval_batch_size: int = 128  # `training.eval_batch_size`: prediction batches (memory, not results)


# ---------------------------------------------------------------- data


def fresh_backbone(name: str):
    model, tokenizer = cached_backbone(name)
    return copy.deepcopy(model), tokenizer


_ENCODED: dict = {}


def subset_seed(phase: Phase, purpose: str = "subset") -> int:
    """Seed of a phase's row subset for `purpose` ("subset": its training rows, "dev": the dev rows
    it scores): the run seed and the task's data, nothing else, so every low-shot phase of one
    (task, seed) - I2I's Improvise and Initialize - sees the same examples (I2I, Srinivasan et al.
    2023: one low-shot set per task), and every phase of it scores the same dev rows."""
    blob = f"{phase.seed}|{phase.data_hash}|{purpose}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


def subset_indices(labels: np.ndarray, kind: str, keep: int, seed: int) -> np.ndarray:
    """`keep` sorted row indices, stratified by class (largest remainder, at least one example
    of every class); plain seeded sampling for regression."""
    n = len(labels)
    if keep >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if kind == "regression":
        return np.sort(rng.permutation(n)[:keep])
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse)
    keep = max(keep, len(classes))
    exact = counts * keep / n
    quota = np.maximum(1, np.floor(exact).astype(int))
    for c in np.argsort(-(exact - np.floor(exact)), kind="stable")[: max(0, keep - int(quota.sum()))]:
        quota[c] += 1
    while quota.sum() > keep:  # the one-per-class minimum overshot: the largest class gives back
        quota[np.argmax(quota)] -= 1
    quota = np.minimum(quota, counts)
    picked = [rng.permutation(np.flatnonzero(inverse == c))[:q] for c, q in enumerate(quota)]
    return np.sort(np.concatenate(picked))


def train_indices(phase: Phase, task: Task) -> Optional[np.ndarray]:
    """The training rows a phase uses (None = the whole split): at most `max_examples`, then
    `fraction` of those, both stratified and seeded by `subset_seed`."""
    labels = task.splits["train"].labels
    n = len(labels)
    keep = n if phase.max_examples is None else min(n, phase.max_examples)
    keep = max(1, int(round(keep * phase.fraction)))
    if keep >= n:
        return None
    return subset_indices(labels, task.kind, keep, subset_seed(phase))


def dev_indices(phase: Phase, task: Task) -> Optional[np.ndarray]:
    """The dev rows a phase scores at its end (None = the whole split): at most `dev_examples`,
    stratified, seeded by the run seed and the task's data (every phase of a task and seed scores
    the same rows, so their dev scores compare)."""
    labels = task.splits["dev"].labels
    if phase.dev_examples is None or phase.dev_examples >= len(labels):
        return None
    return subset_indices(labels, task.kind, phase.dev_examples, subset_seed(phase, "dev"))


def encoded(task: Task, split: str, tokenizer, max_length: int, indices: Optional[np.ndarray] = None):
    """Tokenised split (or the rows `indices` of it), cached per process."""
    rows = None if indices is None else hashlib.sha256(np.asarray(indices, np.int64).tobytes()).hexdigest()
    key = (task.data_hash(), split, tokenizer.name_or_path, max_length, rows)
    if key not in _ENCODED:
        data: Split = task.splits[split]
        if indices is not None:
            data = data.subset(indices)
        if len(_ENCODED) > 64:
            _ENCODED.clear()
        _ENCODED[key] = encode_split(data, task.kind, tokenizer, max_length)
    return _ENCODED[key]


def shard_batch(batch: dict, dist: Dist) -> dict:
    """This rank's contiguous slice of a global batch (same global order on every rank), sizes
    differing by at most one. Never empty: when the last batch has fewer examples than ranks, a
    rank without one repeats the batch's last example (an empty shard's loss is NaN, and DDP would
    average that NaN gradient into every rank)."""
    if dist.world_size == 1:
        return batch
    n = batch["labels"].shape[0]
    lo, hi = dist.rank * n // dist.world_size, (dist.rank + 1) * n // dist.world_size
    if lo == hi:
        lo, hi = n - 1, n
    return {k: v[lo:hi] for k, v in batch.items()}


def to_cpu(states: dict) -> dict:
    """States as CPU tensors: what crosses processes and enters the store (a CPU-only store actor
    cannot even deserialize CUDA tensors); loaded onto a worker's device after `get`."""
    return {g: {k: v.detach().cpu() for k, v in part.items()} for g, part in states.items()}


def batch_to(batch: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def phase_seed(phase: Phase) -> int:
    """Init/shuffle seed: independent of teachers, so a phase without teachers equals st_a's."""
    blob = f"{phase.seed}|{phase.task}|{phase.kind}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


# ---------------------------------------------------------------- model assembly


def build_model(phase: Phase, task: Task, source: StateSource) -> tuple[AdaptedModel, Any, Built]:
    """Assemble the model a phase trains: the backbone with adapter slots and a task head "head",
    then whatever its kind adds (`cl_sim.kinds`); only the kind's trainable modules keep gradients.
    Returns (model, tokenizer, what the kind built)."""
    backbone, tokenizer = fresh_backbone(phase.backbone)
    adapter = AdapterConfig(**phase.adapter) if phase.adapter else None
    model = AdaptedModel(backbone, adapter, phase.pooling)
    model.add_head("head", task.kind, task.num_labels)
    init = source.states(phase.init) if phase.init else None
    built = _REGISTRY[phase.kind].build(phase, task, model, init, source)
    for p in model.parameters():
        p.requires_grad_(False)
    for module in built.train:
        for p in module.parameters():
            p.requires_grad_(True)
    for p in unread_params(model):
        p.requires_grad_(False)
    return model, tokenizer, built


def unread_params(model: AdaptedModel) -> list:
    """Backbone parameters no forward pass reads: the pooler (`AdaptedModel` pools
    `last_hidden_state` itself). Left trainable they get no gradient, which DDP without
    `find_unused_parameters` refuses on the second step (full fine-tuning on 2+ workers)."""
    pooler = getattr(model.backbone, "pooler", None)
    return list(pooler.parameters()) if isinstance(pooler, torch.nn.Module) else []
