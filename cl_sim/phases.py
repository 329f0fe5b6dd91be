"""Phases: the unit of training work that executors run, checkpoint, cache and resume.

A `Phase` is plain frozen data. Its store key hashes every input that changes the result (kind,
task data hash, backbone, adapter shape, hyperparameters, seed, and the store keys of its init
state and teachers), so identical work is never trained twice, by any run or trial.

    out = run_phase(phase, task, store)          # -> PhaseOutput(states, metrics, attention)

Kinds:
    adapter   train a (fresh or initialised) adapter + head on the task          (st_a, i2i Train)
    head      linear probe on the frozen backbone                                (head_only)
    finetune  train backbone + head, optionally from a previous backbone         (finetune, sequential_ft)
    fusion    train an AdapterFusion layer + head over frozen teacher adapters    (fusion, i2i Improvise)
    distill   distil a trained fusion model into one adapter + head              (i2i Initialize, AdapterDistillation)
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

import numpy as np
import torch

from cl_sim.backbone import cached_backbone
from cl_sim.data.task import Split, Task
from cl_sim.data.tokenize import encode_split, iterate
from cl_sim.fingerprint import fingerprint, fingerprint_parts
from cl_sim.losses import hidden_kd, logit_kd, task_loss
from cl_sim.metrics import score as metric_score
from cl_sim.model import AdaptedModel, Fuse, trainable_params

KINDS = ("adapter", "head", "finetune", "fusion", "distill")


@dataclass(frozen=True)
class Phase:
    kind: str
    task: str
    data_hash: str
    backbone: str
    pooling: str
    max_length: int
    adapter: Optional[dict]  # AdapterConfig as a dict; None for head/finetune
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
    init: Optional[str] = None  # store key whose adapter/head (or backbone/head) states start this phase
    teachers: tuple[str, ...] = ()  # fusion: store keys of the adapters to fuse, in fusion order
    teacher_fusion: Optional[str] = None  # distill: store key of the fusion phase to distil from
    backbone_lr: Optional[float] = None  # finetune
    head_lr: Optional[float] = None  # None = lr (fusion phases: training.lr, see FusionConfig)
    fusion: Optional[dict] = None  # FusionConfig fields (fusion phases)
    distill: Optional[dict] = None  # DistillConfig fields (distill phases)

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
        return Phase(**{**d, "teachers": tuple(d.get("teachers", ()))})


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


class StateSource(Protocol):
    def states(self, key: str) -> dict: ...

    def meta(self, key: str) -> dict: ...


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


def _shard(batch: dict, dist: Dist) -> dict:
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


def _to(batch: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def phase_seed(phase: Phase) -> int:
    """Init/shuffle seed: independent of teachers, so a phase without teachers equals st_a's."""
    blob = f"{phase.seed}|{phase.task}|{phase.kind}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


# ---------------------------------------------------------------- model assembly


def _add_teachers(model: AdaptedModel, keys, source: StateSource) -> tuple[str, ...]:
    names = tuple(f"t{i}" for i in range(len(keys)))
    for name, key in zip(names, keys):
        model.add_adapter(name)
        model.load_adapter(name, source.states(key)["adapter"])
    return names


def _add_fused_teacher(model: AdaptedModel, fusion_key: str, source: StateSource, head: str) -> Fuse:
    """Rebuild a trained fusion model (its adapters, fusion layer and head) inside `model`."""
    entry = source.meta(fusion_key)
    names = _add_teachers(model, entry["phase"]["teachers"], source)
    states = source.states(fusion_key)
    fusion = entry["phase"]["fusion"]
    model.add_fusion("fusion", placement=fusion["placement"], factorized=fusion.get("factorized", False))
    model.load_fusion("fusion", states["fusion"])
    model.load_head(head, states["head"])
    return Fuse(names, "fusion")


def build_model(phase: Phase, task: Task, source: StateSource):
    """Assemble the model a phase trains; returns (model, tokenizer, trainable modules)."""
    from cl_sim.config import AdapterConfig

    backbone, tokenizer = fresh_backbone(phase.backbone)
    adapter = AdapterConfig(**phase.adapter) if phase.adapter else None
    model = AdaptedModel(backbone, adapter, phase.pooling)
    model.add_head("head", task.kind, task.num_labels)
    init = source.states(phase.init) if phase.init else None
    if init and "head" in init and phase.kind != "finetune":
        model.load_head("head", init["head"])
    train = [model.heads["head"]]
    if phase.kind == "adapter":
        model.add_adapter("student")
        if init:
            model.load_adapter("student", init["adapter"])
        model.set_active("student")
        train += [s.cl_adapters["student"] for s in model.slots.values()]
    elif phase.kind == "finetune":
        if init:
            backbone.load_state_dict(init["backbone"])
        train.append(backbone)
    elif phase.kind == "fusion":
        names = _add_teachers(model, phase.teachers, source)
        model.add_fusion("fusion", phase.fusion["value_init_noise"], phase.fusion["placement"],
                         phase.fusion.get("factorized", False))
        model.set_active(Fuse(names, "fusion"))
        train += model.fusion_modules("fusion")
    elif phase.kind == "distill":
        model.add_head("teacher", task.kind, task.num_labels)
        model.teacher_comp = _add_fused_teacher(model, phase.teacher_fusion, source, "teacher")
        model.add_adapter("student")
        if init:
            model.load_adapter("student", init["adapter"])
        else:  # I2I: the fresh adapter starts with the improvised model's head
            model.load_head("head", model.head_state("teacher"))
        model.set_active("student")
        train += [s.cl_adapters["student"] for s in model.slots.values()]
    if phase.kind == "distill" and phase.distill["target"] == "hidden" and phase.distill["task_weight"] == 0:
        train.remove(model.heads["head"])  # no term of the loss reads the head: it stays as initialised
    for p in model.parameters():
        p.requires_grad_(False)
    for module in train:
        for p in module.parameters():
            p.requires_grad_(True)
    for p in unread_params(model):
        p.requires_grad_(False)
    return model, tokenizer, train


def unread_params(model: AdaptedModel) -> list:
    """Backbone parameters no forward pass reads: the pooler (`AdaptedModel` pools
    `last_hidden_state` itself). Left trainable they get no gradient, which DDP without
    `find_unused_parameters` refuses on the second step (full fine-tuning on 2+ workers)."""
    pooler = getattr(model.backbone, "pooler", None)
    return list(pooler.parameters()) if isinstance(pooler, torch.nn.Module) else []


def output_states(phase: Phase, model: AdaptedModel) -> dict:
    """The states a finished phase leaves in the store, as CPU tensors (`to_cpu`)."""
    states = {"head": model.head_state("head")}
    if phase.kind in ("adapter", "distill"):
        states["adapter"] = model.adapter_state("student")
    elif phase.kind == "fusion":
        states["fusion"] = model.fusion_state("fusion")
    elif phase.kind == "finetune":
        states["backbone"] = model.backbone_state()
    return to_cpu(states)


# ---------------------------------------------------------------- losses per kind


def make_loss(phase: Phase, task: Task, model: AdaptedModel, teacher: Optional[Callable] = None) -> Callable:
    """loss(train_model, batch) for this phase; `model` is the unwrapped module. Distill phases
    take their teacher's outputs from `teacher` (a `TeacherCache`), or run it on every batch."""
    if phase.kind == "fusion":
        reg = phase.fusion["value_reg"]

        def fusion_loss(train_model, batch):
            loss = task_loss(task.kind, train_model(batch, "head"), batch["labels"])
            if reg > 0:
                loss = loss + reg * sum(f.value_reg() for f in model.fusion_modules("fusion"))
            return loss

        return fusion_loss
    if phase.kind == "distill":
        teacher = teacher or functools.partial(teacher_outputs, model)
        return functools.partial(_distill_loss, phase.distill, task.kind, model, teacher)
    return lambda train_model, batch: task_loss(task.kind, train_model(batch, "head"), batch["labels"])


@torch.no_grad()
def teacher_outputs(model: AdaptedModel, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The frozen fused teacher on `batch`: (logits, per-slot outputs (R, T, H)); leaves the
    student active."""
    slots = list(model.slots.values())
    for s in slots:
        s.records = []
    model.set_active(model.teacher_comp)
    out = model(batch, "teacher")
    hidden = [s.records[0] for s in slots]
    for s in slots:
        s.records = None
    model.set_active("student")
    return out, hidden


def _distill_loss(cfg: dict, kind: str, model: AdaptedModel, teacher: Callable, train_model, batch) -> torch.Tensor:
    t_out, t_hidden = teacher(batch)
    slots = list(model.slots.values())
    for s in slots:
        s.records = []
    s_out = train_model(batch, "head")
    s_hidden = [s.records[0] for s in slots]
    for s in slots:
        s.records = None
    mask = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1])
    loss = s_out.new_zeros(())
    if cfg["target"] in ("logits", "both"):
        loss = loss + cfg["logit_weight"] * logit_kd(kind, s_out, t_out, cfg["temperature"])
    if cfg["target"] in ("hidden", "both"):
        loss = loss + cfg["hidden_weight"] * hidden_kd(s_hidden, t_hidden, mask)
    if cfg["task_weight"] > 0:
        loss = loss + cfg["task_weight"] * task_loss(kind, s_out, batch["labels"])
    return loss
